"""The ONNX Runtime path: export and verification, refusal, the torch-free tokenizer and query process,
the opt-in int8 runtime, and start-up without garbage-collection work. On the tiny open_clip model."""

from __future__ import annotations

import copy
import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from photoembed.config import Paths
from photoembed.library import Library
from photoembed.ml.encoder import ClipEncoder, plan_runtime
from photoembed.ml.engine import INT8_SUFFIX, gc_paused
from photoembed.ml.models import ModelStore
from photoembed.ml.onnx_export import (
    MANIFEST,
    VERIFY_COSINE,
    export_model,
    export_with_dynamo,
    find_export,
)
from photoembed.ml.tokenizer import ClipBpeTokenizer
from tests.conftest import make_photo
from tests.tiny_clip import TinyModel

pytestmark = pytest.mark.model

REPO = Path(__file__).resolve().parents[2]

# Queries the torch-free tokenizer must split exactly as open_clip does.
CORPUS = [
    "",
    "a dog",
    "A Dog On The BEACH",
    "sunset   over\tthe\nsea",
    "Crème brûlée in Zürich",
    "東京タワーの夜景",
    "Москва зимой",
    "مدينة القدس",
    "🎉🐶🎂 party",
    "👨‍👩‍👧‍👦 family photo",
    "naïve café résumé",
    "it's what we'd've done, isn't it?",
    "&amp;&lt;b&gt;html&lt;/b&gt; &#39;quoted&#39;",
    "numbers 12345 and 3.14159 and 1,000,000",
    "snake_case and kebab-case and CamelCase",
    "Ａｂｃ fullwidth ＡＢＣ",
    "mojibake: Ã©tÃ©",
    "x" * 500,
    "mountain lake " * 60,
    "🙂" * 100,
]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(np.sum(a * b, axis=-1))


def test_export_is_verified_and_tagged(tiny_store: ModelStore, tiny_model: TinyModel) -> None:
    name = tiny_model.model_name
    export = find_export(tiny_store.onnx_dir(name), name, tiny_store.weights_for(name), tiny_store.weights_digest(name))
    assert export is not None
    manifest = export.manifest
    assert manifest["model"] == name
    assert manifest["source"]["sha256"] == tiny_store.weights_digest(name)
    assert name in manifest["tag"]
    assert "onnx fp32" in manifest["tag"]
    assert "onnxruntime" in manifest["tag"]
    for tower in ("image", "text"):
        record = export.tower(tower)
        assert record is not None, export.refusal(tower)
        assert record["min_cosine"] >= VERIFY_COSINE
        assert (export.folder / record["file"]).is_file()
    assert export.embed_dim == 32


def test_export_for_other_weights_is_ignored(tiny_store: ModelStore, tiny_model: TinyModel) -> None:
    name = tiny_model.model_name
    folder, weights = tiny_store.onnx_dir(name), tiny_store.weights_for(name)
    assert find_export(folder, name, weights, tiny_store.weights_digest(name)) is not None
    assert find_export(folder, name, weights, "0" * 64) is None
    assert find_export(folder, "other/model", weights, tiny_store.weights_digest(name)) is None


def test_ort_encoder_matches_torch(tiny_encoder: ClipEncoder, tiny_torch_encoder: ClipEncoder) -> None:
    assert tiny_encoder.runtime == {"image": "ONNX Runtime fp32 on cpu", "text": "ONNX Runtime fp32 on cpu"}
    assert tiny_torch_encoder.runtime == {"image": "torch fp32 on cpu", "text": "torch fp32 on cpu"}
    # fp32 exports are interchangeable with torch: same storage key.
    assert tiny_encoder.name == tiny_torch_encoder.name
    batch = np.random.default_rng(5).standard_normal((7, 3, 32, 32), dtype=np.float32)
    assert _cosines(tiny_encoder.encode_images(batch), tiny_torch_encoder.encode_images(batch)).min() >= 0.9999
    texts = CORPUS[1:]
    assert _cosines(tiny_encoder.encode_texts(texts), tiny_torch_encoder.encode_texts(texts)).min() >= 0.9999
    # Batched and one at a time (each cut to its own length) agree.
    one = np.concatenate([tiny_encoder.encode_texts([t]) for t in texts[:5]])
    np.testing.assert_allclose(one, tiny_encoder.encode_texts(texts[:5]), atol=1e-5)


def test_trimmed_text_matches_open_clip_encode_text(tiny_encoder: ClipEncoder, tiny_store: ModelStore,
                                                    tiny_model: TinyModel) -> None:
    """Golden test of the end-of-text trim: the ORT text tower against open_clip's own full-context path."""
    import open_clip
    import torch

    from photoembed.ml.build import load_model

    spec = tiny_store.spec(tiny_model.model_name)
    model: Any = load_model(spec, device="cpu")
    tokenizer = open_clip.get_tokenizer(spec.tokenizer_source)
    texts = ["a photo of a cat", "🎉 emoji", "long " * 100]
    with torch.inference_mode():
        reference = torch.nn.functional.normalize(model.encode_text(tokenizer(texts)), dim=-1).numpy()
    assert _cosines(tiny_encoder.encode_texts(texts), reference).min() >= 0.9999


