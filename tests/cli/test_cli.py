"""End-to-end CLI runs in a private --home on generated photos, without model weights."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from photoembed.cli.main import main
from tests.conftest import make_photo


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    for i in range(5):
        make_photo(tmp_path / "photos" / f"p{i}.jpg", seed=i)
    return tmp_path / "photos"


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("add", "remove", "index", "status", "bench"):
        assert command in out


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from photoembed.cli.main import build_parser\n"
        "build_parser().format_help()\n"
        "heavy = [m for m in ('torch', 'open_clip', 'faiss', 'PySide6') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_benchmark_module_is_imported_only_when_it_runs() -> None:
    code = (
        "import json, sys\n"
        "from photoembed.cli.main import parse_args\n"
        "def benches(): return sorted(m for m in sys.modules if m.startswith('photoembed.bench'))\n"
        "parse_args(['index'])\n"
        "before = benches()\n"
        "args = parse_args(['bench', 'rescan', '--photos', '7'])\n"
        "print(json.dumps([before, benches(), args.photos, args.handler.__module__]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after, photos, module = json.loads(result.stdout)
    assert before == []
    assert "photoembed.bench.rescan" in after
    assert "photoembed.bench.soak" not in after
    assert (photos, module) == (7, "photoembed.bench.rescan")


def test_every_listed_benchmark_registers_itself_with_the_listed_help() -> None:
    from photoembed.cli.main import BENCHMARKS, build_parser

    for name, (_module, help_text) in BENCHMARKS.items():
        parser = build_parser(benchmark=name)
        bench = next(a for a in parser._subparsers._group_actions if a.dest == "command").choices["bench"]  # type: ignore[union-attr]
        choices = next(a for a in bench._subparsers._group_actions if a.dest == "bench")  # type: ignore[union-attr]
        chosen = choices.choices[name]
        assert chosen.get_default("handler") is not None, name  # its real parser, not the stand-in
        listed = {c.dest: c.help for c in choices._choices_actions}
        assert listed[name] == help_text, name


def test_add_index_status_without_a_model(capsys: pytest.CaptureFixture[str], home: Path, photos: Path) -> None:
    (photos / "broken.jpg").write_bytes(b"not a photo")
    assert run_cli(capsys, "add", str(photos))[0] == 0
    code, out, err = run_cli(capsys, "--json", "index")
    assert code == 0
    assert "no weights for model" in err
    assert json.loads(out)["added"] == 5
    code, out, _ = run_cli(capsys, "--json", "status")
    status = json.loads(out)
    assert status["roots"][0]["path"] == str(photos.resolve())
    assert status["model"] is None
    assert status["indexed"] == 5
    assert status["failed"] == [{"path": str(photos.resolve() / "broken.jpg"), "reason": status["failed"][0]["reason"]}]
    assert status["failed"][0]["reason"]
    code, out, _ = run_cli(capsys, "status")
    assert "is not installed" in out
    assert "broken.jpg" in out


def test_remove_forgets_photos_but_keeps_files(capsys: pytest.CaptureFixture[str], home: Path, photos: Path) -> None:
    run_cli(capsys, "add", str(photos))
    run_cli(capsys, "index")
    code, out, _ = run_cli(capsys, "remove", str(photos))
    assert code == 0
    assert "5 photos forgotten" in out
    assert len(list(photos.iterdir())) == 5
    code, out, _ = run_cli(capsys, "--json", "status")
    assert json.loads(out)["roots"] == []


def test_clear_errors(capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "index")
    assert code == 1
    assert "add one with `photoembed add FOLDER`" in err
    code, _, err = run_cli(capsys, "add", str(tmp_path / "nope"))
    assert code == 1
    assert "is not a folder" in err
    code, _, err = run_cli(capsys, "remove", str(tmp_path))
    assert code == 1
    assert "not a folder of this library" in err


def test_home_option_keeps_libraries_apart(capsys: pytest.CaptureFixture[str], tmp_path: Path, photos: Path) -> None:
    run_cli(capsys, "--home", str(tmp_path / "a"), "add", str(photos))
    _, out_a, _ = run_cli(capsys, "--home", str(tmp_path / "a"), "--json", "status")
    _, out_b, _ = run_cli(capsys, "--home", str(tmp_path / "b"), "--json", "status")
    assert len(json.loads(out_a)["roots"]) == 1
    assert json.loads(out_b)["roots"] == []
    assert (tmp_path / "a" / "data" / "catalog.sqlite3").exists()
    assert (tmp_path / "a" / "cache" / "CACHEDIR.TAG").exists()


@pytest.mark.slow
def test_kill_during_index_then_resume(tmp_path: Path) -> None:
    photos = tmp_path / "many"
    for i in range(400):
        make_photo(photos / f"{i:03d}.jpg", seed=1000 + i, size=(400, 300))
    home = tmp_path / "home"
    cli = [sys.executable, "-m", "photoembed", "--home", str(home)]
    subprocess.run([*cli, "add", str(photos)], check=True, capture_output=True)
    process = subprocess.Popen([*cli, "index", "--batch-size", "8"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    catalog = home / "data" / "catalog.sqlite3"
    deadline = time.monotonic() + 60
    committed = 0
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with contextlib.closing(sqlite3.connect(catalog, timeout=1)) as db, db:
                committed = db.execute("SELECT COUNT(*) FROM photos").fetchone()[0]
        except sqlite3.OperationalError:
            committed = 0
        if committed >= 16:
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert 16 <= committed < 400, "the kill must land mid-run"
    with contextlib.closing(sqlite3.connect(catalog)) as db, db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    result = subprocess.run([*cli, "--json", "index"], check=True, capture_output=True, text=True)
    report = json.loads(result.stdout)
    assert report["added"] <= 400 - committed
    with contextlib.closing(sqlite3.connect(catalog)) as db, db:
        assert db.execute("SELECT COUNT(*) FROM photos").fetchone()[0] == 400


def test_external_benchmarks_get_their_arguments_verbatim(home: Path) -> None:
    received: list[list[str]] = []

    def entry(argv: list[str]) -> int:
        received.append(argv)
        return 7

    assert main(["--home", str(home), "bench", "gui", "--help", "--photos", "10"],
                external_benchmarks=[("gui", "GUI benchmark", entry)]) == 7
    assert received == [["--home", str(home), "--help", "--photos", "10"]]


@pytest.mark.parametrize(
    ("argv", "opens_window"),
    [
        ([], True),
        (["--home", "/x"], True),
        (["--home=/x"], True),
        (["status"], False),
        (["--home", "/x", "index"], False),
    ],
)
def test_bare_launch_opens_the_window(argv: list[str], opens_window: bool) -> None:
    from photoembed.launcher import _opens_window

    assert _opens_window(argv) is opens_window
