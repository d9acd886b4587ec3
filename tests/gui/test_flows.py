"""GUI flows through the real worker threads (no force_sync): what a user does, end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from pytestqt.qtbot import QtBot

from photoembed.config import Paths
from photoembed.gui.controller import LibraryController
from photoembed.gui.main_window import MainWindow
from tests.conftest import make_photo

WAIT_MS = 60_000  # the machine is shared: the tiny model loads in seconds, but seconds vary


@pytest.fixture
def live_controller(model_home: Path) -> Iterator[LibraryController]:
    """A controller with its real worker thread and pools, on a home with the tiny model installed."""
    ctl = LibraryController(Paths.resolve(model_home), watch=False)
    yield ctl
    ctl.shutdown()


@pytest.fixture
def live_window(qtbot: QtBot, live_controller: LibraryController) -> MainWindow:
    win = MainWindow(live_controller)
    qtbot.addWidget(win)
    win.show()
    return win


def indexed(controller: LibraryController, count: int) -> bool:
    library = controller.library
    return (
        library is not None
        and not controller.index.running
        and library.catalog.counts(library.settings.model)["embedded"] >= count
    )


def drop_file(window: MainWindow, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(QPoint(300, 300), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    event = QDropEvent(QPointF(300, 300), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    assert event.isAccepted()


def test_dropping_a_photo_from_outside_the_library_finds_similar_ones(
    live_window: MainWindow, live_controller: LibraryController, photos: Path, tmp_path: Path, qtbot: QtBot
) -> None:
    live_controller.open(then_add=[photos])
    qtbot.waitUntil(lambda: indexed(live_controller, 12), timeout=WAIT_MS)
    outside = make_photo(tmp_path / "elsewhere" / "visitor.jpg", seed=99)  # never indexed: no stored vector

    drop_file(live_window, outside)

    view = live_window.search
    qtbot.waitUntil(lambda: view.grid_model.rowCount() > 0 or "Cannot" in view.message.text(), timeout=WAIT_MS)
    assert "Cannot" not in view.message.text()
    assert view.grid_model.rowCount() == 13  # every library photo, ranked; the visitor is not one of them
    shown = {view.grid_model.path(r) for r in range(view.grid_model.rowCount())}
    assert outside.resolve() not in shown
    assert all(p.is_relative_to(photos.resolve()) for p in shown)
