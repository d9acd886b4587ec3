"""Moving files to the OS trash (send2trash only, never a permanent delete) and back.

Restoring is what the OS trash does not offer through send2trash. On Linux and other freedesktop systems
the trash is a folder: ``files/NAME`` with ``info/NAME.trashinfo`` holding the original ``Path=``; we find
the newest entry whose Path is the file's, move it back and drop its info file. macOS and Windows keep no
such open record, so there a restore is left to the user with a clear message.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote

from photoembed.errors import KnownError

logger = logging.getLogger(__name__)


class TrashBackend(Protocol):
    """Where removed photos go. ``restore`` puts back the file last trashed from ``path``."""

    def trash(self, path: Path) -> None: ...

    def restore(self, path: Path) -> None: ...


class SystemTrash:
    """The OS trash through send2trash; restore on freedesktop systems (Linux, BSD)."""

    def trash(self, path: Path) -> None:
        from send2trash import send2trash  # reads XDG_DATA_HOME when first imported
        from send2trash.exceptions import TrashPermissionError

        try:
            send2trash(str(path))
        except TrashPermissionError as exc:
            raise KnownError(f"Cannot move {path} to the trash: {exc}") from exc
        except OSError as exc:
            raise KnownError(f"Cannot move {path} to the trash: {exc.strerror or exc}") from exc

    def restore(self, path: Path) -> None:
        if sys.platform in ("darwin", "win32"):
            where = "the Finder's Trash" if sys.platform == "darwin" else "the Recycle Bin"
            raise KnownError(
                f"photoembed cannot take files back out of {where}: restore {path.name} "
                f"(from {path.parent}) there by hand"
            )
        if path.exists():
            raise KnownError(f"Cannot restore {path}: a file of that name exists again")
        for trash_dir in _trash_dirs(path):
            entry = _newest_entry(trash_dir, path)
            if entry is None:
                continue
            info, stored = entry
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                if _same_device(stored, path.parent):
                    os.replace(stored, path)
                else:
                    _move(stored, path)
            except OSError as exc:
                raise KnownError(f"Cannot restore {path} from the trash: {exc.strerror or exc}") from exc
            info.unlink(missing_ok=True)
            return
        raise KnownError(f"{path} is no longer in the trash (emptied?); it cannot be restored")


def _trash_dirs(path: Path) -> list[Path]:
    dirs: list[Path] = []
    try:
        from send2trash import plat_other  # the home trash send2trash itself writes to

        dirs.append(Path(os.fsdecode(plat_other.HOMETRASH_B)))
    except ImportError:  # gio-based send2trash: the same freedesktop locations
        pass
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    dirs.append(Path(xdg) / "Trash")
    top = _mount_point(path.parent)
    uid = os.getuid()
    dirs += [top / ".Trash" / str(uid), top / f".Trash-{uid}"]
    unique: list[Path] = []
    for d in dirs:
        if d not in unique and (d / "info").is_dir():
            unique.append(d)
    return unique


def _newest_entry(trash_dir: Path, path: Path) -> tuple[Path, Path] | None:
    best: tuple[str, Path, Path] | None = None
    # Relative Path= entries are relative to the trash's "top directory" (freedesktop spec).
    topdir = trash_dir.parent.parent if trash_dir.parent.name == ".Trash" else trash_dir.parent
    for info in (trash_dir / "info").glob("*.trashinfo"):
        try:
            text = info.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError:
            continue
        fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        raw = fields.get("Path")
        if raw is None:
            continue
        original = Path(unquote(raw, errors="surrogateescape"))
        if not original.is_absolute():
            original = topdir / original
        stored = trash_dir / "files" / info.name[: -len(".trashinfo")]
        if original == path and stored.exists():
            date = fields.get("DeletionDate", "")
            if best is None or date >= best[0]:
                best = (date, info, stored)
    return None if best is None else (best[1], best[2])


def _mount_point(path: Path) -> Path:
    path = path.resolve()
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def _same_device(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_dev == b.stat().st_dev
    except OSError:
        return False


def _move(src: Path, dst: Path) -> None:
    import shutil

    shutil.move(str(src), str(dst))
