"""Turn bursts of raw file-system events into sets of dirty paths, once things are quiet.

A camera import writes thousands of files, each in many chunks; an editor saves to a temporary file and
renames it over the original; a folder move reports every file in it. None of that should cost one sync per
event. The debouncer only remembers *which paths* changed (a path's hundred writes are one entry) and
releases them together once no event came for ``quiet_s``, or once the oldest is ``max_latency_s`` old during
a storm that never pauses.

Thread contract: not thread-safe; the watch service's thread owns it (observer threads only fill a queue).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

from photoembed.watch.events import RawEvent

Clock = Callable[[], float]


class Debouncer:
    """Collects dirty paths and says when to sync them.

    Args:
        quiet_s: release once no event came for this long.
        max_latency_s: release anyway once the oldest pending event is this old.
        open_write_timeout_s: a file reported written and not yet closed counts as still being written for
            at most this long after its last write.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        *,
        quiet_s: float,
        max_latency_s: float,
        open_write_timeout_s: float = 60.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.quiet_s = quiet_s
        self.max_latency_s = max(max_latency_s, quiet_s)
        self.open_write_timeout_s = open_write_timeout_s
        self.clock = clock
        self._dirty: dict[str, bool] = {}  # path -> is a folder
        self._first: float | None = None
        self._last: float | None = None
        self._held: dict[str, tuple[float, bool]] = {}  # path -> (when to look at it again, is a folder)
        self._open: dict[str, float] = {}  # file written and not closed yet -> time of its last write
        self._moved_from: dict[str, str] = {}  # dest -> src of renames in flight, so both sync together
        self.events_seen = 0

    # -- input ----------------------------------------------------------------------------------------

    def add(self, event: RawEvent) -> None:
        """Record one raw event."""
        now = self.clock()
        self.events_seen += 1
        if event.kind == "closed":
            self._open.pop(event.path, None)
            # A close is the end of a write, so it also counts as activity on the file.
            self._mark(event.path, now, is_dir=False)
            return
        if event.kind == "moved":
            self._mark(event.path, now, is_dir=event.is_dir)
            if event.dest:
                self._mark(event.dest, now, is_dir=event.is_dir)
                self._moved_from[event.dest] = event.path
                if event.path in self._open:
                    self._open[event.dest] = self._open.pop(event.path)
            return
        if event.kind == "deleted":
            self._open.pop(event.path, None)
        elif event.kind == "modified" and event.expects_close and not event.is_dir:
            self._open[event.path] = now
        self._mark(event.path, now, is_dir=event.is_dir)

    def request(self, paths: Iterable[str], *, is_dir: bool = True) -> None:
        """Mark paths dirty without an event (a reconcile, a retry); released like events are."""
        now = self.clock()
        for path in paths:
            self._mark(path, now, is_dir=is_dir)

    def hold(self, paths: dict[str, bool], *, delay_s: float) -> None:
        """Give paths (path -> is a folder) back, to be released again in ``delay_s``."""
        due = self.clock() + max(delay_s, 0.05)
        for path, is_dir in paths.items():
            previous = self._held.get(path)
            self._held[path] = (min(due, previous[0]) if previous else due, is_dir)

    def _mark(self, path: str, now: float, *, is_dir: bool) -> None:
        self._dirty[path] = self._dirty.get(path, False) or is_dir
        self._held.pop(path, None)  # a fresh event supersedes the hold: it is released with its batch
        if self._first is None:
            self._first = now
        self._last = now

    # -- output ---------------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Dirty paths not released yet (including held ones)."""
        return len(self._dirty) + len(self._held)

    def next_deadline(self) -> float | None:
        """The clock time at which :meth:`take` will next have something, or None when nothing is pending."""
        deadlines = []
        if self._dirty and self._first is not None and self._last is not None:
            deadlines.append(min(self._last + self.quiet_s, self._first + self.max_latency_s))
        if self._held:
            deadlines.append(min(due for due, _ in self._held.values()))
        return min(deadlines) if deadlines else None

    def due(self) -> bool:
        deadline = self.next_deadline()
        return deadline is not None and self.clock() >= deadline

    def take(self) -> dict[str, bool]:
        """Release what is due (path -> is a folder): every dirty path once quiet (or when the oldest is too
        old), plus held paths whose time came."""
        now = self.clock()
        released: dict[str, bool] = {}
        if (
            self._dirty
            and self._first is not None
            and self._last is not None
            and (now - self._last >= self.quiet_s or now - self._first >= self.max_latency_s)
        ):
            released = self._dirty
            self._dirty = {}
            self._first = self._last = None
        for path, (due, is_dir) in list(self._held.items()):
            if due <= now:
                released[path] = released.get(path, False) or is_dir
                del self._held[path]
        return released

    def is_writing(self, path: str) -> bool:
        """Whether the OS said the file was written and has not said it was closed (within the timeout)."""
        last = self._open.get(path)
        if last is None:
            return False
        if self.clock() - last >= self.open_write_timeout_s:
            del self._open[path]
            return False
        return True

    def moved_from(self, dest: str) -> str | None:
        """Where a file now at ``dest`` was renamed from, if a pending rename says so."""
        return self._moved_from.get(dest)

    def forget_moves(self, paths: Iterable[str]) -> None:
        """Drop the rename pairs whose destination was synced."""
        for path in paths:
            self._moved_from.pop(path, None)
        # Renames of folders leave pairs for paths that were synced through their folder: keep the map small.
        if len(self._moved_from) > 10_000:
            self._moved_from.clear()


def under(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or inside it (plain string test, no file-system access)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
