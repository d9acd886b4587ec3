"""The watch service: keeps the catalog true to the disk while the app (or ``photoembed watch``) runs.

:meth:`WatchService.run` is a generator for the thread that owns the model (the GUI's worker thread, or
the CLI's main thread). It starts one observer per root, reconciles every root once (watchers miss events,
and nothing was watched while the app was closed), then waits on the event queue: bursts are debounced,
files still being written are held back, and each batch of dirty paths becomes one scoped
:meth:`Indexer.sync`, whose progress records are passed on, followed by a :class:`WatchEvent` summing up
what it changed. Idle, it sleeps in ``queue.get(timeout=...)``: no busy loop.

Roots are checked every few seconds: an unplugged root becomes "offline" (its photos are kept, as the
indexer does for a missing root) and is reconciled when it comes back; a dead observer, an inotify
overflow or a root replaced by another folder of the same name triggers a restart and a reconcile; roots
added to or removed from the library while watching are picked up.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from photoembed.config import Settings
from photoembed.core.indexer import Progress, SyncReport
from photoembed.core.scanner import ScanRules
from photoembed.errors import Cancelled, KnownError
from photoembed.storage.catalog import Catalog
from photoembed.watch.debounce import Debouncer
from photoembed.watch.events import RawEvent, RootState, WatchEvent, WatchOptions
from photoembed.watch.observers import (
    EventSink,
    ObserverFactory,
    OverflowHook,
    RootWatcher,
    native_observer,
    polling_observer,
)
from photoembed.watch.planner import BatchPlanner, Plan
from photoembed.watch.state import (
    HasDataDir,
    current_process_started,
    read_watch_state_file,
    remove_watch_state,
    state_path,
    write_watch_state,
)

logger = logging.getLogger(__name__)

ERROR_RETRY_HEALTH_CHECKS = 12  # a root that could not be watched at all is retried every ~minute
OFFLINE_CHECK_S = 1.0  # how often an offline root is looked for
MAX_RETRY_S = 1800.0  # a sync that keeps failing is retried at most this far apart (doubling from retry_s)


class SyncingIndexer(Protocol):
    """What the service needs of :class:`photoembed.core.indexer.Indexer`."""

    report: SyncReport

    def sync(
        self, *, paths: Iterable[Path] | None = None, cancel: threading.Event | None = None
    ) -> Iterator[Progress]: ...


class WatchableLibrary(Protocol):
    """What :meth:`WatchService.for_library` needs of :class:`photoembed.library.Library`."""

    @property
    def catalog(self) -> Catalog: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def paths(self) -> HasDataDir: ...

    def indexer(self) -> Any: ...


class WatchService:
    """Watches every root of a library and syncs what changes.

    Args:
        catalog: the library's catalog (roots are read from it at each health check).
        indexer_factory: builds the Indexer, called once on the thread that runs :meth:`run` (the model,
            if any, loads there and stays there).
        settings: the scanner's skip rules apply to events too.
        options: timings and limits.
        state_file: where to publish the watcher's state for other processes (None: nowhere).
        native_factory, polling_factory: observer constructors (injectable for tests).
        force_polling: poll every root.
        clock: monotonic seconds; wall_clock: seconds since the epoch (injectable for tests).

    Thread contract: :meth:`run` on one thread; :meth:`reconcile`, :meth:`root_states` and :meth:`stop` from
    any thread.
    """

    def __init__(
        self,
        *,
        catalog: Catalog,
        indexer_factory: Callable[[], SyncingIndexer],
        settings: Settings,
        options: WatchOptions | None = None,
        state_file: Path | None = None,
        native_factory: ObserverFactory = native_observer,
        polling_factory: ObserverFactory | None = None,
        force_polling: bool = False,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.catalog = catalog
        self.indexer_factory = indexer_factory
        self.options = options or WatchOptions()
        self.state_file = state_file
        self.native_factory = native_factory
        self.polling_factory = polling_factory or polling_observer(self.options.poll_interval_s)
        self.force_polling = force_polling
        self.clock = clock
        self.wall_clock = wall_clock
        self.sink = EventSink(self.options.queue_size)
        self.debouncer = Debouncer(
            quiet_s=self.options.quiet_s,
            max_latency_s=self.options.max_latency_s,
            open_write_timeout_s=self.options.open_write_timeout_s,
            clock=clock,
        )
        self.planner = BatchPlanner(
            debouncer=self.debouncer,
            rules=ScanRules(tuple(settings.excluded_patterns), settings.include_hidden),
            options=self.options,
            wall_clock=wall_clock,
        )
        self._watchers: dict[Path, RootWatcher] = {}
        self._error_retry: dict[Path, int] = {}
        self._lock = threading.Lock()
        self._states: dict[Path, RootState] = {}
        self._reconcile_requests: set[Path] = set()
        self._reconcile_all = False
        self._overflowed = threading.Event()  # set by watchdog's thread, read by the service thread
        self._reconciling: set[str] = set()  # roots whose full sync was asked for and not yet done
        self._cancel = threading.Event()
        self._started_at = wall_clock()
        self._process_started = current_process_started()
        self._last_batch: WatchEvent | None = None
        self._batches = 0
        self._failures = 0  # syncs failed in a row (exponential backoff; reset by a sync that succeeds)
        self._retry: dict[str, Any] | None = None
        self.held_back_total = 0  # files held back because they were being written (status and tests)
        self._next_health = 0.0
        self._next_heartbeat = 0.0

    @classmethod
    def for_library(cls, library: WatchableLibrary, **kwargs: Any) -> WatchService:
        """A service over a :class:`photoembed.library.Library`, publishing its state in the library's data."""
        kwargs.setdefault("state_file", state_path(library.paths))
        return cls(catalog=library.catalog, indexer_factory=library.indexer, settings=library.settings, **kwargs)

    # -- any thread -----------------------------------------------------------------------------------

    def root_states(self) -> list[RootState]:
        """How each root is watched right now (any thread)."""
        with self._lock:
            return sorted(self._states.values(), key=lambda s: str(s.path))

    def reconcile(self, roots: Iterable[Path] | None = None) -> None:
        """Ask for a full sync of some roots (default: all) at the next quiet moment (any thread)."""
        with self._lock:
            if roots is None:
                self._reconcile_all = True
            else:
                self._reconcile_requests.update(Path(r).resolve() for r in roots)
        self.sink.wake()

    def stop(self) -> None:
        """Make :meth:`run` return at its next step (any thread); the sync in flight stops at its next photo."""
        self._cancel.set()
        self.sink.wake()

    # -- the service thread ---------------------------------------------------------------------------

    def run(self, cancel: threading.Event | None = None) -> Iterator[WatchEvent | Progress]:
        """Watch until ``cancel`` is set (or :meth:`stop` is called), yielding progress and watch events.

        The first sync is a full reconcile of every reachable root. Returns when cancelled, leaving the
        catalog consistent (a sync stopped mid-way keeps its committed batches; the next start reconciles).
        """
        self._cancel = cancel if cancel is not None else threading.Event()
        self._warn_if_another_watcher()
        indexer = self.indexer_factory()
        hook = OverflowHook(self._on_overflow)
        hook.attach()
        try:
            # Watch first, then reconcile: a change made during the first sync is caught by the watcher.
            yield from self._check_roots(initial=True)
            yield from self._sync(indexer, self._full_scope(), reconcile=True)
            while not self._cancel.is_set():
                self._wait()
                if self._cancel.is_set():
                    break
                self._collect_requests()
                if self.clock() >= self._next_health:
                    yield from self._check_roots(initial=False)
                if self.debouncer.due():
                    plan = self.planner.plan(self.debouncer.take(), self._online_roots())
                    self.held_back_total += plan.held_back
                    reconciled = {str(p) for p in plan.reconcile_roots} & self._reconciling
                    self._reconciling -= reconciled
                    if plan.scope:
                        yield from self._sync(indexer, plan.scope, reconcile=bool(reconciled), plan=plan)
                if self.clock() >= self._next_heartbeat:
                    self._publish()
        except Cancelled:
            logger.info("Watching stopped during a sync; the next start reconciles the library")
        finally:
            hook.detach()
            for watcher in self._watchers.values():
                watcher.stop()
            self._watchers.clear()
            if self.state_file is not None:
                remove_watch_state(self.state_file, pid=os.getpid())

    def _wait(self) -> None:
        """Sleep on the queue until an event, the next deadline, or at most a second (to see ``cancel``)."""
        now = self.clock()
        deadlines = [self._next_health, self._next_heartbeat]
        debounce_deadline = self.debouncer.next_deadline()
        if debounce_deadline is not None:
            deadlines.append(debounce_deadline)
        timeout = min(max(min(deadlines) - now, 0.0), 1.0)
        first = self.sink.get(timeout)
        events = [first] if first is not None else []
        events += self.sink.drain()
        self._absorb(events)

    def _absorb(self, events: list[RawEvent]) -> None:
        roots = {str(path) for path in self._watchers}
        for event in events:
            if event.path in roots and event.kind in ("deleted", "moved"):
                self._next_health = 0.0  # the root itself went away: look at it now, not in a few seconds
            self.debouncer.add(event)

    def _collect_requests(self) -> None:
        lost = self.sink.take_lost()
        with self._lock:
            requested = {str(p) for p in self._reconcile_requests}
            self._reconcile_requests.clear()
            reconcile_all, self._reconcile_all = self._reconcile_all, False
        if reconcile_all:
            requested.update(str(p) for p in self._watchers)
        if self._overflowed.is_set():
            self._overflowed.clear()
            lost.update(str(p) for p, w in self._watchers.items() if w.mode == "native")
        if lost:
            logger.warning("File-system events were lost under %s; reconciling", ", ".join(sorted(lost)))
        if lost or requested:
            self._request_reconcile(lost | requested)

    def _request_reconcile(self, roots: Iterable[str]) -> None:
        roots = set(roots)
        self._reconciling |= roots
        self.debouncer.request(roots)

    def _on_overflow(self) -> None:
        """Any thread (watchdog's): the kernel dropped events; every natively watched root is reconciled."""
        self._overflowed.set()
        self.sink.wake()

    # -- roots ----------------------------------------------------------------------------------------

    def _check_roots(self, *, initial: bool) -> Iterator[WatchEvent]:
        """Start, stop and restart watchers to match the library's roots and their reachability."""
        self._next_health = self.clock() + self.options.health_interval_s
        roots = {root.path: root for root in self.catalog.roots()}
        changed = False
        for path in list(self._watchers):
            if path not in roots:
                self._watchers.pop(path).stop()
                with self._lock:
                    self._states.pop(path, None)
                changed = True
        for path in sorted(roots):
            watcher = self._watchers.get(path)
            before = watcher.state if watcher is not None else None
            reconcile = False
            if watcher is None:
                watcher = RootWatcher(
                    path,
                    sink=self.sink,
                    native_factory=self.native_factory,
                    polling_factory=self.polling_factory,
                    force_polling=self.force_polling,
                    clock=self.wall_clock,
                )
                self._watchers[path] = watcher
                watcher.start()
                reconcile = not initial  # a root added while watching: index it
            elif watcher.mode == "offline":
                if watcher.present():
                    watcher.start()
                    reconcile = True
            elif watcher.mode == "error":
                count = self._error_retry.get(path, 0) + 1
                self._error_retry[path] = count
                if count % ERROR_RETRY_HEALTH_CHECKS == 0:
                    watcher.start()
                    reconcile = True
            elif not watcher.present():
                watcher.mark_offline()
            elif not watcher.healthy():
                logger.info("The watcher of %s stopped or its folder was replaced; restarting it", path)
                watcher.start()
                reconcile = True
            if reconcile and watcher.mode in ("native", "polling"):
                self._request_reconcile([str(path)])
            if watcher.state != before:
                changed = True
                with self._lock:
                    self._states[path] = watcher.state
                yield self._root_event(watcher.state)
        if any(w.mode == "offline" for w in self._watchers.values()):
            # Cheap (a stat per root) and a plugged-back drive is picked up within a second.
            self._next_health = min(self._next_health, self.clock() + OFFLINE_CHECK_S)
        if changed or initial:
            self._publish()

    def _root_event(self, state: RootState) -> WatchEvent:
        text = {
            "native": "watching",
            "polling": "watching by polling",
            "offline": "offline (photos kept until it is back)",
            "error": "cannot be watched",
            "starting": "starting",
        }[state.mode]
        message = f"{state.path}: {text}" + (f" — {state.reason}" if state.reason else "")
        return WatchEvent("root", message, root=state.path, mode=state.mode)

    def _online_roots(self) -> list[Path]:
        return [path for path, w in self._watchers.items() if w.mode in ("native", "polling")]

    def _full_scope(self) -> list[Path] | None:
        """Every root, or only the reachable ones when a root is offline in a way the indexer cannot see
        (an unplugged drive's mount folder left behind looks like an empty folder to it)."""
        offline_but_present = any(w.mode == "offline" and w.root.is_dir() for w in self._watchers.values())
        if not offline_but_present:
            return None
        return [path for path, w in self._watchers.items() if w.mode != "offline"]

    # -- syncing --------------------------------------------------------------------------------------

    def _sync(
        self,
        indexer: SyncingIndexer,
        scope: list[Path] | None,
        *,
        reconcile: bool,
        plan: Plan | None = None,
    ) -> Iterator[WatchEvent | Progress]:
        if scope is not None and not scope:
            return
        started = self.clock()
        try:
            yield from indexer.sync(paths=scope, cancel=self._cancel)
        except Cancelled:
            raise
        except Exception as exc:  # a failed sync is retried later, never the end of watching
            # The environment (disk full, catalog locked by another writer...) or a bug: keep the paths and
            # try again, waiting twice as long after each failure in a row so a repeating one cannot spin.
            expected = isinstance(exc, (KnownError, sqlite3.OperationalError, OSError))
            self._failures += 1
            delay = min(self.options.retry_s * 2 ** (self._failures - 1), MAX_RETRY_S)
            paths = len(scope or self._watchers)
            if expected:
                logger.warning("Could not sync %d changed paths (failure %d in a row), retrying in %.0f s: %s",
                               paths, self._failures, delay, exc)
            else:
                logger.exception("Unexpected error while syncing %d changed paths (failure %d in a row); "
                                 "retrying in %.0f s", paths, self._failures, delay)
            retry = [str(p) for p in (scope if scope is not None else self._online_roots())]
            self.debouncer.hold(dict.fromkeys(retry, True), delay_s=delay)
            reason = str(exc) if expected else f"internal error: {type(exc).__name__}: {exc}"
            self._retry = {
                "failures": self._failures,
                "delay_s": delay,
                "at": self.wall_clock() + delay,
                "reason": reason,
            }
            event = WatchEvent("error", f"Could not sync the changes ({reason}); retrying in {delay:.0f} s "
                               f"(failure {self._failures} in a row)", scope=len(retry))
            self._last_batch = event
            self._publish()
            yield event
            return
        self._failures = 0
        self._retry = None
        report = indexer.report
        event = WatchEvent(
            "indexed",
            _describe(report, reconcile=reconcile),
            reconcile=reconcile,
            scope=len(scope) if scope is not None else len(self._watchers),
            paths=tuple(scope) if scope is not None else None,
            held_back=plan.held_back if plan is not None else 0,
            added=report.added,
            updated=report.updated,
            moved=report.moved,
            removed=report.removed,
            embedded=report.embedded,
            failed=report.failed,
            duration_s=self.clock() - started,
        )
        # Incremental duplicate clustering belongs here, once photoembed.dedup offers a hook for it: hand it
        # the photos this batch added or changed so a new burst shows up as a new cluster without a full
        # re-clustering (the dedup service is not written yet, so nothing is called).
        self._last_batch = event
        self._batches += 1
        self._publish()
        yield event

    # -- state file -----------------------------------------------------------------------------------

    def _publish(self) -> None:
        self._next_heartbeat = self.clock() + self.options.heartbeat_s
        if self.state_file is None:
            return
        write_watch_state(
            self.state_file,
            {
                "pid": os.getpid(),
                "process_started": self._process_started,
                "started": self._started_at,
                "heartbeat": self.wall_clock(),
                "heartbeat_s": self.options.heartbeat_s,
                "roots": [state.to_json() for state in self.root_states()],
                "pending": self.debouncer.pending,
                "batches": self._batches,
                "held_back_total": self.held_back_total,
                "last_batch": self._last_batch.to_json() if self._last_batch is not None else None,
                "retry": self._retry,
            },
        )

    def _warn_if_another_watcher(self) -> None:
        if self.state_file is None:
            return
        other = read_watch_state_file(self.state_file)
        if other is not None and other.get("pid") != os.getpid():
            logger.warning("Another photoembed watcher (pid %s) already watches this library", other.get("pid"))


def _describe(report: SyncReport, *, reconcile: bool) -> str:
    parts = []
    for count, label in (
        (report.added, "added"),
        (report.updated, "updated"),
        (report.moved, "moved"),
        (report.removed, "removed"),
        (report.embedded, "embedded"),
        (report.failed, "could not be read"),
    ):
        if count:
            parts.append(f"{count} {label}")
    text = ", ".join(parts) if parts else "no change"
    if report.offline_roots:
        text += f"; {len(report.offline_roots)} folder(s) offline"
    return ("Reconciled: " if reconcile else "") + text
