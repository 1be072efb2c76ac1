"""VGGTPredictor: the real network behind the `Predictor` protocol (vggt_ros.types).

Per window: frames -> preprocessing (crop/pad to 518 px, multiples of 14) -> VGGT with only
the heads asked (camera always; depth for `depth_for`; tracks when queries are given) -> outputs
mapped back to each camera's resolution with `PreprocessMap`:
- T_cam_win (S, 4, 4) float64: VGGT's extrinsics (camera-from-world, world = frame 0's camera,
  OpenCV optical axes, scale normalised per window; docs/architecture.md#reference-conventions) as 4x4.
- K (S, 3, 3) float64 at camera resolution: the frame's known K when given (and
  `use_known_intrinsics`), else VGGT's estimate mapped through the preprocessing affine map.
- depth / depth_conf (H, W) float32 at camera resolution; NaN where the crop removed the view.
- tracks (S, N, 2) float32 camera pixels; vis / conf (S, N) float32. Queries that the crop
  removed from the network's view get vis = conf = 0 and NaN tracks in frames 1..S-1.

Lifecycle: the constructor only records where the weights are; `load()` builds the model and
loads them (ROS configure/activate), `unload()` frees them and the CUDA cache (deactivate).
Precision: fp32 on CPU; bf16 autocast on CUDA capability >= 8, fp16 below (the reference's
policy; the camera/depth heads stay fp32 inside VGGT.infer).
Per-frame DINOv2 patch tokens and resized frames are kept in LRU caches keyed by frame stamp (and a
pixel CRC), so frames that reappear in the next window (anchors, overlap) skip the patch embedding
and the resize.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import numpy as np
import torch

from ..geometry.pose_encoding import pose_encoding_to_extri_intri
from ..types import Frame, WindowPrediction
from .descriptors import token_descriptors
from .preprocess import (
    PATCH,
    PreprocessMap,
    ResizedFrame,
    assemble_window,
    network_hw,
    resize_frame,
    to_unit_float,
)
from .vggt import VGGT, VGGTConfig, autocast_dtype, compile_aggregator_blocks
from .weights import LoadReport, ModelSource, load_weights

LOG = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16", "fp16"]


class PredictorNotLoadedError(RuntimeError):
    """predict() was called before load() (or after unload())."""


@dataclass(frozen=True)
class PredictorConfig:
    """Settings of VGGTPredictor.

    mode: preprocessing ("crop" keeps the full width; "pad" keeps every pixel).
    device: "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
    precision: "auto" = fp32 on CPU, bf16 on CUDA capability >= 8, fp16 below.
    token_cache_frames: LRU size of the per-frame patch-token cache (0 disables it).
    use_known_intrinsics: return a frame's own K (when it has one) instead of VGGT's estimate.
    depth_interpolation: resampling of depth/confidence to camera resolution.
    track_iters: tracker refinement iterations (the reference uses 4).
    image_size: network width (crop) / longer side (pad); 518 is VGGT's training resolution,
        smaller multiples of 14 only for tests and speed trials.
    compile_backend: "" (eager, default) or a torch.compile backend ("inductor", "cudagraphs",
        "aot_eager", ...) applied in place to the aggregator's 48 attention blocks at load() (opt-in;
        the parity test checks it against eager). The blocks are where the forward's time goes; the
        heads and the tracker's control flow stay eager.
    """

    mode: Literal["crop", "pad"] = "crop"
    device: str = "auto"
    precision: Precision = "auto"
    token_cache_frames: int = 32
    use_known_intrinsics: bool = True
    depth_interpolation: Literal["linear", "nearest"] = "linear"
    track_iters: int = 4
    image_size: int = 518
    compile_backend: str = ""


def select_device(device: str = "auto") -> torch.device:
    """"auto" -> cuda when available else cpu; otherwise torch.device(device)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    return dev


