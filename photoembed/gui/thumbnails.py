"""Thumbnails: decoded as ``QImage`` on pool threads, cached as ``QPixmap`` by ``(photo_id, size)``.

A :class:`DiskThumbnailCache` keeps every decoded thumbnail as a small JPEG under the library's cache folder,
keyed by the photo's *stamp* (content hash, size, modification time): a restart shows the grid from those
files without decoding an original again, and a photo that changes gets a new stamp, so a new thumbnail.

The decoder (``photoembed.imaging.decode.load_thumbnail``) runs on a pool thread and the ``QImage`` is built
there too (``QImage`` is safe off the GUI thread; ``QPixmap`` is not). The GUI thread turns it into a
``QPixmap`` once, when it arrives, and keeps it in a byte-bounded LRU with the stamp it was made for: a photo
asked for under another stamp (it changed while the app runs) is made again, not shown as it was. Requests
are served newest first, so after a fast scroll the photos now on screen decode before the ones scrolled
past, and they go to the pool once the paint that asked for them is over (never from inside a paint).
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QObject, QSaveFile, QTimer, Signal
from PySide6.QtGui import QImage, QPainter, QPixmap

from photoembed.errors import KnownError
from photoembed.gui.workers import BackgroundPool, TaskError

logger = logging.getLogger(__name__)

ThumbKey = tuple[int, int]  # (photo_id, size)
Loader = Callable[[Path, int], QImage]

MAX_QUEUED = 400  # older requests are forgotten: they are asked again if their item is painted again
GRID_THUMB_SIZE = 176  # the search view's grid: the size the disk cache holds (others join as they are asked)

PRUNE_CHUNK = 400  # cache entries one pruning step examines: a few ms of stat calls, then the pool is free
PRUNE_MARGIN_S = 60.0  # files written this close to a pass's start are never deleted by it
PRUNE_FIRST_MS = 2 * 60 * 1000  # the first pass, after the library opens
PRUNE_EVERY_MS = 4 * 3600 * 1000  # then one pass every four hours
DISK_CAP_BYTES = 2 * 1024**3  # beyond this, thumbnails still used go too, least recently read first


def pil_to_qimage(image: Image.Image) -> QImage:
    """A deep-copied QImage of a PIL image. Safe on any thread."""
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() or image.mode == "P" else "RGB")
    width, height = image.size
    if image.mode == "RGBA":
        data = image.tobytes("raw", "RGBA")
        qimage = QImage(data, width, height, width * 4, QImage.Format.Format_RGBA8888)
    else:
        data = image.tobytes("raw", "RGB")
        qimage = QImage(data, width, height, width * 3, QImage.Format.Format_RGB888)
    return qimage.copy()  # detach from ``data``, which Python frees when this returns


def load_qimage(path: Path, size: int) -> QImage:
    """Pool thread: decode a thumbnail (longest side ``size``) with photoembed's decoder."""
    # Imported here: the decoder pulls in Pillow plugins (HEIF, RAW) that the first window does not need.
    from photoembed.imaging.decode import load_thumbnail

    try:
        image = load_thumbnail(path, size=size)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        # A bad or vanished photo is data: the grid shows a "cannot read" tile, the log stays quiet.
        raise KnownError(f"cannot read {path.name}: {exc}") from exc
    return pil_to_qimage(image)


CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by photoembed.\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)


