"""ModelStore: the curated list, installing local weights, downloads (offline only: no network in tests)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from photoembed.config import DEFAULT_MODEL
from photoembed.errors import Cancelled, KnownError, ModelUnavailableError
from photoembed.ml.encoder import ClipEncoder
from photoembed.ml.models import KNOWN_MODELS, ModelStore, slug
from tests.tiny_clip import TINY_MODEL_ARCH, TinyModel, write_tiny_model


def test_list_shows_curated_models_missing(empty_store: ModelStore) -> None:
    rows = empty_store.list()
    assert [row.name for row in rows] == [model.name for model in KNOWN_MODELS]
    assert [row.name for row in rows if row.default] == [DEFAULT_MODEL]
    for row in rows:
        assert not row.installed
        assert row.weights is None
        assert row.note


def test_missing_weights_raise_model_unavailable(empty_store: ModelStore) -> None:
    assert empty_store.weights_for(DEFAULT_MODEL) is None
    with pytest.raises(ModelUnavailableError) as caught:
        ClipEncoder.load(empty_store, DEFAULT_MODEL)
    message = str(caught.value)
    assert message.startswith(f"No weights for model {DEFAULT_MODEL}.")
    assert f"photoembed model download {DEFAULT_MODEL}" in message
    assert "photoembed model install FILE" in message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["ViT-B-32", "ViT-B-32/", "/tag", "a/b/c", "../x"])
def test_malformed_names_are_known_errors(empty_store: ModelStore, name: str) -> None:
    with pytest.raises(KnownError, match="ARCH/TAG"):
        empty_store.spec(name)


@pytest.mark.model
def test_curated_models_exist_in_open_clip() -> None:
    from open_clip import get_model_config
    from open_clip.pretrained import get_pretrained_cfg

    for model in KNOWN_MODELS:
        arch, tag = model.name.split("/")
        assert get_model_config(arch) is not None, model.name
        assert get_pretrained_cfg(arch, tag).get("hf_hub"), model.name


@pytest.mark.model
def test_install_lists_and_resolves(tiny_store: ModelStore, tiny_model: TinyModel) -> None:
    row = next(row for row in tiny_store.list() if row.name == tiny_model.model_name)
    assert row.installed
    assert row.source == "installed"
    assert not row.default
    assert row.size == tiny_model.weights_path.stat().st_size
    weights = tiny_store.weights_for(tiny_model.model_name)
    assert weights == row.weights
    assert weights is not None
    assert weights.parent.parent == tiny_store.models_dir
    manifest = json.loads((weights.parent / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["name"] == tiny_model.model_name
    assert len(manifest["sha256"]) == 64
    assert (weights.parent / "open_clip_config.json").is_file()


@pytest.mark.model
def test_install_names_custom_architecture_from_config(empty_store: ModelStore, tiny_model: TinyModel) -> None:
    name = empty_store.install(tiny_model.weights_path, config=tiny_model.config_path)
    arch, tag = name.split("/")
    assert arch == TINY_MODEL_ARCH
    assert tag.startswith("custom-")
    assert len(tag) == len("custom-") + 12
    assert empty_store.weights_for(name) is not None


@pytest.mark.model
def test_install_from_a_copied_model_folder_keeps_its_name(
    tmp_path: Path, tiny_store: ModelStore, tiny_model: TinyModel
) -> None:
    copied = tiny_store.weights_for(tiny_model.model_name)
    assert copied is not None
    other = ModelStore(tmp_path / "other-models", tmp_path / "other-downloads")
    assert other.install(copied) == tiny_model.model_name
    assert other.spec(tiny_model.model_name).model_cfg["embed_dim"] == 32


@pytest.mark.model
def test_install_twice_replaces_the_weights(empty_store: ModelStore, tmp_path: Path, tiny_model: TinyModel) -> None:
    name = empty_store.install(tiny_model.weights_path, name="photoembed-tiny/x", config=tiny_model.config_path)
    second = write_tiny_model(tmp_path / "seed1", seed=1)
    empty_store.install(second.weights_path, name=name, config=second.config_path)
    weights = empty_store.weights_for(name)
    assert weights is not None
    assert weights.read_bytes() == second.weights_path.read_bytes()
    assert [p.name for p in empty_store.models_dir.iterdir()] == [slug(name)]


@pytest.mark.model
def test_corrupt_weights_file_is_refused(empty_store: ModelStore, tmp_path: Path, tiny_model: TinyModel) -> None:
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"this is not a checkpoint" * 100)
    with pytest.raises(KnownError, match="not a weights file photoembed can read"):
        empty_store.install(bad, name="photoembed-tiny/bad", config=tiny_model.config_path)
    assert not empty_store.models_dir.exists() or not any(empty_store.models_dir.iterdir())


@pytest.mark.model
def test_truncated_weights_file_is_refused(empty_store: ModelStore, tmp_path: Path, tiny_model: TinyModel) -> None:
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(tiny_model.weights_path.read_bytes()[:50_000])
    with pytest.raises(KnownError, match="not a weights file"):
        empty_store.install(truncated, name="photoembed-tiny/bad", config=tiny_model.config_path)


@pytest.mark.model
def test_weights_of_another_architecture_are_refused(empty_store: ModelStore, tiny_model: TinyModel) -> None:
    with pytest.raises(KnownError, match="does not hold weights for the ViT-B-32 architecture"):
        empty_store.install(tiny_model.weights_path, name="ViT-B-32/mine")


@pytest.mark.model
def test_unknown_architecture_needs_a_config(empty_store: ModelStore, tiny_model: TinyModel) -> None:
    with pytest.raises(KnownError, match="no architecture called no-such-arch"):
        empty_store.install(tiny_model.weights_path, name="no-such-arch/x")


@pytest.mark.model
def test_unnamed_file_that_is_not_weights_is_refused(empty_store: ModelStore, tmp_path: Path) -> None:
    file = tmp_path / "open_clip_pytorch_model.bin"
    file.write_bytes(b"\0" * 10)
    with pytest.raises(KnownError, match="is not a weights file photoembed can read"):
        empty_store.install(file)
    assert not empty_store.models_dir.exists() or not any(empty_store.models_dir.iterdir())


def test_missing_file_is_a_known_error(empty_store: ModelStore, tmp_path: Path) -> None:
    with pytest.raises(KnownError, match="No weights file"):
        empty_store.install(tmp_path / "nope.pt", name=DEFAULT_MODEL)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hugging Face Hub offline mode: the client refuses every request (it reads the flag at import)."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.mark.model
@pytest.mark.usefixtures("offline")
def test_download_offline_says_how_to_install(empty_store: ModelStore) -> None:
    with pytest.raises(KnownError) as caught:
        empty_store.download(DEFAULT_MODEL)
    message = str(caught.value)
    assert "cannot reach the model hub" in message
    assert f"photoembed model install FILE --model {DEFAULT_MODEL}" in message
    assert "\n" not in message
    assert empty_store.weights_for(DEFAULT_MODEL) is None


@pytest.mark.model
@pytest.mark.usefixtures("offline")
def test_download_uses_the_hub_cache(empty_store: ModelStore) -> None:
    """A file already in the Hub cache is found through open_clip's pretrained entry, even offline."""
    from open_clip.pretrained import get_pretrained_cfg

    repo_id = get_pretrained_cfg(*DEFAULT_MODEL.split("/"))["hf_hub"].rstrip("/")
    commit = "0" * 40
    repo = empty_store.downloads_dir / "huggingface" / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit, encoding="utf-8")
    cached = repo / "snapshots" / commit / "open_clip_pytorch_model.bin"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x" * 1000)
    seen: list[tuple[int, int]] = []

    path = empty_store.download(DEFAULT_MODEL, progress=lambda done, total: seen.append((done, total)))

    assert path == cached
    assert seen[-1] == (1000, 1000)
    assert empty_store.weights_for(DEFAULT_MODEL) == cached
    row = next(row for row in empty_store.list() if row.name == DEFAULT_MODEL)
    assert row.installed
    assert row.source == "downloaded"
    assert row.size == 1000


