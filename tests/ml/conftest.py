"""ML fixtures. The tiny model itself (tiny_model, tiny_store, tiny_encoder) is in tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from photoembed.ml.models import ModelStore


@pytest.fixture
def empty_store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models", tmp_path / "downloads")
