from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from photoembed.config import Settings
from photoembed.dedup.service import DedupService, TrashRefusedError
from photoembed.dedup.trash import SystemTrash
from photoembed.errors import KnownError
from photoembed.storage.catalog import Catalog
from tests.dedup.conftest import PhotoLibrary, save_scene


class RecordingIndexer:
    """Stands in for Indexer.sync(paths=...): re-catalogs the restored files like the indexer would."""

    def __init__(self, library: PhotoLibrary) -> None:
        self.library = library
        self.synced: list[Path] = []

    def sync(self, *, paths: Iterable[Path] | None = None, cancel: threading.Event | None = None) -> Iterator[object]:
        for path in paths or ():
            self.synced.append(path)
            self.library.add(path)
            yield path


def _copies(library: PhotoLibrary, n: int = 3) -> list[Path]:
    first = save_scene(library.root / "a.jpg", 31, quality=90)
    paths = [first]
    for k in range(1, n):
        target = library.root / f"copy{k}" / "a.jpg"
        target.parent.mkdir()
        shutil.copyfile(first, target)
        paths.append(target)
    for p in paths:
        library.add(p)
    return paths


def test_trash_then_undo(catalog: Catalog, library: PhotoLibrary, trash_home: Path) -> None:
    indexer = RecordingIndexer(library)
    service = DedupService(catalog=catalog, settings=Settings(), trash=SystemTrash(), indexer=indexer)
    paths = _copies(library)
    plan = service.plan_trash(service.find_clusters(tier="identical"))
    assert plan.files == 2
    assert plan.bytes == 2 * paths[0].stat().st_size
    generation = catalog.generation
    batch = service.execute(plan)
    moved = [i.path for i in plan.items]
    assert not any(p.exists() for p in moved)
    assert sum(1 for p in paths if p.exists()) == 1
    # The trash honours XDG_DATA_HOME: everything landed in this test's private trash.
    assert len(list((trash_home / "files").iterdir())) == 2
    assert len(list((trash_home / "info").glob("*.trashinfo"))) == 2
    assert all(catalog.photo_by_path(p) is None for p in moved)
    assert catalog.generation > generation
    assert service.find_clusters(tier="identical") == []

    restored = service.undo()
    assert sorted(restored) == sorted(moved)
    assert all(p.exists() for p in paths)
    assert list((trash_home / "info").iterdir()) == []
    assert sorted(indexer.synced) == sorted(moved)
    assert len(service.find_clusters(tier="identical")) == 1
    with pytest.raises(KnownError, match="nothing to undo"):
        service.undo()
    with pytest.raises(KnownError, match="no removal batch"):
        service.undo(batch + 100)


@pytest.mark.expected_warnings(r"^Not moving \d+ file\(s\) to the trash: ")
def test_refuses_when_a_photo_changed_or_went_since_listing(library: PhotoLibrary, service: DedupService) -> None:
    _copies(library)
    plan = service.plan_trash(service.find_clusters(tier="identical"))
    victim = plan.items[0].path
    with victim.open("ab") as handle:
        handle.write(b"edited")
    with pytest.raises(TrashRefusedError, match="changed since it was listed"):
        service.execute(plan)
    assert all(i.path.exists() for i in plan.items)  # nothing moved
    victim.unlink()
    with pytest.raises(TrashRefusedError, match="is gone"):
        service.execute(plan)


@pytest.mark.expected_warnings(r"^Not moving \d+ file\(s\) to the trash: ")
def test_refuses_same_size_same_time_rewrite(library: PhotoLibrary, service: DedupService) -> None:
    _copies(library)
    plan = service.plan_trash(service.find_clusters(tier="identical"))
    victim = plan.items[0].path
    st = victim.stat()
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(TrashRefusedError, match="changed since it was listed"):
        service.execute(plan)


@pytest.mark.expected_warnings(r"^Not moving \d+ file\(s\) to the trash: ")
def test_never_removes_every_copy(library: PhotoLibrary, service: DedupService) -> None:
    paths = _copies(library, 2)
    (cluster,) = service.find_clusters(tier="identical")
    plan = service.plan_trash([cluster])
    assert plan.files == 1
    keeper = next(p.path for p in cluster.photos if p.keep)
    keeper.unlink()  # the copy we meant to keep is gone: removing the other would lose the photo
    with pytest.raises(TrashRefusedError, match="no kept copy"):
        service.execute(plan)
    assert sum(p.exists() for p in paths) == 1


@pytest.mark.expected_warnings(r"^Not moving \d+ file\(s\) to the trash: ")
def test_refuses_inside_a_protected_folder(library: PhotoLibrary, service: DedupService) -> None:
    _copies(library)
    plan = service.plan_trash(service.find_clusters(tier="identical"))
    service.protect(plan.items[0].path.parent)
    with pytest.raises(TrashRefusedError, match="protected folder"):
        service.execute(plan)


def test_undo_reports_files_gone_from_the_trash(library: PhotoLibrary, service: DedupService, trash_home: Path) -> None:
    _copies(library, 2)
    service.execute(service.plan_trash(service.find_clusters(tier="identical")))
    for entry in (trash_home / "files").iterdir():
        entry.unlink()  # the user emptied the trash
    with pytest.raises(KnownError, match="no longer in the trash"):
        service.undo()
