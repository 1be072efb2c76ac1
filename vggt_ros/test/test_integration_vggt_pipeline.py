"""The streaming pipeline driven by the REAL network code (VGGTPredictor) with a tiny random-weight VGGT.

Random weights predict garbage geometry, so this checks robustness and bookkeeping, not accuracy:
every frame is accounted for exactly once (posed, or refused/dropped with a reason), nothing crashes,
every output is finite or NaN-marked, and rejected windows are reported with a reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from vggt_ros.model.predictor import PredictorConfig, VGGTPredictor
from vggt_ros.model.vggt import VGGT, VGGTConfig
from vggt_ros.sim.sequence import make_sequence
from vggt_ros.slam.config import PipelineConfig
from vggt_ros.slam.pipeline import Pipeline
from vggt_ros.slam.updates import DepthFrame, FramePose, FrameRefused, WindowStats


@pytest.fixture(scope="module")
def predictor() -> Iterator[VGGTPredictor]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is 10x faster than two fighting
    torch.manual_seed(0)
    model = VGGT(VGGTConfig.tiny()).eval()
    pred = VGGTPredictor.from_model(model, PredictorConfig(image_size=56, device="cpu"))
    pred.load()
    yield pred
    torch.set_num_threads(threads)


def test_pipeline_survives_random_network_and_accounts_every_frame(predictor: VGGTPredictor) -> None:
    seq = make_sequence("loop", 40, width=80, height=60)
    pipe = Pipeline(predictor, PipelineConfig(window_size=8, num_anchors=2))
    updates = []
    for i in range(len(seq)):
        updates += pipe.push(seq[i])
    updates += pipe.flush()

    posed = [u.stamp_ns for u in updates if isinstance(u, FramePose)]
    refused = [u.stamp_ns for u in updates if isinstance(u, FrameRefused)]
    stats = [u for u in updates if isinstance(u, WindowStats)]
    assert len(posed) == len(set(posed)), "a frame was emitted twice"
    assert sorted(posed + refused) == sorted(seq.stamps_ns), "a frame was lost or duplicated"
    assert stats, "no window was processed"
    dropped = sum(pipe.counters.frames_dropped.values()) + sum(pipe.counters.frames_refused.values())
    assert dropped == len(refused)
    for s in stats:
        assert s.reason, "every window states accept/reject reason"
        if not s.accepted:
            assert s.reason != "ok"
    for u in updates:
        if isinstance(u, FramePose):
            assert np.isfinite(u.T_map_cam).all()
            R = u.T_map_cam[:3, :3]
            assert np.allclose(R @ R.T, np.eye(3), atol=1e-6)
        if isinstance(u, DepthFrame):
            assert u.depth.shape == (60, 80)
            d = u.depth[np.isfinite(u.depth)]
            assert (d > 0).all()
    # place recognition on the real network path uses VGGT's own DINOv2 tokens (issue 9), not the image
    kfs = pipe.keyframes.keyframes
    assert kfs and all(kf.descriptor is not None for kf in kfs)
    assert {kf.descriptor.size for kf in kfs} == {VGGTConfig.tiny().embed_dim} == {pipe.loops.places.dim}
