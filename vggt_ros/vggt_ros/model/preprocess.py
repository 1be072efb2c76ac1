"""Frames -> VGGT network input, and the exact mapping back to camera pixels.

Reproduces the reference's `load_and_preprocess_images(paths, mode)` on in-memory frames
(docs/architecture.md#reference-conventions): RGBA is composited on white, then
- ``crop``: width -> 518, height -> round(H * 518 / W / 14) * 14, bicubic resize, centre-crop the
  height to 518 when larger;
- ``pad``: the longer side -> 518, the other rounded to a multiple of 14, white (1.0) padding
  to 518 x 518 (top/left get floor(pad / 2)).
Frames of different sizes are white-padded to the largest (as the reference does), and a network
input below `min_hw` (the track head's smallest size, see model.predictor.track_min_side: a 400x100
camera gives 518x126 in crop mode, too small for the 7-level correlation pyramid) is white-padded
up to it the same way; `PreprocessMap` maps tracks, depth and K back through the padding.

The resize: the reference uses PIL's BICUBIC (a = -0.5, antialiased when shrinking, 8-bit fixed
point); this uses the same filter as torch implements it (`interpolate(mode="bicubic", antialias=True)`
on uint8), 3.7x cheaper on a 640x480 frame (1.1 vs 4.1 ms on one core, 6.6x at 1280x720): the issue-14
CPU budget. The two differ by rounding only: at most 1/255 on 0.2-0.4 % of the pixels when shrinking
(2/255 on < 0.6 % when enlarging; test_model_preprocess pins the bound on the reference's own images).

Pixel convention: index coordinates, the centre of pixel i is at i (VGGT's unprojection grid
u = 0..W-1). The resize maps pixel AREAS ([0, W0] -> [0, Wr], PIL and torch alike), so pixel u0 lands at
    u_net = (u0 + 0.5) * sx - 0.5 + ox,   sx = Wr / W0,
with (ox, oy) the network offset (+pad, -crop). Intrinsics follow the same affine map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image

TARGET_SIZE = 518
PATCH = 14

Mode = Literal["crop", "pad"]


class PreprocessError(ValueError):
    """A frame that cannot be preprocessed (wrong shape/dtype, empty window, unknown mode)."""


@dataclass(frozen=True)
class PreprocessMap:
    """Geometry of one frame's preprocessing: camera pixels <-> network pixels.

    orig_hw: camera image (H0, W0). resized_hw: after the resize (Hr, Wr).
    net_hw: the network input (Hn, Wn) shared by the window.
    offset_xy: network pixel = resized pixel + offset (positive: padding, negative: crop), pixels.
    """

    mode: str
    orig_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    net_hw: tuple[int, int]
    offset_xy: tuple[int, int]

    @property
    def scale_xy(self) -> tuple[float, float]:
        """(sx, sy) = resized size / camera size (may differ slightly: rounding to 14)."""
        return self.resized_hw[1] / self.orig_hw[1], self.resized_hw[0] / self.orig_hw[0]

    def affine(self) -> np.ndarray:
        """(3, 3) float64 A with [u_net, v_net, 1]^T = A [u_cam, v_cam, 1]^T."""
        sx, sy = self.scale_xy
        ox, oy = self.offset_xy
        return np.array(
            [[sx, 0.0, 0.5 * sx - 0.5 + ox], [0.0, sy, 0.5 * sy - 0.5 + oy], [0.0, 0.0, 1.0]]
        )

    def orig_to_net(self, uv: np.ndarray) -> np.ndarray:
        """Camera pixels (..., 2) (x, y) -> network pixels (..., 2), float64."""
        a = self.affine()
        uv = np.asarray(uv, dtype=np.float64)
        return uv * np.array([a[0, 0], a[1, 1]]) + np.array([a[0, 2], a[1, 2]])

    def net_to_orig(self, uv: np.ndarray) -> np.ndarray:
        """Network pixels (..., 2) (x, y) -> camera pixels (..., 2), float64."""
        a = self.affine()
        uv = np.asarray(uv, dtype=np.float64)
        return (uv - np.array([a[0, 2], a[1, 2]])) / np.array([a[0, 0], a[1, 1]])

    def K_net_to_orig(self, K_net: np.ndarray) -> np.ndarray:
        """Intrinsics (..., 3, 3) at network resolution -> camera resolution (float64)."""
        return np.linalg.inv(self.affine()) @ np.asarray(K_net, dtype=np.float64)

    def K_orig_to_net(self, K_orig: np.ndarray) -> np.ndarray:
        """Intrinsics (..., 3, 3) at camera resolution -> network resolution (float64)."""
        return self.affine() @ np.asarray(K_orig, dtype=np.float64)

    def valid_net_box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) inclusive network pixels that hold image content (not padding)."""
        hr, wr = self.resized_hw
        hn, wn = self.net_hw
        ox, oy = self.offset_xy
        return max(ox, 0), max(oy, 0), min(ox + wr, wn) - 1, min(oy + hr, hn) - 1

    def map_to_orig(
        self, image_net: np.ndarray, interpolation: Literal["linear", "nearest"] = "linear"
    ) -> np.ndarray:
        """A network-resolution map (Hn, Wn) (depth, confidence) -> camera resolution (H0, W0) float32.

        Bilinear (or nearest) in network pixels; camera pixels whose centre falls outside the
        network's image content (cropped away) are NaN. Values are not rescaled: depth along
        the optical axis is unchanged by resizing. (maps_to_orig on a tensor, e.g. on the GPU.)
        """
        img = np.asarray(image_net, dtype=np.float32)
        if img.shape != tuple(self.net_hw):
            raise PreprocessError(f"map has shape {img.shape}, expected network size {self.net_hw}")
        return self.maps_to_orig(torch.from_numpy(img)[None], interpolation)[0].numpy()

    def maps_to_orig(
        self, maps_net: torch.Tensor, interpolation: Literal["linear", "nearest"] = "linear"
    ) -> torch.Tensor:
        """map_to_orig for a stack (S, Hn, Wn) on any device -> (S, H0, W0) float32 on that device (the
        predictor resamples the window's depth and confidence where the network ran)."""
        if tuple(maps_net.shape[1:]) != tuple(self.net_hw):
            raise PreprocessError(f"maps have shape {tuple(maps_net.shape)}, expected (S, {self.net_hw})")
        x = maps_net.float()
        h0, w0 = self.orig_hw
        x0, y0, x1, y1 = self.valid_net_box()
        a = self.affine()
        u = np.arange(w0) * a[0, 0] + a[0, 2]
        v = np.arange(h0) * a[1, 1] + a[1, 2]
        # A camera pixel is valid when its centre lies within the content's pixel area.
        u_ok = (u >= x0 - 0.5) & (u <= x1 + 0.5)
        v_ok = (v >= y0 - 0.5) & (v <= y1 + 0.5)
        u = np.clip(u, x0, x1)
        v = np.clip(v, y0, y1)

        def idx(i: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(i.astype(np.int64)).to(x.device)

        if interpolation == "nearest":
            out = x[:, idx(np.floor(v + 0.5))][:, :, idx(np.floor(u + 0.5))]
        elif interpolation == "linear":
            ui = np.minimum(np.floor(u).astype(np.int64), max(x1 - 1, x0))
            vi = np.minimum(np.floor(v).astype(np.int64), max(y1 - 1, y0))
            wu = torch.from_numpy((u - ui).astype(np.float32)).to(x.device)
            wv = torch.from_numpy((v - vi).astype(np.float32)).to(x.device)[:, None]
            rows = x[:, idx(vi)] * (1.0 - wv) + x[:, idx(np.minimum(vi + 1, y1))] * wv  # (S, H0, Wn)
            out = rows[:, :, idx(ui)] * (1.0 - wu) + rows[:, :, idx(np.minimum(ui + 1, x1))] * wu
        else:
            raise PreprocessError(f"unknown interpolation {interpolation!r}")
        out[:, idx(np.flatnonzero(~v_ok)), :] = float("nan")
        out[:, :, idx(np.flatnonzero(~u_ok))] = float("nan")
        return out


def _rgb_array(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3|4) or (H, W) uint8 -> (H, W, 3) uint8 RGB; RGBA is composited on white (PIL, as the
    reference's `Image.alpha_composite`), grey repeated to three channels."""
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8:
        raise PreprocessError(f"frame dtype must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise PreprocessError(f"frame must be HxWx3 (RGB) or HxWx4 (RGBA), got shape {arr.shape}")
    if arr.shape[2] == 4:
        rgba = Image.fromarray(np.ascontiguousarray(arr), mode="RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        arr = np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return arr


def resized_size(h: int, w: int, mode: Mode, size: int = TARGET_SIZE) -> tuple[int, int]:
    """(Hr, Wr) of the resize step for a camera image (h, w) (Python round, as the reference)."""
    if mode == "crop" or w >= h:
        return round(h * (size / w) / PATCH) * PATCH, size
    return size, round(w * (size / h) / PATCH) * PATCH


def network_hw(h: int, w: int, mode: Mode = "crop", size: int = TARGET_SIZE,
               min_hw: tuple[int, int] = (0, 0)) -> tuple[int, int]:
    """(Hn, Wn) the network sees for one camera image (h, w): resized, cropped, padded to `min_hw`."""
    hr, wr = resized_size(h, w, mode, size)
    hn, wn = (size, size) if mode == "pad" else (min(hr, size), wr)
    return max(hn, int(min_hw[0])), max(wn, int(min_hw[1]))


@dataclass(frozen=True)
class ResizedFrame:
    """One frame after the resize and the crop/pad of its mode, before the window's common canvas.

    pixels: uint8 tensor [3, h, w]; orig_hw / resized_hw as in PreprocessMap; offset_xy: the frame's
    own offset (crop negative, pad positive), before centring on the window canvas.
    """

    pixels: torch.Tensor
    orig_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    offset_xy: tuple[int, int]


def _check_mode_size(mode: str, size: int) -> None:
    if mode not in ("crop", "pad"):
        raise PreprocessError(f"mode must be 'crop' or 'pad', got {mode!r}")
    if size < PATCH or size % PATCH:
        raise PreprocessError(f"size must be a positive multiple of {PATCH}, got {size}")


def resize_frame(rgb: np.ndarray, mode: Mode = "crop", size: int = TARGET_SIZE) -> ResizedFrame:
    """One RGB(A) uint8 frame -> its resized, cropped or padded uint8 pixels (the per-frame work of
    preprocess_frames; a predictor may cache it per frame, e.g. for anchors seen in many windows)."""
    _check_mode_size(mode, size)
    arr = _rgb_array(rgb)
    h0, w0 = arr.shape[:2]
    hr, wr = resized_size(h0, w0, mode, size)
    if hr < PATCH or wr < PATCH:
        raise PreprocessError(f"frame {h0}x{w0} is too thin to resize to multiples of {PATCH}")
    x = torch.from_numpy(arr if arr.flags.writeable else arr.copy()).permute(2, 0, 1)[None]  # a view
    if (hr, wr) != (h0, w0):
        x = torch.nn.functional.interpolate(x, size=(hr, wr), mode="bicubic", antialias=True)
    # numpy, not torch, for the copy: torch would run it on its intra-op thread pool, which stalls when
    # the other cores are busy (the node's own threads): 16 frames 6 ms -> 100 ms under load
    chw = np.ascontiguousarray(x[0].numpy())  # (3, hr, wr) uint8
    ox = oy = 0
    if mode == "crop" and hr > size:
        start = (hr - size) // 2
        chw = chw[:, start : start + size, :]
        oy = -start
    if mode == "pad":
        top, left = (size - hr) // 2, (size - wr) // 2
        padded = np.full((3, size, size), 255, np.uint8)  # white
        padded[:, top : top + hr, left : left + wr] = chw
        chw, ox, oy = padded, left, top
    return ResizedFrame(torch.from_numpy(chw), (h0, w0), (hr, wr), (ox, oy))  # uint8; [0, 1] per window


def assemble_window(
    frames: Sequence[ResizedFrame], mode: Mode = "crop", min_hw: tuple[int, int] = (0, 0)
) -> tuple[torch.Tensor, list[PreprocessMap]]:
    """Resized frames -> (images [S, 3, Hn, Wn] uint8, maps per frame): each frame centred on one white
    canvas of the largest size (at least `min_hw`, multiples of 14). `to_unit_float` makes the network
    input of it (on the network's device: a quarter of the bytes cross to a GPU, no float pass on the CPU)."""
    if len(frames) == 0:
        raise PreprocessError("at least one frame is required")
    if min_hw[0] % PATCH or min_hw[1] % PATCH:
        raise PreprocessError(f"min_hw must be multiples of {PATCH}, got {min_hw}")
    hn = max(max(f.pixels.shape[1] for f in frames), int(min_hw[0]))
    wn = max(max(f.pixels.shape[2] for f in frames), int(min_hw[1]))
    # uint8 frames into one white canvas, then one conversion to [0, 1] (x / 255, as per frame before:
    # the same values bit for bit, without a strided float pass per frame).
    canvas = np.full((len(frames), 3, hn, wn), 255, np.uint8)  # numpy: see resize_frame
    maps = []
    for i, f in enumerate(frames):
        h, w = f.pixels.shape[1:]
        top, left = (hn - h) // 2, (wn - w) // 2
        canvas[i, :, top : top + h, left : left + w] = f.pixels.numpy()
        ox, oy = f.offset_xy
        maps.append(PreprocessMap(mode, f.orig_hw, f.resized_hw, (hn, wn), (ox + left, oy + top)))
    return torch.from_numpy(canvas), maps


def to_unit_float(images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 images (any shape) -> float32 in [0, 1] (x / 255, bit for bit the same on any device) on
    `device`; to a GPU the uint8 tensor goes from pinned memory, asynchronously."""
    dev = torch.device(device)
    if dev.type == "cuda":
        images = images.pin_memory().to(dev, non_blocking=True)
    return images.to(dev).float().div_(255.0)


def preprocess_frames(
    frames_rgb: Sequence[np.ndarray], mode: Mode = "crop", size: int = TARGET_SIZE,
    min_hw: tuple[int, int] = (0, 0),
) -> tuple[torch.Tensor, list[PreprocessMap]]:
    """RGB(A) uint8 frames of any size -> (images [S, 3, Hn, Wn] float32 in [0, 1], maps per frame).

    size: the reference's 518 px (VGGT's training resolution); other multiples of 14 only for
    tests and speed trials. min_hw: smallest (Hn, Wn), multiples of 14; smaller inputs are
    white-padded (centred) up to it.
    """
    _check_mode_size(mode, size)  # also for an empty list; assemble_window refuses that one
    images, maps = assemble_window([resize_frame(rgb, mode, size) for rgb in frames_rgb], mode, min_hw)
    return to_unit_float(images), maps
