"""photoembed against rclip, a peer that runs open_clip's ViT-B-32-256 through ONNX Runtime, on the same photos.

rclip is not a dependency of photoembed: install it in a virtual environment of its own (its wheel pulls in
onnxruntime, not torch), for example::

    python -m venv /tmp/rclip-venv && /tmp/rclip-venv/bin/pip install rclip==3.3.0

then, from the repository root, with photoembed's environment (torch and open_clip build the model)::

    .venv/bin/python packaging/rclip_side_by_side.py --rclip /tmp/rclip-venv/bin/rclip [--photos 60] [--rounds 2]

There is no hub here, so both tools get the *same* random weights of the real architecture (speed does not
depend on the weights): the weights ``photoembed bench ingest --model-arch ViT-B-32-256`` generates, exported
for rclip as rclip's own ``scripts/convert_model.py`` does (TorchScript exporter, opset 18, inputs and outputs
named ``input``/``output``, dynamic batch) into the layout rclip loads from ``$RCLIP_DATADIR``::

    ViT-B-32-256-datacomp_s34b_b86k/visual.onnx, .../textual.onnx, tokenizer/bpe_simple_vocab_16e6.txt.gz

and installed into photoembed with ``ModelStore.install`` (its ONNX export made once, before any timing).

Each round indexes the same generated 8-16 MP JPEGs from scratch with each tool, alternating which goes
first: ``photoembed index`` in a fresh library (then, separately, ``photoembed search`` for one query), and
``rclip QUERY`` in the photo folder with a fresh database (rclip always indexes, then answers the query; it
has no index-only command). Each tool runs with its own defaults (photoembed batch 16, rclip batch 8). CPU
seconds and peak RSS come from ``wait4`` on each process; the shared cores make CPU seconds the stable
figure. Nothing here is used by photoembed at run time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ARCH = "ViT-B-32-256"
RCLIP_SUBDIR = "ViT-B-32-256-datacomp_s34b_b86k"  # rclip.model_download.MODEL_SUBDIR
QUERY = "a photo of a dog on the beach"


@dataclasses.dataclass
class Run:
    tool: str
    wall_s: float
    cpu_s: float
    peak_rss: int  # bytes
    photos: int


def _say(*text: object, flush: bool = True) -> None:
    print(*text, flush=flush)  # noqa: T201 - this script's report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rclip", required=True, type=Path, help="the rclip executable (in its own venv)")
    parser.add_argument("--photos", type=int, default=60, help="generated photos (default 60)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    parser.add_argument("--workdir", type=Path, help="cache for photos, weights and exports (default: a temp folder)")
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data" / "photos-large")
    parser.add_argument("--setup-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="rclip-side-by-side-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.setup_only:
        photos_dir, weights = _photos_and_weights(workdir, args.source, args.photos)
        rclip_data = _rclip_layout(workdir / "rclip-data", weights)
        template = _photoembed_template(workdir / "photoembed-template", weights)
        _say(json.dumps({"photos": str(photos_dir), "rclip": str(rclip_data), "template": str(template)}))
        return 0
    # The setup (torch, the model) runs in a child: Linux keeps a parent's peak RSS in the figure wait4 reports
    # for the children it starts, so this process stays small.
    setup = subprocess.run(
        [sys.executable, __file__, "--setup-only", "--rclip", str(args.rclip), "--photos", str(args.photos),
         "--workdir", str(workdir), "--source", str(args.source)],
        check=True, capture_output=True, text=True,
    )
    made = json.loads(setup.stdout.strip().splitlines()[-1])
    photos_dir, rclip_data, template = Path(made["photos"]), Path(made["rclip"]), Path(made["template"])
    photo_count = sum(1 for p in photos_dir.rglob("*.jpg"))
    _say(f"{photo_count} photos in {photos_dir}; {args.rounds} rounds; load {os.getloadavg()[0]:.2f}", flush=True)

    runs: list[Run] = []
    for round_number in range(args.rounds):
        order = ["photoembed", "rclip"] if round_number % 2 == 0 else ["rclip", "photoembed"]
        for tool in order:
            scratch = Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=workdir))
            try:
                if tool == "rclip":
                    runs.append(_run_rclip(args.rclip, rclip_data, photos_dir, scratch, photo_count))
                else:
                    runs.extend(_run_photoembed(template, photos_dir, scratch, photo_count))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            for run in runs[-2 if tool == "photoembed" else -1 :]:
                _say(
                    f"  round {round_number + 1} {run.tool:<18} wall {run.wall_s:6.1f} s  CPU {run.cpu_s:6.1f} s "
                    f"({run.cpu_s / run.photos * 1000:5.0f} ms/photo)  {run.photos / run.wall_s:5.2f} photos/s  "
                    f"peak RSS {run.peak_rss / 2**20:5.0f} MiB  load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
    _report(runs, photo_count)
    return 0


def _photos_and_weights(workdir: Path, source: Path, count: int) -> tuple[Path, Path]:
    from photoembed.bench.common import generate_photos
    from photoembed.bench.ingest import _random_weights, _Settings

    photos_dir = workdir / "photos-8-16MP"
    generate_photos(source, photos_dir, count, megapixels=(8.0, 16.0), workers=os.cpu_count() or 1)
    settings = _Settings(
        photos=count, arch=ARCH, config=None, batch_sizes=[16], index_batch_size=16, threads=0, load_photos=0,
        naive_photos=0, megapixels=(8.0, 16.0), model_seconds=1.0, device="cpu", runtimes=["onnx"], out=sys.stdout,
    )
    weights, _ = _random_weights(settings, workdir / "models")
    return photos_dir, weights


def _build(weights: Path) -> Any:
    import torch
    from open_clip.model import CLIP

    from photoembed.ml.models import builtin_model_cfg

    cfg = builtin_model_cfg(ARCH)
    assert cfg is not None
    model = CLIP(**cfg).eval()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model


def _rclip_layout(folder: Path, weights: Path) -> Path:
    """rclip's files, exported from ``weights`` as rclip's scripts/convert_model.py does."""
    import warnings

    import open_clip
    import torch

    target = folder / RCLIP_SUBDIR
    if (target / "visual.onnx").is_file() and (target / "textual.onnx").is_file():
        return folder
    target.mkdir(parents=True, exist_ok=True)
    model = _build(weights)

    class Visual(torch.nn.Module):
        def __init__(self, visual: torch.nn.Module) -> None:
            super().__init__()
            self.visual = visual

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.visual(x)

    class Textual(torch.nn.Module):
        def __init__(self, clip: Any) -> None:
            super().__init__()
            self.clip = clip

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.clip.encode_text(x)

    axes = {"input": {0: "batch"}, "output": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Visual(model.visual).eval(), (torch.randn(1, 3, 256, 256),), str(target / "visual.onnx"),
                          input_names=["input"], output_names=["output"], dynamic_axes=axes, opset_version=18,
                          dynamo=False)
        torch.onnx.export(Textual(model).eval(), (torch.zeros(1, 77, dtype=torch.long),),
                          str(target / "textual.onnx"), input_names=["input"], output_names=["output"],
                          dynamic_axes=axes, opset_version=18, dynamo=False)
    (folder / "tokenizer").mkdir(exist_ok=True)
    shutil.copy2(Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz",
                 folder / "tokenizer" / "bpe_simple_vocab_16e6.txt.gz")
    return folder


def _photoembed_template(home: Path, weights: Path) -> Path:
    """A photoembed home with the weights installed, the model active and its ONNX export made."""
    from photoembed.config import Paths
    from photoembed.library import Library
    from photoembed.ml.encoder import prepare_runtime

    name = f"{ARCH}/bench-random"
    marker = home / "ready"
    if marker.is_file():
        return home
    shutil.rmtree(home, ignore_errors=True)
    library = Library(Paths.resolve(home))
    try:
        library.models.install(weights, name=name)
        library.settings = dataclasses.replace(library.settings, model=name)
        library.save_settings()
        prepare_runtime(library.models, name, runtime="auto", device="cpu")
    finally:
        library.close()
    for leftover in ("catalog.sqlite3", "catalog.sqlite3-wal", "catalog.sqlite3-shm"):
        (Paths.resolve(home).data / leftover).unlink(missing_ok=True)
    marker.write_text("ok\n", encoding="utf-8")
    return home


def _measure(tool: str, command: list[str], photos: int, **kwargs: object) -> Run:
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)  # type: ignore[call-overload]
    # wait4 gives this child's own CPU time and peak RSS (communicate() would reap it first).
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    _, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{tool} failed ({process.returncode}): {err.decode(errors='replace')[-3000:]}")
    return Run(tool, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, photos)


def _run_rclip(rclip: Path, data: Path, photos_dir: Path, scratch: Path, photos: int) -> Run:
    datadir = scratch / "rclip"
    shutil.copytree(data, datadir, copy_function=os.link)  # its models; the database starts empty
    env = {**os.environ, "RCLIP_DATADIR": str(datadir)}
    return _measure("rclip (index+query)", [str(rclip), "-f", "-t", "1", QUERY], photos, cwd=photos_dir, env=env)


def _run_photoembed(template: Path, photos_dir: Path, scratch: Path, photos: int) -> list[Run]:
    home = scratch / "home"
    shutil.copytree(template, home, copy_function=os.link)
    base = [sys.executable, "-m", "photoembed", "--home", str(home)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([*base, "add", str(photos_dir)], check=True, capture_output=True, env=env)
    index = _measure("photoembed index", [*base, "index"], photos, env=env)
    search = _measure("photoembed search", [*base, "search", QUERY, "-k", "1"], photos, env=env)
    both = Run("photoembed (both)", index.wall_s + search.wall_s, index.cpu_s + search.cpu_s,
               max(index.peak_rss, search.peak_rss), photos)
    return [index, both]


def _report(runs: list[Run], photos: int) -> None:
    by_tool: dict[str, list[Run]] = {}
    for run in runs:
        by_tool.setdefault(run.tool, []).append(run)
    _say(f"\n== photoembed vs rclip, {photos} photos, {ARCH} (same random weights), medians ==")
    for tool, rows in by_tool.items():
        wall = statistics.median(r.wall_s for r in rows)
        cpu = statistics.median(r.cpu_s for r in rows)
        rss = max(r.peak_rss for r in rows)
        _say(f"{tool:<20} {photos / wall:5.2f} photos/s (wall {wall:.1f} s), CPU {cpu:.1f} s "
              f"({cpu / photos * 1000:.0f} ms/photo), peak RSS {rss / 2**20:.0f} MiB")
    rclip = by_tool["rclip (index+query)"]
    for ours in ("photoembed index", "photoembed (both)"):
        rows = by_tool[ours]
        ratio_rate = statistics.median(r.wall_s for r in rclip) / statistics.median(r.wall_s for r in rows)
        ratio_cpu = statistics.median(r.cpu_s for r in rclip) / statistics.median(r.cpu_s for r in rows)
        _say(f"{ours} / rclip: {ratio_rate:.2f}x photos/s, {ratio_cpu:.2f}x less CPU (goal >= 1.2x photos/s)")
    _say(json.dumps([dataclasses.asdict(r) for r in runs]))


if __name__ == "__main__":
    sys.exit(main())
