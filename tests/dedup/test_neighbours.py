"""The similarity join behind the candidate pairs, checked against brute force on synthetic unit vectors."""

from __future__ import annotations

import numpy as np

from photoembed.dedup.neighbours import EXACT_LIMIT, NeighbourIndex, knn_pairs, unique_pairs


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _planted(n: int, d: int, *, noise: float, seed: int) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """Random unit rows; the second half are noisy copies of rows of the first half."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    half = n // 2
    x[half:] = x[:half] + rng.normal(scale=noise, size=(half, d))
    return _unit(x), {(k, k + half) for k in range(half)}


def _join(vectors: np.ndarray, *, k: int, min_cos: float) -> dict[tuple[int, int], float]:
    chunks = [(lo, hi, cos) for lo, hi, cos, _ in knn_pairs(vectors, k=k, min_cos=min_cos)]
    i, j, s = unique_pairs(chunks)
    return {(a, b): c for a, b, c in zip(i.tolist(), j.tolist(), s.tolist(), strict=True)}


def _brute(vectors: np.ndarray, min_cos: float) -> set[tuple[int, int]]:
    sims = vectors @ vectors.T  # test-sized only
    i, j = np.nonzero(np.triu(sims, 1) >= min_cos)
    return set(zip(i.tolist(), j.tolist(), strict=True))


def test_small_sets_are_exact() -> None:
    vectors, _ = _planted(600, 48, noise=0.3, seed=2)
    found = _join(vectors, k=50, min_cos=0.85)
    assert set(found) == _brute(vectors, 0.85)
    for (a, b), cos in found.items():
        assert abs(cos - float(vectors[a] @ vectors[b])) < 1e-5


def test_wide_vectors_use_the_bound_without_losing_or_inventing_pairs() -> None:
    # Above the exact limit and wider than the basis: cells plus the Cauchy-Schwarz bound.
    n = 2 * (EXACT_LIMIT // 2 + 1000)
    vectors, planted = _planted(n, 256, noise=0.025, seed=3)
    index = NeighbourIndex(vectors)
    assert not index.exact
    chunks = [(lo, hi, cos) for lo, hi, cos, _ in knn_pairs(vectors, k=16, min_cos=0.9, index=index)]
    i, j, s = unique_pairs(chunks)
    found = set(zip(i.tolist(), j.tolist(), strict=True))
    truth = _brute(vectors, 0.9)
    assert truth == planted  # the planted copies are the only pairs this similar
    assert found <= truth  # never a pair below the threshold
    assert len(found) >= 0.97 * len(truth)
    exact = np.einsum("ij,ij->i", vectors[i], vectors[j])
    assert np.allclose(s, exact, atol=1e-5)  # scores are exact cosines, not the block's bounds


def test_float16_rows_are_accepted() -> None:
    n = 2 * (EXACT_LIMIT // 2 + 500)
    vectors, planted = _planted(n, 256, noise=0.025, seed=4)
    found = _join(vectors.astype(np.float16), k=16, min_cos=0.9)
    assert set(found) <= planted
    assert len(found) >= 0.97 * len(planted)


def test_a_burst_keeps_at_most_k_pairs_per_query() -> None:
    rng = np.random.default_rng(5)
    burst = _unit(np.ones((40, 32)) + rng.normal(scale=0.01, size=(40, 32)))
    others = _unit(rng.standard_normal((200, 32)))
    vectors = np.concatenate([burst, others])
    found = _join(vectors, k=3, min_cos=0.9)
    per_row = np.bincount(np.array(list(found)).ravel(), minlength=len(vectors))
    # Each burst row keeps its k best, and every pair stays inside the burst.
    assert per_row[:40].min() >= 3
    assert len(found) <= 40 * 3
    assert all(a < 40 and b < 40 for a, b in found)


def test_window_queries_report_their_owner() -> None:
    vectors, _ = _planted(400, 16, noise=0.05, seed=6)
    flipped = vectors[:, ::-1].copy()  # a query unlike its owner's own row

    def queries(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        owners = np.arange(start, stop, dtype=np.int64)
        return np.repeat(owners, 2), np.stack([vectors[start:stop], flipped[start:stop]], axis=1).reshape(-1, 16)

    chunks = [(lo, hi, cos) for lo, hi, cos, _ in knn_pairs(vectors, k=5, min_cos=0.95, queries=queries)]
    i, j, s = unique_pairs(chunks)
    assert len(i) > 0
    assert np.all(i < j)
    # Each pair's score is the better of its owner's two queries against the other row.
    for a, b, c in zip(i.tolist(), j.tolist(), s.tolist(), strict=True):
        best = max(float(q @ vectors[other]) for q, other in ((vectors[a], b), (flipped[a], b), (vectors[b], a)))
        best = max(best, float(flipped[b] @ vectors[a]))
        assert abs(c - best) < 1e-5
