"""Image decoding for every supported encoding from synthetic images of known content, padded
and unpadded rows, both byte orders; every malformed case raises its reason code."""

from __future__ import annotations

import array
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
from vggt_ros.msgs.builders import MessageBuilder
from vggt_ros.msgs.decode import (
    SUPPORTED_ENCODINGS,
    ImageDecodeError,
    camera_info_K,
    decode_any,
    decode_compressed_image,
    decode_image,
)
from vggt_ros.msgs.family import RosbagsFamily
from vggt_ros.msgs.typestore import get_typestore

H, W = 24, 32
PAD = 7  # odd padding: rows not aligned to anything


def block_image() -> np.ndarray:
    """(H, W, 3) uint8 of saturated 8x8 colour blocks (chroma subsampling and demosaicing are exact
    inside a block, and swapped channels or byte orders change the colours by > 100)."""
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [20, 200, 180],
                        [250, 120, 10], [60, 60, 60], [200, 30, 220], [255, 255, 255], [0, 0, 0],
                        [90, 160, 40], [130, 10, 90]], dtype=np.uint8)
    by, bx = np.mgrid[0:H, 0:W] // 8
    return palette[(by * (W // 8) + bx) % len(palette)]


RGB = block_image()
GRAY = (np.arange(H * W, dtype=np.uint32).reshape(H, W) * 7 % 256).astype(np.uint8)


def image_msg(payload: np.ndarray, encoding: str, *, pad: int = 0, bigendian: int = 0,
              data_kind: str = "numpy") -> Any:
    """Image message (rosbags class) of raw per-row bytes `payload` (H, row_bytes), rows padded."""
    rows = np.ascontiguousarray(payload).reshape(payload.shape[0], -1).view(np.uint8)
    if pad:
        rows = np.concatenate([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)], axis=1)
    data = rows.reshape(-1)
    if data_kind == "bytes":  # rclpy may hand bytes / array.array
        return SimpleNamespace(height=payload.shape[0], width=W, encoding=encoding, is_bigendian=bigendian,
                               step=rows.shape[1], data=data.tobytes())
    if data_kind == "array":
        return SimpleNamespace(height=payload.shape[0], width=W, encoding=encoding, is_bigendian=bigendian,
                               step=rows.shape[1], data=array.array("B", data.tobytes()))
    ts = get_typestore()
    hdr = ts.types["std_msgs/msg/Header"](stamp=ts.types["builtin_interfaces/msg/Time"](sec=1, nanosec=2),
                                          frame_id="cam")
    return ts.types["sensor_msgs/msg/Image"](header=hdr, height=payload.shape[0], width=W, encoding=encoding,
                                             is_bigendian=bigendian, step=rows.shape[1], data=data)


def to16(a8: np.ndarray, bigendian: bool) -> np.ndarray:
    """uint8 -> full-range uint16 (v * 257: 255 -> 65535), so the 16-bit scale maps it back exactly."""
    v = a8.astype(np.uint16) * np.uint16(257)
    return v.astype(">u2" if bigendian else "<u2")


def yuv422(rgb: np.ndarray, order: str) -> np.ndarray:
    """BT.601 video-range 4:2:2 (what OpenCV's YUV2RGB_UYVY/YUY2 invert), packed as `order`."""
    f = rgb.astype(np.float64)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    u2 = (u[:, 0::2] + u[:, 1::2]) / 2
    v2 = (v[:, 0::2] + v[:, 1::2]) / 2
    planes = {"Y0": y[:, 0::2], "Y1": y[:, 1::2], "U": u2, "V": v2}
    seq = ["U", "Y0", "V", "Y1"] if order == "uyvy" else ["Y0", "U", "Y1", "V"]
    out = np.stack([planes[k] for k in seq], axis=-1)  # (H, W/2, 4)
    return np.clip(np.round(out), 0, 255).astype(np.uint8).reshape(rgb.shape[0], -1)


def bayer(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Mosaic: pattern names the 2x2 block at (0, 0), e.g. 'rggb' = R G / G B."""
    ch = {"r": 0, "g": 1, "b": 2}
    out = np.empty(rgb.shape[:2], rgb.dtype)
    for i, c in enumerate(pattern):
        dy, dx = divmod(i, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, ch[c]]
    return out


def cases() -> list[tuple[str, Any, np.ndarray, int]]:
    """(encoding, payload builder(bigendian) -> (H, row) array, expected RGB, tolerance)."""
    gray3 = np.repeat(GRAY[..., None], 3, axis=2)
    alpha = np.full((H, W, 1), 77, np.uint8)
    out: list[tuple[str, Any, np.ndarray, int]] = [
        ("rgb8", lambda be: RGB, RGB, 0),
        ("bgr8", lambda be: RGB[..., ::-1], RGB, 0),
        ("rgba8", lambda be: np.concatenate([RGB, alpha], 2), RGB, 0),
        ("bgra8", lambda be: np.concatenate([RGB[..., ::-1], alpha], 2), RGB, 0),
        ("mono8", lambda be: GRAY, gray3, 0),
        ("mono16", lambda be: to16(GRAY, be), gray3, 0),
        ("rgb16", lambda be: to16(RGB, be), RGB, 0),
        ("bgr16", lambda be: to16(RGB[..., ::-1], be), RGB, 0),
        ("yuv422", lambda be: yuv422(RGB, "uyvy"), RGB, 4),
        ("uyvy", lambda be: yuv422(RGB, "uyvy"), RGB, 4),
        ("yuv422_yuy2", lambda be: yuv422(RGB, "yuyv"), RGB, 4),
        ("yuyv", lambda be: yuv422(RGB, "yuyv"), RGB, 4),
    ]
    for p in ("rggb", "bggr", "gbrg", "grbg"):
        out.append((f"bayer_{p}8", lambda be, p=p: bayer(RGB, p), RGB, 0))
        out.append((f"bayer_{p}16", lambda be, p=p: to16(bayer(RGB, p), be), RGB, 0))
    return out


CASES = cases()


def test_cases_cover_the_camera_encodings() -> None:
    tested = {c[0] for c in CASES}
    assert tested <= set(SUPPORTED_ENCODINGS)
    # encodings not in CASES are aliases of tested layouts (8UC1 = mono8, 16UC1 = mono16, *a16)
    assert set(SUPPORTED_ENCODINGS) - tested == {"8UC1", "16UC1", "rgba16", "bgra16"}


# every case unpadded and with padded rows; 16-bit samples also big-endian
PARAMS = [
    pytest.param(*case, pad, be, id=f"{case[0]}-pad{pad}-{'be' if be else 'le'}")
    for case in CASES for pad in (0, PAD) for be in ((0, 1) if "16" in case[0] else (0,))
]


@pytest.mark.parametrize("encoding,make,expected,tol,pad,bigendian", PARAMS)
def test_decode_known_content(encoding: str, make: Any, expected: np.ndarray, tol: int, pad: int,
                              bigendian: int) -> None:
    msg = image_msg(make(bool(bigendian)), encoding, pad=pad, bigendian=bigendian)
    rgb = decode_image(msg)
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    if encoding.startswith("bayer"):  # demosaicing is exact only inside a constant block
        got, want = rgb[2:6, 2:6], expected[2:6, 2:6]  # diff check below; every block checked here
        for oy in range(0, H, 8):
            for ox in range(0, W, 8):
                np.testing.assert_array_equal(rgb[oy + 2:oy + 6, ox + 2:ox + 6],
                                              expected[oy + 2:oy + 6, ox + 2:ox + 6], err_msg=encoding)
    else:
        got, want = rgb, expected
    diff = np.abs(got.astype(int) - want.astype(int)).max()
    assert diff <= tol, (encoding, diff)


@pytest.mark.parametrize("kind", ["bytes", "array"])
def test_rclpy_style_data(kind: str) -> None:
    msg = image_msg(RGB[..., ::-1], "bgr8", pad=3, data_kind=kind)
    np.testing.assert_array_equal(decode_image(msg), RGB)


def test_rgba16_and_aliases() -> None:
    a = np.concatenate([RGB, np.zeros((H, W, 1), np.uint8)], 2)
    np.testing.assert_array_equal(decode_image(image_msg(to16(a, True), "rgba16", bigendian=1)), RGB)
    np.testing.assert_array_equal(decode_image(image_msg(GRAY, "8UC1"))[..., 1], GRAY)


def test_last_row_without_padding_is_accepted() -> None:
    msg = image_msg(RGB, "rgb8", pad=5)
    msg.data = msg.data[:-5]
    np.testing.assert_array_equal(decode_image(msg), RGB)


def test_builder_output_decodes() -> None:
    msg = MessageBuilder(RosbagsFamily()).rgb_image(5, "cam", RGB)
    np.testing.assert_array_equal(decode_any(msg), RGB)


def reason_of(msg: Any) -> ImageDecodeError:
    with pytest.raises(ImageDecodeError) as info:
        decode_any(msg)
    return info.value


@pytest.mark.parametrize("encoding", ["32FC1", "jpeg", "bogus", "", "nv12"])
def test_unsupported_encoding(encoding: str) -> None:
    err = reason_of(image_msg(RGB, encoding))
    assert err.reason == "unsupported_encoding" and err.encoding == encoding
    assert repr(encoding) in str(err)


def test_malformed_images_raise_their_reason() -> None:
    good = image_msg(RGB, "rgb8", pad=4)
    assert reason_of(SimpleNamespace(**{**vars_of(good), "step": 3 * W - 1})).reason == "bad_step"
    assert reason_of(SimpleNamespace(**{**vars_of(good), "data": good.data[: good.step * (H - 1)]})).reason \
        == "truncated"
    assert reason_of(SimpleNamespace(**{**vars_of(good), "data": good.data[:1]})).reason == "truncated"
    assert reason_of(SimpleNamespace(**{**vars_of(good), "data": np.zeros(0, np.uint8)})).reason == "empty"
    assert reason_of(SimpleNamespace(**{**vars_of(good), "width": 0})).reason == "empty"
    assert reason_of(SimpleNamespace(**{**vars_of(good), "height": 0})).reason == "empty"
    more = np.concatenate([good.data, np.zeros(10, np.uint8)])
    assert reason_of(SimpleNamespace(**{**vars_of(good), "data": more})).reason == "bad_size"
    odd = image_msg(yuv422(RGB, "uyvy"), "uyvy")
    odd_ns = SimpleNamespace(**{**vars_of(odd), "width": W - 1, "step": 2 * (W - 1)})
    odd_ns.data = odd_ns.data[: 2 * (W - 1) * H]
    err = reason_of(odd_ns)
    assert err.reason == "bad_size" and err.encoding == "uyvy"


def vars_of(msg: Any) -> dict[str, Any]:
    return {k: getattr(msg, k) for k in ("height", "width", "encoding", "is_bigendian", "step", "data")}


def compressed(data: bytes, fmt: str) -> Any:
    ts = get_typestore()
    hdr = ts.types["std_msgs/msg/Header"](stamp=ts.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0),
                                          frame_id="cam")
    return ts.types["sensor_msgs/msg/CompressedImage"](header=hdr, format=fmt,
                                                       data=np.frombuffer(data, np.uint8))


def test_compressed_png_exact_and_jpeg_close() -> None:
    ok, png = cv2.imencode(".png", RGB[..., ::-1])
    assert ok
    np.testing.assert_array_equal(decode_compressed_image(compressed(png.tobytes(), "png")), RGB)
    np.testing.assert_array_equal(decode_any(compressed(png.tobytes(), "rgb8; png compressed bgr8")), RGB)
    smooth = cv2.GaussianBlur(RGB, (0, 0), 3)
    ok, jpg = cv2.imencode(".jpg", smooth[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    got = decode_any(compressed(jpg.tobytes(), "jpeg"))
    assert got.shape == (H, W, 3)
    assert np.abs(got.astype(int) - smooth.astype(int)).mean() < 3


def test_compressed_malformed() -> None:
    ok, png = cv2.imencode(".png", RGB)
    assert reason_of(compressed(png.tobytes()[:40], "png")).reason == "corrupt"
    assert reason_of(compressed(b"\x00" * 100, "jpeg")).reason == "corrupt"
    assert reason_of(compressed(b"", "jpeg")).reason == "empty"
    err = reason_of(compressed(png.tobytes(), "16UC1; compressedDepth"))
    assert err.reason == "unsupported_encoding" and "compressedDepth" in str(err)
    assert reason_of(compressed(png.tobytes(), "theora")).reason == "unsupported_encoding"


def info_msg(k: list[float], width: int = W, height: int = H) -> Any:
    b = MessageBuilder(RosbagsFamily())
    msg = b.camera_info(0, "cam", np.eye(3), width, height)
    msg.k = np.array(k, dtype=np.float64)
    return msg


def test_camera_info_K() -> None:
    good = [200.0, 0, 16, 0, 210.0, 12, 0, 0, 1]
    K, reason = camera_info_K(info_msg(good), image_size=(H, W))
    assert reason == "ok"
    assert K is not None and K[0, 0] == 200.0 and K[1, 2] == 12 and K.shape == (3, 3)
    assert camera_info_K(info_msg([0.0] * 9)) == (None, "zero_K")
    assert camera_info_K(info_msg([np.nan] + good[1:])) == (None, "non_finite")
    assert camera_info_K(info_msg([-200.0] + good[1:])) == (None, "bad_focal")
    assert camera_info_K(info_msg(good[:8] + [0.0])) == (None, "bad_K")
    assert camera_info_K(info_msg(good, 640, 480), image_size=(H, W)) == (None, "size_mismatch")
    assert camera_info_K(info_msg(good, 0, 0), image_size=(H, W))[1] == "ok"  # size unknown: trust K


def test_12bit_mono16_scales_by_its_bit_depth() -> None:
    """A 12-bit camera (values <= 4095 in 16-bit words). Old code kept the high byte: 4095 -> 15 (dark)."""
    from vggt_ros.msgs.decode import BitDepth

    v = (GRAY.astype(np.uint32) * 4095 // 255).astype(np.uint16)
    v.flat[0] = 4095
    out = decode_image(image_msg(v.astype("<u2"), "mono16"))[..., 0]
    assert out.flat[0] == 255
    np.testing.assert_allclose(out.astype(int), np.rint(v * (255 / 4095)).astype(int), atol=0)
    # one stream keeps the largest depth seen: a later darker frame is not brightened
    depth = BitDepth()
    decode_image(image_msg(v.astype("<u2"), "mono16"), depth)
    half = (v // 2).astype("<u2")
    assert decode_image(image_msg(half, "mono16"), depth)[..., 0].max() == round(2047 * 255 / 4095)
    assert depth.bits == 12
