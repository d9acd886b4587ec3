"""Qt item models over compact snapshots of the catalog.

Every model holds plain data handed to it on the GUI thread (built by a worker); ``data()`` never runs SQL,
never decodes, and never reaches anything global. Thumbnails come from an injected
:class:`~photoembed.gui.thumbnails.ThumbnailProvider`, which answers at once (cached pixmap or ``None``) and
signals when a decode lands; the model then emits ``dataChanged`` for that one row and that one role.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PySide6.QtCore import QAbstractListModel, QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QPixmap

from photoembed.dedup.records import Cluster
from photoembed.gui.thumbnails import ThumbnailProvider
from photoembed.storage.records import Photo

ModelIndex = QModelIndex | QPersistentModelIndex

# Named roles shared by the models and their delegates.
PhotoIdRole = Qt.ItemDataRole.UserRole + 1
PathRole = Qt.ItemDataRole.UserRole + 2
ScoreRole = Qt.ItemDataRole.UserRole + 3
ThumbnailRole = Qt.ItemDataRole.UserRole + 4
ThumbnailFailedRole = Qt.ItemDataRole.UserRole + 5
RootIdRole = Qt.ItemDataRole.UserRole + 10
ProtectedRole = Qt.ItemDataRole.UserRole + 11
PhotoCountRole = Qt.ItemDataRole.UserRole + 12
FailedCountRole = Qt.ItemDataRole.UserRole + 13
WatchStateRole = Qt.ItemDataRole.UserRole + 14
PendingCountRole = Qt.ItemDataRole.UserRole + 15
ActivityRole = Qt.ItemDataRole.UserRole + 16  # what a running sync is doing ("Indexing… 120/3,000"), or ""
ClusterRole = Qt.ItemDataRole.UserRole + 20
TierRole = Qt.ItemDataRole.UserRole + 21
SavingsRole = Qt.ItemDataRole.UserRole + 22
MemberRole = Qt.ItemDataRole.UserRole + 23
KeeperRole = Qt.ItemDataRole.UserRole + 24
ReasonRole = Qt.ItemDataRole.UserRole + 25
InfoRole = Qt.ItemDataRole.UserRole + 26
LabelRole = Qt.ItemDataRole.UserRole + 27  # what the photo is next to the keeper ("exact copy", "resized 50%")
FolderRole = Qt.ItemDataRole.UserRole + 28  # (shared, differing): its folder, split where it leaves the keeper's
RelevanceRole = Qt.ItemDataRole.UserRole + 30  # 0..1: how a result ranks between the worst and the best shown
MonthRole = Qt.ItemDataRole.UserRole + 31  # "March 2024" on the first photo of each month, else None
# Everything a grid tile paints, in one call: a Tile. The delegate asks once per tile and paint, not six times
# (each ``data()`` call crosses from C++ to Python: at 30 tiles a paint, those calls were half its cost).
TileRole = Qt.ItemDataRole.UserRole + 32

MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
               "October", "November", "December")


# -- library folders -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RootRow:
    """One library folder as the sidebar shows it."""

    root_id: int
    path: Path
    protected: bool
    photos: int = 0
    failed: int = 0
    pending: int = 0
    watch_state: str = ""


class RootsModel(QAbstractListModel):
    """The library's folders, with photo counts and watcher state."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[RootRow] = []
        self._watch: dict[Path, str] = {}  # live from the watcher, apart from the counts' snapshots
        self._activity: dict[int, str] = {}  # root id: what runs there now (from the library's state)

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        watch_state = self._watch.get(row.path, row.watch_state)
        if role == Qt.ItemDataRole.DisplayRole:
            return row.path.name or str(row.path)
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [str(row.path), f"{row.photos:,} photos"]
            if row.pending:
                lines.append(f"{row.pending:,} waiting to be indexed")
            if row.failed:
                lines.append(f"{row.failed:,} could not be read")
            if row.protected:
                lines.append("Protected: never proposed for removal")
            if watch_state:
                lines.append(f"Watcher: {watch_state}")
            return "\n".join(lines)
        role_values: dict[int, object] = {
            RootIdRole: row.root_id,
            PathRole: str(row.path),
            ProtectedRole: row.protected,
            PhotoCountRole: row.photos,
            FailedCountRole: row.failed,
            PendingCountRole: row.pending,
            WatchStateRole: watch_state,
            ActivityRole: self._activity.get(row.root_id, ""),
        }
        return role_values.get(role)


    def set_activities(self, activities: Mapping[int, str]) -> None:
        """What each folder's row says beside its counts, by root id ("" or absent: nothing runs there)."""
        wanted = {root_id: text for root_id, text in activities.items() if text}
        if wanted == self._activity:
            return
        self._activity = wanted
        if self._rows:
            self.dataChanged.emit(self.index(0), self.index(len(self._rows) - 1), [ActivityRole])

    def rows(self) -> list[RootRow]:
        return list(self._rows)

    def row_for_path(self, path: Path) -> int:
        for i, row in enumerate(self._rows):
            if row.path == path:
                return i
        return -1

    def set_rows(self, rows: Sequence[RootRow]) -> None:
        """Replace the rows; counts-only changes update in place (the selection survives)."""
        new = list(rows)
        if [r.root_id for r in new] == [r.root_id for r in self._rows]:
            changed = [i for i, (a, b) in enumerate(zip(self._rows, new, strict=True)) if a != b]
            self._rows = new
            for i in changed:
                self.dataChanged.emit(self.index(i), self.index(i))
            return
        self.beginResetModel()
        self._rows = new
        self.endResetModel()

    def set_watch_states(self, states: dict[Path, str]) -> None:
        """How each folder is watched (empty: not watching). ``dataChanged`` names the roles."""
        old, self._watch = self._watch, dict(states)
        for i, row in enumerate(self._rows):
            if old.get(row.path, row.watch_state) != self._watch.get(row.path, row.watch_state):
                idx = self.index(i)
                self.dataChanged.emit(idx, idx, [WatchStateRole, Qt.ItemDataRole.ToolTipRole])


