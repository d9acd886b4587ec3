"""The library grid at scale: arithmetic layout, painting only what is on screen, the date scrubber, and
thumbnails that come back from the disk cache on a restart (and are made again when a photo changes)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel, QPoint, Qt
from PySide6.QtGui import QColor, QFont, QImage
from PySide6.QtWidgets import QApplication
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from photoembed.gui.browse import DateScrubber, FirstRowRole, IsYearRole, MonthsModel, scrubber_entries
from photoembed.gui.grid import PhotoGrid
from photoembed.gui.models import PhotoGridModel, ThumbnailRole, Tile, TileRole
from photoembed.gui.thumbnails import DiskThumbnailCache, ThumbnailProvider, load_qimage
from photoembed.gui.workers import BackgroundPool
from photoembed.storage.browse import MonthBucket
from tests.conftest import make_photo

WAIT_MS = 30_000
ROWS = 100_000


def solid(_path: Path, size: int) -> QImage:
    image = QImage(size, size * 3 // 4, QImage.Format.Format_RGB32)
    image.fill(QColor("steelblue"))
    return image


class CountingModel(PhotoGridModel):
    """Remembers which rows a paint asked for."""

    def __init__(self, thumbnails: ThumbnailProvider) -> None:
        super().__init__(thumbnails, thumb_size=96)
        self.asked: list[int] = []

    def tile(self, row: int) -> Tile:
        self.asked.append(row)
        return super().tile(row)


@pytest.fixture
def big_grid(qtbot: QtBot) -> Iterator[tuple[PhotoGrid, CountingModel]]:
    pool = BackgroundPool(force_sync=True)
    model = CountingModel(ThumbnailProvider(pool, loader=solid))
    model.set_results(range(ROWS), [f"/photos/IMG_{i:06d}.jpg" for i in range(ROWS)], None,
                      months=[(0, 2024, 3), (40_000, 2019, 7)])
    grid = PhotoGrid(96)
    qtbot.addWidget(grid)
    grid.setModel(model)
    grid.resize(760, 520)
    grid.show()
    qtbot.waitExposed(grid)
    yield grid, model
    pool.shutdown()


def test_a_grid_of_100k_paints_only_the_tiles_on_screen(big_grid: tuple[PhotoGrid, CountingModel]) -> None:
    grid, model = big_grid
    columns = grid.viewport().width() // (grid.visualRect(model.index(0)).width() + grid.spacing())
    tile = grid.visualRect(model.index(0))
    on_screen = columns * (grid.viewport().height() // (tile.height() + grid.spacing()) + 2)
    model.asked.clear()
    grid.viewport().repaint()
    assert 0 < len(model.asked) <= on_screen
    assert max(model.asked) < on_screen
    # The scroll range covers every row at once (no batched layout still under way).
    lines = -(-ROWS // columns)
    assert grid.verticalScrollBar().maximum() >= lines * tile.height() - grid.viewport().height()
    assert model.index(0).data(TileRole).month == "March 2024"


def test_a_jump_lands_on_a_far_row_right_after_new_results(big_grid: tuple[PhotoGrid, CountingModel]) -> None:
    grid, model = big_grid
    model.set_results(range(ROWS), [f"/photos/B_{i:06d}.jpg" for i in range(ROWS)], None)
    grid.scrollTo(model.index(77_777), PhotoGrid.ScrollHint.PositionAtTop)
    first = grid.visualRect(model.index(77_777 - 77_777 % grid._columns))
    top = grid.indexAt(QPoint(first.left() + 2, grid.spacing() + 2)).row()
    columns = grid._columns
    assert top == 77_777 - 77_777 % columns  # the first tile of that row's line is at the top
    rect = grid.visualRect(model.index(77_777))
    assert grid.indexAt(rect.center()).row() == 77_777
    assert not grid.indexAt(rect.topLeft() - QPoint(1, 1)).isValid() or grid.spacing() == 0
    model.asked.clear()
    grid.viewport().repaint()
    assert min(model.asked) >= top
    assert max(model.asked) < top + 10 * columns


def test_the_columns_fill_the_width_evenly(big_grid: tuple[PhotoGrid, CountingModel]) -> None:
    grid, model = big_grid
    columns = grid._columns
    rects = [grid.visualRect(model.index(k)) for k in range(columns)]
    gaps = [rects[0].left()] + [b.left() - a.right() - 1 for a, b in itertools.pairwise(rects)]
    gaps.append(grid.viewport().width() - rects[-1].right() - 1)
    # No strip left at the right: the gaps differ by the rounding of a pixel share at most.
    assert max(gaps) - min(gaps) <= columns + 1
    assert min(gaps) >= grid.spacing()
    # Every tile is found where it is drawn, and the gaps hit nothing.
    for k, rect in enumerate(rects):
        assert grid.indexAt(rect.center()).row() == k
        assert not grid.indexAt(QPoint(rect.left() - 1, rect.center().y())).isValid()


def test_keys_clicks_and_shift_clicks_select_tiles(qtbot: QtBot, big_grid: tuple[PhotoGrid, CountingModel]) -> None:
    grid, model = big_grid
    columns = grid._columns
    grid.setFocus()
    qtbot.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=grid.visualRect(model.index(2)).center())
    assert grid.currentIndex().row() == 2
    assert [i.row() for i in grid.selectionModel().selectedIndexes()] == [2]
    qtbot.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier,
                     pos=grid.visualRect(model.index(columns + 1)).center())
    assert sorted(i.row() for i in grid.selectionModel().selectedIndexes()) == list(range(2, columns + 2))
    assert [p.name for p in grid.selected_paths()][:2] == ["IMG_000002.jpg", "IMG_000003.jpg"]
    qtbot.keyClick(grid, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)  # the range grows by one
    assert sorted(i.row() for i in grid.selectionModel().selectedIndexes()) == list(range(2, columns + 3))
    qtbot.keyClick(grid, Qt.Key.Key_Down)
    assert grid.currentIndex().row() == 2 * columns + 2
    assert [i.row() for i in grid.selectionModel().selectedIndexes()] == [2 * columns + 2]
    qtbot.keyClick(grid, Qt.Key.Key_Left)
    assert grid.currentIndex().row() == 2 * columns + 1
    qtbot.keyClick(grid, Qt.Key.Key_End)
    assert grid.currentIndex().row() == ROWS - 1
    bottom = grid.visualRect(model.index(ROWS - 1))
    assert grid.viewport().rect().contains(bottom)  # the view followed to the last row
    qtbot.keyClick(grid, Qt.Key.Key_Home)
    assert grid.currentIndex().row() == 0
    assert grid.verticalScrollBar().value() == 0
    # A drag over two whole lines selects them as one range.
    grid.selectionModel().clearSelection()
    first, last = grid.visualRect(model.index(0)), grid.visualRect(model.index(2 * columns - 1))
    grid.setSelection(first.united(last), QItemSelectionModel.SelectionFlag.ClearAndSelect)
    assert len(grid.selectionModel().selectedIndexes()) == 2 * columns


def test_the_scrubber_lists_years_and_months_follows_and_jumps(qtbot: QtBot, qtmodeltester: ModelTester) -> None:
    months = [MonthBucket(2024, 3, 0, 10), MonthBucket(2024, 1, 10, 5), MonthBucket(2023, 12, 15, 7)]
    model = MonthsModel()  # on its own: the tester outlives the test's widgets
    model.set_entries(scrubber_entries(months), QFont())
    qtmodeltester.check(model, force_py=True)
    assert model.index(0).data(Qt.ItemDataRole.FontRole).bold()
    scrubber = DateScrubber()
    qtbot.addWidget(scrubber)
    scrubber.set_months(months)
    entries = scrubber.months.entries()
    assert [(e.text.strip(), e.first_row, e.is_year) for e in entries] == [
        ("2024", 0, True), ("Mar  ·  10", 0, False), ("Jan  ·  5", 10, False),
        ("2023", 15, True), ("Dec  ·  7", 15, False),
    ]
    assert scrubber.months.index(0).data(IsYearRole) is True
    scrubber.follow(12)
    assert scrubber.currentIndex().row() == 2  # January 2024: rows 10-14
    scrubber.follow(15)
    assert scrubber.currentIndex().row() == 4
    scrubber.show()
    qtbot.waitExposed(scrubber)
    rect = scrubber.visualRect(scrubber.months.index(3))
    with qtbot.waitSignal(scrubber.jump_requested) as jumped:
        qtbot.mouseClick(scrubber.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert jumped.args == [15]
    assert scrubber.months.index(3).data(FirstRowRole) == 15


def _listing(folder: Path) -> tuple[list[int], list[str], list[str]]:
    """Ids, paths and stamps as the catalog lists them (a stamp changes with the file's size and time)."""
    paths = sorted(folder.glob("*.jpg"))
    stamps = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths]
    return list(range(1, len(paths) + 1)), [str(p) for p in paths], stamps


