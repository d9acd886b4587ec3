"""The duplicates view: clusters by tier, a live similarity slider, side-by-side compare, trash and undo."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from pathlib import Path

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPoint, QRect, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QIcon,
    QKeySequence,
    QPainter,
    QPainterPath,
    QPalette,
    QPixmap,
    QShortcut,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QListView,
    QMenu,
    QMessageBox,
    QPushButton,
    QSlider,
    QSplitter,
    QStackedWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from photoembed.dedup.records import TIER_TITLES, TIERS, Cluster, TrashPlan
from photoembed.gui import theme
from photoembed.gui.controller import LibraryController, LibrarySnapshot
from photoembed.gui.grid import copy_path, open_with_system, show_in_file_manager
from photoembed.gui.models import (
    ClusterPhotosModel,
    ClustersModel,
    InfoRole,
    KeeperRole,
    PathRole,
    PhotoCountRole,
    PhotoIdRole,
    ProtectedRole,
    ReasonRole,
    SavingsRole,
    ScoreRole,
    ThumbnailFailedRole,
    ThumbnailRole,
    TierRole,
    cluster_savings,
    with_keeper,
)
from photoembed.gui.viewer import PhotoViewer, human_bytes
from photoembed.gui.workers import TaskError
from photoembed.storage.records import Photo

logger = logging.getLogger(__name__)

ModelIndex = QModelIndex | QPersistentModelIndex

RECLUSTER_DELAY_MS = 300
LIST_THUMB = 56
COMPARE_THUMB = 240
SLIDER_SCALE = 100  # the slider moves in hundredths of cosine similarity


def _rounded(painter: QPainter, rect: QRectF, radius: float, color: QColor) -> None:
    path = QPainterPath()
    path.addRoundedRect(rect, radius, radius)
    painter.fillPath(path, color)


def _paint_thumb(painter: QPainter, box: QRect, pixmap: object, failed: object, placeholder: QIcon) -> None:
    if isinstance(pixmap, QPixmap) and not pixmap.isNull():
        dpr = pixmap.devicePixelRatio() or 1.0
        size = QSize(round(pixmap.width() / dpr), round(pixmap.height() / dpr))
        size.scale(box.size(), Qt.AspectRatioMode.KeepAspectRatio)
        target = QRect(0, 0, size.width(), size.height())
        target.moveCenter(box.center())
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawPixmap(target, pixmap)
        return
    side = max(16, box.width() // 4)
    icon = theme.icon("warning", theme.ACCENT_WARN) if failed else placeholder
    icon.paint(painter, QRect(box.center().x() - side // 2, box.center().y() - side // 2, side, side))


class ClusterDelegate(QStyledItemDelegate):
    """A cluster in the list: keeper thumbnail, then a line each for the tier, the keeper's name, and the count
    with the space it frees (the tier alone on its line fits the list's minimum width without eliding)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._placeholder = theme.icon("image")

    def sizeHint(self, option: QStyleOptionViewItem, index: ModelIndex) -> QSize:
        return QSize(240, LIST_THUMB + 12)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect: QRect = option.rect
        palette = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            _rounded(painter, QRectF(rect.adjusted(3, 2, -3, -2)), 6, palette.color(QPalette.ColorRole.Highlight))
        fg = palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
        box = QRect(rect.x() + 8, rect.y() + 6, LIST_THUMB, LIST_THUMB)
        _paint_thumb(painter, box, index.data(ThumbnailRole), index.data(ThumbnailFailedRole), self._placeholder)
        metrics = QFontMetrics(option.font)
        left = box.right() + 10
        width = rect.right() - left - 8
        painter.setPen(fg)
        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        count = int(index.data(PhotoCountRole) or 0)
        tier = str(index.data(TierRole))
        title = QFontMetrics(bold).elidedText(TIER_TITLES.get(tier, tier), Qt.TextElideMode.ElideRight, width)
        painter.drawText(QRect(left, rect.y() + 6, width, metrics.height()), Qt.AlignmentFlag.AlignLeft, title)
        painter.setFont(option.font)
        name = metrics.elidedText(str(index.data(Qt.ItemDataRole.DisplayRole)), Qt.TextElideMode.ElideMiddle, width)
        painter.setPen(fg if selected else theme.muted(fg, 0.3))
        painter.drawText(QRect(left, rect.y() + 8 + metrics.height(), width, metrics.height()),
                         Qt.AlignmentFlag.AlignLeft, name)
        savings = int(index.data(SavingsRole) or 0)
        painter.setPen(fg if selected else theme.ACCENT_KEEP)
        frees = f"frees {human_bytes(savings)}" if savings else "nothing to free"
        painter.drawText(QRect(left, rect.y() + 10 + 2 * metrics.height(), width, metrics.height()),
                         Qt.AlignmentFlag.AlignLeft,
                         metrics.elidedText(f"{count} photos · {frees}", Qt.TextElideMode.ElideRight, width))
        painter.restore()


class CompareDelegate(QStyledItemDelegate):
    """One photo of the compared cluster: thumbnail, KEEP/TRASH tag, and the facts that decide."""

    LINES = 6

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._placeholder = theme.icon("image")
        self._keep = theme.icon("keep", QColor("white"))
        self._lock = theme.icon("lock", QColor("white"))

    def sizeHint(self, option: QStyleOptionViewItem, index: ModelIndex) -> QSize:
        line = QFontMetrics(option.font).height()
        return QSize(COMPARE_THUMB + 20, COMPARE_THUMB + 26 + self.LINES * (line + 1) + 8)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect: QRect = option.rect
        palette = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        keep = bool(index.data(KeeperRole))
        accent = theme.ACCENT_KEEP if keep else theme.ACCENT_TRASH
        card = QRectF(rect.adjusted(4, 4, -4, -4))
        _rounded(painter, card, 10, palette.color(QPalette.ColorRole.Base))
        border = QColor(palette.color(QPalette.ColorRole.Highlight) if selected else accent)
        if not selected:
            border.setAlphaF(0.75)
        painter.setPen(border)
        painter.drawRoundedRect(card, 10, 10)
        if selected:
            painter.drawRoundedRect(card.adjusted(1, 1, -1, -1), 9, 9)

        box = QRect(rect.x() + 10, rect.y() + 10, COMPARE_THUMB, COMPARE_THUMB)
        _paint_thumb(painter, box, index.data(ThumbnailRole), index.data(ThumbnailFailedRole), self._placeholder)

        tag = "KEEP" if keep else "TO TRASH"
        font = QFont(option.font)
        font.setBold(True)
        metrics = QFontMetrics(font)
        tag_rect = QRectF(box.x() + 6, box.y() + 6, metrics.horizontalAdvance(tag) + 30, metrics.height() + 6)
        _rounded(painter, tag_rect, 7, accent)
        if keep:
            icon = self._lock if index.data(ProtectedRole) else self._keep
            icon.paint(painter, QRect(int(tag_rect.x()) + 5, int(tag_rect.y()) + 3, metrics.height(), metrics.height()),
                       Qt.AlignmentFlag.AlignCenter)
        painter.setFont(font)
        painter.setPen(QColor("white"))
        painter.drawText(tag_rect.adjusted(22 if keep else 0, 0, 0, 0), Qt.AlignmentFlag.AlignCenter, tag)

        text = palette.color(QPalette.ColorRole.Text)
        base_font = QFont(option.font)
        metrics = QFontMetrics(base_font)
        line = metrics.height() + 1
        x = rect.x() + 12
        width = rect.width() - 24
        y = box.bottom() + 8
        info = index.data(InfoRole)
        name_font = QFont(base_font)
        name_font.setBold(True)  # measured in the font it is drawn in, or the bold name overruns the card
        name = QFontMetrics(name_font).elidedText(str(index.data(Qt.ItemDataRole.DisplayRole)),
                                                  Qt.TextElideMode.ElideMiddle, width)
        lines: list[tuple[str, QColor, bool]] = [(name, text, True)]
        if isinstance(info, Photo):
            pi = info.info
            dims = f"{pi.width:,} × {pi.height:,}" if pi.width and pi.height else "size unknown"
            lines.append((f"{dims} · {(pi.format or '?').upper()}", text, False))
            taken = dt.datetime.fromtimestamp(pi.taken).strftime("%Y-%m-%d %H:%M") if pi.taken else "date unknown"
            lines.append((f"{human_bytes(info.size)} · {taken}{' · GPS' if pi.has_gps else ''}", text, False))
            sharp = f"sharpness {pi.sharpness:.0f}" if pi.sharpness is not None else "sharpness ?"
            score = index.data(ScoreRole)
            match = f" · match {score:.3f}" if isinstance(score, float) and not keep else ""
            lines.append((sharp + match, theme.muted(text, 0.3), False))
        else:
            lines.append(("…", theme.muted(text, 0.4), False))
        lines.append((metrics.elidedText(str(index.data(ReasonRole) or ""), Qt.TextElideMode.ElideRight, width),
                       accent, False))
        for content, color, bold in lines:
            f = QFont(base_font)
            f.setBold(bold)
            painter.setFont(f)
            painter.setPen(color)
            painter.drawText(QRect(x, y, width, line), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                             content)
            y += line
        painter.restore()


class DuplicatesView(QWidget):
    """Find and resolve duplicates.

    Signals:
        status(message: str): a line for the status bar.
    """

    status = Signal(str)

    def __init__(self, controller: LibraryController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self._request = 0
        self._dirty = True
        self._has_vectors = False
        self._last_batch: int | None = None
        self._last_batch_text = ""
        self._announce = True  # whether the running clustering reports in the status bar

        # -- top bar: tier, threshold, totals, bulk actions
        self.tier_buttons = QButtonGroup(self)
        tier_row = QHBoxLayout()
        for i, (tier, title) in enumerate([(None, "All"), *[(t, TIER_TITLES[t]) for t in TIERS]]):
            button = QToolButton(self)
            button.setText(title)
            button.setCheckable(True)
            button.setProperty("tier", tier)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            self.tier_buttons.addButton(button, i)
            tier_row.addWidget(button)
        self.tier_buttons.button(0).setChecked(True)
        self.tier_buttons.idClicked.connect(lambda _i: self.recluster())

        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(80, 99)
        self.slider.setFixedWidth(180)
        self.slider.setToolTip("How alike two shots must be to count as similar (CLIP similarity)")
        self.slider_label = QLabel(self)
        self.slider_label.setMinimumWidth(120)
        self.slider.valueChanged.connect(self._slider_moved)
        self._recluster_timer = QTimer(self)
        self._recluster_timer.setSingleShot(True)
        self._recluster_timer.setInterval(RECLUSTER_DELAY_MS)
        # A slider move is the user's request and is reported; a library change re-clusters quietly (it must
        # not hide a message such as "Moved … Undo puts them back").
        self._timer_announces = False
        self._recluster_timer.timeout.connect(lambda: self.recluster(announce=self._timer_announces))
        self.slider.setValue(round(controller.settings.similar_threshold * SLIDER_SCALE))

        self.refresh_button = QToolButton(self)
        self.refresh_button.setIcon(theme.icon("refresh"))
        self.refresh_button.setToolTip("Look for duplicates again")
        self.refresh_button.setAutoRaise(True)
        self.refresh_button.clicked.connect(lambda _checked=False: self.recluster())

        tier_row.addSpacing(16)
        tier_row.addWidget(QLabel("Similar shots:", self))
        tier_row.addWidget(self.slider)
        tier_row.addWidget(self.slider_label)
        tier_row.addStretch(1)
        tier_row.addWidget(self.refresh_button)

        self.total = QLabel(self)
        font = self.total.font()
        font.setBold(True)
        self.total.setFont(font)
        self.trash_all = QPushButton(theme.icon("trash", theme.ACCENT_TRASH), "Move all suggested to trash…", self)
        self.trash_all.clicked.connect(self.trash_all_clusters)
        self.undo_button = QPushButton(theme.icon("undo"), "Undo", self)
        self.undo_button.setEnabled(False)
        self.undo_button.clicked.connect(self.undo)
        totals_row = QHBoxLayout()
        totals_row.addWidget(self.total, 1)
        totals_row.addWidget(self.undo_button)
        totals_row.addWidget(self.trash_all)

        # -- cluster list
        self.clusters = ClustersModel(controller.thumbnails, thumb_size=LIST_THUMB, parent=self)
        self.cluster_list = QListView(self)
        self.cluster_list.setModel(self.clusters)
        self.cluster_list.setItemDelegate(ClusterDelegate(self.cluster_list))
        self.cluster_list.setUniformItemSizes(True)
        self.cluster_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.cluster_list.selectionModel().currentChanged.connect(self._cluster_selected)
        self.cluster_list.setMinimumWidth(280)

        # -- compare panel
        self.members = ClusterPhotosModel(controller.thumbnails, thumb_size=COMPARE_THUMB, parent=self)
        self.compare = QListView(self)
        self.compare.setModel(self.members)
        self.compare.setItemDelegate(CompareDelegate(self.compare))
        self.compare.setViewMode(QListView.ViewMode.IconMode)
        self.compare.setFlow(QListView.Flow.LeftToRight)
        self.compare.setWrapping(True)
        self.compare.setResizeMode(QListView.ResizeMode.Adjust)
        self.compare.setMovement(QListView.Movement.Static)
        self.compare.setUniformItemSizes(True)
        self.compare.setSpacing(6)
        self.compare.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.compare.clicked.connect(self._member_clicked)
        self.compare.doubleClicked.connect(self._open_member)
        self.compare.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.compare.customContextMenuRequested.connect(self._member_menu)
        self.compare.setToolTip("Click a photo to keep it instead; double-click to view it large")
        self.cluster_title = QLabel(self)
        title_font = self.cluster_title.font()
        title_font.setPointSizeF(title_font.pointSizeF() * 1.15)
        title_font.setBold(True)
        self.cluster_title.setFont(title_font)
        self.cluster_detail = QLabel(self)
        self.cluster_detail.setWordWrap(True)
        self.not_dupes = QPushButton(theme.icon("not-duplicate"), "Not duplicates", self)
        self.not_dupes.setToolTip("Remember that these photos are not duplicates; they will not be proposed again")
        self.not_dupes.clicked.connect(self.mark_not_duplicates)
        self.trash_cluster = QPushButton(theme.icon("trash", theme.ACCENT_TRASH), "Move the rest to trash…", self)
        self.trash_cluster.clicked.connect(self.trash_current_cluster)
        actions = QHBoxLayout()
        actions.addWidget(self.cluster_detail, 1)
        actions.addWidget(self.not_dupes)
        actions.addWidget(self.trash_cluster)
        compare_panel = QWidget(self)
        compare_layout = QVBoxLayout(compare_panel)
        compare_layout.setContentsMargins(8, 0, 0, 0)
        compare_layout.addWidget(self.cluster_title)
        compare_layout.addLayout(actions)
        compare_layout.addWidget(self.compare, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(self.cluster_list)
        self.splitter.addWidget(compare_panel)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([300, 700])

        self.message = QLabel(self)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.body = QStackedWidget(self)
        self.body.addWidget(self.message)
        self.body.addWidget(self.splitter)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 6)
        layout.addLayout(tier_row)
        layout.addLayout(totals_row)
        layout.addWidget(self.body, 1)

        for key, slot in (
            (QKeySequence(Qt.Key.Key_Delete), self.trash_selected_member),
            (QKeySequence(Qt.Key.Key_K), self.keep_selected_member),
        ):
            shortcut = QShortcut(key, self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)

        controller.changed.connect(self._library_changed)
        controller.snapshot.connect(self._snapshot)
        controller.opened.connect(self._opened)
        self._update_totals()
        self._update_slider_label()
        self._show_message("Open the Duplicates tab to look for duplicates.")
        self._cluster_selected(QModelIndex())

    # -- finding --------------------------------------------------------------------------------------

    def activate(self) -> None:
        """The tab became visible: cluster if the library changed since the last run."""
        if self._dirty:
            self.recluster()

    def current_tier(self) -> str | None:
        button = self.tier_buttons.checkedButton()
        tier = button.property("tier") if button is not None else None
        return str(tier) if tier else None

    def threshold(self) -> float:
        return self.slider.value() / SLIDER_SCALE

    def recluster(self, *, announce: bool = True) -> None:
        """Cluster again with the current tier and threshold (off the GUI thread; stale answers dropped).

        Args:
            announce: say in the status bar that clustering runs, and what it found. Off after a move to the
                trash or an undo, whose own message (with its "Undo" hint) must stay in view.
        """
        self._recluster_timer.stop()
        self._timer_announces = False
        if self.controller.library is None:
            return
        snap = self.controller.last_snapshot
        if snap is None or not snap.roots:
            # Nothing to cluster: no job runs, so none is announced. Stay dirty so the first folder clusters.
            self._request += 1
            self._announce = False
            self._apply([], self._request)
            self._show_message("Add a folder of photos to look for duplicates.")
            return
        self._dirty = False
        self._request += 1
        self._announce = announce
        request = self._request
        tier = self.current_tier()
        if tier == "similar" and not self._has_vectors:
            self._apply([], request)
            self._show_message("Similar shots need the embedding model: install it in the Search tab, "
                               "then they appear here once the photos are indexed.")
            return
        if tier is None and not self._has_vectors:
            tier = "same"  # without vectors, the loosest tier that can be computed
        if announce:
            self.status.emit("Looking for duplicates…")
        if not self.clusters.rowCount():
            self._show_message("Looking for duplicates…")
        self.controller.find_clusters(
            tier=tier,
            threshold=self.threshold(),
            time_window=None,
            on_result=lambda clusters: self._apply(clusters, request),
            on_error=lambda error: self._failed(error, request),
        )

    def _apply(self, clusters: list[Cluster], request: int) -> None:
        if request != self._request:
            return
        shown = self.members.cluster_shown
        self.clusters.set_clusters(clusters)
        self._update_totals()
        if not clusters:
            self.members.set_cluster(None)
            self._cluster_selected(QModelIndex())
            self._show_message("No duplicates found. New photos are checked as they are indexed.")
            if self._announce:
                self.status.emit("No duplicates found")
            return
        self.body.setCurrentWidget(self.splitter)
        row = 0
        if shown is not None:
            keeper = shown.photos[0].photo_id
            row = next((i for i, c in enumerate(clusters) if c.photos[0].photo_id == keeper), 0)
        self.cluster_list.setCurrentIndex(self.clusters.index(row))
        if self._announce:
            self.status.emit(f"{len(clusters):,} cluster{'s' if len(clusters) != 1 else ''} of duplicates")

    def _failed(self, error: TaskError, request: int) -> None:
        if request == self._request:
            self._show_message(error.message)
            if self._announce:
                self.status.emit(error.message)

    def _slider_moved(self, _value: int) -> None:
        self._update_slider_label()
        self._timer_announces = True
        self._recluster_timer.start()

    def _update_slider_label(self) -> None:
        self.slider_label.setText(f"similarity ≥ {self.threshold():.2f}")

    def _library_changed(self) -> None:
        self._dirty = True
        if self.isVisible():
            self._recluster_timer.start()

    def _snapshot(self, snap: LibrarySnapshot) -> None:
        self._has_vectors = snap.model.available and snap.embedded > 0
        if snap.roots and self._dirty and self.isVisible() and not self._recluster_timer.isActive():
            self._recluster_timer.start()  # the first folder arrived while this tab was showing
        self.slider.setEnabled(self._has_vectors)
        if not self._has_vectors:
            self.slider.setToolTip("Similar shots need the embedding model (see the Search tab)")

    def _opened(self) -> None:
        self.slider.setValue(round(self.controller.settings.similar_threshold * SLIDER_SCALE))

    # -- comparing -------------------------------------------------------------------------------------

    def _cluster_selected(self, index: QModelIndex, _previous: QModelIndex | None = None) -> None:
        has = index.isValid()
        self.not_dupes.setEnabled(has)
        self.trash_cluster.setEnabled(has)
        if not has:
            self.members.set_cluster(None)
            self.cluster_title.setText("")
            self.cluster_detail.setText("")
            return
        cluster = self.clusters.cluster(index.row())
        self._show_cluster(cluster)
        ids = [p.photo_id for p in cluster.photos]
        keeper = cluster.photos[0].photo_id
        self.controller.read(
            lambda library: library.catalog.photos_by_ids(ids),
            lambda info: self._info_ready(keeper, info),
        )

    def _show_cluster(self, cluster: Cluster) -> None:
        self.members.set_cluster(cluster)
        removable = [p for p in cluster.photos if not p.keep]
        self.cluster_title.setText(f"{TIER_TITLES.get(cluster.tier, cluster.tier)} — {len(cluster.photos)} photos")
        keeper = cluster.photos[0]
        self.cluster_detail.setText(
            f"Keeping <b>{keeper.path.name}</b> ({keeper.reason}). "
            f"Moving the other {len(removable)} to the trash frees <b>{human_bytes(cluster_savings(cluster))}</b>."
        )
        self.trash_cluster.setText(f"Move {len(removable)} to trash…")
        self.trash_cluster.setEnabled(bool(removable))

    def _info_ready(self, keeper: int, info: dict[int, Photo]) -> None:
        shown = self.members.cluster_shown
        if shown is not None and any(p.photo_id == keeper for p in shown.photos):
            self.members.set_info(info)

    def _current_row(self) -> int:
        index = self.cluster_list.currentIndex()
        return index.row() if index.isValid() else -1

    def _member_clicked(self, index: QModelIndex) -> None:
        """A click on a photo makes it the one to keep."""
        row = self._current_row()
        if row < 0 or not index.isValid() or (index.data(KeeperRole) and index.row() == 0):
            return
        self._set_keeper(row, int(index.data(PhotoIdRole)))

    def keep_selected_member(self) -> None:
        index = self.compare.currentIndex()
        row = self._current_row()
        if index.isValid() and row >= 0:
            self._set_keeper(row, int(index.data(PhotoIdRole)))

    def _set_keeper(self, row: int, photo_id: int) -> None:
        """The user's keeper choice: the cluster is re-labelled here; the service still plans the removal."""
        if row < 0:
            return
        cluster = with_keeper(self.clusters.cluster(row), photo_id)
        self.clusters.replace_cluster(row, cluster)
        info = self.members.info()  # the metadata already read stays valid: same photos
        self._show_cluster(cluster)
        self.members.set_info(info)
        self.compare.setCurrentIndex(self.members.index(0))
        self._update_totals()
        self.status.emit(f"Keeping {cluster.photos[0].path.name}")

    def _open_member(self, index: QModelIndex) -> None:
        cluster = self.members.cluster_shown
        if cluster is None or not index.isValid():
            return
        paths = [p.path for p in cluster.photos]
        viewer = PhotoViewer(self.controller, path_at=lambda i: paths[i], count=len(paths), start=index.row(),
                             parent=self)
        viewer.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        viewer.show()

    def _member_menu(self, pos: QPoint) -> None:
        index = self.compare.indexAt(pos)
        if not index.isValid():
            return
        path = Path(str(index.data(PathRole)))
        menu = QMenu(self)
        photo_id = int(index.data(PhotoIdRole))
        menu.addAction(theme.icon("keep"), "Keep this one", lambda: self._set_keeper(self._current_row(), photo_id))
        if not index.data(KeeperRole):
            menu.addAction(theme.icon("trash"), "Move this one to trash…", lambda: self._trash_member(index.row()))
        menu.addSeparator()
        menu.addAction(theme.icon("open-external"), "Open with system viewer", lambda: open_with_system(path))
        menu.addAction(theme.icon("folder"), "Show in file manager", lambda: show_in_file_manager(path))
        menu.addAction(theme.icon("copy"), "Copy path", lambda: copy_path(path))
        menu.popup(self.compare.viewport().mapToGlobal(pos))

    # -- deciding --------------------------------------------------------------------------------------

    def mark_not_duplicates(self) -> None:
        row = self._current_row()
        if row < 0:
            return
        cluster = self.clusters.cluster(row)

        def done(_pairs: int) -> None:
            current = next((i for i, c in enumerate(self.clusters.clusters()) if c == cluster), -1)
            if current >= 0:
                self.clusters.remove_cluster(current)
            self._update_totals()
            self.status.emit("Marked as not duplicates; they will not be proposed again")
            if not self.clusters.rowCount():
                self._show_message("No duplicates left.")

        self.controller.mark_not_duplicates(cluster, done)

    def trash_current_cluster(self) -> None:
        row = self._current_row()
        if row >= 0:
            self._confirm_and_trash([self.clusters.cluster(row)])

    def trash_all_clusters(self) -> None:
        clusters = self.clusters.clusters()
        if clusters:
            self._confirm_and_trash(clusters)

    def trash_selected_member(self) -> None:
        index = self.compare.currentIndex()
        if index.isValid() and not index.data(KeeperRole):
            self._trash_member(index.row())

    def _trash_member(self, member_row: int) -> None:
        """Trash one non-kept photo of the shown cluster; every other photo counts as kept."""
        row = self._current_row()
        cluster = self.members.cluster_shown
        if row < 0 or cluster is None:
            return
        target = cluster.photos[member_row]
        if target.keep:
            return
        only = dataclasses.replace(
            cluster,
            photos=tuple(dataclasses.replace(p, keep=p.photo_id != target.photo_id) for p in cluster.photos),
        )
        self._confirm_and_trash([only])

    def _confirm_and_trash(self, clusters: list[Cluster]) -> None:
        self.controller.plan_trash(clusters, self._confirm)

    def _confirm(self, plan: TrashPlan) -> None:
        if not plan.files:
            QMessageBox.information(self, "Nothing to move", "Every photo here is kept (protected folders are "
                                    "never proposed for removal).")
            return
        if not self.ask_confirmation(plan):
            return
        self.status.emit(f"Moving {plan.files:,} files to the trash…")
        self.controller.trash(
            plan,
            on_result=lambda batch: self._trashed(batch, plan),
            on_error=lambda error: self._trash_failed(error),
        )

    def ask_confirmation(self, plan: TrashPlan) -> bool:
        """Ask before moving files: how many, how much space, which ones (tests replace this)."""
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Move to trash")
        files = f"{plan.files:,} file{'s' if plan.files != 1 else ''}"
        box.setText(f"Move {files} ({human_bytes(plan.bytes)}) to the trash?")
        box.setInformativeText("A copy of each photo stays in your library. You can undo this, or restore the "
                               "files from the system trash.")
        box.setDetailedText("\n".join(str(item.path) for item in plan.items))
        move = box.addButton("Move to trash", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is move

    def _trashed(self, batch: int, plan: TrashPlan) -> None:
        self._last_batch = batch
        self._last_batch_text = f"{plan.files:,} file{'s' if plan.files != 1 else ''} ({human_bytes(plan.bytes)})"
        self.undo_button.setEnabled(True)
        self.undo_button.setToolTip(f"Put back the {self._last_batch_text} just moved to the trash")
        self.status.emit(f"Moved {self._last_batch_text} to the trash — Undo puts them back")
        self.recluster(announce=False)

    def _trash_failed(self, error: TaskError) -> None:
        QMessageBox.warning(self, "Nothing was moved", error.message)
        self.recluster()

    def undo(self) -> None:
        if self._last_batch is None:
            return
        batch = self._last_batch
        self.undo_button.setEnabled(False)
        self.status.emit("Restoring from the trash…")
        self.controller.undo_trash(
            batch,
            on_result=lambda paths: self._undone(paths),
            on_error=lambda error: self._undo_failed(error),
        )

    def _undone(self, paths: list[Path]) -> None:
        self._last_batch = None
        self.status.emit(f"Restored {len(paths):,} files from the trash")
        self.recluster(announce=False)

    def _undo_failed(self, error: TaskError) -> None:
        self.undo_button.setEnabled(self._last_batch is not None)
        QMessageBox.warning(self, "Undo", error.message)
        self.recluster()

    # -- display ---------------------------------------------------------------------------------------

    def _update_totals(self) -> None:
        count = self.clusters.rowCount()
        total = self.clusters.total_savings()
        if count:
            self.total.setText(f"{count:,} cluster{'s' if count != 1 else ''} · {human_bytes(total)} can be freed")
        else:
            self.total.setText("")
        self.trash_all.setEnabled(count > 0 and total > 0)

    def _show_message(self, text: str) -> None:
        self.message.setText(text)
        self.body.setCurrentWidget(self.message)
