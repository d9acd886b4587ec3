"""Photos the user chose for the trash (a selection in the app): the only copy may go, journaled, undoable."""

from __future__ import annotations

import pytest

from photoembed.dedup.records import TrashItem, TrashPlan
from photoembed.dedup.service import DedupService, TrashRefusedError
from tests.dedup.conftest import PhotoLibrary, save_scene


def test_a_chosen_unique_photo_goes_to_the_trash_and_undo_brings_it_back(
    library: PhotoLibrary, service: DedupService
) -> None:
    path = save_scene(library.root / "only.jpg", 3, quality=90)
    library.add(path)
    before = path.read_bytes()
    photo = library.catalog.photo_by_path(path)
    assert photo is not None
    plan = service.plan_chosen_trash([photo])
    batch = service.execute(plan)
    assert not path.exists()
    assert library.catalog.photo_by_path(path) is None
    assert [e.state for e in service.batch_report(batch)] == ["trashed"]
    assert service.undo(batch) == [path]
    assert path.read_bytes() == before


@pytest.mark.expected_warnings(r"Not moving 1 file\(s\) to the trash")
def test_a_chosen_photo_that_changed_since_it_was_chosen_stays(library: PhotoLibrary, service: DedupService) -> None:
    path = save_scene(library.root / "only.jpg", 4, quality=90)
    library.add(path)
    photo = library.catalog.photo_by_path(path)
    assert photo is not None
    plan = service.plan_chosen_trash([photo])
    save_scene(path, 5, quality=70)  # overwritten by another photo before the move
    with pytest.raises(TrashRefusedError):
        service.execute(plan)
    assert path.exists()


@pytest.mark.expected_warnings(r"Not moving 1 file\(s\) to the trash")
def test_duplicate_removal_without_a_kept_copy_is_still_refused(library: PhotoLibrary, service: DedupService) -> None:
    path = save_scene(library.root / "only.jpg", 6, quality=90)
    library.add(path)
    photo = library.catalog.photo_by_path(path)
    assert photo is not None
    item = TrashItem(photo.id, path, photo.size, photo.mtime_ns, photo.content_hash, ())
    with pytest.raises(TrashRefusedError):
        service.execute(TrashPlan((item,)))
    assert path.exists()


@pytest.mark.expected_warnings(r"Not moving 1 file\(s\) to the trash")
def test_a_chosen_photo_in_a_protected_folder_stays(library: PhotoLibrary, service: DedupService) -> None:
    path = save_scene(library.root / "keep" / "only.jpg", 7, quality=90)
    library.add(path)
    service.protect(library.root / "keep")
    photo = library.catalog.photo_by_path(path)
    assert photo is not None
    with pytest.raises(TrashRefusedError):
        service.execute(service.plan_chosen_trash([photo]))
    assert path.exists()
