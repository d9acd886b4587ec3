"""The virtualised thumbnail grid and the actions every photo offers.

A ``QListView`` in icon mode over a :class:`~photoembed.gui.models.PhotoGridModel`: it creates no widget per
photo, asks the model only for the rows on screen, and so scrolls 100k results as easily as 100.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6.QtCore import QMimeData, QModelIndex, QPoint, QProcess, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QAbstractItemView, QFileDialog, QListView, QMenu, QMessageBox, QWidget

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


_OUR_COPY = "application/x-photoembed-copy"


def release_clipboard() -> None:
    """Hand back what this app put on the clipboard, before the application object goes.

    Qt owns the QMimeData given to the clipboard; left there at interpreter exit, its destruction races
    PySide's teardown and the process dies with a segmentation fault (seen with PySide6 6.11). GUI thread only.
    """
    clipboard = QGuiApplication.clipboard()
    mime = clipboard.mimeData()
    if mime is not None and mime.hasFormat(_OUR_COPY):  # ours, not what another program copied since
        clipboard.clear()


def copy_files(paths: list[Path]) -> None:
    """Put the files on the clipboard: a file manager pastes copies, a text field pastes the paths."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    mime.setText("\n".join(str(p) for p in paths))
    mime.setData(_OUR_COPY, b"1")
    QGuiApplication.clipboard().setMimeData(mime)


def write_path_list(file: Path, paths: list[Path]) -> None:
    """The chosen photos' paths, one a line (UTF-8), for scripts and other tools."""
    file.write_text("".join(f"{p}\n" for p in paths), encoding="utf-8")


class PhotoGrid(QListView):
    """A grid of photos with the common actions.

    Signals:
        open_requested(row: int): double-click or Enter on a photo.
        similar_requested(path: str): "Find similar" from the context menu.
        trash_requested(paths: list[Path]): the selection should go to the trash (Delete, or the menu).
    """

    open_requested = Signal(int)
    similar_requested = Signal(str)
    trash_requested = Signal(object)

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
        self._trash_action = QAction(theme.icon("trash"), "Move to trash…", self)
        self._trash_action.setShortcut(QKeySequence(Qt.Key.Key_Delete))
        self._trash_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self._trash_action.triggered.connect(self._trash_selection)
        self.addAction(self._trash_action)
        self._copy_action = QAction(theme.icon("copy"), "Copy", self)
        self._copy_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Copy))
        self._copy_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self._copy_action.triggered.connect(lambda: self._with_selection(copy_files))
        self.addAction(self._copy_action)

    def selected_paths(self) -> list[Path]:
        """The selected photos in grid order (the current one when nothing is selected)."""
        rows = sorted(index.row() for index in self.selectionModel().selectedIndexes())
        if not rows and self.currentIndex().isValid():
            rows = [self.currentIndex().row()]
        model = self.model()
        return [Path(str(model.index(r, 0).data(PathRole))) for r in rows]

    def _with_selection(self, action: object) -> None:
        paths = self.selected_paths()
        if paths:
            action(paths)  # type: ignore[operator]

    def _trash_selection(self) -> None:
        paths = self.selected_paths()
        if paths:
            self.trash_requested.emit(paths)

    def export_list(self, paths: list[Path]) -> None:
        name, _filter = QFileDialog.getSaveFileName(self, "Export the list of photos", str(Path.home() / "photos.txt"),
                                                    "Text files (*.txt)")
        if not name:
            return
        try:
            write_path_list(Path(name), paths)
        except OSError as exc:
            QMessageBox.warning(self, "Export", f"Cannot write {name}: {exc.strerror or exc}")

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
        if not self.selectionModel().isSelected(index):
            self.setCurrentIndex(index)  # a right-click outside the selection acts on that photo
        paths = self.selected_paths()
        path = Path(str(index.data(PathRole)))
        many = len(paths) > 1
        count = f" {len(paths):,} photos" if many else ""
        menu = QMenu(self)
        menu.addAction(theme.icon("image"), "View", lambda: self.open_requested.emit(index.row()))
        menu.addAction(theme.icon("open-external"), "Open with system viewer", lambda: open_with_system(path))
        menu.addAction(theme.icon("folder"), "Show in folder", lambda: show_in_file_manager(path))
        menu.addAction(theme.icon("similar"), "Find similar", lambda: self.similar_requested.emit(str(path)))
        menu.addSeparator()
        menu.addAction(theme.icon("copy"), f"Copy{count}", lambda: copy_files(paths))
        menu.addAction(theme.icon("copy"), "Copy paths" if many else "Copy path",
                       lambda: QGuiApplication.clipboard().setText("\n".join(str(p) for p in paths)))
        menu.addAction(theme.icon("download"), f"Export the list of{count or ' this photo'}…",
                       lambda: self.export_list(paths))
        menu.addSeparator()
        menu.addAction(theme.icon("trash"), f"Move{count} to trash…", lambda: self.trash_requested.emit(paths))
        menu.popup(self.viewport().mapToGlobal(pos))
