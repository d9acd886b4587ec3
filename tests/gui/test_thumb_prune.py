"""Pruning the thumbnails' disk cache: what no photo uses goes, what one still uses (or that is being written)
stays, through the controller's real read pool, and a pass stops at quit."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from PySide6.QtGui import QColor, QImage
from pytestqt.qtbot import QtBot

from photoembed.config import Paths
from photoembed.gui.controller import LibraryController
from photoembed.gui.main_window import MainWindow
from photoembed.gui.thumbnails import (
    GRID_THUMB_SIZE,
    PRUNE_MARGIN_S,
    CachePrune,
    DiskThumbnailCache,
    PruneReport,
    ThumbnailPruner,
)
from photoembed.gui.workers import BackgroundPool
from photoembed.storage.browse import photos_by_date
from tests.conftest import make_photo

WAIT_MS = 60_000
SIZE = 64


def _image(colour: str = "red") -> QImage:
    image = QImage(SIZE, SIZE, QImage.Format.Format_RGB32)
    image.fill(QColor(colour))
    return image


def _age(folder: Path, seconds: float = 3600.0) -> None:
    """Make every stored thumbnail look written (and read) ``seconds`` ago."""
    then = time.time_ns() - int(seconds * 1e9)
    for file in folder.rglob("*.jpg"):
        os.utime(file, ns=(then, then), follow_symlinks=False)


def _files(folder: Path) -> set[str]:
    return {f.name for f in folder.rglob("*.jpg") if f.is_file() and not f.is_symlink()}


def test_a_pass_deletes_only_unused_files_older_than_its_start(tmp_path: Path) -> None:
    cache = DiskThumbnailCache(tmp_path / "thumbs")
    for stamp in ("kept:1:1", "changed-old:1:1", "deleted:1:1"):
        cache.store(stamp, SIZE, _image())
    cache.store("kept:1:1", 128, _image())  # a size no grid uses any more
    _age(cache.folder)
    prune = CachePrune(cache, {"kept:1:1", "changed-new:1:2"}, {SIZE}, started=time.time(), cap_bytes=None)

    def judged() -> int:
        return prune.report.removed + prune.report.kept + prune.report.skipped

    assert prune.step(limit=1) is False  # bounded: the first call only lists the shards
    # Written while the pass runs, beside a file the pass has yet to judge (the photo changed after its stamps
    # were read, or is new): it must stay.
    shard = cache.file_for("deleted:1:1", SIZE).parent.name
    meanwhile = next(s for s in (f"written-meanwhile-{i}:1:1" for i in range(100_000))
                     if cache.name_for(s, SIZE).startswith(shard))
    cache.store(meanwhile, SIZE, _image("green"))
    cache.store("changed-new:1:2", SIZE, _image("blue"))
    while True:
        seen = judged()
        over = prune.step(limit=1)
        assert judged() - seen <= 1  # one entry per call at most
        if over:
            break
    assert _files(cache.folder) == {cache.name_for(s, SIZE) for s in
                                    ("kept:1:1", "changed-new:1:2", meanwhile)}
    assert (prune.report.removed, prune.report.evicted) == (3, 0)
    assert prune.report.freed_bytes > 0
    assert cache.load("kept:1:1", SIZE) is not None
    # The file written during the pass is judged by the next pass, once it is old enough.
    _age(cache.folder, PRUNE_MARGIN_S + 1)
    assert CachePrune(cache, {"kept:1:1"}, {SIZE}, started=time.time(), cap_bytes=None).run().removed == 2
    assert _files(cache.folder) == {cache.name_for("kept:1:1", SIZE)}


def test_odd_entries_in_the_cache_folder_are_left_alone(tmp_path: Path) -> None:
    cache = DiskThumbnailCache(tmp_path / "thumbs")
    cache.store("gone:1:1", SIZE, _image())
    orphan = cache.file_for("gone:1:1", SIZE)
    outside = tmp_path / "precious.jpg"
    outside.write_bytes(b"not a cache file")
    shard = orphan.parent
    odd = [
        cache.folder / "notes.txt",
        cache.folder / "zz-not-a-shard" / (orphan.name),
        shard / "garbage.jpg",
        shard / (orphan.name + ".Xq1234"),  # a store's temporary file
        cache.folder / ("00" if shard.name != "00" else "01") / orphan.name,  # in the wrong shard
    ]
    for file in odd:
        file.parent.mkdir(exist_ok=True)
        file.write_bytes(b"x")
    link = shard / (shard.name + "f" * 30 + ".jpg")  # a thumbnail's name, but a link
    link.symlink_to(outside)
    as_folder = shard / (shard.name + "e" * 30 + ".jpg")
    as_folder.mkdir()
    (cache.folder / "ab-file").write_bytes(b"x")
    _age(cache.folder)
    report = CachePrune(cache, set(), {SIZE}, started=time.time(), cap_bytes=None).run()
    assert not orphan.exists()
    assert report.removed == 1
    assert all(file.exists() for file in odd)
    assert link.is_symlink()
    assert outside.read_bytes() == b"not a cache file"
    assert as_folder.is_dir()
    assert (cache.folder / "CACHEDIR.TAG").is_file()
    assert report.skipped == 8  # the 5 odd files, the link, the folder, the file at the top


def test_over_the_cap_the_least_recently_read_files_go_first(tmp_path: Path) -> None:
    cache = DiskThumbnailCache(tmp_path / "thumbs")
    stamps = [f"p{i}:1:1" for i in range(4)]
    for stamp in stamps:
        cache.store(stamp, SIZE, _image())
    now = time.time_ns()
    for age_h, stamp in zip((5, 1, 9, 3), stamps, strict=True):  # read 5, 1, 9 and 3 hours ago
        read = now - age_h * 3600 * 10**9
        os.utime(cache.file_for(stamp, SIZE), ns=(read, now - 10 * 3600 * 10**9))
    sizes = {s: cache.file_for(s, SIZE).stat().st_size for s in stamps}
    cap = sum(sizes.values()) - sizes["p2:1:1"] - 1  # one byte too many once p2 (read longest ago) is gone
    report = CachePrune(cache, set(stamps), {SIZE}, started=time.time(), cap_bytes=cap).run()
    assert _files(cache.folder) == {cache.name_for(s, SIZE) for s in ("p1:1:1", "p3:1:1")}
    assert (report.removed, report.evicted, report.kept) == (0, 2, 2)
    assert report.kept_bytes == sizes["p1:1:1"] + sizes["p3:1:1"] <= cap


def test_stopping_a_pass_at_quit_deletes_nothing_more_and_reports_nothing(qtbot: QtBot, tmp_path: Path) -> None:
    cache = DiskThumbnailCache(tmp_path / "thumbs")
    cache.store("gone:1:1", SIZE, _image())
    _age(cache.folder)
    pool = BackgroundPool(threads=1, name="search")
    pruner = ThumbnailPruner(cache, pool, sizes=lambda: {SIZE}, first_ms=10**8)
    reading = threading.Event()
    stopped = threading.Event()

    def stamps() -> set[str]:
        reading.set()
        stopped.wait(WAIT_MS / 1000)  # the pass is stopped while it reads the catalog
        return set()

    reports: list[PruneReport] = []
    pruner.finished.connect(reports.append)
    pruner.start(stamps)
    assert pruner.run_now() is True
    assert pruner.run_now() is False  # one pass at a time
    assert reading.wait(WAIT_MS / 1000)
    pruner.stop()
    stopped.set()
    pool.shutdown()
    qtbot.wait(10)  # a late answer would be delivered here
    assert reports == []
    assert not pruner.running
    assert cache.file_for("gone:1:1", SIZE).is_file()  # it ended before its first entry
    assert pruner.run_now() is False  # stopped for good: no more passes


def test_the_app_prunes_changed_and_deleted_photos_thumbnails(qtbot: QtBot, home: Path, tmp_path: Path) -> None:
    """Through the real threads: a pass soon after opening, then one asked for once the photos changed."""
    folder = tmp_path / "photos"
    for i in range(6):
        make_photo(folder / f"p{i}.jpg", seed=i)
    twin = folder / "twin-of-p0.jpg"  # the same bytes and time as p0: one stamp, one thumbnail
    twin.write_bytes((folder / "p0.jpg").read_bytes())
    same = (folder / "p0.jpg").stat().st_mtime_ns
    os.utime(twin, ns=(same, same))
    paths = Paths.resolve(home)
    cache = DiskThumbnailCache(paths.thumbnails)

    def run(first_ms: int) -> tuple[LibraryController, MainWindow, dict[str, str], list[PruneReport]]:
        """Open the app on the folder and sync it; once every tile shows, the file of each photo's thumbnail."""
        ctl = LibraryController(paths, watch=False)
        assert ctl.thumbnails.disk_sizes == {GRID_THUMB_SIZE}  # known before any grid asks: a first pass keeps them
        ctl.pruner.first_ms = first_ms
        reports: list[PruneReport] = []
        ctl.pruner.finished.connect(reports.append)
        win = MainWindow(ctl)
        qtbot.addWidget(win)
        win.show()
        assert win.search.grid_model.thumb_size == GRID_THUMB_SIZE
        with qtbot.waitSignal(ctl.index_done, timeout=WAIT_MS):
            ctl.open(then_add=[folder])
        assert ctl.library is not None
        listing = photos_by_date(ctl.library.catalog)
        files = {Path(p).name: cache.name_for(s, GRID_THUMB_SIZE) for p, s in zip(listing.paths, listing.stamps,
                                                                                   strict=True)}
        assert sorted(files) == sorted(p.name for p in folder.glob("*.jpg"))
        qtbot.waitUntil(lambda: set(files.values()) <= _files(cache.folder), timeout=WAIT_MS)
        return ctl, win, files, reports

    ctl, win, before, reports = run(first_ms=0)
    assert before["twin-of-p0.jpg"] == before["p0.jpg"]
    # The pass soon after opening (here at once): nothing is old enough to judge yet.
    qtbot.waitUntil(lambda: len(reports) == 1, timeout=WAIT_MS)
    assert (reports[0].removed, reports[0].evicted) == (0, 0)
    win.close()  # quits: the controller shuts down
    assert _files(cache.folder) == set(before.values())

    # While the app is closed: p1 changes, p2 is deleted, and the original of the twins goes.
    make_photo(folder / "p1.jpg", seed=101)
    (folder / "p2.jpg").unlink()
    (folder / "p0.jpg").unlink()
    _age(cache.folder)  # the old thumbnails were written long before the next pass
    ctl, win, after, reports = run(first_ms=10**8)
    assert reports == []
    assert after["p1.jpg"] != before["p1.jpg"]
    with qtbot.waitSignal(ctl.pruner.finished, timeout=WAIT_MS) as pruned:
        assert ctl.pruner.run_now()
    report = pruned.args[0]
    assert isinstance(report, PruneReport)
    assert _files(cache.folder) == set(after.values())
    assert before["p1.jpg"] not in _files(cache.folder)  # the changed photo's old thumbnail
    assert before["p2.jpg"] not in _files(cache.folder)  # the deleted photo's
    assert after["twin-of-p0.jpg"] == before["p0.jpg"]  # still used by the twin: kept
    assert (report.removed, report.evicted, report.kept) == (2, 0, len(set(after.values())))
    win.close()
    assert not ctl.pruner.running
