"""The model card's install-from-file: a list of models (or identification from the file), progress, the worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog, QInputDialog
from pytestqt.qtbot import QtBot

from photoembed.config import DEFAULT_MODEL, Paths
from photoembed.gui.controller import LibraryController
from photoembed.gui.model_panel import IDENTIFY_CHOICE, ModelPanel
from tests.tiny_clip import write_tiny_model


@pytest.fixture
def threaded(qtbot: QtBot, home: Path) -> Iterator[LibraryController]:
    """A controller whose tasks run on its real worker thread."""
    ctl = LibraryController(Paths.resolve(home), force_sync=False, watch=False)
    with qtbot.waitSignal(ctl.opened, timeout=30_000):
        ctl.open()
    yield ctl
    ctl.shutdown()


@pytest.mark.model
def test_install_from_file_offers_a_list_and_identifies_the_file(
    qtbot: QtBot, threaded: LibraryController, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # open_clip's own folder layout: weights beside open_clip_config.json, so the file names its model.
    written = write_tiny_model(tmp_path / "src", fmt="safetensors")
    folder = tmp_path / "tiny-clip"
    folder.mkdir()
    weights = folder / "open_clip_model.safetensors"
    weights.write_bytes(written.weights_path.read_bytes())
    doc = {"model_cfg": json.loads(written.config_path.read_text()), "preprocess_cfg": {}}
    (folder / "open_clip_config.json").write_text(json.dumps(doc), encoding="utf-8")

    offered: list[list[str]] = []

    def pick(parent: object, title: str, label: str, items: list[str], *args: object) -> tuple[str, bool]:
        offered.append(list(items))
        return IDENTIFY_CHOICE, True

    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(weights), ""))
    monkeypatch.setattr(QInputDialog, "getItem", pick)
    panel = ModelPanel(threaded)
    qtbot.addWidget(panel)
    panel.show()

    with qtbot.waitSignal(threaded.model.done, timeout=60_000) as done:
        panel.install.click()
        assert panel.progress.isVisible()  # shown while the worker identifies, checks and copies
        assert "Installing open_clip_model.safetensors" in panel.title.text()
        assert not panel.install.isEnabled()
    ok, message = done.args
    assert ok, message
    assert offered[0][0] == IDENTIFY_CHOICE
    assert DEFAULT_MODEL in offered[0]  # the supported models, not a free-text ARCH/TAG field
    assert threaded.library is not None
    installed = [row.name for row in threaded.library.models.list() if row.installed]
    assert len(installed) == 1
    assert installed[0].startswith("tiny-clip/custom-")
    assert installed[0] in message
