"""A library that can run for months: flat file descriptors and connections, the model loaded only when a
photo needs it and unloaded when idle, searches that see a sync's photos while it runs, restarts without
rebuilds, and a private home."""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from photoembed.config import Paths, load_settings, save_settings
from photoembed.core.indexer import Progress
from photoembed.library import Library
from tests.conftest import make_photo

pytestmark = pytest.mark.model


@pytest.fixture
def library(model_home: Path) -> Iterator[Library]:
    lib = Library(Paths.resolve(model_home))
    yield lib
    lib.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _search_in_a_new_thread(library: Library, vector: np.ndarray, k: int) -> list[int]:
    """A search on a thread that ends right after it, as the GUI's expiring read-pool threads do."""
    found: list[int] = []
    model = library.settings.model
    thread = threading.Thread(
        target=lambda: found.extend(p for p, _ in library.vector_index.search(model, vector[None], k)[0])
    )
    thread.start()
    thread.join(30)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_fifty_syncs_and_searches_leak_no_fds_or_connections(library: Library, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    make_photo(photos / "first.jpg", seed=0)
    library.catalog.add_root(photos)
    library.indexer().run()
    model = library.settings.model
    baseline: tuple[int, int] | None = None
    for i in range(50):
        make_photo(photos / f"{i}.jpg", seed=i + 1)
        report = library.indexer().run()
        assert report.added == 1
        photo = library.catalog.photo_by_path(photos / f"{i}.jpg")
        assert photo is not None
        assert photo.content_hash is not None
        vector = library.catalog.embedding_for_hash(model, photo.content_hash)
        assert vector is not None
        assert photo.id in _search_in_a_new_thread(library, vector, 100)
        if i == 4:
            baseline = (_open_fds(), library.catalog.open_connections)
    assert baseline is not None
    assert _open_fds() <= baseline[0]
    assert library.catalog.open_connections <= baseline[1]
    assert library.vector_index.rebuilds == 1  # the first index only


def test_searches_during_a_sync_see_its_committed_photos(library: Library, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for i in range(12):
        make_photo(photos / f"{i:02d}.jpg", seed=i)
    library.catalog.add_root(photos)
    model = library.settings.model
    checked = 0
    for step in library.indexer(batch_size=3).sync():
        if not (isinstance(step, Progress) and step.phase == "index"):
            continue
        ids, vectors = library.catalog.vectors(model)  # what is committed so far
        assert len(ids) == step.done
        for pid, vector in zip(ids, vectors, strict=True):
            assert pid in _search_in_a_new_thread(library, vector, 50)
            checked += 1
    assert checked == 3 + 6 + 9 + 12
    rebuilds = library.vector_index.rebuilds
    assert rebuilds == 1
    restarted = Library(Paths.resolve(library.paths.data.parent))
    try:
        make_photo(photos / "new.jpg", seed=77)
        assert restarted.indexer().run().added == 1
        assert restarted.vector_index.rebuilds == 0  # loaded from disk, the new photo applied to it
        new = restarted.catalog.photo_by_path(photos / "new.jpg")
        assert new is not None
        assert new.content_hash is not None
        vector = restarted.catalog.embedding_for_hash(model, new.content_hash)
        assert vector is not None
        assert new.id in _search_in_a_new_thread(restarted, vector, 50)
        os.unlink(photos / "new.jpg")
        restarted.indexer().run()
        assert new.id not in _search_in_a_new_thread(restarted, vector, 50)
        assert restarted.vector_index.rebuilds == 0
    finally:
        restarted.close()


def _with_idle(home: Path, idle_s: float) -> Library:
    paths = Paths.resolve(home)
    return Library(paths, settings=dataclasses.replace(load_settings(paths), model_idle_s=idle_s))


def test_the_image_model_loads_on_need_and_unloads_when_idle(model_home: Path, tmp_path: Path) -> None:
    library = _with_idle(model_home, 0.3)
    try:
        photos = tmp_path / "photos"
        make_photo(photos / "a.jpg", seed=1)
        library.catalog.add_root(photos)
        indexer = library.indexer()
        assert indexer.encoder is None  # nothing loaded before a photo needs it
        assert indexer.run().embedded == 1
        assert indexer.encoder is not None
        deadline = time.monotonic() + 10
        while library.model_unloads == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert library.model_unloads == 1
        assert indexer.encoder is None
        make_photo(photos / "b.jpg", seed=2)
        assert indexer.run().embedded == 1  # loaded again for the new photo
    finally:
        library.close()


def test_a_sync_holds_the_model_against_the_idle_unload(model_home: Path, tmp_path: Path) -> None:
    library = _with_idle(model_home, 60)
    try:
        with library.holding_model():
            library.encoder(("image",))
            assert not library.unload_idle_model(now=time.monotonic() + 120)
        assert not library.unload_idle_model()  # used a moment ago
        assert library.unload_idle_model(now=time.monotonic() + 120)
    finally:
        library.close()


def test_the_idle_time_is_a_setting_and_a_new_value_applies_at_once(model_home: Path) -> None:
    paths = Paths.resolve(model_home)
    save_settings(paths, dataclasses.replace(load_settings(paths), model_idle_s=0))  # 0: never unload
    library = Library(paths)
    try:
        assert library.model_idle_s is None
        library.encoder(("image",))
        assert not library.unload_idle_model(now=time.monotonic() + 10**7)
        library.settings = dataclasses.replace(library.settings, model_idle_s=30)  # as the GUI's dialog does
        assert library.model_idle_s == 30
        assert not library.unload_idle_model(now=time.monotonic() + 10)
        assert library.unload_idle_model(now=time.monotonic() + 40)
        assert library.model_unloads == 1
    finally:
        library.close()
    assert load_settings(paths).model_idle_s == 0  # kept in settings.json


def _index_process(home: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PHOTOEMBED_HOME": str(home), "PYTHONPATH": os.getcwd()}
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "photoembed", *(command or ("index",))],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )


def _imported(stderr: str, *, top_level: bool = True) -> set[str]:
    """Modules a ``-X importtime`` run imported (top-level packages only, by default)."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            names.add(name.split(".")[0] if top_level else name)
    return names


def test_index_with_nothing_to_embed_never_imports_torch(library: Library, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for i in range(4):
        make_photo(photos / f"{i}.jpg", seed=i)
    library.catalog.add_root(photos)
    library.indexer().run()
    os.rename(photos / "0.jpg", photos / "renamed.jpg")  # a change, but nothing to embed
    home = library.paths.data.parent
    quiet = _index_process(home)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    imported = _imported(quiet.stderr)
    assert "photoembed" in imported  # the check sees imports at all
    assert not {"torch", "open_clip"} & imported
    # Benchmarks are imported only when one runs (they bring numpy, Pillow and more to the command line).
    assert not [m for m in _imported(quiet.stderr, top_level=False) if m.startswith("photoembed.bench")]
    other = tmp_path / "other"
    other.mkdir()
    commands = [("index",), ("status",), ("add", str(other)), ("remove", str(other)),
                ("dupes", "--tier", "identical"), ("dupes", "--tier", "same")]
    for command in commands:
        done = _index_process(home, *command)
        assert done.returncode == 0, (command, done.stderr[-2000:])
        assert not {"torch", "open_clip", "faiss"} & _imported(done.stderr), command  # nor the index (faiss)
    make_photo(photos / "new.jpg", seed=50)
    busy = _index_process(home)
    assert busy.returncode == 0, busy.stderr[-2000:]
    # A new photo does load the model: ONNX Runtime where its verified export exists, else torch.
    assert {"onnxruntime", "torch"} & _imported(busy.stderr)


def test_the_home_is_private_whatever_the_umask(model_home: Path, tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        library = Library(Paths.resolve(model_home))
        photos = tmp_path / "photos"
        make_photo(photos / "a.jpg", seed=1)
        library.catalog.add_root(photos)
        library.indexer().run()
        assert (library.paths.data / "catalog.sqlite3-wal").exists()
        checked = []
        for top in (library.paths.data, library.paths.config):
            for dirpath, _dirnames, filenames in os.walk(top):
                assert stat.S_IMODE(os.stat(dirpath).st_mode) == 0o700, dirpath
                for name in filenames:
                    path = Path(dirpath) / name
                    if not path.is_symlink():
                        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
                        checked.append(name)
        for folder in (library.paths.cache, library.paths.data.parent):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert {"catalog.sqlite3", "catalog.sqlite3-wal", "catalog.sqlite3-shm"} <= set(checked)
        assert any(name.endswith(".faiss") for name in checked)
        library.close()
    finally:
        os.umask(previous)


def test_front_ends_get_their_search_and_dedup_services_from_the_library(library: Library, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    for i in range(3):
        make_photo(folder / f"p{i}.jpg", seed=i)
    (folder / "copy.jpg").write_bytes((folder / "p0.jpg").read_bytes())
    library.catalog.add_root(folder)
    for _ in library.indexer().sync():
        pass
    hits = library.search_service().similar(folder / "p1.jpg", k=4).hits
    assert {h.path.name for h in hits} >= {"p0.jpg", "p2.jpg", "copy.jpg"}  # from p1's stored vector
    clusters = library.dedup_service().find_clusters(tier="identical", threshold=0.97, time_window=None)
    assert [sorted(p.path.name for p in c.photos) for c in clusters] == [["copy.jpg", "p0.jpg"]]
