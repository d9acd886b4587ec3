"""GUI responsiveness benchmark: window shown time, GUI-thread stalls while indexing, grid scrolling.

Run: ``python -m photoembed.gui.bench [--photos 10000] [--results 100000] [--workdir DIR]`` (offscreen when
there is no display). It prints:

1. **window shown**: process start to the first window on screen, in a fresh process, and whether torch was
   imported by then (it must not be);
2. **GUI-thread stall while indexing**: the real app controller indexes N generated photos on its worker
   thread while a 5 ms ``QTimer`` on the GUI thread records how late each tick fires (event-loop latency);
   worst and 99th percentile;
3. **grid scrolling over 100k results**: a result grid of 100k photos scrolled from top to bottom in 200
   steps with real thumbnails decoding on the pool; paint time per step and the event-loop latency
   (``--only grid`` runs just this part);
4. **library view of N photos** (``--library``, default 100k; ``--only library`` runs just this part): a
   catalog of N photos over 30 years is listed by date with month buckets (the read the view runs on its
   pool); in a fresh process the library grid, its model and the date scrubber show it (first frame, first
   screen of thumbnails) and it is scrolled top to bottom (paint per step, wall clock and GUI-thread CPU,
   every other paint, event-loop stalls) with an empty thumbnail cache; then a second fresh process (a
   restart: nothing in memory, the disk cache warm) does the same: how many originals it decoded (0 means
   the restart showed every thumbnail from the disk cache). See :func:`library_run`;
5. **restart with nothing to do** (``--only restart``, on ``--home`` when given): the app started again on
   the indexed library: when it says "Up to date · watching for changes", and that torch, open_clip, ONNX
   Runtime and FAISS were not imported.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from photoembed.core.indexer import Progress

PROBE_INTERVAL_MS = 5


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def generate_photos(folder: Path, count: int) -> list[Path]:
    """Distinct small JPEGs (gradients and blocks), about 2 ms each to write."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob("*.jpg"))
    if len(existing) >= count:
        return existing[:count]
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:240, 0:320].astype(np.float32)
    paths = []
    for i in range(count):
        a, b, c = rng.uniform(-1, 1, size=3)
        base = (xx * a + yy * b) * 0.5 + 128 + c * 60
        image = np.stack([base, np.roll(base, i % 97, axis=1), base[::-1]], axis=-1)
        image[rng.integers(0, 200) : rng.integers(200, 240), rng.integers(0, 250) :] += rng.uniform(-60, 60)
        path = folder / f"bench{i:06d}.jpg"
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path, quality=80)
        paths.append(path)
    return paths


class LatencyProbe:
    """Records how late a fast repeating timer fires on the GUI thread (how long the event loop stalled)."""

    def __init__(self) -> None:
        from PySide6.QtCore import QElapsedTimer, QTimer

        self.samples: list[float] = []
        self._clock = QElapsedTimer()
        self._timer = QTimer()
        self._timer.setInterval(PROBE_INTERVAL_MS)
        self._timer.timeout.connect(self._tick)
        self._last = 0.0

    def start(self) -> None:
        self.samples.clear()
        self._clock.start()
        self._last = 0.0
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = self._clock.nsecsElapsed() / 1e6
        if self._last:
            self.samples.append(max(0.0, now - self._last - PROBE_INTERVAL_MS))
        self._last = now

    def summary(self, since: int = 0) -> str:
        """Stalls recorded from sample ``since`` on (default: all)."""
        ordered = sorted(self.samples[since:])
        if not ordered:
            return "no samples"
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return f"worst {ordered[-1]:.1f} ms, p99 {p99:.1f} ms, median {statistics.median(ordered):.2f} ms " \
               f"({len(ordered)} ticks)"


def bench_window_shown(home: Path) -> None:
    code = (
        "import time, sys; t0 = time.perf_counter()\n"
        "from PySide6.QtCore import QTimer\n"
        "from photoembed.config import Paths\n"
        "from photoembed.gui import app as gapp\n"
        "a = gapp.create_application([])\n"
        f"w = gapp.build_window(Paths.resolve({str(home)!r}), watch=False)\n"
        "w.show()\n"
        "def shown():\n"
        "    sys.stdout.write(f'{time.perf_counter() - t0:.3f} {\"torch\" in sys.modules}\\n'); sys.stdout.flush()\n"
        "    w.close(); a.quit()\n"
        "QTimer.singleShot(0, shown)\n"
        "a.exec()\n"
    )
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                            env={**os.environ})
    total = time.perf_counter() - start
    fields = result.stdout.split()
    if result.returncode != 0 or len(fields) < 2:
        _out(f"window shown: failed ({result.stderr.strip()[-300:]})")
        return
    _out(f"window shown: {float(fields[0]):.2f} s after the interpreter started its imports "
         f"({total:.2f} s including interpreter start-up); torch imported: {fields[1]}")


