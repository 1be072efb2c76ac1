"""VGGT's point tracker: correlation pyramid + iterative transformer refinement (CoTracker/VGGSfM style).

Module names mirror the released checkpoint (`track_head.tracker.*`), including the
misspelled `updateformer.virual_tracks` and `nn.MultiheadAttention`'s `in_proj_weight`.

Shapes: B batch, S frames, N query points, C feature channels (128), (HH, WW) feature-map size
(image size / stride). Coordinates are pixel (x, y); sampling uses align_corners=True, i.e.
x = 0 is the centre of the left-most pixel (docs/architecture.md#parity-pitfalls).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Mlp


def bilinear_sample(
    image: torch.Tensor, coords: torch.Tensor, padding_mode: str = "border"
) -> torch.Tensor:
    """Sample image (B, C, H, W) at pixel coords (B, Ho, Wo, 2) (x, y) -> (B, C, Ho, Wo).

    align_corners=True: pixel x maps to grid 2 x / (W - 1) - 1.
    """
    h, w = image.shape[-2:]
    coords = coords.to(device=image.device, dtype=image.dtype)
    scale = torch.tensor(
        [2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=coords.device, dtype=coords.dtype
    )
    grid = coords * scale - 1.0
    return F.grid_sample(image, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


def sample_features(fmap: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Features of fmap (B, C, H, W) at points coords (B, R, 2) -> (B, R, C) (border padding)."""
    sampled = bilinear_sample(fmap, coords.unsqueeze(2), padding_mode="border")  # B C R 1
    return sampled.squeeze(3).permute(0, 2, 1)


def flow_embedding(xy: torch.Tensor, channels: int) -> torch.Tensor:
    """Sin/cos embedding of 2D offsets xy (B, N, 2) -> (B, N, 2 * channels).

    Per axis: channels interleaved as [sin(a f0), cos(a f0), sin(a f1), ...] with
    f_k = 2k * 1000 / channels (the reference's frequencies, not a geometric series).
    """
    freq = torch.arange(0, channels, 2, device=xy.device, dtype=torch.float32) * (1000.0 / channels)
    parts = []
    for axis in range(2):
        a = xy[..., axis : axis + 1] * freq  # B N C/2
        parts.append(torch.stack([torch.sin(a), torch.cos(a)], dim=-1).flatten(-2))
    return torch.cat(parts, dim=-1)


