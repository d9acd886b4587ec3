"""Issue 9, "photos sent to the trash that should not be": each case reproduced, then held off.

Cases that need root (bind mounts) skip without it; every other case runs everywhere.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from photoembed.config import Settings
from photoembed.core.hashing import content_hash
from photoembed.dedup import trash as trash_mod
from photoembed.dedup.records import TrashItem, TrashPlan
from photoembed.dedup.service import DedupService, TrashRefusedError, UndoIncompleteError
from photoembed.dedup.trash import SystemTrash
from photoembed.errors import KnownError
from photoembed.storage.catalog import Catalog
from tests.dedup.conftest import PhotoLibrary, save_scene
from tests.dedup.test_trash import RecordingIndexer

# Every refusal and every renamed restore is logged as a warning: that is what these tests provoke.
pytestmark = pytest.mark.expected_warnings(
    r"^Not moving \d+ file\(s\) to the trash: ", r"^Not moved to the trash: ", r": restored as .*: another file"
)


def _digest(path: Path) -> str:
    return content_hash(path.read_bytes())


def _pair(library: PhotoLibrary, seed: int, name: str = "a.jpg") -> tuple[Path, Path]:
    """A photo and a byte-identical copy in a subfolder, both catalogued."""
    first = save_scene(library.root / name, seed, quality=90)
    copy = library.root / f"copy{seed}" / name
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(first, copy)
    library.add(first)
    library.add(copy)
    return first, copy


def _split(service: DedupService) -> tuple[Path, list[Path]]:
    (cluster,) = service.find_clusters(tier="identical")
    keeper = next(p.path for p in cluster.photos if p.keep)
    return keeper, [p.path for p in cluster.removable]


def _trash_files(trash_home: Path) -> list[Path]:
    folder = trash_home / "files"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _trash_infos(trash_home: Path) -> list[Path]:
    folder = trash_home / "info"
    return sorted(folder.iterdir()) if folder.is_dir() else []


# -- 1. the keeper changed after it was listed --------------------------------------------------------


def test_keeper_overwritten_after_listing_keeps_the_last_copy(library: PhotoLibrary, service: DedupService) -> None:
    _pair(library, 1)
    plan = service.plan_trash(service.find_clusters(tier="identical"))
    keeper = plan.items[0].kept[0]
    victim = plan.items[0].path
    original = _digest(victim)
    save_scene(keeper, 77, quality=90)  # another photo now has the keeper's name
    with pytest.raises(TrashRefusedError, match=r"kept .* changed since it was listed"):
        service.execute(plan)
    assert victim.exists()
    assert _digest(victim) == original


def test_keeper_rewritten_with_same_size_and_time_is_caught_by_its_content(
    library: PhotoLibrary, service: DedupService
) -> None:
    _pair(library, 2)
    plan = service.plan_trash(service.find_clusters(tier="identical"))
    keeper = plan.items[0].kept[0]
    st = keeper.stat()
    data = bytearray(keeper.read_bytes())
    data[len(data) // 2] ^= 0xFF
    keeper.write_bytes(bytes(data))
    os.utime(keeper, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(TrashRefusedError, match="changed since it was listed"):
        service.execute(plan)
    assert plan.items[0].path.exists()


def test_a_changed_group_is_skipped_and_the_others_move(
    library: PhotoLibrary, service: DedupService, trash_home: Path
) -> None:
    _pair(library, 3, "a.jpg")
    _pair(library, 4, "b.jpg")
    plan = service.plan_trash(service.find_clusters(tier="identical"))
    assert plan.files == 2
    changed, fine = plan.items
    save_scene(changed.kept[0], 78, quality=90)
    batch = service.execute(plan)
    assert changed.path.exists()
    assert not fine.path.exists()
    report = {e.path: e for e in service.batch_report(batch)}
    assert report[fine.path].state == "trashed"
    assert report[changed.path].state == "skipped"
    assert "changed since it was listed" in (report[changed.path].outcome or "")
    assert service.undo() == [fine.path]


def test_cli_yes_after_the_keeper_was_overwritten(
    home: Path, trash_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from photoembed.cli.main import main

    photos = tmp_path / "photos"
    a = save_scene(photos / "a.png", 5)
    b = photos / "b.png"
    shutil.copy2(a, b)
    assert main(["add", str(photos)]) == 0
    assert main(["index"]) == 0
    capsys.readouterr()
    assert main(["--json", "dupes", "--tier", "identical"]) == 0
    (cluster,) = json.loads(capsys.readouterr().out)["clusters"]
    keeper = next(Path(p["path"]) for p in cluster["photos"] if p["keep"])
    other = next(Path(p["path"]) for p in cluster["photos"] if not p["keep"])
    original = _digest(other)
    save_scene(keeper, 79)  # overwritten after indexing: the catalog still has the old hash
    code = main(["dupes", "--tier", "identical", "--trash-suggested", "--yes"])
    captured = capsys.readouterr()
    assert code != 0
    assert "changed since it was listed" in captured.err + captured.out
    assert _digest(other) == original
    assert _trash_files(trash_home) == []


# -- 2. one file reached through two paths ------------------------------------------------------------


def test_hard_links_are_one_file_not_duplicates(library: PhotoLibrary, service: DedupService) -> None:
    a = save_scene(library.root / "a.jpg", 6, quality=90)
    b = library.root / "b.jpg"
    os.link(a, b)
    library.add(a)
    library.add(b)
    assert service.find_clusters(tier="identical") == []
    # A plan made before (or by hand) pairing the two names is refused: the kept name is not another copy.
    item = TrashItem(
        library.catalog.photo_by_path(b).id,  # type: ignore[union-attr]
        b,
        b.stat().st_size,
        b.stat().st_mtime_ns,
        _digest(b),
        (a,),
        (_digest(a),),
    )
    with pytest.raises(TrashRefusedError, match="same file as the kept"):
        service.execute(TrashPlan((item,)))
    assert a.exists()
    assert b.exists()


def test_copies_left_counts_distinct_files(library: PhotoLibrary, service: DedupService) -> None:
    a = save_scene(library.root / "a.jpg", 7, quality=90)
    link = library.root / "a-link.jpg"
    os.link(a, link)
    copy = library.root / "sub" / "a.jpg"
    copy.parent.mkdir()
    shutil.copy2(a, copy)
    for p in (a, link, copy):
        library.add(p)
    (cluster,) = service.find_clusters(tier="identical")
    assert len(cluster.photos) == 2  # two files, whatever the number of names
    inodes = {(p.path.stat().st_dev, p.path.stat().st_ino) for p in cluster.photos}
    assert len(inodes) == 2
    service.execute(service.plan_trash([cluster]))
    left = {(p.stat().st_dev, p.stat().st_ino) for p in (a, link, copy) if p.exists()}
    assert len(left) == 1  # one distinct file left with the photo
    assert all(_digest(p) == _digest(copy if copy.exists() else a) for p in (a, link, copy) if p.exists())


def test_second_root_through_a_symlink_never_pairs_a_file_with_itself(
    catalog: Catalog, library: PhotoLibrary, service: DedupService, tmp_path: Path
) -> None:
    a = save_scene(library.root / "a.jpg", 8, quality=90)
    b = save_scene(library.root / "b.jpg", 9, quality=90)
    library.add(a)
    library.add(b)
    alias = tmp_path / "alias"
    alias.symlink_to(library.root)
    # add_root resolves symlinks, so write the second root as an older catalog (or another tool) could have.
    with catalog.transaction() as db:
        db.execute("INSERT INTO roots(path, protected, added_at) VALUES (?, 0, ?)", (str(alias), time.time()))
    second = PhotoLibrary.__new__(PhotoLibrary)
    second.catalog, second.root = catalog, alias
    second.root_id = int(catalog.db.execute("SELECT id FROM roots WHERE path = ?", (str(alias),)).fetchone()[0])
    second.add(alias / "a.jpg")
    second.add(alias / "b.jpg")
    assert service.find_clusters(tier="identical") == []
    items = tuple(
        TrashItem(
            catalog.photo_by_path(alias / p.name).id,  # type: ignore[union-attr]
            alias / p.name,
            p.stat().st_size,
            p.stat().st_mtime_ns,
            _digest(p),
            (p,),
            (_digest(p),),
        )
        for p in (a, b)
    )
    with pytest.raises(TrashRefusedError):
        service.execute(TrashPlan(items))
    assert a.exists()
    assert b.exists()


@pytest.fixture
def bind_mount(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """``(source, mount)``: tmp_path/photos bind-mounted at tmp_path/mnt (root only; skips otherwise)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("bind mounts need root")
    source, mount = tmp_path / "photos", tmp_path / "mnt"
    source.mkdir(exist_ok=True)
    mount.mkdir()
    done = subprocess.run(["mount", "--bind", str(source), str(mount)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield source, mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_one_folder_as_two_roots_by_bind_mount(
    catalog: Catalog, bind_mount: tuple[Path, Path], trash_home: Path
) -> None:
    source, mount = bind_mount
    first = PhotoLibrary(catalog, source)
    paths = [save_scene(source / f"{n}.jpg", 10 + n, quality=90) for n in range(3)]
    for p in paths:
        first.add(p)
    second = PhotoLibrary(catalog, mount)
    for p in paths:
        second.add(mount / p.name)
    service = DedupService(catalog=catalog, settings=Settings(), trash=SystemTrash())
    assert service.find_clusters(tier="identical") == []
    items = tuple(
        TrashItem(
            catalog.photo_by_path(mount / p.name).id,  # type: ignore[union-attr]
            mount / p.name,
            p.stat().st_size,
            p.stat().st_mtime_ns,
            _digest(p),
            (p,),
            (_digest(p),),
        )
        for p in paths
    )
    with pytest.raises(TrashRefusedError, match="same file as the kept"):
        service.execute(TrashPlan(items))
    assert all(p.exists() for p in paths)


# -- 3. undo across mounts (EXDEV) --------------------------------------------------------------------


def test_trash_and_undo_from_a_bind_mount(catalog: Catalog, bind_mount: tuple[Path, Path], trash_home: Path) -> None:
    _source, mount = bind_mount
    library = PhotoLibrary(catalog, mount)
    a = save_scene(mount / "Aqua.jpg", 20, quality=90)
    b = mount / "sub" / "Aqua.jpg"
    b.parent.mkdir()
    shutil.copy2(a, b)
    library.add(a)
    library.add(b)
    service = DedupService(catalog=catalog, settings=Settings(), trash=SystemTrash(), indexer=RecordingIndexer(library))
    keeper, (victim,) = _split(service)
    digest = _digest(victim)
    with pytest.raises(OSError, match="cross-device") as rename_error:  # the case: rename out of a bind mount
        os.rename(keeper, trash_home.parent / "probe.jpg")
    assert rename_error.value.errno == errno.EXDEV
    service.execute(service.plan_trash(service.find_clusters(tier="identical")))
    assert not victim.exists()
    assert len(_trash_files(trash_home)) == 1
    assert service.undo() == [victim]
    assert _digest(victim) == digest
    assert _trash_files(trash_home) == []
    assert _trash_infos(trash_home) == []


def _force_exdev(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, Path]]:
    """Every rename between two folders fails with EXDEV (what a bind mount or another file system does)."""
    refused: list[tuple[Path, Path]] = []
    real = trash_mod._rename

    def rename(src: Path, dst: Path) -> None:
        if src.parent != dst.parent:
            refused.append((src, dst))
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        real(src, dst)

    monkeypatch.setattr(trash_mod, "_rename", rename)
    return refused


def test_trash_and_undo_when_rename_crosses_devices(
    library: PhotoLibrary, catalog: Catalog, trash_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = _force_exdev(monkeypatch)
    _pair(library, 21)
    service = DedupService(catalog=catalog, settings=Settings(), trash=SystemTrash(), indexer=RecordingIndexer(library))
    keeper, (victim,) = _split(service)
    digest = _digest(victim)
    mtime = victim.stat().st_mtime_ns
    service.execute(service.plan_trash(service.find_clusters(tier="identical")))
    assert refused  # it really went the copy way
    assert not victim.exists()
    (stored,) = _trash_files(trash_home)
    assert _digest(stored) == digest
    assert service.undo() == [victim]
    assert _digest(victim) == digest
    assert victim.stat().st_mtime_ns == mtime
    assert _trash_files(trash_home) == []
    assert _trash_infos(trash_home) == []
    assert not any(p.name.endswith(".photoembed-restore") for p in victim.parent.iterdir())
    assert keeper.exists()


# -- 4. undo takes back the file the journal moved ------------------------------------------------------


def test_undo_restores_the_journaled_photo_not_the_newest_of_that_name(
    library: PhotoLibrary, service: DedupService, trash_home: Path
) -> None:
    _first, _copy = _pair(library, 30)
    _keeper, (victim,) = _split(service)
    photo_a = _digest(victim)
    batch_a = service.execute(service.plan_trash(service.find_clusters(tier="identical")))
    # Another photo B now lives at the same path, has its own copy, and goes to the trash too.
    save_scene(victim, 31, quality=90)
    other_copy = library.root / "elsewhere" / "b.jpg"
    other_copy.parent.mkdir()
    shutil.copy2(victim, other_copy)
    library.add(victim)
    library.add(other_copy)
    photo_b = _digest(victim)
    st = victim.stat()
    row = library.catalog.photo_by_path(victim)
    assert row is not None
    item_b = TrashItem(row.id, victim, st.st_size, st.st_mtime_ns, photo_b, (other_copy,), (photo_b,))
    batch_b = service.execute(TrashPlan((item_b,)))  # B, at the same path as A
    assert len(_trash_files(trash_home)) == 2
    # Pretend A's row predates recorded slots: undo must pick by content, not by name and date.
    with library.catalog.transaction() as db:
        db.execute("UPDATE dedup_trash_journal SET trash_dir = NULL, trash_name = NULL WHERE batch_id = ?", (batch_a,))
    assert service.undo(batch_a) == [victim]
    assert _digest(victim) == photo_a
    (left,) = _trash_files(trash_home)
    assert _digest(left) == photo_b  # B stays in the trash, its batch open
    (back,) = service.undo(batch_b)  # A holds the name: B comes back beside it, under a free name
    assert back != victim
    assert back.parent == victim.parent
    assert _digest(back) == photo_b
    assert _digest(victim) == photo_a
    assert _trash_files(trash_home) == []
    with pytest.raises(KnownError, match="nothing to undo"):
        service.undo()


# -- 6. symlinks, and a trash emptied by hand ----------------------------------------------------------


def test_files_through_a_symlinked_subfolder_are_never_trashed(
    library: PhotoLibrary, service: DedupService, tmp_path: Path, trash_home: Path
) -> None:
    top = save_scene(library.root / "a.jpg", 40, quality=90)
    sub = library.root / "sub"
    inner = save_scene(sub / "a.jpg", 40, quality=90)
    shutil.copy2(top, inner)
    library.add(top)
    library.add(inner)
    plan = service.plan_trash(service.find_clusters(tier="identical"))
    assert plan.files == 1
    outside = tmp_path / "outside"
    shutil.copytree(sub, outside, copy_function=shutil.copy2)  # byte-identical, same times
    shutil.rmtree(sub)
    sub.symlink_to(outside)
    with pytest.raises(TrashRefusedError, match="symbolic link"):
        service.execute(plan)
    assert (outside / "a.jpg").exists()
    assert top.exists()
    assert _trash_files(trash_home) == []


def test_trash_info_removed_by_hand_still_undoes(
    library: PhotoLibrary, service: DedupService, trash_home: Path
) -> None:
    _pair(library, 41)
    _keeper, (victim,) = _split(service)
    digest = _digest(victim)
    service.execute(service.plan_trash(service.find_clusters(tier="identical")))
    for info in _trash_infos(trash_home):
        info.unlink()  # the user emptied half of the trash: the info files, not the files
    assert service.undo() == [victim]
    assert _digest(victim) == digest
    with pytest.raises(KnownError, match="nothing to undo"):
        service.undo()


def test_file_emptied_from_the_trash_closes_the_batch(
    library: PhotoLibrary, service: DedupService, trash_home: Path
) -> None:
    _pair(library, 42, "a.jpg")
    _pair(library, 43, "b.jpg")
    service.execute(service.plan_trash(service.find_clusters(tier="identical")))
    gone, kept_in_trash = _trash_files(trash_home)
    gone.unlink()
    with pytest.raises(UndoIncompleteError, match="no longer in the trash") as error:
        service.undo()
    assert len(error.value.restored) == 1
    assert len(error.value.problems) == 1
    assert _trash_files(trash_home) == []
    assert _trash_infos(trash_home) == []
    assert not kept_in_trash.exists()
    with pytest.raises(KnownError, match="nothing to undo"):
        service.undo()


def test_a_second_removal_waits_for_the_first(
    library: PhotoLibrary, service: DedupService, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from photoembed.dedup import service as service_mod

    monkeypatch.setattr(service_mod, "LOCK_WAIT_S", 0.05)
    _pair(library, 44)
    plan = service.plan_trash(service.find_clusters(tier="identical"))
    running = service.iter_execute(plan)
    next(running)  # holds the library's removal lock while it runs
    other = DedupService(catalog=catalog, settings=Settings(), trash=SystemTrash())
    with pytest.raises(KnownError, match="Another removal or undo is running"):
        other.undo()
    for _ in running:
        pass
    assert other.undo() == [plan.items[0].path]


def test_cli_reports_a_skipped_group_and_moves_the_rest(
    home: Path, trash_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from photoembed.cli.main import main

    photos = tmp_path / "photos"
    for seed, name in ((50, "a"), (51, "b")):
        first = save_scene(photos / f"{name}.png", seed)
        shutil.copy2(first, photos / f"{name}-copy.png")
    assert main(["add", str(photos)]) == 0
    assert main(["index"]) == 0
    capsys.readouterr()
    assert main(["--json", "dupes", "--tier", "identical"]) == 0
    clusters = json.loads(capsys.readouterr().out)["clusters"]
    keeper = next(Path(p["path"]) for p in clusters[0]["photos"] if p["keep"])
    save_scene(keeper, 52)
    assert main(["--json", "dupes", "--tier", "identical", "--trash-suggested", "--yes"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 1
    (skipped,) = result["skipped"]
    assert "changed since it was listed" in skipped["reason"]
    assert Path(skipped["path"]).exists()
    assert len(_trash_files(trash_home)) == 1


def test_old_journal_row_whose_info_was_removed_still_undoes(
    library: PhotoLibrary, service: DedupService, trash_home: Path
) -> None:
    _pair(library, 45)
    _keeper, (victim,) = _split(service)
    digest = _digest(victim)
    batch = service.execute(service.plan_trash(service.find_clusters(tier="identical")))
    with library.catalog.transaction() as db:  # a row from before slots were recorded
        db.execute("UPDATE dedup_trash_journal SET trash_dir = NULL, trash_name = NULL WHERE batch_id = ?", (batch,))
    for info in _trash_infos(trash_home):
        info.unlink()
    assert service.undo() == [victim]
    assert _digest(victim) == digest
    assert _trash_files(trash_home) == []


def test_os_trash_without_records_is_journaled_and_undo_says_to_restore_by_hand(
    library: PhotoLibrary, catalog: Catalog, trash_home: Path
) -> None:
    from photoembed.dedup.trash import SendToTrash

    _pair(library, 46)
    service = DedupService(catalog=catalog, settings=Settings(), trash=SendToTrash())  # as on macOS, Windows
    _keeper, (victim,) = _split(service)
    batch = service.execute(service.plan_trash(service.find_clusters(tier="identical")))
    assert not victim.exists()
    assert [e.state for e in service.batch_report(batch)] == ["trashed"]
    with pytest.raises(UndoIncompleteError, match="by hand"):
        service.undo()
    assert service.store.last_open_batch() == batch  # still in the OS trash: the batch stays open


def test_a_copy_that_does_not_verify_leaves_the_photo_in_place(
    library: PhotoLibrary, catalog: Catalog, trash_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _force_exdev(monkeypatch)
    _pair(library, 47, "a.jpg")
    _pair(library, 48, "b.jpg")
    service = DedupService(catalog=catalog, settings=Settings(), trash=SystemTrash())
    plan = service.plan_trash(service.find_clusters(tier="identical"))
    first, second = plan.items
    real_copy = trash_mod._copy_verified

    def flaky(src: Path, dst: Path, expected: str | None) -> None:
        if src == first.path:  # the bytes read differ from the ones checked (a disk error, a writer racing us)
            expected = "0" * 32
        real_copy(src, dst, expected)

    monkeypatch.setattr(trash_mod, "_copy_verified", flaky)
    batch = service.execute(plan)
    assert _digest(first.path) == first.content_hash
    assert not second.path.exists()
    report = {e.path: e for e in service.batch_report(batch)}
    assert report[first.path].state == "rolled_back"
    assert "does not match" in (report[first.path].outcome or "")
    assert catalog.photo_by_path(first.path) is not None
    assert len(_trash_files(trash_home)) == 1  # the bad copy did not stay
    assert len(_trash_infos(trash_home)) == 1
