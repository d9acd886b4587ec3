"""The watchdog adapter: event translation, the event sink, per-root modes and their fallbacks."""

from __future__ import annotations

import errno
import logging
import time
from pathlib import Path

import pytest
from watchdog.events import (
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from photoembed.watch import observers
from photoembed.watch.events import RawEvent
from photoembed.watch.filesystems import MountInfo, mount_of
from photoembed.watch.observers import EventSink, OverflowHook, RootWatcher, translate


def test_translate_keeps_what_can_change_the_catalog() -> None:
    assert translate(FileCreatedEvent("/r/a.jpg"), expects_close=True) == RawEvent(
        "created", "/r/a.jpg", expects_close=True
    )
    assert translate(FileModifiedEvent("/r/a.jpg"), expects_close=False) == RawEvent("modified", "/r/a.jpg")
    assert translate(FileClosedEvent("/r/a.jpg"), expects_close=True) == RawEvent(
        "closed", "/r/a.jpg", expects_close=True
    )
    assert translate(FileDeletedEvent("/r/a.jpg"), expects_close=False) == RawEvent("deleted", "/r/a.jpg")
    assert translate(DirMovedEvent("/r/a", "/r/b"), expects_close=False) == RawEvent(
        "moved", "/r/a", dest="/r/b", is_dir=True
    )


def test_translate_drops_reads_and_folder_noise() -> None:
    # The indexer reading a photo opens and closes it: that must not make it dirty again.
    assert translate(FileOpenedEvent("/r/a.jpg"), expects_close=True) is None
    assert translate(FileClosedNoWriteEvent("/r/a.jpg"), expects_close=True) is None
    assert translate(DirModifiedEvent("/r"), expects_close=True) is None


def test_translate_half_moves_are_creations_and_deletions() -> None:
    assert translate(FileMovedEvent("", "/r/in.jpg"), expects_close=False) == RawEvent("created", "/r/in.jpg")
    assert translate(FileMovedEvent("/r/out.jpg", ""), expects_close=False) == RawEvent("deleted", "/r/out.jpg")


def test_sink_full_marks_the_root_lost_instead_of_blocking() -> None:
    sink = EventSink(maxsize=2)
    for i in range(5):
        sink.put(RawEvent("created", f"/r/{i}.jpg"), root="/r")
    assert sink.take_lost() == {"/r"}
    assert sink.take_lost() == set()
    assert [e.path for e in sink.drain()] == ["/r/0.jpg", "/r/1.jpg"]


def test_sink_get_times_out_and_wakes() -> None:
    sink = EventSink()
    started = time.monotonic()
    assert sink.get(0.1) is None
    assert time.monotonic() - started >= 0.09
    sink.wake()
    assert sink.get(5.0) is None  # a wake-up returns at once, with no event


def test_overflow_hook_sees_watchdogs_overflow_log(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []
    hook = OverflowHook(lambda: calls.append(1))
    hook.attach()
    try:
        with caplog.at_level(logging.WARNING):
            logging.getLogger("watchdog.observers.inotify_c").warning("Inotify queue overflowed; events lost")
            logging.getLogger("watchdog.observers.inotify_c").warning("something else")
    finally:
        hook.detach()
    logging.getLogger("watchdog.observers.inotify_c").warning("Inotify queue overflowed; after detach")
    assert calls == [1]
    assert "overflowed" in caplog.text  # the record is not swallowed


def _watcher(root: Path, **kwargs: object) -> RootWatcher:
    return RootWatcher(
        root, sink=EventSink(), polling_factory=lambda: PollingObserver(timeout=0.2), **kwargs  # type: ignore[arg-type]
    )


def test_native_watching_by_default(tmp_path: Path) -> None:
    watcher = _watcher(tmp_path)
    try:
        assert watcher.start().mode == "native"
        assert watcher.healthy()
    finally:
        watcher.stop()
    assert not watcher.healthy()


def test_network_file_system_is_polled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observers, "mount_of", lambda path: MountInfo("/mnt/nas", "nfs4"))
    watcher = _watcher(tmp_path)
    try:
        state = watcher.start()
        assert state.mode == "polling"
        assert "nfs4" in state.reason
        assert watcher.healthy()
    finally:
        watcher.stop()


@pytest.mark.expected_warnings(r"natively .*; polling it instead")
def test_native_failure_falls_back_to_polling(tmp_path: Path) -> None:
    def failing() -> BaseObserver:
        raise OSError(errno.EMFILE, "inotify instance limit reached")

    watcher = _watcher(tmp_path, native_factory=failing)
    try:
        state = watcher.start()
        assert state.mode == "polling"
        assert "instance limit" in state.reason
    finally:
        watcher.stop()


def test_missing_root_is_offline(tmp_path: Path) -> None:
    watcher = _watcher(tmp_path / "unplugged")
    assert watcher.start().mode == "offline"
    assert not watcher.present()


def test_unplugged_mount_point_is_offline_though_its_folder_remains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mounted = {"yes": True}
    monkeypatch.setattr(observers, "is_mount_point", lambda path: mounted["yes"])
    watcher = _watcher(tmp_path)
    try:
        assert watcher.start().mode == "native"
        mounted["yes"] = False  # the drive is unplugged; the empty mount folder stays
        assert tmp_path.is_dir()
        assert not watcher.present()
    finally:
        watcher.stop()


def test_replaced_root_is_unhealthy(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    watcher = _watcher(root)
    try:
        watcher.start()
        root.rmdir()
        root.mkdir()  # same name, another folder: the old watch sees nothing of it
        assert watcher.present()
        assert not watcher.healthy()
    finally:
        watcher.stop()


def test_mount_of_reads_proc_mounts(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/sda1 / ext4 rw 0 0\n"
        "server:/photos /mnt/nas nfs4 rw 0 0\n"
        "user@host:/p /mnt/my\\040share fuse.sshfs rw 0 0\n"
        "/dev/sdb1 /media/usb fuseblk rw 0 0\n"
    )
    if not Path("/proc/self/mounts").exists():
        pytest.skip("not Linux")
    assert mount_of(Path("/mnt/nas/2024"), mounts_file=mounts) == MountInfo("/mnt/nas", "nfs4")
    share = mount_of(Path("/mnt/my share/x"), mounts_file=mounts)
    assert share is not None
    assert share.remote
    usb = mount_of(Path("/media/usb/DCIM"), mounts_file=mounts)
    assert usb is not None
    assert not usb.remote  # ntfs-3g on a local disk: native events work
    local = mount_of(Path("/home/me"), mounts_file=mounts)
    assert local == MountInfo("/", "ext4")
    assert not local.remote


def test_dead_inotify_reader_thread_is_unhealthy(tmp_path: Path) -> None:
    watcher = _watcher(tmp_path)
    try:
        watcher.start()
        reader = getattr(watcher._observer, "_inotify_fd", None)
        if reader is None:
            pytest.skip("this platform's observer has no separate reader thread")
        reader.stop()
        reader.join(timeout=5)
        assert not watcher.healthy()
    finally:
        watcher.stop()
