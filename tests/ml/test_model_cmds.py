"""``photoembed model ...`` and ``photoembed bench model`` end to end, in a private --home."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from photoembed.cli.main import main
from photoembed.config import DEFAULT_MODEL, Paths, load_settings
from tests.tiny_clip import TINY_MODEL_ARCH, TinyModel


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_list_without_weights(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listing = _json(capsys, ["--home", str(home), "--json", "model", "list"])
    assert listing["current"] == DEFAULT_MODEL
    assert not any(row["installed"] for row in listing["models"])
    assert [row["name"] for row in listing["models"] if row["current"]] == [DEFAULT_MODEL]

    assert main(["--home", str(home), "model", "list"]) == 0
    text = capsys.readouterr().out
    assert f"* {DEFAULT_MODEL}" in text
    assert "photoembed model install FILE" in text


@pytest.mark.model
def test_first_install_becomes_the_active_model(
    home: Path, tiny_model: TinyModel, capsys: pytest.CaptureFixture[str]
) -> None:
    installed = _json(
        capsys,
        [
            "--home",
            str(home),
            "--json",
            "model",
            "install",
            str(tiny_model.weights_path),
            "--config",
            str(tiny_model.config_path),
        ],
    )
    name = installed["installed"]
    assert name.startswith(f"{TINY_MODEL_ARCH}/custom-")
    assert installed["active"] is True
    assert load_settings(Paths.resolve(home)).model == name

    # A second model is installed but does not take over.
    second = _json(
        capsys,
        [
            "--home",
            str(home),
            "--json",
            "model",
            "install",
            str(tiny_model.weights_path),
            "--config",
            str(tiny_model.config_path),
            "--model",
            f"{TINY_MODEL_ARCH}/second",
        ],
    )
    assert second["active"] is False
    listing = _json(capsys, ["--home", str(home), "--json", "model", "list"])
    rows = {row["name"]: row for row in listing["models"]}
    assert rows[name]["current"]
    assert rows[name]["installed"]
    assert rows[f"{TINY_MODEL_ARCH}/second"]["source"] == "installed"

    bench = _json(
        capsys,
        [
            "--home",
            str(home),
            "--json",
            "bench",
            "model",
            "--batch-sizes",
            "1,4",
            "--seconds",
            "0.05",
            "--threads",
            "1",
            "--device",
            "cpu",
        ],
    )
    assert bench["model"] == name
    assert set(bench["images_per_s"]) == {"1", "4"}
    assert all(rate > 0 for rate in bench["images_per_s"].values())


@pytest.mark.model
def test_install_refuses_a_corrupt_file(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "weights.safetensors"
    bad.write_bytes(b"\x00garbage" * 64)
    assert main(["--home", str(home), "model", "install", str(bad), "--model", DEFAULT_MODEL]) == 1
    err = capsys.readouterr().err
    assert err.startswith("photoembed: ")
    assert "not a weights file photoembed can read" in err
    assert err.count("\n") == 1


@pytest.mark.model
def test_download_offline(home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert main(["--home", str(home), "model", "download"]) == 1
    err = capsys.readouterr().err
    assert f"photoembed model install FILE --model {DEFAULT_MODEL}" in err
    assert err.count("\n") == 1


@pytest.mark.model
def test_install_asks_when_several_architectures_fit(
    home: Path, tiny_model: TinyModel, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a terminal the user picks one; off a terminal the one-sentence error stands."""
    import io

    from photoembed.ml import models

    chosen = f"{TINY_MODEL_ARCH}/seed0"
    calls: list[str | None] = []
    real_install = models.ModelStore.install

    def install(self: models.ModelStore, file: Path, *, name: str | None = None, config: Path | None = None) -> str:
        calls.append(name)
        if name is None:
            raise models.AmbiguousModelError("x fits several architectures (a, b); name it", ["a/local", chosen])
        return real_install(self, file, name=name, config=tiny_model.config_path)

    monkeypatch.setattr(models.ModelStore, "install", install)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal("2\n"))
    assert main(["--home", str(home), "model", "install", str(tiny_model.weights_path)]) == 0
    assert calls == [None, chosen]
    assert "2. " + chosen in capsys.readouterr().err

    calls.clear()
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal
    assert main(["--home", str(home), "model", "install", str(tiny_model.weights_path)]) != 0
    assert calls == [None]
    assert "fits several architectures" in capsys.readouterr().err
