"""The worker thread and the pools: results, progress, cancellation, errors, stale jobs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot

from photoembed.errors import KnownError
from photoembed.gui.workers import BackgroundPool, TaskContext, TaskError, TaskRunner


def counting(n: int, *, delay: float = 0.0) -> Iterator[int]:
    for i in range(n):
        if delay:
            time.sleep(delay)
        yield i
    return


def test_task_runs_on_the_worker_thread_and_reports(qtbot: QtBot) -> None:
    runner = TaskRunner()
    seen: dict[str, object] = {}
    progress: list[object] = []

    def task(ctx: TaskContext) -> str:
        seen["thread"] = threading.current_thread()
        ctx.drive(counting(5))
        return "ok"

    finished: list[bool] = []
    runner.submit("count", task, on_progress=progress.append, on_result=lambda v: seen.setdefault("v", v),
                  on_finished=finished.append)
    qtbot.waitUntil(lambda: bool(finished), timeout=5000)
    assert finished == [False]  # not cancelled
    assert seen["v"] == "ok"
    assert seen["thread"] is not threading.main_thread()
    assert progress
    assert progress[-1] == 4
    runner.shutdown()


def test_cancel_stops_a_running_task(qtbot: QtBot) -> None:
    runner = TaskRunner()
    started = threading.Event()
    outcome: list[bool] = []

    def task(ctx: TaskContext) -> None:
        started.set()
        ctx.drive(counting(10_000, delay=0.001))

    job = runner.submit("long", task, on_finished=outcome.append)
    assert started.wait(5)
    job.cancel()
    qtbot.waitUntil(lambda: bool(outcome), timeout=5000)
    assert outcome == [True]
    runner.shutdown()


def test_known_errors_and_bugs_are_reported_apart(qtbot: QtBot, caplog: pytest.LogCaptureFixture) -> None:
    runner = TaskRunner(force_sync=True)
    errors: list[TaskError] = []

    def known(_ctx: TaskContext) -> None:
        raise KnownError("The folder is gone")

    def bug(_ctx: TaskContext) -> None:
        raise ZeroDivisionError("boom")

    runner.submit("known", known, on_failed=errors.append)
    with caplog.at_level("CRITICAL"):  # the bug's traceback is logged at ERROR; keep the output quiet
        runner.submit("bug", bug, on_failed=errors.append)
    assert errors[0] == TaskError("The folder is gone", True)
    assert not errors[1].known
    assert "ZeroDivisionError" in errors[1].message
    assert "Traceback" in errors[1].detail
    runner.shutdown()


def test_jobs_run_in_order_and_a_queued_cancelled_job_never_starts(qtbot: QtBot) -> None:
    runner = TaskRunner()
    gate = threading.Event()
    order: list[str] = []
    runner.submit("first", lambda _c: (gate.wait(5), order.append("first")))
    second = runner.submit("second", lambda _c: order.append("second"))
    third = runner.submit("third", lambda _c: order.append("third"))
    second.cancel()
    gate.set()
    with qtbot.waitSignal(runner.busy_changed, timeout=5000, check_params_cb=lambda busy: not busy):
        pass
    assert order == ["first", "third"]
    assert not third.cancelled
    runner.shutdown()


def test_pool_delivers_on_the_gui_thread_and_clear_drops_queued_jobs(qtbot: QtBot) -> None:
    pool = BackgroundPool(threads=1)
    gate = threading.Event()
    delivered: list[tuple[str, threading.Thread]] = []
    pool.submit(lambda: gate.wait(5) and "first", lambda v: delivered.append((v, threading.current_thread())))
    pool.submit(lambda: "stale", lambda v: delivered.append((v, threading.current_thread())), tag="search")
    pool.clear(tag="search")
    gate.set()
    qtbot.waitUntil(lambda: pool.pending_count() == 0, timeout=5000)
    assert [v for v, _ in delivered] == ["first"]
    assert delivered[0][1] is threading.main_thread()
    pool.shutdown()


def test_pool_reports_errors(qtbot: QtBot) -> None:
    pool = BackgroundPool(force_sync=True)
    errors: list[TaskError] = []

    def fail() -> None:
        raise KnownError("unreadable")

    pool.submit(fail, lambda _v: None, errors.append)
    assert errors == [TaskError("unreadable", True)]
