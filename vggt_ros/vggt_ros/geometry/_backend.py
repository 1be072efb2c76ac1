"""Tiny numpy/torch shim so pose conversions accept either kind and return the same kind.

Only the handful of element-wise ops the conversions need; torch is imported lazily so the
geometry package stays importable (and fast to import) without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def is_torch(x: Any) -> bool:
    """True for a torch.Tensor (checked without importing torch)."""
    return type(x).__module__.startswith("torch")


class _Numpy:
    stack = staticmethod(np.stack)
    sqrt = staticmethod(np.sqrt)
    where = staticmethod(np.where)
    arctan = staticmethod(np.arctan)
    tan = staticmethod(np.tan)

    @staticmethod
    def clamp_min(x: Any, lo: float) -> Any:
        return np.maximum(x, lo)

    @staticmethod
    def argmax(x: Any) -> Any:
        return np.argmax(x, axis=-1)

    @staticmethod
    def arange_like(n: int, like: Any) -> Any:
        return np.arange(n)

    @staticmethod
    def full_like(x: Any, value: float) -> Any:
        return np.full_like(x, value)


class _Torch:
    def __init__(self) -> None:
        import torch

        self.t = torch
        self.stack = torch.stack
        self.sqrt = torch.sqrt
        self.where = torch.where
        self.arctan = torch.atan
        self.tan = torch.tan

    def clamp_min(self, x: Any, lo: float) -> Any:
        return self.t.clamp(x, min=lo)

    def argmax(self, x: Any) -> Any:
        return self.t.argmax(x, dim=-1)

    def arange_like(self, n: int, like: Any) -> Any:
        return self.t.arange(n, device=like.device)

    def full_like(self, x: Any, value: float) -> Any:
        return self.t.full_like(x, value)


_NP = _Numpy()


def xp(x: Any) -> Any:
    """The op namespace for x: torch for tensors, numpy otherwise."""
    return _Torch() if is_torch(x) else _NP


def as_array(x: Any) -> Any:
    """Tensors pass through; anything else becomes a floating numpy array."""
    if is_torch(x):
        return x if x.is_floating_point() else x.double()
    a = np.asarray(x)
    return a if np.issubdtype(a.dtype, np.floating) else a.astype(np.float64)
