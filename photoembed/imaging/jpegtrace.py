"""Traces of JPEG compression in a lossless image: is this PNG/TIFF a decoded JPEG?

A JPEG is coded in 8x8 blocks whose DCT coefficients are rounded to multiples of a quantisation step. A
lossless re-save of its decoded pixels keeps both traces where the grid is: a step in brightness at every
8th column and row (blocking), and DCT coefficients of the aligned blocks that cluster on multiples of a
step while those of blocks shifted by 4 pixels do not. A photo that never was a JPEG (a screenshot, a
scan, a RAW conversion), or a JPEG resized afterwards, shows neither. Keeper rules use this so that a PNG
made from a camera JPEG does not pass for the original.

Measured on the 13 JPEGs of ``photos-large`` (scaled to 1,600 px, then encoded; /tmp script of the keeper
work, numbers as printed): decoded at full size 12 score 1.8-5.5 (the 13th is a quality-99 file, 0.24: as
good as lossless); re-encoded at quality 85 and 97 and with a camera's own "fine" tables (bench
keeper-eval's camera set) 2.66-3.63; the same pixels never encoded on that grid (decoded with DCT scaling
and resized) 0.04-0.29, and a decoded JPEG resized by half 0.02-0.18. Counting only coefficients of at
least half a step is what lets the fine tables show: before, a camera's fine JPEG scored 0.83-2.6 and a
quality-97 one 0.18-1.8, below TRACE_MIN for most.
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
_MIN_COUNTED = 256  # values a position needs at a step for its clustering to count (of 4,096 blocks)


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
    """Per AC position: how well its values cluster on multiples of the best step (1: exactly).

    Only values of at least half a step count: most coefficients are near 0 in aligned and shifted blocks
    alike, and counting them drowned the fine steps of high-quality JPEGs (a camera's "fine" tables, quality
    97) in that common peak.
    """
    if len(coefficients) < 16:
        return np.zeros(0)
    best = np.zeros(coefficients.shape[1])
    magnitude = np.abs(coefficients)
    for step in _STEPS:
        counted = magnitude >= step / 2
        n = counted.sum(axis=0)
        total = np.where(counted, np.cos(2 * np.pi * coefficients / step), 0.0).sum(axis=0)
        best = np.maximum(best, np.where(n >= _MIN_COUNTED, total / np.maximum(n, 1), 0.0))
    return best


# -- a JPEG's own quantisation tables: libjpeg's standard ones, or the encoder's own ----------------------

# ITU-T T.81 Annex K tables (natural order), which libjpeg scales by its "quality" setting.
_ANNEX_K_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
_ANNEX_K_CHROMA = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, *([99] * 32),
)  # fmt: skip
#: JPEGs whose tables are the encoder's own (a camera's, Photoshop's, mozjpeg's): no libjpeg quality.
OWN_TABLES = 0


def _scaled(base: tuple[int, ...], quality: int) -> tuple[int, ...]:
    """libjpeg's jpeg_quality_scaling with force_baseline (every value clamped to 1..255)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return tuple(min(255, max(1, (v * scale + 50) // 100)) for v in base)


_STANDARD = {(_scaled(_ANNEX_K_LUMA, q), _scaled(_ANNEX_K_CHROMA, q)): q for q in range(1, 101)}
_STANDARD_LUMA = {luma: q for (luma, _), q in _STANDARD.items()}


def jpeg_tables(quantization: dict[int, list[int]] | None) -> int | None:
    """What a JPEG's quantisation tables say of its encoder (Pillow's ``image.quantization``, natural order).

    Returns:
        libjpeg's quality (1-100) when the tables are the Annex K tables it scales (PIL, ImageMagick, GIMP,
        most web services and many phones write these); :data:`OWN_TABLES` when they are the encoder's own
        (cameras, Photoshop, mozjpeg...); None when there are none (not a JPEG).
    """
    if not quantization or 0 not in quantization or len(quantization[0]) != 64:
        return None
    luma = tuple(int(v) for v in quantization[0])
    chroma = quantization.get(1)
    if chroma is None or len(chroma) != 64:  # a grey JPEG: one table
        return _STANDARD_LUMA.get(luma, OWN_TABLES)
    return _STANDARD.get((luma, tuple(int(v) for v in chroma)), OWN_TABLES)
