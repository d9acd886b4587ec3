"""The main window: library sidebar, search and duplicates views, status area, first-run state."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDragLeaveEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from photoembed import __version__
from photoembed.gui import theme
from photoembed.gui.controller import LibraryController, LibrarySnapshot
from photoembed.gui.dupes_view import DuplicatesView
from photoembed.gui.model_panel import ModelPanel
from photoembed.gui.search_view import SearchView, photo_paths_from
from photoembed.gui.settings_dialog import SettingsDialog
from photoembed.gui.sidebar import Sidebar
from photoembed.gui.status import StatusArea
from photoembed.imaging.formats import is_photo_name

logger = logging.getLogger(__name__)


class EmptyState(QWidget):
    """First run: what photoembed does and how to start (drop a folder here), plus the model card."""

    def __init__(self, controller: LibraryController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("emptyState")
        art = QLabel(self)
        art.setPixmap(theme.icon("drop-folder").pixmap(120, 120))
        art.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title = QLabel("Drop a folder of photos here", self)
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        title.setFont(font)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        text = QLabel(
            "photoembed indexes your photos on this computer, so you can find them by describing what they "
            "show and clean up duplicates. Nothing leaves your machine, and your files are never changed: "
            "removals only ever go to the trash, and can be undone.",
            self,
        )
        text.setWordWrap(True)
        text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        text.setFixedWidth(560)
        text.setMinimumHeight(text.heightForWidth(560))
        self.add = QPushButton(theme.icon("folder-add"), "Add a folder…", self)
        self.add.setDefault(True)
        self.add.setMinimumHeight(36)
        self.model_panel = ModelPanel(controller, parent=self)
        self.model_panel.setFixedWidth(760)
        self.model_panel.setVisible(False)

        layout = QVBoxLayout(self)
        layout.addStretch(2)
        layout.addWidget(art)
        layout.addSpacing(8)
        layout.addWidget(title)
        layout.addWidget(text, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addSpacing(12)
        layout.addWidget(self.add, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(1)
        layout.addWidget(self.model_panel, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(1)
        # The banner follows the library's one state, like the status bar that says "No model".
        controller.status.changed.connect(lambda state: self.model_panel.setVisible(state.model_missing))


class DropOverlay(QFrame):
    """Shown over the window while a folder or photo is dragged onto it."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("dropOverlay")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.label = QLabel(self)
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        font = self.label.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        self.label.setFont(font)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        self.hide()

    def show_for(self, text: str) -> None:
        highlight = self.palette().color(self.palette().ColorRole.Highlight)
        window = self.palette().color(self.palette().ColorRole.Window)
        # Nearly opaque: the text of the page below must not show through the overlay's own text.
        self.setStyleSheet(
            f"#dropOverlay {{ background: rgba({window.red()}, {window.green()}, {window.blue()}, 235);"
            f" border: 3px dashed {highlight.name()}; border-radius: 14px; }}"
        )
        self.label.setText(text)
        parent = self.parentWidget()
        if parent is not None:
            self.setGeometry(parent.rect().adjusted(8, 8, -8, -8))
        self.raise_()
        self.show()


