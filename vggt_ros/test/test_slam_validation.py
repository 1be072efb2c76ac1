"""Door checks: each kind of bad frame gets its reason; good frames update the stream state."""

from __future__ import annotations

import numpy as np
from vggt_ros.slam.validation import FrameValidator
from vggt_ros.types import Frame

K = np.array([[100.0, 0, 80], [0, 100.0, 60], [0, 0, 1]])


def _f(stamp: int, hw=(120, 160), K_=K, dtype=np.uint8, ch=3) -> Frame:
    return Frame(stamp, np.zeros((*hw, ch), dtype), K_)


def test_reasons():
    v = FrameValidator()
    assert v.check(_f(10)) is None
    assert v.check(_f(20, hw=(60, 80))) == "size_changed"
    bad_K = K.copy()
    bad_K[0, 2] = np.nan
    assert v.check(_f(20, K_=bad_K)) == "bad_intrinsics"
    assert v.check(_f(20, K_=-K)) == "bad_intrinsics"
    assert v.check(_f(20, K_=np.eye(2))) == "bad_intrinsics"
    assert v.check(_f(10)) == "non_monotonic_stamp"
    assert v.check(_f(5)) == "non_monotonic_stamp"
    assert v.check(_f(20, dtype=np.float32)) == "bad_image"
    assert v.check(_f(20, ch=4)) == "bad_image"
    assert v.check(Frame(20, np.zeros((120, 160), np.uint8))) == "bad_image"
    assert v.check(Frame(20.5, np.zeros((120, 160, 3), np.uint8))) == "bad_stamp"  # type: ignore[arg-type]
    assert v.check("not a frame") == "bad_type"
    # refused frames did not move the stream state: the next good frame is accepted
    assert v.check(_f(11, K_=None)) is None
    assert v.last_stamp_ns == 11 and v.size == (120, 160)
    v.reset()
    assert v.check(_f(1, hw=(60, 80))) is None
