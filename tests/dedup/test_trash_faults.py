"""Fault injection: a removal (`dupes --trash-suggested --yes`) and an undo stopped at EVERY step boundary.

For each boundary the service reports (journal intent, info file, rename or copy, unlink, journal done, for
every file), a fresh library is stopped there: in a child process killed with ``os._exit`` (as ``kill -9``:
no cleanup at all), and in process by an exception that is not an error (as Ctrl-C). Then a service opens
(which recovers) and the invariant is checked: every photo is in place with its content, or in the trash
under a "trashed" journal row whose slot holds its content, with its info file, and out of the catalog;
nothing else is in the trash, no row is left open, no temporary file is left. Finally undo runs to the end
and every photo is back, byte for byte, and the trash is empty.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from photoembed.config import Paths, Settings
from photoembed.core.hashing import content_hash
from photoembed.dedup import trash as trash_mod
from photoembed.dedup.service import DedupService
from photoembed.dedup.trash import SystemTrash, facts_or_none
from photoembed.errors import KnownError
from photoembed.storage.catalog import Catalog
from tests.dedup.conftest import PhotoLibrary, save_scene
from tests.dedup.fault_driver import KILLED
from tests.dedup.test_trash import RecordingIndexer

REPO = Path(__file__).resolve().parents[2]

TRASH_STEPS = {
    False: {"trash:verified", "trash:intent", "trash:info-written", "trash:moved", "trash:done"},
    True: {
        "trash:verified",
        "trash:intent",
        "trash:info-written",
        "trash:copied",
        "trash:source-removed",
        "trash:done",
    },
}
UNDO_STEPS = {
    False: {"undo:intent", "undo:moved", "undo:info-removed", "undo:done"},
    True: {"undo:intent", "undo:copied", "undo:source-removed", "undo:info-removed", "undo:done"},
}


class Injected(BaseException):
    """Stops a run at a step boundary like Ctrl-C would (not an Exception: no handler may swallow it)."""


class Scenario:
    """A small library at a fixed place (journal and catalog hold absolute paths), restorable between runs."""

    def __init__(self, base: Path, monkeypatch: pytest.MonkeyPatch, *, cli: bool = False) -> None:
        self.run = base / "run"
        self.pristine = base / "pristine"
        self.photos = self.run / "photos"
        self.xdg = self.run / "xdg"
        self.cli = cli
        self.home = self.run / "home"
        self.catalog_path = Paths.resolve(self.home).catalog if cli else self.run / "catalog.sqlite3"
        monkeypatch.setenv("XDG_DATA_HOME", str(self.xdg))
        monkeypatch.setenv("PHOTOEMBED_HOME", str(self.home))
        self.originals: dict[Path, str] = {}

    @property
    def trash(self) -> Path:
        return self.xdg / "Trash"

    def build(self) -> None:
        self.photos.mkdir(parents=True)
        self.xdg.mkdir()
        for seed, name in ((1, "a.jpg"), (2, "b.jpg")):
            first = save_scene(self.photos / name, seed, quality=90)
            copy = self.photos / "copies" / name
            copy.parent.mkdir(exist_ok=True)
            shutil.copy2(first, copy)
            for p in (first, copy):
                self.originals[p] = content_hash(p.read_bytes())
        if self.cli:  # catalogued by the real commands
            from photoembed.cli.main import main

            assert main(["add", str(self.photos)]) == 0
            assert main(["index"]) == 0
            return
        catalog = Catalog.open(self.catalog_path)
        library = PhotoLibrary(catalog, self.photos)
        for p in self.originals:
            library.add(p)
        catalog.close()

    def save(self) -> None:
        shutil.copytree(self.run, self.pristine, symlinks=True)

    def reset(self, source: Path | None = None) -> None:
        shutil.rmtree(self.run)
        shutil.copytree(source or self.pristine, self.run, symlinks=True)

    def keep(self, name: str) -> Path:
        """A copy of the run as it is now (for runs that start from it)."""
        target = self.run.parent / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(self.run, target, symlinks=True)
        return target

    def service(self, catalog: Catalog, **kw: object) -> DedupService:
        return DedupService(catalog=catalog, settings=Settings(), trash=SystemTrash(), **kw)  # type: ignore[arg-type]

    def open_with(self, checkpoint: Callable[[str], None]) -> list[str]:
        """Open a service (which recovers) with ``checkpoint`` at each step; returns the steps seen."""
        seen: list[str] = []

        def step(name: str) -> None:
            seen.append(name)
            checkpoint(name)

        catalog = Catalog.open(self.catalog_path)
        try:
            self.service(catalog, checkpoint=step)
        finally:
            catalog.close()
        return seen

    def trash_all(self) -> None:
        catalog = Catalog.open(self.catalog_path)
        service = self.service(catalog)
        service.execute(service.plan_trash(service.find_clusters(tier="identical")))
        catalog.close()

    # -- the invariant ----------------------------------------------------------------------------

    def check_invariant(self, phase: str, where: str) -> None:
        catalog = Catalog.open(self.catalog_path)
        try:
            service = self.service(catalog)  # opening recovers
            assert not service.store.has_open_rows(), where
            rows = [e for e in service.store.open_rows()]
            assert rows == []
            trashed = {}
            for (batch,) in catalog.db.execute("SELECT id FROM dedup_batches"):
                for entry in service.store.batch_entries(int(batch)):
                    if entry.state == "trashed":
                        assert entry.path not in trashed, where
                        trashed[entry.path] = entry
            in_trash = 0
            for path, digest in self.originals.items():
                here = facts_or_none(path)
                if here is not None and here.content_hash == digest:
                    assert path not in trashed, f"{where}: {path} is in place but journaled as trashed"
                    if phase == "trash":
                        assert catalog.photo_by_path(path) is not None, f"{where}: {path} dropped from the catalog"
                    continue
                assert path in trashed, f"{where}: {path} is neither in place nor journaled in the trash (lost)"
                entry = trashed[path]
                assert entry.slot is not None
                stored = facts_or_none(entry.slot.stored)
                assert stored is not None, f"{where}: {path}'s trash slot is empty"
                assert stored.content_hash == digest, f"{where}: {path}'s trash slot holds another photo"
                assert entry.slot.info.exists(), f"{where}: {path} has no .trashinfo"
                assert catalog.photo_by_path(path) is None, f"{where}: {path} is in the trash and the catalog"
                in_trash += 1
            assert in_trash == len(trashed), where
            files = _listing(self.trash / "files")
            infos = _listing(self.trash / "info")
            assert files == {e.slot.stored for e in trashed.values() if e.slot}, f"{where}: stray files in the trash"
            assert infos == {e.slot.info for e in trashed.values() if e.slot}, f"{where}: stray info files"
            leftovers = [p for p in self.photos.rglob("*") if p.name.endswith(".photoembed-restore")]
            assert leftovers == [], where
        finally:
            catalog.close()

    def undo_everything(self, where: str) -> None:
        catalog = Catalog.open(self.catalog_path)
        library = PhotoLibrary(catalog, self.photos)
        service = self.service(catalog, indexer=RecordingIndexer(library))
        while service.store.last_open_batch() is not None:
            service.undo()
        with pytest.raises(KnownError, match="nothing to undo"):
            service.undo()
        for path, digest in self.originals.items():
            assert path.exists(), f"{where}: {path} did not come back"
            assert content_hash(path.read_bytes()) == digest, f"{where}: {path} came back with other content"
        assert _listing(self.trash / "files") == set(), where
        assert _listing(self.trash / "info") == set(), where
        assert not service.store.has_open_rows()
        catalog.close()


def _listing(folder: Path) -> set[Path]:
    return set(folder.iterdir()) if folder.is_dir() else set()


def _child(scenario: Scenario, phase: str, kill_at: int, exdev: bool) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.dedup.fault_driver",
            str(scenario.catalog_path),
            phase,
            str(kill_at),
            "1" if exdev else "0",
            "cli" if scenario.cli else "service",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _steps(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split(" ", 1)[1] for line in done.stdout.splitlines() if line.startswith("step ")]


@pytest.mark.slow
@pytest.mark.parametrize("exdev", [False, True], ids=["rename", "cross-device"])
@pytest.mark.parametrize("phase", ["trash", "undo"])
def test_kill_at_every_step_boundary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, phase: str, exdev: bool) -> None:
    """The real `dupes --trash-suggested --yes` and `undo` commands, killed (os._exit) at each boundary."""
    scenario = Scenario(tmp_path, monkeypatch, cli=True)
    scenario.build()
    if phase == "undo":
        scenario.trash_all()
    scenario.save()
    full = _child(scenario, phase, 0, exdev)  # a whole run, to list its step boundaries
    assert full.returncode == 0, full.stderr
    steps = _steps(full)
    assert set(steps) == (TRASH_STEPS if phase == "trash" else UNDO_STEPS)[exdev]
    assert len(steps) >= 2 * len(set(steps)) - 1  # every file went through them (2 files)
    recovery_steps: set[str] = set()
    for k in range(1, len(steps) + 1):
        scenario.reset()
        where = f"{phase}, killed at step {k} ({steps[k - 1]})"
        done = _child(scenario, phase, k, exdev)
        assert done.returncode == KILLED, f"{where}: {done.stderr}"
        assert _steps(done) == steps[:k], where
        killed = scenario.keep("killed")
        # The recovery the next start runs can stop too, at each of its own steps (in process: recovery has
        # no handler that an interrupt would run and a kill would not, so the files and rows end the same).
        recovery = scenario.open_with(lambda _name: None)
        assert all(step.startswith("recover:") for step in recovery), recovery
        recovery_steps.update(recovery)
        for j in range(1, len(recovery) + 1):
            scenario.reset(killed)
            again = f"{where}, then recovery stopped at its step {j} ({recovery[j - 1]})"
            with pytest.raises(Injected):
                scenario.open_with(_stop_at(j))
            scenario.check_invariant(phase, again)
            scenario.undo_everything(again)
        scenario.reset(killed)
        scenario.check_invariant(phase, where)
        scenario.undo_everything(where)
    assert recovery_steps, "some stop left work for recovery"


def _stop_at(k: int) -> Callable[[str], None]:
    seen: list[str] = []

    def stop(name: str) -> None:
        seen.append(name)
        if len(seen) == k:
            raise Injected(name)

    return stop


def _exdev(monkeypatch: pytest.MonkeyPatch) -> None:
    real = trash_mod._rename

    def rename(src: Path, dst: Path) -> None:
        if src.parent != dst.parent:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        real(src, dst)

    monkeypatch.setattr(trash_mod, "_rename", rename)


@pytest.mark.parametrize("exdev", [False, True], ids=["rename", "cross-device"])
@pytest.mark.parametrize("phase", ["trash", "undo"])
def test_interrupt_at_every_step_boundary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, phase: str, exdev: bool
) -> None:
    if exdev:
        _exdev(monkeypatch)
    scenario = Scenario(tmp_path, monkeypatch)
    scenario.build()
    if phase == "undo":
        scenario.trash_all()
    scenario.save()

    def run(checkpoint: Callable[[str], None]) -> None:
        catalog = Catalog.open(scenario.catalog_path)
        try:
            service = scenario.service(catalog, checkpoint=checkpoint)
            if phase == "trash":
                service.execute(service.plan_trash(service.find_clusters(tier="identical")))
            else:
                service.undo()
        finally:
            catalog.close()

    steps: list[str] = []
    run(steps.append)
    assert set(steps) == (TRASH_STEPS if phase == "trash" else UNDO_STEPS)[exdev]
    for k in range(1, len(steps) + 1):
        scenario.reset()
        where = f"{phase}, interrupted at step {k} ({steps[k - 1]})"
        with pytest.raises(Injected):
            run(_stop_at(k))
        scenario.check_invariant(phase, where)
        scenario.undo_everything(where)


def test_undo_killed_after_moving_back_closes_and_catalogues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 9.5's undo case: killed after the move back, before the journal: the batch still closes."""
    scenario = Scenario(tmp_path, monkeypatch)
    scenario.build()
    scenario.trash_all()
    scenario.save()
    steps = _steps(_child(scenario, "undo", 0, exdev=False))
    scenario.reset()
    killed = _child(scenario, "undo", steps.index("undo:moved") + 1, exdev=False)
    assert killed.returncode == KILLED
    catalog = Catalog.open(scenario.catalog_path)
    library = PhotoLibrary(catalog, scenario.photos)
    indexer = RecordingIndexer(library)
    service = scenario.service(catalog, indexer=indexer)  # recovers the interrupted row
    restored = service.undo()
    assert len(restored) == 1  # the other file; the first came back through recovery
    assert len(indexer.synced) == 2  # both are catalogued again
    for path, digest in scenario.originals.items():
        assert content_hash(path.read_bytes()) == digest
        assert catalog.photo_by_path(path) is not None
    with pytest.raises(KnownError, match="nothing to undo"):
        service.undo()
    catalog.close()