class MainWindow(QMainWindow):
    """The app's window. GUI thread only.

    Args:
        controller: the library controller (owns the worker threads).
        persist: where window geometry and splitter state are kept (GUI-only state, apart from settings).
    """

    def __init__(self, controller: LibraryController, *, persist: QSettings | None = None) -> None:
        super().__init__()
        self.controller = controller
        self.persist = persist
        self.setWindowTitle("photoembed")
        self.setWindowIcon(theme.app_icon())
        self.setAcceptDrops(True)
        self.resize(1280, 820)

        self.sidebar = Sidebar(controller, self)
        self.sidebar.add_requested.connect(self.choose_folder)
        self.sidebar.folder_chosen.connect(self._folder_chosen)
        self.search = SearchView(controller, self)
        self.dupes = DuplicatesView(controller, self)
        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.search, theme.icon("image"), "Photos")
        self.tabs.addTab(self.dupes, theme.icon("duplicates"), "Duplicates")
        self.tabs.currentChanged.connect(self._tab_changed)
        self.empty = EmptyState(controller, self)
        self.empty.add.clicked.connect(self.choose_folder)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.tabs)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(self.stack)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([270, 1010])
        self.splitter.setChildrenCollapsible(False)
        self.setCentralWidget(self.splitter)

        self.status_area = StatusArea(controller, self)
        self.statusBar().addWidget(self.status_area, 1)
        self.statusBar().setSizeGripEnabled(True)
        self.search.status.connect(lambda text: self.status_area.show_message(text))
        self.dupes.status.connect(lambda text: self.status_area.show_message(text))
        self.overlay = DropOverlay(self)

        self._build_menus()
        controller.snapshot.connect(self.apply_snapshot)
        controller.watch_changed.connect(self.sidebar.model.set_watch_states)
        controller.open_failed.connect(self._open_failed)
        self._restore_state()

    # -- menus and shortcuts -------------------------------------------------------------------------

    def _build_menus(self) -> None:
        library = self.menuBar().addMenu("&Library")
        self.add_action = self._action(library, "folder-add", "&Add folder…", QKeySequence.StandardKey.Open,
                                       self.choose_folder)
        self._action(library, "refresh", "&Re-scan all folders", QKeySequence("F5"),
                     lambda: self.controller.start_index())
        self.pause_action = self._action(library, "pause", "&Pause / resume indexing", QKeySequence("Ctrl+P"),
                                         self.status_area._pause_clicked)
        self._action(library, "warning", "&Unreadable photos…", None, self.status_area.show_failures)
        library.addSeparator()
        settings = self._action(library, "settings", "&Settings…", QKeySequence.StandardKey.Preferences,
                                self.open_settings)
        settings.setShortcuts([QKeySequence(QKeySequence.StandardKey.Preferences), QKeySequence("Ctrl+,")])
        library.addSeparator()
        self._action(library, "close", "&Quit", QKeySequence.StandardKey.Quit, self.close)

        view = self.menuBar().addMenu("&View")
        self.find_action = self._action(view, "search", "&Search", QKeySequence.StandardKey.Find, self.focus_search)
        self._action(view, "duplicates", "&Duplicates", QKeySequence("Ctrl+D"),
                     lambda: self.tabs.setCurrentWidget(self.dupes))

        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "info", "&About photoembed", None, self._about)

    def _action(
        self, menu: object, icon_name: str, text: str, shortcut: QKeySequence | QKeySequence.StandardKey | None,
        slot: object,
    ) -> QAction:
        action = QAction(theme.icon(icon_name), text, self)
        if shortcut is not None:
            action.setShortcut(shortcut)
        action.triggered.connect(lambda _checked=False: slot())  # type: ignore[operator]
        menu.addAction(action)  # type: ignore[attr-defined]
        self.addAction(action)
        return action

    def _folder_chosen(self, folder: object) -> None:
        """A folder (or "All photos") was clicked in the sidebar: the library view shows it."""
        self.tabs.setCurrentWidget(self.search)
        self.search.show_folder(Path(str(folder)) if folder else None)

    def focus_search(self) -> None:
        if self.stack.currentWidget() is self.tabs:
            self.tabs.setCurrentWidget(self.search)
            self.search.focus_search()

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of photos", str(Path.home()))
        if folder:
            self.controller.add_roots([Path(folder)])

    def open_settings(self) -> None:
        if self.controller.library is None:
            return
        dialog = SettingsDialog(self.controller, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.view_changed.connect(self.search.apply_view_settings)
        dialog.open()

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "About photoembed",
            f"<h3>photoembed {__version__}</h3><p>Private, offline photo search and duplicate finder.</p>"
            f"<p>Library: {self.controller.paths.data}</p>",
        )

    def _tab_changed(self, _index: int) -> None:
        if self.tabs.currentWidget() is self.dupes:
            self.dupes.activate()

    # -- state ---------------------------------------------------------------------------------------

    def apply_snapshot(self, snap: LibrarySnapshot) -> None:
        self.stack.setCurrentWidget(self.tabs if snap.roots else self.empty)

    def _open_failed(self, message: str) -> None:
        QMessageBox.critical(self, "Cannot open the library", message)

    # -- drag and drop -------------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        paths = photo_paths_from(event)
        folders = [p for p in paths if p.is_dir()]
        if folders:
            event.acceptProposedAction()
            names = ", ".join(p.name for p in folders[:3]) + ("…" if len(folders) > 3 else "")
            self.overlay.show_for(f"Add {names} to the library")
        elif paths and is_photo_name(paths[0].name):
            event.acceptProposedAction()
            self.overlay.show_for(f"Find photos like {paths[0].name}")
        else:
            event.ignore()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self.overlay.hide()
        super().dragLeaveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        self.overlay.hide()
        paths = photo_paths_from(event)
        folders = [p for p in paths if p.is_dir()]
        if folders:
            event.acceptProposedAction()
            self.controller.add_roots(folders)
            return
        if paths and is_photo_name(paths[0].name):
            event.acceptProposedAction()
            self.stack.setCurrentWidget(self.tabs)
            self.tabs.setCurrentWidget(self.search)
            self.search.search_photo(paths[0])
            return
        event.ignore()

    # -- window state --------------------------------------------------------------------------------

    def _restore_state(self) -> None:
        if self.persist is None:
            return
        geometry = self.persist.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        splitter = self.persist.value("window/splitter")
        if isinstance(splitter, QByteArray):
            self.splitter.restoreState(splitter)
        tab = self.persist.value("window/tab")
        if tab is not None:
            self.tabs.setCurrentIndex(int(tab))

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.persist is not None:
            self.persist.setValue("window/geometry", self.saveGeometry())
            self.persist.setValue("window/splitter", self.splitter.saveState())
            self.persist.setValue("window/tab", self.tabs.currentIndex())
            self.persist.sync()
        self.controller.shutdown()
        # A closed window has nothing left to time: a pending status clear or recluster must not fire on it.
        for timer in self.findChildren(QTimer):
            timer.stop()
        super().closeEvent(event)
