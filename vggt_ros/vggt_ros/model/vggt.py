"""The VGGT network (Wang et al., CVPR 2025) with the released checkpoint's state_dict layout.

``VGGT().state_dict()`` lists the 1797 keys of ``facebook/VGGT-1B`` (docs/architecture.md#checkpoint-keys).
:meth:`VGGT.forward` reproduces the reference outputs; :meth:`VGGT.infer` runs only the heads a
caller needs, on the frames it needs, and can reuse per-frame DINOv2 tokens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .aggregator import Aggregator, CachedTokens
from .camera_head import CameraHead
from .dpt_head import DPTHead

HEADS = frozenset({"camera", "depth", "point", "track"})


@dataclass
class VGGTConfig:
    """Sizes of every part. Defaults are VGGT-1B; :meth:`tiny` is a fast test configuration."""

    img_size: int = 518
    patch_size: int = 14
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    dino_depth: int = 24
    dino_num_heads: int = 16
    camera_trunk_depth: int = 4
    camera_num_heads: int = 16
    dpt_features: int = 256
    dpt_out_channels: tuple[int, ...] = (256, 512, 1024, 1024)
    intermediate_layer_idx: tuple[int, ...] = (4, 11, 17, 23)
    track_features: int = 128
    #: extra keyword arguments for ``TrackHead`` (its tracker's sizes), see ``track_head.py``.
    track_kwargs: dict[str, Any] = field(default_factory=dict)
    enable_camera: bool = True
    enable_depth: bool = True
    enable_point: bool = True
    enable_track: bool = True

    @classmethod
    def tiny(cls) -> VGGTConfig:
        """A few narrow layers of the same classes: a CPU forward takes well under a second."""
        return cls(
            img_size=56,
            embed_dim=32,
            depth=4,
            num_heads=2,
            dino_depth=2,
            dino_num_heads=2,
            camera_trunk_depth=1,
            camera_num_heads=2,
            dpt_features=16,
            dpt_out_channels=(8, 16, 32, 32),
            intermediate_layer_idx=(0, 1, 2, 3),
            track_features=16,
            track_kwargs=dict(_TINY_TRACK),
        )


# Tracker sizes for the tiny configuration (names follow TrackHead's constructor).
_TINY_TRACK: dict[str, Any] = {"corr_levels": 2, "corr_radius": 2, "hidden_size": 32, "depth": 1}


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Reference precision policy: None (fp32) on CPU; bf16 on CUDA capability >= 8, else fp16."""
    if device.type != "cuda":
        return None
    major, _ = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if major >= 8 else torch.float16


def compile_aggregator_blocks(model: VGGT, backend: str) -> VGGT:
    """The aggregator's frame and global attention blocks compiled in place with torch.compile(backend)
    (Module.compile keeps the state_dict keys); '' leaves the model as it is. The first forward of each
    window size pays the compile time. Returns the model."""
    if backend:
        agg = model.aggregator
        for block in [*agg.frame_blocks, *agg.global_blocks]:
            block.compile(backend=backend, dynamic=None)
    return model


