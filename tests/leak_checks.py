"""Leak checks run around every test: threads, file descriptors, catalog connections and warning logs.

A test fails (an error at teardown) when, after all its fixtures are torn down, it left behind:

- a Python thread that was not running before it (after a bounded join of :data:`THREAD_GRACE_S`),
- a file descriptor that was not open before it (Linux only: read from ``/proc/self/fd``),
- a SQLite connection opened by a :class:`~photoembed.storage.catalog.Catalog` and never closed,
- a WARNING (or worse) log record from a ``photoembed.*`` logger that the test did not declare.

The baseline is taken after the session- and module-scoped fixtures the test uses are set up (pytest sets up
wider scopes first), so a shared model or encoder keeps its resources without being reported.

Declaring what is expected:

- ``@pytest.mark.leaks_ok("reason")`` skips the thread, fd and connection checks for one test; the reason
  is required. Keep it rare: fix the leak instead.
- ``@pytest.mark.expected_warnings("regex", ...)`` allows warning records whose message matches one of the
  patterns (``re.search``); with no pattern it allows every warning. A test that requests ``caplog`` is
  taken to check the log itself and is not failed for warnings.

The fixtures live here (not in ``tests/conftest.py``) so that ``tests/test_leak_fixtures.py`` can load them
in a pytester run.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from photoembed.storage.catalog import forget_connections, open_connections

# How long a thread that is ending may take to finish once its test is over (a bounded join, not a sleep).
THREAD_GRACE_S = 2.0

_FD_DIR = Path("/proc/self/fd")


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers (pyproject.toml registers them too; this serves a pytester run)."""
    config.addinivalue_line("markers", "leaks_ok(reason): the test may leave threads, fds or connections")
    config.addinivalue_line("markers", "expected_warnings(*patterns): warning logs the test expects")


