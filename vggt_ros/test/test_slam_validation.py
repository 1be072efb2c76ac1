"""Door checks: each kind of bad frame gets its reason; good frames update the stream state."""

from __future__ import annotations

import numpy as np
from vggt_ros.slam.validation import FrameValidator
from vggt_ros.types import Frame

K = np.array([[100.0, 0, 80], [0, 100.0, 60], [0, 0, 1]])


def _f(stamp: int, hw=(120, 160), K_=K, dtype=np.uint8, ch=3) -> Frame:
    """A textured frame (a blank one is refused as blank_image)."""
    rgb = np.random.default_rng(abs(int(stamp))).integers(0, 256, (*hw, ch)).astype(dtype)
    return Frame(stamp, rgb, K_)


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
    # covered lens / black or saturated frames: nothing to predict
    assert v.check(Frame(20, np.zeros((120, 160, 3), np.uint8), K)) == "blank_image"
    assert v.check(Frame(20, np.full((120, 160, 3), 255, np.uint8), K)) == "blank_image"
    dark = np.random.default_rng(1).normal(12, 1.5, (120, 160, 3)).clip(0, 255).astype(np.uint8)
    assert v.check(Frame(20, dark, K)) == "blank_image"  # lens cap: sensor noise only
    dim = np.random.default_rng(2).normal(20, 8, (120, 160, 3)).clip(0, 255).astype(np.uint8)
    assert v.check(Frame(20, dim, K)) is None  # a dim scene with texture is kept
    v.last_stamp_ns = 10
    # refused frames did not move the stream state: the next good frame is accepted
    assert v.check(_f(11, K_=None)) is None
    assert v.last_stamp_ns == 11 and v.size == (120, 160)
    v.reset()
    assert v.check(_f(1, hw=(60, 80))) is None


def test_non_finite_K_is_refused_at_the_door():
    """Inf as well as NaN: the predictor never sees a non-finite K (bad_intrinsics, counted)."""
    for bad in (np.nan, np.inf, -np.inf):
        Kb = K.copy()
        Kb[1, 1] = bad
        assert FrameValidator().check(_f(1, K_=Kb)) == "bad_intrinsics"


def _g(stamp: int, hw: tuple[int, int], value: int = 0, texture: bool = True) -> Frame:
    """A frame of size hw whose K is the same camera as K at 160x120 (scaled); with texture a
    checkerboard of 1/20-width cells (a uniform frame is refused as blank_image)."""
    from vggt_ros.slam.validation import scale_intrinsics

    rgb = np.full((*hw, 3), value, np.uint8)
    if texture:
        yy, xx = np.mgrid[0 : hw[0], 0 : hw[1]] * 20 // hw[1]
        rgb[(yy + xx) % 2 == 1] = 255 - value
    return Frame(stamp, rgb, scale_intrinsics(K, hw[1] / 160, hw[0] / 120))


def test_sizer_majority_of_the_first_frames_sets_the_working_size():
    """Two odd first frames (old behaviour: they fixed the size and every later frame was refused)."""
    from vggt_ros.slam.validation import FrameSizer

    s = FrameSizer(decide_after=6)
    out = []
    for i in range(10):
        out += s.push(_g(i, (240, 320) if i < 2 else (120, 160)))
    out += s.flush()
    assert [f.stamp_ns for f in out] == list(range(10))  # nothing lost, order kept
    assert {f.size for f in out} == {(120, 160)} and s.size == (120, 160)
    assert s.changes == 1 and s.frames_rescaled == 2
    np.testing.assert_allclose(out[0].K, K, atol=1e-12)  # K scaled with the image: the 160x120 camera
    v = FrameValidator(refuse_repeats=False)  # the frames are one checkerboard: repeats by design
    assert all(v.check(f) is None for f in out)


def test_sizer_counts_each_change_once_and_scales_K():
    from vggt_ros.slam.validation import FrameSizer

    s = FrameSizer(decide_after=2)
    sizes = [(120, 160)] * 3 + [(60, 80)] * 3 + [(120, 160)] * 2 + [(240, 320)]
    out = []
    for i, hw in enumerate(sizes):
        out += s.push(_g(i, hw, value=200, texture=False))
    out += s.flush()
    assert len(out) == len(sizes) and {f.size for f in out} == {(120, 160)}
    assert s.changes == 3 and s.frames_rescaled == 4
    for f in out:
        np.testing.assert_allclose(f.K, K, atol=1e-12)
        assert int(f.rgb.min()) == int(f.rgb.max()) == 200


def test_sizer_releases_held_frames_at_the_end_of_a_short_stream():
    from vggt_ros.slam.validation import FrameSizer

    s = FrameSizer(decide_after=16)
    assert s.push(_g(0, (120, 160))) == [] and s.push(_g(1, (60, 80))) == []
    out = s.flush()
    assert [f.size for f in out] == [(60, 80), (60, 80)]  # a tie: the size seen last wins


def test_blank_check_on_a_vga_frame():
    """is_blank samples about 120 rows: a covered VGA lens (sensor noise only) is blank, a dark scene
    with texture is not."""
    from vggt_ros.geometry.image import is_blank

    rng = np.random.default_rng(0)
    covered = np.clip(8 + rng.normal(0, 1.0, (480, 640, 3)), 0, 255).astype(np.uint8)
    v, u = np.mgrid[0:480, 0:640]
    dark = np.repeat((10 + 12 * (((u // 16) + (v // 16)) % 2))[..., None], 3, 2).astype(np.uint8)
    assert is_blank(covered) and not is_blank(dark)


def test_a_repeated_image_is_refused_until_the_view_changes():
    """A stalled driver re-sends its last buffer with new stamps: byte for byte the last accepted image is
    refused ("repeated_image"), however many times it comes; one grey level anywhere is a new exposure."""
    v = FrameValidator()
    first = _f(1)
    assert v.check(first) is None
    for stamp in (2, 3, 4):
        assert v.check(Frame(stamp, first.rgb.copy(), K)) == "repeated_image"
    assert v.last_stamp_ns == 1  # a refused repeat does not move the stream state
    moved = first.rgb.copy()
    moved[60, 80, 1] ^= 1
    assert v.check(Frame(5, moved, K)) is None
    assert v.check(Frame(6, first.rgb, K)) is None  # an older image is not a repeat of the last one
    assert v.check(Frame(6, first.rgb, K)) == "non_monotonic_stamp"  # stamps are checked first
    v.reset()
    assert v.check(Frame(7, first.rgb, K)) is None  # a new stream has no last image
    off = FrameValidator(refuse_repeats=False)  # a noise-free simulated camera standing still
    assert [off.check(Frame(s, first.rgb, K)) for s in (1, 2, 3)] == [None, None, None]
