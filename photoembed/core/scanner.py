"""Walk a root folder and list the photo files in it, safely.

Symbolic links are not followed (so no loop, and never out of the folder the user added); each file is
listed once, under its real path. System and hidden folders are skipped. Problems are data: the scan
goes on.

A folder whose content cannot be seen right now is a :class:`ScanGap`, never an empty folder: one that
cannot be listed (permissions, I/O error), or a mount point below the root whose drive is unplugged (its
folder is missing, or empty and back on its parent's device). The caller keeps the photos it knows under a
gap as offline instead of reading them as deleted. Mount points met on the way are reported
(:class:`ScanMount`) so that the caller can name them as ``expected_mounts`` next time.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import stat
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from photoembed.imaging.formats import is_photo_name
from photoembed.imaging.safe_open import describe_mode

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
class ScanGap:
    """A folder whose content cannot be seen now; what is known under it must be kept, as offline."""

    path: str
    reason: str


@dataclass(frozen=True)
class ScanMount:
    """A folder below the root that is a mount point (another device than its parent)."""

    path: str


ScanItem = ScannedFile | ScanProblem | ScanGap | ScanMount


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


def scan(
    root: Path,
    *,
    rules: ScanRules,
    start: Path | None = None,
    skip: Collection[Path] = (),
    expected_mounts: Collection[str] = (),
) -> Iterator[ScanItem]:
    """Yield every photo file under ``start`` (default: the whole root), depth first, sorted by name.

    Args:
        root: the library root; nothing outside it is ever listed.
        rules: names to skip.
        start: a folder or file inside the root, to scan only that part (the watcher's dirty paths).
        skip: folders not to enter (library roots nested in this one: their files are theirs).
        expected_mounts: folders below the root that were mount points before; one that no longer is
            (missing, or an empty folder on its parent's device) is a :class:`ScanGap`.
    """
    begin = start if start is not None else root
    if not _inside(begin, root) or any(rules.skips(part) for part in begin.relative_to(root).parts):
        return
    if any(_inside(begin, other) for other in skip):
        return
    unmounted = [m for m in expected_mounts if _inside(begin, Path(m)) and m != str(root)]
    if unmounted and mount_missing(Path(max(unmounted, key=len))):
        yield ScanGap(str(begin), "drive not mounted")
        return
    try:
        begin_stat = os.stat(begin, follow_symlinks=False)
    except FileNotFoundError:
        return
    except OSError as exc:
        yield ScanGap(str(begin), f"cannot read: {exc.strerror or exc}")
        return
    if stat.S_ISREG(begin_stat.st_mode):
        if is_photo_name(begin.name):
            yield ScannedFile(str(begin), begin_stat.st_size, begin_stat.st_mtime_ns)
        return
    if not stat.S_ISDIR(begin_stat.st_mode):
        if is_photo_name(begin.name) and not stat.S_ISLNK(begin_stat.st_mode):
            yield ScanProblem(str(begin), f"not read: it is {describe_mode(begin_stat.st_mode)}, not a regular file")
        return
    walk = _Walk(root=root, rules=rules, skip=frozenset(skip), expected=frozenset(expected_mounts))
    walk.visited.add((begin_stat.st_dev, begin_stat.st_ino))
    stack: list[tuple[Path, int]] = [(begin, begin_stat.st_dev)]
    while stack:
        folder, device = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name, reverse=True)
        except FileNotFoundError:  # deleted while we were looking
            continue
        except OSError as exc:
            logger.warning("Cannot list %s: %s; keeping the photos known there", folder, exc.strerror or exc)
            yield ScanGap(str(folder), f"cannot list the folder: {exc.strerror or exc}")
            continue
        for entry in entries:
            if rules.skips(entry.name):
                continue
            yield from walk.visit(entry, device=device, stack=stack)
    # Mount points that vanished with their folder (some desktops remove it on unmount).
    for mount in sorted(walk.expected - walk.mounts_seen):
        if _inside(Path(mount), begin) and not os.path.lexists(mount) and not _under_gap(mount, walk.gaps):
            yield ScanGap(mount, "drive not mounted")


def mount_missing(folder: Path) -> bool:
    """Whether a folder that was a mount point no longer holds its drive: it is gone, or it is an empty
    folder on the same device as its parent (what an unplugged drive leaves behind)."""
    try:
        own = os.stat(folder, follow_symlinks=False)
        parent = os.stat(folder.parent)
    except FileNotFoundError:
        return True
    except OSError:
        return False  # unreadable: the listing reports it
    if own.st_dev != parent.st_dev:
        return False
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is None
    except OSError:
        return False


def _under_gap(path: str, gaps: Collection[str]) -> bool:
    return any(_inside(Path(path), Path(gap)) for gap in gaps)


@dataclass
class _Walk:
    root: Path
    rules: ScanRules
    skip: frozenset[Path]
    expected: frozenset[str]
    visited: set[tuple[int, int]] = field(default_factory=set)
    mounts_seen: set[str] = field(default_factory=set)
    gaps: set[str] = field(default_factory=set)

    def visit(self, entry: os.DirEntry[str], *, device: int, stack: list[tuple[Path, int]]) -> Iterator[ScanItem]:
        path = entry.path
        try:
            if entry.is_symlink():
                yield from _link_problem(entry, self.root)
                return
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # deleted while we were looking
            return
        except OSError as exc:
            if is_photo_name(entry.name):
                yield ScanProblem(path, f"cannot read file information: {exc.strerror or exc}")
            else:  # maybe a folder: what is known under it stays
                self.gaps.add(path)
                yield ScanGap(path, f"cannot read: {exc.strerror or exc}")
            return
        if stat.S_ISDIR(info.st_mode):
            folder = Path(path)
            if folder in self.skip:
                return
            if info.st_dev != device:
                self.mounts_seen.add(path)
                yield ScanMount(path)
            elif path in self.expected and mount_missing(folder):
                self.gaps.add(path)
                yield ScanGap(path, "drive not mounted")
                return
            key = (info.st_dev, info.st_ino)
            if key not in self.visited:  # bind mounts can show one folder twice
                self.visited.add(key)
                stack.append((folder, info.st_dev))
        elif stat.S_ISREG(info.st_mode):
            if is_photo_name(entry.name):
                yield ScannedFile(path, info.st_size, info.st_mtime_ns)
        elif is_photo_name(entry.name):
            # A FIFO, socket or device named like a photo: reported, never opened (a FIFO would block).
            yield ScanProblem(path, f"not read: it is {describe_mode(info.st_mode)}, not a regular file")


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
