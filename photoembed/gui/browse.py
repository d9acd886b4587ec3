"""The date scrubber beside the library grid: one entry per month, grouped under its year; a click jumps."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QWidget

from photoembed.gui.models import MONTH_NAMES
from photoembed.storage.browse import MonthBucket

FirstRowRole = Qt.ItemDataRole.UserRole + 1


class DateScrubber(QListWidget):
    """Months newest first, with a bold year line above each year's months.

    Signals:
        jump_requested(row: int): the grid should scroll so that this row is at the top.
    """

    jump_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("dateScrubber")
        self.setFixedWidth(132)
        self.setFrameShape(QListWidget.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setToolTip("Jump to a month")
        self._firsts: list[int] = []
        self.itemClicked.connect(self._clicked)

    def set_months(self, months: Sequence[MonthBucket]) -> None:
        self.blockSignals(True)
        self.clear()
        self._firsts = []
        year = None
        bold = QFont(self.font())
        bold.setBold(True)
        for bucket in months:
            if bucket.year != year:
                year = bucket.year
                header = QListWidgetItem(str(year), self)
                header.setFont(bold)
                header.setData(FirstRowRole, bucket.first_row)
            item = QListWidgetItem(f"  {MONTH_NAMES[bucket.month - 1][:3]}  ·  {bucket.count:,}", self)
            item.setData(FirstRowRole, bucket.first_row)
            item.setToolTip(f"{MONTH_NAMES[bucket.month - 1]} {bucket.year}: {bucket.count:,} photos")
            self._firsts.append(bucket.first_row)
        self.blockSignals(False)

    def follow(self, row: int) -> None:
        """Highlight the month of the grid's top row (the grid scrolled)."""
        best = None
        for i in range(self.count()):
            item = self.item(i)
            first = int(item.data(FirstRowRole))
            if first <= row and item.text().startswith("  "):
                best = item
            elif first > row:
                break
        if best is not None and best is not self.currentItem():
            self.blockSignals(True)
            self.setCurrentItem(best)
            self.scrollToItem(best)
            self.blockSignals(False)

    def _clicked(self, item: QListWidgetItem) -> None:
        self.jump_requested.emit(int(item.data(FirstRowRole)))
