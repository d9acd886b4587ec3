"""Item delegates: they paint from model roles only, and never load anything themselves."""

from __future__ import annotations

import collections
from typing import NamedTuple

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QRectF, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QPainter,
    QPainterPath,
    QPalette,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from photoembed.gui import theme
from photoembed.gui.models import (
    ActivityRole,
    FailedCountRole,
    PhotoCountRole,
    ProtectedRole,
    Tile,
    TileRole,
    WatchStateRole,
)

ModelIndex = QModelIndex | QPersistentModelIndex

TILE_PADDING = 6
CAPTION_LINES = 1


class TileStyle(NamedTuple):
    """What the tiles of one paint share (see :meth:`ThumbnailDelegate.style_for`)."""

    palette: QPalette
    font: QFont
    key: str  # the font's key, for the caches
    metrics: QFontMetrics
    ascent: int
    size: QSize  # the tile's size
    dpr: float
    highlight: QColor
    hover: QColor
    text: QColor
    highlighted_text: QColor
    alternate: QColor
    base: QColor


class ThumbnailDelegate(QStyledItemDelegate):
    """A grid tile: the thumbnail (or a placeholder while it decodes), the file name, and for results how
    well it matches: a bar relative to the best and worst result shown (a raw cosine means nothing to a
    person), and the raw score only when asked for.

    A paint asks the model once (:data:`TileRole`) and draws pixmaps made once (the placeholder tile, each
    month's badge) and each caption as elided once; only a selected or hovered tile draws a shape. Text
    elision alone cost 35 us a tile, a rounded placeholder frame 12 us, each ``data()`` call 10-20 us.

    Args:
        thumb_size: the square the thumbnail fits in, in device-independent pixels.
        show_score: draw the raw similarity score badge (a setting; off by default).
    """

    CACHED_TEXTS = 4096  # captions and badges kept (a screen shows ~30; scrolling back finds them again)

    def __init__(self, thumb_size: int, *, show_score: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.thumb_size = thumb_size
        self.show_score = show_score
        self._placeholder = theme.icon("image")
        self._broken = theme.icon("warning", theme.ACCENT_WARN)
        self._frames: dict[tuple[bool, int, float, int, int | None], QPixmap] = {}
        self._captions: collections.OrderedDict[tuple[str, str], tuple[str, int]] = collections.OrderedDict()
        self._badges: collections.OrderedDict[tuple[str, str, float], QPixmap] = collections.OrderedDict()
        self._fonts: dict[str, QFontMetrics] = {}

    def _metrics(self, font: QFont, key: str) -> QFontMetrics:
        metrics = self._fonts.get(key)
        if metrics is None:
            metrics = self._fonts[key] = QFontMetrics(font)
        return metrics

    def sizeHint(self, option: QStyleOptionViewItem, index: ModelIndex) -> QSize:
        font = option.font
        line = self._metrics(font, font.key()).height()
        return QSize(self.thumb_size + 2 * TILE_PADDING, self.thumb_size + 2 * TILE_PADDING + line + 4)

    def style_for(self, painter: QPainter, option: QStyleOptionViewItem) -> TileStyle:
        """What every tile of one paint shares (colours, font, pixel ratio): looked up once per paint."""
        palette = option.palette
        font = option.font
        key = font.key()
        metrics = self._metrics(font, key)
        hover = palette.color(QPalette.ColorRole.Highlight)
        hover.setAlphaF(0.18)
        device = painter.device()
        return TileStyle(
            palette, font, key, metrics, metrics.ascent(), self.sizeHint(option, QModelIndex()),
            device.devicePixelRatioF() if device is not None else 1.0,
            palette.color(QPalette.ColorRole.Highlight), hover, palette.color(QPalette.ColorRole.Text),
            palette.color(QPalette.ColorRole.HighlightedText), palette.color(QPalette.ColorRole.AlternateBase),
            palette.color(QPalette.ColorRole.Base),
        )

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        tile = index.data(TileRole)
        if not isinstance(tile, Tile):
            return
        state = option.state
        rect: QRect = option.rect
        self.paint_tile(painter, rect.x(), rect.y(), tile, bool(state & QStyle.StateFlag.State_Selected),
                        bool(state & QStyle.StateFlag.State_MouseOver), self.style_for(painter, option))

    def paint_tile(self, painter: QPainter, left: int, top: int, tile: Tile, selected: bool, hovered: bool,
                   style: TileStyle) -> None:
        """Paint one tile with its top-left corner at ``left, top`` (the grid calls this directly)."""
        x, y, side = left + TILE_PADDING, top + TILE_PADDING, self.thumb_size
        marked = selected or hovered
        if marked:
            path = QPainterPath()
            path.addRoundedRect(QRectF(left + 2, top + 2, style.size.width() - 4, style.size.height() - 4), 8, 8)
            painter.save()
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.fillPath(path, style.highlight if selected else style.hover)
            painter.restore()
        dpr = style.dpr
        if tile.thumbnail is not None and not tile.thumbnail.isNull():
            self._paint_pixmap(painter, x, y, side, tile.thumbnail)
        else:
            # On a plain tile, the placeholder is opaque (drawn on the view's base colour): a copy, not a blend.
            painter.drawPixmap(x, y, self._frame(tile.failed, style.alternate, None if marked else style.base, dpr))
        if tile.relevance is not None:
            self._paint_relevance(painter, QRect(x, y, side, side), tile.relevance, style.palette)
        if self.show_score and tile.score is not None:
            badge = self._badge(f"{tile.score:.3f}", style.font, style.key, dpr)
            painter.drawPixmap(x + side - round(badge.width() / dpr) - 4, y + 4, badge)
        if tile.month:
            painter.drawPixmap(x + 4, y + 4, self._badge(tile.month, style.font, style.key, dpr))
        text, dx = self._caption(tile.name, style.key, style.metrics)
        painter.setPen(style.highlighted_text if selected else style.text)
        painter.drawText(x + dx, y + side + 4 + style.ascent, text)

    def _caption(self, name: str, key: str, metrics: QFontMetrics) -> tuple[str, int]:
        """The file name elided to the tile's width (only a name too long is elided: that costs 35 us), and
        how far right of the tile's left edge it starts, to be centred."""
        found = self._captions.get((name, key))
        if found is not None:
            self._captions.move_to_end((name, key))
            return found
        width = metrics.horizontalAdvance(name)
        shown = name
        if width > self.thumb_size:
            shown = metrics.elidedText(name, Qt.TextElideMode.ElideMiddle, self.thumb_size)
            width = metrics.horizontalAdvance(shown)
        found = (shown, max(0, (self.thumb_size - width) // 2))
        self._captions[(name, key)] = found
        while len(self._captions) > self.CACHED_TEXTS:
            self._captions.popitem(last=False)
        return found

    def _frame(self, failed: bool, color: QColor, ground: QColor | None, dpr: float) -> QPixmap:
        """The placeholder tile (or the "cannot read" one): a rounded frame and a mark, rendered once, on
        ``ground`` (None: transparent around the frame)."""
        key = (failed, self.thumb_size, dpr, color.rgba(), None if ground is None else ground.rgba())
        pixmap = self._frames.get(key)
        if pixmap is None:
            side = self.thumb_size
            pixmap = QPixmap(round(side * dpr), round(side * dpr))
            pixmap.setDevicePixelRatio(dpr)
            pixmap.fill(Qt.GlobalColor.transparent if ground is None else ground)
            painter = QPainter(pixmap)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            frame = QPainterPath()
            frame.addRoundedRect(QRectF(4, 4, side - 8, side - 8), 6, 6)
            painter.fillPath(frame, color)
            mark = max(16, side // 4)
            icon = self._broken if failed else self._placeholder
            icon.paint(painter, QRect((side - mark) // 2, (side - mark) // 2, mark, mark))
            painter.end()
            self._frames[key] = pixmap
        return pixmap

    @staticmethod
    def _paint_pixmap(painter: QPainter, x: int, y: int, side: int, pixmap: QPixmap) -> None:
        dpr = pixmap.devicePixelRatio() or 1.0
        pixel_width, pixel_height = pixmap.width(), pixmap.height()
        width, height = pixel_width / dpr, pixel_height / dpr
        fit = min(side / width, side / height)
        target_width, target_height = max(1, round(width * fit)), max(1, round(height * fit))
        target = QRect(x + (side - target_width) // 2, y + (side - target_height) // 2, target_width, target_height)
        # No rounded clip path: an antialiased clip made each tile's drawPixmap ~10x slower (0.4 ms a tile, a
        # 20 ms paint per scroll step); thumbnails are decoded at the tile's size, so this is a plain blit.
        if round(target_width * dpr) != pixel_width:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawPixmap(target, pixmap)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        else:
            painter.drawPixmap(target, pixmap)

    @staticmethod
    def _paint_relevance(painter: QPainter, box: QRect, relevance: float, palette: QPalette) -> None:
        """A thin bar under the thumbnail: full for the best result shown, short for the weakest."""
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        track = QRectF(box.left() + 8, box.bottom() - 1, box.width() - 16, 4)
        muted = palette.color(QPalette.ColorRole.Mid)
        muted.setAlphaF(0.45)
        painter.setBrush(muted)
        painter.drawRoundedRect(track, 2, 2)
        painter.setBrush(palette.color(QPalette.ColorRole.Highlight))
        length = max(4.0, track.width() * (0.15 + 0.85 * relevance))
        painter.drawRoundedRect(QRectF(track.left(), track.top(), length, 4), 2, 2)
        painter.restore()

    def _badge(self, text: str, font: QFont, font_key: str, dpr: float) -> QPixmap:
        """White bold text on a dark rounded label ("March 2024", a raw score), rendered once per text."""
        key = (text, font_key, dpr)
        pixmap = self._badges.get(key)
        if pixmap is not None:
            self._badges.move_to_end(key)
            return pixmap
        bold = QFont(font)
        bold.setPointSizeF(max(7.0, bold.pointSizeF() * 0.85))
        bold.setBold(True)
        metrics = QFontMetrics(bold)
        width, height = metrics.horizontalAdvance(text) + 10, metrics.height() + 4
        pixmap = QPixmap(round(width * dpr), round(height * dpr))
        pixmap.setDevicePixelRatio(dpr)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        path = QPainterPath()
        path.addRoundedRect(QRectF(0, 0, width, height), 6, 6)
        painter.fillPath(path, QColor(0, 0, 0, 150))
        painter.setFont(bold)
        painter.setPen(QColor("white"))
        painter.drawText(QRectF(0, 0, width, height), Qt.AlignmentFlag.AlignCenter, text)
        painter.end()
        self._badges[key] = pixmap
        while len(self._badges) > self.CACHED_TEXTS:
            self._badges.popitem(last=False)
        return pixmap


class RootDelegate(QStyledItemDelegate):
    """A library folder: name, a second line with counts and watcher state, a lock when protected."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._folder = theme.icon("folder")
        self._lock = theme.icon("lock")

    def sizeHint(self, option: QStyleOptionViewItem, index: ModelIndex) -> QSize:
        line = QFontMetrics(option.font).height()
        return QSize(200, 2 * line + 14)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = option.palette
        rect: QRect = option.rect
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            path = QPainterPath()
            path.addRoundedRect(QRectF(rect.adjusted(4, 2, -4, -2)), 6, 6)
            painter.fillPath(path, palette.color(QPalette.ColorRole.Highlight))
        fg = palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
        metrics = QFontMetrics(option.font)
        line = metrics.height()
        icon_side = 20
        self._folder.paint(painter, QRect(rect.x() + 12, rect.y() + (rect.height() - icon_side) // 2,
                                          icon_side, icon_side))
        right = rect.right() - 10
        small = QFont(option.font)
        small.setPointSizeF(max(7.0, small.pointSizeF() * 0.88))
        small_metrics = QFontMetrics(small)
        watch = str(index.data(WatchStateRole) or "")
        if watch:
            # The watcher's state sits on the name line, right-aligned, after a coloured dot.
            painter.setFont(small)
            width = small_metrics.horizontalAdvance(watch)
            x = right - width
            painter.setPen(fg if selected else theme.muted(fg, 0.35))
            painter.drawText(QRect(x, rect.y() + 6, width, line),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, watch)
            painter.setPen(QPen(Qt.PenStyle.NoPen))
            painter.setBrush(_watch_color(watch))
            painter.drawEllipse(QRectF(x - 11, rect.y() + 6 + line / 2 - 3.5, 7, 7))
            right = x - 16
            painter.setFont(option.font)
        if index.data(ProtectedRole):
            self._lock.paint(painter, QRect(right - 16, rect.y() + 6 + (line - 16) // 2, 16, 16))
            right -= 20
        text_left = rect.x() + 12 + icon_side + 10
        painter.setPen(fg)
        name = metrics.elidedText(str(index.data(Qt.ItemDataRole.DisplayRole)), Qt.TextElideMode.ElideMiddle,
                                  right - text_left)
        painter.drawText(QRect(text_left, rect.y() + 6, right - text_left, line), Qt.AlignmentFlag.AlignLeft, name)

        photos = int(index.data(PhotoCountRole) or 0)
        failed = int(index.data(FailedCountRole) or 0)
        detail = f"{photos:,} photos"
        activity = str(index.data(ActivityRole) or "")
        if activity:
            detail = f"{activity} · {detail}" if photos else activity  # not "0 photos" while it is indexed
        if failed:
            detail += f" · {failed:,} unreadable"
        painter.setFont(small)
        second = QRect(text_left, rect.y() + 8 + line, rect.right() - 10 - text_left, line)
        painter.setPen(fg if selected else theme.muted(fg, 0.35))
        painter.drawText(second, Qt.AlignmentFlag.AlignLeft,
                         small_metrics.elidedText(detail, Qt.TextElideMode.ElideRight, second.width()))
        painter.restore()


def _watch_color(state: str) -> QColor:
    lowered = state.lower()
    if "poll" in lowered:
        return theme.ACCENT_WARN
    if "offline" in lowered or "error" in lowered or "stopped" in lowered:
        return theme.ACCENT_TRASH
    if "watch" in lowered or "live" in lowered:
        return theme.ACCENT_KEEP
    return QColor("#8a9099")