class DiskThumbnailCache:
    """Thumbnails on disk, one JPEG per ``(stamp, size)``. Safe to use from several pool threads at once.

    Args:
        folder: where the files go (created, and marked with a ``CACHEDIR.TAG`` so backups skip it).

    Attributes:
        hits, misses: how many loads were served from disk, and how many were not (for tests and benchmarks).
    """

    QUALITY = 85

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._ready = False

    def _ensure(self) -> None:
        if self._ready:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        tag = self.folder / "CACHEDIR.TAG"
        if not tag.exists():
            tag.write_text(CACHEDIR_TAG, encoding="ascii")
        self._ready = True

    def file_for(self, stamp: str, size: int) -> Path:
        name = self.name_for(stamp, size)
        return self.folder / name[:2] / name

    @staticmethod
    def name_for(stamp: str, size: int) -> str:
        """The file name of a thumbnail (it lives in the folder named by the name's first two characters)."""
        return hashlib.blake2b(f"{stamp}|{size}".encode(), digest_size=16).hexdigest() + ".jpg"

    def load(self, stamp: str, size: int) -> QImage | None:
        """The stored thumbnail, or None when there is none (or it is unreadable)."""
        file = self.file_for(stamp, size)
        image = QImage(str(file)) if file.is_file() else QImage()
        with self._lock:
            if image.isNull():
                self.misses += 1
                return None
            self.hits += 1
        return image

    def store(self, stamp: str, size: int, image: QImage) -> None:
        """Write a thumbnail atomically; a failure only costs a decode next time."""
        if image.isNull():
            return
        try:
            self._ensure()
            file = self.file_for(stamp, size)
            file.parent.mkdir(exist_ok=True)
            saver = QSaveFile(str(file))
            if not saver.open(QSaveFile.OpenModeFlag.WriteOnly):
                return
            # JPEG has no alpha: flatten onto white so transparent PNGs do not turn black.
            flat = image
            if image.hasAlphaChannel():
                flat = QImage(image.size(), QImage.Format.Format_RGB32)
                flat.fill(0xFFFFFFFF)
                painter = QPainter(flat)
                painter.drawImage(0, 0, image)
                painter.end()
            if flat.save(saver, "JPEG", self.QUALITY):  # type: ignore[call-overload]  # PySide6 takes a str
                saver.commit()
            else:
                saver.cancelWriting()
        except (OSError, ValueError) as exc:
            logger.debug("Cannot store a thumbnail in %s: %s", self.folder, exc)

    def file_count(self) -> int:
        if not self.folder.is_dir():
            return 0
        return sum(len(files) for _root, _dirs, files in os.walk(self.folder)) - 1  # less the tag


_THUMB_NAME = re.compile(r"[0-9a-f]{32}\.jpg")
_SHARD_NAME = re.compile(r"[0-9a-f]{2}")


@dataclass
class PruneReport:
    """What a pruning pass did.

    Attributes:
        removed: files that no photo uses any more, deleted.
        evicted: files still used, deleted (least recently read first) because the cache was over its cap.
        kept: thumbnail files left.
        freed_bytes: what the deleted files held.
        kept_bytes: what the files left hold.
        skipped: entries left alone: not a thumbnail (an odd name, a link, a folder), or unreadable.
    """

    removed: int = 0
    evicted: int = 0
    kept: int = 0
    freed_bytes: int = 0
    kept_bytes: int = 0
    skipped: int = 0


