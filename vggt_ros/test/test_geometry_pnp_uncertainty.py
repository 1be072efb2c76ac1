"""geometry.pnp_uncertainty: the first-order PnP covariance against Monte Carlo refits."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from vggt_ros.geometry.pnp_uncertainty import pose_covariance, pose_sigmas, rotation_sigma_deg
from vggt_ros.geometry.se3 import apply_T, invert_T, rotation_angle, so3_exp

K = np.array([[200.0, 0.0, 80.0], [0.0, 200.0, 60.0], [0.0, 0.0, 1.0]])
T_WORLD_CAM = np.eye(4)
T_WORLD_CAM[:3, :3] = so3_exp(np.array([0.1, 0.2, 0.3]))
T_WORLD_CAM[:3, 3] = [0.5, -0.2, 0.1]


def _points(rng: np.random.Generator, n: int, half_width: float, depth: tuple[float, float]) -> np.ndarray:
    """n world points seen by T_WORLD_CAM: x, y in +-half_width x depth, z in depth (camera frame)."""
    z = rng.uniform(*depth, n)
    xy = rng.uniform(-half_width, half_width, (n, 2)) * z[:, None]
    return apply_T(T_WORLD_CAM, np.c_[xy, z])


def _refits(X: np.ndarray, sigma_px: float, trials: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotation errors (deg) of PnP refits from noisy pixels, and rotation_sigma_deg of each refit."""
    rng = np.random.default_rng(seed)
    T_cw = invert_T(T_WORLD_CAM)
    rvec0, _ = cv2.Rodrigues(T_cw[:3, :3])
    tvec0 = T_cw[:3, 3].reshape(3, 1)
    uv0, _ = cv2.projectPoints(X, rvec0, tvec0, K, None)
    errs, sigmas = [], []
    for _ in range(trials):
        uv = uv0.reshape(-1, 2) + rng.normal(0.0, sigma_px, (len(X), 2))
        rvec, tvec = cv2.solvePnPRefineLM(X, uv, K, None, rvec0.copy(), tvec0.copy())
        T = np.eye(4)
        T[:3, :3] = cv2.Rodrigues(rvec)[0]
        T[:3, 3] = tvec.ravel()
        T = invert_T(T)
        errs.append(np.degrees(rotation_angle(T[:3, :3].T @ T_WORLD_CAM[:3, :3])))
        sigmas.append(rotation_sigma_deg(X, uv, K, T))
    return np.asarray(errs), np.asarray(sigmas)


@pytest.mark.parametrize(
    "n, half_width, depth",
    [(100, 0.3, (2.0, 5.0)), (19, 0.15, (0.1, 0.103))],
    ids=["wide view", "small close patch"],
)
def test_predicted_rotation_sigma_matches_refits(n, half_width, depth):
    """The covariance's rotation sigma is the RMS rotation error of PnP refits from 1 px noise (within
    25 %), and the sigma estimated from each refit's own residuals agrees with it (within 35 %)."""
    X = _points(np.random.default_rng(1), n, half_width, depth)
    errs, sigmas = _refits(X, 1.0, 300, seed=2)
    predicted = float(np.degrees(np.sqrt(np.trace(pose_covariance(X, K, T_WORLD_CAM, 1.0)[:3, :3]))))
    rms = float(np.sqrt(np.mean(errs**2)))
    assert predicted == pytest.approx(rms, rel=0.25)
    assert float(np.median(sigmas)) == pytest.approx(predicted, rel=0.35)


def test_a_small_close_patch_is_flagged_and_a_wide_view_is_not():
    """19 tracks on a 3 cm patch 10 cm away: several degrees; 100 tracks over a 2-5 m view: a fraction
    of one."""
    rng = np.random.default_rng(3)
    close = _points(rng, 19, 0.15, (0.1, 0.103))
    wide = _points(rng, 100, 0.3, (2.0, 5.0))
    _, s_close = _refits(close, 1.0, 20, seed=4)
    _, s_wide = _refits(wide, 1.0, 20, seed=4)
    assert np.min(s_close) > 2.0
    assert np.max(s_wide) < 0.5


def test_too_few_or_degenerate_matches_are_undetermined():
    X = _points(np.random.default_rng(5), 3, 0.3, (2.0, 5.0))
    uv = cv2.projectPoints(X, *cv2.Rodrigues(invert_T(T_WORLD_CAM)[:3, :3])[:1],
                           invert_T(T_WORLD_CAM)[:3, 3], K, None)[0].reshape(-1, 2)
    assert rotation_sigma_deg(X, uv, K, T_WORLD_CAM) == np.inf  # 3 points
    behind = apply_T(T_WORLD_CAM, np.array([[0.0, 0.0, -1.0], [0.1, 0.0, -2.0], [0.0, 0.1, -3.0]]))
    assert np.all(np.isinf(pose_covariance(behind, K, T_WORLD_CAM, 1.0)))
    # many matches, but all outside the inlier bound
    X = _points(np.random.default_rng(6), 30, 0.3, (2.0, 5.0))
    far_off = np.full((30, 2), 1e4)
    assert rotation_sigma_deg(X, far_off, K, T_WORLD_CAM, max_px=10.0) == np.inf


def test_pose_sigmas_match_refits_of_the_camera_centre():
    """pose_sigmas: the orientation's per-axis sigma is rotation_sigma_deg / sqrt(3) (radians), and the
    camera centre's per-axis sigma is the per-axis RMS centre error of PnP refits from 1 px noise (within
    25 %, from the true pose's covariance; each refit's own estimate within 35 % in the median); (inf, inf)
    with fewer than 4 matches."""
    X = _points(np.random.default_rng(1), 100, 0.3, (2.0, 5.0))
    rng = np.random.default_rng(7)
    T_cw = invert_T(T_WORLD_CAM)
    rvec0, _ = cv2.Rodrigues(T_cw[:3, :3])
    tvec0 = T_cw[:3, 3].reshape(3, 1)
    uv0 = cv2.projectPoints(X, rvec0, tvec0, K, None)[0].reshape(-1, 2)
    centre_errs, estimates = [], []
    for _ in range(300):
        uv = uv0 + rng.normal(0.0, 1.0, uv0.shape)
        rvec, tvec = cv2.solvePnPRefineLM(X, uv, K, None, rvec0.copy(), tvec0.copy())
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = cv2.Rodrigues(rvec)[0], tvec.ravel()
        T = invert_T(T)
        centre_errs.append(T[:3, 3] - T_WORLD_CAM[:3, 3])
        rot, trans = pose_sigmas(X, uv, K, T)
        assert rot == pytest.approx(np.radians(rotation_sigma_deg(X, uv, K, T)) / np.sqrt(3), rel=1e-9)
        estimates.append(trans)
    rms = float(np.sqrt(np.mean(np.square(centre_errs))))  # per axis
    predicted = float(np.sqrt(np.trace(pose_covariance(X, K, T_WORLD_CAM, 1.0)[3:, 3:]) / 3.0))
    assert predicted == pytest.approx(rms, rel=0.25)
    assert float(np.median(estimates)) == pytest.approx(predicted, rel=0.35)
    assert pose_sigmas(X[:3], uv0[:3], K, T_WORLD_CAM) == (np.inf, np.inf)
