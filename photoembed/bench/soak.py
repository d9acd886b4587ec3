"""``photoembed bench soak``: a library that stays live under a long run of changes.

A library of small generated JPEGs (catalogued, with a synthetic vector per photo of the model's width
and its index built once) then goes through thousands of change batches: new photos, renames, edits and
deletions on disk, each batch followed by the scoped sync a watcher makes of it (the real ingest path:
decode, the model's image tower, one transaction, the index applied by the committing thread). Another
thread meanwhile searches as the GUI does, and watches for each new photo to become searchable.

Printed: time from a new file landing to it being found by a search (p50/p95), search latency p50/p95
during writes, open file descriptors, catalog connections and RSS at the start and the end, how many
full index rebuilds happened after the first build (the goal is 0), and the wall time of whole
``photoembed index`` processes on the library afterwards, with nothing to do. It needs the configured
model's weights in the calling library (its model folder is linked, not copied).

``--seeded`` (for 100k and 1M photos, which cannot be decoded and catalogued here in a reasonable time) writes
the library in bulk instead: one small file per photo on disk (distinct bytes), and for each a catalog row
with the file's real size, modification time and content hash, and a synthetic CLIP-like vector, written
through the catalog's own ``upsert_photo`` and ``put_embeddings``; the index is then built once by the
library's own path (exact or IVF by size). The change batches after that are real files embedded by the
model. Seeded rows have no perceptual fingerprint (duplicate finding is not part of this benchmark; a real one is
15 KB a photo, 15 GB at 1M) and are marked as fingerprinted in the current format, so that no sync takes them
for photos catalogued by an older version and fingerprints the whole seeded library again.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
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
    parser.add_argument(
        "--seeded", action="store_true",
        help="write the catalog in bulk (files on disk, their rows, synthetic vectors) instead of indexing them",
    )
    parser.add_argument(
        "--index-runs", type=int, default=3,
        help="whole no-change `photoembed index` processes timed at the end (default 3; 0: none)",
    )
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
            photos = _soak(library, workdir / "photos", args)
        finally:
            library.close()
        if args.index_runs > 0:
            _time_no_change_index(paths, photos, args.index_runs)
    return 0


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

    def template(self) -> bytes:
        """A small JPEG; seeded files are it plus a serial number after its end marker (decoders skip that)."""
        buffer = io.BytesIO()
        Image.fromarray(self.rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=70)
        return buffer.getvalue()

    def new_path(self) -> Path:
        return Path(self.new_name())

    def new_name(self) -> str:
        self.serial += 1
        return os.path.join(self.folder, f"{self.serial % 97:02d}", f"IMG_{self.serial:07d}.jpg")


def _soak(library: Any, folder: Path, args: argparse.Namespace) -> int:
    """The run; returns how many photos the library holds at its end."""
    import psutil

    model = library.settings.model
    photos = _Photos(folder, args.seed)
    dim = library.encoder(("image",)).dim
    if args.seeded:
        existing = _seed(library, photos, args.photos, dim, seed=args.seed)
    else:
        existing = _catalogue(library, photos, args.photos, dim)
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
                    waiting = dict(pending)
                for path in _searchable(library, model, list(waiting)):
                    with lock:
                        pending.pop(path, None)
                    searchable.append(time.perf_counter() - waiting[path])
                time.sleep(0.005)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            reader_errors.append(exc)
        finally:
            library.catalog.release()

    thread = threading.Thread(target=reader, name="soak-reader")
    thread.start()
    rng = np.random.default_rng(args.seed + 2)
    run_started = time.perf_counter()
    moves = 0
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
                existing.append(str(path))
                touched.append(path)
            victim = Path(existing.pop(int(rng.integers(len(existing) - 3))))  # a rename
            renamed = victim.with_name("r_" + victim.name)
            os.rename(victim, renamed)
            existing.append(str(renamed))
            touched += [victim, renamed]
            edited = Path(existing[int(rng.integers(len(existing) - 4))])  # an edit
            photos.write(edited)
            touched.append(edited)
            gone = Path(existing.pop(int(rng.integers(len(existing) - 4))))  # a deletion
            gone.unlink()
            touched.append(gone)
            for _ in indexer.sync(paths=touched):
                pass
            moves += indexer.report.moved
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
          f"renames kept as moves {moves}/{args.batches}; index merges {library.vector_index.merges}")
    print(f"new file -> searchable: p50 {_pct(searchable, 50):.3f} s, p95 {_pct(searchable, 95):.3f} s "
          f"({len(searchable)} photos, {len(pending)} never found)")
    print(f"search during writes: p50 {_pct(latencies, 50) * 1000:.1f} ms, p95 {_pct(latencies, 95) * 1000:.1f} ms "
          f"({len(latencies)} searches)")
    print(f"after {warm_up} warm-up batches -> at the end: open fds {start_fds} -> {end_fds}; "
          f"catalog connections {start_connections} -> "
          f"{library.catalog.open_connections}; RSS {start_rss / 2**20:.0f} -> {end_rss / 2**20:.0f} MiB")
    print(f"full index rebuilds during the run: {rebuilds} (load average {load_average()})")
    return int(count["ok"])


def _catalogue(library: Any, photos: _Photos, count: int, dim: int) -> list[str]:
    """Generate the photos, catalogue them without the model and give each a synthetic vector."""
    from photoembed.bench.rescan import _synthetic_vectors

    model = library.settings.model
    started = time.perf_counter()
    existing = [photos.new_path() for _ in range(count)]
    for path in existing:
        photos.write(path)
    library.catalog.add_root(photos.folder)
    Indexer(catalog=library.catalog, settings=library.settings, encoder=None, vector_index=None).run()
    _synthetic_vectors(library.catalog, paths=library.paths, model=model, dim=dim)
    library.vector_index.forget()
    library.vector_index.refresh(model)  # loads the file just written (no rebuild)
    print(f"library: {count} photos catalogued with synthetic {dim}-d vectors in "
          f"{time.perf_counter() - started:.1f} s; model {model}")
    return [str(p) for p in existing]


def _seed(library: Any, photos: _Photos, count: int, dim: int, *, seed: int) -> list[str]:
    """Write ``count`` files and, through the catalog, their rows and synthetic vectors; build the index once."""
    from photoembed.bench.search import SyntheticVectors
    from photoembed.core.hashing import content_hash
    from photoembed.imaging.fingerprint import FORMAT_VERSION
    from photoembed.storage.records import PhotoInfo

    model = library.settings.model
    catalog = library.catalog
    photos.folder.mkdir(parents=True, exist_ok=True)
    root = catalog.add_root(photos.folder)
    for folder in range(97):
        (photos.folder / f"{folder:02d}").mkdir(exist_ok=True)
    template = photos.template()
    vectors = SyntheticVectors(count, dim, seed=seed)
    existing: list[str] = []
    started = time.perf_counter()
    chunk = 20_000
    # The catalog's page cache is a few MB; the vectors' table takes random keys (content hashes): a larger
    # cache while seeding (this connection only) keeps a million inserts from re-reading the same pages.
    catalog.db.execute("PRAGMA cache_size = -262144")
    for start in range(0, count, chunk):
        stop = min(count, start + chunk)
        rows = []
        for serial in range(start, stop):
            name = photos.new_name()
            data = template + serial.to_bytes(8, "little")
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, data)
                st = os.fstat(fd)
            finally:
                os.close(fd)
            rows.append((name, st.st_size, st.st_mtime_ns, content_hash(data)))
        with catalog.transaction():
            for name, size, mtime_ns, digest in rows:
                catalog.upsert_photo(
                    root_id=root.id, path=name, size=size, mtime_ns=mtime_ns, content_hash=digest,
                    info=PhotoInfo(format="jpeg", width=32, height=24, taken=mtime_ns / 1e9),
                )
            by_hash = sorted(zip((r[3] for r in rows), vectors.chunk(start, stop), strict=True), key=lambda r: r[0])
            catalog.put_embeddings(model, by_hash)
            # Bench-only: seeded rows count as fingerprinted now (see the module's docstring).
            catalog.db.execute(
                "UPDATE photos SET fingerprint_version = ? WHERE phash IS NULL AND fingerprint_version IS NULL",
                (FORMAT_VERSION,),
            )
        existing.extend(r[0] for r in rows)
    catalog.db.execute("PRAGMA cache_size = -2000")  # SQLite's default again
    catalog.bump_generation()
    seeded_s = time.perf_counter() - started
    started = time.perf_counter()
    library.vector_index.refresh(model)  # the library's own build: exact or IVF by size, persisted
    info = library.vector_index.info(model)
    print(f"library: {count} photos SEEDED in {seeded_s:.1f} s (files on disk; catalog rows with their size, "
          f"time and hash; synthetic {dim}-d vectors), index built once in {time.perf_counter() - started:.1f} s: "
          f"{info['kind']}, {info['count']} vectors, {info['bytes'] / 2**20:.0f} MiB; model {model}")
    return existing


def _time_no_change_index(paths: Paths, photos: int, runs: int) -> None:
    from photoembed.bench.rescan import time_index_process

    timings, cpu, heavy = time_index_process(paths, runs)
    median = statistics.median(timings)
    print(f"whole `photoembed index` process afterwards, nothing to do, {photos} photos: "
          f"{', '.join(f'{t:.2f} s' for t in timings)} -> median {median:.2f} s "
          f"({median * 10_000 / photos:.3f} s per 10k photos), CPU median {statistics.median(cpu):.2f} s; "
          f"heavy modules imported: {', '.join(heavy) or 'none'}")


def _searchable(library: Any, model: str, paths: list[str]) -> list[str]:
    """Those of ``paths`` a search finds: each photo's own vector as the query, in one filtered search
    (allowed: the photos asked about), so that checking many costs about one search, not one each."""
    names, ids, vectors = [], [], []
    for path in paths:
        photo = library.catalog.photo_by_path(path)
        if photo is None or photo.content_hash is None:
            continue
        vector = library.catalog.embedding_for_hash(model, photo.content_hash)
        if vector is not None:
            names.append(path)
            ids.append(photo.id)
            vectors.append(vector)
    if not ids:
        return []
    hits = library.vector_index.search(model, np.stack(vectors), 1, allowed_ids=np.asarray(ids, dtype=np.int64))
    return [name for name, pid, row in zip(names, ids, hits, strict=True) if row and row[0][0] == pid]


def _fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")
