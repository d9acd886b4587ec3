"""The keeper finds the original: a table of copies and their original, then real files through the service."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance

from photoembed.config import Paths, Settings, load_settings
from photoembed.core.hashing import content_hash
from photoembed.dedup import keeper
from photoembed.dedup.service import DedupService
from photoembed.imaging.decode import decode_photo
from photoembed.imaging.fingerprint import fingerprint
from photoembed.storage.catalog import Catalog
from photoembed.storage.records import Photo, PhotoInfo
from tests.dedup.conftest import scene

ORDER = list(Settings().keeper_criteria)
DAY_NS = 86_400 * 10**9
T0 = 1_599_999_960  # capture time, seconds (on a whole minute)


def photo(
    name: str,
    *,
    fmt: str = "jpeg",
    w: int = 4000,
    h: int = 3000,
    size: int = 1_000_000,
    mtime_ns: int = T0 * 10**9,
    digest: str | None = None,
    camera: str | None = None,
    exif_date: bool = False,
    taken: float = T0,
    software: str | None = None,
    modified: float | None = None,
    trace: float | None = None,
    tables: int | None = None,
    sharp: float = 10.0,
    pid: int = 1,
) -> Photo:
    info = PhotoInfo(
        format=fmt,
        width=w,
        height=h,
        taken=taken if exif_date else mtime_ns / 1e9,
        taken_from_exif=exif_date,
        camera=camera,
        software=software,
        modified=modified,
        jpeg_trace=trace,
        jpeg_tables=tables,
        sharpness=sharp,
    )
    return Photo(pid, 1, Path("/lib") / name, size, mtime_ns, digest or name, "ok", None, info)


CAMERA = {"camera": "Canon EOS 5D", "exif_date": True}
OWN = 0  # a JPEG coded with the encoder's own quantisation tables (photoembed.imaging.jpegtrace.OWN_TABLES)
MONTH_NS = 30 * DAY_NS

# (case, original, copy, words the removal's reason must contain, words it must not contain)
CASES: list[tuple[str, Photo, Photo, str, str | None]] = [
    (
        "camera data over none",
        photo("IMG_1.jpg", **CAMERA),
        photo("IMG_1-shared.jpg", w=2000, h=1500),
        "camera data (Canon EOS 5D, EXIF date) over none",
        None,
    ),
    (
        "issue: PNG converted from a camera JPEG (3.5x bigger, no EXIF, newer)",
        photo("IMG_2.jpg", size=1_000_000, **CAMERA),
        photo("IMG_2.png", fmt="png", size=3_500_000, mtime_ns=T0 * 10**9 + 30 * DAY_NS, trace=2.4),
        "camera data",
        "PNG over",
    ),
    (
        "PNG of a decoded JPEG, neither with EXIF, same minute",
        photo("IMG_3.jpg", size=1_000_000),
        photo("IMG_3.png", fmt="png", size=3_500_000, mtime_ns=T0 * 10**9 + 20 * 10**9, trace=2.4),
        "JPEG over PNG of a decoded JPEG",
        None,
    ),
    (
        "PNG with the camera's EXIF copied over, same minute",
        photo("IMG_4.jpg", **CAMERA),
        photo("IMG_4.png", fmt="png", size=3_500_000, trace=1.7, **CAMERA),
        "camera JPEG over PNG of a decoded JPEG",
        None,
    ),
    (
        "a screenshot (lossless, no JPEG traces) over its JPEG re-encode",
        photo("Screenshot.png", fmt="png", size=900_000, trace=0.1),
        photo("Screenshot.jpg", size=200_000),
        "lossless PNG over JPEG",
        None,
    ),
    (
        "RAW over the camera's JPEG",
        photo("IMG_5.dng", fmt="raw-dng", size=25_000_000, **CAMERA),
        photo("IMG_5.jpg", **CAMERA),
        "RAW (DNG) over camera JPEG",
        None,
    ),
    (
        "issue: brightened edit with a larger file, saved later",
        photo("IMG_6.jpg", size=1_000_000, **CAMERA),
        photo("IMG_6-bright.jpg", size=2_600_000, mtime_ns=T0 * 10**9 + 3 * DAY_NS, **CAMERA),
        "older file",
        "larger",
    ),
    (
        "brightened edit, same minute: the editor's mark",
        photo("IMG_7.jpg", size=1_000_000, modified=T0, **CAMERA),
        photo("IMG_7-edit.jpg", size=2_600_000, software="Adobe Photoshop 25.0", modified=T0 + 5000, **CAMERA),
        "unedited over edited (saved by Adobe Photoshop 25.0)",
        None,
    ),
    (
        "edit saved long after capture (no software tag)",
        photo("IMG_8.jpg", modified=T0, **CAMERA),
        photo("IMG_8-crop.jpg", modified=T0 + 86_400, **CAMERA),
        "unedited over edited (saved again",
        None,
    ),
    (
        "captured earlier (both EXIF dates)",
        photo("IMG_9.jpg", camera="Canon EOS 5D", exif_date=True, taken=T0),
        photo("IMG_9-b.jpg", camera="Canon EOS 5D", exif_date=True, taken=T0 + 3600),
        "captured earlier",
        None,
    ),
    (
        "higher resolution only among copies otherwise equal",
        photo("IMG_10.jpg", **CAMERA),
        photo("IMG_10-small.jpg", w=2000, h=1500, **CAMERA),
        "higher resolution (4000×3000 over 2000×1500)",
        None,
    ),
    (
        "resolution does not beat the older file",
        photo("IMG_11.jpg", w=2000, h=1500, **CAMERA),
        photo("IMG_11-upscaled.jpg", w=4000, h=3000, mtime_ns=T0 * 10**9 + DAY_NS, **CAMERA),
        "older file",
        "resolution",
    ),
    (
        "issue: identical files, the same minute, never 'older file'",
        photo("trip/Aqua.jpg", digest="same"),
        photo("phone-backup/Aqua.jpg", digest="same", mtime_ns=T0 * 10**9 + 25 * 10**9),
        "shorter path",
        "older",
    ),
    (
        "re-saved with the camera EXIF copied, its file older: the tables tell",
        photo("IMG_12.jpg", tables=OWN, **CAMERA),
        photo("a.jpg", tables=95, mtime_ns=T0 * 10**9 - MONTH_NS, **CAMERA),
        "camera JPEG (its own quantisation tables) over a re-save (libjpeg's, quality 95)",
        "older",
    ),
    (
        "brightened or cropped with the EXIF copied, its file older: the tables tell",
        photo("IMG_13.jpg", tables=OWN, **CAMERA),
        photo("b.jpg", w=3600, h=2700, tables=92, mtime_ns=T0 * 10**9 - MONTH_NS, **CAMERA),
        "camera JPEG (its own quantisation tables)",
        "older",
    ),
    (
        "PNG conversion with the EXIF copied, its file older: its JPEG traces tell",
        photo("IMG_14.jpg", tables=OWN, **CAMERA),
        photo("c.png", fmt="png", size=9_000_000, trace=3.1, mtime_ns=T0 * 10**9 - MONTH_NS, **CAMERA),
        "camera JPEG over PNG of a decoded JPEG",
        "older",
    ),
    (
        "TIFF conversion with the EXIF copied, its file older",
        photo("IMG_15.jpg", tables=OWN, **CAMERA),
        photo("d.tif", fmt="tiff", size=36_000_000, trace=3.0, mtime_ns=T0 * 10**9 - MONTH_NS, **CAMERA),
        "camera JPEG over TIFF of a decoded JPEG",
        "older",
    ),
    (
        "resized PNG with the EXIF copied (no traces left), its file older: no camera writes a PNG",
        photo("IMG_16.jpg", tables=OWN, **CAMERA),
        photo("e.png", fmt="png", w=2000, h=1500, trace=0.05, mtime_ns=T0 * 10**9 - MONTH_NS, **CAMERA),
        "camera JPEG over lossless PNG",
        "older",
    ),
    (
        "WebP with the EXIF copied, its file older",
        photo("IMG_17.jpg", tables=OWN, **CAMERA),
        photo("f.webp", fmt="webp", size=300_000, mtime_ns=T0 * 10**9 - MONTH_NS, **CAMERA),
        "camera JPEG over WEBP",
        "older",
    ),
    (
        "edited with the EXIF copied, saved by an editor, its file older",
        photo("IMG_18.jpg", modified=T0, **CAMERA),
        photo("g.jpg", software="Adobe Photoshop 25.0", modified=T0 + 5000, mtime_ns=T0 * 10**9 - MONTH_NS,
              **CAMERA),
        "unedited over edited (saved by Adobe Photoshop 25.0)",
        "older",
    ),
    (
        "a smaller lossless copy without traces is not 'more original' than the JPEG it was resized from",
        photo("IMG_19.jpg", size=2_000_000),
        photo("h.png", fmt="png", w=2000, h=1500, size=4_000_000, trace=0.05),
        "higher resolution",
        "lossless",
    ),
    (
        "EXIF stripped losslessly (the same coded pixels), its file older",
        photo("IMG_20.jpg", tables=OWN, **CAMERA),
        photo("i.jpg", tables=OWN, mtime_ns=T0 * 10**9 - MONTH_NS),
        "camera data (Canon EOS 5D, EXIF date) over none",
        None,
    ),
    (
        "identical files days apart: which copy came first says nothing",
        photo("a/Aqua.jpg", digest="same"),
        photo("b/Aqua.jpg", digest="same", mtime_ns=T0 * 10**9 - 5 * DAY_NS),
        "identical files",
        "older",
    ),
]


@pytest.mark.parametrize(("case", "original", "copy", "says", "never"), CASES, ids=[c[0] for c in CASES])
def test_the_original_is_kept_with_a_true_reason(
    case: str, original: Photo, copy: Photo, says: str, never: str | None
) -> None:
    copy = dataclasses.replace(copy, id=2)
    for photos in ([original, copy], [copy, original]):  # whichever comes first
        decision = keeper.choose(photos, [False, False], ORDER)
        assert photos[decision.keeper] is original, (case, decision.reasons)
        removed = decision.reasons[photos.index(copy)]
        kept = decision.reasons[photos.index(original)]
        assert says in removed, (case, removed)
        if never is not None:
            assert never not in removed, (case, removed)
            assert never not in kept, (case, kept)
        for reason in decision.reasons:
            assert "\n" not in reason
        assert kept == "keep: " + decision.phrases[photos.index(copy)]


def test_times_in_reasons_are_the_times_shown() -> None:
    old = photo("a.jpg", mtime_ns=T0 * 10**9)
    new = photo("b.jpg", mtime_ns=T0 * 10**9 + 2 * DAY_NS)
    _, phrase = keeper.compare(old, new, ORDER)
    shown = [dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M") for t in (T0, T0 + 2 * 86_400)]
    assert phrase == f"older file ({shown[0]} over {shown[1]})"


def test_three_photos_the_keeper_names_its_closest_rival() -> None:
    original = photo("IMG.jpg", **CAMERA)
    small = photo("IMG-small.jpg", w=1000, h=750, pid=2, **CAMERA)
    stripped = photo("IMG-stripped.jpg", pid=3)
    decision = keeper.choose([stripped, small, original], [False] * 3, ORDER)
    assert decision.keeper == 2
    assert decision.reasons[2] == "keep: higher resolution (4000×3000 over 1000×750) (against IMG-small.jpg)"
    assert decision.reasons[0] == "IMG.jpg is kept: camera data (Canon EOS 5D, EXIF date) over none"
    assert decision.reasons[1] == "IMG.jpg is kept: higher resolution (4000×3000 over 1000×750)"


def test_the_user_may_put_resolution_first() -> None:
    original = photo("IMG.jpg", w=2000, h=1500, **CAMERA)
    bigger = photo("IMG-big.png", fmt="png", pid=2)
    assert keeper.choose([original, bigger], [False, False], ORDER).keeper == 0
    reordered = ["resolution", *[c for c in ORDER if c != "resolution"]]
    assert keeper.choose([original, bigger], [False, False], reordered).keeper == 1


def test_old_settings_keep_the_users_order_under_the_new_names(tmp_path: Path) -> None:
    paths = Paths.resolve(tmp_path)
    paths.config.mkdir(parents=True)
    paths.settings_file.write_text(
        '{"schema_version": 1, "keeper_criteria": ["older", "file_size", "resolution", "has_metadata"]}',
        encoding="utf-8",
    )
    order = load_settings(paths).keeper_criteria
    assert list(order[:4]) == ["earliest", "file_size", "resolution", "camera_metadata"]
    assert sorted(order) == sorted(ORDER)
    paths.settings_file.write_text(
        '{"schema_version": 1, "keeper_criteria": ["resolution", "original_format", "file_size", "has_metadata", '
        '"sharpness", "older", "shorter_path"]}',
        encoding="utf-8",
    )
    assert list(load_settings(paths).keeper_criteria) == list(ORDER)


# -- real files, decoded and catalogued as the indexer does, clustered by the service --------------------


def _exif(*, camera: bool, software: str | None = None, modified: str = "2020:09:13 14:26:40") -> bytes:
    exif = Image.Exif()
    if camera:
        exif[0x010F] = "Canon"
        exif[0x0110] = "Canon EOS 5D"
        exif.get_ifd(0x8769)[0x9003] = "2020:09:13 14:26:40"
    if software:
        exif[0x0131] = software
    exif[0x0132] = modified
    return exif.tobytes()


def _catalogue(catalog: Catalog, root_id: int, path: Path) -> None:
    data = path.read_bytes()
    st = path.stat()
    decoded = decode_photo(data, name=path.name, min_side=400, mtime=st.st_mtime)
    mark = fingerprint(decoded.image)
    info = dataclasses.replace(decoded.info, phash=mark.phash, sharpness=mark.sharpness)
    catalog.upsert_photo(
        root_id=root_id, path=str(path), size=st.st_size, mtime_ns=st.st_mtime_ns,
        content_hash=content_hash(data), info=info,
    )


def _set_mtime(path: Path, seconds: float) -> None:
    os.utime(path, (seconds, seconds))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    return folder


def _clusters(catalog: Catalog, folder: Path, names: list[str]) -> list[dict[str, tuple[bool, str, str]]]:
    root = catalog.add_root(folder).id
    for name in names:
        _catalogue(catalog, root, folder / name)
    service = DedupService(catalog=catalog, settings=Settings(), trash=None)  # type: ignore[arg-type]
    return [{p.path.name: (p.keep, p.reason, p.label) for p in c.photos} for c in service.find_clusters(tier="same")]


def test_real_png_converted_from_a_jpeg_is_not_kept(catalog: Catalog, folder: Path) -> None:
    scene(3, (1024, 768)).save(folder / "camera.jpg", quality=85, exif=_exif(camera=True))
    scene(13, (1024, 768)).save(folder / "plain.jpg", quality=85)
    for name in ("camera.jpg", "plain.jpg"):
        with Image.open(folder / name) as jpeg:
            jpeg.convert("RGB").save(folder / (Path(name).stem + ".png"))  # no EXIF: what converters do
        _set_mtime(folder / name, T0)
        _set_mtime(folder / (Path(name).stem + ".png"), T0 + 30)  # the same minute
    clusters = _clusters(catalog, folder, ["camera.jpg", "camera.png", "plain.jpg", "plain.png"])
    by_name = {name: entry for cluster in clusters for name, entry in cluster.items()}
    assert by_name["camera.jpg"][0]
    assert not by_name["camera.png"][0]
    assert by_name["camera.png"][1] == "camera.jpg is kept: camera data (Canon EOS 5D, EXIF date) over none"
    # Without any EXIF, the PNG's pixels give it away.
    assert by_name["plain.jpg"][0]
    assert not by_name["plain.png"][0]
    assert by_name["plain.png"][1] == "plain.jpg is kept: JPEG over PNG of a decoded JPEG"
    assert by_name["plain.png"][2] == "converted to PNG"


def test_real_brightened_edit_with_a_larger_file_is_not_kept(catalog: Catalog, folder: Path) -> None:
    image = scene(4, (1024, 768))
    image.save(folder / "IMG_0004.jpg", quality=70, exif=_exif(camera=True))
    brighter = ImageEnhance.Brightness(image).enhance(1.25)
    brighter.save(folder / "IMG_0004-edit.jpg", quality=97,
                  exif=_exif(camera=True, software="Adobe Photoshop 25.0", modified="2024:01:02 10:00:00"))
    assert (folder / "IMG_0004-edit.jpg").stat().st_size > (folder / "IMG_0004.jpg").stat().st_size
    for name in ("IMG_0004.jpg", "IMG_0004-edit.jpg"):
        _set_mtime(folder / name, T0)  # copied together: file times tell nothing
    (cluster,) = _clusters(catalog, folder, ["IMG_0004.jpg", "IMG_0004-edit.jpg"])
    assert cluster["IMG_0004.jpg"][0]
    assert not cluster["IMG_0004-edit.jpg"][0]
    assert cluster["IMG_0004-edit.jpg"][1] == (
        "IMG_0004.jpg is kept: unedited over edited (saved by Adobe Photoshop 25.0)"
    )
    assert cluster["IMG_0004-edit.jpg"][2] == "edited"


def test_real_identical_files_in_the_same_minute_do_not_claim_an_older_file(catalog: Catalog, folder: Path) -> None:
    (folder / "trip").mkdir()
    (folder / "phone-backup").mkdir()
    scene(5, (800, 600)).save(folder / "trip" / "Aqua.jpg", quality=90)
    (folder / "phone-backup" / "Aqua.jpg").write_bytes((folder / "trip" / "Aqua.jpg").read_bytes())
    _set_mtime(folder / "phone-backup" / "Aqua.jpg", T0)
    _set_mtime(folder / "trip" / "Aqua.jpg", T0 + 40)
    root = catalog.add_root(folder).id
    for sub in ("trip", "phone-backup"):
        _catalogue(catalog, root, folder / sub / "Aqua.jpg")
    service = DedupService(catalog=catalog, settings=Settings(), trash=None)  # type: ignore[arg-type]
    (cluster,) = service.find_clusters(tier="identical")
    reasons = [p.reason for p in cluster.photos]
    assert all("older" not in r for r in reasons), reasons
    kept, removed = cluster.photos
    assert kept.path.parent.name == "trip"  # the shorter path: true, and shown
    assert removed.reason == "trip/Aqua.jpg is kept: shorter path"
    assert removed.label == "exact copy"


def test_a_tone_edit_is_not_kept_for_being_sharper() -> None:
    """Brightening raises the Laplacian's variance: "sharper" must not pick the edit over its original."""
    import numpy as np

    rng = np.random.default_rng(0)
    grey = rng.integers(40, 200, (32, 32)).astype(np.uint8)
    brighter = np.clip(grey.astype(np.float32) * 1.2, 0, 255).astype(np.uint8)
    original = photo("DSC_0001.jpg", sharp=228.0, **CAMERA)
    edit = photo("DSC_0001-edit.jpg", sharp=300.0, pid=2, **CAMERA)
    blind = keeper.choose([original, edit], [False, False], ORDER)
    assert blind.keeper == 1  # without the thumbnails, the rules cannot tell
    context = keeper.Context(thumbs={1: grey, 2: brighter})
    decision = keeper.choose([original, edit], [False, False], ORDER, context)
    assert decision.keeper == 0
    assert decision.reasons[1] == "DSC_0001.jpg is kept: shorter path"
    assert keeper.tone_changed(grey, brighter)
    assert not keeper.tone_changed(grey, grey)


def test_of_two_re_encodes_the_less_compressed_is_kept_unless_the_tone_changed() -> None:
    import numpy as np

    grey = np.random.default_rng(1).integers(40, 200, (32, 32)).astype(np.uint8)
    q95 = photo("a.jpg", size=900_000)
    q60 = photo("b.jpg", size=300_000, pid=2)
    context = keeper.Context(thumbs={1: grey, 2: grey})
    decision = keeper.choose([q60, q95], [False, False], ORDER, context)
    assert decision.keeper == 1
    assert decision.reasons[0] == "a.jpg is kept: less compressed (900,000 over 300,000 bytes, same size and format)"
    brighter = np.clip(grey.astype(np.float32) * 1.2, 0, 255).astype(np.uint8)
    edit = photo("a-edit.jpg", size=2_000_000, pid=2)
    tone = keeper.Context(thumbs={1: grey, 2: brighter})
    assert "less compressed" not in keeper.compare(edit, q95, ORDER, tone)[1]
    assert keeper.choose([edit, q95], [False, False], ORDER, tone).keeper == 1
