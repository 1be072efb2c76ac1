"""Scale drift and loop closure on a world built to break the core (issue 9): the figure-eight 0.35 m from
two pillars, walls 3-6 m, harsh VGGT-like noise (SimNoise.harsh(), the simulated predictor: a TEST DOUBLE).

Before: every new keyframe's depth scale was its own ratio to the one gauge keyframe (a ~1.2 % RMS step
of the map scale per keyframe), and the loop at the end of the path closed only when a keyframe happened
to fall on the start's view. With seed 3 that run drifted 10 % in scale end to end and closed no loop
(ATE 1.26 % of the path); then 0.3 % and 0.78 % with the loop closed. Since the stitch drops depth-outlier
queries and fuses the new frames' depth of the tracked points (issue 9, 2026-12-04): ATE 0.28 %, drift
2.8 %. The end-to-end drift of one seed is noisy (seeds 0-8, bench/slam_robustness.py: 0.1-4.4 %, median
1.4 %; 0.3-5.9 %, median 1.3 % before that change), so the bound here guards against the random walk of
10 %, not the issue's 2 %, which the README reports over seeds."""

from __future__ import annotations

import numpy as np
import pytest
from vggt_ros.eval.metrics import evaluate_trajectory
from vggt_ros.sim.cases import CASES, make_case_predictor, make_case_sequence
from vggt_ros.sim.simulated_predictor import SimNoise
from vggt_ros.slam.config import PipelineConfig
from vggt_ros.slam.pipeline import Pipeline
from vggt_ros.slam.updates import LoopClosure


@pytest.fixture(scope="module")
def figure8_run():
    seq = make_case_sequence(CASES["figure8"], 160, 120)
    p = Pipeline(make_case_predictor(CASES["figure8"], seq, SimNoise.harsh(), seed=3), PipelineConfig())
    updates = []
    for frame in seq:
        updates += p.push(frame)
    updates += p.flush()
    stamps, T = p.trajectory()
    return seq, p, updates, evaluate_trajectory(seq.stamps_ns, seq.poses, stamps, T)


def test_figure8_scale_does_not_drift(figure8_run):
    seq, p, _, m = figure8_run
    assert m.num_matched == len(seq)
    assert m.scale_drift < 0.04  # end to end (first vs last 20 % of the path, each Sim(3)-aligned)
    assert m.ate_percent < 0.5


def test_figure8_closes_the_loop_where_the_path_returns(figure8_run):
    seq, p, updates, _ = figure8_run
    loops = [u for u in updates if isinstance(u, LoopClosure)]
    assert loops, "the path ends where it started: a loop must close"
    q, m = seq.index_of(loops[-1].stamp_ns), seq.index_of(loops[-1].match_stamp_ns)
    assert np.linalg.norm(seq.poses[q][:3, 3] - seq.poses[m][:3, 3]) < 0.5  # a true loop
