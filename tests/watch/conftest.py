"""A watch service on a temporary root, run on a worker thread as the GUI runs it, with bounded waits."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from photoembed.config import Settings
from photoembed.core.indexer import Indexer
from photoembed.storage.catalog import Catalog
from photoembed.watch.events import RootState, WatchEvent, WatchOptions
from photoembed.watch.service import WatchService

WAIT_S = 10.0  # every wait in these tests is bounded by this

# Fast timings so that each test settles in about a second; the logic is the same as with the defaults.
# The quiet period stays above watchdog's 0.5 s wait for the second half of a move: a move whose halves
# arrive in two batches is still synced correctly, but as a new row instead of a moved one.
FAST = WatchOptions(
    quiet_s=0.7,
    max_latency_s=3.0,
    stable_s=0.2,
    open_write_timeout_s=5.0,
    health_interval_s=0.3,
    heartbeat_s=0.5,
    poll_interval_s=0.2,
    retry_s=0.5,
)


def wait_until(predicate: Callable[[], bool], *, timeout: float = WAIT_S, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class Running:
    """A service running on a worker thread; what it yields is collected in ``events``."""

    service: WatchService
    catalog: Catalog
    root: Path
    thread: threading.Thread
    cancel: threading.Event
    queue: queue.Queue[Any] = field(default_factory=queue.Queue)
    events: list[WatchEvent] = field(default_factory=list)
    error: list[BaseException] = field(default_factory=list)

    def drain(self) -> list[WatchEvent]:
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return self.events
            self.events.append(item)

    def paths(self) -> set[str]:
        return {p.path.relative_to(self.root).as_posix() for p in self.catalog.iter_photos(only_ok=False)
                if self.root in p.path.parents}

    def rows(self) -> dict[str, Any]:
        return {p.path.relative_to(self.root).as_posix(): p for p in self.catalog.iter_photos(only_ok=False)
                if self.root in p.path.parents}

    def wait_paths(self, expected: set[str], *, timeout: float = WAIT_S) -> None:
        wait_until(lambda: self.paths() == expected, timeout=timeout, what=f"catalog == {sorted(expected)}")

    def wait_event(self, predicate: Callable[[WatchEvent], bool], *, what: str) -> WatchEvent:
        found: list[WatchEvent] = []

        def seen() -> bool:
            found.extend(e for e in self.drain() if predicate(e) and e not in found)
            return bool(found)

        wait_until(seen, what=what)
        return found[0]

    def state(self) -> RootState:
        return next(s for s in self.service.root_states() if s.path == self.root)

    def wait_mode(self, mode: str) -> RootState:
        wait_until(lambda: self.state().mode == mode, what=f"root mode {mode}")
        return self.state()

    def indexed_events(self) -> list[WatchEvent]:
        return [e for e in self.drain() if e.kind == "indexed"]


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog.open(tmp_path / "home" / "catalog.sqlite3")
    yield cat
    cat.close()


@pytest.fixture
def root(tmp_path: Path, catalog: Catalog) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    catalog.add_root(folder)
    return folder.resolve()


def make_indexer(catalog: Catalog) -> Indexer:
    return Indexer(catalog=catalog, settings=Settings(), encoder=None, vector_index=None, batch_size=8,
                   decode_workers=1)


@pytest.fixture
def start_service(catalog: Catalog, root: Path) -> Iterator[Callable[..., Running]]:
    """Start a service (keyword arguments go to WatchService); stopped and joined at teardown."""
    started: list[Running] = []

    def start(*, wait_first_sync: bool = True, **kwargs: Any) -> Running:
        kwargs.setdefault("options", FAST)
        service = WatchService(
            catalog=catalog, indexer_factory=lambda: make_indexer(catalog), settings=Settings(), **kwargs
        )
        cancel = threading.Event()
        running = Running(service, catalog, root, threading.Thread(target=lambda: None), cancel)

        def work() -> None:
            try:
                for item in service.run(cancel):
                    if isinstance(item, WatchEvent):
                        running.queue.put(item)
            except BaseException as exc:  # noqa: BLE001 - re-raised by the test at teardown
                running.error.append(exc)

        running.thread = threading.Thread(target=work, name="test-watch", daemon=True)
        running.thread.start()
        started.append(running)
        if wait_first_sync:
            running.wait_event(lambda e: e.kind == "indexed" and e.reconcile, what="the start-up reconcile")
        return running

    yield start
    for running in started:
        running.service.stop()
        running.thread.join(timeout=WAIT_S)
        assert not running.thread.is_alive(), "the watch service did not stop"
        if running.error:
            raise running.error[0]
