"""The watchdog adapter: event translation, the event sink, per-root modes and their fallbacks."""

from __future__ import annotations

import errno
import logging
import os
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


@pytest.mark.parametrize("force_polling", [False, True], ids=["native", "polling"])
def test_replaced_root_is_unhealthy(tmp_path: Path, force_polling: bool) -> None:
    root = tmp_path / "root"
    root.mkdir()
    watcher = _watcher(root, force_polling=force_polling)
    try:
        watcher.start()
        assert watcher.healthy()
        root.rmdir()
        root.mkdir()  # same name, another folder (ext4 often gives it the same inode number)
        assert watcher.present()
        # Checked at once, before the observer could hear of the deletion: the identity alone must tell.
        assert not watcher.healthy()
    finally:
        watcher.stop()


def test_folder_identity_tells_a_recreated_folder_even_with_its_inode_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from photoembed.watch import filesystems

    root = tmp_path / "root"
    root.mkdir()
    before = filesystems.folder_identity(root)
    assert filesystems.folder_identity(root) == before  # stable while it lives
    (root / "child").mkdir()  # its content changing does not change it
    (root / "child").rmdir()
    assert filesystems.folder_identity(root) == before
    if before[2] is None and before[3] is None:
        pytest.skip("this file system gives neither inode generations nor birth times")
    root.rmdir()
    root.mkdir()
    after = filesystems.folder_identity(root)
    # Force the collision ext4 produces at random: the same device and inode number.
    real_stat = os.stat

    def same_inode(path: object, *args: object, **kwargs: object) -> os.stat_result:
        info = real_stat(path, *args, **kwargs)  # type: ignore[arg-type]
        if Path(path) == root:  # type: ignore[arg-type]
            values = list(info)
            values[1] = before[1]
            return os.stat_result(values)
        return info

    monkeypatch.setattr(filesystems.os, "stat", same_inode)
    collided = filesystems.folder_identity(root)
    assert collided[:2] == before[:2]
    assert collided != before
    assert collided[2:] == after[2:]


def _limit_probe(limit_hit: dict[str, bool]) -> observers.WatchProbe:
    def probe(path: str) -> None:
        if limit_hit["yes"]:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        observers.inotify_probe(path)

    return probe


@pytest.mark.expected_warnings(r"Cannot watch .* natively")
def test_watch_limit_reached_for_a_new_folder_falls_back_to_polling(tmp_path: Path) -> None:
    limit_hit = {"yes": False}
    sink = EventSink()
    watcher = RootWatcher(
        tmp_path, sink=sink, polling_factory=lambda: PollingObserver(timeout=0.2), probe=_limit_probe(limit_hit)
    )
    try:
        assert watcher.start().mode == "native"
        limit_hit["yes"] = True  # from now on no watch can be added (fs.inotify.max_user_watches reached)
        (tmp_path / "new folder").mkdir()
        deadline = time.monotonic() + 10
        while watcher.healthy() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not watcher.healthy()
        assert sink.take_lost() == {str(tmp_path)}  # the root is reconciled
        state = watcher.start()
        assert state.mode == "polling"
        assert "watch limit" in state.reason
        assert watcher.healthy()
        sink.drain()
        (tmp_path / "new folder" / "a.jpg").write_bytes(b"x")  # seen by polling
        deadline = time.monotonic() + 10
        seen: list[str] = []
        while str(tmp_path / "new folder" / "a.jpg") not in seen and time.monotonic() < deadline:
            seen += [e.path for e in sink.drain()]
            time.sleep(0.05)
        assert str(tmp_path / "new folder" / "a.jpg") in seen
    finally:
        watcher.stop()


@pytest.mark.expected_warnings(r"Cannot watch .* natively")
def test_watch_limit_reached_while_starting_polls_the_root(tmp_path: Path) -> None:
    watcher = RootWatcher(
        tmp_path, sink=EventSink(), polling_factory=lambda: PollingObserver(timeout=0.2),
        probe=_limit_probe({"yes": True}),
    )
    try:
        state = watcher.start()
        assert state.mode == "polling"
        assert "watch limit" in state.reason
    finally:
        watcher.stop()


def test_real_inotify_probe_succeeds_below_the_limit(tmp_path: Path) -> None:
    observers.inotify_probe(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        observers.inotify_probe(str(tmp_path / "missing"))


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
