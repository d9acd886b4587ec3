"""``photoembed watch``: keep the index true to the photo folders until Ctrl-C, printing each change batch.

``photoembed bench watch-stress`` lives in photoembed/bench/watch_stress.py (registered by cli/main.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from photoembed.cli.output import fail
from photoembed.cli.progress import ProgressLine
from photoembed.core.writer_lock import WriterLock


def register(subparsers: Any, bench_subparsers: Any) -> None:
    watch = subparsers.add_parser(
        "watch",
        help="watch the library's folders and index what changes, until Ctrl-C",
        description="Reconcile every folder, then index new, changed, moved and deleted photos as they "
        "happen, one line per change batch (--json: one JSON object per line). `photoembed status` shows "
        "how each folder is watched while this runs.",
    )
    watch.add_argument("--polling", action="store_true", help="poll every folder instead of OS change events")
    watch.add_argument(
        "--poll-interval", type=float, default=5.0, metavar="SECONDS",
        help="seconds between listings of polled folders (default 5)",
    )
    watch.add_argument(
        "--quiet-period", type=float, default=1.5, metavar="SECONDS",
        help="index a burst of changes once nothing changed for this long (default 1.5, at least 0.6: "
        "the two halves of a move can arrive half a second apart)",
    )
    watch.add_argument(
        "--wait", action="store_true", help="when another index or watch is writing the library, wait for it"
    )
    watch.set_defaults(handler=cmd_watch)


def cmd_watch(args: argparse.Namespace, library_factory: Callable[[], Any]) -> int:

    library = library_factory()
    roots = library.catalog.roots()
    if not roots:
        return fail("the library has no folders yet; add one with `photoembed add FOLDER`")
    if not library.model_available():
        sys.stderr.write(
            f"photoembed: no weights for model {library.settings.model}; new photos are catalogued for "
            "duplicate finding but not embedded for search. Get them with `photoembed model download`.\n"
        )
    writer = WriterLock(library.paths.data, command="photoembed watch")
    writer.acquire(wait_s=float("inf") if args.wait else 0.0)  # one writer per library
    try:
        return _watch_locked(args, library, roots)
    finally:
        writer.release()


def _watch_locked(args: argparse.Namespace, library: Any, roots: list[Any]) -> int:
    from photoembed.core.indexer import Progress
    from photoembed.watch.events import WatchEvent, WatchOptions
    from photoembed.watch.service import WatchService

    options = WatchOptions(
        poll_interval_s=max(0.5, args.poll_interval), quiet_s=max(0.6, args.quiet_period)
    )
    service = WatchService.for_library(library, options=options, force_polling=args.polling)
    cancel = threading.Event()
    progress = ProgressLine()
    if not args.json:
        sys.stderr.write(f"Watching {len(roots)} folder(s); Ctrl-C stops.\n")
    try:
        for item in service.run(cancel):
            if isinstance(item, Progress):
                if item.phase == "index":
                    progress.update(done=item.done, total=item.total, rate=item.rate, eta_s=item.eta_s)
                continue
            if isinstance(item, WatchEvent):
                progress.close()
                _print_event(item, as_json=args.json)
    except KeyboardInterrupt:
        cancel.set()
        progress.close()
        if not args.json:
            sys.stderr.write("\nStopped watching.\n")
    return 0


def _print_event(event: Any, *, as_json: bool) -> None:
    if as_json:
        record = {"time": time.time(), **event.to_json()}
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    if event.kind == "indexed" and not (event.changed or event.reconcile):
        return  # a temporary file came and went, a file was touched: nothing to tell
    stamp = time.strftime("%H:%M:%S")
    if event.kind == "indexed":
        where = _describe_paths(event.paths)
        print(f"{stamp}  {event.message}{where}  ({event.duration_s:.1f} s)"
              + (f", {event.held_back} still being written" if event.held_back else ""), flush=True)
    else:
        print(f"{stamp}  {event.message}", flush=True)


def _describe_paths(paths: tuple[Path, ...] | None) -> str:
    if not paths:
        return ""
    if len(paths) == 1:
        return f" in {paths[0]}"
    common = os.path.commonpath([str(p) for p in paths])
    return f" in {len(paths)} places under {common}"
