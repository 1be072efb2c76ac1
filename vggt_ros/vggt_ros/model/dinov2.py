"""DINOv2 ViT with register tokens (the aggregator's ``patch_embed``), inference only.

ViT-L/14-reg in VGGT (docs/architecture.md#module-tree):
patch conv 14x14, ``cls_token``, 4 ``register_tokens``,
``pos_embed`` for a 37x37 grid (+1 cls), 24 pre-LN blocks (LayerNorm eps 1e-6, exact GELU,
LayerScale), final ``norm``. Token order ``[cls + pos[0], registers (no pos), patches + pos]``.
Other grids resize ``pos_embed`` with antialiased bicubic interpolation to (H/14, W/14).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import Block


class PatchEmbed(nn.Module):
    """[N, 3, H, W] -> [N, (H/p)*(W/p), C] with a stride-p convolution ``proj``."""

    def __init__(self, patch_size: int = 14, in_chans: int = 3, embed_dim: int = 1024) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class DinoVisionTransformer(nn.Module):
    """DINOv2 encoder; :meth:`forward` returns the normalised patch tokens [N, P, C]."""

    def __init__(
        self,
        img_size: int = 518,
        patch_size: int = 14,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        num_register_tokens: int = 4,
        init_values: float = 1.0,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.num_register_tokens = num_register_tokens
        self.grid = img_size // patch_size
        # Parameter registration order mirrors the checkpoint's key order.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid * self.grid + 1, embed_dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))  # unused at inference
        self.patch_embed = PatchEmbed(patch_size, 3, embed_dim)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, init_values=init_values, norm_eps=1e-6)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

    def interpolated_pos_embed(self, grid_h: int, grid_w: int) -> Tensor:
        """pos_embed [1, 1 + grid_h*grid_w, C] for a (grid_h, grid_w) patch grid."""
        m = self.grid
        if grid_h == m and grid_w == m:
            return self.pos_embed
        pos = self.pos_embed.float()
        patch_pos = pos[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2)
        # antialiased bicubic with a = -0.5, size given, no offset (docs/architecture.md#parity-pitfalls)
        patch_pos = F.interpolate(patch_pos, size=(grid_h, grid_w), mode="bicubic", antialias=True)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)
        return torch.cat((pos[:, :1], patch_pos), dim=1).to(self.pos_embed.dtype)

    def forward(self, images: Tensor) -> Tensor:
        """images [N, 3, H, W] (normalised) -> x_norm_patchtokens [N, (H/p)*(W/p), C]."""
        n, _, h, w = images.shape
        gh, gw = h // self.patch_size, w // self.patch_size
        if math.prod((gh, gw)) == 0:
            raise ValueError(f"image {h}x{w} is smaller than one {self.patch_size}px patch")
        x = self.patch_embed(images)
        pos = self.interpolated_pos_embed(gh, gw)
        cls = self.cls_token + pos[:, :1]
        x = x + pos[:, 1:]
        x = torch.cat((cls.expand(n, -1, -1), self.register_tokens.expand(n, -1, -1), x), dim=1)
        for blk in self.blocks:
            x = blk(x)
        # LayerNorm is per token: normalising only the patch tokens equals slicing afterwards.
        return self.norm(x[:, 1 + self.num_register_tokens :])