def select_dtype(device: torch.device, precision: Precision = "auto") -> torch.dtype | None:
    """Autocast dtype for the aggregator (None = plain fp32)."""
    if precision == "fp32" or device.type != "cuda":
        return None
    if precision == "auto":
        return autocast_dtype(device)
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


V = TypeVar("V")


class LruCache(Generic[V]):
    """Least-recently-used map with hit/miss counters (per-frame patch tokens, resized frames); safe to
    share between threads (the frame callback prepares frames while the worker predicts)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: OrderedDict[tuple, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> V | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def __contains__(self, key: tuple) -> bool:
        with self._lock:
            return key in self._data

    def put(self, key: tuple, value: V) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


def frame_key(frame: Frame) -> tuple:
    """Stamp, frame id, image shape and a CRC of a pixel subsample: a reused stamp with other pixels
    (a bag replayed twice, a keyframe's strided or JPEG copy) is never served a stale cache entry."""
    rgb = np.asarray(frame.rgb)
    crc = zlib.crc32(np.ascontiguousarray(rgb[::7, ::7]).tobytes())
    return (int(frame.stamp_ns), frame.frame_id, rgb.shape, crc)


class FramePreprocessor:
    """preprocess_frames with a per-frame LRU of the resized pixels: anchors reappear in every window,
    their resize (the bulk of the CPU preprocessing) is done once. Same output as preprocess_frames."""

    def __init__(self, mode: Literal["crop", "pad"], size: int, capacity: int) -> None:
        self.mode = mode
        self.size = size
        self.cache: LruCache[ResizedFrame] = LruCache(capacity)

    def __call__(
        self, frames: Sequence[Frame], min_hw: tuple[int, int] = (0, 0)
    ) -> tuple[torch.Tensor, list[PreprocessMap], list[tuple]]:
        """frames -> (images [S, 3, Hn, Wn] uint8 (to_unit_float makes the network input), maps,
        frame_key of each frame)."""
        keys = [frame_key(f) for f in frames]
        resized = []
        for f, k in zip(frames, keys):
            r = self.cache.get(k)
            if r is None:
                r = resize_frame(f.rgb, self.mode, self.size)
                self.cache.put(k, r)
            resized.append(r)
        images, maps = assemble_window(resized, self.mode, min_hw)
        return images, maps, keys

    def prepare(self, frame: Frame) -> bool:
        """Resize one frame into the cache ahead of its window (another thread than predict's); True
        when it was resized now. Errors are left to the window's own preprocessing."""
        key = frame_key(frame)
        if key in self.cache:
            return False
        self.cache.put(key, resize_frame(frame.rgb, self.mode, self.size))
        return True


def track_min_side(model: Any) -> int:
    """Smallest network height/width (px, multiple of 14) the model's track head accepts; 0 without one.

    The tracker correlates at `corr_levels` scales of a feature map at 1/stride of the input, each
    level avg-pooled by 2 (model/tracker.py CorrBlock): the coarsest level needs a feature side of
    at least 2**(corr_levels - 1), i.e. stride * 2**(corr_levels - 1) input pixels (128 for VGGT-1B:
    stride 2, 7 levels -> 140 px after rounding up to the 14-px patch grid).
    """
    tracker = getattr(getattr(model, "track_head", None), "tracker", None)
    if tracker is None:
        return 0
    px = int(tracker.stride) * 2 ** (int(tracker.corr_levels) - 1)
    return -(-px // PATCH) * PATCH


def extrinsics_to_T(extrinsics: np.ndarray) -> np.ndarray:
    """(S, 3, 4) [R | t] camera-from-world -> (S, 4, 4) float64."""
    e = np.asarray(extrinsics, dtype=np.float64)
    T = np.zeros(e.shape[:-2] + (4, 4))
    T[..., :3, :] = e
    T[..., 3, 3] = 1.0
    return T


class VGGTPredictor:
    """The VGGT network as a `Predictor` (see module docstring for units and frames)."""

    name = "vggt"

    def __init__(
        self,
        source: ModelSource | str | None = None,
        config: PredictorConfig | None = None,
        model_config: VGGTConfig | None = None,
    ) -> None:
        self.source = ModelSource.parse(source) if isinstance(source, str) else source
        self.config = config or PredictorConfig()
        self.model_config = model_config
        self.device = select_device(self.config.device)
        self.dtype = select_dtype(self.device, self.config.precision)
        self.cache: LruCache[torch.Tensor] = LruCache(self.config.token_cache_frames)
        self.preprocessor = FramePreprocessor(self.config.mode, self.config.image_size,
                                              self.config.token_cache_frames)
        self.load_report: LoadReport | None = None
        self._model: VGGT | None = None
        self._owned_model: VGGT | None = None  # from_model(): kept across unload()
        self._lock = threading.RLock()
        self._sizes_seen: set[tuple[int, int]] = set()  # camera sizes already checked (one message each)

    @classmethod
    def from_model(cls, model: VGGT, config: PredictorConfig | None = None) -> VGGTPredictor:
        """Wrap an already built (and filled) model, e.g. tiny test configurations."""
        pred = cls(None, config)
        pred._owned_model = model
        return pred

    # ------------------------------------------------------------------ lifecycle
    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> LoadReport | None:
        """Build the model, load the weights and move to the device (idempotent)."""
        with self._lock:
            if self._model is not None:
                return self.load_report
            if self._owned_model is not None:
                self._model = self._compiled(self._owned_model.to(self.device).eval())
                return None
            if self.source is None:
                raise PredictorNotLoadedError("no model source: pass a hub id or a file path")
            model = VGGT.empty(self.model_config, device="meta")
            report = load_weights(model, self.source, assign=True)
            self._model = self._compiled(model.to(self.device).eval())
            self.load_report = report
            LOG.info("VGGT loaded from %s in %.1f s on %s (%s)", report.path, report.seconds, self.device,
                     self.dtype or torch.float32)
            return report

    def _compiled(self, model: VGGT) -> VGGT:
        """The aggregator's frame and global blocks compiled in place (Module.compile keeps the
        state_dict keys), when `compile_backend` is set; the model otherwise untouched."""
        backend = self.config.compile_backend
        if not backend:
            return model
        compile_aggregator_blocks(model, backend)
        LOG.info("aggregator blocks compiled with torch.compile(backend=%r); the first windows of each "
                 "size pay the compile time", backend)
        return model

    def unload(self) -> None:
        """Drop the weights (kept on CPU for from_model), the token cache and the CUDA cache."""
        with self._lock:
            self.cache.clear()
            self.preprocessor.cache.clear()
            if self._owned_model is not None and self._model is not None:
                self._owned_model = self._model.to("cpu")
            self._model = None
            gc.collect()
            if self.device.type == "cuda" and torch.cuda.is_available():
                torch.cuda.empty_cache()

    def prepare(self, frame: Frame) -> None:
        """Preprocess a frame ahead of its window (the runtime calls it from the frame callback, beside
        the worker's forward): its resized pixels wait in the preprocessor's cache. An error here is the
        caller's to swallow (NodeCore._prepare): the window preprocesses the frame again and reports it."""
        self.preprocessor.prepare(frame)

    def release_memory(self) -> None:
        """After a CUDA out-of-memory error: forget cached patch tokens, collect, return the allocator's
        cached blocks (runtime.memory.OomGuardPredictor calls this before a smaller retry)."""
        with self._lock:
            self.cache.clear()
            self.preprocessor.cache.clear()
            gc.collect()
            if self.device.type == "cuda" and torch.cuda.is_available():
                torch.cuda.empty_cache()

    def clear_cache(self) -> None:
        """Forget cached patch tokens (e.g. on a pipeline reset)."""
        with self._lock:
            self.cache.clear()
            self.preprocessor.cache.clear()

    # ------------------------------------------------------------------ inference
    def predict(
        self,
        frames: Sequence[Frame],
        query_points: np.ndarray,
        depth_for: Sequence[int],
    ) -> WindowPrediction:
        """See the Predictor protocol: frames[0] is the gauge; queries are camera pixels on frames[0]."""
        with self._lock:
            if self._model is None:
                raise PredictorNotLoadedError("VGGTPredictor.predict() before load()")
            return self._predict(self._model, frames, query_points, depth_for)

    def _predict(
        self, model: VGGT, frames: Sequence[Frame], query_points: np.ndarray, depth_for: Sequence[int]
    ) -> WindowPrediction:
        t0 = time.perf_counter()
        s = len(frames)
        if s == 0:
            raise ValueError("predict() needs at least one frame")
        q = np.asarray(query_points, dtype=np.float64)
        q = q.reshape(-1, 2) if q.size else np.zeros((0, 2))
        if not np.all(np.isfinite(q)):
            raise ValueError("query_points must be finite")
        depth_idx = sorted({int(i) for i in depth_for})
        if any(not 0 <= i < s for i in depth_idx):
            raise ValueError(f"depth_for {list(depth_for)} out of range for {s} frames")

        min_hw = self.check_size(model, frames[0].rgb.shape[:2])
        images, maps, fkeys = self.preprocessor(frames, min_hw)
        keys = [k + (m.net_hw, m.offset_xy) for k, m in zip(fkeys, maps)]
        cached = [self.cache.get(k) for k in keys]
        n_cached = sum(c is not None for c in cached)
        q_net = maps[0].orig_to_net(q)
        x0, y0, x1, y1 = maps[0].valid_net_box()
        in_view = (q_net[:, 0] >= x0 - 0.5) & (q_net[:, 0] <= x1 + 0.5)
        in_view &= (q_net[:, 1] >= y0 - 0.5) & (q_net[:, 1] <= y1 + 0.5)
        t1 = time.perf_counter()

        heads = {"camera"}
        if depth_idx:
            heads.add("depth")
        if len(q):
            heads.add("track")
        dev = self.device
        amp = (
            torch.autocast(dev.type, dtype=self.dtype) if self.dtype is not None else contextlib.nullcontext()
        )
        with torch.inference_mode(), amp:
            out, patch_tokens = model.infer(
                to_unit_float(images, dev)[None],
                query_points=torch.from_numpy(q_net.astype(np.float32)).to(dev)[None] if len(q) else None,
                depth_frames=depth_idx or None,
                heads=heads,
                cached_patch_tokens=cached if n_cached else None,
                precision=None,
                track_iters=self.config.track_iters,
            )
        for i, k in enumerate(keys):
            if cached[i] is None:
                self.cache.put(k, patch_tokens[0, i].detach())
        descriptors = token_descriptors(patch_tokens[0])  # (S, C) place descriptors, pooled on the device
        dense = self._dense_to_orig(out, maps, depth_idx)  # resampled where the network ran
        out_np = {k: v.detach().float().cpu().numpy() for k, v in out.items()
                  if isinstance(v, torch.Tensor) and k not in ("depth", "depth_conf")}
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t2 = time.perf_counter()

        pred = self._postprocess(frames, maps, out_np, q, in_view, dense)
        pred.descriptors = {i: descriptors[i] for i in range(s)}
        t3 = time.perf_counter()
        pred.timings.update(
            preprocess_s=t1 - t0, network_s=t2 - t1, postprocess_s=t3 - t2, total_s=t3 - t0,
            cached_frames=float(n_cached),
        )
        return pred

    def check_size(self, model: Any, size_hw: tuple[int, int]) -> tuple[int, int]:
        """The smallest network input (Hn, Wn) for this model; says once per camera size when an image
        of `size_hw` is padded up to it (the first frame of a new size)."""
        side = track_min_side(model)
        h, w = int(size_hw[0]), int(size_hw[1])
        if (h, w) not in self._sizes_seen:
            self._sizes_seen.add((h, w))
            plain = network_hw(h, w, self.config.mode, self.config.image_size)
            padded = network_hw(h, w, self.config.mode, self.config.image_size, (side, side))
            if padded != plain:
                LOG.warning("camera %dx%d -> network %dx%d is below the track head's minimum side of %d px; "
                            "padding to %dx%d (white, as the reference's 'pad' preprocessing; outputs are "
                            "mapped back to camera pixels)", w, h, plain[1], plain[0], side, padded[1],
                            padded[0])
        return side, side

    def _dense_to_orig(
        self, out: dict[str, Any], maps: list[PreprocessMap], depth_idx: list[int]
    ) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
        """Depth and confidence of the frames in depth_idx at camera resolution (H0, W0) float32: frame
        index -> map, resampled on the network's device (one batched call when the frames share a
        size), then copied to the host."""
        interp = self.config.depth_interpolation
        depth: dict[int, np.ndarray] = {}
        conf: dict[int, np.ndarray] = {}
        groups: dict[PreprocessMap, list[int]] = {}
        for j, i in enumerate(depth_idx):
            groups.setdefault(maps[i], []).append(j)
        for m, js in groups.items():
            sel = torch.tensor(js, device=out["depth"].device)
            d = m.maps_to_orig(out["depth"][0, sel, ..., 0], interp).cpu().numpy()
            c = m.maps_to_orig(out["depth_conf"][0, sel], interp).cpu().numpy()
            for k, j in enumerate(js):
                depth[depth_idx[j]], conf[depth_idx[j]] = d[k], c[k]
        return depth, conf

    def _postprocess(
        self,
        frames: Sequence[Frame],
        maps: list[PreprocessMap],
        out: dict[str, np.ndarray],
        q: np.ndarray,
        in_view: np.ndarray,
        dense: tuple[dict[int, np.ndarray], dict[int, np.ndarray]],
    ) -> WindowPrediction:
        s, n = len(frames), len(q)
        extr, K_net = pose_encoding_to_extri_intri(out["pose_enc"][0].astype(np.float64), maps[0].net_hw)
        T = extrinsics_to_T(extr)
        K = np.stack([self._intrinsics(f, m, K_net[i]) for i, (f, m) in enumerate(zip(frames, maps))])
        depth, conf_maps = dense
        tracks = np.zeros((s, n, 2), np.float32)
        vis = np.zeros((s, n), np.float32)
        tconf = np.zeros((s, n), np.float32)
        if n:
            tr = out["track"][0]
            for i in range(s):
                tracks[i] = maps[i].net_to_orig(tr[i]).astype(np.float32)
            vis[:] = out["vis"][0]
            tconf[:] = out["conf"][0]
            tracks[0] = q.astype(np.float32)  # the contract: tracks[0] == queries, exactly
            tracks[1:, ~in_view] = np.nan
            vis[:, ~in_view] = 0.0
            tconf[:, ~in_view] = 0.0
        return WindowPrediction(T_cam_win=T, K=K, depth=depth, depth_conf=conf_maps, tracks=tracks, vis=vis,
                                conf=tconf)

    def _intrinsics(self, frame: Frame, m: PreprocessMap, K_net: np.ndarray) -> np.ndarray:
        if self.config.use_known_intrinsics and frame.K is not None:
            return np.asarray(frame.K, dtype=np.float64)
        return m.K_net_to_orig(K_net)

    def describe(self) -> dict[str, Any]:
        """Device, precision and source, for diagnostics."""
        return {
            "device": str(self.device),
            "dtype": str(self.dtype or torch.float32),
            "source": self.source.describe() if self.source else "in-memory model",
            "loaded": self.loaded,
            "token_cache": f"{len(self.cache)}/{self.cache.capacity} "
            f"(hits {self.cache.hits}, misses {self.cache.misses})",
        }
