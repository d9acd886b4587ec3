"""The FAISS index: a derivative of the catalog's vectors, one per model, kept up to date incrementally.

The catalog (SQLite) is the source of truth; this index only makes search fast. Each model gets two files in
the index folder: ``<model>.faiss`` and the sidecar ``<model>.json`` (model, the catalog change it includes,
kind, dim, count, file size and xxh3 checksum). Both are written to a temp file and moved into place with
``os.replace``, the index first and the sidecar last, so a crash at any moment leaves either the old pair or
a pair whose sidecar no longer matches the file (and leaked temp files are removed at the next write).

Incremental updates. The catalog logs every change to the set of photos or vectors in ``vector_changes``
(SQLite triggers: nothing can change a photo without a log entry). A search reads an immutable
:class:`_Snapshot`: a base FAISS index tagged with a log position, plus a *tail*, the exact vectors of
the photos changed since (their base entries are masked out with an ID selector). The writer, the thread
that commits catalog batches, calls :meth:`VectorIndex.apply` after each commit: it reads the new log
entries and swaps in a snapshot with a longer tail; when the tail grows past a few thousand photos it is
folded into a clone of the base (remove + add, no retraining) and persisted at the end of the sync. A
reader never writes and never rebuilds: it adds to a local copy of the tail the log entries newer than
the snapshot (another process's writes), and with no usable index at all it scans the catalog exactly.
A full rebuild (a model's first index, damage, the exact index outgrown, IVF cells drifted) is the
cancellable generator :meth:`VectorIndex.rebuild`, run by the writer; the old snapshot serves until the
new one is swapped in. A restart loads the file and replays the log after it: no rebuild.

A file is accepted only if the log entry it was built at still exists with the same random nonce: a
catalog that went back in time (restored from a backup, a WAL lost on power failure) and counted up to the
same position again has another nonce there, so a stale index is never taken for a fresh one.

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

Thread contract: :meth:`VectorIndex.search` and :meth:`VectorIndex.info` from any thread; :meth:`apply`,
:meth:`maintain`, :meth:`rebuild`, :meth:`flush` and :meth:`refresh` from the writer only (a lock
serialises them anyway). FAISS search is read-only and snapshots are never mutated.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xxhash

from photoembed.config import atomic_write_text
from photoembed.errors import Cancelled, KnownError, ModelMismatchError

if TYPE_CHECKING:
    from photoembed.storage.catalog import Catalog, VectorChanges

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: tagged by a change-log position and nonce instead of a generation counter
EXACT_MAX = 250_000  # flat fp16 up to here: ~35 ms per query on one core, 256 MB at 512-d
TARGET_RECALL = 0.99  # calibration target for IVF; the benchmark holds it to >= 0.98 on unseen queries
SUBSET_EXACT_MAX = 20_000  # an allowed set this small is searched exactly (a few ms once fetched)
QUERY_CHUNK = 1024  # queries per FAISS call: bounds the distance buffers of large batches
ADD_CHUNK = 65_536  # vectors converted to float32 at a time while building
CALIBRATION_QUERIES = 256
MERGE_MIN = 2048  # the tail is folded into the base past this many changed photos (or MERGE_FRACTION)
MERGE_FRACTION = 0.02
FLUSH_MIN = 256  # at the end of a sync, a tail this long is folded in and persisted
TEMP_MIN_AGE_S = 600.0  # a leaked temp file older than this is no other writer's file in flight
PERSIST_MIN = 50_000  # a merge persists at once when the file is this many changes behind

KIND_EMPTY = "empty"
KIND_FLAT = "flat-fp16"
KIND_IVF = "ivf-sq8"
KINDS = (KIND_EMPTY, KIND_FLAT, KIND_IVF)

Hits = list[list[tuple[int, float]]]


@dataclass(frozen=True)
class IndexMeta:
    """The sidecar JSON: what the index file holds and which catalog state it was built from.

    ``seq`` is the last entry of the catalog's change log (``vector_changes``) the file includes and
    ``nonce`` that entry's random value: a catalog that went back in time (a restored backup, a lost WAL)
    and counted up to the same ``seq`` again has another nonce there, so a stale file is never taken for
    a fresh one.
    """

    format: int
    model: str
    seq: int
    nonce: int
    kind: str
    dim: int
    count: int
    nlist: int
    nprobe: int
    file_size: int
    xxh3: str
    build_s: float
    trained_count: int = 0

    @classmethod
    def from_json(cls, raw: Any) -> IndexMeta:
        if not isinstance(raw, dict):
            raise TypeError("sidecar is not a JSON object")
        meta = cls(
            format=int(raw["format"]),
            model=str(raw["model"]),
            seq=int(raw["seq"]),
            nonce=int(raw["nonce"]),
            kind=str(raw["kind"]),
            dim=int(raw["dim"]),
            count=int(raw["count"]),
            nlist=int(raw["nlist"]),
            nprobe=int(raw["nprobe"]),
            file_size=int(raw["file_size"]),
            xxh3=str(raw["xxh3"]),
            build_s=float(raw["build_s"]),
            trained_count=int(raw.get("trained_count", 0)),
        )
        if meta.kind not in KINDS:
            raise ValueError(f"unknown index kind {meta.kind!r}")
        return meta


@dataclass(frozen=True)
class IndexProgress:
    """One step of a full rebuild (the indexer turns these into its own progress records)."""

    done: int
    total: int
    message: str


@dataclass(frozen=True)
class _Tail:
    """The changes newer than a base index: photo ids whose base entry is void, and their current vectors."""

    seq: int
    changed: np.ndarray  # int64, sorted unique: every id changed since the base (removed or re-embedded)
    ids: np.ndarray  # int64[m]: those of them that have a vector now
    vectors: np.ndarray  # float32[m, d], normalised

    @classmethod
    def empty(cls, seq: int) -> _Tail:
        return cls(seq, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0), np.float32))

    def extended(self, changes: VectorChanges) -> _Tail:
        """This tail with ``changes`` (newer than it) applied: a new object, this one is left as it was."""
        if changes.changed.size == 0:
            return self if changes.last_seq <= self.seq else replace(self, seq=changes.last_seq)
        keep = ~np.isin(self.ids, changes.changed)
        new_vectors = _normalise(changes.vectors) if changes.ids.size else changes.vectors
        if self.ids.size and keep.any() and new_vectors.size:
            vectors = np.concatenate([self.vectors[keep], new_vectors])
        elif self.ids.size and keep.any():
            vectors = self.vectors[keep]
        else:
            vectors = np.asarray(new_vectors, dtype=np.float32)
        return _Tail(
            seq=max(self.seq, changes.last_seq),
            changed=np.union1d(self.changed, changes.changed).astype(np.int64),
            ids=np.concatenate([self.ids[keep], changes.ids]).astype(np.int64),
            vectors=np.ascontiguousarray(vectors, dtype=np.float32),
        )


class _Base:
    """The one owner of a base FAISS index, shared by every snapshot built on it.

    When the last snapshot lets go of it (the writer swapped in a merged or rebuilt base, and the searches
    that took the old one have finished, on whichever thread), the index is deleted and the C heap's free
    pages are given back to the system (:func:`give_back_free_heap`). Without that, glibc keeps the freed
    copy resident: an IVF index is thousands of inverted lists of a few hundred KB each, below any mmap
    threshold, so they live in the heap, and the merged copy allocated while the old one was alive sits
    above it. Measured, 300k vectors (146 MiB of codes), IVF forced: RSS 330 -> 505 MiB at the first merge
    and flat after, one extra index copy for good; with this, it goes back to the level before the merge.
    """

    __slots__ = ("index",)

    def __init__(self, index: Any) -> None:
        self.index = index

    def __del__(self) -> None:
        index, self.index = self.index, None
        del index  # the last reference: FAISS deletes the index here, so its pages are free below
        give_back_free_heap()


def give_back_free_heap() -> None:
    """Return the free pages of the C heap (every glibc arena, not only its top) to the system.

    ``malloc_trim(0)`` on glibc; nothing elsewhere (another C library, another system). Cheap next to what
    calls it (an index dropped: a merge or a rebuild happened): milliseconds for a heap of a few GB.
    """
    trim = _malloc_trim()
    if trim is not None:
        with contextlib.suppress(Exception):  # also called from __del__, possibly at interpreter exit
            trim(0)


_trim_state: list[Any] = []  # [] until looked up, then [malloc_trim or None]


def _malloc_trim() -> Any:
    if not _trim_state:
        trim = None
        if sys.platform == "linux":
            import ctypes

            try:
                trim = ctypes.CDLL("libc.so.6").malloc_trim
                trim.argtypes = [ctypes.c_size_t]
                trim.restype = ctypes.c_int
            except (OSError, AttributeError):  # not glibc (musl): its allocator gives memory back itself
                trim = None
        _trim_state.append(trim)
    return _trim_state[0]


@dataclass(frozen=True)
class _Snapshot:
    """What a search reads: an immutable base index plus the exact tail of newer changes.

    Never mutated: the writer builds a new snapshot and swaps the reference, so a search that took the
    old one finishes on it undisturbed. The base index is held through its :class:`_Base`, which frees it
    (and gives its memory back) when no snapshot uses it any more.
    """

    meta: IndexMeta
    base: _Base | None  # None when the base is empty
    tail: _Tail
    persisted: bool  # the base is the one on disk

    @property
    def index(self) -> Any:
        """The base faiss.Index, or None when the base is empty."""
        return None if self.base is None else self.base.index

    @property
    def dim(self) -> int:
        if self.meta.dim:
            return self.meta.dim
        return int(self.tail.vectors.shape[1]) if self.tail.ids.size else 0


class VectorIndex:
    """The per-model FAISS indexes of one library, kept in step with its catalog by its writer.

    The writer (the thread that commits catalog batches) calls :meth:`apply` after each commit and
    :meth:`maintain` at the end of a sync; searches (any thread) never write or rebuild: they read the
    current snapshot plus an exact scan over the catalog changes newer than it (usually none).

    Args:
        directory: where the index files live (created on first write).
        catalog: the source of the vectors and of the change log.

    Attributes:
        rebuilds: full rebuilds from the catalog (model change, damage, kind change, IVF drift).
        merges: tails folded into a new base (incremental: no catalog read, no retraining).
    """

    def __init__(self, directory: Path, catalog: Catalog) -> None:
        self.directory = directory
        self.catalog = catalog
        self._snapshots: dict[str, _Snapshot] = {}
        self._lock = threading.RLock()  # the writer's: loading, merging, rebuilding, persisting
        self._load_lock = threading.Lock()  # a reader's first load from disk (never waits on a rebuild)
        self.rebuilds = 0
        self.merges = 0
        self._exact_fallback_warned: set[str] = set()
        self._tmp_cleaned = False

    # -- the writer ---------------------------------------------------------------------------------

    def apply(self, model: str) -> None:
        """Writer, after a commit: fold the catalog's new changes into the snapshot (cheap, no rebuild).

        The tail is merged into a new base when it grows past :func:`merge_threshold`. Without a usable
        base, a small library gets its first one at once; a large one waits for :meth:`maintain`.
        """
        with self._lock:
            snap = self._snapshots.get(model) or self._load(model)
            if snap is None:
                if self.catalog.embedded_count(model) <= MERGE_MIN:
                    for _ in self.rebuild(model):
                        pass
                return
            changes = self.catalog.vector_changes(model, snap.tail.seq)
            if changes.floor > snap.tail.seq:  # pruned past us by another writer: start from its file
                self._snapshots.pop(model, None)
                return
            snap = replace(snap, tail=snap.tail.extended(changes))
            if snap.tail.changed.size > merge_threshold(snap.meta.count):
                snap = self._merged(model, snap)
            self._snapshots[model] = snap

    def needs_rebuild(self, model: str) -> str | None:
        """Why the writer must rebuild ``model``'s index from the catalog, or None (nothing loaded)."""
        with self._lock:
            snap = self._snapshots.get(model)
            meta = snap.meta if snap is not None else self._valid_meta(model)
            if meta is None:
                return "no usable index"
            # The count the base would have with the tail folded in (an upper bound: the tail's removals
            # may be new photos, not base ones).
            count = meta.count + (int(snap.tail.ids.size) if snap is not None else 0)
            if meta.kind != KIND_IVF and count > EXACT_MAX:
                return "the library outgrew the exact index"
            if meta.kind == KIND_IVF and meta.count < EXACT_MAX // 2:
                return "the library shrank below the compressed index's size"
            if meta.kind == KIND_IVF and meta.trained_count and not (
                meta.trained_count / 2 <= meta.count <= meta.trained_count * 2
            ):
                return "the library drifted from the cells the index was trained on"
            return None

    def maintain(self, model: str, cancel: threading.Event | None = None) -> Iterator[IndexProgress]:
        """Writer, at the end of a sync: apply the changes, rebuild when needed (cancellable), persist.

        A run that loaded nothing does not load the index (nor import faiss) when the file on disk is fresh
        or fewer than :data:`FLUSH_MIN` changes behind: :meth:`flush` would not rewrite it for so few, and a
        search replays them. (It used to load it whenever the file was behind at all: after a watch
        session, every later no-change ``photoembed index`` loaded the index only to put it back.)
        """
        with self._lock:
            self._clean_temp_files()
            if model not in self._snapshots:
                meta = self._valid_meta(model)
                behind = self.catalog.vector_change_count(meta.seq) if meta is not None else 0
                if (
                    meta is not None
                    and behind < FLUSH_MIN
                    and (meta.kind == KIND_IVF or meta.count + behind <= EXACT_MAX)
                    and self._file_intact(model, meta)
                    and self.needs_rebuild(model) is None
                ):
                    return
            self.apply(model)
            if model not in self._snapshots:
                loaded = self._load(model)
                if loaded is not None:
                    self._snapshots[model] = loaded
                    self.apply(model)
            reason = "no usable index" if model not in self._snapshots else self.needs_rebuild(model)
            if reason is not None:
                logger.info("Rebuilding the %s index: %s", model, reason)
                yield from self.rebuild(model, cancel)
            self.flush(model)

    def rebuild(self, model: str, cancel: threading.Event | None = None) -> Iterator[IndexProgress]:
        """Writer: build the index from the catalog's vectors and swap it in; searches keep the old one meanwhile.

        Raises:
            Cancelled: ``cancel`` was set; the old snapshot stays.
        """
        with self._lock:
            yield IndexProgress(0, 3, "Reading the vectors…")
            state = self.catalog.vectors_at_change(model)
            _check(cancel)
            logger.info("Building the %s index of %d vectors", model, len(state.ids))
            started = time.perf_counter()
            built: BuiltIndex | None = None
            steps = build_index_steps(state.ids, state.vectors, cancel=cancel)
            while True:
                try:
                    done, total = next(steps)
                except StopIteration as stop:
                    built = stop.value
                    break
                yield IndexProgress(done, total, f"Building the search index… {done}/{total}")
            assert built is not None
            del state.vectors
            build_s = time.perf_counter() - started
            _check(cancel)
            meta = self._write(model, state.last_seq, state.nonce, built, build_s)
            self._snapshots[model] = _Snapshot(meta, _owned(built.index), _Tail.empty(meta.seq), persisted=True)
            self.rebuilds += 1
            del built, steps
            give_back_free_heap()  # the build's transients (inverted lists regrown chunk after chunk)
            logger.info("Built the %s index (%s) in %.1f s", model, meta.kind, build_s)
            yield IndexProgress(3, 3, "Search index ready")
        # Changes committed while building are picked up as the new snapshot's tail.
        self.apply(model)

    def flush(self, model: str) -> None:
        """Writer: persist the in-memory base if it is newer than the file (a restart then loads, never rebuilds)."""
        with self._lock:
            snap = self._snapshots.get(model)
            if snap is None:
                return
            if snap.tail.changed.size >= FLUSH_MIN:
                snap = self._merged(model, snap)
            if not snap.persisted:
                meta = self._persist(model, snap)
                snap = replace(snap, meta=meta, persisted=True)
            self._snapshots[model] = snap

    def compact_log(self) -> None:
        """Writer, when no model follows the log: drop the entries no index file on disk still needs."""
        with self._lock:
            seqs = []
            try:
                sidecars = list(self.directory.glob("*.json"))
            except OSError:
                sidecars = []
            for sidecar in sidecars:
                try:
                    seqs.append(IndexMeta.from_json(json.loads(sidecar.read_text(encoding="utf-8"))).seq)
                except (OSError, ValueError, KeyError, TypeError):
                    continue
            below = min(seqs) if seqs else self.catalog.last_change_seq()
            if below > 0 and self.catalog.oldest_change_seq() < below:
                self.catalog.prune_vector_changes(below=below)

    def refresh(self, model: str) -> None:
        """Writer: :meth:`maintain` run to the end (scripts, tests, the GUI after removing a folder)."""
        for _ in self.maintain(model):
            pass

    # -- readers ------------------------------------------------------------------------------------

    def search(
        self,
        model: str,
        queries: np.ndarray,
        k: int,
        *,
        allowed_ids: np.ndarray | None = None,
    ) -> Hits:
        """The ``k`` photos most similar to each query, best first (any thread; never writes or rebuilds).

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
        allowed = None
        if allowed_ids is not None:
            allowed = np.unique(np.asarray(allowed_ids, dtype=np.int64))
            if allowed.size == 0:
                return [[] for _ in range(queries.shape[0])]
        snap = self._reader_snapshot(model)
        if snap is None:
            return self._search_catalog(model, queries, k, allowed)
        dim = snap.dim
        if dim == 0:
            self._check_other_models(model)
            return [[] for _ in range(queries.shape[0])]
        if queries.shape[1] != dim:
            raise ModelMismatchError(
                f"The index for {model} holds {dim}-d vectors but the loaded model gives "
                f"{queries.shape[1]}-d ones; re-index the library with `photoembed index`"
            )
        queries = _normalise(queries)
        base_hits = self._search_base(model, snap, queries, k, allowed)
        tail = snap.tail
        ids, vectors = tail.ids, tail.vectors
        if allowed is not None and ids.size:
            keep = np.isin(ids, allowed)
            ids, vectors = ids[keep], vectors[keep]
        if ids.size == 0:
            return base_hits
        tail_hits = exact_search(ids, vectors, queries, k)
        return [_merge_hits(a, b, k) for a, b in zip(base_hits, tail_hits, strict=True)]

    def info(self, model: str) -> dict[str, Any]:
        """What is on disk for ``model``, without loading or rebuilding anything.

        Keys: model, path, exists, fresh (a usable file of this catalog's history), pending (catalog changes
        newer than the file), kind (``none`` before the first build), count, bytes, and the sidecar's fields.
        """
        path, _sidecar = self._paths(model)
        info: dict[str, Any] = {
            "model": model,
            "path": str(path),
            "exists": False,
            "fresh": False,
            "pending": 0,
            "kind": "none",
            "count": 0,
            "bytes": 0,
        }
        meta = self._read_meta(model)
        if meta is None:
            return info
        info.update(asdict(meta))
        info["exists"] = meta.kind == KIND_EMPTY or path.exists()
        info["fresh"] = info["exists"] and self._matches_catalog(meta)
        info["pending"] = self.catalog.vector_change_count(meta.seq) if info["fresh"] else 0
        info["bytes"] = meta.file_size
        return info

    def forget(self, model: str | None = None) -> None:
        """Drop loaded indexes from memory (all, or one model's); files stay."""
        with self._lock:
            if model is None:
                self._snapshots.clear()
            else:
                self._snapshots.pop(model, None)

    # -- loading, merging, writing ------------------------------------------------------------------

    def _paths(self, model: str) -> tuple[Path, Path]:
        # Model names look like "ViT-B-32/laion2b_s34b_b79k": keep them readable, make them file names.
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._") or "model"
        slug += "-" + xxhash.xxh3_64_hexdigest(model.encode("utf-8"))[:8]  # distinct names stay distinct
        return self.directory / f"{slug}.faiss", self.directory / f"{slug}.json"

    def _read_meta(self, model: str) -> IndexMeta | None:
        _path, sidecar = self._paths(model)
        try:
            meta = IndexMeta.from_json(json.loads(sidecar.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("Index sidecar %s is unreadable (%s); it will be rebuilt", sidecar, exc)
            return None
        if meta.format != FORMAT_VERSION or meta.model != model:
            logger.info("Index %s is of format %d, model %r; it will be rebuilt", sidecar, meta.format, meta.model)
            return None
        return meta

    def _matches_catalog(self, meta: IndexMeta) -> bool:
        """The file was built from this catalog's history and the change log since it is complete."""
        return self.catalog.change_is_known(meta.seq, meta.nonce)

    def _valid_meta(self, model: str) -> IndexMeta | None:
        meta = self._read_meta(model)
        if meta is None:
            return None
        if not self._matches_catalog(meta):
            logger.warning(
                "Index %s does not match the catalog's history (restored or rolled back); it will be rebuilt",
                self._paths(model)[1],
            )
            return None
        return meta

    def _file_intact(self, model: str, meta: IndexMeta) -> bool:
        """The file matches its sidecar (size and checksum), checked without loading it."""
        if meta.kind == KIND_EMPTY:
            return True
        path, _sidecar = self._paths(model)
        try:
            return path.stat().st_size == meta.file_size and _file_xxh3(path) == meta.xxh3
        except OSError:
            return False

    def _load(self, model: str) -> _Snapshot | None:
        """The index on disk if it is whole, of this model and of this catalog's history; else None."""
        meta = self._valid_meta(model)
        if meta is None:
            return None
        index = None
        if meta.kind != KIND_EMPTY:
            path, _sidecar = self._paths(model)
            started = time.perf_counter()
            try:
                # The checksum guards FAISS's reader, which trusts the sizes written in the file.
                index = read_verified(path, meta)
            except (OSError, RuntimeError, ValueError) as exc:
                logger.warning("Cannot use index %s (%s); it will be rebuilt", path, exc)
                return None
            logger.debug("Loaded %s (%s, %d vectors) in %.3f s", path, meta.kind, meta.count,
                         time.perf_counter() - started)
        return _Snapshot(meta, _owned(index), _Tail.empty(meta.seq), persisted=True)

    def _reader_snapshot(self, model: str) -> _Snapshot | None:
        """The current snapshot with the catalog's newer changes as its tail (a local copy: nothing stored
        but a snapshot loaded from disk). None when there is no usable index: the caller scans exactly."""
        snap = self._snapshots.get(model)
        if snap is None:
            with self._load_lock:
                snap = self._snapshots.get(model)
                if snap is None:
                    snap = self._load(model)
                    if snap is None:
                        return None
                    self._snapshots.setdefault(model, snap)
        changes = self.catalog.vector_changes(model, snap.tail.seq)
        if changes.floor > snap.tail.seq or changes.changed.size > 4 * merge_threshold(snap.meta.count):
            # Another process's writer moved on (and pruned its log): its newer file is the better start.
            with self._load_lock:
                fresh = self._load(model)
            if fresh is not None and fresh.meta.seq > snap.meta.seq:
                if self._snapshots.get(model) is snap:
                    self._snapshots[model] = fresh
                snap = fresh
                changes = self.catalog.vector_changes(model, snap.tail.seq)
            if changes.floor > snap.tail.seq:
                return None
        return replace(snap, tail=snap.tail.extended(changes))

    def _merged(self, model: str, snap: _Snapshot) -> _Snapshot:
        """The base with the tail folded in (clone, remove, add: no catalog read, no retraining)."""
        import faiss

        tail = snap.tail
        started = time.perf_counter()
        if snap.index is None:
            if tail.ids.size > EXACT_MAX:
                return snap  # needs a trained index: maintain() rebuilds
            built = build_index(tail.ids, tail.vectors, kind=KIND_FLAT if tail.ids.size else KIND_EMPTY)
            index, kind, dim, nlist, nprobe = built.index, built.kind, built.dim, 0, 0
            trained = 0
        else:
            index = faiss.clone_index(snap.index)
            if tail.changed.size:
                index.remove_ids(faiss.IDSelectorBatch(tail.changed))
            if tail.ids.size:
                index.add_with_ids(np.ascontiguousarray(tail.vectors), tail.ids)
            _set_nprobe(index, snap.meta.nprobe)
            kind, dim, nlist, nprobe = snap.meta.kind, snap.meta.dim, snap.meta.nlist, snap.meta.nprobe
            trained = snap.meta.trained_count
            if index.ntotal == 0:
                index, kind, dim, nlist, nprobe, trained = None, KIND_EMPTY, 0, 0, 0, 0
        meta = replace(
            snap.meta,
            seq=tail.seq,
            nonce=0,  # filled in when persisted
            kind=kind,
            dim=dim,
            count=0 if index is None else int(index.ntotal),
            nlist=nlist,
            nprobe=nprobe,
            file_size=0,
            xxh3="",
            trained_count=trained,
        )
        self.merges += 1
        logger.debug("Merged %d changes into the %s index in %.3f s", tail.changed.size, model,
                     time.perf_counter() - started)
        merged = _Snapshot(meta, _owned(index), _Tail.empty(tail.seq), persisted=False)
        if self.catalog.vector_change_count(self._disk_seq(model)) >= PERSIST_MIN:
            merged = replace(merged, meta=self._persist(model, merged), persisted=True)
        return merged

    def _disk_seq(self, model: str) -> int:
        meta = self._read_meta(model)
        return meta.seq if meta is not None else 0

    def _persist(self, model: str, snap: _Snapshot) -> IndexMeta:
        nonce = self.catalog.change_nonce(snap.meta.seq)
        if nonce is None:
            nonce = 0
        previous = self._read_meta(model)
        built = BuiltIndex(snap.index, snap.meta.kind, snap.meta.dim, snap.meta.count,
                           nlist=snap.meta.nlist, nprobe=snap.meta.nprobe)
        meta = self._write(model, snap.meta.seq, nonce, built, snap.meta.build_s, trained=snap.meta.trained_count)
        if previous is not None and previous.seq > 0:
            # One file behind: a reader that loaded the previous file can still catch up from the log.
            self.catalog.prune_vector_changes(below=min(previous.seq, meta.seq))
        return meta

    def _write(
        self, model: str, seq: int, nonce: int, built: BuiltIndex, build_s: float, *, trained: int | None = None
    ) -> IndexMeta:
        path, sidecar = self._paths(model)
        try:
            make_private_dir(self.directory)
            file_size, checksum = 0, ""
            if built.index is not None:
                file_size, checksum = write_index_atomically(built.index, path)
            else:
                path.unlink(missing_ok=True)
            meta = IndexMeta(
                format=FORMAT_VERSION,
                model=model,
                seq=seq,
                nonce=nonce,
                kind=built.kind,
                dim=built.dim,
                count=built.count,
                nlist=built.nlist,
                nprobe=built.nprobe,
                file_size=file_size,
                xxh3=checksum,
                build_s=round(build_s, 3),
                trained_count=(built.count if built.kind == KIND_IVF else 0) if trained is None else trained,
            )
            atomic_write_text(sidecar, json.dumps(asdict(meta), indent=2) + "\n")
            with contextlib.suppress(OSError):
                os.chmod(sidecar, 0o600)
        except OSError as exc:
            raise KnownError(f"Cannot write the search index in {self.directory}: {exc}") from exc
        return meta

    def _clean_temp_files(self) -> None:
        """Remove ``.<name>.faiss.*.tmp`` files left by a crash while writing (writer, once per process)."""
        if self._tmp_cleaned:
            return
        self._tmp_cleaned = True
        clean_temp_files(self.directory)

    def _check_other_models(self, model: str) -> None:
        others = [m for m in self.catalog.embedding_models() if m != model]
        if others:
            raise ModelMismatchError(
                f"The library was indexed with {', '.join(others)}, but the loaded model is {model}; "
                "run `photoembed index` to re-index the library with it"
            )

    # -- searching ----------------------------------------------------------------------------------

    def _search_catalog(self, model: str, queries: np.ndarray, k: int, allowed: np.ndarray | None) -> Hits:
        """No usable index yet (first index still running, or damage the writer has not repaired): exact."""
        if model not in self._exact_fallback_warned:
            self._exact_fallback_warned.add(model)
            logger.info("No usable %s index yet: searching the catalog's vectors exactly", model)
        ids, vectors = self.catalog.vectors(model, None if allowed is None else allowed.tolist(),
                                            dtype=np.float16)
        if ids.size == 0:
            self._check_other_models(model)
            return [[] for _ in range(queries.shape[0])]
        if queries.shape[1] != vectors.shape[1]:
            raise ModelMismatchError(
                f"The library holds {vectors.shape[1]}-d vectors for {model} but the loaded model gives "
                f"{queries.shape[1]}-d ones; re-index the library with `photoembed index`"
            )
        return exact_search(ids, vectors, _normalise(queries), k)

    def _search_base(
        self, model: str, snap: _Snapshot, queries: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> Hits:
        import faiss

        empty: Hits = [[] for _ in range(queries.shape[0])]
        if snap.index is None or snap.meta.count == 0:
            return empty
        changed = snap.tail.changed
        if allowed is not None and changed.size:
            allowed = allowed[~np.isin(allowed, changed)]
            if allowed.size == 0:
                return empty
        if allowed is None and changed.size == 0:
            return search_loaded(snap.index, queries, k)
        # The parameters hold a raw pointer to the selector: these locals keep it alive during the search.
        selector: Any
        if allowed is not None:
            selector = faiss.IDSelectorBatch(allowed)
        else:
            void = faiss.IDSelectorBatch(changed)
            selector = faiss.IDSelectorNot(void)
        if snap.meta.kind == KIND_FLAT:
            params = faiss.SearchParameters()
            params.sel = selector
            return search_loaded(snap.index, queries, k, params)
        nprobe = snap.meta.nprobe
        if allowed is not None:
            # IVF: the probed cells hold about nprobe/nlist of the photos; when the allowed set is sparse,
            # probe proportionally more cells, and when that is most of them, search the subset exactly
            # (the catalog is current, so the tail is in it already).
            fraction = allowed.size / snap.meta.count
            nprobe = math.ceil(snap.meta.nprobe / max(fraction, 1e-9))
            if allowed.size <= SUBSET_EXACT_MAX or nprobe >= snap.meta.nlist // 2:
                ids, vectors = self.catalog.vectors(model, allowed.tolist())
                if ids.size == 0:
                    return empty
                return exact_search(ids, vectors, queries, k)
        ivf_params = faiss.SearchParametersIVF()
        ivf_params.sel = selector
        ivf_params.nprobe = nprobe
        return search_loaded(snap.index, queries, k, ivf_params)


def _owned(index: Any) -> _Base | None:
    return None if index is None else _Base(index)


def merge_threshold(base_count: int) -> int:
    """How many changed ids the tail may hold before the writer folds it into a new base."""
    return max(MERGE_MIN, int(MERGE_FRACTION * base_count))


def clean_temp_files(directory: Path, *, min_age_s: float = TEMP_MIN_AGE_S) -> int:
    """Delete the temp files a crash while writing an index left behind; returns how many.

    Only files older than ``min_age_s``: another process's writer (the app and ``photoembed watch`` on one
    library) may be writing one right now.
    """
    removed = 0
    try:
        entries = list(directory.glob(".*.tmp"))
    except OSError:
        return 0
    now = time.time()
    for entry in entries:
        if ".faiss." in entry.name or ".json." in entry.name:
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime < min_age_s:
                    continue
                entry.unlink()
                removed += 1
                logger.info("Removed %s, left by an interrupted index write", entry)
    return removed


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` (and missing parents) readable by its owner only, whatever the umask."""
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    directory.mkdir(parents=True, exist_ok=True)
    for path in [directory, *missing]:
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)


def _merge_hits(a: list[tuple[int, float]], b: list[tuple[int, float]], k: int) -> list[tuple[int, float]]:
    merged = sorted(a + b, key=lambda hit: -hit[1])
    seen: set[int] = set()
    out = []
    for pid, score in merged:
        if pid not in seen:
            seen.add(pid)
            out.append((pid, score))
            if len(out) == k:
                break
    return out


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("rebuilding the search index was cancelled")


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
    """Build the index for ``ids`` / ``vectors`` at once (see :func:`build_index_steps`)."""
    steps = build_index_steps(ids, vectors, kind=kind, seed=seed)
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            built: BuiltIndex = stop.value
            return built


def build_index_steps(
    ids: np.ndarray,
    vectors: np.ndarray,
    *,
    kind: str | None = None,
    seed: int = 0,
    cancel: threading.Event | None = None,
) -> Generator[tuple[int, int], None, BuiltIndex]:
    """Build the index for ``ids`` / ``vectors`` (float16 or float32, normalised rows), step by step.

    A generator: yields ``(vectors added, total)`` after each chunk, checks ``cancel`` there (raising
    Cancelled) and returns the :class:`BuiltIndex`.

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
            _check(cancel)
            yield min(count, start + ADD_CHUNK), count
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
    _check(cancel)
    yield 0, count
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
        _check(cancel)
        yield min(count, start + ADD_CHUNK), count
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
