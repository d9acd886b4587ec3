"""One source of truth for what the library is doing: the status bar, the sidebar and the banners render it.

:class:`StatusModel` takes the facts as they happen (the library opened, a snapshot of counts, a sync's
progress, a pause, a failure with its retry delay, the watcher's folder states) and keeps one immutable
:class:`LibraryStatus`. Every view reads that value and nothing else, so two places can never disagree
("Up to date" beside "Looking for photos…", "No duplicates found" while the first scan runs).

GUI thread only.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

if TYPE_CHECKING:
    from photoembed.core.indexer import Progress
    from photoembed.gui.models import RootRow


class Activity(enum.Enum):
    """What the library is doing, one at a time."""

    OPENING = "opening"
    OPEN_FAILED = "open failed"
    NO_FOLDERS = "no folders"
    WAITING = "waiting for another writer"
    SCANNING = "scanning"
    INDEXING = "indexing"
    UPDATING = "updating the index"
    UP_TO_DATE = "up to date"
    PAUSED = "paused"
    RETRYING = "failed, retrying"


#: Activities during which the library's contents are still changing (duplicates and listings are partial).
BUSY = frozenset({Activity.OPENING, Activity.WAITING, Activity.SCANNING, Activity.INDEXING, Activity.UPDATING})


@dataclass(frozen=True)
class LibraryStatus:
    """The library's state at one moment (immutable; a new value replaces it).

    Attributes:
        activity: what runs now.
        done, total: the running step's progress (photos found while scanning; embedded of total while
            indexing).
        rate, eta_s: photos per second and seconds left while indexing.
        detail: the step's own words, the error of a failed job, or who holds the library.
        watching: whether folders are being watched for changes.
        attempt, retry_in_s: after a failure, how many failed in a row and the delay before the next try.
        offline: library folders that cannot be reached (an unplugged drive).
        snapshot_seen: whether counts were read at least once (before that, counts are unknown, not 0).
        folders, photos, failed, embedded, pending: counts of the last snapshot.
        model_name, model_missing: the embedding model, and whether its weights are missing.
        roots: per-folder rows of the last snapshot.
        held_for: a sync stopped for a task ahead of it (a download, a move to the trash), in words; it
            goes on once that task is done.
        stale_fingerprints: readable photos whose duplicate fingerprint an older version made (the live job
            makes them again; until then copies among them can be missed).
    """

    activity: Activity = Activity.OPENING
    done: int = 0
    total: int = 0
    rate: float = 0.0
    eta_s: float | None = None
    detail: str = ""
    watching: bool = False
    attempt: int = 0
    retry_in_s: float = 0.0
    offline: tuple[Path, ...] = ()
    snapshot_seen: bool = False
    folders: int = 0
    photos: int = 0
    failed: int = 0
    embedded: int = 0
    pending: int = 0
    model_name: str = ""
    model_missing: bool = False
    roots: tuple[RootRow, ...] = ()
    held_for: str = ""
    stale_fingerprints: int = 0

    @property
    def busy(self) -> bool:
        """The library's contents may still change (opening, scanning, indexing, updating, waiting)."""
        return self.activity in BUSY

    @property
    def searchable(self) -> bool:
        return self.snapshot_seen and not self.model_missing


def describe(status: LibraryStatus, *, retry_left_s: float | None = None) -> str:
    """The status bar's line for a state; ``retry_left_s``: the seconds left before a retry, if known."""
    line = _describe(status, retry_left_s)
    if status.held_for and status.activity in (Activity.SCANNING, Activity.INDEXING, Activity.UPDATING):
        line += f" · waits for {status.held_for}"
    return line


def _describe(status: LibraryStatus, retry_left_s: float | None) -> str:
    activity = status.activity
    if activity is Activity.OPENING:
        return "Opening the library…"
    if activity is Activity.OPEN_FAILED:
        return f"Cannot open the library: {status.detail}"
    if activity is Activity.NO_FOLDERS:
        return "No folders yet"
    if activity is Activity.WAITING:
        return status.detail or "Waiting for another program to finish writing the library"
    if activity is Activity.SCANNING:
        return status.detail or f"Looking for photos… {status.done:,} found"
    if activity is Activity.INDEXING:
        parts = [f"Indexing {status.done:,} / {status.total:,}"]
        if status.rate > 0:
            parts.append(f"{status.rate:.1f} photos/s")
        eta = format_eta(status.eta_s)
        if eta:
            parts.append(eta)
        if status.stale_fingerprints:
            parts.append(f"updating {status.stale_fingerprints:,} duplicate fingerprints")
        return " · ".join(parts)
    if activity is Activity.UPDATING:
        return status.detail or "Updating the search index…"
    if activity is Activity.PAUSED:
        return "Indexing paused"
    if activity is Activity.RETRYING:
        left = status.retry_in_s if retry_left_s is None else retry_left_s
        return f"Indexing failed: {status.detail} · retrying in {max(0.0, left):.0f} s"
    line = "Up to date · watching for changes" if status.watching else "Up to date"
    if status.offline:
        names = ", ".join(p.name or str(p) for p in status.offline)
        line += f" · offline: {names}"
    return line


def fingerprint_note(state: LibraryStatus) -> str:
    """The Duplicates page's line while photos keep a fingerprint an older version made ("" when none)."""
    stale = state.stale_fingerprints
    if not stale:
        return ""
    photos = f"{stale:,} photo{'s' if stale != 1 else ''}"
    if state.busy:
        return (f"Updating the duplicate fingerprints of {photos} (made by an older version of photoembed). "
                "Until that is done, copies among them may be missing from this list.")
    if state.activity in (Activity.PAUSED, Activity.RETRYING):
        return (f"{photos} still {'have' if stale != 1 else 'has'} duplicate fingerprints from an older version "
                "of photoembed; they are updated when indexing goes on. Until then, copies among them may be "
                "missing from this list.")
    return (f"{photos} kept a duplicate fingerprint from an older version of photoembed (the files changed or "
            "could not be read again). Copies among them may be missing from this list until they are indexed.")


