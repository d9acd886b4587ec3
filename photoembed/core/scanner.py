"""Walk a root folder and list the photo files in it, safely.

Symbolic links are not followed (so no loop, and never out of the folder the user added); each file is
listed once, under its real path. System and hidden folders are skipped. Problems are data: the scan
goes on.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from photoembed.imaging.formats import is_photo_name

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScannedFile:
    """A photo file as seen on disk."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ScanProblem:
    """A photo-named entry that cannot be indexed (broken link, link out of the root...)."""

    path: str
    reason: str


@dataclass(frozen=True)
class ScanRules:
    """What to skip. Patterns are fnmatch patterns matched against each file or folder name."""

    excluded_patterns: Sequence[str] = ()
    include_hidden: bool = False

    # One compiled alternation instead of a fnmatch call per pattern per entry: the scan of an unchanged
    # library is dominated by this check.
    _excluded: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        joined = "|".join(fnmatch.translate(p) for p in self.excluded_patterns) or r"(?!)"
        object.__setattr__(self, "_excluded", re.compile(joined))

    def skips(self, name: str) -> bool:
        if not self.include_hidden and name.startswith("."):
            return True
        return self._excluded.match(name) is not None


def scan(root: Path, *, rules: ScanRules, start: Path | None = None) -> Iterator[ScannedFile | ScanProblem]:
    """Yield every photo file under ``start`` (default: the whole root), depth first, sorted by name.

    Args:
        root: the library root; nothing outside it is ever listed.
        rules: names to skip.
        start: a folder or file inside the root, to scan only that part (the watcher's dirty paths).
    """
    begin = start if start is not None else root
    if not _inside(begin, root) or any(rules.skips(part) for part in begin.relative_to(root).parts):
        return
    try:
        begin_stat = os.stat(begin, follow_symlinks=False)
    except OSError:
        return
    if stat.S_ISREG(begin_stat.st_mode):
        if is_photo_name(begin.name):
            yield ScannedFile(str(begin), begin_stat.st_size, begin_stat.st_mtime_ns)
        return
    if not stat.S_ISDIR(begin_stat.st_mode):
        return
    visited: set[tuple[int, int]] = {(begin_stat.st_dev, begin_stat.st_ino)}
    stack: list[Path] = [begin]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name, reverse=True)
        except OSError as exc:
            logger.warning("Cannot list %s: %s", folder, exc.strerror or exc)
            continue
        for entry in entries:
            if rules.skips(entry.name):
                continue
            yield from _visit(entry, root=root, rules=rules, visited=visited, stack=stack)


def _visit(
    entry: os.DirEntry[str],
    *,
    root: Path,
    rules: ScanRules,
    visited: set[tuple[int, int]],
    stack: list[Path],
) -> Iterator[ScannedFile | ScanProblem]:
    path = entry.path
    try:
        if entry.is_symlink():
            yield from _link_problem(entry, root)
            return
        info = entry.stat(follow_symlinks=False)
    except FileNotFoundError:  # deleted while we were looking
        return
    except OSError as exc:
        if is_photo_name(entry.name):
            yield ScanProblem(path, f"cannot read file information: {exc.strerror or exc}")
        return
    if stat.S_ISDIR(info.st_mode):
        key = (info.st_dev, info.st_ino)
        if key not in visited:  # bind mounts can show one folder twice
            visited.add(key)
            stack.append(Path(path))
    elif stat.S_ISREG(info.st_mode) and is_photo_name(entry.name):
        yield ScannedFile(path, info.st_size, info.st_mtime_ns)


def _link_problem(entry: os.DirEntry[str], root: Path) -> Iterator[ScanProblem]:
    """Links are never followed: inside the root the real file is indexed where it lives, and outside it
    a link must not pull in folders the user did not add. Photo-named links that will not be indexed are
    reported so the user knows why."""
    if not is_photo_name(entry.name):
        return
    target = Path(os.path.realpath(entry.path))
    if not target.exists():
        yield ScanProblem(entry.path, "broken symbolic link")
    elif not _inside(target, root):
        yield ScanProblem(entry.path, "symbolic link to a file outside the library folder; add that folder instead")


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
