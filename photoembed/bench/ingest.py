"""``photoembed bench ingest``: how close indexing comes to the CPU-bound limit, and how far ahead of naive.

Indexing is CPU work on shared cores: CLIP's forward pass, and decoding. This benchmark measures, in one run
on the same generated photos (so that the ratios hold even on a busy machine):

The model runs on each runtime side by side (``--runtimes``, default torch fp32, ONNX Runtime fp32 and the
opt-in ONNX Runtime int8), so that steps 1 and 4 are a column per runtime, with the cosine of each runtime's
vectors to torch fp32 on the same prepared photos.

1. model-only throughput: prepared tensors straight into the encoder, at each batch size;
2. decode-only cost: CPU seconds per photo of photoembed's decoder (decode_photo + fingerprint + prepare),
   single-threaded;
3. the CPU-bound limit those two imply when they share the cores: 1 / (1/model + decode/cores);
4. photoembed's end-to-end throughput: files on disk to vectors committed in the catalog and the vector
   index refreshed, by the real Indexer of a Library in a temporary home, in a fresh process (as
   ``photoembed index`` runs), with its peak RSS; and again while another process keeps a core busy;
5. a naive pipeline: full decode, exif_transpose, open_clip's own preprocess transform, one image at a
   time through the model (as rclip and imagededup do).

The model's weights are a random initialisation of the real architecture, saved to a file and installed
with :meth:`ModelStore.install` (the path users take for local weights): speed does not depend on weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from photoembed.bench.common import (
    busy_core,
    generate_photos,
    link_subset,
    load_average,
    peak_rss_bytes,
)
from photoembed.errors import KnownError

logger = logging.getLogger(__name__)

DEFAULT_SOURCE = Path(__file__).resolve().parents[3] / "shared" / "data" / "photos-large"
MODEL_TAG = "bench-random"
GOAL_OF_LIMIT = 0.9
GOAL_OVER_NAIVE = 2.0


def register_bench(bench_subparsers: Any) -> None:
    """Add ``bench ingest`` to the ``photoembed bench`` sub-commands."""
    parser = bench_subparsers.add_parser(
        "ingest",
        help="indexing throughput against the CPU-bound limit and a naive pipeline",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--photos", type=int, default=200, help="generated photos to index (default 200)")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where generated photos and weights are cached (default: the photoembed cache, bench-ingest/)",
    )
    parser.add_argument("--model-arch", default="ViT-B-32", help="open_clip architecture (default ViT-B-32)")
    parser.add_argument(
        "--model-config", type=Path, help="open_clip model config JSON, for an architecture open_clip does not ship"
    )
    parser.add_argument(
        "--batch-sizes", default="8,16,32", help="model-only batch sizes to try (default 8,16,32)"
    )
    parser.add_argument(
        "--index-batch-size", type=int, default=16, help="end-to-end batch size (default 16, as `photoembed index`)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads for the end-to-end runs (default 0: photoembed's setting)"
    )
    parser.add_argument("--load-photos", type=int, default=64, help="photos for the busy-core run (default 64)")
    parser.add_argument("--naive-photos", type=int, default=32, help="photos for the naive pipeline (default 32)")
    parser.add_argument("--megapixels", default="8-16", help="size range of the generated photos (default 8-16)")
    parser.add_argument(
        "--model-seconds", type=float, default=4.0, help="seconds per model-only batch size (default 4)"
    )
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, mps or auto")
    parser.add_argument(
        "--runtimes",
        default="torch,onnx,onnx-int8",
        help="CPU runtimes to compare, in order; the first is the reference (default torch,onnx,onnx-int8)",
    )
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="photos to generate from")
    parser.set_defaults(handler=cmd_ingest)


@dataclass
class _Settings:
    photos: int
    arch: str
    config: Path | None
    batch_sizes: list[int]
    index_batch_size: int
    threads: int
    load_photos: int
    naive_photos: int
    megapixels: tuple[float, float]
    model_seconds: float
    device: str
    runtimes: list[str]
    out: TextIO  # progress and the report; stderr under --json, so that stdout is one JSON document


def cmd_ingest(args: argparse.Namespace, library_factory: Callable[[], Any]) -> int:
    """Run the ingest benchmark and print its figures. ``library_factory`` is unused: it runs in temp homes."""
    del library_factory  # the benchmark never touches the user's library
    from photoembed.config import Paths
    from photoembed.ml.runtime import prepare_environment

    prepare_environment()  # OMP_WAIT_POLICY before torch loads, as the front ends do
    low, _, high = str(args.megapixels).partition("-")
    settings = _Settings(
        photos=max(1, args.photos),
        arch=args.model_arch,
        config=args.model_config,
        batch_sizes=sorted({max(1, int(b)) for b in str(args.batch_sizes).split(",") if b.strip()}),
        index_batch_size=max(1, args.index_batch_size),
        threads=max(0, args.threads),
        load_photos=max(0, min(args.load_photos, args.photos)),
        naive_photos=max(0, min(args.naive_photos, args.photos)),
        megapixels=(float(low), float(high or low)),
        model_seconds=max(0.1, args.model_seconds),
        device=args.device,
        runtimes=[r.strip() for r in str(args.runtimes).split(",") if r.strip()] or ["torch"],
        out=sys.stderr if getattr(args, "json", False) else sys.stdout,
    )
    workdir = args.workdir or Paths.resolve(getattr(args, "home", None)).cache / "bench-ingest"
    workdir = Path(workdir).expanduser()
    workdir.mkdir(parents=True, exist_ok=True)
    results = _run(settings, workdir=workdir, source=Path(args.source))
    if getattr(args, "json", False):
        print(json.dumps(results, indent=2))
    return 0


def _say(s: _Settings, text: str) -> None:
    print(text, flush=True, file=s.out)


def _run(s: _Settings, *, workdir: Path, source: Path) -> dict[str, Any]:
    from photoembed.ml.runtime import cpu_count

    cores = cpu_count()
    started = time.perf_counter()
    _say(s, f"photoembed bench ingest: {s.photos} photos, {s.arch}, {cores} cores, load average {load_average()}")

    mp_label = f"{s.megapixels[0]:g}-{s.megapixels[1]:g}"
    photo_dir = workdir / f"photos-{mp_label}MP"
    t0 = time.perf_counter()
    photos = generate_photos(source, photo_dir, s.photos, megapixels=s.megapixels, workers=cores)
    sizes = [p.stat().st_size for p in photos]
    _say(
        s,
        f"  photos: {len(photos)} baseline JPEGs of {mp_label} MP in {photo_dir} "
        f"(mean {np.mean(sizes) / 1e6:.1f} MB; ready in {time.perf_counter() - t0:.1f} s)"
    )

    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=workdir))
    try:
        weights, name = _random_weights(s, workdir / "models")
        results = _measure(s, photos, photo_dir, run_dir, weights, name, cores)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    results["wall_s"] = time.perf_counter() - started
    results["load_average_end"] = load_average()
    _report(s, results, cores)
    return results


def _measure(
    s: _Settings, photos: list[Path], photo_dir: Path, run_dir: Path, weights: Path, name: str, cores: int
) -> dict[str, Any]:
    from photoembed.config import RUNTIMES, Paths
    from photoembed.ml.encoder import ClipEncoder
    from photoembed.ml.models import ModelStore

    unknown = [r for r in s.runtimes if r not in RUNTIMES]
    if unknown:
        raise KnownError(f"Unknown runtime {', '.join(unknown)}; use {', '.join(RUNTIMES)}")
    results: dict[str, Any] = {"photos": len(photos), "cores": cores, "model": name,
                               "load_average_start": load_average(), "runtimes": {}}
    homes = {key: run_dir / f"home-{key}" for key in [*s.runtimes, "load"]}
    stores = {}
    for key, home in homes.items():
        paths = Paths.resolve(home)
        paths.ensure()
        stores[key] = ModelStore(paths.models, paths.model_downloads)
        stores[key].install(weights, name=name, config=s.config)

    samples: list[np.ndarray] = []
    reference: np.ndarray | None = None
    decode: dict[str, float] | None = None
    shared_export: Path | None = None
    for runtime in s.runtimes:
        store = stores[runtime]
        if shared_export is not None:  # exported once (by the first ONNX runtime), shared by every home
            shutil.copytree(shared_export, store.onnx_dir(name), dirs_exist_ok=True)
        t0 = time.perf_counter()
        encoder = ClipEncoder.load(store, name, device=s.device, threads=cores, towers=("image",), runtime=runtime)
        load_s = time.perf_counter() - t0
        if store.onnx_dir(name).is_dir() and shared_export is None:
            shared_export = store.onnx_dir(name)
        row: dict[str, Any] = {"engine": encoder.runtime["image"], "key": encoder.name, "load_s": load_s}
        results["device"] = encoder.device
        if not samples:
            samples = _prepared(encoder, photos[: max(s.batch_sizes)])
        # 1. Model only.
        model_rates: dict[int, float] = {}
        model_cpu: dict[int, float] = {}
        for batch_size in s.batch_sizes:
            batch = np.stack([samples[i % len(samples)] for i in range(batch_size)])
            model_rates[batch_size], model_cpu[batch_size] = _model_rate(encoder, batch, s.model_seconds)
            _say(s, f"  [{runtime}] model only, batch {batch_size}: {model_rates[batch_size]:.2f} img/s")
        best_batch = max(model_rates, key=lambda b: model_rates[b])
        row["model_only"] = {
            "per_batch": model_rates,
            "best_batch": best_batch,
            "rate": model_rates[best_batch],
            "cpu_s": model_cpu[best_batch],
            "cores_used": model_rates[best_batch] * model_cpu[best_batch],
        }
        vectors = encoder.encode_images(np.stack(samples))
        if reference is None:
            reference = vectors
        row["min_cosine_to_reference"] = float(np.min(np.sum(vectors * reference, axis=-1)))
        # 2. Decode only (the same for every runtime: measured once).
        if decode is None:
            decode = _decode_costs(encoder, photos)
            results["decode"] = decode
            _say(
                s,
                f"  decode only: {decode['cpu_s'] * 1000:.1f} ms CPU per photo (decode {decode['decode_ms']:.1f}, "
                f"fingerprint {decode['fingerprint_ms']:.1f}, prepare {decode['prepare_ms']:.1f}; "
                f"hash {decode['hash_ms']:.1f} ms not counted)"
            )
        encoder.unload()
        # 3. The limit.
        row["limit"] = 1.0 / (1.0 / model_rates[best_batch] + decode["cpu_s"] / cores)
        # 4. End to end, in a fresh process.
        subset = link_subset(photos, photo_dir, run_dir / f"photos-{runtime}")
        e2e = _end_to_end(s, homes[runtime], subset, name, runtime)
        row["end_to_end"] = e2e
        _say(s, f"  [{runtime}] end to end: {e2e['rate']:.2f} photos/s, {e2e['cpu_s']:.3f} CPU-s/photo "
                f"({e2e['photos']} photos, load {e2e['load_average']})")
        results["runtimes"][runtime] = row

    default = _default_runtime(s.runtimes)
    results["default_runtime"] = default
    if s.load_photos:
        if shared_export is not None:
            shutil.copytree(shared_export, stores["load"].onnx_dir(name), dirs_exist_ok=True)
        subset = link_subset(photos[: s.load_photos], photo_dir, run_dir / "photos-load")
        with busy_core():
            loaded = _end_to_end(s, homes["load"], subset, name, default)
        results["end_to_end_busy_core"] = loaded
        _say(s, f"  [{default}] end to end, one core busy: {loaded['rate']:.2f} photos/s ({loaded['photos']} photos)")

    # 5. Naive.
    if s.naive_photos:
        naive = _naive(s, photos[: s.naive_photos], weights, cores)
        results["naive"] = naive
        _say(s, f"  naive: {naive['rate']:.2f} photos/s ({naive['photos']} photos)")
    return results


def _default_runtime(runtimes: Sequence[str]) -> str:
    """The runtime photoembed uses by default on a CPU (ONNX Runtime fp32) when measured, else the first."""
    for candidate in ("onnx", "auto"):
        if candidate in runtimes:
            return candidate
    return runtimes[0]


def _random_weights(s: _Settings, folder: Path) -> tuple[Path, str]:
    """A random initialisation of the architecture, saved once per architecture (and config)."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    stem = s.arch if s.config is None else f"{s.arch}-{abs(hash(s.config.read_text(encoding='utf-8'))) % 10**8}"
    path = folder / f"{stem}-random-seed0.pt"
    if not path.is_file():
        model = _build_model(s)
        tmp = path.with_suffix(".tmp")
        torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, tmp)
        os.replace(tmp, path)
    return path, f"{s.arch}/{MODEL_TAG}"


