"""The library's state through the real worker threads: a failing live job backs off, a model download that
fails stays on screen with its next steps, and a restart with nothing to do never imports torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QInputDialog
from pytestqt.qtbot import QtBot

from photoembed.config import Paths
from photoembed.gui.controller import LibraryController
from photoembed.gui.main_window import MainWindow
from photoembed.gui.model_panel import IDENTIFY_CHOICE, ModelPanel
from photoembed.gui.status_model import Activity, LibraryStatus
from photoembed.library import Library
from tests.tiny_clip import write_tiny_model

WAIT_MS = 60_000
REPO = Path(__file__).resolve().parents[2]


class FlakyIndexer:
    """Counts the live job's attempts; the first ``failures`` raise a bug (as a too-old rawpy once did)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real = Library.indexer

        def indexer(library: Library, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls <= self.failures:
                raise RuntimeError("disk on fire")
            return real(library, **kwargs)

        monkeypatch.setattr(Library, "indexer", indexer)


def retrying(seen: list[tuple[LibraryStatus, str]]) -> list[tuple[int, float]]:
    """Each retry announced, once (a later state of the same wait, new counts say, is the same retry)."""
    out: list[tuple[int, float]] = []
    for state, _text in seen:
        if state.activity is Activity.RETRYING and (not out or out[-1][0] != state.attempt):
            out.append((state.attempt, state.retry_in_s))
    return out


@pytest.fixture
def backoff_window(qtbot: QtBot, home: Path, request: pytest.FixtureRequest) -> Iterator[MainWindow]:
    base, top = request.param
    controller = LibraryController(Paths.resolve(home), watch=False, retry_base_s=base, retry_max_s=top)
    window = MainWindow(controller)
    qtbot.addWidget(window)
    window.show()
    yield window
    controller.shutdown()


@pytest.mark.expected_warnings("live task failed")
@pytest.mark.parametrize("backoff_window", [(0.05, 0.2)], indirect=True)
def test_a_failing_live_job_retries_with_exponential_backoff_and_says_so(
    backoff_window: MainWindow, photos: Path, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    controller = backoff_window.controller
    flaky = FlakyIndexer(failures=4)
    flaky.install(monkeypatch)
    seen: list[tuple[LibraryStatus, str]] = []
    # Connected after the window's views: each record has what the status bar showed for that state.
    controller.status.changed.connect(
        lambda state: seen.append((state, backoff_window.status_area.progress_label.text())))
    controller.open(then_add=[photos])
    qtbot.waitUntil(lambda: controller.status.state.activity is Activity.UP_TO_DATE and flaky.calls == 5
                    and controller.status.state.photos == 13, timeout=WAIT_MS)
    # Each failure doubles the wait (capped), and each attempt waited for its delay: 4 failures, 5 attempts.
    assert retrying(seen) == [(1, 0.05), (2, 0.1), (3, 0.2), (4, 0.2)]
    assert flaky.calls == 5
    texts = [text for state, text in seen if state.activity is Activity.RETRYING]
    prefix = "Indexing failed: Internal error: RuntimeError: disk on fire · retrying in "
    assert all(t.startswith(prefix) for t in texts)
    assert controller.status.state.attempt == 0  # the sync that worked ended the run of failures
    assert not backoff_window.status_area.retry_now.isVisible()


@pytest.mark.expected_warnings("live task failed")
@pytest.mark.parametrize("backoff_window", [(8.0, 300.0)], indirect=True)
def test_a_failed_live_job_waits_its_delay_and_retry_now_runs_it_at_once(
    backoff_window: MainWindow, photos: Path, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    controller = backoff_window.controller
    flaky = FlakyIndexer(failures=1)
    flaky.install(monkeypatch)
    controller.open(then_add=[photos])
    qtbot.waitUntil(lambda: controller.status.state.activity is Activity.RETRYING, timeout=WAIT_MS)
    area = backoff_window.status_area
    assert area.progress_label.text() == "Indexing failed: Internal error: RuntimeError: disk on fire · retrying in 8 s"
    assert controller.retry_pending
    assert flaky.calls == 1  # no loop of full rescans: the next attempt waits for its delay
    assert not controller.tasks.live_running
    assert area.retry_now.isVisible()
    qtbot.mouseClick(area.retry_now, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: controller.status.state.activity is Activity.UP_TO_DATE, timeout=WAIT_MS)
    assert flaky.calls == 2
    assert not controller.retry_pending
    qtbot.waitUntil(lambda: backoff_window.sidebar.total.text() == "13 photos in 1 folder", timeout=WAIT_MS)


# -- model errors ------------------------------------------------------------------------------------------


@pytest.fixture
def threaded(qtbot: QtBot, home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LibraryController]:
    """A controller on its real threads, on a machine that cannot reach the model hub."""
    import huggingface_hub.constants

    # Offline, whatever this machine can reach: a download must fail here, never fetch 600 MB.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    ctl = LibraryController(Paths.resolve(home), watch=False)
    with qtbot.waitSignal(ctl.opened, timeout=30_000):
        ctl.open()
    yield ctl
    ctl.shutdown()


def sidecar_weights(folder: Path) -> Path:
    """The tiny model in open_clip's own layout (weights beside open_clip_config.json): the file names its model."""
    written = write_tiny_model(folder / "src", fmt="safetensors")
    target = folder / "tiny-clip"
    target.mkdir()
    weights = target / "open_clip_model.safetensors"
    weights.write_bytes(written.weights_path.read_bytes())
    doc = {"model_cfg": json.loads(written.config_path.read_text()), "preprocess_cfg": {}}
    (target / "open_clip_config.json").write_text(json.dumps(doc), encoding="utf-8")
    return weights


@pytest.mark.model
def test_a_failed_download_stays_with_retry_and_install_from_file_that_work(
    qtbot: QtBot, threaded: LibraryController, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from photoembed.ml.models import ModelStore

    downloads: list[str] = []  # the thread of each download the buttons started
    real_download = ModelStore.download

    def download(store: ModelStore, name: str, **kwargs: Any) -> Path:
        downloads.append(threading.current_thread().name)
        return real_download(store, name, **kwargs)

    monkeypatch.setattr(ModelStore, "download", download)
    panel = ModelPanel(threaded)
    qtbot.addWidget(panel)
    panel.show()
    assert panel.download.isVisible()
    assert not panel.retry.isVisible()

    with qtbot.waitSignal(threaded.model.done, timeout=WAIT_MS) as done:
        panel.download.click()
    assert done.args[0] is False
    failure = threaded.model.failure
    assert failure is not None
    assert failure.action == "download"
    assert "could not be downloaded" in panel.title.text()
    assert "`photoembed" not in panel.title.text()  # in the app, the next step is a button, not a command
    assert panel.retry.isVisible()
    assert panel.install.isVisible()
    assert panel.install.isEnabled()
    assert not panel.download.isVisible()

    # A refresh of the counts (which used to reset the card within half a second) leaves the failure shown.
    with qtbot.waitSignal(threaded.snapshot, timeout=WAIT_MS):
        threaded.refresh()
    assert "could not be downloaded" in panel.title.text()
    assert panel.retry.isVisible()

    # Retry runs the download again, through the worker: it fails again (still offline), and says so again.
    with qtbot.waitSignal(threaded.model.done, timeout=WAIT_MS) as done:
        qtbot.mouseClick(panel.retry, Qt.MouseButton.LeftButton)
        assert panel.progress.isVisible()
        assert not panel.retry.isVisible()
    assert len(downloads) == 2
    assert threading.main_thread().name not in downloads  # both on the library worker
    assert done.args[0] is False
    assert panel.retry.isVisible()

    # Install from file: the same local-weights path as `photoembed model install`.
    weights = sidecar_weights(tmp_path)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(weights), ""))
    monkeypatch.setattr(QInputDialog, "getItem", lambda *a, **k: (IDENTIFY_CHOICE, True))
    with qtbot.waitSignal(threaded.model.done, timeout=WAIT_MS) as done:
        qtbot.mouseClick(panel.install, Qt.MouseButton.LeftButton)
    ok, message = done.args
    assert ok, message
    assert threaded.model.failure is None
    assert not panel.retry.isVisible()
    assert threaded.library is not None
    installed = [row.name for row in threaded.library.models.list() if row.installed]
    assert len(installed) == 1
    assert threaded.library.settings.model == installed[0]
    qtbot.waitUntil(lambda: not threaded.status.state.model_missing, timeout=WAIT_MS)


@pytest.mark.model
def test_a_failed_install_stays_with_install_from_file(
    qtbot: QtBot, threaded: LibraryController, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    junk = tmp_path / "not-weights.safetensors"
    junk.write_bytes(b"not a weights file")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(junk), ""))
    monkeypatch.setattr(QInputDialog, "getItem", lambda *a, **k: (IDENTIFY_CHOICE, True))
    panel = ModelPanel(threaded)
    qtbot.addWidget(panel)
    panel.show()
    with qtbot.waitSignal(threaded.model.done, timeout=WAIT_MS) as done:
        panel.install.click()
    assert done.args[0] is False
    assert "could not be installed" in panel.title.text()
    assert junk.name in panel.title.toolTip() or panel.title.toolTip()
    assert panel.install.isEnabled()
    assert not panel.retry.isVisible()  # nothing to retry: another file is the next step


# -- a restart with nothing to do ----------------------------------------------------------------------------

RESTART_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    started = time.monotonic()
    from PySide6.QtCore import QTimer
    from photoembed.config import Paths
    from photoembed.gui.app import build_window, create_application
    from photoembed.gui.status_model import Activity

    app = create_application([])
    window = build_window(Paths.resolve(os.environ["PHOTOEMBED_HOME"]))  # watching, as the app does
    window.show()
    status = window.controller.status
    seen = []
    result = {}

    def changed(state):
        seen.append(state.activity.name)
        if state.activity is Activity.UP_TO_DATE and state.watching and not result:
            result.update(
                up_to_date_s=time.monotonic() - started,
                label=window.status_area.progress_label.text(),
                heavy=sorted(m for m in ("torch", "open_clip", "onnxruntime", "faiss") if m in sys.modules),
                photos=state.photos,
            )
            window.close()
            app.quit()

    status.changed.connect(changed)
    QTimer.singleShot(100_000, app.quit)  # a bound, never reached when it works
    app.exec()
    result["seen"] = seen
    print("RESULT " + json.dumps(result))
""")


def test_a_restart_with_nothing_to_do_is_up_to_date_without_importing_torch(
    model_home: Path, photos: Path, tmp_path: Path
) -> None:
    paths = Paths.resolve(model_home)
    library = Library(paths)
    try:
        library.catalog.add_root(photos)
        for _ in library.indexer().sync():
            pass
        assert library.catalog.counts(library.settings.embedding_model)["pending"] == 0
    finally:
        library.close()
    script = tmp_path / "restart.py"
    script.write_text(RESTART_SCRIPT, encoding="utf-8")
    env = {**os.environ, "PHOTOEMBED_HOME": str(model_home), "QT_QPA_PLATFORM": "offscreen",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=180,
                          check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0, done.stderr[-3000:]
    assert lines, done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert "up_to_date_s" in result, result
    assert result["heavy"] == [], result  # no torch, open_clip, ONNX Runtime nor FAISS until something embeds
    assert result["photos"] == 13
    assert result["label"] == "Up to date · watching for changes"
    assert "INDEXING" not in result["seen"]  # nothing was re-embedded


# -- fingerprints an older version made ---------------------------------------------------------------------


def test_the_duplicates_page_says_while_old_fingerprints_are_being_updated(
    qtbot: QtBot, home: Path, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an upgrade that changed the fingerprint format, the live job makes them again; until it is done
    the Duplicates page says copies may be missing (the CLI's `dupes` says so too), then the note goes."""
    from photoembed.core.indexer import Indexer
    from photoembed.imaging import fingerprint as fp
    from tests.core.test_fingerprint_versions import age_fingerprints

    library = Library(Paths.resolve(home))
    try:
        library.catalog.add_root(photos)
        for _ in library.indexer().sync():
            pass
        age_fingerprints(library.catalog)
        assert library.catalog.stale_fingerprint_count(fp.FORMAT_VERSION) == 13
    finally:
        library.close()

    gate = threading.Event()  # the live job's photos wait here until the note was seen
    real_ingest = Indexer._ingest

    def held_ingest(self: Indexer, *args: Any, **kwargs: Any) -> Any:
        assert gate.wait(WAIT_MS / 1000)
        yield from real_ingest(self, *args, **kwargs)

    monkeypatch.setattr(Indexer, "_ingest", held_ingest)
    controller = LibraryController(Paths.resolve(home), watch=False)
    window = MainWindow(controller)
    qtbot.addWidget(window)
    window.show()
    try:
        window.tabs.setCurrentWidget(window.dupes)
        note = window.dupes.fingerprint_note
        controller.open()
        qtbot.waitUntil(lambda: not note.isHidden(), timeout=WAIT_MS)
        assert note.text() == ("Updating the duplicate fingerprints of 13 photos (made by an older version of "
                               "photoembed). Until that is done, copies among them may be missing from this list.")
        assert controller.status.state.busy
        gate.set()
        qtbot.waitUntil(lambda: controller.status.state.activity is Activity.UP_TO_DATE
                        and controller.status.state.stale_fingerprints == 0, timeout=WAIT_MS)
        qtbot.waitUntil(note.isHidden, timeout=WAIT_MS)
        assert controller.library is not None
        assert controller.library.catalog.stale_fingerprint_count(fp.FORMAT_VERSION) == 0
    finally:
        gate.set()
        controller.shutdown()
