"""Image content checks shared by the pipeline's door check and the simulated predictor."""

from __future__ import annotations

import cv2
import numpy as np

BLANK_STD = 3.0
"""Grey-level standard deviation (0-255) below which an image shows nothing (a covered lens, a black or
saturated frame). Real scenes, dark ones included, carry sensor noise and texture well above it."""


def is_blank(rgb: np.ndarray, max_std: float = BLANK_STD) -> bool:
    """True when an (H, W, 3) uint8 image is near-constant: grey-level std < max_std.

    Sampled on a grid of about 120 rows or more (every 2nd pixel up to 240 px, every 4th at 480 px):
    enough samples for a std, at a fifth of the cost of every 2nd pixel of a VGA frame.
    """
    step = max(2, min(rgb.shape[0], rgb.shape[1]) // 120)
    s = rgb[::step, ::step]
    grey3 = s[..., 0].astype(np.float32)  # 3 x the grey level (channel sum: no mean over a size-3 axis)
    grey3 += s[..., 1]
    grey3 += s[..., 2]
    return float(grey3.std()) < 3.0 * max_std


THUMB_SIZE = (32, 24)
"""(width, height) of the grey thumbnails image_change compares: each cell averages 5 x 5 pixels of a
160 x 120 image, 20 x 20 of a VGA one, so sensor noise averages out and a sub-pixel move does not."""


def thumbnail(rgb: np.ndarray, size: tuple[int, int] = THUMB_SIZE) -> np.ndarray:
    """(h, w) float32 grey thumbnail of an (H, W, 3) uint8 image (area average), its mean removed (a
    global brightness change, e.g. auto exposure, is not a change of view)."""
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
    t = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return t - np.float32(t.mean())


def image_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference (grey levels, 0-255) of two thumbnails: 0 for the same view; sensor noise
    of sigma 3 grey levels reads ~0.35 on a 160 x 120 image, a pinhole camera moving ~1 px ~1-3."""
    return float(np.mean(np.abs(a - b)))
