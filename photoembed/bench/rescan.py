"""``photoembed bench rescan``: how long `photoembed index` takes when nothing changed.

A library of small generated JPEGs in nested folders is indexed once (no model needed: the no-change path
never decodes), then synced again several times; each no-change sync must only list folders and compare
sizes and modification times with the catalog.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from photoembed.bench.common import load_average
from photoembed.config import Paths, Settings
from photoembed.core.indexer import Indexer
from photoembed.storage.catalog import Catalog


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
        finally:
            catalog.close()
    per_10k = min(timings) * 10_000 / args.photos
    print(f"no-change syncs: {', '.join(f'{t:.3f} s' for t in timings)} -> best {per_10k:.3f} s per 10k photos "
          f"(load average {load_average()})")
    return 0


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