class VGGT(nn.Module):
    """Aggregator + camera, depth, point and track heads."""

    def __init__(self, config: VGGTConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        cfg = config or VGGTConfig()
        if overrides:
            cfg = VGGTConfig(**{**asdict(cfg), **overrides})
        self.config = cfg
        dim_in = 2 * cfg.embed_dim
        self.aggregator = Aggregator(
            img_size=cfg.img_size,
            patch_size=cfg.patch_size,
            embed_dim=cfg.embed_dim,
            depth=cfg.depth,
            num_heads=cfg.num_heads,
            mlp_ratio=cfg.mlp_ratio,
            num_register_tokens=cfg.num_register_tokens,
            dino_depth=cfg.dino_depth,
            dino_num_heads=cfg.dino_num_heads,
        )
        dpt: dict[str, Any] = dict(
            dim_in=dim_in,
            patch_size=cfg.patch_size,
            features=cfg.dpt_features,
            out_channels=cfg.dpt_out_channels,
            intermediate_layer_idx=cfg.intermediate_layer_idx,
        )
        self.camera_head = (
            CameraHead(dim_in, cfg.camera_trunk_depth, cfg.camera_num_heads, cfg.mlp_ratio)
            if cfg.enable_camera
            else None
        )
        self.point_head = (
            DPTHead(output_dim=4, activation="inv_log", conf_activation="expp1", **dpt)
            if cfg.enable_point
            else None
        )
        self.depth_head = (
            DPTHead(output_dim=2, activation="exp", conf_activation="expp1", **dpt)
            if cfg.enable_depth
            else None
        )
        self.track_head: nn.Module | None = None
        if cfg.enable_track:
            from .track_head import TrackHead

            self.track_head = TrackHead(
                dim_in=dim_in,
                patch_size=cfg.patch_size,
                features=cfg.track_features,
                out_channels=cfg.dpt_out_channels,
                intermediate_layer_idx=cfg.intermediate_layer_idx,
                **cfg.track_kwargs,
            )

    @classmethod
    def empty(cls, config: VGGTConfig | None = None, device: Any = "cpu", **overrides: Any) -> VGGT:
        """Build without random initialisation (parameters uninitialised): meta device, then
        ``to_empty``. Seconds instead of ~15 s for VGGT-1B; load or fill weights afterwards."""
        with torch.device("meta"):
            model = cls(config, **overrides)
        return model.to_empty(device=device).eval()

    # ------------------------------------------------------------------ reference API
    def forward(self, images: Tensor, query_points: Tensor | None = None) -> dict[str, Any]:
        """images [S, 3, H, W] or [B, S, 3, H, W] in [0, 1]; query_points [N, 2] or [B, N, 2]
        pixels (x, y) in frame 0. Returns the reference's keys (docs/architecture.md#forward-outputs)."""
        heads = {h for h in ("camera", "depth", "point") if getattr(self, f"{h}_head") is not None}
        if self.track_head is not None and query_points is not None:
            heads.add("track")
        out, _ = self.infer(
            images,
            query_points=query_points,
            heads=heads,
            point_head=True,
            precision=None,
            keep_all_pose_iters=True,
        )
        if not self.training:
            out["images"] = images if images.dim() == 5 else images.unsqueeze(0)
        return out

    # ------------------------------------------------------------------ selective API
    def infer(
        self,
        images: Tensor,
        *,
        query_points: Tensor | None = None,
        depth_frames: Sequence[int] | None = None,
        point_frames: Sequence[int] | None = None,
        heads: Collection[str] = ("camera", "depth", "track"),
        point_head: bool = False,
        cached_patch_tokens: CachedTokens | None = None,
        precision: str | None = "auto",
        track_iters: int = 4,
        keep_all_pose_iters: bool = False,
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Run the aggregator once and only the requested heads.

        - ``camera``: ``pose_enc`` [B, S, 9] for all frames.
        - ``depth``: ``depth`` [B, S', H, W, 1], ``depth_conf`` [B, S', H, W] for ``depth_frames``
          (all when None; ``depth_frames`` lists the frame indices, in that order).
        - ``point`` (or ``point_head=True``): ``world_points`` / ``world_points_conf`` for ``point_frames``.
        - ``track`` (only with ``query_points``): ``track`` [B, S, N, 2], ``vis``, ``conf`` [B, S, N].
        ``cached_patch_tokens``: DINOv2 tokens per frame ([B, S, P, C], or a list with None for
        frames to compute). ``precision``: "auto" = reference policy (:func:`autocast_dtype`),
        None = as called. Returns (outputs, patch_tokens [B, S, P, C]) — cache the latter.
        """
        heads = set(heads)
        if point_head:
            heads.add("point")
        unknown = heads - HEADS
        if unknown:
            raise ValueError(f"unknown heads {sorted(unknown)}; choose from {sorted(HEADS)}")
        if query_points is None:
            heads.discard("track")
        for h in heads:
            if getattr(self, f"{h}_head") is None:
                raise ValueError(f"the {h} head is disabled in this model")
        if images.dim() == 4:
            images = images.unsqueeze(0)
        if images.dim() != 5 or images.shape[2] != 3:
            raise ValueError(f"images must be [S,3,H,W] or [B,S,3,H,W], got {tuple(images.shape)}")
        if query_points is not None and query_points.dim() == 2:
            query_points = query_points.unsqueeze(0)
        s = images.shape[1]
        for name, sel in (("depth_frames", depth_frames), ("point_frames", point_frames)):
            if sel is not None and any(not 0 <= int(i) < s for i in sel):
                raise ValueError(f"{name} {list(sel)} out of range for {s} frames")

        depth = self.config.depth
        keep = set()
        if "camera" in heads:
            keep.add(depth - 1)
        if heads & {"depth", "point", "track"}:
            keep.update(i % depth for i in self.config.intermediate_layer_idx)

        dtype = autocast_dtype(images.device) if precision == "auto" else None
        amp = (
            torch.autocast(images.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        )
        out: dict[str, Any] = {}
        with amp:
            if not keep:  # no head asked: only the per-frame DINOv2 tokens (e.g. to warm a cache)
                return out, self.aggregator.patch_tokens(images, cached_patch_tokens)
            tokens, patch_start_idx, patch_tokens = self.aggregator(
                images, cached_patch_tokens, keep_layers=sorted(keep)
            )
            # The reference keeps camera/depth/point heads in fp32 (autocast disabled); track is not.
            with torch.autocast(images.device.type, enabled=False):
                if "camera" in heads:
                    assert self.camera_head is not None
                    pose_list = self.camera_head(tokens)
                    out["pose_enc"] = pose_list[-1]
                    if keep_all_pose_iters:
                        out["pose_enc_list"] = pose_list
                if "depth" in heads:
                    assert self.depth_head is not None
                    out["depth"], out["depth_conf"] = self.depth_head(
                        tokens, images, patch_start_idx, frames=depth_frames
                    )
                if "point" in heads:
                    assert self.point_head is not None
                    out["world_points"], out["world_points_conf"] = self.point_head(
                        tokens, images, patch_start_idx, frames=point_frames
                    )
            if "track" in heads:
                assert self.track_head is not None and query_points is not None
                track_list, vis, conf = self.track_head(
                    tokens, images, patch_start_idx, query_points, track_iters
                )
                out["track"], out["vis"], out["conf"] = track_list[-1], vis, conf
        return out, patch_tokens
