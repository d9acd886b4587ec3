"""A large side-by-side compare of two photos of a duplicate cluster, with synchronised zoom and pan.

Both panes show the same part of the photo at the same magnification relative to each photo's own size, so a
copy resized to 50 % lines up with its original: zooming or panning one moves the other.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QImage, QKeySequence, QPainter, QPixmap, QResizeEvent, QShortcut, QWheelEvent
from PySide6.QtWidgets import (
    QDialog,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

#: Longest side the compared photos are decoded at.
COMPARE_SIDE = 2048
ZOOM_STEP = 1.25
MAX_ZOOM = 32.0


class ZoomView(QGraphicsView):
    """One photo, zoomable (wheel, keys) and pannable (drag); reports its view as (zoom, centre).

    ``zoom`` is relative to "fit in the view" (1.0); the centre is in fractions of the photo's width and height,
    so that two photos of different pixel sizes can show the same region.

    Signals:
        view_changed(zoom: float, cx: float, cy: float): the user zoomed or panned.
    """

    view_changed = Signal(float, float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self._item = QGraphicsPixmapItem()
        self._item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self._item)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self._zoom = 1.0
        self._center = QPointF(0.5, 0.5)
        self._applying = False
        self.horizontalScrollBar().valueChanged.connect(self._scrolled)
        self.verticalScrollBar().valueChanged.connect(self._scrolled)

    @property
    def zoom(self) -> float:
        return self._zoom

    @property
    def has_image(self) -> bool:
        return not self._item.pixmap().isNull()

    def center_fraction(self) -> tuple[float, float]:
        return self._center.x(), self._center.y()

    def set_image(self, image: QImage) -> None:
        self._item.setPixmap(QPixmap.fromImage(image))
        self.scene().setSceneRect(QRectF(self._item.pixmap().rect()))
        self._apply()

    def set_view(self, zoom: float, cx: float, cy: float) -> None:
        """Show ``zoom`` x fit, centred on (cx, cy) of the photo; no signal (a follower's update)."""
        self._zoom = min(MAX_ZOOM, max(1.0, zoom))
        self._center = QPointF(min(1.0, max(0.0, cx)), min(1.0, max(0.0, cy)))
        self._apply()

    def zoom_by(self, factor: float) -> None:
        self.set_view(self._zoom * factor, self._center.x(), self._center.y())
        self.view_changed.emit(self._zoom, self._center.x(), self._center.y())

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120
        if steps:
            self.zoom_by(ZOOM_STEP**steps)
        event.accept()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._apply()

    def _fit_scale(self) -> float:
        pix = self._item.pixmap()
        if pix.isNull() or pix.width() == 0 or pix.height() == 0:
            return 1.0
        view = self.viewport().size()
        return min(view.width() / pix.width(), view.height() / pix.height())

    def _apply(self) -> None:
        pix = self._item.pixmap()
        if pix.isNull():
            return
        self._applying = True
        try:
            scale = self._fit_scale() * self._zoom
            self.resetTransform()
            self.scale(scale, scale)
            self.centerOn(QPointF(self._center.x() * pix.width(), self._center.y() * pix.height()))
        finally:
            self._applying = False

    def _scrolled(self, _value: int) -> None:
        pix = self._item.pixmap()
        if self._applying or pix.isNull():
            return
        centre = self.mapToScene(self.viewport().rect().center())
        self._center = QPointF(
            min(1.0, max(0.0, centre.x() / pix.width())), min(1.0, max(0.0, centre.y() / pix.height()))
        )
        self.view_changed.emit(self._zoom, self._center.x(), self._center.y())


class CompareDialog(QDialog):
    """Two (or more) photos side by side, large, zoomed and panned together.

    Args:
        paths: the photos, the keeper first.
        captions: a line under each ("KEEP · 4000 × 3000 · trip/").
        load: ``load(path, on_image)``: decode off the GUI thread and hand the QImage back on it.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        captions: Sequence[str],
        load: Callable[[Path, Callable[[QImage], None]], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compare side by side")
        self.views: list[ZoomView] = []
        panes = QHBoxLayout()
        for path, caption in zip(paths, captions, strict=True):
            column = QVBoxLayout()
            view = ZoomView(self)
            view.setToolTip(str(path))
            view.view_changed.connect(functools.partial(self._follow, view))
            label = QLabel(caption, self)
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            column.addWidget(view, 1)
            column.addWidget(label)
            panes.addLayout(column, 1)
            self.views.append(view)
            load(path, functools.partial(self._loaded, view))
        buttons = QHBoxLayout()
        actions: list[tuple[str, Callable[[], None]]] = [
            ("Zoom in", lambda: self.views[0].zoom_by(ZOOM_STEP)),
            ("Zoom out", lambda: self.views[0].zoom_by(1 / ZOOM_STEP)),
            ("Fit", self.fit),
        ]
        for text, action in actions:
            button = QPushButton(text, self)
            button.clicked.connect(lambda _checked=False, act=action: act())
            buttons.addWidget(button)
        buttons.addStretch(1)
        hint = QLabel("Scroll to zoom, drag to move: both photos follow.", self)
        buttons.addWidget(hint)
        close = QPushButton("Close", self)
        close.clicked.connect(self.accept)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addLayout(panes, 1)
        layout.addLayout(buttons)
        for key, slot in (
            (QKeySequence.StandardKey.ZoomIn, lambda: self.views[0].zoom_by(ZOOM_STEP)),
            (QKeySequence.StandardKey.ZoomOut, lambda: self.views[0].zoom_by(1 / ZOOM_STEP)),
            (QKeySequence(Qt.Key.Key_0), self.fit),
        ):
            QShortcut(key, self).activated.connect(slot)
        self.resize(1400, 860)

    def fit(self) -> None:
        for view in self.views:
            view.set_view(1.0, 0.5, 0.5)

    def _loaded(self, view: ZoomView, image: QImage) -> None:
        view.set_image(image)
        view.set_view(self.views[0].zoom, *self.views[0].center_fraction())

    def _follow(self, source: ZoomView, zoom: float, cx: float, cy: float) -> None:
        for view in self.views:
            if view is not source:
                view.set_view(zoom, cx, cy)
