"""``photoembed watch`` as a user runs it (a process stopped with Ctrl-C) and ``bench watch-stress``."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from photoembed.bench.watch_stress import run_storms
from photoembed.cli.main import main
from photoembed.config import Paths
from photoembed.watch.state import read_watch_state
from tests.conftest import make_photo
from tests.watch.conftest import FAST, WAIT_S, wait_until

# watchdog warns (RuntimeWarning) on its inotify thread when a moved folder's watch is registered twice
# for the same callback, which is harmless; under filterwarnings=error it would kill that thread.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")


def _lines(process: subprocess.Popen[str]) -> queue.Queue[str | None]:
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _next_json(lines: queue.Queue[str | None], predicate: Any) -> dict[str, Any]:
    while True:
        line = lines.get(timeout=WAIT_S * 2)
        assert line is not None, "photoembed watch exited early"
        record = json.loads(line)
        if predicate(record):
            return dict(record)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_watch_command_prints_json_lines_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    home, root = tmp_path / "home", tmp_path / "photos"
    make_photo(root / "a.jpg", seed=1)
    assert main(["--home", str(home), "add", str(root)]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "photoembed", "--home", str(home), "--json", "watch", "--quiet-period", "0.6"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        lines = _lines(process)
        root_line = _next_json(lines, lambda r: r["kind"] == "root")
        assert root_line["mode"] == "native"
        first = _next_json(lines, lambda r: r["kind"] == "indexed")
        assert (first["reconcile"], first["added"]) == (True, 1)
        state = read_watch_state(Paths.resolve(home))
        assert state is not None
        assert state["pid"] == process.pid
        assert [r["mode"] for r in state["roots"]] == ["native"]

        make_photo(root / "b.jpg", seed=2)
        batch = _next_json(lines, lambda r: r["kind"] == "indexed" and r["added"])
        assert batch["paths"] == [str(root.resolve() / "b.jpg")]
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=WAIT_S)
    assert process.returncode == 0, stderr
    wait_until(lambda: read_watch_state(Paths.resolve(home)) is None, what="the state file removed")


def test_watch_command_needs_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(tmp_path / "home"), "watch"]) == 1
    assert "no folders" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("polling", [False, True], ids=["native", "polling"])
def test_stress_storms_settle_with_index_equal_to_disk(tmp_path: Path, polling: bool) -> None:
    options = replace(FAST, max_latency_s=5.0)
    log: list[str] = []
    results = run_storms(tmp_path, files=60, polling=polling, settle_timeout=30.0, log=log.append,
                         options=options, burst_pause_s=0.05)
    assert [r.name for r in results] == [
        "create in bursts", "rename", "move folder within root", "move folder out of root",
        "overwrite in place", "delete", "unplug root", "plug root back", "delete root", "re-create root",
    ]
    for result in results:
        assert result.consistent, (result.to_json(), log)
    if not polling:
        # Native events see a rename as a rename: the rows (and their embeddings) are kept.
        assert "0 rows re-created instead of moved" in results[1].notes
        assert "0 rows re-created instead of moved" in results[2].notes
    assert "0 rows re-created instead of moved" in results[7].notes  # plugged back: the same rows


@pytest.mark.slow
def test_stress_command_prints_its_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(tmp_path), "--json", "bench", "watch-stress", "--files", "16"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert len(report["storms"]) == 10
    assert all(s["settle_s"] is not None and s["missing"] == s["stale"] == s["duplicates"] == 0
               for s in report["storms"])
