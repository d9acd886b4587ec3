"""The watchdog adapter: one observer per root, native where possible, polling where not.

Observer callbacks run on watchdog's threads. They only translate the event into a :class:`RawEvent` and put
it on the :class:`EventSink` queue; they never touch the catalog. When the queue is full, or the kernel
dropped events (inotify queue overflow), the root is marked for a reconcile instead.

A root falls back to polling when its file system does not deliver native events for changes made
elsewhere (network shares, FUSE mounts: see :mod:`photoembed.watch.filesystems`) or when the native
observer cannot start (inotify watch or instance limit reached). Its mode and the reason are kept in a
:class:`RootState`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from photoembed.watch.events import RawEvent, RawKind, RootState, WatchMode
from photoembed.watch.filesystems import FolderIdentity, folder_identity, is_mount_point, mount_of

logger = logging.getLogger(__name__)

# Only what can change the catalog. Opens, reads and closes without a write are left out, so the indexer
# reading a photo does not make it dirty again; folder "modified" events only repeat their files' events.
EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent, DirCreatedEvent, FileModifiedEvent, FileAttribEvent, FileClosedEvent,
    FileDeletedEvent, DirDeletedEvent, FileMovedEvent, DirMovedEvent,
]

ObserverFactory = Callable[[], BaseObserver]

#: Tries to add (and at once removes) an inotify watch on a folder; raises OSError when it cannot.
WatchProbe = Callable[[str], None]


def inotify_probe(path: str) -> None:
    """Raise OSError (ENOSPC: watch limit, EMFILE: instance limit) when no inotify watch can be added now.

    watchdog adds a watch on each folder created below a watched root, but ignores a failure to do so: at
    the watch limit the new folder's photos would never be seen. Probing with a watch of our own, right
    after watchdog tried, tells that the limit is reached. A no-op where inotify does not exist.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = _libc()
    fd = libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    try:
        wd = libc.inotify_add_watch(fd, os.fsencode(path), _IN_CREATE)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)  # drops the probe's watch too


_IN_CREATE = 0x00000100


@functools.cache
def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


class EventSink:
    """The thread-safe hand-off from observer threads to the watch service.

    Args:
        maxsize: raw events kept at most; beyond, events are dropped and their root is reconciled instead.
    """

    def __init__(self, maxsize: int = 200_000) -> None:
        self.queue: queue.Queue[RawEvent | None] = queue.Queue(maxsize=maxsize)
        self._lock = threading.Lock()
        self._lost: set[str] = set()

    def put(self, event: RawEvent, *, root: str) -> None:
        """Observer thread: queue an event without blocking."""
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.lost(root)

    def lost(self, root: str) -> None:
        """Any thread: events under ``root`` were lost; the service reconciles it."""
        with self._lock:
            first = not self._lost
            self._lost.add(root)
        if first:
            self.wake()

    def take_lost(self) -> set[str]:
        with self._lock:
            lost, self._lost = self._lost, set()
        return lost

    def wake(self) -> None:
        """Any thread: make the service look at its state now (a None on the queue is only a wake-up)."""
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(None)

    def get(self, timeout: float) -> RawEvent | None:
        """Service thread: the next event, or None after ``timeout`` seconds or on a wake-up."""
        try:
            return self.queue.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None

    def drain(self, limit: int = 100_000) -> list[RawEvent]:
        """Service thread: everything queued right now (up to ``limit``)."""
        events: list[RawEvent] = []
        for _ in range(limit):
            try:
                event = self.queue.get_nowait()
            except queue.Empty:
                break
            if event is not None:
                events.append(event)
        return events


def translate(event: FileSystemEvent, *, expects_close: bool) -> RawEvent | None:
    """A watchdog event as a :class:`RawEvent`, or None when it cannot change the catalog."""
    src = os.fsdecode(event.src_path)
    dest = os.fsdecode(event.dest_path) if event.dest_path else ""
    is_dir = event.is_directory
    kind: RawKind
    match event.event_type:
        case "created":
            kind = "created"
        case "deleted":
            kind = "deleted"
        case "modified" if not is_dir:
            kind = "modified"
        case "attrib" if not is_dir:
            kind = "attrib"
        case "closed":
            kind = "closed"
        case "moved" if src and dest:
            kind = "moved"
        case "moved" if dest:  # moved in from an unwatched place
            return RawEvent("created", dest, is_dir=is_dir)
        case "moved" if src:  # moved out to an unwatched place
            return RawEvent("deleted", src, is_dir=is_dir)
        case _:
            return None
    return RawEvent(kind, src, dest=dest if kind == "moved" else "", is_dir=is_dir, expects_close=expects_close)


