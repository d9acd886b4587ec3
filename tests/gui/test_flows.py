"""GUI flows through the real worker threads (no force_sync): what a user does, end to end."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from pytestqt.qtbot import QtBot

from photoembed.config import Paths
from photoembed.gui.controller import LibraryController
from photoembed.gui.main_window import MainWindow
from photoembed.gui.models import MonthRole, RelevanceRole
from photoembed.gui.thumbnails import load_qimage
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


def dated(folder: Path, count: int, *, start: float, step: float, seed: int) -> list[Path]:
    """``count`` photos whose file times go back from ``start`` by ``step`` seconds (no EXIF date)."""
    made = []
    for i in range(count):
        path = make_photo(folder / f"p{seed}-{i:02d}.jpg", seed=seed * 100 + i)
        stamp = start - i * step
        os.utime(path, (stamp, stamp))
        made.append(path)
    return made


def grid_paths(window: MainWindow) -> list[Path]:
    model = window.search.grid_model
    return [model.path(r) for r in range(model.rowCount())]


def test_the_library_view_browses_by_month_shows_a_folder_searches_and_clears(
    live_window: MainWindow, live_controller: LibraryController, tmp_path: Path, qtbot: QtBot
) -> None:
    now = time.time()
    # Two folders: "recent" has 5 photos a day apart from now; "old" 4 photos about 40 days earlier.
    recent = dated(tmp_path / "recent", 5, start=now, step=86400, seed=1)
    old = dated(tmp_path / "old", 4, start=now - 40 * 86400, step=86400, seed=2)
    live_controller.open(then_add=[tmp_path / "recent", tmp_path / "old"])
    view = live_window.search
    qtbot.waitUntil(lambda: indexed(live_controller, 9) and view.grid_model.rowCount() == 9, timeout=WAIT_MS)

    # Home page: every photo, newest first, without typing anything.
    assert live_window.tabs.currentWidget() is view
    assert view.browsing
    assert grid_paths(live_window) == [p.resolve() for p in recent + old]
    months = [view.grid_model.index(r).data(MonthRole) for r in range(9)]
    assert months[0] is not None  # the first photo opens its month
    assert len({m for m in months if m}) == len(view._listing.months if view._listing else [])
    assert view.when.text() == months[0]

    # Clicking a folder in the sidebar shows that folder only.
    sidebar = live_window.sidebar
    row = sidebar.model.row_for_path((tmp_path / "old").resolve())
    rect = sidebar.view.visualRect(sidebar.model.index(row))
    qtbot.mouseClick(sidebar.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: grid_paths(live_window) == [p.resolve() for p in old], timeout=WAIT_MS)
    assert "in old" in view.summary.text()

    # "All photos" goes back to everything.
    qtbot.mouseClick(sidebar.all_photos, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.grid_model.rowCount() == 9, timeout=WAIT_MS)

    # Typing turns the same grid into ranked results; clearing goes back to browsing.
    live_window.focus_search()
    qtbot.keyClicks(view.field, "a blue sky")
    qtbot.waitUntil(lambda: view.grid_model.index(0).data(RelevanceRole) is not None, timeout=WAIT_MS)
    assert not view.browsing
    assert view.summary.text() == "9 photos, best match first"
    assert view.grid_model.index(0).data(MonthRole) is None
    view.field.clear()
    view.field.textEdited.emit("")
    qtbot.waitUntil(lambda: view.browsing and view.grid_model.index(0).data(RelevanceRole) is None,
                    timeout=WAIT_MS)
    assert grid_paths(live_window) == [p.resolve() for p in recent + old]
    assert view.summary.text() == "9 photos, newest first"


def test_a_restart_shows_thumbnails_from_the_disk_cache_without_decoding(
    qtbot: QtBot, home: Path, photos: Path
) -> None:
    decoded: list[Path] = []

    def counting_loader(path: Path, size: int) -> QImage:
        decoded.append(path)
        return load_qimage(path, size)

    def run_once() -> tuple[LibraryController, MainWindow]:
        ctl = LibraryController(Paths.resolve(home), watch=False, thumbnail_loader=counting_loader)
        win = MainWindow(ctl)
        qtbot.addWidget(win)
        win.show()
        ctl.open(then_add=[photos])
        qtbot.waitUntil(lambda: len(ctl.thumbnails) == 13, timeout=WAIT_MS)
        return ctl, win

    first, window = run_once()
    assert len(decoded) == 13  # one decode per photo the first time
    cache = Paths.resolve(home).thumbnails
    assert (cache / "CACHEDIR.TAG").is_file()
    assert first.thumbnails.disk is not None
    assert first.thumbnails.disk.file_count() == 13
    window.close()

    second, window = run_once()
    assert len(decoded) == 13  # the restart decoded no original
    assert second.thumbnails.disk is not None
    assert second.thumbnails.disk.hits == 13
    window.close()

    # A photo that changes gets a new thumbnail.
    changed = photos / "img05.jpg"
    make_photo(changed, seed=505)
    _third, window = run_once()
    qtbot.waitUntil(lambda: changed in decoded, timeout=WAIT_MS)
    assert decoded[13:] == [changed]
    window.close()
