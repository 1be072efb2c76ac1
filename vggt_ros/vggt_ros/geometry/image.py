"""Image content checks shared by the pipeline's door check and the simulated predictor."""

from __future__ import annotations

import numpy as np

BLANK_STD = 3.0
"""Grey-level standard deviation (0-255) below which an image shows nothing (a covered lens, a black or
saturated frame). Real scenes, dark ones included, carry sensor noise and texture well above it."""


def is_blank(rgb: np.ndarray, max_std: float = BLANK_STD) -> bool:
    """True when an (H, W, 3) uint8 image is near-constant: grey-level std (every 2nd pixel) < max_std."""
    return float(np.asarray(rgb[::2, ::2], dtype=np.float32).mean(axis=2).std()) < max_std
