"""Drive the desktop app through its main steps and save a screenshot of each (for the README).

Run under a virtual display::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python packaging/screenshots.py --out DIR [--dark]

It builds a private library in a temporary folder from ``../shared/data`` (real photos, their re-encoded
copies as duplicates), installs the tiny random-weight test model (tests/tiny_clip.py) so that search runs
end to end (its ranking is meaningless: real weights are not available offline), and saves:
first run, indexing, search results, the photo viewer, duplicates, the move-to-trash confirmation's
result with undo, the failures dialog and the settings dialog.
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


def prepare_photos(folder: Path) -> None:
    """Real photos, a few re-encoded copies (same photo, other file), an identical copy and a broken file."""
    originals = sorted((SHARED / "flickr8k" / "original").glob("*.jpg"))[:60]
    folder.mkdir(parents=True)
    (folder / "trips").mkdir()
    for i, photo in enumerate(originals):
        target = folder / ("trips" if i % 3 == 0 else ".") / photo.name
        shutil.copy(photo, target)
    for photo in originals[:6]:
        copy = SHARED / "flickr8k" / "recompressed" / photo.name
        if copy.exists():
            shutil.copy(copy, folder / f"{photo.stem}-small.jpg")
    shutil.copy(originals[7], folder / f"{originals[7].stem} (copy).jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (folder / "empty.jpg").write_bytes(b"")


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
    args = parser.parse_args()
    if args.dark:
        os.environ["PHOTOEMBED_COLOR_SCHEME"] = "dark"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "-dark" if args.dark else ""
    tmp = Path(tempfile.mkdtemp(prefix="photoembed-shots-"))
    os.environ["XDG_DATA_HOME"] = str(tmp / "xdg")  # the trash of this run stays in the temporary folder
    photos = tmp / "Photos"
    prepare_photos(photos)
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

    app = create_application([])
    controller = LibraryController(Paths.resolve(home), watch=True)
    window = MainWindow(controller)
    window.resize(1440, 900)
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
    then(lambda: controller.last_snapshot is not None, lambda: shot(window, "01-first-run"))
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
            shot(window, "02-indexing")
    then(always, add_folder)
    # 3. Search.
    then(lambda: not controller.index.running and controller.last_snapshot is not None
         and controller.last_snapshot.embedded > 40,
         lambda: (window.tabs.setCurrentWidget(window.search), window.search.search_text("a dog on the beach")))
    then(lambda: window.search.grid_model.rowCount() > 20, lambda: None)
    def thumbnails_settled() -> bool:
        return len(controller.thumbnails) > 0 and controller.thumbnails.pending() == 0
    then(thumbnails_settled, lambda: shot(window, "03-search"))
    # 4. The viewer.
    def open_viewer() -> None:
        window.search.open_row(1)
    then(always, open_viewer)
    def viewer() -> QWidget | None:
        found = [w for w in QApplication.topLevelWidgets() if w.isVisible() and w.windowTitle().endswith(".jpg")]
        return found[0] if found else None
    then(lambda: viewer() is not None and viewer().findChildren(QWidget) is not None  # type: ignore[union-attr]
         and "Loading" not in viewer().image.text(), lambda: None)  # type: ignore[union-attr]
    then(always, lambda: (shot(viewer(), "04-viewer"), viewer().close()))  # type: ignore[arg-type,union-attr]
    # 5. Duplicates.
    # The tiny test model's vectors are random, so its "similar shots" mean nothing: show the tiers that do
    # not depend on the model (identical files, same photo re-encoded).
    then(always, lambda: (window.tabs.setCurrentWidget(window.dupes), window.dupes.tier_buttons.button(2).click()))
    then(lambda: window.dupes.clusters.rowCount() >= 2 and bool(window.dupes.members.info()), lambda: None)
    then(thumbnails_settled, lambda: shot(window, "05-duplicates"))
    # 6. Trash the suggested copies, then show the undo state.
    confirmed: list[TrashPlan] = []
    def trash_all() -> None:
        window.dupes.ask_confirmation = lambda plan: bool(confirmed.append(plan) or True)  # type: ignore[method-assign]
        window.dupes.trash_all_clusters()
    then(always, trash_all)
    then(lambda: window.dupes.undo_button.isEnabled(), lambda: shot(window, "06-after-trash-undo-ready"))
    # 7. The failures dialog and the settings.
    def failures() -> None:
        dialog = FailuresDialog(controller, window)
        dialog.show()
        QTimer.singleShot(800, lambda: (shot(dialog, "07-unreadable-photos"), dialog.close()))
    then(always, failures)
    def settings() -> None:
        dialog = SettingsDialog(controller, window)
        dialog.show()
        QTimer.singleShot(800, lambda: (shot(dialog, "08-settings"), dialog.close()))
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
