"""The duplicates view: clusters by tier, a live similarity slider, side-by-side compare, trash and undo."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import (
    QAbstractItemModel,
    QEvent,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QRectF,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QIcon,
    QImage,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPalette,
    QPixmap,
    QShortcut,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QFrame,
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

from photoembed.dedup.records import TIER_TITLES, TIERS, Cluster, ClusterPhoto, TrashPlan
from photoembed.gui import theme
from photoembed.gui.compare_dialog import COMPARE_SIDE, CompareDialog
from photoembed.gui.controller import LibraryController, LibrarySnapshot
from photoembed.gui.grid import copy_path, open_with_system, show_in_file_manager
from photoembed.gui.models import (
    ClusterPhotosModel,
    ClustersModel,
    FolderRole,
    InfoRole,
    KeeperRole,
    LabelRole,
    PathRole,
    PhotoCountRole,
    PhotoIdRole,
    ProtectedRole,
    ReasonRole,
    SavingsRole,
    ThumbnailFailedRole,
    ThumbnailRole,
    TierRole,
    cluster_savings,
)
from photoembed.gui.status_model import LibraryStatus, fingerprint_note
from photoembed.gui.thumbnails import load_qimage
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
    """One photo of the compared cluster: thumbnail, KEEP/TRASH tag and its Keep toggle, name, folder (the
    part that differs from the keeper's folder highlighted), what it is, the facts that decide, and the reason,
    wrapped in full (never elided).

    Signals:
        keep_toggled(row: int): the Keep toggle of the card at ``row`` was clicked.
    """

    keep_toggled = Signal(int)

    FACT_LINES = 5  # name, folder, size and format, bytes and date, label and sharpness
    REASON_LINES = 2  # room always kept for the reason; a longer one makes its card taller

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._placeholder = theme.icon("image")
        self._keep = theme.icon("keep", QColor("white"))
        self._lock = theme.icon("lock", QColor("white"))

    @staticmethod
    def text_width() -> int:
        return COMPARE_THUMB - 4

    def reason_height(self, font: QFont, reason: str) -> int:
        metrics = QFontMetrics(font)
        box = metrics.boundingRect(QRect(0, 0, self.text_width(), 10_000), int(Qt.TextFlag.TextWordWrap), reason)
        return max(box.height(), self.REASON_LINES * metrics.height())

    def sizeHint(self, option: QStyleOptionViewItem, index: ModelIndex) -> QSize:
        line = QFontMetrics(option.font).height() + 1
        reason = self.reason_height(option.font, str(index.data(ReasonRole) or ""))
        return QSize(COMPARE_THUMB + 20, COMPARE_THUMB + 20 + self.FACT_LINES * line + reason + 14)

    @staticmethod
    def toggle_rect(rect: QRect, font: QFont) -> QRect:
        """Where the Keep toggle of a card drawn in ``rect`` sits (top right of the thumbnail)."""
        metrics = QFontMetrics(font)
        width = metrics.horizontalAdvance("Keep") + metrics.height() + 22
        height = metrics.height() + 10
        return QRect(rect.x() + 10 + COMPARE_THUMB - width - 6, rect.y() + 16, width, height)

    def editorEvent(
        self, event: QEvent, model: QAbstractItemModel, option: QStyleOptionViewItem, index: ModelIndex
    ) -> bool:
        if (
            event.type() == QEvent.Type.MouseButtonRelease
            and isinstance(event, QMouseEvent)
            and event.button() == Qt.MouseButton.LeftButton
            and self.toggle_rect(option.rect, option.font).contains(event.position().toPoint())
        ):
            self.keep_toggled.emit(index.row())
            return True
        return super().editorEvent(event, model, option, index)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect: QRect = option.rect
        palette = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        keep = bool(index.data(KeeperRole))
        protected = bool(index.data(ProtectedRole))
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
            icon = self._lock if protected else self._keep
            icon.paint(painter, QRect(int(tag_rect.x()) + 5, int(tag_rect.y()) + 3, metrics.height(), metrics.height()),
                       Qt.AlignmentFlag.AlignCenter)
        painter.setFont(font)
        painter.setPen(QColor("white"))
        painter.drawText(tag_rect.adjusted(22 if keep else 0, 0, 0, 0), Qt.AlignmentFlag.AlignCenter, tag)
        self._paint_toggle(painter, rect, option.font, keep=keep, locked=protected)

        text = palette.color(QPalette.ColorRole.Text)
        base_font = QFont(option.font)
        metrics = QFontMetrics(base_font)
        line = metrics.height() + 1
        x = rect.x() + 12
        width = rect.width() - 24
        y = box.bottom() + 8
        name_font = QFont(base_font)
        name_font.setBold(True)  # measured in the font it is drawn in, or the bold name overruns the card
        name = QFontMetrics(name_font).elidedText(str(index.data(Qt.ItemDataRole.DisplayRole)),
                                                  Qt.TextElideMode.ElideMiddle, width)
        painter.setFont(name_font)
        painter.setPen(text)
        painter.drawText(QRect(x, y, width, line), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)
        y += line
        painter.setFont(base_font)
        self._paint_folder(painter, QRect(x, y, width, line), index.data(FolderRole), text, keep)
        painter.setFont(base_font)
        y += line

        info = index.data(InfoRole)
        lines: list[tuple[str, QColor]] = []
        if isinstance(info, Photo):
            pi = info.info
            dims = f"{pi.width:,} × {pi.height:,}" if pi.width and pi.height else "size unknown"
            lines.append((f"{dims} · {(pi.format or '?').upper()}", text))
            taken = dt.datetime.fromtimestamp(pi.taken).strftime("%Y-%m-%d %H:%M") if pi.taken else "date unknown"
            lines.append((f"{human_bytes(info.size)} · {taken}{' · GPS' if pi.has_gps else ''}", text))
        else:
            lines += [("…", theme.muted(text, 0.4)), ("", text)]
        label = str(index.data(LabelRole) or "")
        facts = [label] if label else []
        if isinstance(info, Photo) and info.info.sharpness is not None:
            facts.append(f"sharpness {info.info.sharpness:.0f}")
        lines.append((" · ".join(facts) if facts else "the suggested keeper" if keep else "", theme.muted(text, 0.3)))
        for content, color in lines:
            painter.setPen(color)
            painter.drawText(QRect(x, y, width, line), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                             metrics.elidedText(content, Qt.TextElideMode.ElideRight, width))
            y += line
        reason = str(index.data(ReasonRole) or "")
        painter.setPen(accent)
        painter.drawText(QRect(x, y + 2, width, self.reason_height(base_font, reason)),
                         int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop) | int(Qt.TextFlag.TextWordWrap),
                         reason)
        painter.restore()

    def _paint_toggle(self, painter: QPainter, rect: QRect, font: QFont, *, keep: bool, locked: bool) -> None:
        """The Keep toggle: a check box drawn on the thumbnail; protected photos show it checked and dimmed."""
        toggle = self.toggle_rect(rect, font)
        back = QColor(0, 0, 0, 150)
        _rounded(painter, QRectF(toggle), 7, back)
        metrics = QFontMetrics(font)
        side = metrics.height() - 2
        check = QRect(toggle.x() + 7, toggle.center().y() - side // 2, side, side)
        painter.setPen(QColor("white"))
        painter.setBrush(QColor(theme.ACCENT_KEEP) if keep else Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(check, 3, 3)
        if keep:
            painter.drawLine(check.x() + 3, check.center().y(), check.center().x() - 1, check.bottom() - 3)
            painter.drawLine(check.center().x() - 1, check.bottom() - 3, check.right() - 2, check.y() + 3)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setFont(font)
        painter.setPen(QColor(255, 255, 255, 140) if locked else QColor("white"))
        painter.drawText(toggle.adjusted(side + 12, 0, -4, 0), Qt.AlignmentFlag.AlignVCenter, "Keep")

    @staticmethod
    def _paint_folder(painter: QPainter, box: QRect, parts: object, text: QColor, keep: bool) -> None:
        """The folder, its part that differs from the keeper's highlighted; the shared part elides first."""
        if not isinstance(parts, tuple) or len(parts) != 2:
            return
        shared, differing = str(parts[0]), str(parts[1])
        metrics = painter.fontMetrics()
        bold = QFont(painter.font())
        bold.setBold(True)
        bold_metrics = QFontMetrics(bold)
        flags = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        if not differing:
            painter.setPen(theme.muted(text, 0.3))
            note = shared if keep else f"{shared} (same folder)"
            painter.drawText(box, flags, metrics.elidedText(note, Qt.TextElideMode.ElideLeft, box.width()))
            return
        diff_width = min(bold_metrics.horizontalAdvance(differing), box.width())
        shown = bold_metrics.elidedText(differing, Qt.TextElideMode.ElideMiddle, box.width())
        room = box.width() - diff_width
        prefix = metrics.elidedText(shared, Qt.TextElideMode.ElideLeft, room) if room > 0 else ""
        painter.setPen(theme.muted(text, 0.3))
        painter.drawText(box, flags, prefix)
        start = box.x() + metrics.horizontalAdvance(prefix)
        highlight = QRect(start - 1, box.y() + 1, min(diff_width, box.right() - start) + 3, box.height() - 2)
        mark = QColor(theme.ACCENT_WARN)
        mark.setAlphaF(0.28)
        _rounded(painter, QRectF(highlight), 3, mark)
        painter.setFont(bold)
        painter.setPen(text)
        painter.drawText(QRect(start, box.y(), box.right() - start, box.height()), flags, shown)


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
        # The user's keep choices, by path (photo ids change when an undo re-catalogs a file), re-applied to
        # every new clustering so that neither a re-cluster nor an undo forgets them; and the service's own
        # suggestions, to put back the suggested reason when a toggle returns to it.
        self._choices: dict[Path, bool] = {}
        self._suggested: dict[Path, tuple[bool, str]] = {}
        self._undo_notice: Callable[[], None] | None = None
        self._compare_dialog: CompareDialog | None = None

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
        self.trash_all.setToolTip("Identical files and copies of the same photo only; similar shots are different "
                                  "photos: review them one cluster at a time")
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
        self.compare_delegate = CompareDelegate(self.compare)
        self.compare_delegate.keep_toggled.connect(self.toggle_keep)
        self.compare.setItemDelegate(self.compare_delegate)
        self.compare.setViewMode(QListView.ViewMode.IconMode)
        self.compare.setFlow(QListView.Flow.LeftToRight)
        self.compare.setWrapping(True)
        self.compare.setResizeMode(QListView.ResizeMode.Adjust)
        self.compare.setMovement(QListView.Movement.Static)
        self.compare.setUniformItemSizes(False)  # a long reason makes its card taller, never cut off
        self.compare.setSpacing(6)
        self.compare.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.compare.doubleClicked.connect(self._open_member)
        self.compare.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.compare.customContextMenuRequested.connect(self._member_menu)
        self.compare.setToolTip("Tick Keep on the photos to keep (K); double-click to view one large")
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
        self.compare_button = QPushButton(theme.icon("image"), "Compare side by side…", self)
        self.compare_button.setToolTip("The keeper and the selected photo, large, zoomed together")
        self.compare_button.clicked.connect(self.open_compare)
        actions = QHBoxLayout()
        actions.addWidget(self.cluster_detail, 1)
        actions.addWidget(self.compare_button)
        actions.addWidget(self.not_dupes)
        actions.addWidget(self.trash_cluster)

        # -- the notice after a move to the trash or a "not duplicates": what happened, and Undo
        self.notice = QFrame(self)
        self.notice.setFrameShape(QFrame.Shape.StyledPanel)
        self.notice_text = QLabel(self.notice)
        self.notice_text.setWordWrap(True)
        self.notice_undo = QPushButton(theme.icon("undo"), "Undo", self.notice)
        self.notice_undo.clicked.connect(self._notice_undo_clicked)
        dismiss = QToolButton(self.notice)
        dismiss.setText("✕")
        dismiss.setAutoRaise(True)
        dismiss.setToolTip("Hide this notice")
        dismiss.clicked.connect(lambda _checked=False: self.notice.hide())
        notice_row = QHBoxLayout(self.notice)
        notice_row.setContentsMargins(8, 4, 4, 4)
        notice_row.addWidget(self.notice_text, 1)
        notice_row.addWidget(self.notice_undo)
        notice_row.addWidget(dismiss)
        self.notice.hide()

        # -- photos fingerprinted by an older version: copies among them can be missing until they are redone
        self.fingerprint_note = QLabel(self)
        self.fingerprint_note.setWordWrap(True)
        self.fingerprint_note.setObjectName("fingerprintNote")
        self.fingerprint_note.hide()
        self._stale_fingerprints = 0
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
        layout.addWidget(self.fingerprint_note)
        layout.addWidget(self.notice)
        layout.addWidget(self.body, 1)

        for key, slot in (
            (QKeySequence(Qt.Key.Key_Delete), self.trash_selected_member),
            (QKeySequence(Qt.Key.Key_K), self.keep_selected_member),
            (QKeySequence(Qt.Key.Key_C), self.open_compare),
        ):
            shortcut = QShortcut(key, self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)

        controller.changed.connect(self._library_changed)
        controller.snapshot.connect(self._snapshot)
        controller.status.changed.connect(self._status_changed)
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
        self.controller.dupes.find_clusters(
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
        shown_row = self._current_row()
        wanted = self.current_tier()
        if wanted is not None:
            clusters = [c for c in clusters if c.tier == wanted]  # one tier: "Same photo" lists no identical ones
        for cluster in clusters:
            for p in cluster.photos:
                self._suggested[p.path] = (p.keep, p.reason)
        clusters = [self._with_choices(c) for c in clusters]
        self.clusters.set_clusters(clusters)
        self._update_totals()
        if not clusters:
            self.members.set_cluster(None)
            self._cluster_selected(QModelIndex())
            if self.controller.status.state.busy:
                # The library is still being scanned or indexed: "none" would not be true yet.
                self._show_message("No duplicates so far. The photos are still being indexed; new ones are "
                                   "checked as they arrive.")
                if self._announce:
                    self.status.emit("No duplicates so far (indexing continues)")
            else:
                self._show_message("No duplicates found. New photos are checked as they are indexed.")
                if self._announce:
                    self.status.emit("No duplicates found")
            return
        self.body.setCurrentWidget(self.splitter)
        # The cluster shown stays shown (found by its photos' paths: an undo gives them new ids); when it is
        # gone, the one that took its place in the list is shown, never a jump back to the first.
        row = min(max(shown_row, 0), len(clusters) - 1)
        if shown is not None:
            paths = {p.path for p in shown.photos}
            row = next((i for i, c in enumerate(clusters) if paths & {p.path for p in c.photos}), row)
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

    def _status_changed(self, state: LibraryStatus) -> None:
        stale = state.stale_fingerprints
        if self._stale_fingerprints and not stale:
            self._library_changed()  # the last ones were redone: copies among them can be found now
        self._stale_fingerprints = stale
        self.fingerprint_note.setVisible(bool(stale))
        if stale:
            self.fingerprint_note.setText(fingerprint_note(state))

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
        self.controller.dupes.read(
            lambda library: library.catalog.photos_by_ids(ids),
            lambda info: self._info_ready(keeper, info),
        )

    def _show_cluster(self, cluster: Cluster) -> None:
        self.members.set_cluster(cluster)
        removable = [p for p in cluster.photos if not p.keep]
        self.cluster_title.setText(f"{TIER_TITLES.get(cluster.tier, cluster.tier)} — {len(cluster.photos)} photos")
        kept = [p for p in cluster.photos if p.keep] or [cluster.photos[0]]
        why = kept[0].reason.removeprefix("keep: ").removeprefix("kept: ")
        names = ", ".join(f"<b>{html.escape(p.path.name)}</b>" for p in kept)
        self.cluster_detail.setText(
            f"Keeping {names}" + (f": {html.escape(why)}. " if len(kept) == 1 else ". ")
            + (f"Moving the other {len(removable)} to the trash frees "
               f"<b>{human_bytes(cluster_savings(cluster))}</b>." if removable else "Nothing goes to the trash.")
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

    def keep_selected_member(self) -> None:
        """K: toggle Keep on the selected photo."""
        index = self.compare.currentIndex()
        if index.isValid():
            self.toggle_keep(index.row())

    def toggle_keep(self, member_row: int) -> None:
        """The Keep toggle of one photo: flips it, in place (the cards never move). A cluster keeps at least
        one photo, and a photo in a protected folder is always kept."""
        row = self._current_row()
        cluster = self.members.cluster_shown
        if row < 0 or cluster is None or not 0 <= member_row < len(cluster.photos):
            return
        target = cluster.photos[member_row]
        if target.protected:
            self.status.emit(f"{target.path.name} is in a protected folder: it is always kept")
            return
        flags = {p.path: p.keep for p in cluster.photos}
        flags[target.path] = not target.keep
        if not any(flags.values()):
            self.status.emit("Keep at least one photo of the cluster")
            return
        self._choose(row, flags)
        self.status.emit(f"{'Keeping' if flags[target.path] else 'Not keeping'} {target.path.name}")

    def _set_keeper(self, row: int, photo_id: int) -> None:
        """Keep ``photo_id`` and only it (and protected photos); the cards stay in their order."""
        if row < 0:
            return
        cluster = self.clusters.cluster(row)
        self._choose(row, {p.path: p.photo_id == photo_id or p.protected for p in cluster.photos})

    def _choose(self, row: int, flags: dict[Path, bool]) -> None:
        self._choices.update(flags)
        cluster = self._with_choices(self.clusters.cluster(row))
        self.clusters.replace_cluster(row, cluster)
        info = self.members.info()  # the metadata already read stays valid: same photos
        current = self.compare.currentIndex().row()
        self._show_cluster(cluster)
        self.members.set_info(info)
        if current >= 0:
            self.compare.setCurrentIndex(self.members.index(current))
        self._update_totals()

    def _with_choices(self, cluster: Cluster) -> Cluster:
        """The cluster with the user's keep choices applied (none apply when they would keep nothing)."""
        if not any(p.path in self._choices for p in cluster.photos):
            return cluster
        flags = {p.path: p.protected or self._choices.get(p.path, p.keep) for p in cluster.photos}
        if not any(flags.values()):
            return cluster
        kept = [p.path.name for p in cluster.photos if flags[p.path]]
        photos: list[ClusterPhoto] = []
        for p in cluster.photos:
            keep = flags[p.path]
            suggested = self._suggested.get(p.path)
            if suggested is not None and suggested[0] == keep:
                reason = suggested[1]
            elif keep:
                reason = "kept: your choice"
            else:
                reason = f"your choice: {', '.join(kept)} kept instead"
            photos.append(dataclasses.replace(p, keep=keep, reason=reason))
        return dataclasses.replace(cluster, photos=tuple(photos))

    # -- the large compare -----------------------------------------------------------------------------

    def open_compare(self) -> None:
        """The keeper and the selected photo (or the next one), large, side by side, zoomed together."""
        cluster = self.members.cluster_shown
        if cluster is None or len(cluster.photos) < 2:
            return
        first = next((k for k, p in enumerate(cluster.photos) if p.keep), 0)
        current = self.compare.currentIndex().row()
        second = current if 0 <= current < len(cluster.photos) and current != first else (
            next(k for k in range(len(cluster.photos)) if k != first))
        chosen = [cluster.photos[first], cluster.photos[second]]
        info = self.members.info()
        captions = [self._caption(p, info.get(p.photo_id)) for p in chosen]
        if self._compare_dialog is not None:
            self._compare_dialog.close()
        dialog = CompareDialog([p.path for p in chosen], captions, self._load_large, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.destroyed.connect(lambda _obj=None: setattr(self, "_compare_dialog", None))
        self._compare_dialog = dialog
        dialog.show()

    @staticmethod
    def _caption(photo: ClusterPhoto, info: Photo | None) -> str:
        parts = ["KEEP" if photo.keep else "TO TRASH", str(photo.path)]
        if info is not None and info.info.width and info.info.height:
            parts.append(f"{info.info.width:,} × {info.info.height:,} · {(info.info.format or '?').upper()}")
        if photo.label:
            parts.append(photo.label)
        return " · ".join(parts) + "\n" + photo.reason

    def _load_large(self, path: Path, done: Callable[[QImage], None]) -> None:
        self.controller.dupes.read(lambda _library: load_qimage(path, COMPARE_SIDE), done)

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
        row = index.row()
        if index.data(KeeperRole):
            menu.addAction(theme.icon("trash"), "Do not keep this one", lambda: self.toggle_keep(row))
        else:
            menu.addAction(theme.icon("keep"), "Keep this one too", lambda: self.toggle_keep(row))
        menu.addAction(theme.icon("keep"), "Keep only this one",
                       lambda: self._set_keeper(self._current_row(), photo_id))
        menu.addAction(theme.icon("image"), "Compare side by side with the keeper…", self.open_compare)
        if not index.data(KeeperRole):
            menu.addAction(theme.icon("trash"), "Move this one to trash…", lambda: self._trash_member(index.row()))
        menu.addSeparator()
        menu.addAction(theme.icon("open-external"), "Open with system viewer", lambda: open_with_system(path))
        menu.addAction(theme.icon("folder"), "Show in file manager", lambda: show_in_file_manager(path))
        menu.addAction(theme.icon("copy"), "Copy path", lambda: copy_path(path))
        menu.popup(self.compare.viewport().mapToGlobal(pos))

    # -- deciding --------------------------------------------------------------------------------------

    def mark_not_duplicates(self) -> None:
        """Remember that the shown cluster's photos are not duplicates; the notice offers Undo."""
        row = self._current_row()
        if row < 0:
            return
        cluster = self.clusters.cluster(row)

        def done(pairs: list[tuple[str, str]]) -> None:
            current = next((i for i, c in enumerate(self.clusters.clusters()) if c == cluster), -1)
            if current >= 0:
                self._remove_rows([current])
            self._update_totals()
            n = len(cluster.photos)
            self._show_notice(f"Marked {n} photos as not duplicates: they will not be proposed again.",
                              lambda: self._unmark(pairs))
            self.status.emit("Marked as not duplicates")

        self.controller.dupes.mark_not_duplicates(cluster, done)

    def _unmark(self, pairs: list[tuple[str, str]]) -> None:
        def done(_removed: int) -> None:
            self.status.emit("Not duplicates undone: they are proposed again")
            self.recluster(announce=False)

        self.controller.dupes.unmark_not_duplicates(pairs, done)

    def trash_current_cluster(self) -> None:
        row = self._current_row()
        if row >= 0:
            self._confirm_and_trash([self.clusters.cluster(row)])

    def trash_all_clusters(self) -> None:
        """Every suggestion of the identical and same-photo clusters; similar shots are reviewed one by one."""
        clusters = [c for c in self.clusters.clusters() if c.bulk]
        if clusters:
            self._confirm_and_trash(clusters)
        elif self.clusters.rowCount():
            self.status.emit("Similar shots are different photos: review them one cluster at a time")

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
        self.controller.dupes.plan_trash(clusters, self._confirm)

    def _confirm(self, plan: TrashPlan) -> None:
        if not plan.files:
            QMessageBox.information(self, "Nothing to move", "Every photo here is kept (protected folders are "
                                    "never proposed for removal).")
            return
        if not self.ask_confirmation(plan):
            return
        self.status.emit(f"Moving {plan.files:,} files to the trash…")
        self.controller.dupes.trash(
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
        """The files are in the trash: the list shows it now (the re-clustering that follows only confirms)."""
        self._last_batch = batch
        self._last_batch_text = f"{plan.files:,} file{'s' if plan.files != 1 else ''} ({human_bytes(plan.bytes)})"
        self.undo_button.setEnabled(True)
        self.undo_button.setToolTip(f"Put back the {self._last_batch_text} just moved to the trash")
        self._drop_paths({item.path for item in plan.items})
        self._show_notice(f"Moved {self._last_batch_text} to the trash.", self.undo)
        self.status.emit(f"Moved {self._last_batch_text} to the trash — Undo puts them back")
        self.recluster(announce=False)

    def _drop_paths(self, gone: set[Path]) -> None:
        """Take moved files out of the listed clusters at once; a cluster left with one photo goes."""
        emptied: list[int] = []
        for row, cluster in enumerate(self.clusters.clusters()):
            if not any(p.path in gone for p in cluster.photos):
                continue
            left = tuple(p for p in cluster.photos if p.path not in gone)
            if len(left) < 2:
                emptied.append(row)
            else:
                self.clusters.replace_cluster(row, dataclasses.replace(cluster, photos=left))
        info = self.members.info()
        self._remove_rows(emptied)
        current = self._current_row()
        if current >= 0 and not emptied:
            self._show_cluster(self.clusters.cluster(current))
            self.members.set_info(info)  # the metadata read for these photos still holds
        self._update_totals()

    def _remove_rows(self, rows: list[int]) -> None:
        """Remove clusters from the list; the selection moves to the cluster that takes the current's place."""
        if not rows:
            return
        current = self._current_row()
        for row in sorted(rows, reverse=True):
            self.clusters.remove_cluster(row)
        count = self.clusters.rowCount()
        if not count:
            self.members.set_cluster(None)
            self._cluster_selected(QModelIndex())
            self._show_message("No duplicates left.")
            return
        below = sum(1 for r in rows if r < current)
        target = min(max(current - below, 0), count - 1)
        self.cluster_list.setCurrentIndex(self.clusters.index(target))
        self._cluster_selected(self.clusters.index(target))

    def _trash_failed(self, error: TaskError) -> None:
        QMessageBox.warning(self, "Nothing was moved", error.message)
        self.recluster()

    def undo(self) -> None:
        if self._last_batch is None:
            return
        batch = self._last_batch
        self.undo_button.setEnabled(False)
        self.notice.hide()
        self.status.emit("Restoring from the trash…")
        self.controller.dupes.undo_trash(
            batch,
            on_result=lambda paths: self._undone(paths),
            on_error=lambda error: self._undo_failed(error),
        )

    def _undone(self, paths: list[Path]) -> None:
        self._last_batch = None
        # The keep choices (by path) still hold: the re-clustering that follows shows them as they were.
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
        bulk = sum(cluster_savings(c) for c in self.clusters.clusters() if c.bulk)
        self.trash_all.setEnabled(bulk > 0)
        self.trash_all.setText(f"Move all suggested to trash ({human_bytes(bulk)})…" if bulk else
                               "Move all suggested to trash…")

    def _show_notice(self, text: str, undo: Callable[[], None]) -> None:
        self.notice_text.setText(text)
        self._undo_notice = undo
        self.notice_undo.setEnabled(True)
        self.notice.show()

    def _notice_undo_clicked(self) -> None:
        undo, self._undo_notice = self._undo_notice, None
        self.notice.hide()
        if undo is not None:
            undo()

    def _show_message(self, text: str) -> None:
        self.message.setText(text)
        self.body.setCurrentWidget(self.message)

