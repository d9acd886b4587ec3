"""Moving files to the OS trash and back, one recorded step at a time (never a permanent delete).

On Linux and other freedesktop systems the trash is a folder: ``files/NAME`` holds the file and
``info/NAME.trashinfo`` its original ``Path=``. photoembed writes that trash itself, following the
freedesktop spec, instead of going through send2trash: send2trash does not say where it put a file, and the
journal (see :mod:`photoembed.dedup.service`) must know the exact slot *before* the move, so that a crash at
any point can be finished or rolled back, and undo takes back the very file that was moved (checked by its
content hash), not the newest one that came from the same path.

A move is a ``rename`` when the trash is on the same mount; across mounts (EXDEV: another file system, or a
bind mount of the same one) it is a copy, ``fsync``, a hash check of the copy, and only then the unlink of
the source. The same holds for restoring. Every step boundary calls ``step(name)`` (a no-op in production;
the fault-injection tests kill the process there).

macOS and Windows keep no open record of their trash: there send2trash moves the file and a restore is left
to the user with a clear message (:class:`SendToTrash`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, unquote

from photoembed.errors import KnownError

logger = logging.getLogger(__name__)

Step = Callable[[str], None]

_CHUNK = 1 << 20
# Never follow a symlink, never block on a FIFO (both flags are POSIX; Windows has neither, and no FIFOs).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_READ = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | _BINARY
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY


def _no_step(_name: str) -> None:
    return None


class TrashError(KnownError):
    """A move to or from the trash did not happen; the file is where it was."""


class ContentMismatchError(TrashError):
    """The file does not have the content the journal recorded (changed, or another file)."""


@dataclass(frozen=True)
class FileFacts:
    """A regular file as read now: its identity (device + inode) and content."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    content_hash: str

    @property
    def identity(self) -> tuple[int, int]:
        return (self.dev, self.ino)


def read_facts(path: Path) -> FileFacts:
    """Identity, size and content hash of ``path``, read now; never follows a symlink, never opens a FIFO.

    Raises OSError (FileNotFoundError when absent; ELOOP for a symlink) or :class:`TrashError` when the
    path is not a regular file. The hash is the catalog's (xxh3-128), streamed in 1 MiB chunks.
    """
    import xxhash

    fd = os.open(path, _READ)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise TrashError(f"{path} is not a regular file")
        digest = xxhash.xxh3_128()
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
    finally:
        os.close(fd)
    return FileFacts(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, digest.hexdigest())


def facts_or_none(path: Path) -> FileFacts | None:
    """:func:`read_facts`, or None when the path is absent, a symlink, unreadable or not a regular file."""
    try:
        return read_facts(path)
    except (OSError, TrashError):
        return None


@dataclass(frozen=True)
class TrashSlot:
    """Where one file goes in a freedesktop trash: ``folder/files/name`` and ``folder/info/name.trashinfo``."""

    folder: Path
    name: str

    @property
    def stored(self) -> Path:
        return self.folder / "files" / self.name

    @property
    def info(self) -> Path:
        return self.folder / "info" / f"{self.name}.trashinfo"

    def info_path_field(self) -> Path | None:
        """The original path the info file records, or None when there is no readable info file."""
        try:
            text = self.info.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError:
            return None
        return _parse_info(text, _topdir(self.folder))[0]


class TrashBackend(Protocol):
    """Where removed photos go.

    ``records`` is True when the backend knows its slots (freedesktop), so moves can be journaled exactly
    and undone; False when the OS trash keeps no open record (macOS, Windows).
    """

    records: bool

    def choose_slot(self, path: Path) -> TrashSlot | None: ...

    def put(self, path: Path, slot: TrashSlot | None, *, content_hash: str | None, step: Step = _no_step) -> None: ...

    def take_back(self, slot: TrashSlot, dest: Path, *, content_hash: str | None, step: Step = _no_step) -> None: ...

    def entries_for(self, original: Path) -> list[TrashSlot]: ...