# -- photo grids ---------------------------------------------------------------------------------------


class Tile(NamedTuple):
    """What a grid tile paints (:data:`TileRole`)."""

    thumbnail: QPixmap | None  # None while it decodes (or when it cannot be made)
    failed: bool  # the thumbnail cannot be made: a "cannot read" mark instead of the placeholder
    name: str  # the file name
    month: str | None  # "March 2024" on the first photo of a month (browsing)
    relevance: float | None  # 0..1 between the worst and the best result shown (searching)
    score: float | None  # the raw score (searching)


class PhotoGridModel(QAbstractListModel):
    """A result list for a virtualised thumbnail grid: compact arrays, thumbnails on demand.

    Args:
        thumbnails: where thumbnails come from; decodes are requested only for items actually painted.
        thumb_size: the thumbnail size this grid paints.
    """

    def __init__(
        self, thumbnails: ThumbnailProvider, *, thumb_size: int = 192, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._thumbs = thumbnails
        self.thumb_size = thumb_size
        self._ids = np.zeros(0, dtype=np.int64)
        self._scores: np.ndarray | None = None
        self._paths: list[str] = []
        self._stamps: list[str] | None = None
        self._relevance: np.ndarray | None = None
        self._month_at: dict[int, str] = {}
        self._asked: dict[int, int] = {}  # photo id -> row, for the thumbnails asked for and not yet ready
        thumbnails.ready.connect(self._thumbnail_ready)

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._paths)

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._paths):
            return None
        row = index.row()
        if role == TileRole:
            return self.tile(row)
        if role == Qt.ItemDataRole.DisplayRole:
            return os.path.basename(self._paths[row])
        if role in (PathRole, Qt.ItemDataRole.ToolTipRole):
            return self._paths[row]
        if role == PhotoIdRole:
            return int(self._ids[row])
        if role == ScoreRole:
            return None if self._scores is None else float(self._scores[row])
        if role == RelevanceRole:
            return None if self._relevance is None else float(self._relevance[row])
        if role == MonthRole:
            return self._month_at.get(row)
        if role == ThumbnailRole:
            return self._thumbnail(row)
        if role == ThumbnailFailedRole:
            return self._thumbs.failure(int(self._ids[row]), self.thumb_size)
        return None

    def tile(self, row: int) -> Tile:
        """What the tile of ``row`` paints (a valid row); asks for its thumbnail when it is not cached."""
        photo_id = int(self._ids[row])
        pixmap = self._thumbnail(row)
        return Tile(
            pixmap,
            pixmap is None and self._thumbs.failure(photo_id, self.thumb_size) is not None,
            os.path.basename(self._paths[row]),
            self._month_at.get(row),
            None if self._relevance is None else float(self._relevance[row]),
            None if self._scores is None else float(self._scores[row]),
        )

    def _thumbnail(self, row: int) -> QPixmap | None:
        photo_id = int(self._ids[row])
        stamp = None if self._stamps is None else self._stamps[row]
        self._asked[photo_id] = row  # before asking: a synchronous pool answers within get()
        pixmap = self._thumbs.get(photo_id, self._paths[row], self.thumb_size, stamp)
        if pixmap is not None or self._thumbs.failure(photo_id, self.thumb_size) is not None:
            self._asked.pop(photo_id, None)
        return pixmap

    def set_results(
        self,
        ids: Sequence[int] | np.ndarray,
        paths: Sequence[str],
        scores: Sequence[float] | np.ndarray | None,
        *,
        stamps: Sequence[str] | None = None,
        months: Sequence[tuple[int, int, int]] = (),
    ) -> None:
        """Replace the results (GUI thread). ``ids``, ``paths``, ``scores`` and ``stamps`` are parallel.

        Args:
            stamps: each photo's content stamp, which lets thumbnails come from and go to the disk cache.
            months: ``(first_row, year, month)`` of each month group, when the photos are listed by date.
        """
        if len(ids) != len(paths) or (scores is not None and len(scores) != len(paths)):
            raise ValueError("ids, paths and scores must have the same length")
        if stamps is not None and len(stamps) != len(paths):
            raise ValueError("stamps must be parallel to paths")
        self._thumbs.forget_pending()
        self.beginResetModel()
        self._ids = np.asarray(ids, dtype=np.int64)
        self._paths = list(paths)
        self._stamps = None if stamps is None else list(stamps)
        self._scores = None if scores is None else np.asarray(scores, dtype=np.float32)
        self._relevance = None
        if self._scores is not None and len(self._scores):
            top, low = float(self._scores.max()), float(self._scores.min())
            spread = top - low
            self._relevance = (
                np.ones_like(self._scores) if spread < 1e-9 else (self._scores - low) / spread
            )
        self._month_at = {row: f"{MONTH_NAMES[month - 1]} {year}" for row, year, month in months}
        self._asked = {}
        self.endResetModel()

    def clear(self) -> None:
        self.set_results([], [], None)

    def photo_id(self, row: int) -> int:
        return int(self._ids[row])

    def path(self, row: int) -> Path:
        return Path(self._paths[row])

    def ids(self) -> np.ndarray:
        return self._ids

    def row_of(self, photo_id: int) -> int:
        """The row showing a photo, or -1 (a scan of the ids: no per-photo table is kept for this)."""
        found = np.flatnonzero(self._ids == photo_id)
        return int(found[0]) if len(found) else -1

    def _thumbnail_ready(self, photo_id: int, size: int) -> None:
        if size != self.thumb_size:
            return
        row = self._asked.pop(photo_id, None)
        if row is None:
            return
        idx = self.index(row)
        self.dataChanged.emit(idx, idx, [ThumbnailRole, ThumbnailFailedRole, TileRole])


