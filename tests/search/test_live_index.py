"""The index kept live by its writer: batches applied without rebuilds, searches during writes, restarts
that load instead of rebuilding, rollbacks detected, cancellable rebuilds, leaked temp files removed."""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from photoembed.errors import Cancelled
from photoembed.storage import vector_index as vi
from photoembed.storage.catalog import Catalog
from photoembed.storage.vector_index import VectorIndex
from tests.search.test_vector_index import MODEL, brute_force, fill, unit


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog.open(tmp_path / "catalog.sqlite3")
    yield cat
    cat.close()


def all_vectors(catalog: Catalog) -> tuple[list[int], np.ndarray]:
    ids, vectors = catalog.vectors(MODEL)
    return ids.tolist(), vectors


def ranked(hits: list[list[tuple[int, float]]]) -> list[list[int]]:
    return [[pid for pid, _ in row] for row in hits]


def test_batches_applied_by_the_writer_are_searchable_without_a_rebuild(catalog: Catalog, tmp_path: Path) -> None:
    rng = np.random.default_rng(20)
    fill(catalog, unit(rng, 200, 16))
    index = VectorIndex(tmp_path / "index", catalog)
    index.refresh(MODEL)
    assert index.rebuilds == 1
    sidecar = next((tmp_path / "index").glob("*.json"))
    written = sidecar.read_bytes()
    for batch in range(20):
        targets = unit(rng, 5, 16)
        new_ids = fill(catalog, targets, start=10_000 + batch * 5)
        index.apply(MODEL)  # what the indexer's thread does after each commit
        for target, new_id in zip(targets, new_ids, strict=True):
            assert index.search(MODEL, target[None], 1)[0][0][0] == new_id
    gone = new_ids[:3]
    catalog.delete_photos(gone)
    index.apply(MODEL)
    assert not set(gone) & {pid for pid, _ in index.search(MODEL, unit(rng, 1, 16), 400)[0]}
    assert index.rebuilds == 1  # 21 batches, no rebuild
    assert sidecar.read_bytes() == written  # and nothing written per batch
    ids, vectors = all_vectors(catalog)
    queries = unit(rng, 5, 16)
    assert ranked(index.search(MODEL, queries, 10)) == ranked(brute_force(ids, vectors, queries, 10))


def test_a_long_tail_is_folded_into_the_base(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vi, "MERGE_MIN", 16)
    monkeypatch.setattr(vi, "MERGE_FRACTION", 0.0)
    rng = np.random.default_rng(21)
    fill(catalog, unit(rng, 100, 16))
    index = VectorIndex(tmp_path / "index", catalog)
    index.refresh(MODEL)
    for batch in range(10):
        fill(catalog, unit(rng, 4, 16), start=1000 + batch * 4)
        index.apply(MODEL)
    removed = [1, 2, 3]
    catalog.delete_photos(removed)
    index.apply(MODEL)
    assert index.merges >= 2
    assert index.rebuilds == 1
    ids, vectors = all_vectors(catalog)
    queries = unit(rng, 6, 16)
    got = index.search(MODEL, queries, 20)
    assert ranked(got) == ranked(brute_force(ids, vectors, queries, 20))
    assert not set(removed) & {pid for row in got for pid, _ in row}


def test_searches_from_another_thread_during_writes_see_every_committed_photo(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vi, "MERGE_MIN", 32)  # merges happen while the reader reads
    monkeypatch.setattr(vi, "MERGE_FRACTION", 0.0)
    rng = np.random.default_rng(22)
    fill(catalog, unit(rng, 300, 16))
    index = VectorIndex(tmp_path / "index", catalog)
    index.refresh(MODEL)
    committed: list[tuple[int, np.ndarray]] = []
    lock = threading.Lock()
    done = threading.Event()
    misses: list[int] = []
    errors: list[BaseException] = []
    searches = 0

    def reader() -> None:
        nonlocal searches
        try:
            while not done.is_set() or searches == 0:
                with lock:
                    latest = list(committed)
                for pid, vector in latest[-3:]:
                    top = index.search(MODEL, vector[None], 1)[0]
                    if not top or top[0][0] != pid:
                        misses.append(pid)
                    searches += 1
        except Exception as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for batch in range(60):
            vectors = unit(rng, 3, 16)
            ids = fill(catalog, vectors, start=5000 + batch * 3)
            index.apply(MODEL)
            with lock:
                committed.extend(zip(ids, vectors, strict=True))
    finally:
        done.set()
        thread.join(30)
    assert not errors
    assert searches > 0
    assert misses == []
    assert index.rebuilds == 1
    assert index.merges >= 2


