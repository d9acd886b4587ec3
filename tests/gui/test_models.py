"""Every item model passes Qt's model tester, and updates name the exact rows and roles."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QColor, QImage
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from photoembed.dedup.records import Cluster, ClusterPhoto
from photoembed.gui.models import (
    ClusterPhotosModel,
    ClustersModel,
    FailuresModel,
    PhotoGridModel,
    RootRow,
    RootsModel,
    ThumbnailFailedRole,
    ThumbnailRole,
    TileRole,
    WatchStateRole,
    with_keeper,
)
from photoembed.gui.thumbnails import ThumbnailProvider
from photoembed.gui.workers import BackgroundPool
from photoembed.storage.records import Photo, PhotoInfo


def solid(_path: Path, size: int) -> QImage:
    image = QImage(size, size * 3 // 4, QImage.Format.Format_RGB32)
    image.fill(QColor("steelblue"))
    return image


def provider() -> ThumbnailProvider:
    return ThumbnailProvider(BackgroundPool(force_sync=True), loader=solid)


def member(pid: int, *, keep: bool, size: int = 1000, protected: bool = False) -> ClusterPhoto:
    return ClusterPhoto(pid, Path(f"/p/{pid}.jpg"), size, 0, f"h{pid}", keep, "why", "keeper" if keep else "same",
                        1.0 if keep else 0.97, protected)


def test_roots_model(qtmodeltester: ModelTester) -> None:
    model = RootsModel()
    model.set_rows([RootRow(1, Path("/a"), False, photos=3), RootRow(2, Path("/b"), True, photos=5, failed=1)])
    qtmodeltester.check(model, force_py=True)
    model.set_rows([RootRow(1, Path("/a"), False, photos=4), RootRow(2, Path("/b"), True, photos=5, failed=1)])
    model.set_watch_states({Path("/b"): "polling"})
    assert model.index(1).data(WatchStateRole) == "polling"
    model.set_rows([RootRow(2, Path("/b"), True)])
    qtmodeltester.check(model, force_py=True)
    assert model.index(0).data(WatchStateRole) == "polling"  # survives a counts refresh


def test_photo_grid_model_loads_thumbnails_on_demand(qtmodeltester: ModelTester, qtbot: QtBot) -> None:
    thumbs = provider()
    model = PhotoGridModel(thumbs, thumb_size=64)
    model.set_results([10, 11, 12], ["/x/a.jpg", "/x/b.jpg", "/x/c.jpg"], [0.9, 0.8, 0.7])
    qtmodeltester.check(model, force_py=True)
    assert len(thumbs) == 0  # nothing is decoded until a view paints it
    assert model.index(1).data(ThumbnailRole) is None  # pending: the delegate paints a placeholder
    assert len(thumbs) == 1  # decoded (inline here; on a pool thread in the app)
    pixmap = model.index(1).data(ThumbnailRole)
    assert pixmap is not None
    assert pixmap.width() == 64
    with qtbot.waitSignal(model.dataChanged) as changed:
        thumbs.invalidate({12})
        model.index(2).data(ThumbnailRole)
    assert changed.args is not None
    assert changed.args[0].row() == 2
    assert changed.args[2] == [ThumbnailRole, ThumbnailFailedRole, TileRole]
    model.clear()
    qtmodeltester.check(model, force_py=True)


def test_failures_model(qtmodeltester: ModelTester) -> None:
    model = FailuresModel()
    model.set_failures([("/x/bad.jpg", "file is empty"), ("/x/worse.jpg", "not an image")])
    qtmodeltester.check(model, force_py=True)
    assert model.index(1, 1).data() == "not an image"


def test_cluster_models_and_keeper_change(qtmodeltester: ModelTester) -> None:
    thumbs = provider()
    cluster = Cluster("same", (member(1, keep=True), member(2, keep=False, size=800),
                               member(3, keep=False, size=700)))
    clusters = ClustersModel(thumbs)
    clusters.set_clusters([cluster, Cluster("identical", (member(4, keep=True), member(5, keep=False)))])
    qtmodeltester.check(clusters, force_py=True)
    assert clusters.total_savings() == 800 + 700 + 1000

    chosen = with_keeper(cluster, 3)
    assert [p.photo_id for p in chosen.photos if p.keep] == [3]
    assert chosen.photos[0].photo_id == 3
    clusters.replace_cluster(0, chosen)
    assert clusters.total_savings() == 1000 + 800 + 1000
    clusters.remove_cluster(1)
    qtmodeltester.check(clusters, force_py=True)

    members = ClusterPhotosModel(thumbs)
    members.set_cluster(chosen)
    members.set_info({3: Photo(3, 1, Path("/p/3.jpg"), 700, 0, "h3", "ok", None, PhotoInfo("jpeg", 40, 30))})
    qtmodeltester.check(members, force_py=True)
    members.set_cluster(None)
    qtmodeltester.check(members, force_py=True)


def test_protected_photos_stay_kept_whatever_the_choice() -> None:
    cluster = Cluster("same", (member(1, keep=True), member(2, keep=True, protected=True), member(3, keep=False)))
    chosen = with_keeper(cluster, 3)
    assert {p.photo_id for p in chosen.photos if p.keep} == {2, 3}


def test_browse_grid_model_with_months_and_stamps(qtmodeltester: ModelTester, tmp_path: Path) -> None:
    from photoembed.gui.models import MonthRole, RelevanceRole
    from photoembed.gui.thumbnails import DiskThumbnailCache

    disk = DiskThumbnailCache(tmp_path / "thumbs")
    thumbs = ThumbnailProvider(BackgroundPool(force_sync=True), loader=solid, disk=disk)
    model = PhotoGridModel(thumbs, thumb_size=64)
    model.set_results([1, 2, 3], ["/x/a.jpg", "/x/b.jpg", "/x/c.jpg"], None, stamps=["h1:1:1", "h2:1:1", "h3:1:1"],
                      months=[(0, 2024, 3), (2, 2023, 12)])
    qtmodeltester.check(model, force_py=True)
    assert [model.index(r).data(MonthRole) for r in range(3)] == ["March 2024", None, "December 2023"]
    assert model.index(0).data(RelevanceRole) is None  # browsing: no relevance
    model.index(0).data(ThumbnailRole)
    assert disk.file_count() == 1
    assert disk.misses == 1
    assert (tmp_path / "thumbs" / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    model.set_results([7, 8], ["/x/a.jpg", "/x/b.jpg"], [0.31, 0.29])
    qtmodeltester.check(model, force_py=True)
    assert [model.index(r).data(RelevanceRole) for r in range(2)] == [1.0, 0.0]


def test_selection_copy_and_export_list(qtbot: QtBot, tmp_path: Path) -> None:
    from PySide6.QtGui import QGuiApplication

    from photoembed.gui.grid import copy_files, release_clipboard, write_path_list

    chosen = [tmp_path / "a b.jpg", tmp_path / "ç.jpg"]
    copy_files(chosen)
    mime = QGuiApplication.clipboard().mimeData()
    assert [Path(u.toLocalFile()) for u in mime.urls()] == chosen
    assert mime.text().splitlines() == [str(p) for p in chosen]
    listing = tmp_path / "list.txt"
    write_path_list(listing, chosen)
    assert listing.read_text(encoding="utf-8").splitlines() == [str(p) for p in chosen]
    release_clipboard()
