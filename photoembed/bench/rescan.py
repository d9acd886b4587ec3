"""``photoembed bench rescan``: how long `photoembed index` takes when nothing changed.

A library of small generated JPEGs in nested folders is indexed once (no model needed: the no-change path
never decodes), then synced again several times; each no-change sync must only list folders and compare
sizes and modification times with the catalog.

Then the whole ``photoembed index`` process is timed on the same library (interpreter start, imports,
settings, catalog, scan, index check), as a user runs it. When the calling library has the configured
model's weights, the benchmark's library uses them (a link to the model folder) and gets a synthetic
vector per photo, so that the process runs with a model that has nothing to embed: it must not import
torch or open_clip (``-X importtime`` tells), and its time is the figure the issue asks for.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from photoembed.bench.common import load_average
from photoembed.config import Paths, Settings, save_settings
from photoembed.core.indexer import Indexer
from photoembed.storage.catalog import Catalog
from photoembed.storage.vector_index import VectorIndex


def register_bench(bench_subparsers: Any) -> None:
    parser = bench_subparsers.add_parser(
        "rescan", help="time of a sync with nothing changed (folder listing + catalog comparison)"
    )
    parser.add_argument("--photos", type=int, default=10_000, help="library size (default 10000)")
    parser.add_argument("--rounds", type=int, default=3, help="no-change syncs to time (default 3)")
    parser.add_argument(
        "--empty", action="store_true", help="empty .jpg files (each recorded as failed) instead of JPEGs"
    )
    parser.add_argument("--workdir", type=Path, help="keep the generated library here (default: a temp folder)")
    parser.set_defaults(handler=cmd_bench_rescan)


def cmd_bench_rescan(args: argparse.Namespace, library_factory: Callable[[], Any]) -> int:
    with tempfile.TemporaryDirectory(prefix="photoembed-rescan-") as scratch:
        workdir = args.workdir or Path(scratch)
        photos = workdir / "photos"
        started = time.perf_counter()
        made = _generate(photos, args.photos, empty=args.empty)
        kind = "empty files" if args.empty else "JPEGs"
        print(f"library: {args.photos} {kind} in {photos} ({made} generated in {time.perf_counter() - started:.1f} s)")
        paths = Paths.resolve(workdir / "home")
        paths.ensure()
        model = _share_model(library_factory, paths)
        catalog = Catalog.open(paths.catalog)
        try:
            catalog.add_root(photos)
            started = time.perf_counter()
            first = Indexer(catalog=catalog, settings=Settings(), encoder=None, vector_index=None).run()
            took = time.perf_counter() - started
            print(f"first sync (catalogue, no model): {took:.2f} s, {first.added} added, {first.failed} failed "
                  f"({args.photos / took:,.0f} files/s)")
            timings = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                report = Indexer(catalog=catalog, settings=Settings(), encoder=None, vector_index=None).run()
                timings.append(time.perf_counter() - started)
                if (report.added, report.updated, report.moved, report.removed) != (0, 0, 0, 0):
                    raise RuntimeError(f"a no-change sync changed the catalog: {report}")
            if model is not None:
                _synthetic_vectors(catalog, paths=paths, model=model)
        finally:
            catalog.close()
        per_10k = min(timings) * 10_000 / args.photos
        print(f"no-change syncs in process: {', '.join(f'{t:.3f} s' for t in timings)} -> best {per_10k:.3f} s "
              f"per 10k photos (load average {load_average()})")
        _time_process(paths, args.photos, args.rounds, model)
    return 0


def _share_model(library_factory: Callable[[], Any], paths: Paths) -> str | None:
    """Use the calling library's model (linked, not copied) when its weights are installed."""
    try:
        library = library_factory()
    except Exception:  # noqa: BLE001 - no usable library of the caller: catalogue-only timing
        return None
    try:
        if not library.model_available():
            print(f"model: none ({library.settings.model} has no weights here): timing a catalogue-only index")
            return None
        if paths.models.is_dir():
            paths.models.rmdir()
        paths.models.symlink_to(library.paths.models.resolve(), target_is_directory=True)
        model = str(library.settings.model)
        save_settings(paths, Settings(model=model))
        return model
    finally:
        library.close()


def _synthetic_vectors(catalog: Catalog, *, paths: Paths, model: str, dim: int = 512) -> None:
    """A vector per photo (random: what is timed never reads them) and the index, as if all were embedded."""
    hashes = [h for (h,) in catalog.db.execute("SELECT DISTINCT content_hash FROM photos WHERE state = 'ok'")]
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((len(hashes), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with catalog.transaction():
        catalog.put_embeddings(model, zip(hashes, vectors, strict=True))
    VectorIndex(paths.index_dir, catalog).refresh(model)
    print(f"model: {model} (weights linked), {len(hashes)} synthetic vectors and their index")


def _time_process(paths: Paths, photos: int, rounds: int, model: str | None) -> None:
    """Wall time of whole ``photoembed index`` processes with nothing to do, and whether torch was imported."""
    timings, cpu, heavy = time_index_process(paths, rounds)
    bare = _bare_start()
    print(f"whole `photoembed index` process, nothing to do ({'model ' + model if model else 'no model'}): "
          f"{', '.join(f'{t:.3f} s' for t in timings)} -> median {statistics.median(timings) * 10_000 / photos:.3f} s, "
          f"best {min(timings) * 10_000 / photos:.3f} s per 10k photos, CPU median {statistics.median(cpu):.3f} s "
          f"(a bare interpreter start: {bare:.3f} s); heavy modules imported: {', '.join(heavy) or 'none'}")


def time_index_process(paths: Paths, rounds: int) -> tuple[list[float], list[float], list[str]]:
    """``rounds`` whole ``photoembed index`` processes on the library at ``paths``: wall and CPU seconds of
    each, and which of torch, open_clip and faiss one of them imported (``-X importtime``).

    One untimed run comes first, with bytecode caching allowed as in an installed copy (a test or developer
    environment may set PYTHONDONTWRITEBYTECODE, which makes every run compile photoembed's sources again).
    """
    env = {**os.environ, "PHOTOEMBED_HOME": str(paths.data.parent)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [sys.executable, "-m", "photoembed", "index"]
    subprocess.run(command, env=env, check=True, capture_output=True)
    timings, cpu = [], []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        timings.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    traced = subprocess.run([*command[:1], "-X", "importtime", *command[1:]], env=env, check=True,
                            capture_output=True, text=True)
    modules = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in traced.stderr.splitlines()
               if line.startswith("import time:") and "|" in line}
    return timings, cpu, sorted({"torch", "open_clip", "faiss"} & modules)


def _bare_start() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def _generate(folder: Path, count: int, *, empty: bool = False) -> int:
    rng = np.random.default_rng(0)
    made = 0
    for index in range(count):
        path = folder / f"{index // 500:03d}" / f"IMG_{index:05d}.jpg"
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if empty:
            path.touch()
            made += 1
            continue
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path, quality=70)
        made += 1
    return made
