"""Helpers shared by the benchmarks: camera-like test photos, machine load, memory, a busy core.

The photos are generated once from a folder of real photos (``../shared/data/photos-large``) and kept in a
cache folder, so repeated benchmark runs measure the same bytes. Each generated photo is a distinct random
crop of a source, scaled to a random size in a megapixel range, colour-jittered, given sensor-like grain
(camera JPEGs carry noise, which is what makes their entropy decoding cost what it does) and saved as a
baseline JPEG (what cameras and phones write) with EXIF: an orientation, a capture time, a camera model.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

GENERATOR_VERSION = 1
MANIFEST = "manifest.json"
SOURCE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff")
# Orientation tags weighted as in a phone camera roll: mostly upright, many portraits, a few upside down.
_ORIENTATIONS = (1, 1, 1, 1, 6, 6, 8, 3, 2, 4, 5, 7)


@dataclass(frozen=True)
class PhotoRecipe:
    """How one generated photo is made (deterministic from its index and the seed)."""

    index: int
    source: str
    crop: tuple[int, int, int, int]
    size: tuple[int, int]
    gains: tuple[float, float, float]
    gamma: float
    grain: float
    quality: int
    orientation: int
    taken: str


def source_photos(folder: Path) -> list[Path]:
    """The images in ``folder`` that photos are generated from, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in SOURCE_SUFFIXES and p.is_file())


def plan_photos(
    sources: Sequence[tuple[str, tuple[int, int]]], count: int, *, seed: int, megapixels: tuple[float, float]
) -> list[PhotoRecipe]:
    """Recipes for ``count`` distinct photos from ``sources`` ((name, (width, height)) pairs)."""
    recipes = []
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        name, (width, height) = sources[index % len(sources)]
        # A random crop of 55-100 % of the area, aspect jittered around the source's.
        area = rng.uniform(0.55, 1.0)
        aspect = (width / height) * rng.uniform(0.8, 1.25)
        crop_w = min(width, round((area * width * height * aspect) ** 0.5))
        crop_h = min(height, round(crop_w / aspect))
        left = int(rng.integers(0, width - crop_w + 1))
        top = int(rng.integers(0, height - crop_h + 1))
        pixels = rng.uniform(megapixels[0], megapixels[1]) * 1e6
        out_w = max(16, round((pixels * crop_w / crop_h) ** 0.5))
        out_h = max(16, round(out_w * crop_h / crop_w))
        day = int(rng.integers(0, 3 * 365))
        taken = time.strftime("%Y:%m:%d %H:%M:%S", time.gmtime(1_600_000_000 + day * 86_400 + index * 7))
        recipes.append(
            PhotoRecipe(
                index=index,
                source=name,
                crop=(left, top, left + crop_w, top + crop_h),
                size=(out_w, out_h),
                gains=(float(rng.uniform(0.85, 1.15)), float(rng.uniform(0.85, 1.15)), float(rng.uniform(0.85, 1.15))),
                gamma=float(rng.uniform(0.8, 1.25)),
                grain=float(rng.uniform(3.0, 6.0)),
                quality=int(rng.integers(85, 96)),
                orientation=int(_ORIENTATIONS[int(rng.integers(len(_ORIENTATIONS)))]),
                taken=taken,
            )
        )
    return recipes


def photo_name(index: int) -> str:
    # Two camera-like folders, so the scan walks a tree as it would in a real library.
    return f"{100 + index // 100:03d}CAMERA/IMG_{index:05d}.jpg"