def _build_model(s: _Settings) -> Any:
    """The architecture with torch's default (random) initialisation, as open_clip builds it."""
    import torch
    from open_clip.model import CLIP, CustomTextCLIP

    from photoembed.ml.models import builtin_model_cfg

    if s.config is None:
        cfg = builtin_model_cfg(s.arch)
        if cfg is None:
            raise KnownError(f"open_clip has no architecture called {s.arch}; pass its config with --model-config")
    else:
        raw = json.loads(s.config.read_text(encoding="utf-8"))
        cfg = dict(raw.get("model_cfg", raw))
    torch.manual_seed(0)
    model_class = CustomTextCLIP if cfg.pop("custom_text", False) else CLIP
    return model_class(**cfg).eval()


def _prepared(encoder: Any, photos: Sequence[Path]) -> list[np.ndarray]:
    from photoembed.imaging.decode import decode_photo

    prepared = []
    for path in photos:
        decoded = decode_photo(path.read_bytes(), name=path.name, min_side=encoder.image_size, mtime=0.0)
        prepared.append(encoder.prepare(decoded.image, **decoded.geometry))
    return prepared


def _model_rate(encoder: Any, batch: np.ndarray, seconds: float) -> tuple[float, float]:
    """Images per second, and process CPU seconds per image (this process runs nothing else meanwhile)."""
    encoder.encode_images(batch)  # warm-up: allocations, kernels
    done = 0
    cpu0, started = _cpu_seconds(), time.perf_counter()
    while True:
        encoder.encode_images(batch)
        done += len(batch)
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and done >= 3 * len(batch):
            return done / elapsed, (_cpu_seconds() - cpu0) / done


