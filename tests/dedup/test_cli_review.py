"""The CLI's review: a dry run wherever it runs, one tier per listing, each removal's reason once."""

from __future__ import annotations

import builtins
import json
import sys
from pathlib import Path

import pytest

from photoembed.cli.main import main
from photoembed.config import Settings
from photoembed.dedup.records import Cluster, ClusterPhoto
from photoembed.dedup.service import DedupService
from photoembed.storage.catalog import Catalog
from tests.dedup.conftest import scene


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


@pytest.fixture
def indexed(home: Path, trash_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    photos = tmp_path / "photos"
    (photos / "trip").mkdir(parents=True)
    (photos / "phone-backup").mkdir()
    image = scene(51)
    image.save(photos / "trip" / "a.png")
    image.resize((320, 240)).save(photos / "trip" / "small.jpg")
    other = scene(52)
    other.save(photos / "trip" / "Aqua.jpg", quality=90)
    (photos / "phone-backup" / "Aqua.jpg").write_bytes((photos / "trip" / "Aqua.jpg").read_bytes())
    assert _run(capsys, "add", str(photos))[0] == 0
    assert _run(capsys, "index")[0] == 0
    return photos


def test_trash_suggested_is_a_dry_run_even_in_a_terminal(
    indexed: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)

    def no_questions(prompt: str = "") -> str:
        raise AssertionError(f"asked {prompt!r}")

    monkeypatch.setattr(builtins, "input", no_questions)
    before = sorted(p for p in indexed.rglob("*") if p.is_file())
    code, out = _run(capsys, "dupes", "--trash-suggested")
    assert code == 0
    assert sorted(p for p in indexed.rglob("*") if p.is_file()) == before
    assert "Dry run: nothing was moved" in out
    assert "Add --yes to move them to the trash." in out
    lines = [line for line in out.splitlines() if line.startswith("  ")]
    assert len(lines) == 2  # one line per removal, its reason on it once
    for line in lines:
        path, reason = line.strip().split(": ", 1)
        assert Path(path.rsplit(" (", 1)[0]).parent.name in ("trip", "phone-backup")  # the folder shows
        assert out.count(reason) == 1


def test_listing_prints_each_reason_once_with_folders_and_labels(
    indexed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(capsys, "dupes")
    assert code == 0
    assert f"keep    {indexed / 'trip' / 'a.png'}" in out
    assert f"remove  {indexed / 'trip' / 'small.jpg'}  [resized 50%]" in out
    assert "[exact copy]" in out
    reasons = [line.strip() for line in out.splitlines() if line.startswith("          ")]
    assert len(reasons) == 2
    assert len(set(reasons)) == len(reasons)
    assert all(out.count(r) == 1 for r in reasons)


def test_tier_same_lists_no_identical_cluster(indexed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(capsys, "--json", "dupes", "--tier", "same")
    assert code == 0
    clusters = json.loads(out)["clusters"]
    assert [c["tier"] for c in clusters] == ["same"]
    code, out = _run(capsys, "--json", "dupes", "--tier", "identical")
    assert [c["tier"] for c in json.loads(out)["clusters"]] == ["identical"]
    code, out = _run(capsys, "--json", "dupes")
    assert sorted(c["tier"] for c in json.loads(out)["clusters"]) == ["identical", "same"]


def test_yes_moves_and_says_so(indexed: Path, trash_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(capsys, "--json", "dupes", "--trash-suggested", "--yes")
    assert code == 0
    assert json.loads(out)["count"] == 2
    assert not (indexed / "trip" / "small.jpg").exists()
    assert (indexed / "trip" / "a.png").exists()


def _member(pid: int, *, keep: bool, match: str) -> ClusterPhoto:
    return ClusterPhoto(pid, Path(f"/x/{pid}.jpg"), 10, 1, f"h{pid}", keep, "r", match, 1.0, False)


def test_bulk_trash_takes_identical_and_same_photo_tiers_only(catalog: Catalog) -> None:
    service = DedupService(catalog=catalog, settings=Settings(), trash=None)  # type: ignore[arg-type]
    clusters = [
        Cluster("identical", (_member(1, keep=True, match="keeper"), _member(2, keep=False, match="identical"))),
        Cluster("same", (_member(3, keep=True, match="keeper"), _member(4, keep=False, match="same"))),
        Cluster("similar", (_member(5, keep=True, match="keeper"), _member(6, keep=False, match="identical"))),
    ]
    plan, left = service.plan_bulk_trash(clusters)
    assert [i.photo_id for i in plan.items] == [2, 4]
    assert [c.tier for c in left] == ["similar"]
    assert [c.bulk for c in clusters] == [True, True, False]
    # One similar cluster, reviewed on its own, may still go.
    assert [i.photo_id for i in service.plan_trash(clusters[2:]).items] == [6]
