"""``photoembed bench search``: index build and load time, query latency, recall and memory by library size.

For 10k / 100k / 1M synthetic 512-d unit vectors (see :class:`SyntheticVectors`) it builds the index
photoembed would build at that size, writes it as the app does, then measures in a fresh process (so that
the memory figure is that of a search process, not of the builder): index load time (checksum + read),
single-query latency p50/p95, recall@10 against exact search, and peak RSS.

With a model installed in the library (``--home``), it also measures the warm text query at 100k photos
(text encoding + search + reading the result rows, through :class:`SearchService`), and the cold first
query: a ``photoembed search`` subprocess from process start to printed results.

Synthetic vectors, not random ones: uniform random unit vectors in 512-d are all nearly orthogonal, so
their "nearest neighbours" are noise that no index can rank stably. Real CLIP image embeddings share a
common direction (any two photos score ~0.4-0.5), gather by subject and scene, and text queries sit apart
from all of them (the modality gap); the generator reproduces that structure, deterministically per chunk.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from photoembed.storage.vector_index import (
    FORMAT_VERSION,
    IndexMeta,
    build_index,
    exact_search,
    read_verified,
    search_loaded,
    write_index_atomically,
)

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
TEXT_QUERIES = (
    "dog",
    "a dog on the beach",
    "sunset over the sea",
    "birthday cake",
    "red car",
    "mountains with snow",
    "people at a wedding",
    "cat sleeping on a sofa",
    "city at night",
    "children playing football",
)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class SyntheticVectors:
    """``n`` CLIP-like unit vectors of ``dim`` dimensions: a shared direction, topics, scenes, noise.

    Args:
        n: how many database vectors.
        dim: their dimension.
        seed: everything derives from it.
    """

    def __init__(self, n: int, dim: int = 512, *, seed: int = 0) -> None:
        self.n, self.dim, self.seed = n, dim, seed
        rng = np.random.default_rng([seed, 0])
        self.common = _unit(rng.standard_normal(dim))
        self.gap = _unit(rng.standard_normal(dim))  # where text queries sit relative to photos
        self.topics = _unit(rng.standard_normal((max(8, n // 2000), dim)))
        n_scenes = max(16, n // 50)
        scene_topic = rng.integers(len(self.topics), size=n_scenes)
        self.scenes = _unit(0.6 * self.topics[scene_topic] + 0.8 * _unit(rng.standard_normal((n_scenes, dim))))

    def chunk(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as float32 (deterministic for a given start)."""
        rng = np.random.default_rng([self.seed, 1, start])
        size = stop - start
        scene = rng.integers(len(self.scenes), size=size)
        spread = rng.uniform(0.2, 0.9, size=(size, 1)).astype(np.float32)
        noise = _unit(rng.standard_normal((size, self.dim), dtype=np.float32))
        return _unit(0.65 * self.common + 0.5 * self.scenes[scene] + spread * noise)

    def all(self, *, chunk: int = 65_536) -> np.ndarray:
        """Every row as float16 (as the catalog stores them: 1M x 512 is 1 GB)."""
        out = np.empty((self.n, self.dim), dtype=np.float16)
        for start in range(0, self.n, chunk):
            stop = min(self.n, start + chunk)
            out[start:stop] = self.chunk(start, stop)
        return out

    def queries(self, count: int, *, seed: int = 1) -> np.ndarray:
        """Half photo-like queries (a new shot of a known scene), half text-like ones (across the gap)."""
        rng = np.random.default_rng([self.seed, 2, seed])
        half = count // 2
        scene = rng.integers(len(self.scenes), size=count)
        noise = _unit(rng.standard_normal((count, self.dim), dtype=np.float32))
        photo_like = _unit(0.65 * self.common + 0.5 * self.scenes[scene[:half]] + 0.6 * noise[:half])
        text_like = _unit(0.6 * self.gap + 0.3 * self.common + 0.3 * self.scenes[scene[half:]] + 0.7 * noise[half:])
        return np.concatenate([photo_like, text_like]).astype(np.float32)


def register_bench(bench_subparsers: Any) -> None:
    parser = bench_subparsers.add_parser(
        "search", help="index build/load time, query latency, recall@10 and RSS at 10k/100k/1M vectors"
    )
    parser.add_argument(
        "--sizes",
        default=",".join(str(s) for s in DEFAULT_SIZES),
        help="comma-separated vector counts (default 10000,100000,1000000)",
    )
    parser.add_argument("--queries", type=int, default=200, help="queries per size (default 200)")
    parser.add_argument("--dim", type=int, default=512, help="vector dimension (default 512)")
    parser.add_argument("--no-model", action="store_true", help="skip the text-query part even with a model")
    parser.add_argument("--text-photos", type=int, default=100_000, help="library size for the text part")
    parser.set_defaults(handler=cmd_bench_search)


