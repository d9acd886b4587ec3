"""The ingest pipeline without a model: cataloguing, renames, deletions, changes, bad input, cancellation."""

from __future__ import annotations

import io
import os
import shutil
import struct
import threading
from pathlib import Path

import pytest
from PIL import Image

from photoembed.config import Settings
from photoembed.core.indexer import Indexer
from photoembed.errors import Cancelled
from photoembed.storage.catalog import Catalog
from tests.conftest import make_photo


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog.open(tmp_path / "home" / "catalog.sqlite3")
    yield cat
    cat.close()


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    for i in range(6):
        make_photo(folder / ("sub" if i % 2 else "") / f"photo {i} ü.jpg", seed=i)
    return folder


def _indexer(catalog: Catalog, **kwargs: object) -> Indexer:
    return Indexer(catalog=catalog, settings=Settings(), encoder=None, vector_index=None, batch_size=4, **kwargs)  # type: ignore[arg-type]


def _paths(catalog: Catalog, root: Path) -> list[str]:
    return sorted(p.path.relative_to(root).as_posix() for p in catalog.iter_photos())


def test_first_sync_catalogues_every_photo_with_metadata(catalog: Catalog, photos: Path) -> None:
    catalog.add_root(photos)
    steps = list(_indexer(catalog).sync())
    assert steps[-1].phase == "done"
    index_steps = [s for s in steps if s.phase == "index"]
    assert index_steps[-1].done == index_steps[-1].total == 6
    assert len(_paths(catalog, photos)) == 6
    photo = next(catalog.iter_photos())
    assert photo.info.format == "jpeg"
    assert (photo.info.width, photo.info.height) == (320, 240)
    assert photo.info.phash
    assert photo.info.taken is not None


def test_second_sync_with_nothing_changed_does_nothing(catalog: Catalog, photos: Path) -> None:
    catalog.add_root(photos)
    _indexer(catalog).run()
    generation = catalog.generation
    report = _indexer(catalog).run()
    assert (report.added, report.updated, report.moved, report.removed) == (0, 0, 0, 0)
    assert catalog.generation == generation


def test_rename_and_move_keep_the_row(catalog: Catalog, photos: Path) -> None:
    catalog.add_root(photos)
    _indexer(catalog).run()
    before = catalog.photo_by_path(photos / "photo 0 ü.jpg")
    assert before is not None
    (photos / "moved").mkdir()
    os.rename(photos / "photo 0 ü.jpg", photos / "moved" / "renamed.jpg")
    report = _indexer(catalog).run()
    assert (report.added, report.moved, report.removed) == (0, 1, 0)
    after = catalog.photo_by_path(photos / "moved" / "renamed.jpg")
    assert after is not None
    assert after.id == before.id
    assert catalog.photo_by_path(photos / "photo 0 ü.jpg") is None


def test_deleted_photo_is_dropped_and_modified_one_updated(catalog: Catalog, photos: Path) -> None:
    catalog.add_root(photos)
    _indexer(catalog).run()
    (photos / "photo 2 ü.jpg").unlink()
    old = catalog.photo_by_path(photos / "photo 4 ü.jpg")
    make_photo(photos / "photo 4 ü.jpg", seed=99, size=(200, 100))
    report = _indexer(catalog).run()
    assert (report.removed, report.updated) == (1, 1)
    new = catalog.photo_by_path(photos / "photo 4 ü.jpg")
    assert old is not None
    assert new is not None
    assert new.content_hash != old.content_hash
    assert (new.info.width, new.info.height) == (200, 100)


def test_copy_of_a_known_photo_reuses_its_metadata(catalog: Catalog, photos: Path) -> None:
    catalog.add_root(photos)
    _indexer(catalog).run()
    shutil.copy(photos / "photo 0 ü.jpg", photos / "copy.jpg")
    report = _indexer(catalog).run()
    assert report.added == 1
    original = catalog.photo_by_path(photos / "photo 0 ü.jpg")
    copy = catalog.photo_by_path(photos / "copy.jpg")
    assert original is not None
    assert copy is not None
    assert copy.content_hash == original.content_hash
    assert copy.info.phash == original.info.phash


