"""Browsing queries: every photo newest first (date taken, else file time), month buckets, one folder."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from photoembed.storage.browse import month_buckets, photos_by_date
from photoembed.storage.catalog import Catalog
from photoembed.storage.records import PhotoInfo


def stamp(year: int, month: int, day: int) -> float:
    return dt.datetime(year, month, day, 12).timestamp()


def test_photos_by_date_newest_first_with_month_buckets(tmp_path: Path) -> None:
    catalog = Catalog.open(tmp_path / "catalog.db")
    a = catalog.add_root(tmp_path / "a")
    b = catalog.add_root(tmp_path / "b")
    rows = [  # (root, name, taken, file time)
        (a, "exif-march.jpg", stamp(2024, 3, 10), stamp(2025, 1, 1)),
        (a, "no-date.jpg", None, stamp(2024, 3, 20)),  # file time stands in
        (b, "feb.jpg", stamp(2024, 2, 1), stamp(2024, 2, 1)),
        (b, "dec.jpg", stamp(2023, 12, 31), stamp(2023, 12, 31)),
    ]
    for root, name, taken, mtime in rows:
        catalog.upsert_photo(
            root_id=root.id, path=str(root.path / name), size=100, mtime_ns=int(mtime * 1e9),
            content_hash=f"hash-{name}", info=PhotoInfo(format="jpeg", width=10, height=10, taken=taken),
        )
    listing = photos_by_date(catalog)
    assert [Path(p).name for p in listing.paths] == ["no-date.jpg", "exif-march.jpg", "feb.jpg", "dec.jpg"]
    assert [(m.year, m.month, m.first_row, m.count) for m in listing.months] == [
        (2024, 3, 0, 2), (2024, 2, 2, 1), (2023, 12, 3, 1)
    ]
    month = listing.month_of_row(3)
    assert month is not None
    assert (month.year, month.month) == (2023, 12)
    assert len(set(listing.stamps)) == 4
    assert listing.stamps[0].startswith("hash-no-date.jpg:100:")
    only_b = photos_by_date(catalog, root=b.path)
    assert [Path(p).name for p in only_b.paths] == ["feb.jpg", "dec.jpg"]
    assert month_buckets(listing.dates[:0]) == []
    catalog.close()
