"""End to end through the CLI: add, index (no model: hashes only), list, dry run, trash, undo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from photoembed.cli.main import main
from tests.dedup.conftest import scene


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_dupes_trash_and_undo(home: Path, trash_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    image = scene(41)
    image.save(photos / "a.png")
    image.save(photos / "b.png")
    image.resize((320, 240)).save(photos / "small.jpg")
    scene(42).save(photos / "other.jpg")
    assert _run(capsys, "add", str(photos))[0] == 0
    assert _run(capsys, "index")[0] == 0

    code, out = _run(capsys, "--json", "dupes")
    assert code == 0
    (cluster,) = json.loads(out)["clusters"]
    assert cluster["tier"] == "same"
    assert {Path(p["path"]).name for p in cluster["photos"]} == {"a.png", "b.png", "small.jpg"}
    assert sum(p["keep"] for p in cluster["photos"]) == 1
    assert all(set(p) >= {"path", "keep", "reason", "score"} for p in cluster["photos"])

    code, out = _run(capsys, "--json", "dupes", "--trash-suggested")  # no TTY, no --yes: dry run
    assert json.loads(out)["dry_run"] is True
    assert len(list(photos.iterdir())) == 4

    code, out = _run(capsys, "--json", "dupes", "--trash-suggested", "--yes")
    result = json.loads(out)
    assert result["count"] == 2
    assert len(list(photos.iterdir())) == 2
    assert len(list((trash_home / "files").iterdir())) == 2

    code, out = _run(capsys, "--json", "undo")
    assert code == 0
    assert len(json.loads(out)["restored"]) == 2
    assert len(list(photos.iterdir())) == 4
    code, out = _run(capsys, "--json", "dupes")
    assert len(json.loads(out)["clusters"][0]["photos"]) == 3  # back in the catalog

    assert _run(capsys, "dupes", "--not-duplicates", str(photos / "a.png"), str(photos / "small.jpg"))[0] == 0
    code, out = _run(capsys, "--json", "dupes")
    names = [{Path(p["path"]).name for p in c["photos"]} for c in json.loads(out)["clusters"]]
    assert all(not {"a.png", "small.jpg"} <= n for n in names)
