"""Catalogues fingerprinted by an older fingerprint format: the migration records each photo's version, and
``index``, the live job's scoped syncs and ``dupes`` fingerprint those photos again (never re-embedding
them), saying so."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from photoembed.cli.main import main
from photoembed.config import Paths, Settings
from photoembed.core.indexer import Indexer
from photoembed.core.writer_lock import WriterLock
from photoembed.imaging import fingerprint as fp
from photoembed.imaging.decode import decode_photo
from photoembed.library import Library
from photoembed.storage.catalog import Catalog
from photoembed.storage.schema import MIGRATIONS
from tests.conftest import make_photo

OLD = 1  # the format before local features


def old_blob(blob: bytes) -> bytes:
    """A format 1 blob: version byte 1 and the format 1 layout (format 2 appends to it)."""
    return bytes([OLD]) + blob[1 : fp.FINGERPRINT_BYTES]


def age_fingerprints(catalog: Catalog, paths: list[Path] | None = None) -> None:
    """Write what an older photoembed wrote: format 1 blobs (and their version), no JPEG tables."""
    with catalog.transaction() as db:
        rows = db.execute("SELECT id, path, phash FROM photos WHERE state = 'ok'").fetchall()
        for pid, path, blob in rows:
            if paths is None or Path(path) in paths:
                db.execute(
                    "UPDATE photos SET phash = ?, fingerprint_version = ?, jpeg_tables = NULL WHERE id = ?",
                    (old_blob(blob), OLD, pid),
                )


def current(path: Path) -> bytes:
    decoded = decode_photo(path.read_bytes(), name=path.name, min_side=224, mtime=0)
    return fp.fingerprint(decoded.image).phash


def versions(catalog: Catalog) -> dict[str, tuple[int | None, int]]:
    """path name -> (fingerprint_version column, blob byte 0)."""
    rows = catalog.db.execute("SELECT path, fingerprint_version, phash FROM photos WHERE state = 'ok'")
    return {Path(p).name: (v, blob[0]) for p, v, blob in rows}


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog.open(tmp_path / "home" / "catalog.sqlite3")
    yield cat
    cat.close()


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    for i in range(4):
        make_photo(folder / ("sub" if i % 2 else "") / f"p{i}.jpg", seed=i)
    return folder


def _indexer(catalog: Catalog) -> Indexer:
    return Indexer(catalog=catalog, settings=Settings(), encoder=None, vector_index=None, batch_size=2)


def test_the_migration_reads_each_photos_version_from_its_blob(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    db = sqlite3.connect(path)
    for version, script in enumerate(MIGRATIONS[:5], start=1):  # a catalog from before versions were kept
        db.executescript(script)
        db.execute(f"PRAGMA user_version = {version}")
    db.execute("INSERT INTO roots(id, path, added_at) VALUES (1, '/lib', 0)")
    v2 = current(make_photo(tmp_path / "a.jpg", seed=1))
    assert len(v2) > fp.FINGERPRINT_BYTES
    assert v2[0] == 2
    rows = [("/lib/old.jpg", old_blob(v2), "ok"), ("/lib/new.jpg", v2, "ok"), ("/lib/bad.jpg", None, "error")]
    for name, blob, state in rows:
        db.execute(
            "INSERT INTO photos(root_id, path, size, mtime_ns, content_hash, state, phash, indexed_at) "
            "VALUES (1, ?, 1, 1, ?, ?, ?, 0)",
            (name, name, state, blob),
        )
    db.commit()
    db.close()
    catalog = Catalog.open(path)
    try:
        got = dict(catalog.db.execute("SELECT path, fingerprint_version FROM photos"))
        assert got == {"/lib/old.jpg": 1, "/lib/new.jpg": 2, "/lib/bad.jpg": None}
        assert [s.path for s in catalog.stale_fingerprints(fp.FORMAT_VERSION)] == ["/lib/old.jpg"]
        plan = " ".join(
            str(tuple(r))
            for r in catalog.db.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM photos "
                "WHERE (fingerprint_version < 2 OR fingerprint_version IS NULL) AND state = 'ok'"
            )
        )
        assert "photos_by_fingerprint_version" in plan  # found without reading a blob
    finally:
        catalog.close()


def test_index_fingerprints_old_photos_again_and_only_them(catalog: Catalog, photos: Path) -> None:
    catalog.add_root(photos)
    _indexer(catalog).run()
    fresh = {p.path.name: p.info.phash for p in catalog.iter_photos()}
    age_fingerprints(catalog, [photos / "p0.jpg", photos / "sub" / "p1.jpg"])
    assert catalog.stale_fingerprint_count(fp.FORMAT_VERSION) == 2
    steps = list(_indexer(catalog).sync())
    scan = [s.message for s in steps if s.phase == "scan"][-1]
    assert "0 to index, 2 fingerprints to update" in scan
    assert [s.message for s in steps if s.phase == "index"] == ["Updating fingerprints 2/2"]
    assert "2 fingerprints updated" in steps[-1].message
    assert versions(catalog) == {name: (fp.FORMAT_VERSION, fp.FORMAT_VERSION) for name in fresh}
    assert {p.path.name: p.info.phash for p in catalog.iter_photos()} == fresh  # what indexing them gives
    tables = {p.path.name: p.info.jpeg_tables for p in catalog.iter_photos()}
    assert tables == dict.fromkeys(fresh, 75)  # the keeper's byte facts come back with the fingerprint
    report = _indexer(catalog).run()
    assert (report.fingerprinted, report.added, report.updated) == (0, 0, 0)


def test_identical_copies_are_fingerprinted_once_and_a_new_copy_never_inherits_an_old_one(
    catalog: Catalog, photos: Path
) -> None:
    shutil.copy(photos / "p0.jpg", photos / "copy of p0.jpg")
    catalog.add_root(photos)
    _indexer(catalog).run()
    age_fingerprints(catalog)
    shutil.copy(photos / "p0.jpg", photos / "third p0.jpg")  # bytes the catalog knows, with an old fingerprint
    report = _indexer(catalog).run()
    assert report.added == 1
    assert report.fingerprinted == 4  # p0 (both catalogued copies: one decode), p1, p2, p3
    assert all(v == (fp.FORMAT_VERSION, fp.FORMAT_VERSION) for v in versions(catalog).values())
    assert catalog.stale_fingerprint_count(fp.FORMAT_VERSION) == 0


def test_a_scoped_sync_refreshes_its_scope_only(catalog: Catalog, photos: Path) -> None:
    catalog.add_root(photos)
    _indexer(catalog).run()
    age_fingerprints(catalog)
    report = _indexer(catalog).run(paths=[photos / "sub"])
    assert report.fingerprinted == 2
    got = versions(catalog)
    assert got["p1.jpg"][0] == got["p3.jpg"][0] == fp.FORMAT_VERSION
    assert got["p0.jpg"][0] == got["p2.jpg"][0] == OLD


def test_refresh_leaves_a_changed_or_vanished_file_for_the_next_sync(catalog: Catalog, photos: Path) -> None:
    catalog.add_root(photos)
    _indexer(catalog).run()
    age_fingerprints(catalog)
    make_photo(photos / "p0.jpg", seed=99)  # other bytes than catalogued
    os.remove(photos / "p2.jpg")
    indexer = _indexer(catalog)
    try:
        list(indexer.refresh_fingerprints())
    finally:
        indexer.close()
    assert indexer.report.fingerprinted == 2
    got = versions(catalog)
    assert got["p0.jpg"][0] == got["p2.jpg"][0] == OLD  # not the fingerprint of bytes the row does not describe
    assert catalog.photo_by_path(photos / "p2.jpg") is not None  # refreshing never drops a photo
    report = _indexer(catalog).run()
    assert (report.updated, report.removed) == (1, 1)
    assert catalog.stale_fingerprint_count(fp.FORMAT_VERSION) == 0


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_dupes_updates_old_fingerprints_first_and_says_so(
    capsys: pytest.CaptureFixture[str], home: Path, photos: Path
) -> None:
    shutil.copy(photos / "p0.jpg", photos / "copy.jpg")
    assert _cli(capsys, "add", str(photos))[0] == 0
    assert _cli(capsys, "index")[0] == 0
    library = Library(Paths.resolve(home))
    try:
        age_fingerprints(library.catalog)
    finally:
        library.close()

    lock = WriterLock(Paths.resolve(home).data, command="photoembed watch")
    lock.acquire()
    try:
        code, out, err = _cli(capsys, "dupes")
    finally:
        lock.release()
    assert code == 0
    assert "5 photos still have fingerprints made by an older version; `photoembed watch`" in err
    assert "copy.jpg" in out  # listed with what it has, and said so

    code, out, err = _cli(capsys, "dupes")
    assert code == 0
    assert "Updating the fingerprints of 5 photos" in err
    assert "copy.jpg" in out
    library = Library(Paths.resolve(home))
    try:
        assert library.catalog.stale_fingerprint_count(fp.FORMAT_VERSION) == 0
        stored = {p.path.name: p.info.phash for p in library.catalog.iter_photos()}
    finally:
        library.close()
    assert stored["p2.jpg"] == current(photos / "p2.jpg")
    code, out, err = _cli(capsys, "dupes")
    assert "fingerprints" not in err


@pytest.mark.model
def test_index_with_a_model_refreshes_fingerprints_without_reembedding(model_home: Path, photos: Path) -> None:
    library = Library(Paths.resolve(model_home))
    try:
        library.catalog.add_root(photos)
        assert library.indexer().run().embedded == 4
        ids, before = library.catalog.vectors(library.settings.model)
        age_fingerprints(library.catalog)
        report = library.indexer().run()
        assert (report.fingerprinted, report.embedded) == (4, 0)
        ids_after, after = library.catalog.vectors(library.settings.model)
        assert list(ids_after) == list(ids)
        np.testing.assert_array_equal(after, before)
        assert library.catalog.stale_fingerprint_count(fp.FORMAT_VERSION) == 0
    finally:
        library.close()


def test_a_refresh_that_fails_is_not_retried_by_every_later_sync_of_the_indexer(
    catalog: Catalog, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog.add_root(photos)
    _indexer(catalog).run()
    age_fingerprints(catalog, [photos / "p0.jpg"])
    import photoembed.core.indexer as indexer_module

    tried: list[str] = []

    def failing(data: bytes, *, name: str, **kwargs: object) -> object:
        tried.append(name)
        raise ValueError("cannot decode now")

    monkeypatch.setattr(indexer_module, "decode_photo", failing)
    indexer = _indexer(catalog)
    for _ in range(3):  # a watcher's batches: each sync looks for stale fingerprints in its scope
        assert indexer.run().fingerprinted == 0
    assert tried == ["p0.jpg"]  # read once, not once per sync
    assert catalog.stale_fingerprint_count(fp.FORMAT_VERSION) == 1  # still stale: the next process tries again
    _indexer(catalog).run()
    assert tried == ["p0.jpg", "p0.jpg"]  # a new indexer (the next process) tries once more
