"""The date scrubber beside the library grid: one entry per month, grouped under its year; a click jumps.

A ``QListView`` over :class:`MonthsModel`, a plain list: filling it with 30 years of months is one model
reset (a ``QListWidget`` made an item object each, 60 ms for 390 entries), and following the grid's scroll is
a binary search over the months' first rows, not a walk over the entries.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any, NamedTuple

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QAbstractItemView, QListView, QWidget

from photoembed.gui.models import MONTH_NAMES
from photoembed.storage.browse import MonthBucket

FirstRowRole = Qt.ItemDataRole.UserRole + 1
IsYearRole = Qt.ItemDataRole.UserRole + 2

ModelIndex = QModelIndex | QPersistentModelIndex


class ScrubberEntry(NamedTuple):
    """One line of the scrubber: a year heading or a month."""

    text: str
    first_row: int  # the grid row it jumps to
    is_year: bool
    tooltip: str


class MonthsModel(QAbstractListModel):
    """Years and months, newest first (see :func:`scrubber_entries`)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._entries: list[ScrubberEntry] = []
        self._bold = QFont()
        self._bold.setBold(True)

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._entries)

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._entries):
            return None
        entry = self._entries[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return entry.text
        if role == Qt.ItemDataRole.ToolTipRole:
            return entry.tooltip
        if role == Qt.ItemDataRole.FontRole:
            return self._bold if entry.is_year else None
        if role == FirstRowRole:
            return entry.first_row
        if role == IsYearRole:
            return entry.is_year
        return None

    def set_entries(self, entries: Sequence[ScrubberEntry], font: QFont) -> None:
        self.beginResetModel()
        self._entries = list(entries)
        self._bold = QFont(font)
        self._bold.setBold(True)
        self.endResetModel()

    def entries(self) -> list[ScrubberEntry]:
        return list(self._entries)


def scrubber_entries(months: Sequence[MonthBucket]) -> list[ScrubberEntry]:
    """A year heading before each year's months (newest first), then one entry per month."""
    entries: list[ScrubberEntry] = []
    year = None
    for bucket in months:
        if bucket.year != year:
            year = bucket.year
            entries.append(ScrubberEntry(str(year), bucket.first_row, True, f"Jump to {year}"))
        name = MONTH_NAMES[bucket.month - 1]
        entries.append(ScrubberEntry(f"  {name[:3]}  ·  {bucket.count:,}", bucket.first_row, False,
                                     f"{name} {bucket.year}: {bucket.count:,} photos"))
    return entries


class DateScrubber(QListView):
    """Months newest first, with a bold year line above each year's months.

    Signals:
        jump_requested(row: int): the grid should scroll so that this row is at the top.
    """

    jump_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("dateScrubber")
        self.setFixedWidth(132)
        self.setFrameShape(QListView.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setUniformItemSizes(True)
        self.setToolTip("Jump to a month")
        self.months = MonthsModel(self)
        self.setModel(self.months)
        self._month_firsts: list[int] = []  # the first grid row of each month entry, in entry order
        self._month_entries: list[int] = []  # each month's entry row in the list
        self.clicked.connect(self._clicked)

    def set_months(self, months: Sequence[MonthBucket]) -> None:
        entries = scrubber_entries(months)
        self.months.set_entries(entries, self.font())
        self._month_entries = [i for i, entry in enumerate(entries) if not entry.is_year]
        self._month_firsts = [entries[i].first_row for i in self._month_entries]

    def follow(self, row: int) -> None:
        """Highlight the month of the grid's top row (the grid scrolled)."""
        # Months are newest first: their first rows ascend, so the last month starting at or before ``row``.
        found = bisect.bisect_right(self._month_firsts, row) - 1
        if found < 0:
            return
        index = self.months.index(self._month_entries[found])
        if index != self.currentIndex():
            self.blockSignals(True)
            self.setCurrentIndex(index)
            self.scrollTo(index)
            self.blockSignals(False)

    def _clicked(self, index: QModelIndex) -> None:
        self.jump_requested.emit(int(index.data(FirstRowRole)))
