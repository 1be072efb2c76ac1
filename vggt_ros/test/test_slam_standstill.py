"""Standstill hold (slam.standstill): which frames stand, against which reference."""

from __future__ import annotations

import numpy as np
import pytest
from vggt_ros.geometry.image import image_change, thumbnail
from vggt_ros.sim.sequence import SyntheticSequence, intrinsics
from vggt_ros.sim.trajectories import figure_eight
from vggt_ros.sim.worlds import pillar_hall
from vggt_ros.slam.standstill import StandstillDetector


@pytest.fixture(scope="module")
def views() -> list[np.ndarray]:
    """Rendered 160 x 120 views of the figure-eight: frames 0..3 (about 1 cm and 0.5 deg apart)."""
    seq = SyntheticSequence(pillar_hall(), figure_eight(720)[:4], intrinsics(160, 120), (160, 120))
    return [seq[i].rgb for i in range(4)]


def noisy(rgb: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rgb + rng.normal(0.0, sigma, rgb.shape), 0, 255).astype(np.uint8)


def test_the_same_view_stands_at_the_reference_through_sensor_noise(views: list[np.ndarray]) -> None:
    det = StandstillDetector(1.0)
    assert det.observe(0, views[0]) is None  # the first frame is the reference
    # sigma 3 grey levels of sensor noise on every frame: still the reference's view
    assert [det.observe(i, noisy(views[0], 3.0, i)) for i in range(1, 6)] == [0] * 5
    assert image_change(thumbnail(views[0]), thumbnail(noisy(views[0], 3.0, 9))) < 0.5


def test_a_camera_moving_one_frame_is_not_held(views: list[np.ndarray]) -> None:
    """Consecutive frames of the figure-eight at walking pace differ by 2.4+ grey levels (1 deg, 1 cm)."""
    det = StandstillDetector(1.0)
    assert [det.observe(i, v) for i, v in enumerate(views)] == [None] * 4
    assert min(image_change(thumbnail(a), thumbnail(b)) for a, b in zip(views, views[1:])) > 2.0


def test_a_creeping_camera_is_compared_with_where_the_stop_began(views: list[np.ndarray]) -> None:
    """Each frame a tenth of the way from one view to the next: every step is below the threshold, but the
    change against the reference adds up, so the frame is posed again and becomes the new reference."""
    a, b = views[0].astype(np.float64), views[1].astype(np.float64)
    det = StandstillDetector(1.0)
    steps = [np.round((1 - t) * a + t * b).astype(np.uint8) for t in np.linspace(0.0, 1.0, 11)]
    refs = [det.observe(i, s) for i, s in enumerate(steps)]
    step_change = max(image_change(thumbnail(x), thumbnail(y)) for x, y in zip(steps, steps[1:]))
    assert step_change < 1.0  # a detector comparing with the previous frame would hold all of them
    released = [i for i, r in enumerate(refs) if r is None and i > 0]
    assert released and released[0] < 10
    assert refs[released[0] + 1] in (released[0], None)  # the released frame is the new reference


def test_brightness_offsets_are_not_motion(views: list[np.ndarray]) -> None:
    det = StandstillDetector(1.0)
    det.observe(0, views[0])
    brighter = np.clip(views[0].astype(np.int16) + 12, 0, 255).astype(np.uint8)
    assert det.observe(1, brighter) == 0


def test_zero_turns_the_hold_off_and_bad_thresholds_are_refused(views: list[np.ndarray]) -> None:
    det = StandstillDetector(0.0)
    assert [det.observe(i, views[0]) for i in range(3)] == [None] * 3
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            StandstillDetector(bad)


def test_a_held_pose_is_the_reference_refined_by_the_mean_of_the_standing_estimates() -> None:
    from vggt_ros.geometry.se3 import make_T, so3_exp
    from vggt_ros.slam.standstill import HeldPose

    T_ref = make_T(so3_exp(np.array([0.1, -0.4, 0.2])), np.array([1.0, 2.0, 0.5]))
    rng = np.random.default_rng(3)
    offsets = [make_T(so3_exp(rng.normal(0, 0.02, 3)), rng.normal(0, 0.01, 3)) for _ in range(200)]
    h = HeldPose(ref_index=7, row=3, segment_id=0)
    first = h.add(T_ref, T_ref @ offsets[0])
    # two samples (the reference at identity and one estimate): halfway, within first-order accuracy
    assert np.allclose(first[:3, 3], T_ref[:3, 3] + T_ref[:3, :3] @ offsets[0][:3, 3] / 2, atol=1e-12)
    for off in offsets[1:]:
        held = h.add(T_ref, T_ref @ off)
    assert h.count == 201
    R = held[:3, :3]
    assert np.allclose(R @ R.T, np.eye(3), atol=1e-12) and np.linalg.det(R) > 0
    rel = np.linalg.inv(T_ref) @ held
    assert np.linalg.norm(rel[:3, 3]) < 0.01 * 4 / np.sqrt(201)  # the mean of zero-mean errors: ~0.07 sigma
    assert np.degrees(np.arccos(np.clip((np.trace(rel[:3, :3]) - 1) / 2, -1, 1))) < 2 * np.degrees(0.02) / 10
    # the offsets are relative: a reference moved by a loop closure carries the hold with it
    T_moved = make_T(so3_exp(np.array([0.0, 0.0, 0.5])), np.array([-3.0, 0.0, 1.0])) @ T_ref
    again = h.add(T_moved, T_moved @ np.eye(4))
    assert np.allclose(np.linalg.inv(T_moved) @ again, rel, atol=0.01 / 201 * 3)