def cmd_bench_search(args: argparse.Namespace, library_factory: Callable[[], Any]) -> int:
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(f"Vector index benchmark: {args.dim}-d synthetic CLIP-like vectors, {args.queries} queries, k=10")
    print(
        f"{'vectors':>9} {'kind':>9} {'build s':>8} {'file MB':>8} {'load s':>7} {'p50 ms':>7} "
        f"{'p95 ms':>7} {'recall@10':>9} {'RSS MB':>7}"
    )
    with tempfile.TemporaryDirectory(prefix="photoembed-bench-search-") as tmp:
        for n in sizes:
            row = measure_size(n, dim=args.dim, queries=args.queries, workdir=Path(tmp))
            print(
                f"{n:>9} {row['kind']:>9} {row['build_s']:>8.2f} {row['file_mb']:>8.1f} {row['load_s']:>7.3f} "
                f"{row['p50_ms']:>7.2f} {row['p95_ms']:>7.2f} {row['recall_at_10']:>9.4f} "
                f"{row['peak_rss_mb']:>7.0f}",
                flush=True,
            )
        print("RSS: peak resident memory of a fresh process that imported faiss, loaded the index and ran the queries.")
        if not args.no_model:
            _bench_text(args, library_factory, Path(tmp))
    return 0


def measure_size(n: int, *, dim: int, queries: int, workdir: Path) -> dict[str, Any]:
    """Build, write and measure (in a subprocess) the index for ``n`` synthetic vectors."""
    gen = SyntheticVectors(n, dim, seed=n)
    vectors = gen.all()
    ids = np.arange(1, n + 1, dtype=np.int64)
    query_vectors = gen.queries(queries)
    truth = np.array([[pid for pid, _ in hits] for hits in exact_search(ids, vectors, query_vectors, 10)])
    started = time.perf_counter()
    built = build_index(ids, vectors)
    build_s = time.perf_counter() - started
    del vectors
    path = workdir / f"bench-{n}.faiss"
    size, checksum = write_index_atomically(built.index, path)
    meta = IndexMeta(
        format=FORMAT_VERSION,
        model="bench",
        seq=0,
        nonce=0,
        kind=built.kind,
        dim=dim,
        count=n,
        nlist=built.nlist,
        nprobe=built.nprobe,
        file_size=size,
        xxh3=checksum,
        build_s=build_s,
    )
    del built
    (workdir / f"bench-{n}.json").write_text(json.dumps(asdict(meta)), encoding="utf-8")
    np.save(workdir / f"bench-{n}-queries.npy", query_vectors)
    np.save(workdir / f"bench-{n}-truth.npy", truth)
    result = subprocess.run(
        [sys.executable, "-m", "photoembed.bench.search", "measure", str(workdir), str(n)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
    )
    row: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    row.update(kind=meta.kind, build_s=build_s, file_mb=size / 1e6, nprobe=meta.nprobe, nlist=meta.nlist)
    path.unlink()
    return row


def _measure(workdir: Path, n: int) -> dict[str, float]:
    """In a fresh process: load the index as the app does, then time single queries."""
    import faiss  # imported before timing the load: the app pays this once, at its first search

    del faiss
    meta = IndexMeta.from_json(json.loads((workdir / f"bench-{n}.json").read_text(encoding="utf-8")))
    queries = np.load(workdir / f"bench-{n}-queries.npy")
    truth = np.load(workdir / f"bench-{n}-truth.npy")
    started = time.perf_counter()
    index = read_verified(workdir / f"bench-{n}.faiss", meta)
    load_s = time.perf_counter() - started
    search_loaded(index, queries[:1], 10)  # warm-up
    latencies, found = [], 0
    for query, expected in zip(queries, truth, strict=True):
        t0 = time.perf_counter()
        hits = search_loaded(index, query[None, :], 10)[0]
        latencies.append(time.perf_counter() - t0)
        found += len({pid for pid, _ in hits} & set(expected.tolist()))
    return {
        "load_s": load_s,
        "p50_ms": float(np.percentile(latencies, 50) * 1e3),
        "p95_ms": float(np.percentile(latencies, 95) * 1e3),
        "recall_at_10": found / truth.size,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _peak_rss_mb() -> float:
    """This process's peak resident memory. Not ru_maxrss: Linux carries that over from the parent
    across fork + exec, so a child of a big process would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def _bench_text(args: argparse.Namespace, library_factory: Callable[[], Any], workdir: Path) -> None:
    """Warm and cold text queries through the real service, on a library of synthetic photo rows."""
    from photoembed.config import Paths, save_settings
    from photoembed.imaging.decode import decode_photo
    from photoembed.search.service import SearchService
    from photoembed.storage.catalog import Catalog
    from photoembed.storage.records import PhotoInfo
    from photoembed.storage.vector_index import VectorIndex

    library = library_factory()
    model = library.settings.model
    if not library.model_available():
        print(f"Text queries: skipped, no weights for {model} (see `photoembed model download`).")
        return
    t0 = time.perf_counter()
    encoder = library.text_encoder()
    load_text_s = time.perf_counter() - t0
    n = args.text_photos
    home = workdir / "text-home"
    paths = Paths.resolve(home)
    paths.ensure()
    # The model folder is shared (a link), the catalog and index are this benchmark's own.
    paths.models.symlink_to(library.paths.models, target_is_directory=True)
    save_settings(paths, library.settings)
    catalog = Catalog.open(paths.catalog)
    root = catalog.add_root(workdir / "photos")
    gen = SyntheticVectors(n, encoder.dim, seed=7)
    t0 = time.perf_counter()
    with catalog.transaction():
        for start in range(0, n, 10_000):
            stop = min(n, start + 10_000)
            chunk = gen.chunk(start, stop)
            for i in range(start, stop):
                catalog.upsert_photo(
                    root_id=root.id,
                    path=str(root.path / f"{i // 1000:04d}" / f"IMG_{i:07d}.jpg"),
                    size=3_000_000,
                    mtime_ns=i,
                    content_hash=f"{i:032x}",
                    info=PhotoInfo(format="jpeg", width=4000, height=3000, taken=1.6e9 + i),
                )
            catalog.put_embeddings(model, ((f"{i:032x}", chunk[i - start]) for i in range(start, stop)))
    catalog.bump_generation()
    fill_s = time.perf_counter() - t0
    vector_index = VectorIndex(paths.index_dir, catalog)
    t0 = time.perf_counter()
    vector_index.refresh(model)
    refresh_s = time.perf_counter() - t0
    service = SearchService(
        catalog=catalog,
        vector_index=vector_index,
        encoder_provider=lambda: encoder,
        image_encoder_provider=library.encoder,
        decode=decode_photo,
    )
    service.search("warm-up", k=50)
    latencies = []
    for _ in range(3):
        for text in TEXT_QUERIES:
            t0 = time.perf_counter()
            service.search(text, k=50)
            latencies.append(time.perf_counter() - t0)
    encode_only = []
    for text in TEXT_QUERIES:
        t0 = time.perf_counter()
        encoder.encode_texts([text])
        encode_only.append(time.perf_counter() - t0)
    catalog.close()
    print(
        f"Text queries with {model} on {n} photos (catalog filled in {fill_s:.1f} s, index built from "
        f"the catalog in {refresh_s:.1f} s; text tower loaded in {load_text_s:.2f} s):"
    )
    print(
        f"  warm query (text encoding + search + result rows, k=50): p50 {np.median(latencies) * 1e3:.1f} ms, "
        f"p95 {np.percentile(latencies, 95) * 1e3:.1f} ms (text encoding alone p50 "
        f"{np.median(encode_only) * 1e3:.1f} ms)"
    )
    cold = []
    for _ in range(2):
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "photoembed", "--home", str(home), "search", "a dog on the beach", "-k", "20"],
            capture_output=True,
            text=True,
            check=False,
        )
        cold.append(time.perf_counter() - t0)
        if done.returncode != 0:
            print(f"  cold query failed: {done.stderr.strip()}")
            return
    print(
        f"  cold first query (`photoembed search`, process start to printed results): "
        f"{cold[0]:.2f} s, then {cold[1]:.2f} s (page cache warm)"
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "measure":
        print(json.dumps(_measure(Path(sys.argv[2]), int(sys.argv[3]))))
    else:
        raise SystemExit("usage: python -m photoembed.bench.search measure WORKDIR N")
