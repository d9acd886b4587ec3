"""``photoembed bench parity``: are photoembed's embeddings open_clip's own, photo by photo?

Each real photo (``../shared/data``: ``photos-large`` and the PDQ test images with their EXIF orientations,
colour modes and formats) is embedded twice with the same model object:

* the indexer's path: :func:`~photoembed.imaging.decode.decode_photo` at the model's size (a reduced JPEG
  decode, an embedded preview...), then :meth:`ClipEncoder.prepare` with the decode's geometry and
  :meth:`ClipEncoder.encode_images`;
* open_clip's reference: a full decode (Pillow, ``exif_transpose``, RGB; transparency on white as
  photoembed does), the eval transform from ``open_clip.create_model_and_transforms`` with the tag's
  preprocessing, and ``model.encode_image``.

The cosine of the two vectors is printed per photo, with the minimum and median per model. Weights are
random (no hub here), which exercises the same pipeline. An architecture whose random initialisation maps
every photo to nearly one vector (MobileCLIP2-S0's FastViT: layer scales of 1e-5, BatchNorm statistics of
an untrained net) is calibrated first: layer scales set to 1 and BatchNorm running statistics measured on a
few of the photos, so that it responds to its input; the mean pairwise cosine between photos is printed to
show it does.

With ``--engines onnx`` (or ``onnx,onnx-int8``) it compares the CPU runtimes instead: every photo of every
set under ``--data`` (``flickr8k``, ``neardup``, ``photos-large``) goes through the indexer's decode and
preprocessing once, and that same input is embedded by torch fp32 and by ONNX Runtime from an export of the
same model object; the minimum and median cosine per set are printed. The exact runtime (``onnx``) is held
to the export's own bar, cosine >= 0.9999 on every photo; int8 is opt-in and only reported.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from photoembed.bench.common import load_average
from photoembed.config import DEFAULT_MODEL
from photoembed.errors import KnownError

logger = logging.getLogger(__name__)

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
GOAL_MIN = 0.995
GOAL_MEDIAN = 0.999
ENGINE_GOAL = 0.9999  # the bar an export must pass against torch (photoembed.ml.onnx_export.VERIFY_COSINE)
ENGINE_SETS = ("flickr8k", "neardup", "photos-large")
_NOT_PHOTOS = (".csv", ".txt", ".md", ".json")
_DEGENERATE = 0.98  # mean pairwise cosine above which a random network does not tell photos apart
_CALIBRATION_PHOTOS = 8
_BIG_FORWARD_S = 1.0  # one image taking longer than this through the image tower makes a model "big"


@dataclass(frozen=True)
class ParityRow:
    """One photo through both paths."""

    model: str
    photo: str
    cosine: float


@dataclass(frozen=True)
class ModelSummary:
    model: str
    photos: int
    skipped: int
    minimum: float
    median: float
    below_goal: int
    spread: float  # mean pairwise cosine between photos (reference path): near 1 means degenerate
    calibrated: bool
    seconds: float


@dataclass(frozen=True)
class EngineSummary:
    """One runtime against torch fp32 on one set of photos (``set`` "all" for every set together)."""

    model: str
    engine: str
    set: str
    photos: int
    skipped: int
    minimum: float
    median: float
    below_goal: int
    worst: str  # the photo with the lowest cosine


def register_bench(bench_subparsers: Any) -> None:
    parser = bench_subparsers.add_parser(
        "parity",
        help="cosine between the indexer's embeddings and open_clip's reference, per photo and model",
    )
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="shared data folder (default ../shared/data)")
    parser.add_argument(
        "--models", metavar="LIST", help="comma-separated ARCH/TAG (default: every `model list` entry)"
    )
    parser.add_argument("--limit", type=int, default=0, help="photos per model (default: all)")
    parser.add_argument(
        "--big-limit",
        type=int,
        default=8,
        help="photos for architectures that take over 1 s per image here (default 8; 0: same as --limit)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--quiet", action="store_true", help="print the summaries only")
    parser.add_argument(
        "--engines",
        metavar="LIST",
        help="compare CPU runtimes (onnx, onnx-int8) with torch fp32 on the indexer's own inputs, on every photo "
        f"of {', '.join(ENGINE_SETS)} under --data (default model: {DEFAULT_MODEL})",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="batch size for --engines (default 16)")
    parser.set_defaults(handler=cmd_bench_parity)


def cmd_bench_parity(args: argparse.Namespace, library_factory: Callable[[], Any]) -> int:
    if args.engines:
        return _cmd_engines(args)
    photos = parity_photos(args.data)
    if not photos:
        print(f"no photos under {args.data} (photos-large, neardup/pdq-threatexchange): nothing to compare")
        return 0
    library = library_factory()
    if args.models:
        names = [part.strip() for part in args.models.split(",") if part.strip()]
    else:
        names = [row.name for row in library.models.list()]
    print(f"{len(photos)} photos from {args.data}; models: {', '.join(names)} (random weights); load {load_average()}")
    summaries = []
    for name in names:
        rows: list[ParityRow] = []

        def show(row: ParityRow, rows: list[ParityRow] = rows) -> None:
            rows.append(row)
            if not args.quiet:
                print(f"  {row.cosine:.6f}  {row.model}  {row.photo}", flush=True)

        summary = compare_model(
            name, photos, limit=args.limit, big_limit=args.big_limit, device=args.device, on_row=show
        )
        summaries.append(summary)
        print(_summary_line(summary), flush=True)
    met = all(s.minimum >= GOAL_MIN and s.median >= GOAL_MEDIAN for s in summaries if s.photos)
    print(f"goal (min >= {GOAL_MIN}, median >= {GOAL_MEDIAN} for every model): {'met' if met else 'NOT met'}")
    return 0


def _cmd_engines(args: argparse.Namespace) -> int:
    from photoembed.ml.models import spec_for

    engines = [part.strip() for part in str(args.engines).split(",") if part.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise KnownError(f"Unknown engine {', '.join(unknown)}; use {', '.join(ENGINES)}")
    photos = engine_photos(args.data)
    if args.limit:
        photos = photos[: args.limit]
    if not photos:
        print(f"no photos under {args.data} ({', '.join(ENGINE_SETS)}): nothing to compare")
        return 0
    names = [part.strip() for part in args.models.split(",") if part.strip()] if args.models else [DEFAULT_MODEL]
    print(
        f"{len(photos)} photos from {args.data}; {', '.join(engines)} against torch fp32 on the indexer's inputs; "
        f"models: {', '.join(names)} (random weights); load {load_average()}",
        flush=True,
    )
    met = True
    for name in names:
        started = time.perf_counter()
        model, _, _ = build_random(name)
        spec = spec_for(name, Path("random-weights"))
        with tempfile.TemporaryDirectory(prefix="photoembed-parity-") as scratch:

            def progress(done: int, total: int, name: str = name) -> None:
                if not args.quiet:
                    print(f"  {name}: {done}/{total} photos", flush=True)

            summaries = compare_engines(
                spec, model, photos, engines=engines, workdir=Path(scratch), batch_size=args.batch_size,
                data=args.data, on_progress=progress,
            )
        for summary in summaries:
            print(_engine_line(summary), flush=True)
        met = met and all(s.below_goal == 0 for s in summaries if s.engine == "onnx")
        print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
    if "onnx" in engines:
        print(f"goal (onnx fp32: every photo >= {ENGINE_GOAL} to torch): {'met' if met else 'NOT met'}")
    return 0


def _engine_line(s: EngineSummary) -> str:
    return (
        f"  {s.engine:<9} {s.set:<13} {s.photos:5d} photos  min {s.minimum:.7f}  median {s.median:.7f}  "
        f"below {ENGINE_GOAL}: {s.below_goal}{f'  ({s.skipped} not decodable)' if s.skipped else ''}"
        f"  worst {s.worst}"
    )


ENGINES = ("onnx", "onnx-int8")


def engine_photos(data: Path) -> list[Path]:
    """Every image file of the shared data sets (:data:`ENGINE_SETS`), set by set, in a stable order."""
    found: list[Path] = []
    for name in ENGINE_SETS:
        folder = data / name
        if folder.is_dir():
            found += sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() not in _NOT_PHOTOS)
    return found


def compare_engines(
    spec: Any,
    model: Any,
    photos: Sequence[Path],
    *,
    engines: Sequence[str] = ("onnx",),
    workdir: Path,
    batch_size: int = 16,
    threads: int = 0,
    data: Path | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[EngineSummary]:
    """Embed each photo's indexer input with torch fp32 and with each ONNX Runtime engine; cosines per set.

    Args:
        spec: the model's :class:`~photoembed.ml.build.ModelSpec` (preprocessing, name).
        model: the open_clip model, float32 on the CPU; its image tower is exported to ``workdir``.
        photos: the photos; a photo that does not decode is counted as skipped.
        engines: ``"onnx"`` (fp32) and/or ``"onnx-int8"`` (the opt-in dynamic quantisation of that export).
        workdir: where the export is written.
        batch_size: photos per forward pass, as the indexer batches them.
        threads: CPU threads for both runtimes (0: every core).
        data: the folder the sets are in (a photo's set is its first folder below it); None: one set "all".
        on_progress: called with (photos done, total) after each batch.

    Raises:
        KnownError: the export was refused (its own check against torch failed).
    """
    import torch

    from photoembed.imaging.decode import decode_photo
    from photoembed.ml.engine import OrtEngine, TorchEngine, normalize
    from photoembed.ml.onnx_export import export_image_tower, quantize_int8
    from photoembed.ml.preprocess import Preprocess
    from photoembed.ml.runtime import configure_torch, cpu_count

    threads = threads or cpu_count()
    configure_torch(threads)
    model = model.eval()
    preprocess = Preprocess.from_cfg(spec.preprocess_cfg)
    min_side = max(preprocess.size)
    reference = TorchEngine(model, "image", device="cpu", half=False)
    runners: dict[str, Any] = {}
    cosines: dict[tuple[str, str], list[tuple[float, str]]] = {}
    skipped: dict[str, int] = {}

    def set_of(path: Path) -> str:
        if data is not None and data in path.parents:
            return path.relative_to(data).parts[0]
        return "all"

    def flush(batch: list[tuple[str, str, np.ndarray]]) -> None:
        pixels = np.stack([item[2] for item in batch])
        if not runners:  # the first batch: calibrate a degenerate random network, then export it as it is
            with torch.inference_mode():
                if _spread(model, list(pixels[:_CALIBRATION_PHOTOS]), "cpu") > _DEGENERATE:
                    calibrate(model, list(pixels[:_CALIBRATION_PHOTOS]))
            export = export_image_tower(spec, model, workdir)
            fp32 = export.file("image")
            if fp32 is None:
                raise KnownError(f"The ONNX export of {spec.name} was refused: {export.refusal('image')}")
            for engine in engines:
                if engine == "onnx-int8":
                    int8 = quantize_int8(export).file("image", "int8")
                    assert int8 is not None
                    runners[engine] = OrtEngine(int8, threads=threads, precision="int8")
                else:
                    runners[engine] = OrtEngine(fp32, threads=threads)
        expected = normalize(reference.predict(pixels))
        for engine, runner in runners.items():
            similarity = np.sum(normalize(runner.predict(pixels)) * expected, axis=-1)
            for (group, name, _), cosine in zip(batch, similarity, strict=True):
                cosines.setdefault((engine, group), []).append((float(cosine), name))

    batch: list[tuple[str, str, np.ndarray]] = []
    done = 0
    for path in photos:
        group = set_of(path)
        try:
            decoded = decode_photo(path.read_bytes(), name=path.name, min_side=min_side, mtime=0.0)
            pixels = preprocess(decoded.image, **decoded.geometry)
        except (OSError, ValueError, SyntaxError, KnownError) as exc:  # counted, not compared
            logger.info("%s: skipped (%s)", path, exc)
            skipped[group] = skipped.get(group, 0) + 1
            continue
        batch.append((group, str(path.relative_to(data)) if data is not None else path.name, pixels))
        if len(batch) >= batch_size:
            flush(batch)
            done += len(batch)
            batch = []
            if on_progress is not None:
                on_progress(done, len(photos))
    if batch:
        flush(batch)
    for runner in runners.values():
        runner.unload()
    return _engine_summaries(spec.name, engines, cosines, skipped)


def _engine_summaries(
    model: str, engines: Sequence[str], cosines: dict[tuple[str, str], list[tuple[float, str]]], skipped: dict[str, int]
) -> list[EngineSummary]:
    groups = sorted({group for _, group in cosines} | set(skipped))
    summaries = []
    for engine in engines:
        every: list[tuple[float, str]] = []
        for group in [*groups, "all"]:
            rows = every if group == "all" else cosines.get((engine, group), [])
            if group != "all":
                every.extend(rows)
            if group == "all" and len(groups) == 1 and groups[0] == "all":
                continue  # the only set is already "all"
            values = [c for c, _ in rows]
            summaries.append(
                EngineSummary(
                    model=model,
                    engine=engine,
                    set=group,
                    photos=len(values),
                    skipped=sum(skipped.values()) if group == "all" else skipped.get(group, 0),
                    minimum=min(values) if values else float("nan"),
                    median=statistics.median(values) if values else float("nan"),
                    below_goal=sum(c < ENGINE_GOAL for c in values),
                    worst=min(rows)[1] if rows else "",
                )
            )
    return summaries


def _summary_line(s: ModelSummary) -> str:
    return (
        f"{s.model}: {s.photos} photos, min {s.minimum:.6f}, median {s.median:.6f}, {s.below_goal} below {GOAL_MIN}"
        f"{f', {s.skipped} not decodable' if s.skipped else ''}; photos' mean pairwise cosine {s.spread:.3f}"
        f"{' (after calibration)' if s.calibrated else ''}; {s.seconds:.0f} s"
    )


def parity_photos(data: Path) -> list[Path]:
    """The real photos to compare on: full-size camera JPEGs, then the PDQ set (orientations, modes, formats)."""
    found = sorted((data / "photos-large").glob("*.jpg"))
    pdq = data / "neardup" / "pdq-threatexchange"
    if pdq.is_dir():
        found += sorted(p for p in pdq.rglob("*") if p.is_file() and p.suffix.lower() not in (".csv", ".txt", ".md"))
    return found


def reference_image(path: Path) -> Image.Image:
    """A full decode as a reference pipeline does it: Pillow, EXIF transpose, RGB (alpha over white)."""
    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened)
        image.load()
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def compare_model(
    name: str,
    photos: Sequence[Path],
    *,
    limit: int = 0,
    big_limit: int = 8,
    device: str = "cpu",
    on_row: Callable[[ParityRow], None] | None = None,
) -> ModelSummary:
    """Embed ``photos`` through both paths with a random-weight ``name``; cosines per photo."""
    import torch

    started = time.perf_counter()
    model, reference, encoder = build_random(name, device=device)
    count = limit or len(photos)
    pairs: list[tuple[Path, np.ndarray, np.ndarray]] = []
    skipped = 0
    for path in photos:
        if len(pairs) >= count:
            break
        if len(pairs) == 1 and big_limit and _forward_seconds(model, pairs[0][2], device) > _BIG_FORWARD_S:
            count = min(count, big_limit)  # an expensive architecture on this machine: a handful of photos
        try:
            ours_input = _indexer_input(encoder, path)
            reference_input = reference(reference_image(path)).numpy()
        except (OSError, ValueError, SyntaxError, KnownError) as exc:  # counted, not compared
            logger.info("%s: skipped (%s)", path.name, exc)
            skipped += 1
            continue
        pairs.append((path, ours_input, reference_input))
    calibrated = False
    with torch.inference_mode():
        spread = _spread(model, [ref for _, _, ref in pairs[:_CALIBRATION_PHOTOS]], device)
    if spread > _DEGENERATE:
        calibrate(model, [ref for _, _, ref in pairs[:_CALIBRATION_PHOTOS]], device)
        calibrated = True
        with torch.inference_mode():
            spread = _spread(model, [ref for _, _, ref in pairs[:_CALIBRATION_PHOTOS]], device)
    cosines = []
    for path, ours_input, reference_input in pairs:
        ours = encoder.encode_images(ours_input[None])[0]
        with torch.inference_mode():
            ref = model.encode_image(torch.from_numpy(reference_input[None]).to(device))
            ref = torch.nn.functional.normalize(ref.float(), dim=-1)[0].cpu().numpy()
        cosine = float(np.dot(ours, ref))
        cosines.append(cosine)
        if on_row is not None:
            on_row(ParityRow(name, path.name, cosine))
    return ModelSummary(
        model=name,
        photos=len(cosines),
        skipped=skipped,
        minimum=min(cosines) if cosines else float("nan"),
        median=statistics.median(cosines) if cosines else float("nan"),
        below_goal=sum(c < GOAL_MIN for c in cosines),
        spread=spread,
        calibrated=calibrated,
        seconds=time.perf_counter() - started,
    )


def _indexer_input(encoder: Any, path: Path) -> np.ndarray:
    from photoembed.imaging.decode import decode_photo

    decoded = decode_photo(path.read_bytes(), name=path.name, min_side=encoder.image_size, mtime=0.0)
    prepared: np.ndarray = encoder.prepare(decoded.image, **decoded.geometry)
    return prepared


def build_random(name: str, *, device: str = "cpu", seed: int = 0) -> tuple[Any, Any, Any]:
    """A random-weight model of ``name``'s architecture, open_clip's eval transform for the tag, and a
    :class:`~photoembed.ml.encoder.ClipEncoder` around the same model object (image tower)."""
    import open_clip
    import torch

    from photoembed.ml.build import split_name
    from photoembed.ml.encoder import ClipEncoder
    from photoembed.ml.engine import TorchEngine
    from photoembed.ml.models import spec_for

    spec = spec_for(name, Path("random-weights"))
    arch = split_name(name)[0]
    cfg = spec.preprocess_cfg
    torch.manual_seed(seed)
    model, _, reference = open_clip.create_model_and_transforms(
        arch,
        pretrained=None,
        force_quick_gelu=bool(spec.model_cfg.get("quick_gelu")),
        image_mean=cfg.get("mean"),
        image_std=cfg.get("std"),
        image_interpolation=cfg.get("interpolation"),
        image_resize_mode=cfg.get("resize_mode"),
    )
    model = model.to(device).eval()
    encoder = ClipEncoder(
        model=spec.name,
        dim=spec.embed_dim,
        preprocess_cfg=spec.preprocess_cfg,
        engines={"image": TorchEngine(model, "image", device=device, half=False)},
        tokenizer=None,
        text_pool=None,
        device=device,
    )
    return model, reference, encoder


def calibrate(model: Any, inputs: Sequence[np.ndarray], device: str = "cpu") -> None:
    """Make a random network respond to its input: layer scales to 1, BatchNorm statistics from photos."""
    import torch

    with torch.no_grad():
        for module_name, parameter in model.visual.named_parameters():
            if module_name.endswith(("gamma", "layer_scale", "layer_scale.weight")) or ".layer_scale" in module_name:
                parameter.fill_(1.0)
        norms = [m for m in model.visual.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average over the calibration batch
            norm.train()
        if norms:
            batch = torch.from_numpy(np.stack(list(inputs))).to(device)
            model.encode_image(batch)
        for norm in norms:
            norm.eval()


def _forward_seconds(model: Any, pixels: np.ndarray, device: str) -> float:
    import torch

    with torch.inference_mode():
        started = time.perf_counter()
        model.encode_image(torch.from_numpy(pixels[None]).to(device))
        return time.perf_counter() - started


def _spread(model: Any, inputs: Sequence[np.ndarray], device: str) -> float:
    """Mean pairwise cosine of the photos' embeddings: 1.0 when the network maps them all to one vector."""
    import torch

    if len(inputs) < 2:
        return 0.0
    features = model.encode_image(torch.from_numpy(np.stack(list(inputs))).to(device))
    features = torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()
    similarity = features @ features.T
    n = len(inputs)
    return float((similarity.sum() - np.trace(similarity)) / (n * (n - 1)))
