"""Drive the desktop app through its main steps and save a screenshot of each (for the README).

Run under a virtual display::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python packaging/screenshots.py --out DIR [--dark] \
        [--source {photos-large,flickr8k}]

It builds a private library in a temporary folder from ``../shared/data``: by default from ``photos-large``
(openly licensed photos, see its LICENSES.csv; the only source fit for committed screenshots) with derived
re-encoded copies, an identical copy, a crop and edited copies as duplicates; ``--source flickr8k`` uses
Flickr8k (research use only: local use, never commit its screenshots). It installs the tiny random-weight
test model (tests/tiny_clip.py) so that search runs end to end (its ranking is meaningless: real weights are
not available offline), and saves: first run, indexing, search results, the photo viewer, duplicates, the
move-to-trash confirmation's result with undo, the failures dialog and the settings dialog. The first image,
``01-library``, is the home page: the library view of every photo by month, taken once the photos are indexed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SHARED = REPO.parent / "shared" / "data"
# Photo source -> the query the search screenshot shows.
SOURCES = {"photos-large": "mountains at sunset", "flickr8k": "a dog on the beach"}


def prepare_flickr8k(folder: Path) -> int:
    """Flickr8k photos (research use only: never for committed screenshots), re-encoded copies, an identical copy.

    Returns:
        How many readable photos the folder holds.
    """
    originals = sorted((SHARED / "flickr8k" / "original").glob("*.jpg"))[:60]
    (folder / "trips").mkdir()
    for i, photo in enumerate(originals):
        target = folder / ("trips" if i % 3 == 0 else ".") / photo.name
        shutil.copy(photo, target)
    copies = 0
    for photo in originals[:6]:
        copy = SHARED / "flickr8k" / "recompressed" / photo.name
        if copy.exists():
            shutil.copy(copy, folder / f"{photo.stem}-small.jpg")
            copies += 1
    shutil.copy(originals[7], folder / f"{originals[7].stem} (copy).jpg")
    return len(originals) + copies + 1


# Regions (left, top, right, bottom as fractions) cut from the big photos as further distinct "photos": each
# shows another part of the scene, as a second shot from the same walk would.
EXTRA_REGIONS: tuple[tuple[str, tuple[float, float, float, float]], ...] = (
    ("seeding", (0.0, 0.0, 0.45, 0.8)),
    ("seeding", (0.55, 0.2, 1.0, 1.0)),
    ("sunset", (0.0, 0.3, 0.5, 1.0)),
    ("sunset", (0.5, 0.0, 1.0, 0.6)),
    ("Bridge", (0.0, 0.0, 0.5, 0.7)),
    ("Bridge", (0.6, 0.3, 1.0, 1.0)),
    ("Dragonfly", (0.0, 0.5, 0.5, 1.0)),
    ("picosdeeuropa", (0.5, 0.0, 1.0, 0.6)),
    ("life", (0.0, 0.0, 0.5, 0.6)),
    ("aitzgorri", (0.45, 0.35, 1.0, 1.0)),
)


def prepare_photos_large(folder: Path) -> int:
    """Openly licensed photos (photos-large, see its LICENSES.csv) and realistic duplicates derived from them.

    Each photo is downscaled to 1600 px as the "original"; then a half-size re-encoded copy of a few (same photo,
    other file), an identical copy of one, a 10% crop of one, edited copies (re-cropped by a few percent, exposure
    changed) of two, and crops of other regions of the big photos as further distinct photos.

    Returns:
        How many readable photos the folder holds.
    """
    import datetime as dt

    from PIL import Image, ImageEnhance

    sources = sorted((SHARED / "photos-large").glob("*.jpg"))
    (folder / "trips").mkdir()
    start = dt.datetime(2023, 6, 3, 9, 12, 0)
    written: list[Path] = []

    def save(image: Image.Image, path: Path, *, when: dt.datetime, quality: int = 90,
             edited: dt.datetime | None = None) -> Path:
        exif = Image.Exif()
        stamp = when.strftime("%Y:%m:%d %H:%M:%S")
        # DateTime: when the file was last written; an editor's export writes its own time and name.
        exif[0x0132] = (edited or when).strftime("%Y:%m:%d %H:%M:%S")
        if edited is not None:
            exif[0x0131] = "GIMP 2.10.34"  # Software
        exif.get_ifd(0x8769)[0x9003] = stamp  # DateTimeOriginal: the app's "taken" date
        image.save(path, "JPEG", quality=quality, exif=exif)
        written.append(path)
        return path

    def fit(image: Image.Image, long_side: int) -> Image.Image:
        scale = long_side / max(image.size)
        if scale >= 1:
            return image.copy()
        return image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)

    def crop(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
        w, h = image.size
        return image.crop((round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)))

    big: dict[str, Image.Image] = {}
    originals: dict[str, tuple[Path, Image.Image, dt.datetime]] = {}
    for i, source in enumerate(sources):
        with Image.open(source) as opened:
            image = opened.convert("RGB")
        key = source.stem.split("_by_")[0]
        big[key] = image
        when = start + dt.timedelta(days=9 * i, hours=i)
        small = fit(image, 1600)
        path = save(small, folder / ("trips" if i % 3 == 0 else ".") / source.name, when=when)
        originals[key] = (path, small, when)

    # Same photo, other file: half-size, re-encoded harder (as a messenger app or an export would).
    for key in ("Bridge", "Wine", "greentock"):
        path, small, when = originals[key]
        save(fit(small, 800), folder / f"{path.stem}-small.jpg", when=when, quality=70)
    # Identical files.
    path, _, _ = originals["sunset"]
    shutil.copyfile(path, folder / f"{path.stem} (copy).jpg")
    written.append(folder / f"{path.stem} (copy).jpg")
    # A 10% crop (trimmed edges).
    path, small, when = originals["picosdeeuropa"]
    save(crop(small, (0.05, 0.05, 0.95, 0.95)), folder / f"{path.stem}-edit.jpg", when=when)
    # Edited copies: the same frame re-cropped by a few percent and brightened or darkened, as an editor's
    # exports are (the same photo: a real burst, other moments of a scene, is a similar shot instead).
    for key, variants in (
        ("Dragonfly", ((0.02, 0.0, 1.0, 0.98, 1.06), (0.0, 0.03, 0.97, 1.0, 0.94), (0.03, 0.02, 1.0, 1.0, 1.1))),
        ("free", ((0.0, 0.02, 0.98, 1.0, 0.92), (0.02, 0.0, 1.0, 0.97, 1.05))),
    ):
        path, small, when = originals[key]
        for n, (left, top, right, bottom, brightness) in enumerate(variants, start=2):
            shifted = crop(small, (left, top, right, bottom)).resize(small.size, Image.Resampling.LANCZOS)
            shifted = ImageEnhance.Brightness(shifted).enhance(brightness)
            # An edit keeps the capture time; the editor marks the file as its own, a week later.
            save(shifted, folder / f"{path.stem}-edit{n}.jpg", when=when, edited=when + dt.timedelta(days=7))
    # Other parts of the big photos, as further distinct photos.
    for n, (key, box) in enumerate(EXTRA_REGIONS):
        _, _, when = originals[key]
        target = folder / ("trips" if n % 2 else ".") / f"IMG_{4102 + 7 * n}.jpg"
        save(fit(crop(big[key], box), 1600), target, when=when + dt.timedelta(minutes=20 + n))
    return len(written)


def prepare_photos(folder: Path, source: str) -> int:
    """The library's photos from ``source``, plus a broken and an empty file (recorded as failures).

    Returns:
        How many readable photos the folder holds.
    """
    folder.mkdir(parents=True)
    count = prepare_flickr8k(folder) if source == "flickr8k" else prepare_photos_large(folder)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (folder / "empty.jpg").write_bytes(b"")
    return count


def install_tiny_model(home: Path) -> None:
    from photoembed.config import Paths, Settings, save_settings
    from photoembed.ml.models import ModelStore
    from tests.tiny_clip import write_tiny_model

    paths = Paths.resolve(home)
    paths.ensure()
    tiny = write_tiny_model(home.parent / "tiny-model")
    store = ModelStore(paths.models, paths.model_downloads)
    name = store.install(tiny.weights_path, name=tiny.model_name, config=tiny.config_path)
    save_settings(paths, Settings(model=name, threads=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dark", action="store_true", help="dark palette (as a desktop in dark mode)")
    parser.add_argument("--source", choices=SOURCES, default="photos-large",
                        help="photos-large: openly licensed, for the README; flickr8k: research use only, local use")
    args = parser.parse_args()
    if args.dark:
        os.environ["PHOTOEMBED_COLOR_SCHEME"] = "dark"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "-dark" if args.dark else ""
    tmp = Path(tempfile.mkdtemp(prefix="photoembed-shots-"))
    os.environ["XDG_DATA_HOME"] = str(tmp / "xdg")  # the trash of this run stays in the temporary folder
    photos = tmp / "Photos"
    expected = prepare_photos(photos, args.source)
    query = SOURCES[args.source]
    home = tmp / "home"

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QWidget

    from photoembed.config import Paths, load_settings
    from photoembed.core.indexer import Progress
    from photoembed.dedup.records import TrashPlan
    from photoembed.gui.app import create_application
    from photoembed.gui.controller import LibraryController
    from photoembed.gui.main_window import MainWindow
    from photoembed.gui.settings_dialog import SettingsDialog
    from photoembed.gui.status import FailuresDialog
    from photoembed.gui.viewer import PhotoViewer

    app = create_application([])
    controller = LibraryController(Paths.resolve(home), watch=True)
    window = MainWindow(controller)
    window.resize(1600, 900)  # wide enough for three photos side by side in the duplicates compare panel
    window.show()
    controller.open()

    def shot(widget: QWidget, name: str) -> None:
        path = args.out / f"{name}{suffix}.png"
        widget.grab().save(str(path))
        sys.stdout.write(f"saved {path}\n")

    steps: list[tuple[Callable[[], bool], Callable[[], None]]] = []

    def then(ready: Callable[[], bool], action: Callable[[], None]) -> None:
        steps.append((ready, action))

    def always() -> bool:
        return True

    # 1. First run: no folder, no model.
    then(lambda: controller.last_snapshot is not None, lambda: shot(window, "02-first-run"))
    # 2. The model arrives (installed from a file), a folder is dropped: indexing.
    def add_folder() -> None:
        install_tiny_model(home)
        assert controller.library is not None
        controller.library.settings = load_settings(Paths.resolve(home))
        controller.refresh()
        controller.index_progress.connect(indexing)
        controller.add_roots([photos])

    taken: list[str] = []

    def indexing(progress: Progress) -> None:
        # Shot from the progress signal itself: a small library indexes faster than a poll would notice.
        if not taken and progress.phase == "index" and progress.done >= 16:
            taken.append("02")
            window.status_area.show_progress(progress)
            shot(window, "03-indexing")
    then(always, add_folder)
    def thumbnails_settled() -> bool:
        return len(controller.thumbnails) > 0 and controller.thumbnails.pending() == 0
    # 1 (saved first in the list): the library view, the home page, once everything is indexed.
    then(lambda: not controller.index.running and controller.last_snapshot is not None
         and controller.last_snapshot.embedded >= expected
         and window.search.grid_model.rowCount() >= expected - 2,
         lambda: window.tabs.setCurrentWidget(window.search))
    then(thumbnails_settled, lambda: shot(window, "01-library"))
    # 3. Search.
    then(always, lambda: window.search.search_text(query))
    then(lambda: window.search.grid_model.rowCount() > 20 and not window.search.browsing, lambda: None)
    then(thumbnails_settled, lambda: shot(window, "04-search"))
    # 4. The viewer.
    def open_viewer() -> None:
        window.search.open_row(1)
    then(always, open_viewer)
    def viewer() -> QWidget | None:
        found = [w for w in QApplication.topLevelWidgets() if w.isVisible() and isinstance(w, PhotoViewer)]
        return found[0] if found else None
    then(lambda: viewer() is not None and viewer().findChildren(QWidget) is not None  # type: ignore[union-attr]
         and "Loading" not in viewer().image.label.text()  # type: ignore[union-attr]
         and "…" not in viewer()._fields["Camera"].text(), lambda: None)  # type: ignore[union-attr]
    then(always, lambda: (shot(viewer(), "05-viewer"), viewer().close()))  # type: ignore[arg-type,union-attr]
    # 5. Duplicates.
    # The tiny test model's vectors are random, so its "similar shots" mean nothing: show the tiers that do
    # not depend on the model (identical files, same photo re-encoded).
    dupes_status: list[str] = []
    window.dupes.status.connect(dupes_status.append)

    def dupes_settled() -> bool:
        # Each re-cluster first says "Looking for duplicates…" and ends with "N clusters of duplicates" (or the
        # "No duplicates found" page): wait for the answer to the latest request, not a stale list.
        if window.dupes.body.currentWidget() is window.dupes.message:
            return window.dupes.message.text().startswith("No duplicates")
        return bool(dupes_status) and dupes_status[-1].endswith("clusters of duplicates")

    polls = {"dupes": 0}

    def dupes_settled_or_retry() -> bool:
        # Once (in about one run of several) the answer to a re-cluster never arrived; say so, and ask again as a
        # user would with the refresh button rather than fail the whole run.
        if dupes_settled():
            return True
        polls["dupes"] += 1
        if polls["dupes"] % 100 == 0:
            sys.stderr.write(f"duplicates not settled after {polls['dupes'] // 5} s (status {dupes_status[-2:]}, "
                             f"page {window.dupes.message.text()!r}): looking again\n")
            window.dupes.recluster()
        return False
    then(always, lambda: (window.tabs.setCurrentWidget(window.dupes), window.dupes.tier_buttons.button(2).click()))

    def show_edits_cluster() -> None:
        # Three copies say more than a pair; three photos fill one row of the compare panel without being cut off.
        # A slightly wider list than the default shows the cluster titles whole.
        dupes = window.dupes
        dupes.splitter.setSizes([320, 1100])
        sizes = [len(cluster.photos) for cluster in dupes.clusters.clusters()]
        best = max(range(len(sizes)), key=lambda row: (sizes[row] <= 3, sizes[row]))
        dupes.cluster_list.setCurrentIndex(dupes.clusters.index(best))
    then(lambda: dupes_settled_or_retry() and window.dupes.clusters.rowCount() >= 2, show_edits_cluster)
    then(lambda: bool(window.dupes.members.info()), lambda: None)
    then(thumbnails_settled, lambda: shot(window, "06-duplicates"))
    # 6. Trash the suggested copies, then show the undo state.
    confirmed: list[TrashPlan] = []
    def trash_all() -> None:
        window.dupes.ask_confirmation = lambda plan: bool(confirmed.append(plan) or True)  # type: ignore[method-assign]
        window.dupes.trash_all_clusters()
    then(always, trash_all)
    then(lambda: window.dupes.undo_button.isEnabled() and dupes_settled_or_retry(), lambda: None)
    then(thumbnails_settled, lambda: shot(window, "07-after-trash-undo-ready"))
    # 7. The failures dialog and the settings.
    def failures() -> None:
        dialog = FailuresDialog(controller, window)
        dialog.show()
        QTimer.singleShot(800, lambda: (shot(dialog, "08-unreadable-photos"), dialog.close()))
    then(always, failures)
    def settings() -> None:
        dialog = SettingsDialog(controller, window)
        dialog.show()
        QTimer.singleShot(800, lambda: (shot(dialog, "09-settings"), dialog.close()))
    then(lambda: True, lambda: QTimer.singleShot(1200, settings))

    state = {"step": 0, "waited": 0}

    def pump() -> None:
        if state["step"] >= len(steps):
            QTimer.singleShot(2500, lambda: (window.close(), app.quit()))
            return
        ready, action = steps[state["step"]]
        if ready():
            action()
            state["step"] += 1
            state["waited"] = 0
            QTimer.singleShot(600, pump)
            return
        state["waited"] += 1
        if state["waited"] % 50 == 0:
            sys.stderr.write(f"waiting on step {state['step']}\n")
        if state["waited"] > 900:  # 3 minutes on one step
            sys.stderr.write(f"step {state['step']} never became ready\n")
            window.close()
            app.exit(1)
            return
        QTimer.singleShot(200, pump)

    QTimer.singleShot(1500, pump)
    code = app.exec()
    shutil.rmtree(tmp, ignore_errors=True)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
