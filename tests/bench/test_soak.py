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
                 "--workdir", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out
    assert "6 batches (3 new, 1 rename, 1 edit, 1 delete each)" in out
    assert re.search(r"new file -> searchable: p50 [0-9.]+ s, p95 [0-9.]+ s \(18 photos, 0 never found\)", out)
    assert "full index rebuilds during the run: 0" in out
    assert "search during writes: p50" in out
