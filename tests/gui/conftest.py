"""GUI fixtures: offscreen Qt, a controller whose worker runs tasks inline, a window on a private home."""

from __future__ import annotations

import os

# Before any QApplication exists: no display is needed, and none is used.
os.environ["QT_QPA_PLATFORM"] = "offscreen"

import traceback
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QObject, QThread, QThreadPool, QTimer
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from photoembed.config import Paths
from photoembed.gui.controller import LibraryController
from photoembed.gui.main_window import MainWindow
from tests.conftest import make_photo

# The offscreen platform says this for every top-level window; it is about the platform, not the app.
OFFSCREEN_NOISE = "This plugin does not support propagateSizeHints"


# How long a QThread or a thread pool may take to finish once its test is over (bounded, then it fails).
QT_GRACE_MS = 2000


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


def _started_at() -> str:
    """The test-side frames that started a thread or timer (innermost first), for the failure message."""
    frames = []
    for f in reversed(traceback.extract_stack()[:-2]):
        if "/_pytest/" in f.filename or "/pluggy/" in f.filename or len(frames) == 4:
            break  # the test runner's frames say nothing about the leak
        frames.append(f"{f.filename}:{f.lineno} in {f.name}")
    return "; ".join(frames)


def _owners(obj: QObject) -> str:
    """obj's parent chain, with each widget's visibility: says which (closed?) widget owns a timer."""
    chain = []
    parent = obj.parent()
    while parent is not None:
        label = f"{type(parent).__name__}({parent.objectName()!r})"
        if isinstance(parent, QWidget):
            label += " visible" if parent.isVisible() else " closed/hidden"
        chain.append(label)
        parent = parent.parent()
    return " <- ".join(chain) or "no parent"


@pytest.fixture(autouse=True)
def _fail_on_qt_leftovers(qtbot: QtBot, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail a GUI test that leaves a QThread running, a thread pool busy or a QTimer active.

    QThread.start, QThreadPool.start and QTimer.start are wrapped to remember what the test started and
    where; after every fixture is torn down (and pytest-qt has closed the test's widgets), each of them must
    be finished or stopped. Threads and pools get a bounded :data:`QT_GRACE_MS` to finish.
    """
    threads: list[tuple[weakref.ref[QThread], str]] = []
    pools: list[tuple[weakref.ref[QThreadPool], str]] = []
    timers: list[tuple[weakref.ref[QTimer], str]] = []
    thread_start, pool_start, timer_start = QThread.start, QThreadPool.start, QTimer.start

    def start_thread(self: QThread, *args: Any) -> None:
        threads.append((weakref.ref(self), _started_at()))
        thread_start(self, *args)

    def start_in_pool(self: QThreadPool, *args: Any) -> None:
        pools.append((weakref.ref(self), _started_at()))
        pool_start(self, *args)

    def start_timer(self: QTimer, *args: Any) -> None:
        timers.append((weakref.ref(self), _started_at()))
        timer_start(self, *args)

    monkeypatch.setattr(QThread, "start", start_thread)
    monkeypatch.setattr(QThreadPool, "start", start_in_pool)
    monkeypatch.setattr(QTimer, "start", start_timer)
    yield
    problems: list[str] = []
    for ref, where in threads:
        thread = ref()
        try:
            if thread is None or thread.wait(QT_GRACE_MS):  # wait() is bounded; True once it has finished
                continue
            problems.append(f"QThread {thread.objectName()!r} still running; started at {where}")
        except RuntimeError:  # its C++ object was deleted: it is not running
            continue
    seen_pools: set[int] = set()
    for ref, where in pools:
        pool = ref()
        if pool is None or id(pool) in seen_pools:
            continue
        seen_pools.add(id(pool))
        try:
            if pool.waitForDone(QT_GRACE_MS):
                continue
            problems.append(
                f"QThreadPool ({_owners(pool)}) still has {pool.activeThreadCount()} job(s) running; "
                f"first started at {where}"
            )
        except RuntimeError:
            continue
    seen_timers: set[int] = set()
    for ref, where in reversed(timers):  # the latest start of each timer says most
        timer = ref()
        if timer is None or id(timer) in seen_timers:
            continue
        seen_timers.add(id(timer))
        try:
            if not timer.isActive():
                continue
            problems.append(
                f"QTimer {timer.objectName()!r} ({timer.interval()} ms, single-shot={timer.isSingleShot()}) "
                f"still active, owned by {_owners(timer)}; started at {where}"
            )
        except RuntimeError:
            continue
    # Qt itself runs some work on the global pool (its idle threads hold event fds until they expire, 30 s
    # later); waitForDone also ends them, so that the fd check after this test sees only the test's own.
    if not QThreadPool.globalInstance().waitForDone(QT_GRACE_MS):
        problems.append(f"Qt's global thread pool still has {QThreadPool.globalInstance().activeThreadCount()} job(s)")
    if problems:
        pytest.fail("Qt threads or timers left behind:\n  " + "\n  ".join(problems), pytrace=False)