def generate_photos(
    source_dir: Path,
    out_dir: Path,
    count: int,
    *,
    seed: int = 0,
    megapixels: tuple[float, float] = (8.0, 16.0),
    workers: int = 2,
) -> list[Path]:
    """Return ``count`` generated photos in ``out_dir``, generating only those not already there.

    The folder keeps a manifest of the recipe; a folder made with other settings is regenerated from
    scratch. Generation runs in ``workers`` processes (it is CPU work: a full decode, resize and encode).

    Raises:
        FileNotFoundError: when ``source_dir`` holds no images.
    """
    sources = source_photos(source_dir)
    if not sources:
        raise FileNotFoundError(f"no source photos in {source_dir}")
    source_sizes = []
    for path in sources:
        with Image.open(path) as image:
            source_sizes.append((path.name, image.size))
    recipes = plan_photos(source_sizes, count, seed=seed, megapixels=megapixels)
    key = {
        "version": GENERATOR_VERSION,
        "seed": seed,
        "megapixels": list(megapixels),
        "sources": [[name, list(size)] for name, size in source_sizes],
    }
    manifest_path = out_dir / MANIFEST
    done: set[int] = set()
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("key") == key:
            done = {int(i) for i in manifest.get("done", [])}
    else:
        manifest = {}
    if manifest.get("key") != key:
        done = set()
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = [r for r in recipes if r.index not in done or not (out_dir / photo_name(r.index)).is_file()]
    if todo:
        # spawn, not fork: the caller may already run torch's thread pools, which do not survive a fork.
        with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=get_context("spawn")) as pool:
            for index in pool.map(
                _make_photo, [str(source_dir)] * len(todo), [str(out_dir)] * len(todo), todo, chunksize=4
            ):
                done.add(index)
        manifest = {"key": key, "done": sorted(done), "recipes": [asdict(r) for r in recipes]}
        tmp = manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest), encoding="utf-8")
        os.replace(tmp, manifest_path)
    return [out_dir / photo_name(r.index) for r in recipes]


_SOURCE_CACHE: dict[str, Image.Image] = {}


def _make_photo(source_dir: str, out_dir: str, recipe: PhotoRecipe) -> int:
    """Worker process: render one recipe to a JPEG file (written atomically)."""
    source = _SOURCE_CACHE.get(recipe.source)
    if source is None:
        if len(_SOURCE_CACHE) > 4:  # a worker keeps a few decoded sources (up to 48 MB each), not all
            _SOURCE_CACHE.clear()
        with Image.open(Path(source_dir) / recipe.source) as opened:
            source = opened.convert("RGB")
        _SOURCE_CACHE[recipe.source] = source
    image = source.crop(recipe.crop).resize(recipe.size, Image.Resampling.BICUBIC)
    lut: list[int] = []
    for gain in recipe.gains:
        lut.extend(min(255, round(255 * ((i / 255) ** recipe.gamma) * gain)) for i in range(256))
    image = image.point(lut)
    pixels = np.asarray(image)
    rng = np.random.default_rng(recipe.index)
    # Grain from a tile of noise (a full-frame normal draw costs seconds); the JPEG encoder cannot exploit
    # the repetition, so the files get the entropy of real sensor noise.
    tile = rng.normal(0.0, recipe.grain, size=(509, 509, 1)).astype(np.int16)
    reps = (-(-pixels.shape[0] // 509), -(-pixels.shape[1] // 509), 1)
    noise = np.tile(tile, reps)[: pixels.shape[0], : pixels.shape[1]]
    noisy = np.clip(pixels.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    out = Image.fromarray(noisy)
    exif = Image.Exif()
    exif[0x0112] = recipe.orientation  # Orientation
    exif[0x010F] = "Photoembed"  # Make
    exif[0x0110] = "Bench Camera"  # Model
    exif.get_ifd(0x8769)[0x9003] = recipe.taken  # DateTimeOriginal
    target = Path(out_dir) / photo_name(recipe.index)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    out.save(tmp, format="JPEG", quality=recipe.quality, subsampling="4:2:0", exif=exif.tobytes())
    os.replace(tmp, target)
    return recipe.index


def link_subset(photos: Sequence[Path], base: Path, folder: Path) -> Path:
    """A folder holding exactly ``photos`` (hard links when possible, else copies), relative to ``base``."""
    for photo in photos:
        target = folder / photo.relative_to(base)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(photo, target)
        except OSError:
            target.write_bytes(photo.read_bytes())
    return folder


def load_average() -> str:
    """The 1/5/15-minute load averages, for the record (other processes share these cores)."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def peak_rss_bytes() -> int:
    """This process's peak resident set size."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


@contextlib.contextmanager
def busy_core() -> Iterator[subprocess.Popen[bytes]]:
    """Another process keeping one core busy (a Python loop spinning) for the duration of the block."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True:\n    pass\n"])
    try:
        time.sleep(0.2)  # let it get scheduled before the measurement starts
        yield spinner
    finally:
        spinner.kill()
        spinner.wait()
