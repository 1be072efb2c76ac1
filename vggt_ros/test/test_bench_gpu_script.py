"""The one prepared GPU script (bench/gpu_model_bench.sh) runs blind on a GPU machine: its dry mode
(DRY=1: CPU, tiny model, small sizes) goes through every step here, so a broken step shows up before a
GPU session spends its minutes on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # ~40 s on 2 shared cores
SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_model_bench.sh"
STEPS = ("0. sdpa kernels", "1. tiny smoke", "2. forward table", "2b. node window",
         "2c. compiled node window", "2d. track queries", "3. cached tokens", "4. golden", "5. end to end")


def test_gpu_script_dry_run_completes_every_step(tmp_path):
    env = {**os.environ, "DRY": "1", "OUT": str(tmp_path), "PYTHON": sys.executable}
    res = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    for step in STEPS:
        assert f"##### {step}: done" in out, f"step {step!r} did not complete:\n{out[-3000:]}"
    assert "backends that run:" in out and "bf16 tolerance" in out
    assert "| node (1024 q) |" in out and "| cam+depth |" in out  # 2d: a row per query count
    assert "replay (sync), formula weights:" in out
    assert "| shipped defaults | 30 Hz |" in out
    assert "| predict_ahead=True, window_anchors=6 | all queued |" in out
    assert "replay (sync), simulated geometry + real network cost: 40 processed" in out
    assert "run wall" in out and "| 16 x 256 |" in out  # the predictor's time by call kind
    for name in ("gpu_model_bench.md", "gpu_window.md", "gpu_compare.md", "golden.txt", "e2e.txt"):
        assert (tmp_path / name).is_file(), name