class _Handler(FileSystemEventHandler):
    """Observer thread: translate and queue, nothing else (and tell ``on_new_folder`` of new folders)."""

    def __init__(
        self, root: str, sink: EventSink, *, expects_close: bool, on_new_folder: Callable[[str], None] | None = None
    ) -> None:
        super().__init__()
        self.root = root
        self.sink = sink
        self.expects_close = expects_close
        self.on_new_folder = on_new_folder

    def on_any_event(self, event: FileSystemEvent) -> None:
        raw = translate(event, expects_close=self.expects_close)
        if raw is not None:
            self.sink.put(raw, root=self.root)
            if raw.is_dir and self.on_new_folder is not None and raw.kind in ("created", "moved"):
                self.on_new_folder(raw.dest or raw.path)


def native_observer() -> BaseObserver:
    return Observer()


def polling_observer(interval_s: float) -> ObserverFactory:
    def make() -> BaseObserver:
        return PollingObserver(timeout=interval_s)

    return make


class RootWatcher:
    """Watches one root folder recursively; keeps its :class:`RootState`.

    Args:
        root: the library folder.
        sink: where events go.
        native_factory: builds the native observer (injectable: tests force failures with it).
        polling_factory: builds the polling observer.
        force_polling: poll even where native events would work.
        probe: checks that an inotify watch can still be added (injectable: tests force the watch limit).
        clock: wall-clock seconds for :attr:`RootState.since`.

    Thread contract: start, stop and check from the watch service's thread only.
    """

    def __init__(
        self,
        root: Path,
        *,
        sink: EventSink,
        native_factory: ObserverFactory = native_observer,
        polling_factory: ObserverFactory,
        force_polling: bool = False,
        clock: Callable[[], float] = time.time,
        probe: WatchProbe | None = None,
    ) -> None:
        self.root = root
        self.sink = sink
        self.native_factory = native_factory
        self.polling_factory = polling_factory
        self.force_polling = force_polling
        self.clock = clock
        self.state = RootState(root, "starting", since=clock())
        self.probe = probe if probe is not None else inotify_probe
        self._observer: BaseObserver | None = None
        self._identity: FolderIdentity | None = None
        self._was_mount_point = False
        # Set (from an observer thread) when a folder created below the root could not get a watch: from
        # then on the root is polled, for the rest of this watcher's life.
        self._native_lost: str | None = None

    @property
    def mode(self) -> WatchMode:
        return self.state.mode

    def start(self) -> RootState:
        """Start watching (native, else polling); an unreachable root is "offline"."""
        self.stop()
        if not self.present():
            return self._set("offline", "folder not reachable; its photos are kept until it is back")
        try:
            self._identity = folder_identity(self.root)
        except OSError as exc:
            return self._set("offline", f"folder not reachable: {exc.strerror or exc}")
        self._was_mount_point = self._was_mount_point or is_mount_point(self.root)
        reason = ""
        if self.force_polling:
            reason = "polling requested"
        elif self._native_lost is not None:
            reason = self._native_lost
        else:
            mount = mount_of(self.root)
            if mount is not None and mount.remote:
                reason = f"{mount.fs_type} file system: native change events would miss changes made elsewhere"
        if not reason:
            try:
                self._observer = self._launch(self.native_factory, expects_close=sys.platform.startswith("linux"))
                # watchdog ignores folders below the root that it could not watch: at the limit, some may
                # have none. One more watch of our own tells whether the limit was reached.
                self.probe(str(self.root))
            except OSError as exc:
                self.stop()
                reason = _native_failure(exc)
                logger.warning("Cannot watch %s natively (%s); polling it instead", self.root, reason)
            else:
                return self._set("native", "")
        try:
            self._observer = self._launch(self.polling_factory, expects_close=False)
        except OSError as exc:
            logger.warning("Cannot watch %s: %s", self.root, exc)
            return self._set("error", f"cannot watch the folder: {exc.strerror or exc}")
        return self._set("polling", reason)

    def _launch(self, factory: ObserverFactory, *, expects_close: bool) -> BaseObserver:
        observer = factory()
        try:
            handler = _Handler(
                str(self.root), self.sink, expects_close=expects_close,
                on_new_folder=self._check_new_folder if factory is self.native_factory else None,
            )
            observer.schedule(handler, str(self.root), recursive=True, event_filter=EVENT_FILTER)
            observer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                observer.stop()
            raise
        return observer

    def _check_new_folder(self, path: str) -> None:
        """Observer thread: a folder appeared below the root; make sure it could be watched."""
        if self._native_lost is not None:
            return
        try:
            self.probe(path)
        except FileNotFoundError:
            return  # gone already: nothing to watch
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EMFILE):
                return
            self._native_lost = f"{_native_failure(exc)}; new folders could not be watched, so polling instead"
            logger.warning("Cannot watch %s natively any more (%s)", path, self._native_lost)
            self.sink.lost(str(self.root))  # reconcile: what landed in the unwatched folder gets indexed
            self.sink.wake()

    def stop(self) -> None:
        observer, self._observer = self._observer, None
        if observer is None:
            return
        with contextlib.suppress(Exception):
            observer.stop()
        with contextlib.suppress(RuntimeError):
            observer.join(timeout=5.0)

    def mark_offline(self) -> RootState:
        self.stop()
        return self._set("offline", "folder not reachable; its photos are kept until it is back")

    def present(self) -> bool:
        """Whether the root is reachable: a folder, and still a mount point if it was one (an unplugged
        drive leaves its empty mount folder behind, which must not read as "every photo deleted")."""
        if not self.root.is_dir():
            return False
        return not (self._was_mount_point and not is_mount_point(self.root))

    def healthy(self) -> bool:
        """Whether the observer and its emitter threads still run on the same folder."""
        observer = self._observer
        if observer is None or not observer.is_alive():
            return False
        if not all(emitter.is_alive() for emitter in observer.emitters) or not observer.emitters:
            return False
        # The inotify observer reads the kernel queue on one more thread of its own (not public API, hence
        # the getattr): if it died, the emitters live on but never hear of anything again.
        reader = getattr(observer, "_inotify_fd", None)
        if isinstance(reader, threading.Thread) and not reader.is_alive():
            return False
        if self._native_lost is not None and self.state.mode == "native":
            return False  # the watch limit was reached: restart as polling
        try:
            identity = folder_identity(self.root)
        except OSError:
            return False
        # Deleted and re-created (or replaced by a move) since we started: the old watch sees nothing. The
        # identity includes the inode's generation or birth time, since ext4 reuses inode numbers.
        return identity == self._identity

    def _set(self, mode: WatchMode, reason: str) -> RootState:
        if mode != self.state.mode or reason != self.state.reason:
            self.state = RootState(self.root, mode, reason, since=self.clock())
        return self.state


def _native_failure(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "inotify watch limit reached (raise fs.inotify.max_user_watches)"
    if exc.errno == errno.EMFILE:
        return "inotify instance limit reached (raise fs.inotify.max_user_instances)"
    return f"native change events unavailable: {exc.strerror or exc}"


class OverflowHook(logging.Filter):
    """Notices watchdog's "inotify queue overflowed" log record: the kernel dropped events.

    watchdog rebuilds its watches but has no other way to say that events were lost, so this filter,
    attached to its inotify loggers while the service runs, calls ``on_overflow`` (any thread). It never
    suppresses the record.
    """

    LOGGERS = ("watchdog.observers.inotify_c", "watchdog.observers.inotify")

    def __init__(self, on_overflow: Callable[[], None]) -> None:
        super().__init__()
        self.on_overflow = on_overflow

    def filter(self, record: logging.LogRecord) -> bool:
        if "overflow" in str(record.msg).lower():
            self.on_overflow()
        return True

    def attach(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).addFilter(self)

    def detach(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeFilter(self)