def test_tokenizer_matches_open_clip_token_for_token(tiny_store: ModelStore, tiny_model: TinyModel) -> None:
    import open_clip

    name = tiny_model.model_name
    export = find_export(tiny_store.onnx_dir(name), name, tiny_store.weights_for(name), tiny_store.weights_digest(name))
    assert export is not None
    ours = export.tokenizer()
    reference = open_clip.get_tokenizer("ViT-B-32")
    np.testing.assert_array_equal(ours(CORPUS), reference(CORPUS).numpy())
    # An over-long text is cut to the context and still ends with the end-of-text token.
    long_row = ours(["word " * 200])[0]
    assert long_row[-1] == ours.eot_token_id
    assert (long_row != 0).all()


@pytest.mark.parametrize("clean", ["whitespace", "canonicalize"])
def test_tokenizer_other_cleanings_match_open_clip(clean: str) -> None:
    from open_clip.tokenizer import SimpleTokenizer, default_bpe

    ours = ClipBpeTokenizer(Path(default_bpe()), context_length=32, clean=clean)
    reference = SimpleTokenizer(context_length=32, clean=clean)
    np.testing.assert_array_equal(ours(CORPUS), reference(CORPUS).numpy())


def _perturbing_exporter(module: Any, example: tuple[Any, ...], path: Path, dynamic: dict[str, Any]) -> None:
    """Exports a copy of the tower whose weights were nudged: what a broken exporter would produce."""
    import torch

    broken = copy.deepcopy(module)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in broken.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.5)
    export_with_dynamo(broken, example, path, dynamic)


@pytest.mark.expected_warnings(r"ONNX export of the .* tower of .* refused")
def test_a_mismatching_export_is_refused_and_torch_is_used(tmp_path: Path, tiny_model: TinyModel,
                                                          tiny_torch_encoder: ClipEncoder) -> None:
    store = ModelStore(tmp_path / "models", tmp_path / "downloads")
    name = store.install(tiny_model.weights_path, name=tiny_model.model_name, config=tiny_model.config_path)
    export = export_model(store.spec(name), store.onnx_dir(name), digest=store.weights_digest(name),
                          exporter=_perturbing_exporter)
    for tower in ("image", "text"):
        assert export.tower(tower) is None
        reason = export.refusal(tower)
        assert reason is not None
        assert "differs from torch" in reason
        assert export.manifest["towers"][tower]["min_cosine"] < VERIFY_COSINE
        assert not (export.folder / f"{tower}.onnx").exists()  # the refused file is not kept

    encoder = ClipEncoder.load(store, name, device="cpu", threads=1)  # runtime "auto": ORT wanted
    assert encoder.runtime == {"image": "torch fp32 on cpu", "text": "torch fp32 on cpu"}
    batch = np.random.default_rng(6).standard_normal((2, 3, 32, 32), dtype=np.float32)
    np.testing.assert_allclose(encoder.encode_images(batch), tiny_torch_encoder.encode_images(batch), atol=1e-6)
    # The refusal is remembered (no new export on the next load) and shown in the plan.
    manifest_before = (store.onnx_dir(name) / MANIFEST).read_text(encoding="utf-8")
    plan = plan_runtime(store, name, device="cpu")
    assert plan.export == "refused"
    assert plan.towers["image"] == "torch fp32 on cpu"
    ClipEncoder.load(store, name, device="cpu", threads=1, towers=("text",))
    assert (store.onnx_dir(name) / MANIFEST).read_text(encoding="utf-8") == manifest_before


def test_int8_is_opt_in_and_stored_apart(tiny_store: ModelStore, tiny_model: TinyModel,
                                         tiny_encoder: ClipEncoder) -> None:
    name = tiny_model.model_name
    assert plan_runtime(tiny_store, name, device="cpu").key == name  # the default is exact
    int8 = ClipEncoder.load(tiny_store, name, device="cpu", threads=1, runtime="onnx-int8")
    assert int8.runtime["image"] == "ONNX Runtime int8 on cpu"
    assert int8.runtime["text"] == "ONNX Runtime fp32 on cpu"
    assert int8.name == name + INT8_SUFFIX  # never mixed with exact vectors in the catalog
    assert plan_runtime(tiny_store, name, runtime="onnx-int8", device="cpu").key == name + INT8_SUFFIX
    manifest = json.loads((tiny_store.onnx_dir(name) / MANIFEST).read_text(encoding="utf-8"))
    assert 0.9 < manifest["int8"]["min_cosine_to_fp32"] <= 1.0 + 1e-6
    batch = np.random.default_rng(7).standard_normal((4, 3, 32, 32), dtype=np.float32)
    cosines = _cosines(int8.encode_images(batch), tiny_encoder.encode_images(batch))
    assert cosines.min() > 0.9
    assert cosines.min() < 1.0 - 1e-7  # close, but not the exact runtime
    # A text-only encoder under the int8 setting stores its query vectors' key alike.
    assert ClipEncoder.load(tiny_store, name, device="cpu", threads=1, towers=("text",),
                            runtime="onnx-int8").name == name + INT8_SUFFIX


