"""The settings dialog: what it shows and what it hands to the library."""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from photoembed.config import Paths, Settings, load_settings, save_settings
from photoembed.gui.controller import LibraryController


def test_the_model_idle_time_is_edited_in_minutes_and_reaches_the_library(
    qtbot: QtBot, controller: LibraryController, home: Path
) -> None:
    from photoembed.gui.settings_dialog import SettingsDialog

    paths = Paths.resolve(home)
    paths.ensure()
    save_settings(paths, Settings(model_idle_s=90))
    controller.open()
    dialog = SettingsDialog(controller)
    qtbot.addWidget(dialog)
    assert dialog.idle.value() == 2  # 90 s, shown in whole minutes
    assert dialog.edited().model_idle_s == 90  # untouched: kept as it was set
    dialog.idle.setValue(0)
    assert dialog.edited().model_idle_s == 0  # never unload
    dialog.idle.setValue(5)
    dialog.accept()
    assert controller.library is not None
    assert controller.library.model_idle_s == 300
    assert load_settings(paths).model_idle_s == 300