@pytest.mark.model
def test_download_unknown_tag(empty_store: ModelStore) -> None:
    with pytest.raises(KnownError, match="no pretrained weights called ViT-B-32/nope"):
        empty_store.download("ViT-B-32/nope")


@pytest.mark.model
def test_download_cancelled_before_start(empty_store: ModelStore) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        empty_store.download(DEFAULT_MODEL, cancel=cancel)



@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "needs"),
    [
        ("ViT-B-16-SigLIP/webli", "the Hugging Face tokenizer timm/ViT-B-16-SigLIP"),
        ("ViT-B-16-SigLIP2/webli", "the Hugging Face tokenizer timm/ViT-B-16-SigLIP2"),
        ("ViT-L-14-CLIPA/datacomp1b", "the Hugging Face tokenizer bert-base-uncased"),
        ("ViT-H-14-worldwide/metaclip2_worldwide", "the Hugging Face tokenizer facebook/xlm-v-base"),
    ],
)
def test_install_refuses_architectures_needing_a_tokenizer_photoembed_lacks(
    empty_store: ModelStore, tiny_model: TinyModel, name: str, needs: str
) -> None:
    with pytest.raises(KnownError) as caught:
        empty_store.install(tiny_model.weights_path, name=name)
    message = str(caught.value)
    assert message.startswith(f"{name} needs {needs}, which photoembed does not ship")
    assert "\n" not in message
    # Refused before anything was copied: no models folder, no staging folder.
    assert not empty_store.models_dir.exists() or not any(empty_store.models_dir.iterdir())