def test_indexer_through_ort_matches_torch(model_home: Path, tmp_path: Path, tiny_torch_encoder: ClipEncoder) -> None:
    from photoembed.imaging.decode import decode_photo

    folder = tmp_path / "photos"
    photos = [make_photo(folder / f"p{i}.jpg", seed=i, size=(160 + 8 * i, 120)) for i in range(6)]
    library = Library(Paths.resolve(model_home))
    try:
        library.catalog.add_root(folder)
        indexer = library.indexer(require_model=True, batch_size=4)
        assert indexer.encoder is None  # loaded by the first photo that needs it
        for _ in indexer.sync():
            pass
        assert isinstance(indexer.encoder, ClipEncoder)
        assert indexer.encoder.runtime["image"] == "ONNX Runtime fp32 on cpu"
        ids, vectors = library.catalog.vectors(library.settings.model)
        assert len(ids) == len(photos)
        rows = library.catalog.photos_by_ids([int(i) for i in ids])
        reference = []
        for photo_id in ids.tolist():
            path = Path(rows[int(photo_id)].path)
            decoded = decode_photo(path.read_bytes(), name=path.name, min_side=tiny_torch_encoder.image_size, mtime=0.0)
            reference.append(tiny_torch_encoder.prepare(decoded.image, **decoded.geometry))
        expected = tiny_torch_encoder.encode_images(np.stack(reference))
        assert _cosines(np.asarray(vectors, dtype=np.float32), expected).min() >= 0.9999
    finally:
        library.close()


_NO_TORCH_QUERY = r"""
import json, sys
from pathlib import Path
from photoembed.cli.main import main
from photoembed.config import Paths
from photoembed.library import Library
folder = sys.argv[1]
assert main(["--home", sys.argv[2], "add", folder]) == 0
assert main(["--home", sys.argv[2], "index"]) == 0
assert main(["--home", sys.argv[2], "search", "a red photo"]) == 0
library = Library(Paths.resolve(Path(sys.argv[2])))
vector = library.text_encoder().encode_texts(["a red photo"])[0].tolist()
library.close()
heavy = sorted(m for m in ("torch", "open_clip", "torchvision") if m in sys.modules)
print(json.dumps({"heavy": heavy, "vector": vector}))
"""


def test_query_process_imports_no_torch(model_home: Path, tmp_path: Path, tiny_torch_encoder: ClipEncoder) -> None:
    folder = tmp_path / "photos"
    for i in range(3):
        make_photo(folder / f"q{i}.jpg", seed=20 + i)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PHOTOEMBED_HOME": str(model_home)}
    completed = subprocess.run(
        [sys.executable, "-c", _NO_TORCH_QUERY, str(folder), str(model_home)],
        capture_output=True, text=True, env=env, timeout=240, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    expected = tiny_torch_encoder.encode_texts(["a red photo"])[0]
    assert float(np.dot(np.asarray(result["vector"], dtype=np.float32), expected)) >= 0.9999


def test_unload_runs_no_full_collection(tiny_store: ModelStore, tiny_model: TinyModel) -> None:
    encoder = ClipEncoder.load(tiny_store, tiny_model.model_name, device="cpu", threads=1)
    collections: list[int] = []

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(watch)
    try:
        encoder.unload()
    finally:
        gc.callbacks.remove(watch)
    assert 2 not in collections
    assert not encoder.loaded


def test_gc_paused_disables_collection_and_freezes_survivors() -> None:
    assert gc.isenabled()
    frozen_before = gc.get_freeze_count()
    with gc_paused():
        assert not gc.isenabled()
        survivors = [[i] for i in range(1000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen_before + len(survivors)
    gc.unfreeze()


def test_status_shows_the_runtime(model_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from photoembed.cli.main import main

    assert main(["--home", str(model_home), "--json", "status"]) == 0
    runtime = json.loads(capsys.readouterr().out)["runtime"]
    assert runtime["engine"] == "onnxruntime"
    assert runtime["precision"] == "fp32"
    assert runtime["export"] == "ready"
    assert runtime["towers"] == {"image": "ONNX Runtime fp32 on cpu", "text": "ONNX Runtime fp32 on cpu"}
    assert main(["--home", str(model_home), "status"]) == 0
    assert "Runtime: image on ONNX Runtime fp32 on cpu, text on ONNX Runtime fp32 on cpu" in capsys.readouterr().out


def test_choose_runtime_respects_the_setting() -> None:
    from photoembed.errors import KnownError
    from photoembed.ml.engine import choose_runtime

    assert choose_runtime("torch", device="cpu").engine == "torch"
    assert choose_runtime("onnx", device="cpu").engine == "onnxruntime"
    assert choose_runtime("auto", device="cpu").precision == "fp32"
    assert choose_runtime("onnx-int8", device="cpu").precision == "int8"
    with pytest.raises(KnownError, match="Unknown runtime"):
        choose_runtime("tensorrt", device="cpu")
