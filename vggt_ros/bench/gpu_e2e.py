#!/usr/bin/env python3
"""GPU checks of issue 14 that need the real VGGT path (run by bench/gpu_model_bench.sh).

Sections (--sections, comma separated):
  sdpa    which scaled_dot_product_attention kernel runs for VGGT's frame and global attention shapes
          (bf16): each backend tried alone (flash, efficient, cudnn, math) and the default's choice
          from the profiler's kernel names.
  golden  the full model with the formula weights VGGT-FW1 in bf16 autocast (heads fp32), against the
          reference's fp32 golden outputs (test/data/vggt_golden_*.npz); also fp32 on the device.
          Tolerance stated and printed (PASS/FAIL), never asserted: a blind run always completes.
  e2e     a synthetic loop sample bag (--frames at --width x --height) through `vggt-ros replay`'s
          code with the real VGGTPredictor (formula weights, bf16): new frames/s, latency p50/p95,
          peak GPU memory, drops, and where the time went (predictor calls by window length: first
          call, preprocess / network / postprocess; the rest outside the predictor); then the simulated
          predictor's geometry at the real network's cost (NetworkTimedReplayDouble): the sync
          replay, and the live node per --variants (node parameter overrides, ';'-separated; '' =
          shipped defaults): every frame queued at once (sustained new frames/s), then submitted at
          30 Hz (submit-to-odometry latency p50/p95: it grows through the run when the node cannot
          keep up); queue 1000 in both, so nothing is dropped and every window was recorded.
Dry mode on a CPU: --device cpu --config tiny (a tiny random model, small images; checks the script).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from vggt_ros.model.vggt import VGGT, VGGTConfig  # noqa: E402

DATA = Path(HERE).parent / "test" / "data"
# bf16 against the fp32 reference: relative max error bounds (|a-b|max / |b|max) and track pixels.
BF16_TOL = {"pose_enc": 3e-2, "depth": 5e-2, "depth_conf": 1e-1, "vis": 1e-1, "conf": 1e-1}
BF16_TRACK_PX = 2.0
FP32_TOL = 1e-4  # the CPU golden test's bound; on CUDA TF32 is switched off for this run


def section(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def build_model(config: str, device: torch.device, weights: str) -> VGGT:
    t0 = time.perf_counter()
    if config == "tiny":
        torch.manual_seed(0)
        model = VGGT(VGGTConfig.tiny())
    else:
        model = VGGT.empty()
        if weights == "formula":
            from vggt_ros.model.formula_weights import fill_module_

            fill_module_(model, workers=min(16, os.cpu_count() or 1))
        else:
            torch.manual_seed(0)
            with torch.no_grad():
                for p in model.parameters():
                    p.normal_(0.0, 0.02)
    model = model.to(device).eval()
    print(f"model {config} ({weights}) on {device} in {time.perf_counter() - t0:.1f} s", flush=True)
    return model


def check_sdpa(device: torch.device, dry: bool) -> None:
    """Try each SDPA backend on VGGT's shapes; name the kernels the default dispatch runs."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    section("scaled_dot_product_attention backends (bf16, 16 heads x 64)")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    p = 5 + 28 * 37  # tokens of one 392x518 frame
    shapes = {"frame attn (16 frames)": (16, p), "global attn (16 frames)": (1, 16 * p)}
    if dry:
        shapes = {"frame attn (tiny)": (2, 20), "global attn (tiny)": (1, 40)}
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}
    for label, (b, n) in shapes.items():
        q = torch.randn(b, 16, n, 64, device=device, dtype=dtype)
        ok = []
        for name, be in backends.items():
            try:
                with sdpa_kernel([be]):
                    torch.nn.functional.scaled_dot_product_attention(q, q, q)
                ok.append(name)
            except RuntimeError:
                pass
        kernels = "n/a (cpu)"
        if device.type == "cuda":
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                torch.nn.functional.scaled_dot_product_attention(q, q, q)
                torch.cuda.synchronize()
            names = {e.key for e in prof.key_averages()}
            hits = sorted(k for k in names if any(s in k.lower() for s in ("flash", "fmha", "efficient",
                                                                            "cudnn", "attention")))
            kernels = "; ".join(h[:80] for h in hits[:3]) or "no attention kernel named (math path?)"
        print(f"{label}: q {tuple(q.shape)}; backends that run: {', '.join(ok)}; default runs: {kernels}")


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


