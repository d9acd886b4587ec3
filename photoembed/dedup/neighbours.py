"""Candidate pairs from a similarity join over an inverted file, with matrix products, never an N x N matrix.

How, for ``n`` unit rows and pairs with cosine >= ``min_cos``:

1. Cells. Rows are assigned to cells by k-means on their top principal coordinates (centred PCA, 32 of
   them). Each query probes its few nearest cells; a pair is found when one's cell is among the other's
   probes. Near-duplicates are very close, so a handful of probes is enough; the routing only costs recall.
2. Scores. Per cell, one matrix product of the probing queries against the cell's members (BLAS, block by
   block). For wide vectors (CLIP) the product is taken in an orthonormal basis of 128 dimensions
   (uncentred PCA, which keeps the mean direction that carries much of a CLIP vector's energy), and the
   part outside the basis is bounded by Cauchy-Schwarz: ``x.y <= px.py + |rx| |ry|``. Filtering on that
   bound never drops a pair the cells brought together; the survivors' exact cosines are then computed
   from the full vectors, so a score is never approximate.
3. Each query keeps its ``k`` best pairs per probed cell, which bounds the output for bursts of hundreds
   of near-identical frames.

Small sets (up to :data:`EXACT_LIMIT` rows) form one cell: the search is exact. Everything is numpy
matrix products; faiss is not needed here (and faiss-cpu 1.15.1 aborts on HNSW range searches with
thousands of queries in one call).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import numpy as np

logger = logging.getLogger(__name__)

EXACT_LIMIT = 5_000
#: Rows per projection batch.
QUERY_CHUNK = 65_536
#: Owners per batch of external queries (a self-join routes every row at once). Each batch is joined cell by
#: cell, so it should be large enough to give each cell a useful block of queries.
_OWNER_CHUNK = 8192
#: Probed cells per query.
PROBES = 4
_BASIS_DIM = 128
_ROUTE_DIM = 32
#: Cells: about ``_CELLS_PER_ROOT * sqrt(n)``, balancing the routing (n x cells distances) against the block
#: products (n x probes x n / cells scores), which cost about three times less per entry.
_CELLS_PER_ROOT = 2.0
_ROUTE_ROWS = 8192
_SAMPLE = 50_000
_BLOCK_QUERIES = 2048
_BLOCK_MEMBERS = 8192
#: Input rows may be float16 (their norms off by ~1e-3): the block filter keeps this margin below min_cos.
_BOUND_SLACK = 4e-3


class NeighbourIndex:
    """Unit rows (float16 or float32), organised for a thresholded similarity join; build once.

    Attributes:
        n: number of rows.
        exact: one cell and no projection (small sets): every pair is scored.
    """

    def __init__(self, vectors: np.ndarray, *, seed: int = 0, probes: int = PROBES) -> None:
        with _one_thread():
            self._build(vectors, seed=seed, probes=probes)

    def _build(self, vectors: np.ndarray, *, seed: int, probes: int) -> None:
        n, d = vectors.shape
        self.vectors = vectors
        self.n = n
        self.exact = n <= EXACT_LIMIT
        self.probes = 1 if self.exact else probes
        self._basis: np.ndarray | None = None  # [d, b] orthonormal, None: scores are taken in full
        self._route: np.ndarray | None = None  # [d, r] routing directions
        self._route_centroids: np.ndarray | None = None  # [r + 1, cells]: see _fit
        if self.exact:
            self.nlist = 1
            cells = np.zeros((n, 1), dtype=np.int64)
        else:
            self.nlist = int(min(65_536, max(16, _CELLS_PER_ROOT * math.sqrt(n))))
            self._fit(vectors, seed)
            cells = np.empty((n, self.probes), dtype=np.int64)
        # First pass: each row's cells. Second pass: the stored coordinates, written straight in cell order
        # (no unsorted copy). With a basis, the residual norm is appended as one more coordinate, so that
        # one product gives the bound px.py + |rx||ry|.
        if not self.exact:
            for start in range(0, n, QUERY_CHUNK):
                cells[start : start + QUERY_CHUNK] = self._cells_of(
                    np.asarray(vectors[start : start + QUERY_CHUNK], dtype=np.float32)
                )
        # Rows sorted by their own (first) cell: a cell's members are one contiguous slice.
        self.order = np.argsort(cells[:, 0], kind="stable")
        self.starts = np.searchsorted(cells[:, 0], np.arange(self.nlist + 1), sorter=self.order)
        width = d if self._basis is None else self._basis.shape[1] + 1
        self._proj_sorted = np.empty((n, width), dtype=np.float32)
        for start in range(0, n, QUERY_CHUNK):
            rows = self.order[start : start + QUERY_CHUNK]
            self._proj_sorted[start : start + len(rows)] = self._project(np.asarray(vectors[rows], dtype=np.float32))
        self._cells = cells

    def _fit(self, vectors: np.ndarray, seed: int) -> None:
        n, d = vectors.shape
        rng = np.random.default_rng(seed)
        sample = np.asarray(vectors[np.sort(rng.choice(n, size=min(n, _SAMPLE), replace=False))], dtype=np.float32)
        if d > _BASIS_DIM:
            # A 10k-row sample pins the leading directions down well; more only costs time.
            head = sample[:10_000]
            _, eigvecs = np.linalg.eigh(head.T @ head)
            self._basis = np.ascontiguousarray(eigvecs[:, ::-1][:, :_BASIS_DIM], dtype=np.float32)
            # Routing: the centred principal directions within the basis (a small eigenproblem).
            inner = head @ self._basis
            inner -= inner.mean(axis=0)
            _, small = np.linalg.eigh(inner.T @ inner)
            self._route = np.ascontiguousarray(self._basis @ small[:, ::-1][:, :_ROUTE_DIM], dtype=np.float32)
        else:
            centred = sample[:10_000] - sample[:10_000].mean(axis=0)
            _, eigvecs = np.linalg.eigh(centred.T @ centred)
            self._route = np.ascontiguousarray(eigvecs[:, ::-1][:, : min(d, _ROUTE_DIM)], dtype=np.float32)
        # Centroids only route the search: a 20-per-cell sample and 8 rounds are plenty.
        train = sample[: min(len(sample), 20 * self.nlist)] @ self._route
        centroids = _kmeans(train, self.nlist, rounds=8, rng=rng)
        # |x - c|^2 - |x|^2 = [x, 1] . [-2c, |c|^2]: the routing distances in one product.
        self._route_centroids = np.ascontiguousarray(
            np.concatenate([-2.0 * centroids, np.einsum("ij,ij->i", centroids, centroids)[:, None]], axis=1).T,
            dtype=np.float32,
        )

    def _cells_of(self, block: np.ndarray) -> np.ndarray:
        """The ``probes`` nearest cells of float32 rows, nearest first."""
        assert self._route is not None
        assert self._route_centroids is not None
        out = np.empty((len(block), self.probes), dtype=np.int64)
        for start in range(0, len(block), _ROUTE_ROWS):
            x = block[start : start + _ROUTE_ROWS] @ self._route
            x = np.concatenate([x, np.ones((len(x), 1), dtype=np.float32)], axis=1)
            out[start : start + len(x)] = _smallest(x @ self._route_centroids, self.probes)
        return out

    def _queries(self, owners: np.ndarray, qv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """External queries as ``(owners, full float32, stored coordinates, cells)``."""
        cells = np.zeros((len(qv), 1), dtype=np.int64) if self.exact else self._cells_of(qv)
        return owners, qv, self._project(qv), cells

    def _project(self, block: np.ndarray) -> np.ndarray:
        """float32 rows -> their stored coordinates: ``[basis coordinates, residual norm]`` or the rows."""
        if self._basis is None:
            return block
        p = block @ self._basis
        sq = np.einsum("ij,ij->i", block, block) - np.einsum("ij,ij->i", p, p)
        return np.concatenate([p, np.sqrt(np.maximum(sq, 0.0))[:, None]], axis=1)

    def join(
        self,
        *,
        k: int,
        min_cos: float,
        queries: Callable[[int, int], tuple[np.ndarray, np.ndarray]] | None = None,
        accept: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
        """Yield ``(owners, rows, cosine, rows_done)`` chunks: each query's pairs with cosine >= ``min_cos``.

        See :func:`knn_pairs` for the arguments. Self pairs are left out; a query keeps at most ``k`` pairs
        per probed cell.
        """
        with _one_thread():
            yield from self._join(k=k, min_cos=min_cos, queries=queries, accept=accept)

    def _join(
        self,
        *,
        k: int,
        min_cos: float,
        queries: Callable[[int, int], tuple[np.ndarray, np.ndarray]] | None,
        accept: Callable[[np.ndarray, np.ndarray], np.ndarray] | None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
        if queries is None:
            # Every row queries with itself: its projection is already stored (in cell order).
            order = self.order
            yield from self._join_batch(
                owners=order,
                full=None,
                proj=self._proj_sorted,
                cells=self._cells[order],
                k=k,
                min_cos=min_cos,
                accept=accept,
                done_base=0,
                done_span=self.n,
            )
            return
        for start in range(0, self.n, _OWNER_CHUNK):
            stop = min(self.n, start + _OWNER_CHUNK)
            owners, qv = queries(start, stop)
            o, full, proj, cells = self._queries(owners, np.asarray(qv, dtype=np.float32))
            yield from self._join_batch(
                owners=o,
                full=full,
                proj=proj,
                cells=cells,
                k=k,
                min_cos=min_cos,
                accept=accept,
                done_base=start,
                done_span=stop - start,
            )

    def _join_batch(
        self,
        *,
        owners: np.ndarray,
        full: np.ndarray | None,
        proj: np.ndarray,
        cells: np.ndarray,
        k: int,
        min_cos: float,
        accept: Callable[[np.ndarray, np.ndarray], np.ndarray] | None,
        done_base: int,
        done_span: int,
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
        """Join one batch of queries (``full``: their float32 vectors, None: the owners' own rows)."""
        # Invert the probes: for each cell, the queries that probe it.
        flat_cells = cells.ravel()
        by_cell = np.argsort(flat_cells, kind="stable")
        probe_query = by_cell // cells.shape[1]
        cell_starts = np.searchsorted(flat_cells, np.arange(self.nlist + 1), sorter=by_cell)
        threshold = min_cos - _BOUND_SLACK
        out_o: list[np.ndarray] = []
        out_r: list[np.ndarray] = []
        out_c: list[np.ndarray] = []
        report_every = max(1, self.nlist // 16)
        for cell in range(self.nlist):
            m0, m1 = int(self.starts[cell]), int(self.starts[cell + 1])
            q_all = probe_query[cell_starts[cell] : cell_starts[cell + 1]]
            if m1 > m0 and len(q_all):
                for q0 in range(0, len(q_all), _BLOCK_QUERIES):
                    q = q_all[q0 : q0 + _BLOCK_QUERIES]
                    qp = proj[q]
                    for b0 in range(m0, m1, _BLOCK_MEMBERS):
                        b1 = min(m1, b0 + _BLOCK_MEMBERS)
                        scores = qp @ self._proj_sorted[b0:b1].T
                        if full is None:
                            # Self-join: the queries are rows in cell order; a row's score with itself is no pair.
                            own = (q >= b0) & (q < b1)
                            scores[np.flatnonzero(own), q[own] - b0] = -np.inf
                        hits = np.flatnonzero(scores >= threshold)  # 1-D: far cheaper than a 2-D nonzero
                        if len(hits) == 0:
                            continue
                        qi, mj = np.divmod(hits, b1 - b0)
                        found = self._finish(
                            owners=owners,
                            full=full,
                            q=q[qi],
                            rows=self.order[b0 + mj],
                            k=k,
                            min_cos=min_cos,
                            accept=accept,
                        )
                        if found is not None:
                            out_o.append(found[0])
                            out_r.append(found[1])
                            out_c.append(found[2])
            if (cell + 1) % report_every == 0 or cell + 1 == self.nlist:
                done = done_base + done_span * (cell + 1) // self.nlist
                if out_o:
                    yield np.concatenate(out_o), np.concatenate(out_r), np.concatenate(out_c), done
                else:
                    empty = np.zeros(0, dtype=np.int64)
                    yield empty, empty, np.zeros(0, dtype=np.float32), done
                out_o, out_r, out_c = [], [], []

    def _finish(
        self,
        *,
        owners: np.ndarray,
        full: np.ndarray | None,
        q: np.ndarray,
        rows: np.ndarray,
        k: int,
        min_cos: float,
        accept: Callable[[np.ndarray, np.ndarray], np.ndarray] | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Candidates of one block -> ``(owners, rows, exact cosine)``, at most ``k`` per query."""
        own = owners[q]
        keep = own != rows
        if accept is not None:
            keep &= accept(own, rows)
        q, own, rows = q[keep], own[keep], rows[keep]
        # Exact cosines from the full vectors: the block's scores were float16 products (and, for wide
        # vectors, only bounds).
        left = full[q] if full is not None else np.asarray(self.vectors[own], dtype=np.float32)
        cos = np.einsum("ij,ij->i", left, np.asarray(self.vectors[rows], dtype=np.float32))
        good = cos >= min_cos
        q, own, rows, cos = q[good], own[good], rows[good], cos[good]
        if len(q) == 0:
            return None
        if len(q) > k:
            # The k best per query: sort by query, best first, and keep each query's first k.
            order = np.lexsort((-cos, q))
            q, own, rows, cos = q[order], own[order], rows[order], cos[order]
            first = np.ones(len(q), dtype=bool)
            first[1:] = q[1:] != q[:-1]
            group_start = np.maximum.accumulate(np.where(first, np.arange(len(q)), 0))
            top = np.arange(len(q)) - group_start < k
            own, rows, cos = own[top], rows[top], cos[top]
        return own, rows, cos.astype(np.float32)


def _smallest(dist: np.ndarray, count: int) -> np.ndarray:
    """Column indices of each row's ``count`` smallest values, smallest first (``dist`` is overwritten).

    Repeated argmin: a few vectorised passes, several times faster than argpartition for a handful.
    """
    rows = np.arange(len(dist))
    out = np.empty((len(dist), count), dtype=np.int64)
    for c in range(count):
        out[:, c] = np.argmin(dist, axis=1)
        dist[rows, out[:, c]] = np.inf
    return out


def _kmeans(x: np.ndarray, cells: int, *, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """Plain Lloyd k-means on float32 rows; an emptied cell is re-seeded on a random row."""
    centroids = x[rng.choice(len(x), size=cells, replace=False)].copy()
    for _ in range(rounds):
        sq = np.einsum("ij,ij->i", centroids, centroids)
        nearest = np.argmin(sq[None, :] - 2.0 * (x @ centroids.T), axis=1)
        order = np.argsort(nearest, kind="stable")
        counts = np.bincount(nearest, minlength=cells)
        used = np.flatnonzero(counts)
        starts = np.concatenate([[0], np.cumsum(counts[used])[:-1]])
        centroids[used] = np.add.reduceat(x[order], starts, axis=0) / counts[used][:, None]
        empty = np.flatnonzero(counts == 0)
        centroids[empty] = x[rng.choice(len(x), size=len(empty), replace=False)]
    return centroids


def _one_thread() -> AbstractContextManager[object]:
    """BLAS and OpenMP (faiss) limited to one thread, restored on exit.

    The block products are small (a few hundred rows a side), so extra threads mostly add start-up and
    spin-waiting, and faiss's OpenMP pool and the BLAS pools oversubscribe the cores. Measured at 100k
    CLIP-sized rows on the two shared cores: build 2.8 s and join 1.0 s single-threaded, against 5-7 s and
    1-4 s with the default thread counts. One thread also leaves a core to the UI.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


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
        k: pairs kept per query and probed cell (the nearest first).
        min_cos: keep pairs at least this similar (exact cosine of the full vectors).
        index: a prebuilt index over ``vectors`` (built here when None).
        queries: ``(start, stop) -> (owner_rows, query_vectors)`` for query rows start..stop; by default each
            row queries with itself. Several queries may share an owner (crop windows of one photo); the
            cosine kept is then the query's, computed against the query, not the owner's own vector.
        accept: optional vectorised filter on candidate pairs ``(owners, rows)`` (time window, say), applied
            before exact scoring.
    """
    n = vectors.shape[0]
    if n < 2:
        return
    index = index or NeighbourIndex(vectors)
    for own, rows, cos, done in index.join(k=k, min_cos=min_cos, queries=queries, accept=accept):
        yield np.minimum(own, rows), np.maximum(own, rows), cos, done


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
