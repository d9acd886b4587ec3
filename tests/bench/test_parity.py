"""``photoembed bench parity`` on a few real photos (skips without ../shared/data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from photoembed.bench.parity import (
    ENGINE_GOAL,
    ENGINE_SETS,
    GOAL_MIN,
    compare_engines,
    compare_model,
    engine_photos,
    parity_photos,
)
from photoembed.cli.main import main
from tests.tiny_clip import TINY_MODEL_CONFIG, write_tiny_model


def test_without_photos_it_says_so_and_succeeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(tmp_path / "h"), "bench", "parity", "--data", str(tmp_path / "none")]) == 0
    assert "nothing to compare" in capsys.readouterr().out


@pytest.mark.model
@pytest.mark.shared_data
def test_indexer_path_matches_open_clip_on_real_photos(shared_data: Path) -> None:
    photos = parity_photos(shared_data)
    # Large camera JPEGs (reduced DCT decodes) and two of the PDQ set's EXIF-oriented desk shots.
    chosen = photos[:3] + [p for p in photos if "orient" in p.name.lower() or "rot" in p.name.lower()][:2]
    rows: list[float] = []
    summary = compare_model("ViT-B-32/laion2b_s34b_b79k", chosen, on_row=lambda row: rows.append(row.cosine))
    assert summary.photos == len(rows) >= 3
    assert summary.minimum >= GOAL_MIN, rows
    assert summary.spread < 0.98  # the random network does tell the photos apart


def test_engines_without_photos_say_so_and_succeed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--home", str(tmp_path / "h"), "bench", "parity", "--engines", "onnx", "--data", str(tmp_path / "none")]
    assert main(args) == 0
    assert "nothing to compare" in capsys.readouterr().out


def test_engine_photos_are_every_image_of_every_set(tmp_path: Path) -> None:
    for relative in ("flickr8k/original/a.jpg", "flickr8k/captions.txt", "neardup/pdq/x/b.png", "neardup/groups.csv",
                     "photos-large/c.jpg", "photos-large/LICENSES.csv", "elsewhere/d.jpg"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in engine_photos(tmp_path)] == [
        "flickr8k/original/a.jpg", "neardup/pdq/x/b.png", "photos-large/c.jpg"
    ]


@pytest.mark.model
@pytest.mark.shared_data
def test_onnx_runtime_matches_torch_on_photos_of_every_set(shared_data: Path, tmp_path: Path) -> None:
    import torch
    from open_clip.model import CLIP

    from photoembed.ml.models import spec_for

    tiny = write_tiny_model(tmp_path / "tiny")
    spec = spec_for(tiny.model_name, tiny.weights_path, tiny.config_path)
    model = CLIP(**TINY_MODEL_CONFIG)
    model.load_state_dict(torch.load(tiny.weights_path, weights_only=True))
    everything = engine_photos(shared_data)
    corrupt = next(p for p in everything if p.name.endswith("_corrupt.jpg"))
    chosen = [p for s in ENGINE_SETS for p in [q for q in everything if s in q.parts][:3]] + [corrupt]
    summaries = compare_engines(
        spec, model, chosen, engines=("onnx", "onnx-int8"), workdir=tmp_path / "export", batch_size=2,
        threads=1, data=shared_data,
    )
    by = {(s.engine, s.set): s for s in summaries}
    assert set(by) == {(e, s) for e in ("onnx", "onnx-int8") for s in (*ENGINE_SETS, "all")}
    exact = by["onnx", "all"]
    assert exact.photos == 9
    assert exact.skipped == 1  # the corrupt JPEG is counted, not compared
    assert by["onnx", "neardup"].skipped == 1
    assert exact.below_goal == 0
    assert exact.minimum >= ENGINE_GOAL
    assert all(by["onnx", s].photos == 3 for s in ENGINE_SETS)
    assert by["onnx-int8", "all"].photos == 9
    assert by["onnx-int8", "all"].minimum <= 1.0 + 1e-6
