from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from photoembed.errors import KnownError
from photoembed.storage.catalog import Catalog
from photoembed.storage.records import PhotoInfo
from photoembed.storage.schema import SCHEMA_VERSION


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog.open(tmp_path / "catalog.sqlite3")
    yield cat
    cat.close()


def test_new_catalog_is_at_current_schema_in_wal_mode(catalog: Catalog) -> None:
    assert catalog.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert catalog.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    Catalog.open(path).close()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(KnownError, match="newer photoembed"):
        Catalog.open(path)


def test_roots_add_is_idempotent_and_remove_forgets_photos(catalog: Catalog, tmp_path: Path) -> None:
    root = catalog.add_root(tmp_path)
    assert catalog.add_root(tmp_path) == root
    catalog.upsert_photo(root_id=root.id, path=str(tmp_path / "a.jpg"), size=1, mtime_ns=1, content_hash="h")
    assert catalog.remove_root(tmp_path) == 1
    assert catalog.roots() == []
    assert catalog.photo_by_path(tmp_path / "a.jpg") is None
    with pytest.raises(KnownError, match="not a folder of this library"):
        catalog.remove_root(tmp_path)


def test_transaction_rolls_back_on_error(catalog: Catalog, tmp_path: Path) -> None:
    root = catalog.add_root(tmp_path)
    def write_then_fail() -> None:
        with catalog.transaction():
            catalog.upsert_photo(root_id=root.id, path="/x.jpg", size=1, mtime_ns=1, content_hash="h")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert catalog.photo_by_path("/x.jpg") is None


def test_embeddings_are_shared_by_identical_files_and_tagged_by_model(catalog: Catalog, tmp_path: Path) -> None:
    root = catalog.add_root(tmp_path)
    info = PhotoInfo(format="jpeg", width=10, height=20)
    a = catalog.upsert_photo(root_id=root.id, path="/a.jpg", size=1, mtime_ns=1, content_hash="same", info=info)
    b = catalog.upsert_photo(root_id=root.id, path="/b.jpg", size=1, mtime_ns=1, content_hash="same", info=info)
    catalog.upsert_photo(root_id=root.id, path="/bad.jpg", size=0, mtime_ns=1, content_hash=None, error="file is empty")
    vector = np.array([0.6, 0.8], dtype=np.float32)
    catalog.put_embeddings("model-a", [("same", vector)])
    ids, vectors = catalog.vectors("model-a")
    assert ids.tolist() == [a, b]
    np.testing.assert_allclose(vectors, [vector, vector], atol=1e-3)
    assert catalog.vectors("model-b")[0].size == 0
    assert catalog.counts("model-a") == {"photos": 3, "ok": 2, "failed": 1, "embedded": 2, "pending": 0}
    assert catalog.counts("model-b")["pending"] == 2
    assert [f.reason for f in catalog.failures()] == ["file is empty"]
    assert catalog.known_hash("same", "model-a") == (info, True)
    assert catalog.known_hash("same", "model-b") == (info, False)


def test_move_keeps_the_row(catalog: Catalog, tmp_path: Path) -> None:
    root = catalog.add_root(tmp_path)
    photo_id = catalog.upsert_photo(root_id=root.id, path="/old.jpg", size=1, mtime_ns=1, content_hash="h")
    catalog.move_photo(photo_id, root_id=root.id, new_path="/new.jpg", size=1, mtime_ns=2)
    moved = catalog.photo_by_path("/new.jpg")
    assert moved is not None
    assert moved.id == photo_id


def test_generation_counts_changes(catalog: Catalog) -> None:
    assert catalog.generation == 0
    catalog.bump_generation()
    catalog.bump_generation()
    assert catalog.generation == 2


def test_prune_drops_unused_vectors_only(catalog: Catalog, tmp_path: Path) -> None:
    root = catalog.add_root(tmp_path)
    catalog.upsert_photo(root_id=root.id, path="/a.jpg", size=1, mtime_ns=1, content_hash="used")
    catalog.put_embeddings("m", [("used", np.ones(4)), ("gone", np.ones(4))])
    assert catalog.prune_embeddings() == 1
    assert catalog.hashes_with_embedding("m") == {"used"}


