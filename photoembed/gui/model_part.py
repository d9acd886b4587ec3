"""The controller's model part: download the embedding model's weights, or install them from a file.

The model card talks to this part. A failure is kept (:attr:`ModelPart.failure`) until the user acts on it
(retries, installs from a file) or the model becomes available, so the card can keep saying what went
wrong and offer the next step, instead of the message vanishing at the next refresh. GUI thread only.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from photoembed.gui.workers import Job, TaskContext, TaskError

if TYPE_CHECKING:
    from photoembed.gui.controller import LibraryController

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelFailure:
    """What failed last: ``action`` is "download" or "install"; ``error`` says why (in the task's words)."""

    action: str
    model: str
    error: TaskError


class ModelPart(QObject):
    """Model download and install. Create through :class:`~photoembed.gui.controller.LibraryController`.

    Signals:
        progress(done: int, total: int): download progress in bytes; total 0 while unknown.
        done(ok: bool, message: str): a download or install finished (or failed, or was cancelled).
        failure_changed(ModelFailure | None): the kept failure was set or cleared.
    """

    progress = Signal(object, object)
    done = Signal(bool, str)
    failure_changed = Signal(object)

    def __init__(self, hub: LibraryController) -> None:
        super().__init__(hub)
        self.hub = hub
        self.tasks = hub.tasks
        self.failure: ModelFailure | None = None
        self._download_job: Job | None = None

    @property
    def downloading(self) -> bool:
        return self._download_job is not None

    def download(self, name: str | None = None) -> None:
        """Fetch the model's weights on the worker, with progress and cancel."""
        library = self.hub.require()
        model = name or library.settings.model
        self._set_failure(None)

        def task(ctx: TaskContext) -> Path:
            return library.models.download(
                model, progress=lambda done, total: ctx.progress((done, total)), cancel=ctx.cancel
            )

        this: list[Job] = []  # this download's job, once submitted

        def finished(cancelled: bool) -> None:
            if this and self._download_job is this[0]:  # a retry started meanwhile keeps its own job
                self._download_job = None
            if cancelled:
                self.done.emit(False, "Download cancelled")

        job = self.tasks.submit(
            "model-download", task,
            on_progress=lambda p: self.progress.emit(p[0], p[1]),
            on_result=lambda _p: self._ready(f"Model {model} downloaded"),
            on_failed=lambda e: self._failed("download", model, e),
            on_finished=finished,
        )
        this.append(job)
        if job in self.tasks.runner.active_jobs():  # still queued or running (inline, force_sync: ended)
            self._download_job = job

    def cancel_download(self) -> None:
        if self._download_job is not None:
            self._download_job.cancel()

    def install(self, file: Path, name: str | None) -> None:
        """Install weights from a local file (offline machines): the local-weights path of `model install`."""
        library = self.hub.require()
        self._set_failure(None)

        def task(_: TaskContext) -> str:
            return library.models.install(file, name=name)

        def installed(model: str) -> None:
            if model != library.settings.model:
                # In force at once (the refresh below reads it), written on the worker.
                library.settings = dataclasses.replace(library.settings, model=model)
                self.hub.save_settings(library.settings)
            self._ready(f"Model {model} installed")

        self.tasks.submit(
            "model-install", task, on_result=installed,
            on_failed=lambda e: self._failed("install", name or file.name, e),
        )

    def _failed(self, action: str, model: str, error: TaskError) -> None:
        self._set_failure(ModelFailure(action, model, error))
        self.done.emit(False, error.message)

    def _ready(self, message: str) -> None:
        self._set_failure(None)
        self.done.emit(True, message)
        self.hub.refresh()
        self.hub.start_index()  # embed what was catalogued without a model

    def _set_failure(self, failure: ModelFailure | None) -> None:
        if failure != self.failure:
            self.failure = failure
            self.failure_changed.emit(failure)