CASES = ("case_2x140x196_q8", "case_2x294x518_q64")


def load_case(case: str) -> dict[str, np.ndarray]:
    """The compact golden fixture (test/data; format of test_model_vggt_golden.py, no pytest needed)."""
    import lzma

    z = np.load(DATA / f"vggt_golden_{case}.npz")
    d = {k: z[k] for k in z.files if not k.startswith("images_")}
    planes = np.frombuffer(lzma.decompress(z["images_lzma"].tobytes()), dtype=np.uint8).reshape(4, -1)
    d["images"] = planes.T.copy().view("<f4").reshape(tuple(int(s) for s in z["images_shape"]))
    for k in ("depth", "depth_conf"):
        d[k] = d.pop(k + "_sub")
    return d


def check_golden(model: VGGT, device: torch.device, dry: bool) -> None:
    section("bf16 (and fp32) on the device vs the reference's fp32 golden outputs (formula weights)")
    print(f"bf16 tolerance: relative max error {BF16_TOL}, tracks {BF16_TRACK_PX} px; fp32: {FP32_TOL}")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    for case in (list(CASES)[:1] if dry else CASES):
        g = load_case(case)
        images = torch.from_numpy(g["images"]).to(device)
        q = torch.from_numpy(g["query_points"]).to(device)
        if dry:  # the tiny model's own patch grid: only the code path is checked
            images = images[..., :56, :84]
            q = q.clamp(max=50)
        for prec in ("bf16", "fp32"):
            amp = (torch.autocast(device.type, dtype=torch.bfloat16) if prec == "bf16"
                   else contextlib.nullcontext())
            with torch.inference_mode(), amp:
                out, _ = model.infer(images, query_points=q, heads=("camera", "depth", "track"),
                                     precision=None)
            ours = {k: v.float().cpu().numpy() for k, v in out.items() if isinstance(v, torch.Tensor)}
            if dry:
                print(f"{case} {prec}: dry run, outputs {sorted(ours)} (tiny model: no golden comparison)")
                continue
            rows, cols = g["rows"], g["cols"]
            errs = {k: rel_err(ours[k], g[k]) for k in ("pose_enc", "vis", "conf")}
            for k in ("depth", "depth_conf"):
                errs[k] = rel_err(ours[k][:, :, rows][:, :, :, cols], g[k])
            qq = g["query_points"][None, None]
            track_px = float(np.abs((ours["track"] - qq) - (g["track"] - qq)).max())
            tol = BF16_TOL if prec == "bf16" else dict.fromkeys(BF16_TOL, FP32_TOL)
            px_tol = BF16_TRACK_PX if prec == "bf16" else 0.05
            ok = all(errs[k] <= tol[k] for k in tol) and track_px <= px_tol
            print(f"{case} {prec}: " + ", ".join(f"{k} {v:.2e}" for k, v in errs.items())
                  + f", track {track_px:.3f} px -> {'PASS' if ok else 'FAIL'}", flush=True)


