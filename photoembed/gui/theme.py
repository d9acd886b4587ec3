"""Light and dark palettes that follow the system, and HiDPI icons drawn from ``resources/``.

The SVG icons use ``currentColor``; :class:`SvgIconEngine` substitutes the palette's text colour and renders
them at whatever device pixel ratio the screen asks for, so they stay sharp on HiDPI screens and readable in
both themes.
"""

from __future__ import annotations

import functools
import logging
import os

from PySide6.QtCore import QByteArray, QPoint, QRect, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QGuiApplication,
    QIcon,
    QIconEngine,
    QImage,
    QPainter,
    QPalette,
    QPixmap,
)
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

from photoembed.resources import resources_dir

logger = logging.getLogger(__name__)


@functools.cache
def _svg_source(name: str) -> str | None:
    path = resources_dir() / "icons" / f"{name}.svg"
    if name == "photoembed":
        path = resources_dir() / "photoembed.svg"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        logger.debug("Icon %s not found at %s", name, path)
        return None


class SvgIconEngine(QIconEngine):
    """Renders one SVG in the current palette's colours, at any size and device pixel ratio."""

    def __init__(self, source: str, color: QColor, disabled_color: QColor) -> None:
        super().__init__()
        self._source = source
        self._color = color
        self._disabled = disabled_color
        self._renderers: dict[bool, QSvgRenderer] = {}

    def _renderer(self, disabled: bool) -> QSvgRenderer:
        renderer = self._renderers.get(disabled)
        if renderer is None:
            color = (self._disabled if disabled else self._color).name()
            data = self._source.replace("currentColor", color).encode("utf-8")
            renderer = QSvgRenderer(QByteArray(data))
            self._renderers[disabled] = renderer
        return renderer

    def paint(self, painter: QPainter, rect: QRect, mode: QIcon.Mode, state: QIcon.State) -> None:
        self._renderer(mode == QIcon.Mode.Disabled).render(painter, rect)

    def pixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QPixmap:
        return self.scaledPixmap(size, mode, state, 1.0)

    def scaledPixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State, scale: float) -> QPixmap:
        device = QSize(max(1, round(size.width() * scale)), max(1, round(size.height() * scale)))
        image = QImage(device, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        self._renderer(mode == QIcon.Mode.Disabled).render(painter, QRect(QPoint(0, 0), device))
        painter.end()
        pixmap = QPixmap.fromImage(image)
        pixmap.setDevicePixelRatio(scale)
        return pixmap

    def clone(self) -> QIconEngine:
        return SvgIconEngine(self._source, self._color, self._disabled)


def icon(name: str, color: QColor | None = None) -> QIcon:
    """An icon from ``resources/icons`` in the palette's text colour (or ``color``).

    GUI thread only (reads the application palette).
    """
    source = _svg_source(name)
    if source is None:
        return QIcon()
    palette = QGuiApplication.palette()
    fg = color if color is not None else palette.color(QPalette.ColorRole.WindowText)
    disabled = palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText)
    return QIcon(SvgIconEngine(source, fg, disabled))


def app_icon() -> QIcon:
    """The application icon (full colour)."""
    path = resources_dir() / "photoembed.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


RAW_SCORES_KEY = "view/raw_scores"  # QSettings: show raw cosine scores on search results (off by default)
APPEARANCE_KEY = "view/appearance"  # QSettings: "system" (default), "light" or "dark"
APPEARANCES = (("system", "Follow the system"), ("light", "Light"), ("dark", "Dark"))


def appearance() -> str:
    """The appearance chosen in Settings: "system", "light" or "dark"."""
    from PySide6.QtCore import QSettings

    value = str(QSettings().value(APPEARANCE_KEY, "system") or "system")
    return value if value in ("system", "light", "dark") else "system"


def is_dark() -> bool:
    """Whether the system asks for a dark appearance (Qt 6.5+ colour scheme, else the palette).

    The appearance chosen in Settings (light or dark) wins over the system's; ``PHOTOEMBED_COLOR_SCHEME=dark|light``
    wins over both (screenshots, desktops that do not report their scheme).
    """
    override = os.environ.get("PHOTOEMBED_COLOR_SCHEME", "").lower() or appearance()
    if override in ("dark", "light"):
        return override == "dark"
    scheme = QGuiApplication.styleHints().colorScheme()
    if scheme == Qt.ColorScheme.Dark:
        return True
    if scheme == Qt.ColorScheme.Light:
        return False
    return QGuiApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128


def apply_theme(app: QApplication) -> None:
    """Fusion with a light or a dark palette, chosen from the system's colour scheme.

    Fusion draws the same everywhere, so both palettes look deliberate on every desktop.
    """
    app.setStyle("Fusion")
    app.setPalette(dark_palette() if is_dark() else light_palette())


def light_palette() -> QPalette:
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#f5f6f8",
        QPalette.ColorRole.WindowText: "#1f2328",
        QPalette.ColorRole.Base: "#ffffff",
        QPalette.ColorRole.AlternateBase: "#f0f2f5",
        QPalette.ColorRole.Text: "#1f2328",
        QPalette.ColorRole.Button: "#eef0f3",
        QPalette.ColorRole.ButtonText: "#1f2328",
        QPalette.ColorRole.Highlight: "#2f6fdf",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: "#ffffff",
        QPalette.ColorRole.ToolTipText: "#1f2328",
        QPalette.ColorRole.PlaceholderText: "#7d848c",
        QPalette.ColorRole.Link: "#2f6fdf",
        QPalette.ColorRole.Mid: "#c9ced6",
        QPalette.ColorRole.Midlight: "#dde1e6",
        QPalette.ColorRole.Dark: "#9aa1ab",
        QPalette.ColorRole.Light: "#ffffff",
    }
    for role, color in roles.items():
        palette.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#a0a6ad"))
    return palette


def dark_palette() -> QPalette:
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#1f2124",
        QPalette.ColorRole.WindowText: "#e6e8eb",
        QPalette.ColorRole.Base: "#16181a",
        QPalette.ColorRole.AlternateBase: "#22252a",
        QPalette.ColorRole.Text: "#e6e8eb",
        QPalette.ColorRole.Button: "#2a2d31",
        QPalette.ColorRole.ButtonText: "#e6e8eb",
        QPalette.ColorRole.Highlight: "#3d7bf0",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: "#2a2d31",
        QPalette.ColorRole.ToolTipText: "#e6e8eb",
        QPalette.ColorRole.PlaceholderText: "#80868e",
        QPalette.ColorRole.Link: "#6ea0ff",
        QPalette.ColorRole.Mid: "#3a3e44",
        QPalette.ColorRole.Midlight: "#33363b",
        QPalette.ColorRole.Dark: "#101113",
        QPalette.ColorRole.Light: "#3f434a",
    }
    for role, color in roles.items():
        palette.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6b7078"))
    return palette


def muted(color: QColor, amount: float = 0.45) -> QColor:
    """``color`` blended towards the window background: secondary text."""
    bg = QGuiApplication.palette().color(QPalette.ColorRole.Window)
    return QColor.fromRgbF(
        color.redF() * (1 - amount) + bg.redF() * amount,
        color.greenF() * (1 - amount) + bg.greenF() * amount,
        color.blueF() * (1 - amount) + bg.blueF() * amount,
    )


ACCENT_KEEP = QColor("#1f9d55")
ACCENT_TRASH = QColor("#d64545")
ACCENT_WARN = QColor("#d97706")
