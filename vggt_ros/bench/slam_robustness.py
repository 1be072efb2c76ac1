"""Robustness benchmark of the SLAM core on worlds built to break it (issue 9), shipped node defaults.

Every case of vggt_ros.sim.cases (close-range pillars, a 3-lap loop, twin rooms for false loops,
a standing start, a kidnap, a covered camera (black / frozen), confident garbage windows, dropped
frames, a stop, a turn in place, a 64 m corridor ring whose walls repeat every 5.12 m, an open
figure-eight whose close pass comes early) runs
x seeds x noise factors through vggt_ros.slam.pipeline.Pipeline configured EXACTLY as the node
ships it: runtime.factory.pipeline_config(runtime.params.Params()) (not PipelineConfig()).
The predictor is the simulated one (TEST DOUBLE of VGGT; sim.simulated_predictor, with SimNoise.harsh() as
1x by default); noise factor k multiplies every error magnitude.

Per case a markdown table, medians over seeds with [min-max]:
  posed %    frames emitted as FramePose / frames in the sequence
  segments   distinct WindowStats.segment_id (FramePose.segment_id) when the core has it, else 1
  ATE        Sim(3)-aligned (eval.metrics.evaluate_trajectory, evo) on the posed frames (final poses:
             Pipeline.trajectory(), so a loop closure's correction counts), each segment
             aligned on its own and pooled (frame-weighted RMS); m and % of the segments' path length
  drift %    end-to-end scale drift of the longest segment (n/a under 50 posed frames): the Sim(3) scale
             of the first vs the last 20 % of its poses over the camera's motion (a standing start or
             end left out: eval.metrics.scale_drift, moving_span)
  drift floor %  what that drift figure reads from the same segment's own position errors moved along
             the path (no scale drift in them: eval.metrics.scale_drift_floor); a drift near its floor
             is the poses' error, not scale
  map drift %  the map's own scale, end to end: each keyframe's stored depth over the true depth of what
             its image shows (median over its pixels) after the run, median over the first vs the last
             20 % of the longest segment's keyframes (keyframe_scale_levels, map_scale_drift; n/a under
             10 keyframes). A map
             bent or tilted by the depth's smooth bias moves the poses' drift, not this one
  map walk % (30 kf)  how fast that scale wanders: RMS of the log ratio of the map's scale at keyframes
             30 apart, over every such pair of the longest segment (map_scale_walk; n/a under 40
             keyframes). Hundreds of pairs per run instead of one end-to-end pair: the figure to compare
             scale propagation between configurations (with loop closure off)
  rejected   windows rejected, by reason (median per reason)
  kf         keyframes;  stuck  runs with no pose in the last 20 % of the frames
  loops      loop-closure events (updates whose type name contains 'Loop'), false ones (the two images
             share < 20 % of their view in ground truth: view_overlap) when the event carries two stamps
  garbage    garbage windows rejected / injected (case 'garbage')
  reloc      after a kidnap or a covered gap (Case.reloc_from), frames from the first frame that sees a
             mapped place: "event" until the newest frame of the first window posed in the map again
             (tracking resumed, or a new segment relocalised into it by a loop closure);
             "0.25 m" until the first frame posed in the pre-event segment within RELOC_TOL_M of the
             truth under the Sim(3) fitted on the pre-event frames (an accuracy proxy: at 2x noise the
             map's own ATE is about that tolerance); 'never k/n': runs where none is
  pm posed % / pm ATE   the point-map baseline (stitcher 'point_map', same frames, same noise)
Loop closure on/off side by side when PipelineConfig has a loop-closure field (auto-detected).

  python bench/slam_robustness.py                    # all cases, seeds 0,1,2, noise 1x,2x (~26 min, 1 core)
  python bench/slam_robustness.py --quick            # seed 0, 1x only (~2-3 min smoke)
  python bench/slam_robustness.py --cases figure8 --frames 60 --seeds 0 --noise 1
  python bench/slam_robustness.py --param max_window_residual_rel=0.2   # a node parameter changed
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from vggt_ros.eval.metrics import TrajectoryMismatchError, evaluate_trajectory  # noqa: E402
from vggt_ros.geometry.alignment import DegenerateInputError, umeyama_sim3  # noqa: E402
from vggt_ros.runtime.factory import pipeline_config  # noqa: E402
from vggt_ros.runtime.params import ParamError, Params  # noqa: E402
from vggt_ros.sim.cases import CASES, Case, make_case_predictor, make_case_sequence, view_overlap  # noqa: E402
from vggt_ros.sim.sequence import SyntheticSequence  # noqa: E402
from vggt_ros.sim.simulated_predictor import SimNoise  # noqa: E402
from vggt_ros.slam.config import PipelineConfig  # noqa: E402
from vggt_ros.slam.pipeline import Pipeline  # noqa: E402
from vggt_ros.slam.updates import FramePose, WindowStats  # noqa: E402
from vggt_ros.types import Frame, WindowPrediction  # noqa: E402

NOISE_KEYS = ("rot_deg", "trans_frac", "focal_frac", "depth_frac", "depth_bias_frac", "depth_outlier_frac",
              "track_px", "track_outlier_frac", "scale_jitter")
#: fewest posed frames in a segment for a scale drift figure (fewer: n/a)
MIN_DRIFT_POSES = 50
#: fewest keyframes with depth in a segment for a map scale drift figure
MIN_DRIFT_KEYFRAMES = 10
#: keyframes between the two ends of a map_scale_walk pair
WALK_LAG_KEYFRAMES = 30
#: a loop whose two images share less of their view than this in ground truth is false (view_overlap)
MIN_LOOP_OVERLAP = 0.2
#: position error (metres) under the pre-event alignment for a frame to count as relocalised
RELOC_TOL_M = 0.25
#: names a loop-closure switch may have in PipelineConfig (bool, or a sub-config with `enabled`)
LOOP_FIELDS = ("loop_closure", "loop", "loops", "enable_loop_closure")


def scaled_noise(base: SimNoise, factor: float) -> SimNoise:
    """base with every error magnitude multiplied by factor (confidence model unchanged)."""
    return dataclasses.replace(base, **{k: getattr(base, k) * factor for k in NOISE_KEYS})


def loop_field(cfg: PipelineConfig) -> str | None:
    """Name of PipelineConfig's loop-closure field, or None when the core has none."""
    names = {f.name for f in dataclasses.fields(cfg)}
    return next((n for n in LOOP_FIELDS if n in names), None)