class _WarningRecords(logging.Handler):
    """Collects WARNING-or-worse records that reach the ``photoembed`` logger."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _open_fds() -> dict[int, str] | None:
    """Open fds and what they point to, or None where ``/proc/self/fd`` does not exist (not Linux)."""
    if not _FD_DIR.is_dir():
        return None
    fds: dict[int, str] = {}
    for name in os.listdir(_FD_DIR):
        try:
            fds[int(name)] = os.readlink(_FD_DIR / name)
        except OSError:  # the fd listdir itself used, closed by now; or one closed by another thread
            continue
    return fds


def _os_threads() -> dict[int, str]:
    """Native thread id -> name of every OS thread of this process (Python's and foreign ones), on Linux."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return {}
    threads = {}
    for name in os.listdir(tasks):
        try:
            threads[int(name)] = (tasks / name / "comm").read_text().strip()
        except OSError:  # ended meanwhile
            continue
    return threads


def _describe_thread(thread: threading.Thread) -> str:
    target = getattr(thread, "_target", None)
    where = "run() override" if target is None else f"{getattr(target, '__module__', '?')}.{target.__qualname__}"
    kind = "daemon" if thread.daemon else "non-daemon"
    return f"thread {thread.name!r} (target {where}, {kind}, ident {thread.ident})"


def _leaked_threads(before: set[threading.Thread]) -> list[str]:
    deadline = time.monotonic() + THREAD_GRACE_S
    leaked = []
    for thread in threading.enumerate():
        # Dummy threads are foreign (Qt) threads that once ran Python code; Python cannot join them nor know
        # when they end. tests/gui/conftest.py checks QThreads and thread pools instead.
        if thread in before or isinstance(thread, threading._DummyThread) or thread is threading.current_thread():
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            leaked.append(f"leaked {_describe_thread(thread)}")
    return leaked


def _process_wide_fds() -> set[int]:
    """Fds that the standard library opens once per process and keeps on purpose (not a test's leak)."""
    fds = set()
    tracker = sys.modules.get("multiprocessing.resource_tracker")
    if tracker is not None:  # started by the first spawned process (a process pool); lives as long as we do
        fd = getattr(getattr(tracker, "_resource_tracker", None), "_fd", None)
        if isinstance(fd, int):
            fds.add(fd)
    return fds


def _leaked_fds(before: dict[int, str] | None) -> list[str]:
    after = _open_fds()
    if before is None or after is None:
        return []
    kept = _process_wide_fds()
    return [
        f"leaked file descriptor {fd} -> {target}"
        for fd, target in sorted(after.items())
        if before.get(fd) != target and fd not in kept
    ]


# Qt names the threads of every QThreadPool so. Qt GUI scales and converts images on a private pool of its own
# (not reachable from Python); each of its threads keeps one eventfd until it expires, 30 s after its last job.
QT_POOL_THREAD = "Thread (pooled)"


# Process-wide state that libraries create once, on first use, whichever test that is: tqdm's monitor thread
# (started by the ONNX exporter's progress bars) and ONNX Runtime's device-id database, which it keeps open
# for the life of the process. Named exactly; anything else a test leaves behind still fails it.
_LIBRARY_GLOBAL_THREADS = ("leaked thread 'tqdm_monitor'",)
_LIBRARY_GLOBAL_FILES = tuple(
    f"/.onnxruntime/onnxruntime.db{suffix}" for suffix in ("", "-wal", "-shm", "-journal")
)


def _excuse_qt_pool_eventfds(leaked: list[str], new_os_threads: dict[int, str]) -> list[str]:
    """Drop one eventfd per new Qt pool thread: Qt's own image pool, not the test's (GUI pools are checked
    by tests/gui/conftest.py, which waits for them and so ends their threads before this check)."""
    budget = sum(1 for name in new_os_threads.values() if name == QT_POOL_THREAD)
    kept = []
    for line in leaked:
        if budget and line.endswith("-> anon_inode:[eventfd]"):
            budget -= 1
            continue
        kept.append(line)
    return kept


def _leaked_connections(before: set[int]) -> list[str]:
    leaked = [info for info in open_connections() if info.serial not in before]
    forget_connections(info.serial for info in leaked)  # reported once, not again by the next test
    return [
        f"leaked SQLite connection #{info.serial} to {info.path}, opened in thread {info.thread!r} at "
        f"{info.opened_at}"
        + (" (garbage-collected without close())" if info.collected else " (still open)")
        for info in leaked
    ]


def _unexpected_warnings(item: pytest.Item, records: list[logging.LogRecord]) -> list[str]:
    fixturenames = getattr(item, "fixturenames", ())
    if "caplog" in fixturenames:
        return []
    markers = list(item.iter_markers("expected_warnings"))  # every one of them: module, class and test
    if any(not marker.args for marker in markers):
        return []
    patterns = [re.compile(str(p)) for marker in markers for p in marker.args]
    return [
        f"unexpected {record.levelname} log from {record.name} ({record.pathname}:{record.lineno}): "
        f"{record.getMessage()}"
        for record in records
        if not any(p.search(record.getMessage()) for p in patterns)
    ]


@pytest.fixture(autouse=True)
def _fail_on_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test on leaked threads, fds, catalog connections or unexpected photoembed warnings."""
    item = request.node
    allow = item.get_closest_marker("leaks_ok")
    if allow is not None and not (allow.args and str(allow.args[0]).strip()):
        pytest.fail("@pytest.mark.leaks_ok needs a reason", pytrace=False)
    threads = set(threading.enumerate())
    fds = _open_fds()
    os_threads = _os_threads()
    connections = {info.serial for info in open_connections()}
    handler = _WarningRecords()
    logger = logging.getLogger("photoembed")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    problems = _unexpected_warnings(item, handler.records)
    if allow is None:
        problems += [p for p in _leaked_threads(threads) if not p.startswith(_LIBRARY_GLOBAL_THREADS)]
        gc.collect()  # so that a connection dropped without close() is seen as such, and its fd is gone
        # A thread that has just ended closes its catalog connection as its thread state is torn down, a
        # moment after join() returns: give such closes a bounded moment to land (real leaks stay).
        deadline = time.monotonic() + THREAD_GRACE_S
        while True:
            open_now = [info for info in open_connections() if info.serial not in connections]
            new_os_threads = {tid: name for tid, name in _os_threads().items() if tid not in os_threads}
            leaked_fds = _excuse_qt_pool_eventfds(
                [f for f in _leaked_fds(fds) if not f.endswith(_LIBRARY_GLOBAL_FILES)], new_os_threads
            )
            if not (open_now or leaked_fds) or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
            gc.collect()
        problems += _leaked_connections(connections)
        problems += leaked_fds
        foreign = sorted(f"{name} ({tid})" for tid, name in new_os_threads.items())
        if leaked_fds and foreign:  # an fd is often held by a thread Python does not know (Qt, OpenMP)
            problems.append("OS threads started during the test and still alive: " + ", ".join(foreign))
    if problems:
        pytest.fail(
            f"{item.nodeid} leaked resources or logged unexpected warnings:\n  " + "\n  ".join(problems),
            pytrace=False,
        )


__all__ = ["_fail_on_leaks", "pytest_configure"]
