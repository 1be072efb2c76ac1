"""Incoming image messages -> (H, W, 3) uint8 RGB, and CameraInfo -> K; any message family.

Encodings are the names of sensor_msgs/image_encodings.hpp. Colour conversion is OpenCV's
(the library every ROS camera stack already depends on, via cv_bridge). Bad input raises
`ImageDecodeError` with a short `reason` code so callers can count drops by reason:

  empty                 zero width/height or no data
  unsupported_encoding  encoding (or CompressedImage format) not handled
  bad_step              step < width * bytes per pixel
  truncated             fewer bytes than the rows need
  bad_size              more bytes than step * height, or odd width for YUV 4:2:2
  corrupt               compressed payload that does not decode

16-bit inputs (mono16, rgb16, bayer_*16, ...) are scaled by their real bit depth, honouring is_bigendian:
a 12-bit camera stores values up to 4095 in 16-bit words, so dropping the low byte would leave it dark.
The rule: bits = the highest bit set in any sample seen so far on the stream (at least 8), and
v8 = round(v * 255 / (2**bits - 1)). A caller decoding a stream passes one `BitDepth` per stream so the
scale only ever grows (a dark first frame cannot make later ones saturate for long, and frames of one
stream keep one scale once the sensor's range has been seen); without it each image uses its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


class ImageDecodeError(ValueError):
    """A frame that cannot be decoded; `reason` is one of the codes in the module docstring."""

    def __init__(self, reason: str, encoding: str, detail: str = "") -> None:
        self.reason = reason
        self.encoding = encoding
        self.detail = detail
        super().__init__(f"{reason} (encoding {encoding!r})" + (f": {detail}" if detail else ""))


@dataclass
class BitDepth:
    """Observed bit depth of a 16-bit image stream (see the module docstring); starts at 8 bits."""

    bits: int = 8

    def observe(self, max_value: int) -> int:
        self.bits = min(16, max(self.bits, int(max_value).bit_length()))
        return self.bits


def scale_to_8bit(samples: np.ndarray, depth: BitDepth | None = None) -> np.ndarray:
    """uint16 samples -> uint8 by the bit depth (BitDepth.observe of their maximum), rounded."""
    d = depth if depth is not None else BitDepth()
    bits = d.observe(int(samples.max()) if samples.size else 0)
    full = float((1 << bits) - 1)
    out = np.rint(samples.astype(np.float32) * (255.0 / full))
    return np.clip(out, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class _Layout:
    channels: int  # samples per pixel in the buffer (YUV 4:2:2: 2 bytes per pixel as 2 samples)
    itemsize: int  # bytes per sample
    convert: int | None  # cv2.COLOR_* to RGB, None when the samples already are RGB


# OpenCV names Bayer patterns by the 2x2 block starting at (1, 1), so ROS's rggb (block at
# (0, 0)) is OpenCV's BG, and so on (cv_bridge uses the same table).
_BAYER = {
    "rggb": cv2.COLOR_BayerBG2RGB,
    "bggr": cv2.COLOR_BayerRG2RGB,
    "gbrg": cv2.COLOR_BayerGR2RGB,
    "grbg": cv2.COLOR_BayerGB2RGB,
}

_LAYOUTS: dict[str, _Layout] = {
    "rgb8": _Layout(3, 1, None),
    "bgr8": _Layout(3, 1, cv2.COLOR_BGR2RGB),
    "rgba8": _Layout(4, 1, cv2.COLOR_RGBA2RGB),
    "bgra8": _Layout(4, 1, cv2.COLOR_BGRA2RGB),
    "mono8": _Layout(1, 1, cv2.COLOR_GRAY2RGB),
    "8UC1": _Layout(1, 1, cv2.COLOR_GRAY2RGB),
    "rgb16": _Layout(3, 2, None),
    "bgr16": _Layout(3, 2, cv2.COLOR_BGR2RGB),
    "rgba16": _Layout(4, 2, cv2.COLOR_RGBA2RGB),
    "bgra16": _Layout(4, 2, cv2.COLOR_BGRA2RGB),
    "mono16": _Layout(1, 2, cv2.COLOR_GRAY2RGB),
    "16UC1": _Layout(1, 2, cv2.COLOR_GRAY2RGB),
    # ROS "yuv422" is UYVY byte order (image_encodings.hpp: YUV422 = "yuv422", UYVY);
    # "yuv422_yuy2" is YUYV (YUY2).
    "yuv422": _Layout(2, 1, cv2.COLOR_YUV2RGB_UYVY),
    "uyvy": _Layout(2, 1, cv2.COLOR_YUV2RGB_UYVY),
    "yuv422_yuy2": _Layout(2, 1, cv2.COLOR_YUV2RGB_YUY2),
    "yuyv": _Layout(2, 1, cv2.COLOR_YUV2RGB_YUY2),
    **{f"bayer_{p}8": _Layout(1, 1, code) for p, code in _BAYER.items()},
    **{f"bayer_{p}16": _Layout(1, 2, code) for p, code in _BAYER.items()},
}

SUPPORTED_ENCODINGS = tuple(sorted(_LAYOUTS))


def _bytes_of(data: Any) -> np.ndarray:
    """uint8 view of a message's data (numpy array, bytes, array.array, or list)."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype.itemsize == 1 else data.view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8)


def _rows(buf: np.ndarray, height: int, step: int, row_bytes: int, encoding: str) -> np.ndarray:
    """The (height, row_bytes) uint8 pixel rows of an image buffer with `step` bytes per row (padding
    dropped); ImageDecodeError 'truncated' / 'bad_size' when the buffer does not match."""
    needed = step * (height - 1) + row_bytes
    if buf.size < needed:
        raise ImageDecodeError("truncated", encoding, f"{buf.size} bytes < {needed} needed")
    if buf.size > step * height:
        raise ImageDecodeError("bad_size", encoding, f"{buf.size} bytes > step*height {step * height}")
    buf = np.ascontiguousarray(buf)
    rows = np.lib.stride_tricks.as_strided(buf, shape=(height, row_bytes), strides=(step, 1))
    return np.ascontiguousarray(rows)


