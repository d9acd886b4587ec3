"""How torch runs in photoembed: thread counts, the OpenMP wait policy, the device and its precision.

Why the wait policy matters: by default OpenMP worker threads spin for a while after each parallel region.
When another thread (the decode pool, the UI) or another process wants a core, the spinning threads and the
OS scheduler fight over it, and throughput collapses (measured for ViT-B-32 at batch 1 with one busy core:
7 -> 1.9 images/s). ``OMP_WAIT_POLICY=PASSIVE`` makes idle workers sleep instead. OpenMP reads it when
torch's OpenMP runtime starts, so it must be in the environment before torch is imported: call
:func:`prepare_environment` early (front ends do it first thing); :func:`configure_torch` calls it too.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import Literal

from photoembed.errors import KnownError

logger = logging.getLogger(__name__)

DeviceName = Literal["cpu", "cuda", "mps"]


def prepare_environment() -> None:
    """Put the OpenMP settings torch needs into the environment, unless the user chose their own.

    Safe to call any number of times. Has an effect only before torch is first imported.
    """
    if "torch" in sys.modules and "OMP_WAIT_POLICY" not in os.environ:
        logger.debug("torch was imported before OMP_WAIT_POLICY was set; OpenMP keeps spin-waiting")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cpu_count() -> int:
    """The CPUs this process may run on (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Threads for the model when the user asks for "automatic": one core is left for the UI and decoding."""
    return max(1, cpu_count() - 1)


def configure_torch(threads: int = 0) -> int:
    """Set torch's intra-op and inter-op thread counts; idempotent.

    Args:
        threads: intra-op threads for the model; 0 picks :func:`default_threads`.

    Returns:
        The intra-op thread count now in effect.
    """
    prepare_environment()
    import torch

    wanted = threads if threads > 0 else default_threads()
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    # Batches are independent and run one at a time, so inter-op parallelism only adds idle threads.
    if torch.get_num_interop_threads() != 1:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            # torch allows this only before its first parallel work; a second library instance in the same
            # process (tests, the GUI reloading a model) finds it already fixed, which is fine.
            logger.debug("inter-op threads already fixed at %d", torch.get_num_interop_threads())
    return wanted


@dataclass(frozen=True)
class DeviceChoice:
    """Where the model runs and in which precision.

    Attributes:
        device: ``"cpu"``, ``"cuda"`` or ``"mps"``.
        half: run matrix products in float16 (autocast) — on CUDA and MPS only; CPUs gain nothing from it.
    """

    device: DeviceName
    half: bool


def choose_device(requested: str = "auto", *, use_gpu: bool = True) -> DeviceChoice:
    """Pick the device: CUDA, then Apple MPS, then the CPU.

    Args:
        requested: ``"auto"``, or an explicit ``"cpu"``, ``"cuda"`` or ``"mps"``.
        use_gpu: the user's setting; False forces the CPU when ``requested`` is ``"auto"``.

    Raises:
        KnownError: for a device name photoembed does not know, or an explicit GPU that is absent.
    """
    import torch

    if requested == "auto":
        if use_gpu and torch.cuda.is_available():
            return DeviceChoice("cuda", half=True)
        if use_gpu and torch.backends.mps.is_available():
            return DeviceChoice("mps", half=True)
        return DeviceChoice("cpu", half=False)
    if requested == "cpu":
        return DeviceChoice("cpu", half=False)
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise KnownError("CUDA was requested but torch sees no CUDA device")
        return DeviceChoice("cuda", half=True)
    if requested == "mps":
        if not torch.backends.mps.is_available():
            raise KnownError("MPS was requested but torch sees no Apple GPU")
        return DeviceChoice("mps", half=True)
    raise KnownError(f"Unknown device {requested!r}; use auto, cpu, cuda or mps")
