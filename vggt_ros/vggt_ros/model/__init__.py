"""VGGT network (re-implementation), formula weights, heads on demand.

``VGGT`` / ``VGGTConfig`` are the network; weight loading, preprocessing and the predictor
live in ``weights``, ``preprocess`` and ``predictor``.
"""

from .vggt import HEADS, VGGT, VGGTConfig, autocast_dtype

__all__ = ["HEADS", "VGGT", "VGGTConfig", "autocast_dtype"]
