"""Every command line the README shows is accepted by the CLI, and runs against a temporary library.

The README is the user's manual: this test reads its ``bash`` blocks, so a documented option that the parser
does not know (``status --json`` once failed) or a renamed command fails here before a user finds it.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from photoembed.cli.main import parse_args
from photoembed.launcher import main as launcher_main
from tests.conftest import make_photo

README = Path(__file__).resolve().parents[2] / "README.md"

#: Commands that run until stopped (or need the network, or a real model hub): parsed, not run.
PARSE_ONLY = ("watch", "bench")


def readme_commands() -> list[list[str]]:
    """The ``photoembed ...`` lines of the README's bash blocks, split as a shell would (comments dropped)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] == "photoembed":
                commands.append(words[1:])
    return commands


def test_the_readme_shows_commands() -> None:
    commands = readme_commands()
    assert len(commands) >= 15
    named = {c[0] for c in commands if c}
    for command in ("add", "index", "status", "search", "similar", "dupes", "undo", "protect", "watch", "model"):
        assert command in named


@pytest.mark.parametrize("argv", readme_commands(), ids=lambda argv: " ".join(argv)[:60])
def test_every_readme_command_parses(argv: list[str]) -> None:
    # An unknown option or command exits with status 2 here (a benchmark's own options included).
    args = parse_args(argv, external_benchmarks=[("gui", "GUI benchmark", lambda args: 0)])
    assert getattr(args, "handler", None) is not None, f"`photoembed {' '.join(argv)}` names no command"


@pytest.fixture
def readme_world(tmp_path: Path, model_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's home with the folders and files the README's examples name, and the tiny model installed."""
    user = tmp_path / "user"
    pictures = user / "Pictures"
    for i in range(4):
        make_photo(pictures / f"p{i}.jpg", seed=i)
    make_photo(pictures / "A.jpg", seed=10)
    make_photo(pictures / "B.jpg", seed=11)
    make_photo(pictures / "pool.jpg", seed=12)
    make_photo(pictures / "Originals" / "o.jpg", seed=13)
    (user / "Phone").mkdir()
    shutil.copy2(pictures / "p0.jpg", user / "Phone" / "p0-copy.jpg")  # an identical copy: --yes trashes it
    make_photo(user / "Downloads" / "IMG_0042.jpg", seed=20)
    monkeypatch.setenv("HOME", str(user))
    monkeypatch.chdir(pictures)
    return user


def test_every_readme_command_runs(readme_world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ran = []
    for argv in readme_commands():
        if argv[0] in PARSE_ONLY or (argv[:2] == ["model", "download"]):
            continue  # long-running, or needs the model hub this machine cannot reach
        code = launcher_main(argv)
        out, err = capsys.readouterr()
        assert "Traceback" not in err, f"photoembed {' '.join(argv)}:\n{err}"
        assert code == 0, f"`photoembed {' '.join(argv)}` exited {code}:\n{out}\n{err}"
        ran.append(argv[0])
        copies = [readme_world / "Pictures" / "p0.jpg", readme_world / "Phone" / "p0-copy.jpg"]
        if argv[:3] == ["dupes", "--trash-suggested", "--yes"]:
            assert sum(p.is_file() for p in copies) == 1, "the identical copy went to the trash, the keeper stayed"
        elif argv[0] == "undo":
            assert all(p.is_file() for p in copies), "undo put the copy back"
    assert {"add", "index", "status", "search", "similar", "dupes", "undo", "protect", "unprotect"} <= set(ran)