class FreedesktopTrash:
    """The freedesktop.org trash (Linux, BSD), written and read by photoembed itself."""

    records = True

    def choose_slot(self, path: Path) -> TrashSlot:
        """A free slot for ``path`` (no side effect; :meth:`put` reserves it with an exclusive create)."""
        folder = self._trash_for(path)
        stem, suffix = _split_name(path.name)
        for n in range(1, 10_000):
            name = path.name if n == 1 else f"{stem}.{n}{suffix}"
            slot = TrashSlot(folder, name)
            if not os.path.lexists(slot.stored) and not os.path.lexists(slot.info):
                return slot
        raise TrashError(f"Cannot move {path} to the trash: no free name in {folder}")

    def put(self, path: Path, slot: TrashSlot | None, *, content_hash: str | None, step: Step = _no_step) -> None:
        """Write the slot's info file (exclusive create), then move ``path`` into it.

        A copy across mounts is hash-checked against ``content_hash`` before the source is unlinked.
        """
        if slot is None:
            raise TrashError(f"Cannot move {path} to the trash: no trash slot")
        try:
            for sub in ("files", "info"):
                (slot.folder / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
            _write_info(slot, path)
        except FileExistsError as exc:
            raise TrashError(f"Cannot move {path} to the trash: {slot.name} was taken meanwhile") from exc
        except OSError as exc:
            raise TrashError(f"Cannot move {path} to the trash: {exc.strerror or exc}") from exc
        step("trash:info-written")
        try:
            _move(path, slot.stored, content_hash=content_hash, step=step, phase="trash")
        except BaseException:
            with contextlib.suppress(OSError):
                if not os.path.lexists(slot.stored):
                    slot.info.unlink()
            raise

    def take_back(self, slot: TrashSlot, dest: Path, *, content_hash: str | None, step: Step = _no_step) -> None:
        """Move the slot's file to ``dest`` (which must not exist), then drop its info file."""
        if content_hash is not None:
            facts = facts_or_none(slot.stored)
            if facts is None or facts.content_hash != content_hash:
                raise ContentMismatchError(f"{slot.stored} is not the file that was moved to the trash")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrashError(f"Cannot restore {dest}: {exc.strerror or exc}") from exc
        _move(slot.stored, dest, content_hash=content_hash, step=step, phase="undo", temp=restore_temp(dest))
        with contextlib.suppress(FileNotFoundError):
            slot.info.unlink()
        step("undo:info-removed")

    def entries_for(self, original: Path) -> list[TrashSlot]:
        """Slots that may hold a file trashed from ``original``, for journal rows that recorded no slot.

        Newest first: every slot whose info file records ``original``; then files left without an info file
        (the user deleted it) whose name is the original's, as stored by photoembed (``a.2.jpg``) or
        send2trash (``a 2.jpg``). Callers pick among them by content hash.
        """
        found: list[tuple[str, TrashSlot]] = []
        orphans: list[TrashSlot] = []
        stem, suffix = _split_name(original.name)
        for folder in _trash_dirs(original):
            topdir = _topdir(folder)
            for info in (folder / "info").glob("*.trashinfo"):
                try:
                    text = info.read_text(encoding="utf-8", errors="surrogateescape")
                except OSError:
                    continue
                recorded, date = _parse_info(text, topdir)
                slot = TrashSlot(folder, info.name[: -len(".trashinfo")])
                if recorded == original and os.path.lexists(slot.stored):
                    found.append((date, slot))
            with contextlib.suppress(OSError):
                for stored in (folder / "files").iterdir():
                    name = stored.name
                    if not (name == original.name or (name.startswith(stem) and name.endswith(suffix))):
                        continue
                    middle = name[len(stem) : len(name) - len(suffix)] if suffix else name[len(stem) :]
                    if middle and not middle.lstrip(". ").isdigit():
                        continue
                    slot = TrashSlot(folder, name)
                    if not os.path.lexists(slot.info):
                        orphans.append(slot)
        found.sort(key=lambda item: item[0], reverse=True)
        return [slot for _, slot in found] + orphans

    # -- where ------------------------------------------------------------------------------------

    def _trash_for(self, path: Path) -> Path:
        home = home_trash()
        try:
            dev = path.parent.stat().st_dev
        except OSError as exc:
            raise TrashError(f"Cannot move {path} to the trash: {exc.strerror or exc}") from exc
        if _device_of(home) == dev:
            return home  # a bind mount of the same file system gets EXDEV on rename: _move copies
        top = _mount_point(path.parent)
        uid = os.getuid()
        shared = top / ".Trash"
        try:
            st = shared.lstat()
            if stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX:
                own = shared / str(uid)
                own.mkdir(mode=0o700, exist_ok=True)
                if not own.is_symlink():
                    return own
        except OSError:
            pass
        private = top / f".Trash-{uid}"
        try:
            private.mkdir(mode=0o700, exist_ok=True)
            if not private.is_symlink() and private.is_dir():
                return private
        except OSError:
            pass
        return home  # the volume has no usable trash: copy into the home trash


class SendToTrash:
    """macOS and Windows: send2trash, with no way back other than the Finder or the Recycle Bin."""

    records = False

    def choose_slot(self, path: Path) -> TrashSlot | None:
        return None

    def put(self, path: Path, slot: TrashSlot | None, *, content_hash: str | None, step: Step = _no_step) -> None:
        from send2trash import send2trash
        from send2trash.exceptions import TrashPermissionError

        try:
            send2trash(str(path))
        except TrashPermissionError as exc:
            raise TrashError(f"Cannot move {path} to the trash: {exc}") from exc
        except OSError as exc:
            raise TrashError(f"Cannot move {path} to the trash: {exc.strerror or exc}") from exc
        step("trash:moved")

    def take_back(self, slot: TrashSlot, dest: Path, *, content_hash: str | None, step: Step = _no_step) -> None:
        raise TrashError(self.by_hand(dest))

    def entries_for(self, original: Path) -> list[TrashSlot]:
        return []

    @staticmethod
    def by_hand(path: Path) -> str:
        """How to restore ``path`` where photoembed cannot."""
        where = "the Finder's Trash" if sys.platform == "darwin" else "the Recycle Bin"
        return (
            f"photoembed cannot take files back out of {where}: restore {path.name} (from {path.parent}) there by hand"
        )


def SystemTrash() -> TrashBackend:
    """The trash of this OS."""
    if sys.platform in ("darwin", "win32"):
        return SendToTrash()
    return FreedesktopTrash()


def home_trash() -> Path:
    """``$XDG_DATA_HOME/Trash`` (read now, so tests and sandboxes can point it elsewhere)."""
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(xdg) / "Trash"


def restore_temp(dest: Path) -> Path:
    """The temporary name a cross-mount restore copies to (beside ``dest``; renamed to it once verified)."""
    return dest.with_name(f".{dest.name}.photoembed-restore")


# -- moving -----------------------------------------------------------------------------------------


def _rename(src: Path, dst: Path) -> None:
    os.rename(src, dst)


def _move(src: Path, dst: Path, *, content_hash: str | None, step: Step, phase: str, temp: Path | None = None) -> None:
    """Rename ``src`` to ``dst`` (which must not exist); across mounts copy, fsync, verify, then unlink ``src``."""
    if os.path.lexists(dst):
        raise TrashError(f"Cannot move {src} to {dst}: a file of that name exists")
    try:
        _rename(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise TrashError(f"Cannot move {src} to {dst}: {exc.strerror or exc}") from exc
    else:
        _fsync_dir(dst.parent)
        _fsync_dir(src.parent)
        step(f"{phase}:moved")
        return
    _copy_verified(src, temp or dst, content_hash)  # removes its own partial copy on failure
    if temp is not None:
        try:
            _rename_no_clobber(temp, dst)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
    _fsync_dir(dst.parent)
    step(f"{phase}:copied")
    try:
        src.unlink()
    except OSError as exc:  # the copy is complete and verified: undo the copy, keep the source
        with contextlib.suppress(OSError):
            dst.unlink()
        raise TrashError(f"Cannot move {src}: {exc.strerror or exc}") from exc
    _fsync_dir(src.parent)
    step(f"{phase}:source-removed")


def _rename_no_clobber(src: Path, dst: Path) -> None:
    if os.path.lexists(dst):
        raise TrashError(f"Cannot move {src} to {dst}: a file of that name exists")
    _rename(src, dst)


def _copy_verified(src: Path, dst: Path, content_hash: str | None) -> None:
    """Copy ``src`` to a new file ``dst``, fsync it, and check the copy's hash (against ``content_hash``).

    On any failure ``dst`` is removed (it is ours: created exclusively here) and the source is untouched.
    """
    try:
        fin = os.open(src, _READ)
    except OSError as exc:
        raise TrashError(f"Cannot read {src}: {exc.strerror or exc}") from exc
    try:
        st = os.fstat(fin)
        if not stat.S_ISREG(st.st_mode):
            raise TrashError(f"{src} is not a regular file")
        try:
            fout = os.open(dst, _CREATE, 0o600)
        except OSError as exc:
            raise TrashError(f"Cannot write {dst}: {exc.strerror or exc}") from exc
        try:
            _copy_and_check(fin, fout, st, src, dst, content_hash)
        except BaseException:
            with contextlib.suppress(OSError):
                dst.unlink()
            raise
    finally:
        os.close(fin)


def _copy_and_check(fin: int, fout: int, st: os.stat_result, src: Path, dst: Path, content_hash: str | None) -> None:
    import xxhash

    digest = xxhash.xxh3_128()
    try:
        while chunk := os.read(fin, _CHUNK):
            digest.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fout, view) :]
        os.fsync(fout)
    except OSError as exc:
        raise TrashError(f"Cannot copy {src} to {dst}: {exc.strerror or exc}") from exc
    finally:
        os.close(fout)
    with contextlib.suppress(OSError):
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    written = facts_or_none(dst)
    expected = content_hash or digest.hexdigest()
    if written is None or written.content_hash != expected or digest.hexdigest() != expected:
        raise ContentMismatchError(f"The copy of {src} does not match the photo that was checked")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- the freedesktop trash's files ------------------------------------------------------------------


