"""VGGT track head: DPT feature extractor (stride 2) + iterative tracker (docs/architecture.md#module-tree).

forward(aggregated_tokens_list, images [B, S, 3, H, W], patch_start_idx, query_points [B, N, 2])
  -> (track_list: iters x [B, S, N, 2] network pixels (x, y), vis [B, S, N], conf [B, S, N]).
Queries are pixels on frame 0; track_list[-1][:, 0] equals the queries. To track points of
another frame, reorder the window so that frame comes first (the backbone must rerun).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .dpt_head import DPTHead
from .tracker import BaseTrackerPredictor


class TrackHead(nn.Module):
    """`feature_extractor` = DPTHead(feature_only, down_ratio=2, no pos-embed); `tracker` = predictor."""

    def __init__(
        self,
        dim_in: int = 2048,
        patch_size: int = 14,
        features: int = 128,
        iters: int = 4,
        predict_conf: bool = True,
        stride: int = 2,
        corr_levels: int = 7,
        corr_radius: int = 4,
        hidden_size: int = 384,
        depth: int = 6,
        out_channels: Sequence[int] = (256, 512, 1024, 1024),
        intermediate_layer_idx: Sequence[int] = (4, 11, 17, 23),
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.iters = iters
        self.feature_extractor = DPTHead(
            dim_in=dim_in,
            patch_size=patch_size,
            features=features,
            out_channels=out_channels,
            intermediate_layer_idx=intermediate_layer_idx,
            feature_only=True,
            down_ratio=2,
            pos_embed=False,
        )
        self.tracker = BaseTrackerPredictor(
            stride=stride,
            corr_levels=corr_levels,
            corr_radius=corr_radius,
            latent_dim=features,
            hidden_size=hidden_size,
            depth=depth,
            predict_conf=predict_conf,
        )

    def forward(
        self,
        aggregated_tokens_list: Sequence[Tensor | None],
        images: Tensor | None,
        patch_start_idx: int,
        query_points: Tensor,
        iters: int | None = None,
        image_hw: tuple[int, int] | None = None,
    ) -> tuple[list[Tensor], Tensor, Tensor | None]:
        """Track query_points [B, N, 2] (or [N, 2]) through all frames of the window.

        images only provides (H, W); pass image_hw instead to skip it.
        """
        if image_hw is None:
            if images is None:
                raise ValueError("TrackHead needs images or image_hw for the network size")
            image_hw = (int(images.shape[-2]), int(images.shape[-1]))
        if query_points.dim() == 2:
            query_points = query_points[None]
        if query_points.dim() != 3 or query_points.shape[-1] != 2:
            raise ValueError(f"query_points must be [B, N, 2], got {tuple(query_points.shape)}")
        fmaps = self.feature_extractor(aggregated_tokens_list, images, patch_start_idx, image_hw=image_hw)
        # Coordinates stay fp32 even under half-precision autocast (as in the reference): bf16 would
        # quantise a 500 px coordinate to +-1 px.
        query_points = query_points.to(device=fmaps.device, dtype=torch.float32)
        return self.tracker(query_points, fmaps, iters=self.iters if iters is None else iters)
