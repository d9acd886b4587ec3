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
import threading
from collections.abc import Callable
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
        digest = hashlib.blake2b(f"{stamp}|{size}".encode(), digest_size=16).hexdigest()
        return self.folder / digest[:2] / f"{digest}.jpg"

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


class ThumbnailProvider(QObject):
    """Lazily decoded, LRU-cached thumbnails. GUI thread API.

    Args:
        pool: where decoding runs.
        budget_bytes: the cache's memory budget (pixmaps are evicted least recently used first).
        loader: decodes one thumbnail on a pool thread (tests inject their own).
        in_flight: decodes submitted to the pool at once; the rest wait in a newest-first stack.
        disk: where thumbnails persist between runs (requests that pass a ``stamp`` use it).

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
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._pool = pool
        self.disk = disk
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
