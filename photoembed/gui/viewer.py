"""The photo viewer: one photo large, prev/next through the grid it was opened from, zoom, metadata in words.

Keys: Left/Right (and Up/Down, Space, Backspace) move through the grid, Home/End go to its ends, ``F`` fits
the photo to the window, ``1`` shows it at 100%, ``+``/``-`` zoom, Delete moves it to the trash (undoable),
Escape closes. Shortcuts are window-wide actions, so no button can take the arrow keys for focus moves.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QImage, QKeySequence, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from photoembed.gui import theme
from photoembed.gui.controller import LibraryController
from photoembed.gui.grid import copy_path, open_with_system, show_in_file_manager
from photoembed.gui.thumbnails import load_qimage
from photoembed.gui.workers import TaskError
from photoembed.storage.records import Photo

logger = logging.getLogger(__name__)

VIEW_SIZE = 2048  # decoded size for "fit"; 100% decodes the photo at its own size
MAX_FULL_SIDE = 12000
FIELDS = ("Taken", "Camera", "Lens", "Place", "Dimensions", "File size", "Format", "Folder", "Position")


def human_bytes(size: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def format_time(timestamp: float | None) -> str:
    if timestamp is None:
        return "unknown"
    return dt.datetime.fromtimestamp(timestamp).strftime("%A %d %B %Y, %H:%M")


@dataclass(frozen=True)
class CameraInfo:
    """What the viewer says about how a photo was taken (read from its EXIF on a pool thread)."""

    camera: str | None = None
    lens: str | None = None
    latitude: float | None = None
    longitude: float | None = None


def read_camera_info(path: Path) -> CameraInfo:
    """Pool thread: camera, lens and GPS position from a photo's EXIF; absent parts are None."""
    try:
        with Image.open(path) as image:
            exif = image.getexif()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return CameraInfo()
    make = str(exif.get(271) or "").strip()
    model = str(exif.get(272) or "").strip()
    camera = model if make and model.lower().startswith(make.lower().split()[0]) else f"{make} {model}".strip()
    lens = None
    try:
        lens = str(exif.get_ifd(0x8769).get(0xA434) or "").strip() or None
        gps = exif.get_ifd(0x8825)
    except (KeyError, ValueError, TypeError):
        gps = {}
    latitude = _degrees(gps.get(2), gps.get(1))
    longitude = _degrees(gps.get(4), gps.get(3))
    if latitude == 0 and longitude == 0:
        latitude = longitude = None  # cameras without a fix write zeros
    return CameraInfo(camera or None, lens, latitude, longitude)