def _decode_costs(encoder: Any, photos: Sequence[Path]) -> dict[str, float]:
    """Thread CPU time of each step of the decode-pool work, on this (one) thread."""
    from photoembed.core.hashing import content_hash
    from photoembed.imaging.decode import decode_photo
    from photoembed.imaging.fingerprint import fingerprint

    totals = {"hash": 0.0, "decode": 0.0, "fingerprint": 0.0, "prepare": 0.0}
    pixels = 0
    wall = 0.0
    for path in photos:
        data = path.read_bytes()
        w0, t0 = time.perf_counter(), time.thread_time()
        content_hash(data)
        t1 = time.thread_time()
        decoded = decode_photo(data, name=path.name, min_side=encoder.image_size, mtime=0.0)
        t2 = time.thread_time()
        fingerprint(decoded.image)
        t3 = time.thread_time()
        encoder.prepare(decoded.image, **decoded.geometry)
        t4 = time.thread_time()
        wall += time.perf_counter() - w0
        totals["hash"] += t1 - t0
        totals["decode"] += t2 - t1
        totals["fingerprint"] += t3 - t2
        totals["prepare"] += t4 - t3
        pixels += decoded.image.width * decoded.image.height
    n = len(photos)
    cpu = (totals["decode"] + totals["fingerprint"] + totals["prepare"]) / n
    return {
        "photos": n,
        "cpu_s": cpu,
        "wall_s": wall / n,
        "decoded_megapixels": pixels / n / 1e6,
        **{f"{key}_ms": value / n * 1000 for key, value in totals.items()},
    }


