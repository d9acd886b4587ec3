"""Bring the catalog, the vectors and the index up to date with the photo folders.

:meth:`Indexer.sync` is a generator: it yields :class:`Progress` records and checks for cancellation at
each one, so the CLI can draw a progress bar and the GUI can run it on its worker thread.

The pipeline is bounded and batched. Decode-pool threads read each file once (hash, decode with DCT
scaling, fingerprint, preprocess to the model's input); the calling thread, the only one that touches
the model and writes the catalog, embeds full batches and commits each batch in one transaction with
its photo rows. A crash loses at most the batch in flight. Files whose bytes are already known (renamed,
moved, copied, or unchanged after a touch) are never decoded again.

The vector index follows each commit: the committing thread calls ``vector_index.apply`` (the new photos
are searchable right away, no rebuild) and, at the end of a sync, ``vector_index.maintain`` (merge,
persist, and a cancellable full rebuild only when one is due).

Resources: one decode pool per Indexer, started on the first sync that has work and shut down by
:meth:`Indexer.close`; the model is loaded on the first photo that needs embedding (a sync with nothing
to embed never imports torch). An unexpected exception while reading one photo records that photo as
failed ("internal error: ...", traceback in the log) and the batch goes on.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from photoembed.config import Settings
from photoembed.core.hashing import content_hash
from photoembed.core.offline import OfflineRegistry
from photoembed.core.scanner import ScanGap, ScanMount, ScannedFile, ScanProblem, ScanRules, mount_missing, scan
from photoembed.errors import Cancelled, KnownError
from photoembed.imaging.decode import decode_photo
from photoembed.imaging.fingerprint import FORMAT_VERSION, fingerprint
from photoembed.imaging.safe_open import FileTooLargeError, read_regular
from photoembed.ml.runtime import cpu_count
from photoembed.storage.catalog import Catalog
from photoembed.storage.records import FileState, PhotoInfo, Root

logger = logging.getLogger(__name__)

FINGERPRINT_MIN_SIDE = 224  # without a model, decode just large enough for a robust perceptual hash


class ImageEncoder(Protocol):
    """What the indexer needs of the CLIP model (photoembed.ml.encoder.ClipEncoder)."""

    name: str
    image_size: int

    def prepare(self, image: Image.Image) -> np.ndarray: ...

    def encode_images(self, batch: np.ndarray) -> np.ndarray: ...


class IndexStep(Protocol):
    """One step of the index's maintenance (photoembed.storage.vector_index.IndexProgress)."""

    @property
    def done(self) -> int: ...

    @property
    def total(self) -> int: ...

    @property
    def message(self) -> str: ...


class DerivedIndex(Protocol):
    """What the indexer needs of the vector index (photoembed.storage.vector_index.VectorIndex)."""

    def apply(self, model: str) -> None: ...

    def maintain(self, model: str, cancel: threading.Event | None = None) -> Iterator[IndexStep]: ...

    def compact_log(self) -> None: ...


class EncoderSource(Protocol):
    """A model loaded on first need (photoembed.library.Library gives one): ``name`` without loading."""

    @property
    def name(self) -> str: ...

    def get(self) -> ImageEncoder: ...

    def held(self) -> contextlib.AbstractContextManager[object]: ...


class _Loaded:
    """An already loaded encoder as an :class:`EncoderSource`."""

    def __init__(self, encoder: ImageEncoder) -> None:
        self.encoder = encoder

    @property
    def name(self) -> str:
        return self.encoder.name

    def get(self) -> ImageEncoder:
        return self.encoder

    def held(self) -> contextlib.AbstractContextManager[object]:
        return contextlib.nullcontext()