def node_config(stitcher: str = "tracks", loop_closure: bool | None = None,
                overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """The node's shipped configuration (runtime.params defaults via runtime.factory), stitcher and any
    overrides set through the parameter table (validated as the node does); loop_closure (None: as
    shipped) switched on the detected field."""
    cfg = pipeline_config(Params().replace(**(overrides or {}), stitcher=stitcher))
    name = loop_field(cfg)
    if loop_closure is None or name is None:
        return cfg
    cur = getattr(cfg, name)
    if isinstance(cur, bool):
        return dataclasses.replace(cfg, **{name: loop_closure})
    if dataclasses.is_dataclass(cur) and hasattr(cur, "enabled"):
        return dataclasses.replace(cfg, **{name: dataclasses.replace(cur, enabled=loop_closure)})  # type: ignore
    raise SystemExit(f"cannot switch PipelineConfig.{name} ({type(cur).__name__}) on/off")


class GarbageInjector:
    """Wraps a predictor: every prediction of a window holding one of the given frame stamps gets
    confident garbage (random depth and tracks, confidences untouched), like tests/test_slam_pipeline's.
    Garbage stays garbage: a retry of the same frames (the core's recovery) gets garbage again, as a
    deterministic network would give."""

    def __init__(self, inner: Any, stamps: Sequence[int]) -> None:
        self.inner = inner
        self.name = inner.name
        self.stamps = set(int(s) for s in stamps)
        self.injected: list[int] = []  #: stamp of the last frame of each corrupted window (once each)

    def predict(self, frames: Sequence[Frame], query_points: np.ndarray, depth_for: Sequence[int]
                ) -> WindowPrediction:
        pred = self.inner.predict(frames, query_points, depth_for)
        if self.stamps & {int(f.stamp_ns) for f in frames}:
            last = int(frames[-1].stamp_ns)
            if last not in self.injected:
                self.injected.append(last)
            rng = np.random.default_rng(len(self.injected))
            H, W = frames[0].size
            for i in pred.depth:
                pred.depth[i] = rng.uniform(0.2, 3.0, pred.depth[i].shape).astype(np.float32)
            pred.tracks[1:] = rng.uniform([0, 0], [W - 1, H - 1], pred.tracks[1:].shape).astype(np.float32)
        return pred


def _segment_of(u: Any, window_segment: dict[int, int]) -> int:
    seg = getattr(u, "segment_id", None)
    if seg is None:
        seg = window_segment.get(int(getattr(u, "window_id", -1)), 0)
    return int(seg)


def _loop_events(updates: list[Any], seq: SyntheticSequence) -> tuple[int, int | None]:
    """(loop events, false ones or None when the events carry no pair of stamps). False: the two
    images share less than MIN_LOOP_OVERLAP of their view in ground truth (sim.cases.view_overlap, what
    each image shows: a frozen frame shows the frame it repeats)."""
    events = [u for u in updates if "loop" in type(u).__name__.lower()]
    false, known = 0, True
    for e in events:
        stamps = [v for k, v in vars(e).items()
                  if k.endswith("stamp_ns") and isinstance(v, (int, np.integer))]
        if len(stamps) < 2:
            known = False
            continue
        try:
            a, b = (seq.image_truth(int(t)) for t in stamps[:2])
        except KeyError:
            known = False
            continue
        # either way: a close view of a wall is part of a far view of it
        false += int(max(view_overlap(a, b), view_overlap(b, a)) < MIN_LOOP_OVERLAP)
    return len(events), (false if known else None)


def reloc_event_delay(updates: list[Any], seq: SyntheticSequence, event: int) -> float:
    """Frames from `event` to the newest frame of the first accepted window at or after it that is posed
    in the map the camera was in before the event: stitched to it directly (tracking resumed) or
    relocalised into it (a new segment merged by a loop closure; WindowStats after the merge carry the
    map's segment). inf: never."""
    stats = [u for u in updates if isinstance(u, WindowStats) and u.accepted]
    before = [w for w in stats if seq.index_of(int(w.stamp_ns)) < event]
    if not before:
        return float("nan")
    seg = before[-1].segment_id
    for w in stats:
        i = seq.index_of(int(w.stamp_ns))
        if i >= event and w.segment_id == seg and w.tracking_state != "new_segment":
            return float(i - event)
    return float("inf")


def _delays(xs: list[float]) -> str:
    never = sum(1 for x in xs if x == float("inf"))
    parts = [_med(xs, "{:.0f}")] if len(xs) > never else []
    parts += [f"never {never}/{len(xs)}"] if never else []
    return ", ".join(parts) or "-"


def reloc_delay(seq: SyntheticSequence, poses: dict[int, tuple[np.ndarray, int]], event: int) -> float:
    """Frames from `event` to the first frame posed in the pre-event segment within RELOC_TOL_M of the truth
    (Sim(3) fitted on the pre-event posed frames); inf: never; nan: too few pre-event poses to fit."""
    idx = {s: seq.index_of(s) for s in poses}
    pre = [s for s in poses if idx[s] < event]
    if len(pre) < 5:
        return float("nan")
    seg = Counter(poses[s][1] for s in pre).most_common(1)[0][0]
    pre = [s for s in pre if poses[s][1] == seg]
    try:
        sim = umeyama_sim3(np.stack([poses[s][0][:3, 3] for s in pre]),
                           np.stack([seq.poses[idx[s]][:3, 3] for s in pre]))
    except DegenerateInputError:
        return float("nan")
    for s in sorted((s for s in poses if idx[s] >= event and poses[s][1] == seg), key=idx.__getitem__):
        if np.linalg.norm(sim.apply(poses[s][0][:3, 3]) - seq.poses[idx[s]][:3, 3]) < RELOC_TOL_M:
            return float(idx[s] - event)
    return float("inf")


def score(seq: SyntheticSequence, poses: dict[int, tuple[np.ndarray, int]]) -> dict[str, float]:
    """Per-segment Sim(3) ATE pooled over segments, % of their path, drift of the longest segment."""
    by_seg: dict[int, list[int]] = {}
    for s, (_, seg) in poses.items():
        by_seg.setdefault(seg, []).append(s)
    sq, n, path, drift, floor, longest = 0.0, 0, 0.0, float("nan"), float("nan"), 0
    for stamps in by_seg.values():
        st = np.array(sorted(stamps), np.int64)
        try:
            m = evaluate_trajectory(seq.stamps_ns, seq.poses, st, np.stack([poses[int(s)][0] for s in st]))
        except TrajectoryMismatchError:
            continue  # < 3 poses or a degenerate (standing) segment: not scored
        sq += m.ate_rmse ** 2 * m.num_matched
        n += m.num_matched
        path += m.path_length
        if m.num_matched > longest:
            longest = m.num_matched
            ok = m.num_matched >= MIN_DRIFT_POSES
            drift, floor = (m.scale_drift, m.scale_drift_floor) if ok else (float("nan"), float("nan"))
    if n == 0:
        return {"ate": float("nan"), "ate_pct": float("nan"), "drift_pct": float("nan"),
                "floor_pct": float("nan")}
    ate = float(np.sqrt(sq / n))
    return {"ate": ate, "ate_pct": 100 * ate / path if path > 0 else float("nan"), "drift_pct": 100 * drift,
            "floor_pct": 100 * floor}


def keyframe_scale_levels(keyframes: Sequence[Any], seq: SyntheticSequence) -> np.ndarray:
    """(K,) the map's scale at each keyframe of the longest segment, in creation order: the median of its
    stored depth over the true depth of what its image shows (seq's image truth) over its valid pixels;
    NaN for a keyframe with fewer than 10 such pixels.

    keyframes: the core's (Pipeline.keyframes.keyframes: keyframe_id, segment_id, stamp_ns, depth at
    depth_stride, NaN invalid); keyframes without depth are left out.
    """
    by_seg: dict[int, list[Any]] = {}
    for k in keyframes:
        if getattr(k, "depth", None) is not None:
            by_seg.setdefault(int(k.segment_id), []).append(k)
    if not by_seg:
        return np.zeros(0)
    seg = sorted(max(by_seg.values(), key=len), key=lambda k: k.keyframe_id)
    m = np.full(len(seg), np.nan)
    for n, k in enumerate(seg):
        s = int(k.depth_stride)
        d = np.asarray(k.depth, dtype=np.float64)
        g = seq.image_truth(int(k.stamp_ns)).depth[::s, ::s][: d.shape[0], : d.shape[1]].astype(np.float64)
        ok = np.isfinite(d) & (d > 0) & np.isfinite(g) & (g > 0)
        if np.count_nonzero(ok) >= 10:
            m[n] = np.median(d[ok] / g[ok])
    return m


def map_scale_drift(levels: np.ndarray, fraction: float = 0.2) -> float:
    """End-to-end drift (%) of the map's scale as its depth measures it: |m_end / m_start - 1|, with
    m_start / m_end the median of `levels` (keyframe_scale_levels) over the first / last `fraction` of the
    keyframes. NaN under MIN_DRIFT_KEYFRAMES levels.
    """
    m = np.asarray(levels, dtype=np.float64)
    if len(m) < MIN_DRIFT_KEYFRAMES:
        return float("nan")
    w = max(2, int(round(fraction * len(m))))
    start, end = (float(np.median(x[np.isfinite(x)])) if np.isfinite(x).any() else float("nan")
                  for x in (m[:w], m[-w:]))
    return 100.0 * abs(end / start - 1.0) if np.isfinite(start) and np.isfinite(end) else float("nan")


def map_scale_walk(levels: np.ndarray, lag: int = WALK_LAG_KEYFRAMES) -> float:
    """How fast the map's scale wanders (%): the RMS of log(m[k + lag] / m[k]) over every pair of keyframes
    `lag` apart (m = levels: keyframe_scale_levels, in creation order), x 100.

    Every keyframe pair counts, so one run gives hundreds of samples where the end-to-end drift gives
    one: a low-variance figure of the scale's random walk (the end-to-end drift of the same runs spreads
    over 0-7 %). Loop closures pull revisited keyframes together, so compare configurations with loop
    closure off. NaN with fewer than lag + MIN_DRIFT_KEYFRAMES levels.
    """
    m = np.asarray(levels, dtype=np.float64)
    if len(m) < lag + MIN_DRIFT_KEYFRAMES:
        return float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.log(m[lag:] / m[:-lag])
    d = d[np.isfinite(d)]
    return 100.0 * float(np.sqrt(np.mean(d**2))) if d.size else float("nan")


def run_once(case: Case, seq: SyntheticSequence, cfg: PipelineConfig, noise: SimNoise, seed: int
             ) -> dict[str, Any]:
    """One pipeline run over seq; returns the row's figures."""
    n = len(seq)
    pred: Any = make_case_predictor(case, seq, noise, seed)
    garbage = None
    if case.garbage_frames:
        garbage = pred = GarbageInjector(pred, [int(seq.stamps_ns[i]) for i in case.garbage_frames if i < n])
    p = Pipeline(pred, cfg)
    updates: list[Any] = []
    t0 = time.process_time()
    for i in range(n):
        updates += [u for u in p.push(seq[i]) if not _heavy(u)]
    updates += [u for u in p.flush() if not _heavy(u)]
    cpu = time.process_time() - t0
    stats = [u for u in updates if isinstance(u, WindowStats)]
    window_segment = {w.window_id: int(getattr(w, "segment_id", 0)) for w in stats}
    poses: dict[int, tuple[np.ndarray, int]] = {}
    for u in updates:
        if isinstance(u, FramePose):
            poses[int(u.stamp_ns)] = (u.T_map_cam, _segment_of(u, window_segment))
    _final_poses(p, poses)
    first_late = int(np.ceil(0.8 * n))
    posed_idx = [seq.index_of(s) for s in poses]
    loops, false_loops = _loop_events(updates, seq)
    out: dict[str, Any] = {
        "posed_pct": 100.0 * len(poses) / n,
        "segments": len({seg for _, seg in poses.values()}) if poses else 0,
        "rejected": Counter(p.counters.windows_rejected),
        "kf": p.counters.keyframes,
        "stuck": not any(i >= first_late for i in posed_idx),
        "loops": loops,
        "false_loops": false_loops,
        "cpu_s": cpu,
        "loop_verifications": sum(w.loop_verifications for w in stats),
        "loop_checks_skipped": sum(w.loop_checks_skipped for w in stats),
        "stamps": set(poses),
        "poses": poses,
    }
    out.update(score(seq, poses))
    out["map_levels"] = keyframe_scale_levels(p.keyframes.keyframes, seq)
    out["map_drift_pct"] = map_scale_drift(out["map_levels"])
    out["map_walk_pct"] = map_scale_walk(out["map_levels"])
    if case.reloc_from is not None and case.reloc_from < n:
        out["reloc"] = reloc_delay(seq, poses, case.reloc_from)
        out["reloc_event"] = reloc_event_delay(updates, seq, case.reloc_from)
    if garbage is not None:
        acc = {w.stamp_ns: w.accepted for w in stats}
        out["garbage"] = (sum(1 for s in garbage.injected if not acc.get(s, False)), len(garbage.injected))
    return out


def _final_poses(p: Pipeline, poses: dict[int, tuple[np.ndarray, int]]) -> None:
    """Replace, in place, the emitted poses by Pipeline.trajectory()'s (the core's final estimate, e.g.
    after a loop closure moved the path) for the stamps it has; segments stay as emitted."""
    try:
        stamps, T = p.trajectory()
    except (AttributeError, TypeError, ValueError):
        return
    for s, Ti in zip(np.asarray(stamps).tolist(), np.asarray(T)):
        if int(s) in poses:
            poses[int(s)] = (Ti, poses[int(s)][1])


def _heavy(u: Any) -> bool:
    """Updates the bench does not need to keep (clouds, depth, maps): memory over long runs."""
    return type(u).__name__ in ("DepthFrame", "WindowCloud", "MapChanged")


def _med(xs: list[float], fmt: str = "{:.1f}") -> str:
    v = [x for x in xs if x is not None and np.isfinite(x)]
    if not v:
        return "n/a"
    if len(v) == 1:
        return fmt.format(v[0])
    return f"{fmt.format(statistics.median(v))} [{fmt.format(min(v))}-{fmt.format(max(v))}]"


def _reasons(runs: list[dict[str, Any]]) -> str:
    keys = sorted(set().union(*(r["rejected"].keys() for r in runs)))
    if not keys:
        return "0"
    return "; ".join(f"{k} {statistics.median([r['rejected'].get(k, 0) for r in runs]):g}" for k in keys)


def _common_ate(seq: SyntheticSequence, ours: dict[str, Any], pm: dict[str, Any]) -> float:
    common = ours["stamps"] & pm["stamps"]
    if len(common) < 3:
        return float("nan")
    return score(seq, {s: ours["poses"][s] for s in common})["ate"]


def row(label: str, runs: list[dict[str, Any]], pm: list[dict[str, Any]] | None,
        seq: SyntheticSequence) -> str:
    cells = [label, _med([r["posed_pct"] for r in runs]), _med([r["segments"] for r in runs], "{:.0f}"),
             _med([r["ate"] for r in runs], "{:.3f}"), _med([r["ate_pct"] for r in runs], "{:.2f}"),
             _med([r["drift_pct"] for r in runs]), _med([r["floor_pct"] for r in runs]),
             _med([r["map_drift_pct"] for r in runs]), _med([r["map_walk_pct"] for r in runs], "{:.2f}"),
             _reasons(runs),
             _med([r["kf"] for r in runs], "{:.0f}"),
             f"{sum(r['stuck'] for r in runs)}/{len(runs)}"]
    fl = [r["false_loops"] for r in runs]
    cells.append(f"{_med([r['loops'] for r in runs], '{:.0f}')} (false "
                 f"{'n/a' if None in fl else _med([float(x) for x in fl], '{:.0f}')})")
    garbage = [f"{r['garbage'][0]}/{r['garbage'][1]}" for r in runs if "garbage" in r]
    cells.append(" ".join(garbage) or "-")
    event, near = _delays([r["reloc_event"] for r in runs if "reloc" in r]), _delays(
        [r["reloc"] for r in runs if "reloc" in r])
    cells.append("-" if event == near == "-" else f"{event} / {near}")
    if pm is not None:
        cells += [_med([r["posed_pct"] for r in pm]), _med([r["ate"] for r in pm], "{:.3f}"),
                  _med([_common_ate(seq, o, b) for o, b in zip(runs, pm)], "{:.3f}")]
    return "| " + " | ".join(cells) + " |"


def header(baseline: bool) -> str:
    cols = ["noise / config", "posed %", "segments", "ATE m", "ATE %", "drift %", "drift floor %",
            "map drift %", f"map walk % ({WALK_LAG_KEYFRAMES} kf)",
            "rejected (reason: median)",
            "kf", "stuck", "loops", "garbage rej/inj", "reloc event / 0.25 m (frames)"]
    if baseline:
        cols += ["pm posed %", "pm ATE m", "ours ATE on common frames"]
    return "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols)


def bench_case(case: Case, args: argparse.Namespace, base: SimNoise, lc_modes: list[bool | None]) -> None:
    seq = make_case_sequence(case, args.width, args.width * 3 // 4, args.frames)
    t0 = time.time()
    print(f"\n### {case.name}: {case.description} ({len(seq)} frames)\n")
    print(header(args.baseline))
    for nf in args.noise:
        noise = scaled_noise(base, nf)
        pm = None
        if args.baseline:
            pm_cfg = node_config("point_map", None, args.param)
            pm = [run_once(case, seq, pm_cfg, noise, s) for s in args.seeds]
        for lc in lc_modes:
            runs = [run_once(case, seq, node_config("tracks", lc, args.param), noise, s) for s in args.seeds]
            label = f"{nf:g}x" + ("" if lc is None else f" loop closure {'on' if lc else 'off'}")
            print(row(label, runs, pm, seq))
            sys.stdout.flush()
    print(f"\n({time.time() - t0:.0f} s wall)")


def param_overrides(ap: argparse.ArgumentParser, items: Sequence[str]) -> dict[str, Any]:
    """--param NAME=VALUE items (YAML values) as node parameter overrides, validated by the parameter table
    as the node does (ap.error, exit 2, on a bad one)."""
    try:
        out = {k: yaml.safe_load(v) for k, v in (p.split("=", 1) for p in items)}
        Params(out)
    except (ValueError, ParamError) as exc:
        ap.error(f"--param: {exc}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma list of {', '.join(CASES)}")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--noise", default="1,2", help="noise factors")
    ap.add_argument("--noise-model", choices=("harsh", "default"), default="harsh",
                    help="1x noise: SimNoise.harsh() (issue 9's VGGT-like errors) or SimNoise()")
    ap.add_argument("--width", type=int, default=160, help="image width (height = 3/4 width)")
    ap.add_argument("--frames", type=int, default=None, help="truncate every case to its first N frames")
    ap.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the point-map column")
    ap.add_argument("--loop-closure", choices=("auto", "on", "off", "both"), default="auto",
                    help="auto: both side by side when the core has the switch, else as shipped")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="node parameter override (runtime/params.py name, YAML value), repeatable")
    ap.add_argument("--sim", action="append", default=[], metavar="FIELD=VALUE",
                    help="SimNoise field of the 1x noise set (e.g. depth_bias_shared=0.7), repeatable")
    ap.add_argument("--quick", action="store_true", help="smoke: seed 0, 1x only (full cases)")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.noise = "0", "1"
    args.param = param_overrides(ap, args.param)
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    args.noise = [float(x) for x in args.noise.split(",") if x]
    names = [c for c in args.cases.split(",") if c]
    unknown = [c for c in names if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; choose from {sorted(CASES)}")
    logging.basicConfig(level=logging.CRITICAL)
    cfg = node_config(overrides=args.param)
    lf = loop_field(cfg)
    want = {"auto": "both" if lf else "shipped", "on": "on", "off": "off", "both": "both"}[args.loop_closure]
    if lf is None and want != "shipped":
        print(f"# loop closure switch ({args.loop_closure}) requested, PipelineConfig has none: as shipped")
        want = "shipped"
    modes: dict[str, list[bool | None]] = {"shipped": [None], "on": [True], "off": [False],
                                           "both": [False, True]}
    lc_modes = modes[want]
    base = SimNoise.harsh() if args.noise_model == "harsh" else SimNoise()
    try:
        base = dataclasses.replace(base, **{k: float(v) for k, v in (f.split("=", 1) for f in args.sim)})
    except (ValueError, TypeError) as exc:
        ap.error(f"--sim: {exc}")
    print("# slam_robustness: shipped node defaults (runtime.factory.pipeline_config(Params()))"
          + (f", overridden: {args.param}" if args.param else ""))
    print(f"# stitch: {cfg.stitch}\n# keyframes: {cfg.keyframes}\n# window {cfg.window_size} "
          f"({cfg.num_anchors} anchors); loop-closure field: {lf or 'none'}")
    print(f"# 1x noise = SimNoise.{args.noise_model}(): {base}")
    print(f"# {args.width}x{args.width * 3 // 4}, seeds {args.seeds}, noise x{args.noise}; "
          "cells: median [min-max] over seeds")
    t0 = time.time()
    for name in names:
        bench_case(CASES[name], args, base, lc_modes)
    print(f"\n# total {time.time() - t0:.0f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
