"""The ingest pipeline with a real (tiny) open_clip model loaded through the local-weights path."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from photoembed.config import Paths, save_settings
from photoembed.library import Library
from photoembed.ml.models import ModelStore
from tests.conftest import make_photo
from tests.tiny_clip import write_tiny_model

pytestmark = pytest.mark.model


@pytest.fixture
def library(model_home: Path) -> Library:
    lib = Library(Paths.resolve(model_home))
    yield lib
    lib.close()


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    for i in range(7):
        make_photo(tmp_path / "photos" / f"{i}.jpg", seed=i)
    return tmp_path / "photos"


def test_every_photo_is_embedded_and_the_vectors_come_from_the_model(library: Library, photos: Path) -> None:
    library.catalog.add_root(photos)
    report = library.indexer(batch_size=3).run()
    assert report.embedded == 7
    model = library.settings.model
    ids, vectors = library.catalog.vectors(model)
    assert len(ids) == 7
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=2e-3)
    # The stored vector is what the model gives for that photo through the decoder and preprocessing.
    from photoembed.imaging.decode import decode_photo

    encoder = library.encoder()
    photo = library.catalog.photo_by_path(photos / "3.jpg")
    assert photo is not None
    decoded = decode_photo((photos / "3.jpg").read_bytes(), name="3.jpg", min_side=encoder.image_size, mtime=0)
    expected = encoder.encode_images(encoder.prepare(decoded.image)[None])[0]
    stored = vectors[list(ids).index(photo.id)]
    assert float(stored @ expected) > 0.999
    assert library.catalog.counts(model)["pending"] == 0


def test_rename_does_not_reembed_and_modify_does(library: Library, photos: Path) -> None:
    library.catalog.add_root(photos)
    library.indexer().run()
    os.rename(photos / "0.jpg", photos / "zero renamed.jpg")
    shutil.copy(photos / "1.jpg", photos / "copy of 1.jpg")
    report = library.indexer().run()
    assert (report.moved, report.added, report.embedded) == (1, 1, 0)
    make_photo(photos / "2.jpg", seed=77)
    report = library.indexer().run()
    assert (report.updated, report.embedded) == (1, 1)


def test_photos_catalogued_without_a_model_are_embedded_once_it_is_installed(
    home: Path, tiny_model: object, photos: Path, tmp_path: Path
) -> None:
    paths = Paths.resolve(home)
    library = Library(paths)
    try:
        library.catalog.add_root(photos)
        assert library.indexer().run().added == 7  # no weights: catalogued, not embedded
        assert library.catalog.counts(library.settings.model)["embedded"] == 0
        files = write_tiny_model(tmp_path / "weights")
        installed = ModelStore(paths.models, paths.model_downloads).install(
            files.weights_path, name=files.model_name, config=files.config_path
        )
        library.settings = dataclasses.replace(library.settings, model=installed)
        report = library.indexer().run()
        assert (report.added, report.embedded) == (0, 7)
    finally:
        library.close()


def test_changing_the_model_reembeds_and_models_never_mix(library: Library, photos: Path, tmp_path: Path) -> None:
    library.catalog.add_root(photos)
    library.indexer().run()
    first = library.settings.model
    other = write_tiny_model(tmp_path / "other", seed=1)
    second = library.models.install(other.weights_path, name=other.model_name, config=other.config_path)
    library.settings = dataclasses.replace(library.settings, model=second)
    save_settings(library.paths, library.settings)
    fresh = Library(library.paths)
    try:
        assert fresh.catalog.counts(second)["pending"] == 7
        assert fresh.indexer().run().embedded == 7
        ids_a, vectors_a = fresh.catalog.vectors(first)
        ids_b, vectors_b = fresh.catalog.vectors(second)
        assert len(ids_a) == len(ids_b) == 7
        assert not np.allclose(vectors_a, vectors_b, atol=1e-2)
    finally:
        fresh.close()


def test_a_watch_batch_looks_for_photos_without_vectors_only_after_someone_else_wrote(
    library: Library, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a sync left nothing to embed, a scoped sync (a watch batch) does not read the whole library for
    photos without a vector, unless another writer changed the catalog since (it may have left some)."""
    from photoembed.core.indexer import Indexer
    from photoembed.storage.catalog import Catalog

    library.catalog.add_root(photos)
    indexer = library.indexer()
    looked = []
    real_pending = library.catalog.pending_photos

    def pending_photos(model: str) -> list[object]:
        looked.append(model)
        return real_pending(model)  # type: ignore[return-value]

    monkeypatch.setattr(library.catalog, "pending_photos", pending_photos)
    assert indexer.run().embedded == 7
    assert len(looked) == 1
    make_photo(photos / "new.jpg", seed=40)
    assert indexer.run(paths=[photos / "new.jpg"]).embedded == 1
    assert len(looked) == 1  # nothing could be pending: not looked for

    # Another writer (a model-less `photoembed index`, say) catalogues a photo without embedding it.
    make_photo(photos / "other.jpg", seed=41)
    other = Catalog.open(library.paths.catalog)
    try:
        Indexer(catalog=other, settings=library.settings, encoder=None, vector_index=None).run(
            paths=[photos / "other.jpg"]
        )
    finally:
        other.close()
    make_photo(photos / "third.jpg", seed=42)
    report = indexer.run(paths=[photos / "third.jpg"])
    assert report.embedded == 2  # the other writer's photo too
    assert len(looked) == 2
    assert library.catalog.counts(library.settings.model)["pending"] == 0
