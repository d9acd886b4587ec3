"""Shape released dirty paths into the scope of one sync, holding back files still being written.

Two jobs, both cheap (a stat per dirty file, a listing per folder that needs splitting):

1. **Stability.** A file is ingested only once it is complete: its modification time is at least
   ``stable_s`` old (every write moves it, even for ``cp -p``, which restores the old time only when done),
   or its size and time were seen unchanged ``stable_s`` apart (clock skew on network shares), and, where
   the OS reports closes, it is not open for writing. Other files are held back and looked at again later.
   A held file keeps the source of its rename with it, so the two are synced together and the photo keeps
   its row and its embedding.
2. **Scope.** The indexer takes files and folders. Paths inside a dirty folder are dropped (the folder
   covers them); a folder with many dirty files is synced as the folder (one listing instead of many
   look-ups); a folder that holds a held-back file is split into its other entries, so the held file is not
   read half-written through its folder. Paths outside every root and names the scanner skips are dropped.

Thread contract: the watch service's thread only.
"""

from __future__ import annotations

import os
import stat
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from photoembed.core.scanner import ScanRules
from photoembed.imaging.formats import is_photo_name
from photoembed.watch.debounce import Debouncer
from photoembed.watch.events import WatchOptions


@dataclass(frozen=True)
class Plan:
    """What to sync now.

    Attributes:
        scope: files and folders for :meth:`Indexer.sync` (empty: nothing to do).
        held_back: files left for a later batch because they are still being written.
        reconcile_roots: roots synced as a whole in this scope.
    """

    scope: list[Path]
    held_back: int
    reconcile_roots: list[Path]


class BatchPlanner:
    """Turns what the debouncer releases into a :class:`Plan`.

    Args:
        debouncer: where held-back files go back to, and which knows about open files and renames.
        rules: the scanner's skip rules (hidden files, excluded folders).
        options: stability and scope limits.
        wall_clock: seconds since the epoch, comparable with file modification times (injectable).
        stat_file: ``os.stat`` without following links (injectable).
    """

    def __init__(
        self,
        *,
        debouncer: Debouncer,
        rules: ScanRules,
        options: WatchOptions,
        wall_clock: Callable[[], float] = time.time,
        stat_file: Callable[[str], os.stat_result] | None = None,
    ) -> None:
        self.debouncer = debouncer
        self.rules = rules
        self.options = options
        self.wall_clock = wall_clock
        self.stat_file = stat_file or (lambda path: os.stat(path, follow_symlinks=False))
        self._seen: dict[str, tuple[tuple[int, int], float]] = {}  # held file -> ((size, mtime), first seen)

    def plan(self, released: dict[str, bool], roots: Sequence[Path]) -> Plan:
        """Hold back unstable files (giving them back to the debouncer) and shape the rest into a scope.

        Args:
            released: path -> whether it is a folder, as :meth:`Debouncer.take` returns them.
            roots: the library roots that are online.
        """
        root_strs = sorted((str(r) for r in roots), key=len, reverse=True)
        relevant = {p: d for p, d in released.items() if self._relevant(p, d, root_strs)}
        now = self.wall_clock()
        held: dict[str, float] = {}
        for path, is_dir in relevant.items():
            if not is_dir:
                delay = self._unstable_for(path, now)
                if delay is not None:
                    held[path] = delay
        # A held rename target keeps its source with it: synced together, the photo keeps its row.
        for dest in list(held):
            source = self.debouncer.moved_from(dest)
            if source is not None and source in relevant and source not in held:
                held[source] = held[dest]
        for path, delay in held.items():
            self.debouncer.hold({path: relevant[path]}, delay_s=delay)
        ready = [p for p in relevant if p not in held]
        self.debouncer.forget_moves(p for p in released if p not in held)
        scope = shape_scope(
            ready,
            held=set(held),
            roots=root_strs,
            collapse_threshold=self.options.collapse_threshold,
            max_scope=self.options.max_scope,
        )
        root_set = set(root_strs)
        return Plan(
            scope=[Path(p) for p in scope],
            held_back=len(held),
            reconcile_roots=[Path(p) for p in scope if p in root_set],
        )

    def _relevant(self, path: str, is_dir: bool, roots: Sequence[str]) -> bool:
        """Inside a root, not skipped by the scanner's rules, and a photo name unless it is a folder."""
        root = owning_root(path, roots)
        if root is None:
            return False
        if path == root:
            return True
        relative = path[len(root) :].strip(os.sep)
        if any(self.rules.skips(part) for part in relative.split(os.sep)):
            return False
        return is_dir or is_photo_name(os.path.basename(path))

    def _unstable_for(self, path: str, now: float) -> float | None:
        """Seconds to wait before looking at a file again, or None when it can be synced now."""
        try:
            info = self.stat_file(path)
        except OSError:
            self._seen.pop(path, None)
            return None  # gone (or unreadable): the sync records that
        if not stat.S_ISREG(info.st_mode):
            self._seen.pop(path, None)
            return None
        stable_s = self.options.stable_s
        key = (info.st_size, info.st_mtime_ns)
        if self.debouncer.is_writing(path):
            self._seen[path] = (key, now)
            return self.options.quiet_s
        age = now - info.st_mtime_ns / 1e9
        previous = self._seen.get(path)
        if age >= stable_s or (previous is not None and previous[0] == key and now - previous[1] >= stable_s):
            self._seen.pop(path, None)
            return None
        if previous is None or previous[0] != key:
            self._seen[path] = (key, now)
        # A modification time in the future (clock skew) cannot be waited out; unchanged-for-stable_s can.
        return stable_s - age if 0 <= age < stable_s else stable_s


