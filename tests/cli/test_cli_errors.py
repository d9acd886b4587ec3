"""One clear sentence, never a traceback, for what the environment does wrong (issue 9, item 16)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from photoembed.cli.main import catalog_problem, main
from photoembed.config import MAX_THREADS, Paths, Settings, SettingsError, load_settings
from tests.conftest import make_photo

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err
    return code, err


def _one_sentence(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("photoembed: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_garbled_catalog_names_the_file_and_what_to_do(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    paths = Paths.resolve(home)
    paths.data.mkdir(parents=True)
    paths.catalog.write_bytes(b"this is not a database at all" * 200)
    for command in (["status"], ["index"], ["search", "dog"], ["dupes"]):
        code, err = _run(capsys, *command)
        assert code == 1
        sentence = _one_sentence(err)
        assert str(paths.catalog) in sentence
        assert "damaged" in sentence


def test_sqlite_errors_are_told_by_their_code() -> None:
    with pytest.raises(sqlite3.Error) as syntax:
        sqlite3.connect(":memory:").execute("PRAGMA no_such_thing = ;")
    assert "cannot be used" in catalog_problem(syntax.value, "C")
    full = sqlite3.OperationalError("whatever the text")
    full.sqlite_errorcode = 13  # type: ignore[attr-defined]
    assert "full" in catalog_problem(full, "C")


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("threads", "x", "whole number"),
        ("threads", 100000, "up to"),
        ("threads", True, "whole number"),
        ("keeper_criteria", None, "list of texts"),
        ("excluded_patterns", 5, "list of texts"),
        ("excluded_patterns", "node_modules", "list of texts"),
        ("excluded_patterns", ["ok", 3], "list of texts"),
        ("similar_threshold", "high", "number"),
        ("use_gpu", "yes", "true or false"),
        ("model", 7, "text"),
        ("model_idle_s", "10 minutes", "number"),
        ("model_idle_s", -5, "never unload"),
        ("model_idle_s", float("nan"), "never unload"),
    ],
)
def test_wrong_settings_are_a_clear_error_naming_the_key(
    capsys: pytest.CaptureFixture[str], home: Path, key: str, value: object, words: str
) -> None:
    paths = Paths.resolve(home)
    paths.config.mkdir(parents=True)
    paths.settings_file.write_text(json.dumps({key: value}), encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_settings(paths)
    assert caught.value.key == key
    assert str(paths.settings_file) in str(caught.value)
    for command in (["status"], ["index"]):
        code, err = _run(capsys, *command)
        assert code == 1
        sentence = _one_sentence(err)
        assert f'"{key}"' in sentence or f"{key} " in sentence
        assert words in sentence


def test_settings_are_immutable_typed_values() -> None:
    settings = Settings(excluded_patterns=["a", "b"], keeper_criteria=["older"], similar_threshold=1)
    assert settings.excluded_patterns == ("a", "b")
    assert isinstance(settings.similar_threshold, float)
    with pytest.raises(AttributeError):
        settings.threads = 3  # type: ignore[misc]
    with pytest.raises(SettingsError):
        Settings(threads="2")  # type: ignore[arg-type]
    with pytest.raises(SettingsError):
        Settings(threads=MAX_THREADS + 1).validate()
    assert Settings(**Settings().to_json()) == Settings()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs (root only: CI runs as root), unmounted afterwards."""
    if not IS_ROOT or shutil.which("mount") is None:
        pytest.skip("needs root to mount a tmpfs")
    where = tmp_path / "fs"
    where.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "photoembed-test", str(where)], check=True)
    except (subprocess.CalledProcessError, OSError):
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_read_only_home_is_one_sentence_for_every_command(
    capsys: pytest.CaptureFixture[str], tmpfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHOTOEMBED_HOME", str(tmpfs / "home"))
    make_photo(tmp_path / "photos" / "a.jpg", seed=1)
    assert main(["add", str(tmp_path / "photos")]) == 0
    assert main(["index"]) == 0
    capsys.readouterr()
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    for command in (["status"], ["index"], ["add", str(tmp_path)], ["search", "dog"], ["dupes"]):
        code, err = _run(capsys, *command)
        assert code == 1, command
        _one_sentence(err)


def test_a_fresh_read_only_home_is_one_sentence(
    capsys: pytest.CaptureFixture[str], tmpfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    monkeypatch.setenv("PHOTOEMBED_HOME", str(tmpfs / "home"))
    code, err = _run(capsys, "status")
    assert code == 1
    assert "Cannot create" in _one_sentence(err)


def test_full_disk_during_index_is_one_sentence(
    capsys: pytest.CaptureFixture[str], tmpfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHOTOEMBED_HOME", str(tmpfs / "home"))
    for i in range(40):
        make_photo(tmp_path / "photos" / f"p{i}.jpg", seed=i, size=(64, 48))
    assert main(["add", str(tmp_path / "photos")]) == 0
    # Fill the file system, leaving no room for the photos' rows.
    with (tmpfs / "filler").open("wb") as handle, pytest.raises(OSError, match="No space"):  # noqa: PT012
        while True:
            handle.write(b"\0" * 65536)
            handle.flush()
    capsys.readouterr()
    code, err = _run(capsys, "index")
    assert code == 1
    assert "full" in _one_sentence(err)


def test_full_disk_while_writing_the_faiss_index_is_an_oserror(tmpfs: Path) -> None:
    import faiss
    import numpy as np

    from photoembed.storage.vector_index import write_index_atomically

    index = faiss.IndexFlatIP(64)
    index.add(np.random.default_rng(0).random((20000, 64), dtype=np.float32))  # ~5 MB > the 4 MB tmpfs
    with pytest.raises(OSError, match="No space") as caught:
        write_index_atomically(index, tmpfs / "x.faiss")
    assert caught.value.errno == 28
    assert list(tmpfs.iterdir()) == []  # the temp file is gone too
