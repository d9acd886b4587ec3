"""The status area: indexing progress with pause/resume, unreadable photos, the model, and messages."""

from __future__ import annotations

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
from photoembed.gui.controller import LibraryController, LibrarySnapshot
from photoembed.gui.grid import copy_path, show_in_file_manager
from photoembed.gui.models import FailuresModel, PathRole

if TYPE_CHECKING:
    from photoembed.core.indexer import Progress

MESSAGE_TIMEOUT_MS = 8000


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:  # None or NaN
        return ""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s left"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min left"
    return f"{seconds // 3600:.0f} h {seconds % 3600 / 60:02.0f} min left"


def describe_progress(progress: Progress) -> str:
    """One status line for a sync step: done/total, photos/s, ETA."""
    if progress.phase == "scan":
        return progress.message or f"Looking for photos… {progress.done:,} found"
    if progress.phase == "index":
        parts = [f"Indexing {progress.done:,} / {progress.total:,}"]
        if progress.rate > 0:
            parts.append(f"{progress.rate:.1f} photos/s")
        eta = format_eta(progress.eta_s)
        if eta:
            parts.append(eta)
        return " · ".join(parts)
    return progress.message


class StatusArea(QWidget):
    """Sits in the status bar. GUI thread only."""

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
        layout.addWidget(self.pause)
        layout.addSpacing(8)
        layout.addWidget(self.errors)
        layout.addSpacing(8)
        layout.addWidget(self.model_icon)
        layout.addWidget(self.model_label)

        self._clear = QTimer(self)
        self._clear.setSingleShot(True)
        self._clear.timeout.connect(lambda: self.message.setText(""))

        controller.index_progress.connect(self.show_progress)
        controller.index_state.connect(self.show_state)
        controller.index_done.connect(self._index_done)
        controller.watch_changed.connect(lambda _states: self.show_state(controller.index.running,
                                                                         controller.index.paused))
        controller.snapshot.connect(self.apply_snapshot)
        controller.notify.connect(self.show_message)
        self.show_state(False, False)
        self.errors.setVisible(False)
        self.model_label.setText("Opening library…")

    def show_message(self, text: str, is_error: bool = False) -> None:
        palette = self.message.palette()
        color = theme.ACCENT_TRASH if is_error else self.palette().color(QPalette.ColorRole.WindowText)
        palette.setColor(QPalette.ColorRole.WindowText, QColor(color))
        self.message.setPalette(palette)
        self.message.setText(text)
        self.message.setToolTip(text)
        # A message stays until something newer replaces it here: a timed clear hid "Undo puts them back".
        self._clear.stop()

    def _index_done(self, summary: str) -> None:
        snap = self.controller.last_snapshot
        if snap is not None and snap.roots:  # an empty library has nothing to report
            self.show_message(f"Index up to date: {summary}")

    def show_progress(self, progress: Progress) -> None:
        if progress.phase == "done":
            return  # the summary arrives through index_done; the state line says "up to date"
        self.progress_label.setText(describe_progress(progress))
        if progress.phase == "index" and progress.total:
            self.progress.setRange(0, progress.total)
            self.progress.setValue(progress.done)
            self.progress.setFormat(f"{progress.done:,}/{progress.total:,}")
        else:
            self.progress.setRange(0, 0)  # busy: the total is not known yet
            self.progress.setFormat("")

    def show_state(self, running: bool, paused: bool) -> None:
        watching = self.controller.watching
        self.progress.setVisible(running)
        self.pause.setVisible(running or paused or watching)
        if running or watching:
            self.pause.setIcon(theme.icon("pause"))
            self.pause.setToolTip("Pause indexing and watching (what is done is kept)")
        if running:
            return
        if paused:
            self.pause.setIcon(theme.icon("play"))
            self.pause.setToolTip("Resume indexing where it stopped")
            self.progress_label.setText("Indexing paused")
        elif watching and self.controller.last_snapshot is not None and self.controller.last_snapshot.roots:
            self.progress_label.setText("Up to date · watching for changes")
        else:
            self.progress_label.setText("")

    def _pause_clicked(self) -> None:
        if self.controller.index.running or self.controller.watching:
            self.progress_label.setText("Pausing after this batch…")
            self.controller.pause_index()
        else:
            self.controller.resume_index()

    def apply_snapshot(self, snap: LibrarySnapshot) -> None:
        self.errors.setVisible(snap.failed > 0)
        self.errors.setText(f"{snap.failed:,} unreadable")
        if snap.model.available:
            text = f"{snap.model.name} · {snap.embedded:,} searchable"
            if snap.pending:
                text += f" · {snap.pending:,} to index"
            self.model_label.setText(text)
            self.model_label.setToolTip(snap.model.message)
        else:
            self.model_label.setText("No model: search off")
            self.model_label.setToolTip(snap.model.message)

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
