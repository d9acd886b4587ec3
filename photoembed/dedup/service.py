"""DedupService: find duplicate clusters, suggest keepers, move the rest to the trash, undo.

Front ends (CLI, GUI worker thread) build one with the library's catalog and settings. Long operations
exist as generators (``iter_*``) that yield :class:`DedupProgress` and check a cancel event at each yield;
the plain methods run them to the end.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from photoembed.config import Settings
from photoembed.core.hashing import file_hash
from photoembed.dedup import keeper
from photoembed.dedup.engine import DuplicateEngine, EngineOptions, FingerprintTable, RawCluster
from photoembed.dedup.records import TIERS, Cluster, ClusterPhoto, DedupProgress, TrashItem, TrashPlan
from photoembed.dedup.store import DedupStore
from photoembed.dedup.trash import TrashBackend
from photoembed.errors import Cancelled, KnownError
from photoembed.storage.catalog import Catalog
from photoembed.storage.records import Photo

logger = logging.getLogger(__name__)

_TIER_ORDER = {t: k for k, t in enumerate(TIERS)}
_T = TypeVar("_T")


class Resyncer(Protocol):
    """What undo needs of photoembed.core.indexer.Indexer: re-catalog some restored files."""

    def sync(
        self, *, paths: Iterable[Path] | None = None, cancel: threading.Event | None = None
    ) -> Iterator[object]: ...


class TrashRefusedError(KnownError):
    """A planned removal is no longer safe; nothing was moved."""


class DedupService:
    """Duplicate clusters, keeper suggestions and reversible removal for one library.

    Thread contract: run from one worker thread at a time (it reads the catalog through that thread's
    connection and writes the journal).
    """

    def __init__(
        self,
        *,
        catalog: Catalog,
        settings: Settings,
        trash: TrashBackend,
        indexer: Resyncer | None = None,
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.trash = trash
        self.indexer = indexer
        self.store = DedupStore(catalog)

    # -- finding ------------------------------------------------------------------------------------

    def find_clusters(
        self, tier: str | None = None, threshold: float | None = None, time_window: float | None = None
    ) -> list[Cluster]:
        """All clusters up to ``tier`` (None: the loosest available), keeper first in each."""
        return _drain(self.iter_find_clusters(tier=tier, threshold=threshold, time_window=time_window))

    def iter_find_clusters(
        self,
        *,
        tier: str | None = None,
        threshold: float | None = None,
        time_window: float | None = None,
        cancel: threading.Event | None = None,
    ) -> Generator[DedupProgress, None, list[Cluster]]:
        """As :meth:`find_clusters`, yielding progress. Raises Cancelled when ``cancel`` is set."""
        if tier is not None and tier not in TIERS:
            raise KnownError(f"Unknown tier {tier!r}: choose one of {', '.join(TIERS)}")
        threshold = self.settings.similar_threshold if threshold is None else threshold
        if not 0.0 < threshold <= 1.0:
            raise KnownError(f"The similarity threshold must be in (0, 1], not {threshold}")
        window = self.settings.similar_time_window_s if time_window is None else time_window
        cols = self.store.photo_columns()
        vectors, has_vector = self._vectors(cols.ids) if tier in (None, "same", "similar") else (None, None)
        if tier == "similar" and (has_vector is None or not has_vector.any()):
            raise KnownError(
                f"Similar shots need CLIP embeddings from {self.settings.model}: install the model "
                "(photoembed model download) and run photoembed index"
            )
        ids = cols.ids
        marks = self.store.marks()
        table = FingerprintTable(
            sizes=cols.sizes,
            content_hashes=cols.content_hashes,
            quality=cols.quality,
            pdq=cols.pdq,
            layout=cols.layout,
            taken=cols.taken,
            thumbs=lambda rows: {
                int(np.searchsorted(ids, pid)): t for pid, t in self.store.thumbnails(ids[list(rows)].tolist()).items()
            },
            vectors=vectors,
            has_vector=has_vector,
        )
        engine = DuplicateEngine(
            table,
            EngineOptions(
                tier=tier,
                similar_threshold=threshold,
                time_window_s=window or None,
                marked=lambda a, b: (min(a, b), max(a, b)) in marks,
                cancel=cancel,
            ),
        )
        raw = yield from engine.run()
        yield DedupProgress("keepers", 0, len(raw))
        clusters = self._decorate(raw, ids, engine)
        yield DedupProgress("keepers", len(raw), len(raw))
        return clusters

    def _vectors(self, ids: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        vec_ids, matrix = self.catalog.vectors(self.settings.model)
        if len(vec_ids) == 0:
            return None, None
        rows = np.searchsorted(ids, vec_ids)
        ok = (rows < len(ids)) & (ids[np.minimum(rows, len(ids) - 1)] == vec_ids)
        vectors = np.zeros((len(ids), matrix.shape[1]), dtype=np.float32)
        vectors[rows[ok]] = matrix[ok]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors /= np.maximum(norms, 1e-12)
        has = np.zeros(len(ids), dtype=bool)
        has[rows[ok]] = True
        return vectors, has

    def _decorate(self, raw: Sequence[RawCluster], ids: np.ndarray, engine: DuplicateEngine) -> list[Cluster]:
        protected = self._protection()
        order = list(self.settings.keeper_criteria)
        clusters: list[Cluster] = []
        for item in raw:
            rows = item.rows
            photos_by_id = self.catalog.photos_by_ids(ids[rows].tolist())
            pairs = [(r, photos_by_id[int(ids[r])]) for r in rows if int(ids[r]) in photos_by_id]
            if len(pairs) < 2:
                continue
            photos = [p for _, p in pairs]
            flags = [protected(p) for p in photos]
            decision = keeper.choose(photos, flags, order)
            keeper_row = pairs[decision.keeper][0]
            entries: list[ClusterPhoto] = []
            for k, (row, photo) in enumerate(pairs):
                if k == decision.keeper:
                    relation, score = "keeper", 1.0
                else:
                    found = engine.pair_tier(keeper_row, row)
                    relation, score = found if found is not None else (item.tier, 0.0)
                entries.append(
                    ClusterPhoto(
                        photo_id=photo.id,
                        path=photo.path,
                        size=photo.size,
                        mtime_ns=photo.mtime_ns,
                        content_hash=photo.content_hash,
                        keep=decision.keep[k],
                        reason=decision.reasons[k],
                        match=relation,
                        score=round(float(score), 4),
                        protected=flags[k],
                    )
                )
            entries.sort(key=lambda e: (e.match != "keeper", not e.keep, -e.score, str(e.path)))
            clusters.append(Cluster(tier=item.tier, photos=tuple(entries)))
        clusters.sort(key=lambda c: (_TIER_ORDER[c.tier], -sum(p.size for p in c.removable), str(c.photos[0].path)))
        return clusters

    # -- decisions ----------------------------------------------------------------------------------

    def mark_not_duplicates(self, paths: Sequence[Path | str]) -> int:
        """Remember that these photos (a pair or a whole cluster) are not duplicates of each other.

        Stored by content hash, so renames and moves keep the mark. Returns the number of pairs stored.
        """
        photos = [self._photo(Path(p)) for p in paths]
        hashes = [p.content_hash for p in photos if p.content_hash]
        if len(photos) < 2:
            raise KnownError("Mark at least two photos as not duplicates of each other")
        pairs = [(a, b) for k, a in enumerate(hashes) for b in hashes[k + 1 :]]
        return self.store.add_marks(pairs)

    def mark_cluster_not_duplicates(self, cluster: Cluster) -> int:
        return self.mark_not_duplicates([p.path for p in cluster.photos])

    def protect(self, folder: Path) -> None:
        """Never propose photos under ``folder`` for removal."""
        self.store.protect(_normal(folder))

    def unprotect(self, folder: Path) -> None:
        folder = _normal(folder)
        if not self.store.unprotect(folder):
            raise KnownError(f"{folder} is not a protected folder (protected roots: photoembed root settings)")

    def protected_folders(self) -> list[Path]:
        return self.store.protected_folders() + [r.path for r in self.catalog.roots() if r.protected]

    def _protection(self) -> _Protection:
        return _Protection(self.store.protected_folders(), {r.id for r in self.catalog.roots() if r.protected})

    def _photo(self, path: Path) -> Photo:
        photo = self.catalog.photo_by_path(path) or self.catalog.photo_by_path(_normal(path))
        if photo is None:
            raise KnownError(f"{path} is not a photo of this library")
        return photo

    # -- removal ------------------------------------------------------------------------------------

    def plan_trash(self, clusters: Iterable[Cluster]) -> TrashPlan:
        """Every non-kept photo of the clusters; never one in a protected folder, never a whole cluster."""
        items: list[TrashItem] = []
        planned: set[Path] = set()
        for cluster in clusters:
            kept = tuple(p.path for p in cluster.photos if p.keep)
            if not kept:
                continue  # defensive: a cluster must keep at least one; take nothing from it
            for photo in cluster.removable:
                if photo.protected or photo.path in planned:
                    continue
                planned.add(photo.path)
                items.append(
                    TrashItem(photo.photo_id, photo.path, photo.size, photo.mtime_ns, photo.content_hash, kept)
                )
        return TrashPlan(tuple(items))

    def execute(self, plan: TrashPlan) -> int:
        """Move the plan's files to the trash. Returns the batch id (for undo)."""
        return _drain(self.iter_execute(plan))

    def iter_execute(
        self, plan: TrashPlan, *, cancel: threading.Event | None = None
    ) -> Generator[DedupProgress, None, int]:
        """As :meth:`execute`, yielding progress. Checks every file first; refuses the whole plan on a problem."""
        if not plan.items:
            raise KnownError("Nothing to move to the trash")
        problems = [p for p in (self._check(item, plan) for item in plan.items) if p]
        if problems:
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise TrashRefusedError(
                "Nothing was moved to the trash: " + "; ".join(problems[:5]) + more + ". List duplicates again."
            )
        batch = self.store.new_batch()
        moved: list[int] = []
        try:
            for k, item in enumerate(plan.items):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("stopped while moving files to the trash")
                yield DedupProgress("trash", k, len(plan.items))
                self.trash.trash(item.path)
                self.store.journal(
                    batch_id=batch,
                    path=item.path,
                    size=item.size,
                    mtime_ns=item.mtime_ns,
                    content_hash=item.content_hash,
                    kept=item.kept[0],
                )
                moved.append(item.photo_id)
        finally:
            if moved:
                with self.catalog.transaction():
                    self.catalog.delete_photos(moved)
                self.catalog.bump_generation()
        yield DedupProgress("trash", len(plan.items), len(plan.items))
        logger.info("Moved %d files (%d bytes) to the trash, batch %d", len(moved), plan.bytes, batch)
        return batch

    def _check(self, item: TrashItem, plan: TrashPlan) -> str | None:
        path = item.path
        if self._protection().covers_path(path, self.catalog):
            return f"{path} is in a protected folder"
        try:
            st = path.stat()
        except FileNotFoundError:
            return f"{path} is gone"
        except OSError as exc:
            return f"{path} cannot be read ({exc.strerror})"
        if st.st_size != item.size or st.st_mtime_ns != item.mtime_ns:
            return f"{path} changed since it was listed"
        if item.content_hash is not None:
            try:
                digest = file_hash(path)  # streamed, never through a link, FIFO or device
            except KnownError as exc:  # not a regular file any more
                return f"{path} changed since it was listed ({exc})"
            except OSError as exc:
                return f"{path} cannot be read ({exc.strerror})"
            if digest != item.content_hash:
                return f"{path} changed since it was listed"
        removed = {i.path for i in plan.items}
        if not any(k.exists() and k not in removed for k in item.kept):
            return f"no kept copy of {path} remains ({', '.join(str(k) for k in item.kept)} gone or also planned)"
        return None

    def undo(self, batch_id: int | None = None) -> list[Path]:
        """Restore a batch (default: the last one) from the trash; the catalog follows. Returns the paths."""
        return _drain(self.iter_undo(batch_id))

    def iter_undo(
        self, batch_id: int | None = None, *, cancel: threading.Event | None = None
    ) -> Generator[DedupProgress, None, list[Path]]:
        if batch_id is None:
            batch_id = self.store.last_open_batch()
            if batch_id is None:
                raise KnownError("There is nothing to undo")
        elif not self.store.batch_exists(batch_id):
            raise KnownError(f"There is no removal batch {batch_id}")
        entries = self.store.batch_entries(batch_id)
        restored: list[Path] = []
        failures: list[str] = []
        for k, (journal_id, path, _) in enumerate(entries):
            yield DedupProgress("restore", k, len(entries))
            try:
                self.trash.restore(path)
            except KnownError as exc:
                failures.append(str(exc))
                continue
            self.store.mark_restored(journal_id)
            restored.append(path)
        if not failures:
            self.store.close_batch(batch_id)
        if restored and self.indexer is not None:
            for _ in self.indexer.sync(paths=restored, cancel=cancel):
                yield DedupProgress("restore: catalog", len(restored), len(entries))
        if failures:
            raise KnownError(f"Restored {len(restored)} of {len(entries)} files; " + "; ".join(failures[:3]))
        return restored


class _Protection:
    def __init__(self, folders: list[Path], protected_roots: set[int]) -> None:
        self.folders = folders
        self.roots = protected_roots

    def __call__(self, photo: Photo) -> bool:
        return photo.root_id in self.roots or self._in_folder(photo.path)

    def _in_folder(self, path: Path) -> bool:
        return any(path == f or f in path.parents for f in self.folders)

    def covers_path(self, path: Path, catalog: Catalog) -> bool:
        if self._in_folder(path):
            return True
        return any(r.protected and (r.path == path or r.path in path.parents) for r in catalog.roots())


def _normal(folder: Path) -> Path:
    return folder.expanduser().resolve()


def _drain(gen: Generator[DedupProgress, None, _T]) -> _T:
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            result: _T = stop.value
            return result
