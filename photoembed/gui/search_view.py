"""The library view, the app's home page: every photo newest first, grouped by month, in one grid.

Clicking a folder shows that folder's photos; typing a query turns the same grid into ranked results (text or
a dropped photo, with filters), and clearing the query goes back to browsing where it was.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QDate, QItemSelection, QItemSelectionModel, QPoint, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateEdit,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from photoembed.dedup.records import TrashPlan
from photoembed.gui import theme
from photoembed.gui.browse import DateScrubber
from photoembed.gui.browse_part import SelectionPlan, library_date_range
from photoembed.gui.controller import LibraryController, LibrarySnapshot
from photoembed.gui.grid import PhotoGrid
from photoembed.gui.model_panel import ModelPanel
from photoembed.gui.models import PhotoGridModel
from photoembed.gui.status_model import LibraryStatus
from photoembed.gui.thumbnails import GRID_THUMB_SIZE
from photoembed.gui.viewer import PhotoViewer, human_bytes
from photoembed.gui.workers import TaskError
from photoembed.imaging.formats import is_photo_name
from photoembed.search.filters import SearchFilters
from photoembed.search.service import SearchResults
from photoembed.storage.browse import BrowseListing, photos_by_date

logger = logging.getLogger(__name__)

DEBOUNCE_MS = 250
BROWSE_DEBOUNCE_MS = 400  # the least time between two re-listings of the library while it changes
THUMB_SIZE = GRID_THUMB_SIZE  # the size the disk cache keeps
PAGE = 200

FORMAT_CHOICES = (
    ("All types", ()),
    ("JPEG", ("jpeg",)),
    ("PNG", ("png",)),
    ("HEIC / HEIF", ("heic", "heif")),
    ("Camera RAW", ("raw",)),
    ("WebP / AVIF", ("webp", "avif")),
    ("TIFF", ("tiff",)),
    ("GIF / BMP", ("gif", "bmp")),
)

NO_DATE = QDate(1900, 1, 1)  # the date fields' minimum, shown as a dash: no date known yet


def photo_paths_from(event: QDragEnterEvent | QDropEvent) -> list[Path]:
    mime = event.mimeData()
    if not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


class SearchField(QLineEdit):
    """The search box; a photo dropped on it becomes a search by photo.

    Signals:
        photo_dropped(path: str)
    """

    photo_dropped = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        paths = photo_paths_from(event)
        if paths and is_photo_name(paths[0].name):
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        paths = photo_paths_from(event)
        if paths and is_photo_name(paths[0].name):
            event.acceptProposedAction()
            self.photo_dropped.emit(str(paths[0]))
        else:
            super().dropEvent(event)




class SearchView(QWidget):
    """The library grid: browse every photo (or one folder's) by date, or search; one virtualised grid.

    Signals:
        status(message: str): a line for the status bar.
    """

    status = Signal(str)

    def __init__(self, controller: LibraryController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self._request = 0  # the id of the query whose answer is still wanted
        self._browse_request = 0
        self._listing: BrowseListing | None = None
        self._listing_folder: str | None = None  # the folder the listing was read for ("" = all)
        self._browse_generation: int | None = None
        self._browse_top: int | None = None  # the photo at the top of the grid when browsing was left
        self._showing_browse = False  # the grid holds the listing (not results)
        self._photo: Path | None = None
        self._k = PAGE
        self._model_available = True
        self._photo_count = 0
        self._folder_count = 0

        self.field = SearchField(self)
        self.field.setPlaceholderText(
            "Describe a photo — “a dog on the beach”, “sunset + sea - people” — or drop one here"
        )
        self.field.setClearButtonEnabled(True)
        self.field.addAction(theme.icon("search"), QLineEdit.ActionPosition.LeadingPosition)
        self.field.setMinimumHeight(34)
        self.field.textEdited.connect(self._text_edited)
        self.field.returnPressed.connect(self._run_now)
        self.field.photo_dropped.connect(lambda p: self.search_photo(Path(p)))

        self.folder = QComboBox(self)
        self.folder.addItem("All folders", None)
        self.folder.setToolTip("Only photos under this folder")
        self.type = QComboBox(self)
        for label, formats in FORMAT_CHOICES:
            self.type.addItem(label, formats)
        self.from_check = QCheckBox("From", self)
        self.from_date = QDateEdit(self)
        self.to_check = QCheckBox("to", self)
        self.to_date = QDateEdit(self)
        self._dates_generation: int | None = None  # the library generation the date range was read at
        for edit in (self.from_date, self.to_date):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setEnabled(False)
            # Until the library's date range is known, a disabled field shows a dash, not a made-up date.
            edit.setMinimumDate(NO_DATE)
            edit.setSpecialValueText("—")
            edit.setDate(NO_DATE)
        self.from_check.toggled.connect(lambda on: self._date_toggled(self.from_date, on))
        self.to_check.toggled.connect(lambda on: self._date_toggled(self.to_date, on))
        for widget in (self.folder, self.type):
            widget.currentIndexChanged.connect(self._filters_changed)
        for check in (self.from_check, self.to_check):
            check.toggled.connect(self._filters_changed)
        for edit in (self.from_date, self.to_date):
            edit.dateChanged.connect(self._filters_changed)

        filters = QHBoxLayout()
        filter_icon = QLabel(self)
        filter_icon.setPixmap(theme.icon("filter").pixmap(16, 16))
        filters.addWidget(filter_icon)
        filters.addWidget(self.folder, 2)
        filters.addWidget(self.type, 1)
        filters.addSpacing(12)
        filters.addWidget(self.from_check)
        filters.addWidget(self.from_date)
        filters.addWidget(self.to_check)
        filters.addWidget(self.to_date)
        filters.addStretch(1)
        self.more = QPushButton("Show more", self)
        self.more.setToolTip("Ask for more results (scores keep falling; nothing is cut off silently)")
        self.more.clicked.connect(self._show_more)
        self.more.setVisible(False)
        filters.addWidget(self.more)

        self.model_panel = ModelPanel(controller, compact=True, parent=self)
        self.model_panel.setVisible(False)

        self.grid_model = PhotoGridModel(controller.thumbnails, thumb_size=THUMB_SIZE, parent=self)
        self.grid = PhotoGrid(THUMB_SIZE, show_score=raw_scores_wanted(), parent=self)
        self.grid.setModel(self.grid_model)
        self.grid.open_requested.connect(self.open_row)
        self.grid.similar_requested.connect(lambda p: self.search_photo(Path(p)))
        self.grid.trash_requested.connect(self.trash_photos)
        self.undo_button = QPushButton(theme.icon("undo"), "Undo", self)
        self.undo_button.setToolTip("Put back the photos just moved to the trash")
        self.undo_button.setVisible(False)
        self.undo_button.clicked.connect(self.undo_trash)
        self._last_batch: int | None = None
        self._viewer: PhotoViewer | None = None
        self.grid.verticalScrollBar().valueChanged.connect(lambda _v: self._follow_scroll())
        self.scrubber = DateScrubber(self)
        self.scrubber.jump_requested.connect(self.jump_to_row)
        self.scrubber.setVisible(False)
        self.when = QLabel(self)
        self.when.setObjectName("gridMonth")
        when_font = self.when.font()
        when_font.setBold(True)
        when_font.setPointSizeF(when_font.pointSizeF() * 1.15)
        self.when.setFont(when_font)

        self.message = QLabel(self)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setObjectName("searchMessage")
        grid_page = QWidget(self)
        grid_layout = QHBoxLayout(grid_page)
        grid_layout.setContentsMargins(0, 0, 0, 0)
        grid_layout.addWidget(self.grid, 1)
        grid_layout.addWidget(self.scrubber)
        self.grid_page = grid_page
        self.stack = QStackedWidget(self)
        self.retry = QPushButton(theme.icon("refresh"), "Try again", self)
        self.retry.setToolTip("Run the query again (after fixing what the message says)")
        self.retry.clicked.connect(self._run_now)
        self.retry.setVisible(False)
        message_page = QWidget(self)
        message_layout = QVBoxLayout(message_page)
        message_layout.addStretch(1)
        message_layout.addWidget(self.message)
        message_layout.addWidget(self.retry, 0, Qt.AlignmentFlag.AlignHCenter)
        message_layout.addStretch(1)
        self.message_page = message_page
        self.stack.addWidget(message_page)
        self.stack.addWidget(grid_page)

        self.summary = QLabel(self)
        self.summary.setObjectName("resultSummary")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 6)
        layout.addWidget(self.field)
        layout.addLayout(filters)
        layout.addWidget(self.model_panel)
        heading = QHBoxLayout()
        heading.addWidget(self.when)
        heading.addStretch(1)
        heading.addWidget(self.summary)
        heading.addWidget(self.undo_button)
        layout.addLayout(heading)
        layout.addWidget(self.stack, 1)
        self._browse_debounce = QTimer(self)
        self._browse_debounce.setSingleShot(True)
        self._browse_debounce.setInterval(BROWSE_DEBOUNCE_MS)
        self._browse_debounce.timeout.connect(self.load_browse)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._run_now)
        controller.snapshot.connect(self.apply_snapshot)
        controller.changed.connect(self._library_changed)
        controller.status.changed.connect(self._status_changed)
        self._show_message()

    # -- state from the library ----------------------------------------------------------------------

    def apply_snapshot(self, snap: LibrarySnapshot) -> None:
        self._photo_count = snap.ok
        self._folder_count = len(snap.roots)
        current = self.folder.currentData()
        known = [self.folder.itemData(i) for i in range(1, self.folder.count())]
        wanted = [str(row.path) for row in snap.roots]
        if known != wanted:
            self.folder.blockSignals(True)
            self.folder.clear()
            self.folder.addItem("All folders", None)
            for row in snap.roots:
                self.folder.addItem(theme.icon("folder"), row.path.name or str(row.path), str(row.path))
            found = self.folder.findData(current)
            self.folder.setCurrentIndex(max(0, found))
            self.folder.blockSignals(False)
        if not self._has_query() and snap.generation != self._browse_generation:
            self._browse_debounce.start()  # photos came or went: the listing follows
        elif self.grid_model.rowCount() == 0 and not self._has_query():
            self._show_message()
        if snap.generation != self._dates_generation and snap.ok and not self.controller.status.state.busy:
            self._dates_generation = snap.generation
            self.controller.browse.read(library_date_range, self._apply_date_range)

    def _apply_date_range(self, span: tuple[float, float] | None) -> None:
        """Default the date fields to the library's range; a field the user turned on keeps its date."""
        if span is None:
            return
        for check, edit, stamp in ((self.from_check, self.from_date, span[0]), (self.to_check, self.to_date, span[1])):
            if check.isChecked():
                continue
            day = dt.date.fromtimestamp(stamp)
            edit.blockSignals(True)
            edit.setDate(QDate(day.year, day.month, day.day))
            edit.blockSignals(False)

    def _date_toggled(self, edit: QDateEdit, on: bool) -> None:
        edit.setEnabled(on)
        if on and edit.date() == NO_DATE:
            edit.blockSignals(True)
            edit.setDate(QDate.currentDate())  # the library has no dated photo yet
            edit.blockSignals(False)

    def _status_changed(self, state: LibraryStatus) -> None:
        # The banner and the empty page follow the library's one state (as the status bar does).
        self._model_available = not state.model_missing
        self.model_panel.setVisible(state.model_missing)
        if self.grid_model.rowCount() == 0 and not self._has_query():
            self._show_message()

    def _library_changed(self) -> None:
        # Photos or vectors changed: the results on screen may include a deleted photo. Re-run quietly.
        self._browse_generation = None  # the listing is stale, whether shown now or when the query clears
        if self._has_query():
            self._debounce.start()
        else:
            self._browse_debounce.start()

    # -- browsing ------------------------------------------------------------------------------------

    @property
    def browsing(self) -> bool:
        """Whether the grid shows the library by date (no query)."""
        return not self._has_query()

    def apply_view_settings(self) -> None:
        """The raw-scores choice changed in Settings."""
        self.grid.delegate.show_score = raw_scores_wanted()
        self.grid.viewport().update()

    def show_folder(self, folder: Path | None) -> None:
        """Show one library folder (None: every folder); a running query is narrowed to it too."""
        found = self.folder.findData(str(folder)) if folder is not None else 0
        if found < 0:
            return
        if found == self.folder.currentIndex():
            if self.browsing:
                self.load_browse()
            return
        self.folder.setCurrentIndex(found)  # -> _filters_changed

    def load_browse(self) -> None:
        """Read the photos by date (of the chosen folder) on the read pool, then show them."""
        self._browse_debounce.stop()
        if self.controller.library is None:
            return
        self._browse_request += 1
        request = self._browse_request
        folder = self.folder.currentData()
        root = Path(folder) if folder else None
        started = time.monotonic()

        def done(listing: BrowseListing) -> None:
            # While photos keep arriving, re-list at most every few listing-times: at 100k photos one listing
            # takes a second or more of the read pool, which searches share.
            elapsed_ms = (time.monotonic() - started) * 1000
            self._browse_debounce.setInterval(int(max(BROWSE_DEBOUNCE_MS, 4 * elapsed_ms)))
            self._browse_ready(request, folder or "", listing)

        self.controller.browse.read(lambda library: photos_by_date(library.catalog, root=root), done)

    def _browse_ready(self, request: int, folder: str, listing: BrowseListing) -> None:
        if request != self._browse_request:
            return
        top = self._top_photo() if self._listing_folder == folder else None
        self._listing = listing
        self._listing_folder = folder
        self._browse_generation = listing.generation
        if self.browsing:
            self._show_browse(keep=top)

    def _show_browse(self, *, keep: int | None = None) -> None:
        listing = self._listing
        folder = self.folder.currentData() or ""
        if listing is None or self._listing_folder != folder:
            self.load_browse()
            return
        chosen = self._chosen_photos() if self._showing_browse else None
        self.grid_model.set_results(
            listing.ids, listing.paths, None, stamps=listing.stamps,
            months=[(m.first_row, m.year, m.month) for m in listing.months],
        )
        if chosen is not None:
            self._choose_again(*chosen)  # photos keep arriving while indexing: what the user picked stays picked
        self._showing_browse = True
        self.more.setVisible(False)
        self.scrubber.set_months(listing.months)
        self.scrubber.setVisible(len(listing.months) > 1)
        if not len(listing):
            self.when.setText("")
            self.summary.setText("")
            self._show_message()
            return
        where = f" in {Path(folder).name}" if folder else ""
        self.summary.setText(f"{len(listing):,} photos{where}, newest first")
        self.stack.setCurrentWidget(self.grid_page)
        row = self.grid_model.row_of(keep) if keep is not None else -1
        if row >= 0:
            self.grid.scrollTo(self.grid_model.index(row), PhotoGrid.ScrollHint.PositionAtTop)
        else:
            self.grid.scrollToTop()
        self._follow_scroll()

    def _chosen_photos(self) -> tuple[np.ndarray, int | None]:
        """The ids of the selected photos and of the current one (before the listing is replaced)."""
        rows: list[int] = []
        ranges = self.grid.selectionModel().selection()
        for k in range(ranges.count()):
            span = ranges.at(k)
            rows.extend(range(span.top(), span.bottom() + 1))
        ids = self.grid_model.ids()
        chosen = ids[np.asarray(rows, dtype=np.int64)] if rows else np.empty(0, dtype=np.int64)
        current = self.grid.currentIndex()
        return chosen, (self.grid_model.photo_id(current.row()) if current.isValid() else None)

    def _choose_again(self, chosen: np.ndarray, current: int | None) -> None:
        """Select the same photos in the new listing (where they still are), and make the same one current."""
        selection = self.grid.selectionModel()
        rows = np.flatnonzero(np.isin(self.grid_model.ids(), chosen)) if len(chosen) else np.empty(0, dtype=np.int64)
        if current is not None and (row := self.grid_model.row_of(current)) >= 0:
            selection.setCurrentIndex(self.grid_model.index(row), QItemSelectionModel.SelectionFlag.NoUpdate)
        if not len(rows):
            return
        picked = QItemSelection()
        starts = np.flatnonzero(np.diff(rows, prepend=rows[0] - 2) != 1)  # runs of consecutive rows
        for k, start in enumerate(starts.tolist()):
            stop = int(starts[k + 1]) if k + 1 < len(starts) else len(rows)
            picked.select(self.grid_model.index(int(rows[start])), self.grid_model.index(int(rows[stop - 1])))
        selection.select(picked, QItemSelectionModel.SelectionFlag.Select)

    def jump_to_row(self, row: int) -> None:
        if 0 <= row < self.grid_model.rowCount():
            index = self.grid_model.index(row)
            self.grid.scrollTo(index, PhotoGrid.ScrollHint.PositionAtTop)
            self.grid.setCurrentIndex(index)
            self._follow_scroll()

    def _top_row(self) -> int:
        index = self.grid.indexAt(QPoint(self.grid.spacing() + 8, self.grid.spacing() + 8))
        return index.row() if index.isValid() else (0 if self.grid_model.rowCount() else -1)

    def _top_photo(self) -> int | None:
        row = self._top_row()
        return self.grid_model.photo_id(row) if row >= 0 and self._showing_browse else None

    def _follow_scroll(self) -> None:
        if not self.browsing or self._listing is None:
            self.when.setText("")
            return
        row = self._top_row()
        bucket = self._listing.month_of_row(row)
        if bucket is None:
            self.when.setText("")
            return
        from photoembed.gui.models import MONTH_NAMES

        self.when.setText(f"{MONTH_NAMES[bucket.month - 1]} {bucket.year}")
        self.scrubber.follow(row)

    # -- querying ------------------------------------------------------------------------------------

    def focus_search(self) -> None:
        self.field.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.field.selectAll()

    def search_photo(self, path: Path) -> None:
        """Search by a photo (dropped, or "find similar")."""
        self._photo = path
        self.field.setText(f"Similar to: {path.name}")
        self._k = PAGE
        self._run_now()

    def search_text(self, text: str) -> None:
        self.field.setText(text)
        self._photo = None
        self._k = PAGE
        self._run_now()

    def _text_edited(self, _text: str) -> None:
        self._photo = None
        self._k = PAGE
        self._debounce.start()

    def _filters_changed(self) -> None:
        if self._has_query():
            self._k = PAGE
            self._debounce.start()
        else:
            self.load_browse()

    def _show_more(self) -> None:
        self._k *= 2
        self._run_now()

    def _has_query(self) -> bool:
        return self._photo is not None or bool(self.field.text().strip())

    def current_filters(self) -> SearchFilters:
        """The filters as set in the widgets (a snapshot taken on the GUI thread)."""
        folder = self.folder.currentData()
        taken_from = taken_to = None
        if self.from_check.isChecked():
            taken_from = _day_start(self.from_date.date())
        if self.to_check.isChecked():
            taken_to = _day_start(self.to_date.date().addDays(1)) - 1e-3
        return SearchFilters(
            folder=Path(folder) if folder else None,
            taken_from=taken_from,
            taken_to=taken_to,
            formats=tuple(self.type.currentData() or ()),
        )

    def _run_now(self) -> None:
        self._debounce.stop()
        self._request += 1
        request = self._request
        if not self._has_query():
            self._photo = None
            keep, self._browse_top = self._browse_top, None
            self._show_browse(keep=keep)  # a cleared query goes back to where browsing was
            return
        if self._showing_browse:
            row = self._top_row()
            self._browse_top = self.grid_model.photo_id(row) if row >= 0 else None
        self._showing_browse = False
        if self.controller.library is None:
            self._show_message("The library is still opening…")
            return
        if not self._model_available:
            self._show_message(
                "Searching needs the embedding model, which is not installed yet. Download it or install it "
                "from a file above; duplicates work meanwhile."
            )
            return
        text = self.field.text().strip()
        what = f"photos like {self._photo.name}" if self._photo else f"“{text}”"
        self.summary.setText(f"Searching {what}…")
        self.controller.browse.search(
            query=None if self._photo else text,
            photo=self._photo,
            filters=self.current_filters(),
            k=self._k,
            on_result=lambda results: self._results(request, results),
            on_error=lambda error: self._failed(request, error),
        )

    def _results(self, request: int, results: SearchResults) -> None:
        if request != self._request:
            return  # a newer query was typed meanwhile
        hits = results.hits
        if self._photo is not None:
            # "Find similar" never offers the query photo itself (its own best match).
            query = _resolved(self._photo)
            hits = [h for h in hits if _resolved(h.path) != query]
        self._showing_browse = False
        self.scrubber.setVisible(False)
        self.when.setText("Results")
        self.grid_model.set_results(
            [h.photo_id for h in hits], [str(h.path) for h in hits], [h.score for h in hits],
            stamps=None,
        )
        if hits:
            self.stack.setCurrentWidget(self.grid_page)
            self.summary.setText(f"{len(hits):,} photos, best match first")
            self.grid.scrollToTop()
        else:
            self.summary.setText("")
            self._show_message(results.note or "No photo matches.")
        self.more.setVisible(len(results.hits) >= self._k)

    def _failed(self, request: int, error: TaskError) -> None:
        if request != self._request:
            return
        self._showing_browse = False
        self.grid_model.clear()
        self.summary.setText("")
        self.when.setText("")
        self._show_message(error.message)
        self.retry.setVisible(error.known)  # a known problem (unreadable photo, bad query) can be fixed and retried

    def _show_message(self, text: str | None = None) -> None:
        if text is None:
            if self.controller.library is None:
                text = "Opening the library…"
            elif self._photo_count and self.folder.currentData():
                text = "No photos in this folder yet."
            elif self._folder_count and self.controller.status.state.busy:
                text = ("Your photos are being indexed.\n"
                        "Search works on what is indexed so far; type to try it.")
            elif self._folder_count:
                text = "No photos found in your folders yet."
            else:
                text = "Add a folder of photos to start searching."
        self.message.setText(text)
        self.retry.setVisible(False)
        self.stack.setCurrentWidget(self.message_page)
        self.scrubber.setVisible(False)
        self.more.setVisible(False)

    # -- viewing -------------------------------------------------------------------------------------

    def open_row(self, row: int) -> PhotoViewer | None:
        count = self.grid_model.rowCount()
        if not 0 <= row < count:
            return None
        viewer = PhotoViewer(self.controller, path_at=self.grid_model.path, count=count, start=row, parent=self)
        viewer.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        viewer.similar_requested.connect(lambda p: self.search_photo(Path(p)))
        viewer.trash_requested.connect(self.trash_photos)
        viewer.position_changed.connect(
            lambda r: self.grid.setCurrentIndex(self.grid_model.index(r)) if r < self.grid_model.rowCount() else None
        )
        viewer.destroyed.connect(lambda _obj=None: setattr(self, "_viewer", None))
        self._viewer = viewer
        viewer.show()
        return viewer

    # -- trash ---------------------------------------------------------------------------------------

    def ask_confirmation(self, plan: TrashPlan, refused: list[tuple[Path, str]]) -> bool:
        """Ask before moving photos to the trash (tests replace this)."""
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Move to trash")
        n = plan.files
        box.setText(f"Move {n:,} photo{'s' if n != 1 else ''} ({human_bytes(plan.bytes)}) to the trash?")
        detail = "Another copy of each stays in your library. You can undo this, or restore them from the trash."
        if refused:
            detail += f"\n\n{len(refused):,} of the chosen photos stay where they are: " + "; ".join(
                f"{p.name}: {why}" for p, why in refused[:4]) + ("…" if len(refused) > 4 else "")
        box.setInformativeText(detail)
        box.setStandardButtons(QMessageBox.StandardButton.Cancel)
        move = box.addButton("Move to trash", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is move

    def explain_refusal(self, refused: list[tuple[Path, str]]) -> None:
        """Nothing of the selection can move: say why (tests replace this)."""
        lines = "\n".join(f"• {p.name}: {why}" for p, why in refused[:8])
        QMessageBox.information(
            self, "Move to trash",
            "photoembed only moves a photo to the trash when another copy of it stays in your library, and "
            f"never one in a protected folder, so nothing was moved:\n\n{lines}",
        )

    def trash_photos(self, paths: list[Path]) -> None:
        """Move chosen photos to the trash, under the duplicates' safety rules, after asking."""
        if not paths or self.controller.library is None:
            return
        self.status.emit(f"Checking {len(paths):,} photo{'s' if len(paths) != 1 else ''}…")
        self.controller.browse.plan_selection_trash(paths, self._selection_planned)

    def _selection_planned(self, selection: SelectionPlan) -> None:
        plan = selection.plan
        if not plan.items:
            self.status.emit("Nothing was moved to the trash")
            self.explain_refusal(selection.refused)
            return
        if not self.ask_confirmation(plan, selection.refused):
            self.status.emit("Nothing was moved to the trash")
            return
        self.controller.browse.trash(plan, on_result=lambda batch: self._trashed(batch, plan),
                              on_error=self._trash_failed)

    def _trashed(self, batch: int, plan: TrashPlan) -> None:
        self._last_batch = batch
        self.undo_button.setVisible(True)
        n = plan.files
        self.status.emit(f"Moved {n:,} photo{'s' if n != 1 else ''} ({human_bytes(plan.bytes)}) to the trash — "
                         "Undo puts them back")
        gone = {item.photo_id for item in plan.items}
        viewer = self._viewer
        if viewer is not None:
            position = viewer.position
            ids = [int(i) for i in self.grid_model.ids() if int(i) not in gone]
            keep = [r for r in range(self.grid_model.rowCount()) if self.grid_model.photo_id(r) not in gone]
            paths = [self.grid_model.path(r) for r in keep]
            if ids:
                viewer.set_source(lambda r: paths[r], len(paths), min(position, len(paths) - 1))
            else:
                viewer.close()

    def _trash_failed(self, error: TaskError) -> None:
        self.status.emit(error.message)
        QMessageBox.warning(self, "Move to trash", error.message)

    def undo_trash(self) -> None:
        if self._last_batch is None:
            return
        batch = self._last_batch
        self.undo_button.setEnabled(False)
        self.controller.browse.undo_trash(batch, on_result=self._undone, on_error=self._undo_failed)

    def _undone(self, paths: list[Path]) -> None:
        self._last_batch = None
        self.undo_button.setEnabled(True)
        self.undo_button.setVisible(False)
        self.status.emit(f"Put back {len(paths):,} photo{'s' if len(paths) != 1 else ''} from the trash")

    def _undo_failed(self, error: TaskError) -> None:
        self.undo_button.setEnabled(True)
        self.status.emit(error.message)
        QMessageBox.warning(self, "Undo", error.message)


def raw_scores_wanted() -> bool:
    """Whether Settings asks for raw cosine scores on results."""
    return QSettings().value(theme.RAW_SCORES_KEY, False) in (True, "true", 1, "1")


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path


def _day_start(date: QDate) -> float:
    return dt.datetime(date.year(), date.month(), date.day()).timestamp()
