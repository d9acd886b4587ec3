"""``photoembed bench watch-stress``: file-system storms against a live watcher, and whether it keeps up.

In a temporary library with no model (photos are catalogued, hashed and fingerprinted, not embedded), the
watch service runs on a worker thread as the GUI runs it, while this thread makes storms: files created
in bursts, renamed, a folder moved within the root then out of it, files overwritten in place, deleted,
and the root deleted and re-created. After each storm it waits until the library settles and checks that
the index equals the disk: no photo missing, no stale entry (gone, or not matching the file's bytes), no
duplicate row. It prints the time to settle (from the storm's last file operation to the catalog equal to
the disk) and how many syncs it took.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from photoembed.core.scanner import ScanRules
    from photoembed.storage.catalog import Catalog
    from photoembed.watch.events import WatchEvent, WatchOptions

# numpy, Pillow, the library and the watch service are imported where they are used, so that building the
# command-line parser (which registers this benchmark) stays fast.

def register_bench(bench_subparsers: Any) -> None:
    parser = bench_subparsers.add_parser(
        "watch-stress", help="file-system storms against the watcher; prints time to settle and index == disk"
    )
    parser.add_argument("--files", type=int, default=2000, help="photos in the creation storm (default 2000)")
    parser.add_argument("--polling", action="store_true", help="watch by polling instead of native events")
    parser.add_argument(
        "--settle-timeout", type=float, default=120.0, help="seconds to wait for each storm to settle"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary library and print its path")
    parser.set_defaults(handler=cmd_watch_stress)


def cmd_watch_stress(args: argparse.Namespace, library_factory: Callable[[], Any]) -> int:
    del library_factory  # the benchmark makes its own temporary library
    if args.files < 8:
        sys.stderr.write("photoembed: --files must be at least 8\n")
        return 2
    work = Path(tempfile.mkdtemp(prefix="photoembed-watch-stress-"))
    try:
        results = run_storms(
            work, files=args.files, polling=args.polling, settle_timeout=args.settle_timeout, log=_log_line
        )
    finally:
        if args.keep:
            sys.stderr.write(f"kept {work}\n")
        else:
            shutil.rmtree(work, ignore_errors=True)
    ok = all(r.consistent for r in results)
    if args.json:
        json.dump({"files": args.files, "polling": args.polling, "storms": [r.to_json() for r in results],
                   "ok": ok}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_table(results, files=args.files, polling=args.polling)
    return 0 if ok else 1


def _log_line(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


@dataclass
class Check:
    """Index versus disk for the roots that are online."""

    on_disk: int = 0
    rows: int = 0
    missing: int = 0
    stale: int = 0
    duplicates: int = 0

    @property
    def consistent(self) -> bool:
        return self.missing == 0 and self.stale == 0 and self.duplicates == 0 and self.rows == self.on_disk


@dataclass
class StormResult:
    name: str
    operations: int
    settle_s: float | None
    syncs: int
    check: Check
    expect: str = "index == disk"
    sync_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return self.settle_s is not None and self.check.consistent

    def to_json(self) -> dict[str, Any]:
        return {
            "storm": self.name,
            "operations": self.operations,
            "settle_s": None if self.settle_s is None else round(self.settle_s, 2),
            "syncs": self.syncs,
            "sync_s": round(self.sync_s, 2),
            "on_disk": self.check.on_disk,
            "rows": self.check.rows,
            "missing": self.check.missing,
            "stale": self.check.stale,
            "duplicates": self.check.duplicates,
            "expect": self.expect,
            "ok": self.consistent,
            "notes": self.notes,
        }


class PhotoMaker:
    """Distinct small JPEGs (64x64, seeded noise over a gradient), generated in memory."""

    def __init__(self) -> None:
        self.seed = 0

    def next(self) -> bytes:
        import numpy as np
        from PIL import Image

        self.seed += 1
        rng = np.random.default_rng(self.seed)
        base = np.linspace(0, 255, 64, dtype=np.float32)[None, :, None] * rng.uniform(0.2, 1.0, size=3)
        pixels = np.clip(base + rng.normal(0, 40, size=(64, 64, 3)), 0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format="JPEG", quality=85)
        return out.getvalue()


def write_in_chunks(path: Path, data: bytes, *, chunks: int = 3) -> None:
    """Write like a copy does: several writes, the file visible (and half-written) between them."""
    step = max(1, len(data) // chunks)
    with open(path, "wb") as handle:
        for start in range(0, len(data), step):
            handle.write(data[start : start + step])
            handle.flush()


class Harness:
    """A temporary library, its watcher on a worker thread, and the means to wait for it to settle."""

    def __init__(
        self, work: Path, *, polling: bool, log: Callable[[str], None], options: WatchOptions | None = None
    ) -> None:
        from photoembed.config import Paths
        from photoembed.core.scanner import ScanRules
        from photoembed.library import Library
        from photoembed.watch.events import WatchOptions
        from photoembed.watch.service import WatchService

        self.work = work
        self.root = work / "photos"
        self.root.mkdir(parents=True)
        self.outside = work / "elsewhere"
        self.outside.mkdir()
        self.library = Library(Paths.resolve(work / "home"))
        self.library.catalog.add_root(self.root)
        self.rules = ScanRules(tuple(self.library.settings.excluded_patterns), self.library.settings.include_hidden)
        self.service = WatchService.for_library(
            self.library, options=options or WatchOptions(), force_polling=polling
        )
        self.events: queue.Queue[WatchEvent | BaseException | None] = queue.Queue()
        self.cancel = threading.Event()
        self.log = log
        self.thread = threading.Thread(target=self._run, name="photoembed-watch", daemon=True)
        self.sync_s = 0.0  # time spent in syncs during the last settle()
        self.synced_since_settle = False

    def _run(self) -> None:
        from photoembed.watch.events import WatchEvent

        try:
            for item in self.service.run(self.cancel):
                if isinstance(item, WatchEvent):  # progress records are not needed here
                    self.events.put(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises it
            self.events.put(exc)
        finally:
            self.events.put(None)

    def start(self, timeout: float) -> float:
        started = time.monotonic()
        self.thread.start()
        for event in self._events(timeout):
            if event.kind == "indexed":
                break
        return time.monotonic() - started

    def close(self) -> None:
        self.cancel.set()
        self.service.stop()
        self.thread.join(timeout=30)
        self.library.close()

    def _events(self, timeout: float) -> Iterator[WatchEvent]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                item = self.events.get(timeout=left)
            except queue.Empty:
                return
            if item is None:
                raise RuntimeError("the watch service stopped")
            if isinstance(item, BaseException):
                raise item
            yield item

    def settle(self, *, since: float, timeout: float, until: Callable[[], bool]) -> tuple[float | None, int]:
        """Wait until ``until()`` holds after a sync (or now); returns (seconds since ``since``, syncs).

        The time is taken when the event that made it hold arrived, not after the check (which reads and
        hashes every file).
        """
        self.sync_s = 0.0
        self.synced_since_settle = False
        syncs = 0
        if until():
            return time.monotonic() - since, 0
        for event in self._events(timeout):
            arrived = time.monotonic()
            if event.kind == "indexed":
                syncs += 1
                self.sync_s += event.duration_s
                self.synced_since_settle = True
            if event.kind in ("indexed", "root") and until():
                return arrived - since, syncs
        return None, syncs

    def check(self) -> Check:
        return compare(self.library.catalog, [self.root] if self.root.is_dir() else [], self.rules)

    def settle_consistent(
        self, since: float, timeout: float, *, need_sync: bool = False
    ) -> tuple[float | None, int, Check]:
        """Settled when the index equals the disk (and, with ``need_sync``, once a sync ran: the catalog
        may already be right, as when an unplugged root comes back unchanged, but the watcher is not back
        until it has reconciled)."""
        settle_s, syncs = self.settle(
            since=since,
            timeout=timeout,
            until=lambda: (not need_sync or self.synced_since_settle) and self.check().consistent,
        )
        return settle_s, syncs, self.check()


def compare(catalog: Catalog, roots: list[Path], rules: ScanRules) -> Check:
    """Index versus disk under ``roots``: missing, stale (gone or other bytes) and duplicate rows."""
    from photoembed.core.hashing import content_hash
    from photoembed.core.scanner import ScannedFile, scan

    check = Check()
    disk: dict[str, ScannedFile] = {}
    for root in roots:
        for item in scan(root, rules=rules):
            if isinstance(item, ScannedFile):
                disk[item.path] = item
    check.on_disk = len(disk)
    rows_by_path: dict[str, int] = collections.Counter()
    rows_by_hash: dict[str | None, int] = collections.Counter()
    disk_by_hash: dict[str, int] = collections.Counter()
    root_ids = {r.id for r in catalog.roots() if r.path in roots}
    for photo in catalog.iter_photos(only_ok=False):
        if photo.root_id not in root_ids:
            continue
        path = str(photo.path)
        rows_by_path[path] += 1
        rows_by_hash[photo.content_hash] += 1
        check.rows += 1
        file = disk.get(path)
        if file is None:
            check.stale += 1
            continue
        try:
            data = Path(path).read_bytes()
        except OSError:
            check.stale += 1
            continue
        if photo.state != "ok" or photo.content_hash != content_hash(data) or photo.size != file.size:
            check.stale += 1
    for path in disk:
        if path not in rows_by_path:
            check.missing += 1
        else:
            disk_by_hash[content_hash(Path(path).read_bytes())] += 1
    check.duplicates = sum(max(0, n - 1) for n in rows_by_path.values()) + sum(
        max(0, n - disk_by_hash.get(h or "", 0)) for h, n in rows_by_hash.items() if h is not None
    )
    return check


def run_storms(
    work: Path,
    *,
    files: int,
    polling: bool,
    settle_timeout: float,
    log: Callable[[str], None],
    options: WatchOptions | None = None,
    burst_pause_s: float = 0.3,
) -> list[StormResult]:
    """Make every storm in turn; one :class:`StormResult` each (``options``: the watcher's timings)."""
    maker = PhotoMaker()
    harness = Harness(work, polling=polling, log=log, options=options)
    results: list[StormResult] = []
    try:
        harness.start(settle_timeout)
        folder_size = max(2, min(500, files // 4))
        moved_count = max(1, min(500, files // 4))
        changed_count = max(1, min(200, files // 10))
        burst = max(1, min(100, files // 20))

        # 1. Files created in bursts, written in chunks (a camera import), into folders of folder_size.
        log(f"storm 1: creating {files} photos in bursts of {burst}")
        payloads = [maker.next() for _ in range(files)]
        created: list[Path] = []
        for start in range(0, files, burst):
            for index in range(start, min(files, start + burst)):
                folder = harness.root / "import" / f"{index // folder_size:03d}"
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"IMG_{index:05d}.jpg"
                write_in_chunks(path, payloads[index])
                created.append(path)
            time.sleep(burst_pause_s)
        results.append(_storm(harness, "create in bursts", files, settle_timeout))

        # 2. Renames, within their folders.
        log(f"storm 2: renaming {moved_count} photos")
        ids = _row_ids(harness)
        renamed: list[Path] = []
        for path in created[folder_size : folder_size + moved_count]:
            target = path.with_name(f"renamed-{path.name}")
            path.rename(target)
            renamed.append(target)
        results.append(_storm(harness, "rename", len(renamed), settle_timeout, ids_before=ids))

        # 3. A folder moved within the root, then out of it.
        album = harness.root / "import" / f"{0:03d}"
        log(f"storm 3: moving a folder of {folder_size} photos within the root, then out of it")
        target = harness.root / "albums" / "2024 summer"
        target.parent.mkdir()
        ids = _row_ids(harness)
        album.rename(target)
        results.append(_storm(harness, "move folder within root", folder_size, settle_timeout, ids_before=ids))
        target.rename(harness.outside / "2024 summer")
        results.append(_storm(harness, "move folder out of root", folder_size, settle_timeout))

        # 4. Overwritten in place (new bytes, same name), 5. deleted.
        remaining = sorted(p for p in harness.root.rglob("*.jpg"))
        log(f"storm 4: overwriting {changed_count} photos in place")
        for path in remaining[:changed_count]:
            write_in_chunks(path, maker.next())
        results.append(_storm(harness, "overwrite in place", changed_count, settle_timeout))
        log(f"storm 5: deleting {changed_count} photos")
        for path in remaining[changed_count : 2 * changed_count]:
            path.unlink()
        results.append(_storm(harness, "delete", changed_count, settle_timeout))

        # 6. The root unplugged (it vanishes at once, as an unmounted drive does): offline, photos kept;
        # plugged back: reconciled, the same rows.
        log("storm 6: unplugging the root, then plugging it back")
        results.append(_offline(harness, "unplug root", lambda: harness.root.rename(harness.work / "unplugged"),
                                settle_timeout, expect_kept=True))
        ids = _row_ids(harness)
        (harness.work / "unplugged").rename(harness.root)
        results.append(_storm(harness, "plug root back", 1, settle_timeout, ids_before=ids, need_sync=True))

        # 7. The root deleted file by file (rm -r), then re-created with other photos. While it is being
        # deleted, the files already gone may be dropped; once it is gone, the rest is kept (offline).
        log("storm 7: deleting the root, then re-creating it")
        results.append(_offline(harness, "delete root", lambda: shutil.rmtree(harness.root), settle_timeout,
                                expect_kept=False))
        harness.root.mkdir()
        fresh = max(1, files // 10)
        for index in range(fresh):
            write_in_chunks(harness.root / f"new-{index:04d}.jpg", maker.next())
        results.append(_storm(harness, "re-create root", fresh + 1, settle_timeout))
    finally:
        harness.close()
    return results


def _offline(
    harness: Harness, name: str, action: Callable[[], object], timeout: float, *, expect_kept: bool
) -> StormResult:
    """Make the root go away; settled when the watcher reports it offline. With ``expect_kept``, every row
    must still be there (an unplugged drive's photos are not deleted)."""
    catalog = harness.library.catalog
    before = len(catalog.file_states(catalog.roots()[0].id))
    action()
    end = time.monotonic()
    settle_s, syncs = harness.settle(
        since=end, timeout=timeout, until=lambda: any(s.mode == "offline" for s in harness.service.root_states())
    )
    kept = len(catalog.file_states(catalog.roots()[0].id))
    if expect_kept:
        check = Check(on_disk=before, rows=kept, missing=before - kept)
        result = StormResult(name, 1, settle_s, syncs, check, expect="offline, every row kept")
    else:
        # Rows of files deleted before the root itself went are rightly dropped; the rest is kept.
        check = Check(on_disk=kept, rows=kept)
        result = StormResult(name, 1, settle_s, syncs, check, expect="offline, rows kept")
        result.notes.append(f"{before - kept} of {before} rows dropped while the files were being deleted")
    harness.log(f"  {name}: offline after {_seconds(settle_s)}; {kept} of {before} rows kept")
    return result


def _row_ids(harness: Harness) -> dict[str | None, int]:
    return {p.content_hash: p.id for p in harness.library.catalog.iter_photos()}


def _storm(
    harness: Harness,
    name: str,
    operations: int,
    timeout: float,
    *,
    ids_before: dict[str | None, int] | None = None,
    need_sync: bool = False,
) -> StormResult:
    end = time.monotonic()
    settle_s, syncs, check = harness.settle_consistent(end, timeout, need_sync=need_sync)
    result = StormResult(name, operations, settle_s, syncs, check, sync_s=harness.sync_s)
    if ids_before is not None:
        # Renamed and moved photos keep their rows (and so their embeddings): no re-ingest.
        after = _row_ids(harness)
        changed = sum(1 for h, i in ids_before.items() if h in after and after[h] != i)
        result.notes.append(f"{changed} rows re-created instead of moved")
    harness.log(f"  {name}: settled in {_seconds(settle_s)} over {syncs} sync(s); {_check_text(check)}")
    return result


def _seconds(value: float | None) -> str:
    return "NOT SETTLED" if value is None else f"{value:.1f} s"


def _check_text(check: Check) -> str:
    return (f"{check.on_disk} on disk, {check.rows} rows, {check.missing} missing, {check.stale} stale, "
            f"{check.duplicates} duplicate")


def _print_table(results: list[StormResult], *, files: int, polling: bool) -> None:
    mode = "polling" if polling else "native events"
    print(f"watch-stress: {files} photos, {mode}, no model (catalogue + fingerprints), "
          f"{os.cpu_count()} CPU(s)")
    print(f"{'storm':<26} {'ops':>5} {'settle':>9} {'syncs':>5} {'in sync':>8} {'disk':>5} {'rows':>5} "
          f"{'miss':>4} {'stale':>5} {'dup':>3}  result")
    for r in results:
        c = r.check
        verdict = "ok" if r.consistent else "FAIL"
        print(f"{r.name:<26} {r.operations:>5} {_seconds(r.settle_s):>9} {r.syncs:>5} {r.sync_s:>6.1f} s "
              f"{c.on_disk:>5} "
              f"{c.rows:>5} {c.missing:>4} {c.stale:>5} {c.duplicates:>3}  {verdict} ({r.expect})"
              + (f"; {'; '.join(r.notes)}" if r.notes else ""))
