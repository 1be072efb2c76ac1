"""TUM trajectory files: exact stamp round trip, pose round trip, malformed input."""

from __future__ import annotations

import numpy as np
import pytest
from vggt_ros.geometry.se3 import make_T, so3_exp
from vggt_ros.io.tum import TumFormatError, format_stamp, parse_stamp, read_tum, write_tum


def _poses(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([make_T(so3_exp(rng.normal(0, 1, 3)), rng.normal(0, 5, 3)) for _ in range(n)])


def test_round_trip_is_exact_for_ros_stamps(tmp_path):
    stamps = np.array([1_700_000_000_000_000_001, 1_700_000_000_033_333_333, 1_700_000_001_999_999_999])
    T = _poses(3)
    path = write_tum(tmp_path / "t.tum", stamps, T)
    s2, T2 = read_tum(path)
    assert s2.dtype == np.int64 and s2.tolist() == stamps.tolist()
    np.testing.assert_allclose(T2, T, atol=1e-8)
    assert [p.name for p in tmp_path.iterdir()] == ["t.tum"]  # no temp file left behind


def test_stamp_text_conversion():
    assert format_stamp(1_500_000_000_000_000_123) == "1500000000.000000123"
    assert format_stamp(-1_500_000_000) == "-1.500000000"
    assert parse_stamp("1500000000.000000123") == 1_500_000_000_000_000_123
    assert parse_stamp("12.5") == 12_500_000_000
    assert parse_stamp("-1.5") == -1_500_000_000
    assert parse_stamp("1.5e9") == 1_500_000_000 * 1_000_000_000
    with pytest.raises(TumFormatError):
        parse_stamp("1.2.3")


def test_reads_comments_commas_and_normalises_quaternions(tmp_path):
    p = tmp_path / "x.tum"
    p.write_text("# header\n\n1.0, 1 2 3 0 0 0 2\n2.0 0 0 0 0 0 1 0\n")
    s, T = read_tum(p)
    assert s.tolist() == [1_000_000_000, 2_000_000_000]
    np.testing.assert_allclose(T[0], make_T(np.eye(3), [1, 2, 3]))
    np.testing.assert_allclose(T[1][:3, :3], np.diag([-1.0, -1.0, 1.0]), atol=1e-12)  # 180 deg about z


@pytest.mark.parametrize(
    "line", ["1.0 1 2 3 0 0 0", "1.0 1 2 nan 0 0 0 1", "abc 1 2 3 0 0 0 1", "1 0 0 0 0 0 0 0"]
)
def test_malformed_lines_raise_with_location(tmp_path, line):
    p = tmp_path / "bad.tum"
    p.write_text("1.0 0 0 0 0 0 0 1\n" + line + "\n")
    with pytest.raises(TumFormatError):
        read_tum(p)


def test_write_rejects_mismatch_and_nan(tmp_path):
    with pytest.raises(ValueError):
        write_tum(tmp_path / "a.tum", np.arange(2), _poses(3))
    T = _poses(2)
    T[1, 0, 3] = np.nan
    with pytest.raises(ValueError):
        write_tum(tmp_path / "a.tum", np.arange(2), T)
    assert not (tmp_path / "a.tum").exists()


def test_empty_file(tmp_path):
    p = tmp_path / "e.tum"
    p.write_text("# nothing\n")
    s, T = read_tum(p)
    assert s.shape == (0,) and T.shape == (0, 4, 4)
