"""VGGT absT_quaR_FoV <-> extrinsics/intrinsics, checked against the reference's own outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from vggt_ros.geometry.pose_encoding import extri_intri_to_pose_encoding, pose_encoding_to_extri_intri
from vggt_ros.geometry.quaternion import quat_xyzw_from_matrix
from vggt_ros.geometry.se3 import so3_exp


def test_golden_pose_enc_gives_reference_extrinsics_intrinsics(data_dir: Path) -> None:
    g = np.load(data_dir / "geometry_golden.npz")
    hw = tuple(int(v) for v in g["image_hw"])
    E, K = pose_encoding_to_extri_intri(g["pose_enc"], hw)
    assert E.shape == (2, 3, 4) and K.shape == (2, 3, 3) and E.dtype == np.float32
    np.testing.assert_allclose(E, g["extrinsic"], atol=1e-6)
    np.testing.assert_allclose(K, g["intrinsic"], rtol=1e-6)
    # and back: translations and FoVs exact, quaternion = normalised network quaternion (sign w >= 0)
    pe = extri_intri_to_pose_encoding(g["extrinsic"], g["intrinsic"], hw)
    np.testing.assert_allclose(pe[:, :3], g["pose_enc"][:, :3], atol=1e-7)
    np.testing.assert_allclose(pe[:, 7:], g["pose_enc"][:, 7:], atol=1e-6)
    q = g["pose_enc"][:, 3:7] / np.linalg.norm(g["pose_enc"][:, 3:7], axis=1, keepdims=True)
    q *= np.sign(q[:, 3:4])
    np.testing.assert_allclose(pe[:, 3:7], q, atol=1e-6)


def test_golden_full_fixture(shared_fixtures: Path) -> None:
    d = np.load(shared_fixtures / "case_2x140x196_q8" / "output.npz")
    E, K = pose_encoding_to_extri_intri(d["pose_enc"], (140, 196))
    np.testing.assert_allclose(E, d["extrinsic"], atol=1e-6)
    np.testing.assert_allclose(K, d["intrinsic"], rtol=1e-6)


def test_round_trip_random_cameras() -> None:
    rng = np.random.default_rng(0)
    R = so3_exp(rng.normal(size=(6, 3)))
    E = np.concatenate([R, rng.normal(size=(6, 3, 1))], axis=2)
    K = np.zeros((6, 3, 3))
    K[:, 0, 0] = rng.uniform(200, 400, 6)
    K[:, 1, 1] = rng.uniform(200, 400, 6)
    K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = 320.0, 240.0, 1.0
    pe = extri_intri_to_pose_encoding(E, K, (480, 640))
    assert pe.shape == (6, 9)
    np.testing.assert_allclose(pe[:, 3:7], quat_xyzw_from_matrix(R), atol=1e-12)
    E2, K2 = pose_encoding_to_extri_intri(pe, (480, 640))
    np.testing.assert_allclose(E2, E, atol=1e-12)
    np.testing.assert_allclose(K2, K, atol=1e-9)
    # fov_w = 2 atan(W/2 / fx)
    np.testing.assert_allclose(pe[:, 8], 2 * np.arctan(320.0 / K[:, 0, 0]), atol=1e-12)


def test_torch_in_torch_out_and_4x4_extrinsics() -> None:
    torch = pytest.importorskip("torch")
    E = torch.eye(4, dtype=torch.float64)[None]
    E[0, :3, 3] = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    K = torch.tensor([[[100.0, 0, 50], [0, 120.0, 40], [0, 0, 1]]], dtype=torch.float64)
    pe = extri_intri_to_pose_encoding(E, K, (80, 100))
    assert isinstance(pe, torch.Tensor) and pe.dtype == torch.float64 and pe.shape == (1, 9)
    E2, K2 = pose_encoding_to_extri_intri(pe, (80, 100))
    assert isinstance(E2, torch.Tensor) and isinstance(K2, torch.Tensor)
    np.testing.assert_allclose(E2.numpy(), E[:, :3].numpy(), atol=1e-12)
    np.testing.assert_allclose(K2.numpy(), K.numpy(), atol=1e-9)


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError):
        pose_encoding_to_extri_intri(np.zeros((2, 8)), (10, 10))
    with pytest.raises(ValueError):
        extri_intri_to_pose_encoding(np.zeros((2, 3, 3)), np.zeros((2, 3, 3)), (10, 10))
