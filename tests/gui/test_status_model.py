"""The library's one state: each fact replaces it, and every line the views show is read from it."""

from __future__ import annotations

from pathlib import Path

from photoembed.core.indexer import Progress
from photoembed.gui.models import RootRow
from photoembed.gui.status_model import (
    Activity,
    LibraryStatus,
    StatusModel,
    describe,
    fingerprint_note,
    folder_activity,
    short_line,
)

HOLIDAY = RootRow(1, Path("/photos/holiday"), False, photos=40, failed=2, pending=10)
WORK = RootRow(2, Path("/photos/work"), False, photos=25, failed=0, pending=0)


def recorded(model: StatusModel) -> list[LibraryStatus]:
    seen: list[LibraryStatus] = []
    model.changed.connect(seen.append)
    return seen


def snapshot(model: StatusModel, roots: tuple[RootRow, ...] = (HOLIDAY, WORK), *, missing: bool = False) -> None:
    model.snapshot(roots=roots, photos=sum(r.photos for r in roots), failed=sum(r.failed for r in roots),
                   embedded=55, pending=10, model_name="ViT-B-32/x", model_missing=missing)


def test_a_sync_goes_from_opening_through_scanning_indexing_and_updating_to_up_to_date() -> None:
    model = StatusModel()
    seen = recorded(model)
    assert model.state.activity is Activity.OPENING
    assert describe(model.state) == "Opening the library…"
    model.opened()
    snapshot(model)
    model.live_started()
    model.watching(True)
    assert model.state.activity is Activity.SCANNING
    model.progress(Progress("scan", 30, 0, message="Looking for photos… 30 found"))
    assert describe(model.state) == "Looking for photos… 30 found"
    assert short_line(model.state) == "Looking for photos…"
    model.progress(Progress("index", 4, 10, rate=2.0, eta_s=3.0))
    assert model.state.busy
    assert describe(model.state) == "Indexing 4 / 10 · 2.0 photos/s · 3 s left"
    assert short_line(model.state) == "Indexing… 4/10"
    model.progress(Progress("finish", 0, 1, message="Updating the search index…"))
    assert model.state.activity is Activity.UPDATING
    model.progress(Progress("done", 1, 1, message="10 added"))
    assert model.state.activity is Activity.UP_TO_DATE
    assert not model.state.busy
    assert describe(model.state) == "Up to date · watching for changes"
    assert short_line(model.state) == "65 photos in 2 folders"
    activities = [s.activity for i, s in enumerate(seen) if i == 0 or s.activity is not seen[i - 1].activity]
    # Never "up to date" before the first sync has checked the folders.
    assert activities == [Activity.OPENING, Activity.SCANNING, Activity.INDEXING, Activity.UPDATING,
                          Activity.UP_TO_DATE]


def test_the_same_fact_twice_is_not_a_change() -> None:
    model = StatusModel()
    model.opened()
    snapshot(model)
    seen = recorded(model)
    snapshot(model)
    model.watching(False)
    assert seen == []


def test_each_folder_says_only_what_is_true_of_it() -> None:
    model = StatusModel()
    model.opened()
    snapshot(model)
    model.live_started()
    assert [folder_activity(model.state, r) for r in (HOLIDAY, WORK)] == ["Checking…", "Checking…"]
    model.progress(Progress("index", 2, 10))
    # The folder with photos to index says how many are its own; the other one is not said to be indexing.
    assert [folder_activity(model.state, r) for r in (HOLIDAY, WORK)] == ["10 to index", ""]
    new = RootRow(3, Path("/photos/new"), False)
    assert folder_activity(model.state, new) == "Indexing…"
    model.progress(Progress("done", 1, 1))
    assert [folder_activity(model.state, r) for r in (HOLIDAY, WORK)] == ["", ""]


