"""open_clip's evaluation preprocessing, reproduced with PIL and numpy only.

open_clip's own transform is a torchvision pipeline; running it in the decode pool would pull torch into
every worker and hold the GIL longer. This module performs the same operations in the same order (resize
with PIL's filter, centre crop or pad, scale to [0, 1], normalise), so the arrays match open_clip's to float
rounding (tests compare them; the tolerance is 1e-5).

The geometry (resize target, crop offsets) is always computed from the ORIGINAL photo's size, which the
decoder passes along with a possibly reduced decode (``original_size`` and ``extent``: where the original
lies in the decoded image). The resize then reads its source box from the decoded image with Pillow's
``resize(box=...)``: the same filter, centred on the same original positions, as a full decode followed by
open_clip's transform, and only the pixels of the crop are computed (a 100000 x 1 strip never becomes a
22-million-pixel-wide intermediate).
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

# Above this many pixels, even a full decode is resized through the crop box only (extreme aspect ratios).
_FULL_RESIZE_PIXELS = 4_000_000


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

    def __call__(
        self,
        image: Image.Image,
        *,
        original_size: tuple[int, int] | None = None,
        extent: tuple[float, float, float, float] | None = None,
    ) -> np.ndarray:
        """Turn a PIL image into the model input, float32 [3, H, W]. Thread-safe.

        Args:
            image: the decoded photo, upright.
            original_size: the original photo's (width, height); default: the image's own size.
            extent: where the original lies in ``image`` (left, top, right, bottom), in its pixels;
                default: the whole image.
        """
        if image.mode != "RGB":
            image = image.convert("RGB")
        width, height = original_size or image.size
        if extent is None:
            extent = (0.0, 0.0, float(image.size[0]), float(image.size[1]))
        target_h, target_w = self.size
        resample = Image.Resampling.BILINEAR if self.interpolation == "bilinear" else Image.Resampling.BICUBIC
        if self.resize_mode == "squash":
            resized = (target_h, target_w)
        elif self.resize_mode == "longest":
            resized = _keep_ratio_size((width, height), self.size, longest=True)
        elif target_h == target_w:
            # torchvision's Resize(int): the short side becomes the size, the long side is truncated.
            short, long = (width, height) if width <= height else (height, width)
            new_long = int(target_h * long / short)
            resized = (new_long, target_h) if width <= height else (target_h, new_long)
        else:
            # open_clip builds ResizeKeepRatio(size) here without passing the interpolation: always bicubic.
            resized = _keep_ratio_size((width, height), self.size, longest=False)
            resample = Image.Resampling.BICUBIC
        new_h, new_w = resized
        fill = self.fill_color if self.resize_mode == "longest" else 0
        if self.resize_mode != "squash" and new_h >= target_h and new_w >= target_w:
            # Centre crop (torchvision's offsets), read straight from the source through the resize box.
            top = round((new_h - target_h) / 2.0)
            left = round((new_w - target_w) / 2.0)
            box = (left, top, left + target_w, top + target_h)
            out = _resize_box(image, (target_h, target_w), box, resized, (width, height), extent, resample)
        else:
            out = _resize_box(image, resized, (0, 0, new_w, new_h), resized, (width, height), extent, resample)
            if self.resize_mode != "squash":
                out = _center_crop_or_pad(out, (target_h, target_w), fill)
        array: np.ndarray = np.asarray(out, dtype=np.float32) / np.float32(255.0)
        array = (array - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(array.transpose(2, 0, 1))


def _resize_box(
    image: Image.Image,
    out_hw: tuple[int, int],
    box: tuple[int, int, int, int],
    resized_hw: tuple[int, int],
    original: tuple[int, int],
    extent: tuple[float, float, float, float],
    resample: Image.Resampling,
) -> Image.Image:
    """The pixels ``box`` of the original resized to ``resized_hw``, computed from ``image``."""
    left, top, right, bottom = extent
    scale_x = (right - left) / resized_hw[1]
    scale_y = (bottom - top) / resized_hw[0]
    source = (
        left + box[0] * scale_x,
        top + box[1] * scale_y,
        left + box[2] * scale_x,
        top + box[3] * scale_y,
    )
    full_decode = image.size == original and extent == (0.0, 0.0, float(original[0]), float(original[1]))
    if full_decode and resized_hw[0] * resized_hw[1] <= _FULL_RESIZE_PIXELS:
        # Resize then crop, exactly as open_clip's transform (the box path below can differ by one level
        # in a few pixels, from rounding in Pillow's fixed-point coefficients).
        if resized_hw != (original[1], original[0]):
            image = image.resize((resized_hw[1], resized_hw[0]), resample)
        return image.crop(box) if box != (0, 0, *image.size) else image
    # Pillow checks the box against the image size; rounding can overshoot by a hair.
    source = (
        max(0.0, source[0]),
        max(0.0, source[1]),
        min(float(image.size[0]), source[2]),
        min(float(image.size[1]), source[3]),
    )
    return image.resize((out_hw[1], out_hw[0]), resample, box=source)


def _triple(values: float | Sequence[float]) -> tuple[float, float, float]:
    if isinstance(values, int | float):
        return (float(values),) * 3
    first, second, third = (float(v) for v in values)
    return first, second, third


def _keep_ratio_size(original: tuple[int, int], target_hw: tuple[int, int], *, longest: bool) -> tuple[int, int]:
    """open_clip's ResizeKeepRatio.get_params without the random (training-only) factors: (height, width)."""
    width, height = original
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
