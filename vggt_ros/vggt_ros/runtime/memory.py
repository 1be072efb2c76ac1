"""GPU memory safety (ROS-free): a CUDA out-of-memory never kills the node, and the window fits the card.

`OomGuardPredictor` wraps any `types.Predictor`. When a window's forward raises CUDA OOM
(`torch.cuda.OutOfMemoryError`, or the older RuntimeError "CUDA out of memory"), it frees the
allocator's cache and runs the same window as smaller forwards: every forward holds the gauge
(frame 0) plus a contiguous run of the other frames (anchors first, then new frames), at most
`max_frames` in all, halving `max_frames` on each further OOM down to 2 (gauge + one frame). The
forwards share frame 0's camera as their window frame, so poses only differ in scale; each chunk's
scale is brought to the first chunk's by the median ratio of frame 0's depth (same image, every
valid pixel), then poses' translations and depths are rescaled and the outputs stitched into one
`WindowPrediction` of the full window (no frame lost: the frame accounting stays exact). The limit
that worked is kept for later windows. Counted: `oom_retries` (OOMs caught), `forward_frames`
(current frames per forward, 0 = whole window), `split_windows`; the runtime shows them on
/diagnostics. An OOM at 2 frames per forward is raised: the pipeline rejects that window
(`predictor_error`, its frames counted drops) and the node goes on.

`largest_window` is the configure-time choice: the most new frames per window whose estimated peak
memory (`MemoryModel`) fits the free GPU memory, pure and tested with made-up numbers;
`fit_window_to_gpu` applies it to the parameters when the predictor runs on CUDA.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vggt_ros.types import Frame, Predictor, WindowPrediction

log = logging.getLogger("vggt_ros.runtime")

GIB = 1024**3


def is_oom(exc: BaseException) -> bool:
    """True for torch.cuda.OutOfMemoryError and the RuntimeError 'CUDA out of memory' of older torch."""
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def free_cuda_cache() -> None:
    """Collect garbage and return cached CUDA blocks to the driver (no-op without CUDA)."""
    gc.collect()
    try:
        import torch
    except ImportError:  # a predictor without torch
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def chunk_indices(n: int, max_frames: int) -> list[list[int]]:
    """Frame indices of each forward: [0] + a contiguous run of 1..n-1, at most `max_frames` in all."""
    if n <= max_frames:
        return [list(range(n))]
    step = max(1, max_frames - 1)
    return [[0, *range(i, min(i + step, n))] for i in range(1, n, step)]


def depth_scale(ref: np.ndarray, other: np.ndarray) -> float:
    """Median of ref / other over pixels valid in both (finite, > 0): other's units -> ref's units."""
    ok = np.isfinite(ref) & np.isfinite(other) & (ref > 0) & (other > 0)
    if not np.any(ok):
        raise ValueError("no valid depth of frame 0 in both chunks: cannot bring them to one scale")
    return float(np.median(ref[ok] / other[ok]))


def merge_chunks(n: int, chunks: Sequence[tuple[list[int], WindowPrediction]],
                 depth_for: Sequence[int]) -> WindowPrediction:
    """One WindowPrediction of n frames from chunk predictions (each with frame 0 first, its depth asked)."""
    idx0, p0 = chunks[0]
    n_q = p0.tracks.shape[1]
    T = np.zeros((n, 4, 4))
    K = np.zeros((n, 3, 3))
    tracks = np.zeros((n, n_q, 2), np.float32)
    vis = np.zeros((n, n_q), np.float32)
    conf = np.zeros((n, n_q), np.float32)
    depth: dict[int, np.ndarray] = {}
    depth_conf: dict[int, np.ndarray] = {}
    desc: dict[int, np.ndarray] = {}
    timings: dict[str, float] = {}
    wanted = set(int(i) for i in depth_for)
    for c, (idx, p) in enumerate(chunks):
        s = 1.0 if c == 0 else depth_scale(p0.depth[0], p.depth[0])
        for j, i in enumerate(idx):
            if c > 0 and i == 0:
                continue  # the gauge comes from the first chunk
            T[i] = p.T_cam_win[j]
            T[i, :3, 3] *= s
            K[i] = p.K[j]
            tracks[i], vis[i], conf[i] = p.tracks[j], p.vis[j], p.conf[j]
            if i in wanted and j in p.depth:
                depth[i] = (p.depth[j] * np.float32(s)).astype(np.float32)
                depth_conf[i] = p.depth_conf[j]
            if j in p.descriptors:
                desc[i] = p.descriptors[j]
        for k, v in p.timings.items():
            timings[k] = timings.get(k, 0.0) + float(v)
    timings["forwards"] = float(len(chunks))
    return WindowPrediction(T, K, depth, depth_conf, tracks, vis, conf, timings, desc)


class OomGuardPredictor:
    """A Predictor that survives CUDA OOM by splitting windows (see the module docstring)."""

    def __init__(self, inner: Predictor, free: Callable[[], None] | None = None) -> None:
        self.inner = inner
        release = getattr(inner, "release_memory", None)  # VGGTPredictor: token cache + CUDA cache
        self.free = free or (release if callable(release) else free_cuda_cache)
        self.name = str(getattr(inner, "name", "predictor"))
        self.max_frames = 0  # frames per forward that last worked after an OOM; 0 = whole window
        self.oom_retries = 0
        self.split_windows = 0

    def __getattr__(self, name: str) -> Any:  # load/unload/describe/device of the wrapped predictor
        return getattr(self.inner, name)

    def stats(self) -> dict[str, int]:
        """What /diagnostics shows: OOMs caught and the current frames per forward (0 = whole window)."""
        return {"oom_retries": self.oom_retries, "forward_frames": self.max_frames}

    def predict(self, frames: Sequence[Frame], query_points: np.ndarray,
                depth_for: Sequence[int]) -> WindowPrediction:
        n = len(frames)
        limit = self.max_frames if 0 < self.max_frames < n else n
        while True:
            try:
                return self._predict_in_chunks(frames, query_points, depth_for, limit)
            except Exception as exc:
                if not is_oom(exc) or limit <= 2:
                    raise
                self.oom_retries += 1
                self.free()
                limit = max(2, min(limit, n) // 2)
                self.max_frames = limit
                log.warning("CUDA out of memory on a window of %d frames; freed the cache, retrying with at "
                            "most %d frames per forward (%d OOMs so far)", n, limit, self.oom_retries)

    def _predict_in_chunks(self, frames: Sequence[Frame], query_points: np.ndarray,
                           depth_for: Sequence[int], limit: int) -> WindowPrediction:
        idx_list = chunk_indices(len(frames), limit)
        if len(idx_list) == 1:
            return self.inner.predict(frames, query_points, depth_for)
        self.split_windows += 1
        wanted = set(int(i) for i in depth_for) | {0}
        chunks = []
        for idx in idx_list:
            sub_depth = [j for j, i in enumerate(idx) if i in wanted]
            chunks.append((idx, self.inner.predict([frames[i] for i in idx], query_points, sub_depth)))
        return merge_chunks(len(frames), chunks, depth_for)


# ----------------------------------------------------------------------------- configure-time choice
@dataclass(frozen=True)
class MemoryModel:
    """Estimated peak GPU memory of one window beyond the loaded weights: fixed + per_frame x frames.

    Defaults from VGGT's published H100 table (aggregator, bf16: 1.88 GB at 1 frame, 21.15 GB at 100,
    i.e. ~0.195 GB per frame at 518x392), doubled per frame for the fp32 depth and track heads on every
    frame, plus 1 GiB for the allocator and the heads' fixed buffers. bench/gpu_model_bench.sh prints
    the measured peaks that should replace these numbers.
    """

    fixed_bytes: int = 1 * GIB
    per_frame_bytes: int = int(0.39 * GIB)

    def bytes_for(self, frames: int) -> int:
        return int(self.fixed_bytes + self.per_frame_bytes * frames)


def largest_window(free_bytes: int, anchors: int, wanted_new: int, model: MemoryModel | None = None,
                   reserve: float = 0.1) -> int:
    """The most new frames (<= wanted_new) whose window (anchors + new) fits (1 - reserve) x free_bytes;
    0 when not even one new frame fits."""
    m = model or MemoryModel()
    budget = (1.0 - reserve) * free_bytes
    for new in range(int(wanted_new), 0, -1):
        if m.bytes_for(anchors + new) <= budget:
            return new
    return 0


def device_of(predictor: Any) -> str:
    """'cuda' / 'cpu' / '' of a predictor, looking through wrappers (`.inner`)."""
    p = predictor
    for _ in range(8):
        dev = getattr(p, "device", None)
        if dev is not None:
            return str(getattr(dev, "type", dev))
        p = getattr(p, "inner", None)
        if p is None:
            break
    return ""


def fit_window_to_gpu(anchors: int, wanted_new: int, free_bytes: Callable[[], int],
                      model: MemoryModel | None = None) -> int:
    """New frames per window for this GPU (logged when fewer than asked); at least 1."""
    free = int(free_bytes())
    new = largest_window(free, anchors, wanted_new, model)
    if new < wanted_new:
        log.warning("free GPU memory %.1f GiB fits windows of %d anchors + %d new frames (asked %d); "
                    "using %d", free / GIB, anchors, new, wanted_new, max(1, new))
    else:
        log.info("free GPU memory %.1f GiB: windows of %d anchors + %d new frames fit", free / GIB, anchors,
                 wanted_new)
    return max(1, new)


def cuda_free_bytes() -> int:
    """Free memory of the current CUDA device (torch.cuda.mem_get_info)."""
    import torch

    return int(torch.cuda.mem_get_info()[0])
