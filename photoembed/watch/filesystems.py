"""Which file system a folder lives on, to know whether native change events can be trusted there.

Native watchers (inotify, FSEvents, ReadDirectoryChangesW) only see changes made through this machine's
kernel: on a network share (NFS, SMB, sshfs, 9p...) a file another machine writes raises no event, so such
roots are polled instead.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)

# File systems whose changes can come from elsewhere (so native events miss them) or that do not support
# native events at all. FUSE file systems backed by a remote store report as "fuse.<name>"; "fuseblk"
# (ntfs-3g, exfat on a local disk) is local and left out.
REMOTE_FS_TYPES: frozenset[str] = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb", "smbfs", "smb2", "smb3", "ncpfs", "afs", "coda", "9p", "v9fs",
        "sshfs", "davfs", "webdav", "afpfs", "glusterfs", "ceph", "lustre", "gpfs", "ocfs2", "gfs2",
        "vboxsf", "vmhgfs", "drvfs", "virtiofs", "fuse",
    }
)


@dataclass(frozen=True)
class MountInfo:
    """The mount a folder lives on."""

    mount_point: str
    fs_type: str

    @property
    def remote(self) -> bool:
        """Whether native change events are unreliable on this file system."""
        return self.fs_type in REMOTE_FS_TYPES or self.fs_type.startswith("fuse.")


def mount_of(path: Path, *, mounts_file: Path = Path("/proc/self/mounts")) -> MountInfo | None:
    """The mount ``path`` lives on, or None where that cannot be told.

    Linux reads ``/proc/self/mounts``; other systems ask psutil (its "remote" option marks network drives
    on Windows).
    """
    real = os.path.realpath(path)
    if sys.platform.startswith("linux"):
        entries = _linux_mounts(mounts_file)
    else:
        entries = _psutil_mounts()
    best: MountInfo | None = None
    for mount_point, fs_type in entries:
        inside = real == mount_point or real.startswith(mount_point.rstrip(os.sep) + os.sep)
        if inside and (best is None or len(mount_point) > len(best.mount_point)):
            best = MountInfo(mount_point, fs_type)
    return best


def _linux_mounts(mounts_file: Path) -> list[tuple[str, str]]:
    try:
        text = mounts_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            entries.append((_unescape_mount(fields[1]), fields[2]))
    return entries


def _unescape_mount(field: str) -> str:
    """/proc/mounts writes spaces, tabs, newlines and backslashes in octal (``\\040``)."""
    if "\\" not in field:
        return field
    out = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _psutil_mounts() -> list[tuple[str, str]]:
    try:
        partitions = psutil.disk_partitions(all=True)
    except OSError as exc:
        logger.debug("Cannot list mounts: %s", exc)
        return []
    entries = []
    for part in partitions:
        fs_type = part.fstype.lower()
        if "remote" in part.opts.split(","):
            fs_type = "smb"  # a Windows network drive, whatever its file system
        entries.append((part.mountpoint, fs_type))
    return entries


def is_mount_point(path: Path) -> bool:
    """Whether ``path`` is itself a mount point (unplugging it leaves an empty folder behind)."""
    try:
        return os.path.ismount(path)
    except OSError:
        return False


# -- folder identity ---------------------------------------------------------------------------------

FolderIdentity = tuple[int, int, int | None, int | None]

_FS_IOC_GETVERSION = 0x80087601  # _IOR('v', 1, long): the inode's generation number (ext4, btrfs, xfs...)
_AT_FDCWD = -100
_STATX_BTIME = 0x800
_STATX_BTIME_OFFSET = 80  # struct statx: stx_btime follows mask, blksize, attributes, ..., stx_atime


def folder_identity(path: Path) -> FolderIdentity:
    """What tells this folder from another one later created at the same path.

    ``(st_dev, st_ino)`` alone is not enough: ext4 hands a freed inode number to the next ``mkdir``, so a
    folder deleted and re-created reads as the same. The inode's generation number (which the file system
    changes whenever it reuses an inode) and the birth time (statx; ``st_birthtime`` on macOS and BSD) are
    added where the system gives them; either tells the two apart.

    Raises:
        OSError: the folder cannot be reached.
    """
    info = os.stat(path)
    return info.st_dev, info.st_ino, _generation(path), _birth_time_ns(path, info)


def _generation(path: Path) -> int | None:
    if not sys.platform.startswith("linux"):
        return None
    import fcntl
    import struct

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        raw = fcntl.ioctl(fd, _FS_IOC_GETVERSION, b"\0" * 8)
    except OSError:  # not supported by this file system (tmpfs, FUSE...)
        return None
    finally:
        os.close(fd)
    return int(struct.unpack("q", raw)[0]) & 0xFFFFFFFF


def _birth_time_ns(path: Path, info: os.stat_result) -> int | None:
    birth = getattr(info, "st_birthtime_ns", None) or getattr(info, "st_birthtime", None)
    if birth is not None:
        return int(birth if isinstance(birth, int) else birth * 1e9)
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import struct

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        statx = libc.statx
    except (OSError, AttributeError):  # glibc < 2.28, or another libc
        return None
    buf = ctypes.create_string_buffer(256)
    if statx(_AT_FDCWD, os.fsencode(path), 0, _STATX_BTIME, buf) != 0:
        return None
    mask = struct.unpack_from("I", buf, 0)[0]
    if not mask & _STATX_BTIME:
        return None
    seconds, nanos = struct.unpack_from("qI", buf, _STATX_BTIME_OFFSET)
    return int(seconds) * 1_000_000_000 + int(nanos)