class CachePrune:
    """One pass that deletes the thumbnails of a :class:`DiskThumbnailCache` that no photo uses, in steps.

    A file is deleted only when its ``(stamp, size)`` is none of the wanted ones (a photo that changed, was
    deleted or forgotten), so a file that several photos share (identical files with one stamp) stays as
    long as one of them is wanted. Each :meth:`step` examines a bounded number of entries; run the steps
    one after another (never two at once), on any thread. No thread or file stays open between steps.

    Args:
        cache: the cache to prune.
        stamps: the stamp of every photo that may be shown, read *after* ``started``.
        sizes: the thumbnail sizes in use; a file of any other size is unused.
        started: ``time.time()`` when the pass began, before ``stamps`` were read. Only files last written
            more than :data:`PRUNE_MARGIN_S` before it are ever deleted, so a thumbnail stored while the pass
            runs (for a photo ``stamps`` does not know yet) stays; the margin covers file times that lag the
            clock by a tick.
        cap_bytes: beyond this, used files are deleted too, least recently read first (None: no cap).
        cancel: set from any thread to end the pass at its next entry.

    Entries that are not thumbnails (the ``CACHEDIR.TAG``, a stray file, a link, a temporary file of a
    store in progress) and entries that cannot be read are left alone and counted as skipped.
    """

    def __init__(
        self,
        cache: DiskThumbnailCache,
        stamps: Iterable[str],
        sizes: Iterable[int],
        *,
        started: float,
        cap_bytes: int | None = DISK_CAP_BYTES,
        cancel: threading.Event | None = None,
    ) -> None:
        sizes = tuple(sizes)
        self.cache = cache
        self.report = PruneReport()
        self.done = False
        self.cancel = cancel or threading.Event()
        self._wanted = {cache.name_for(stamp, size) for stamp in stamps for size in sizes}
        self._cutoff_ns = int((started - PRUNE_MARGIN_S) * 1e9)
        self._cap = cap_bytes
        self._shards: list[Path] | None = None
        self._names: list[str] = []
        self._shard = cache.folder
        self._used: list[tuple[int, int, str]] = []  # (last read or write in ns, bytes, name), for the cap
        self._evict: list[tuple[int, int, str]] | None = None

    def step(self, limit: int = PRUNE_CHUNK) -> bool:
        """Examine up to ``limit`` entries (a folder's listing counts as one); True once the pass is over."""
        budget = max(1, limit)
        while budget > 0 and not self.done:
            budget -= 1
            if self.cancel.is_set():
                self.done = True
            elif self._shards is None:
                self._shards = self._list_shards()
            elif self._names:
                self._examine(self._names.pop())
            elif self._shards:
                self._shard = self._shards.pop()
                self._names = self._list(self._shard)
            elif self._evict is None:
                self._evict = self._over_cap()
            elif self._evict:
                self._evict_one(*self._evict.pop())
            else:
                self.done = True
        return self.done

    def run(self) -> PruneReport:
        """Every step at once (tests, and a pool that runs inline)."""
        while not self.step():
            pass
        return self.report

    def _list_shards(self) -> list[Path]:
        shards = []
        try:
            with os.scandir(self.cache.folder) as entries:
                for entry in entries:
                    if _SHARD_NAME.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                        shards.append(Path(entry.path))
                    elif entry.name != "CACHEDIR.TAG":
                        self.report.skipped += 1
        except FileNotFoundError:
            return []  # nothing was ever stored
        except OSError as exc:
            logger.debug("Cannot list the thumbnail cache %s: %s", self.cache.folder, exc)
            self.report.skipped += 1
        return shards

    def _list(self, shard: Path) -> list[str]:
        try:
            with os.scandir(shard) as entries:
                return [entry.name for entry in entries]
        except OSError as exc:
            logger.debug("Cannot list %s: %s", shard, exc)
            self.report.skipped += 1
            return []

    def _examine(self, name: str) -> None:
        report = self.report
        if not _THUMB_NAME.fullmatch(name) or not name.startswith(self._shard.name):
            report.skipped += 1  # not a thumbnail of this cache (or one being written): not ours to judge
            return
        file = self._shard / name
        try:
            info = os.lstat(file)
            if not stat.S_ISREG(info.st_mode):
                report.skipped += 1
                return
            if info.st_mtime_ns >= self._cutoff_ns or name in self._wanted:
                report.kept += 1
                report.kept_bytes += info.st_size
                if self._cap is not None and info.st_mtime_ns < self._cutoff_ns:
                    self._used.append((max(info.st_atime_ns, info.st_mtime_ns), info.st_size, name))
                return
            file.unlink()
        except OSError as exc:  # vanished, unreadable, or in use (Windows)
            logger.debug("Cannot prune %s: %s", file, exc)
            report.skipped += 1
            return
        report.removed += 1
        report.freed_bytes += info.st_size

    def _over_cap(self) -> list[tuple[int, int, str]]:
        """The used files to delete, the most recently read first (they are popped from the end)."""
        if self._cap is None or self.report.kept_bytes <= self._cap:
            return []
        over = self.report.kept_bytes - self._cap
        chosen = []
        for entry in sorted(self._used):
            if over <= 0:
                break
            chosen.append(entry)
            over -= entry[1]
        self._used = []
        chosen.reverse()
        return chosen

    def _evict_one(self, _accessed: int, size: int, name: str) -> None:
        file = self.cache.folder / name[:2] / name
        try:
            if os.lstat(file).st_mtime_ns >= self._cutoff_ns:
                return  # written again since the pass began: it is wanted now
            file.unlink()
        except OSError as exc:
            logger.debug("Cannot evict %s: %s", file, exc)
            return
        self.report.evicted += 1
        self.report.kept -= 1
        self.report.kept_bytes -= size
        self.report.freed_bytes += size


