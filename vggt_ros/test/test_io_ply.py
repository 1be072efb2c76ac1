"""PLY point clouds: binary round trip, optional fields, ascii input, malformed files."""

from __future__ import annotations

import numpy as np
import pytest
from vggt_ros.io.ply import PlyFormatError, read_ply, write_ply


def test_round_trip_with_colors_and_confidence(tmp_path):
    rng = np.random.default_rng(0)
    pts = rng.normal(0, 3, (1000, 3)).astype(np.float32)
    col = rng.integers(0, 256, (1000, 3)).astype(np.uint8)
    conf = rng.uniform(1, 20, 1000).astype(np.float32)
    write_ply(tmp_path / "m.ply", pts, col, conf)
    p2, c2, w2 = read_ply(tmp_path / "m.ply")
    assert np.array_equal(p2, pts) and np.array_equal(c2, col) and np.array_equal(w2, conf)
    header = (tmp_path / "m.ply").read_bytes()[:300]
    assert b"format binary_little_endian 1.0" in header and b"element vertex 1000" in header
    assert [p.name for p in tmp_path.iterdir()] == ["m.ply"]


def test_points_only_and_empty(tmp_path):
    pts = np.arange(12, dtype=np.float64).reshape(4, 3)
    write_ply(tmp_path / "a.ply", pts)
    p2, c2, w2 = read_ply(tmp_path / "a.ply")
    assert np.array_equal(p2, pts.astype(np.float32)) and c2 is None and w2 is None
    write_ply(tmp_path / "e.ply", np.zeros((0, 3)), np.zeros((0, 3), np.uint8))
    p3, c3, _ = read_ply(tmp_path / "e.ply")
    assert p3.shape == (0, 3) and c3.shape == (0, 3)


def test_reads_ascii_with_other_property_order(tmp_path):
    p = tmp_path / "a.ply"
    p.write_text(
        "ply\nformat ascii 1.0\nelement vertex 2\nproperty uchar red\nproperty uchar green\n"
        "property uchar blue\nproperty float x\nproperty float y\nproperty float z\n"
        "property float nx\nend_header\n255 0 1 1.5 2 3 0\n0 10 20 -1 -2 -3 1\n"
    )
    pts, col, conf = read_ply(p)
    np.testing.assert_allclose(pts, [[1.5, 2, 3], [-1, -2, -3]])
    assert col.tolist() == [[255, 0, 1], [0, 10, 20]] and conf is None


def test_malformed_files(tmp_path):
    (tmp_path / "x.ply").write_bytes(b"not a ply")
    with pytest.raises(PlyFormatError):
        read_ply(tmp_path / "x.ply")
    write_ply(tmp_path / "t.ply", np.ones((10, 3)))
    raw = (tmp_path / "t.ply").read_bytes()
    (tmp_path / "t.ply").write_bytes(raw[:-7])
    with pytest.raises(PlyFormatError, match="truncated"):
        read_ply(tmp_path / "t.ply")
    with pytest.raises(ValueError):
        write_ply(tmp_path / "c.ply", np.ones((3, 3)), np.ones((2, 3), np.uint8))