def _write_info(slot: TrashSlot, original: Path) -> None:
    topdir = _topdir(slot.folder)
    recorded: Path = original
    if slot.folder != home_trash():
        with contextlib.suppress(ValueError):
            recorded = original.relative_to(topdir)
    text = (
        "[Trash Info]\n"
        f"Path={quote(os.fsencode(recorded), safe='/')}\n"
        f"DeletionDate={time.strftime('%Y-%m-%dT%H:%M:%S')}\n"
    )
    fd = os.open(slot.info, _CREATE, 0o600)
    try:
        os.write(fd, text.encode("utf-8", errors="surrogateescape"))
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(slot.info.parent)


def rewrite_info(slot: TrashSlot, original: Path) -> None:
    """Write the slot's info file again (recovery: the file is in the trash but its info is missing)."""
    (slot.folder / "info").mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        _write_info(slot, original)


def _parse_info(text: str, topdir: Path) -> tuple[Path | None, str]:
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    raw = fields.get("Path")
    if raw is None:
        return None, ""
    original = Path(os.fsdecode(unquote(raw, errors="surrogateescape").encode("utf-8", errors="surrogateescape")))
    if not original.is_absolute():
        original = topdir / original
    return original, fields.get("DeletionDate", "")


def _topdir(folder: Path) -> Path:
    """The directory relative ``Path=`` entries are relative to (freedesktop spec)."""
    if folder == home_trash():
        return folder.parent
    return folder.parent.parent if folder.parent.name == ".Trash" else folder.parent


def _trash_dirs(path: Path) -> list[Path]:
    dirs = [home_trash()]
    top = _mount_point(path.parent)
    uid = os.getuid()
    dirs += [top / ".Trash" / str(uid), top / f".Trash-{uid}"]
    unique: list[Path] = []
    for d in dirs:
        if d not in unique and (d / "info").is_dir():
            unique.append(d)
    return unique


def _split_name(name: str) -> tuple[str, str]:
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    return stem, f".{suffix}"


def _mount_point(path: Path) -> Path:
    path = Path(os.path.realpath(path))
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def _device_of(path: Path) -> int | None:
    """The device of ``path`` or of its nearest existing parent (the home trash may not exist yet)."""
    for candidate in (path, *path.parents):
        try:
            return candidate.stat().st_dev
        except OSError:
            continue
    return None
