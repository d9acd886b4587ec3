"""The window end to end (offscreen, worker inline): first run, dropping a folder, search, duplicates."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from pytestqt.qtbot import QtBot

from photoembed.config import Paths
from photoembed.dedup.records import TrashPlan
from photoembed.gui.controller import LibraryController
from photoembed.gui.main_window import MainWindow
from photoembed.gui.models import ActivityRole, PathRole, PhotoCountRole, RelevanceRole


def drop(window: MainWindow, paths: list[Path]) -> None:
    """What a file manager's drag and drop delivers: a drag-enter, then a drop, with file URLs."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = QDragEnterEvent(QPoint(300, 300), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    event = QDropEvent(QPointF(300, 300), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    assert event.isAccepted()


def test_first_run_explains_what_to_do(window: MainWindow, controller: LibraryController) -> None:
    controller.open()
    assert window.stack.currentWidget() is window.empty
    assert window.empty.model_panel.isVisible()  # no weights on a fresh home: the card says how to get them
    assert "not installed" in window.empty.model_panel.title.text()
    assert window.sidebar.total.text() == "No folders yet"
    assert window.status_area.model_label.text() == "No model: search off"


def test_dropping_a_folder_adds_it_and_indexes_it(
    window: MainWindow, controller: LibraryController, photos: Path, qtbot: QtBot
) -> None:
    controller.open()
    states: list[tuple[bool, bool]] = []
    controller.index_state.connect(lambda running, paused: states.append((running, paused)))
    drop(window, [photos])

    assert (True, False) in states  # indexing started
    assert controller.library is not None
    assert [r.path for r in controller.library.catalog.roots()] == [photos.resolve()]
    assert window.stack.currentWidget() is window.tabs  # the empty state gave way to the views
    index = window.sidebar.model.index(0)
    assert index.data(PathRole) == str(photos.resolve())
    assert index.data(PhotoCountRole) == 13
    assert controller.library.catalog.counts(None)["ok"] == 13


def test_search_without_a_model_says_so_and_the_rest_works(
    window: MainWindow, controller: LibraryController, photos: Path, qtbot: QtBot
) -> None:
    controller.open(then_add=[photos])
    window.focus_search()
    qtbot.keyClicks(window.search.field, "a red car")
    qtbot.waitUntil(lambda: "needs the embedding model" in window.search.message.text())
    assert window.search.grid_model.rowCount() == 0
    assert window.search.model_panel.isVisible()


def test_duplicates_trash_and_undo(
    window: MainWindow, controller: LibraryController, photos: Path, qtbot: QtBot, tmp_path: Path
) -> None:
    controller.open(then_add=[photos])
    asked: list[TrashPlan] = []

    def confirm(plan: TrashPlan) -> bool:
        asked.append(plan)
        return True

    window.dupes.ask_confirmation = confirm  # type: ignore[method-assign]
    window.tabs.setCurrentWidget(window.dupes)
    qtbot.waitUntil(lambda: window.dupes.clusters.rowCount() >= 1)
    clusters = window.dupes.clusters.clusters()
    identical = next(c for c in clusters if c.tier == "identical")
    assert {p.path.name for p in identical.photos} == {"img00.jpg", "copy-of-img00.jpg"}
    row = clusters.index(identical)
    window.dupes.cluster_list.setCurrentIndex(window.dupes.clusters.index(row))
    assert window.dupes.members.rowCount() == 2

    # Keep the photo suggested for removal instead: it becomes the one kept; the cards stay in place.
    removed_first = identical.removable[0]
    window.dupes._set_keeper(row, removed_first.photo_id)
    chosen = window.dupes.members.cluster_shown
    assert chosen is not None
    assert [p.photo_id for p in chosen.photos if p.keep] == [removed_first.photo_id]
    assert [p.photo_id for p in chosen.photos] == [p.photo_id for p in identical.photos]

    window.dupes.trash_current_cluster()
    assert len(asked) == 1
    assert asked[0].files == 1
    gone = asked[0].items[0].path
    assert gone.name != removed_first.path.name
    assert not gone.exists()
    trash = Path(os.environ["XDG_DATA_HOME"]) / "Trash" / "files"
    assert any(trash.iterdir()), "the file went to the (private) OS trash"
    assert window.dupes.undo_button.isEnabled()
    assert controller.library is not None
    assert controller.library.catalog.photo_by_path(gone) is None

    window.dupes.undo()
    assert gone.exists()
    assert controller.library.catalog.photo_by_path(gone) is not None
    qtbot.waitUntil(lambda: any(c.tier == "identical" for c in window.dupes.clusters.clusters()))