def _end_to_end(s: _Settings, home: Path, folder: Path, name: str, runtime: str) -> dict[str, Any]:
    """Index ``folder`` into a fresh library at ``home`` in a new process; its figures come back as JSON."""
    request = {
        "home": str(home),
        "folder": str(folder),
        "model": name,
        "batch_size": s.index_batch_size,
        "threads": s.threads,
        "device": s.device,
        "runtime": runtime,
    }
    code = "import sys\nfrom photoembed.bench.ingest import child_main\nsys.exit(child_main())\n"
    completed = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(request), capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"end-to-end run failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def child_main() -> int:
    """Entry point of the end-to-end process: reads a request (JSON) on stdin, prints figures (JSON)."""
    from photoembed.ml.runtime import prepare_environment

    prepare_environment()
    request = json.loads(sys.stdin.read())
    print(json.dumps(_index_once(request)))
    return 0


def _index_once(request: dict[str, Any]) -> dict[str, Any]:
    from photoembed.config import Paths
    from photoembed.library import Library

    library = Library(Paths.resolve(request["home"]))
    try:
        library.settings = dataclasses.replace(
            library.settings,
            model=request["model"],
            threads=int(request["threads"]),
            use_gpu=request["device"] != "cpu",
            runtime=request["runtime"],
        )
        library.catalog.add_root(Path(request["folder"]))
        t0 = time.perf_counter()
        indexer = library.indexer(require_model=True, batch_size=int(request["batch_size"]))
        load_s = time.perf_counter() - t0
        rss_loaded = _peak_rss()
        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        first_batch: float | None = None
        ingest_end = t0
        for progress in indexer.sync():
            now = time.perf_counter()
            if progress.phase == "index" and first_batch is None:
                first_batch = now
            if progress.phase in ("index", "scan"):
                ingest_end = now
        wall = time.perf_counter() - t0
        cpu = _cpu_seconds() - cpu0
        key = indexer.encoder.name if indexer.encoder is not None else request["model"]
        counts = library.catalog.counts(key)
        embedded = max(1, counts["embedded"])
        report = indexer.report
        if counts["embedded"] != counts["photos"] or report.failed:
            raise RuntimeError(f"indexing left photos out: {counts}, {report}")
        return {
            "photos": counts["embedded"],
            "rate": counts["embedded"] / wall,
            "wall_s": wall,
            "ingest_s": ingest_end - t0,
            "first_batch_s": (first_batch or t0) - t0,
            "finish_s": wall - (ingest_end - t0),
            "cpu_utilisation": cpu / wall,
            "cpu_s": cpu / embedded,
            "model_load_s": load_s,
            # The indexer gives the model these threads for the ingest (torch or ONNX Runtime intra-op).
            "model_threads": indexer.model_threads,
            "engine": getattr(indexer.encoder, "runtime", {}).get("image", "?"),
            # Whether this process ever imported torch (ONNX Runtime with an export needs neither it nor open_clip).
            "torch_imported": "torch" in sys.modules,
            "decode_workers": indexer.decode_workers,
            "batch_size": indexer.batch_size,
            "peak_rss": _peak_rss(),
            "rss_after_load": rss_loaded,
            "load_average": load_average(),
        }
    finally:
        library.close()