def test_no_folders_is_never_up_to_date_nor_scanning() -> None:
    model = StatusModel()
    model.opened()
    snapshot(model, ())
    assert model.state.activity is Activity.NO_FOLDERS
    model.live_started()
    assert model.state.activity is Activity.NO_FOLDERS
    assert short_line(model.state) == "No folders yet"
    snapshot(model)  # a folder was added
    assert model.state.activity is Activity.SCANNING


def test_a_failure_says_when_it_retries_and_a_good_sync_ends_the_run_of_failures() -> None:
    model = StatusModel()
    model.opened()
    snapshot(model)
    model.live_started()
    model.live_failed("Internal error: OSError: boom", attempt=3, retry_in_s=8.0)
    state = model.state
    assert state.activity is Activity.RETRYING
    assert not state.busy
    assert describe(state) == "Indexing failed: Internal error: OSError: boom · retrying in 8 s"
    assert describe(state, retry_left_s=2.4) == "Indexing failed: Internal error: OSError: boom · retrying in 2 s"
    model.live_started()  # the retry
    assert model.state.attempt == 3  # still counted until a sync succeeds
    model.progress(Progress("done", 1, 1))
    assert model.state.attempt == 0
    assert model.state.activity is Activity.UP_TO_DATE


def test_paused_waiting_offline_and_model_missing() -> None:
    model = StatusModel()
    model.opened()
    snapshot(model, missing=True)
    assert model.state.model_missing
    assert not model.state.searchable
    model.live_started()
    model.waiting_for_writer("The library is being written by `photoembed index`")
    assert model.state.activity is Activity.WAITING
    assert describe(model.state) == "The library is being written by `photoembed index`"
    model.paused()
    assert describe(model.state) == "Indexing paused"
    model.live_started()
    model.watching(True)
    model.progress(Progress("done", 1, 1))
    model.watch_states({WORK.path: "offline", HOLIDAY.path: "watching"})
    assert model.state.offline == (WORK.path,)
    assert describe(model.state) == "Up to date · watching for changes · offline: work"
    assert folder_activity(model.state, WORK) == "offline"
    model.live_stopped()  # the watcher ended (quit): nothing is watched any more
    assert not model.state.watching


def test_a_preempted_sync_keeps_saying_it_runs() -> None:
    model = StatusModel()
    model.opened()
    snapshot(model)
    model.live_started()
    model.progress(Progress("index", 3, 10))
    model.live_stopped(held_for="the model download")  # stopped for a task ahead of it; it goes on after
    assert model.state.activity is Activity.INDEXING
    assert describe(model.state) == "Indexing 3 / 10 · waits for the model download"
    model.live_started()  # it goes on
    assert describe(model.state) == "Looking for photos… 0 found"


def test_open_failure() -> None:
    model = StatusModel()
    model.open_failed("Permission denied")
    assert describe(model.state) == "Cannot open the library: Permission denied"


def test_old_fingerprints_are_said_while_they_are_updated_and_while_they_wait() -> None:
    model = StatusModel()
    model.opened()
    model.snapshot(roots=(WORK,), photos=10, failed=0, embedded=0, pending=0, model_name="m", model_missing=True,
                   stale_fingerprints=1200)
    model.live_started()
    model.progress(Progress("index", 30, 1200))
    assert describe(model.state) == "Indexing 30 / 1,200 · updating 1,200 duplicate fingerprints"
    assert fingerprint_note(model.state).startswith("Updating the duplicate fingerprints of 1,200 photos")
    model.paused()
    assert fingerprint_note(model.state).startswith("1,200 photos still have duplicate fingerprints from an older")
    model.live_started()
    model.progress(Progress("done", 1, 1))
    model.snapshot(roots=(WORK,), photos=10, failed=0, embedded=0, pending=0, model_name="m", model_missing=True,
                   stale_fingerprints=1)
    assert fingerprint_note(model.state).startswith("1 photo kept a duplicate fingerprint from an older version")
    model.snapshot(roots=(WORK,), photos=10, failed=0, embedded=0, pending=0, model_name="m", model_missing=True)
    assert fingerprint_note(model.state) == ""
    assert describe(model.state) == "Up to date"
