"""The status area: indexing progress with pause/resume, unreadable photos, the model, and messages."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from photoembed.gui import theme
from photoembed.gui.controller import LibraryController
from photoembed.gui.grid import copy_path, show_in_file_manager
from photoembed.gui.models import FailuresModel, PathRole
from photoembed.gui.status_model import Activity, LibraryStatus, describe

if TYPE_CHECKING:
    from photoembed.core.indexer import Progress

RETRY_TICK_MS = 1000  # the "retrying in N s" countdown


class StatusArea(QWidget):
    """Sits in the status bar and renders the controller's one :class:`LibraryStatus`. GUI thread only.

    The message on the left is the notification sink's: it stays until a newer message replaces it.
    """

    def __init__(self, controller: LibraryController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.message = QLabel(self)
        self.message.setObjectName("statusMessage")
        self.progress_label = QLabel(self)
        self.progress_label.setObjectName("indexProgress")
        self.progress = QProgressBar(self)
        self.progress.setFixedWidth(180)
        self.progress.setFixedHeight(16)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")  # busy until the total is known; then done/total
        self.retry_now = QToolButton(self)
        self.retry_now.setText("Retry now")
        self.retry_now.setIcon(theme.icon("refresh"))
        self.retry_now.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.retry_now.setAutoRaise(True)
        self.retry_now.setToolTip("Try indexing again now instead of waiting")
        self.retry_now.clicked.connect(lambda: controller.start_index())
        self.pause = QToolButton(self)
        self.pause.setAutoRaise(True)
        self.pause.setIconSize(QSize(16, 16))
        self.pause.clicked.connect(self._pause_clicked)
        self.errors = QToolButton(self)
        self.errors.setAutoRaise(True)
        self.errors.setIcon(theme.icon("warning", theme.ACCENT_WARN))
        self.errors.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.errors.setToolTip("Photos that could not be read, and why")
        self.errors.clicked.connect(self.show_failures)
        self.model_label = QLabel(self)
        self.model_icon = QLabel(self)
        self.model_icon.setPixmap(theme.icon("model").pixmap(16, 16))

        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        layout.addWidget(self.message, 1)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.progress)
        layout.addWidget(self.retry_now)
        layout.addWidget(self.pause)
        layout.addSpacing(8)
        layout.addWidget(self.errors)
        layout.addSpacing(8)
        layout.addWidget(self.model_icon)
        layout.addWidget(self.model_label)

        self._retry_since = 0.0  # when the shown retry delay began (monotonic seconds)
        self._retry_attempt = 0
        self._tick = QTimer(self)
        self._tick.setInterval(RETRY_TICK_MS)
        self._tick.timeout.connect(lambda: self.show_state(controller.status.state))

        controller.status.changed.connect(self._state_changed)
        controller.index_done.connect(self._index_done)
        controller.notify.connect(self.show_message)
        self.show_state(controller.status.state)

    def show_message(self, text: str, is_error: bool = False) -> None:
        palette = self.message.palette()
        color = theme.ACCENT_TRASH if is_error else self.palette().color(QPalette.ColorRole.WindowText)
        palette.setColor(QPalette.ColorRole.WindowText, QColor(color))
        self.message.setPalette(palette)
        # A message stays until something newer replaces it here: a timed clear hid "Undo puts them back".
        self.message.setText(text)
        self.message.setToolTip(text)

    def _index_done(self, summary: str) -> None:
        state = self.controller.status.state
        if state.folders:  # an empty library has nothing to report
            self.show_message(f"Index up to date: {summary}")

    def show_progress(self, _progress: Progress) -> None:
        """Show the state now (screenshots call it from the progress signal, before the next repaint)."""
        self.show_state(self.controller.status.state)

    def _state_changed(self, state: LibraryStatus) -> None:
        if state.activity is Activity.RETRYING and (not self._tick.isActive() or state.attempt != self._retry_attempt):
            self._retry_since = time.monotonic()
            self._retry_attempt = state.attempt
        self.show_state(state)

    def show_state(self, state: LibraryStatus) -> None:
        """Everything this area shows, from the state alone."""
        activity = state.activity
        retrying = activity is Activity.RETRYING
        left = state.retry_in_s - (time.monotonic() - self._retry_since) if retrying else None
        self.progress_label.setText(describe(state, retry_left_s=left))
        self.progress_label.setToolTip(state.detail if retrying else "")
        if retrying:
            if not self._tick.isActive():
                self._tick.start()
        else:
            self._tick.stop()
        self.retry_now.setVisible(retrying)
        working = activity in (Activity.SCANNING, Activity.INDEXING, Activity.UPDATING, Activity.WAITING)
        self.progress.setVisible(working)
        if activity is Activity.INDEXING and state.total:
            self.progress.setRange(0, state.total)
            self.progress.setValue(state.done)
            self.progress.setFormat(f"{state.done:,}/{state.total:,}")
        else:
            self.progress.setRange(0, 0)  # busy: the total is not known yet
            self.progress.setFormat("")
        paused = activity is Activity.PAUSED
        self.pause.setVisible(working or paused or state.watching)
        if paused:
            self.pause.setIcon(theme.icon("play"))
            self.pause.setToolTip("Resume indexing where it stopped")
        else:
            self.pause.setIcon(theme.icon("pause"))
            self.pause.setToolTip("Pause indexing and watching (what is done is kept)")
        self.errors.setVisible(state.failed > 0)
        self.errors.setText(f"{state.failed:,} unreadable")
        if not state.snapshot_seen:
            self.model_label.setText("Opening library…")
            self.model_label.setToolTip("")
        elif state.model_missing:
            self.model_label.setText("No model: search off")
            self.model_label.setToolTip(f"No model weights for {state.model_name}: search is off, duplicates work")
        else:
            text = f"{state.model_name} · {state.embedded:,} searchable"
            if state.pending:
                text += f" · {state.pending:,} to index"
            self.model_label.setText(text)
            self.model_label.setToolTip(f"Model {state.model_name}")

    def _pause_clicked(self) -> None:
        state = self.controller.status.state
        if state.activity is Activity.PAUSED:
            self.controller.resume_index()
        else:
            self.progress_label.setText("Pausing after this batch…")
            self.controller.pause_index()

    def show_failures(self) -> None:
        dialog = FailuresDialog(self.controller, self.window())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()


class FailuresDialog(QDialog):
    """The photos that could not be read, each with its reason."""

    def __init__(self, controller: LibraryController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Photos that could not be read")
        self.resize(900, 480)
        self.model = FailuresModel(self)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.table.setColumnWidth(0, 460)
        self.summary = QLabel("Loading…", self)
        self.summary.setWordWrap(True)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        show = QPushButton(theme.icon("folder"), "Show in file manager", self)
        show.clicked.connect(lambda: self._with_selected(show_in_file_manager))
        copy = QPushButton(theme.icon("copy"), "Copy path", self)
        copy.clicked.connect(lambda: self._with_selected(copy_path))
        buttons.addButton(show, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(copy, QDialogButtonBox.ButtonRole.ActionRole)

        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        if controller.library is not None:
            controller.load_failures(self._loaded)

    def _loaded(self, rows: list[tuple[str, str]]) -> None:
        self.model.set_failures(rows)
        self.summary.setText(
            f"{len(rows):,} files could not be read. They are skipped and tried again when they change; "
            "everything else is indexed."
        )

    def _with_selected(self, action: object) -> None:
        index = self.table.currentIndex()
        if index.isValid() and callable(action):
            action(Path(str(index.data(PathRole))))
