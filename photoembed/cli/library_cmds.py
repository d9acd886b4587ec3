"""``add``, ``remove``, ``index`` and ``status``: the library's folders and keeping it up to date."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from photoembed.cli.output import emit_json, fail, human_bytes
from photoembed.cli.progress import ProgressLine
from photoembed.core.offline import OfflineRegistry
from photoembed.core.writer_lock import WriterLock
from photoembed.errors import Cancelled


def register(subparsers: Any, bench_subparsers: Any) -> None:
    add = subparsers.add_parser("add", help="add photo folders to the library")
    add.add_argument("folders", nargs="+", type=Path, metavar="FOLDER")
    add.set_defaults(handler=cmd_add)

    remove = subparsers.add_parser("remove", help="forget a folder's photos (files are never touched)")
    remove.add_argument("folder", type=Path, metavar="FOLDER")
    remove.set_defaults(handler=cmd_remove)

    index = subparsers.add_parser(
        "index", help="bring the index up to date with every folder (Ctrl-C stops; the next run resumes)"
    )
    index.add_argument("--batch-size", type=int, default=16, help="photos per model batch (default 16)")
    index.add_argument(
        "--wait", action="store_true", help="when another index or watch is writing the library, wait for it"
    )
    index.set_defaults(handler=cmd_index)

    status = subparsers.add_parser("status", help="folders, photo counts, failures, model and index")
    status.set_defaults(handler=cmd_status)


LibraryFactory = Callable[[], Any]


def cmd_add(args: argparse.Namespace, library_factory: LibraryFactory) -> int:
    library = library_factory()
    added = []
    for folder in args.folders:
        path = folder.expanduser()
        if not path.is_dir():
            return fail(f"{folder} is not a folder")
        added.append(str(library.catalog.add_root(path).path))
    if args.json:
        emit_json({"added": added})
    else:
        for path in added:
            print(f"Added {path}")
        print("Run `photoembed index` to index the photos.")
    return 0


def cmd_remove(args: argparse.Namespace, library_factory: LibraryFactory) -> int:
    library = library_factory()
    forgotten = library.catalog.remove_root(args.folder.expanduser())
    if args.json:
        emit_json({"removed": str(args.folder.expanduser().resolve()), "photos_forgotten": forgotten})
    else:
        print(f"Removed {args.folder} from the library ({forgotten} photos forgotten; no file was touched).")
    return 0


def cmd_index(args: argparse.Namespace, library_factory: LibraryFactory) -> int:
    library = library_factory()
    if not library.catalog.roots():
        return fail("the library has no folders yet; add one with `photoembed add FOLDER`")
    if not library.model_available():
        sys.stderr.write(
            f"photoembed: no weights for model {library.settings.model}; photos are catalogued for duplicate "
            "finding but not embedded for search. Get them with `photoembed model download` or "
            "`photoembed model install FILE`.\n"
        )
    writer = WriterLock(library.paths.data, command="photoembed index")
    writer.acquire(wait_s=float("inf") if args.wait else 0.0)  # one writer per library
    try:
        return _index_locked(args, library)
    finally:
        writer.release()


def _index_locked(args: argparse.Namespace, library: Any) -> int:
    indexer = library.indexer(batch_size=args.batch_size)
    progress = ProgressLine()
    cancel = threading.Event()
    try:
        for step in indexer.sync(cancel=cancel):
            if step.phase == "index":
                progress.update(done=step.done, total=step.total, rate=step.rate, eta_s=step.eta_s,
                                note=f"{step.failed} failed" if step.failed else "")
            else:
                progress.message(step.message)
    except (KeyboardInterrupt, Cancelled):
        progress.close()
        sys.stderr.write("Stopped. Photos indexed so far are saved; run `photoembed index` to resume.\n")
        return 130
    progress.close()
    report = indexer.report
    if args.json:
        emit_json(
            {
                "added": report.added,
                "updated": report.updated,
                "moved": report.moved,
                "removed": report.removed,
                "embedded": report.embedded,
                "fingerprints_updated": report.fingerprinted,
                "failed": report.failed,
                "offline_roots": [str(p) for p in report.offline_roots],
                "offline_folders": [
                    {"path": str(p), "reason": reason, "photos": kept} for p, reason, kept in report.offline_folders
                ],
                "model": indexer.model,
            }
        )
    else:
        print(
            f"Done: {report.added} added, {report.updated} updated, {report.moved} moved or renamed, "
            f"{report.removed} removed, {report.embedded} embedded."
        )
        if report.fingerprinted:
            print(f"{report.fingerprinted} fingerprints made by an older version updated (no photo re-embedded).")
        if report.failed:
            print(f"{report.failed} photos could not be read; `photoembed status` lists them with the reason.")
        for root in report.offline_roots:
            print(f"Folder not reachable, kept as it was: {root}")
        for folder, reason, kept in report.offline_folders:
            print(f"Folder offline ({reason}), its {kept} photos kept as they were: {folder}")
    return 0


def cmd_status(args: argparse.Namespace, library_factory: LibraryFactory) -> int:
    # Imported here, not at the top: `index`, `add` and `remove` need neither.
    from photoembed.dedup.store import DedupStore
    from photoembed.watch.state import read_watch_state

    library = library_factory()
    model_installed = library.model_available()
    plan = library.runtime_plan() if model_installed else None
    # Vectors are stored under the model's name (plus @ort-int8 for the opt-in int8 runtime).
    model = plan.key if plan is not None else None
    counts = library.catalog.counts(model)
    index_info: dict[str, Any] = library.vector_index.info(model) if model else {}
    per_root = library.catalog.root_counts()
    offline = OfflineRegistry(library.catalog)
    roots = []
    for root in library.catalog.roots():
        readable, failed = per_root.get(root.id, (0, 0))
        roots.append(
            {
                "path": str(root.path),
                "protected": root.protected,
                "online": root.path.is_dir(),
                "photos": readable,
                "failed": failed,
                "offline_folders": [
                    {"path": f.path, "reason": f.reason,
                     "photos": len(library.catalog.file_states(root.id, under=Path(f.path)))}
                    for f in offline.offline(root.id)
                ],
            }
        )
    protected = sorted(
        {str(p) for p in DedupStore(library.catalog).protected_folders()}
        | {r["path"] for r in roots if r["protected"]}
    )
    failures = [{"path": str(f.path), "reason": f.reason} for f in library.catalog.failures()]
    watcher = read_watch_state(library.paths)
    watch_modes = {r["path"]: r for r in (watcher or {}).get("roots", [])}
    for root in roots:
        state = watch_modes.get(root["path"])
        root["watch"] = None if state is None else {"mode": state["mode"], "reason": state.get("reason")}
    status = {
        "roots": roots,
        "protected": protected,
        "photos": counts["photos"],
        "indexed": counts["embedded"] if model else counts["ok"],
        "embedded": counts["embedded"],
        "pending": counts["pending"] if model else counts["ok"],
        "failed": failures,
        "model": model,
        "model_configured": library.settings.model,
        "model_installed": model_installed,
        "runtime": plan.to_json() if plan is not None else None,
        "index": index_info,
        "watcher": watcher,
        "writer": _writer(library),
        "home": str(library.paths.data.parent),
    }
    if args.json:
        emit_json(status)
        return 0
    print(f"Library folders ({len(roots)}):")
    for root in roots:
        flags = [] if root["online"] else ["offline"]
        if root["watch"] is not None:
            why = root["watch"].get("reason")
            flags.append(f"watched: {root['watch']['mode']}" + (f" ({why})" if why else ""))
        if root["protected"]:
            flags.append("protected")
        suffix = f"  [{', '.join(flags)}]" if flags else ""
        print(f"  {root['path']}  {root['photos']} photos{suffix}")
        for folder in root["offline_folders"]:
            print(f"    offline: {folder['path']} ({folder['reason']}); its {folder['photos']} photos are kept")
    if status["writer"] is not None:
        print(f"Being written by {status['writer']['description']}")
    if protected:
        print(f"Protected (never proposed for removal): {', '.join(protected)}")
    print(f"Photos: {counts['photos']} known, {counts['ok']} readable, {len(failures)} failed")
    if model:
        print(f"Model: {model} — {counts['embedded']} embedded, {counts['pending']} pending")
        if plan is not None:
            towers = ", ".join(f"{tower} on {label}" for tower, label in sorted(plan.towers.items()))
            print(f"Runtime: {towers} ({plan.choice.reason}; ONNX export {plan.export})")
            for note in plan.notes:
                print(f"  {note}")
        if index_info:
            print(f"Search index: {index_info.get('kind', '?')}, {index_info.get('count', 0)} vectors, "
                  f"{human_bytes(float(index_info.get('bytes', 0)))}")
    else:
        print(f"Model: {library.settings.model} is not installed — search is unavailable; "
              "get it with `photoembed model download` or `photoembed model install FILE`.")
    if failures:
        print("Could not read:")
        for failure in failures[:50]:
            print(f"  {failure['path']}: {failure['reason']}")
        if len(failures) > 50:
            print(f"  … and {len(failures) - 50} more (use --json for all)")
    return 0



def _writer(library: Any) -> dict[str, Any] | None:
    """Who holds the library's writer lock now (status only looks: it never waits for it)."""
    holder = WriterLock(library.paths.data, command="").holder()
    if holder is None:
        return None
    return {"pid": holder.pid, "command": holder.command, "since": holder.since, "description": holder.describe()}