def _sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """(M,) positions -> (M, dim) float64 [sin | cos] with omega = 10000^(-k / (dim/2))."""
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000.0**omega
    out = pos.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def grid_sincos_embedding(dim: int, hh: int, ww: int) -> torch.Tensor:
    """2D sin/cos embedding of the feature grid -> (1, dim, hh, ww) float32.

    First half encodes the column (x), second half the row (y); computed in float64 and
    cast to float32 as the reference does (its einsum promotes to float64).
    """
    ys, xs = torch.meshgrid(
        torch.arange(hh, dtype=torch.float32), torch.arange(ww, dtype=torch.float32), indexing="ij"
    )
    emb = torch.cat([_sincos_1d(dim // 2, xs.reshape(-1)), _sincos_1d(dim // 2, ys.reshape(-1))], dim=1)
    return emb.float().reshape(1, hh, ww, dim).permute(0, 3, 1, 2)


class AttnBlock(nn.Module):
    """Self-attention block. NOTE the reference normalises x in place of the residual:
    x = norm1(x); x = x + attn(x); x = x + mlp(norm2(x))."""

    def __init__(self, hidden: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.attn = nn.MultiheadAttention(hidden, num_heads, batch_first=True)
        self.mlp = Mlp(hidden, int(hidden * mlp_ratio), hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x)
        x = x + self.attn(x, x, x, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class CrossAttnBlock(nn.Module):
    """Cross-attention block: x = norm1(x); x = x + attn(x, norm_ctx(ctx)); x = x + mlp(norm2(x))."""

    def __init__(self, hidden: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden)
        self.norm_context = nn.LayerNorm(hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.cross_attn = nn.MultiheadAttention(hidden, num_heads, batch_first=True)
        self.mlp = Mlp(hidden, int(hidden * mlp_ratio), hidden)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x)
        context = self.norm_context(context)
        x = x + self.cross_attn(x, context, context, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class EfficientUpdateFormer(nn.Module):
    """Alternating time attention (per track) and space attention through virtual tracks.

    forward: (B, N, S, input_dim) -> (B, N, S, output_dim).
    """

    def __init__(
        self,
        space_depth: int = 6,
        time_depth: int = 6,
        input_dim: int = 388,
        hidden_size: int = 384,
        num_heads: int = 8,
        output_dim: int = 130,
        mlp_ratio: float = 4.0,
        num_virtual_tracks: int = 64,
    ) -> None:
        super().__init__()
        if space_depth < 1 or time_depth % space_depth != 0:
            raise ValueError("time_depth must be a positive multiple of space_depth")
        self.num_virtual_tracks = num_virtual_tracks
        self.input_norm = nn.LayerNorm(input_dim)
        self.input_transform = nn.Linear(input_dim, hidden_size)
        self.output_norm = nn.LayerNorm(hidden_size)
        self.flow_head = nn.Linear(hidden_size, output_dim)
        # (sic) "virual": the released checkpoint's spelling.
        self.virual_tracks = nn.Parameter(torch.zeros(1, num_virtual_tracks, 1, hidden_size))
        self.time_blocks = nn.ModuleList(
            [AttnBlock(hidden_size, num_heads, mlp_ratio) for _ in range(time_depth)]
        )
        self.space_virtual_blocks = nn.ModuleList(
            [AttnBlock(hidden_size, num_heads, mlp_ratio) for _ in range(space_depth)]
        )
        self.space_point2virtual_blocks = nn.ModuleList(
            [CrossAttnBlock(hidden_size, num_heads, mlp_ratio) for _ in range(space_depth)]
        )
        self.space_virtual2point_blocks = nn.ModuleList(
            [CrossAttnBlock(hidden_size, num_heads, mlp_ratio) for _ in range(space_depth)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.input_transform(self.input_norm(x))
        init_tokens = tokens
        b, _, s, c = tokens.shape
        nv = self.num_virtual_tracks
        tokens = torch.cat([tokens, self.virual_tracks.repeat(b, 1, s, 1)], dim=1)
        n = tokens.shape[1]
        every = len(self.time_blocks) // len(self.space_virtual_blocks)
        j = 0
        for i, time_block in enumerate(self.time_blocks):
            tokens = time_block(tokens.reshape(b * n, s, c)).reshape(b, n, s, c)
            if i % every == 0:
                space = tokens.permute(0, 2, 1, 3).reshape(b * s, n, c)
                points, virtual = space[:, : n - nv], space[:, n - nv :]
                virtual = self.space_virtual2point_blocks[j](virtual, points)
                virtual = self.space_virtual_blocks[j](virtual)
                points = self.space_point2virtual_blocks[j](points, virtual)
                space = torch.cat([points, virtual], dim=1)
                tokens = space.reshape(b, s, n, c).permute(0, 2, 1, 3)
                j += 1
        tokens = tokens[:, : n - nv] + init_tokens
        return self.flow_head(self.output_norm(tokens))


class CorrBlock:
    """Multi-scale correlation of track features against every frame's feature map.

    fmaps: (B, S, C, H, W); level l is avg-pooled by 2^l. Correlations outside the map are 0.
    """

    def __init__(self, fmaps: torch.Tensor, num_levels: int, radius: int) -> None:
        self.radius = radius
        self.pyramid = [fmaps]
        for _ in range(num_levels - 1):
            b, s, c, h, w = self.pyramid[-1].shape
            pooled = F.avg_pool2d(self.pyramid[-1].reshape(b * s, c, h, w), kernel_size=2, stride=2)
            self.pyramid.append(pooled.reshape(b, s, c, *pooled.shape[-2:]))
        d = torch.arange(-radius, radius + 1, device=fmaps.device, dtype=fmaps.dtype)
        # Offset grid [a, b] = (d[a], d[b]) added to (x, y): x varies along the FIRST window axis
        # (the reference stacks meshgrid(dy, dx, "ij") and adds it to (x, y)); the flattening order
        # below is what corr_mlp's weights expect.
        da, db = torch.meshgrid(d, d, indexing="ij")
        self.delta = torch.stack([da, db], dim=-1)  # (2r+1, 2r+1, 2)

    def sample(self, targets: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """targets (B, S, N, C), coords (B, S, N, 2) at level-0 resolution -> (B, S, N, L (2r+1)^2)."""
        b, s, n, c = targets.shape
        k = 2 * self.radius + 1
        out = []
        for level, fmaps in enumerate(self.pyramid):
            h, w = fmaps.shape[-2:]
            corr = torch.matmul(targets, fmaps.reshape(b, s, c, h * w)) / math.sqrt(c)
            centre = coords.reshape(b * s * n, 1, 1, 2) / (2**level)
            window = centre + self.delta.to(coords.dtype).view(1, k, k, 2)
            sampled = bilinear_sample(corr.reshape(b * s * n, 1, h, w), window, padding_mode="zeros")
            out.append(sampled.reshape(b, s, n, k * k))
        return torch.cat(out, dim=-1)


class BaseTrackerPredictor(nn.Module):
    """Iterative tracker: query features from frame 0, refined by EfficientUpdateFormer.

    forward(query_points (B, N, 2) image pixels, fmaps (B, S, C, HH, WW), iters)
      -> (coords per iteration [iters x (B, S, N, 2)] image pixels, vis (B, S, N), conf (B, S, N) | None).
    """

    def __init__(
        self,
        stride: int = 2,
        corr_levels: int = 7,
        corr_radius: int = 4,
        latent_dim: int = 128,
        hidden_size: int = 384,
        depth: int = 6,
        max_scale: int = 518,
        predict_conf: bool = True,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.latent_dim = latent_dim
        self.corr_levels = corr_levels
        self.corr_radius = corr_radius
        self.max_scale = max_scale
        self.predict_conf = predict_conf
        self.flows_emb_dim = latent_dim // 2
        self.corr_mlp = Mlp(corr_levels * (2 * corr_radius + 1) ** 2, hidden_size, latent_dim)
        # [flow embedding (2 * flows_emb_dim) + 4 raw flow values, correlation, track feature]
        self.transformer_dim = 3 * latent_dim + 4
        self.query_ref_token = nn.Parameter(torch.zeros(1, 2, self.transformer_dim))
        self.updateformer = EfficientUpdateFormer(
            space_depth=depth,
            time_depth=depth,
            input_dim=self.transformer_dim,
            hidden_size=hidden_size,
            output_dim=latent_dim + 2,
        )
        self.fmap_norm = nn.LayerNorm(latent_dim)
        self.ffeat_norm = nn.GroupNorm(1, latent_dim)
        self.ffeat_updater = nn.Sequential(nn.Linear(latent_dim, latent_dim), nn.GELU())
        self.vis_predictor = nn.Sequential(nn.Linear(latent_dim, 1))
        if predict_conf:
            self.conf_predictor = nn.Sequential(nn.Linear(latent_dim, 1))

    def forward(
        self, query_points: torch.Tensor, fmaps: torch.Tensor, iters: int = 4
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
        b, n, _ = query_points.shape
        _, s, c, hh, ww = fmaps.shape
        lat = self.latent_dim
        fmaps = self.fmap_norm(fmaps.permute(0, 1, 3, 4, 2)).permute(0, 1, 4, 2, 3)
        query = query_points / float(self.stride)  # feature-map pixels
        coords = query.reshape(b, 1, n, 2).repeat(1, s, 1, 1)
        query_feat = sample_features(fmaps[:, 0], query)  # B N C
        track_feats = query_feat.unsqueeze(1).repeat(1, s, 1, 1)  # B S N C
        corr_fn = CorrBlock(fmaps, self.corr_levels, self.corr_radius)
        # The positional embedding depends only on the query location: sample it once.
        pos = grid_sincos_embedding(self.transformer_dim, hh, ww).to(device=fmaps.device, dtype=query.dtype)
        pos_q = sample_features(pos.expand(b, -1, -1, -1), query).reshape(b * n, 1, -1)
        ref_token = torch.cat(
            [self.query_ref_token[:, 0:1], self.query_ref_token[:, 1:2].expand(-1, s - 1, -1)], dim=1
        )
        coord_preds: list[torch.Tensor] = []
        for _ in range(iters):
            coords = coords.detach()
            corr = corr_fn.sample(track_feats, coords).permute(0, 2, 1, 3).reshape(b * n, s, -1)
            corr = self.corr_mlp(corr)
            flows = (coords - coords[:, 0:1]).permute(0, 2, 1, 3).reshape(b * n, s, 2)
            flow_emb = torch.cat(
                [flow_embedding(flows, self.flows_emb_dim), flows / self.max_scale, flows / self.max_scale],
                dim=-1,
            )
            feats_ = track_feats.permute(0, 2, 1, 3).reshape(b * n, s, lat)
            x = torch.cat([flow_emb, corr, feats_], dim=2) + pos_q
            x = x + ref_token.to(x.dtype)
            delta = self.updateformer(x.reshape(b, n, s, -1)).reshape(b * n * s, lat + 2)
            feats_flat = feats_.reshape(b * n * s, lat)
            feats_flat = self.ffeat_updater(self.ffeat_norm(delta[:, 2:])) + feats_flat
            track_feats = feats_flat.reshape(b, n, s, lat).permute(0, 2, 1, 3)
            coords = coords + delta[:, :2].reshape(b, n, s, 2).permute(0, 2, 1, 3)
            # Frame 0 is the query frame: its coordinates stay the queries.
            coords = torch.cat([query.unsqueeze(1), coords[:, 1:]], dim=1)
            coord_preds.append(coords * self.stride)
        flat = track_feats.reshape(b * s * n, lat)
        vis = torch.sigmoid(self.vis_predictor(flat).reshape(b, s, n))
        conf = torch.sigmoid(self.conf_predictor(flat).reshape(b, s, n)) if self.predict_conf else None
        return coord_preds, vis, conf
