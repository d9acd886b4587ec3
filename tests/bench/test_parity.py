"""``photoembed bench parity`` on a few real photos (skips without ../shared/data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from photoembed.bench.parity import GOAL_MIN, compare_model, parity_photos
from photoembed.cli.main import main


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
