"""The keeper-accuracy figure: scored against known originals, and the camera-original benchmark end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from photoembed.bench.keeper_eval import (
    _camera_exif,
    keeper_accuracy,
    originals_by_group,
    run,
    unknown_original,
    with_exif_segment,
)
from photoembed.dedup.records import Cluster, ClusterPhoto
from photoembed.imaging.metadata import read_exif
from photoembed.storage.records import Photo, PhotoInfo
from tests.dedup.conftest import scene

T0 = 1_600_000_000
DAY_NS = 86_400 * 10**9
CAMERA = {"camera": "Canon EOS 80D", "taken_from_exif": True, "taken": float(T0)}


def _photo(name: str, *, mtime_ns: int = T0 * 10**9, digest: str | None = None, **info: object) -> Photo:
    fields = {"format": "jpeg", "width": 1600, "height": 1200, "taken": float(T0)} | info
    return Photo(1, 1, Path("/lib") / name, 1000, mtime_ns, digest or name, "ok", None, PhotoInfo(**fields))  # type: ignore[arg-type]


# (case, nominal original, copy, None when the files single the original out, else words of the reason)
KNOWN_CASES = [
    ("camera data only in the original", _photo("o.jpg", jpeg_tables=0, **CAMERA), _photo("c.jpg", jpeg_tables=85),
     None),
    ("a decoded JPEG in a PNG", _photo("o.jpg", jpeg_tables=90), _photo("c.png", format="png", jpeg_trace=3.0),
     None),
    ("the camera's own tables against a re-save's, the copy's file older",
     _photo("o.jpg", jpeg_tables=0, **CAMERA),
     _photo("c.jpg", jpeg_tables=95, mtime_ns=(T0 - 86_400 * 30) * 10**9, **CAMERA), None),
    ("a resized copy", _photo("o.jpg", jpeg_tables=95), _photo("c.jpg", width=800, height=600, jpeg_tables=95), None),
    ("only a newer file", _photo("o.jpg", jpeg_tables=95),
     _photo("c.jpg", jpeg_tables=95, mtime_ns=T0 * 10**9 + DAY_NS), None),
    ("the photos-large variant set: a lossless PNG of the very pixels its q95 'original' encodes",
     _photo("original.jpg", jpeg_tables=95), _photo("format.png", format="png", jpeg_trace=0.05),
     "holds the pixels losslessly"),
    ("the same file time, the same EXIF, both libjpeg: a tone edit tells nothing",
     _photo("o.jpg", jpeg_tables=85, **CAMERA), _photo("c.jpg", jpeg_tables=97, **CAMERA),
     "nothing in the files says which came first"),
    ("the copy's file is older and nothing else differs", _photo("o.jpg", jpeg_tables=95),
     _photo("c.jpg", jpeg_tables=95, mtime_ns=T0 * 10**9 - DAY_NS), "the copy's file is older"),
    ("the copy has camera data the original lacks", _photo("o.jpg"), _photo("c.jpg", **CAMERA), "camera data"),
    ("identical bytes", _photo("o.jpg", digest="h"), _photo("c.jpg", digest="h"), "identical bytes"),
]


@pytest.mark.parametrize(("case", "original", "copy", "why"), KNOWN_CASES, ids=[c[0] for c in KNOWN_CASES])
def test_whether_the_files_single_the_original_out(case: str, original: Photo, copy: Photo, why: str | None) -> None:
    got = unknown_original(original, copy)
    if why is None:
        assert got is None, (case, got)
    else:
        assert got is not None, case
        assert why in got, (case, got)


def test_groups_without_a_known_original_are_counted_apart_with_the_reason() -> None:
    original_of = {Path(p): Path(o) for p, o in [("/lib/a.jpg", "/lib/a.jpg"), ("/lib/a.png", "/lib/a.jpg"),
                                                    ("/lib/b.jpg", "/lib/b.jpg"), ("/lib/b2.jpg", "/lib/b.jpg")]}
    photos = {
        Path("/lib/a.jpg"): _photo("a.jpg", jpeg_tables=95),
        Path("/lib/a.png"): _photo("a.png", format="png", jpeg_trace=0.05),
        Path("/lib/b.jpg"): _photo("b.jpg", jpeg_tables=0, **CAMERA),
        Path("/lib/b2.jpg"): _photo("b2.jpg", jpeg_tables=90),
    }
    clusters = [
        Cluster("same", (_p("/lib/a.png", True), _p("/lib/a.jpg", False))),
        Cluster("same", (_p("/lib/b.jpg", True), _p("/lib/b2.jpg", False))),
    ]
    score = keeper_accuracy(clusters, original_of, photos)
    assert (score.groups, score.correct, len(score.unknown)) == (1, 1, 1)
    assert score.unknown[0][0] == Path("/lib/a.jpg")
    assert "against a.png: a.png holds the pixels losslessly" in score.unknown[0][1]
    assert score.unknown[0][2] is False
    line = score.line()
    assert line.startswith("keeper accuracy: 1.000 (1/1 groups with a known original keep it)")
    assert "no known original: 1 groups (nominal original kept in 0), e.g. a.jpg: against a.png" in line
    # Without the rows, every group counts (what the files say is not asked).
    assert keeper_accuracy(clusters, original_of).groups == 2


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
    path = tmp_path / "src0.jpg"
    scene(70, (800, 600)).save(path, quality=88)
    lines: list[str] = []
    figures = run([path], tmp_path / "work", lines.append)
    text = "\n".join(lines)
    timelines = [
        "copies made a day later",
        "copied together (same file time)",
        "camera JPEGs, copies newer",
        "camera JPEGs, copies older",
        "camera JPEGs, same file time",
    ]
    for timeline in timelines:
        assert figures[f"pairs, {timeline}"] == 1.0, text
        assert figures[f"groups, {timeline}"] == 1.0, text
    assert figures["pairs, every known original"] == 1.0
    assert "keeper accuracy on every pair with a known original: 1.000" in text
    # Every camera-set copy counts: the camera's own tables, its EXIF and the JPEG traces single it out.
    camera_pairs = [line for line in lines if line.startswith("no known original")]
    assert camera_pairs == [
        "no known original: brightened, EXIF kept: 1 pairs (nominal original kept in 1): nothing in the files says "
        "which came first (the same file time; the same camera data, no re-save traces)"
    ], text
    # The rules they replace kept PNG conversions, brightened edits and re-saves with the EXIF copied.
    assert figures["previous rules, copied together (same file time)"] < 0.9
    assert figures["previous rules, camera JPEGs, copies older"] < 0.7
