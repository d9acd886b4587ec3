"""The leak checks of tests/leak_checks.py fail a test that leaks, and pass a clean one (run by pytester)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

HEADER = """
import logging
import os
import threading
from pathlib import Path

import pytest

from photoembed.storage.catalog import Catalog
"""


@pytest.fixture
def run(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest('pytest_plugins = ["tests.leak_checks"]\n')
    pytester.makeini(
        "[pytest]\naddopts = -p no:cacheprovider --strict-markers\n"
        # tests.leak_checks was imported by this session already, so pytester's run cannot rewrite it
        "filterwarnings = ignore::pytest.PytestAssertRewriteWarning\n"
    )
    return pytester


def _outcome(pytester: pytest.Pytester, body: str) -> pytest.RunResult:
    pytester.makepyfile(HEADER + body)
    return pytester.runpytest("-p", "no:pytest-qt")  # the inner tests use no Qt (and the Qt-free pass has none)


def test_a_clean_test_passes(run: pytest.Pytester) -> None:
    result = _outcome(
        run,
        """
def test_clean(tmp_path):
    catalog = Catalog.open(tmp_path / "c.sqlite3")
    catalog.close()
    with open(tmp_path / "f", "w") as f:
        f.write("x")
    t = threading.Thread(target=lambda: None, name="short")
    t.start()
    logging.getLogger("photoembed.x").info("fine")
""",
    )
    result.assert_outcomes(passed=1)


def test_a_leaked_thread_fails_with_its_name_and_target(run: pytest.Pytester) -> None:
    result = _outcome(
        run,
        """
STOP = threading.Event()

def park():
    STOP.wait(10)

def test_leaks_a_thread():
    threading.Thread(target=park, name="parked-worker", daemon=True).start()

def test_after():
    STOP.set()
""",
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*leaked thread 'parked-worker' (target test_*.park, daemon*"])


def test_a_thread_that_is_ending_gets_a_bounded_grace(run: pytest.Pytester) -> None:
    result = _outcome(
        run,
        """
import time

def test_ending_thread():
    threading.Thread(target=time.sleep, args=(0.3,), name="ending").start()
""",
    )
    result.assert_outcomes(passed=1)


def test_a_leaked_fd_fails_with_its_target(run: pytest.Pytester) -> None:
    if not __import__("os").path.isdir("/proc/self/fd"):
        pytest.skip("the fd check needs /proc/self/fd (Linux)")
    result = _outcome(
        run,
        """
KEEP = []

def test_leaks_an_fd(tmp_path):
    KEEP.append(open(tmp_path / "left-open.txt", "w"))

def test_after():
    KEEP.pop().close()
""",
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*leaked file descriptor * -> */left-open.txt"])


def test_a_catalog_left_open_fails_even_once_collected(run: pytest.Pytester) -> None:
    result = _outcome(
        run,
        """
KEEP = []

def test_keeps_it_open(tmp_path):
    KEEP.append(Catalog.open(tmp_path / "kept.sqlite3"))

def test_drops_it_unclosed(tmp_path):
    Catalog.open(tmp_path / "dropped.sqlite3")

def test_after():
    KEEP.pop().close()
""",
    )
    # A catalog dropped unclosed has its connections closed with it (the catalog owns them, and closes them
    # when it is collected): only the one kept open leaks.
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        ["*leaked SQLite connection #* to */kept.sqlite3, opened in thread 'MainThread' at "
         "*test_keeps_it_open* (still open)"]
    )


@pytest.mark.expected_warnings(r"^disk on fire 3$")  # the inner run logs in this process too
def test_an_unexpected_warning_fails_and_a_declared_one_passes(run: pytest.Pytester) -> None:
    result = _outcome(
        run,
        """
def test_unexpected():
    logging.getLogger("photoembed.storage.x").warning("disk on fire %d", 3)

@pytest.mark.expected_warnings(r"disk on fire")
def test_declared():
    logging.getLogger("photoembed.storage.x").warning("disk on fire %d", 3)

@pytest.mark.expected_warnings(r"something else")
def test_declared_another():
    logging.getLogger("photoembed.storage.x").error("disk on fire %d", 3)

def test_checked_with_caplog(caplog):
    logging.getLogger("photoembed.storage.x").warning("disk on fire %d", 3)
    assert "disk on fire 3" in caplog.text

def test_other_loggers_are_not_ours():
    logging.getLogger("somelib").warning("not ours")
""",
    )
    result.assert_outcomes(passed=5, errors=2)
    result.stdout.fnmatch_lines(
        ["*test_unexpected*", "*unexpected WARNING log from photoembed.storage.x (*): disk on fire 3"]
    )
    result.stdout.fnmatch_lines(["*unexpected ERROR log from photoembed.storage.x*"])


def test_leaks_ok_needs_a_reason_and_allows_the_leak(run: pytest.Pytester) -> None:
    result = _outcome(
        run,
        """
KEEP = []

@pytest.mark.leaks_ok("a process-wide cache opened once")
def test_allowed(tmp_path):
    KEEP.append(open(tmp_path / "cache", "w"))

@pytest.mark.leaks_ok
def test_no_reason():
    pass

def test_after():
    KEEP.pop().close()
""",
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.leaks_ok needs a reason*"])
