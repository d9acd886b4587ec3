from __future__ import annotations

from pathlib import Path

import pytest

from photoembed.cli.main import main


def test_bench_rescan_times_no_change_syncs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(tmp_path / "h"), "bench", "rescan", "--photos", "60", "--rounds", "2",
                 "--workdir", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out
    assert "first sync (catalogue, no model)" in out
    assert "60 added" in out
    assert "per 10k photos" in out