class CallTimer:
    """Wraps a predictor: wall time and the predictor's own timings (preprocess_s, network_s,
    postprocess_s) of every call, by window length (main windows vs loop verifications)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[int, int, float, dict[str, float]]] = []  # (frames, queries, wall s, timings)

    def predict(self, frames: Any, query_points: np.ndarray, depth_for: Any) -> Any:
        t0 = time.perf_counter()
        pred = self.inner.predict(frames, query_points, depth_for)
        self.calls.append((len(frames), len(query_points), time.perf_counter() - t0, dict(pred.timings)))
        return pred

    def __getattr__(self, name: str) -> Any:  # load/prepare/clear_cache/describe of the wrapped one
        return getattr(self.inner, name)

    def table(self, wall_s: float) -> str:
        """Seconds by call kind, and what the run spent outside the predictor."""
        stages = ("preprocess_s", "network_s", "postprocess_s")
        rows = ["| frames x queries | calls | first call s | wall s | preprocess s | network s "
                "| postprocess s |", "|---|---:|---:|---:|---:|---:|---:|"]
        for key in sorted({(s, q) for s, q, _, _ in self.calls}, reverse=True):
            cs = [c for c in self.calls if (c[0], c[1]) == key]
            sums = " | ".join(f"{sum(c[3].get(k, 0.0) for c in cs):.1f}" for k in stages)
            rows.append(f"| {key[0]} x {key[1]} | {len(cs)} | {cs[0][2]:.2f} | {sum(c[2] for c in cs):.1f} | "
                        f"{sums} |")
        inside = sum(c[2] for c in self.calls)
        rows.append(f"run wall {wall_s:.1f} s: predictor {inside:.1f} s, outside it (stitching, loop "
                    f"closure, messages, bag I/O) {wall_s - inside:.1f} s")
        return "\n".join(rows)


class NetworkTimedReplayDouble:
    """TEST DOUBLE: returns the simulated predictor's recorded prediction of the same window (its
    geometry and place descriptors), after running the real network path on the same frames, queries
    and depth frames for its cost (output discarded). The formula weights cost what VGGT-1B costs but
    predict no real geometry, so their windows, keyframes and loop verifications are not what a
    trained network gives; this double keeps the simulated predictor's realistic SLAM behaviour and
    pays the real forward for every call. Exposes predict(), prepare() (the network's preprocessing of a
    queued frame, as the live node runs it in the frame callback) and name only: the pipeline is configured
    as in the recording run (no GPU window cap, no OOM guard), so the windows are the same. A window
    the recording never saw (live drops change the windows) is predicted by `fallback` (the simulated
    predictor itself) after the same network call; counted in `misses`."""

    name = "network-timed replay"

    def __init__(self, store: dict[tuple[int, ...], Any], network: Any, fallback: Any = None) -> None:
        self.store = store
        self.network = network
        self.fallback = fallback
        self.misses = 0

    def prepare(self, frame: Any) -> None:
        self.network.prepare(frame)

    def predict(self, frames: Any, query_points: np.ndarray, depth_for: Any) -> Any:
        key = tuple(int(f.stamp_ns) for f in frames)
        if key not in self.store and self.fallback is None:
            raise KeyError(f"window {key[:2]}... was not in the recording run (replay not deterministic?)")
        timings = self.network.predict(frames, query_points, depth_for).timings
        if key in self.store:
            pred = copy.deepcopy(self.store[key])
        else:
            self.misses += 1
            pred = self.fallback.predict(frames, query_points, depth_for)
        pred.timings = dict(timings)
        return pred


def _print_replay(label: str, rep: dict[str, Any], timer: CallTimer, wall: float,
                  device: torch.device) -> None:
    print(f"{label}: {rep.get('frames_processed')} processed, {rep.get('frames_dropped')} dropped "
          f"{rep.get('drops') or ''}, {rep.get('windows_rejected')} windows rejected, "
          f"{rep.get('keyframes')} keyframes, loop closures {rep.get('loop_closures')}; "
          f"{_f(rep.get('throughput_fps'), '.1f')} new frames/s; "
          f"latency p50 {_f(rep.get('latency_p50_s'))} s, p95 {_f(rep.get('latency_p95_s'))} s; "
          f"peak GPU memory {_peak_gib(device)}; oom_retries {rep.get('oom_retries', 0)}", flush=True)
    print(timer.table(wall), flush=True)


def record_simulated(bag: Path, out: Path, overrides: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The sample through the sync replay with the simulated predictor and these node parameters:
    (its recorded windows, the simulated predictor, the parameters)."""
    from cpu_path_bench import RecordingPredictor
    from vggt_ros.runtime.params import Params
    from vggt_ros.runtime.replay import choose_predictor, replay

    ask = Params({"predictor": "simulated", **overrides})
    sim, params = choose_predictor(ask, bag, False, lambda _: None)
    rec = RecordingPredictor(sim)
    replay(bag, out, params, predictor=rec, progress=False)
    return rec.store, sim, params


