"""bench/keyframe_chain.py: the keyframe chain's rotation figures against ground truth."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest
from vggt_ros.geometry.se3 import invert_T, make_T, so3_exp
from vggt_ros.sim.simulated_predictor import SimNoise


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    folder = Path(__file__).resolve().parents[1] / "bench"
    sys.path.insert(0, str(folder))  # it imports slam_robustness from its own folder
    try:
        spec = importlib.util.spec_from_file_location("keyframe_chain", folder / "keyframe_chain.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(folder))
    return mod


def _truth(n: int) -> SimpleNamespace:
    """A sequence double: n poses turning about z and moving along x, index_of(stamp) = stamp."""
    poses = np.stack([make_T(so3_exp(np.array([0.1, 0.0, 0.05 * i])), np.array([0.1 * i, 0.0, 0.0]))
                      for i in range(n)])
    return SimpleNamespace(poses=poses, index_of=lambda s: int(s))


def _keyframes(seq: SimpleNamespace, world: np.ndarray, error_at: int, deg: float) -> list[SimpleNamespace]:
    """Keyframes at seq's poses seen from another world frame (world: 4x4), keyframe `error_at` unpinned and
    turned by `deg` about its camera's y axis, and every later one placed relative to it (a chain: the
    error turns the rest of the path about that keyframe)."""
    E = make_T(so3_exp(np.array([0.0, np.radians(deg), 0.0])), np.zeros(3))
    ref = seq.poses[min(error_at, len(seq.poses) - 1)]
    C = ref @ E @ invert_T(ref)
    kfs = []
    for i, T in enumerate(seq.poses):
        T_est = world @ (C if i >= error_at else np.eye(4)) @ T
        kfs.append(SimpleNamespace(keyframe_id=i, segment_id=0, stamp_ns=i, T_world_cam=T_est,
                                   pinned=i != error_at))
    return kfs


def test_a_chain_step_at_an_unpinned_keyframe_is_all_of_the_walk(bench: ModuleType) -> None:
    seq = _truth(41)
    world = make_T(so3_exp(np.array([0.3, -0.2, 1.0])), np.array([1.0, 2.0, 3.0]))
    f = bench.chain_figures(_keyframes(seq, world, error_at=20, deg=2.0), seq)
    assert f["kf"] == 41 and f["unpinned"] == 1
    assert f["step_unpinned"] == pytest.approx(2.0, abs=1e-6)
    assert f["step_pinned"] == pytest.approx(0.0, abs=1e-6)
    assert f["unpinned_share"] == pytest.approx(1.0)
    assert f["walk1"] == pytest.approx(2.0 / np.sqrt(40), abs=1e-6)  # one step of 2 deg among 40
    assert f["walk10"] == pytest.approx(2.0 * np.sqrt(10 / 31), abs=1e-6)  # 10 of 31 spans cross it
    exact = bench.chain_figures(_keyframes(seq, world, error_at=99, deg=2.0), seq)
    assert exact["unpinned"] == 0 and np.isnan(exact["step_unpinned"])
    assert max(exact["walk1"], exact["walk10"], exact["walk30"], exact["step_pinned"]) < 1e-6


def test_ablations_zero_their_noise_only(bench: ModuleType) -> None:
    harsh = SimNoise.harsh()
    pose = bench.ablated(harsh, "pose")
    assert pose.rot_deg == 0.0 and pose.trans_frac == 0.0 and pose.track_px == harsh.track_px
    assert bench.ablated(harsh, "none") == harsh
    px = bench.ablated(harsh, "track_px")
    assert px.track_px == 0.0 and px.track_outlier_frac == harsh.track_outlier_frac > 0.0
    out = bench.ablated(harsh, "track_outliers")
    assert out.track_outlier_frac == 0.0 and out.track_px == harsh.track_px > 0.0
    with pytest.raises(SystemExit):
        bench.main(["--cases", "figure8", "--ablate", "no_such_noise"])
    with pytest.raises(SystemExit):  # a node parameter out of its range, refused as the node does
        bench.main(["--cases", "figure8", "--param", "track_queries=3"])
