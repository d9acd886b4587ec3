"""The batch planner: holding back files still being written, and shaping the scope of a sync."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from photoembed.core.scanner import ScanRules
from photoembed.watch.debounce import Debouncer
from photoembed.watch.events import RawEvent, WatchOptions
from photoembed.watch.planner import BatchPlanner, owning_root, shape_scope


class Clocks:
    """A fake monotonic clock for the debouncer and a wall clock set relative to file times."""

    def __init__(self) -> None:
        self.mono = 0.0
        self.wall = 2_000_000_000.0

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def planner(clocks: Clocks) -> BatchPlanner:
    debouncer = Debouncer(quiet_s=1.0, max_latency_s=10.0, clock=lambda: clocks.mono)
    return BatchPlanner(
        debouncer=debouncer,
        rules=ScanRules((".thumbnails",), include_hidden=False),
        options=WatchOptions(stable_s=1.0, collapse_threshold=3, max_scope=50),
        wall_clock=lambda: clocks.wall,
    )


def _touch(path: Path, *, mtime: float, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def test_stable_files_are_synced_and_fresh_ones_held(planner: BatchPlanner, clocks: Clocks, tmp_path: Path) -> None:
    old = _touch(tmp_path / "old.jpg", mtime=clocks.wall - 5)
    fresh = _touch(tmp_path / "fresh.jpg", mtime=clocks.wall - 0.2)
    plan = planner.plan({str(old): False, str(fresh): False}, [tmp_path])
    assert plan.scope == [old]
    assert plan.held_back == 1
    # Given back to the debouncer, due when the file will be stable_s old.
    assert planner.debouncer.next_deadline() == pytest.approx(clocks.mono + 0.8)
    clocks.advance(0.8)
    again = planner.plan(planner.debouncer.take(), [tmp_path])
    assert again.scope == [fresh]
    assert again.held_back == 0


def test_a_file_still_growing_stays_held(planner: BatchPlanner, clocks: Clocks, tmp_path: Path) -> None:
    path = _touch(tmp_path / "a.jpg", mtime=clocks.wall, data=b"x" * 10)
    assert planner.plan({str(path): False}, [tmp_path]).held_back == 1
    clocks.advance(1.0)
    _touch(path, mtime=clocks.wall, data=b"x" * 20)  # written again
    assert planner.plan(planner.debouncer.take(), [tmp_path]).held_back == 1
    clocks.advance(1.0)
    assert planner.plan(planner.debouncer.take(), [tmp_path]).scope == [path]


def test_a_future_mtime_is_synced_once_unchanged_for_stable_s(
    planner: BatchPlanner, clocks: Clocks, tmp_path: Path
) -> None:
    path = _touch(tmp_path / "skewed.jpg", mtime=clocks.wall + 3600)  # a share whose clock runs ahead
    assert planner.plan({str(path): False}, [tmp_path]).held_back == 1
    clocks.advance(1.0)
    assert planner.plan(planner.debouncer.take(), [tmp_path]).scope == [path]


def test_an_open_file_is_held_even_when_its_mtime_is_old(
    planner: BatchPlanner, clocks: Clocks, tmp_path: Path
) -> None:
    path = _touch(tmp_path / "copying.jpg", mtime=clocks.wall - 10)
    planner.debouncer.add(RawEvent("modified", str(path), expects_close=True))
    assert planner.plan({str(path): False}, [tmp_path]).held_back == 1
    planner.debouncer.add(RawEvent("closed", str(path)))
    clocks.advance(1.0)
    assert planner.plan(planner.debouncer.take(), [tmp_path]).scope == [path]


def test_a_held_rename_target_keeps_its_source_with_it(
    planner: BatchPlanner, clocks: Clocks, tmp_path: Path
) -> None:
    dest = _touch(tmp_path / "b.jpg", mtime=clocks.wall)
    source = tmp_path / "a.jpg"  # renamed away: gone from disk
    planner.debouncer.add(RawEvent("moved", str(source), dest=str(dest)))
    plan = planner.plan({str(source): False, str(dest): False}, [tmp_path])
    assert plan.scope == []
    assert plan.held_back == 2
    clocks.advance(1.0)
    assert sorted(planner.plan(planner.debouncer.take(), [tmp_path]).scope) == [source, dest]


def test_deleted_paths_are_synced_at_once(planner: BatchPlanner, tmp_path: Path) -> None:
    gone = tmp_path / "gone.jpg"
    plan = planner.plan({str(gone): False, str(tmp_path / "gone folder"): True}, [tmp_path])
    assert sorted(plan.scope) == [tmp_path / "gone folder", gone]


def test_skipped_names_non_photos_and_outside_paths_are_dropped(planner: BatchPlanner, tmp_path: Path) -> None:
    root = tmp_path / "root"
    released = {
        str(root / ".a.jpg.swp"): False,
        str(root / "notes.txt"): False,
        str(root / ".thumbnails" / "t.jpg"): False,
        str(root / "sub" / ".hidden" / "x.jpg"): False,
        str(tmp_path / "elsewhere.jpg"): False,
        str(root / "album"): True,
        str(root / "a.JPG"): False,
    }
    plan = planner.plan(released, [root])
    assert sorted(plan.scope) == [root / "a.JPG", root / "album"]


def test_root_paths_are_reported_as_reconciles(planner: BatchPlanner, tmp_path: Path) -> None:
    plan = planner.plan({str(tmp_path): True}, [tmp_path])
    assert plan.reconcile_roots == [tmp_path]


def test_paths_inside_a_dirty_folder_are_covered_by_it() -> None:
    scope = shape_scope(
        ["/r/a", "/r/a/x.jpg", "/r/a/b/y.jpg", "/r/c.jpg"],
        held=set(), roots=["/r"], collapse_threshold=100, max_scope=100,
    )
    assert scope == ["/r/a", "/r/c.jpg"]


def test_many_dirty_files_in_a_folder_become_the_folder() -> None:
    files = [f"/r/import/{i}.jpg" for i in range(5)] + ["/r/other/1.jpg"]
    scope = shape_scope(files, held=set(), roots=["/r"], collapse_threshold=3, max_scope=100)
    assert scope == ["/r/import", "/r/other/1.jpg"]


def test_never_collapses_above_a_root() -> None:
    scope = shape_scope(["/r/a.jpg", "/r/b.jpg", "/s/c.jpg"], held=set(), roots=["/r", "/s"],
                        collapse_threshold=1, max_scope=1)
    assert scope == ["/r", "/s"]


def test_a_folder_holding_a_held_file_is_split_around_it(tmp_path: Path) -> None:
    folder = tmp_path / "import"
    for name in ("a.jpg", "b.jpg", "writing.jpg"):
        _touch(folder / name, mtime=0)
    _touch(folder / "sub" / "c.jpg", mtime=0)
    held = {str(folder / "writing.jpg")}
    scope = shape_scope([str(folder)], held=held, roots=[str(tmp_path)], collapse_threshold=2, max_scope=100)
    assert sorted(scope) == sorted(str(folder / n) for n in ("a.jpg", "b.jpg", "sub"))


def test_large_scopes_are_merged_up_to_max_scope() -> None:
    files = [f"/r/d{i:03d}/x.jpg" for i in range(300)] + [f"/r/big/{i}.jpg" for i in range(30)]
    # Within max_scope only dense folders merge...
    scope = shape_scope(files, held=set(), roots=["/r"], collapse_threshold=24, max_scope=400)
    assert len(scope) == 301
    assert "/r/big" in scope
    # ...beyond it, merging goes up until the scope is small enough (here: the whole root, one listing).
    assert shape_scope(files, held=set(), roots=["/r"], collapse_threshold=24, max_scope=256) == ["/r"]


def test_owning_root_prefers_the_innermost_and_respects_name_boundaries() -> None:
    roots = ["/photos/phone", "/photos"]
    assert owning_root("/photos/phone/a.jpg", roots) == "/photos/phone"
    assert owning_root("/photos/phone2/a.jpg", roots) == "/photos"
    assert owning_root("/photosx/a.jpg", roots) is None
