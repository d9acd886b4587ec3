"""tests/gui/conftest.py fails a GUI test that leaves a QThread running or a QTimer active (run by pytester)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_running_qthread_and_active_timer_fail_and_a_tidy_test_passes(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        'pytest_plugins = ["tests.leak_checks"]\n'
        "from tests.gui.conftest import _fail_on_qt_leftovers as _fail_on_qt_leftovers\n"
    )
    pytester.makeini(
        "[pytest]\naddopts = -p no:cacheprovider\nqt_api = pyside6\n"
        "filterwarnings = ignore::pytest.PytestAssertRewriteWarning\n"
    )
    pytester.makepyfile(
        """
from PySide6.QtCore import QThread, QTimer
from PySide6.QtWidgets import QWidget

KEEP = []
TIMERS = []

def test_thread_left_running(qtbot):
    thread = QThread()
    thread.setObjectName("left-running")
    KEEP.append(thread)
    thread.start()  # an event loop that nobody quits

def test_timer_of_a_closed_widget(qtbot):
    widget = QWidget()
    KEEP.append(widget)
    timer = QTimer(widget)
    timer.setObjectName("status-clear")
    timer.setSingleShot(True)
    timer.start(60000)
    TIMERS.append(timer)
    widget.show()
    widget.close()

def test_tidy(qtbot):
    thread = QThread()
    thread.start()
    thread.quit()
    timer = QTimer()
    timer.start(60000)
    timer.stop()
    thread.wait()
    TIMERS.pop().stop()
    KEEP.pop()
    old = KEEP.pop()
    old.quit()
    old.wait()
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*QThread 'left-running' still running; started at *test_thread_left_running*",
            "*QTimer 'status-clear' (60000 ms, single-shot=True) still active, owned by QWidget('') closed/hidden;*",
        ]
    )
