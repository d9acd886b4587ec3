"""End-to-end CLI runs with the tiny open_clip model installed through `photoembed model install`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from photoembed.cli.main import main
from tests.conftest import make_photo
from tests.tiny_clip import TinyModel

pytestmark = pytest.mark.model


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> object:
    code = main(["--json", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_install_add_index_rename_delete_modify_search(
    capsys: pytest.CaptureFixture[str], home: Path, tiny_model: TinyModel, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    for i in range(6):
        make_photo(photos / f"{i}.jpg", seed=i)
    (photos / "empty.jpg").write_bytes(b"")
    installed = cli_json(capsys, "model", "install", str(tiny_model.weights_path), "--model",
                         tiny_model.model_name, "--config", str(tiny_model.config_path))
    assert tiny_model.model_name in json.dumps(installed)
    cli_json(capsys, "add", str(photos))

    report = cli_json(capsys, "index")
    assert report == {**report, "added": 6, "embedded": 6, "failed": 1, "model": tiny_model.model_name}
    status = cli_json(capsys, "status")
    assert status["model"] == tiny_model.model_name
    assert (status["indexed"], status["pending"]) == (6, 0)
    assert [Path(f["path"]).name for f in status["failed"]] == ["empty.jpg"]
    assert status["index"]["count"] == 6

    os.rename(photos / "0.jpg", photos / "renamed.jpg")
    report = cli_json(capsys, "index")
    assert (report["moved"], report["embedded"]) == (1, 0)

    (photos / "1.jpg").unlink()
    make_photo(photos / "2.jpg", seed=222)
    report = cli_json(capsys, "index")
    assert (report["removed"], report["updated"], report["embedded"]) == (1, 1, 1)

    hits = cli_json(capsys, "similar", str(photos / "3.jpg"), "-k", "3")
    assert isinstance(hits, list)
    assert Path(hits[0]["path"]).name == "3.jpg"
    assert hits[0]["score"] == pytest.approx(1.0, abs=2e-3)
    names = {Path(h["path"]).name for h in cli_json(capsys, "search", "a red ball", "-k", "50")}  # type: ignore[union-attr]
    assert names == {"renamed.jpg", "2.jpg", "3.jpg", "4.jpg", "5.jpg"}
