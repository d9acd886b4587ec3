"""Item delegates: they paint from model roles only, and never load anything themselves."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPainterPath, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from photoembed.gui import theme
from photoembed.gui.models import (
    ActivityRole,
    FailedCountRole,
    MonthRole,
    PhotoCountRole,
    ProtectedRole,
    RelevanceRole,
    ScoreRole,
    ThumbnailFailedRole,
    ThumbnailRole,
    WatchStateRole,
)

ModelIndex = QModelIndex | QPersistentModelIndex

TILE_PADDING = 6
CAPTION_LINES = 1


class ThumbnailDelegate(QStyledItemDelegate):
    """A grid tile: the thumbnail (or a placeholder while it decodes), the file name, and for results how
    well it matches: a bar relative to the best and worst result shown (a raw cosine means nothing to a
    person), and the raw score only when asked for.

    Args:
        thumb_size: the square the thumbnail fits in, in device-independent pixels.
        show_score: draw the raw similarity score badge (a setting; off by default).
    """

    def __init__(self, thumb_size: int, *, show_score: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.thumb_size = thumb_size
        self.show_score = show_score
        self._placeholder = theme.icon("image")
        self._broken = theme.icon("warning", theme.ACCENT_WARN)
        self._marks: dict[tuple[bool, int, float], QPixmap] = {}

    def sizeHint(self, option: QStyleOptionViewItem, index: ModelIndex) -> QSize:
        line = QFontMetrics(option.font).height()
        return QSize(self.thumb_size + 2 * TILE_PADDING, self.thumb_size + 2 * TILE_PADDING + line + 4)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = option.palette
        rect: QRect = option.rect
        state = option.state
        selected = bool(state & QStyle.StateFlag.State_Selected)
        hovered = bool(state & QStyle.StateFlag.State_MouseOver)
        tile = QRectF(rect.adjusted(2, 2, -2, -2))
        if selected or hovered:
            color = palette.color(QPalette.ColorRole.Highlight)
            if not selected:
                color.setAlphaF(0.18)
            path = QPainterPath()
            path.addRoundedRect(tile, 8, 8)
            painter.fillPath(path, color)

        box = QRect(rect.x() + TILE_PADDING, rect.y() + TILE_PADDING, self.thumb_size, self.thumb_size)
        pixmap = index.data(ThumbnailRole)
        if isinstance(pixmap, QPixmap) and not pixmap.isNull():
            self._paint_pixmap(painter, box, pixmap)
        else:
            frame = QPainterPath()
            frame.addRoundedRect(QRectF(box).adjusted(4, 4, -4, -4), 6, 6)
            painter.fillPath(frame, palette.color(QPalette.ColorRole.AlternateBase))
            failed = index.data(ThumbnailFailedRole)
            side = max(16, self.thumb_size // 4)
            mark = self._mark(bool(failed), side, painter.device().devicePixelRatioF() if painter.device() else 1.0)
            painter.drawPixmap(QRect(box.center().x() - side // 2, box.center().y() - side // 2, side, side), mark)

        score = index.data(ScoreRole)
        if self.show_score and isinstance(score, float):
            self._paint_badge(painter, box, f"{score:.3f}")
        relevance = index.data(RelevanceRole)
        if isinstance(relevance, float):
            self._paint_relevance(painter, box, relevance, palette)
        month = index.data(MonthRole)
        if month:
            self._paint_badge(painter, box, str(month), left=True)

        text_color = palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        )
        painter.setPen(text_color)
        metrics = QFontMetrics(option.font)
        caption = QRect(rect.x() + TILE_PADDING, box.bottom() + 4, self.thumb_size, metrics.height())
        name = metrics.elidedText(str(index.data(Qt.ItemDataRole.DisplayRole) or ""),
                                  Qt.TextElideMode.ElideMiddle, caption.width())
        painter.drawText(caption, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, name)
        painter.restore()

    def _mark(self, failed: bool, side: int, dpr: float) -> QPixmap:
        """The placeholder (or "cannot read") mark, rendered once per size: tiles paint it many times."""
        key = (failed, side, dpr)
        pixmap = self._marks.get(key)
        if pixmap is None:
            icon = self._broken if failed else self._placeholder
            pixmap = icon.pixmap(QSize(side, side), dpr)
            self._marks[key] = pixmap
        return pixmap

    @staticmethod
    def _paint_pixmap(painter: QPainter, box: QRect, pixmap: QPixmap) -> None:
        dpr = pixmap.devicePixelRatio() or 1.0
        size = QSize(round(pixmap.width() / dpr), round(pixmap.height() / dpr))
        size.scale(box.size(), Qt.AspectRatioMode.KeepAspectRatio)
        target = QRect(0, 0, size.width(), size.height())
        target.moveCenter(box.center())
        # No rounded clip path: an antialiased clip made each tile's drawPixmap ~10x slower (0.4 ms a tile, a
        # 20 ms paint per scroll step); thumbnails are decoded at the tile's size, so this is a plain blit.
        if target.width() * dpr != pixmap.width():
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawPixmap(target, pixmap)

    @staticmethod
    def _paint_relevance(painter: QPainter, box: QRect, relevance: float, palette: QPalette) -> None:
        """A thin bar under the thumbnail: full for the best result shown, short for the weakest."""
        track = QRectF(box.left() + 8, box.bottom() - 1, box.width() - 16, 4)
        back = QPainterPath()
        back.addRoundedRect(track, 2, 2)
        muted = palette.color(QPalette.ColorRole.Mid)
        muted.setAlphaF(0.45)
        painter.fillPath(back, muted)
        fill = QRectF(track.left(), track.top(), max(4.0, track.width() * (0.15 + 0.85 * relevance)), 4)
        bar = QPainterPath()
        bar.addRoundedRect(fill, 2, 2)
        painter.fillPath(bar, palette.color(QPalette.ColorRole.Highlight))

    @staticmethod
    def _paint_badge(painter: QPainter, box: QRect, text: str, *, left: bool = False) -> None:
        painter.save()  # the badge's bold font and white pen must not leak into the caption
        font = QFont(painter.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
        font.setBold(True)
        metrics = QFontMetrics(font)
        width = metrics.horizontalAdvance(text) + 10
        x = box.left() + 4 if left else box.right() - width - 4
        badge = QRectF(x, box.top() + 4, width, metrics.height() + 4)
        path = QPainterPath()
        path.addRoundedRect(badge, 6, 6)
        painter.fillPath(path, QColor(0, 0, 0, 150))
        painter.setFont(font)
        painter.setPen(QColor("white"))
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)
        painter.restore()


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
