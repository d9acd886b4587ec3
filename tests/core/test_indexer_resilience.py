"""A bad photo is data, whatever goes wrong: unexpected exceptions, non-UTF-8 names; bounded resources."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path

import pytest

from photoembed.config import Settings
from photoembed.core import indexer as indexer_module
from photoembed.core.indexer import Indexer
from photoembed.errors import ModelUnavailableError
from photoembed.storage.catalog import Catalog
from photoembed.storage.vector_index import VectorIndex
from tests.conftest import make_photo


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog.open(tmp_path / "home" / "catalog.sqlite3")
    yield cat
    cat.close()


def _indexer(catalog: Catalog) -> Indexer:
    return Indexer(catalog=catalog, settings=Settings(), encoder=None, vector_index=None, batch_size=4)


def test_an_unexpected_exception_fails_that_photo_only(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    photos = tmp_path / "photos"
    for i in range(6):
        make_photo(photos / f"{i}.jpg", seed=i)
    real_decode = indexer_module.decode_photo

    def decode(data: bytes, *, name: str, **kwargs: object) -> object:
        if name == "3.jpg":
            raise AttributeError("'Other' object has no attribute 'timestamp'")  # e.g. an old rawpy
        return real_decode(data, name=name, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(indexer_module, "decode_photo", decode)
    catalog.add_root(photos)
    indexer = _indexer(catalog)
    with caplog.at_level(logging.ERROR, logger="photoembed.core.indexer"):
        report = indexer.run()
    indexer.close()
    assert report.failed == 1
    assert report.added == 5
    failures = catalog.failures()
    assert [f.path.name for f in failures] == ["3.jpg"]
    assert failures[0].reason.startswith("internal error: AttributeError")
    logged = [r for r in caplog.records if r.exc_info is not None]
    assert logged
    assert "3.jpg" in logged[0].getMessage()
    # Recorded like any bad file: not retried while unchanged, retried once changed.
    monkeypatch.setattr(indexer_module, "decode_photo", real_decode)
    again = _indexer(catalog)
    assert again.run().failed == 0
    make_photo(photos / "3.jpg", seed=33)
    again.run()
    again.close()
    assert catalog.failures() == []


def test_a_name_that_is_not_utf8_is_stored_losslessly(catalog: Catalog, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    raw = os.fsencode(photos) + b"/caf\xe9 \xff.jpg"  # Latin-1 bytes from an old camera or archive
    make_photo(Path(os.fsdecode(raw)), seed=1)
    make_photo(photos / "sub" / "ok.jpg", seed=2)
    catalog.add_root(photos)
    indexer = _indexer(catalog)
    report = indexer.run()
    assert (report.added, report.failed) == (2, 0)
    photo = catalog.photo_by_path(os.fsdecode(raw))
    assert photo is not None
    assert photo.ok
    assert os.fsencode(photo.path) == raw  # the very bytes come back
    assert indexer.run().added == 0  # found again, not re-added
    assert indexer.run(paths=[photos]).added == 0  # a scoped sync of its folder finds it too
    os.rename(raw, os.fsencode(photos) + b"/renamed \xfe.jpg")
    assert indexer.run().moved == 1
    os.unlink(os.fsencode(photos) + b"/renamed \xfe.jpg")
    assert indexer.run().removed == 1
    indexer.close()


def test_one_decode_pool_per_indexer_closed_with_it(catalog: Catalog, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    catalog.add_root(photos)
    indexer = Indexer(catalog=catalog, settings=Settings(), encoder=None, vector_index=None, decode_workers=2)
    for i in range(8):
        make_photo(photos / f"{i}.jpg", seed=i)
    indexer.run()
    for i in range(8, 14):
        make_photo(photos / f"{i}.jpg", seed=i)
        indexer.run()

    def decode_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("photoembed-decode") and t.is_alive()]

    assert len(decode_threads()) == 2  # the same two threads served all seven syncs
    assert catalog.open_connections == 3  # this thread's and one per pool thread, not one per sync
    indexer.close()
    assert decode_threads() == []
    assert catalog.open_connections == 1  # the pool threads' connections were closed as they ended
    opened: list[int] = []
    reader = threading.Thread(target=lambda: (catalog.counts(None), opened.append(catalog.open_connections)))
    reader.start()
    reader.join()
    assert opened == [2]
    assert catalog.open_connections == 1  # and so was a passing thread's
    make_photo(photos / "late.jpg", seed=99)
    assert indexer.run().added == 1  # a closed indexer starts a new pool when needed
    indexer.close()


class _BrokenModel:
    """A model source whose weights turn out unloadable when the first photo needs them."""

    name = "broken/model"

    def get(self) -> object:
        raise ModelUnavailableError("the weights file is damaged")

    def held(self) -> contextlib.AbstractContextManager[object]:
        return contextlib.nullcontext()


def test_a_model_that_cannot_load_stops_the_sync_without_failing_photos(catalog: Catalog, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for i in range(3):
        make_photo(photos / f"{i}.jpg", seed=i)
    catalog.add_root(photos)
    indexer = Indexer(catalog=catalog, settings=Settings(), encoder=None, vector_index=None,
                      encoder_source=_BrokenModel())  # type: ignore[arg-type]
    with pytest.raises(ModelUnavailableError, match="damaged"):
        indexer.run()
    indexer.close()
    assert catalog.failures() == []


def test_without_a_model_the_change_log_does_not_grow(catalog: Catalog, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    catalog.add_root(photos)
    index = VectorIndex(tmp_path / "index", catalog)
    indexer = Indexer(catalog=catalog, settings=Settings(), encoder=None, vector_index=index)
    for i in range(5):
        make_photo(photos / f"{i}.jpg", seed=i)
        indexer.run()
    indexer.close()
    rows = catalog.db.execute("SELECT COUNT(*) FROM vector_changes").fetchone()[0]
    assert rows == 1  # only the newest position is kept


def test_a_library_folder_whose_name_is_not_utf8(catalog: Catalog, tmp_path: Path) -> None:
    folder = Path(os.fsdecode(os.fsencode(tmp_path) + b"/fotos \xe9t\xe9"))
    make_photo(folder / "a.jpg", seed=1)
    root = catalog.add_root(folder)
    assert catalog.roots() == [root]
    assert os.fsencode(root.path) == os.fsencode(folder.resolve())
    indexer = _indexer(catalog)
    assert indexer.run().added == 1
    assert indexer.run(paths=[folder / "a.jpg"]).added == 0
    indexer.close()
    assert catalog.remove_root(folder) == 1
