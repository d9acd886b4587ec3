"""Open a photo file without following links or blocking, and only when it is a regular file.

Between the scan and the read, a catalogued photo can be replaced by a symbolic link, a FIFO, or a device
node (``/dev/zero``). Opening such a path the ordinary way follows the link, blocks forever on the FIFO
(no Ctrl-C can stop a pool thread stuck in ``open``) or reads without end. Here every photo is opened with
``O_NOFOLLOW | O_NONBLOCK`` and checked with ``fstat`` on the opened descriptor (so no race between the
check and the read) before a byte is read; reads are bounded by a size limit.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

from photoembed.errors import KnownError

#: Files larger than this are not decoded (recorded as failed, with the reason): no photo format needs more,
#: and reading a multi-gigabyte file whole would exhaust memory.
MAX_PHOTO_BYTES = 1 << 30

_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


class UnsafeFileError(KnownError):
    """The path is not a regular file (a link, FIFO, socket, device or folder); the message says which."""


class FileTooLargeError(KnownError):
    """The file is larger than the limit photoembed reads into memory.

    Attributes:
        size: the file's size in bytes.
        limit: the limit in bytes.
        mtime_ns: the file's modification time (so the caller can record it and not retry it every scan).
    """

    def __init__(self, message: str, *, size: int, limit: int, mtime_ns: int = 0) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit
        self.mtime_ns = mtime_ns


def describe_mode(mode: int) -> str:
    """What a non-regular file is, in words ("a FIFO (named pipe)")."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


@contextlib.contextmanager
def open_regular(path: str | os.PathLike[str]) -> Iterator[tuple[BinaryIO, os.stat_result]]:
    """Open ``path`` for reading if, and only if, it is a regular file; yields the handle and its fstat.

    Raises:
        UnsafeFileError: a symbolic link (never followed), FIFO, socket, device or folder.
        FileNotFoundError: the file is gone.
        OSError: any other error from the system.
    """
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        # O_NOFOLLOW on a symbolic link fails with ELOOP (EMLINK on FreeBSD, EFTYPE on NetBSD).
        if exc.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise UnsafeFileError("not read: it is a symbolic link, and links are never followed") from exc
        raise
    try:
        info = _regular_fstat(fd)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle, info


def _regular_fstat(fd: int) -> os.stat_result:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeFileError(f"not read: it is {describe_mode(info.st_mode)}, not a regular file")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)  # non-blocking only to open a FIFO without hanging; plain reads from here on
    return info


def read_regular(path: str | os.PathLike[str], *, limit: int = MAX_PHOTO_BYTES) -> tuple[bytes, os.stat_result]:
    """The whole content of a regular file of at most ``limit`` bytes, and its fstat.

    Raises:
        FileTooLargeError: the file is larger than ``limit`` (nothing is read).
        UnsafeFileError, FileNotFoundError, OSError: see :func:`open_regular`.
    """
    with open_regular(path) as (handle, info):
        if info.st_size > limit:
            raise _too_large(info.st_size, limit, info.st_mtime_ns)
        data = handle.read(limit + 1)  # bounded even if the file grows while it is read
        if len(data) > limit:
            raise _too_large(len(data), limit, info.st_mtime_ns)
        return data, info


def _too_large(size: int, limit: int, mtime_ns: int) -> FileTooLargeError:
    return FileTooLargeError(
        f"file too large to read ({size / 2**20:,.0f} MiB; the limit is {limit / 2**20:,.0f} MiB)",
        size=size,
        limit=limit,
        mtime_ns=mtime_ns,
    )
