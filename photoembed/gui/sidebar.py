"""The library sidebar: the folders with their counts and watcher state; add, remove, protect."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListView,
    QMessageBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from photoembed.gui import theme
from photoembed.gui.controller import LibraryController
from photoembed.gui.delegates import RootDelegate
from photoembed.gui.models import PathRole, PhotoCountRole, ProtectedRole, RootsModel
from photoembed.gui.status_model import LibraryStatus, folder_activity, short_line

if TYPE_CHECKING:
    pass


class Sidebar(QWidget):
    """The library's folders.

    Signals:
        add_requested(): the user wants to pick a folder to add.
        folder_chosen(path: Path | None): a folder was clicked (None: "All photos").
    """

    add_requested = Signal()
    folder_chosen = Signal(object)

    def __init__(self, controller: LibraryController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("sidebar")
        self.model = RootsModel(self)
        self.view = QListView(self)
        self.view.setModel(self.model)
        self.view.setItemDelegate(RootDelegate(self.view))
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setFrameShape(QListView.Shape.NoFrame)
        self.view.setUniformItemSizes(True)
        self.view.setMouseTracking(True)
        self.view.selectionModel().currentChanged.connect(self._update_buttons)
        self.view.clicked.connect(lambda index: self.folder_chosen.emit(Path(str(index.data(PathRole)))))
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # names elide instead
        self.all_photos = QToolButton(self)
        self.all_photos.setText("All photos")
        self.all_photos.setIcon(theme.icon("image"))
        self.all_photos.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.all_photos.setAutoRaise(True)
        self.all_photos.setToolTip("Every photo in the library, newest first")
        self.all_photos.clicked.connect(self._all_photos)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)

        title = QLabel("Library", self)
        title.setObjectName("sidebarTitle")
        font = title.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.1)
        title.setFont(font)
        self.total = QLabel(self)
        self.total.setObjectName("sidebarTotal")

        self.add_action = self._action("folder-add", "Add folder…", "Add a folder of photos (Ctrl+O)",
                                       self.add_requested.emit)
        self.remove_action = self._action("folder-remove", "Remove from library",
                                          "Remove the selected folder from the library (its files are not "
                                          "touched)", self._remove)
        self.protect_action = self._action("lock", "Protected", "Protect the selected folder: its photos are "
                                           "never proposed for removal", self._toggle_protect)
        self.protect_action.setCheckable(True)
        self.refresh_action = self._action("refresh", "Re-scan all folders", "Re-scan every folder now",
                                           lambda: controller.start_index())
        self.add_button = self._tool(self.add_action)
        self.remove_button = self._tool(self.remove_action)
        self.protect_button = self._tool(self.protect_action)
        self.refresh_button = self._tool(self.refresh_action)
        for action in (self.protect_action, self.remove_action, self.refresh_action):
            self.view.addAction(action)

        header = QHBoxLayout()
        header.addWidget(title)
        header.addStretch(1)
        header.addWidget(self.add_button)
        buttons = QHBoxLayout()
        buttons.addWidget(self.remove_button)
        buttons.addWidget(self.protect_button)
        buttons.addStretch(1)
        buttons.addWidget(self.refresh_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 12, 8, 8)
        layout.addLayout(header)
        layout.addWidget(self.total)
        layout.addWidget(self.all_photos)
        layout.addWidget(self.view, 1)
        layout.addLayout(buttons)

        controller.status.changed.connect(self.show_state)
        self.show_state(controller.status.state)
        self._update_buttons()

    def _action(self, icon_name: str, text: str, tip: str, slot: Callable[[], object]) -> QAction:
        action = QAction(theme.icon(icon_name), text, self)
        action.setToolTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def _tool(self, action: QAction) -> QToolButton:
        button = QToolButton(self)
        button.setDefaultAction(action)
        button.setIconSize(QSize(20, 20))
        button.setAutoRaise(True)
        return button

    def show_state(self, state: LibraryStatus) -> None:
        """The folders with their own counts, and the line under the title, from the one library state."""
        if state.snapshot_seen and list(state.roots) != self.model.rows():
            selected = self.selected_path()
            self.model.set_rows(state.roots)
            if selected is not None:
                row = self.model.row_for_path(selected)
                if row >= 0:
                    self.view.setCurrentIndex(self.model.index(row))
        self.model.set_activities({row.root_id: folder_activity(state, row) for row in state.roots})
        line = short_line(state)
        self.total.setText(line)
        # While a sync runs the line says how far it is; the counts stay in the tooltip.
        counted = f"{state.photos:,} photos in {state.folders} folder{'s' if state.folders != 1 else ''}"
        self.total.setToolTip(counted if state.busy and state.folders else "")
        self._update_buttons()

    def _all_photos(self) -> None:
        self.view.setCurrentIndex(QModelIndex())
        self.view.clearSelection()
        self.folder_chosen.emit(None)

    def selected_path(self) -> Path | None:
        index = self.view.currentIndex()
        return Path(str(index.data(PathRole))) if index.isValid() else None

    def _update_buttons(self, *_: QModelIndex) -> None:
        index = self.view.currentIndex()
        has = index.isValid()
        self.remove_action.setEnabled(has)
        self.protect_action.setEnabled(has)
        protected = bool(index.data(ProtectedRole)) if has else False
        self.protect_action.setChecked(protected)
        self.protect_action.setIcon(theme.icon("lock" if protected else "lock-open"))

    def _remove(self) -> None:
        path = self.selected_path()
        if path is None:
            return
        index = self.view.currentIndex()
        count = int(index.data(PhotoCountRole) or 0)
        answer = QMessageBox.question(
            self,
            "Remove folder",
            f"Remove {path} from the library?\n\nIts {count:,} photos are forgotten by photoembed; "
            "no file is touched.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.controller.remove_root(path)

    def _toggle_protect(self) -> None:
        path = self.selected_path()
        if path is None:
            return
        protected = bool(self.view.currentIndex().data(ProtectedRole))
        self.controller.set_protected(path, not protected)
