"""Global place descriptors from VGGT's own DINOv2 patch tokens (issue 9: "free: computed anyway").

The tokens are those the aggregator's patch embedding produced (or the token cache served) for the
window; pooling runs where they are (GPU or CPU) and only (S, C) floats come back to the host.
"""

from __future__ import annotations

import numpy as np
import torch


def token_descriptors(patch_tokens: torch.Tensor, pooling: str = "mean", p: float = 3.0) -> np.ndarray:
    """DINOv2 patch tokens (S, P, C), or one frame's (P, C), any dtype/device -> (S, C) / (C,) float32,
    each row unit norm.

    Each token is L2-normalised first (so a few high-norm tokens do not dominate), then pooled over
    the P patches: 'mean' averages them; 'gem' is generalised-mean pooling (Radenovic et al.) over the
    positive part, (mean(max(x, 1e-6)^p))^(1/p), which leans towards the strongest activations.
    ValueError for a bad shape, non-finite tokens or an unknown pooling.
    """
    x = torch.as_tensor(patch_tokens)
    if x.ndim not in (2, 3) or min(x.shape) < 1:
        raise ValueError(f"patch_tokens must be (S, P, C) or (P, C), got shape {tuple(x.shape)}")
    x = x.detach().float()
    if not bool(torch.isfinite(x).all()):
        raise ValueError("patch_tokens are not finite")
    x = torch.nn.functional.normalize(x, dim=-1, eps=1e-12)
    if pooling == "mean":
        pooled = x.mean(dim=-2)
    elif pooling == "gem":
        if not p > 0:
            raise ValueError(f"GeM exponent must be > 0, got {p}")
        pooled = x.clamp_min(1e-6).pow(p).mean(dim=-2).pow(1.0 / p)
    else:
        raise ValueError(f"pooling must be 'mean' or 'gem', got {pooling!r}")
    return torch.nn.functional.normalize(pooled, dim=-1, eps=1e-12).cpu().numpy().astype(np.float32)
