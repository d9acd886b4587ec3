"""The derived FAISS index: ranking against brute force, rebuilds, atomic writes, model checks.

The incremental behaviour (writer-applied batches, restarts, rollbacks) is in test_live_index.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from photoembed.bench.search import SyntheticVectors
from photoembed.errors import ModelMismatchError
from photoembed.storage import vector_index as vi
from photoembed.storage.catalog import Catalog
from photoembed.storage.vector_index import VectorIndex

MODEL = "test-arch/test-tag"


def fill(catalog: Catalog, vectors: np.ndarray, *, model: str = MODEL, start: int = 0) -> list[int]:
    """Add one photo row per vector (random vectors are fine here: no model call belongs in these tests)."""
    root = catalog.add_root(catalog.path.parent / "photos")
    ids = []
    with catalog.transaction():
        for i, vector in enumerate(vectors, start=start):
            ids.append(
                catalog.upsert_photo(
                    root_id=root.id,
                    path=str(root.path / f"p{i:06d}.jpg"),
                    size=1,
                    mtime_ns=i,
                    content_hash=f"h{i:06d}",
                )
            )
            catalog.put_embeddings(model, [(f"h{i:06d}", vector)])
    catalog.bump_generation()
    return ids


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(ids: list[int], vectors: np.ndarray, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    stored = vectors.astype(np.float16).astype(np.float32)  # what the catalog keeps
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = q @ stored.T
    out = []
    for row in scores:
        order = np.argsort(-row, kind="stable")[:k]
        out.append([(ids[i], float(row[i])) for i in order])
    return out


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog.open(tmp_path / "catalog.sqlite3")
    yield cat
    cat.close()


def test_exact_index_ranks_like_brute_force(catalog: Catalog, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    vectors = unit(rng, 400, 32)
    ids = fill(catalog, vectors)
    index = VectorIndex(tmp_path / "index", catalog)
    index.refresh(MODEL)
    queries = unit(rng, 6, 32) * 3.0  # not normalised: the index normalises, so scores are cosines
    got = index.search(MODEL, queries, 10)
    want = brute_force(ids, vectors, queries, 10)
    assert index.info(MODEL)["kind"] == vi.KIND_FLAT
    for g, w in zip(got, want, strict=True):
        assert [pid for pid, _ in g] == [pid for pid, _ in w]
        np.testing.assert_allclose([s for _, s in g], [s for _, s in w], atol=2e-3)


def test_compressed_index_ranks_like_brute_force(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vi, "EXACT_MAX", 100)  # force the IVF-SQ8 path on a small library
    gen = SyntheticVectors(3000, 48, seed=3)
    vectors = gen.all().astype(np.float32)
    ids = fill(catalog, vectors)
    index = VectorIndex(tmp_path / "index", catalog)
    index.refresh(MODEL)
    queries = gen.queries(40)
    got = index.search(MODEL, queries, 10)
    want = brute_force(ids, vectors, queries, 10)
    info = index.info(MODEL)
    assert info["kind"] == vi.KIND_IVF
    assert 0 < info["nprobe"] <= info["nlist"]
    recall = np.mean([len({p for p, _ in g} & {p for p, _ in w}) / 10 for g, w in zip(got, want, strict=True)])
    assert recall >= 0.95
    for row, reference in zip(got, want, strict=True):
        assert [s for _, s in row] == sorted((s for _, s in row), reverse=True)
        exact = dict(reference)
        for pid, score in row:
            if pid in exact:
                assert score == pytest.approx(exact[pid], abs=0.01)  # 8-bit codes


@pytest.mark.parametrize("exact_max", [vi.EXACT_MAX, 100])
def test_allowed_ids_restrict_results(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exact_max: int
) -> None:
    monkeypatch.setattr(vi, "EXACT_MAX", exact_max)
    monkeypatch.setattr(vi, "SUBSET_EXACT_MAX", 50)
    rng = np.random.default_rng(2)
    vectors = unit(rng, 2000, 32)
    ids = fill(catalog, vectors)
    index = VectorIndex(tmp_path / "index", catalog)
    index.refresh(MODEL)
    queries = unit(rng, 4, 32)
    for allowed_rows in (np.arange(0, 2000, 97), np.arange(0, 2000, 2)):  # small (exact) and large (selector)
        allowed = np.array([ids[i] for i in allowed_rows])
        got = index.search(MODEL, queries, 5, allowed_ids=allowed)
        want = brute_force(list(allowed), vectors[allowed_rows], queries, 5)
        for g, w in zip(got, want, strict=True):
            assert {p for p, _ in g} <= set(allowed.tolist())
            overlap = len({p for p, _ in g} & {p for p, _ in w})
            assert overlap >= (5 if exact_max == vi.EXACT_MAX or len(allowed) <= 50 else 4)
    assert index.search(MODEL, queries, 5, allowed_ids=np.array([], dtype=np.int64)) == [[], [], [], []]


def test_fewer_photos_than_k(catalog: Catalog, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    ids = fill(catalog, unit(rng, 3, 16))
    hits = VectorIndex(tmp_path / "index", catalog).search(MODEL, unit(rng, 1, 16), 10)[0]
    assert sorted(p for p, _ in hits) == sorted(ids)


def test_changes_are_searched_exactly_until_the_writer_applies_them(catalog: Catalog, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    fill(catalog, unit(rng, 50, 16))
    index = VectorIndex(tmp_path / "index", catalog)
    index.refresh(MODEL)
    seq = index.info(MODEL)["seq"]
    target = unit(rng, 1, 16)
    new_id = fill(catalog, target, start=1000)[0]
    assert index.info(MODEL)["pending"] > 0
    hits = index.search(MODEL, target, 1)[0]  # a reader: the new photo comes from the log, exactly
    assert hits[0][0] == new_id
    assert hits[0][1] == pytest.approx(1.0, abs=2e-3)
    assert index.info(MODEL)["seq"] == seq  # the reader wrote nothing
    # Deleted photos never come back from an older base.
    catalog.delete_photos([new_id])
    assert new_id not in {p for p, _ in index.search(MODEL, target, 60)[0]}
    assert index.rebuilds == 1


def test_loads_a_fresh_index_without_rebuilding(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(5)
    fill(catalog, unit(rng, 50, 16))
    VectorIndex(tmp_path / "index", catalog).refresh(MODEL)

    def no_build(*_args: object, **_kwargs: object) -> vi.BuiltIndex:
        raise AssertionError("rebuilt a fresh index")

    monkeypatch.setattr(vi, "build_index", no_build)
    again = VectorIndex(tmp_path / "index", catalog)
    assert len(again.search(MODEL, unit(rng, 1, 16), 5)[0]) == 5


@pytest.mark.expected_warnings(r"it will be rebuilt")
@pytest.mark.expected_warnings(r"; rebuilding$")
@pytest.mark.parametrize("damage", ["garbage", "truncate", "no-sidecar", "bad-sidecar", "other-model", "no-file"])
def test_damaged_files_are_rebuilt(catalog: Catalog, tmp_path: Path, damage: str) -> None:
    rng = np.random.default_rng(6)
    vectors = unit(rng, 80, 16)
    ids = fill(catalog, vectors)
    VectorIndex(tmp_path / "index", catalog).refresh(MODEL)
    faiss_file = next((tmp_path / "index").glob("*.faiss"))
    sidecar = faiss_file.with_suffix(".json")
    if damage == "garbage":
        faiss_file.write_bytes(b"\x00garbage" * 1000)
    elif damage == "truncate":
        faiss_file.write_bytes(faiss_file.read_bytes()[:500])
    elif damage == "no-sidecar":
        sidecar.unlink()
    elif damage == "bad-sidecar":
        sidecar.write_text("{not json", encoding="utf-8")
    elif damage == "other-model":
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        sidecar.write_text(json.dumps({**meta, "model": "other/model"}), encoding="utf-8")
    else:
        faiss_file.unlink()
    queries = unit(rng, 3, 16)
    want = [[p for p, _ in row] for row in brute_force(ids, vectors, queries, 5)]
    reader = VectorIndex(tmp_path / "index", catalog)
    # A reader never rebuilds: it answers exactly from the catalog until the writer repairs the file.
    assert [[p for p, _ in row] for row in reader.search(MODEL, queries, 5)] == want
    assert reader.rebuilds == 0
    writer = VectorIndex(tmp_path / "index", catalog)
    writer.refresh(MODEL)
    assert writer.rebuilds == 1
    assert VectorIndex(tmp_path / "index", catalog).info(MODEL)["fresh"]
    assert [[p for p, _ in row] for row in VectorIndex(tmp_path / "index", catalog).search(MODEL, queries, 5)] == want


def test_crash_while_writing_keeps_the_old_index(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faiss

    rng = np.random.default_rng(7)
    fill(catalog, unit(rng, 40, 16))
    index = VectorIndex(tmp_path / "index", catalog)
    index.refresh(MODEL)
    files = {p.name: p.read_bytes() for p in (tmp_path / "index").iterdir()}

    real_write = faiss.write_index

    def crashing_write(index: object, writer: object) -> None:
        real_write(faiss.IndexFlatIP(16), writer)  # some bytes reach the temp file...
        raise KeyboardInterrupt  # ...then the process is being killed mid-write

    fill(catalog, unit(rng, 5, 16), start=100)
    monkeypatch.setattr(faiss, "write_index", crashing_write)
    with pytest.raises(KeyboardInterrupt):
        list(VectorIndex(tmp_path / "index", catalog).rebuild(MODEL))
    assert {p.name: p.read_bytes() for p in (tmp_path / "index").iterdir()} == files  # no temp file left
    monkeypatch.undo()
    fresh = VectorIndex(tmp_path / "index", catalog)
    assert fresh.info(MODEL)["count"] == 40  # the old, whole index, with 5 newer changes in the log
    assert fresh.info(MODEL)["fresh"]
    assert len(fresh.search(MODEL, unit(rng, 1, 16), 100)[0]) == 45  # the 5 come from the log
    assert fresh.rebuilds == 0


def test_writes_go_through_a_temp_file_and_replace(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(8)
    fill(catalog, unit(rng, 10, 16))
    replaced: list[tuple[str, str]] = []
    real_replace = vi.os.replace

    def spy(src: str, dst: str | Path) -> None:
        replaced.append((Path(src).name, Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(vi.os, "replace", spy)
    VectorIndex(tmp_path / "index", catalog).refresh(MODEL)
    # The index first, its sidecar last: a crash in between leaves a sidecar that no longer matches.
    assert [dst.rsplit(".", 1)[1] for _, dst in replaced] == ["faiss", "json"]
    for src, dst in replaced:
        assert src.startswith(f".{dst}.")
        assert src.endswith(".tmp")


def test_query_dimension_mismatch_is_a_model_mismatch(catalog: Catalog, tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    fill(catalog, unit(rng, 10, 16))
    with pytest.raises(ModelMismatchError, match="re-index"):
        VectorIndex(tmp_path / "index", catalog).search(MODEL, unit(rng, 1, 32), 5)


def test_library_indexed_with_another_model(catalog: Catalog, tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    fill(catalog, unit(rng, 10, 16), model="old-arch/old-tag")
    with pytest.raises(ModelMismatchError, match=r"old-arch/old-tag.*photoembed index"):
        VectorIndex(tmp_path / "index", catalog).search(MODEL, unit(rng, 1, 16), 5)


def test_empty_library(catalog: Catalog, tmp_path: Path) -> None:
    index = VectorIndex(tmp_path / "index", catalog)
    assert index.search(MODEL, np.ones((2, 8), dtype=np.float32), 5) == [[], []]
    index.refresh(MODEL)
    assert index.search(MODEL, np.ones((2, 8), dtype=np.float32), 5) == [[], []]
    assert index.info(MODEL)["count"] == 0
    assert index.info(MODEL)["fresh"]


def test_importing_the_module_does_not_import_faiss() -> None:
    code = "import sys, photoembed.storage.vector_index; assert 'faiss' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
