"""A sync that fails, even with an unexpected exception, never ends watching: it is retried with an
exponential backoff that the status (state file) tells, and the count resets once a sync succeeds."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from photoembed.config import Settings
from photoembed.core.indexer import Indexer, Progress, SyncReport
from photoembed.storage.catalog import Catalog
from photoembed.watch.events import WatchEvent
from photoembed.watch.service import WatchService
from photoembed.watch.state import read_watch_state_file
from tests.conftest import make_photo
from tests.watch.conftest import FAST, make_indexer, wait_until


class FlakyIndexer:
    """The real indexer, whose first ``failures`` syncs raise an error no one expected."""

    def __init__(self, indexer: Indexer, failures: int) -> None:
        self.indexer = indexer
        self.failures = failures
        self.attempts: list[float] = []

    @property
    def report(self) -> SyncReport:
        return self.indexer.report

    def sync(self, *, paths: Iterable[Path] | None = None, cancel: threading.Event | None = None) -> Iterator[Progress]:
        self.attempts.append(time.monotonic())
        if len(self.attempts) <= self.failures:
            raise RuntimeError(f"bug number {len(self.attempts)}")
        yield from self.indexer.sync(paths=paths, cancel=cancel)


def test_failing_syncs_back_off_exponentially_and_say_so(
    catalog: Catalog, root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = FlakyIndexer(make_indexer(catalog), failures=3)
    state_file = tmp_path / "watch.json"
    service = WatchService(
        catalog=catalog,
        indexer_factory=lambda: flaky,
        settings=Settings(),
        options=replace(FAST, retry_s=0.3),
        state_file=state_file,
    )
    events: list[WatchEvent] = []
    states: list[dict[str, object]] = []
    errors: list[BaseException] = []
    cancel = threading.Event()

    def work() -> None:
        try:
            for item in service.run(cancel):
                if isinstance(item, WatchEvent):
                    events.append(item)
                    if item.kind == "error":
                        state = read_watch_state_file(state_file)
                        if state is not None:
                            states.append(state)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    make_photo(root / "a.jpg", seed=1)
    thread = threading.Thread(target=work)
    with caplog.at_level(logging.ERROR, logger="photoembed.watch.service"):
        thread.start()
        try:
            wait_until(lambda: catalog.photo_by_path(root / "a.jpg") is not None, what="the photo after retries")
            wait_until(lambda: any(e.kind == "indexed" for e in events), what="the successful batch")
            final = read_watch_state_file(state_file)
        finally:
            cancel.set()
            thread.join(10)
            flaky.indexer.close()
    assert not errors
    failed = [e for e in events if e.kind == "error"]
    assert [f"failure {n} in a row" in e.message for n, e in enumerate(failed, start=1)] == [True] * 3
    assert all("internal error: RuntimeError" in e.message for e in failed)
    retries = [s["retry"] for s in states]
    assert [r["failures"] for r in retries] == [1, 2, 3]  # type: ignore[index]
    assert [r["delay_s"] for r in retries] == pytest.approx([0.3, 0.6, 1.2])  # type: ignore[index]
    gaps = [b - a for a, b in zip(flaky.attempts, flaky.attempts[1:], strict=False)]
    assert gaps[0] >= 0.3
    assert gaps[1] >= 0.6
    assert gaps[2] >= 1.2
    assert sum(1 for r in caplog.records if r.exc_info is not None) == 3  # each traceback logged
    assert final is not None
    assert final["retry"] is None  # reset by the sync that worked