def owning_root(path: str, roots: Sequence[str]) -> str | None:
    """The innermost root containing ``path`` (``roots`` sorted longest first), or None."""
    for root in roots:
        if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
            return root
    return None


def shape_scope(
    paths: Iterable[str],
    *,
    held: set[str],
    roots: Sequence[str],
    collapse_threshold: int,
    max_scope: int,
) -> list[str]:
    """A small set of files and folders covering ``paths`` and none of ``held``.

    Args:
        paths: dirty files and folders, each inside a root.
        held: files that must not be synced now (nor any folder containing them).
        roots: the library roots, longest first.
        collapse_threshold: this many dirty entries in one folder become the folder.
        max_scope: merge further (up to the roots) while the scope is larger than this.
    """
    blocked = _ancestors(held, roots)  # folders that contain a held file: never synced as a whole
    scope = _split_around(_outermost(paths), held=held, blocked=blocked)
    threshold = max(1, collapse_threshold)
    scope = _collapse_fully(scope, threshold=threshold, blocked=blocked, roots=roots)
    while len(scope) > max_scope and threshold > 1:
        threshold = max(1, threshold // 4)
        scope = _collapse_fully(scope, threshold=threshold, blocked=blocked, roots=roots)
    return sorted(scope)


def _outermost(paths: Iterable[str]) -> list[str]:
    """Drop the paths that lie inside another of the paths."""
    kept: set[str] = set()
    for path in sorted(set(paths), key=lambda p: (p.count(os.sep), p)):
        if not any(parent in kept for parent in _parents(path)):
            kept.add(path)
    return sorted(kept)


def _parents(path: str) -> Iterable[str]:
    current = path
    while True:
        parent = os.path.dirname(current)
        if not parent or parent == current:
            return
        yield parent
        current = parent


def _ancestors(held: set[str], roots: Sequence[str]) -> set[str]:
    blocked: set[str] = set()
    for path in held:
        root = owning_root(path, roots)
        for parent in _parents(path):
            blocked.add(parent)
            if parent == root:
                break
    return blocked


def _split_around(paths: list[str], *, held: set[str], blocked: set[str]) -> list[str]:
    """Replace each folder that contains a held file by its other entries (recursively)."""
    result: list[str] = []
    stack = list(paths)
    while stack:
        path = stack.pop()
        if path in held:
            continue
        if path not in blocked:
            result.append(path)
            continue
        try:
            with os.scandir(path) as listing:
                entries = [entry.path for entry in listing]
        except OSError:
            continue  # vanished meanwhile; its held file will bring it back
        stack.extend(entries)
    return result


def _collapse_fully(scope: list[str], *, threshold: int, blocked: set[str], roots: Sequence[str]) -> list[str]:
    while True:
        merged = _collapse(scope, threshold=threshold, blocked=blocked, roots=roots)
        if merged is scope:
            return scope
        scope = merged


def _collapse(scope: list[str], *, threshold: int, blocked: set[str], roots: Sequence[str]) -> list[str]:
    """Replace groups of at least ``threshold`` siblings by their folder (never above a root)."""
    root_set = set(roots)
    groups: dict[str, list[str]] = defaultdict(list)
    for path in scope:
        if path in root_set:
            continue
        parent = os.path.dirname(path)
        if parent not in blocked and owning_root(parent, roots) is not None:
            groups[parent].append(path)
    merged = set(scope)
    changed = False
    for parent, members in groups.items():
        if len(members) >= threshold:
            merged.difference_update(members)
            merged.add(parent)
            changed = True
    if not changed:
        return scope
    return _outermost(merged)
