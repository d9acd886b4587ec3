"""Fixtures shared by the whole suite: a private home per test, generated photos, the shared data set."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photoembed.config import Paths, Settings, save_settings
from photoembed.ml.encoder import ClipEncoder
from photoembed.ml.models import ModelStore
from tests.leak_checks import _fail_on_leaks as _fail_on_leaks  # autouse: see tests/leak_checks.py
from tests.tiny_clip import TinyModel, write_tiny_model

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
def trash_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private freedesktop trash under tmp_path.

    send2trash reads XDG_DATA_HOME once, when first imported; the module's copies are pointed here too so
    that every test gets its own trash whatever the import order.
    """
    from send2trash import plat_other

    xdg = tmp_path / "xdg-data"
    xdg.mkdir(exist_ok=True)
    monkeypatch.setenv("XDG_DATA_HOME", str(xdg))
    monkeypatch.setattr(plat_other, "XDG_DATA_HOME", os.fsencode(xdg))
    monkeypatch.setattr(plat_other, "HOMETRASH_B", os.fsencode(xdg / "Trash"))
    monkeypatch.setattr(plat_other, "HOMETRASH", str(xdg / "Trash"))
    return xdg / "Trash"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trash_home: Path) -> Path:
    """A private photoembed home (data, cache, config) and a private OS trash for this test."""
    folder = tmp_path / "home"
    monkeypatch.setenv("PHOTOEMBED_HOME", str(folder))
    return folder


# -- the tiny open_clip model: built, installed and loaded once per session (torch import costs seconds) --

@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """The tiny model's weights and config files (not installed anywhere)."""
    return write_tiny_model(tmp_path_factory.mktemp("tiny-model"))


ShareExport = Callable[[ModelStore, str], None]


@pytest.fixture(scope="session")
def share_onnx_export(tmp_path_factory: pytest.TempPathFactory) -> ShareExport:
    """``share(store, name)``: give ``store`` the ONNX export of ``name``, made once per session per weights.

    A real export (photoembed.ml.onnx_export) costs ~20 s of CPU even for the tiny model; exports are keyed
    by the weights' sha256, so the one made for the first store serves every store holding the same file.
    """
    from photoembed.ml.onnx_export import export_model

    made: dict[tuple[str, str], Path] = {}
    root = tmp_path_factory.mktemp("onnx-exports")

    def share(store: ModelStore, name: str) -> None:
        digest = store.weights_digest(name)
        assert digest is not None, "only installed models have a digest"
        target = store.onnx_dir(name)
        cached = made.get((name, digest))
        if cached is None:
            export_model(store.spec(name), target, digest=digest)
            cached = root / f"{len(made)}-{digest[:12]}"
            shutil.copytree(target, cached)
            made[(name, digest)] = cached
        else:
            shutil.copytree(cached, target, dirs_exist_ok=True)

    return share


@pytest.fixture(scope="session")
def tiny_store(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: TinyModel, share_onnx_export: ShareExport
) -> ModelStore:
    """A store with the tiny model installed through the local-weights path, and its ONNX export. Do not
    modify it."""
    root = tmp_path_factory.mktemp("tiny-store")
    store = ModelStore(root / "models", root / "downloads")
    name = store.install(tiny_model.weights_path, name=tiny_model.model_name, config=tiny_model.config_path)
    share_onnx_export(store, name)
    return store


@pytest.fixture(scope="session")
def tiny_encoder(tiny_store: ModelStore, tiny_model: TinyModel) -> ClipEncoder:
    """The tiny model, both towers, on the CPU with one thread, on the default CPU runtime (ONNX Runtime).
    Shared: do not unload it."""
    return ClipEncoder.load(tiny_store, tiny_model.model_name, device="cpu", threads=1)


@pytest.fixture(scope="session")
def tiny_torch_encoder(tiny_store: ModelStore, tiny_model: TinyModel) -> ClipEncoder:
    """The tiny model on torch: the reference the ONNX Runtime path is checked against. Do not unload it."""
    return ClipEncoder.load(tiny_store, tiny_model.model_name, device="cpu", threads=1, runtime="torch")


@pytest.fixture
def model_home(home: Path, tiny_model: TinyModel, share_onnx_export: ShareExport) -> Path:
    """A private home with the tiny model installed through the local-weights path (with its ONNX export)
    and selected."""
    paths = Paths.resolve(home)
    paths.ensure()
    store = ModelStore(paths.models, paths.model_downloads)
    name = store.install(tiny_model.weights_path, name=tiny_model.model_name, config=tiny_model.config_path)
    share_onnx_export(store, name)
    save_settings(paths, Settings(model=name, threads=1))
    return home


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