def decode_image(msg: Any, bit_depth: BitDepth | None = None) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB (a new array), honouring step and is_bigendian.

    bit_depth: the stream's BitDepth for 16-bit encodings (module docstring); None = this image's own.
    """
    encoding = str(msg.encoding)
    layout = _LAYOUTS.get(encoding) or _LAYOUTS.get(encoding.lower())
    if layout is None:
        raise ImageDecodeError("unsupported_encoding", encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    buf = _bytes_of(msg.data)
    if height <= 0 or width <= 0 or buf.size == 0:
        raise ImageDecodeError("empty", encoding, f"{width}x{height}, {buf.size} bytes")
    row_bytes = width * layout.channels * layout.itemsize
    if step < row_bytes:
        raise ImageDecodeError("bad_step", encoding, f"step {step} < {row_bytes} bytes per row")
    if layout.channels == 2 and width % 2:
        raise ImageDecodeError("bad_size", encoding, f"odd width {width} for YUV 4:2:2")
    rows = _rows(buf, height, step, row_bytes, encoding)
    if layout.itemsize == 2:
        dtype = ">u2" if int(msg.is_bigendian) else "<u2"
        rows = scale_to_8bit(rows.view(dtype), bit_depth)
    img = rows.reshape(height, width, layout.channels) if layout.channels > 1 else rows
    if layout.convert is None:
        return np.ascontiguousarray(img)
    return cv2.cvtColor(img, layout.convert)


_DEPTH_ENCODINGS = {"16UC1": ("u2", 1000.0), "mono16": ("u2", 1000.0), "32FC1": ("f4", 1.0)}  # per metre


def decode_depth_m(msg: Any) -> np.ndarray:
    """A metric depth sensor_msgs/Image (REP 118: 16UC1 millimetres or 32FC1 metres) -> (H, W) float32
    metres along optical z, NaN where there is no return (0, NaN, inf or negative).

    Raises ImageDecodeError: unsupported_encoding (anything else), empty, bad_step, truncated, bad_size.
    """
    encoding = str(msg.encoding)
    spec = _DEPTH_ENCODINGS.get(encoding.upper() if encoding.lower() != "mono16" else "mono16")
    if spec is None:
        raise ImageDecodeError("unsupported_encoding", encoding, "metric depth needs 16UC1 or 32FC1")
    kind, per_metre = spec
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    buf = _bytes_of(msg.data)
    if height <= 0 or width <= 0 or buf.size == 0:
        raise ImageDecodeError("empty", encoding, f"{width}x{height}, {buf.size} bytes")
    item = int(kind[1])
    row_bytes = width * item
    if step < row_bytes:
        raise ImageDecodeError("bad_step", encoding, f"step {step} < {row_bytes} bytes per row")
    rows = _rows(buf, height, step, row_bytes, encoding)
    dtype = (">" if int(msg.is_bigendian) else "<") + kind
    d = (rows.view(dtype).astype(np.float64) / per_metre).astype(np.float32)
    d[~(np.isfinite(d) & (d > 0))] = np.nan
    return d


def decode_compressed_image(msg: Any) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg/png, as image_transport's compressed plugin) -> RGB uint8.

    format is e.g. 'jpeg', 'png', 'rgb8; jpeg compressed bgr8'; compressedDepth is refused.
    """
    fmt = str(msg.format)
    low = fmt.lower()
    if "compresseddepth" in low or (low and not any(k in low for k in ("jpeg", "jpg", "png"))):
        raise ImageDecodeError("unsupported_encoding", fmt)
    buf = _bytes_of(msg.data)
    if buf.size == 0:
        raise ImageDecodeError("empty", fmt)
    img = cv2.imdecode(np.ascontiguousarray(buf), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise ImageDecodeError("corrupt", fmt, f"{buf.size} bytes do not decode")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def decode_any(msg: Any, bit_depth: BitDepth | None = None) -> np.ndarray:
    """Image or CompressedImage (told apart by their fields) -> (H, W, 3) uint8 RGB."""
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return decode_compressed_image(msg)
    return decode_image(msg, bit_depth)


def camera_info_K(msg: Any, image_size: tuple[int, int] | None = None) -> tuple[np.ndarray | None, str]:
    """sensor_msgs/CameraInfo -> (K (3, 3) float64 or None, reason).

    reason: 'ok', or why K is unusable: 'zero_K' (uncalibrated cameras publish all zeros),
    'non_finite', 'bad_focal' (fx or fy <= 0), 'bad_K' (last row not [0, 0, 1]),
    'size_mismatch' (the info's width x height differs from image_size (H, W) when both are set).
    Reads ROS 2 (`k`) and ROS 1 (`K`) field names.
    """
    flat = np.asarray(msg.k if hasattr(msg, "k") else msg.K, dtype=np.float64).reshape(-1)
    if flat.size != 9:
        return None, "bad_K"
    K = flat.reshape(3, 3)
    if not np.isfinite(K).all():
        return None, "non_finite"
    if not K.any():
        return None, "zero_K"
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        return None, "bad_focal"
    if not np.allclose(K[2], [0.0, 0.0, 1.0]):
        return None, "bad_K"
    w, h = int(msg.width), int(msg.height)
    if image_size is not None and w > 0 and h > 0 and (h, w) != tuple(image_size):
        return None, "size_mismatch"
    return K, "ok"
