"""Plain records of the watch subsystem: raw file-system events in, watch events and root states out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

RawKind = Literal["created", "modified", "attrib", "closed", "deleted", "moved"]
WatchMode = Literal["starting", "native", "polling", "offline", "error"]
WatchEventKind = Literal["indexed", "root", "error"]


@dataclass(frozen=True)
class RawEvent:
    """One file-system event as an observer reported it, before debouncing.

    Attributes:
        kind: what happened (events lost to a queue overflow are not events: the root is reconciled).
        path: the file or folder (for "moved", where it was).
        dest: for "moved", where it went.
        is_dir: whether the path is a folder.
        expects_close: the source reports close-after-write (inotify), so a "modified" file stays open for
            writing until its "closed" event.
    """

    kind: RawKind
    path: str
    dest: str = ""
    is_dir: bool = False
    expects_close: bool = False


@dataclass(frozen=True)
class RootState:
    """How one library folder is being watched.

    Attributes:
        path: the root folder.
        mode: "native" (OS events), "polling" (periodic listing), "offline" (folder not reachable; its
            photos are kept), "error" (could not be watched; ``reason`` says why), "starting".
        reason: why this mode (polling fallback, error), empty otherwise.
        since: wall-clock time (``time.time()``) the root entered this mode.
    """

    path: Path
    mode: WatchMode
    reason: str = ""
    since: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {"path": str(self.path), "mode": self.mode, "reason": self.reason, "since": self.since}


@dataclass(frozen=True)
class WatchEvent:
    """What the watch service did, one record per change batch or root state change.

    Attributes:
        kind: "indexed" (a change batch was synced), "root" (a root changed mode), "error" (a batch failed
            for an environment reason and will be retried).
        message: one line for a log or a status bar.
        root: for "root" events, the root folder.
        mode: for "root" events, its new mode.
        reconcile: the batch was a full reconcile (start-up, on demand, after overflow or a restart).
        scope: how many files and folders the batch synced.
        paths: those files and folders (None for the start-up reconcile of every root).
        held_back: files still being written, left for a later batch.
        added, updated, moved, removed, embedded, failed: what the sync changed (see SyncReport).
        duration_s: how long the sync took.
    """

    kind: WatchEventKind
    message: str
    root: Path | None = None
    mode: WatchMode | None = None
    reconcile: bool = False
    scope: int = 0
    paths: tuple[Path, ...] | None = None
    held_back: int = 0
    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    embedded: int = 0
    failed: int = 0
    duration_s: float = 0.0

    @property
    def changed(self) -> bool:
        """Whether the batch changed the catalog."""
        return bool(self.added or self.updated or self.moved or self.removed or self.embedded or self.failed)

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "message": self.message,
            "root": str(self.root) if self.root is not None else None,
            "mode": self.mode,
            "reconcile": self.reconcile,
            "scope": self.scope,
            "paths": None if self.paths is None else [str(p) for p in self.paths],
            "held_back": self.held_back,
            "added": self.added,
            "updated": self.updated,
            "moved": self.moved,
            "removed": self.removed,
            "embedded": self.embedded,
            "failed": self.failed,
            "duration_s": round(self.duration_s, 3),
        }


@dataclass(frozen=True)
class WatchOptions:
    """Timings and limits of the watch service (the defaults suit a desktop library).

    Attributes:
        quiet_s: a batch is synced once no event came for this long... (keep it above watchdog's 0.5 s wait
            for the other half of a move, or a move between two roots arrives in two batches)
        max_latency_s: ...or once its first event is this old, so a long import is synced in a few big
            batches rather than one at the very end.
        stable_s: a file is ingested only when its size and modification time have not changed for this
            long (a half-written file is held back until then).
        open_write_timeout_s: where the OS reports close-after-write, a file written to and not yet closed
            is held back, but not longer than this after its last write (some programs keep files open).
        health_interval_s: how often roots are checked (unplugged, back, observer died, roots added).
        heartbeat_s: how often the state file is rewritten while idle.
        poll_interval_s: listing interval of roots watched by polling.
        collapse_threshold: this many dirty files in one folder are synced as that folder (one listing
            instead of many look-ups).
        max_scope: above this many paths, dirty paths are merged into their parent folders (each path of a
            scoped sync costs the indexer a catalog look-up; one folder listing is often cheaper).
        retry_s: a batch that failed for an environment reason is retried after this long.
        queue_size: raw events kept at most between two wake-ups; beyond, the root is reconciled instead.
    """

    quiet_s: float = 1.5
    max_latency_s: float = 15.0
    stable_s: float = 1.0
    open_write_timeout_s: float = 60.0
    health_interval_s: float = 5.0
    heartbeat_s: float = 30.0
    poll_interval_s: float = 5.0
    collapse_threshold: int = 24
    max_scope: int = 64
    retry_s: float = 30.0
    queue_size: int = 200_000
