"""slam.window_output.frame_depth and DepthFrame's confidence: one new array per frame, same values."""

from __future__ import annotations

import numpy as np
import pytest
from vggt_ros.slam.updates import DepthFrame
from vggt_ros.slam.window_output import frame_depth
from vggt_ros.types import WindowPrediction


def _prediction(depth: np.ndarray, conf: np.ndarray) -> WindowPrediction:
    S = 1
    return WindowPrediction(
        T_cam_win=np.eye(4)[None].repeat(S, 0), K=np.eye(3)[None].repeat(S, 0),
        depth={0: depth}, depth_conf={0: conf}, tracks=np.zeros((S, 0, 2), np.float32),
        vis=np.zeros((S, 0), np.float32), conf=np.zeros((S, 0), np.float32))


def test_frame_depth_masks_and_scales_and_shares_the_confidence():
    rng = np.random.default_rng(0)
    d = rng.uniform(0.5, 4.0, (6, 8)).astype(np.float32)
    c = rng.uniform(1.6, 3.0, (6, 8)).astype(np.float32)
    d[0, 0], d[0, 1], d[0, 2] = np.nan, -1.0, np.inf
    c[1, 1] = 1.2  # below the threshold
    pred = _prediction(d, c)
    depth, conf = frame_depth(pred, 0, 2.0, 1.5)
    bad = np.zeros_like(d, bool)
    bad[0, :3] = bad[1, 1] = True
    assert np.array_equal(np.isnan(depth), bad)
    assert np.array_equal(depth[~bad], (d * np.float32(2.0))[~bad])  # exactly the scaled prediction
    assert depth.dtype == np.float32 and not np.shares_memory(depth, d)
    assert np.array_equal(d[1, 1], pred.depth[0][1, 1])  # the prediction is left alone
    # the confidence is the prediction's own, read-only: nobody can change the prediction through it
    assert np.shares_memory(conf, c) and not conf.flags.writeable
    with pytest.raises(ValueError):
        conf[0, 0] = 9.0
    frame = DepthFrame(1, 0, "cam", depth, conf, np.eye(3))
    masked = frame.confidence
    assert masked.dtype == np.float32 and np.array_equal(np.isnan(masked), bad)
    assert np.array_equal(masked[~bad], c[~bad])
