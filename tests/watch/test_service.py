"""The watch service with the real observer on a temporary folder: each kind of event, end to end.

Indexing runs without a model (no weights in a fresh home), which exercises everything but embeddings.
Every wait is bounded (conftest.WAIT_S).
"""

from __future__ import annotations

import errno
import io
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from photoembed.storage.catalog import Catalog
from photoembed.watch.events import WatchOptions
from photoembed.watch.state import read_watch_state_file
from tests.conftest import make_photo
from tests.watch.conftest import FAST, Running, wait_until

# watchdog warns (RuntimeWarning) on its inotify thread when a moved folder's watch is registered twice
# for the same callback, which is harmless; under filterwarnings=error it would kill that thread.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")

Start = Callable[..., Running]

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify reports closes on Linux")


def jpeg_bytes(seed: int) -> bytes:
    """A small JPEG in memory (noise, so every call differs)."""
    out = io.BytesIO()
    Image.effect_noise((96, 72), 40 + seed).convert("RGB").save(out, format="JPEG", quality=80)
    return out.getvalue()


def test_start_up_reconcile_indexes_what_changed_while_not_watching(root: Path, start_service: Start) -> None:
    make_photo(root / "a.jpg", seed=1)
    make_photo(root / "sub" / "b.jpg", seed=2)
    running = start_service()
    assert running.paths() == {"a.jpg", "sub/b.jpg"}
    assert running.state().mode == "native"


def test_new_photo_is_indexed_and_reported_once(root: Path, start_service: Start) -> None:
    running = start_service()
    make_photo(root / "new.jpg", seed=3)
    running.wait_paths({"new.jpg"})
    event = running.wait_event(lambda e: e.kind == "indexed" and e.added == 1, what="the batch event")
    assert event.paths == (root / "new.jpg",)
    assert not event.reconcile


def test_burst_of_files_is_one_batch(root: Path, start_service: Start) -> None:
    running = start_service()
    payloads = [jpeg_bytes(i) for i in range(30)]  # made first, so the import itself takes milliseconds
    (root / "import").mkdir()
    for i, data in enumerate(payloads):
        (root / "import" / f"IMG_{i:03d}.jpg").write_bytes(data)
    running.wait_paths({f"import/IMG_{i:03d}.jpg" for i in range(30)})
    # The catalog is committed just before the batch's event is yielded: wait for the events too.
    wait_until(lambda: sum(e.added for e in running.indexed_events()) == 30, what="the batch events")
    batches = [e for e in running.indexed_events() if e.added]
    assert len(batches) <= 2  # one burst, one (or, on a slow machine, two) syncs; never one per file
    # 30 dirty files in one folder are synced as the folder.
    assert batches[0].paths == (root / "import",)


def test_photo_overwritten_in_place_is_re_read(root: Path, start_service: Start) -> None:
    make_photo(root / "a.jpg", seed=1)
    running = start_service()
    before = running.rows()["a.jpg"]
    make_photo(root / "a.jpg", seed=2)
    wait_until(lambda: running.rows()["a.jpg"].content_hash != before.content_hash, what="new content hash")
    after = running.rows()["a.jpg"]
    assert after.id == before.id
    assert after.size == (root / "a.jpg").stat().st_size


def test_deleted_photo_is_dropped(root: Path, start_service: Start) -> None:
    make_photo(root / "a.jpg", seed=1)
    make_photo(root / "b.jpg", seed=2)
    running = start_service()
    (root / "a.jpg").unlink()
    running.wait_paths({"b.jpg"})


def test_renamed_photo_keeps_its_row(root: Path, start_service: Start) -> None:
    make_photo(root / "a.jpg", seed=1)
    running = start_service()
    photo_id = running.rows()["a.jpg"].id
    (root / "a.jpg").rename(root / "holiday.jpg")
    running.wait_paths({"holiday.jpg"})
    assert running.rows()["holiday.jpg"].id == photo_id
    running.wait_event(lambda e: e.kind == "indexed" and e.moved == 1, what="the batch reporting the move")


