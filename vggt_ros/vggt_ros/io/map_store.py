"""Map store: save and load a `slam.GlobalMap` (the SLAM core itself never writes files).

A saved map is a directory:
- `map.ply`: the fused cloud (map frame), what RViz/CloudCompare open;
- `keyframes.json`: format version, voxel/cap settings, per keyframe id, stamp, frame index,
  T_map_cam (after any pose-graph optimisation), K, size, segment and scale;
- `keyframes.tum`: the keyframe trajectory; `trajectory.tum` (optional): every emitted frame;
- `keyframe_points.npz`: per-keyframe clouds in the keyframe's camera frame, so a loaded map can be
  re-posed (a loaded map is identical to the saved one: poses, points, fused snapshot).
The directory is built beside the target and swapped in by rename (io.atomic.atomic_replace_dir):
a failed or interrupted save leaves the previous map untouched, and `load_map` recovers the
previous map if a save stopped between its two renames.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from vggt_ros.io.atomic import atomic_replace_dir, recover_dir
from vggt_ros.io.ply import read_ply, write_ply
from vggt_ros.io.tum import read_tum, write_tum
from vggt_ros.slam.global_map import GlobalMap, MapKeyframe

FORMAT_VERSION = 2  # 2: per-keyframe segment id
_READABLE = (1, 2)


def save_map(
    gmap: GlobalMap, directory: str | os.PathLike, trajectory: tuple[np.ndarray, np.ndarray] | None = None
) -> Path:
    """Write `gmap` atomically to `directory`. trajectory: (stamps_ns (N,), T_map_cam (N,4,4))."""
    return atomic_replace_dir(directory, lambda d: _write(gmap, d, trajectory))


def _keyframe_record(k: MapKeyframe) -> dict[str, Any]:
    return {
        "keyframe_id": k.keyframe_id,
        "stamp_ns": k.stamp_ns,
        "frame_index": k.frame_index,
        "segment_id": k.segment_id,
        "T_map_cam": k.T_map_cam.tolist(),
        "K": k.K.tolist(),
        "height": k.size[0],
        "width": k.size[1],
        "num_points": int(len(k.points_cam)),
    }


def _write(gmap: GlobalMap, d: Path, trajectory: tuple[np.ndarray, np.ndarray] | None) -> None:
    snap = gmap.snapshot(fresh=True)  # canonical: a loaded map rebuilds the same bits
    write_ply(d / "map.ply", snap.points, snap.colors, snap.confidence, atomic=False)
    ids, stamps, poses = gmap.keyframe_arrays()
    ks = [gmap.keyframes[int(i)] for i in ids]
    meta = {
        "format_version": FORMAT_VERSION,
        "frame": "map (first keyframe's camera body frame, REP 103/105); units: map units",
        "voxel_size": gmap.voxel_size,
        "voxel_size_rel": gmap.voxel_size_rel,
        "max_bytes": gmap.max_bytes,
        "points_per_keyframe": gmap.points_per_keyframe,
        "keyframes": [_keyframe_record(k) for k in ks],
    }
    (d / "keyframes.json").write_text(json.dumps(meta, indent=1))
    write_tum(d / "keyframes.tum", stamps, poses, atomic=False)
    if trajectory is not None:
        write_tum(d / "trajectory.tum", trajectory[0], trajectory[1], atomic=False)
    arrays: dict[str, np.ndarray] = {}
    for k in ks:
        arrays[f"p{k.keyframe_id}"] = k.points_cam
        arrays[f"c{k.keyframe_id}"] = k.colors
        arrays[f"w{k.keyframe_id}"] = k.confidence
    with open(d / "keyframe_points.npz", "wb") as f:
        savez: Any = np.savez  # numpy's stub types **kwds as allow_pickle
        savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())


def load_map(directory: str | os.PathLike) -> GlobalMap:
    """Read a map written by `save_map`. Raises FileNotFoundError / ValueError on a missing or bad map."""
    d = recover_dir(directory, "keyframes.json")
    if d is None:
        raise FileNotFoundError(f"no saved map in {directory}")
    meta = json.loads((d / "keyframes.json").read_text())
    if meta.get("format_version") not in _READABLE:
        raise ValueError(f"unsupported map format {meta.get('format_version')!r}")
    m = GlobalMap(
        meta["voxel_size"],
        int(meta["max_bytes"]),
        int(meta["points_per_keyframe"]),
        voxel_size_rel=float(meta.get("voxel_size_rel", 0.01)),
    )
    with np.load(d / "keyframe_points.npz") as z:
        for k in meta["keyframes"]:
            i = int(k["keyframe_id"])
            m.keyframes[i] = MapKeyframe(
                i,
                int(k["stamp_ns"]),
                int(k["frame_index"]),
                np.array(k["T_map_cam"], dtype=np.float64),
                np.array(k["K"], dtype=np.float64),
                (int(k["height"]), int(k["width"])),
                z[f"p{i}"],
                z[f"c{i}"],
                z[f"w{i}"],
                segment_id=int(k.get("segment_id", 0)),
            )
    m.note_peak()
    return m


def read_saved(directory: str | os.PathLike) -> dict[str, object]:
    """The saved files as arrays: fused cloud (map.ply) and trajectories (for checks and tools)."""
    d = Path(directory)
    pts, col, conf = read_ply(d / "map.ply")
    out: dict[str, object] = {
        "points": pts,
        "colors": col,
        "confidence": conf,
        "keyframes_tum": read_tum(d / "keyframes.tum"),
    }
    if (d / "trajectory.tum").is_file():
        out["trajectory_tum"] = read_tum(d / "trajectory.tum")
    return out
