"""Fixtures for the duplicate finder: a catalog filled from Pillow-generated files, without the model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from photoembed.config import Settings
from photoembed.core.hashing import content_hash
from photoembed.dedup.service import DedupService
from photoembed.dedup.trash import SystemTrash
from photoembed.imaging.fingerprint import fingerprint
from photoembed.imaging.formats import format_of
from photoembed.storage.catalog import Catalog
from photoembed.storage.records import PhotoInfo


class PhotoLibrary:
    """A catalog whose rows are built the way the indexer builds them (decode small, fingerprint)."""

    def __init__(self, catalog: Catalog, root: Path) -> None:
        self.catalog = catalog
        self.root = root
        self.root_id = catalog.add_root(root).id

    def add(self, path: Path, *, taken: float | None = None, exif_date: bool = False) -> int:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
        width, height = image.size
        image.thumbnail((400, 400))
        mark = fingerprint(image)
        st = path.stat()
        info = PhotoInfo(
            format=format_of(path.name),
            width=width,
            height=height,
            taken=taken,
            taken_from_exif=exif_date,
            phash=mark.phash,
            sharpness=mark.sharpness,
        )
        return self.catalog.upsert_photo(
            root_id=self.root_id,
            path=str(path),
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            content_hash=content_hash(path.read_bytes()),
            info=info,
        )


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog.open(tmp_path / "catalog.sqlite3")
    yield cat
    cat.close()


@pytest.fixture
def photos_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    return folder


@pytest.fixture
def library(catalog: Catalog, photos_dir: Path) -> PhotoLibrary:
    return PhotoLibrary(catalog, photos_dir)


@pytest.fixture
def service(catalog: Catalog, trash_home: Path) -> DedupService:
    return DedupService(catalog=catalog, settings=Settings(), trash=SystemTrash())


def scene(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A photo-like scene with edges and texture (PDQ calls smooth blobs low-information, as it should)."""
    import numpy as np
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    w, h = size
    image = Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(10, w // 3)), y0 + int(rng.integers(10, h // 3))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def save_scene(path: Path, seed: int, size: tuple[int, int] = (640, 480), **save: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    scene(seed, size).save(path, **save)  # type: ignore[arg-type]
    return path
