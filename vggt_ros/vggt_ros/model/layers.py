"""Transformer building blocks shared by DINOv2, the aggregator and the camera head.

Names of sub-modules and parameters follow the reference checkpoint exactly (``norm1``,
``attn.qkv``, ``attn.q_norm``, ``ls1.gamma``, ``mlp.fc1`` ...), see docs/architecture.md#checkpoint-keys.
Tokens are [batch, tokens, channels] everywhere; attention is
``F.scaled_dot_product_attention`` on [batch, heads, tokens, head_dim].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LayerScale(nn.Module):
    """Per-channel scale ``x * gamma`` (CaiT); ``gamma`` is a learned [C] vector."""

    def __init__(self, dim: int, init_value: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2."""

    def __init__(
        self, in_features: int, hidden_features: int, out_features: int | None = None, bias: bool = True
    ) -> None:
        super().__init__()
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class RotaryPositionEmbedding2D(nn.Module):
    """2D RoPE: first half of each head rotates by the row position, second half by the column.

    Per axis with d = head_dim / 2: ``inv_freq = base^(-arange(0, d, 2) / d)``, angles duplicated
    ``cat(a, a)`` and rotate-half ``[-x2, x1]`` (not interleaved; docs/architecture.md#module-tree).
    Computed in the
    tokens' dtype exactly as the reference does (angles in float32, then cast).
    """

    def __init__(self, frequency: float = 100.0) -> None:
        super().__init__()
        self.base = float(frequency)

    def _axis_tables(self, dim: int, n_pos: int, device, dtype) -> tuple[Tensor, Tensor]:
        exponents = torch.arange(0, dim, 2, device=device).float() / dim
        inv_freq = 1.0 / (self.base**exponents)
        positions = torch.arange(n_pos, device=device, dtype=inv_freq.dtype)
        angles = (positions[:, None] * inv_freq[None, :]).to(dtype)
        angles = torch.cat((angles, angles), dim=-1)
        return angles.cos().to(dtype), angles.sin().to(dtype)

    def tables(self, positions: Tensor, head_dim: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """cos [N, head_dim] and signed sin [N, head_dim] for integer positions [N, 2] (row, col).

        The sign of rotate-half is folded into ``sin`` (``-x2 * s == x2 * -s`` exactly), so
        ``rotate(x) = x * cos + swap_halves(x) * sin`` matches the reference bit for bit.
        """
        half = head_dim // 2
        n_pos = int(positions.max()) + 1
        cos_t, sin_t = self._axis_tables(half, n_pos, positions.device, dtype)
        quarter = half // 2
        sign = torch.ones(half, device=positions.device, dtype=dtype)
        sign[:quarter] = -1.0
        sin_t = sin_t * sign
        rows, cols = positions[:, 0].long(), positions[:, 1].long()
        cos = torch.cat((cos_t[rows], cos_t[cols]), dim=-1)
        sin = torch.cat((sin_t[rows], sin_t[cols]), dim=-1)
        return cos, sin

    @staticmethod
    def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """x [B, heads, N, D]; cos/sin [N, D] from :meth:`tables`."""
        if cos.dtype != x.dtype:
            cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        d = x.shape[-1]
        swapped = x.unflatten(-1, (2, 2, d // 4)).flip(-2).flatten(-3)
        return x * cos + swapped * sin


def patch_positions(grid_h: int, grid_w: int, n_special: int, device=None) -> Tensor:
    """Integer RoPE positions [n_special + grid_h*grid_w, 2] (row, col): patches (r+1, c+1), specials 0."""
    rows = torch.arange(grid_h, device=device).repeat_interleave(grid_w)
    cols = torch.arange(grid_w, device=device).repeat(grid_h)
    pos = torch.stack((rows, cols), dim=-1) + 1
    special = torch.zeros(n_special, 2, dtype=pos.dtype, device=device)
    return torch.cat((special, pos), dim=0)


class Attention(nn.Module):
    """Multi-head self-attention with optional q/k LayerNorm (applied before RoPE) and 2D RoPE."""

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool = True, proj_bias: bool = True, qk_norm: bool = False
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        # q/k-norm: a LayerNorm, default eps 1e-5, in every block (docs/architecture.md#parity-pitfalls).
        self.q_norm: nn.Module = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm: nn.Module = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def forward(self, x: Tensor, rope_cs: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """x [B, N, C]; rope_cs = (cos, sin) [N, head_dim] when RoPE is used."""
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope_cs is not None:
            cos, sin = rope_cs
            q = RotaryPositionEmbedding2D.rotate(q, cos, sin)
            k = RotaryPositionEmbedding2D.rotate(k, cos, sin)
        x = F.scaled_dot_product_attention(q, k, v)
        x = x.transpose(1, 2).reshape(b, n, c)
        return self.proj(x)


class Block(nn.Module):
    """Pre-LN transformer block: ``x += ls1(attn(norm1(x)))``; ``x += ls2(mlp(norm2(x)))``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        init_values: float = 0.01,
        qk_norm: bool = False,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, proj_bias=proj_bias, qk_norm=qk_norm)
        self.ls1 = LayerScale(dim, init_values)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), bias=ffn_bias)
        self.ls2 = LayerScale(dim, init_values)

    def forward(self, x: Tensor, rope_cs: tuple[Tensor, Tensor] | None = None) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), rope_cs))
        return x + self.ls2(self.mlp(self.norm2(x)))