# -- failures ------------------------------------------------------------------------------------------


class FailuresModel(QAbstractTableModel):
    """Photos that could not be read, with the reason (two columns: file, reason)."""

    HEADERS = ("File", "Reason")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[tuple[str, str]] = []

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.HEADERS)

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        path, reason = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return path if index.column() == 0 else reason
        if role == PathRole:
            return path
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            role == Qt.ItemDataRole.DisplayRole
            and orientation == Qt.Orientation.Horizontal
            and 0 <= section < len(self.HEADERS)
        ):
            return self.HEADERS[section]
        return None

    def set_failures(self, rows: Sequence[tuple[str, str]]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()


# -- duplicates ----------------------------------------------------------------------------------------


def cluster_savings(cluster: Cluster) -> int:
    """Bytes freed by moving the cluster's non-kept photos to the trash."""
    return sum(p.size for p in cluster.photos if not p.keep)


def folder_difference(reference: Path, path: Path) -> tuple[str, str]:
    """The folder of ``path`` as (the part shared with ``reference``'s folder, the part that differs).

    The differing part is "" only when both photos lie in the same folder; a folder that holds the keeper's
    folder differs from it by its own last part.
    """
    ref, own = reference.parent.parts, path.parent.parts
    k = 0
    while k < min(len(ref), len(own)) and ref[k] == own[k]:
        k += 1
    if k == len(own) and len(ref) > len(own):
        k -= 1  # the keeper lies in a subfolder of this folder: its last part is what differs, not "the same"
    shared = str(Path(*own[:k])) if k else ""
    differing = str(Path(*own[k:])) if k < len(own) else ""
    if shared and differing:
        shared = os.path.join(shared, "")  # ends with the separator the differing part follows
    return shared, differing


def with_keeper(cluster: Cluster, photo_id: int) -> Cluster:
    """The cluster with ``photo_id`` as the photo to keep (the user's choice); protected photos stay kept.

    The removal itself is still planned and checked by the dedup service (protection, one copy kept).
    """
    photos = []
    for photo in cluster.photos:
        chosen = photo.photo_id == photo_id
        keep = chosen or photo.protected
        if chosen:
            reason = "your choice"
        elif photo.protected:
            reason = photo.reason
        else:
            reason = "a copy of the photo you keep"
        photos.append(dataclasses.replace(photo, keep=keep, reason=reason))
    photos.sort(key=lambda p: (p.photo_id != photo_id, not p.keep))
    return dataclasses.replace(cluster, photos=tuple(photos))


class ClustersModel(QAbstractListModel):
    """The duplicate clusters found, each with its tier and the space it would free."""

    def __init__(self, thumbnails: ThumbnailProvider, *, thumb_size: int = 64, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thumbs = thumbnails
        self.thumb_size = thumb_size
        self._clusters: list[Cluster] = []
        self._row_of_keeper: dict[int, int] = {}
        thumbnails.ready.connect(self._thumbnail_ready)

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._clusters)

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._clusters):
            return None
        cluster = self._clusters[index.row()]
        keeper = cluster.photos[0]
        if role == Qt.ItemDataRole.DisplayRole:
            return keeper.path.name
        if role == Qt.ItemDataRole.ToolTipRole:
            return "\n".join(str(p.path) for p in cluster.photos)
        if role == ClusterRole:
            return cluster
        if role == TierRole:
            return cluster.tier
        if role == SavingsRole:
            return cluster_savings(cluster)
        if role == PhotoCountRole:
            return len(cluster.photos)
        if role == PathRole:
            return str(keeper.path)
        if role == PhotoIdRole:
            return keeper.photo_id
        if role == ThumbnailRole:
            return self._thumbs.get(keeper.photo_id, keeper.path, self.thumb_size)
        if role == ThumbnailFailedRole:
            return self._thumbs.failure(keeper.photo_id, self.thumb_size)
        return None


    def clusters(self) -> list[Cluster]:
        return list(self._clusters)

    def cluster(self, row: int) -> Cluster:
        return self._clusters[row]

    def set_clusters(self, clusters: Sequence[Cluster]) -> None:
        self.beginResetModel()
        self._clusters = list(clusters)
        self._reindex()
        self.endResetModel()

    def replace_cluster(self, row: int, cluster: Cluster) -> None:
        """A changed keeper: same row, new data (``dataChanged`` for the row)."""
        self._clusters[row] = cluster
        self._reindex()
        idx = self.index(row)
        self.dataChanged.emit(idx, idx)

    def remove_cluster(self, row: int) -> None:
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._clusters[row]
        self._reindex()
        self.endRemoveRows()

    def total_savings(self) -> int:
        return sum(cluster_savings(c) for c in self._clusters)

    def _reindex(self) -> None:
        self._row_of_keeper = {c.photos[0].photo_id: i for i, c in enumerate(self._clusters)}

    def _thumbnail_ready(self, photo_id: int, size: int) -> None:
        row = self._row_of_keeper.get(photo_id)
        if row is not None and size == self.thumb_size:
            idx = self.index(row)
            self.dataChanged.emit(idx, idx, [ThumbnailRole, ThumbnailFailedRole])


