"""``photoembed search`` / ``similar`` handlers on a real Library with the tiny model."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from photoembed.cli import search_cmds
from photoembed.config import Paths, Settings
from photoembed.errors import KnownError
from photoembed.library import Library
from tests.conftest import ShareExport
from tests.search.conftest import Lib, build_library
from tests.tiny_clip import TinyModel

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def library(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: tuple[TinyModel, TinyModel], share_onnx_export: ShareExport
) -> Iterator[tuple[Library, Lib]]:
    base = tmp_path_factory.mktemp("cli")
    tiny = tiny_models[0]
    paths = Paths.resolve(base / "home")
    library = Library(paths, settings=Settings(model=tiny.model_name, threads=1, use_gpu=False))
    library.models.install(tiny.weights_path, name=tiny.model_name, config=tiny.config_path)
    share_onnx_export(library.models, tiny.model_name)
    lib = build_library(library.catalog, base / "photos", paths.index_dir, library.encoder())
    yield library, lib
    library.close()


def run(library: Library, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    subparsers = parser.add_subparsers()
    bench = subparsers.add_parser("bench").add_subparsers()
    search_cmds.register(subparsers, bench)
    args = parser.parse_args(argv)
    capsys.readouterr()
    code = args.handler(args, lambda: library)
    out, err = capsys.readouterr()
    return code, out, err


def test_plain_output_is_score_and_path_best_first(
    library: tuple[Library, Lib], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(library[0], ["search", "red", "car", "-k", "7"], capsys)
    assert code == 0
    lines = [line.split("\t") for line in out.splitlines()]
    assert len(lines) == 7
    scores = [float(score) for score, _ in lines]
    assert scores == sorted(scores, reverse=True)
    assert {Path(path) for _, path in lines} <= set(library[1].paths.values())


def test_json_output(library: tuple[Library, Lib], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(library[0], ["--json", "search", "sunset", "-k", "5", "--type", "png"], capsys)
    assert code == 0
    hits: list[dict[str, Any]] = json.loads(out)
    assert len(hits) == 5
    assert set(hits[0]) == {"path", "score", "width", "height", "taken"}
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert all(h["path"].endswith(".png") for h in hits)
    assert all(h["taken"][:2] == "20" for h in hits)


def test_similar_with_filters(library: tuple[Library, Lib], capsys: pytest.CaptureFixture[str]) -> None:
    lib = library[1]
    photo = next(p for p in lib.paths.values() if p.parent.name == "trips")
    argv = ["--json", "similar", str(photo), "--folder", str(lib.root / "trips"), "--from", "2020", "--to", "2022"]
    code, out, _ = run(library[0], argv, capsys)
    assert code == 0
    hits = json.loads(out)
    assert hits[0]["path"] == str(photo)
    assert all(Path(h["path"]).parent.name == "trips" for h in hits)


def test_similar_missing_photo(
    library: tuple[Library, Lib], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(library[0], ["similar", str(tmp_path / "nope.jpg")], capsys)
    assert code == 1
    assert "query photo not found" in err


def test_min_score_above_everything_prints_a_note(
    library: tuple[Library, Lib], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(library[0], ["--json", "search", "dog", "--min-score", "1.5"], capsys)
    assert code == 0
    assert json.loads(out) == []
    assert "No result scores 1.5" in err


def test_bad_date_is_a_known_error(library: tuple[Library, Lib], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(KnownError, match="Cannot read the date"):
        run(library[0], ["search", "dog", "--from", "last tuesday"], capsys)
