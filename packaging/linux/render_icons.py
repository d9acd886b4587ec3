"""Render resources/photoembed.svg into the PNG sizes desktops look for (hicolor theme layout).

Run after changing the SVG: ``.venv/bin/python packaging/linux/render_icons.py``. Uses Qt's SVG renderer
(PySide6 is a development dependency), so no image tool is needed on the machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ROOT = Path(__file__).resolve().parents[2]
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
APP_ID = "io.github.photoembed.Photoembed"


def main() -> int:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(ROOT / "resources" / "photoembed.svg"))
    if not renderer.isValid():
        sys.stderr.write("resources/photoembed.svg could not be read\n")
        return 1
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        out = ROOT / "resources" / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        image.save(str(out))
        sys.stdout.write(f"{out.relative_to(ROOT)}\n")
    del app
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