class ModelLoadError(Exception):
    """The model failed to load on the first photo that needed it (wraps the cause, re-raised by sync)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass(frozen=True)
class Progress:
    """One step of a sync.

    Attributes:
        phase: "scan", "index" (reading, decoding, embedding), "finish" (deletions, vector index), "done".
        done: items finished in this phase.
        total: items in this phase (0 while still unknown).
        rate: photos per second over the last few seconds.
        eta_s: seconds left, when it can be estimated.
        failed: photos that could not be read so far in this run.
        message: one line for a status bar.
    """

    phase: str
    done: int
    total: int
    rate: float = 0.0
    eta_s: float | None = None
    failed: int = 0
    message: str = ""


@dataclass
class SyncReport:
    """What a sync changed, filled in as it runs."""

    added: int = 0
    updated: int = 0
    embedded: int = 0
    moved: int = 0
    removed: int = 0
    failed: int = 0
    #: Photos (distinct files' bytes) whose fingerprint was made again in the current format (an older
    #: version of photoembed made theirs); nothing else of them was read again.
    fingerprinted: int = 0
    offline_roots: list[Path] = field(default_factory=list)
    #: Folders below a root that could not be seen (path, reason, photos kept): their photos are kept.
    offline_folders: list[tuple[Path, str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class _Job:
    root_id: int
    path: str
    existing: FileState | None
    #: Only fingerprint it again (an unchanged photo whose fingerprint has an older format).
    refresh: bool = False


@dataclass
class _Result:
    job: _Job
    size: int = 0
    mtime_ns: int = 0
    content_hash: str | None = None
    info: PhotoInfo | None = None
    tensor: np.ndarray | None = None
    needs_embedding: bool = False
    error: str | None = None
    vanished: bool = False
    #: A refresh job's new fingerprint and what the bytes say (phash and sharpness filled in); None when the
    #: file was not as catalogued.
    fingerprint: PhotoInfo | None = None


class Indexer:
    """Keeps the catalog true to the disk. Use from one thread: it owns the model and the writes.

    Args:
        catalog: the photo catalog.
        settings: exclusion rules.
        encoder: the CLIP image encoder, or None to catalog photos without embedding them (no weights).
        vector_index: the derived FAISS index, kept up to date after every commit.
        encoder_source: instead of ``encoder``, a model loaded on the first photo that needs embedding.
        batch_size: photos per forward pass and per catalog transaction.
        decode_workers: decode-pool threads (default: one per CPU core).
        model_threads: torch threads while this indexer embeds on the CPU. Default: ``settings.threads``
            when the user chose a number, else every core (see :func:`_model_threads`).
    """

    def __init__(
        self,
        *,
        catalog: Catalog,
        settings: Settings,
        encoder: ImageEncoder | None,
        vector_index: DerivedIndex | None,
        batch_size: int = 16,
        decode_workers: int | None = None,
        model_threads: int | None = None,
        encoder_source: EncoderSource | None = None,
    ) -> None:
        self.catalog = catalog
        self._source: EncoderSource | None = encoder_source or (_Loaded(encoder) if encoder is not None else None)
        self._encoder: ImageEncoder | None = encoder
        self._encoder_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._threads_stack: contextlib.ExitStack | None = None
        self.vector_index = vector_index
        self.batch_size = max(1, batch_size)
        self.decode_workers = decode_workers or cpu_count()
        self.model_threads = model_threads or settings.threads or cpu_count()
        self.rules = ScanRules(tuple(settings.excluded_patterns), settings.include_hidden)
        self.report = SyncReport()
        # (model, catalog generation) after a sync that left no readable photo without a vector: while the
        # generation stays that (nobody else wrote since), a scoped sync (a watch batch) need not look
        # through the whole library for such photos: 0.2 s at 10k photos, seconds at 1M, per batch.
        self._no_backlog: tuple[str, int] | None = None
        self._backlog_skipped = False
        # Bytes whose fingerprint could not be made again (they decoded once, not now): not retried by every
        # later sync of this indexer's life (a watch batch would read them again and again); the next process tries.
        self._refresh_failed: set[str] = set()

    @property
    def model(self) -> str | None:
        """The model photos are embedded with (None: catalog only); known without loading it."""
        return self._source.name if self._source is not None else None

    @property
    def encoder(self) -> ImageEncoder | None:
        """The encoder once loaded (None before the first photo that needed it, or without a model)."""
        return self._encoder

    def _load_encoder(self) -> ImageEncoder | None:
        """Decode-pool thread or writer: the model, loaded on the first call.

        Raises:
            ModelLoadError: the model cannot be loaded (not a photo's fault: the sync stops, as before any
                photo would be recorded as failed).
        """
        if self._source is None:
            return None
        with self._encoder_lock:
            if self._encoder is None:
                try:
                    self._encoder = self._source.get()
                except Exception as exc:
                    raise ModelLoadError(exc) from exc
            return self._encoder

    def forget_encoder(self) -> None:
        """The model was unloaded (idle): load it again on the next photo that needs it."""
        with self._encoder_lock:
            if isinstance(self._source, _Loaded):
                return
            self._encoder = None

    def close(self) -> None:
        """Shut the decode pool down (its threads, and their catalog connections, end with it)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _decode_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.decode_workers, thread_name_prefix="photoembed-decode")
        return self._pool

    def sync(
        self, *, paths: Iterable[Path] | None = None, cancel: threading.Event | None = None
    ) -> Iterator[Progress]:
        """Scan, ingest and clean up; yields progress. Raises Cancelled when ``cancel`` is set.

        Args:
            paths: only these files or folders (each inside a root), as a watcher reports them;
                default: every root.
            cancel: set it from any thread to stop at the next photo; committed batches are kept.
        """
        self.report = SyncReport()
        if self._source is None:
            yield from self._sync(paths, cancel)
            return
        with self._source.held():
            yield from self._sync(paths, cancel)

    def _sync(self, paths: Iterable[Path] | None, cancel: threading.Event | None) -> Iterator[Progress]:
        scope = self._scope(paths)
        jobs: list[_Job] = []
        missing: dict[str, FileState] = {}
        seen_problems: list[tuple[Root, ScanProblem]] = []
        scanned = 0
        all_roots = self.catalog.roots()
        offline = OfflineRegistry(self.catalog)
        for root, start in scope:
            known = self.catalog.file_states(root.id, under=start)
            if not self._reachable(root, has_photos=bool(known) or start is not None):
                logger.warning("Library folder %s is not reachable; keeping its photos until it is back", root.path)
                self.report.offline_roots.append(root.path)
                continue
            mounts = offline.mounts(root.id)
            if start is not None and not start.exists() and not _under_unmounted(start, mounts):
                missing.update(known)
                continue
            nested = [r.path for r in all_roots if root.path in r.path.parents]  # their files are theirs
            gaps: list[tuple[str, str]] = []
            seen_mounts: list[str] = []
            known_sorted: list[str] | None = None
            for item in scan(root.path, rules=self.rules, start=start, skip=nested, expected_mounts=mounts):
                _check(cancel)
                if isinstance(item, ScanMount):
                    seen_mounts.append(item.path)
                    continue
                if isinstance(item, ScanGap):
                    # Not deleted: out of sight (unreadable, or a drive unplugged). Its photos stay, offline.
                    gaps.append((item.path, item.reason))
                    known_sorted = known_sorted if known_sorted is not None else sorted(known)
                    kept = _pop_under(known, known_sorted, item.path)
                    self.report.offline_folders.append((Path(item.path), item.reason, kept))
                    continue
                if isinstance(item, ScanProblem):
                    recorded = known.pop(item.path, None)
                    if recorded is None or recorded.state != "error":
                        seen_problems.append((root, item))
                    continue
                scanned += 1
                if scanned % 2000 == 0:
                    yield Progress("scan", scanned, 0, message=f"Looking for photos… {scanned} found")
                state = known.pop(item.path, None)
                if state is None or _changed(state, item):
                    jobs.append(_Job(root.id, item.path, state))
            missing.update(known)
            offline.record(
                root.id, scope=None if start is None else str(start), gaps=gaps, mounts=seen_mounts
            )
        out_of_sight = [str(p) for p in self.report.offline_roots] + [str(f[0]) for f in self.report.offline_folders]
        if paths is None or not self._backlog_known_clear():
            jobs.extend(self._pending_embeddings(jobs, missing, out_of_sight))
        else:
            self._backlog_skipped = False
        self._no_backlog = None  # set again below, once every job is written
        refresh = self._stale_fingerprints(scope, jobs, missing, out_of_sight)
        jobs.extend(refresh)
        note = f", {len(refresh)} fingerprints to update (made by an older version)" if refresh else ""
        yield Progress(
            "scan", scanned, scanned, message=f"{scanned} photos found, {len(jobs) - len(refresh)} to index{note}"
        )

        if seen_problems:
            with self.catalog.transaction():
                for root, problem in seen_problems:
                    self._record_problem(root, problem)
        yield from self._ingest(jobs, missing, cancel)
        yield Progress("finish", 0, 1, failed=self.report.failed, message="Updating the search index…")
        self._drop_missing(missing)
        if paths is None:
            self.catalog.prune_embeddings()
        if self.model is not None and self.vector_index is not None:
            for step in self.vector_index.maintain(self.model, cancel):
                yield Progress("finish", step.done, step.total, failed=self.report.failed, message=step.message)
        elif self.vector_index is not None:
            self.vector_index.compact_log()  # no model: nothing follows the change log
        if self.model is not None and not self._backlog_skipped:
            self._no_backlog = (self.model, self.catalog.generation)
        yield Progress("done", 1, 1, failed=self.report.failed, message=self._summary())

    def refresh_fingerprints(self, cancel: threading.Event | None = None) -> Iterator[Progress]:
        """Fingerprint again, in the current format, every photo whose fingerprint an older version made.

        No scan and no model: each file is read once and checked against the catalog (a file that changed
        or vanished is left for the next sync). Yields "index" progress. Raises Cancelled when ``cancel``
        is set (fingerprints updated so far are kept).
        """
        self.report = SyncReport()
        jobs = self._refresh_jobs(self.catalog.stale_fingerprints(FORMAT_VERSION), set(), set(), ())
        yield Progress("scan", 0, 0, message=f"{len(jobs)} fingerprints to update (made by an older version)")
        yield from self._ingest(jobs, {}, cancel)
        yield Progress("done", 1, 1, failed=self.report.failed, message=f"{self.report.fingerprinted} fingerprints "
                       "updated")

    def run(self, **kwargs: object) -> SyncReport:
        """Run :meth:`sync` to the end (scripts and tests)."""
        for _ in self.sync(**kwargs):  # type: ignore[arg-type]
            pass
        return self.report

    # -- scope --------------------------------------------------------------------------------------

    def _scope(self, paths: Iterable[Path] | None) -> list[tuple[Root, Path | None]]:
        roots = self.catalog.roots()
        if paths is None:
            return [(root, None) for root in roots]
        scope: list[tuple[Root, Path | None]] = []
        for raw in paths:
            path = Path(os.path.abspath(raw))
            owner = max(
                (r for r in roots if path == r.path or r.path in path.parents),
                key=lambda r: len(r.path.parts),
                default=None,
            )
            if owner is None:
                logger.debug("Ignoring %s: not inside a library folder", path)
                continue
            scope.append((owner, None if path == owner.path else path))
        return _without_nested(scope)

    def _reachable(self, root: Root, *, has_photos: bool) -> bool:
        """False for a missing root, and for an unplugged drive's empty mount point.

        When a root is itself a mount point, unplugging the drive leaves an empty folder on another
        device. Reading that as "every photo deleted" would drop the library; the device the root lived
        on tells the two apart.
        """
        try:
            device = os.stat(root.path).st_dev
        except OSError:
            return False
        key = f"root_device:{root.id}"
        known_device = self.catalog.get_meta(key)
        if known_device is not None and int(known_device) != device and has_photos:
            with os.scandir(root.path) as entries:
                if next(entries, None) is None:
                    return False
        if known_device is None or int(known_device) != device:
            self.catalog.set_meta(key, str(device))
        return True

    def _pending_embeddings(
        self, jobs: Sequence[_Job], missing: dict[str, FileState], out_of_sight: Sequence[str] = ()
    ) -> list[_Job]:
        """Readable photos with no vector for the current model (new model, or indexed without one).

        Photos in offline folders wait: reading them now would find nothing and drop them."""
        self._backlog_skipped = False
        if self.model is None:
            return []
        queued = {job.path for job in jobs}
        by_path = {root.id: root for root in self.catalog.roots()}
        pending = []
        for state in self.catalog.pending_photos(self.model):
            if state.path in queued or state.path in missing:
                continue
            if any(state.path == gone or state.path.startswith(gone.rstrip(os.sep) + os.sep) for gone in out_of_sight):
                self._backlog_skipped = True
                continue
            root_id = self._root_id_of(state.path, by_path)
            if root_id is not None:
                pending.append(_Job(root_id, state.path, state))
        return pending

    def _stale_fingerprints(
        self,
        scope: Sequence[tuple[Root, Path | None]],
        jobs: Sequence[_Job],
        missing: dict[str, FileState],
        out_of_sight: Sequence[str],
    ) -> list[_Job]:
        """Photos in scope, seen unchanged by this scan, whose fingerprint has an older format."""
        stale: list[FileState] = []
        for root, start in scope:
            if str(root.path) in out_of_sight:
                continue
            rows = self.catalog.stale_fingerprints(FORMAT_VERSION, root_id=root.id)
            if start is not None:
                folder = str(start).rstrip(os.sep)
                rows = [r for r in rows if r.path == folder or r.path.startswith(folder + os.sep)]
            stale.extend(rows)
        return self._refresh_jobs(stale, {job.path for job in jobs}, set(missing), out_of_sight)

    def _refresh_jobs(
        self, stale: Iterable[FileState], queued: set[str], missing: set[str], out_of_sight: Sequence[str]
    ) -> list[_Job]:
        """One refresh job per content hash (identical copies share one fingerprint, updated together)."""
        roots = {root.id: root for root in self.catalog.roots()}
        hashes: set[str] = set()
        out: list[_Job] = []
        for state in stale:
            if state.path in queued or state.path in missing or state.content_hash is None:
                continue
            if state.content_hash in hashes or state.content_hash in self._refresh_failed:
                continue
            if any(state.path == gone or state.path.startswith(gone.rstrip(os.sep) + os.sep) for gone in out_of_sight):
                continue
            root_id = self._root_id_of(state.path, roots)
            if root_id is not None:
                hashes.add(state.content_hash)
                out.append(_Job(root_id, state.path, state, refresh=True))
        return out

    def _backlog_known_clear(self) -> bool:
        """True when the last sync left no photo without a vector and nobody has written since."""
        return self._no_backlog is not None and self._no_backlog == (self.model, self.catalog.generation)

    @staticmethod
    def _root_id_of(path: str, roots: dict[int, Root]) -> int | None:
        """The innermost root holding ``path`` (roots can nest in a library made before that was refused)."""
        as_path = Path(path)
        owners = [(len(root.path.parts), root_id) for root_id, root in roots.items() if root.path in as_path.parents]
        return max(owners)[1] if owners else None

    # -- ingest -------------------------------------------------------------------------------------

    def _ingest(
        self, jobs: list[_Job], missing: dict[str, FileState], cancel: threading.Event | None
    ) -> Iterator[Progress]:
        total = len(jobs)
        if total == 0:
            return
        missing_by_hash: dict[str, list[FileState]] = collections.defaultdict(list)
        for state in missing.values():
            if state.content_hash and state.state == "ok":
                missing_by_hash[state.content_hash].append(state)
        meter = _RateMeter()
        done = 0
        # Enough look-ahead that a batch is ready the moment the model is free, small enough to bound memory.
        window = self.batch_size * 2 + self.decode_workers * 2
        batch: list[_Result] = []
        pool = self._decode_pool()
        pending: collections.deque[Future[_Result]] = collections.deque()
        # Set the model's threads once it is loaded (on the first photo to embed), restore them at the end.
        with contextlib.ExitStack() as stack:
            self._threads_stack = stack
            stack.callback(setattr, self, "_threads_stack", None)
            stack.callback(_drop_queued, pending)
            queue = iter(jobs)
            for job in queue:
                pending.append(pool.submit(self._read, job))
                if len(pending) >= window:
                    break
            while pending:
                _check(cancel)
                try:
                    result = pending.popleft().result()
                except ModelLoadError as exc:
                    raise exc.cause from None
                next_job = next(queue, None)
                if next_job is not None:
                    pending.append(pool.submit(self._read, next_job))
                batch.append(result)
                if len(batch) >= self.batch_size or not pending:
                    done += len(batch)
                    self._commit(batch, missing, missing_by_hash)
                    meter.add(len(batch))
                    refreshing = all(r.job.refresh for r in batch)
                    batch = []
                    rate = meter.rate()
                    yield Progress(
                        "index",
                        done,
                        total,
                        rate=rate,
                        eta_s=(total - done) / rate if rate > 0 else None,
                        failed=self.report.failed,
                        message=f"Updating fingerprints {done}/{total}" if refreshing else f"Indexing {done}/{total}",
                    )

    def _read(self, job: _Job) -> _Result:
        """Decode-pool thread: read once, hash, and decode only if these bytes are new to the catalog.

        Never raises (but for KeyboardInterrupt and the like): whatever goes wrong with one photo is
        recorded as that photo's failure, so one bad file or one bug cannot stop the library's indexing.
        """
        try:
            return self._read_one(job)
        except ModelLoadError:
            raise
        except Exception as exc:  # a per-file failure is data: recorded, logged, and the batch goes on
            logger.exception("Internal error while reading %s", job.path)
            result = _Result(job)
            result.error = f"internal error: {type(exc).__name__}: {exc}"
            with contextlib.suppress(OSError):
                st = os.lstat(job.path)
                result.size, result.mtime_ns = st.st_size, st.st_mtime_ns
            return result

    def _read_one(self, job: _Job) -> _Result:
        if job.refresh:
            return self._refresh_one(job)
        result = _Result(job)
        try:
            # Never a link, FIFO or device (replaced since the scan), never more than the size limit.
            data, stat_result = read_regular(job.path)
        except FileNotFoundError:
            result.vanished = True
            return result
        except FileTooLargeError as exc:
            result.size, result.mtime_ns = exc.size, exc.mtime_ns  # recorded as is: not retried every scan
            result.error = str(exc)
            return result
        except KnownError as exc:
            result.error = str(exc)
            return result
        except OSError as exc:
            result.error = f"cannot read file: {exc.strerror or exc}"
            return result
        result.size, result.mtime_ns = stat_result.st_size, stat_result.st_mtime_ns
        if not data:
            # Known at once, without a hash lookup: every empty file shares one hash, so looking it up
            # would walk every earlier empty file's row.
            result.error = "file is empty"
            return result
        result.content_hash = content_hash(data)
        known = self.catalog.known_hash(result.content_hash, self.model)
        embedded = known is not None and (known[1] or self.model is None)
        if known is not None and embedded and _current(known[0].phash):
            result.info = known[0]
            return result
        # Known bytes with a current embedding but an older fingerprint: decode for the fingerprint only.
        encoder = None if embedded else self._load_encoder()
        try:
            decoded = decode_photo(
                data,
                name=os.path.basename(job.path),
                min_side=encoder.image_size if encoder else FINGERPRINT_MIN_SIDE,
                mtime=stat_result.st_mtime,
            )
            mark = fingerprint(decoded.image)
            result.info = replace(decoded.info, phash=mark.phash, sharpness=mark.sharpness)
            if encoder is not None:
                result.tensor = encoder.prepare(decoded.image, **decoded.geometry)
                result.needs_embedding = True
        except KnownError as exc:
            result.error = str(exc)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            # Pillow raises these for malformed data the decoder did not classify; it is the photo's fault.
            result.error = f"cannot decode image: {exc}"
        return result

    def _refresh_one(self, job: _Job) -> _Result:
        """Decode-pool thread: a refresh job's new fingerprint, when the file still holds the catalogued bytes."""
        result = _Result(job)
        existing = job.existing
        try:
            data, stat_result = read_regular(job.path)
        except (OSError, KnownError) as exc:
            logger.debug("Fingerprint of %s not updated: %s", job.path, exc)
            return result
        if existing is None or not data or content_hash(data) != existing.content_hash:
            logger.debug("Fingerprint of %s not updated: the file changed since it was indexed", job.path)
            return result
        try:
            decoded = decode_photo(
                data, name=os.path.basename(job.path), min_side=FINGERPRINT_MIN_SIDE, mtime=stat_result.st_mtime
            )
        except (KnownError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            logger.info("Fingerprint of %s not updated: %s", job.path, exc)
            self._refresh_failed.add(existing.content_hash)
            return result
        mark = fingerprint(decoded.image)
        result.fingerprint = replace(decoded.info, phash=mark.phash, sharpness=mark.sharpness)
        return result

    def _commit(
        self,
        batch: list[_Result],
        missing: dict[str, FileState],
        missing_by_hash: dict[str, list[FileState]],
    ) -> None:
        """Embed the batch and write it in one transaction (the calling thread owns model and writes)."""
        to_embed = [r for r in batch if r.needs_embedding and r.tensor is not None]
        vectors: np.ndarray | None = None
        encoder = self._encoder
        if to_embed and encoder is not None:
            if self._threads_stack is not None:
                self._threads_stack.enter_context(_model_threads(encoder, self.model_threads))
                self._threads_stack = None  # once per ingest
            vectors = encoder.encode_images(np.stack([r.tensor for r in to_embed]))  # type: ignore[misc]
        with self.catalog.transaction():
            if vectors is not None and encoder is not None:
                self.catalog.put_embeddings(
                    encoder.name, ((r.content_hash or "", v) for r, v in zip(to_embed, vectors, strict=True))
                )
                self.report.embedded += len(to_embed)
            for result in batch:
                self._write(result, missing, missing_by_hash)
            self.catalog.bump_generation()
        for result in batch:
            result.tensor = None
        self._apply_to_index()

    def _apply_to_index(self) -> None:
        """Writer, after a commit: the committed photos become searchable (the index's incremental path)."""
        if self.model is not None and self.vector_index is not None:
            self.vector_index.apply(self.model)

    def _write(
        self, result: _Result, missing: dict[str, FileState], missing_by_hash: dict[str, list[FileState]]
    ) -> None:
        job = result.job
        if job.refresh:
            if result.fingerprint is not None and job.existing is not None and job.existing.content_hash:
                self.catalog.set_fingerprint(job.existing.content_hash, result.fingerprint)
                self.report.fingerprinted += 1
            return
        if result.vanished:
            if job.existing is not None:
                self.catalog.delete_photos([job.existing.id])
                self.report.removed += 1
            return
        if result.error is not None:
            self.report.failed += 1
            logger.info("Skipping %s: %s", job.path, result.error)
            self.catalog.upsert_photo(
                root_id=job.root_id, path=job.path, size=result.size, mtime_ns=result.mtime_ns,
                content_hash=result.content_hash, error=result.error,
            )
            return
        moved_from = self._take_moved(result, missing, missing_by_hash)
        if moved_from is not None:
            self.catalog.move_photo(
                moved_from.id, root_id=job.root_id, new_path=job.path, size=result.size, mtime_ns=result.mtime_ns
            )
            self.report.moved += 1
            return
        self.catalog.upsert_photo(
            root_id=job.root_id, path=job.path, size=result.size, mtime_ns=result.mtime_ns,
            content_hash=result.content_hash, info=result.info,
        )
        if job.existing is None:
            self.report.added += 1
        elif not (job.existing.content_hash == result.content_hash and job.existing.state == "ok"):
            self.report.updated += 1

    @staticmethod
    def _take_moved(
        result: _Result, missing: dict[str, FileState], missing_by_hash: dict[str, list[FileState]]
    ) -> FileState | None:
        """A new path with the bytes of a vanished one is that photo, renamed or moved: keep its row."""
        if result.job.existing is not None or result.content_hash is None:
            return None
        candidates = missing_by_hash.get(result.content_hash)
        if not candidates:
            return None
        state = candidates.pop()
        missing.pop(state.path, None)
        return state

    def _record_problem(self, root: Root, problem: ScanProblem) -> None:
        self.report.failed += 1
        self.catalog.upsert_photo(
            root_id=root.id, path=problem.path, size=0, mtime_ns=0, content_hash=None, error=problem.reason
        )

    def _drop_missing(self, missing: dict[str, FileState]) -> None:
        if not missing:
            return
        with self.catalog.transaction():
            self.catalog.delete_photos(state.id for state in missing.values())
            self.catalog.bump_generation()
        self.report.removed += len(missing)
        self._apply_to_index()

    def _summary(self) -> str:
        r = self.report
        parts = [f"{r.added} added", f"{r.updated} updated", f"{r.moved} moved", f"{r.removed} removed"]
        if r.fingerprinted:
            parts.append(f"{r.fingerprinted} fingerprints updated")
        if r.failed:
            parts.append(f"{r.failed} could not be read")
        if r.offline_roots or r.offline_folders:
            parts.append(f"{len(r.offline_roots) + len(r.offline_folders)} folder(s) offline")
        return ", ".join(parts)


def _current(phash: bytes | None) -> bool:
    """Whether a stored fingerprint blob has the current format (byte 0 is its format version)."""
    return phash is not None and len(phash) > 0 and phash[0] >= FORMAT_VERSION


def _changed(state: FileState, item: ScannedFile) -> bool:
    return state.size != item.size or state.mtime_ns != item.mtime_ns


def _pop_under(known: dict[str, FileState], ordered: list[str], folder: str) -> int:
    """Remove from ``known`` the paths at or below ``folder`` (``ordered``: known's paths, sorted); count them."""
    prefix = folder.rstrip(os.sep) + os.sep
    count = 0
    if known.pop(folder, None) is not None:
        count += 1
    for path in ordered[bisect.bisect_left(ordered, prefix) :]:
        if not path.startswith(prefix):
            break
        if known.pop(path, None) is not None:
            count += 1
    return count


def _under_unmounted(path: Path, mounts: set[str]) -> bool:
    """Whether ``path`` lies in a folder that was a mount point and has lost its drive."""
    return any((path == Path(m) or Path(m) in path.parents) and mount_missing(Path(m)) for m in mounts)


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("indexing was cancelled")


def _without_nested(scope: list[tuple[Root, Path | None]]) -> list[tuple[Root, Path | None]]:
    """Drop paths already covered by a broader path of the same root (a folder and a file in it)."""
    result: list[tuple[Root, Path | None]] = []
    for root, start in sorted(scope, key=lambda s: (s[0].id, len(s[1].parts) if s[1] else 0)):
        covered = any(
            r.id == root.id and (s is None or (start is not None and (start == s or s in start.parents)))
            for r, s in result
        )
        if not covered:
            result.append((root, start))
    return result


@contextlib.contextmanager
def _model_threads(encoder: ImageEncoder | None, threads: int) -> Iterator[None]:
    """Give the model ``threads`` torch threads while a batch run lasts (CPU models only), then restore.

    The encoder is loaded leaving a core to the UI, which suits searches. An ingest would then run the
    model on one core while the decode pool, which needs only about a quarter of the CPU (decode ~60 ms
    against ~170 ms of model CPU per photo for ViT-B-32), leaves the rest of the other core idle: on 2
    cores the model could never use more than ~1.4 of them. With a thread per core, the decode threads and
    the UI take cores from the model only while they have work; OMP_WAIT_POLICY=PASSIVE
    (photoembed.ml.runtime) makes the model's waiting threads sleep instead of spinning meanwhile.
    (Lowering the decode threads' nice value was measured too: no gain in throughput or CPU per photo.)
    """
    if encoder is None or getattr(encoder, "device", None) != "cpu" or threads <= 0:
        yield
        return
    use_threads = getattr(encoder, "use_threads", None)
    if use_threads is not None:  # ClipEncoder: its engine (torch or ONNX Runtime) sets its own threads
        with use_threads(threads):
            yield
        return
    import torch

    previous = torch.get_num_threads()
    if previous != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def _drop_queued(pending: collections.deque[Future[_Result]]) -> None:
    """On cancel or error, drop queued reads instead of finishing them, and wait for the running ones."""
    for future in pending:
        future.cancel()
    for future in pending:
        if not future.cancelled():
            with contextlib.suppress(BaseException):
                future.result()


class _RateMeter:
    """Photos per second over a sliding window, so the ETA follows the current speed."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self.samples: collections.deque[tuple[float, int]] = collections.deque()
        self.start = time.monotonic()

    def add(self, count: int) -> None:
        now = time.monotonic()
        self.samples.append((now, count))
        while self.samples and now - self.samples[0][0] > self.window_s:
            self.samples.popleft()

    def rate(self) -> float:
        if not self.samples:
            return 0.0
        now = time.monotonic()
        oldest = self.samples[0][0] if len(self.samples) > 1 else self.start
        elapsed = max(now - oldest, 1e-6)
        count = sum(c for _, c in self.samples) - (self.samples[0][1] if len(self.samples) > 1 else 0)
        return count / elapsed