def test_remove_and_protect_a_folder(window: MainWindow, controller: LibraryController, photos: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    controller.open(then_add=[photos])
    window.sidebar.view.setCurrentIndex(window.sidebar.model.index(0))
    window.sidebar.protect_action.trigger()
    assert controller.library is not None
    assert controller.library.catalog.roots()[0].protected
    assert window.sidebar.protect_action.isChecked()

    from PySide6.QtWidgets import QMessageBox

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.sidebar.remove_action.trigger()
    assert controller.library.catalog.roots() == []
    assert photos.is_dir()
    assert len(list(photos.iterdir())) == 13
    assert window.stack.currentWidget() is window.empty


def test_failures_dialog_lists_unreadable_photos(window: MainWindow, controller: LibraryController,
                                                 photos: Path) -> None:
    (photos / "broken.jpg").write_bytes(b"not a jpeg at all")
    controller.open(then_add=[photos])
    assert window.status_area.errors.isVisible()
    assert window.status_area.errors.text() == "1 unreadable"
    from photoembed.gui.status import FailuresDialog

    dialog = FailuresDialog(controller, window)
    assert dialog.model.rowCount() == 1
    assert dialog.model.index(0, 0).data().endswith("broken.jpg")
    assert dialog.model.index(0, 1).data()
    dialog.close()


def test_window_geometry_persists(qtbot: QtBot, home: Path, tmp_path: Path) -> None:
    from photoembed.gui.app import persist_store

    paths = Paths.resolve(home)
    paths.ensure()
    saved = None
    for _ in range(2):
        ctl = LibraryController(paths, force_sync=True, watch=False)
        win = MainWindow(ctl, persist=persist_store(paths))
        qtbot.addWidget(win)
        if saved is None:
            win.show()
            win.resize(win.width(), 480)
            win.tabs.setCurrentIndex(1)
            saved = win.size()
        else:
            assert win.height() == saved.height() == 480  # (the offscreen screen caps the width)
            assert win.tabs.currentIndex() == 1
        win.close()


@pytest.mark.model
def test_search_as_you_type_shows_results(qtbot: QtBot, model_home: Path, photos: Path) -> None:
    ctl = LibraryController(Paths.resolve(model_home), force_sync=True, watch=False)
    win = MainWindow(ctl)
    qtbot.addWidget(win)
    win.show()
    ctl.open(then_add=[photos])
    assert ctl.library is not None
    assert ctl.library.catalog.counts(ctl.library.settings.model)["embedded"] == 13
    assert not win.search.model_panel.isVisible()
    win.focus_search()
    qtbot.keyClicks(win.search.field, "a blue sky")
    qtbot.waitUntil(lambda: win.search.grid_model.rowCount() > 0, timeout=10000)
    model = win.search.grid_model
    scores = [model.index(i).data(Qt.ItemDataRole.UserRole + 3) for i in range(model.rowCount())]
    assert scores == sorted(scores, reverse=True)
    assert {Path(model.index(i).data(PathRole)).parent for i in range(model.rowCount())} == {photos.resolve()}
    assert win.search.summary.text() == "13 photos, best match first"  # no raw cosines by default
    relevance = [model.index(i).data(RelevanceRole) for i in range(model.rowCount())]
    assert relevance[0] == 1.0
    assert relevance[-1] == 0.0

    # Find similar: a library photo searches by its stored vector, on the read pool; it is not its own result.
    win.search.search_photo(photos / "img03.jpg")
    qtbot.waitUntil(lambda: "Similar" in win.search.field.text() and model.rowCount() == 12)
    names = {Path(model.index(i).data(PathRole)).name for i in range(model.rowCount())}
    assert "img03.jpg" not in names
    assert "img00.jpg" in names
    win.close()


def test_status_never_claims_a_duplicates_job_without_folders(
    window: MainWindow, controller: LibraryController, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    monkeypatch.setattr(controller.dupes, "find_clusters", lambda **kwargs: calls.append(kwargs))
    controller.open()
    window.tabs.setCurrentWidget(window.dupes)
    window.dupes.activate()
    window.dupes.recluster()
    assert calls == []  # an empty library is not clustered
    assert "Looking for duplicates" not in window.status_area.message.text()
    assert "Add a folder" in window.dupes.message.text()


def test_trash_message_stays_and_an_empty_result_is_reported(
    window: MainWindow, controller: LibraryController, photos: Path, qtbot: QtBot
) -> None:
    from photoembed.gui.dupes_view import RECLUSTER_DELAY_MS

    controller.open(then_add=[photos])
    window.dupes.ask_confirmation = lambda plan: True  # type: ignore[method-assign]
    window.tabs.setCurrentWidget(window.dupes)
    qtbot.waitUntil(lambda: window.dupes.clusters.rowCount() >= 1)
    assert window.status_area.message.text().endswith("of duplicates")

    window.dupes.trash_all_clusters()
    qtbot.wait(RECLUSTER_DELAY_MS * 3)  # the library-changed re-cluster has run by now
    assert window.dupes.clusters.rowCount() == 0
    assert window.status_area.message.text().startswith("Moved 1 file (")
    assert "Undo puts them back" in window.status_area.message.text()

    window.dupes.refresh_button.click()  # asked for: it is announced, and so is its empty answer
    assert window.status_area.message.text() == "No duplicates found"


def test_indexing_is_shown_in_the_sidebar_search_pane_and_progress_bar(
    window: MainWindow, controller: LibraryController, photos: Path, qtbot: QtBot
) -> None:
    from photoembed.core.indexer import Progress

    seen: list[tuple[str, str, str, str]] = []

    def during(progress: Progress) -> None:
        if progress.phase == "index" and progress.total:
            seen.append((window.sidebar.total.text(), window.search.message.text(),
                         window.status_area.progress.text(), window.sidebar.model.index(0).data(ActivityRole)))

    controller.index_progress.connect(during)  # after the window's own slots: it sees what they showed
    controller.open(then_add=[photos])

    assert seen, "the sync reported its indexing steps"
    sidebar, search, bar, folder = seen[-1]
    assert sidebar.startswith("Indexing… ")
    assert folder == "Indexing…"  # the folder's row says it is being indexed, not the library's N/M
    assert sidebar.endswith("/13")
    assert "being indexed" in search
    assert "Add a folder" not in search
    assert bar.endswith("/13")
    # Once the sync is over, the counts come back.
    assert window.sidebar.total.text() == "13 photos in 1 folder"
    assert window.sidebar.model.index(0).data(ActivityRole) == ""
    # ... and the library view shows the photos.
    qtbot.waitUntil(lambda: window.search.grid_model.rowCount() == 13)
    assert window.search.stack.currentWidget() is window.search.grid_page


def test_date_filter_defaults_to_the_librarys_range(
    window: MainWindow, controller: LibraryController, photos: Path
) -> None:
    import datetime as dt

    assert window.search.from_date.text() == "—"  # nothing known yet: no made-up date
    controller.open(then_add=[photos])
    assert controller.library is not None
    taken = [p.info.taken for p in controller.library.catalog.iter_photos() if p.info.taken is not None]
    first, last = dt.date.fromtimestamp(min(taken)), dt.date.fromtimestamp(max(taken))
    assert window.search.from_date.date().toPython() == first
    assert window.search.to_date.date().toPython() == last
    assert not window.search.from_date.isEnabled()


def test_ctrl_comma_opens_settings_and_view_choices_apply(
    window: MainWindow, controller: LibraryController, qtbot: QtBot, tmp_path: Path
) -> None:
    from PySide6.QtCore import QSettings
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    from photoembed.gui import theme
    from photoembed.gui.settings_dialog import SettingsDialog

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    controller.open()
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Comma, Qt.KeyboardModifier.ControlModifier)
    dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, SettingsDialog) and w.isVisible()]
    assert len(dialogs) == 1
    dialog = dialogs[0]
    dialog.appearance.setCurrentIndex(dialog.appearance.findData("dark"))
    dialog.raw_scores.setChecked(True)
    dialog.accept()
    assert theme.appearance() == "dark"
    assert QApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128
    assert window.search.grid.delegate.show_score
    QSettings().setValue(theme.APPEARANCE_KEY, "system")
    QSettings().setValue(theme.RAW_SCORES_KEY, False)
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    theme.apply_theme(app)


def test_no_duplicates_is_only_said_once_the_library_is_indexed(
    window: MainWindow, controller: LibraryController, tmp_path: Path
) -> None:
    from tests.conftest import make_photo

    folder = tmp_path / "distinct"
    for i in range(3):
        make_photo(folder / f"p{i}.jpg", seed=100 + i)
    controller.open(then_add=[folder])
    window.tabs.setCurrentWidget(window.dupes)
    window.dupes.refresh_button.click()
    assert window.status_area.message.text() == "No duplicates found"
    # While the library is still being scanned (a watcher's batch, a re-scan), "none" is not claimed.
    controller.status.live_started()
    window.dupes.refresh_button.click()  # inline here (force_sync): the answer is in when click() returns
    assert window.status_area.message.text() == "No duplicates so far (indexing continues)"
    assert "still being indexed" in window.dupes.message.text()
