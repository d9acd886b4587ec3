"""The virtualised thumbnail grid and the actions every photo offers.

:class:`PhotoGrid` is a ``QAbstractItemView`` whose layout is arithmetic: every tile has the delegate's one
size, so a row's place is ``divmod(row, columns)`` and the rows on screen follow from the scroll offset. No
step of opening, resizing, scrolling, jumping or painting visits the rows off screen (a ``QListView`` in icon
mode lays out every row, one Python ``rowCount`` call each: about 0.3 s of the GUI thread at 100k photos on
every reset and resize, and until its batched layout is done a jump to a far row does nothing).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar, cast

from PySide6.QtCore import (
    QEvent,
    QItemSelection,
    QItemSelectionModel,
    QItemSelectionRange,
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QProcess,
    QRect,
    QSize,
    Qt,
    QUrl,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QDesktopServices,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QRegion,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QMenu,
    QMessageBox,
    QStyleOptionViewItem,
    QWidget,
)

from photoembed.gui import theme
from photoembed.gui.delegates import ThumbnailDelegate
from photoembed.gui.models import PathRole, PhotoGridModel, Tile, TileRole

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


def _overlapping(low: int, high: int, spacing: int, extent: int, count: int) -> range:
    """Which of ``count`` tiles, each ``extent`` long after a ``spacing`` gap, overlap ``low..high``."""
    step = extent + spacing
    first = max(0, -(-(low - spacing - extent + 1) // step))
    last = min(count - 1, (high - spacing) // step)
    return range(first, last + 1)


def write_path_list(file: Path, paths: list[Path]) -> None:
    """The chosen photos' paths, one a line (UTF-8), for scripts and other tools."""
    file.write_text("".join(f"{p}\n" for p in paths), encoding="utf-8")


