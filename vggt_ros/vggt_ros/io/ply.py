"""Coloured point clouds as binary little-endian PLY (what Open3D, MeshLab, CloudCompare read).

Vertex properties: x, y, z float32; red, green, blue uchar; optional `confidence` float32.
The reader accepts this layout (binary little/big endian or ascii, any property order, extra
properties ignored), so saved maps load back bit-exactly.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vggt_ros.io.atomic import atomic_write_bytes

_PLY_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}


class PlyFormatError(ValueError):
    """A file that is not a PLY vertex cloud this reader understands."""


def write_ply(
    path: str | os.PathLike,
    points: np.ndarray,
    colors: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    atomic: bool = True,
) -> Path:
    """Write points (N,3) (stored float32), colors (N,3) uint8 RGB, confidence (N,) float32.

    atomic: temp file in the same directory + fsync + rename over `path`.
    """
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    n = len(pts)
    fields: list[tuple[str, str]] = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        col = np.asarray(colors)
        if col.shape != (n, 3):
            raise ValueError(f"colors {col.shape} do not match {n} points")
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    if confidence is not None:
        conf = np.asarray(confidence, dtype=np.float32).reshape(-1)
        if len(conf) != n:
            raise ValueError(f"confidence {conf.shape} does not match {n} points")
        fields += [("confidence", "<f4")]
    rec = np.empty(n, dtype=fields)
    rec["x"], rec["y"], rec["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
    header = [
        "ply",
        "format binary_little_endian 1.0",
        f"element vertex {n}",
        "property float x",
        "property float y",
        "property float z",
    ]
    if colors is not None:
        c = np.asarray(colors).astype(np.uint8)
        rec["red"], rec["green"], rec["blue"] = c[:, 0], c[:, 1], c[:, 2]
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    if confidence is not None:
        rec["confidence"] = conf
        header += ["property float confidence"]
    header.append("end_header")
    data = ("\n".join(header) + "\n").encode("ascii") + rec.tobytes()
    path = Path(path)
    if not atomic:
        path.write_bytes(data)
        return path
    return atomic_write_bytes(path, data)


def read_ply(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Read a PLY vertex cloud.

    Returns (points (N,3) float32, colors (N,3) uint8 or None, confidence (N,) float32 or None).
    """
    raw = Path(path).read_bytes()
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise PlyFormatError(f"{path}: not a PLY file")
    nl = raw.find(b"\n", end)
    header = raw[:nl].decode("ascii", errors="replace").splitlines()
    body = raw[nl + 1 :]
    fmt = None
    n_vertex = None
    props: list[tuple[str, str]] = []
    current = None
    for line in header:
        tok = line.split()
        if not tok:
            continue
        if tok[0] == "format":
            fmt = tok[1]
        elif tok[0] == "element":
            current = tok[1]
            if current == "vertex":
                n_vertex = int(tok[2])
            elif n_vertex is None:
                raise PlyFormatError(f"{path}: element {current!r} before vertex is not supported")
        elif tok[0] == "property" and current == "vertex":
            if tok[1] == "list" or tok[1] not in _PLY_TYPES:
                raise PlyFormatError(f"{path}: unsupported vertex property {' '.join(tok[1:])!r}")
            props.append((tok[2], _PLY_TYPES[tok[1]]))
    if n_vertex is None or fmt is None:
        raise PlyFormatError(f"{path}: no vertex element or format")
    names = [p[0] for p in props]
    if not {"x", "y", "z"} <= set(names):
        raise PlyFormatError(f"{path}: vertex has no x, y, z")
    if fmt == "ascii":
        vals = (
            np.loadtxt(body.decode("ascii").splitlines()[:n_vertex], ndmin=2)
            if n_vertex
            else np.zeros((0, len(props)))
        )
        rec = {name: vals[:, i].astype(t) for i, (name, t) in enumerate(props)}
    elif fmt in ("binary_little_endian", "binary_big_endian"):
        order = "<" if fmt == "binary_little_endian" else ">"
        dt = np.dtype([(name, order + t) for name, t in props])
        if len(body) < dt.itemsize * n_vertex:
            raise PlyFormatError(f"{path}: truncated ({len(body)} bytes for {n_vertex} vertices)")
        arr = np.frombuffer(body, dtype=dt, count=n_vertex)
        rec = {name: arr[name] for name in names}
    else:
        raise PlyFormatError(f"{path}: unknown format {fmt!r}")
    pts = np.stack([rec["x"], rec["y"], rec["z"]], axis=1).astype(np.float32)
    colors = None
    if {"red", "green", "blue"} <= set(names):
        colors = np.stack([rec["red"], rec["green"], rec["blue"]], axis=1).astype(np.uint8)
    conf = rec["confidence"].astype(np.float32) if "confidence" in rec else None
    return pts, colors, conf
