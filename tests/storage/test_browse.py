"""Browsing queries: every photo newest first (date taken, else file time), month buckets, one folder."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from photoembed.storage.browse import month_buckets, photo_stamps, photos_by_date
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


def test_photo_stamps_are_the_listed_stamps_of_readable_photos(tmp_path: Path) -> None:
    """What a thumbnail cache may keep: one stamp per readable photo's content, size and time, shared by
    identical files with the same time; a failed photo wants none, and a hashless one is keyed by its path."""
    catalog = Catalog.open(tmp_path / "catalog.db")
    root = catalog.add_root(tmp_path / "a")
    info = PhotoInfo(format="jpeg", width=10, height=10)
    for name, digest, mtime_ns in [("one.jpg", "h1", 5), ("copy.jpg", "h1", 5), ("later-copy.jpg", "h1", 9),
                                   ("two.jpg", "h2", 5), ("nohash.jpg", None, 5)]:
        catalog.upsert_photo(root_id=root.id, path=str(root.path / name), size=100, mtime_ns=mtime_ns,
                             content_hash=digest, info=info)
    catalog.upsert_photo(root_id=root.id, path=str(root.path / "bad.jpg"), size=7, mtime_ns=5,
                         content_hash="h3", error="truncated")
    stamps = photo_stamps(catalog)
    assert stamps == set(photos_by_date(catalog).stamps)
    assert stamps == {"h1:100:5", "h1:100:9", "h2:100:5", f"{root.path / 'nohash.jpg'}:100:5"}
    # Rewritten: the old stamp is no longer wanted.
    catalog.upsert_photo(root_id=root.id, path=str(root.path / "two.jpg"), size=120, mtime_ns=8,
                         content_hash="h4", info=info)
    assert "h2:100:5" not in photo_stamps(catalog)
    assert "h4:120:8" in photo_stamps(catalog)
    catalog.close()
