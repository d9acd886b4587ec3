"""The duplicates review through the real worker threads: keep toggles, trash, undo, not duplicates, compare."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QStyleOptionViewItem
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from photoembed.config import Paths
from photoembed.dedup.records import Cluster, ClusterPhoto
from photoembed.gui.controller import LibraryController
from photoembed.gui.dupes_view import CompareDelegate, DuplicatesView
from photoembed.gui.main_window import MainWindow
from photoembed.gui.models import ClusterPhotosModel, FolderRole, LabelRole, folder_difference
from tests.dedup.conftest import scene
from tests.gui.test_models import provider

WAIT_MS = 30_000


@pytest.fixture
def library_folder(tmp_path: Path) -> Path:
    """trip/ holds the originals; phone-backup/ an identical copy; trip/ a resized copy; two other photos."""
    folder = tmp_path / "photos"
    (folder / "trip").mkdir(parents=True)
    (folder / "phone-backup").mkdir()
    scene(61).save(folder / "trip" / "Aqua.jpg", quality=90)
    (folder / "phone-backup" / "Aqua.jpg").write_bytes((folder / "trip" / "Aqua.jpg").read_bytes())
    big = scene(62)
    big.save(folder / "trip" / "big.png")
    big.resize((320, 240)).save(folder / "trip" / "small.jpg", quality=90)
    scene(63).save(folder / "trip" / "other.jpg")
    scene(64).save(folder / "trip" / "another.jpg")
    return folder


@pytest.fixture
def threaded(home: Path) -> Iterator[LibraryController]:
    """A controller whose tasks and pools run on their real threads."""
    ctl = LibraryController(Paths.resolve(home), watch=False)
    yield ctl
    ctl.shutdown()


@pytest.fixture
def view(qtbot: QtBot, threaded: LibraryController, library_folder: Path) -> DuplicatesView:
    window = MainWindow(threaded)
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    threaded.open(then_add=[library_folder])
    window.dupes.ask_confirmation = lambda plan: True  # type: ignore[method-assign]
    window.tabs.setCurrentWidget(window.dupes)
    qtbot.waitUntil(lambda: window.dupes.clusters.rowCount() == 2, timeout=WAIT_MS)
    return window.dupes


def _select(view: DuplicatesView, name: str) -> Cluster:
    row = next(i for i, c in enumerate(view.clusters.clusters()) if any(p.path.name == name for p in c.photos))
    view.cluster_list.setCurrentIndex(view.clusters.index(row))
    shown = view.members.cluster_shown
    assert shown is not None
    return shown


def _click_keep(qtbot: QtBot, view: DuplicatesView, member_row: int) -> None:
    """A mouse click on the card's Keep toggle, where the delegate draws it."""
    view.compare.scrollTo(view.members.index(member_row))
    rect = view.compare.visualRect(view.members.index(member_row))
    toggle = CompareDelegate.toggle_rect(rect, view.compare.font())
    qtbot.mouseClick(view.compare.viewport(), Qt.MouseButton.LeftButton, pos=toggle.center())


def _names(view: DuplicatesView) -> list[list[tuple[str, bool]]]:
    return [[(p.path.name, p.keep) for p in c.photos] for c in view.clusters.clusters()]


