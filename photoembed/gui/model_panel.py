"""The model card: says that search needs the model, downloads it with progress and cancel, or installs it
from a file for offline machines (the model is picked from a list, or identified from the file itself)."""

from __future__ import annotations

import html
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from photoembed.gui import theme
from photoembed.gui.controller import LibraryController, LibrarySnapshot
from photoembed.gui.viewer import human_bytes

#: The first entry of the model list: let photoembed read the architecture from the file.
IDENTIFY_CHOICE = "Identify it from the file (recommended)"


def install_choices(controller: LibraryController) -> list[str]:
    """What the install dialog offers: identification from the file, then every model `model list` shows."""
    library = controller.library
    names = [row.name for row in library.models.list()] if library is not None else []
    return [IDENTIFY_CHOICE, *names]


class ModelPanel(QFrame):
    """Download or install the embedding model; everything that needs no model keeps working meanwhile.

    Talks to the controller's model part. A failure stays on the card, with what to do next ("Retry",
    "Install from file…"), until the user acts or the model becomes available.
    """

    def __init__(self, controller: LibraryController, *, compact: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.part = controller.model
        self.compact = compact
        self.setObjectName("modelPanel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self._model_name = ""

        self.icon = QLabel(self)
        self.icon.setPixmap(theme.icon("model").pixmap(32 if not compact else 22, 32 if not compact else 22))
        self.title = QLabel(self)
        self.title.setWordWrap(True)
        self.title.setMinimumWidth(360)
        self.detail = QLabel(self)
        self.detail.setWordWrap(True)
        self.detail.setMinimumWidth(360)
        self.detail.setVisible(not compact)
        self.download = QPushButton(theme.icon("download"), "Download model", self)
        self.download.clicked.connect(self._download)
        self.retry = QPushButton(theme.icon("refresh"), "Retry", self)
        self.retry.setToolTip("Try the download again")
        self.retry.clicked.connect(self._download)
        self.retry.setVisible(False)
        self.install = QPushButton(theme.icon("install-file"), "Install from file…", self)
        self.install.clicked.connect(self._install)
        self.cancel = QPushButton(theme.icon("close"), "Cancel", self)
        self.cancel.clicked.connect(self.part.cancel_download)
        self.cancel.setVisible(False)
        self.progress = QProgressBar(self)
        self.progress.setVisible(False)
        self.progress.setTextVisible(True)

        buttons = QHBoxLayout()
        buttons.addWidget(self.download)
        buttons.addWidget(self.retry)
        buttons.addWidget(self.install)
        buttons.addWidget(self.cancel)
        if compact:
            # One line in the search view: icon, sentence, progress, buttons.
            layout = QHBoxLayout(self)
            layout.addWidget(self.icon)
            text = QVBoxLayout()
            text.addWidget(self.title)
            text.addWidget(self.progress)
            layout.addLayout(text, 1)
            layout.addLayout(buttons)
        else:
            # A card on the first-run page: the explanation gets the width it needs to wrap.
            header = QHBoxLayout()
            header.addWidget(self.icon)
            header.addWidget(self.title, 1)
            buttons.insertStretch(0, 1)
            layout_v = QVBoxLayout(self)
            layout_v.addLayout(header)
            layout_v.addWidget(self.detail)
            layout_v.addWidget(self.progress)
            layout_v.addLayout(buttons)

        # Installing reads, checks and copies a file of hundreds of MB (~30 s): the bar shows it is working.
        self._install_started = 0.0
        self._install_file = ""
        self._busy = False
        self._install_timer = QTimer(self)
        self._install_timer.setInterval(500)
        self._install_timer.timeout.connect(self._install_tick)

        controller.snapshot.connect(self._snapshot)
        self.part.progress.connect(self._progress)
        self.part.done.connect(self._done)
        self.part.failure_changed.connect(lambda _failure: self._render())
        self._render()

    def _snapshot(self, snap: LibrarySnapshot) -> None:
        self._model_name = snap.model.name
        self._render()

    def _render(self) -> None:
        """The card's idle face: what is missing, or what failed last and what to do about it."""
        if self._busy:
            return  # a download or install runs: its progress owns the card
        name = self._model_name or self.controller.settings.model
        failure = self.part.failure
        self.progress.setVisible(False)
        self.cancel.setVisible(False)
        self.download.setEnabled(True)
        self.install.setEnabled(True)
        self.retry.setVisible(failure is not None and failure.action == "download")
        self.download.setVisible(not self.retry.isVisibleTo(self))
        if failure is None:
            self.title.setText(f"<b>Search needs the model {name}</b>, which is not installed.")
            self.title.setToolTip("")
            self.detail.setText(
                "It is downloaded once (about 600 MB) and then everything stays on this computer. On a machine "
                "without internet, copy the weights file from another one and install it from the file. "
                "Finding duplicates works without it."
            )
            return
        if failure.action == "download":
            title = f"<b>{html.escape(failure.model)} could not be downloaded.</b>"
            advice = ("Check the internet connection and press Retry, or copy the weights file from another "
                      "computer and choose Install from file.")
        else:
            title = "<b>The weights file could not be installed.</b>"
            advice = "Choose Install from file to pick another file (the model's .safetensors or .pt weights)."
        reason = html.escape(failure.error.message)
        self.title.setText(f"{title} {advice}" if self.compact else title)
        self.title.setToolTip(failure.error.message)
        self.detail.setText(f"{advice}<br><small>{reason}</small>")

    def _download(self) -> None:
        self._busy = True
        self.download.setEnabled(False)
        self.install.setEnabled(False)
        self.retry.setVisible(False)
        self.download.setVisible(True)
        self.cancel.setVisible(True)
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.progress.setFormat("Connecting…")
        self.title.setText(f"<b>Downloading {self._model_name or self.controller.settings.model}…</b>")
        self.title.setToolTip("")
        self.part.download()

    def _progress(self, done: int, total: int) -> None:
        if total:
            # QProgressBar is int32: count in KiB.
            self.progress.setRange(0, max(1, total // 1024))
            self.progress.setValue(done // 1024)
            self.progress.setFormat(f"{human_bytes(done)} of {human_bytes(total)} (%p%)")
        else:
            self.progress.setRange(0, 0)
            self.progress.setFormat(human_bytes(done))

    def _done(self, ok: bool, message: str) -> None:
        self._install_timer.stop()
        self._busy = False
        self._render()
        if ok:
            self.title.setText(f"<b>{html.escape(message)}.</b> Indexing photos for search…")
        elif self.part.failure is None:  # cancelled: nothing failed, the card says what is missing
            self.title.setText(f"<b>{html.escape(message)}.</b> Search needs the model; download or install it.")

    def _install(self) -> None:
        file, _ = QFileDialog.getOpenFileName(
            self, "Install model weights", str(Path.home()),
            "Model weights (*.safetensors *.pt *.pth *.bin);;All files (*)",
        )
        if not file:
            return
        choices = install_choices(self.controller)
        choice, ok = QInputDialog.getItem(
            self, "Which model is this?",
            "The model these weights belong to (photoembed reads it from the file when it can):",
            choices, 0, False,
        )
        if not ok or not choice:
            return
        self.start_install(Path(file), None if choice == IDENTIFY_CHOICE else choice)

    def start_install(self, file: Path, name: str | None) -> None:
        """Install ``file`` on the worker (``name`` None: identified from the file), showing progress."""
        self._busy = True
        self._install_file = file.name
        self._install_started = time.monotonic()
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.download.setEnabled(False)
        self.install.setEnabled(False)
        self.retry.setVisible(False)
        self._install_tick()
        self._install_timer.start()
        self.part.install(file, name)

    def _install_tick(self) -> None:
        elapsed = time.monotonic() - self._install_started
        self.title.setText(f"<b>Installing {self._install_file}…</b> (identifying, checking that it loads, copying)")
        self.progress.setFormat(f"{elapsed:.0f} s")
