"""Fixtures of the search tests: the tiny open_clip model, and a small library embedded with it."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from photoembed.imaging.decode import decode_photo
from photoembed.ml.encoder import ClipEncoder
from photoembed.ml.models import ModelStore
from photoembed.storage.catalog import Catalog
from photoembed.storage.vector_index import VectorIndex
from tests.conftest import ShareExport, make_photo
from tests.tiny_clip import TinyModel, write_tiny_model


@dataclass
class Lib:
    root: Path
    catalog: Catalog
    index: VectorIndex
    encoder: ClipEncoder
    vectors: dict[int, np.ndarray]
    paths: dict[int, Path]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[TinyModel, TinyModel]:
    """Two tiny models (seeds 0 and 1: two different "models" of one architecture), written once."""
    base = tmp_path_factory.mktemp("tiny")
    return write_tiny_model(base / "seed0", seed=0), write_tiny_model(base / "seed1", seed=1)


@pytest.fixture(scope="session")
def store(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: tuple[TinyModel, TinyModel], share_onnx_export: ShareExport
) -> tuple[ModelStore, str, str]:
    base = tmp_path_factory.mktemp("models")
    store = ModelStore(base / "models", base / "downloads")
    names = [store.install(t.weights_path, name=t.model_name, config=t.config_path) for t in tiny_models]
    for name in names:
        share_onnx_export(store, name)
    return store, names[0], names[1]


@pytest.fixture(scope="session")
def encoder(store: tuple[ModelStore, str, str]) -> Iterator[ClipEncoder]:
    enc = ClipEncoder.load(store[0], store[1], device="cpu", threads=1)
    yield enc
    enc.unload()


def build_library(catalog: Catalog, root: Path, index_dir: Path, encoder: ClipEncoder) -> Lib:
    """Photos in two folders, two formats and sizes, three years; embedded with the model."""
    root_row = catalog.add_root(root)
    vectors: dict[int, np.ndarray] = {}
    paths: dict[int, Path] = {}
    for i in range(24):
        folder = root / ("trips" if i % 2 else "home")
        fmt = "png" if i % 3 == 0 else "jpeg"
        size = (640, 480) if i % 4 == 0 else (160, 120)
        path = make_photo(folder / f"p{i:02d}.{'png' if fmt == 'png' else 'jpg'}", seed=i, size=size)
        taken = dt.datetime(2020 + i % 3, 6, 1 + i).timestamp()
        os.utime(path, (taken, taken))  # no EXIF: the file time is the capture time
        stat = path.stat()
        decoded = decode_photo(path.read_bytes(), name=path.name, min_side=encoder.image_size, mtime=stat.st_mtime)
        vector = encoder.encode_images(encoder.prepare(decoded.image)[None])[0]
        pid = catalog.upsert_photo(
            root_id=root_row.id,
            path=str(path),
            size=stat.st_size,
            mtime_ns=stat.st_mtime_ns,
            content_hash=f"hash{i}",
            info=decoded.info,
        )
        catalog.put_embeddings(encoder.name, [(f"hash{i}", vector)])
        vectors[pid] = vector.astype(np.float16).astype(np.float32)
        paths[pid] = path
    catalog.bump_generation()
    return Lib(root, catalog, VectorIndex(index_dir, catalog), encoder, vectors, paths)
