"""Duplicate finder benchmarks: clustering speed at scale, and precision/recall on labelled photos.

``bench dedup``: the tier pipeline on synthetic fingerprints and vectors (100k and 1M photos by default, each
in a fresh process so peak RSS is its own). 2 % of the photos have a planted near-copy.

``bench dedup-eval``: pairwise precision and recall per tier and per kind of change, on
``../shared/data/neardup`` (ground truth: groups.csv and file names) and on variants generated from
``../shared/data/photos-large`` (resize, JPEG q30/q60/q90, PNG/WebP, EXIF rotation, crops 5/10/20 %,
brightness ±20 %) with distractors (two different parts of each photo, near-uniform images), and on the hard
kinds (photoembed.bench.dedup_kinds: 25 % crops, 3/5 degree rotations, text overlay, watermark, padded square,
phone screenshot, framed print, patterned border, misty low-contrast photos and their copies) made from
photos-large and Flickr8k photos, where copies of *different* photos in one frame are the hard negatives.
Baseline: imagehash's phash with connected components, at a strict and a loose threshold (timed with its
hashing).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

from photoembed.bench.keeper_eval import keeper_accuracy, originals_by_group
from photoembed.config import Settings
from photoembed.core.hashing import content_hash
from photoembed.dedup.engine import DuplicateEngine, EngineOptions, FingerprintTable
from photoembed.dedup.records import DedupProgress
from photoembed.dedup.service import DedupService
from photoembed.dedup.trash import SystemTrash
from photoembed.errors import KnownError, ModelUnavailableError
from photoembed.imaging.decode import decode_photo
from photoembed.imaging.fingerprint import fingerprint
from photoembed.storage.catalog import Catalog

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def register_bench(bench_subparsers: Any) -> None:
    scale = bench_subparsers.add_parser("dedup", help="duplicate clustering time and peak memory at scale")
    scale.add_argument("--photos", type=int, nargs="+", default=[100_000, 1_000_000], metavar="N")
    scale.add_argument("--dim", type=int, default=512, help="vector dimensions (default 512, ViT-B-32)")
    scale.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child process mode
    scale.set_defaults(handler=cmd_bench_dedup)
    ev = bench_subparsers.add_parser("dedup-eval", help="duplicate precision/recall on labelled photos")
    ev.add_argument("--data", type=Path, default=SHARED_DATA, help="the shared data folder (default ../shared/data)")
    ev.add_argument("--bases", type=int, default=13, help="photos-large photos to make variants of (default all)")
    ev.add_argument("--hard", type=int, default=20, help="real photos given the hard kinds (default 20; as many misty)")
    ev.add_argument("--no-moments", action="store_true",
                    help="leave out the hard set's other moments of each photo (the issue's set, for its timing)")
    ev.set_defaults(handler=cmd_bench_dedup_eval)


# -- scale ----------------------------------------------------------------------------------------------


def synthetic_table(n: int, dim: int, *, seed: int = 0) -> tuple[FingerprintTable, np.ndarray]:
    """Random fingerprints and unit vectors (float16), with 2 % planted near-copies: ``(table, pairs [p, 2])``."""
    rng = np.random.default_rng(seed)
    pdq = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    layout = rng.integers(0, 256, (n, 64), dtype=np.uint8)
    vectors = np.empty((n, dim), dtype=np.float16)
    for start in range(0, n, 65536):
        block = rng.standard_normal((min(65536, n - start), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        vectors[start : start + len(block)] = block
    planted = n // 50
    src = rng.choice(n // 2, size=planted, replace=False)
    dst = n // 2 + np.arange(planted)
    pdq[dst] = pdq[src]
    flip = rng.integers(0, 32, (planted, 3))
    for k in range(3):
        pdq[dst, flip[:, k]] ^= np.uint8(1 << k)
    layout[dst] = np.clip(layout[src].astype(np.int16) + rng.integers(-3, 4, (planted, 64)), 0, 255).astype(np.uint8)
    near = vectors[src].astype(np.float32) + rng.normal(0, 0.01, (planted, dim)).astype(np.float32)
    vectors[dst] = (near / np.linalg.norm(near, axis=1, keepdims=True)).astype(np.float16)
    table = FingerprintTable(
        sizes=rng.integers(1_000_000, 8_000_000, n),
        content_hashes=[f"{i:032x}" for i in range(n)],
        quality=np.full(n, 100, dtype=np.uint8),
        pdq=pdq,
        layout=layout,
        taken=np.full(n, np.nan),
        thumbs=lambda rows: {r: rng.integers(0, 256, (32, 32), dtype=np.uint8) for r in rows},
        vectors=vectors,
        has_vector=np.ones(n, dtype=bool),
    )
    return table, np.stack([src, dst], axis=1)


def run_scale(n: int, dim: int) -> dict[str, float]:
    t0 = time.perf_counter()
    table, planted = synthetic_table(n, dim)
    setup = time.perf_counter() - t0
    phases: dict[str, float] = {}
    engine = DuplicateEngine(table, EngineOptions(tier="similar", similar_threshold=0.92))
    start = time.perf_counter()
    last_phase, last_t = "", start
    gen = engine.run()
    while True:
        try:
            progress: DedupProgress = next(gen)
        except StopIteration as stop:
            clusters = stop.value
            break
        now = time.perf_counter()
        if progress.phase != last_phase:
            phases[last_phase] = phases.get(last_phase, 0.0) + now - last_t
            last_phase, last_t = progress.phase, now
    end = time.perf_counter()
    phases[last_phase] = phases.get(last_phase, 0.0) + end - last_t
    phases.pop("", None)
    found = sum(1 for c in clusters if len(c.rows) >= 2)
    cluster_of = np.full(n, -1, dtype=np.int64)
    for k, c in enumerate(clusters):
        cluster_of[c.rows] = k
    a, b = cluster_of[planted[:, 0]], cluster_of[planted[:, 1]]
    return {
        "photos": n,
        "setup_s": setup,
        "cluster_s": end - start,
        "clusters": found,
        "planted": len(planted),
        "recall": float(np.mean((a >= 0) & (a == b))) if len(planted) else 1.0,
        "load_avg": os.getloadavg()[0],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **{f"phase {k}": v for k, v in phases.items()},
    }


def cmd_bench_dedup(args: argparse.Namespace, library_factory: Callable[[], Any]) -> int:
    from photoembed.ml.runtime import prepare_environment

    prepare_environment()  # OMP_WAIT_POLICY, as the front ends set it (the children inherit it)
    if args.one:
        print(json.dumps(run_scale(args.photos[0], args.dim)))
        return 0
    print(
        f"Clustering synthetic libraries (PDQ + 8x8 layouts + {args.dim}-d vectors, all three tiers); "
        "recall: planted near-copy pairs put in one cluster; load: 1-min load average at the end "
        f"({os.cpu_count()} CPUs, shared)"
    )
    for n in args.photos:
        out = subprocess.run(
            [sys.executable, "-m", "photoembed", "bench", "dedup", "--one", "--photos", str(n), "--dim", str(args.dim)],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            print(f"{n:>9,} photos: failed\n{out.stderr[-2000:]}")
            return 1
        r = json.loads(out.stdout.strip().splitlines()[-1])
        phases = ", ".join(f"{k[6:]} {v:.1f}s" for k, v in r.items() if k.startswith("phase "))
        print(
            f"{n:>9,} photos: clustering {r['cluster_s']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB, "
            f"{r['clusters']} clusters ({r['planted']} planted, recall {r['recall']:.3f}), load {r['load_avg']:.2f} "
            f"[data setup {r['setup_s']:.1f} s; {phases}]"
        )
    return 0


# -- evaluation -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    path: Path
    group: str  # files of one group are duplicates of each other
    kind: str  # the change that made it (or "original", "distractor", ...)


#: Ground-truth adjustments, printed with the tables.
NEARDUP_NOTES = (
    "groups.csv adjusted: modes/* and bridge-rotated/* joined to 'bridge' (modes/original.jpg has exactly the "
    "bridge's pixels; rotations count as the same photo); 'desk' (exif-rotn) and 'pen-coaster' are different "
    "framings of one scene, i.e. similar shots: tiers 1-2 should not find them."
)


def neardup_items(data: Path) -> list[Item]:
    items: list[Item] = []
    pdq_dir = data / "neardup" / "pdq-threatexchange"
    if (pdq_dir / "groups.csv").exists():
        with (pdq_dir / "groups.csv").open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                group = row["group"]
                kind = "distractor" if group.startswith("distinct") else group
                # misc-images/modes/* decode to exactly the pixels of bridge-mods/aaa-orig.jpg (checked: mean
                # absolute difference 0.0), so they are the same photo as the bridge group, not a similar shot.
                if group == "modes":
                    group = "bridge"
                # Pixel rotations and flips of the bridge: photoembed counts a rotated copy as the same photo
                # (groups.csv keeps them apart as the "transformed" class).
                if group == "bridge-rotated":
                    group = "bridge"
                items.append(Item(pdq_dir / row["file"], "pdq:" + group, "pdq " + kind))
    ided = data / "neardup" / "imagededup"
    if ided.is_dir():
        for path in sorted(ided.rglob("*")):
            if not path.is_file() or path.suffix.lower() == ".svg":
                continue
            m = re.match(r"(ukbench\d+)(?:_(\w+))?$", path.stem)
            if path.name == "alpha_channel_image.png":  # ukbench00120 with an alpha channel (checked)
                items.append(Item(path, "ided:ukbench00120", "imagededup alpha"))
                continue
            if m is None:
                items.append(Item(path, "ided:" + str(path.relative_to(ided)), "imagededup distractor"))
                continue
            if m.group(2) is not None:
                kind = m.group(2)
            elif path.parent.name == "base_images":
                kind = "original"
            else:
                kind = "copy/format"
            items.append(Item(path, "ided:" + m.group(1), "imagededup " + kind if kind != "original" else kind))
    return items


def variant_items(data: Path, out: Path, bases: int) -> list[Item]:
    rng = np.random.default_rng(7)
    items: list[Item] = []
    sources = sorted((data / "photos-large").glob("*.jpg"))[:bases]
    for k, src in enumerate(sources):
        with Image.open(src) as im:
            im.draft("RGB", (1600, 1600))
            from PIL import ImageOps

            base = ImageOps.exif_transpose(im).convert("RGB")
        base.thumbnail((1600, 1600))
        group = f"var:{k}"

        def save(image: Image.Image, name: str, kind: str, group: str = group, k: int = k, **kw: Any) -> None:
            path = out / f"{k:02d}-{name}"
            image.save(path, **kw)
            items.append(Item(path, group, kind))

        save(base, "original.jpg", "original", quality=95)
        save(
            base.resize((base.width // 2, base.height // 2), Image.Resampling.LANCZOS),
            "resize.jpg",
            "resize",
            quality=90,
        )
        for q in (30, 60, 90):
            save(base, f"q{q}.jpg", f"jpeg q{q}", quality=q)
        save(base, "format.png", "format png")
        save(base, "format.webp", "format webp", quality=80)
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90 CW on display: store the pixels rotated the other way
        save(base.transpose(Image.Transpose.ROTATE_90), "exif6.jpg", "exif rotation", quality=90, exif=exif)
        for frac in (0.05, 0.10, 0.20):
            w, h = base.size
            cw, ch = round(w * (1 - frac)), round(h * (1 - frac))
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            save(
                base.crop((x, y, x + cw, y + ch)), f"crop{int(frac * 100)}.jpg", f"crop {int(frac * 100)}%", quality=90
            )
        for sign, factor in (("+", 1.2), ("-", 0.8)):
            save(
                ImageEnhance.Brightness(base).enhance(factor), f"bright{sign}.jpg", f"brightness {sign}20%", quality=90
            )
        w, h = base.size
        save(
            base.crop((0, 0, int(w * 0.55), h)),
            "part-left.jpg",
            "distractor: other part",
            group=f"{group}:L",
            quality=90,
        )
        save(
            base.crop((int(w * 0.45), 0, w, h)),
            "part-right.jpg",
            "distractor: other part",
            group=f"{group}:R",
            quality=90,
        )
    ramp = np.linspace(0, 1, 640, dtype=np.float32)
    for k in range(6):
        top, bottom = rng.uniform(60, 230, 3), rng.uniform(60, 230, 3)
        sky = top[None, None, :] * (1 - ramp[:, None, None]) + bottom[None, None, :] * ramp[:, None, None]
        sky = np.broadcast_to(sky, (640, 960, 3)) + rng.normal(0, 1.5, (640, 960, 3))
        path = out / f"uniform-{k}.jpg"
        Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8)).save(path, quality=90)
        items.append(Item(path, f"uniform:{k}", "distractor: near-uniform"))
    for k, level in enumerate((0, 8, 250)):
        path = out / f"flat-{k}.jpg"
        Image.fromarray(np.full((480, 640, 3), level, dtype=np.uint8)).save(path, quality=90)
        items.append(Item(path, f"flat:{k}", "distractor: near-uniform"))
    return items


def _hard_sources(data: Path, count: int) -> list[Path]:
    """photos-large first, then Flickr8k originals (other real photos), ``count`` in all."""
    large = sorted((data / "photos-large").glob("*.jpg"))
    flickr = sorted((data / "flickr8k" / "original").glob("*.jpg"))
    return (large + flickr)[:count]


def hard_items(data: Path, out: Path, count: int, *, moments: bool = True) -> list[Item]:
    """The issue's hard kinds (crops 25 %, rotations, overlays, pads, screenshots, frames, misty photos).

    Each source photo gets one copy of every kind in photoembed.bench.dedup_kinds; its frames (pads,
    phone UI, framed print, patterned border) are the same for every photo, so pairs of *different* photos
    in one frame are the hard negatives (they count as false pairs). Misty groups use other photos than
    the rest (a misty edit of a photo would be a same-photo pair with it). Each plain source also gets
    other moments of its scene (dk.OTHER_MOMENT_KINDS, a part moved, no capture time), photos of their own:
    a pair of one with its original is a false pair too.
    """
    from PIL import ImageOps

    from photoembed.bench import dedup_kinds as dk

    items: list[Item] = []
    sources = _hard_sources(data, 2 * count)
    plain = sources[:count]
    for k, src in enumerate(sources):
        with Image.open(src) as im:
            im.draft("RGB", (1600, 1600))
            base = ImageOps.exif_transpose(im).convert("RGB")
        base.thumbnail((1600, 1600))
        if src in plain:
            group = f"hard:{k}"
            kinds = [*dk.SAME_PHOTO_KINDS, *(kv for kv in dk.FRAME_KINDS if kv[0] not in dict(dk.SAME_PHOTO_KINDS))]
            originals = [("original", base)]
        else:
            group = f"misty:{k}"
            base = dk.misty(base)
            kinds = list(dk.MISTY_KINDS)
            originals = [("original", base)]
        for name, image in originals + [(n, f(base)) for n, f in kinds]:
            kind = (
                name
                if name == "original" or not name.startswith(("padded square black", "framed", "patterned"))
                else ("frame: " + name)
            )
            png = "screenshot" in name
            path = (
                out
                / f"hard-{k:02d}-{name.replace(' ', '_').replace('%', '').replace('°', 'deg')}.{'png' if png else 'jpg'}"  # noqa: E501
            )
            if png:
                image.save(path)
            else:
                image.save(path, quality=90)
            items.append(Item(path, group, kind))
        if src in plain and moments:
            # Other moments of the scene, each a photo of its own: a pair with the original is a false pair.
            for name, make in dk.OTHER_MOMENT_KINDS:
                path = out / f"hard-{k:02d}-{name.split(': ')[1].replace(' ', '_')}.jpg"
                make(base).save(path, quality=90)
                items.append(Item(path, f"{group}/{name}", name))
    return items


def _ingest(catalog: Catalog, root_id: int, items: Sequence[Item], encoder: Any) -> dict[Path, Any]:
    """Catalog the items as the indexer does; returns decoded images for the baseline hash."""
    decoded: dict[Path, Any] = {}
    pending: list[tuple[str, Any]] = []
    for item in items:
        data = item.path.read_bytes()
        st = item.path.stat()
        try:
            photo = decode_photo(data, name=item.path.name, min_side=224, mtime=st.st_mtime)
        except KnownError:
            continue
        mark = fingerprint(photo.image)
        info = dataclasses.replace(photo.info, phash=mark.phash, sharpness=mark.sharpness)
        digest = content_hash(data)
        catalog.upsert_photo(
            root_id=root_id,
            path=str(item.path),
            size=len(data),
            mtime_ns=st.st_mtime_ns,
            content_hash=digest,
            info=info,
        )
        decoded[item.path] = photo.image
        if encoder is not None:
            pending.append((digest, encoder.prepare(photo.image, **photo.geometry)))
    if encoder is not None:
        for start in range(0, len(pending), 16):
            chunk = pending[start : start + 16]
            vecs = encoder.encode_images(np.stack([p for _, p in chunk]))
            catalog.put_embeddings(encoder.name, [(h, v) for (h, _), v in zip(chunk, vecs, strict=True)])
    return decoded


def _feature_cost(catalog: Catalog, pairs: int = 400) -> str:
    """Cost of the local-feature check per pair, on stored fingerprints of this set (random pairs)."""
    from photoembed.dedup.match import verify_features
    from photoembed.imaging.fingerprint import parse

    parsed = [parse(blob) for (blob,) in catalog.db.execute("SELECT phash FROM photos WHERE phash IS NOT NULL")]
    usable = [p for p in parsed if p is not None and p.features is not None]
    if len(usable) < 2:
        return "local features: none stored"
    rng = np.random.default_rng(3)
    picks = rng.integers(0, len(usable), (pairs, 2))
    start = time.perf_counter()
    for x, y in picks.tolist():
        a, b = usable[x], usable[y]
        assert a.features is not None
        assert b.features is not None
        verify_features(a.features, b.features, a.thumb, b.thumb)
    took = (time.perf_counter() - start) / pairs
    blob_kb = float(np.mean([len(blob) for (blob,) in catalog.db.execute("SELECT phash FROM photos")])) / 1024
    return (
        f"local-feature check: {took * 1000:.2f} ms per pair ({pairs} random pairs); fingerprint {blob_kb:.1f} KB/photo"
    )


def _pairs_of(groups: Sequence[Sequence[Path]]) -> set[frozenset[Path]]:
    return {frozenset(p) for g in groups for p in itertools.combinations(sorted(g), 2)}


def _baseline_clusters(images: dict[Path, Any], threshold: int) -> list[list[Path]]:
    try:
        import imagehash
    except ImportError as exc:  # a benchmark-only dependency: the `bench` extra
        raise KnownError("this benchmark compares against imagehash: pip install 'photoembed[bench]'") from exc

    paths = sorted(images)
    hashes = [imagehash.phash(images[p]) for p in paths]
    parent = list(range(len(paths)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in itertools.combinations(range(len(paths)), 2):  # a baseline on a few hundred photos
        if hashes[a] - hashes[b] <= threshold:
            parent[find(a)] = find(b)
    comps: dict[int, list[Path]] = {}
    for k, p in enumerate(paths):
        comps.setdefault(find(k), []).append(p)
    return [c for c in comps.values() if len(c) > 1]


def _table(
    name: str, items: Sequence[Item], predicted: set[frozenset[Path]], kinds: Sequence[str], emit: Callable[[str], None]
) -> None:
    by_path = {i.path: i for i in items}
    present = [i for i in items if i.path in by_path]
    truth: set[frozenset[Path]] = set()
    pair_kind: dict[frozenset[Path], str] = {}
    groups: dict[str, list[Item]] = {}
    for i in present:
        groups.setdefault(i.group, []).append(i)
    for members in groups.values():
        for a, b in itertools.combinations(members, 2):
            pair = frozenset((a.path, b.path))
            truth.add(pair)
            if a.kind == b.kind or b.kind == "original":
                kind = a.kind
            elif a.kind == "original":
                kind = b.kind
            else:
                kind = "between variants"
            pair_kind[pair] = kind
    predicted = {p for p in predicted if p <= set(by_path)}
    tp = len(predicted & truth)
    precision = tp / len(predicted) if predicted else 1.0
    recall = tp / len(truth) if truth else 1.0
    false = predicted - truth
    fp_kinds: dict[str, int] = {}
    for pair in false:
        first, second = sorted(pair)
        label = " / ".join(sorted({by_path[first].kind, by_path[second].kind}))
        fp_kinds[label] = fp_kinds.get(label, 0) + 1
    cells = []
    for kind in kinds:
        pairs = [p for p, k in pair_kind.items() if k == kind]
        cells.append(f"{sum(p in predicted for p in pairs) / len(pairs):5.2f}" if pairs else "    -")
    if len(kinds) > 12:  # the hard set: one line per kind
        emit(f"{name:<36} {precision:9.3f} {recall:6.3f} {len(false):4d}")
        for kind, cell in zip(kinds, cells, strict=True):
            n_pairs = sum(1 for k in pair_kind.values() if k == kind)
            emit(f"{'':<4}{kind:<32} recall {cell} ({n_pairs} pairs)")
    else:
        emit(f"{name:<36} {precision:9.3f} {recall:6.3f} {len(false):4d}  " + " ".join(f"{c:>9}" for c in cells))
    moments = [i for i in present if i.kind.startswith("another moment")]
    for kind in sorted({i.kind for i in moments}):
        # Taken for the same photo as the scene it is another moment of (with any of that photo's copies).
        of_kind = [i for i in moments if i.kind == kind]
        merged = sum(
            any(frozenset((i.path, other.path)) in predicted for other in groups.get(i.group.rsplit("/", 1)[0], []))
            for i in of_kind
        )
        emit(f"{'':<4}{kind:<32} taken for the same photo: {merged} of {len(of_kind)}")
    if fp_kinds:
        worst = sorted(fp_kinds.items(), key=lambda kv: -kv[1])[:4]
        emit(" " * 38 + "false pairs: " + "; ".join(f"{k} ×{v}" for k, v in worst))
        example = sorted(sorted(p) for p in false)[0]
        emit(" " * 38 + f"e.g. {example[0].name} ~ {example[1].name}")


def cmd_bench_dedup_eval(args: argparse.Namespace, library_factory: Callable[[], Any]) -> int:
    data: Path = args.data
    if not (data / "neardup").is_dir() and not (data / "photos-large").is_dir():
        raise KnownError(f"{data} holds neither neardup/ nor photos-large/")
    encoder = None
    model_note = "no CLIP weights installed: the similar-shots tier and CLIP confirmation are not evaluated"
    try:
        encoder = library_factory().encoder(("image",))
        model_note = f"CLIP model {encoder.name}: confirms tier 2 and drives the similar-shots tier"
    except ModelUnavailableError:
        pass
    with tempfile.TemporaryDirectory(prefix="photoembed-dedup-eval-") as tmp:
        work = Path(tmp)
        (work / "variants").mkdir()
        sets = {
            "neardup (shared data)": neardup_items(data),
            "photos-large variants": variant_items(data, work / "variants", args.bases)
            if (data / "photos-large").is_dir()
            else [],
            "hard kinds and shared frames": hard_items(data, work / "variants", args.hard, moments=not args.no_moments)
            if (data / "photos-large").is_dir()
            else [],
        }
        print(model_note)
        for set_name, items in sets.items():
            if not items:
                continue
            catalog = Catalog.open(work / f"{len(set_name)}.sqlite3")
            root = catalog.add_root(data if set_name.startswith("neardup") else work / "variants")
            t0 = time.perf_counter()
            images = _ingest(catalog, root.id, items, encoder)
            ingest_s = time.perf_counter() - t0
            decoded_items = [i for i in items if i.path in images]  # undecodable files (corrupt) are no photos
            settings = Settings(model=encoder.name) if encoder is not None else Settings()
            service = DedupService(catalog=catalog, settings=settings, trash=SystemTrash())
            kinds = sorted({i.kind for i in items if i.kind != "original" and "distractor" not in i.kind
                            and not i.kind.startswith("another moment")})
            print(f"\n== {set_name}: {len(images)} photos decoded ({ingest_s:.1f} s) ==")
            if set_name.startswith("neardup"):
                print(NEARDUP_NOTES)
            print(
                f"{'method':<36} {'precision':>9} {'recall':>6} {'FP':>4}  "
                + ("" if len(kinds) > 12 else " ".join(f"{k[-9:]:>9}" for k in kinds))
            )
            if set_name.startswith("hard"):
                print(_feature_cost(catalog))
            tiers = ["identical", "same"] + (["similar"] if encoder is not None else [])
            for tier in tiers:
                t0 = time.perf_counter()
                clusters = service.find_clusters(tier=tier)
                took = time.perf_counter() - t0
                predicted = _pairs_of([[p.path for p in c.photos] for c in clusters])
                _table(f"photoembed up to '{tier}' ({took:.1f}s)", decoded_items, predicted, kinds, print)
                if tier == "same":
                    rows = {p.path: p for p in catalog.iter_photos()}
                    print(keeper_accuracy(clusters, originals_by_group(decoded_items), rows).line())
            for label, threshold in (("phash ≤4 (strict)", 4), ("phash ≤12 (loose)", 12)):
                t0 = time.perf_counter()  # hashing the decoded images and pairing them: its whole cost
                baseline = _pairs_of(_baseline_clusters(images, threshold))
                took = time.perf_counter() - t0
                _table(f"baseline {label} ({took:.1f}s)", decoded_items, baseline, kinds, print)
            catalog.close()
    print("\nPairs are counted within each set; recall columns: share of (original, variant) pairs found.")
    return 0