class ThumbnailPruner(QObject):
    """Keeps the disk cache to the thumbnails the catalog still uses: a pass soon after the library opens,
    then one every few hours. GUI thread API.

    Each pass reads the wanted stamps, then runs a :class:`CachePrune` one bounded step per job on ``pool``
    (the controller's read pool) at the lowest priority, so a search or a count waits at most one step.
    :meth:`stop` (quit) ends a pass at its next entry; nothing is left queued.

    Args:
        disk: the cache.
        pool: where the steps run.
        sizes: GUI thread: the thumbnail sizes in use (those of the other sizes are deleted).
        first_ms, every_ms: the delay before the first pass, and between the end of one and the next.
        cap_bytes: the cache's size cap (None: none).

    Signals:
        finished(PruneReport): a pass ended (not when it was stopped).
    """

    finished = Signal(object)

    def __init__(
        self,
        disk: DiskThumbnailCache,
        pool: BackgroundPool,
        *,
        sizes: Callable[[], Iterable[int]],
        first_ms: int = PRUNE_FIRST_MS,
        every_ms: int = PRUNE_EVERY_MS,
        cap_bytes: int | None = DISK_CAP_BYTES,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.disk = disk
        self.first_ms = first_ms
        self.every_ms = every_ms
        self.cap_bytes = cap_bytes
        self._pool = pool
        self._sizes = sizes
        self._stamps: Callable[[], Iterable[str]] | None = None
        self._cancel: threading.Event | None = None  # the running pass's
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.run_now)

    def start(self, stamps: Callable[[], Iterable[str]]) -> None:
        """Prune from now on; ``stamps`` reads the wanted stamps (read-only, on a pool thread)."""
        self._stamps = stamps
        self._timer.start(max(0, self.first_ms))

    @property
    def running(self) -> bool:
        return self._cancel is not None

    def run_now(self) -> bool:
        """Start a pass now, unless one runs (or :meth:`start` was not called). True if one started."""
        if self._stamps is None or self._cancel is not None:
            return False
        self._timer.stop()
        cancel = threading.Event()
        self._cancel = cancel
        read_stamps, disk, cap, inline = self._stamps, self.disk, self.cap_bytes, self._pool.force_sync
        sizes = frozenset(self._sizes())  # a snapshot, taken on the GUI thread
        started = time.time()  # before the stamps are read: see CachePrune

        def begin() -> CachePrune:
            prune = CachePrune(disk, read_stamps(), sizes, started=started, cap_bytes=cap, cancel=cancel)
            if inline:
                prune.run()  # an inline pool would nest one call per step
            else:
                prune.step()
            return prune

        self._submit(begin, cancel)
        return True

    def stop(self) -> None:
        """No more passes; a running one ends at its next entry. GUI thread only."""
        self._stamps = None
        self._timer.stop()
        if self._cancel is not None:
            self._cancel.set()
            self._cancel = None
        self._pool.clear(tag="thumbnail-prune")

    def _submit(self, fn: Callable[[], CachePrune], cancel: threading.Event) -> None:
        self._pool.submit(fn, lambda prune: self._stepped(prune, cancel),
                          lambda error: self._failed(error, cancel), priority=-10, tag="thumbnail-prune")

    def _stepped(self, prune: CachePrune, cancel: threading.Event) -> None:
        if cancel is not self._cancel or cancel.is_set():
            return  # stopped
        if not prune.done:
            def step() -> CachePrune:
                prune.step()
                return prune

            self._submit(step, cancel)
            return
        self._cancel = None
        report = prune.report
        logger.info("Thumbnail cache: %d unused and %d over the cap deleted (%.1f MB), %d kept (%.1f MB)",
                    report.removed, report.evicted, report.freed_bytes / 1e6, report.kept, report.kept_bytes / 1e6)
        self._timer.start(self.every_ms)
        self.finished.emit(report)

    def _failed(self, error: TaskError, cancel: threading.Event) -> None:
        if cancel is not self._cancel:
            return
        self._cancel = None
        logger.warning("Cannot prune the thumbnail cache: %s", error.message)
        self._timer.start(self.every_ms)