def _degrees(value: object, ref: object) -> float | None:
    try:
        d, m, s = (float(x) for x in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    sign = -1.0 if str(ref).upper() in ("S", "W") else 1.0
    return sign * (d + m / 60 + s / 3600)


def format_place(latitude: float | None, longitude: float | None) -> str:
    if latitude is None or longitude is None:
        return "no position recorded"
    return (f"{abs(latitude):.4f}° {'N' if latitude >= 0 else 'S'}, "
            f"{abs(longitude):.4f}° {'E' if longitude >= 0 else 'W'}")


class _ImageView(QScrollArea):
    """The photo, fitted to the view or at a zoom factor (1.0 = one image pixel per screen pixel)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel(self)
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setWidget(self.label)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setWidgetResizable(True)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setMinimumSize(320, 240)
        self._pixmap: QPixmap | None = None
        self.zoom: float | None = None  # None: fit

    def set_pixmap(self, pixmap: QPixmap | None) -> None:
        self._pixmap = pixmap
        self._render()

    def set_zoom(self, zoom: float | None) -> None:
        self.zoom = None if zoom is None else max(0.05, min(8.0, zoom))
        self._render()

    def shown_scale(self) -> float:
        """Screen pixels per image pixel as shown now."""
        if self._pixmap is None or self._pixmap.isNull():
            return 1.0
        if self.zoom is not None:
            return self.zoom
        viewport = self.viewport().size()
        return min(viewport.width() / self._pixmap.width(), viewport.height() / self._pixmap.height(), 1.0)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self.zoom is None:
            self._render()

    def _render(self) -> None:
        pixmap = self._pixmap
        if pixmap is None or pixmap.isNull():
            self.label.setPixmap(QPixmap())
            return
        dpr = self.devicePixelRatioF()
        if self.zoom is None:
            self.setWidgetResizable(True)
            viewport = self.viewport().size()
            target = QSize(round(viewport.width() * dpr), round(viewport.height() * dpr))
            if pixmap.width() <= target.width() and pixmap.height() <= target.height():
                scaled = pixmap.copy()  # never enlarge a small photo to fit: it would only blur
            else:
                scaled = pixmap.scaled(target, Qt.AspectRatioMode.KeepAspectRatio,
                                       Qt.TransformationMode.SmoothTransformation)
        else:
            self.setWidgetResizable(False)
            size = QSize(round(pixmap.width() * self.zoom), round(pixmap.height() * self.zoom))
            scaled = pixmap.scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                                   Qt.TransformationMode.SmoothTransformation)
            self.label.resize(QSize(round(scaled.width() / dpr), round(scaled.height() / dpr)))
        scaled.setDevicePixelRatio(dpr)
        self.label.setPixmap(scaled)


class PhotoViewer(QDialog):
    """Shows one photo large; moves through ``count`` photos given by ``path_at``.

    Args:
        controller: decodes and reads metadata off the GUI thread.
        path_at: the path of the photo at a position of the grid being browsed.
        count: how many photos that grid holds.
        start: the position to show first.

    Signals:
        similar_requested(path: str): "Find similar" (the grid runs the query; the viewer closes).
        trash_requested(paths: list[Path]): move the shown photo to the trash (the grid's owner confirms).
        position_changed(position: int): the photo shown changed (the grid follows).
    """

    similar_requested = Signal(str)
    trash_requested = Signal(object)
    position_changed = Signal(int)

    def __init__(
        self,
        controller: LibraryController,
        *,
        path_at: Callable[[int], Path],
        count: int,
        start: int,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Photo")
        self.resize(1180, 780)
        self._controller = controller
        self._path_at = path_at
        self._count = count
        self._position = start
        self._request = 0
        self._full_request = 0
        self._photo: Photo | None = None

        self.image = _ImageView(self)
        self.title = QLabel(self)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.title.setWordWrap(True)
        self.meta = QFormLayout()
        self.meta.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self._fields: dict[str, QLabel] = {}
        for name in FIELDS:
            label = QLabel("…", self)
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self._fields[name] = label
            self.meta.addRow(name, label)

        self.prev_button = self._tool("", "Previous photo (Left)", lambda: self.step(-1))
        self.next_button = self._tool("", "Next photo (Right)", lambda: self.step(1))
        self.prev_button.setText("‹")
        self.next_button.setText("›")
        self.fit_button = self._tool("", "Fit to the window (F)", self.fit)
        self.fit_button.setText("Fit")
        self.actual_button = self._tool("", "Show at 100% (1)", self.actual_size)
        self.actual_button.setText("100%")
        self.zoom_label = QLabel(self)

        buttons = QHBoxLayout()
        buttons.addWidget(self.prev_button)
        buttons.addWidget(self.next_button)
        buttons.addSpacing(12)
        buttons.addWidget(self.fit_button)
        buttons.addWidget(self.actual_button)
        buttons.addWidget(self.zoom_label)
        buttons.addStretch(1)
        for icon_name, text, action in (
            ("similar", "Find similar", self._find_similar),
            ("folder", "Show in folder", lambda: show_in_file_manager(self.current_path)),
            ("open-external", "Open with…", lambda: open_with_system(self.current_path)),
            ("copy", "Copy path", lambda: copy_path(self.current_path)),
            ("trash", "Move to trash", self._trash),
        ):
            button = QPushButton(theme.icon(icon_name), text, self)
            button.setAutoDefault(False)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the arrow keys belong to the photos
            button.clicked.connect(action)
            buttons.addWidget(button)
        self.trash_button = button

        side = QVBoxLayout()
        side.addWidget(self.title)
        side.addSpacing(6)
        side.addLayout(self.meta)
        side.addStretch(1)
        side_widget = QWidget(self)
        side_widget.setLayout(side)
        side_widget.setFixedWidth(300)

        body = QHBoxLayout()
        body.addWidget(self.image, 1)
        body.addWidget(side_widget)
        layout = QVBoxLayout(self)
        layout.addLayout(body, 1)
        layout.addLayout(buttons)

        for keys, slot in (
            (("Right", "Down", "Space", "PgDown"), lambda: self.step(1)),
            (("Left", "Up", "Backspace", "PgUp"), lambda: self.step(-1)),
            (("Home",), lambda: self.show_position(0)),
            (("End",), lambda: self.show_position(self._count - 1)),
            (("F",), self.fit),
            (("1",), self.actual_size),
            (("+", "="), lambda: self.zoom_by(1.25)),
            (("-",), lambda: self.zoom_by(0.8)),
            (("Delete",), self._trash),
        ):
            shortcut = QAction(self)
            shortcut.setShortcuts([QKeySequence(k) for k in keys])
            shortcut.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.triggered.connect(lambda _checked=False, s=slot: s())
            self.addAction(shortcut)
        self.show_position(start)

    def _tool(self, icon_name: str, tip: str, slot: Callable[[], object]) -> QToolButton:
        button = QToolButton(self)
        if icon_name:
            button.setIcon(theme.icon(icon_name))
        button.setToolTip(tip)
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        button.setMinimumWidth(36)
        button.clicked.connect(lambda _checked=False: slot())
        return button

    @property
    def current_path(self) -> Path:
        return self._path_at(self._position)

    @property
    def position(self) -> int:
        return self._position

    def step(self, delta: int) -> None:
        self.show_position(self._position + delta)

    def set_source(self, path_at: Callable[[int], Path], count: int, position: int) -> None:
        """The grid changed under the viewer (a photo was trashed): keep showing the same place in it."""
        self._path_at = path_at
        self._count = count
        if count == 0:
            self.close()
            return
        self.show_position(position)

    def show_position(self, position: int) -> None:
        """Show the photo at ``position`` (decoded and described off the GUI thread)."""
        if self._count <= 0:
            return
        self._position = max(0, min(self._count - 1, position))
        self._request += 1
        request = self._request
        path = self.current_path
        self._photo = None
        self.setWindowTitle(f"{path.name} — {self._position + 1:,} of {self._count:,}")
        self.title.setText(f"<b>{path.name}</b>")
        self._fields["Position"].setText(f"{self._position + 1:,} of {self._count:,}")
        self._fields["Folder"].setText(str(path.parent))
        for name in ("Taken", "Camera", "Lens", "Place", "Dimensions", "File size", "Format"):
            self._fields[name].setText("…")
        self.prev_button.setEnabled(self._position > 0)
        self.next_button.setEnabled(self._position < self._count - 1)
        self.image.set_pixmap(None)
        self.image.set_zoom(None)
        self.image.label.setText("Loading…")
        self._update_zoom_label()
        self._controller.thumb_pool.submit(
            lambda: load_qimage(path, VIEW_SIZE),
            lambda image: self._image_ready(request, image),
            lambda error: self._image_failed(request, error),
            priority=5,
        )
        self._controller.thumb_pool.submit(
            lambda: read_camera_info(path), lambda info: self._camera_ready(request, info), priority=4,
        )
        if self._controller.library is not None:
            self._controller.read(
                lambda library: library.catalog.photo_by_path(path),
                lambda photo: self._meta_ready(request, photo),
            )
        self.position_changed.emit(self._position)

    # -- zoom ----------------------------------------------------------------------------------------

    def fit(self) -> None:
        self.image.set_zoom(None)
        self._update_zoom_label()

    def actual_size(self) -> None:
        """100%: one photo pixel per screen pixel (decodes the photo at its full size first)."""
        photo = self._photo
        full = max(photo.info.width or 0, photo.info.height or 0) if photo is not None else 0
        if full > VIEW_SIZE:
            self._full_request = request = self._request
            path = self.current_path
            side = min(full, MAX_FULL_SIDE)
            self._controller.thumb_pool.submit(
                lambda: load_qimage(path, side),
                lambda image: self._full_ready(request, image),
                lambda error: self._image_failed(request, error),
                priority=6,
            )
        self.image.set_zoom(1.0)
        self._update_zoom_label()

    def zoom_by(self, factor: float) -> None:
        self.image.set_zoom(self.image.shown_scale() * factor)
        self._update_zoom_label()

    def _update_zoom_label(self) -> None:
        if self.image.zoom is None:
            self.zoom_label.setText("")  # the Fit button says it
        else:
            self.zoom_label.setText(f"{self.image.zoom * 100:.0f}%")

    # -- results from the pools ----------------------------------------------------------------------

    def _image_ready(self, request: int, image: QImage) -> None:
        if request == self._request:
            self.image.label.setText("")
            self.image.set_pixmap(QPixmap.fromImage(image))

    def _full_ready(self, request: int, image: QImage) -> None:
        if request == self._request and self.image.zoom is not None:
            self.image.set_pixmap(QPixmap.fromImage(image))

    def _image_failed(self, request: int, error: TaskError) -> None:
        if request == self._request:
            self.image.label.setText(f"Cannot show this photo: {error.message}")

    def _camera_ready(self, request: int, info: CameraInfo) -> None:
        if request != self._request:
            return
        self._fields["Camera"].setText(info.camera or "not recorded")
        self._fields["Lens"].setText(info.lens or "not recorded")
        self._fields["Place"].setText(format_place(info.latitude, info.longitude))

    def _meta_ready(self, request: int, photo: Photo | None) -> None:
        if request != self._request:
            return
        self._photo = photo
        if photo is None:
            for name in ("Taken", "Dimensions", "File size", "Format"):
                self._fields[name].setText("not in the library")
            return
        info = photo.info
        dims = f"{info.width:,} × {info.height:,} pixels" if info.width and info.height else "unknown"
        if info.width and info.height:
            dims += f" ({info.width * info.height / 1e6:.1f} megapixels)"
        self._fields["Dimensions"].setText(dims)
        self._fields["Format"].setText((info.format or "unknown").upper())
        self._fields["File size"].setText(human_bytes(photo.size))
        taken = format_time(info.taken)
        self._fields["Taken"].setText(taken if info.taken_from_exif else f"{taken} (file date)")

    # -- actions -------------------------------------------------------------------------------------

    def _find_similar(self) -> None:
        self.similar_requested.emit(str(self.current_path))
        self.accept()

    def _trash(self) -> None:
        self.trash_requested.emit([self.current_path])
