"""The virtualised thumbnail grid and the actions every photo offers.

A ``QListView`` in icon mode over a :class:`~photoembed.gui.models.PhotoGridModel`: it creates no widget per
photo, asks the model only for the rows on screen, and so scrolls 100k results as easily as 100.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6.QtCore import QModelIndex, QPoint, QProcess, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QAbstractItemView, QListView, QMenu, QWidget

from photoembed.gui import theme
from photoembed.gui.delegates import ThumbnailDelegate
from photoembed.gui.models import PathRole

logger = logging.getLogger(__name__)


def open_with_system(path: Path) -> bool:
    """Open a photo in the system's default viewer."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


def show_in_file_manager(path: Path) -> bool:
    """Reveal a file in the platform's file manager: selected on macOS and Windows, its folder elsewhere."""
    if sys.platform == "darwin":
        started, _pid = QProcess.startDetached("open", ["-R", str(path)])
        return bool(started)
    if sys.platform == "win32":
        started, _pid = QProcess.startDetached("explorer", ["/select,", str(path)])
        return bool(started)
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.parent)))


def copy_path(path: Path) -> None:
    QGuiApplication.clipboard().setText(str(path))


class PhotoGrid(QListView):
    """A grid of photos with the common actions.

    Signals:
        open_requested(row: int): double-click or Enter on a photo.
        similar_requested(path: str): "Find similar" from the context menu.
    """

    open_requested = Signal(int)
    similar_requested = Signal(str)

    def __init__(self, thumb_size: int, *, show_score: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)  # lets the view lay out 100k items without asking each one
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(2000)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setMouseTracking(True)
        self.setSpacing(4)
        self.setWordWrap(False)
        self.setDragEnabled(False)
        self.delegate = ThumbnailDelegate(thumb_size, show_score=show_score, parent=self)
        self.setItemDelegate(self.delegate)
        self.setIconSize(QSize(thumb_size, thumb_size))
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._context_menu)
        self.doubleClicked.connect(lambda index: self.open_requested.emit(index.row()))
        self.verticalScrollBar().setSingleStep(24)
        self._open_action = QAction("Open", self)
        self._open_action.setShortcut(QKeySequence(Qt.Key.Key_Return))
        self._open_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self._open_action.triggered.connect(self._open_current)
        self.addAction(self._open_action)

    def current_path(self) -> Path | None:
        index = self.currentIndex()
        value = index.data(PathRole) if index.isValid() else None
        return Path(value) if value else None

    def _open_current(self) -> None:
        index = self.currentIndex()
        if index.isValid():
            self.open_requested.emit(index.row())

    def _context_menu(self, pos: QPoint) -> None:
        index: QModelIndex = self.indexAt(pos)
        if not index.isValid():
            return
        path = Path(str(index.data(PathRole)))
        menu = QMenu(self)
        menu.addAction(theme.icon("image"), "View", lambda: self.open_requested.emit(index.row()))
        menu.addAction(theme.icon("open-external"), "Open with system viewer", lambda: open_with_system(path))
        menu.addAction(theme.icon("folder"), "Show in file manager", lambda: show_in_file_manager(path))
        menu.addAction(theme.icon("copy"), "Copy path", lambda: copy_path(path))
        menu.addSeparator()
        menu.addAction(theme.icon("similar"), "Find similar", lambda: self.similar_requested.emit(str(path)))
        menu.popup(self.viewport().mapToGlobal(pos))
