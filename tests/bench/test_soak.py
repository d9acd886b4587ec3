from __future__ import annotations

import re
from pathlib import Path

import pytest

from photoembed.cli.main import main

pytestmark = pytest.mark.model


def test_bench_soak_runs_batches_with_searches_and_no_rebuild(
    model_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--home", str(model_home), "bench", "soak", "--photos", "40", "--batches", "6",
                 "--index-runs", "0", "--workdir", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out
    assert "6 batches (3 new, 1 rename, 1 edit, 1 delete each)" in out
    assert re.search(r"new file -> searchable: p50 [0-9.]+ s, p95 [0-9.]+ s \(18 photos, 0 never found\)", out)
    assert "full index rebuilds during the run: 0" in out
    assert "search during writes: p50" in out


def test_bench_soak_seeded_library_then_a_no_change_index_process(
    model_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--home", str(model_home), "bench", "soak", "--seeded", "--photos", "300", "--batches", "4",
                 "--index-runs", "1", "--workdir", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out
    assert "library: 300 photos SEEDED" in out
    assert "library now 308 photos, 308 embedded" in out  # 300 + 4 batches x (3 new - 1 deleted)
    # Seeded rows carry their files' real size, time and hash: a renamed one is the same photo, moved.
    assert "renames kept as moves 4/4" in out
    assert re.search(r"\(12 photos, 0 never found\)", out)
    assert "full index rebuilds during the run: 0" in out
    assert re.search(r"whole `photoembed index` process afterwards, nothing to do, 308 photos: .*"
                     r"heavy modules imported: none", out)
