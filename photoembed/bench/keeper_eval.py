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
import os
import struct
import tempfile
from collections.abc import Callable, Iterable, Sequence
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
from photoembed.storage.catalog import Catalog
from photoembed.storage.records import Photo

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
_CAPTURE = "2021:06:05 10:30:00"
_DAY_S = 86_400


@dataclass
class KeeperScore:
    """Keeper accuracy over groups with a known original.

    Attributes:
        groups: groups with a known original that were clustered with at least one of their copies.
        correct: of those, how many have the original as their (first) kept photo.
        not_clustered: groups with a known original that no cluster joined to a copy (no keeper was chosen).
        misses: (original, kept instead, the kept photo's reason) for each wrong keeper.
    """

    groups: int = 0
    correct: int = 0
    not_clustered: int = 0
    misses: list[tuple[Path, Path, str]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.groups if self.groups else 1.0

    def line(self, name: str = "keeper accuracy") -> str:
        return (
            f"{name}: {self.accuracy:.3f} ({self.correct}/{self.groups} groups with a known original keep it"
            + (f"; {self.not_clustered} not clustered" if self.not_clustered else "")
            + ")"
            + (f"; e.g. {self.misses[0][1].name} kept over {self.misses[0][0].name}: {self.misses[0][2]}"
               if self.misses else "")
        )


def keeper_accuracy(clusters: Iterable[Cluster], original_of: dict[Path, Path]) -> KeeperScore:
    """Score the clusters' keepers against known originals.

    Args:
        clusters: the clusters found (keeper first, as the service lists them).
        original_of: for each photo of a group with a known original, that original's path (the original
            maps to itself). Photos outside such groups are left out.
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
            score.groups += 1
            kept = next((p for p in cluster.photos if p.keep), cluster.photos[0])
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


def _camera_exif(*, software: str | None = None) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS 80D"
    exif[0x0132] = _CAPTURE
    if software:
        exif[0x0131] = software
    exif.get_ifd(0x8769)[0x9003] = _CAPTURE
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


def run(sources: Sequence[Path], work: Path, emit: Callable[[str], None]) -> dict[str, float]:
    """Both timelines; returns the accuracies by name (for tests and the README)."""
    figures: dict[str, float] = {}
    order = list(Settings().keeper_criteria)
    for same_time in (False, True):
        timeline = "copied together (same file time)" if same_time else "copies made a day later"
        out = work / ("same" if same_time else "later")
        groups = build_groups(sources, out, same_time=same_time)
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
            for g in groups:
                for c in g.copies:
                    pair = [photos[c.path], photos[g.original]]
                    context = keeper.Context(thumbs=store.thumbnails([p.id for p in pair]))
                    decision = keeper.choose(pair, [False, False], order, context)
                    ok = decision.keeper == 1
                    by_kind.setdefault(c.kind, []).append(ok)
                    legacy.setdefault(c.kind, []).append(legacy_keeps_first(photos[g.original], photos[c.path]))
                    if not ok:
                        wrong.setdefault(c.kind, decision.reasons[1])
            emit(f"{'copy':<34} {'original kept':>13} {'previous rules':>15}  (each original/copy pair)")
            for kind, oks in by_kind.items():
                note = f"   kept the copy: {wrong[kind]}" if kind in wrong else ""
                old = legacy[kind]
                emit(f"{kind:<34} {sum(oks):>7}/{len(oks):<5} {sum(old):>9}/{len(old):<5}{note}")
            pairs = [ok for oks in by_kind.values() for ok in oks]
            old_pairs = [ok for oks in legacy.values() for ok in oks]
            figures[f"pairs, {timeline}"] = sum(pairs) / len(pairs)
            figures[f"previous rules, {timeline}"] = sum(old_pairs) / len(old_pairs)
            emit(f"{'all pairs':<34} {sum(pairs) / len(pairs):>13.3f} {sum(old_pairs) / len(old_pairs):>15.3f}")
            service = DedupService(catalog=catalog, settings=Settings(), trash=SystemTrash())
            clusters = service.find_clusters(tier="same")
            original_of = {p: g.original for g in groups for p in (g.original, *(c.path for c in g.copies))}
            score = keeper_accuracy(clusters, original_of)
            figures[f"groups, {timeline}"] = score.accuracy
            emit(score.line("end to end (clustered groups)"))
            for original, kept, reason in score.misses[:3]:
                emit(f"   {original.parent.name}: kept {kept.name} ({reason})")
        finally:
            catalog.close()
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

