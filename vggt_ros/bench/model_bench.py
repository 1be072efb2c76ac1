#!/usr/bin/env python3
"""VGGT forward benchmark: time and peak memory by frames, resolution, heads and dtype.

Examples (from vggt_ros/):
  python bench/model_bench.py                          # full model, fp32 CPU, 1 and 2 x 294x518,
                                                       # all heads, next to the reference's times
  python bench/model_bench.py --compare                # cached DINO tokens vs plain forward
  python bench/model_bench.py --config tiny --frames 1,4,8 --res 56x84 --heads agg,all
  python bench/model_bench.py --device cuda --dtype bf16 --weights random --frames 1,2,4 --res 392x518

Heads presets: ``agg`` (aggregator only), ``cam`` (camera), ``cam+depth`` (what the SLAM
predictor needs per window), ``all`` (reference forward: camera, depth, point, track with
``--queries`` points). Memory: CUDA peak allocated, or peak process RSS (sampled) on CPU.
The machine's sustained fp32 GEMM rate is printed too, so times taken on a shared CPU can be
put in context. Runs from the repo tree with ``PYTHONPATH=.`` and needs only torch.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vggt_ros.model.vggt import VGGT, VGGTConfig, compile_aggregator_blocks  # noqa: E402

HEAD_PRESETS: dict[str, tuple[str, ...]] = {
    "agg": (),
    "cam": ("camera",),
    "cam+depth": ("camera", "depth"),
    "all": ("camera", "depth", "point", "track"),
    "node": ("camera", "depth", "track"),  # what the node's window runs (no point head)
}
# Reference implementation, fp32, 2 threads, full forward, as recorded with the golden fixtures
# (docs/architecture.md#reference-timings).
REF_CPU_S = {(1, 294, 518): (14.0, 14.0), (2, 294, 518): (28.0, 32.0), (2, 140, 196): (7.8, 7.8)}
# Reference H100 figures, aggregator only, FlashAttention-3, 518 px (VGGT README): frames -> (s, GB).
REF_H100_AGG = {
    1: (0.04, 1.88),
    2: (0.05, 2.07),
    4: (0.07, 2.45),
    8: (0.11, 3.23),
    10: (0.14, 3.63),
    20: (0.31, 5.58),
    50: (1.04, 11.41),
    100: (3.12, 21.15),
}


class RssSampler:
    """Peak resident memory of this process, sampled every few ms (Linux /proc)."""

    def __init__(self, period_s: float = 0.005) -> None:
        self.period_s = period_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def rss() -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.period_s)

    def __enter__(self) -> RssSampler:
        self.peak = self.rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, self.rss())


def gemm_gflops(device: torch.device, dtype: torch.dtype = torch.float32, n: int = 1024) -> float:
    """Sustained GEMM rate of this machine right now ([782x1024] @ [1024x4096], a ViT-L MLP)."""
    a = torch.randn(782, n, device=device, dtype=dtype)
    w = torch.randn(4 * n, n, device=device, dtype=dtype)
    torch.nn.functional.linear(a, w)
    reps = 3 if device.type == "cpu" else 50
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.nn.functional.linear(a, w)
    _sync(device)
    return 2 * 782 * n * 4 * n * reps / (time.perf_counter() - t0) / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_model(config: str, weights: str, device: torch.device) -> VGGT:
    cfg = VGGTConfig.tiny() if config == "tiny" else VGGTConfig()
    t0 = time.perf_counter()
    model = VGGT.empty(cfg, device=device)
    if weights == "formula":
        from vggt_ros.model.formula_weights import fill_module_

        if device.type != "cpu":
            model = model.to("cpu")
            fill_module_(model)
            model = model.to(device)
        else:
            fill_module_(model)
    else:  # random: fast, finite, small values (timing does not depend on the values)
        g = torch.Generator(device=device).manual_seed(0)
        with torch.no_grad():
            for name, p in model.named_parameters():
                fan_in = p[0].numel() if p.dim() >= 2 else 1
                p.normal_(0.0, 1.0 / fan_in**0.5 if p.dim() >= 2 else 0.02, generator=g)
                if name.endswith("gamma"):
                    p.fill_(0.1)
                elif p.dim() == 1 and name.endswith("weight"):
                    p.fill_(1.0)
    print(
        f"# built {config} model ({weights} weights) on {device} in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    return model


def run_once(
    model: VGGT,
    images: torch.Tensor,
    heads: tuple[str, ...],
    queries: torch.Tensor | None,
    dtype: str,
    cached=None,
) -> tuple[float, dict[str, torch.Tensor], torch.Tensor]:
    device = images.device
    precision: str | None = "auto" if (dtype == "auto") else None
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(dtype)
    ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else _null()
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    out: dict[str, torch.Tensor] = {}
    with torch.inference_mode(), ctx:
        if heads:
            out, tokens = model.infer(
                images,
                query_points=queries if "track" in heads else None,
                heads=heads,
                precision=precision,
                cached_patch_tokens=cached,
            )
        else:  # aggregator only (all 24 layers kept, as the reference's aggregator returns them)
            tokens_list, _, tokens = model.aggregator(images[None], cached)
            del tokens_list
    _sync(device)
    _LAST_CPU_S[0] = time.process_time() - c0
    return time.perf_counter() - t0, out, tokens


#: process CPU time of the last run_once (all threads): on a shared CPU, CPU s / threads
#: estimates the wall time the same work takes on an idle machine.
_LAST_CPU_S = [0.0]


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def measure(
    model: VGGT, images: torch.Tensor, heads, queries, dtype: str, repeats: int, warmup: int, cached=None
) -> tuple[float, float, float]:
    """(best wall s, CPU s of that run, peak memory GB) over ``repeats`` runs after ``warmup``."""
    device = images.device
    for _ in range(warmup):
        run_once(model, images, heads, queries, dtype, cached)
    times: list[tuple[float, float]] = []
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(repeats):
            times.append((run_once(model, images, heads, queries, dtype, cached)[0], _LAST_CPU_S[0]))
        peak = torch.cuda.max_memory_allocated(device) / 1e9
    else:
        with RssSampler() as rs:
            for _ in range(repeats):
                times.append((run_once(model, images, heads, queries, dtype, cached)[0], _LAST_CPU_S[0]))
        peak = rs.peak / 1e9
    wall, cpu = min(times)
    return wall, cpu, peak


def _head_rows(heads_list: list[str], counts: list[int]) -> list[tuple[str, int, str]]:
    """(heads preset, query count, row label) per row: a preset with the track head once per count (labelled
    with it when there are several), others once."""
    rows = []
    for hp in heads_list:
        tracked = "track" in HEAD_PRESETS[hp]
        for n in counts if tracked else counts[:1]:
            rows.append((hp, n, f"{hp} ({n} q)" if tracked and len(counts) > 1 else hp))
    return rows


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t]


def _res(text: str) -> list[tuple[int, int]]:
    out = []
    for r in text.split(","):
        h, w = r.lower().split("x")
        out.append((int(h), int(w)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=("full", "tiny"), default="full")
    ap.add_argument("--weights", choices=("formula", "random"), default="formula")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--dtype",
        default=None,
        help="fp32 | bf16 | fp16 | auto (reference policy); default fp32 on CPU, auto on CUDA",
    )
    ap.add_argument("--frames", default="1,2", help="comma list, e.g. 1,2,4,8")
    ap.add_argument("--res", default="294x518", help="HxW list, multiples of 14, e.g. 294x518,392x518")
    ap.add_argument("--heads", default="all", help=f"comma list of {sorted(HEAD_PRESETS)}")
    ap.add_argument("--queries", default="64",
                    help="track query points (heads with the track head), comma list: a row per count")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=None, help="default 0 on CPU, 2 on CUDA")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument(
        "--compare",
        action="store_true",
        help="cached-token path (all frames but the last cached) vs plain forward",
    )
    ap.add_argument("--compile", default="", metavar="BACKEND",
                    help="torch.compile the aggregator's blocks as the node's compile_backend does "
                         "('inductor', 'cudagraphs', 'aot_eager'); the first call (compile) is timed apart")
    ap.add_argument("--out", default=None, help="also write the table to this file")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    dtype = args.dtype or ("auto" if device.type == "cuda" else "fp32")
    warmup = args.warmup if args.warmup is not None else (2 if device.type == "cuda" else 0)
    if args.threads:
        torch.set_num_threads(args.threads)
    heads_list = [h for h in args.heads.split(",") if h]
    for h in heads_list:
        if h not in HEAD_PRESETS:
            ap.error(f"unknown heads preset {h!r}")

    lines: list[str] = []

    def emit(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    dev_name = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    )
    emit(
        f"# torch {torch.__version__}, {dev_name}, dtype {dtype}, config {args.config}, "
        f"weights {args.weights}"
    )
    emit(
        f"# GEMM fp32 now: {gemm_gflops(device):.0f} GFLOPS"
        + (f"; bf16: {gemm_gflops(device, torch.bfloat16):.0f} GFLOPS" if device.type == "cuda" else "")
    )
    model = build_model(args.config, args.weights, device)
    gen = torch.Generator().manual_seed(0)
    if args.compile:
        compile_aggregator_blocks(model, args.compile)
        emit(f"# aggregator blocks compiled with torch.compile(backend={args.compile!r}); each size's first "
             "call (compile) is timed apart, before the warm-ups")

    if args.compare:
        emit("| frames | HxW | heads | plain s | cached s | cached/plain | max rel diff |")
        emit("|---|---|---|---|---|---|---|")
    else:
        emit(
            "| frames | HxW | heads | dtype | time s | CPU s / threads | peak GB | GEMM GFLOPS "
            "| reference s | ratio (time) | ratio (CPU s / threads) |"
        )
        emit("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = _head_rows(heads_list, _ints(args.queries))
    for h, w in _res(args.res):
        for s in _ints(args.frames):
            images = torch.rand(s, 3, h, w, generator=gen).to(device)
            for hp, nq, label in rows:
                heads = HEAD_PRESETS[hp]
                queries = (torch.rand(nq, 2, generator=gen) * torch.tensor([w - 1.0, h - 1.0])).to(device)
                if args.compare:
                    emit(
                        _compare_row(
                            model, images, heads or ("camera",), queries, dtype, warmup, label, args.repeats
                        )
                    )
                    continue
                if args.compile:
                    t0 = time.perf_counter()
                    measure(model, images, heads, queries, dtype, 1, 0)
                    emit(f"# {s} frames {label}: first call (compile) {time.perf_counter() - t0:.1f} s")
                rate = gemm_gflops(device)  # right before the row: how busy the machine is
                t, cpu, peak = measure(model, images, heads, queries, dtype, args.repeats, warmup)
                cpu_per = cpu / torch.get_num_threads() if device.type == "cpu" else float("nan")
                ref = _ref_text(device, s, h, w, hp, dtype)
                emit(
                    f"| {s} | {h}x{w} | {label} | {dtype} | {t:.3g} | {cpu_per:.3g} | {peak:.2f} "
                    f"| {rate:.0f} | {ref[0]} | {_ratio(t, ref[1])} | {_ratio(cpu_per, ref[1])} |"
                )
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")
    return 0


def _ref_text(device, s, h, w, hp, dtype) -> tuple[str, tuple[float, float] | None]:
    if device.type == "cpu" and hp == "all" and dtype == "fp32" and (s, h, w) in REF_CPU_S:
        lo, hi = REF_CPU_S[(s, h, w)]
        return (f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"), (lo, hi)
    if device.type == "cuda" and hp == "agg" and s in REF_H100_AGG:
        t, gb = REF_H100_AGG[s]
        return f"{t:g} ({gb:g} GB, H100 FA3)", (t, t)
    return "-", None


def _ratio(t: float, ref: tuple[float, float] | None) -> str:
    if ref is None:
        return "-"
    lo, hi = ref
    return f"{t / hi:.2f}x" if lo == hi else f"{t / hi:.2f}-{t / lo:.2f}x"


def _compare_row(model, images, heads, queries, dtype, warmup, hp, repeats: int = 1) -> str:
    """Sliding-window case: the previous window's DINO tokens are reused for frames 0..S-2.

    Plain and cached runs alternate ``repeats`` times; the best of each is reported, so a
    burst of load on a shared machine hits both sides alike.
    """
    s = images.shape[0]
    for _ in range(warmup):
        run_once(model, images, heads, queries, dtype)
    plain, cached_t = [], []
    a = b = None
    cached = None
    for _ in range(max(1, repeats)):
        t, a, tokens = run_once(model, images, heads, queries, dtype)
        plain.append(t)
        cached = [tokens[0, i] for i in range(s - 1)] + [None]
        t, b, _ = run_once(model, images, heads, queries, dtype, cached)
        cached_t.append(t)
    assert a is not None and b is not None
    key = "depth" if "depth" in a else "pose_enc"
    diff = f"{key} {float((a[key] - b[key]).abs().max() / a[key].abs().max()):.1e}"
    t_plain, t_cached = min(plain), min(cached_t)
    return (
        f"| {s} | {images.shape[-2]}x{images.shape[-1]} | {hp} | {t_plain:.2f} | {t_cached:.2f} | "
        f"{t_cached / t_plain:.2f} | {diff} |"
    )


if __name__ == "__main__":
    sys.exit(main())