def _peak_rss() -> int:
    """This process's own peak RSS. On Linux ``getrusage``'s figure is kept across exec, so a child started
    by a big parent (this benchmark, holding models) reports the parent's size; ``VmHWM`` is reset by exec."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return peak_rss_bytes()


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _naive(s: _Settings, photos: Sequence[Path], weights: Path, cores: int) -> dict[str, Any]:
    """rclip's / imagededup's loop: full decode, exif_transpose, open_clip's transform, batch of one."""
    import open_clip
    import torch
    from PIL import Image, ImageOps

    model = _build_model(s)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    preprocess = open_clip.image_transform(model.visual.image_size, is_train=False)
    torch.set_num_threads(cores)

    def embed(path: Path) -> None:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
        with torch.no_grad():
            features = model.encode_image(preprocess(image).unsqueeze(0))
            torch.nn.functional.normalize(features, dim=-1)

    embed(photos[0])  # warm-up, not counted
    started = time.perf_counter()
    for path in photos:
        embed(path)
    wall = time.perf_counter() - started
    return {"photos": len(photos), "rate": len(photos) / wall, "torch_threads": torch.get_num_threads()}


def _report(s: _Settings, r: dict[str, Any], cores: int) -> None:
    decode = r["decode"]
    rows: dict[str, dict[str, Any]] = r["runtimes"]
    reference = next(iter(rows))
    ref = rows[reference]
    lines = [
        "",
        f"== photoembed bench ingest ({r['model']} on {r['device']}, {cores} cores, {r['photos']} photos) ==",
        f"load average at start / end: {r['load_average_start']} / {r['load_average_end']} "
        "(other processes share these cores: compare the ratios and CPU seconds, not the absolute figures)",
        f"decode only (decode_photo + fingerprint + prepare, one thread, {decode['photos']} photos): "
        f"{decode['cpu_s'] * 1000:.1f} ms CPU/photo (decode {decode['decode_ms']:.1f} ms to "
        f"{decode['decoded_megapixels']:.2f} MP, fingerprint {decode['fingerprint_ms']:.1f}, prepare "
        f"{decode['prepare_ms']:.1f}; content hash {decode['hash_ms']:.1f} not counted)",
        "",
        "runtime (engine)                      | model img/s (batch) | model CPU-s/img | limit ph/s | "
        "e2e ph/s | e2e CPU-s/ph | peak RSS | torch imported | cosine to " + reference,
    ]
    for runtime, row in rows.items():
        model, e2e = row["model_only"], row["end_to_end"]
        lines.append(
            f"{runtime + ' (' + row['engine'] + ')':<37} | {model['rate']:9.2f} ({model['best_batch']:>3})     | "
            f"{model['cpu_s']:15.4f} | {row['limit']:10.2f} | {e2e['rate']:8.2f} | {e2e['cpu_s']:12.4f} | "
            f"{e2e['peak_rss'] / 2**20:5.0f} MiB | {e2e['torch_imported']!s:<14} | "
            f"{row['min_cosine_to_reference']:.6f}"
        )
    lines.append("")
    for runtime, row in list(rows.items())[1:]:
        model, e2e = row["model_only"], row["end_to_end"]
        lines.append(
            f"ratio {runtime} / {reference}: model {model['rate'] / ref['model_only']['rate']:.2f}x img/s, "
            f"end to end {e2e['rate'] / ref['end_to_end']['rate']:.2f}x photos/s, "
            f"{ref['end_to_end']['cpu_s'] / e2e['cpu_s']:.2f}x less CPU per photo, "
            f"peak RSS {e2e['peak_rss'] / ref['end_to_end']['peak_rss']:.2f}x"
        )
    for runtime, row in rows.items():
        e2e = row["end_to_end"]
        work = row["model_only"]["cpu_s"] + decode["cpu_s"]
        lines.append(
            f"{runtime}: end to end {e2e['wall_s']:.1f} s (first batch after {e2e['first_batch_s']:.2f} s, finish "
            f"{e2e['finish_s']:.2f} s), {e2e['cpu_utilisation']:.2f} cores busy, model threads "
            f"{e2e['model_threads']}, decode workers {e2e['decode_workers']}, batch {e2e['batch_size']}, model "
            f"load {e2e['model_load_s']:.1f} s; CPU efficiency {work / e2e['cpu_s']:.2f}; "
            f"end to end / limit {e2e['rate'] / row['limit']:.2f} (goal >= {GOAL_OF_LIMIT}) "
            f"{_mark(e2e['rate'] / row['limit'] >= GOAL_OF_LIMIT)}"
        )
    default = r["default_runtime"]
    if "end_to_end_busy_core" in r:
        busy = r["end_to_end_busy_core"]
        idle = rows[default]["end_to_end"]
        lines.append(
            f"{default}, end to end with another process spinning on one core ({busy['photos']} photos): "
            f"{busy['rate']:.2f} photos/s ({busy['rate'] / idle['rate']:.2f} x idle); CPU use "
            f"{busy['cpu_utilisation']:.2f} cores"
        )
    if "naive" in r:
        naive = r["naive"]
        lines.append(
            f"naive (full decode + exif_transpose + open_clip preprocess, torch, batch 1, {naive['photos']} photos, "
            f"torch threads {naive['torch_threads']}): {naive['rate']:.2f} photos/s"
        )
        over_naive = rows[default]["end_to_end"]["rate"] / naive["rate"]
        lines.append(
            f"ratio end to end ({default}) / naive: {over_naive:.2f}  (goal >= {GOAL_OVER_NAIVE}) "
            f"{_mark(over_naive >= GOAL_OVER_NAIVE)}"
        )
    lines.append(f"benchmark wall time {r['wall_s']:.0f} s")
    for line in lines:
        _say(s, line)


def _mark(ok: bool) -> str:
    return "ok" if ok else "BELOW GOAL"
