"""Place descriptors from DINOv2 patch tokens (model/descriptors.py) and their path through VGGTPredictor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vggt_ros.model.descriptors import token_descriptors


def test_token_descriptors_pool_and_normalise() -> None:
    rng = np.random.default_rng(0)
    tokens_a = rng.normal(0.0, 1.0, (370, 64)) + rng.normal(0.0, 1.0, 64)  # a frame: shared component
    tokens_b = rng.normal(0.0, 1.0, (370, 64)) + rng.normal(0.0, 1.0, 64)  # another place
    for pooling in ("mean", "gem"):
        da = token_descriptors(torch.from_numpy(tokens_a), pooling)
        assert da.shape == (64,) and da.dtype == np.float32
        assert np.linalg.norm(da) == pytest.approx(1.0, abs=1e-5)
        perm = torch.from_numpy(rng.permutation(tokens_a))
        np.testing.assert_allclose(token_descriptors(perm, pooling), da, atol=1e-5)
        # a token-level re-observation (noise, per-token gain) stays close; another place does not
        again = (tokens_a + rng.normal(0.0, 0.3, tokens_a.shape)) * rng.uniform(0.5, 2.0, (370, 1))
        same = float(da @ token_descriptors(torch.from_numpy(again), pooling))
        other = float(da @ token_descriptors(torch.from_numpy(tokens_b), pooling))
        assert same > 0.95 and other < same - 0.2, (pooling, same, other)
        # a window (S, P, C) gives the frames' rows, each as for the frame alone
        both = token_descriptors(torch.from_numpy(np.stack([tokens_a, tokens_b])), pooling)
        assert both.shape == (2, 64)
        np.testing.assert_allclose(both[0], da, atol=1e-6)
    mean = token_descriptors(torch.from_numpy(tokens_a))
    x = tokens_a / np.linalg.norm(tokens_a, axis=1, keepdims=True)  # the definition, in float64
    np.testing.assert_allclose(mean, x.mean(0) / np.linalg.norm(x.mean(0)), atol=1e-6)
    assert token_descriptors(torch.from_numpy(tokens_a).to(torch.bfloat16)).shape == (64,)
    with pytest.raises(ValueError):
        token_descriptors(torch.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError):
        token_descriptors(torch.full((4, 8), float("nan")))
    with pytest.raises(ValueError):
        token_descriptors(torch.from_numpy(tokens_a), "max")