def replay_simulated_geometry(bag: Path, out: Path, network: Any, device: torch.device) -> tuple[Any, Any]:
    """The sample through the replay twice: the simulated predictor (recorded), then
    NetworkTimedReplayDouble over the real network path: the node's speed with realistic windows.
    Returns the recording (windows, simulated predictor) of the shipped defaults."""
    from vggt_ros.runtime.replay import replay

    store, sim, params = record_simulated(bag, out / "recorded", {})
    network.clear_cache()
    _reset_peak(device)
    timer = CallTimer(NetworkTimedReplayDouble(store, network))
    t0 = time.perf_counter()
    res = replay(bag, out / "timed", params, predictor=timer, progress=False)
    _print_replay("replay (sync), simulated geometry + real network cost", res.report, timer,
                  time.perf_counter() - t0, device)
    return store, sim


def parse_variants(text: str) -> list[dict[str, Any]]:
    """'a=1,b=true;;c=x' -> [{'a': 1, 'b': True}, {}, {'c': 'x'}] (values parsed as JSON when they can be)."""
    out: list[dict[str, Any]] = []
    for part in text.split(";"):
        d: dict[str, Any] = {}
        for item in filter(None, (x.strip() for x in part.split(","))):
            k, _, v = item.partition("=")
            try:
                d[k.strip()] = json.loads(v)
            except json.JSONDecodeError:
                d[k.strip()] = v
        out.append(d)
    return out


def live_variants(bag: Path, tmp: Path, frames: list[Any], network: Any, device: torch.device,
                  variants: list[dict[str, Any]], live_frames: int, defaults: tuple[Any, Any] | None) -> None:
    """Per variant: record the simulated predictor's windows with those parameters (`defaults`: the
    shipped defaults' recording, when made already, also for variants with the same windows), then the
    live node with NetworkTimedReplayDouble: all frames queued at once, then submitted at 30 Hz."""
    from runtime_throughput import drive_live, percentile, windows_key
    from vggt_ros.runtime.params import Params

    print("| node parameters | run | processed | drops | new frames/s | latency p50 / p95 s | "
          "windows predicted ahead / again | unrecorded windows |\n|---|---|---:|---|---:|---:|---:|---:|",
          flush=True)
    for k, ov in enumerate(variants):
        same = defaults and windows_key(ov) == windows_key({})  # e.g. predict_after_keyframes
        store, sim = defaults if same else record_simulated(bag, tmp / f"rec{k}", ov)[:2]
        label = ", ".join(f"{a}={b}" for a, b in ov.items()) or "shipped defaults"
        # nothing dropped in either run, so every window is one the recording saw (an unrecorded one
        # costs the simulated predictor's CPU time, ~0.3 s at 640x480, which the network would not)
        runs = (("all queued", None, {"queue_size": 1000, "drop_policy": "oldest"}, frames),
                ("30 Hz", 30.0, {"queue_size": 1000, "drop_policy": "oldest"}, frames[:live_frames]))
        for mode, rate, qp, fr in runs:
            network.clear_cache()
            double = NetworkTimedReplayDouble(store, network, fallback=sim)
            params = Params({"predictor": "simulated", **ov, **qp})
            r = drive_live(fr, params, double, tmp / "live.mcap", rate)
            d, lat = r["d"], r["latency"]
            fps = d.frames_processed / r["wall_s"] if r["wall_s"] > 0 else float("nan")
            p50, p95 = percentile(lat, 50), percentile(lat, 95)
            print(f"| {label} | {mode} | {d.frames_processed}/{d.frames_received} | {d.drops or '-'} | "
                  f"{fps:.1f} | {p50:.3f} / {p95:.3f} | {d.windows_predicted_ahead} / "
                  f"{d.ahead_repredicted} | {double.misses} |", flush=True)
    print(f"peak GPU memory {_peak_gib(device)}", flush=True)