def test_a_restart_loads_the_index_and_replays_the_log(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(23)
    fill(catalog, unit(rng, 120, 16))
    writer = VectorIndex(tmp_path / "index", catalog)
    writer.refresh(MODEL)
    fill(catalog, unit(rng, 7, 16), start=500)  # committed after the last persisted file
    writer.apply(MODEL)

    def no_build(*_args: object, **_kwargs: object) -> Iterator[tuple[int, int]]:
        raise AssertionError("rebuilt at restart")

    monkeypatch.setattr(vi, "build_index_steps", no_build)
    restarted = VectorIndex(tmp_path / "index", catalog)
    restarted.refresh(MODEL)  # what the next sync's end does
    assert restarted.rebuilds == 0
    ids, vectors = all_vectors(catalog)
    queries = unit(rng, 4, 16)
    assert ranked(restarted.search(MODEL, queries, 10)) == ranked(brute_force(ids, vectors, queries, 10))
    assert len(restarted.search(MODEL, queries[:1], 1000)[0]) == 127


def test_a_run_with_nothing_to_do_leaves_a_file_a_few_changes_behind_unloaded(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A no-change `photoembed index` after a watch session: the file is behind by fewer changes than a flush
    writes for, so the end of the sync neither loads it (nor faiss) nor rewrites it; a search replays them."""
    rng = np.random.default_rng(27)
    fill(catalog, unit(rng, 120, 16))
    writer = VectorIndex(tmp_path / "index", catalog)
    writer.refresh(MODEL)
    fill(catalog, unit(rng, 7, 16), start=500)
    writer.refresh(MODEL)  # the watch batch's own end of sync: 7 changes, not written
    behind = writer.info(MODEL)["pending"]  # log entries: a photo's row and its vector each
    assert 7 <= behind < vi.FLUSH_MIN

    def no_load(_model: str) -> None:
        raise AssertionError("loaded the index with nothing to do")

    quiet = VectorIndex(tmp_path / "index", catalog)
    monkeypatch.setattr(quiet, "_load", no_load)
    quiet.refresh(MODEL)
    assert (quiet.rebuilds, quiet.merges, quiet.info(MODEL)["pending"]) == (0, 0, behind)
    reader = VectorIndex(tmp_path / "index", catalog)
    assert len(reader.search(MODEL, unit(rng, 1, 16), 1000)[0]) == 127
    monkeypatch.setattr(vi, "FLUSH_MIN", 7)  # as many changes as a flush writes for: loaded and written
    busy = VectorIndex(tmp_path / "index", catalog)
    busy.refresh(MODEL)
    assert busy.info(MODEL)["pending"] == 0


def _lose_wal(catalog: Catalog, tmp_path: Path) -> Path:
    """A copy of the catalog's main file alone: what a power loss with synchronous=NORMAL may leave."""
    copy = tmp_path / "lost-wal" / "catalog.sqlite3"
    copy.parent.mkdir()
    shutil.copy(catalog.path, copy)
    return copy


@pytest.mark.expected_warnings(r"does not match the catalog's history")
@pytest.mark.parametrize("how", ["restored-backup", "lost-wal"])
def test_an_index_of_a_rolled_back_catalog_is_never_accepted(catalog: Catalog, tmp_path: Path, how: str) -> None:
    rng = np.random.default_rng(24)
    fill(catalog, unit(rng, 30, 16))
    catalog.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    backup = tmp_path / "backup.sqlite3"
    shutil.copy(catalog.path, backup)
    catalog.db.execute("PRAGMA wal_autocheckpoint=0")  # later commits stay in the WAL only
    fill(catalog, unit(rng, 20, 16), start=100)
    writer = VectorIndex(tmp_path / "index", catalog)
    writer.refresh(MODEL)
    built_at = writer.info(MODEL)["seq"]
    assert writer.info(MODEL)["count"] == 50
    if how == "lost-wal":
        path = _lose_wal(catalog, tmp_path)
    else:
        catalog.close()
        path = catalog.path
        for suffix in ("-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        shutil.copy(backup, path)
    rolled = Catalog.open(path)
    try:
        assert len(rolled.vectors(MODEL)[0]) == 30
        fill(rolled, unit(rng, 25, 16), start=200)  # counts up past the position the index was built at
        assert rolled.vector_changes(MODEL, 0).last_seq >= built_at
        reader = VectorIndex(tmp_path / "index", rolled)
        assert not reader.info(MODEL)["fresh"]
        ids, vectors = all_vectors(rolled)
        queries = unit(rng, 4, 16)
        got = reader.search(MODEL, queries, 60)
        assert ranked(got) == ranked(brute_force(ids, vectors, queries, 60))  # no vector of the lost photos
        assert len(got[0]) == 55
        again = VectorIndex(tmp_path / "index", rolled)
        again.refresh(MODEL)
        assert again.rebuilds == 1
        assert again.info(MODEL)["fresh"]
        assert again.info(MODEL)["count"] == 55
    finally:
        rolled.close()


def test_a_rebuild_is_cancellable_and_the_old_snapshot_serves_meanwhile(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vi, "ADD_CHUNK", 50)  # several steps to cancel between
    rng = np.random.default_rng(25)
    fill(catalog, unit(rng, 300, 16))
    index = VectorIndex(tmp_path / "index", catalog)
    index.refresh(MODEL)
    target = unit(rng, 1, 16)
    new_id = fill(catalog, target, start=900)[0]
    index.apply(MODEL)
    cancel = threading.Event()
    steps = index.rebuild(MODEL, cancel)
    next(steps)
    next(steps)  # paused mid-build: a search from another thread answers from the old snapshot
    found: list[int] = []
    reader = threading.Thread(target=lambda: found.append(index.search(MODEL, target, 1)[0][0][0]))
    reader.start()
    reader.join(10)
    assert found == [new_id]
    cancel.set()
    with pytest.raises(Cancelled):
        list(steps)
    assert index.rebuilds == 1
    assert index.search(MODEL, target, 1)[0][0][0] == new_id


def test_outgrowing_the_exact_index_retrains_on_the_writer(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vi, "EXACT_MAX", 1000)
    rng = np.random.default_rng(26)
    fill(catalog, unit(rng, 900, 16))
    index = VectorIndex(tmp_path / "index", catalog)
    index.refresh(MODEL)
    assert index.info(MODEL)["kind"] == vi.KIND_FLAT
    fill(catalog, unit(rng, 300, 16), start=5000)
    index.apply(MODEL)
    assert index.rebuilds == 1  # apply never rebuilds
    index.refresh(MODEL)
    assert index.rebuilds == 2
    assert index.info(MODEL)["kind"] == vi.KIND_IVF
    index.refresh(MODEL)
    assert index.rebuilds == 2


def test_leaked_temp_files_are_removed_when_the_writer_starts(catalog: Catalog, tmp_path: Path) -> None:
    rng = np.random.default_rng(27)
    fill(catalog, unit(rng, 10, 16))
    VectorIndex(tmp_path / "index", catalog).refresh(MODEL)
    faiss_file = next((tmp_path / "index").glob("*.faiss"))
    leaked = faiss_file.parent / f".{faiss_file.name}.k3j4h5.tmp"
    leaked.write_bytes(b"x" * 1000)
    an_hour_ago = time.time() - 3600
    os.utime(leaked, (an_hour_ago, an_hour_ago))
    in_flight = faiss_file.parent / f".{faiss_file.name}.q8w7e6.tmp"  # another process writing right now
    in_flight.write_bytes(b"y" * 1000)
    unrelated = faiss_file.parent / "notes.txt"
    unrelated.write_text("mine", encoding="utf-8")
    VectorIndex(tmp_path / "index", catalog).refresh(MODEL)
    assert not leaked.exists()
    assert in_flight.exists()
    assert unrelated.exists()


def test_the_change_log_covers_every_writer(catalog: Catalog) -> None:
    """Triggers, not callers, log changes: a delete by any code (dedup, remove_root) is seen."""
    rng = np.random.default_rng(28)
    ids = fill(catalog, unit(rng, 4, 16))
    start = catalog.vector_changes(MODEL, 0).last_seq
    catalog.remove_root(catalog.path.parent / "photos")
    changes = catalog.vector_changes(MODEL, start)
    assert sorted(changes.changed.tolist()) == sorted(ids)
    assert changes.ids.size == 0
    with pytest.raises(sqlite3.IntegrityError):  # the log is append-only by key: no reuse of a position
        catalog.db.execute("INSERT INTO vector_changes(seq, photo_id, nonce) VALUES (?, 1, 1)", (start,))


def test_a_replaced_base_is_freed_and_its_memory_given_back_when_the_last_search_lets_go(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vi, "MERGE_MIN", 16)
    monkeypatch.setattr(vi, "MERGE_FRACTION", 0.0)
    rng = np.random.default_rng(28)
    fill(catalog, unit(rng, 100, 16))
    index = VectorIndex(tmp_path / "index", catalog)
    index.refresh(MODEL)
    old_base = weakref.ref(index._snapshots[MODEL].index)
    given_back: list[bool] = []  # per call: was the old base's index already deleted?
    monkeypatch.setattr(vi, "give_back_free_heap", lambda: given_back.append(old_base() is None))
    in_flight = index._reader_snapshot(MODEL)  # what a search running across the swap holds
    fill(catalog, unit(rng, 20, 16), start=1000)
    index.apply(MODEL)
    assert index.merges == 1
    assert index._snapshots[MODEL].index is not old_base()
    assert old_base() is not None  # the search in flight still reads it
    assert given_back == []
    del in_flight
    assert old_base() is None
    assert given_back == [True]  # once, after the index was deleted
    ids, vectors = all_vectors(catalog)
    queries = unit(rng, 4, 16)
    assert ranked(index.search(MODEL, queries, 10)) == ranked(brute_force(ids, vectors, queries, 10))
