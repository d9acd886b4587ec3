"""Keeper accuracy: in how many duplicate groups with a known original is the original the suggested keeper.

:func:`keeper_accuracy` scores any clustering against known originals (``bench dedup-eval`` prints it as one
line). ``bench keeper-eval`` builds the case it is meant for: camera originals (the real photos of
``../shared/data/photos-large``, given the camera EXIF a camera writes, bytes otherwise untouched) and copies
made *from those files* the way people make them: a PNG conversion, resized and re-encoded shares, a WebP, a
brightened edit (larger file), a crop, each with and without the EXIF carried over. Two timelines: the copies
written a day after the original, and everything copied together (the same file time, to the second), where
file times tell nothing. It scores the keeper rules alone on each (original, copy) pair, and the whole
pipeline (catalog, clustering, keeper) on each group.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PIL import Image, ImageEnhance

from photoembed.config import Settings
from photoembed.core.hashing import content_hash
from photoembed.dedup import keeper
from photoembed.dedup.records import Cluster
from photoembed.dedup.service import DedupService
from photoembed.dedup.store import DedupStore
from photoembed.dedup.trash import SystemTrash
from photoembed.errors import KnownError
from photoembed.imaging.decode import decode_photo
from photoembed.imaging.fingerprint import fingerprint
from photoembed.imaging.formats import format_of, format_rank
from photoembed.imaging.jpegtrace import CLEAN_MAX, OWN_TABLES, TRACE_MIN
from photoembed.storage.catalog import Catalog
from photoembed.storage.records import Photo

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
_CAPTURE = "2021:06:05 10:30:00"
_DAY_S = 86_400


# -- is the original known? --------------------------------------------------------------------------
#
# A set's "original" is what its generator started from, but only the files can tell a keeper which one that
# is. These rules say, from the two files alone, whether they do: facts that the nominal original came first,
# and facts that the copy could be its source. They share the keeper's detectors (camera EXIF, JPEG traces,
# quantisation tables, editor marks), never its order: a group they call known is scored against the
# generator's original, whatever the keeper rules conclude.


def _lossy(p: Photo) -> bool:
    return (p.info.format or format_of(p.path.name)).lower() in ("jpeg", "webp", "avif", "heic", "heif")


def _lossless(p: Photo) -> bool:
    return (p.info.format or format_of(p.path.name)).lower() in ("png", "tiff", "bmp")


def _px(p: Photo) -> int:
    return (p.info.width or 0) * (p.info.height or 0)


def _tables(p: Photo) -> int | None:
    return p.info.jpeg_tables if (p.info.format or "").lower() == "jpeg" else None


def evidence(original: Photo, copy: Photo) -> tuple[list[str], list[str], list[str]]:
    """From the two files alone: (strong facts that ``original`` came first, facts that ``copy`` could be its
    source, weak facts either way: file times, coarser coding of the same pixels)."""
    first: list[str] = []
    source: list[str] = []
    weak: list[str] = []
    fo, fc = keeper.camera_facts(original), keeper.camera_facts(copy)
    if len(fo) > len(fc):
        first.append("camera data the copy lacks")
    elif len(fc) > len(fo):
        source.append("the copy has camera data the original lacks")
    to, tc = original.info.taken, copy.info.taken
    both_dated = original.info.taken_from_exif and copy.info.taken_from_exif
    if both_dated and to is not None and tc is not None and tc // 60 < to // 60:
        source.append("the copy's EXIF capture is earlier")
    trace_c, trace_o = copy.info.jpeg_trace, original.info.jpeg_trace
    if _lossless(copy) and trace_c is not None and trace_c >= TRACE_MIN and not _lossless(original):
        first.append("the copy is a decoded JPEG in a lossless file")
    if _lossless(original) and trace_o is not None and trace_o >= TRACE_MIN and not _lossless(copy):
        source.append("the original is a decoded JPEG in a lossless file")
    if _lossless(copy) and trace_c is not None and trace_c <= CLEAN_MAX and _px(copy) >= _px(original) and _lossy(
        original
    ):
        source.append(f"{copy.path.name} holds the pixels losslessly (no JPEG traces), the original is a lossy "
                      "encoding of as many pixels")
    fmt_c = (copy.info.format or format_of(copy.path.name)).lower()
    if fc and fmt_c in ("png", "webp", "gif", "bmp", "avif"):
        first.append(f"the copy is a {fmt_c.upper()} with camera data (no camera writes one)")
    if keeper.edit_mark(copy) and not keeper.edit_mark(original):
        first.append("the copy carries an editor's mark")
    if keeper.edit_mark(original) and not keeper.edit_mark(copy):
        source.append("the original carries an editor's mark")
    qo, qc = _tables(original), _tables(copy)
    if qo == OWN_TABLES and qc not in (None, OWN_TABLES):
        first.append("the copy has libjpeg's tables, the original its encoder's own")
    if qc == OWN_TABLES and qo not in (None, OWN_TABLES):
        source.append("the original has libjpeg's tables, the copy its encoder's own")
    if _px(copy) < _px(original):
        first.append("the copy has fewer pixels (resized or cropped)")
    elif _px(copy) > _px(original):
        source.append("the copy has more pixels")
    elif qo and qc and qo > qc:
        weak.append("the copy is coded coarser")  # what a re-save usually does (one at a higher quality tells
        # nothing: people re-save at 95-100 all the time)
    mo, mc = original.mtime_ns // (60 * 10**9), copy.mtime_ns // (60 * 10**9)
    if mo < mc:
        weak.append("the copy's file is newer")
    elif mc < mo:
        weak.append("the copy's file is older")
    return first, source, weak


def unknown_original(original: Photo, copy: Photo) -> str | None:
    """Why the files do not tell that ``original`` came before ``copy`` (None: they do).

    Known: strong facts for the original and none for the copy (file times then do not matter: a copy tool
    or a restore sets any), or, without strong facts either way, weak ones that all favour the original
    (the copy's file is newer, its coding coarser).
    """
    if original.content_hash is not None and original.content_hash == copy.content_hash:
        return "identical bytes: either file is the original"
    first, source, weak = evidence(original, copy)
    if source:
        return "; ".join(source)
    if first:
        return None
    if weak and all(w in ("the copy's file is newer", "the copy is coded coarser") for w in weak):
        return None
    facts = ", ".join(weak) if weak else "the same file time"
    return f"nothing in the files says which came first ({facts}; the same camera data, no re-save traces)"


@dataclass
class KeeperScore:
    """Keeper accuracy over groups with a known original.

    Attributes:
        groups: groups with a known original that were clustered with at least one of their copies.
        correct: of those, how many have the original as their (first) kept photo.
        not_clustered: groups with a known original that no cluster joined to a copy (no keeper was chosen).
        misses: (original, kept instead, the kept photo's reason) for each wrong keeper.
        unknown: groups whose nominal original the files do not single out: (nominal original, why, whether
            it was kept anyway). Not in the accuracy.
    """

    groups: int = 0
    correct: int = 0
    not_clustered: int = 0
    misses: list[tuple[Path, Path, str]] = field(default_factory=list)
    unknown: list[tuple[Path, str, bool]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.groups if self.groups else 1.0

    def line(self, name: str = "keeper accuracy") -> str:
        text = (
            f"{name}: {f'{self.accuracy:.3f}' if self.groups else '-'} ({self.correct}/{self.groups} groups with a "
            "known original keep it"
            + (f"; {self.not_clustered} not clustered" if self.not_clustered else "")
            + ")"
            + (f"; e.g. {self.misses[0][1].name} kept over {self.misses[0][0].name}: {self.misses[0][2]}"
               if self.misses else "")
        )
        if self.unknown:
            kept = sum(k for _, _, k in self.unknown)
            original, why, _ = self.unknown[0]
            text += (
                f"\n  no known original: {len(self.unknown)} groups (nominal original kept in {kept}), e.g. "
                f"{original.name}: {why}"
            )
        return text


def keeper_accuracy(
    clusters: Iterable[Cluster], original_of: dict[Path, Path], photos: Mapping[Path, Photo] | None = None
) -> KeeperScore:
    """Score the clusters' keepers against known originals.

    Args:
        clusters: the clusters found (keeper first, as the service lists them).
        original_of: for each photo of a group with a nominal original, that original's path (the original
            maps to itself). Photos outside such groups are left out.
        photos: the catalog's rows by path: a group whose files do not single out its nominal original
            against every copy clustered with it (:func:`unknown_original`) is counted under
            ``unknown``, with the reason, not in the accuracy. Without them every group counts.
    """
    score = KeeperScore()
    clustered: set[Path] = set()
    for cluster in clusters:
        originals = {original_of[p.path] for p in cluster.photos if p.path in original_of}
        for original in originals:
            members = [p for p in cluster.photos if original_of.get(p.path) == original]
            if original not in {p.path for p in members} or len(members) < 2:
                continue
            clustered.add(original)
            kept = next((p for p in cluster.photos if p.keep), cluster.photos[0])
            if photos is not None and original in photos:
                reasons = [
                    (m.path.name if m.path.name != original.name else f"{m.path.parent.name}/{m.path.name}", why)
                    for m in members
                    if m.path != original and m.path in photos
                    for why in [unknown_original(photos[original], photos[m.path])]
                    if why is not None
                ]
                if reasons:
                    name, why = reasons[0]
                    score.unknown.append((original, f"against {name}: {why}", kept.path == original))
                    continue
            score.groups += 1
            if kept.path == original:
                score.correct += 1
            else:
                score.misses.append((original, kept.path, kept.reason))
    score.not_clustered = len(set(original_of.values()) - clustered)
    return score


class _Labelled(Protocol):
    @property
    def path(self) -> Path: ...
    @property
    def group(self) -> str: ...
    @property
    def kind(self) -> str: ...


def originals_by_group(items: Iterable[_Labelled], original_kind: str = "original") -> dict[Path, Path]:
    """For items labelled (path, group, kind): each photo of a group that has an ``original`` -> that original."""
    items = list(items)
    originals = {i.group: i.path for i in items if i.kind == original_kind}
    return {i.path: originals[i.group] for i in items if i.group in originals}


# -- the camera-original set --------------------------------------------------------------------------


def _camera_exif(*, software: str | None = None, size: tuple[int, int] | None = None) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS 80D"
    exif[0x0132] = _CAPTURE
    if software:
        exif[0x0131] = software
    ifd = exif.get_ifd(0x8769)
    ifd[0x9003] = _CAPTURE
    if size is not None:  # PixelXDimension, PixelYDimension: what a camera records of the pixels it wrote
        ifd[0xA002], ifd[0xA003] = size
    return exif.tobytes()


def with_exif_segment(jpeg: bytes, exif: bytes) -> bytes:
    """The JPEG's bytes with an APP1 EXIF segment inserted after SOI: the pixels' coding is untouched."""
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + jpeg[2:]


@dataclass(frozen=True)
class Copy:
    path: Path
    kind: str


@dataclass(frozen=True)
class Group:
    original: Path
    copies: tuple[Copy, ...]


def build_groups(sources: Sequence[Path], out: Path, *, same_time: bool) -> list[Group]:
    """One group per source: its camera original and copies made from that file."""
    groups: list[Group] = []
    for k, src in enumerate(sources):
        folder = out / f"{k:02d}"
        folder.mkdir(parents=True)
        original = folder / "DSC_0001.jpg"
        exif = _camera_exif()
        original.write_bytes(with_exif_segment(src.read_bytes(), exif))
        with Image.open(original) as im:
            pixels = im.convert("RGB")
        w, h = pixels.size
        copies: list[Copy] = []

        def save(
            image: Image.Image, name: str, kind: str, folder: Path = folder, into: list[Copy] = copies, **kw: Any
        ) -> None:
            path = folder / name
            image.save(path, **kw)
            into.append(Copy(path, kind))

        small = pixels.resize((w // 2, h // 2), Image.Resampling.LANCZOS)
        bright = ImageEnhance.Brightness(pixels).enhance(1.2)
        crop = pixels.crop((w // 10, h // 10, w - w // 10, h - h // 10))
        save(pixels, "converted.png", "PNG conversion")
        save(pixels, "converted-exif.png", "PNG conversion, EXIF kept", exif=exif)
        save(small, "shared.jpg", "resized 50%", quality=85)
        save(small, "shared-exif.jpg", "resized 50%, EXIF kept", quality=85, exif=exif)
        save(pixels, "recompressed.jpg", "re-encoded q60", quality=60)
        save(pixels, "web.webp", "WebP", quality=80)
        save(bright, "edited.jpg", "brightened (larger file)", quality=97)
        save(bright, "edited-exif.jpg", "brightened, EXIF kept", quality=97, exif=exif)
        save(bright, "edited-ps.jpg", "brightened, saved by an editor", quality=97,
             exif=_camera_exif(software="Adobe Photoshop Lightroom Classic 12.0"))
        save(crop, "cropped-exif.jpg", "cropped 10%, EXIF kept", quality=92, exif=exif)
        base = 1_623_000_000.0
        os.utime(original, (base, base))
        for copy in copies:
            when = base if same_time else base + _DAY_S
            os.utime(copy.path, (when, when))
        groups.append(Group(original, tuple(copies)))
    return groups


# -- the camera-JPEG set: a camera's own coding, and copies at every file time ---------------------------

def _camera_tables() -> list[list[int]]:
    """Quantisation tables of a camera's "fine" JPEGs: as fine as libjpeg's quality 92, but the camera's own
    (not an Annex K scaling), as camera makers' tables are."""
    luma = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
            14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
            49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
    chroma = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
              47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32

    def fine(table: list[int]) -> list[int]:
        return [max(1, (v * 16 + 50) // 100 + (1 if k % 7 == 3 else 0)) for k, v in enumerate(table)]

    return [fine(luma), fine(chroma)]


#: (name, kind, how it was made); names sort before the original's and are shorter, so that no path
#: tie-break can find the original by luck.
_CAMERA_COPIES: tuple[tuple[str, str], ...] = (
    ("a.jpg", "re-saved q95, EXIF kept"),
    ("b.jpg", "re-saved q85, EXIF stripped"),
    ("c.jpg", "re-saved q70, EXIF kept"),
    ("d.jpg", "resized 50%, EXIF kept"),
    ("e.jpg", "resized 25%, EXIF stripped"),
    ("f.png", "PNG conversion, EXIF kept"),
    ("g.png", "PNG conversion, EXIF stripped"),
    ("h.tif", "TIFF conversion, EXIF kept"),
    ("i.tif", "TIFF conversion, EXIF stripped"),
    ("j.png", "resized 50% PNG, EXIF kept"),
    ("k.jpg", "EXIF stripped (same coded pixels)"),
    ("l.jpg", "brightened q97, EXIF kept"),
    ("m.jpg", "brightened q97, EXIF stripped"),
    ("n.jpg", "cropped 10%, EXIF kept"),
    ("o.jpg", "cropped 10%, EXIF stripped"),
    ("p.webp", "WebP, EXIF kept"),
)
#: File times of the copies against the original's: a day later, a month earlier (a restore or a sync that
#: reset the original's time), the same second.
CAMERA_TIMELINES: dict[str, float] = {"copies newer": _DAY_S, "copies older": -30 * _DAY_S, "same file time": 0.0}


def build_camera_groups(sources: Sequence[Path], out: Path, *, offset_s: float, side: int = 1600) -> list[Group]:
    """Per source: a camera JPEG (the camera's own tables, camera EXIF with its pixel size, a long camera file
    name) and :data:`_CAMERA_COPIES` made from that file, their file times ``offset_s`` from the original's."""
    groups: list[Group] = []
    tables = _camera_tables()
    for k, src in enumerate(sources):
        folder = out / f"{k:02d}"
        folder.mkdir(parents=True)
        with Image.open(src) as im:
            im.draft("RGB", (side, side))
            pixels = im.convert("RGB")
        pixels.thumbnail((side, side))
        w, h = pixels.size
        exif = _camera_exif(size=(w, h))
        original = folder / "IMG_20210605_103000.jpg"
        coded = io.BytesIO()
        pixels.save(coded, "JPEG", qtables=tables, subsampling="4:2:2")
        original.write_bytes(with_exif_segment(coded.getvalue(), exif))
        with Image.open(original) as im:
            decoded = im.convert("RGB")  # what every copy is made from: the camera file, decoded
        bright = ImageEnhance.Brightness(decoded).enhance(1.2)
        crop = decoded.crop((w // 10, h // 10, w - w // 10, h - h // 10))
        half = decoded.resize((w // 2, h // 2), Image.Resampling.LANCZOS)
        quarter = decoded.resize((w // 4, h // 4), Image.Resampling.LANCZOS)
        made: dict[str, tuple[Image.Image, dict[str, Any]]] = {
            "a.jpg": (decoded, {"quality": 95, "exif": exif}),
            "b.jpg": (decoded, {"quality": 85}),
            "c.jpg": (decoded, {"quality": 70, "exif": exif}),
            "d.jpg": (half, {"quality": 90, "exif": exif}),
            "e.jpg": (quarter, {"quality": 85}),
            "f.png": (decoded, {"exif": exif}),
            "g.png": (decoded, {}),
            "h.tif": (decoded, {"exif": exif}),
            "i.tif": (decoded, {}),
            "j.png": (half, {"exif": exif}),
            "l.jpg": (bright, {"quality": 97, "exif": exif}),
            "m.jpg": (bright, {"quality": 97}),
            "n.jpg": (crop, {"quality": 92, "exif": exif}),
            "o.jpg": (crop, {"quality": 92}),
            "p.webp": (decoded, {"quality": 90, "exif": exif}),
        }
        copies: list[Copy] = []
        for name, kind in _CAMERA_COPIES:
            path = folder / name
            if name == "k.jpg":
                path.write_bytes(coded.getvalue())  # the camera's coded pixels, its APP1 segment dropped
            else:
                image, options = made[name]
                image.save(path, **options)
            copies.append(Copy(path, kind))
        base = 1_623_000_000.0
        os.utime(original, (base, base))
        for copy in copies:
            os.utime(copy.path, (base + offset_s, base + offset_s))
        groups.append(Group(original, tuple(copies)))
    return groups


def legacy_keeps_first(a: Photo, b: Photo) -> bool:
    """The keeper rules before they looked for the original (the baseline): resolution, format rank (PNG over
    JPEG), larger file in the same format, EXIF date/GPS, sharper (by 15 %), older file, shorter path."""
    def pixels(p: Photo) -> int:
        return (p.info.width or 0) * (p.info.height or 0)

    def rank(p: Photo) -> int:
        return format_rank(p.info.format or format_of(p.path.name))

    def meta(p: Photo) -> int:
        return int(p.info.taken_from_exif) + int(p.info.has_gps)

    steps: list[tuple[float, float]] = [(pixels(a), pixels(b)), (rank(a), rank(b))]
    if rank(a) == rank(b):
        steps.append((a.size, b.size))
    steps.append((meta(a), meta(b)))
    for x, y in steps:
        if x != y:
            return x > y
    sa, sb = a.info.sharpness or 0.0, b.info.sharpness or 0.0
    if sa > sb * 1.15 and sa - sb > 1.0:
        return True
    if sb > sa * 1.15 and sb - sa > 1.0:
        return False
    if a.mtime_ns != b.mtime_ns:
        return a.mtime_ns < b.mtime_ns
    return len(str(a.path)) <= len(str(b.path))


def _catalogue(catalog: Catalog, root_id: int, paths: Iterable[Path]) -> dict[Path, Photo]:
    for path in paths:
        data = path.read_bytes()
        st = path.stat()
        decoded = decode_photo(data, name=path.name, min_side=224, mtime=st.st_mtime)
        mark = fingerprint(decoded.image)
        info = dataclasses.replace(decoded.info, phash=mark.phash, sharpness=mark.sharpness)
        catalog.upsert_photo(
            root_id=root_id, path=str(path), size=len(data), mtime_ns=st.st_mtime_ns,
            content_hash=content_hash(data), info=info,
        )
    return {p.path: p for p in catalog.iter_photos()}


def _timelines(sources: Sequence[Path], work: Path) -> Iterator[tuple[str, Path, list[Group]]]:
    for same_time in (False, True):
        timeline = "copied together (same file time)" if same_time else "copies made a day later"
        out = work / ("same" if same_time else "later")
        yield timeline, out, build_groups(sources, out, same_time=same_time)
    for name, offset in CAMERA_TIMELINES.items():
        out = work / ("camera-" + name.replace(" ", "-"))
        yield f"camera JPEGs, {name}", out, build_camera_groups(sources, out, offset_s=offset)


def run(sources: Sequence[Path], work: Path, emit: Callable[[str], None]) -> dict[str, float]:
    """Every timeline of both sets; returns the accuracies by name (for tests and the README).

    Pairs and groups whose original the files do not single out (:func:`unknown_original`) are counted
    apart, with the reason, and never in an accuracy.
    """
    figures: dict[str, float] = {}
    order = list(Settings().keeper_criteria)
    known_pairs: list[bool] = []
    known_groups = KeeperScore()
    for timeline, out, groups in _timelines(sources, work):
        catalog = Catalog.open(out / "catalog.sqlite3")
        try:
            root = catalog.add_root(out)
            files = [p for g in groups for p in (g.original, *(c.path for c in g.copies))]
            photos = _catalogue(catalog, root.id, files)
            emit(f"\n== {timeline}: {len(groups)} camera originals, {sum(len(g.copies) for g in groups)} copies ==")
            store = DedupStore(catalog)
            by_kind: dict[str, list[bool]] = {}
            legacy: dict[str, list[bool]] = {}
            wrong: dict[str, str] = {}
            unknown: dict[str, list[tuple[bool, str]]] = {}
            for g in groups:
                for c in g.copies:
                    pair = [photos[c.path], photos[g.original]]
                    context = keeper.Context(thumbs=store.thumbnails([p.id for p in pair]))
                    decision = keeper.choose(pair, [False, False], order, context)
                    ok = decision.keeper == 1
                    why = unknown_original(photos[g.original], photos[c.path])
                    if why is not None:
                        unknown.setdefault(c.kind, []).append((ok, why))
                        continue
                    by_kind.setdefault(c.kind, []).append(ok)
                    legacy.setdefault(c.kind, []).append(legacy_keeps_first(photos[g.original], photos[c.path]))
                    if not ok:
                        wrong.setdefault(c.kind, decision.reasons[1])
            emit(f"{'copy':<36} {'original kept':>13} {'previous rules':>15}  (pairs with a known original)")
            for kind, oks in by_kind.items():
                note = f"   kept the copy: {wrong[kind]}" if kind in wrong else ""
                old = legacy[kind]
                emit(f"{kind:<36} {sum(oks):>7}/{len(oks):<5} {sum(old):>9}/{len(old):<5}{note}")
            pairs = [ok for oks in by_kind.values() for ok in oks]
            old_pairs = [ok for oks in legacy.values() for ok in oks]
            known_pairs.extend(pairs)
            if pairs:
                figures[f"pairs, {timeline}"] = sum(pairs) / len(pairs)
                figures[f"previous rules, {timeline}"] = sum(old_pairs) / len(old_pairs)
                emit(f"{'all known pairs':<36} {sum(pairs) / len(pairs):>13.3f} "
                     f"{sum(old_pairs) / len(old_pairs):>15.3f}")
            for kind, results in unknown.items():
                emit(f"no known original: {kind}: {len(results)} pairs (nominal original kept in "
                     f"{sum(ok for ok, _ in results)}): {results[0][1]}")
            service = DedupService(catalog=catalog, settings=Settings(), trash=SystemTrash())
            clusters = service.find_clusters(tier="same")
            original_of = {p: g.original for g in groups for p in (g.original, *(c.path for c in g.copies))}
            score = keeper_accuracy(clusters, original_of, photos)
            figures[f"groups, {timeline}"] = score.accuracy
            known_groups.groups += score.groups
            known_groups.correct += score.correct
            emit(score.line("end to end (clustered groups)"))
            for original, kept, reason in score.misses[:3]:
                emit(f"   {original.parent.name}: kept {kept.name} ({reason})")
        finally:
            catalog.close()
    figures["pairs, every known original"] = sum(known_pairs) / len(known_pairs) if known_pairs else 1.0
    figures["groups, every known original"] = known_groups.accuracy
    emit(
        f"\nkeeper accuracy on every pair with a known original: {figures['pairs, every known original']:.3f} "
        f"({sum(known_pairs)}/{len(known_pairs)}); on every clustered group with one: "
        f"{known_groups.accuracy:.3f} ({known_groups.correct}/{known_groups.groups})"
    )
    return figures


def register_bench(bench_subparsers: Any) -> None:
    ev = bench_subparsers.add_parser("keeper-eval", help="keeper accuracy on camera originals and their copies")
    ev.add_argument("--data", type=Path, default=SHARED_DATA, help="the shared data folder (default ../shared/data)")
    ev.add_argument("--bases", type=int, default=13, help="photos-large photos to use (default all)")
    ev.set_defaults(handler=cmd_bench_keeper_eval)


def cmd_bench_keeper_eval(args: argparse.Namespace, library_factory: Callable[[], Any]) -> int:
    sources = sorted((args.data / "photos-large").glob("*.jpg"))[: args.bases]
    if not sources:
        raise KnownError(f"No photos in {args.data / 'photos-large'}")
    with tempfile.TemporaryDirectory(prefix="photoembed-keeper-eval-") as tmp:
        run(sources, Path(tmp), print)
    return 0

