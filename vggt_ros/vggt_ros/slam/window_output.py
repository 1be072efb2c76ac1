"""Per-frame outputs of an accepted window: masked depth, the window cloud, keyframe records.

Pure functions of one window's prediction and solved poses; the pipeline calls them in order
(`frame_depth` per new frame, `cloud_part` per new frame, `WindowCloudBuilder.update`). Frames:
poses in the pipeline's world (first keyframe's OPTICAL frame); outputs in the map frame
(T_map_cam = T_BODY_OPTICAL @ T_world_cam, docs/architecture.md#frames-and-units).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from vggt_ros.geometry.depth import unproject_pixels
from vggt_ros.slam.updates import WindowCloud
from vggt_ros.types import Frame, WindowPrediction

if TYPE_CHECKING:
    from vggt_ros.slam.stitching import AnchorLink


@dataclass
class WindowSolution:
    """An accepted window: poses per window index (T_world_cam, world units), window -> world scale,
    per-frame depth scales (override `scale` where present), and the alignment's quality."""

    poses: dict[int, np.ndarray]
    scale: float
    depth_scale: dict[int, float] = field(default_factory=dict)
    residual_rel: float = 0.0
    num_inliers: int = 0
    num_correspondences: int = 0
    note: str = "ok"  # WindowStats.reason of the accepted window ("recovered (<why>)", "new_segment (<why>)")
    weak_link: bool = False  # placed by the continuity guess: its first keyframe is only weakly linked
    pinned: frozenset[int] | None = None  # window indices whose pose PnP pinned to the map (None: unknown)
    anchor_links: dict[int, AnchorLink] = field(default_factory=dict)  # anchors measured again, by index

    def depth_scale_of(self, j: int) -> float:
        return float(self.depth_scale.get(j, self.scale))


FrameDepth = tuple[np.ndarray, np.ndarray]
"""frame_depth's (depth, raw confidence), each (H, W) float32."""


def frame_depth(pred: WindowPrediction, j: int, scale: float, conf_threshold: float) -> FrameDepth:
    """Frame j's depth in world units with invalid/low-confidence pixels NaN.

    Returns (depth (H,W) f32 NaN-masked, a new array; raw confidence (H,W) f32, a read-only view of
    the prediction's: whoever keeps it copies what it keeps, e.g. the keyframe its strided pixels).
    Each new full-size array costs ~0.6-1.2 ms per 640x480 frame in page faults alone (it is kept, so
    its memory is fresh): one per frame, not three.
    """
    conf = np.asarray(pred.depth_conf[j], dtype=np.float32).view()
    conf.flags.writeable = False
    depth = np.asarray(pred.depth[j], dtype=np.float32) * np.float32(scale)  # a new array
    # NaN > 0 is False: one comparison chain finds every invalid pixel; the mask is written with
    # copyto (where=), a third of boolean indexing's cost on a 640x480 map
    valid = (depth > 0) & (depth < np.inf) & (conf >= conf_threshold)
    np.copyto(depth, np.float32(np.nan), where=~valid)
    return depth, conf


@dataclass
class WindowCloudBuilder:
    """Accumulates the strided, valid depth pixels of a window's new frames as map-frame points."""

    stride: int
    points: list[np.ndarray] = field(default_factory=list)
    colors: list[np.ndarray] = field(default_factory=list)
    confidence: list[np.ndarray] = field(default_factory=list)

    def add(
        self, frame: Frame, depth: np.ndarray, conf: np.ndarray, K: np.ndarray, T_map_cam: np.ndarray
    ) -> None:
        """depth (H,W) NaN-masked map units; conf (H,W); K (3,3); T_map_cam (4,4)."""
        cs = max(1, int(self.stride))
        sub = depth[::cs, ::cs]
        ok = np.isfinite(sub)
        v, u = np.nonzero(ok)
        if not len(u):
            return
        uv = np.stack([u * cs, v * cs], 1).astype(np.float64)
        # boolean masks on the strided views (the row-major order of nonzero), colours channel by channel:
        # a (N, 3) fancy index or a strided 3-byte copy costs 4-9x more
        self.points.append(unproject_pixels(uv, sub[ok], K, T_map_cam).astype(np.float32))
        rgb = frame.rgb[::cs, ::cs]
        self.colors.append(np.stack([rgb[:, :, c][ok] for c in range(3)], axis=1))
        self.confidence.append(conf[::cs, ::cs][ok])

    def build(self, stamp_ns: int, window_id: int) -> WindowCloud | None:
        if not self.points:
            return None
        return WindowCloud(
            stamp_ns,
            window_id,
            np.concatenate(self.points),
            np.concatenate(self.colors),
            np.concatenate(self.confidence),
        )


def query_grid(n: int, size: tuple[int, int]) -> np.ndarray:
    """About n track queries (M,2) on a regular grid inside 5-95 % of an image of size (H, W)."""
    H, W = size
    k = max(2, int(np.ceil(np.sqrt(n * W / H))))
    m = max(2, int(np.ceil(n / k)))
    u, v = np.meshgrid(np.linspace(0.05 * W, 0.95 * (W - 1), k), np.linspace(0.05 * H, 0.95 * (H - 1), m))
    return np.stack([u.ravel(), v.ravel()], 1)


def check_prediction(
    pred: WindowPrediction, S: int, size: tuple[int, int], depth_for: list[int]
) -> str | None:
    """None when `pred` has the shapes a window of S frames of `size` needs, else a reason."""
    try:
        if np.shape(pred.T_cam_win) != (S, 4, 4) or not np.all(np.isfinite(pred.T_cam_win)):
            return "bad_prediction (poses)"
        if np.shape(pred.K) != (S, 3, 3) or not np.all(np.isfinite(pred.K)):
            return "bad_prediction (intrinsics)"
        for i in depth_for:
            if i not in pred.depth or np.shape(pred.depth[i]) != size or np.shape(pred.depth_conf[i]) != size:
                return "bad_prediction (depth)"
        if np.ndim(pred.tracks) != 3 or np.shape(pred.tracks)[0] != S or np.shape(pred.vis)[:1] != (S,):
            return "bad_prediction (tracks)"
    except Exception as exc:  # a malformed object from a foreign predictor
        return f"bad_prediction ({type(exc).__name__})"
    return None