def bench_indexing_stall(home: Path, photos: Path) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    from photoembed.config import Paths
    from photoembed.gui.app import create_application
    from photoembed.gui.controller import LibraryController
    from photoembed.gui.main_window import MainWindow

    app = create_application([])
    controller = LibraryController(Paths.resolve(home), watch=False)
    window = MainWindow(controller)
    window.show()
    gc.freeze()  # as photoembed.gui.app.main does once the window is up
    probe = LatencyProbe()
    loop = QEventLoop()
    done: list[str] = []
    totals: list[int] = []

    def finished(summary: str) -> None:
        done.append(summary)
        loop.quit()

    first_batch: list[int] = []

    def progressed(progress: Progress) -> None:
        if progress.phase == "index":
            totals.append(progress.total)
            if not first_batch:
                first_batch.append(len(probe.samples))

    controller.index_done.connect(finished)
    controller.index_progress.connect(progressed)
    controller.open_failed.connect(finished)
    start = time.perf_counter()
    probe.start()
    controller.open(then_add=[photos])
    QTimer.singleShot(30 * 60 * 1000, loop.quit)
    loop.exec()
    probe.stop()
    elapsed = time.perf_counter() - start
    count = totals[-1] if totals else 0
    model = controller.last_snapshot.model if controller.last_snapshot else None
    what = f"with model {model.name}" if model and model.available else "catalogue only (no model weights)"
    _out(f"indexing {count:,} photos {what}: {elapsed:.1f} s; {done[0] if done else 'did not finish'}")
    _out(f"GUI-thread stall while indexing: {probe.summary()}")
    if first_batch and model and model.available:
        # Importing torch and open_clip on the worker holds the GIL in long C calls (extension start-up), a
        # one-off per session that no threading can hide; from the first batch on, the model is loaded.
        _out(f"  from the first batch on (model loaded): {probe.summary(first_batch[0])}")
    window.close()
    app.processEvents()