def test_editor_save_via_temporary_file_and_rename(root: Path, start_service: Start) -> None:
    make_photo(root / "a.jpg", seed=1)
    running = start_service()
    photo_id = running.rows()["a.jpg"].id
    # What editors do: write a hidden temporary file beside the photo, then rename it over the photo.
    temp = root / ".a.jpg.tmp-1234"
    temp.write_bytes(jpeg_bytes(7))
    os.replace(temp, root / "a.jpg")
    new_hash = None

    def updated() -> bool:
        nonlocal new_hash
        row = running.rows().get("a.jpg")
        new_hash = row.content_hash if row else None
        return row is not None and row.size == (root / "a.jpg").stat().st_size

    wait_until(updated, what="the saved photo re-read")
    assert running.paths() == {"a.jpg"}  # the temporary file never entered the catalog
    assert running.rows()["a.jpg"].id == photo_id
    assert new_hash is not None


def test_folder_moved_within_root_keeps_rows(root: Path, start_service: Start) -> None:
    for i in range(5):
        make_photo(root / "inbox" / f"p{i}.jpg", seed=i, size=(96, 72))
    running = start_service()
    ids = {name: photo.id for name, photo in running.rows().items()}
    (root / "albums").mkdir()
    (root / "inbox").rename(root / "albums" / "summer")
    running.wait_paths({f"albums/summer/p{i}.jpg" for i in range(5)})
    rows = running.rows()
    assert {rows[f"albums/summer/p{i}.jpg"].id for i in range(5)} == set(ids.values())


def test_folder_moved_out_of_root_is_dropped(root: Path, tmp_path: Path, start_service: Start) -> None:
    for i in range(3):
        make_photo(root / "inbox" / f"p{i}.jpg", seed=i, size=(96, 72))
    make_photo(root / "keep.jpg", seed=9)
    running = start_service()
    (root / "inbox").rename(tmp_path / "elsewhere")
    running.wait_paths({"keep.jpg"})


def test_folder_moved_in_from_outside_is_indexed(root: Path, tmp_path: Path, start_service: Start) -> None:
    for i in range(3):
        make_photo(tmp_path / "card" / "DCIM" / f"p{i}.jpg", seed=i, size=(96, 72))
    running = start_service()
    (tmp_path / "card" / "DCIM").rename(root / "DCIM")
    running.wait_paths({f"DCIM/p{i}.jpg" for i in range(3)})


