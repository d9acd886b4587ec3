"""``photoembed bench soak``: a library that stays live under a long run of changes.

A library of small generated JPEGs (catalogued, with a synthetic vector per photo of the model's width
and its index built once) then goes through thousands of change batches: new photos, renames, edits and
deletions on disk, each batch followed by the scoped sync a watcher makes of it (the real ingest path:
decode, the model's image tower, one transaction, the index applied by the committing thread). Another
thread meanwhile searches as the GUI does, and watches for each new photo to become searchable.

Printed: time from a new file landing to it being found by a search (p50/p95), search latency p50/p95
during writes, open file descriptors, catalog connections and RSS at the start and the end, and how many
full index rebuilds happened after the first build (the goal is 0). It needs the configured model's
weights in the calling library (its model folder is linked, not copied).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from photoembed.bench.common import load_average
from photoembed.config import Paths, Settings, save_settings
from photoembed.core.indexer import Indexer


def register_bench(bench_subparsers: Any) -> None:
    parser = bench_subparsers.add_parser(
        "soak", help="a live library under thousands of change batches with searches from another thread"
    )
    parser.add_argument("--photos", type=int, default=10_000, help="library size at the start (default 10000)")
    parser.add_argument("--batches", type=int, default=1000, help="change batches (default 1000)")
    parser.add_argument("--workdir", type=Path, help="keep the generated library here (default: a temp folder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=cmd_bench_soak)


def cmd_bench_soak(args: argparse.Namespace, library_factory: Callable[[], Any]) -> int:
    from photoembed.library import Library

    caller = library_factory()
    try:
        if not caller.model_available():
            print(f"soak: no weights for {caller.settings.model}; install a model first (`photoembed model ...`)")
            return 1
        models, model = caller.paths.models.resolve(), str(caller.settings.model)
    finally:
        caller.close()
    with tempfile.TemporaryDirectory(prefix="photoembed-soak-") as scratch:
        workdir = args.workdir or Path(scratch)
        paths = Paths.resolve(workdir / "home")
        paths.ensure()
        if not paths.models.is_symlink():
            if paths.models.is_dir():
                paths.models.rmdir()
            paths.models.symlink_to(models, target_is_directory=True)
        save_settings(paths, Settings(model=model, threads=1))
        library = Library(paths)
        try:
            return _soak(library, workdir / "photos", args)
        finally:
            library.close()


class _Photos:
    """The generated files, their names and contents (seeded, so runs compare)."""

    def __init__(self, folder: Path, seed: int) -> None:
        self.folder = folder
        self.rng = np.random.default_rng(seed)
        self.serial = 0

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = self.rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, format="JPEG", quality=70)

    def new_path(self) -> Path:
        self.serial += 1
        return self.folder / f"{self.serial % 97:02d}" / f"IMG_{self.serial:07d}.jpg"


def _soak(library: Any, folder: Path, args: argparse.Namespace) -> int:
    import psutil

    from photoembed.bench.rescan import _synthetic_vectors

    model = library.settings.model
    photos = _Photos(folder, args.seed)
    started = time.perf_counter()
    existing = [photos.new_path() for _ in range(args.photos)]
    for path in existing:
        photos.write(path)
    library.catalog.add_root(folder)
    Indexer(catalog=library.catalog, settings=library.settings, encoder=None, vector_index=None).run()
    dim = library.encoder(("image",)).dim
    _synthetic_vectors(library.catalog, paths=library.paths, model=model, dim=dim)
    library.vector_index.forget()
    library.vector_index.refresh(model)  # loads the file just written (no rebuild)
    print(f"library: {args.photos} photos catalogued with synthetic {dim}-d vectors in "
          f"{time.perf_counter() - started:.1f} s; model {model}")
    indexer = library.indexer(batch_size=16)
    rebuilds_before = library.vector_index.rebuilds
    process = psutil.Process()
    warm_up = max(1, min(10, args.batches // 10))  # the decode pool and the reader's connection start here
    start_fds, start_rss, start_connections = 0, 0, 0

    pending: dict[str, float] = {}  # new path -> when its file landed
    lock = threading.Lock()
    stop = threading.Event()
    latencies: list[float] = []
    searchable: list[float] = []
    reader_errors: list[BaseException] = []
    query_rng = np.random.default_rng(args.seed + 1)

    def reader() -> None:
        try:
            while not stop.is_set():
                query = query_rng.standard_normal((1, dim)).astype(np.float32)
                t0 = time.perf_counter()
                hits = library.vector_index.search(model, query, 50)[0]
                library.catalog.photos_by_ids([pid for pid, _ in hits])
                latencies.append(time.perf_counter() - t0)
                with lock:
                    waiting = list(pending.items())[:8]
                for path, landed in waiting:
                    if _is_searchable(library, model, path):
                        with lock:
                            pending.pop(path, None)
                        searchable.append(time.perf_counter() - landed)
                time.sleep(0.005)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            reader_errors.append(exc)
        finally:
            library.catalog.release()

    thread = threading.Thread(target=reader, name="soak-reader")
    thread.start()
    rng = np.random.default_rng(args.seed + 2)
    run_started = time.perf_counter()
    try:
        for number in range(args.batches):
            if number == warm_up:
                start_fds, start_rss = _fds(), process.memory_info().rss
                start_connections = library.catalog.open_connections
            touched: list[Path] = []
            for _ in range(3):  # new photos
                path = photos.new_path()
                photos.write(path)
                with lock:
                    pending[str(path)] = time.perf_counter()
                existing.append(path)
                touched.append(path)
            victim = existing.pop(int(rng.integers(len(existing) - 3)))  # a rename
            renamed = victim.with_name("r_" + victim.name)
            os.rename(victim, renamed)
            existing.append(renamed)
            touched += [victim, renamed]
            edited = existing[int(rng.integers(len(existing) - 4))]  # an edit
            photos.write(edited)
            touched.append(edited)
            gone = existing.pop(int(rng.integers(len(existing) - 4)))  # a deletion
            gone.unlink()
            touched.append(gone)
            for _ in indexer.sync(paths=touched):
                pass
    finally:
        deadline = time.perf_counter() + 10
        while pending and time.perf_counter() < deadline:
            time.sleep(0.05)
        stop.set()
        thread.join(30)
    run_s = time.perf_counter() - run_started
    if reader_errors:
        raise reader_errors[0]
    end_fds, end_rss = _fds(), process.memory_info().rss
    rebuilds = library.vector_index.rebuilds - rebuilds_before
    count = library.catalog.counts(model)
    print(f"{args.batches} batches (3 new, 1 rename, 1 edit, 1 delete each) in {run_s:.1f} s, "
          f"{args.batches / run_s:.1f} batches/s; library now {count['ok']} photos, {count['embedded']} embedded; "
          f"index merges {library.vector_index.merges}")
    print(f"new file -> searchable: p50 {_pct(searchable, 50):.3f} s, p95 {_pct(searchable, 95):.3f} s "
          f"({len(searchable)} photos, {len(pending)} never found)")
    print(f"search during writes: p50 {_pct(latencies, 50) * 1000:.1f} ms, p95 {_pct(latencies, 95) * 1000:.1f} ms "
          f"({len(latencies)} searches)")
    print(f"after {warm_up} warm-up batches -> at the end: open fds {start_fds} -> {end_fds}; "
          f"catalog connections {start_connections} -> "
          f"{library.catalog.open_connections}; RSS {start_rss / 2**20:.0f} -> {end_rss / 2**20:.0f} MiB")
    print(f"full index rebuilds during the run: {rebuilds} (load average {load_average()})")
    return 0


def _is_searchable(library: Any, model: str, path: str) -> bool:
    photo = library.catalog.photo_by_path(path)
    if photo is None or photo.content_hash is None:
        return False
    vector = library.catalog.embedding_for_hash(model, photo.content_hash)
    if vector is None:
        return False
    hits = library.vector_index.search(model, vector[None], 10)[0]
    return any(pid == photo.id for pid, _ in hits)


def _fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")
