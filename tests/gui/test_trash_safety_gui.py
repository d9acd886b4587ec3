"""The GUI executes a plan built earlier: a keeper edited between listing and trashing is caught (issue 9.1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image
from pytestqt.qtbot import QtBot

from photoembed.dedup.records import TrashPlan
from photoembed.gui import dupes_view
from photoembed.gui.controller import LibraryController
from photoembed.gui.main_window import MainWindow


@pytest.mark.expected_warnings(r"^Not moving 1 file\(s\) to the trash: .* changed since it was listed$")
def test_keeper_edited_after_listing_is_not_trusted(
    window: MainWindow, controller: LibraryController, photos: Path, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(dupes_view.QMessageBox, "warning", lambda _parent, _title, text: warnings.append(text))
    controller.open(then_add=[photos])
    asked: list[TrashPlan] = []

    def confirm(plan: TrashPlan) -> bool:
        asked.append(plan)
        (keeper,) = plan.items[0].kept
        Image.new("RGB", (64, 64), (200, 10, 10)).save(keeper, format="JPEG")  # edited while the dialog was open
        return True

    window.dupes.ask_confirmation = confirm  # type: ignore[method-assign]
    window.tabs.setCurrentWidget(window.dupes)
    qtbot.waitUntil(lambda: window.dupes.clusters.rowCount() >= 1)
    clusters = window.dupes.clusters.clusters()
    identical = next(c for c in clusters if c.tier == "identical")
    window.dupes.cluster_list.setCurrentIndex(window.dupes.clusters.index(clusters.index(identical)))
    window.dupes.trash_current_cluster()
    assert len(asked) == 1
    victim = asked[0].items[0].path
    qtbot.waitUntil(lambda: bool(warnings))
    assert victim.exists(), "the last copy of the original stayed"
    assert "changed since it was listed" in warnings[0]
    trash = Path(os.environ["XDG_DATA_HOME"]) / "Trash" / "files"
    assert not trash.exists() or not any(trash.iterdir())