def run_e2e(model: VGGT, device: torch.device, args: argparse.Namespace) -> None:
    from vggt_ros.io.bag import read_messages
    from vggt_ros.io.sample import write_sample
    from vggt_ros.io.sample_bag import CAMERA_INFO_TOPIC, IMAGE_TOPIC
    from vggt_ros.model.predictor import PredictorConfig, VGGTPredictor
    from vggt_ros.msgs.decode import camera_info_K
    from vggt_ros.msgs.frame import image_to_frame
    from vggt_ros.runtime.params import Params
    from vggt_ros.runtime.replay import replay
    from vggt_ros.sim.sequence import make_sequence

    section(f"end to end: {args.frames} frames {args.width}x{args.height}, real VGGT path ({args.weights} "
            f"weights), {device}")
    cfg = PredictorConfig(device=str(device), image_size=args.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        bag, _ = write_sample(Path(tmp) / "sample", make_sequence("loop", args.frames, width=args.width,
                                                                   height=args.height))
        print(f"sample bag written in {time.perf_counter() - t0:.1f} s", flush=True)
        pred = VGGTPredictor.from_model(model, cfg)
        pred.load()
        if "formula" in args.e2e:
            _reset_peak(device)
            timer = CallTimer(pred)
            t0 = time.perf_counter()
            res = replay(bag, Path(tmp) / "out", Params({"predictor": "vggt"}), predictor=timer,
                         progress=False)
            _print_replay("replay (sync), formula weights", res.report, timer, time.perf_counter() - t0,
                          device)
        defaults = None
        if "simulated" in args.e2e:
            defaults = replay_simulated_geometry(bag, Path(tmp), pred, device)
        if "live" in args.e2e:
            info = next(iter(read_messages(bag, [CAMERA_INFO_TOPIC])))
            K, _ = camera_info_K(info.message)  # as the replay (use_camera_info): the camera's own K
            frames = [dataclasses.replace(image_to_frame(m.message), K=K)
                      for m in read_messages(bag, [IMAGE_TOPIC])]
            _reset_peak(device)
            live_variants(bag, Path(tmp), frames, pred, device, parse_variants(args.variants),
                          args.live_frames, defaults)


def _f(x: object, spec: str = ".3f") -> str:
    return "n/a" if x is None else format(float(x), spec)  # type: ignore[arg-type]


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> str:
    if device.type != "cuda":
        return "n/a (cpu)"
    return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--config", choices=("full", "tiny"), default="full")
    ap.add_argument("--weights", choices=("formula", "random"), default="formula")
    ap.add_argument("--sections", default="sdpa,golden,e2e")
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--live-frames", type=int, default=180, help="frames of each live 30 Hz run")
    ap.add_argument("--e2e", default="formula,simulated,live",
                    help="e2e parts: formula (weights replay), simulated (geometry replay), live")
    ap.add_argument("--variants", default=";predict_after_keyframes=true;predict_ahead=true,window_anchors=6",
                    help="live node parameter overrides per variant, ';'-separated ('' = shipped defaults; "
                         "in the script's 360 s the last may be cut)")
    ap.add_argument("--image-size", type=int, default=518, help="network width (518 = VGGT's)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    dry = args.config == "tiny"
    sections = set(args.sections.split(","))
    t0 = time.perf_counter()
    if "sdpa" in sections:
        check_sdpa(device, dry)
    if sections & {"golden", "e2e"}:
        model = build_model(args.config, device, args.weights)
        if "golden" in sections:
            check_golden(model, device, dry)
        if "e2e" in sections:
            try:
                run_e2e(model, device, args)
            except ImportError as exc:  # the device image may lack rosbags / gtsam / ...: say so, go on
                print(f"e2e skipped: {type(exc).__name__}: {exc}")
    print(f"\ngpu_e2e.py done in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
