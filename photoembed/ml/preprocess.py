"""open_clip's evaluation preprocessing, reproduced with PIL and numpy only.

open_clip's own transform is a torchvision pipeline; running it in the decode pool would pull torch into
every worker and hold the GIL longer. This module performs the same operations in the same order (resize
with PIL's filter, centre crop or pad, scale to [0, 1], normalise), so the arrays match open_clip's to float
rounding (tests compare them; the tolerance is 1e-5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

# open_clip.constants.OPENAI_DATASET_MEAN/STD, the defaults of open_clip.transform.PreprocessCfg.
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

RESIZE_MODES = ("shortest", "longest", "squash")


@dataclass(frozen=True)
class Preprocess:
    """One model's image preprocessing (immutable, so it is safe to share between decode threads).

    Attributes:
        size: the model input, (height, width).
        mean: per-channel mean subtracted after scaling to [0, 1].
        std: per-channel divisor.
        interpolation: ``"bicubic"`` or ``"bilinear"``.
        resize_mode: ``"shortest"`` (resize the short side, centre crop), ``"longest"`` (resize the long
            side, pad with ``fill_color``) or ``"squash"`` (resize to the size, ignoring the aspect ratio).
        fill_color: padding value (0-255) for ``"longest"``.
    """

    size: tuple[int, int]
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    fill_color: int = 0

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> Preprocess:
        """Build from an open_clip ``preprocess_cfg`` dict (``size``, ``mean``, ``std``, ...).

        Raises:
            ValueError: on a resize mode or interpolation open_clip's evaluation transform does not have.
        """
        size = cfg.get("size", 224)
        pair = (int(size), int(size)) if isinstance(size, int | float) else (int(size[0]), int(size[-1]))
        resize_mode = str(cfg.get("resize_mode") or "shortest")
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"Unsupported resize_mode {resize_mode!r}")
        # open_clip maps anything but "bilinear" (including "random") to bicubic at evaluation time.
        interpolation = "bilinear" if cfg.get("interpolation") == "bilinear" else "bicubic"
        return cls(
            size=pair,
            mean=_triple(cfg.get("mean") or OPENAI_MEAN),
            std=_triple(cfg.get("std") or OPENAI_STD),
            interpolation=interpolation,
            resize_mode=resize_mode,
            fill_color=int(cfg.get("fill_color") or 0),
        )

    def __call__(self, image: Image.Image) -> np.ndarray:
        """Turn a PIL image into the model input, float32 [3, H, W]. Thread-safe."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        height, width = self.size
        resample = Image.Resampling.BILINEAR if self.interpolation == "bilinear" else Image.Resampling.BICUBIC
        if self.resize_mode == "squash":
            image = _resize(image, (height, width), resample)
        elif self.resize_mode == "longest":
            image = _resize(image, _keep_ratio_size(image, (height, width), longest=True), resample)
            image = _center_crop_or_pad(image, (height, width), self.fill_color)
        elif height == width:
            # torchvision's Resize(int): the short side becomes `height`, the long side is truncated.
            w, h = image.size
            short, long = (w, h) if w <= h else (h, w)
            new_long = int(height * long / short)
            image = _resize(image, (new_long, height) if w <= h else (height, new_long), resample)
            image = _center_crop_or_pad(image, (height, width), 0)
        else:
            # open_clip builds ResizeKeepRatio(size) here without passing the interpolation: always bicubic.
            image = _resize(image, _keep_ratio_size(image, (height, width), longest=False), Image.Resampling.BICUBIC)
            image = _center_crop_or_pad(image, (height, width), 0)
        array: np.ndarray = np.asarray(image, dtype=np.float32) / np.float32(255.0)
        array = (array - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(array.transpose(2, 0, 1))


def _triple(values: float | Sequence[float]) -> tuple[float, float, float]:
    if isinstance(values, int | float):
        return (float(values),) * 3
    first, second, third = (float(v) for v in values)
    return first, second, third


def _resize(image: Image.Image, size_hw: tuple[int, int], resample: Image.Resampling) -> Image.Image:
    if image.size == (size_hw[1], size_hw[0]):
        return image
    return image.resize((size_hw[1], size_hw[0]), resample)


def _keep_ratio_size(image: Image.Image, target_hw: tuple[int, int], *, longest: bool) -> tuple[int, int]:
    """open_clip's ResizeKeepRatio.get_params without the random (training-only) factors."""
    width, height = image.size
    ratio_h = height / target_hw[0]
    ratio_w = width / target_hw[1]
    ratio = max(ratio_h, ratio_w) if longest else min(ratio_h, ratio_w)
    return round(height / ratio), round(width / ratio)


def _center_crop_or_pad(image: Image.Image, size_hw: tuple[int, int], fill: int) -> Image.Image:
    """torchvision's center_crop (and open_clip's center_crop_or_pad) on a PIL image."""
    crop_h, crop_w = size_hw
    width, height = image.size
    if crop_w > width or crop_h > height:
        left = (crop_w - width) // 2 if crop_w > width else 0
        top = (crop_h - height) // 2 if crop_h > height else 0
        right = (crop_w - width + 1) // 2 if crop_w > width else 0
        bottom = (crop_h - height + 1) // 2 if crop_h > height else 0
        padded = Image.new("RGB", (width + left + right, height + top + bottom), (fill, fill, fill))
        padded.paste(image, (left, top))
        image = padded
        width, height = image.size
        if (width, height) == (crop_w, crop_h):
            return image
    top = round((height - crop_h) / 2.0)
    left = round((width - crop_w) / 2.0)
    return image.crop((left, top, left + crop_w, top + crop_h))