def short_line(status: LibraryStatus) -> str:
    """The sidebar's line under its title: the count, or what runs (a short form of :func:`describe`)."""
    activity = status.activity
    if activity is Activity.SCANNING:
        return "Looking for photos…"
    if activity is Activity.INDEXING:
        return f"Indexing… {status.done:,}/{status.total:,}" if status.total else "Indexing…"
    if activity is Activity.UPDATING:
        return "Updating the index…"
    if activity is Activity.WAITING:
        return "Waiting for another writer…"
    if activity is Activity.OPENING:
        return "Opening…"
    if not status.snapshot_seen:
        return ""
    if not status.folders:
        return "No folders yet"
    plural = "s" if status.folders != 1 else ""
    return f"{status.photos:,} photos in {status.folders} folder{plural}"


def folder_activity(status: LibraryStatus, row: RootRow) -> str:
    """What a folder's row says beside its own counts: only what is true of that folder."""
    if status.activity is Activity.SCANNING:
        return "Checking…"
    if status.activity in (Activity.INDEXING, Activity.UPDATING):
        if row.pending:
            return f"{row.pending:,} to index"  # its own count, as of the last snapshot
        if not row.photos:
            return "Indexing…"  # new: not counted yet
        return ""
    if row.path in status.offline:
        return "offline"
    return ""


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:  # None or NaN
        return ""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s left"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min left"
    return f"{seconds // 3600:.0f} h {seconds % 3600 / 60:02.0f} min left"


class StatusModel(QObject):
    """Holds the one :class:`LibraryStatus`; each input replaces it, and ``changed`` carries the new value.

    Signals:
        changed(LibraryStatus): the state changed (emitted only when it differs).
    """

    changed = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._raw = LibraryStatus()
        self._state = self._raw

    @property
    def state(self) -> LibraryStatus:
        return self._state

    # -- inputs --------------------------------------------------------------------------------------

    def open_failed(self, message: str) -> None:
        self._set(activity=Activity.OPEN_FAILED, detail=message)

    def opened(self) -> None:
        """The library is open: it stays "opening" (not "up to date": nothing was checked yet) until the live
        job starts, or a snapshot shows that there is no folder to check."""
        self._set(activity=Activity.OPENING, detail="")

    def snapshot(self, *, roots: tuple[RootRow, ...], photos: int, failed: int, embedded: int, pending: int,
                 model_name: str, model_missing: bool, stale_fingerprints: int = 0) -> None:
        self._set(snapshot_seen=True, roots=roots, folders=len(roots), photos=photos, failed=failed,
                  embedded=embedded, pending=pending, model_name=model_name, model_missing=model_missing,
                  stale_fingerprints=stale_fingerprints)

    def live_started(self) -> None:
        """A sync (or the watcher's first sync) starts: it scans first."""
        self._set(activity=Activity.SCANNING, done=0, total=0, detail="", retry_in_s=0.0, held_for="")

    def progress(self, progress: Progress) -> None:
        phase = progress.phase
        if phase == "scan":
            self._set(activity=Activity.SCANNING, done=progress.done, total=progress.total, detail=progress.message)
        elif phase == "index":
            self._set(activity=Activity.INDEXING, done=progress.done, total=progress.total, rate=progress.rate,
                      eta_s=progress.eta_s, detail="")
        elif phase == "done":
            # A sync that ends well ends a run of failures too.
            self._set(activity=Activity.UP_TO_DATE, done=0, total=0, rate=0.0, eta_s=None, detail="",
                      attempt=0, retry_in_s=0.0)
        else:  # "finish" and any later phase: the index is being brought up to date
            self._set(activity=Activity.UPDATING, detail=progress.message)

    def waiting_for_writer(self, message: str) -> None:
        self._set(activity=Activity.WAITING, detail=message)

    def watching(self, watching: bool) -> None:
        self._set(watching=watching)

    def watch_states(self, states: Mapping[Path, str]) -> None:
        self._set(offline=tuple(sorted(p for p, mode in states.items() if mode == "offline")))

    def paused(self) -> None:
        self._set(activity=Activity.PAUSED, watching=False, detail="")

    def live_failed(self, message: str, *, attempt: int, retry_in_s: float) -> None:
        self._set(activity=Activity.RETRYING, detail=message, attempt=attempt, retry_in_s=retry_in_s,
                  watching=False)

    def live_stopped(self, *, held_for: str = "") -> None:
        """The live job ended without being paused or failing: a one-off sync, or stopped for a task ahead
        of it (``held_for``, in words), after which it starts again."""
        if self._raw.activity in BUSY and self._raw.activity is not Activity.OPENING:
            self._set(held_for=held_for)  # a sync stopped half-way: still running, in words what it waits for
            return
        self._set(watching=False)

    # -- the published value -------------------------------------------------------------------------

    def _set(self, **changes: object) -> None:
        self._raw = dataclasses.replace(self._raw, **changes)  # type: ignore[arg-type]
        state = self._raw
        if (state.snapshot_seen and not state.folders
                and state.activity in (Activity.OPENING, Activity.UP_TO_DATE, Activity.SCANNING, Activity.UPDATING)):
            # Nothing to scan or to be up to date with: the views say how to start instead.
            state = dataclasses.replace(state, activity=Activity.NO_FOLDERS, watching=False)
        if state != self._state:
            self._state = state
            self.changed.emit(state)
