"""GUI fixtures: offscreen Qt, a controller whose worker runs tasks inline, a window on a private home."""

from __future__ import annotations

import os

# Before any QApplication exists: no display is needed, and none is used.
os.environ["QT_QPA_PLATFORM"] = "offscreen"

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from photoembed.config import Paths
from photoembed.gui.controller import LibraryController
from photoembed.gui.main_window import MainWindow
from tests.conftest import make_photo

# The offscreen platform says this for every top-level window; it is about the platform, not the app.
OFFSCREEN_NOISE = "This plugin does not support propagateSizeHints"



def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/gui" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.qt_log_ignore(OFFSCREEN_NOISE))


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder of 12 distinct photos plus an identical copy of the first one."""
    folder = tmp_path / "photos"
    for i in range(12):
        make_photo(folder / f"img{i:02d}.jpg", seed=i)
    (folder / "copy-of-img00.jpg").write_bytes((folder / "img00.jpg").read_bytes())
    return folder


@pytest.fixture
def controller(home: Path) -> Iterator[LibraryController]:
    """A controller on a private home; every task and pool job runs inline (force_sync)."""
    ctl = LibraryController(Paths.resolve(home), force_sync=True, watch=False)
    yield ctl
    ctl.shutdown()


@pytest.fixture
def window(qtbot: QtBot, controller: LibraryController) -> MainWindow:
    win = MainWindow(controller)
    qtbot.addWidget(win)
    win.show()
    return win
