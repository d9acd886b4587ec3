"""Traces of JPEG compression in a lossless image: is this PNG/TIFF a decoded JPEG?

A JPEG is coded in 8x8 blocks whose DCT coefficients are rounded to multiples of a quantisation step. A
lossless re-save of its decoded pixels keeps both traces where the grid is: a step in brightness at every
8th column and row (blocking), and DCT coefficients of the aligned blocks that cluster on multiples of a
step while those of blocks shifted by 4 pixels do not. A photo that never was a JPEG (a screenshot, a
scan, a RAW conversion), or a JPEG resized afterwards, shows neither. Keeper rules use this so that a PNG
made from a camera JPEG does not pass for the original.

Measured on the 13 camera JPEGs of ``photos-large`` decoded to RGB: 12 score 1.2-5.5 (at least TRACE_MIN);
the same photos resized by 2/3 (no JPEG grid left) score 0.02-0.5, and re-saved from that at quality 90
score 0.76-2.8 (11 of 13 at least TRACE_MIN).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: A score of at least this means "holds a decoded JPEG".
TRACE_MIN = 1.0
#: A score of at most this means "never was a JPEG at this grid" (between the two: no claim either way; a
#: JPEG of quality 90 or more can leave traces too faint to tell).
CLEAN_MAX = 0.3
# Blocking: mean |step| across block boundaries over the median of the other 7 column phases.
_BLOCKING_AT_ONE = 1.15
# Periodicity of the aligned DCT coefficients minus that of blocks shifted by half a block.
_PERIODICITY_AT_ONE = 0.3
_BLOCKING_WINDOW = 1536  # side of the centre window measured (on a 16 MP photo: 2.3 MP of it)
_WINDOW = 512  # side of the centre window the DCT test looks at (enough blocks: 4,096)
_STEPS = np.arange(3, 40, dtype=np.float64)


def _dct_matrix() -> np.ndarray:
    n = 8
    u = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos((2 * x + 1) * u * np.pi / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


_DCT = _dct_matrix()


def jpeg_trace(image: Image.Image) -> float:
    """How strongly ``image``'s pixels carry JPEG traces at the image's own 8x8 grid (>= TRACE_MIN: they do).

    Args:
        image: The full-resolution pixels, as stored (before any resizing or EXIF rotation).
    """
    if min(image.size) < 32:
        return 0.0
    # A centre window, cut on the image's own 8-pixel grid, bounds the cost on large photos.
    w, h = image.size
    x0 = max(0, (w // 2 - _BLOCKING_WINDOW // 2) // 8 * 8)
    y0 = max(0, (h // 2 - _BLOCKING_WINDOW // 2) // 8 * 8)
    window = image.crop((x0, y0, min(w, x0 + _BLOCKING_WINDOW), min(h, y0 + _BLOCKING_WINDOW)))
    blocking = _blocking(np.asarray(window.convert("L"), dtype=np.float32))
    periodicity = _periodicity(window)
    return max((blocking - 1.0) / (_BLOCKING_AT_ONE - 1.0), periodicity / _PERIODICITY_AT_ONE)


def _blocking(grey: np.ndarray) -> float:
    ratios = []
    for arr in (grey, grey.T):
        steps = np.abs(np.diff(arr, axis=1))
        usable = (steps.shape[1] // 8) * 8
        phase = steps[:, :usable].reshape(arr.shape[0], -1, 8).mean(axis=(0, 1))  # [7]: across block edges
        ratios.append(float(phase[7] / max(float(np.median(phase[:7])), 1e-6)))
    return min(ratios)


def _periodicity(image: Image.Image) -> float:
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
    h, w = rgb.shape[:2]
    y0 = max(0, (h // 2 - _WINDOW // 2) // 8 * 8)
    x0 = max(0, (w // 2 - _WINDOW // 2) // 8 * 8)
    rgb = rgb[y0 : y0 + _WINDOW + 8, x0 : x0 + _WINDOW + 8]
    luma = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2] - 128.0
    aligned = _step_clustering(_coefficients(luma, 0))
    shifted = _step_clustering(_coefficients(luma, 4))
    return float(np.max(aligned - shifted)) if aligned.size and aligned.size == shifted.size else 0.0


def _coefficients(luma: np.ndarray, offset: int) -> np.ndarray:
    part = luma[offset:, offset:]
    h, w = (part.shape[0] // 8) * 8, (part.shape[1] // 8) * 8
    blocks = part[:h, :w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    return np.einsum("ux,nxy,vy->nuv", _DCT, blocks, _DCT, optimize=True).reshape(-1, 64)[:, 1:]


def _step_clustering(coefficients: np.ndarray) -> np.ndarray:
    """Per AC position: how well its values cluster on multiples of the best step (1: exactly)."""
    if len(coefficients) < 16:
        return np.zeros(0)
    best = np.zeros(coefficients.shape[1])
    for step in _STEPS:
        best = np.maximum(best, np.cos(2 * np.pi * coefficients / step).mean(axis=0))
    return best
