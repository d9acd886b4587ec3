"""Thread, OpenMP and device set-up."""

from __future__ import annotations

import os

import pytest

from photoembed.errors import KnownError
from photoembed.ml import runtime


def test_prepare_environment_keeps_a_users_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    runtime.prepare_environment()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    runtime.prepare_environment()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_default_threads_leaves_a_core() -> None:
    assert runtime.default_threads() == max(1, runtime.cpu_count() - 1)


@pytest.mark.model
def test_configure_torch_is_idempotent() -> None:
    import torch

    before = torch.get_num_threads()
    try:
        assert runtime.configure_torch(1) == 1
        assert runtime.configure_torch(1) == 1
        assert torch.get_num_threads() == 1
        assert runtime.configure_torch(0) == runtime.default_threads()
    finally:
        torch.set_num_threads(before)


@pytest.mark.model
def test_choose_device() -> None:
    assert runtime.choose_device("cpu") == runtime.DeviceChoice("cpu", half=False)
    assert runtime.choose_device("auto", use_gpu=False).device == "cpu"
    with pytest.raises(KnownError, match="Unknown device"):
        runtime.choose_device("tpu")
