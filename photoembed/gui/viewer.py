"""The large photo viewer: the photo, its path and its metadata; arrows move through the grid."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QKeyEvent, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from photoembed.gui import theme
from photoembed.gui.controller import LibraryController
from photoembed.gui.grid import copy_path, open_with_system, show_in_file_manager
from photoembed.gui.thumbnails import load_qimage
from photoembed.gui.workers import TaskError
from photoembed.storage.records import Photo

VIEW_SIZE = 2048


def human_bytes(size: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def format_time(timestamp: float | None) -> str:
    if timestamp is None:
        return "unknown"
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


class _ScaledImage(QLabel):
    """A label that keeps its pixmap fitted to its size."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pixmap: QPixmap | None = None
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setMinimumSize(320, 240)

    def set_pixmap(self, pixmap: QPixmap | None) -> None:
        self._pixmap = pixmap
        self._rescale()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._pixmap is None or self._pixmap.isNull():
            self.setPixmap(QPixmap())
            return
        dpr = self.devicePixelRatioF()
        target = QSize(round(self.width() * dpr), round(self.height() * dpr))
        scaled = self._pixmap.scaled(target, Qt.AspectRatioMode.KeepAspectRatio,
                                     Qt.TransformationMode.SmoothTransformation)
        scaled.setDevicePixelRatio(dpr)
        self.setPixmap(scaled)


class PhotoViewer(QDialog):
    """Shows one photo large. Left/Right move through ``count`` photos given by ``path_at``.

    Args:
        controller: decodes and reads metadata off the GUI thread.
        path_at: the path of the photo at a position of the list being browsed.
        count: how many photos that list holds.
        start: the position to show first.
    """

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
        self.resize(1100, 760)
        self._controller = controller
        self._path_at = path_at
        self._count = count
        self._position = start
        self._request = 0

        self.image = _ScaledImage(self)
        self.path_label = QLabel(self)
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.path_label.setWordWrap(True)
        self.meta = QFormLayout()
        self.meta.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self._fields: dict[str, QLabel] = {}
        for name in ("Dimensions", "Format", "File size", "Taken", "Location", "Sharpness", "Position"):
            label = QLabel("…", self)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self._fields[name] = label
            self.meta.addRow(name, label)

        buttons = QHBoxLayout()
        for icon_name, text, action in (
            ("open-external", "Open with system viewer", lambda: open_with_system(self.current_path)),
            ("folder", "Show in file manager", lambda: show_in_file_manager(self.current_path)),
            ("copy", "Copy path", lambda: copy_path(self.current_path)),
        ):
            button = QPushButton(theme.icon(icon_name), text, self)
            button.setAutoDefault(False)
            button.clicked.connect(action)
            buttons.addWidget(button)
        buttons.addStretch(1)

        side = QVBoxLayout()
        side.addWidget(self.path_label)
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
        self.show_position(start)

    @property
    def current_path(self) -> Path:
        return self._path_at(self._position)

    def show_position(self, position: int) -> None:
        """Show the photo at ``position`` (decoded and described off the GUI thread)."""
        self._position = max(0, min(self._count - 1, position))
        self._request += 1
        request = self._request
        path = self.current_path
        self.setWindowTitle(path.name)
        self.path_label.setText(f"<b>{path.name}</b><br>{path.parent}")
        self._fields["Position"].setText(f"{self._position + 1:,} of {self._count:,}")
        self.image.set_pixmap(None)
        self.image.setText("Loading…")
        self._controller.thumb_pool.submit(
            lambda: load_qimage(path, VIEW_SIZE),
            lambda image: self._image_ready(request, image),
            lambda error: self._image_failed(request, error),
            priority=5,
        )
        if self._controller.library is not None:
            self._controller.read(
                lambda library: library.catalog.photo_by_path(path),
                lambda photo: self._meta_ready(request, photo),
            )

    def _image_ready(self, request: int, image: QImage) -> None:
        if request == self._request:
            self.image.setText("")
            self.image.set_pixmap(QPixmap.fromImage(image))

    def _image_failed(self, request: int, error: TaskError) -> None:
        if request == self._request:
            self.image.setText(f"Cannot show this photo: {error.message}")

    def _meta_ready(self, request: int, photo: Photo | None) -> None:
        if request != self._request:
            return
        if photo is None:
            for name in ("Dimensions", "Format", "File size", "Taken", "Location", "Sharpness"):
                self._fields[name].setText("not in the library")
            return
        info = photo.info
        dims = f"{info.width:,} × {info.height:,}" if info.width and info.height else "unknown"
        if info.width and info.height:
            dims += f"  ({info.width * info.height / 1e6:.1f} MP)"
        self._fields["Dimensions"].setText(dims)
        self._fields["Format"].setText((info.format or "unknown").upper())
        self._fields["File size"].setText(human_bytes(photo.size))
        taken = format_time(info.taken)
        self._fields["Taken"].setText(taken + ("  (EXIF)" if info.taken_from_exif else "  (file time)"))
        self._fields["Location"].setText("GPS position recorded" if info.has_gps else "none")
        self._fields["Sharpness"].setText(f"{info.sharpness:.1f}" if info.sharpness is not None else "unknown")

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Right, Qt.Key.Key_Down, Qt.Key.Key_Space):
            self.show_position(self._position + 1)
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_Up, Qt.Key.Key_Backspace):
            self.show_position(self._position - 1)
        elif key == Qt.Key.Key_Home:
            self.show_position(0)
        elif key == Qt.Key.Key_End:
            self.show_position(self._count - 1)
        else:
            super().keyPressEvent(event)
