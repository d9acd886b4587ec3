"""The clustering algorithm on synthetic inputs (no model: these test the algorithm, not CLIP)."""

from __future__ import annotations

import numpy as np

from photoembed.dedup.cluster import complete_link_clusters
from photoembed.dedup.engine import DuplicateEngine, EngineOptions, FingerprintTable


def _drain(engine: DuplicateEngine) -> list[tuple[str, list[int]]]:
    gen = engine.run()
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return sorted((c.tier, sorted(c.rows)) for c in stop.value)


def _table(vectors: np.ndarray, taken: np.ndarray | None = None) -> FingerprintTable:
    n = len(vectors)
    rng = np.random.default_rng(0)
    return FingerprintTable(
        sizes=np.arange(n, dtype=np.int64) + 1000,
        content_hashes=[f"h{i}" for i in range(n)],
        quality=np.zeros(n, dtype=np.uint8),  # no usable hashes: only the CLIP tier can link them
        pdq=rng.integers(0, 255, (n, 32), dtype=np.uint8),
        layout=rng.integers(0, 255, (n, 64), dtype=np.uint8),
        taken=np.full(n, np.nan) if taken is None else taken,
        thumbs=lambda rows: {},
        vectors=vectors.astype(np.float32),
        has_vector=np.ones(n, dtype=bool),
    )


def _chain() -> np.ndarray:
    # A~B and B~C at cos 0.95, but A~C only 0.805: a chain, not a group.
    angle = np.arccos(0.95)
    vecs = np.zeros((3, 8), dtype=np.float32)
    for k in range(3):
        vecs[k, 0], vecs[k, 1] = np.cos(k * angle), np.sin(k * angle)
    return vecs


def test_complete_link_does_not_chain() -> None:
    links = {(0, 1), (1, 2)}
    clusters = complete_link_clusters(
        3,
        np.array([0, 1]),
        np.array([1, 2]),
        np.array([0.9, 0.9], dtype=np.float32),
        link=lambda a, b: (min(a, b), max(a, b)) in links,
    )
    assert clusters == [[1, 0]] or clusters == [[1, 2]]


def test_complete_link_checks_pairs_missing_from_the_sparse_graph() -> None:
    # Only star edges are known, but all pairs are linked on demand: one cluster of four.
    clusters = complete_link_clusters(
        4, np.array([0, 0, 0]), np.array([1, 2, 3]), np.ones(3, dtype=np.float32), link=lambda a, b: True
    )
    assert [sorted(c) for c in clusters] == [[0, 1, 2, 3]]


def test_similar_tier_does_not_chain() -> None:
    engine = DuplicateEngine(_table(_chain()), EngineOptions(tier="similar", similar_threshold=0.92))
    result = _drain(engine)
    assert len(result) == 1
    assert result[0][0] == "similar"
    assert result[0][1] in ([0, 1], [1, 2])


def test_similar_threshold_and_time_window() -> None:
    vecs = _chain()
    assert _drain(DuplicateEngine(_table(vecs), EngineOptions(tier="similar", similar_threshold=0.8))) == [
        ("similar", [0, 1, 2])
    ]
    taken = np.array([0.0, 5.0, 500.0])
    windowed = DuplicateEngine(
        _table(vecs, taken), EngineOptions(tier="similar", similar_threshold=0.8, time_window_s=60)
    )
    assert _drain(windowed) == [("similar", [0, 1])]


def test_similar_tier_respects_marks() -> None:
    vecs = _chain()
    options = EngineOptions(tier="similar", similar_threshold=0.8, marked=lambda a, b: {a, b} == {"h0", "h1"})
    result = _drain(DuplicateEngine(_table(vecs), options))
    assert all(not {0, 1} <= set(rows) for _, rows in result)


def test_many_points_in_chunks_without_n_by_n() -> None:
    rng = np.random.default_rng(1)
    n = 8_000  # above the exact-search limit: exercises the inverted-file path
    base = rng.normal(size=(n, 64)).astype(np.float32)
    base[n // 2 :: 2] = base[n // 2 - 1 : n - 1 : 2] + rng.normal(scale=0.05, size=(n // 4, 64))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    result = _drain(DuplicateEngine(_table(base), EngineOptions(tier="similar", similar_threshold=0.95)))
    pairs = {tuple(rows) for _, rows in result}
    planted = {(k - 1, k) for k in range(n // 2, n, 2)}
    assert len(pairs & planted) >= 0.95 * len(planted)
    assert pairs <= planted
