"""The running watcher's state, in a small JSON file another process can read (``photoembed status``).

The watch service rewrites it atomically on every root state change and batch, and at least every
heartbeat while idle; it removes it when it stops. A reader treats it as current only while the process
that wrote it is alive.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Protocol

from photoembed.config import atomic_write_text

logger = logging.getLogger(__name__)

STATE_FILE_NAME = "watch-state.json"
STALE_AFTER_HEARTBEATS = 3


class HasDataDir(Protocol):
    """What :func:`read_watch_state` needs of :class:`photoembed.config.Paths`."""

    @property
    def data(self) -> Path: ...


def state_path(paths: HasDataDir) -> Path:
    return paths.data / STATE_FILE_NAME


def write_watch_state(path: Path, state: dict[str, Any]) -> None:
    """Write the state file (atomically: a reader sees the old or the new one)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(state, indent=2, ensure_ascii=False) + "\n")
    except OSError as exc:
        # Status display only: a full disk must not stop the watcher.
        logger.warning("Cannot write the watcher state %s: %s", path, exc)


def remove_watch_state(path: Path, *, pid: int) -> None:
    """Remove the state file if this process wrote it."""
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == pid:
            path.unlink()


def process_started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None when it does not run."""
    import psutil  # here: `photoembed status` needs it only when a watch state file exists

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:  # NoSuchProcess, AccessDenied, ZombieProcess
        return None


def read_watch_state(paths: HasDataDir) -> dict[str, Any] | None:
    """The running watcher's state for this library, or None when no watcher is running.

    Returns:
        ``{"pid", "started", "heartbeat", "heartbeat_s", "stale", "roots": [{"path", "mode", "reason",
        "since"}], "pending", "last_batch"}``; ``stale`` is true when the process is alive but has not
        written for several heartbeats (busy with a very long sync, or hung).
    """
    return read_watch_state_file(state_path(paths))


def read_watch_state_file(path: Path) -> dict[str, Any] | None:
    """:func:`read_watch_state` for an explicit state file."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not isinstance(state.get("pid"), int):
        return None
    started = process_started(state["pid"])
    # A recycled pid belongs to a process that started after the watcher did.
    if started is None or started > float(state.get("process_started", 0)) + 1.0:
        return None
    heartbeat_s = float(state.get("heartbeat_s", 30.0))
    state["stale"] = time.time() - float(state.get("heartbeat", 0)) > STALE_AFTER_HEARTBEATS * heartbeat_s
    return state


def current_process_started() -> float:
    return process_started(os.getpid()) or time.time()
