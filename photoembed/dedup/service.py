"""DedupService: find duplicate clusters, suggest keepers, move the rest to the trash, undo.

Front ends (CLI, GUI worker thread) build one with the library's catalog and settings. Long operations
exist as generators (``iter_*``) that yield :class:`DedupProgress` and check a cancel event at each yield;
the plain methods run them to the end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np

from photoembed.config import Settings
from photoembed.dedup import keeper, labels
from photoembed.dedup.engine import DuplicateEngine, EngineOptions, FingerprintTable, RawCluster
from photoembed.dedup.records import (
    BULK_TIERS,
    TIERS,
    Cluster,
    ClusterPhoto,
    DedupProgress,
    TrashItem,
    TrashPlan,
)
from photoembed.dedup.store import DedupStore, JournalEntry
from photoembed.dedup.trash import (
    ContentMismatchError,
    FileFacts,
    SendToTrash,
    TrashBackend,
    TrashError,
    TrashSlot,
    facts_or_none,
    read_facts,
    restore_temp,
    rewrite_info,
)
from photoembed.errors import Cancelled, KnownError
from photoembed.storage.catalog import Catalog
from photoembed.storage.records import Photo

if TYPE_CHECKING:
    from filelock import FileLock

logger = logging.getLogger(__name__)

_TIER_ORDER = {t: k for k, t in enumerate(TIERS)}
LOCK_WAIT_S = 10.0  # how long a removal or undo waits for another one on the same library
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
        checkpoint: Callable[[str], None] | None = None,
    ) -> None:
        """``checkpoint`` is called with a name at every step boundary of a removal or undo (tests inject
        faults there). Opening a service finishes or rolls back what an interrupted run left open."""
        self.catalog = catalog
        self.settings = settings
        self.trash = trash
        self.indexer = indexer
        self.store = DedupStore(catalog)
        self._step: Callable[[str], None] = checkpoint or (lambda _name: None)
        self._restored_by_recovery: list[Path] = []  # catalogued by the next undo (or the next index)
        self._recover_if_idle()

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
            exposure=cols.exposure,
            thumbs=lambda rows: {
                int(np.searchsorted(ids, pid)): t for pid, t in self.store.thumbnails(ids[list(rows)].tolist()).items()
            },
            vectors=vectors,
            has_vector=has_vector,
            details=lambda rows: {
                int(np.searchsorted(ids, pid)): d for pid, d in self.store.details(ids[list(rows)].tolist()).items()
            },
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
        vec_ids, matrix = self.catalog.vectors(self.settings.embedding_model)
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
            pairs, alias_protected = _one_path_per_file(pairs, protected)  # two paths to one file: no duplicate
            if len(pairs) < 2:
                continue
            photos = [p for _, p in pairs]
            flags = [protected(p) or p.id in alias_protected for p in photos]
            thumbs = self.store.thumbnails([p.id for p in photos])
            decision = keeper.choose(photos, flags, order, keeper.Context(thumbs=thumbs))
            keeper_row = pairs[decision.keeper][0]
            keeper_photo = photos[decision.keeper]
            entries: list[ClusterPhoto] = []
            for k, (row, photo) in enumerate(pairs):
                if k == decision.keeper:
                    relation, score = "keeper", 1.0
                else:
                    found = engine.pair_tier(keeper_row, row)
                    relation, score = found if found is not None else (item.tier, 0.0)
                label = labels.relation_label(
                    keeper_photo,
                    photo,
                    match=relation,
                    score=float(score),
                    members=photos,
                    thumbs=(thumbs.get(keeper_photo.id), thumbs.get(photo.id)),
                )
                keep, reason = decision.keep[k], decision.reasons[k]
                if not keep and label == "re-encoded" and _maybe_another_frame(keeper_photo, photo):
                    keep, reason = True, (
                        f"kept for review: as large as {keeper_photo.path.name} and neither says when it was "
                        "taken, so it may be another frame of a burst"
                    )
                entries.append(
                    ClusterPhoto(
                        photo_id=photo.id,
                        path=photo.path,
                        size=photo.size,
                        mtime_ns=photo.mtime_ns,
                        content_hash=photo.content_hash,
                        keep=keep,
                        reason=reason,
                        match=relation,
                        score=round(float(score), 4),
                        protected=flags[k],
                        label=label,
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

    def add_not_duplicate_marks(self, paths: Sequence[Path | str]) -> list[tuple[str, str]]:
        """As :meth:`mark_not_duplicates`; returns the marks that are new, which is what an undo takes back."""
        photos = [self._photo(Path(p)) for p in paths]
        if len(photos) < 2:
            raise KnownError("Mark at least two photos as not duplicates of each other")
        hashes = sorted({p.content_hash for p in photos if p.content_hash})
        existing = self.store.marks()
        # (a, a): identical copies of one file, as mark_not_duplicates stores them.
        pairs = [
            (a, b)
            for k, a in enumerate(hashes)
            for b in hashes[k:]
            if (a != b or _copies(photos, a) > 1) and (a, b) not in existing
        ]
        self.store.add_marks(pairs)
        return pairs

    def remove_not_duplicate_marks(self, pairs: Iterable[tuple[str, str]]) -> int:
        """Undo :meth:`add_not_duplicate_marks`: those photos may be proposed as duplicates again."""
        return self.store.remove_marks(pairs)

    def protect(self, folder: Path) -> None:
        """Never propose photos under ``folder`` for removal."""
        self.store.protect(_normal(folder))

    def unprotect(self, folder: Path) -> None:
        """Undo :meth:`protect`; a library folder protected as a whole (from the app) is unprotected too."""
        folder = _normal(folder)
        if self.store.unprotect(folder):
            return
        root = self.catalog.root_for_path(folder)
        if root is not None and root.protected:
            self.catalog.set_root_protected(folder, False)
            return
        protected = ", ".join(str(p) for p in self.protected_folders()) or "none"
        raise KnownError(f"{folder} is not a protected folder (protected folders: {protected})")

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
            kept_hashes = tuple(p.content_hash for p in cluster.photos if p.keep)  # as listed: re-read at execution
            if not kept:
                continue  # defensive: a cluster must keep at least one; take nothing from it
            for photo in cluster.removable:
                if photo.protected or photo.path in planned:
                    continue
                planned.add(photo.path)
                items.append(
                    TrashItem(
                        photo.photo_id, photo.path, photo.size, photo.mtime_ns, photo.content_hash, kept, kept_hashes
                    )
                )
        return TrashPlan(tuple(items))

    def plan_chosen_trash(self, photos: Iterable[Photo]) -> TrashPlan:
        """The user's own choice of photos for the trash (a selection), with or without other copies.

        Journaled, re-checked before the move (unchanged, in place, outside a protected folder) and undone
        like any removal; unlike duplicate removal no other copy has to stay.
        """
        return TrashPlan(
            tuple(
                TrashItem(p.id, p.path, p.size, p.mtime_ns, p.content_hash, (), (), chosen_by_user=True)
                for p in photos
            )
        )

    def plan_bulk_trash(self, clusters: Iterable[Cluster]) -> tuple[TrashPlan, list[Cluster]]:
        """As :meth:`plan_trash` over the clusters that may go in bulk (identical files, same photo), plus the
        exact copies inside the other clusters.

        Returns the plan and the clusters left out (similar shots: different photos, reviewed one cluster
        at a time; only their byte-identical extra copies are in the plan).
        """
        clusters = list(clusters)
        taken = [c for c in clusters if c.tier in BULK_TIERS]
        left = [c for c in clusters if c.tier not in BULK_TIERS]
        plan = self.plan_trash(taken)
        # Byte-identical files inside a similar-shots cluster are exact copies all the same: one of each
        # content stays (the kept photo, else a protected one, else the shortest path), the others go.
        items = list(plan.items)
        planned = {item.path for item in items}
        for cluster in left:
            by_hash: dict[str, list[ClusterPhoto]] = {}
            for photo in cluster.photos:
                if photo.content_hash:
                    by_hash.setdefault(photo.content_hash, []).append(photo)
            for content, copies in by_hash.items():
                if len(copies) < 2:
                    continue
                stay = min(copies, key=lambda p: (not p.keep, not p.protected, len(str(p.path)), str(p.path)))
                for photo in copies:
                    if photo is stay or photo.protected or photo.path in planned:
                        continue
                    planned.add(photo.path)
                    items.append(
                        TrashItem(
                            photo.photo_id, photo.path, photo.size, photo.mtime_ns, content,
                            (stay.path,), (content,),
                        )
                    )
        return TrashPlan(tuple(items)), left

    def execute(self, plan: TrashPlan) -> int:
        """Move the plan's files to the trash. Returns the batch id (for undo)."""
        return _drain(self.iter_execute(plan))

    def iter_execute(
        self, plan: TrashPlan, *, cancel: threading.Event | None = None
    ) -> Generator[DedupProgress, None, int]:
        """As :meth:`execute`, yielding progress.

        Each group (the files planned against the same kept copies) is checked again right before it moves,
        from the files themselves, not the catalog: every file to move still has the size and content hash it
        was listed with, lies in its real place inside a library folder (no symlink on the way), outside a
        protected folder; and at least one kept copy is still there, unchanged, and is another file (another
        device + inode) than everything being moved. A group failing any check is skipped whole, with its
        reason (see :meth:`batch_report`); when every group is skipped nothing moves and TrashRefusedError
        says why. Each move is journaled first (see :mod:`photoembed.dedup.store`).
        """
        if not plan.items:
            raise KnownError("Nothing to move to the trash")
        with self._exclusive():
            self._recover_locked()
            batch = self.store.new_batch()
            planned = _identities(plan.items)
            groups = _groups(plan.items)
            moved = 0
            reasons: list[str] = []
            done = 0
            for kept, kept_hashes, items in groups:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("stopped while moving files to the trash")
                yield DedupProgress("trash", done, len(plan.items))
                verdict = self._verify_group(kept, kept_hashes, items, planned)
                if isinstance(verdict, str):
                    logger.warning("Not moving %d file(s) to the trash: %s", len(items), verdict)
                    reasons.append(verdict)
                    for item in items:
                        self._skip(batch, item, verdict)
                    done += len(items)
                    continue
                self._step("trash:verified")
                for item, facts in verdict:
                    problem = self._trash_one(batch, item, facts)
                    if problem is None:
                        moved += 1
                    else:
                        reasons.append(problem)
                    done += 1
            if moved == 0:
                more = f" (and {len(reasons) - 5} more)" if len(reasons) > 5 else ""
                raise TrashRefusedError(
                    "Nothing was moved to the trash: " + "; ".join(reasons[:5]) + more + ". List duplicates again."
                )
        yield DedupProgress("trash", len(plan.items), len(plan.items))
        logger.info("Moved %d files to the trash, batch %d (%d skipped)", moved, batch, len(plan.items) - moved)
        return batch

    def batch_report(self, batch_id: int) -> list[JournalEntry]:
        """Every file of a removal batch with its state ("trashed", "skipped" with its reason, "restored"...)."""
        return self.store.batch_entries(batch_id)

    def _skip(self, batch: int, item: TrashItem, reason: str) -> None:
        """Journal that ``item`` stays where it is, and why (its group's kept copies are ``item.kept``)."""
        self.store.skip(
            batch_id=batch,
            path=item.path,
            size=item.size,
            mtime_ns=item.mtime_ns,
            content_hash=item.content_hash,
            kept=item.kept[0] if item.kept else None,
            reason=reason,
        )

    def _trash_one(self, batch: int, item: TrashItem, facts: FileFacts) -> str | None:
        """Journal the intent, move, mark done. Returns None when moved, else why not (the file is in place)."""
        try:
            slot = self.trash.choose_slot(item.path)
        except TrashError as exc:
            self._skip(batch, item, str(exc))
            return str(exc)
        jid = self.store.begin_move(
            batch_id=batch,
            photo_id=item.photo_id,
            path=item.path,
            facts=facts,
            kept=item.kept[0] if item.kept else None,
            slot=slot,
        )
        self._step("trash:intent")
        try:
            _still_the_same(item.path, facts)
            self.trash.put(item.path, slot, content_hash=facts.content_hash, step=self._step)
        except (TrashError, OSError) as exc:
            reason = str(exc) if isinstance(exc, TrashError) else f"{item.path}: {exc.strerror or exc}"
            self._recover_ids({jid})  # looks at the files: in place -> rolled back, in the trash -> trashed
            state = self.store.state_of(jid)
            if state == "trashed":
                return None
            if state in ("moving", "rolled_back"):
                self.store.set_state(jid, "rolled_back", outcome=reason)
            logger.warning("Not moved to the trash: %s", reason)
            return reason
        except BaseException:
            with contextlib.suppress(Exception):  # leave it to the next start's recovery if this fails too
                self._recover_ids({jid})
            raise
        self.store.finish_move(jid, item.path)
        self._step("trash:done")
        return None

    def _verify_group(
        self,
        kept: tuple[Path, ...],
        kept_hashes: tuple[str | None, ...],
        items: list[TrashItem],
        planned: set[tuple[int, int]],
    ) -> list[tuple[TrashItem, FileFacts]] | str:
        """The group's files as read now, or why the group must not move (see :meth:`iter_execute`)."""
        protection, roots = self._protection(), [r.path for r in self.catalog.roots()]
        checked: list[tuple[TrashItem, FileFacts]] = []
        for item in items:
            path = item.path
            if protection.covers_path(path, self.catalog):
                return f"{path} is in a protected folder"
            problem = _placement_problem(path, roots)
            if problem:
                return problem
            try:
                facts = read_facts(path)
            except FileNotFoundError:
                return f"{path} is gone"
            except OSError as exc:
                return f"{path} cannot be read ({exc.strerror or exc})"
            except TrashError as exc:
                return str(exc)
            if facts.size != item.size or facts.mtime_ns != item.mtime_ns:
                return f"{path} changed since it was listed"
            if item.content_hash is not None and facts.content_hash != item.content_hash:
                return f"{path} changed since it was listed"
            checked.append((item, facts))
        moving = {f.identity: i.path for i, f in checked}
        if len(moving) < len(checked):
            return f"{items[0].path} and another planned path are the same file (a hard link or a second path to it)"
        if not kept:
            if all(item.chosen_by_user for item in items):
                return checked  # the user's own choice of these photos: no copy needs to stay
            return f"no kept copy of {items[0].path} was chosen"
        notes: list[str] = []
        copies: set[tuple[int, int]] = set()
        for k, path in enumerate(kept):
            expected = kept_hashes[k] if k < len(kept_hashes) else self._catalog_hash(path)
            problem = _placement_problem(path, roots)
            if problem:
                notes.append(problem)
                continue
            facts_k = facts_or_none(path)
            if facts_k is None:
                notes.append(f"the kept {path} is gone or unreadable")
            elif expected is None or facts_k.content_hash != expected:
                notes.append(f"the kept {path} changed since it was listed")
            elif facts_k.identity in moving:
                notes.append(
                    f"{moving[facts_k.identity]} is the same file as the kept {path} (a hard link or a "
                    "second path to it), not another copy"
                )
            elif facts_k.identity in planned:
                notes.append(f"the kept {path} is the same file as another one planned for the trash")
            else:
                copies.add(facts_k.identity)
        if not copies:
            return f"no kept copy of {items[0].path} remains: " + "; ".join(notes)
        return checked

    def _catalog_hash(self, path: Path) -> str | None:
        photo = self.catalog.photo_by_path(path)
        return None if photo is None else photo.content_hash

    def undo(self, batch_id: int | None = None) -> list[Path]:
        """Restore a batch (default: the last one) from the trash; the catalog follows. Returns the paths."""
        return _drain(self.iter_undo(batch_id))

    def iter_undo(
        self, batch_id: int | None = None, *, cancel: threading.Event | None = None
    ) -> Generator[DedupProgress, None, list[Path]]:
        """As :meth:`undo`, yielding progress.

        Each file is taken back from the trash slot the journal recorded, or, for rows from before slots were
        recorded, from the trash entry of that path whose content hash is the journal's (never merely the
        newest one of that name). A file of that name back in place with other content is kept, and the
        photo comes back beside it under a free name. A file no longer in the trash closes with that outcome
        (UndoIncompleteError says so); the batch closes once no file of it is left in the trash.
        """
        with self._exclusive():
            recovered = self._restored_by_recovery + self._recover_locked()
            self._restored_by_recovery = []
            restored: list[Path] = []
            problems: list[str] = []
            entries: list[JournalEntry] = []
            try:
                batch_id = self._batch_to_undo(batch_id)
                entries = [e for e in self.store.batch_entries(batch_id) if e.state == "trashed"]
                for k, entry in enumerate(entries):
                    yield DedupProgress("restore", k, len(entries))
                    _check_cancel(cancel, "stopped while restoring files from the trash")
                    back, problem = self._restore_one(entry)
                    if back is not None:
                        restored.append(back)
                    if problem is not None:
                        problems.append(problem)
                self.store.close_batch_if_done(batch_id)
            except BaseException:
                self._sync_quietly(recovered + restored)
                raise
            pending = recovered + restored
            if pending and self.indexer is not None:
                for _ in self.indexer.sync(paths=pending, cancel=cancel):
                    yield DedupProgress("restore: catalog", len(pending), len(pending))
        if problems:
            raise UndoIncompleteError(restored, problems, total=len(entries))
        return restored

    def _batch_to_undo(self, batch_id: int | None) -> int:
        if batch_id is None:
            batch_id = self.store.last_open_batch()
            if batch_id is None:
                raise KnownError("There is nothing to undo")
        elif not self.store.batch_exists(batch_id):
            raise KnownError(f"There is no removal batch {batch_id}")
        return batch_id

    def _sync_quietly(self, paths: list[Path]) -> None:
        """Catalog files already put back when an undo stops early (the next index would find them too)."""
        if not paths or self.indexer is None:
            return
        try:
            for _ in self.indexer.sync(paths=paths):
                pass
        except Exception as exc:  # noqa: BLE001 (the restore itself succeeded; the catalog catches up later)
            logger.warning("Restored files not catalogued yet (%s); the next index adds them", exc)

    def _restore_one(self, entry: JournalEntry) -> tuple[Path | None, str | None]:
        """Put one trashed file back. Returns (where it came back or None, a problem in words or None)."""
        if not self.trash.records:  # macOS, Windows: it is in the OS trash, which only the user can open
            return None, SendToTrash.by_hand(entry.path)
        slot = self._find_in_trash(entry)
        here = facts_or_none(entry.path)
        same_here = here is not None and _matches(here, entry)
        if slot is None:
            if same_here:
                self.store.set_state(entry.id, "restored", restored_path=entry.path, outcome="already back in place")
                return entry.path, None
            reason = f"{entry.path} is no longer in the trash (emptied?); it cannot be restored"
            self.store.set_state(entry.id, "gone", outcome=reason)
            self._drop_stale_info(entry)
            return None, reason
        if same_here:  # put back by hand (or another identical copy): nothing to move
            self.store.set_state(entry.id, "restored", restored_path=entry.path, outcome="already back in place")
            return entry.path, None
        dest = entry.path if not os.path.lexists(entry.path) else _free_name(entry.path)
        self.store.set_state(entry.id, "restoring", restored_path=dest, slot=slot)
        self._step("undo:intent")
        try:
            self.trash.take_back(slot, dest, content_hash=entry.content_hash, step=self._step)
        except TrashError as exc:
            self._recover_ids({entry.id})
            return None, str(exc)
        except BaseException:
            with contextlib.suppress(Exception):
                self._recover_ids({entry.id})
            raise
        outcome = None if dest == entry.path else f"restored as {dest.name}: another file now has its name"
        if outcome:
            logger.warning("%s: %s", entry.path, outcome)
        self.store.set_state(entry.id, "restored", restored_path=dest, outcome=outcome)
        self._step("undo:done")
        return dest, None

    def _find_in_trash(self, entry: JournalEntry) -> TrashSlot | None:
        """The trash slot holding this row's file, checked by content (None when it is no longer there)."""
        candidates = ([entry.slot] if entry.slot is not None else []) + self.trash.entries_for(entry.path)
        for slot in candidates:
            facts = facts_or_none(slot.stored)
            if facts is None:
                continue
            if entry.content_hash is None and facts.size == entry.size:
                return slot  # a row without a hash (none is written any more): the newest of that name and size
            if entry.content_hash is not None and facts.content_hash == entry.content_hash:
                return slot
        return None

    def _drop_stale_info(self, entry: JournalEntry) -> None:
        slot = entry.slot
        if slot is not None and not os.path.lexists(slot.stored) and slot.info_path_field() == entry.path:
            with contextlib.suppress(OSError):
                slot.info.unlink()

    # -- recovery -----------------------------------------------------------------------------------

    def recover(self) -> list[Path]:
        """Finish or roll back every journal row an interrupted run left open. Returns the paths put back.

        After it, every photo of an open row is in place (rolled back, or restored) or in the trash with a
        "trashed" row that undo brings back. Runs when a service opens (when no other removal is running).
        """
        with self._exclusive():
            return self._recover_locked()

    def _recover_if_idle(self) -> None:
        try:
            if not self.store.has_open_rows():
                return
        except sqlite3.Error:
            return
        from filelock import Timeout

        lock = self._lock()
        try:
            lock.acquire(timeout=0)
        except (Timeout, OSError):
            return  # a removal or undo is running: it owns its rows
        try:
            self._restored_by_recovery += self._recover_locked()
        except (KnownError, OSError, sqlite3.Error) as exc:
            logger.warning("Could not finish an interrupted removal yet: %s", exc)
        finally:
            lock.release()

    def _recover_locked(self) -> list[Path]:
        return self._recover_ids(None)

    def _recover_ids(self, ids: set[int] | None) -> list[Path]:
        back: list[Path] = []
        batches: set[int] = set()
        for entry in self.store.open_rows():
            if ids is not None and entry.id not in ids:
                continue
            batches.add(entry.batch_id)
            try:
                if entry.state == "moving":
                    self._recover_move(entry)
                else:
                    path = self._recover_restore(entry)
                    if path is not None:
                        back.append(path)
            except (OSError, TrashError) as exc:
                logger.warning("Journal row %d (%s) stays open: %s", entry.id, entry.path, exc)
        for batch in batches:
            self.store.close_batch_if_done(batch)
        if ids is None and batches:
            logger.info("Recovered %d interrupted trash journal rows", len(batches))
        return back

    def _recover_move(self, entry: JournalEntry) -> None:
        slot = entry.slot
        here = facts_or_none(entry.path)
        in_place = here is not None and _matches(here, entry)
        stored = facts_or_none(slot.stored) if slot is not None else None
        in_trash = stored is not None and _matches(stored, entry)
        ours = slot is not None and slot.info_path_field() == entry.path
        if in_place and slot is not None:
            # Not moved, or a cross-mount copy that stopped before the source was unlinked. A trash copy is only
            # dropped when it is ours or a verified duplicate of the intact original: nothing is lost.
            distinct = stored is not None and here is not None and stored.identity != here.identity
            unreadable = stored is None and os.path.lexists(slot.stored)  # a partial copy, not even a file
            if (distinct and (in_trash or ours)) or (unreadable and ours):
                self._unlink(slot.stored, "recover:trash-copy-removed")
            if ours and not os.path.lexists(slot.stored):
                self._unlink(slot.info, "recover:info-removed")
        if in_place:
            self.store.set_state(entry.id, "rolled_back", outcome="interrupted before it moved: left in place")
            self._step("recover:rolled-back")
        elif in_trash and slot is not None:
            if not slot.info.exists():
                rewrite_info(slot, entry.path)
                self._step("recover:info-rewritten")
            self.store.finish_move(entry.id, entry.path)
            self._step("recover:trashed")
        elif slot is None and not self.trash.records and not os.path.lexists(entry.path):
            self.store.finish_move(entry.id, entry.path)  # an OS trash without records: it went there
        elif here is not None:
            # Edited after the interruption, and the trash holds no complete copy: only a partial copy of ours goes.
            if slot is not None and ours:
                self._unlink(slot.stored, "recover:trash-copy-removed")
                self._unlink(slot.info, "recover:info-removed")
            self.store.set_state(entry.id, "rolled_back", outcome="changed after an interrupted move: left in place")
            self._step("recover:rolled-back")
        else:
            self.store.set_state(
                entry.id, "gone", outcome="after an interruption it was neither in place nor in the trash"
            )

    def _recover_restore(self, entry: JournalEntry) -> Path | None:
        slot = entry.slot
        dest = entry.restored_path or entry.path
        at_dest = facts_or_none(dest)
        stored = facts_or_none(slot.stored) if slot is not None else None
        in_trash = stored is not None and _matches(stored, entry)
        temp = restore_temp(dest)
        if at_dest is not None and _matches(at_dest, entry):
            if slot is not None and in_trash and stored is not None and stored.identity != at_dest.identity:
                self._unlink(slot.stored, "recover:trash-copy-removed")  # a verified copy is in place
            if slot is not None and not os.path.lexists(slot.stored):
                self._unlink(slot.info, "recover:info-removed")
            self._unlink(temp, "recover:temp-removed")
            self.store.set_state(entry.id, "restored", restored_path=dest)
            self._step("recover:restored")
            return dest
        if in_trash:
            self._unlink(temp, "recover:temp-removed")  # a copy that stopped half-way; the trash's file is intact
            self.store.set_state(entry.id, "trashed")
            self._step("recover:back-in-trash")
            return None
        self.store.set_state(entry.id, "gone", outcome=f"{entry.path} is no longer in the trash (emptied?)")
        return None

    def _unlink(self, path: Path, step: str) -> None:
        """Remove one of our own files (see the callers for why nothing is lost), then report the step."""
        try:
            path.unlink()
        except FileNotFoundError:
            return
        self._step(step)

    # -- one removal or undo at a time ------------------------------------------------------------------

    def _lock(self) -> FileLock:
        from filelock import FileLock

        return FileLock(f"{self.catalog.path}.trash.lock", mode=0o600, thread_local=False)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        from filelock import Timeout

        lock = self._lock()
        try:
            lock.acquire(timeout=LOCK_WAIT_S)
        except Timeout as exc:
            raise KnownError("Another removal or undo is running on this library; try again when it is done") from exc
        except OSError as exc:
            raise KnownError(f"Cannot lock {lock.lock_file}: {exc.strerror or exc}") from exc
        try:
            yield
        finally:
            lock.release()


