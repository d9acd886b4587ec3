"""Read-only catalog queries for browsing: every photo newest first, grouped by month, or one folder's.

A photo's date is when it was taken (EXIF), else its file time. The listing is returned as compact arrays
(one ``int64`` id, one ``float64`` date and one path string per photo) so that a GUI can hold 100k photos
without a Python object per photo, and the month buckets as ``(year, month, first_row, count)`` over the
same rows, for a date scrubber.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from photoembed.storage.catalog import Catalog


@dataclass(frozen=True)
class MonthBucket:
    """The photos of one calendar month (local time): rows ``first_row .. first_row + count - 1``."""

    year: int
    month: int
    first_row: int
    count: int


@dataclass(frozen=True)
class BrowseListing:
    """Photos newest first. ``ids``, ``dates``, ``paths`` and ``stamps`` are parallel.

    Attributes:
        ids: photo ids.
        dates: when each photo was taken, else its file time (seconds since the epoch).
        paths: each photo's path.
        stamps: a short string that changes whenever the photo's content changes (content hash, size and
            modification time), for caches keyed by photo.
        months: the month buckets, newest first.
        generation: the catalog generation the listing was read at.
    """

    ids: np.ndarray
    dates: np.ndarray
    paths: list[str]
    stamps: list[str]
    months: list[MonthBucket] = field(default_factory=list)
    generation: int = 0

    def __len__(self) -> int:
        return len(self.paths)

    def month_of_row(self, row: int) -> MonthBucket | None:
        """The bucket a row falls in (binary search over the buckets' first rows)."""
        if not self.months or not 0 <= row < len(self.paths):
            return None
        firsts = [m.first_row for m in self.months]
        index = int(np.searchsorted(np.asarray(firsts), row, side="right")) - 1
        return self.months[max(0, index)]


_LAST_STAMP = 32503680000.0  # 3000-01-01

_SQL = """
    SELECT id, path, COALESCE(taken, mtime_ns / 1e9) AS day, COALESCE(content_hash, ''), size, mtime_ns
    FROM photos
    WHERE state = 'ok' {where}
    ORDER BY day DESC, id DESC
"""


def photos_by_date(catalog: Catalog, *, root: Path | None = None) -> BrowseListing:
    """Every readable photo (of one library folder), newest first, with month buckets. Read-only."""
    where = ""
    params: tuple[object, ...] = ()
    if root is not None:
        where = "AND root_id = (SELECT id FROM roots WHERE path = ?)"
        params = (str(root),)
    generation = catalog.generation
    rows = catalog.db.execute(_SQL.format(where=where), params).fetchall()
    count = len(rows)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=count)
    dates = np.fromiter((r[2] for r in rows), dtype=np.float64, count=count)
    paths = [r[1] for r in rows]
    stamps = [photo_stamp(r[3], r[1], r[4], r[5]) for r in rows]
    return BrowseListing(ids, dates, paths, stamps, month_buckets(dates), generation)


def photo_stamp(content_hash: str | None, path: str, size: int, mtime_ns: int) -> str:
    """The stamp of a photo (see :attr:`BrowseListing.stamps`); the path stands in for a missing hash."""
    return f"{content_hash or path}:{size}:{mtime_ns}"


def photo_stamps(catalog: Catalog) -> set[str]:
    """The stamps of every readable photo, the same ones :func:`photos_by_date` lists. Read-only.

    What a cache keyed by stamp still needs: an entry under any other stamp belongs to no photo any more (it
    changed, was deleted or forgotten). Identical files with the same size and time share one stamp.
    """
    rows = catalog.db.execute("SELECT content_hash, path, size, mtime_ns FROM photos WHERE state = 'ok'")
    return {photo_stamp(digest, path, size, mtime_ns) for digest, path, size, mtime_ns in rows}


def month_buckets(dates: np.ndarray) -> list[MonthBucket]:
    """Month buckets over dates sorted newest first (local time)."""
    buckets: list[MonthBucket] = []
    if len(dates) == 0:
        return buckets
    # Month boundaries are found from the month of each row; localtime per row costs ~1 us.
    safe = np.clip(dates, 0.0, _LAST_STAMP).tolist()  # a bogus EXIF date must not break localtime
    keys = np.fromiter(
        (tm.tm_year * 12 + tm.tm_mon - 1 for tm in map(time.localtime, safe)),
        dtype=np.int64, count=len(dates),
    )
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    ends = np.concatenate((starts[1:], [len(dates)]))
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        key = int(keys[start])
        buckets.append(MonthBucket(key // 12, key % 12 + 1, start, end - start))
    return buckets


@dataclass(frozen=True)
class CopyRow:
    """A readable photo with a given content (for "is there another copy?")."""

    photo_id: int
    path: Path
    size: int
    mtime_ns: int
    content_hash: str


def copies_by_hash(catalog: Catalog, hashes: Sequence[str]) -> dict[str, list[CopyRow]]:
    """Every readable photo of each content hash, oldest row first. Read-only."""
    found: dict[str, list[CopyRow]] = {}
    unique = sorted(set(hashes))
    for start in range(0, len(unique), 500):  # SQLite's parameter limit
        chunk = unique[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for pid, path, size, mtime_ns, digest in catalog.db.execute(
            "SELECT id, path, size, mtime_ns, content_hash FROM photos"
            f" WHERE state = 'ok' AND content_hash IN ({marks}) ORDER BY id",
            chunk,
        ):
            found.setdefault(digest, []).append(CopyRow(pid, Path(path), size, mtime_ns, digest))
    return found
