"""VGGTPredictor: protocol, lifecycle, output conventions (through the mapping code), token cache."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from vggt_ros.model.formula_weights import fill_module_
from vggt_ros.model.predictor import (
    FramePreprocessor,
    PredictorConfig,
    PredictorNotLoadedError,
    VGGTPredictor,
    select_device,
    select_dtype,
)
from vggt_ros.model.preprocess import preprocess_frames, to_unit_float
from vggt_ros.model.vggt import VGGT, VGGTConfig
from vggt_ros.model.weights import ModelSource, WeightsFileError
from vggt_ros.types import Frame, Predictor

# Small network input (the reference uses 518; tests only check plumbing and conventions).
SIZE = 112


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_model() -> VGGT:
    model = VGGT(VGGTConfig.tiny()).eval()
    fill_module_(model)  # VGGT-FW1 weights: finite, FoV positive
    return model


def make_frames(n: int, hw: tuple[int, int] = (96, 128), start: int = 0, seed: int = 0) -> list[Frame]:
    rng = np.random.default_rng(seed)
    return [
        Frame(stamp_ns=(start + i) * 33_000_000, rgb=rng.integers(0, 256, (*hw, 3), dtype=np.uint8))
        for i in range(n)
    ]


def predictor(model: VGGT, **kw) -> VGGTPredictor:
    pred = VGGTPredictor.from_model(model, PredictorConfig(image_size=SIZE, device="cpu", **kw))
    pred.load()
    return pred


def test_protocol_and_lazy_lifecycle(tmp_path: Path) -> None:
    pred = VGGTPredictor(ModelSource(path=str(tmp_path / "absent.pt")))  # constructor touches nothing
    assert isinstance(pred, Predictor) and pred.name == "vggt" and not pred.loaded
    with pytest.raises(PredictorNotLoadedError):
        pred.predict(make_frames(2), np.zeros((0, 2)), [])
    with pytest.raises(WeightsFileError):
        pred.load()
    assert not pred.loaded


def test_device_and_precision_policy() -> None:
    cpu = torch.device("cpu")
    assert select_device("cpu") == cpu
    assert select_dtype(cpu, "auto") is None and select_dtype(cpu, "bf16") is None
    assert select_dtype(torch.device("cuda"), "fp32") is None
    assert select_dtype(torch.device("cuda"), "fp16") == torch.float16
    if not torch.cuda.is_available():
        assert select_device("auto") == cpu
        with pytest.raises(RuntimeError, match="CUDA"):
            select_device("cuda")


def test_predict_shapes_and_units(tiny_model: VGGT) -> None:
    pred = predictor(tiny_model)
    frames = make_frames(3)
    q = np.array([[10.0, 20.0], [100.5, 60.25], [64.0, 48.0]], np.float32)
    out = pred.predict(frames, q, depth_for=[2, 1])
    assert out.num_frames == 3
    assert out.T_cam_win.shape == (3, 4, 4) and out.T_cam_win.dtype == np.float64
    np.testing.assert_array_equal(out.T_cam_win[:, 3], np.tile([0.0, 0.0, 0.0, 1.0], (3, 1)))
    R = out.T_cam_win[:, :3, :3]
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.tile(np.eye(3), (3, 1, 1)), atol=1e-5)
    assert out.K.shape == (3, 3, 3) and out.K.dtype == np.float64 and np.all(out.K[:, 0, 0] > 0)
    assert sorted(out.depth) == [1, 2] == sorted(out.depth_conf)
    for i in (1, 2):
        assert out.depth[i].shape == (96, 128) and out.depth[i].dtype == np.float32
        assert np.all(np.isfinite(out.depth[i])) and np.all(out.depth[i] > 0)  # exp activation
        assert np.all(out.depth_conf[i] >= 1.0)  # 1 + exp
    assert out.tracks.shape == (3, 3, 2) and out.tracks.dtype == np.float32
    np.testing.assert_array_equal(out.tracks[0], q)
    assert out.vis.shape == out.conf.shape == (3, 3)
    assert np.all((out.vis >= 0) & (out.vis <= 1) & (out.conf >= 0) & (out.conf <= 1))
    assert out.timings["total_s"] >= out.timings["network_s"] > 0


def test_outputs_are_the_network_outputs_mapped(tiny_model: VGGT) -> None:
    """Same numbers as a direct VGGT.infer on the preprocessed window, mapped to camera pixels."""
    pred = predictor(tiny_model, token_cache_frames=0)
    frames = make_frames(2, hw=(100, 150))
    q = np.array([[30.0, 40.0], [120.0, 70.0]])
    out = pred.predict(frames, q, depth_for=[1])
    images, maps = preprocess_frames([f.rgb for f in frames], "crop", SIZE)
    m = maps[1]
    with torch.inference_mode():
        q_net = torch.tensor(maps[0].orig_to_net(q), dtype=torch.float32)[None]
        ref, _ = tiny_model.infer(
            images[None],
            query_points=q_net,
            depth_frames=[1],
            heads={"camera", "depth", "track"},
            precision=None,
        )
    pe = ref["pose_enc"][0].double().numpy()
    fov_w = pe[1, 8]
    fx_net = (m.net_hw[1] / 2) / math.tan(fov_w / 2)
    assert abs(out.K[1, 0, 0] - fx_net * 150 / m.resized_hw[1]) < 1e-6 * fx_net
    np.testing.assert_allclose(out.T_cam_win[1, :3, 3], pe[1, :3], rtol=1e-6)
    np.testing.assert_allclose(out.depth[1], m.map_to_orig(ref["depth"][0, 0, ..., 0].numpy()), rtol=1e-5)
    track_net = ref["track"][0, 1].double().numpy()
    np.testing.assert_allclose(out.tracks[1], m.net_to_orig(track_net), atol=1e-3)
    np.testing.assert_allclose(out.vis, ref["vis"][0].numpy(), atol=1e-6)


def test_postprocess_conventions_with_known_tensors(tiny_model: VGGT) -> None:
    """Hand-made network outputs: pose, FoV, depth and tracks come back in camera units."""
    pred = predictor(tiny_model)
    known_K = np.array([[200.0, 0.0, 63.5], [0.0, 201.0, 47.5], [0.0, 0.0, 1.0]])
    black = np.zeros((96, 128, 3), np.uint8)
    frames = [Frame(0, black), Frame(1, black, K=known_K)]
    _, maps = preprocess_frames([f.rgb for f in frames], "crop", SIZE)
    hn, wn = maps[0].net_hw  # (84, 112)
    a = 0.3
    pose = np.zeros((1, 2, 9), np.float32)
    pose[0, :, 6] = 1.0  # identity quaternion (x, y, z, w)
    pose[0, 1, :3] = [0.1, -0.2, 0.5]
    pose[0, 1, 5:7] = [math.sin(a / 2), math.cos(a / 2)]  # rotation about z by a
    pose[0, :, 7] = 2 * math.atan(hn / 2 / 100.0)  # fy_net = 100
    pose[0, :, 8] = 2 * math.atan(wn / 2 / 110.0)  # fx_net = 110
    depth = np.full((1, 1, hn, wn, 1), 2.5, np.float32)
    conf = np.full((1, 1, hn, wn), 3.0, np.float32)
    track = np.zeros((1, 2, 1, 2), np.float32)
    track[0, :, 0] = [[56.0, 42.0], [60.0, 40.0]]
    out = {
        "pose_enc": pose,
        "depth": depth,
        "depth_conf": conf,
        "track": track,
        "vis": np.full((1, 2, 1), 0.9, np.float32),
        "conf": np.full((1, 2, 1), 0.8, np.float32),
    }
    q = maps[0].net_to_orig(np.array([[56.0, 42.0]]))
    dense = pred._dense_to_orig({k: torch.from_numpy(v) for k, v in out.items()}, maps, [1])
    res = pred._postprocess(frames, maps, out, q, np.array([True]), dense)
    np.testing.assert_allclose(res.T_cam_win[0], np.eye(4), atol=1e-7)
    Rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    np.testing.assert_allclose(res.T_cam_win[1, :3, :3], Rz, atol=1e-6)
    np.testing.assert_allclose(res.T_cam_win[1, :3, 3], [0.1, -0.2, 0.5], atol=1e-7)
    sx = 112 / 128  # crop: width 128 -> 112, height 96 -> 84
    np.testing.assert_allclose(res.K[0, 0, 0], 110.0 / sx, rtol=1e-5)
    np.testing.assert_allclose(res.K[0, 1, 1], 100.0 / sx, rtol=1e-5)
    np.testing.assert_allclose(res.K[0, :2, 2], [(56 + 0.5) / sx - 0.5, (42 + 0.5) / sx - 0.5], rtol=1e-6)
    np.testing.assert_array_equal(res.K[1], known_K)  # the frame's own K wins
    np.testing.assert_allclose(res.depth[1], 2.5)  # depth values are not rescaled by resizing
    assert res.depth[1].shape == (96, 128) and np.all(res.depth_conf[1] == 3.0)
    np.testing.assert_allclose(res.tracks[1, 0], [(60 + 0.5) / sx - 0.5, (40 + 0.5) / sx - 0.5], rtol=1e-6)
    np.testing.assert_allclose(res.tracks[0], q, rtol=1e-6)


def test_cropped_away_queries_and_depth(tiny_model: VGGT) -> None:
    """Portrait frames lose top/bottom rows in crop mode: NaN depth there, queries there flagged."""
    pred = predictor(tiny_model)
    frames = make_frames(2, hw=(200, 100))
    q = np.array([[50.0, 2.0], [50.0, 100.0]])
    out = pred.predict(frames, q, depth_for=[1])
    nan_rows = np.isnan(out.depth[1]).all(axis=1)
    assert nan_rows[:10].all() and nan_rows[-10:].all() and not nan_rows[80:120].any()
    assert out.vis[0, 0] == 0 and out.conf[1, 0] == 0 and np.isnan(out.tracks[1, 0]).all()
    assert out.vis[1, 1] > 0 and np.all(np.isfinite(out.tracks[:, 1]))
    np.testing.assert_array_equal(out.tracks[0], q.astype(np.float32))


def test_no_queries_no_depth(tiny_model: VGGT) -> None:
    out = predictor(tiny_model).predict(make_frames(2), np.zeros((0, 2), np.float32), depth_for=[])
    assert out.depth == {} and out.tracks.shape == (2, 0, 2) and out.vis.shape == (2, 0)
    with pytest.raises(ValueError):
        predictor(tiny_model).predict(make_frames(2), np.zeros((0, 2)), depth_for=[5])
    with pytest.raises(ValueError):
        predictor(tiny_model).predict(make_frames(2), np.array([[np.nan, 1.0]]), depth_for=[])


def test_token_cache_reuses_frames_and_matches(tiny_model: VGGT) -> None:
    cached = predictor(tiny_model, token_cache_frames=8)
    plain = predictor(tiny_model, token_cache_frames=0)
    frames = make_frames(4)
    q = np.array([[40.0, 30.0]])
    first = cached.predict(frames[:3], q, [2])
    assert first.timings["cached_frames"] == 0
    window2 = [frames[0], frames[2], frames[3]]  # anchor + overlap + a new frame
    second = cached.predict(window2, q, [2])
    assert second.timings["cached_frames"] == 2 and cached.cache.hits == 2
    ref = plain.predict(window2, q, [2])
    np.testing.assert_allclose(second.T_cam_win, ref.T_cam_win, atol=1e-5)
    np.testing.assert_allclose(second.depth[2], ref.depth[2], rtol=1e-5)
    np.testing.assert_allclose(second.tracks, ref.tracks, atol=1e-3)
    # place descriptors: every frame, unit norm, the patch-token dimension; a cached frame's is its own
    assert sorted(second.descriptors) == [0, 1, 2]
    for i, d in second.descriptors.items():
        assert d.shape == (tiny_model.config.embed_dim,) and d.dtype == np.float32
        assert np.linalg.norm(d) == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(d, ref.descriptors[i], atol=1e-6)
    np.testing.assert_allclose(second.descriptors[0], first.descriptors[0], atol=1e-6)
    assert float(second.descriptors[0] @ second.descriptors[2]) < 1.0 - 1e-4  # other frames differ
    altered = Frame(frames[0].stamp_ns, frames[0].rgb[::-1].copy())  # same stamp, other pixels
    third = cached.predict([altered, frames[2], frames[3]], q, [2])
    assert third.timings["cached_frames"] == 2  # frames 2 and 3 only
    cached.unload()
    assert len(cached.cache) == 0 and not cached.loaded
    cached.load()
    assert cached.predict(window2, q, [2]).timings["cached_frames"] == 0


def test_load_from_file_matches_in_memory(tiny_model: VGGT, tmp_path: Path) -> None:
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_model.state_dict().items()}, str(path))
    cfg = PredictorConfig(image_size=SIZE, device="cpu")
    from_file = VGGTPredictor(str(path), cfg, model_config=VGGTConfig.tiny())
    report = from_file.load()
    assert report is not None and report.num_tensors == len(tiny_model.state_dict())
    frames, q = make_frames(2), np.array([[20.0, 30.0]])
    a = from_file.predict(frames, q, [1])
    b = predictor(tiny_model).predict(frames, q, [1])
    np.testing.assert_array_equal(a.T_cam_win, b.T_cam_win)
    np.testing.assert_array_equal(a.depth[1], b.depth[1])
    from_file.unload()
    assert not from_file.loaded


@pytest.mark.slow
def test_compiled_aggregator_matches_eager(tiny_model: VGGT) -> None:
    """Opt-in torch.compile path (aot_eager here: no C++ toolchain needed) against eager, same window."""
    import copy

    frames = make_frames(3, seed=5)
    q = np.array([[30.0, 40.0], [64.0, 48.0]], np.float32)
    eager = predictor(tiny_model).predict(frames, q, [0, 1, 2])
    compiled_pred = predictor(copy.deepcopy(tiny_model), compile_backend="aot_eager")
    blocks = compiled_pred._model.aggregator.frame_blocks  # type: ignore[union-attr]
    assert all(getattr(b, "_compiled_call_impl", None) is not None for b in blocks)
    comp = compiled_pred.predict(frames, q, [0, 1, 2])
    np.testing.assert_allclose(comp.T_cam_win, eager.T_cam_win, rtol=1e-4, atol=1e-5)
    for i in range(3):
        np.testing.assert_allclose(comp.depth[i], eager.depth[i], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(comp.tracks, eager.tracks, atol=1e-2)


def test_frame_preprocessor_matches_preprocess_frames_and_resizes_each_frame_once() -> None:
    """Windows sharing frames (anchors) give the same tensors as preprocess_frames, bit for bit, and
    each distinct frame is resized once; a reused stamp with other pixels is resized again."""
    frames = make_frames(8, hw=(120, 200))
    prep = FramePreprocessor("crop", SIZE, capacity=16)
    windows = [[frames[0], *frames[1:5]], [frames[0], frames[4], *frames[5:8]]]
    for w in windows:
        images, maps, keys = prep(w, (28, 28))
        ref, ref_maps = preprocess_frames([f.rgb for f in w], "crop", SIZE, (28, 28))
        assert images.dtype == torch.uint8 and torch.equal(to_unit_float(images), ref)
        assert maps == ref_maps and len(set(keys)) == len(w)
    assert (prep.cache.misses, prep.cache.hits) == (8, 2)
    other = Frame(frames[0].stamp_ns, frames[0].rgb[::-1].copy(), frames[0].K, frames[0].frame_id)
    images, _, _ = prep([other], (28, 28))
    assert prep.cache.misses == 9
    assert torch.equal(to_unit_float(images), preprocess_frames([other.rgb], "crop", SIZE, (28, 28))[0])


def test_frames_prepared_from_another_thread_serve_the_window_unchanged() -> None:
    """prepare() (the frame callback's thread) resizes frames into the cache while windows are
    preprocessed on another thread: every window equals preprocess_frames bit for bit and finds the
    prepared frames resized."""
    import threading

    frames = make_frames(24, hw=(120, 200))
    prep = FramePreprocessor("crop", SIZE, capacity=32)
    t = threading.Thread(target=lambda: [prep.prepare(f) for f in frames])
    t.start()
    windows = [frames[i : i + 6] for i in range(0, 24, 6)]
    for w in windows:
        images, _, _ = prep(w, (28, 28))
        assert torch.equal(
            to_unit_float(images), preprocess_frames([f.rgb for f in w], "crop", SIZE, (28, 28))[0]
        )
    t.join()
    before = prep.cache.misses
    assert [prep.prepare(f) for f in frames[-4:]] == [False] * 4  # already there
    prep(frames[-4:], (28, 28))
    assert prep.cache.misses == before and prep.cache.hits >= 4