def bench_grid_scroll(photos: Sequence[Path], results: int) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    from photoembed.gui.app import create_application
    from photoembed.gui.grid import PhotoGrid
    from photoembed.gui.models import PhotoGridModel
    from photoembed.gui.thumbnails import ThumbnailProvider
    from photoembed.gui.workers import BackgroundPool

    app = create_application([])
    pool = BackgroundPool(threads=max(1, min(3, (os.cpu_count() or 2) - 1)), name="thumbnails")
    thumbs = ThumbnailProvider(pool)
    model = PhotoGridModel(thumbs, thumb_size=176)
    ids = list(range(results))
    paths = [str(photos[i % len(photos)]) for i in ids]
    t0 = time.perf_counter()
    model.set_results(ids, paths, [1.0 - i / results for i in ids])
    set_ms = (time.perf_counter() - t0) * 1000
    grid = PhotoGrid(176)
    grid.setModel(model)
    grid.resize(1200, 800)
    grid.show()
    app.processEvents()
    bar = grid.verticalScrollBar()
    probe = LatencyProbe()
    paint_ms: list[float] = []
    cpu_ms: list[float] = []
    steps = 200
    loop = QEventLoop()
    state = {"step": 0}

    def step() -> None:
        k = state["step"]
        if k > steps:
            loop.quit()
            return
        bar.setValue(bar.maximum() * k // steps)
        t, c = time.perf_counter(), time.thread_time()
        grid.viewport().repaint()
        paint_ms.append((time.perf_counter() - t) * 1000)
        cpu_ms.append((time.thread_time() - c) * 1000)
        state["step"] = k + 1
        QTimer.singleShot(16, step)  # about 60 steps a second, like a fast scroll-bar drag

    probe.start()
    QTimer.singleShot(0, step)
    loop.exec()
    probe.stop()
    ordered = sorted(paint_ms)
    _out(f"grid of {results:,} results: model filled in {set_ms:.0f} ms; scrolled top to bottom in {steps} steps "
         f"without waiting for thumbnails (load average {_load()})")
    _out(f"  paint per step: median {statistics.median(ordered):.1f} ms, worst {ordered[-1]:.1f} ms "
         f"(GUI-thread CPU median {statistics.median(cpu_ms):.1f} ms); thumbnails decoded meanwhile: {len(thumbs)}")
    _out(f"  GUI-thread stall while scrolling: {probe.summary()}")
    grid.close()
    pool.shutdown()


def _fill_catalog(home: Path, photos: Sequence[Path], count: int) -> None:
    """A library of ``count`` photos (paths cycling over ``photos``' folder, 30 years of dates)."""
    import random

    from photoembed.config import Paths
    from photoembed.storage.catalog import Catalog
    from photoembed.storage.records import PhotoInfo

    paths = Paths.resolve(home)
    paths.ensure()
    catalog = Catalog.open(paths.catalog)
    root = catalog.add_root(photos[0].parent)
    rng = random.Random(0)
    end = time.time()
    with catalog.transaction():
        for i in range(count):
            taken = end - rng.uniform(0, 30 * 365 * 86400)
            source = photos[i % len(photos)]
            # Each row is its own "photo" (own path and hash); the file behind it is one of the generated few.
            catalog.upsert_photo(
                root_id=root.id, path=f"{source}#{i}", size=100_000 + i, mtime_ns=int(taken * 1e9),
                content_hash=f"bench{i:08d}", info=PhotoInfo(format="jpeg", width=320, height=240,
                                                              taken=taken if i % 5 else None),
            )
    catalog.close()


def bench_library_view(photos: Sequence[Path], count: int, work: Path, *, steps: int = 100) -> None:
    """The library view of ``count`` photos, opened and scrolled twice, each in a fresh process: a first run
    (empty thumbnail cache: originals are decoded) and a restart (the disk cache is warm, memory is not)."""
    import json

    home = work / f"home-library-{count}"
    if not (home / "data").exists():
        t0 = time.perf_counter()
        _fill_catalog(home, photos, count)
        _out(f"library of {count:,} photos written to its catalog in {time.perf_counter() - t0:.1f} s")
    from photoembed.config import Paths

    shutil_rmtree(Paths.resolve(home).thumbnails)
    decoded: list[int] = []
    for run in ("first run", "restart"):
        code = f"from photoembed.gui.bench import library_run; library_run({str(home)!r}, {run!r}, {steps})"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                                env={**os.environ})
        lines = result.stdout.splitlines()
        figures = [json.loads(line[len(_RESULT):]) for line in lines if line.startswith(_RESULT)]
        for line in lines:
            if not line.startswith(_RESULT):
                _out(line)
        if result.returncode != 0 or not figures:
            _out(f"library view, {run}: failed ({result.stderr.strip()[-600:]})")
            return
        decoded.append(int(figures[0]["decoded"]))
    if decoded[0]:
        _out(f"  restart decoded {decoded[1]} of the {decoded[0]} originals the first run decoded")


_RESULT = "RESULT "


