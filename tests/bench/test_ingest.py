"""The ingest benchmark, at tiny scale: small generated photos and the tiny open_clip model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from photoembed.bench.common import generate_photos, plan_photos
from photoembed.cli.main import main
from photoembed.core.hashing import content_hash
from tests.tiny_clip import write_tiny_model


def test_plan_is_deterministic_and_within_the_megapixel_range() -> None:
    sources = [("a.jpg", (4000, 3000)), ("b.jpg", (1365, 1074))]
    first = plan_photos(sources, 20, seed=3, megapixels=(8.0, 16.0))
    assert first == plan_photos(sources, 20, seed=3, megapixels=(8.0, 16.0))
    assert first != plan_photos(sources, 20, seed=4, megapixels=(8.0, 16.0))
    for recipe in first:
        width, height = recipe.size
        # Rounding each side may move the product a little past the bounds.
        assert 7.9e6 <= width * height <= 16.1e6
        left, top, right, bottom = recipe.crop
        source_w, source_h = dict(sources)[recipe.source]
        assert 0 <= left < right <= source_w
        assert 0 <= top < bottom <= source_h
    assert len({r.crop for r in first}) == len(first)


@pytest.mark.shared_data
def test_generated_photos_are_distinct_jpegs_with_exif_and_are_reused(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "photos"
    photos = generate_photos(shared_data / "photos-large", out, 6, megapixels=(0.2, 0.3), workers=1)
    assert len({content_hash(p.read_bytes()) for p in photos}) == 6
    orientations = set()
    for path in photos:
        with Image.open(path) as image:
            assert image.format == "JPEG"
            assert not image.info.get("progressive")
            assert 0.19e6 <= image.width * image.height <= 0.31e6
            exif = image.getexif()
            orientations.add(exif[0x0112])
            assert exif.get_ifd(0x8769)[0x9003]
    assert orientations <= set(range(1, 9))

    stamps = [p.stat().st_mtime_ns for p in photos]
    again = generate_photos(shared_data / "photos-large", out, 8, megapixels=(0.2, 0.3), workers=1)
    assert again[:6] == photos
    assert [p.stat().st_mtime_ns for p in photos] == stamps  # the first six were not made again
    assert all(p.is_file() for p in again)


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.shared_data
def test_bench_ingest_runs_every_measurement(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = write_tiny_model(tmp_path / "tiny")
    code = main(
        [
            "--json",
            "bench",
            "ingest",
            "--photos", "5",
            "--workdir", str(tmp_path / "work"),
            "--source", str(shared_data / "photos-large"),
            "--model-arch", "photoembed-tiny",
            "--model-config", str(tiny.config_path),
            "--megapixels", "0.2-0.3",
            "--batch-sizes", "2,4",
            "--index-batch-size", "2",
            "--load-photos", "3",
            "--naive-photos", "2",
            "--model-seconds", "0.1",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert result["model"] == "photoembed-tiny/bench-random"
    assert list(result["runtimes"]) == ["torch", "onnx", "onnx-int8"]
    assert result["decode"]["photos"] == 5
    assert result["decode"]["cpu_s"] > 0
    cores = result["cores"]
    for runtime, row in result["runtimes"].items():
        assert set(row["model_only"]["per_batch"]) == {"2", "4"}
        model_rate, decode_cost = row["model_only"]["rate"], result["decode"]["cpu_s"]
        assert model_rate > 0
        assert row["limit"] == pytest.approx(1 / (1 / model_rate + decode_cost / cores))
        assert row["end_to_end"]["photos"] == 5
        assert row["end_to_end"]["batch_size"] == 2
        assert row["end_to_end"]["peak_rss"] > 0
        # ONNX Runtime with its export indexes in a process that never imports torch.
        assert row["end_to_end"]["torch_imported"] == (runtime == "torch")
    assert result["runtimes"]["torch"]["engine"] == "torch fp32 on cpu"
    assert result["runtimes"]["onnx"]["engine"] == "ONNX Runtime fp32 on cpu"
    assert result["runtimes"]["onnx-int8"]["engine"] == "ONNX Runtime int8 on cpu"
    assert result["runtimes"]["onnx"]["min_cosine_to_reference"] >= 0.9999
    assert result["runtimes"]["onnx-int8"]["key"].endswith("@ort-int8")
    assert result["end_to_end_busy_core"]["photos"] == 3
    assert result["naive"]["photos"] == 2
    assert result["naive"]["rate"] > 0
    # The human-readable report goes to stderr under --json.
    assert "ratio onnx / torch" in captured.err
    assert "ratio onnx-int8 / torch" in captured.err
    assert "ratio end to end (onnx) / naive" in captured.err