class PhotoGrid(QAbstractItemView):
    """A grid of photos, laid out by arithmetic (see the module's docstring), with the common actions.

    Args:
        thumb_size: the thumbnail square; the tile is the delegate's size for it.
        show_score: the delegate draws raw scores.

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
        self._spacing = 4
        self._gap_x = 4  # the horizontal gap: the spacing plus a share of the width the columns leave
        self._columns = 1
        self._rows = 0
        self._hover = -1
        self._anchor = -1  # where a shift-click or shift-arrow range starts: the last plain or ctrl choice
        # The delegate first: the setters below call updateGeometries, which asks it for the tile size.
        self.delegate = ThumbnailDelegate(thumb_size, show_score=show_score, parent=self)
        self.setItemDelegate(self.delegate)
        self._tile = self._tile_size()
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMouseTracking(True)
        self.viewport().setMouseTracking(True)
        self.setDragEnabled(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
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

    # -- layout: arithmetic over one tile size --------------------------------------------------------

    def spacing(self) -> int:
        """The gap around tiles, in pixels."""
        return self._spacing

    def setSpacing(self, spacing: int) -> None:
        self._spacing = max(0, spacing)
        self.updateGeometries()

    def setModel(self, model: object) -> None:
        old = self.model()
        if old is not None:
            for signal in (old.modelReset, old.rowsInserted, old.rowsRemoved, old.layoutChanged):
                signal.disconnect(self._relayout)
        super().setModel(model)  # type: ignore[arg-type]
        new = self.model()
        if new is not None:
            for signal in (new.modelReset, new.rowsInserted, new.rowsRemoved, new.layoutChanged):
                signal.connect(self._relayout)
        self._relayout()

    def _relayout(self, *_args: object) -> None:
        # At once, not deferred as Qt's views do: it costs no more than a few multiplications, and a
        # scrollTo right after new results must find the rows where they will be.
        self._hover = -1
        self._anchor = -1
        self.updateGeometries()
        self.viewport().update()

    def _tile_size(self) -> QSize:
        option = QStyleOptionViewItem()
        self.initViewItemOption(option)
        return self.delegate.sizeHint(option, QModelIndex())

    def _count(self) -> int:
        model = self.model()
        return model.rowCount(self.rootIndex()) if model is not None else 0

    def updateGeometries(self) -> None:
        self._tile = self._tile_size()
        step_x = self._tile.width() + self._spacing
        width = self.viewport().width() - self._spacing
        self._columns = max(1, width // step_x) if step_x > 0 else 1
        # The width left over is shared out between the columns, so that the grid fills the view evenly
        # instead of leaving a strip at the right (as Google Photos and digiKam lay their grids out).
        free = self.viewport().width() - self._columns * self._tile.width()
        self._gap_x = max(self._spacing, free // (self._columns + 1))
        count = self._count()
        self._rows = -(-count // self._columns)
        content = self._spacing + self._rows * (self._tile.height() + self._spacing)
        page = self.viewport().height()
        bar = self.verticalScrollBar()
        bar.setPageStep(max(1, page))
        bar.setRange(0, max(0, content - page))
        self.horizontalScrollBar().setRange(0, 0)
        super().updateGeometries()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.updateGeometries()

    def _content_rect(self, row: int) -> QRect:
        """Where a row's tile lies in the content (before scrolling)."""
        line, column = divmod(row, self._columns)
        width, height = self._tile.width(), self._tile.height()
        return QRect(self._gap_x + column * (width + self._gap_x), self._spacing + line * (height + self._spacing),
                     width, height)

    def _lines_in(self, top: int, bottom: int) -> range:
        """The grid lines (rows of tiles) whose tiles overlap content heights ``top..bottom``."""
        return _overlapping(top, bottom, self._spacing, self._tile.height(), self._rows)

    def _columns_in(self, left: int, right: int) -> range:
        return _overlapping(left, right, self._gap_x, self._tile.width(), self._columns)

    def visualRect(self, index: QModelIndex | QPersistentModelIndex) -> QRect:
        if not index.isValid() or index.parent() != self.rootIndex() or index.column() != 0:
            return QRect()
        return self._content_rect(index.row()).translated(0, -self.verticalOffset())

    def indexAt(self, point: QPoint) -> QModelIndex:
        count = self._count()
        if count == 0:  # no model, or nothing in it
            return QModelIndex()
        x, y = point.x(), point.y() + self.verticalOffset()
        step_x, step_y = self._tile.width() + self._gap_x, self._tile.height() + self._spacing
        if x < self._gap_x or y < self._spacing:
            return QModelIndex()
        column, dx = divmod(x - self._gap_x, step_x)
        line, dy = divmod(y - self._spacing, step_y)
        if column >= self._columns or dx >= self._tile.width() or dy >= self._tile.height():
            return QModelIndex()
        row = line * self._columns + column
        return self.model().index(row, 0, self.rootIndex()) if row < count else QModelIndex()

    def scrollTo(self, index: QModelIndex | QPersistentModelIndex,
                 hint: QAbstractItemView.ScrollHint = QAbstractItemView.ScrollHint.EnsureVisible) -> None:
        if not index.isValid():
            return
        rect = self._content_rect(index.row())
        bar = self.verticalScrollBar()
        page = self.viewport().height()
        value = bar.value()
        Hint = QAbstractItemView.ScrollHint
        if hint == Hint.PositionAtTop:
            value = rect.top() - self._spacing
        elif hint == Hint.PositionAtBottom:
            value = rect.bottom() + 1 + self._spacing - page
        elif hint == Hint.PositionAtCenter:
            value = rect.top() - (page - rect.height()) // 2
        elif rect.top() < value:
            value = rect.top() - self._spacing
        elif rect.bottom() + 1 > value + page:
            value = rect.bottom() + 1 + self._spacing - page
        bar.setValue(value)

    def horizontalOffset(self) -> int:
        return 0

    def verticalOffset(self) -> int:
        return self.verticalScrollBar().value()

    def isIndexHidden(self, index: QModelIndex | QPersistentModelIndex) -> bool:
        return False

    def moveCursor(self, action: QAbstractItemView.CursorAction,
                   modifiers: Qt.KeyboardModifier) -> QModelIndex:
        model = self.model()
        count = self._count()
        if model is None or count == 0:
            return QModelIndex()
        current = self.currentIndex()
        if not current.isValid():
            return model.index(0, 0, self.rootIndex())
        row = current.row()
        page_lines = max(1, self.viewport().height() // (self._tile.height() + self._spacing))
        Move = QAbstractItemView.CursorAction
        moves = {
            Move.MoveLeft: -1, Move.MovePrevious: -1, Move.MoveRight: 1, Move.MoveNext: 1,
            Move.MoveUp: -self._columns, Move.MoveDown: self._columns,
            Move.MovePageUp: -self._columns * page_lines, Move.MovePageDown: self._columns * page_lines,
        }
        if action == Move.MoveHome:
            row = 0
        elif action == Move.MoveEnd:
            row = count - 1
        elif action in moves:
            row += moves[action]
        return model.index(min(max(row, 0), count - 1), 0, self.rootIndex())

    def _selection_in(self, rect: QRect) -> QItemSelection:
        """The tiles a viewport rectangle touches, as one range per grid line (one in all across whole lines)."""
        model = self.model()
        selection = QItemSelection()
        count = self._count()
        if model is None or count == 0:
            return selection
        offset = self.verticalOffset()
        rect = rect.normalized()
        lines = self._lines_in(rect.top() + offset, rect.bottom() + offset)
        columns = self._columns_in(rect.left(), rect.right())
        if not lines or not columns:
            return selection
        root = self.rootIndex()
        if len(columns) == self._columns:  # whole lines: one contiguous range
            first = lines.start * self._columns
            last = min(count - 1, lines.stop * self._columns - 1)
            if first <= last:
                selection.append(QItemSelectionRange(model.index(first, 0, root), model.index(last, 0, root)))
            return selection
        for line in lines:
            first = line * self._columns + columns.start
            last = min(count - 1, line * self._columns + columns.stop - 1)
            if first <= last:
                selection.append(QItemSelectionRange(model.index(first, 0, root), model.index(last, 0, root)))
        return selection

    def setSelection(self, rect: QRect, command: QItemSelectionModel.SelectionFlag) -> None:
        # A press on a tile selects that tile only (not its neighbours that the 1-pixel rectangle may touch).
        selection = self._selection_in(rect)
        if rect.width() <= 1 and rect.height() <= 1:
            index = self.indexAt(rect.topLeft())
            selection = QItemSelection(index, index) if index.isValid() else QItemSelection()
        self.selectionModel().select(selection, command)

    def visualRegionForSelection(self, selection: QItemSelection) -> QRegion:
        region = QRegion()
        offset = self.verticalOffset()
        shown = self._lines_in(offset, offset + self.viewport().height())
        if not shown:
            return region
        low, high = shown.start * self._columns, shown.stop * self._columns - 1
        for selected in cast("Iterable[QItemSelectionRange]", selection):
            for row in range(max(low, selected.top()), min(high, selected.bottom()) + 1):
                region += self._content_rect(row).translated(0, -offset)
        return region

    def keyboardSearch(self, search: str) -> None:
        """No type-to-find: it reads every row's name (100k Python calls) for a photo grid's little use."""

    # -- ranges: shift-click and shift-arrows select rows in reading order ----------------------------
    # (Qt's views select the rectangle between the two tiles, as for a drag: in a grid of photos sorted by
    # date, a range is what "from this one to that one" means.)

    _RANGE_KEYS: ClassVar[dict[Qt.Key, QAbstractItemView.CursorAction]] = {
        Qt.Key.Key_Left: QAbstractItemView.CursorAction.MoveLeft,
        Qt.Key.Key_Right: QAbstractItemView.CursorAction.MoveRight,
        Qt.Key.Key_Up: QAbstractItemView.CursorAction.MoveUp,
        Qt.Key.Key_Down: QAbstractItemView.CursorAction.MoveDown,
        Qt.Key.Key_Home: QAbstractItemView.CursorAction.MoveHome,
        Qt.Key.Key_End: QAbstractItemView.CursorAction.MoveEnd,
        Qt.Key.Key_PageUp: QAbstractItemView.CursorAction.MovePageUp,
        Qt.Key.Key_PageDown: QAbstractItemView.CursorAction.MovePageDown,
    }

    def mousePressEvent(self, event: QMouseEvent) -> None:
        index = self.indexAt(event.position().toPoint())
        modifiers = event.modifiers()
        if (event.button() == Qt.MouseButton.LeftButton and modifiers & Qt.KeyboardModifier.ShiftModifier
                and index.isValid() and self.selectionMode() == QAbstractItemView.SelectionMode.ExtendedSelection):
            self._select_range_to(index, keep=bool(modifiers & Qt.KeyboardModifier.ControlModifier))
            event.accept()
            return
        super().mousePressEvent(event)
        if index.isValid():
            self._anchor = index.row()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        modifiers = event.modifiers()
        action = self._RANGE_KEYS.get(Qt.Key(event.key()))
        if (action is not None and modifiers & Qt.KeyboardModifier.ShiftModifier
                and self.selectionMode() == QAbstractItemView.SelectionMode.ExtendedSelection):
            target = self.moveCursor(action, modifiers)
            if target.isValid():
                self._select_range_to(target, keep=bool(modifiers & Qt.KeyboardModifier.ControlModifier))
                event.accept()
                return
        super().keyPressEvent(event)
        if action is not None and self.currentIndex().isValid():
            self._anchor = self.currentIndex().row()

    def _select_range_to(self, index: QModelIndex, *, keep: bool) -> None:
        model = self.model()
        current = self.currentIndex()
        anchor = self._anchor if 0 <= self._anchor < self._count() else (
            current.row() if current.isValid() else index.row())
        low, high = sorted((anchor, index.row()))
        root = self.rootIndex()
        selection = QItemSelection(model.index(low, 0, root), model.index(high, 0, root))
        flags = QItemSelectionModel.SelectionFlag.Select if keep else QItemSelectionModel.SelectionFlag.ClearAndSelect
        self.selectionModel().select(selection, flags)
        self.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.NoUpdate)
        self._anchor = anchor
        self.scrollTo(index)

    # -- painting -----------------------------------------------------------------------------------

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        index = self.indexAt(event.position().toPoint())
        self._set_hover(index.row() if index.isValid() else -1)
        super().mouseMoveEvent(event)

    def viewportEvent(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Leave:  # the pointer left the tiles: no tile is hovered
            self._set_hover(-1)
        return super().viewportEvent(event)

    def _set_hover(self, row: int) -> None:
        if row == self._hover:
            return
        offset = self.verticalOffset()
        for old in (self._hover, row):
            if old >= 0:
                self.viewport().update(self._content_rect(old).translated(0, -offset))
        self._hover = row

    def paintEvent(self, event: QPaintEvent) -> None:
        model = self.model()
        count = self._count()
        if model is None or count == 0:
            return
        painter = QPainter(self.viewport())
        area = event.rect()
        offset = self.verticalOffset()
        option = QStyleOptionViewItem()
        self.initViewItemOption(option)
        delegate = self.delegate
        style = delegate.style_for(painter, option)
        selection = self.selectionModel()
        any_selected = selection is not None and selection.hasSelection()
        root = self.rootIndex()
        # The grid's own model hands its tiles over directly (no C++ round trip per tile); any other model
        # answers TileRole.
        tile_of = model.tile if isinstance(model, PhotoGridModel) else (
            lambda row: model.index(row, 0, root).data(TileRole))
        spacing, gap_x, width, height = self._spacing, self._gap_x, self._tile.width(), self._tile.height()
        columns = self._columns_in(area.left(), area.right())
        for line in self._lines_in(area.top() + offset, area.bottom() + offset):
            top = spacing + line * (height + spacing) - offset
            for column in columns:
                row = line * self._columns + column
                if row >= count:
                    break
                tile = tile_of(row)
                if not isinstance(tile, Tile):
                    continue
                selected = any_selected and selection.isSelected(model.index(row, 0, root))
                delegate.paint_tile(painter, gap_x + column * (width + gap_x), top, tile, selected,
                                    row == self._hover, style)
        painter.end()

    # -- actions ------------------------------------------------------------------------------------

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