class ThumbnailProvider(QObject):
    """Lazily decoded, LRU-cached thumbnails. GUI thread API.

    Args:
        pool: where decoding runs.
        budget_bytes: the cache's memory budget (pixmaps are evicted least recently used first).
        loader: decodes one thumbnail on a pool thread (tests inject their own).
        in_flight: decodes submitted to the pool at once; the rest wait in a newest-first stack.
        disk: where thumbnails persist between runs (requests that pass a ``stamp`` use it).
        disk_sizes: the sizes the disk cache holds; the sizes of requests with a stamp join them.

    Signals:
        ready(photo_id, size): a thumbnail (or its failure) is now in the cache.
    """

    ready = Signal(int, int)

    def __init__(
        self,
        pool: BackgroundPool,
        *,
        budget_bytes: int = 160 * 1024 * 1024,
        loader: Loader = load_qimage,
        in_flight: int = 3,
        disk: DiskThumbnailCache | None = None,
        disk_sizes: Iterable[int] = (GRID_THUMB_SIZE,),
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._pool = pool
        self.disk = disk
        self.disk_sizes = set(disk_sizes)
        self._loader = loader
        self._budget = budget_bytes
        self._in_flight_max = max(1, in_flight)
        # Each thumbnail with the stamp it was made for (None: no stamp was given).
        self._cache: collections.OrderedDict[ThumbKey, tuple[QPixmap, str | None]] = collections.OrderedDict()
        self._bytes = 0
        self._failed: dict[ThumbKey, tuple[str, str | None]] = {}
        self._waiting: collections.OrderedDict[ThumbKey, tuple[Path | str, str | None]] = collections.OrderedDict()
        self._running: dict[ThumbKey, str | None] = {}
        self._epoch = 0
        self._pump_timer = QTimer(self)
        self._pump_timer.setSingleShot(True)
        self._pump_timer.setInterval(0)
        self._pump_timer.timeout.connect(self._pump)

    def get(self, photo_id: int, path: Path | str, size: int, stamp: str | None = None) -> QPixmap | None:
        """The cached thumbnail, or None after queueing its decode (``ready`` follows).

        ``stamp`` identifies the photo's content (see :class:`DiskThumbnailCache`); with one, the thumbnail
        is read from and kept on disk, and a thumbnail cached under another stamp (the photo changed since)
        is dropped and made again.
        """
        key = (photo_id, size)
        if stamp is not None:
            self.disk_sizes.add(size)
        entry = self._cache.get(key)
        if entry is not None:
            if stamp is None or entry[1] == stamp:
                self._cache.move_to_end(key)
                return entry[0]
            self._drop(key)
        failed = self._failed.get(key)
        if failed is not None and stamp is not None and failed[1] != stamp:
            del self._failed[key]  # it changed: it may be readable now
            failed = None
        if failed is not None or key in self._running:
            return None
        self._waiting[key] = (path, stamp)
        self._waiting.move_to_end(key)
        while len(self._waiting) > MAX_QUEUED:
            self._waiting.popitem(last=False)
        if self._pool.force_sync:
            self._pump()  # an inline pool answers at once, as it promises
        elif not self._pump_timer.isActive():
            # Submitted once the paint that asks is over: the pool thread then starts its decodes (and its
            # bursts of Python under the GIL) after the frame, not in the middle of it.
            self._pump_timer.start()
        return None

    def failure(self, photo_id: int, size: int) -> str | None:
        """Why this thumbnail could not be made, if it could not."""
        failed = self._failed.get((photo_id, size))
        return None if failed is None else failed[0]

    def forget_pending(self) -> None:
        """Drop queued requests (a new result set replaces the grid). Running decodes finish."""
        self._waiting.clear()
        self._pump_timer.stop()

    def invalidate(self, photo_ids: set[int] | None = None) -> None:
        """Forget cached thumbnails (files changed), all of them by default."""
        for key in [k for k in self._cache if photo_ids is None or k[0] in photo_ids]:
            self._drop(key)
        for key in [k for k in self._failed if photo_ids is None or k[0] in photo_ids]:
            del self._failed[key]
        if photo_ids is None:
            self._epoch += 1

    def pending(self) -> int:
        """Thumbnails asked for and not ready yet (queued or loading)."""
        return len(self._waiting) + len(self._running)

    @property
    def cached_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._cache)

    def _pump(self) -> None:
        while self._waiting and len(self._running) < self._in_flight_max:
            key, (path, stamp) = self._waiting.popitem(last=True)  # newest first: what is on screen now
            self._running[key] = stamp
            self._submit(key, Path(path), stamp, self._epoch)

    def _submit(self, key: ThumbKey, path: Path, stamp: str | None, epoch: int) -> None:
        loader = self._loader
        disk = self.disk if stamp else None
        size = key[1]

        def load() -> QImage:
            if disk is not None and stamp:
                stored = disk.load(stamp, size)
                if stored is not None:
                    return stored
            image = loader(path, size)
            if disk is not None and stamp:
                disk.store(stamp, size, image)
            return image

        self._pool.submit(
            load,
            lambda image: self._arrived(key, stamp, epoch, image),
            lambda error: self._broken(key, stamp, epoch, error),
        )

    def _arrived(self, key: ThumbKey, stamp: str | None, epoch: int, image: QImage) -> None:
        self._running.pop(key, None)
        if epoch == self._epoch:
            if image.isNull():
                self._failed[key] = ("empty image", stamp)
            else:
                # The one QPixmap conversion of this thumbnail (GUI thread only); painting blits it as it is.
                pixmap = QPixmap.fromImage(image)
                self._drop(key)
                self._cache[key] = (pixmap, stamp)
                self._bytes += _pixmap_bytes(pixmap)
                self._evict()
            self.ready.emit(key[0], key[1])
        self._pump()

    def _broken(self, key: ThumbKey, stamp: str | None, epoch: int, error: TaskError) -> None:
        self._running.pop(key, None)
        if epoch == self._epoch:
            self._failed[key] = (error.message, stamp)
            self.ready.emit(key[0], key[1])
        self._pump()

    def _drop(self, key: ThumbKey) -> None:
        entry = self._cache.pop(key, None)
        if entry is not None:
            self._bytes -= _pixmap_bytes(entry[0])

    def _evict(self) -> None:
        while self._bytes > self._budget and len(self._cache) > 1:
            _, (pixmap, _stamp) = self._cache.popitem(last=False)
            self._bytes -= _pixmap_bytes(pixmap)


def _pixmap_bytes(pixmap: QPixmap) -> int:
    return pixmap.width() * pixmap.height() * max(1, pixmap.depth() // 8)