def library_run(home_dir: str, run: str, steps: int) -> None:
    """One process's part of :func:`bench_library_view`: open the library view, scroll it, print figures.

    Timed like a user sees it: from the listing's arrival (the read itself runs on a pool thread and is timed
    apart) to the first frame on screen, and to the first screen of thumbnails; then ``steps`` scroll steps
    from top to bottom, each one a scroll-bar move (the date scrubber follows) and a paint, timed in wall
    clock and in GUI-thread CPU, after the photos of the previous step have settled (decoded or read from
    disk), so that both runs ask for the same thumbnails. Every other paint (a thumbnail arriving repaints its
    tile) is timed too, and a 5 ms timer records how late the event loop ran meanwhile.
    """
    import json

    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, QPoint, QTimer
    from PySide6.QtGui import QImage, QPaintEvent

    from photoembed.config import Paths
    from photoembed.gui.app import create_application
    from photoembed.gui.browse import DateScrubber
    from photoembed.gui.grid import PhotoGrid
    from photoembed.gui.models import PhotoGridModel
    from photoembed.gui.thumbnails import DiskThumbnailCache, ThumbnailProvider, load_qimage
    from photoembed.gui.workers import BackgroundPool
    from photoembed.storage.browse import photos_by_date
    from photoembed.storage.catalog import Catalog

    app = create_application([])
    paths = Paths.resolve(Path(home_dir))
    catalog = Catalog.open(paths.catalog)
    t0 = time.perf_counter()
    listing = photos_by_date(catalog)
    read_ms = (time.perf_counter() - t0) * 1000
    catalog.close()
    decoded: list[int] = []

    def real_path(path: Path, size: int) -> QImage:
        decoded.append(1)

        return load_qimage(Path(str(path).split("#", 1)[0]), size)

    paints: list[float] = []  # every paint of the grid, in ms

    class TimedGrid(PhotoGrid):
        def paintEvent(self, event: QPaintEvent) -> None:
            t = time.perf_counter()
            super().paintEvent(event)
            paints.append((time.perf_counter() - t) * 1000)

    pool = BackgroundPool(threads=max(1, min(3, (os.cpu_count() or 2) - 1)), name="thumbnails")
    thumbs = ThumbnailProvider(pool, loader=real_path, disk=DiskThumbnailCache(paths.thumbnails))
    t0 = time.perf_counter()
    model = PhotoGridModel(thumbs, thumb_size=176)
    model.set_results(listing.ids, listing.paths, None, stamps=listing.stamps,
                      months=[(m.first_row, m.year, m.month) for m in listing.months])
    grid = TimedGrid(176)
    grid.setModel(model)
    scrubber = DateScrubber()
    scrubber.set_months(listing.months)
    grid.resize(1200, 800)
    scrubber.resize(132, 800)

    def follow() -> None:  # as the library view does when its grid scrolls
        index = grid.indexAt(QPoint(grid.spacing() + 8, grid.spacing() + 8))
        scrubber.follow(index.row() if index.isValid() else 0)

    grid.verticalScrollBar().valueChanged.connect(follow)
    grid.show()
    scrubber.show()
    while not paints:
        app.processEvents()
    first_frame_ms = (time.perf_counter() - t0) * 1000
    deadline = time.perf_counter() + 30
    while thumbs.pending() and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.001)
    app.processEvents()
    first_screen_ms = (time.perf_counter() - t0) * 1000
    opening_paints = len(paints)

    bar = grid.verticalScrollBar()
    step_ms: list[float] = []
    paint_ms: list[float] = []
    cpu_ms: list[float] = []  # the GUI thread's own CPU time: what the step costs on a busy machine too
    probe = LatencyProbe()
    loop = QEventLoop()
    state = {"step": 0, "wait": 0}

    def step() -> None:
        if thumbs.pending() and state["wait"] < 150:
            state["wait"] += 1
            QTimer.singleShot(20, step)
            return
        state["wait"] = 0
        k = state["step"]
        if k > steps:
            loop.quit()
            return
        t, c = time.perf_counter(), time.thread_time()
        bar.setValue(bar.maximum() * k // steps)
        p = time.perf_counter()
        grid.viewport().repaint()
        end = time.perf_counter()
        step_ms.append((end - t) * 1000)
        paint_ms.append((end - p) * 1000)
        cpu_ms.append((time.thread_time() - c) * 1000)
        state["step"] = k + 1
        QTimer.singleShot(16, step)

    probe.start()
    QTimer.singleShot(0, step)
    loop.exec()
    probe.stop()
    others = sorted(paints[opening_paints:])
    ordered = sorted(paint_ms)
    _out(f"library view of {len(listing):,} photos, {run} (fresh process, load average {_load()}): listed by date "
         f"with {len(listing.months)} months in {read_ms:.0f} ms (pool thread); first frame {first_frame_ms:.0f} ms "
         f"after the listing arrived, first screen of thumbnails {first_screen_ms:.0f} ms")
    _out(f"  scrolled top to bottom in {steps} steps: paint per step median {statistics.median(ordered):.1f} ms, "
         f"worst {ordered[-1]:.1f} ms; scroll and paint median {statistics.median(step_ms):.1f} ms "
         f"(GUI-thread CPU median {statistics.median(cpu_ms):.1f} ms); every paint while scrolling "
         f"({len(others)}, thumbnails arriving included): median {statistics.median(others):.1f} ms, "
         f"p95 {others[int(len(others) * 0.95)]:.1f} ms")
    _out(f"  GUI-thread stall while scrolling: {probe.summary()}")
    _out(f"  originals decoded: {len(decoded)}; thumbnails from disk: {thumbs.disk.hits if thumbs.disk else 0}")
    sys.stdout.write(_RESULT + json.dumps({"decoded": len(decoded), "paint_median_ms": statistics.median(ordered),
                                           "first_frame_ms": first_frame_ms}) + "\n")
    sys.stdout.flush()
    grid.close()
    scrubber.close()
    pool.shutdown()


def bench_quit(photos: Sequence[Path], work: Path) -> None:
    """Closing the window while it watches the folders: how long until every thread has stopped."""
    from PySide6.QtWidgets import QApplication

    from photoembed.config import Paths
    from photoembed.gui.app import create_application
    from photoembed.gui.controller import LibraryController
    from photoembed.gui.main_window import MainWindow

    app = create_application([])
    home = work / "home-quit"
    shutil_rmtree(home)
    controller = LibraryController(Paths.resolve(home), watch=True)
    window = MainWindow(controller)
    window.show()
    controller.open(then_add=[photos[0].parent])
    deadline = time.perf_counter() + 600
    while time.perf_counter() < deadline and not (
        controller.watching and not controller.index.running and controller.last_snapshot is not None
        and controller.last_snapshot.ok >= len(photos)
    ):
        QApplication.processEvents()
        time.sleep(0.02)
    t0 = time.perf_counter()
    window.close()
    _out(f"quit while watching {len(photos):,} photos (idle): window closed and every thread joined in "
         f"{(time.perf_counter() - t0) * 1000:.0f} ms")
    app.processEvents()


def _load() -> str:
    """The 1-minute load average (the machine is shared: wall-clock figures follow it, CPU figures less)."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "n/a"


_RESTART_CODE = """
import json, os, sys, time
t0 = time.perf_counter()
from PySide6.QtCore import QTimer
from photoembed.config import Paths
from photoembed.gui import app as gapp
from photoembed.gui.status_model import Activity
a = gapp.create_application([])
w = gapp.build_window(Paths.resolve(sys.argv[1]))  # watching, as the app does
w.show()
out = {"activities": []}
w.controller.opened.connect(lambda: out.setdefault("opened_s", time.perf_counter() - t0))
def changed(state):
    out["activities"].append(state.activity.name)
    if state.activity is Activity.UP_TO_DATE and state.watching and "up_s" not in out:
        out.update(up_s=time.perf_counter() - t0, photos=state.photos, label=w.status_area.progress_label.text(),
                   heavy=sorted(m for m in ("torch", "open_clip", "onnxruntime", "faiss") if m in sys.modules))
        w.close(); a.quit()
w.controller.status.changed.connect(changed)
QTimer.singleShot(600_000, a.quit)
a.exec()
sys.stdout.write(json.dumps(out) + "\\n")
"""


def bench_restart(home: Path, photos: Path) -> None:
    """The app started again on an indexed library with nothing new: time to "Up to date", heavy imports."""
    import json

    from photoembed.config import Paths
    from photoembed.library import Library

    library = Library(Paths.resolve(home))
    try:
        if not library.catalog.roots():
            library.catalog.add_root(photos)
        for _ in library.indexer().sync():
            pass  # indexed (with the model when the home has one): the restart below has nothing to do
        model = library.settings.model if library.model_available() else "none"
    finally:
        library.close()
    result = subprocess.run([sys.executable, "-c", _RESTART_CODE, str(home)], capture_output=True, text=True,
                            check=False, env={**os.environ})
    try:
        out = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        _out(f"restart: failed ({result.stderr.strip()[-300:]})")
        return
    if "up_s" not in out:
        _out(f"restart: never up to date ({out['activities'][-5:]})")
        return
    reindexed = "INDEXING" in out["activities"]
    _out(f"restart with nothing to do ({out['photos']:,} photos, model {model}): library open at "
         f"{out['opened_s']:.2f} s, {out['label']!r} at {out['up_s']:.2f} s after the interpreter started its "
         f"imports; heavy modules imported: {', '.join(out['heavy']) or 'none'}; re-indexed: {reindexed}")


def shutil_rmtree(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="photoembed bench gui", description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=10_000, help="photos to generate and index (default 10000)")
    parser.add_argument("--results", type=int, default=100_000, help="grid size to scroll (default 100000)")
    parser.add_argument("--workdir", type=Path, help="where to generate photos (kept and reused)")
    parser.add_argument("--library", type=int, default=100_000, help="photos in the library view (default 100000)")
    parser.add_argument("--only", choices=("grid", "library", "quit", "restart"), help="run only this part")
    parser.add_argument("--home", type=Path, help="photoembed home to use (default: a fresh temporary one); "
                        "put model weights there to measure indexing with the model")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory(prefix="photoembed-bench-gui-") as tmp:
        work = args.workdir or Path(tmp)
        _out(f"generating {args.photos:,} photos in {work / 'photos'}…")
        photos = generate_photos(work / "photos", args.photos)
        if args.only == "library":
            bench_library_view(photos, args.library, work)
            return 0
        if args.only == "grid":
            bench_grid_scroll(photos, args.results)
            return 0
        if args.only == "quit":
            bench_quit(photos, work)
            return 0
        if args.only == "restart":
            bench_restart(args.home or Path(tmp) / "home-restart", work / "photos")
            return 0
        bench_window_shown(Path(tmp) / "home-window")
        home = args.home or Path(tmp) / "home-index"
        bench_indexing_stall(home, work / "photos")
        bench_restart(home, work / "photos")
        bench_grid_scroll(photos, args.results)
        bench_library_view(photos, args.library, work)
        bench_quit(photos, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
