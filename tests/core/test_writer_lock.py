"""One writer per library (issue 9, item 11): a second index or watch waits or says who holds the lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from photoembed.cli.main import main
from photoembed.core.writer_lock import WriterBusyError, WriterLock
from tests.conftest import make_photo

HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from photoembed.core.writer_lock import WriterLock
    lock = WriterLock(Path(sys.argv[1]), command="photoembed index")
    lock.acquire()
    print("held", flush=True)
    time.sleep(120)
    """
)


def _holder_process(data: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(data)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


def test_second_writer_is_told_who_holds_the_lock(tmp_path: Path) -> None:
    proc = _holder_process(tmp_path)
    try:
        lock = WriterLock(tmp_path, command="photoembed watch")
        with pytest.raises(WriterBusyError) as caught:
            lock.acquire()
        assert caught.value.holder is not None
        assert caught.value.holder.pid == proc.pid
        assert caught.value.holder.alive is True
        assert f"pid {proc.pid}" in str(caught.value)
        assert "photoembed index" in str(caught.value)
        assert lock.holder() is not None
    finally:
        _stop(proc)


def test_a_killed_holder_never_leaves_a_stale_lock(tmp_path: Path) -> None:
    proc = _holder_process(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    _stop(proc)
    lock = WriterLock(tmp_path, command="photoembed index")
    assert lock.holder() is None
    lock.acquire()
    assert lock.holder() is not None
    assert lock.holder().pid == os.getpid()  # type: ignore[union-attr]
    lock.release()


@pytest.mark.expected_warnings(r"Waiting for .* to finish writing this library")
def test_waiting_writer_gets_the_lock_when_it_is_released(tmp_path: Path) -> None:
    first = WriterLock(tmp_path, command="first")
    first.acquire()
    got = threading.Event()

    def second() -> None:
        lock = WriterLock(tmp_path, command="second")
        lock.acquire(wait_s=float("inf"), poll_s=0.02)
        got.set()
        lock.release()

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.2)
    assert not got.is_set()
    first.release()
    thread.join(10)
    assert got.is_set()


def test_cli_index_refuses_while_another_writer_runs_and_status_shows_it(
    capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path
) -> None:
    make_photo(tmp_path / "photos" / "a.jpg", seed=1)
    assert main(["add", str(tmp_path / "photos")]) == 0
    proc = _holder_process(home / "data")
    try:
        capsys.readouterr()
        assert main(["index"]) == 1
        err = capsys.readouterr().err
        assert f"pid {proc.pid}" in err
        assert "Traceback" not in err
        assert main(["watch"]) == 1
        assert f"pid {proc.pid}" in capsys.readouterr().err
        # Readers are never blocked, and status says who writes.
        assert main(["--json", "status"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["writer"]["pid"] == proc.pid
        assert status["photos"] == 0
    finally:
        _stop(proc)
    assert main(["index"]) == 0
    capsys.readouterr()
    assert main(["--json", "status"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["writer"] is None
    assert status["photos"] == 1
