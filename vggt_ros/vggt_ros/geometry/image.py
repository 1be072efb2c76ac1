"""Image content checks shared by the pipeline's door check and the simulated predictor."""

from __future__ import annotations

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
