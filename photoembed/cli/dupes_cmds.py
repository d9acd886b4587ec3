"""``dupes``, ``undo``, ``protect`` and ``unprotect``: duplicates, their safe removal, and its undo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from photoembed.cli.output import emit_json, human_bytes
from photoembed.cli.progress import ProgressLine
from photoembed.core.writer_lock import WriterBusyError, WriterLock
from photoembed.dedup.records import TIER_TITLES, TIERS, Cluster, TrashPlan
from photoembed.imaging.fingerprint import FORMAT_VERSION

if TYPE_CHECKING:  # imported by the handlers: other commands need not load the dedup engine
    from photoembed.dedup.service import DedupService

LibraryFactory = Callable[[], Any]


def register(subparsers: Any, bench_subparsers: Any) -> None:
    dupes = subparsers.add_parser(
        "dupes",
        help="list duplicate photos (identical files, same photo in other files, similar shots)",
        description="Lists duplicate clusters with the photo to keep and why. Nothing is removed unless "
        "--trash-suggested --yes is given, and then only identical files and copies of one photo, to the OS "
        "trash (photoembed undo restores). Similar shots are different photos: review them one cluster at a "
        "time in the app.",
    )
    dupes.add_argument(
        "--tier",
        choices=TIERS,
        help="list only clusters of this tier (default: every tier; similar shots need CLIP vectors)",
    )
    dupes.add_argument("--threshold", type=float, help="CLIP similarity for similar shots (default from settings)")
    dupes.add_argument("--window", type=float, metavar="SECONDS", help="similar shots only within this time span")
    action = dupes.add_mutually_exclusive_group()
    action.add_argument(
        "--trash-suggested",
        action="store_true",
        help="show what would move to the trash: every photo not suggested to keep, in identical and "
        "same-photo clusters (a dry run; add --yes to move them)",
    )
    action.add_argument(
        "--not-duplicates", nargs="+", type=Path, metavar="PATH", help="remember that these photos are not duplicates"
    )
    dupes.add_argument("--yes", action="store_true", help="with --trash-suggested: do it (default: dry run)")
    dupes.set_defaults(handler=cmd_dupes)

    undo = subparsers.add_parser("undo", help="put back the files of the last removal from the trash")
    undo.add_argument("--batch", type=int, help="a removal batch id (default: the last one)")
    undo.set_defaults(handler=cmd_undo)

    protect = subparsers.add_parser("protect", help="never propose photos in FOLDER for removal")
    protect.add_argument("folder", type=Path, metavar="FOLDER")
    protect.set_defaults(handler=cmd_protect)
    unprotect = subparsers.add_parser("unprotect", help="undo `protect FOLDER`")
    unprotect.add_argument("folder", type=Path, metavar="FOLDER")
    unprotect.set_defaults(handler=cmd_unprotect)


def service_for(library: Any, *, with_indexer: bool = False) -> DedupService:
    from photoembed.dedup.service import DedupService
    from photoembed.dedup.trash import SystemTrash

    return DedupService(
        catalog=library.catalog,
        settings=library.settings,
        trash=SystemTrash(),
        indexer=library.indexer() if with_indexer else None,
    )


def cmd_dupes(args: argparse.Namespace, library_factory: LibraryFactory) -> int:
    library = library_factory()
    service = service_for(library)
    if args.not_duplicates:
        pairs = service.mark_not_duplicates(args.not_duplicates)
        if args.json:
            emit_json({"marked_pairs": pairs})
        else:
            print(f"Remembered: {len(args.not_duplicates)} photos are not duplicates of each other.")
        return 0
    update_fingerprints(library)
    clusters = service.find_clusters(tier=args.tier, threshold=args.threshold, time_window=args.window)
    if args.tier is not None:
        clusters = [c for c in clusters if c.tier == args.tier]  # one tier: no identical clusters under "same"
    if args.trash_suggested:
        return _trash(args, service, clusters)
    if args.json:
        emit_json({"clusters": [_cluster_json(c) for c in clusters]})
        return 0
    if not clusters:
        print("No duplicates found.")
        return 0
    for cluster in clusters:
        _print_cluster(cluster)
    plan, left = service.plan_bulk_trash(clusters)
    print(
        f"{len(clusters)} clusters; {plan.files} photos suggested for removal ({human_bytes(plan.bytes)}). "
        "Run `photoembed dupes --trash-suggested` to see what would move to the trash."
    )
    if left:
        print(_left_note(left))
    return 0


def update_fingerprints(library: Any) -> int:
    """Before listing: fingerprint again the photos an older version fingerprinted, saying so (on stderr).

    Only with the library's writer lock free; when another photoembed writes the library (an index, the
    watcher, the app), it is the one that updates them: say how many are still old, since copies among them
    can be missed until then. Returns how many photos are left with an old fingerprint.
    """
    stale = library.catalog.stale_fingerprint_count(FORMAT_VERSION)
    if not stale:
        return 0
    writer = WriterLock(library.paths.data, command="photoembed dupes (updating fingerprints)")
    try:
        writer.acquire()
    except WriterBusyError as exc:
        who = exc.holder.describe() if exc.holder is not None else "another photoembed"
        sys.stderr.write(
            f"photoembed: {stale} photos still have fingerprints made by an older version; {who} is writing "
            "this library and updates them. Until it is done, copies among those photos may be missed.\n"
        )
        return stale
    try:
        sys.stderr.write(f"Updating the fingerprints of {stale} photos (made by an older version of photoembed)…\n")
        progress = ProgressLine()
        indexer = library.indexer()
        try:
            for step in indexer.refresh_fingerprints():
                if step.phase == "index":
                    progress.update(done=step.done, total=step.total, rate=step.rate, eta_s=step.eta_s)
        finally:
            progress.close()
        left = int(library.catalog.stale_fingerprint_count(FORMAT_VERSION))
    finally:
        writer.release()
    if left:
        sys.stderr.write(
            f"photoembed: {left} photos keep an old fingerprint (their files changed or cannot be read): "
            "run `photoembed index`.\n"
        )
    return left


def _trash(args: argparse.Namespace, service: DedupService, clusters: list[Cluster]) -> int:
    """A dry run wherever it runs (no question asked): only ``--yes`` moves files."""
    plan, left = service.plan_bulk_trash(clusters)
    if not args.yes or not plan.files:
        if args.json:
            emit_json(_plan_json(plan, batch=None, left=left))
        elif not plan.files:
            print("Nothing to move to the trash.")
            if left:
                print(_left_note(left))
        else:
            _print_plan(plan, clusters, left)
        return 0
    batch = service.execute(plan)
    report = service.batch_report(batch)  # groups that changed since listing are skipped, with the reason
    moved = [e for e in report if e.state == "trashed"]
    skipped = [e for e in report if e.state != "trashed"]
    if args.json:
        emit_json(
            {
                **_plan_json(plan, batch=batch, left=left),
                "files": [str(e.path) for e in moved],
                "count": len(moved),
                "bytes": sum(e.size for e in moved),
                "skipped": [{"path": str(e.path), "reason": e.outcome} for e in skipped],
            }
        )
    else:
        for entry in skipped:
            print(f"Not moved: {entry.path}: {entry.outcome}")
        size = human_bytes(sum(e.size for e in moved))
        print(f"Moved {len(moved)} files ({size}) to the trash. `photoembed undo` puts them back.")
    return 0


def cmd_undo(args: argparse.Namespace, library_factory: LibraryFactory) -> int:
    service = service_for(library_factory(), with_indexer=True)
    restored = service.undo(args.batch)
    if args.json:
        emit_json({"restored": [str(p) for p in restored]})
    else:
        for path in restored:
            print(f"Restored {path}")
    return 0


def cmd_protect(args: argparse.Namespace, library_factory: LibraryFactory) -> int:
    service = service_for(library_factory())
    service.protect(args.folder)
    if not args.json:
        print(f"Photos under {args.folder.expanduser().resolve()} will never be proposed for removal.")
    else:
        emit_json({"protected": [str(p) for p in service.protected_folders()]})
    return 0


def cmd_unprotect(args: argparse.Namespace, library_factory: LibraryFactory) -> int:
    service = service_for(library_factory())
    service.unprotect(args.folder)
    if args.json:
        emit_json({"protected": [str(p) for p in service.protected_folders()]})
    else:
        print(f"{args.folder.expanduser().resolve()} is no longer protected.")
    return 0


def _cluster_json(cluster: Cluster) -> dict[str, Any]:
    return {
        "tier": cluster.tier,
        "photos": [
            {
                "path": str(p.path),
                "keep": p.keep,
                "reason": p.reason,
                "score": p.score,
                "match": p.match,
                "label": p.label,
                "size": p.size,
                "protected": p.protected,
            }
            for p in cluster.photos
        ],
    }


def _plan_json(plan: TrashPlan, *, batch: int | None, left: list[Cluster]) -> dict[str, Any]:
    return {
        "dry_run": batch is None,
        "batch": batch,
        "files": [str(i.path) for i in plan.items],
        "count": plan.files,
        "bytes": plan.bytes,
        "left_for_review": len(left),
    }


def _print_cluster(cluster: Cluster) -> None:
    """The keeper, then each removal with what it is and, once, why it goes. Full paths: folders show."""
    frees = human_bytes(sum(p.size for p in cluster.removable))
    print(f"{TIER_TITLES[cluster.tier]} ({len(cluster.photos)} photos, frees {frees}):")
    for p in cluster.photos:
        if p.keep:
            note = " (protected folder)" if p.protected else ""
            print(f"  keep    {p.path}{note}")
        else:
            print(f"  remove  {p.path}" + (f"  [{p.label}]" if p.label else ""))
            print(f"          {p.reason}")
    print()


def _print_plan(plan: TrashPlan, clusters: list[Cluster], left: list[Cluster]) -> None:
    reasons = {p.path: p.reason for c in clusters for p in c.photos}
    print("Dry run: nothing was moved. Would move to the trash:")
    for item in plan.items:
        print(f"  {item.path} ({human_bytes(item.size)}): {reasons.get(item.path, '')}")
    print(f"{plan.files} files, {human_bytes(plan.bytes)}. Add --yes to move them to the trash.")
    if left:
        print(_left_note(left))


def _left_note(left: list[Cluster]) -> str:
    n = len(left)
    return (
        f"{n} cluster{'s' if n != 1 else ''} of similar shots (different photos) {'are' if n != 1 else 'is'} never "
        "moved in bulk: review them one at a time in the app (photoembed-gui)."
    )
