"""Preprocessing: reference parity (crop/pad), and the camera <-> network mapping on synthetic images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from vggt_ros.model.preprocess import PreprocessError, PreprocessMap, preprocess_frames


def blob_image(h: int, w: int, cx: float, cy: float, sigma: float, seed: int = 0) -> np.ndarray:
    """Dark textured background with one bright Gaussian blob centred at pixel (cx, cy)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    base = 20.0 + 5.0 * rng.random((h, w))
    img = base + 200.0 * blob
    return np.repeat(np.clip(np.round(img), 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


def centroid(gray: np.ndarray, background: float) -> np.ndarray:
    w = np.clip(gray - background, 0.0, None)
    w[w < 0.2 * w.max()] = 0.0
    yy, xx = np.mgrid[0 : gray.shape[0], 0 : gray.shape[1]]
    return np.array([(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()])


@pytest.mark.parametrize("mode", ["crop", "pad"])
def test_reference_parity(shared_fixtures: Path, mode: str) -> None:
    d = shared_fixtures / "preprocess"
    frames = [np.asarray(Image.open(d / f).convert("RGB")) for f in ("00.png", "01.png")]
    images, maps = preprocess_frames(frames, mode)
    ref = np.load(d / f"{mode}.npz")["images"]
    assert images.shape == ref.shape
    # the reference's filter (bicubic a = -0.5, antialiased) by torch instead of PIL: rounding apart, the
    # same input (model/preprocess.py); measured max 1 grey level on 0.4 % of the values
    diff = np.rint(np.abs(images.numpy() - ref) * 255.0)
    assert diff.max() <= 1.0 and np.count_nonzero(diff) <= 0.01 * diff.size
    assert maps[0].orig_hw == (520, 779) and maps[0].resized_hw == (350, 518)


@pytest.mark.parametrize("hw", [(480, 640), (720, 1280), (240, 320), (640, 480), (392, 518)])
def test_resize_is_pils_bicubic_up_to_rounding(hw: tuple[int, int]) -> None:
    """Shrinking, enlarging or keeping the size: the resize is PIL's BICUBIC (the reference's) up to
    rounding, at most 2 grey levels on under 1 % of the values (the same size: untouched)."""
    h, w = hw
    rng = np.random.default_rng(1)
    img = np.clip(blob_image(h, w, 0.4 * w, 0.6 * h, 0.1 * w).astype(np.int16)
                  + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8)
    images, (m,) = preprocess_frames([img], "crop")
    hr, wr = m.resized_hw
    top = -m.offset_xy[1]  # the portrait frame's centre crop
    ref = np.asarray(Image.fromarray(img).resize((wr, hr), Image.Resampling.BICUBIC))
    ref = ref[top : top + images.shape[2]]
    diff = np.abs(np.rint(images[0].numpy().transpose(1, 2, 0) * 255.0) - ref)
    assert diff.max() <= (0.0 if (hr, wr) == hw else 2.0) and np.count_nonzero(diff) <= 0.01 * diff.size


@pytest.mark.parametrize(
    ("hw", "mode", "net", "resized", "offset"),
    [
        ((480, 640), "crop", (392, 518), (392, 518), (0, 0)),
        ((480, 640), "pad", (518, 518), (392, 518), (0, 63)),
        ((640, 480), "crop", (518, 518), (686, 518), (0, -84)),
        ((640, 480), "pad", (518, 518), (518, 392), (63, 0)),
        ((720, 1280), "crop", (294, 518), (294, 518), (0, 0)),
    ],
)
def test_sizes_and_offsets(hw, mode, net, resized, offset) -> None:
    images, (m,) = preprocess_frames([np.full((*hw, 3), 128, np.uint8)], mode)
    assert images.shape == (1, 3, *net) and images.dtype.is_floating_point
    assert (m.net_hw, m.resized_hw, m.offset_xy) == (net, resized, offset)
    assert net[0] % 14 == 0 and net[1] % 14 == 0
    x0, y0, x1, y1 = m.valid_net_box()
    img = images[0].numpy()
    np.testing.assert_allclose(img[:, y0 : y1 + 1, x0 : x1 + 1], 128 / 255, atol=1e-6)
    if mode == "pad":  # white padding outside the content
        mask = np.ones(net, bool)
        mask[y0 : y1 + 1, x0 : x1 + 1] = False
        assert mask.any() and np.all(img[:, mask] == 1.0)


@pytest.mark.parametrize(("hw", "mode"), [((480, 640), "crop"), ((640, 480), "crop"), ((480, 640), "pad"),
                                          ((300, 1000), "pad"), ((150, 200), "crop")])
def test_mapping_follows_image_content(hw, mode) -> None:
    """A blob drawn at a camera pixel appears where orig_to_net says (PIL's resize geometry)."""
    h, w = hw
    cam = np.array([0.41 * w + 0.3, 0.56 * h - 0.2])
    sigma = max(h, w) / 60.0
    images, (m,) = preprocess_frames([blob_image(h, w, *cam, sigma)], mode)
    gray = images[0, 0].numpy().astype(np.float64) * 255.0
    x0, y0, x1, y1 = m.valid_net_box()
    got = centroid(gray[y0 : y1 + 1, x0 : x1 + 1], 22.5) + np.array([x0, y0])
    want = m.orig_to_net(cam)
    assert np.abs(got - want).max() < 0.08, (got, want)
    np.testing.assert_allclose(m.net_to_orig(m.orig_to_net(cam)), cam, atol=1e-9)


def test_intrinsics_consistency() -> None:
    _, (m,) = preprocess_frames([np.zeros((480, 640, 3), np.uint8)], "crop")
    K = np.array([[525.0, 0.0, 319.5], [0.0, 523.0, 239.5], [0.0, 0.0, 1.0]])
    K_net = m.K_orig_to_net(K)
    pts = np.array([[0.3, -0.2, 2.0], [-1.0, 0.5, 3.5], [0.0, 0.0, 1.0]])
    uv_cam = (pts @ K.T)[:, :2] / pts[:, 2:]
    uv_net = (pts @ K_net.T)[:, :2] / pts[:, 2:]
    np.testing.assert_allclose(m.orig_to_net(uv_cam), uv_net, atol=1e-9)
    np.testing.assert_allclose(m.K_net_to_orig(K_net), K, atol=1e-9)
    sx, sy = m.scale_xy
    assert abs(K_net[0, 0] - 525.0 * sx) < 1e-9 and abs(K_net[1, 1] - 523.0 * sy) < 1e-9
    # VGGT's principal point (W/2, H/2) maps to the camera's centre up to the half-pixel shift.
    c = m.K_net_to_orig(np.array([[300.0, 0, 259.0], [0, 300.0, 196.0], [0, 0, 1]]))
    assert abs(c[0, 2] - (320.0 + 0.5 / sx - 0.5)) < 1e-9 and abs(c[0, 0] - 300.0 / sx) < 1e-9


@pytest.mark.parametrize(("hw", "mode"), [((480, 640), "crop"), ((640, 480), "crop"), ((480, 640), "pad")])
def test_map_to_orig_linear_field_and_nan_crop(hw, mode) -> None:
    _, (m,) = preprocess_frames([np.zeros((*hw, 3), np.uint8)], mode)
    hn, wn = m.net_hw
    vn, un = np.mgrid[0:hn, 0:wn].astype(np.float64)
    field = (0.01 * un - 0.02 * vn + 3.0).astype(np.float32)
    out = m.map_to_orig(field)
    assert out.shape == hw and out.dtype == np.float32
    v0, u0 = np.mgrid[0 : hw[0], 0 : hw[1]].astype(np.float64)
    uvn = m.orig_to_net(np.stack([u0, v0], -1))
    x0, y0, x1, y1 = m.valid_net_box()
    inside = (uvn[..., 0] >= x0) & (uvn[..., 0] <= x1) & (uvn[..., 1] >= y0) & (uvn[..., 1] <= y1)
    expect = 0.01 * uvn[..., 0] - 0.02 * uvn[..., 1] + 3.0
    np.testing.assert_allclose(out[inside], expect[inside], atol=1e-5)  # bilinear is exact on linear fields
    nan_rows = np.isnan(out).all(axis=1)
    if m.offset_xy[1] < 0:  # cropped top/bottom: those camera rows have no prediction
        n_cut = (-m.offset_xy[1]) / m.scale_xy[1]
        assert abs(nan_rows.sum() - 2 * n_cut) <= 2
        assert nan_rows[0] and nan_rows[-1] and not nan_rows[hw[0] // 2]
    else:
        assert not np.isnan(out).any()
    near = m.map_to_orig(field, interpolation="nearest")
    ok = ~np.isnan(near)
    assert np.abs(near[ok] - np.nan_to_num(out)[ok]).max() <= 0.03 / 2 + 1e-5  # within half a pixel step


@pytest.mark.parametrize("interpolation", ["linear", "nearest"])
def test_maps_to_orig_resamples_a_stack_like_each_map_alone(interpolation) -> None:
    """The predictor resamples a window's depth maps as one tensor (on the network's device): each slice
    comes out as map_to_orig gives it, NaN outside the content included."""
    _, (m,) = preprocess_frames([np.zeros((640, 480, 3), np.uint8)], "crop")  # portrait: rows cropped
    rng = np.random.default_rng(0)
    maps = rng.uniform(0.5, 5.0, (3, *m.net_hw)).astype(np.float32)
    stack = m.maps_to_orig(torch.from_numpy(maps), interpolation).numpy()
    assert stack.shape == (3, 640, 480) and stack.dtype == np.float32
    for k in range(3):
        np.testing.assert_array_equal(stack[k], m.map_to_orig(maps[k], interpolation))
    assert 0.1 < np.isnan(stack).mean() < 0.4  # the cropped rows (518 of 691 kept)
    with pytest.raises(PreprocessError):
        m.maps_to_orig(torch.zeros(2, 5, 5))


def test_rgba_composited_on_white_and_gray() -> None:
    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[..., 0] = 200
    rgba = np.concatenate([rgb, np.zeros((60, 80, 1), np.uint8)], axis=2)
    opaque = rgba.copy()
    opaque[..., 3] = 255
    images, _ = preprocess_frames([rgba, opaque, rgb], "crop")
    assert np.all(images[0].numpy() == 1.0)  # transparent -> white
    np.testing.assert_array_equal(images[1].numpy(), images[2].numpy())
    gray, _ = preprocess_frames([rgb[..., 0]], "crop")
    np.testing.assert_array_equal(gray[0, 0].numpy(), gray[0, 2].numpy())


def test_mixed_sizes_padded_white_and_mapped() -> None:
    a = blob_image(480, 640, 300.0, 200.0, 8.0)
    b = blob_image(300, 640, 200.0, 150.0, 8.0, seed=1)
    images, (ma, mb) = preprocess_frames([a, b], "crop")
    assert images.shape == (2, 3, 392, 518)
    assert mb.resized_hw == (238, 518) and mb.offset_xy == (0, 77) and ma.offset_xy == (0, 0)
    assert np.all(images[1, :, :77].numpy() == 1.0) and np.all(images[1, :, 77 + 238 :].numpy() == 1.0)
    gray = images[1, 0].numpy().astype(np.float64) * 255.0
    got = centroid(gray[77 : 77 + 238], 22.5) + np.array([0.0, 77.0])
    assert np.abs(got - mb.orig_to_net(np.array([200.0, 150.0]))).max() < 0.08


@pytest.mark.parametrize(
    "bad",
    [np.zeros((10, 10, 3), np.float32), np.zeros((10, 10, 2), np.uint8), np.zeros((0, 10, 3), np.uint8),
     np.zeros((4, 2000, 3), np.uint8)],
)
def test_bad_frames_raise(bad) -> None:
    with pytest.raises(PreprocessError):
        preprocess_frames([bad], "crop")


def test_bad_calls_raise() -> None:
    with pytest.raises(PreprocessError):
        preprocess_frames([], "crop")
    with pytest.raises(PreprocessError):
        preprocess_frames([np.zeros((10, 10, 3), np.uint8)], "square")  # type: ignore[arg-type]
    m = PreprocessMap("crop", (10, 10), (14, 14), (14, 14), (0, 0))
    with pytest.raises(PreprocessError):
        m.map_to_orig(np.zeros((5, 5), np.float32))