def test_keep_is_a_toggle_that_never_reorders_and_trash_shows_at_once_and_undo_keeps_the_choice(
    qtbot: QtBot, view: DuplicatesView, threaded: LibraryController, library_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shown = _select(view, "big.png")
    order = [p.path.name for p in shown.photos]
    assert order == ["big.png", "small.jpg"]

    _click_keep(qtbot, view, 1)  # keep the small copy too
    after = view.members.cluster_shown
    assert after is not None
    assert [(p.path.name, p.keep) for p in after.photos] == [("big.png", True), ("small.jpg", True)]
    _click_keep(qtbot, view, 0)  # and not the big one
    after = view.members.cluster_shown
    assert after is not None
    assert [(p.path.name, p.keep) for p in after.photos] == [("big.png", False), ("small.jpg", True)]
    assert after.photos[0].reason == "your choice: small.jpg kept instead"
    _click_keep(qtbot, view, 1)  # the last kept photo cannot be untoggled
    after = view.members.cluster_shown
    assert after is not None
    assert [p.keep for p in after.photos] == [False, True]

    # The moment the move is done, before any re-clustering answers, the list no longer shows the file.
    seen_at_recluster: list[list[list[tuple[str, bool]]]] = []
    original = threaded.dupes.find_clusters

    def spy(**kwargs: Any) -> None:
        seen_at_recluster.append(_names(view))
        original(**kwargs)

    monkeypatch.setattr(threaded.dupes, "find_clusters", spy)
    view.trash_current_cluster()
    qtbot.waitUntil(lambda: view.notice.isVisible(), timeout=WAIT_MS)
    assert not (library_folder / "trip" / "big.png").exists()
    assert "Moved 1 file" in view.notice_text.text()
    assert seen_at_recluster, "a re-clustering follows"
    assert all(name != "big.png" for cluster in seen_at_recluster[0] for name, _ in cluster)
    assert view.clusters.rowCount() == 1
    assert "1 cluster" in view.total.text()

    qtbot.mouseClick(view.notice_undo, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: (library_folder / "trip" / "big.png").exists(), timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: any(name == "big.png" for cluster in _names(view) for name, _ in cluster), timeout=WAIT_MS
    )
    restored = next(c for c in _names(view) if any(name == "big.png" for name, _ in c))
    assert restored == [("big.png", False), ("small.jpg", True)], "undo restores the manual keeper choice"


def test_not_duplicates_can_be_undone(qtbot: QtBot, view: DuplicatesView) -> None:
    _select(view, "Aqua.jpg")
    view.not_dupes.click()
    qtbot.waitUntil(lambda: view.clusters.rowCount() == 1 and view.notice.isVisible(), timeout=WAIT_MS)
    assert "not duplicates" in view.notice_text.text()
    answers: list[int] = []
    view.controller.dupes.find_clusters(tier=None, threshold=view.threshold(), time_window=None,
                                  on_result=lambda found: answers.append(len(found)), on_error=lambda e: None)
    qtbot.waitUntil(lambda: bool(answers), timeout=WAIT_MS)
    assert answers == [1]  # the mark holds for a new search
    qtbot.mouseClick(view.notice_undo, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.clusters.rowCount() == 2, timeout=WAIT_MS)
    assert any(c.tier == "identical" for c in view.clusters.clusters())


def test_cards_show_folders_labels_and_whole_reasons(view: DuplicatesView, library_folder: Path) -> None:
    _select(view, "Aqua.jpg")
    shown = view.members.cluster_shown
    assert shown is not None
    rows = {view.members.index(r).data(Qt.ItemDataRole.DisplayRole): r for r in range(view.members.rowCount())}
    copy = next(r for r, p in enumerate(shown.photos) if p.path.parent.name == "phone-backup")
    keeper = 1 - copy
    assert len(rows) == 1  # both are named Aqua.jpg: only the folder tells them apart
    assert view.members.index(copy).data(FolderRole) == (str(library_folder) + "/", "phone-backup")
    assert view.members.index(keeper).data(FolderRole) == (str(library_folder / "trip"), "")
    assert view.members.index(copy).data(LabelRole) == "exact copy"
    option = QStyleOptionViewItem()
    option.font = view.compare.font()
    delegate = view.compare_delegate
    short = delegate.sizeHint(option, view.members.index(copy)).height()
    long_reason = "a reason long enough to need several lines on a card of this width, " * 3
    assert delegate.reason_height(option.font, long_reason) > delegate.reason_height(option.font, "short")
    assert short >= delegate.reason_height(option.font, str(view.members.index(copy).data()))


def test_bulk_trash_skips_similar_shots(qtbot: QtBot, view: DuplicatesView) -> None:
    similar = Cluster("similar", (
        ClusterPhoto(900, Path("/x/a.jpg"), 5, 1, "ha", True, "keep", "keeper", 1.0, False),
        ClusterPhoto(901, Path("/x/b.jpg"), 5, 1, "hb", False, "r", "similar", 0.95, False, "similar 0.95"),
    ))
    view.clusters.set_clusters([*view.clusters.clusters(), similar])
    monkey: list[list[Cluster]] = []
    view._confirm_and_trash = monkey.append  # type: ignore[method-assign]
    view.trash_all_clusters()
    (chosen,) = monkey
    assert sorted(c.tier for c in chosen) == ["identical", "same"]


def test_side_by_side_compare_zooms_and_pans_together(qtbot: QtBot, view: DuplicatesView) -> None:
    _select(view, "big.png")
    view.compare.setCurrentIndex(view.members.index(1))
    view.open_compare()
    dialog = view._compare_dialog
    assert dialog is not None
    qtbot.waitUntil(lambda: all(v.has_image for v in dialog.views), timeout=WAIT_MS)
    left, right = dialog.views
    assert right.toolTip().endswith("small.jpg")
    left.zoom_by(2.0)
    assert right.zoom == pytest.approx(2.0)
    right.horizontalScrollBar().setValue(right.horizontalScrollBar().maximum())
    assert left.center_fraction()[0] == pytest.approx(right.center_fraction()[0], abs=0.02)
    assert left.center_fraction()[0] > 0.6
    dialog.fit()
    assert left.zoom == right.zoom == 1.0


def test_folder_difference() -> None:
    keeper = Path("/home/me/photos/trip/Aqua.jpg")
    assert folder_difference(keeper, Path("/home/me/photos/phone-backup/Aqua.jpg")) == (
        "/home/me/photos/", "phone-backup")
    assert folder_difference(keeper, Path("/home/me/photos/trip/sub/a.jpg")) == ("/home/me/photos/trip/", "sub")
    assert folder_difference(keeper, Path("/home/me/photos/trip/b.jpg")) == ("/home/me/photos/trip", "")
    # The keeper lies deeper: this photo's folder is not "the same folder".
    assert folder_difference(keeper, Path("/home/me/photos/b.jpg")) == ("/home/me/", "photos")
    assert folder_difference(Path("/a.jpg"), Path("/b.jpg")) == ("/", "")


def test_cluster_photos_model_with_labels_and_folders(qtmodeltester: ModelTester, qtbot: QtBot) -> None:
    model = ClusterPhotosModel(provider())
    model.set_cluster(Cluster("same", (
        ClusterPhoto(1, Path("/a/trip/x.jpg"), 5, 1, "h1", True, "keep: older file", "keeper", 1.0, False),
        ClusterPhoto(2, Path("/a/backup/x.jpg"), 5, 1, "h2", False, "r", "same", 0.9, False, "resized 50%"),
    )))
    qtmodeltester.check(model, force_py=True)
    assert model.index(1).data(LabelRole) == "resized 50%"
    assert model.index(1).data(FolderRole) == ("/a/", "backup")


def test_a_tier_button_lists_that_tier_only(qtbot: QtBot, view: DuplicatesView) -> None:
    same = next(b for b in view.tier_buttons.buttons() if b.property("tier") == "same")
    same.click()
    qtbot.waitUntil(lambda: view.clusters.rowCount() == 1, timeout=WAIT_MS)
    assert [c.tier for c in view.clusters.clusters()] == ["same"]