def test_file_states_under_a_subfolder_does_not_match_siblings(catalog: Catalog, tmp_path: Path) -> None:
    root = catalog.add_root(tmp_path)
    for name in ("sub/a.jpg", "sub2/b.jpg", "sub/deeper/c.jpg"):
        catalog.upsert_photo(root_id=root.id, path=str(tmp_path / name), size=1, mtime_ns=1, content_hash=name)
    under = catalog.file_states(root.id, under=tmp_path / "sub")
    assert sorted(Path(p).relative_to(tmp_path).as_posix() for p in under) == ["sub/a.jpg", "sub/deeper/c.jpg"]


def test_root_counts(catalog: Catalog, tmp_path: Path) -> None:
    a, b = catalog.add_root(tmp_path / "a"), catalog.add_root(tmp_path / "b")
    catalog.upsert_photo(root_id=a.id, path="/a/1.jpg", size=1, mtime_ns=1, content_hash="1")
    catalog.upsert_photo(root_id=a.id, path="/a/2.jpg", size=1, mtime_ns=1, content_hash=None, error="bad")
    catalog.upsert_photo(root_id=b.id, path="/b/3.jpg", size=1, mtime_ns=1, content_hash="3")
    assert catalog.root_counts() == {a.id: (1, 1), b.id: (1, 0)}


def test_root_pending_counts_each_folders_photos_without_a_vector(catalog: Catalog, tmp_path: Path) -> None:
    a, b = catalog.add_root(tmp_path / "a"), catalog.add_root(tmp_path / "b")
    for name in ("1", "2", "3"):
        catalog.upsert_photo(root_id=a.id, path=f"/a/{name}.jpg", size=1, mtime_ns=1, content_hash=name)
    catalog.upsert_photo(root_id=a.id, path="/a/bad.jpg", size=1, mtime_ns=1, content_hash=None, error="bad")
    catalog.upsert_photo(root_id=b.id, path="/b/1.jpg", size=1, mtime_ns=1, content_hash="1")  # a copy of a/1
    catalog.put_embeddings("m", [("1", np.ones(4)), ("3", np.ones(4))])
    catalog.put_embeddings("other", [("2", np.ones(4))])
    assert catalog.root_pending("m") == {a.id: 1}  # a/2 only: b's copy has the vector; unreadable ones wait not
    assert catalog.root_pending("other") == {a.id: 2, b.id: 1}


def test_taken_range_covers_readable_photos_with_a_date(catalog: Catalog, tmp_path: Path) -> None:
    root = catalog.add_root(tmp_path)
    assert catalog.taken_range() is None
    for name, taken in (("a", 300.0), ("b", 100.0), ("c", None)):
        catalog.upsert_photo(root_id=root.id, path=f"/{name}.jpg", size=1, mtime_ns=1, content_hash=name,
                             info=PhotoInfo(taken=taken))
    catalog.upsert_photo(root_id=root.id, path="/bad.jpg", size=1, mtime_ns=1, content_hash=None, error="bad")
    assert catalog.taken_range() == (100.0, 300.0)


def test_open_connections_lists_each_thread_connection_until_close(tmp_path: Path) -> None:
    import threading

    from photoembed.storage.catalog import open_connections

    before = {info.serial for info in open_connections()}
    catalog = Catalog.open(tmp_path / "c.sqlite3")
    worker = threading.Thread(target=lambda: catalog.db.execute("SELECT 1"), name="reader")
    worker.start()
    worker.join()
    mine = [info for info in open_connections() if info.serial not in before]
    # The reader's connection was closed with its thread; the main thread's stays until close().
    assert sorted(info.thread for info in mine) == ["MainThread"]
    assert all(info.path == str(tmp_path / "c.sqlite3") and not info.collected for info in mine)
    assert "test_open_connections_lists_each_thread_connection_until_close" in mine[0].opened_at
    catalog.close()
    assert [info for info in open_connections() if info.serial not in before] == []


def test_a_refused_migration_leaves_no_connection_open(tmp_path: Path) -> None:
    from photoembed.storage.catalog import open_connections

    path = tmp_path / "c.sqlite3"
    Catalog.open(path).close()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = {info.serial for info in open_connections()}
    with pytest.raises(KnownError):
        Catalog.open(path)
    assert [info for info in open_connections() if info.serial not in before] == []
