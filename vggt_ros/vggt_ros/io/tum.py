"""TUM RGB-D trajectory files: one pose per line, `timestamp tx ty tz qx qy qz qw`.

The format (Sturm et al., TUM RGB-D benchmark, "File Formats") gives the pose of the camera
in the world: translation then the unit quaternion (x, y, z, w), stamp in seconds. Stamps are
written with 9 decimals from integer nanoseconds and parsed back as integers, so ROS stamps
round-trip exactly (a float64 of 1.7e9 s only keeps ~0.2 us). `evo` reads these files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vggt_ros.geometry.quaternion import matrix_from_quat_xyzw, quat_xyzw_from_matrix
from vggt_ros.io.atomic import atomic_write_text


class TumFormatError(ValueError):
    """A TUM file line that is not `stamp tx ty tz qx qy qz qw` with finite numbers."""


def format_stamp(stamp_ns: int) -> str:
    """Integer nanoseconds -> 'seconds.nnnnnnnnn' (exact, sign-safe)."""
    ns = int(stamp_ns)
    sign = "-" if ns < 0 else ""
    sec, frac = divmod(abs(ns), 1_000_000_000)
    return f"{sign}{sec}.{frac:09d}"


def parse_stamp(text: str) -> int:
    """'seconds[.fraction]' (or scientific notation) -> integer nanoseconds, exact for <= 9 decimals."""
    t = text.strip()
    if "e" in t.lower():
        return int(round(float(t) * 1e9))
    neg = t.startswith("-")
    t = t.lstrip("+-")
    whole, _, frac = t.partition(".")
    if not (whole or frac) or not (whole or "0").isdigit() or (frac and not frac.isdigit()):
        raise TumFormatError(f"bad stamp {text!r}")
    frac = (frac + "000000000")[:9]
    ns = int(whole or "0") * 1_000_000_000 + int(frac)
    return -ns if neg else ns


def write_tum(
    path: str | os.PathLike, stamps_ns: np.ndarray, T_world_cam: np.ndarray, atomic: bool = True
) -> Path:
    """Write poses (N,4,4) (camera -> world) with integer stamps (N,) as a TUM file.

    atomic: write to a temp file in the same directory, fsync, then rename over `path`, so a
    reader never sees a half-written file.
    """
    stamps = np.asarray(stamps_ns).astype(np.int64).reshape(-1)
    T = np.asarray(T_world_cam, dtype=np.float64).reshape(-1, 4, 4)
    if len(stamps) != len(T):
        raise ValueError(f"{len(stamps)} stamps for {len(T)} poses")
    if not np.all(np.isfinite(T)):
        raise ValueError("poses contain NaN or inf")
    q = quat_xyzw_from_matrix(T[:, :3, :3]).reshape(-1, 4)
    lines = [
        f"{format_stamp(int(s))} {t[0]:.9f} {t[1]:.9f} {t[2]:.9f} "
        f"{qq[0]:.9f} {qq[1]:.9f} {qq[2]:.9f} {qq[3]:.9f}\n"
        for s, t, qq in zip(stamps, T[:, :3, 3], q)
    ]
    path = Path(path)
    text = "# timestamp tx ty tz qx qy qz qw\n" + "".join(lines)
    if not atomic:
        path.write_text(text)
        return path
    return atomic_write_text(path, text)


def read_tum(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a TUM file -> (stamps_ns (N,) int64, T_world_cam (N,4,4) float64).

    Comment lines (#) and blank lines are skipped; commas are accepted as separators.
    Raises TumFormatError with the line number on a malformed line.
    """
    stamps: list[int] = []
    rows: list[list[float]] = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = s.replace(",", " ").split()
        if len(parts) != 8:
            raise TumFormatError(f"{path}:{lineno}: expected 8 fields, got {len(parts)}")
        try:
            stamps.append(parse_stamp(parts[0]))
            vals = [float(p) for p in parts[1:]]
        except ValueError as exc:
            raise TumFormatError(f"{path}:{lineno}: {exc}") from exc
        if not np.all(np.isfinite(vals)):
            raise TumFormatError(f"{path}:{lineno}: non-finite value")
        rows.append(vals)
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 4, 4))
    a = np.asarray(rows)
    q = a[:, 3:7]
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    if np.any(norm < 1e-9):
        raise TumFormatError(f"{path}: zero quaternion")
    T = np.tile(np.eye(4), (len(a), 1, 1))
    T[:, :3, :3] = matrix_from_quat_xyzw(q / norm)
    T[:, :3, 3] = a[:, :3]
    return np.asarray(stamps, dtype=np.int64), T
