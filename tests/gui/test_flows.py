"""GUI flows through the real worker threads (no force_sync): what a user does, end to end."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel, QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from pytestqt.qtbot import QtBot

from photoembed.config import Paths
from photoembed.dedup.records import TrashPlan
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


def test_viewer_keys_move_through_the_grid_and_escape_closes(
    live_window: MainWindow, live_controller: LibraryController, photos: Path, qtbot: QtBot
) -> None:
    live_controller.open(then_add=[photos])
    view = live_window.search
    # Indexed first: a listing that arrives after the viewer opened (photos still coming) is another test's.
    qtbot.waitUntil(lambda: indexed(live_controller, 13) and view.grid_model.rowCount() == 13, timeout=WAIT_MS)
    viewer = view.open_row(0)
    assert viewer is not None
    qtbot.waitUntil(lambda: viewer._fields["Dimensions"].text().startswith("320 × 240"), timeout=WAIT_MS)
    assert viewer._fields["Camera"].text() == "not recorded"
    assert viewer._fields["Place"].text() == "no position recorded"
    assert not viewer.prev_button.isEnabled()

    viewer.activateWindow()
    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    assert viewer.position == 2
    assert viewer.current_path == view.grid_model.path(2)
    assert view.grid.currentIndex().row() == 2  # the grid follows
    qtbot.keyClick(viewer, Qt.Key.Key_Left)
    assert viewer.position == 1
    qtbot.keyClick(viewer, Qt.Key.Key_End)
    assert viewer.position == 12
    assert not viewer.next_button.isEnabled()
    qtbot.mouseClick(viewer.prev_button, Qt.MouseButton.LeftButton)
    assert viewer.position == 11

    qtbot.waitUntil(lambda: viewer.image.label.pixmap() is not None and not viewer.image.label.pixmap().isNull(),
                    timeout=WAIT_MS)
    qtbot.keyClick(viewer, Qt.Key.Key_1)
    assert viewer.zoom_label.text() == "100%"
    qtbot.keyClick(viewer, Qt.Key.Key_F)
    assert viewer.image.zoom is None

    with qtbot.waitSignal(viewer.finished, timeout=5000):
        qtbot.keyClick(viewer, Qt.Key.Key_Escape)


def test_a_new_listing_keeps_the_selection(
    live_window: MainWindow, live_controller: LibraryController, photos: Path, qtbot: QtBot
) -> None:
    """While photos arrive the library view is listed again and again: what the user picked stays picked."""
    live_controller.open(then_add=[photos])
    view = live_window.search
    qtbot.waitUntil(lambda: indexed(live_controller, 13) and view.grid_model.rowCount() == 13, timeout=WAIT_MS)
    model, selection = view.grid_model, view.grid.selectionModel()
    picked = {model.photo_id(2), model.photo_id(3), model.photo_id(7)}
    for row in (2, 3, 7):
        selection.select(model.index(row), QItemSelectionModel.SelectionFlag.Select)
    selection.setCurrentIndex(model.index(7), QItemSelectionModel.SelectionFlag.NoUpdate)
    # A new photo, newer than every other, comes first: every row moves down by one.
    make_photo(photos / "newest.jpg", seed=99)
    live_controller.start_index(paths=[photos / "newest.jpg"])  # as the watcher would (this window does not watch)
    qtbot.waitUntil(lambda: view.grid_model.rowCount() == 14, timeout=WAIT_MS)
    assert {model.photo_id(i.row()) for i in selection.selectedIndexes()} == picked
    assert model.photo_id(view.grid.currentIndex().row()) in picked


def test_multi_select_trash_and_undo(
    live_window: MainWindow, live_controller: LibraryController, photos: Path, qtbot: QtBot
) -> None:
    live_controller.open(then_add=[photos])
    view = live_window.search
    qtbot.waitUntil(lambda: view.grid_model.rowCount() == 13, timeout=WAIT_MS)
    asked: list[int] = []
    refusals: list[list[tuple[Path, str]]] = []

    def confirm(plan: TrashPlan, refused: list[tuple[Path, str]]) -> bool:
        asked.append(plan.files)
        refusals.append(refused)
        return True

    view.ask_confirmation = confirm  # type: ignore[method-assign]
    model = view.grid_model
    rows = {model.path(r).name: r for r in range(model.rowCount())}
    selection = view.grid.selectionModel()
    for name in ("img00.jpg", "img05.jpg"):
        selection.select(model.index(rows[name]), QItemSelectionModel.SelectionFlag.Select)
    view.grid.setFocus()
    qtbot.keyClick(view.grid, Qt.Key.Key_Delete)

    qtbot.waitUntil(lambda: view.undo_button.isVisible(), timeout=WAIT_MS)
    assert asked == [2]  # img00 has a copy that stays; img05, the only one of its kind, goes as chosen
    assert refusals[0] == []
    assert not (photos / "img00.jpg").exists()
    assert (photos / "copy-of-img00.jpg").exists()
    assert not (photos / "img05.jpg").exists()
    assert live_window.status_area.message.text().endswith("Undo puts them back")
    qtbot.waitUntil(lambda: model.rowCount() == 11, timeout=WAIT_MS)  # the grid follows the library

    qtbot.mouseClick(view.undo_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: (photos / "img00.jpg").exists() and not view.undo_button.isVisible(), timeout=WAIT_MS)
    assert (photos / "img05.jpg").exists()
    qtbot.waitUntil(lambda: model.rowCount() == 13, timeout=WAIT_MS)
    assert live_window.status_area.message.text() == "Put back 2 photos from the trash"


def test_a_second_instance_on_the_same_library_raises_the_first(qtbot: QtBot, home: Path, tmp_path: Path) -> None:
    from photoembed.gui.instance import SingleInstance

    data = Paths.resolve(home).data
    first = SingleInstance(data)
    assert first.acquire()
    second = SingleInstance(data)
    with qtbot.waitSignal(first.activated, timeout=10_000):
        assert not second.acquire()  # it woke the first one instead
    other_library = SingleInstance(tmp_path / "another-home" / "data")
    assert other_library.acquire()  # another library is another app
    other_library.release()
    first.release()
    third = SingleInstance(data)
    assert third.acquire()  # released: the next launch opens it
    third.release()


def test_an_unreadable_query_photo_says_why_and_offers_to_try_again(
    live_window: MainWindow, live_controller: LibraryController, photos: Path, tmp_path: Path, qtbot: QtBot
) -> None:
    live_controller.open(then_add=[photos])
    qtbot.waitUntil(lambda: indexed(live_controller, 12), timeout=WAIT_MS)
    broken = tmp_path / "elsewhere" / "broken.jpg"
    broken.parent.mkdir()
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    view = live_window.search
    view.search_photo(broken)
    qtbot.waitUntil(lambda: view.retry.isVisible(), timeout=WAIT_MS)
    assert view.message.text().startswith(f"Cannot use {broken}")
    make_photo(broken, seed=7)  # the user fixes the file, then tries again
    qtbot.mouseClick(view.retry, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.grid_model.rowCount() == 13, timeout=WAIT_MS)
    assert not view.retry.isVisible()


@pytest.mark.expected_warnings("Waiting for .* to finish writing this library")
def test_the_app_waits_for_a_command_line_writer_and_then_indexes(
    live_window: MainWindow, live_controller: LibraryController, photos: Path, model_home: Path, qtbot: QtBot
) -> None:
    from photoembed.core.writer_lock import WriterLock

    cli_writer = WriterLock(Paths.resolve(model_home).data, command="photoembed index")
    cli_writer.acquire()
    try:
        live_controller.open(then_add=[photos])
        message = live_window.status_area.progress_label  # the library's state: waiting for the writer
        qtbot.waitUntil(lambda: "being written by `photoembed index`" in message.text(), timeout=WAIT_MS)
        library = live_controller.library
        assert library is not None
        qtbot.wait(1000)  # the app had every chance to embed meanwhile: it must not have
        assert library.catalog.counts(library.settings.model)["embedded"] == 0
    finally:
        cli_writer.release()
    qtbot.waitUntil(lambda: indexed(live_controller, 12), timeout=WAIT_MS)
