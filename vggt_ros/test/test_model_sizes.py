"""Aspect ratios the track head cannot take (issue: a 400x100 camera -> 518x126 into the network broke the
7-level correlation pyramid in every window). Now the predictor pads the network input up to the track
head's minimum side and maps everything back to camera pixels.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from vggt_ros.model.formula_weights import fill_module_
from vggt_ros.model.predictor import PredictorConfig, VGGTPredictor, track_min_side
from vggt_ros.model.preprocess import PreprocessError, network_hw, preprocess_frames
from vggt_ros.model.vggt import VGGT, VGGTConfig
from vggt_ros.types import Frame

REAL_TRACKER_LEVELS = 7  # VGGT-1B's TrackHead: corr_levels 7, stride 2


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_with_real_pyramid() -> VGGT:
    """The tiny test network, with the real tracker's 7 correlation levels (what broke)."""
    cfg = VGGTConfig.tiny()
    cfg.track_kwargs = {**cfg.track_kwargs, "corr_levels": REAL_TRACKER_LEVELS}
    model = VGGT(cfg).eval()
    fill_module_(model)
    return model


def test_track_min_side_from_the_pyramid(model_with_real_pyramid):
    assert track_min_side(model_with_real_pyramid) == 140  # 2 * 2**6 = 128 px -> ten 14-px patches
    assert track_min_side(VGGT.empty(VGGTConfig.tiny())) == 14  # 2 levels: 4 px -> one patch
    assert track_min_side(object()) == 0
    assert network_hw(100, 400) == (126, 518) and network_hw(100, 400, min_hw=(140, 140)) == (140, 518)


def test_a_400x100_camera_window_now_succeeds(model_with_real_pyramid, caplog):
    rng = np.random.default_rng(0)
    frames = [Frame(stamp_ns=i * 33_000_000, rgb=rng.integers(0, 256, (100, 400, 3), dtype=np.uint8))
              for i in range(2)]
    pred = VGGTPredictor.from_model(model_with_real_pyramid, PredictorConfig(device="cpu", image_size=518))
    pred.load()
    queries = np.array([[50.0, 20.0], [200.0, 50.0], [390.0, 90.0]], np.float32)
    with caplog.at_level(logging.WARNING, logger="vggt_ros.model.predictor"):
        out = pred.predict(frames, queries, [0, 1])
        pred.predict(frames, queries, [0, 1])
    notes = [r.getMessage() for r in caplog.records if "minimum side" in r.getMessage()]
    assert len(notes) == 1 and "400x100 -> network 518x126" in notes[0] and "518x140" in notes[0]
    assert out.tracks.shape == (2, 3, 2) and np.array_equal(out.tracks[0], queries)
    assert np.isfinite(out.tracks).all() and np.isfinite(out.vis).all()
    for i in (0, 1):
        assert out.depth[i].shape == (100, 400) and np.isfinite(out.depth[i]).all()  # no pixel lost
    assert out.K.shape == (2, 3, 3) and np.isfinite(out.K).all()


def test_padding_to_min_hw_maps_back_exactly():
    rgb = np.zeros((100, 400, 3), np.uint8)
    images, maps = preprocess_frames([rgb], "crop", 518, min_hw=(140, 140))
    m = maps[0]
    assert tuple(images.shape) == (1, 3, 140, 518) and m.net_hw == (140, 518) and m.offset_xy == (0, 7)
    assert float(images[0, :, :7].min()) == 1.0 and float(images[0, :, -7:].min()) == 1.0  # white pad
    assert float(images[0, :, 7:133].max()) == 0.0  # the (black) image itself
    uv = np.array([[0.0, 0.0], [399.0, 99.0], [123.4, 56.7]])
    np.testing.assert_allclose(m.net_to_orig(m.orig_to_net(uv)), uv, atol=1e-9)
    K = np.array([[300.0, 0, 199.5], [0, 300.0, 49.5], [0, 0, 1]])
    np.testing.assert_allclose(m.K_net_to_orig(m.K_orig_to_net(K)), K, atol=1e-9)
    assert m.K_orig_to_net(K)[1, 2] == pytest.approx(62.5 + 7)  # centre row of 126 px, shifted by the pad
    depth_net = np.full((140, 518), 2.0, np.float32)
    back = m.map_to_orig(depth_net)
    assert back.shape == (100, 400) and np.isfinite(back).all()
    with pytest.raises(PreprocessError, match="multiples of 14"):
        preprocess_frames([rgb], "crop", 518, min_hw=(130, 0))
