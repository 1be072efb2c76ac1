"""VGGT aggregator: DINOv2 patch tokens + camera/register tokens, alternating frame/global attention.

Per frame the token order is ``[camera, registers..., patches]`` (``patch_start_idx = 1 + R``).
Slot 0 of ``camera_token`` / ``register_token`` goes to frame 0, slot 1 to frames 1..S-1.
Frame blocks attend within each frame ([B*S, P, C]); global blocks across the window
([B, S*P, C]). Layer ``i`` of the output is ``cat(frame_i, global_i)`` -> [B, S, P, 2C]
(docs/architecture.md#module-tree).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch
from torch import Tensor, nn

from .dinov2 import DinoVisionTransformer
from .layers import Block, RotaryPositionEmbedding2D, patch_positions

_RESNET_MEAN = (0.485, 0.456, 0.406)
_RESNET_STD = (0.229, 0.224, 0.225)

#: per-frame cached DINOv2 tokens: a [B, S, P, C] tensor, or one entry per frame ([B, P, C],
#: [P, C] or None = compute this frame).
CachedTokens = Union[Tensor, Sequence[Tensor | None]]


class Aggregator(nn.Module):
    """Alternating-attention trunk; returns per-layer tokens [B, S, P, 2C] and the DINO tokens."""

    def __init__(
        self,
        img_size: int = 518,
        patch_size: int = 14,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        num_register_tokens: int = 4,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        qk_norm: bool = True,
        rope_freq: float = 100.0,
        init_values: float = 0.01,
        dino_depth: int = 24,
        dino_num_heads: int = 16,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.depth = depth
        self.num_register_tokens = num_register_tokens
        self.patch_start_idx = 1 + num_register_tokens
        self.head_dim = embed_dim // num_heads
        self.camera_token = nn.Parameter(torch.zeros(1, 2, 1, embed_dim))
        self.register_token = nn.Parameter(torch.zeros(1, 2, num_register_tokens, embed_dim))
        self.patch_embed = DinoVisionTransformer(
            img_size=img_size,
            patch_size=patch_size,
            embed_dim=embed_dim,
            depth=dino_depth,
            num_heads=dino_num_heads,
            mlp_ratio=mlp_ratio,
            num_register_tokens=num_register_tokens,
            init_values=1.0,
        )
        self.rope = RotaryPositionEmbedding2D(rope_freq) if rope_freq > 0 else None

        def make_block() -> Block:
            return Block(
                embed_dim,
                num_heads,
                mlp_ratio,
                qkv_bias=qkv_bias,
                proj_bias=proj_bias,
                ffn_bias=ffn_bias,
                init_values=init_values,
                qk_norm=qk_norm,
            )

        self.frame_blocks = nn.ModuleList(make_block() for _ in range(depth))
        self.global_blocks = nn.ModuleList(make_block() for _ in range(depth))

    @staticmethod
    def normalize(images: Tensor) -> Tensor:
        """ImageNet normalisation ``(x - mean) / std`` of [..., 3, H, W] images in [0, 1].

        Constants, not buffers: the reference's buffers are non-persistent, and constants stay
        valid for a model materialised with ``to_empty`` (fast build without random init).
        """
        mean = torch.tensor(_RESNET_MEAN, dtype=images.dtype, device=images.device).view(3, 1, 1)
        std = torch.tensor(_RESNET_STD, dtype=images.dtype, device=images.device).view(3, 1, 1)
        return (images - mean) / std

    # ------------------------------------------------------------------ DINO tokens
    def patch_tokens(self, images: Tensor, cached: CachedTokens | None = None) -> Tensor:
        """images [B, S, 3, H, W] in [0, 1] -> DINOv2 ``x_norm_patchtokens`` [B, S, P, C].

        Frames whose entry in ``cached`` is given are not recomputed (the tokens depend only on
        the frame's pixels).
        """
        b, s, c, h, w = images.shape
        tok_shape = ((h // self.patch_size) * (w // self.patch_size), self.patch_embed.embed_dim)
        if isinstance(cached, Tensor):
            if cached.dim() == 3:
                cached = cached.unsqueeze(0)
            if tuple(cached.shape) != (b, s, *tok_shape):
                raise ValueError(f"cached tokens {tuple(cached.shape)} do not match {(b, s, *tok_shape)}")
            return cached.to(images.device)
        entries: list[Tensor | None] = [None] * s if cached is None else list(cached)
        if len(entries) != s:
            raise ValueError(f"{len(entries)} cached-token entries for {s} frames")
        todo = [i for i, e in enumerate(entries) if e is None]
        if todo:
            sub = images[:, todo] if len(todo) < s else images
            sub = self.normalize(sub)
            fresh = self.patch_embed(sub.reshape(b * len(todo), c, h, w))
            fresh = fresh.view(b, len(todo), *fresh.shape[1:])
            if len(todo) == s:
                return fresh
            for j, i in enumerate(todo):
                entries[i] = fresh[:, j]
        frames = []
        for e in entries:
            assert e is not None
            if tuple(e.shape[-2:]) != tok_shape:
                raise ValueError(
                    f"cached tokens {tuple(e.shape)} do not match {tok_shape} for {h}x{w} images"
                )
            e = e.to(images.device)
            frames.append(e if e.dim() == 3 else e.unsqueeze(0).expand(b, -1, -1))
        return torch.stack(frames, dim=1)

    # ------------------------------------------------------------------ trunk
    def forward(
        self,
        images: Tensor,
        cached_patch_tokens: CachedTokens | None = None,
        keep_layers: Sequence[int] | None = None,
    ) -> tuple[list[Tensor | None], int, Tensor]:
        """images [B, S, 3, H, W] in [0, 1].

        Returns (tokens, patch_start_idx, patch_tokens): ``tokens[i]`` is [B, S, P, 2C] for i in
        ``keep_layers`` (all layers when None) and None otherwise, so memory holds only what
        the heads read; ``patch_tokens`` is the DINOv2 output [B, S, P_patch, C].
        """
        b, s, _, h, w = images.shape
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {self.patch_size}")
        patches = self.patch_tokens(images, cached_patch_tokens)
        c = patches.shape[-1]
        cam = _first_and_rest(self.camera_token, b, s)
        reg = _first_and_rest(self.register_token, b, s)
        tokens = torch.cat(
            (cam.to(patches.dtype), reg.to(patches.dtype), patches.reshape(b * s, -1, c)), dim=1
        )
        p = tokens.shape[1]

        rope_frame = rope_global = None
        if self.rope is not None:
            head_dim = self.head_dim
            pos = patch_positions(
                h // self.patch_size, w // self.patch_size, self.patch_start_idx, tokens.device
            )
            rope_frame = self.rope.tables(pos, head_dim, torch.float32)
            rope_global = (rope_frame[0].repeat(s, 1), rope_frame[1].repeat(s, 1))

        keep = set(range(self.depth)) if keep_layers is None else {k % self.depth for k in keep_layers}
        outputs: list[Tensor | None] = [None] * self.depth
        for i in range(self.depth):
            tokens = self.frame_blocks[i](tokens.view(b * s, p, c), rope_frame)
            frame_out = tokens.view(b, s, p, c)
            tokens = self.global_blocks[i](tokens.view(b, s * p, c), rope_global)
            if i in keep:
                outputs[i] = torch.cat((frame_out, tokens.view(b, s, p, c)), dim=-1)
        return outputs, self.patch_start_idx, patches


def _first_and_rest(token: Tensor, b: int, s: int) -> Tensor:
    """[1, 2, n, C] -> [B*S, n, C]: slot 0 for frame 0, slot 1 for frames 1..S-1."""
    first = token[:, 0:1].expand(b, 1, -1, -1)
    rest = token[:, 1:2].expand(b, s - 1, -1, -1)
    return torch.cat((first, rest), dim=1).reshape(b * s, *token.shape[2:])