def test_photo_moved_between_roots_keeps_its_row(
    root: Path, tmp_path: Path, catalog: Catalog, start_service: Start
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    catalog.add_root(other)
    make_photo(root / "a.jpg", seed=1)
    # Each root has its own observer: the move reaches one as "created" at once and the other as "deleted"
    # after watchdog's 0.5 s wait for a matching half; the quiet period (0.7 s) is longer than that.
    running = start_service()
    photo_id = running.rows()["a.jpg"].id
    (root / "a.jpg").rename(other / "a.jpg")
    wait_until(lambda: catalog.photo_by_path(other.resolve() / "a.jpg") is not None, what="the moved photo")
    running.wait_paths(set())
    moved = catalog.photo_by_path(other.resolve() / "a.jpg")
    assert moved is not None
    assert moved.id == photo_id


def test_non_photo_and_hidden_files_cause_no_sync(root: Path, start_service: Start) -> None:
    running = start_service()
    before = len(running.indexed_events())
    (root / "notes.txt").write_text("hello")
    (root / ".hidden.jpg").write_bytes(jpeg_bytes(1))
    (root / ".thumbnails").mkdir()
    (root / ".thumbnails" / "t.jpg").write_bytes(jpeg_bytes(2))
    make_photo(root / "real.jpg", seed=5)
    running.wait_paths({"real.jpg"})
    time.sleep(1.2)  # longer than the quiet period: any sync for the other files would have happened
    batches = running.indexed_events()[before:]
    assert len(batches) == 1
    assert batches[0].paths == (root / "real.jpg",)


def test_partial_writes_are_ingested_once_complete(root: Path, start_service: Start) -> None:
    """A file written in chunks, with pauses longer than the quiet period, is held back until stable."""
    running = start_service(options=_options(stable_s=1.0))
    data = jpeg_bytes(3)
    seen_sizes: set[int] = set()
    path = root / "slow.jpg"
    with open(path, "wb") as handle:
        for start in range(0, len(data), len(data) // 4 + 1):
            handle.write(data[start : start + len(data) // 4 + 1])
            handle.flush()
            deadline = time.monotonic() + 0.8  # > quiet_s (0.7): the debouncer releases the path mid-write
            while time.monotonic() < deadline:
                row = running.rows().get("slow.jpg")
                if row is not None:
                    seen_sizes.add(row.size)
                time.sleep(0.03)
    running.wait_paths({"slow.jpg"})
    row = running.rows()["slow.jpg"]
    assert seen_sizes == set(), "the half-written file reached the catalog"
    assert (row.state, row.size) == ("ok", len(data))
    running.wait_event(lambda e: e.kind == "indexed" and e.added == 1, what="the batch event")
    time.sleep(1.0)  # a second (wrong) ingestion would come within the quiet period
    events = [e for e in running.indexed_events() if e.added or e.updated or e.failed]
    assert [(e.added, e.updated, e.failed) for e in events] == [(1, 0, 0)]
    assert running.service.held_back_total >= 1, "the debouncer never released it mid-write"


@linux_only
def test_file_kept_open_for_writing_is_held_until_closed(root: Path, start_service: Start) -> None:
    """Pauses longer than stable_s: only the open-for-writing tracking (inotify close) holds the file."""
    running = start_service(options=_options(stable_s=0.2))
    data = jpeg_bytes(4)
    path = root / "copying.jpg"
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])
        handle.flush()
        time.sleep(1.5)  # quiet (0.7 s) and stable (0.2 s) both passed; the file is still open
        assert "copying.jpg" not in running.paths()
        handle.write(data[len(data) // 2 :])
    running.wait_paths({"copying.jpg"})
    row = running.rows()["copying.jpg"]
    assert (row.state, row.size) == ("ok", len(data))


@pytest.mark.expected_warnings(r"natively .*; polling it instead")
def test_polling_fallback_when_native_watching_fails(root: Path, start_service: Start) -> None:
    def no_inotify() -> BaseObserver:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    running = start_service(native_factory=no_inotify)
    state = running.state()
    assert state.mode == "polling"
    assert "inotify watch limit" in state.reason
    make_photo(root / "polled.jpg", seed=1)
    running.wait_paths({"polled.jpg"})
    (root / "polled.jpg").rename(root / "renamed.jpg")
    running.wait_paths({"renamed.jpg"})
    (root / "renamed.jpg").unlink()
    running.wait_paths(set())


@pytest.mark.expected_warnings(r"Cannot watch .* natively", r"File-system events were lost under")
def test_watch_limit_reached_while_watching_polls_and_indexes_the_new_folder(
    root: Path, start_service: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    from photoembed.watch import observers

    limit = {"reached": False}
    real_probe = observers.inotify_probe

    def probe(path: str) -> None:
        if limit["reached"]:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        real_probe(path)

    monkeypatch.setattr(observers, "inotify_probe", probe)
    running = start_service()
    assert running.state().mode == "native"
    limit["reached"] = True  # fs.inotify.max_user_watches is used up by other programs
    (root / "new folder").mkdir()
    state = running.wait_mode("polling")
    assert "inotify watch limit" in state.reason
    make_photo(root / "new folder" / "late.jpg", seed=3)  # in a folder native events would never see
    running.wait_paths({"new folder/late.jpg"})


def test_forced_polling(root: Path, start_service: Start) -> None:
    running = start_service(force_polling=True)
    assert running.state().mode == "polling"
    assert running.state().reason == "polling requested"
    make_photo(root / "a.jpg", seed=1)
    running.wait_paths({"a.jpg"})


def test_reconcile_on_demand_fixes_missed_events(root: Path, start_service: Start) -> None:
    # An observer that never reports anything: every change below is a missed event.
    def deaf() -> BaseObserver:
        return PollingObserver(timeout=3600)

    running = start_service(native_factory=deaf)
    make_photo(root / "missed.jpg", seed=1)
    time.sleep(1.2)
    assert running.paths() == set()
    running.service.reconcile()
    running.wait_paths({"missed.jpg"})
    running.wait_event(lambda e: e.kind == "indexed" and e.reconcile and e.added == 1, what="the reconcile")


@pytest.mark.expected_warnings(r"^File-system events were lost under .*; reconciling$")
def test_inotify_overflow_triggers_a_reconcile(root: Path, catalog: Catalog, start_service: Start) -> None:
    make_photo(root / "a.jpg", seed=1)
    running = start_service()
    # The kernel dropped events: simulate the loss by removing the row behind the watcher's back, then
    # log what watchdog logs when its inotify queue overflows.
    photo = catalog.photo_by_path(root / "a.jpg")
    assert photo is not None
    with catalog.transaction():
        catalog.delete_photos([photo.id])
    logging.getLogger("watchdog.observers.inotify_c").warning("Inotify queue overflowed; filesystem events were lost")
    running.wait_paths({"a.jpg"})


@pytest.mark.expected_warnings(r"^File-system events were lost under .*; reconciling$")
def test_full_event_queue_falls_back_to_reconcile(root: Path, start_service: Start) -> None:
    running = start_service(options=_options(queue_size=4))
    for i in range(20):
        make_photo(root / f"p{i:02d}.jpg", seed=i, size=(64, 48))
    running.wait_paths({f"p{i:02d}.jpg" for i in range(20)})


def test_root_unplugged_then_back(root: Path, tmp_path: Path, start_service: Start) -> None:
    make_photo(root / "a.jpg", seed=1)
    running = start_service()
    away = tmp_path / "unplugged"
    root.rename(away)
    assert running.wait_mode("offline").reason
    time.sleep(0.5)
    assert running.paths() == {"a.jpg"}  # kept while the root is away
    make_photo(away / "added while away.jpg", seed=2)
    (away / "a.jpg").unlink()
    away.rename(root)
    running.wait_mode("native")
    running.wait_paths({"added while away.jpg"})
    root_events = [e for e in running.drain() if e.kind == "root"]
    assert [e.mode for e in root_events][-2:] == ["offline", "native"]


def test_root_deleted_and_recreated(root: Path, start_service: Start) -> None:
    make_photo(root / "a.jpg", seed=1)
    running = start_service()
    shutil.rmtree(root)
    running.wait_mode("offline")
    assert running.paths() == {"a.jpg"}
    root.mkdir()
    make_photo(root / "b.jpg", seed=2)
    running.wait_mode("native")
    running.wait_paths({"b.jpg"})


def test_dead_observer_is_restarted_and_reconciled(root: Path, start_service: Start) -> None:
    running = start_service()
    watcher = running.service._watchers[root]
    observer = watcher._observer
    assert observer is not None
    observer.stop()
    observer.join(timeout=5)
    make_photo(root / "after.jpg", seed=1)  # possibly missed: the reconcile after the restart finds it
    wait_until(lambda: watcher._observer is not observer and watcher.healthy(), what="a restarted observer")
    running.wait_paths({"after.jpg"})


def test_root_added_while_watching_is_watched_and_indexed(
    tmp_path: Path, catalog: Catalog, start_service: Start
) -> None:
    running = start_service()
    other = tmp_path / "phone"
    make_photo(other / "x.jpg", seed=1)
    catalog.add_root(other)
    wait_until(lambda: catalog.photo_by_path(other.resolve() / "x.jpg") is not None, what="the new root indexed")
    assert {s.path for s in running.service.root_states()} == {running.root, other.resolve()}


def test_state_file_is_published_and_removed(root: Path, tmp_path: Path, start_service: Start) -> None:
    state_file = tmp_path / "home" / "watch-state.json"
    running = start_service(state_file=state_file)
    state = read_watch_state_file(state_file)
    assert state is not None
    assert state["pid"] == os.getpid()
    assert state["stale"] is False
    assert [(r["path"], r["mode"]) for r in state["roots"]] == [(str(root), "native")]
    assert state["last_batch"]["reconcile"] is True
    running.service.stop()
    running.thread.join(timeout=10)
    assert not state_file.exists()
    assert read_watch_state_file(state_file) is None


def test_idle_service_uses_almost_no_cpu(root: Path, start_service: Start) -> None:
    psutil = pytest.importorskip("psutil")
    running = start_service()
    process = psutil.Process()
    time.sleep(0.3)
    before = process.cpu_times()
    time.sleep(2.0)
    after = process.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    assert used < 0.15, f"{used:.2f} s of CPU in 2 s idle"
    assert running.thread.is_alive()


def _options(**changes: Any) -> WatchOptions:
    return replace(FAST, **changes)
