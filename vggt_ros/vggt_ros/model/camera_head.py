"""VGGT camera head: iterative refinement of the ``absT_quaR_FoV`` pose encoding.

Reads the camera token of the last aggregator layer ([B, S, 2C]), and for ``iters`` rounds
modulates it adaLN-style by the embedded current estimate, runs a 4-block trunk attending
across frames, and adds ``pose_branch(trunk_norm(.))`` to the estimate. Activations: T and
quaternion linear, FoV ReLU (docs/architecture.md#module-tree). Encoding: [t(3), q xyzw(4), fov_h, fov_w].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import Block, Mlp

POSE_DIM = 9


def activate_pose(enc: Tensor) -> Tensor:
    """Linear translation and quaternion, ReLU field of view."""
    return torch.cat((enc[..., :7], F.relu(enc[..., 7:])), dim=-1)


class CameraHead(nn.Module):
    """[B, S, P, 2C] tokens of the last layer -> list of ``iters`` pose encodings [B, S, 9]."""

    def __init__(
        self,
        dim_in: int = 2048,
        trunk_depth: int = 4,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        init_values: float = 0.01,
    ) -> None:
        super().__init__()
        self.empty_pose_tokens = nn.Parameter(torch.zeros(1, 1, POSE_DIM))
        self.trunk = nn.Sequential(
            *(Block(dim_in, num_heads, mlp_ratio, init_values=init_values) for _ in range(trunk_depth))
        )
        self.token_norm = nn.LayerNorm(dim_in)
        self.trunk_norm = nn.LayerNorm(dim_in)
        self.embed_pose = nn.Linear(POSE_DIM, dim_in)
        self.poseLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim_in, 3 * dim_in))
        self.adaln_norm = nn.LayerNorm(dim_in, elementwise_affine=False, eps=1e-6)
        self.pose_branch = Mlp(dim_in, dim_in // 2, POSE_DIM)

    def forward(
        self, aggregated_tokens_list: Sequence[Tensor | None], num_iterations: int = 4
    ) -> list[Tensor]:
        last = aggregated_tokens_list[-1]
        if last is None:
            raise ValueError("the camera head needs the last aggregator layer")
        tokens = self.token_norm(last[:, :, 0])
        b, s, _ = tokens.shape
        normed = self.adaln_norm(tokens)  # loop-invariant
        enc: Tensor | None = None
        out: list[Tensor] = []
        for _ in range(num_iterations):
            cond = self.embed_pose(self.empty_pose_tokens.expand(b, s, -1) if enc is None else enc.detach())
            shift, scale, gate = self.poseLN_modulation(cond).chunk(3, dim=-1)
            x = gate * (normed * (1 + scale) + shift) + tokens
            x = self.trunk(x)
            delta = self.pose_branch(self.trunk_norm(x))
            enc = delta if enc is None else enc + delta
            out.append(activate_pose(enc))
        return out
