"""``photoembed model list | install FILE | download [NAME]`` and ``photoembed bench model``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from photoembed.cli.output import emit_json, human_bytes
from photoembed.cli.progress import ProgressLine, bar

LibraryFactory = Callable[[], Any]


def register(subparsers: argparse._SubParsersAction, bench_subparsers: argparse._SubParsersAction) -> None:
    """Add the ``model`` command and the ``bench model`` benchmark."""
    model = subparsers.add_parser(
        "model",
        help="list, install or download the embedding model",
        description="Manage the CLIP model photoembed embeds photos and queries with.",
    )
    actions = model.add_subparsers(dest="model_action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="suggested and installed models")
    listing.set_defaults(handler=cmd_list)

    install = actions.add_parser(
        "install",
        help="install weights from a local file (offline machines)",
        description=(
            "Copy a weights file (.safetensors, or a torch state dict .pt/.bin) into photoembed's models "
            "folder after checking that it loads. The first model installed becomes the active one."
        ),
    )
    install.add_argument("file", type=Path, help="the weights file")
    install.add_argument(
        "--model",
        metavar="NAME",
        help="the model it holds, as ARCH/TAG (default: read from the file: a sidecar open_clip_config.json, "
        "safetensors metadata or its tensor shapes; asked only when several fit)",
    )
    install.add_argument(
        "--config",
        type=Path,
        metavar="JSON",
        help="open_clip model config, for an architecture open_clip does not ship",
    )
    install.set_defaults(handler=cmd_install)

    download = actions.add_parser(
        "download",
        help="download weights from the Hugging Face Hub (needs internet once)",
        description="Download an open_clip pretrained model into photoembed's cache; resumes if interrupted.",
    )
    download.add_argument("name", nargs="?", help="ARCH/TAG (default: the active model)")
    download.set_defaults(handler=cmd_download)

    bench = bench_subparsers.add_parser(
        "model",
        help="model-only throughput (prepared tensors straight into the image tower)",
    )
    bench.add_argument("--model", metavar="NAME", help="ARCH/TAG (default: the active model)")
    bench.add_argument(
        "--batch-sizes", default="1,8,16,32", metavar="LIST", help="comma-separated (default: 1,8,16,32)"
    )
    bench.add_argument("--seconds", type=float, default=5.0, help="time per batch size (default: 5)")
    bench.add_argument("--threads", type=int, default=0, help="torch threads (default: the setting)")
    bench.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    bench.set_defaults(handler=cmd_bench_model)


def cmd_list(args: argparse.Namespace, library_factory: LibraryFactory) -> int:
    library = library_factory()
    rows = library.models.list()
    current = library.settings.model
    if args.json:
        emit_json(
            {
                "current": current,
                "models": [{**row.to_json(), "current": row.name == current} for row in rows],
            }
        )
        return 0
    width = max(len(row.name) for row in rows)
    for row in rows:
        mark = "*" if row.name == current else " "
        state = row.source or "missing"
        size = human_bytes(row.size) if row.size is not None else ""
        print(f"{mark} {row.name:<{width}}  {state:<10}  {size:>8}  {row.note}".rstrip())
    if current not in {row.name for row in rows}:
        print(f"* {current} (active, no weights)")
    print("\n* = active model. Get weights with `photoembed model download [NAME]` (needs internet once) or")
    print("  `photoembed model install FILE --model NAME` (offline).")
    return 0


def _prepare_runtime(library: Any, name: str, *, quiet: bool) -> Any:
    """Export the model to ONNX now when the CPU runtime will use it (once; the first index then starts at once)."""
    from photoembed.ml.encoder import plan_runtime, prepare_runtime

    settings = library.settings
    device = "auto" if settings.use_gpu else "cpu"
    before = plan_runtime(library.models, name, runtime=settings.runtime, device=device)
    if not quiet and before.export == "on first use":
        print(f"Exporting {name} to ONNX Runtime (once; checked against torch)…", flush=True)
    plan = prepare_runtime(library.models, name, runtime=settings.runtime, device=device, threads=settings.threads)
    if not quiet:
        towers = ", ".join(f"{tower} on {label}" for tower, label in sorted(plan.towers.items()))
        print(f"Runtime: {towers}")
        for note in plan.notes:
            print(f"  {note}")
    return plan


def cmd_install(args: argparse.Namespace, library_factory: LibraryFactory) -> int:
    from photoembed.ml.models import AmbiguousModelError

    library = library_factory()
    had_weights = any(row.installed for row in library.models.list())
    try:
        name = library.models.install(args.file, name=args.model, config=args.config)
    except AmbiguousModelError as exc:
        chosen = _ask_model(str(exc), exc.candidates)
        if chosen is None:
            raise
        name = library.models.install(args.file, name=chosen, config=args.config)
    activated = _activate_if_first(library, name, had_weights=had_weights)
    weights = library.models.weights_for(name)
    plan = _prepare_runtime(library, name, quiet=args.json)
    if args.json:
        emit_json({"installed": name, "weights": weights, "active": library.settings.model == name,
                   "runtime": plan.to_json()})
        return 0
    print(f"Installed {name} ({human_bytes(weights.stat().st_size)}).")
    if activated:
        print(f"{name} is now the active model.")
    elif library.settings.model != name:
        print(f'The active model is still {library.settings.model}; set "model" in the settings to switch.')
    return 0


def cmd_download(args: argparse.Namespace, library_factory: LibraryFactory) -> int:
    library = library_factory()
    name = args.name or library.settings.model
    had_weights = any(row.installed for row in library.models.list())
    bar = _DownloadBar(name)
    try:
        path = library.models.download(name, progress=bar.update)
    finally:
        bar.close()
    activated = _activate_if_first(library, name, had_weights=had_weights)
    size = path.stat().st_size
    plan = _prepare_runtime(library, name, quiet=args.json)
    if args.json:
        emit_json({"downloaded": name, "weights": path, "size": size, "active": library.settings.model == name,
                   "runtime": plan.to_json()})
        return 0
    print(f"Downloaded {name} ({human_bytes(size)}) to {path}.")
    if activated:
        print(f"{name} is now the active model.")
    return 0


def cmd_bench_model(args: argparse.Namespace, library_factory: LibraryFactory) -> int:
    from photoembed.ml.encoder import ClipEncoder, benchmark_model

    library = library_factory()
    name = args.model or library.settings.model
    threads = args.threads or library.settings.threads
    batch_sizes = [int(part) for part in str(args.batch_sizes).split(",") if part.strip()]
    started = time.perf_counter()
    import open_clip  # noqa: F401 - timed apart from the model load
    import torch  # noqa: F401

    import_s = time.perf_counter() - started
    started = time.perf_counter()
    encoder = ClipEncoder.load(library.models, name, device=args.device, threads=threads, towers=("image",))
    load_s = time.perf_counter() - started
    results = {size: benchmark_model(encoder, batch_size=size, seconds=args.seconds) for size in batch_sizes}
    best = max(results, key=lambda size: results[size])
    if args.json:
        emit_json(
            {
                "model": name,
                "device": encoder.device,
                "import_s": import_s,
                "load_s": load_s,
                "images_per_s": {str(size): rate for size, rate in results.items()},
                "best_batch_size": best,
            }
        )
        return 0
    print(f"{name} on {encoder.device}: torch + open_clip imported in {import_s:.2f} s, model loaded in {load_s:.2f} s")
    for size, rate in results.items():
        print(f"  batch {size:>3}: {rate:7.2f} images/s{'  (best)' if size == best else ''}")
    return 0


def _ask_model(question: str, candidates: list[str]) -> str | None:
    """Let the user pick one of several architectures that fit a file; None off a terminal."""
    if not sys.stdin.isatty():
        return None
    print(question.split(";")[0] + ":", file=sys.stderr)
    for number, candidate in enumerate(candidates, 1):
        print(f"  {number}. {candidate}", file=sys.stderr)
    answer = input(f"Which one [1-{len(candidates)}]? ").strip()
    if answer.isdigit() and 1 <= int(answer) <= len(candidates):
        return candidates[int(answer) - 1]
    return None


def _activate_if_first(library: Any, name: str, *, had_weights: bool) -> bool:
    """Make ``name`` the active model when no model had weights before (the user's first model)."""
    if had_weights or library.settings.model == name:
        return False
    library.settings = dataclasses.replace(library.settings, model=name)
    library.save_settings()
    return True


class _DownloadBar:
    """Bytes, percentage and speed on one stderr line (the CLI's shared ProgressLine; silent off a TTY)."""

    def __init__(self, name: str) -> None:
        self._line = ProgressLine()
        self._name = name
        self._started = time.monotonic()
        self._last = 0.0

    def update(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last < 0.2 and done < total:
            return
        self._last = now
        rate = done / max(now - self._started, 1e-6)
        if total > 0:
            text = f"{self._name} {bar(done, total)} {human_bytes(done)}/{human_bytes(total)}  {human_bytes(rate)}/s"
        else:
            text = f"{self._name} {human_bytes(done)}  {human_bytes(rate)}/s"
        self._line.message(text)

    def close(self) -> None:
        self._line.close()