@pytest.mark.model
def test_install_without_a_name_reads_open_clips_folder_layout(
    empty_store: ModelStore, tmp_path: Path, tiny_model: TinyModel
) -> None:
    """open_clip's own layout: open_clip_model.safetensors beside open_clip_config.json."""
    folder = tmp_path / "my-tiny"
    folder.mkdir()
    written = write_tiny_model(tmp_path / "src", fmt="safetensors")
    weights = folder / "open_clip_model.safetensors"
    weights.write_bytes(written.weights_path.read_bytes())
    config = {"model_cfg": json.loads(written.config_path.read_text()), "preprocess_cfg": {}}
    (folder / "open_clip_config.json").write_text(json.dumps(config), encoding="utf-8")
    name = empty_store.install(weights)
    assert name.startswith("my-tiny/custom-")
    assert ClipEncoder.load(empty_store, name, device="cpu", threads=1, towers=("image",)).dim == 32


@pytest.mark.model
def test_install_without_a_name_reads_safetensors_metadata(empty_store: ModelStore, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    written = write_tiny_model(tmp_path / "src", fmt="safetensors")
    tensors = load_file(str(written.weights_path))
    bare = tmp_path / "weights.safetensors"
    config = json.dumps({"model_cfg": json.loads(written.config_path.read_text())})
    save_file(tensors, str(bare), metadata={"open_clip_config": config, "model_name": TINY_MODEL_ARCH})
    assert isinstance(next(iter(tensors.values())), torch.Tensor)
    name = empty_store.install(bare)
    assert name.startswith(f"{TINY_MODEL_ARCH}/custom-")


@pytest.mark.model
@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        ("ViT-B-32", DEFAULT_MODEL),  # ViT-B-32 and its quickgelu twin fit; the curated model decides
        ("MobileCLIP2-S0", "MobileCLIP2-S0/dfndr2b"),
        ("ViT-L-14", None),  # ViT-L-14 or ViT-L-14-quickgelu: ask
    ],
)
def test_identify_by_tensor_shapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arch: str, expected: str | None
) -> None:
    """The shapes of each architecture (built on the meta device: no 600 MB file in a test)."""
    from photoembed.ml import build
    from photoembed.ml.models import AmbiguousModelError, identify

    shapes = build.model_shapes(build.builtin_model_cfg(arch) or {})
    monkeypatch.setattr(build, "checkpoint_shapes", lambda path: (shapes, {}))
    file = tmp_path / "open_clip_model.safetensors"
    file.write_bytes(b"")
    if expected is None:
        with pytest.raises(AmbiguousModelError) as caught:
            identify(file)
        assert caught.value.candidates == [f"{arch}/local", f"{arch}-quickgelu/local"]
    else:
        found = identify(file)
        assert (found.name, found.how) == (expected, "its tensor shapes")
