"""The watcher's state file, as ``photoembed status`` reads it from another process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from photoembed.config import Paths
from photoembed.watch.state import (
    current_process_started,
    read_watch_state,
    remove_watch_state,
    state_path,
    write_watch_state,
)


def _state(**changes: object) -> dict[str, object]:
    state: dict[str, object] = {
        "pid": os.getpid(),
        "process_started": current_process_started(),
        "heartbeat": time.time(),
        "heartbeat_s": 30.0,
        "roots": [{"path": "/photos", "mode": "native", "reason": "", "since": 0.0}],
    }
    state.update(changes)
    return state


def test_no_watcher_no_state(tmp_path: Path) -> None:
    assert read_watch_state(Paths.resolve(tmp_path)) is None


def test_running_watcher_state_is_read(tmp_path: Path) -> None:
    paths = Paths.resolve(tmp_path)
    write_watch_state(state_path(paths), _state())
    state = read_watch_state(paths)
    assert state is not None
    assert state["roots"][0]["mode"] == "native"
    assert state["stale"] is False


def test_old_heartbeat_is_stale(tmp_path: Path) -> None:
    paths = Paths.resolve(tmp_path)
    write_watch_state(state_path(paths), _state(heartbeat=time.time() - 3600))
    state = read_watch_state(paths)
    assert state is not None
    assert state["stale"] is True


def test_dead_process_means_no_watcher(tmp_path: Path) -> None:
    paths = Paths.resolve(tmp_path)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    write_watch_state(state_path(paths), _state(pid=int(finished.stdout)))
    assert read_watch_state(paths) is None


def test_recycled_pid_means_no_watcher(tmp_path: Path) -> None:
    paths = Paths.resolve(tmp_path)
    # This pid is alive, but the process started after the (older) watcher that wrote the file.
    write_watch_state(state_path(paths), _state(process_started=current_process_started() - 3600))
    assert read_watch_state(paths) is None


def test_corrupt_file_means_no_watcher(tmp_path: Path) -> None:
    paths = Paths.resolve(tmp_path)
    state_path(paths).parent.mkdir(parents=True)
    state_path(paths).write_text("{not json")
    assert read_watch_state(paths) is None
    state_path(paths).write_text(json.dumps({"pid": "x"}))
    assert read_watch_state(paths) is None


def test_remove_only_our_own_file(tmp_path: Path) -> None:
    path = state_path(Paths.resolve(tmp_path))
    write_watch_state(path, _state(pid=1))
    remove_watch_state(path, pid=os.getpid())
    assert path.exists()
    write_watch_state(path, _state())
    remove_watch_state(path, pid=os.getpid())
    assert not path.exists()