class UndoIncompleteError(KnownError):
    """Undo put back what it could; ``problems`` says what it could not (each file's row is closed or open)."""

    def __init__(self, restored: list[Path], problems: list[str], *, total: int) -> None:
        self.restored = restored
        self.problems = problems
        super().__init__(f"Restored {len(restored)} of {total} files; " + "; ".join(problems[:3]))


def _groups(items: Sequence[TrashItem]) -> list[tuple[tuple[Path, ...], tuple[str | None, ...], list[TrashItem]]]:
    """The plan's items by the kept copies they rely on (one group per cluster), in plan order."""
    groups: dict[tuple[Path, ...], tuple[tuple[str | None, ...], list[TrashItem]]] = {}
    for item in items:
        entry = groups.setdefault(item.kept, (item.kept_hashes, []))
        entry[1].append(item)
    return [(kept, hashes, members) for kept, (hashes, members) in groups.items()]


def _identities(items: Sequence[TrashItem]) -> set[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    for item in items:
        try:
            st = os.stat(item.path)
        except OSError:
            continue
        out.add((st.st_dev, st.st_ino))
    return out


def _one_path_per_file(
    pairs: list[tuple[int, Photo]], protected: Callable[[Photo], bool]
) -> tuple[list[tuple[int, Photo]], set[int]]:
    """One catalog row per file (device + inode): hard links, or one folder reached as two roots, are one file.

    Returns the rows kept (the first path of each file) and the ids of those whose file is also reachable
    through a protected path (so it stays protected whichever path lists it).
    """
    kept: dict[tuple[int, int], tuple[int, Photo]] = {}
    out: list[tuple[int, Photo]] = []
    alias_protected: set[int] = set()
    for row, photo in pairs:
        try:
            st = os.lstat(photo.path)
        except OSError:
            out.append((row, photo))
            continue
        key = (st.st_dev, st.st_ino)
        first = kept.get(key)
        if first is None:
            kept[key] = (row, photo)
            out.append((row, photo))
        elif protected(photo):
            alias_protected.add(first[1].id)
    return out, alias_protected


def _still_the_same(path: Path, facts: FileFacts) -> None:
    """The file at ``path`` is still the one checked (same inode, size and time), or ContentMismatchError."""
    now = os.lstat(path)
    if (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns) != (facts.dev, facts.ino, facts.size, facts.mtime_ns):
        raise ContentMismatchError(f"{path} changed while the others were moving")


def _check_cancel(cancel: threading.Event | None, why: str) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled(why)


def _placement_problem(path: Path, roots: Sequence[Path]) -> str | None:
    """Why ``path`` must not be moved or counted: not in its real place, or outside every library folder."""
    real = Path(os.path.realpath(path))
    if real != path or path.is_symlink():
        return f"{path} is reached through a symbolic link (its real place is {real}); it is never moved or counted"
    if not any(r == path or r in path.parents for r in roots):
        return f"{path} is outside every library folder"
    return None


def _matches(facts: FileFacts, entry: JournalEntry) -> bool:
    if entry.content_hash is None:
        return facts.size == entry.size
    return facts.content_hash == entry.content_hash


def _free_name(path: Path) -> Path:
    stem, suffix = path.stem, path.suffix
    for n in range(1, 10_000):
        candidate = path.with_name(f"{stem} (restored{'' if n == 1 else f' {n}'}){suffix}")
        if not os.path.lexists(candidate):
            return candidate
    raise TrashError(f"Cannot restore {path}: no free name beside it")


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


def _copies(photos: Sequence[Photo], digest: str) -> int:
    return sum(1 for p in photos if p.content_hash == digest)


def _normal(folder: Path) -> Path:
    return folder.expanduser().resolve()


def _drain(gen: Generator[DedupProgress, None, _T]) -> _T:
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            result: _T = stop.value
            return result


def _maybe_another_frame(keeper_photo: Photo, photo: Photo) -> bool:
    """A "re-encoded" copy (as large as the keeper, same format) that could be another frame of a burst.

    Neither file records a capture time, so nothing tells a re-save from a second exposure in which a small
    part moved (the pixel tests cannot see a twentieth of the frame move: README, Duplicates). It is listed
    with its cluster, never suggested for the trash: the user chooses.
    """
    return not keeper_photo.info.taken_from_exif and not photo.info.taken_from_exif
