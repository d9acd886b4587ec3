"""Candidate pairs from nearest-neighbour search, in chunks, never an N x N matrix.

Small sets use an exact inner-product index. Larger sets use an inverted file with a flat coarse quantizer
(its assignment is one batched matrix product), after a PCA to 64 dimensions for CLIP-sized vectors. The
index's distance bounds the cosine from above, so it filters candidates safely; the kept candidates' exact
cosines are then recomputed from the full vectors: the approximation only costs recall, never a wrong score.
Only k-nearest-neighbour search is used: faiss-cpu 1.15.1 aborts on HNSW range searches with thousands of
queries in one call.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator

import numpy as np

logger = logging.getLogger(__name__)

EXACT_LIMIT = 5_000
QUERY_CHUNK = 8192
_PCA_DIM = 64
_NPROBE = 4


class NeighbourIndex:
    """Unit vectors (rows) searchable by cosine; build once, query in chunks."""

    def __init__(self, vectors: np.ndarray, *, seed: int = 0) -> None:
        import faiss  # heavy: imported where used

        n, d = vectors.shape
        self.n = n
        self.exact = n <= EXACT_LIMIT
        self._index: faiss.Index
        if self.exact:
            self._index = faiss.IndexFlatIP(d)
        else:
            nlist = int(min(65536, max(64, 4 * math.sqrt(n))))
            prefix = f"PCA{_PCA_DIM}," if d > _PCA_DIM else ""
            # L2 on unit vectors ranks like cosine, and stays meaningful after PCA's centring.
            self._index = faiss.index_factory(d, f"{prefix}IVF{nlist},Flat", faiss.METRIC_L2)
            rng = np.random.default_rng(seed)
            sample_size = min(n, max(30 * nlist, 10_000), 100_000)
            sample = vectors[np.sort(rng.choice(n, size=sample_size, replace=False))]
            ivf = faiss.extract_index_ivf(self._index)
            ivf.cp.niter = 10  # coarse centroids only route the search; 10 k-means rounds are plenty
            self._index.train(np.ascontiguousarray(sample, dtype=np.float32))
            ivf.nprobe = _NPROBE
        for start in range(0, n, QUERY_CHUNK * 8):
            self._index.add(np.ascontiguousarray(vectors[start : start + QUERY_CHUNK * 8], dtype=np.float32))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(cosine upper bounds, row ids)`` of the ``k`` nearest rows per query (id -1 where fewer exist).

        Exact search gives the cosine itself. After the PCA, distances can only shrink (a projection), so
        ``1 - d^2 / 2`` over-estimates the cosine: filtering on it never drops a true pair.
        """
        dist, ids = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, self.n))
        bound = dist if self.exact else 1.0 - dist / 2.0
        return np.asarray(bound, dtype=np.float32), np.asarray(ids, dtype=np.int64)


def knn_pairs(
    vectors: np.ndarray,
    *,
    k: int,
    min_cos: float,
    index: NeighbourIndex | None = None,
    queries: Callable[[int, int], tuple[np.ndarray, np.ndarray]] | None = None,
    accept: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """Yield ``(i, j, cosine, rows_done)`` chunks of pairs i < j with exact cosine >= ``min_cos``.

    Args:
        vectors: unit rows, float32 or float16 [n, d].
        k: neighbours per query.
        min_cos: keep pairs at least this similar (exact cosine of the full vectors).
        index: a prebuilt index over ``vectors`` (built here when None).
        queries: ``(start, stop) -> (owner_rows, query_vectors)`` for query rows start..stop; by default each
            row queries with itself. Several queries may share an owner (crop windows of one photo); the
            cosine kept is then the best query's, computed against the query, not the owner's own vector.
        accept: optional vectorised filter on candidate pairs (time window, say) applied before scoring.
    """
    n = vectors.shape[0]
    if n < 2:
        return
    index = index or NeighbourIndex(vectors)
    for start in range(0, n, QUERY_CHUNK):
        stop = min(n, start + QUERY_CHUNK)
        if queries is None:
            owners = np.arange(start, stop, dtype=np.int64)
            qv = np.asarray(vectors[start:stop], dtype=np.float32)
        else:
            owners, qv = queries(start, stop)
        bound, ids = index.search(qv, k + 1)
        rows = np.repeat(np.arange(len(owners)), ids.shape[1])
        cols = ids.ravel()
        keep = (cols >= 0) & (cols != owners[rows]) & (bound.ravel() >= min_cos - 1e-3)
        rows, cols = rows[keep], cols[keep]
        i = owners[rows]
        if accept is not None:
            ok = accept(i, cols)
            rows, cols, i = rows[ok], cols[ok], i[ok]
        cos = np.einsum("ij,ij->i", qv[rows], np.asarray(vectors[cols], dtype=np.float32))
        good = cos >= min_cos
        a, b, c = i[good], cols[good], cos[good]
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        yield lo, hi, c.astype(np.float32), stop


def unique_pairs(chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge pair chunks, keeping each (i, j) once with its best score."""
    if not chunks:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    i = np.concatenate([c[0] for c in chunks])
    j = np.concatenate([c[1] for c in chunks])
    s = np.concatenate([c[2] for c in chunks])
    order = np.lexsort((-s, j, i))
    i, j, s = i[order], j[order], s[order]
    first = np.ones(len(i), dtype=bool)
    first[1:] = (i[1:] != i[:-1]) | (j[1:] != j[:-1])
    return i[first], j[first], s[first]
