"""One writer per library: an advisory lock file that names its holder.

Two ``index`` runs (or an ``index`` beside a ``watch``) on one library would both read, embed and write
everything. The writer takes an exclusive ``flock`` (``msvcrt.locking`` on Windows) on ``writer.lock`` in the
library's data folder and writes its pid, command and start time into it. The kernel drops the lock when its
holder exits, however it exits (``kill -9`` included), so a lock is never stale; the recorded pid is only read
to tell the user who holds it, and is checked for life so that the message does not name a dead process.

Readers (search, status, the GUI's views) never take it: SQLite's WAL lets them read while the writer
writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from photoembed.errors import KnownError

logger = logging.getLogger(__name__)

LOCK_NAME = "writer.lock"


@dataclass(frozen=True)
class LockHolder:
    """Who holds a library's writer lock (as it wrote itself into the lock file)."""

    pid: int
    command: str
    since: float
    host: str

    @property
    def alive(self) -> bool | None:
        """Whether the recorded process still runs (None: another machine, cannot tell)."""
        if self.host != socket.gethostname():
            return None
        import psutil  # only when another writer holds the lock: `photoembed index` need not load it

        return psutil.pid_exists(self.pid)

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.since))
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        text = f"`{self.command}` (pid {self.pid}{where}, since {started})"
        if self.alive is False:
            text += ", whose process has ended while a process it started still holds the lock"
        return text


class WriterBusyError(KnownError):
    """Another process is writing this library.

    Attributes:
        holder: who holds the lock, when its lock file could be read.
    """

    def __init__(self, message: str, *, holder: LockHolder | None) -> None:
        super().__init__(message)
        self.holder = holder


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    if sys.platform == "win32":  # pragma: no cover
        import msvcrt

        with contextlib.suppress(OSError):
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


class WriterLock:
    """The writer lock of one library (``data/writer.lock``). Not reentrant; one per process and library.

    Args:
        data_dir: the library's data folder (``Paths.data``).
        command: what the holder is doing, shown to whoever waits ("photoembed index").
    """

    def __init__(self, data_dir: Path, *, command: str) -> None:
        self.path = data_dir / LOCK_NAME
        self.command = command
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, wait_s: float = 0.0, poll_s: float = 0.25, cancel: threading.Event | None = None) -> None:
        """Take the lock, waiting up to ``wait_s`` seconds (``float("inf")``: until it is free).

        Raises:
            WriterBusyError: still held by another process after ``wait_s`` (the message says by whom).
            KnownError: the lock file cannot be created (read-only home...).
        """
        if self._fd is not None:
            raise RuntimeError("the writer lock is already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            self._wait_for(fd, deadline=time.monotonic() + wait_s, poll_s=poll_s, cancel=cancel)
            self._write_holder(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _wait_for(self, fd: int, *, deadline: float, poll_s: float, cancel: threading.Event | None) -> None:
        told = False
        while not _try_lock(fd):
            holder = self._read_holder(fd)
            if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
                raise WriterBusyError(self._busy_message(holder), holder=holder)
            if not told:
                logger.warning("Waiting for %s to finish writing this library", _who(holder))
                told = True
            time.sleep(poll_s)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # the next reader of the file sees no holder
            _unlock(fd)
        except OSError as exc:  # closing drops the lock anyway
            logger.debug("Releasing %s: %s", self.path, exc)
        finally:
            os.close(fd)

    def holder(self) -> LockHolder | None:
        """Who holds the lock now, or None when it is free (never blocks, never takes it for long)."""
        if self._fd is not None:
            return self._read_holder(self._fd)
        try:
            fd = os.open(self.path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        try:
            if _try_lock(fd):
                _unlock(fd)
                return None
            return self._read_holder(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    # -- the holder record ---------------------------------------------------------------------------

    def _write_holder(self, fd: int) -> None:
        record = {"pid": os.getpid(), "command": self.command, "since": time.time(), "host": socket.gethostname()}
        data = json.dumps(record).encode("utf-8")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, data)

    @staticmethod
    def _read_holder(fd: int) -> LockHolder | None:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            raw = os.read(fd, 4096)
            record = json.loads(raw.decode("utf-8"))
            return LockHolder(
                pid=int(record["pid"]), command=str(record["command"]), since=float(record["since"]),
                host=str(record["host"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None  # being written right now, or by an older photoembed

    def _busy_message(self, holder: LockHolder | None) -> str:
        return (
            f"another photoembed is writing this library: {_who(holder)}; wait for it to finish (or stop it), "
            "or pass --wait to wait for it"
        )


def _who(holder: LockHolder | None) -> str:
    return holder.describe() if holder is not None else "a process that has not said who it is yet"
