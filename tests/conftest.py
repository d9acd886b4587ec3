"""Fixtures shared by the whole suite: a private home per test, generated photos, the shared data set."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Torch's OpenMP threads spin-wait by default; with several test processes or threads that starves the
# others. Must be set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or skip the test where it is absent (the suite must pass without it)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private photoembed home (data, cache, config) and a private OS trash for this test."""
    folder = tmp_path / "home"
    monkeypatch.setenv("PHOTOEMBED_HOME", str(folder))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    return folder


def make_photo(path: Path, *, seed: int, size: tuple[int, int] = (320, 240), fmt: str | None = None) -> Path:
    """Write a distinct photo-like image (smooth colour blobs, so perceptual hashes differ by seed)."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    image = np.zeros((h, w, 3), dtype=np.float32)
    for _ in range(6):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        radius = rng.uniform(min(w, h) * 0.1, min(w, h) * 0.5)
        colour = rng.uniform(0, 255, size=3)
        weight = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))[..., None]
        image = image * (1 - weight) + colour * weight
    image += rng.normal(0, 4, size=image.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path, format=fmt)
    return path