def _show(qtbot: QtBot, loader: object, cache: Path, listing: tuple[list[int], list[str], list[str]]
          ) -> tuple[PhotoGrid, PhotoGridModel, ThumbnailProvider, BackgroundPool]:
    """A grid over a listing with a fresh provider (a restart: nothing in memory), every tile painted."""
    pool = BackgroundPool(threads=1, name="thumbnails")
    thumbs = ThumbnailProvider(pool, loader=loader, disk=DiskThumbnailCache(cache))  # type: ignore[arg-type]
    model = PhotoGridModel(thumbs, thumb_size=64)
    ids, paths, stamps = listing
    model.set_results(ids, paths, None, stamps=stamps)
    grid = PhotoGrid(64)
    qtbot.addWidget(grid)
    grid.setModel(model)
    grid.resize(900, 600)
    grid.show()
    qtbot.waitExposed(grid)
    grid.viewport().repaint()  # asks for every tile (all fit on screen)
    qtbot.waitUntil(lambda: len(thumbs) + sum(thumbs.failure(i, 64) is not None for i in ids) == len(ids)
                    and not thumbs.pending(), timeout=WAIT_MS)
    return grid, model, thumbs, pool


def _colour(image: QImage) -> tuple[int, int, int]:
    colour = image.pixelColor(image.width() // 2, image.height() // 2)
    return colour.red(), colour.green(), colour.blue()


def test_a_restart_shows_thumbnails_from_disk_without_the_originals(qtbot: QtBot, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    for i in range(6):
        make_photo(folder / f"p{i}.jpg", seed=i)
    cache = tmp_path / "thumbs"
    decoded: list[str] = []

    def counting(path: Path, size: int) -> QImage:
        decoded.append(path.name)
        return load_qimage(path, size)

    listing = _listing(folder)
    grid, model, thumbs, pool = _show(qtbot, counting, cache, listing)
    assert sorted(decoded) == [f"p{i}.jpg" for i in range(6)]
    shown = [_colour(model.index(r).data(ThumbnailRole).toImage()) for r in range(6)]
    grid.close()
    pool.shutdown()

    # Restart with the originals gone: decoding any of them would fail (and show a "cannot read" tile).
    os.rename(folder, tmp_path / "elsewhere")
    grid, model, thumbs, pool = _show(qtbot, counting, cache, listing)
    assert len(decoded) == 6  # not one more: the restart decoded no original
    assert thumbs.disk is not None
    assert thumbs.disk.hits == 6
    for row in range(6):
        assert model.index(row).data(TileRole).failed is False
        image = model.index(row).data(ThumbnailRole).toImage()
        assert (image.width(), image.height()) == (64, 48)
        assert _colour(image) == pytest.approx(shown[row], abs=12)  # the same picture, through JPEG again
    grid.close()
    pool.shutdown()


def test_a_changed_photo_gets_a_new_thumbnail_in_the_session_and_after(qtbot: QtBot, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    for i in range(3):
        make_photo(folder / f"p{i}.jpg", seed=i)
    cache = tmp_path / "thumbs"
    decoded: list[str] = []

    def counting(path: Path, size: int) -> QImage:
        decoded.append(path.name)
        return load_qimage(path, size)

    grid, model, _thumbs, pool = _show(qtbot, counting, cache, _listing(folder))
    assert model.index(1).data(ThumbnailRole).height() == 48
    decoded.clear()
    # p1 is rewritten while the app runs (portrait now): the re-listing carries its new stamp.
    make_photo(folder / "p1.jpg", seed=99, size=(240, 320))
    os.utime(folder / "p1.jpg", ns=(10**9, 10**9))
    model.set_results(*_listing(folder)[:2], None, stamps=_listing(folder)[2])
    assert model.index(1).data(ThumbnailRole) is None  # the old picture is not shown for the new photo
    qtbot.waitUntil(lambda: model.index(1).data(ThumbnailRole) is not None, timeout=WAIT_MS)
    assert model.index(1).data(ThumbnailRole).height() == 64
    assert model.index(0).data(ThumbnailRole) is not None
    assert model.index(2).data(ThumbnailRole) is not None
    assert decoded == ["p1.jpg"]  # the unchanged photos kept their thumbnails
    grid.close()
    pool.shutdown()

    # A restart shows the new one, from disk.
    decoded.clear()
    grid, model, _thumbs, pool = _show(qtbot, counting, cache, _listing(folder))
    assert decoded == []
    assert model.index(1).data(ThumbnailRole).height() == 64
    grid.close()
    pool.shutdown()


def test_the_hovered_tile_is_the_one_under_the_pointer(qtbot: QtBot, big_grid: tuple[PhotoGrid, CountingModel]) -> None:
    from PySide6.QtCore import QEvent

    grid, model = big_grid
    qtbot.mouseMove(grid.viewport(), grid.visualRect(model.index(3)).center())
    qtbot.waitUntil(lambda: grid._hover == 3)
    qtbot.mouseMove(grid.viewport(), QPoint(1, 1))  # in the gap before the first tile
    qtbot.waitUntil(lambda: grid._hover == -1)
    qtbot.mouseMove(grid.viewport(), grid.visualRect(model.index(1)).center())
    qtbot.waitUntil(lambda: grid._hover == 1)
    QApplication.sendEvent(grid.viewport(), QEvent(QEvent.Type.Leave))
    assert grid._hover == -1
