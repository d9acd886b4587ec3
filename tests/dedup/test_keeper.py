from __future__ import annotations

from pathlib import Path

from photoembed.config import Settings
from photoembed.dedup import keeper
from photoembed.dedup.service import DedupService
from photoembed.dedup.trash import SystemTrash
from photoembed.storage.catalog import Catalog
from photoembed.storage.records import Photo, PhotoInfo
from tests.dedup.conftest import PhotoLibrary, scene

ORDER = list(Settings().keeper_criteria)


def _photo(
    name: str,
    *,
    w: int = 100,
    h: int = 100,
    size: int = 1000,
    mtime: int = 1,
    sharp: float = 10.0,
    exif: bool = False,
    gps: bool = False,
    digest: str = "h",
) -> Photo:
    info = PhotoInfo(width=w, height=h, sharpness=sharp, taken_from_exif=exif, has_gps=gps)
    return Photo(1, 1, Path("/p") / name, size, mtime, digest, "ok", None, info)


def test_each_criterion_decides_with_a_reason() -> None:
    cases = [
        ("resolution", _photo("a.jpg", w=200), _photo("b.jpg"), "higher resolution"),
        ("camera_format", _photo("a.heic"), _photo("b.jpg"), "HEIC over JPEG"),
        ("camera_metadata", _photo("a.jpg", exif=True, gps=True), _photo("b.jpg"), "camera data (EXIF date, GPS)"),
        ("sharpness", _photo("a.jpg", sharp=40.0), _photo("b.jpg"), "sharper"),
        ("earliest", _photo("a.jpg", mtime=0), _photo("b.jpg", mtime=120 * 10**9, digest="g"), "older file"),
        ("shorter_path", _photo("a.jpg"), _photo("longer-name.jpg"), "shorter path"),
    ]
    for criterion, better, worse, phrase in cases:
        decision = keeper.choose([worse, better], [False, False], [criterion])
        assert decision.keep == [False, True], criterion
        assert phrase in decision.reasons[0], (criterion, decision.reasons)


def test_order_of_criteria_is_the_users() -> None:
    big_jpeg = _photo("a.jpg", w=400, h=300)
    small_raw = _photo("b.dng", w=200, h=150)
    decision = keeper.choose([big_jpeg, small_raw], [False, False], ORDER)
    assert decision.keeper == 1
    assert decision.reasons[0] == "b.dng is kept: RAW (DNG) over JPEG"
    reordered = ["resolution", "camera_format"]
    assert keeper.choose([big_jpeg, small_raw], [False, False], reordered).keeper == 0


def test_protected_photos_are_always_kept() -> None:
    best = _photo("best.jpg", w=400)
    ref = _photo("ref.jpg")
    decision = keeper.choose([best, ref], [False, True], ORDER)
    assert decision.keep == [False, True]
    assert "protected" in decision.reasons[0]
    both = keeper.choose([best, ref], [True, True], ORDER)
    assert both.keep == [True, True]


def test_protected_folders_in_clusters_and_plans(library: PhotoLibrary, service: DedupService) -> None:
    ref = library.root / "reference"
    ref.mkdir()
    original = scene(21)
    original.save(library.root / "big.png")
    original.resize((320, 240)).save(ref / "small.jpg")
    for path in (library.root / "big.png", ref / "small.jpg"):
        library.add(path)
    (cluster,) = service.find_clusters(tier="same")
    assert {p.path.name: p.keep for p in cluster.photos} == {"big.png": True, "small.jpg": False}
    service.protect(ref)
    assert ref.resolve() in service.protected_folders()
    (cluster,) = service.find_clusters(tier="same")
    assert {p.path.name: p.keep for p in cluster.photos} == {"big.png": False, "small.jpg": True}
    assert [i.path.name for i in service.plan_trash([cluster]).items] == ["big.png"]
    service.protect(library.root)
    (cluster,) = service.find_clusters(tier="same")
    assert all(p.keep for p in cluster.photos)
    assert service.plan_trash([cluster]).files == 0
    service.unprotect(library.root)
    service.unprotect(ref)
    (cluster,) = service.find_clusters(tier="same")
    assert [i.path.name for i in service.plan_trash([cluster]).items] == ["small.jpg"]


def test_protected_root(catalog: Catalog, library: PhotoLibrary, trash_home: Path) -> None:
    original = scene(22)
    original.save(library.root / "a.png")
    original.save(library.root / "b.jpg", quality=80)
    for n in ("a.png", "b.jpg"):
        library.add(library.root / n)
    catalog.set_root_protected(library.root, True)
    service = DedupService(catalog=catalog, settings=Settings(), trash=SystemTrash())
    (cluster,) = service.find_clusters(tier="same")
    assert all(p.keep and p.protected for p in cluster.photos)