def _truncated_jpeg(path: Path) -> None:
    buffer = io.BytesIO()
    make_photo(path, seed=7)
    data = path.read_bytes()
    buffer.write(data[: len(data) // 2])
    path.write_bytes(buffer.getvalue())


def _bomb_png(path: Path) -> None:
    """A valid PNG header claiming 100000 x 100000 pixels: must be refused before decoding."""
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def test_bad_photos_are_recorded_with_a_reason_and_the_batch_goes_on(catalog: Catalog, photos: Path) -> None:
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "random.jpg").write_bytes(os.urandom(4096))
    _truncated_jpeg(photos / "truncated.jpg")
    _bomb_png(photos / "bomb.png")
    os.symlink(photos / "nowhere.jpg", photos / "broken.jpg")
    make_photo(photos / "name with\nnewline 🐶.png", seed=42, fmt="PNG")
    catalog.add_root(photos)
    report = _indexer(catalog).run()
    reasons = {f.path.name: f.reason for f in catalog.failures()}
    assert set(reasons) == {"empty.jpg", "random.jpg", "truncated.jpg", "bomb.png", "broken.jpg"}
    assert "empty" in reasons["empty.jpg"]
    assert "too large" in reasons["bomb.png"]
    assert report.failed == 5
    assert len(_paths(catalog, photos)) == 7  # the six photos and the one with a newline in its name
    # Bad files are not retried while unchanged, and are retried once replaced.
    assert _indexer(catalog).run().failed == 0
    make_photo(photos / "empty.jpg", seed=5, fmt="JPEG")
    _indexer(catalog).run()
    assert "empty.jpg" not in {f.path.name for f in catalog.failures()}


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_is_recorded(catalog: Catalog, photos: Path) -> None:
    locked = make_photo(photos / "locked.jpg", seed=3)
    locked.chmod(0)
    catalog.add_root(photos)
    _indexer(catalog).run()
    assert [f.reason for f in catalog.failures()] == ["cannot read file: Permission denied"]


def test_exif_orientation_gives_the_displayed_size(catalog: Catalog, tmp_path: Path) -> None:
    folder = tmp_path / "rotated"
    folder.mkdir()
    image = Image.new("RGB", (300, 100), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    image.save(folder / "r.jpg", exif=exif.tobytes())
    catalog.add_root(folder)
    _indexer(catalog).run()
    photo = catalog.photo_by_path(folder / "r.jpg")
    assert photo is not None
    assert (photo.info.width, photo.info.height) == (100, 300)


def test_cancel_keeps_committed_batches_and_the_next_sync_resumes(catalog: Catalog, tmp_path: Path) -> None:
    folder = tmp_path / "many"
    for i in range(20):
        make_photo(folder / f"{i:02d}.jpg", seed=100 + i, size=(96, 64))
    catalog.add_root(folder)
    cancel = threading.Event()

    def cancel_after_first_batch() -> None:
        for step in _indexer(catalog).sync(cancel=cancel):
            if step.phase == "index":
                cancel.set()

    with pytest.raises(Cancelled):
        cancel_after_first_batch()
    committed = len(_paths(catalog, folder))
    assert 4 <= committed < 20
    report = _indexer(catalog).run()
    assert report.added == 20 - committed
    assert len(_paths(catalog, folder)) == 20


def test_scoped_sync_touches_only_the_given_paths(catalog: Catalog, photos: Path) -> None:
    catalog.add_root(photos)
    _indexer(catalog).run()
    make_photo(photos / "sub" / "new.jpg", seed=50)
    (photos / "photo 0 ü.jpg").unlink()  # outside the scope: must stay until a full sync
    report = _indexer(catalog).run(paths=[photos / "sub"])
    assert (report.added, report.removed) == (1, 0)
    report = _indexer(catalog).run(paths=[photos / "photo 0 ü.jpg", photos / "elsewhere" / "x.jpg"])
    assert report.removed == 1


@pytest.mark.expected_warnings(r"is not reachable; keeping its photos")
def test_offline_root_keeps_its_photos(catalog: Catalog, photos: Path) -> None:
    catalog.add_root(photos)
    _indexer(catalog).run()
    parked = photos.with_name("parked")
    photos.rename(parked)
    report = _indexer(catalog).run()
    assert report.offline_roots == [photos]
    assert report.removed == 0
    parked.rename(photos)
    assert _indexer(catalog).run().added == 0


@pytest.mark.expected_warnings(r"is not reachable; keeping its photos")
def test_empty_mount_point_of_an_unplugged_drive_is_offline_not_emptied(catalog: Catalog, photos: Path) -> None:
    root = catalog.add_root(photos)
    _indexer(catalog).run()
    # The drive is unplugged: the root folder is now an empty folder on another device.
    catalog.set_meta(f"root_device:{root.id}", "999999")
    parked = photos.with_name("parked")
    photos.rename(parked)
    photos.mkdir()
    report = _indexer(catalog).run()
    assert report.offline_roots == [photos]
    assert len(_paths(catalog, photos)) == 6
    # A root that moved to another device but has files is simply scanned.
    photos.rmdir()
    parked.rename(photos)
    catalog.set_meta(f"root_device:{root.id}", "999999")
    assert _indexer(catalog).run().removed == 0
    assert catalog.get_meta(f"root_device:{root.id}") == str(photos.stat().st_dev)
