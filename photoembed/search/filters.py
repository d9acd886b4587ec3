"""Search filters: folder, date taken, file type and size, as one SQL query over the catalog.

The values were stored at index time (``photos.format/width/height/taken``; ``taken`` is EXIF
DateTimeOriginal, else the file's modification time), so a filter costs one indexed query, not a look at
any file. The result is the set of allowed photo ids handed to the vector index.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from photoembed.errors import KnownError

if TYPE_CHECKING:
    from photoembed.storage.catalog import Catalog

# What users type for a format, to the short names photoembed.imaging.formats stores.
_FORMAT_ALIASES = {"jpg": "jpeg", "jpe": "jpeg", "tif": "tiff", "heic": "heic", "heif": "heif"}


@dataclass(frozen=True)
class SearchFilters:
    """Conditions a photo must meet; every field left at its default matches all photos.

    Attributes:
        folder: only photos under this folder (which must be inside one of the library's folders).
        taken_from: only photos taken at or after this time (unix seconds).
        taken_to: only photos taken at or before this time (unix seconds).
        formats: only these formats (``jpeg``, ``png``, ``heic``, ``raw`` for every camera RAW, ...).
        min_width: only photos at least this wide (pixels, upright).
        min_height: only photos at least this tall.
        min_megapixels: only photos of at least this many million pixels.
    """

    folder: Path | None = None
    taken_from: float | None = None
    taken_to: float | None = None
    formats: tuple[str, ...] = field(default_factory=tuple)
    min_width: int | None = None
    min_height: int | None = None
    min_megapixels: float | None = None

    def is_empty(self) -> bool:
        return self == SearchFilters()


def parse_date(text: str, *, end: bool = False) -> float:
    """A user's date (``2023``, ``2023-06``, ``2023-06-01``, ``2023-06-01T14:30``) as unix seconds.

    Dates are local time, like the EXIF times they are compared with. With ``end``, a date stands for its
    last moment, so ``--to 2023-06`` includes the whole of June.

    Raises:
        KnownError: an unreadable date.
    """
    text = text.strip()
    try:
        if len(text) == 4 and text.isdigit():
            start = dt.datetime(int(text), 1, 1)
            stop = dt.datetime(int(text) + 1, 1, 1)
        elif len(text) == 7 and text[4] == "-":
            year, month = int(text[:4]), int(text[5:])
            start = dt.datetime(year, month, 1)
            stop = dt.datetime(year + month // 12, month % 12 + 1, 1)
        elif len(text) == 10:
            start = dt.datetime.fromisoformat(text)
            stop = start + dt.timedelta(days=1)
        else:
            start = dt.datetime.fromisoformat(text)
            return start.timestamp()
    except ValueError as exc:
        raise KnownError(f"Cannot read the date {text!r}; use YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM") from exc
    return (stop.timestamp() - 1e-3) if end else start.timestamp()


def parse_formats(text: str) -> tuple[str, ...]:
    """``"jpg,PNG, heic"`` -> ``("jpeg", "png", "heic")``."""
    names = [part.strip().lower().lstrip(".") for part in text.split(",") if part.strip()]
    return tuple(dict.fromkeys(_FORMAT_ALIASES.get(name, name) for name in names))


def allowed_photo_ids(catalog: Catalog, filters: SearchFilters) -> np.ndarray:
    """The ids (int64, sorted) of readable photos that meet ``filters``.

    Raises:
        KnownError: a folder outside the library.
    """
    where = ["state = 'ok'"]
    args: list[object] = []
    if filters.folder is not None:
        folder = filters.folder.expanduser().resolve()
        roots = [root.path for root in catalog.roots()]
        if not any(folder == root or folder.is_relative_to(root) for root in roots):
            raise KnownError(f"{filters.folder} is not inside any folder of the library")
        prefix = str(folder).rstrip("/\\") + os.sep
        where.append("(path = ? OR substr(path, 1, ?) = ?)")
        args += [str(folder), len(prefix), prefix]
    if filters.taken_from is not None:
        where.append("taken >= ?")
        args.append(filters.taken_from)
    if filters.taken_to is not None:
        where.append("taken <= ?")
        args.append(filters.taken_to)
    if filters.formats:
        clauses = []
        for name in filters.formats:
            if name == "raw":
                clauses.append("format LIKE 'raw-%'")
            else:
                clauses.append("format = ?")
                args.append(name)
        where.append("(" + " OR ".join(clauses) + ")")
    if filters.min_width is not None:
        where.append("width >= ?")
        args.append(filters.min_width)
    if filters.min_height is not None:
        where.append("height >= ?")
        args.append(filters.min_height)
    if filters.min_megapixels is not None:
        where.append("width * height >= ?")
        args.append(filters.min_megapixels * 1e6)
    # One query over the catalog's own columns; ids only, so even 1M matches stay a few MB.
    sql = "SELECT id FROM photos WHERE " + " AND ".join(where) + " ORDER BY id"
    rows = catalog.db.execute(sql, args).fetchall()
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
