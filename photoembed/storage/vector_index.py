"""The FAISS index: a rebuildable derivative of the catalog's vectors, one per model.

The catalog (SQLite) is the source of truth; this index only makes search fast. Each model gets two files in
the index folder: ``<model>.faiss`` and the sidecar ``<model>.json`` (model, catalog generation, kind, dim,
count, file size and xxh3 checksum). Both are written to a temp file and moved into place with
``os.replace``, the index first and the sidecar last, so a crash at any moment leaves either the old pair or
a pair whose sidecar no longer matches the file. Anything missing, corrupt, of another model or of an older
catalog generation is rebuilt from the catalog before it is searched: it never answers with wrong results.

The index type is chosen by size:

* ``flat-fp16`` (up to :data:`EXACT_MAX` vectors): exact inner product over float16 codes. The catalog
  stores float16 vectors, so this is exact with respect to the source of truth, at half the memory of
  float32; 100k vectors answer in ~15 ms per query on one core.
* ``ivf-sq8`` (above): an inverted file over ``nlist`` k-means cells with 8-bit scalar-quantised codes
  (512 bytes for a 512-d vector: 1M photos fit in ~0.55 GB). ``nprobe`` is calibrated at build time against
  exact search on probe queries drawn from the library's own vectors, so that recall@10 stays at or above
  :data:`TARGET_RECALL`. Scores are those of the 8-bit codes: within ~1e-3 of the exact cosine. Graph
  indexes (HNSW) were not chosen: building one over 1M 512-d vectors takes tens of minutes on a laptop's
  two cores, against about a minute for IVF, and it supports neither removal nor cheap filtering.

Filters (``allowed_ids``) use FAISS ID selectors; a small allowed set (or an IVF index with an allowed set
too sparse for its probed cells) is searched exactly on the subset instead.

Thread contract: every public method may be called from any thread; a lock serialises loading and
rebuilding, searches of a loaded index run concurrently (FAISS search is read-only).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xxhash

from photoembed.config import atomic_write_text
from photoembed.errors import KnownError, ModelMismatchError

if TYPE_CHECKING:
    from photoembed.storage.catalog import Catalog

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
EXACT_MAX = 250_000  # flat fp16 up to here: ~35 ms per query on one core, 256 MB at 512-d
TARGET_RECALL = 0.99  # calibration target for IVF; the benchmark holds it to >= 0.98 on unseen queries
SUBSET_EXACT_MAX = 20_000  # an allowed set this small is searched exactly (a few ms once fetched)
QUERY_CHUNK = 1024  # queries per FAISS call: bounds the distance buffers of large batches
ADD_CHUNK = 65_536  # vectors converted to float32 at a time while building
CALIBRATION_QUERIES = 256

KIND_EMPTY = "empty"
KIND_FLAT = "flat-fp16"
KIND_IVF = "ivf-sq8"
KINDS = (KIND_EMPTY, KIND_FLAT, KIND_IVF)

Hits = list[list[tuple[int, float]]]


@dataclass(frozen=True)
class IndexMeta:
    """The sidecar JSON: what the index file holds and which catalog state it was built from."""

    format: int
    model: str
    generation: int
    kind: str
    dim: int
    count: int
    nlist: int
    nprobe: int
    file_size: int
    xxh3: str
    build_s: float

    @classmethod
    def from_json(cls, raw: Any) -> IndexMeta:
        if not isinstance(raw, dict):
            raise TypeError("sidecar is not a JSON object")
        meta = cls(
            format=int(raw["format"]),
            model=str(raw["model"]),
            generation=int(raw["generation"]),
            kind=str(raw["kind"]),
            dim=int(raw["dim"]),
            count=int(raw["count"]),
            nlist=int(raw["nlist"]),
            nprobe=int(raw["nprobe"]),
            file_size=int(raw["file_size"]),
            xxh3=str(raw["xxh3"]),
            build_s=float(raw["build_s"]),
        )
        if meta.kind not in KINDS:
            raise ValueError(f"unknown index kind {meta.kind!r}")
        return meta


@dataclass
class _Loaded:
    meta: IndexMeta
    index: Any  # a faiss.Index, or None for an empty library


class VectorIndex:
    """The per-model FAISS indexes of one library, kept in step with its catalog.

    Args:
        directory: where the index files live (created on first write).
        catalog: the source of the vectors and of the generation counter.
    """

    def __init__(self, directory: Path, catalog: Catalog) -> None:
        self.directory = directory
        self.catalog = catalog
        self._loaded: dict[str, _Loaded] = {}
        self._lock = threading.RLock()

    # -- public API ---------------------------------------------------------------------------------

    def refresh(self, model: str) -> None:
        """Make the index of ``model`` match the catalog: load it, or rebuild it when stale or damaged."""
        self._current(model)

    def search(
        self,
        model: str,
        queries: np.ndarray,
        k: int,
        *,
        allowed_ids: np.ndarray | None = None,
    ) -> Hits:
        """The ``k`` photos most similar to each query, best first.

        Args:
            model: the model the queries were embedded with.
            queries: float32[q, d] query vectors (normalised here, so scores are cosine similarities).
            k: results per query.
            allowed_ids: restrict results to these photo ids (filters); None means all photos.

        Returns:
            One list per query of ``(photo_id, cosine score)``, best first; shorter than ``k`` when fewer
            photos qualify.

        Raises:
            ModelMismatchError: the library holds vectors of another model only, or of another dimension.
        """
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if k <= 0 or queries.shape[0] == 0:
            return [[] for _ in range(queries.shape[0])]
        loaded = self._current(model)
        if loaded.meta.count == 0:
            self._check_other_models(model)
            return [[] for _ in range(queries.shape[0])]
        if queries.shape[1] != loaded.meta.dim:
            raise ModelMismatchError(
                f"The index for {model} holds {loaded.meta.dim}-d vectors but the loaded model gives "
                f"{queries.shape[1]}-d ones; re-index the library with `photoembed index`"
            )
        queries = _normalise(queries)
        if allowed_ids is not None:
            allowed = np.unique(np.asarray(allowed_ids, dtype=np.int64))
            if allowed.size == 0:
                return [[] for _ in range(queries.shape[0])]
            return self._search_subset(model, loaded, queries, k, allowed)
        return self._search_all(loaded, queries, k)

    def info(self, model: str) -> dict[str, Any]:
        """What is on disk for ``model``, without loading or rebuilding anything.

        Keys: model, path, exists, fresh (matches the catalog's generation), kind (``none`` before the first
        build), count, bytes, and the sidecar's fields (generation, dim, nlist, nprobe, build_s, ...).
        """
        path, sidecar = self._paths(model)
        info: dict[str, Any] = {
            "model": model,
            "path": str(path),
            "exists": False,
            "fresh": False,
            "kind": "none",
            "count": 0,
            "bytes": 0,
        }
        try:
            meta = IndexMeta.from_json(json.loads(sidecar.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            return info
        info.update(asdict(meta))
        info["exists"] = meta.kind == KIND_EMPTY or path.exists()
        info["fresh"] = info["exists"] and meta.model == model and meta.generation == self.catalog.generation
        info["bytes"] = meta.file_size
        return info

    def forget(self, model: str | None = None) -> None:
        """Drop loaded indexes from memory (all, or one model's); files stay."""
        with self._lock:
            if model is None:
                self._loaded.clear()
            else:
                self._loaded.pop(model, None)

    # -- loading and rebuilding ---------------------------------------------------------------------

    def _paths(self, model: str) -> tuple[Path, Path]:
        # Model names look like "ViT-B-32/laion2b_s34b_b79k": keep them readable, make them file names.
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._") or "model"
        slug += "-" + xxhash.xxh3_64_hexdigest(model.encode("utf-8"))[:8]  # distinct names stay distinct
        return self.directory / f"{slug}.faiss", self.directory / f"{slug}.json"

    def _current(self, model: str) -> _Loaded:
        generation = self.catalog.generation
        loaded = self._loaded.get(model)
        if loaded is not None and loaded.meta.generation == generation:
            return loaded
        with self._lock:
            generation = self.catalog.generation
            loaded = self._loaded.get(model)
            if loaded is None or loaded.meta.generation != generation:
                loaded = self._load(model, generation)
                if loaded is None:
                    loaded = self._rebuild(model)
                self._loaded[model] = loaded
            return loaded

    def _load(self, model: str, generation: int) -> _Loaded | None:
        """The index on disk if it is whole, of this model and of this generation; else None."""
        path, sidecar = self._paths(model)
        if not sidecar.exists():
            return None
        try:
            meta = IndexMeta.from_json(json.loads(sidecar.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("Index sidecar %s is unreadable (%s); rebuilding", sidecar, exc)
            return None
        if meta.format != FORMAT_VERSION or meta.model != model:
            logger.warning("Index %s is of format %d, model %r; rebuilding", path, meta.format, meta.model)
            return None
        if meta.generation != generation:
            logger.info("Index %s is stale (generation %d, catalog %d)", path, meta.generation, generation)
            return None
        if meta.kind == KIND_EMPTY:
            return _Loaded(meta, None)
        started = time.perf_counter()
        try:
            # The checksum guards FAISS's reader, which trusts the sizes written in the file.
            index = read_verified(path, meta)
        except (OSError, RuntimeError, ValueError) as exc:
            logger.warning("Cannot use index %s (%s); rebuilding", path, exc)
            return None
        logger.debug("Loaded %s (%s, %d vectors) in %.3f s", path, meta.kind, meta.count, time.perf_counter() - started)
        return _Loaded(meta, index)

    def _rebuild(self, model: str) -> _Loaded:
        # Read the generation before the vectors: if the catalog changes in between, the index is tagged
        # older than its content and is rebuilt again next time, never the other way round.
        generation = self.catalog.generation
        ids, vectors = self.catalog.vectors(model, dtype=np.float16)
        logger.info("Building the %s index of %d vectors", model, len(ids))
        started = time.perf_counter()
        built = build_index(ids, vectors)
        build_s = time.perf_counter() - started
        loaded = self._write(model, generation, built, build_s)
        logger.info("Built the %s index (%s) in %.1f s", model, loaded.meta.kind, build_s)
        return loaded

    def _write(self, model: str, generation: int, built: BuiltIndex, build_s: float) -> _Loaded:
        path, sidecar = self._paths(model)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            file_size, checksum = 0, ""
            if built.index is not None:
                file_size, checksum = write_index_atomically(built.index, path)
            else:
                path.unlink(missing_ok=True)
            meta = IndexMeta(
                format=FORMAT_VERSION,
                model=model,
                generation=generation,
                kind=built.kind,
                dim=built.dim,
                count=built.count,
                nlist=built.nlist,
                nprobe=built.nprobe,
                file_size=file_size,
                xxh3=checksum,
                build_s=round(build_s, 3),
            )
            atomic_write_text(sidecar, json.dumps(asdict(meta), indent=2) + "\n")
        except OSError as exc:
            raise KnownError(f"Cannot write the search index in {self.directory}: {exc}") from exc
        return _Loaded(meta, built.index)

    def _check_other_models(self, model: str) -> None:
        others = [m for m in self.catalog.embedding_models() if m != model]
        if others:
            raise ModelMismatchError(
                f"The library was indexed with {', '.join(others)}, but the loaded model is {model}; "
                "run `photoembed index` to re-index the library with it"
            )

    # -- searching ----------------------------------------------------------------------------------

    def _search_all(self, loaded: _Loaded, queries: np.ndarray, k: int) -> Hits:
        return search_loaded(loaded.index, queries, k)

    def _search_subset(self, model: str, loaded: _Loaded, queries: np.ndarray, k: int, allowed: np.ndarray) -> Hits:
        import faiss

        # The parameters hold a raw pointer to the selector: this local keeps it alive during the search.
        selector = faiss.IDSelectorBatch(allowed)
        if loaded.meta.kind == KIND_FLAT:
            params = faiss.SearchParameters()
            params.sel = selector
            return search_loaded(loaded.index, queries, k, params)
        # IVF: the probed cells hold about nprobe/nlist of the photos; when the allowed set is sparse,
        # probe proportionally more cells, and when that is most of them, search the subset exactly.
        fraction = allowed.size / loaded.meta.count
        nprobe = math.ceil(loaded.meta.nprobe / max(fraction, 1e-9))
        if allowed.size <= SUBSET_EXACT_MAX or nprobe >= loaded.meta.nlist // 2:
            ids, vectors = self.catalog.vectors(model, allowed.tolist())
            if ids.size == 0:
                return [[] for _ in range(queries.shape[0])]
            return exact_search(ids, vectors, queries, k)
        ivf_params = faiss.SearchParametersIVF()
        ivf_params.sel = selector
        ivf_params.nprobe = nprobe
        return search_loaded(loaded.index, queries, k, ivf_params)


# -- building (also used by the benchmark) -----------------------------------------------------------


@dataclass
class BuiltIndex:
    """An index built in memory, before it is written."""

    index: Any
    kind: str
    dim: int
    count: int
    nlist: int = 0
    nprobe: int = 0
    calibrated_recall: float | None = None


def choose_kind(count: int) -> str:
    """The index type for ``count`` vectors."""
    if count == 0:
        return KIND_EMPTY
    return KIND_FLAT if count <= EXACT_MAX else KIND_IVF


def build_index(ids: np.ndarray, vectors: np.ndarray, *, kind: str | None = None, seed: int = 0) -> BuiltIndex:
    """Build the index for ``ids`` / ``vectors`` (float16 or float32, normalised rows).

    Args:
        ids: int64[n] photo ids.
        vectors: [n, d] vectors; converted to float32 a chunk at a time, so float16 input stays compact.
        kind: force an index type (tests, benchmarks); default :func:`choose_kind`.
        seed: k-means and calibration sampling seed.
    """
    import faiss

    ids = np.ascontiguousarray(ids, dtype=np.int64)
    count = len(ids)
    kind = kind or choose_kind(count)
    if count == 0 or kind == KIND_EMPTY:
        return BuiltIndex(None, KIND_EMPTY, 0, 0)
    dim = int(vectors.shape[1])
    if kind == KIND_FLAT:
        flat = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        id_map = faiss.IndexIDMap2(flat)
        for start in range(0, count, ADD_CHUNK):
            chunk = _normalise(np.asarray(vectors[start : start + ADD_CHUNK], dtype=np.float32))
            id_map.add_with_ids(chunk, ids[start : start + ADD_CHUNK])
        return BuiltIndex(id_map, KIND_FLAT, dim, count)
    if kind != KIND_IVF:
        raise ValueError(f"unknown index kind {kind!r}")
    rng = np.random.default_rng(seed)
    # ~sqrt(n) cells of ~sqrt(n) vectors, a power of two; 1M -> 2048 cells of ~490.
    nlist = int(2 ** round(math.log2(max(16.0, 2 * math.sqrt(count)))))
    nlist = max(1, min(nlist, count // 39))  # k-means wants ~39 points per centroid at least
    train_rows = np.sort(rng.choice(count, size=min(count, 64 * nlist), replace=False))
    train = _normalise(np.asarray(vectors[train_rows], dtype=np.float32))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    index.cp.seed = seed
    index.train(train)
    del train
    # Calibration probes: catalog vectors pushed halfway towards random directions, so that they are
    # neither in the index nor on its clusters (text queries land between the image clusters too).
    probe_rows = rng.choice(count, size=min(count, CALIBRATION_QUERIES), replace=False)
    noise = _normalise(rng.standard_normal((len(probe_rows), dim)).astype(np.float32))
    probes = _normalise(_normalise(np.asarray(vectors[probe_rows], dtype=np.float32)) + noise)
    best_scores = np.full((len(probes), 10), -np.inf, dtype=np.float32)
    best_ids = np.full((len(probes), 10), -1, dtype=np.int64)
    for start in range(0, count, ADD_CHUNK):
        chunk = _normalise(np.asarray(vectors[start : start + ADD_CHUNK], dtype=np.float32))
        chunk_ids = ids[start : start + ADD_CHUNK]
        index.add_with_ids(chunk, chunk_ids)
        best_scores, best_ids = _merge_top(best_scores, best_ids, probes @ chunk.T, chunk_ids, 10)
    nprobe, recall = _calibrate_nprobe(index, nlist, probes, best_ids)
    _set_nprobe(index, nprobe)
    return BuiltIndex(index, KIND_IVF, dim, count, nlist=nlist, nprobe=nprobe, calibrated_recall=recall)


def _calibrate_nprobe(index: Any, nlist: int, probes: np.ndarray, truth: np.ndarray) -> tuple[int, float]:
    """The smallest nprobe (doubling) whose recall@10 on the probes reaches TARGET_RECALL."""
    import faiss

    k = truth.shape[1]
    nprobe = max(1, min(nlist, 8))
    while True:
        params = faiss.SearchParametersIVF()
        params.nprobe = nprobe
        hits = search_loaded(index, probes, k, params)
        found = sum(len(set(t.tolist()) & {pid for pid, _ in h}) for t, h in zip(truth, hits, strict=True))
        recall = found / truth.size
        if recall >= TARGET_RECALL or nprobe >= nlist:
            logger.info("IVF nprobe %d of %d cells: calibration recall@10 %.4f", nprobe, nlist, recall)
            return nprobe, recall
        nprobe = min(nlist, nprobe * 2)


def exact_search(ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray, k: int) -> Hits:
    """Brute-force inner product (the reference, and the path for small filtered subsets).

    ``vectors`` may be float16: it is converted a chunk at a time, so a million rows cost no 2 GB copy.
    """
    results: Hits = []
    k = min(k, len(ids))
    if k == 0:
        return [[] for _ in range(queries.shape[0])]
    for q_start in range(0, queries.shape[0], QUERY_CHUNK):
        batch = np.asarray(queries[q_start : q_start + QUERY_CHUNK], dtype=np.float32)
        best_scores = np.full((len(batch), k), -np.inf, dtype=np.float32)
        best_ids = np.full((len(batch), k), -1, dtype=np.int64)
        for start in range(0, len(ids), ADD_CHUNK):
            chunk = np.asarray(vectors[start : start + ADD_CHUNK], dtype=np.float32)
            best_scores, best_ids = _merge_top(
                best_scores, best_ids, batch @ chunk.T, ids[start : start + ADD_CHUNK], k
            )
        order = np.argsort(-best_scores, axis=1, kind="stable")
        for row_scores, row_ids, row_order in zip(best_scores, best_ids, order, strict=True):
            results.append([(int(row_ids[i]), float(row_scores[i])) for i in row_order])
    return results


def write_index_atomically(index: Any, path: Path) -> tuple[int, str]:
    """Write a FAISS index via a temp file + fsync + ``os.replace``; returns (size, xxh3 hex)."""
    import faiss

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # Written through Python's file object, so a full disk raises OSError(ENOSPC), not a RuntimeError
        # from faiss's own writer that front ends cannot tell from a bug.
        with os.fdopen(fd, "wb") as handle:
            faiss.write_index(index, faiss.PyCallbackIOWriter(handle.write))  # type: ignore[attr-defined]
            handle.flush()
            os.fsync(handle.fileno())
        size = os.path.getsize(tmp)
        checksum = _file_xxh3(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return size, checksum


def read_verified(path: Path, meta: IndexMeta) -> Any:
    """Read an index file after checking it against its sidecar; ValueError when they disagree."""
    import faiss

    # The checksum guards FAISS's reader, which trusts the sizes written in the file.
    if path.stat().st_size != meta.file_size or _file_xxh3(path) != meta.xxh3:
        raise ValueError("the file does not match its sidecar (damaged or half-written)")
    index = faiss.read_index(str(path))
    if index.ntotal != meta.count or index.d != meta.dim:
        raise ValueError(f"it holds {index.ntotal} x {index.d} vectors, not what its sidecar says")
    _set_nprobe(index, meta.nprobe)
    return index


def _set_nprobe(index: Any, nprobe: int) -> None:
    if nprobe > 0 and hasattr(index, "nprobe"):
        index.nprobe = nprobe


def search_loaded(index: Any, queries: np.ndarray, k: int, params: Any = None) -> Hits:
    """Search a FAISS index (normalised float32 queries), dropping FAISS's -1 padding."""
    results: Hits = []
    for start in range(0, queries.shape[0], QUERY_CHUNK):
        chunk = np.ascontiguousarray(queries[start : start + QUERY_CHUNK])
        scores, labels = index.search(chunk, k, params=params)
        for row_scores, row_labels in zip(scores, labels, strict=True):
            results.append([(int(i), float(s)) for i, s in zip(row_labels, row_scores, strict=True) if i >= 0])
    return results


def _merge_top(
    scores: np.ndarray, ids: np.ndarray, new_scores: np.ndarray, new_ids: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    all_scores = np.concatenate([scores, new_scores], axis=1)
    all_ids = np.concatenate([ids, np.broadcast_to(new_ids, new_scores.shape)], axis=1)
    top = np.argpartition(-all_scores, k - 1, axis=1)[:, :k]
    return np.take_along_axis(all_scores, top, axis=1), np.take_along_axis(all_ids, top, axis=1)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def _file_xxh3(path: Path) -> str:
    digest = xxhash.xxh3_64()
    with path.open("rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()
