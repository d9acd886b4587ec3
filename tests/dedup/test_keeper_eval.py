"""The keeper-accuracy figure: scored against known originals, and the camera-original benchmark end to end."""

from __future__ import annotations

from pathlib import Path

from photoembed.bench.keeper_eval import _camera_exif, keeper_accuracy, originals_by_group, run, with_exif_segment
from photoembed.dedup.records import Cluster, ClusterPhoto
from photoembed.imaging.metadata import read_exif
from tests.dedup.conftest import scene


def _p(path: str, keep: bool) -> ClusterPhoto:
    return ClusterPhoto(0, Path(path), 1, 1, path, keep, "because", "same", 1.0, False)


def test_keeper_accuracy_counts_groups_with_a_known_original() -> None:
    original_of = {Path(p): Path(o) for p, o in [("a", "a"), ("a2", "a"), ("b", "b"), ("b2", "b"), ("c", "c"),
                                                    ("c2", "c")]}
    clusters = [
        Cluster("same", (_p("a", True), _p("a2", False))),
        Cluster("same", (_p("b2", True), _p("b", False))),
        Cluster("identical", (_p("x", True), _p("x2", False))),  # no known original: left out
    ]
    score = keeper_accuracy(clusters, original_of)
    assert (score.groups, score.correct, score.not_clustered) == (2, 1, 1)
    assert score.accuracy == 0.5
    assert score.misses == [(Path("b"), Path("b2"), "because")]
    assert score.line() == (
        "keeper accuracy: 0.500 (1/2 groups with a known original keep it; 1 not clustered); "
        "e.g. b2 kept over b: because"
    )


def test_originals_by_group() -> None:
    class Item:
        def __init__(self, path: str, group: str, kind: str) -> None:
            self.path, self.group, self.kind = Path(path), group, kind

    items = [Item("o", "g", "original"), Item("v", "g", "resize"), Item("d", "h", "distractor")]
    assert originals_by_group(items) == {Path("o"): Path("o"), Path("v"): Path("o")}


def test_exif_segment_keeps_the_coded_pixels(tmp_path: Path) -> None:
    scene(1, (64, 48)).save(tmp_path / "a.jpg", quality=90)
    data = (tmp_path / "a.jpg").read_bytes()
    tagged = with_exif_segment(data, _camera_exif())
    assert tagged.endswith(data[2:])
    summary = read_exif(tagged[tagged.index(b"Exif"):])
    assert summary.camera == "Canon EOS 80D"
    assert summary.taken_tag == "DateTimeOriginal"


def test_camera_originals_are_kept(tmp_path: Path) -> None:
    sources = []
    for k in range(2):
        path = tmp_path / f"src{k}.jpg"
        scene(70 + k, (800, 600)).save(path, quality=88)
        sources.append(path)
    lines: list[str] = []
    figures = run(sources, tmp_path / "work", lines.append)
    new = {k: v for k, v in figures.items() if not k.startswith("previous")}
    assert new == {
        "pairs, copies made a day later": 1.0,
        "groups, copies made a day later": 1.0,
        "pairs, copied together (same file time)": 1.0,
        "groups, copied together (same file time)": 1.0,
    }, "\n".join(lines)
    # The rules they replace kept PNG conversions and brightened, larger edits.
    assert figures["previous rules, copied together (same file time)"] < 0.9