class ClusterPhotosModel(QAbstractListModel):
    """The photos of one cluster side by side, with their metadata (read by a worker) and keeper flag."""

    def __init__(self, thumbnails: ThumbnailProvider, *, thumb_size: int = 256, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thumbs = thumbnails
        self.thumb_size = thumb_size
        self._cluster: Cluster | None = None
        self._info: dict[int, Photo] = {}
        thumbnails.ready.connect(self._thumbnail_ready)

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        if parent.isValid() or self._cluster is None:
            return 0
        return len(self._cluster.photos)

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if self._cluster is None or not index.isValid() or not 0 <= index.row() < len(self._cluster.photos):
            return None
        photo = self._cluster.photos[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return photo.path.name
        if role in (PathRole, Qt.ItemDataRole.ToolTipRole):
            return str(photo.path)
        if role == PhotoIdRole:
            return photo.photo_id
        if role == MemberRole:
            return photo
        if role == KeeperRole:
            return photo.keep
        if role == ReasonRole:
            return photo.reason
        if role == LabelRole:
            return photo.label
        if role == FolderRole:
            reference = next((p for p in self._cluster.photos if p.keep), self._cluster.photos[0])
            return folder_difference(reference.path, photo.path)
        if role == ScoreRole:
            return photo.score
        if role == ProtectedRole:
            return photo.protected
        if role == InfoRole:
            return self._info.get(photo.photo_id)
        if role == ThumbnailRole:
            return self._thumbs.get(photo.photo_id, photo.path, self.thumb_size)
        if role == ThumbnailFailedRole:
            return self._thumbs.failure(photo.photo_id, self.thumb_size)
        return None


    @property
    def cluster_shown(self) -> Cluster | None:
        return self._cluster

    def set_cluster(self, cluster: Cluster | None) -> None:
        self.beginResetModel()
        self._cluster = cluster
        self._info = {}
        self.endResetModel()

    def info(self) -> dict[int, Photo]:
        return dict(self._info)

    def set_info(self, info: dict[int, Photo]) -> None:
        """Metadata of the shown photos arrived (``dataChanged`` names the role)."""
        self._info = dict(info)
        if self.rowCount():
            self.dataChanged.emit(self.index(0), self.index(self.rowCount() - 1), [InfoRole])

    def _thumbnail_ready(self, photo_id: int, size: int) -> None:
        if self._cluster is None or size != self.thumb_size:
            return
        for row, photo in enumerate(self._cluster.photos):
            if photo.photo_id == photo_id:
                idx = self.index(row)
                self.dataChanged.emit(idx, idx, [ThumbnailRole, ThumbnailFailedRole])
