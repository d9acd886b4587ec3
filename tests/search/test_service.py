"""SearchService on a small library embedded with the tiny open_clip model (real model calls)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from photoembed.errors import KnownError, ModelMismatchError
from photoembed.imaging.decode import decode_photo
from photoembed.ml.encoder import ClipEncoder
from photoembed.ml.models import ModelStore
from photoembed.search.filters import SearchFilters, allowed_photo_ids, parse_date, parse_formats
from photoembed.search.query import QueryError
from photoembed.search.service import SearchService, prompt_for
from photoembed.storage.catalog import Catalog
from photoembed.storage.vector_index import VectorIndex
from tests.search.conftest import Lib, build_library

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory, encoder: ClipEncoder) -> Iterator[Lib]:
    # Built once: the tests below only read it.
    base = tmp_path_factory.mktemp("library")
    library = build_library(Catalog.open(base / "catalog.sqlite3"), base / "photos", base / "index", encoder)
    yield library
    library.catalog.close()


def service_for(lib: Lib, *, text: ClipEncoder | None = None, image: ClipEncoder | None = None) -> SearchService:
    def no_model() -> ClipEncoder:
        raise AssertionError("this search should not load this encoder")

    return SearchService(
        catalog=lib.catalog,
        vector_index=lib.index,
        encoder_provider=(lambda: text) if text is not None else no_model,
        image_encoder_provider=(lambda: image) if image is not None else no_model,
        decode=decode_photo,
    )


def reference(lib: Lib, query: np.ndarray, ids: set[int] | None = None) -> list[tuple[int, float]]:
    query = query / np.linalg.norm(query)
    scored = [(pid, float(vec @ query)) for pid, vec in lib.vectors.items() if ids is None or pid in ids]
    return sorted(scored, key=lambda item: -item[1])


def test_text_search_ranks_like_brute_force(lib: Lib) -> None:
    results = service_for(lib, text=lib.encoder).search("red car", k=10)
    want = reference(lib, lib.encoder.encode_texts(["a photo of a red car."])[0])[:10]
    assert [h.photo_id for h in results.hits] == [pid for pid, _ in want]
    np.testing.assert_allclose([h.score for h in results.hits], [s for _, s in want], atol=2e-3)
    hit = results.hits[0]
    assert hit.path == lib.paths[hit.photo_id]
    assert (hit.width, hit.height) in {(640, 480), (160, 120)}
    assert hit.taken is not None
    assert results.model == lib.encoder.name
    assert results.note is None


def test_similar_to_a_library_photo_finds_itself_first(lib: Lib) -> None:
    pid, path = next(iter(lib.paths.items()))
    results = service_for(lib, image=lib.encoder).similar(path, k=5)
    assert results.hits[0].photo_id == pid
    assert results.hits[0].score == pytest.approx(1.0, abs=2e-3)


def test_similar_to_an_outside_photo(lib: Lib, tmp_path: Path) -> None:
    pid, path = list(lib.paths.items())[5]
    outside = tmp_path / "elsewhere" / "copy of it.jpg"
    outside.parent.mkdir()
    shutil.copy(path, outside)
    results = service_for(lib, image=lib.encoder).similar(outside, k=3)
    assert results.hits[0].photo_id == pid
    assert results.hits[0].score > 0.99


def test_combined_query_is_the_normalised_weighted_sum(lib: Lib) -> None:
    photo = list(lib.paths.values())[3]
    results = service_for(lib, text=lib.encoder, image=lib.encoder).search(
        ["2:red car", "+", str(photo), "-", "0.5:a painting of people"], k=24
    )
    texts = lib.encoder.encode_texts(["a photo of a red car.", "a painting of people"])
    image = lib.vectors[next(pid for pid, p in lib.paths.items() if p == photo)]
    combined = 2 * texts[0] + image / np.linalg.norm(image) - 0.5 * texts[1]
    want = reference(lib, combined)
    assert [h.photo_id for h in results.hits] == [pid for pid, _ in want]
    np.testing.assert_allclose([h.score for h in results.hits], [s for _, s in want], atol=3e-3)


def test_min_score_and_k(lib: Lib) -> None:
    service = service_for(lib, text=lib.encoder)
    everything = service.search("a dog", k=100).hits
    assert len(everything) == 24
    threshold = everything[7].score
    kept = service.search("a dog", k=100, min_score=threshold).hits
    assert [h.photo_id for h in kept] == [h.photo_id for h in everything if h.score >= threshold]
    assert len(service.search("a dog", k=3).hits) == 3
    none = service.search("a dog", k=10, min_score=1.01)
    assert none.hits == []
    assert none.note is not None
    with pytest.raises(KnownError, match="at least 1"):
        service.search("a dog", k=0)


def test_filters(lib: Lib) -> None:
    service = service_for(lib, text=lib.encoder)
    rows = {pid: lib.catalog.photos_by_ids([pid])[pid] for pid in lib.paths}

    def check(filters: SearchFilters, expected: set[int]) -> None:
        assert expected  # a filter that matches nothing would prove nothing
        assert set(allowed_photo_ids(lib.catalog, filters).tolist()) == expected
        hits = service.search("sunset", k=50, filters=filters).hits
        assert {h.photo_id for h in hits} == expected
        want = reference(lib, lib.encoder.encode_texts(["a photo of a sunset."])[0], expected)
        assert [h.photo_id for h in hits] == [pid for pid, _ in want]

    check(SearchFilters(folder=lib.root / "trips"), {p for p, path in lib.paths.items() if path.parent.name == "trips"})
    check(SearchFilters(formats=parse_formats("PNG")), {p for p, r in rows.items() if r.info.format == "png"})
    check(SearchFilters(formats=parse_formats("jpg")), {p for p, r in rows.items() if r.info.format == "jpeg"})
    check(SearchFilters(min_megapixels=0.3), {p for p, r in rows.items() if r.info.width == 640})
    check(SearchFilters(min_width=600, min_height=400), {p for p, r in rows.items() if r.info.width == 640})
    start, end = parse_date("2021"), parse_date("2021", end=True)
    check(
        SearchFilters(taken_from=start, taken_to=end),
        {p for p, r in rows.items() if r.info.taken is not None and start <= r.info.taken <= end},
    )
    check(
        SearchFilters(folder=lib.root / "home", formats=("png",)),
        {p for p, r in rows.items() if r.info.format == "png" and r.path.parent.name == "home"},
    )
    nothing = service.search("sunset", filters=SearchFilters(min_megapixels=100))
    assert nothing.hits == []
    assert nothing.note == "No photo matches the filters."
    with pytest.raises(KnownError, match="not inside any folder"):
        service.search("sunset", filters=SearchFilters(folder=Path("/somewhere/else")))


def test_empty_library_is_a_note_not_a_crash(tmp_path: Path) -> None:
    catalog = Catalog.open(tmp_path / "catalog.sqlite3")
    try:
        lib = Lib(tmp_path, catalog, VectorIndex(tmp_path / "index", catalog), None, {}, {})  # type: ignore[arg-type]
        results = service_for(lib).search("a dog")  # no model is even loaded
        assert results.hits == []
        assert "photoembed add" in (results.note or "")
    finally:
        catalog.close()


def test_unreadable_query_photo(lib: Lib, tmp_path: Path) -> None:
    bad = tmp_path / "broken photo.jpg"
    bad.write_bytes(os.urandom(2000))
    service = service_for(lib, image=lib.encoder)
    with pytest.raises(KnownError, match=r"Cannot use .*broken photo\.jpg as a query photo"):
        service.similar(bad)
    with pytest.raises(QueryError, match="query photo not found"):
        service.search(str(tmp_path / "missing.jpg"))


def test_fifo_or_device_as_query_photo_is_refused_without_hanging(lib: Lib, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    service = service_for(lib, image=lib.encoder)
    with pytest.raises(KnownError, match="FIFO"):
        service.similar(fifo)  # a plain open() would block here for ever
    link = tmp_path / "zero.jpg"
    link.symlink_to("/dev/zero")
    with pytest.raises(KnownError, match="character device"):
        service.similar(link)  # read whole, /dev/zero never ends


def test_library_indexed_with_another_model(lib: Lib, store: tuple[ModelStore, str, str]) -> None:
    other = ClipEncoder.load(store[0], store[2], device="cpu", threads=1, towers=("text",))
    try:
        with pytest.raises(ModelMismatchError, match="photoembed index"):
            service_for(lib, text=other).search("a dog")
    finally:
        other.unload()


def test_text_search_needs_only_the_text_tower(lib: Lib, store: tuple[ModelStore, str, str]) -> None:
    text_only = ClipEncoder.load(store[0], store[1], device="cpu", threads=1, towers=("text",))
    try:
        hits = service_for(lib, text=text_only).search("a dog", k=5).hits  # the image provider would fail
        assert len(hits) == 5
    finally:
        text_only.unload()


@pytest.mark.parametrize(
    ("text", "prompt"),
    [
        ("dog", "a photo of a dog."),
        ("sunset", "a photo of a sunset."),
        ("apple", "a photo of an apple."),
        ("a dog on the beach", "a photo of a dog on the beach."),
        ("  red   car ", "a photo of a red car."),
        ("red cars", "a photo of red cars."),
        ("glass", "a photo of a glass."),
        ("two cats", "a photo of two cats."),
        ("my bike", "a photo of my bike."),
        ("3 boats", "a photo of 3 boats."),
        ("a painting of a ship", "a painting of a ship"),
        ("screenshot of code", "screenshot of code"),
        ("Two children are playing football in a muddy field", "Two children are playing football in a muddy field"),
        ("dogs!", "dogs!"),
    ],
)
def test_prompt_template(text: str, prompt: str) -> None:
    assert prompt_for(text) == prompt
