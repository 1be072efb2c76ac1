"""DPT dense head (depth, point map, and the track head's feature extractor).

Per frame: the patch tokens of layers ``intermediate_layer_idx`` -> LayerNorm -> 1x1 projections
to ``out_channels`` -> (+ sin-cos UV embedding x0.1) -> resize (ConvT k4s4, ConvT k2s2,
identity, Conv k3s2) -> 3x3 ``layerN_rn`` -> RefineNet fusion (bilinear, align_corners=True)
-> ``output_conv1`` -> upsample to (H, W) / down_ratio -> (+ embedding) -> ``output_conv2``
-> activation (docs/architecture.md#module-tree). Every frame is processed independently,
so running the head on a
subset of frames gives exactly the rows of the full run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def make_sincos_embed(embed_dim: int, pos: Tensor, omega_0: float = 100.0) -> Tensor:
    """1D sin-cos embedding [M, D] of positions [M]; frequencies in float64 as the reference."""
    omega = torch.arange(embed_dim // 2, dtype=torch.float64, device=pos.device)
    omega /= embed_dim / 2.0
    omega = 1.0 / omega_0**omega
    angles = pos.reshape(-1).to(torch.float64)[:, None] * omega[None, :]
    return torch.cat((angles.sin(), angles.cos()), dim=1).float()


def uv_embedding(
    width: int, height: int, channels: int, aspect_ratio: float, dtype: torch.dtype, device
) -> Tensor:
    """[channels, height, width] embedding of the normalised view-plane UV grid (MoGe style)."""
    span_x = aspect_ratio / (1 + aspect_ratio**2) ** 0.5
    span_y = 1 / (1 + aspect_ratio**2) ** 0.5
    u = torch.linspace(
        -span_x * (width - 1) / width, span_x * (width - 1) / width, width, dtype=dtype, device=device
    )
    v = torch.linspace(
        -span_y * (height - 1) / height, span_y * (height - 1) / height, height, dtype=dtype, device=device
    )
    uu, vv = torch.meshgrid(u, v, indexing="xy")  # [height, width]
    emb_x = make_sincos_embed(channels // 2, uu.reshape(-1))
    emb_y = make_sincos_embed(channels // 2, vv.reshape(-1))
    emb = torch.cat((emb_x, emb_y), dim=-1).view(height, width, channels)
    return emb.permute(2, 0, 1)


def _interpolate(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear, align_corners=True, chunked over the batch when the output is huge."""
    limit = 1_610_612_736
    if size[0] * size[1] * x.shape[0] * x.shape[1] <= limit:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)
    per = max(1, limit // (size[0] * size[1] * x.shape[1]))
    return torch.cat(
        [F.interpolate(c, size=size, mode="bilinear", align_corners=True) for c in x.split(per)], dim=0
    )


class ResidualConvUnit(nn.Module):
    """relu -> conv1 -> relu -> conv2, plus the skip. The reference's ReLU is in-place, so the
    skip adds ``relu(x)`` rather than ``x`` (docs/architecture.md#parity-pitfalls)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, 1, 1)
        self.conv2 = nn.Conv2d(features, features, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(x)
        out = self.conv2(F.relu(self.conv1(x), inplace=True))
        return out + x


class FeatureFusionBlock(nn.Module):
    """(x [, skip]) -> x + rcu1(skip) -> rcu2 -> upsample (to ``size`` or x2) -> 1x1 ``out_conv``."""

    def __init__(self, features: int, has_residual: bool = True) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1, 1, 0)
        if has_residual:
            self.resConfUnit1 = ResidualConvUnit(features)
        self.has_residual = has_residual
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, x: Tensor, skip: Tensor | None = None, size: tuple[int, int] | None = None) -> Tensor:
        if self.has_residual and skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            size = (int(x.shape[-2] * 2), int(x.shape[-1] * 2))
        x = _interpolate(x, (int(size[0]), int(size[1])))
        return self.out_conv(x)


def _activate(x: Tensor, kind: str) -> Tensor:
    if kind == "exp":
        return torch.exp(x)
    if kind == "inv_log":
        return torch.sign(x) * torch.expm1(torch.abs(x))
    if kind == "expp1":
        return 1 + x.exp()
    if kind == "linear":
        return x
    raise ValueError(f"unknown activation {kind!r}")


class DPTScratch(nn.Module):
    """3x3 ``layerN_rn`` convs to ``features``, RefineNet blocks and output convs (checkpoint names)."""

    def __init__(
        self, in_channels: Sequence[int], features: int, feature_only: bool, output_dim: int
    ) -> None:
        super().__init__()
        c1, c2, c3, c4 = in_channels
        self.layer1_rn = nn.Conv2d(c1, features, 3, 1, 1, bias=False)
        self.layer2_rn = nn.Conv2d(c2, features, 3, 1, 1, bias=False)
        self.layer3_rn = nn.Conv2d(c3, features, 3, 1, 1, bias=False)
        self.layer4_rn = nn.Conv2d(c4, features, 3, 1, 1, bias=False)
        self.refinenet1 = FeatureFusionBlock(features)
        self.refinenet2 = FeatureFusionBlock(features)
        self.refinenet3 = FeatureFusionBlock(features)
        self.refinenet4 = FeatureFusionBlock(features, has_residual=False)
        self.output_conv2: nn.Sequential | None = None
        if feature_only:
            self.output_conv1 = nn.Conv2d(features, features, 3, 1, 1)
        else:
            self.output_conv1 = nn.Conv2d(features, features // 2, 3, 1, 1)
            self.output_conv2 = nn.Sequential(
                nn.Conv2d(features // 2, 32, 3, 1, 1),
                nn.ReLU(inplace=True),
                nn.Conv2d(32, output_dim, 1, 1, 0),
            )


class DPTHead(nn.Module):
    """Dense head. ``forward`` returns (pred [B, S', H, W, D-1], conf [B, S', H, W]) or, with
    ``feature_only``, features [B, S', features, H/down_ratio, W/down_ratio]; S' = chosen frames."""

    def __init__(
        self,
        dim_in: int,
        patch_size: int = 14,
        output_dim: int = 4,
        activation: str = "inv_log",
        conf_activation: str = "expp1",
        features: int = 256,
        out_channels: Sequence[int] = (256, 512, 1024, 1024),
        intermediate_layer_idx: Sequence[int] = (4, 11, 17, 23),
        pos_embed: bool = True,
        feature_only: bool = False,
        down_ratio: int = 1,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.activation = activation
        self.conf_activation = conf_activation
        self.pos_embed = pos_embed
        self.feature_only = feature_only
        self.down_ratio = down_ratio
        self._pos_cache: dict[tuple, Tensor] = {}
        self.intermediate_layer_idx = list(intermediate_layer_idx)
        oc = list(out_channels)
        self.norm = nn.LayerNorm(dim_in)
        self.projects = nn.ModuleList(nn.Conv2d(dim_in, c, 1, 1, 0) for c in oc)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(oc[0], oc[0], kernel_size=4, stride=4, padding=0),
                nn.ConvTranspose2d(oc[1], oc[1], kernel_size=2, stride=2, padding=0),
                nn.Identity(),
                nn.Conv2d(oc[3], oc[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = DPTScratch(oc, features, feature_only, output_dim)

    def forward(
        self,
        aggregated_tokens_list: Sequence[Tensor | None],
        images: Tensor,
        patch_start_idx: int,
        frames_chunk_size: int = 8,
        frames: Sequence[int] | None = None,
        image_hw: tuple[int, int] | None = None,
    ) -> Union[Tensor, tuple[Tensor, Tensor]]:
        """Run on ``frames`` (all when None) in chunks of ``frames_chunk_size``.

        ``images`` [B, S, 3, H, W] only provides (H, W); pass ``image_hw`` instead to skip it.
        """
        if image_hw is None:
            h, w = images.shape[-2:]
        else:
            h, w = image_hw
        s = next(t for t in aggregated_tokens_list if t is not None).shape[1]
        idx = list(range(s)) if frames is None else [int(f) for f in frames]
        if not idx:
            raise ValueError("no frames requested")
        chunk = max(1, frames_chunk_size or len(idx))
        preds: list[Tensor] = []
        confs: list[Tensor] = []
        for start in range(0, len(idx), chunk):
            out = self._forward_frames(
                aggregated_tokens_list, patch_start_idx, idx[start : start + chunk], h, w
            )
            if isinstance(out, tuple):
                preds.append(out[0])
                confs.append(out[1])
            else:
                preds.append(out)
        if self.feature_only:
            return torch.cat(preds, dim=1)
        return torch.cat(preds, dim=1), torch.cat(confs, dim=1)

    def _add_pos_embed(self, x: Tensor, w: int, h: int, ratio: float = 0.1) -> Tensor:
        # The embedding depends only on shapes: computed once per (grid, channels, image size).
        key = (
            x.shape[-1],
            x.shape[-2],
            x.shape[1],
            w,
            h,
            x.dtype,
            x.device,
            torch.is_inference_mode_enabled(),
        )
        emb = self._pos_cache.get(key)
        if emb is None:
            emb = uv_embedding(x.shape[-1], x.shape[-2], x.shape[1], w / h, x.dtype, x.device) * ratio
            if len(self._pos_cache) >= 16:
                self._pos_cache.clear()
            self._pos_cache[key] = emb
        return x + emb[None]

    def _forward_frames(
        self, tokens_list: Sequence[Tensor | None], patch_start_idx: int, idx: list[int], h: int, w: int
    ) -> Union[Tensor, tuple[Tensor, Tensor]]:
        ph, pw = h // self.patch_size, w // self.patch_size
        feats = []
        for k, layer in enumerate(self.intermediate_layer_idx):
            t = tokens_list[layer]
            if t is None:
                raise ValueError(f"aggregator layer {layer} was not kept")
            b, s_all = t.shape[:2]
            x = t[:, idx, patch_start_idx:] if len(idx) < s_all else t[:, :, patch_start_idx:]
            x = self.norm(x.reshape(b * len(idx), -1, x.shape[-1]))
            x = x.permute(0, 2, 1).reshape(x.shape[0], x.shape[-1], ph, pw)
            x = self.projects[k](x)
            if self.pos_embed:
                x = self._add_pos_embed(x, w, h)
            feats.append(self.resize_layers[k](x))
        sc = self.scratch
        l1, l2, l3, l4 = (
            sc.layer1_rn(feats[0]),
            sc.layer2_rn(feats[1]),
            sc.layer3_rn(feats[2]),
            sc.layer4_rn(feats[3]),
        )
        del feats
        out = sc.refinenet4(l4, size=l3.shape[2:])
        out = sc.refinenet3(out, l3, size=l2.shape[2:])
        out = sc.refinenet2(out, l2, size=l1.shape[2:])
        out = sc.refinenet1(out, l1)
        out = sc.output_conv1(out)
        out = _interpolate(
            out, (int(ph * self.patch_size / self.down_ratio), int(pw * self.patch_size / self.down_ratio))
        )
        if self.pos_embed:
            out = self._add_pos_embed(out, w, h)
        b = out.shape[0] // len(idx)
        if self.feature_only:
            return out.view(b, len(idx), *out.shape[1:])
        assert sc.output_conv2 is not None
        out = sc.output_conv2(out).permute(0, 2, 3, 1)
        pred = _activate(out[..., :-1], self.activation)
        conf = _activate(out[..., -1], self.conf_activation)
        return pred.reshape(b, len(idx), *pred.shape[1:]), conf.reshape(b, len(idx), *conf.shape[1:])
