"""The one task runner the controller's parts share: the library worker, the pools, and the live job's turn.

Every part of the controller (library and status, browse and search, duplicates, model) submits its work
here, never to a thread of its own:

* :meth:`TaskScheduler.submit` queues a **foreground** task on the library worker (adding a folder, trash,
  a model download, a photo query that needs the image model). The **live job** (the sync, or watching)
  holds the worker while it runs, so a foreground task first stops it at its next photo; once no
  foreground task is left, :attr:`TaskScheduler.idle` fires and the library part starts it again
  (committed batches are kept, so the restart only re-scans, which is cheap when nothing changed).
* :meth:`TaskScheduler.start_live` runs the live job; only one at a time.
* :meth:`TaskScheduler.read` runs a read-only function on the read pool (counts, searches, listings).
* ``analysis_pool`` clusters duplicates beside the worker; ``thumb_pool`` decodes thumbnails.

GUI thread only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Signal

from photoembed.gui.workers import BackgroundPool, Job, TaskContext, TaskError, TaskRunner

logger = logging.getLogger(__name__)

T = TypeVar("T")

LIVE_KIND = "live"


class TaskScheduler(QObject):
    """Owns the library worker and the pools. Create, use and shut down on the GUI thread.

    Args:
        force_sync: run every task and pool job inline (tests of a single view).

    Signals:
        idle(): no foreground task is queued or running any more: the live job may run again.
    """

    idle = Signal()

    def __init__(self, parent: QObject | None = None, *, force_sync: bool = False) -> None:
        super().__init__(parent)
        self.force_sync = force_sync
        self.runner = TaskRunner(self, force_sync=force_sync)
        cores = os.cpu_count() or 2
        self.read_pool = BackgroundPool(self, threads=1, name="search", force_sync=force_sync)
        self.thumb_pool = BackgroundPool(self, threads=max(1, min(3, cores - 1)), name="thumbnails",
                                         force_sync=force_sync)
        self.analysis_pool = BackgroundPool(self, threads=1, name="duplicates", force_sync=force_sync)
        self._live: Job | None = None
        self._stop_live: Callable[[], None] | None = None

    # -- the library worker --------------------------------------------------------------------------

    def submit(
        self,
        kind: str,
        fn: Callable[[TaskContext], object],
        *,
        on_progress: Callable[[Any], None] | None = None,
        on_result: Callable[[Any], None] | None = None,
        on_failed: Callable[[TaskError], None] | None = None,
        on_finished: Callable[[bool], None] | None = None,
    ) -> Job:
        """Queue a foreground task on the library worker, ahead of the live job (which is stopped for it)."""
        self._preempt_live()

        def finished(cancelled: bool) -> None:
            if on_finished is not None:
                on_finished(cancelled)
            if not self.foreground_busy():
                self.idle.emit()

        return self.runner.submit(kind, fn, on_progress=on_progress, on_result=on_result,
                                  on_failed=on_failed, on_finished=finished)

    def start_live(
        self,
        fn: Callable[[TaskContext], object],
        *,
        stop: Callable[[], None] | None = None,
        on_progress: Callable[[Any], None] | None = None,
        on_failed: Callable[[TaskError], None] | None = None,
        on_finished: Callable[[bool], None] | None = None,
    ) -> Job:
        """Run the live job (a sync or the watcher). ``stop`` wakes it when it must end (a watcher's idle wait)."""
        if self._live is not None:
            raise RuntimeError("The live job is already running")

        ended = False

        def finished(cancelled: bool) -> None:
            nonlocal ended
            ended = True
            self._live = None
            self._stop_live = None
            if on_finished is not None:
                on_finished(cancelled)

        self._stop_live = stop
        job = self.runner.submit(LIVE_KIND, fn, on_progress=on_progress, on_failed=on_failed, on_finished=finished)
        if not ended:  # inline (force_sync), it has already ended here
            self._live = job
        return job

    @property
    def live_running(self) -> bool:
        """Whether the live job is queued or running."""
        return self._live is not None

    def stop_live(self) -> None:
        """Ask the live job to end at its next photo (pause, pre-emption, quit)."""
        if self._live is not None:
            self._live.cancel()
            if self._stop_live is not None:
                self._stop_live()

    def foreground_busy(self) -> bool:
        """Whether a foreground task is queued or running (the live job waits for them)."""
        return bool(self.foreground_kinds())

    def foreground_kinds(self) -> list[str]:
        """The kinds of the foreground tasks queued or running, in submission order (the first runs)."""
        return [job.kind for job in self.runner.active_jobs() if job.kind != LIVE_KIND]

    def _preempt_live(self) -> None:
        self.stop_live()

    # -- the pools -----------------------------------------------------------------------------------

    def read(
        self,
        fn: Callable[[], T],
        on_done: Callable[[T], None],
        on_error: Callable[[TaskError], None] | None = None,
        *,
        priority: int = 0,
        tag: str = "",
    ) -> int:
        """Run a read-only ``fn`` on the read pool; ``on_done`` gets its value on the GUI thread."""
        return self.read_pool.submit(fn, on_done, on_error, priority=priority, tag=tag)

    # -- lifecycle -----------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop every task (the batch in flight finishes), then the pools. GUI thread only."""
        self.stop_live()
        self.runner.shutdown()
        self.read_pool.shutdown()
        self.analysis_pool.shutdown()
        self.thumb_pool.shutdown()
