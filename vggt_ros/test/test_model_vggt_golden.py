"""Golden parity of the full-size VGGT with the reference (formula weights VGGT-FW1, fp32, CPU).

The reference outputs live in ../shared/fixtures/vggt_golden (full) and, compacted, in
test/data/vggt_golden_<case>.npz (inputs exact and lzma-packed; small outputs whole; dense
maps on a strided pixel subset incl. the last row/column), so this runs in a clone without
../shared. Regenerate the compact files with
``python test/test_model_vggt_golden.py --pack`` (needs ../shared).

One model is built per session (~5 GB); both cases and the selective-head checks share it.
"""

from __future__ import annotations

import lzma
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from vggt_ros.geometry.pose_encoding import pose_encoding_to_extri_intri

DATA_DIR = Path(__file__).resolve().parent / "data"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "vggt_golden"
CASES = {"case_2x140x196_q8": 2, "case_2x294x518_q64": 4}  # case -> pixel stride of the compact copy
DENSE = ("depth", "depth_conf", "world_points", "world_points_conf")
SMALL = ("pose_enc", "pose_enc_list", "track", "vis", "conf", "extrinsic", "intrinsic")
TOL = {
    "pose_enc": 1e-4,
    "depth": 1e-4,
    "depth_conf": 1e-4,
    "world_points": 1e-4,
    "world_points_conf": 1e-4,
    "extrinsic": 1e-4,
    "intrinsic": 1e-4,
    "vis": 1e-2,
    "conf": 1e-2,
}
TRACK_PX = 0.05

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------------------------- data
def _pack_f32(x: np.ndarray) -> np.ndarray:
    """Lossless: float32 bytes, byte-plane shuffled, lzma -> uint8 array."""
    raw = np.ascontiguousarray(x, dtype="<f4").view(np.uint8).reshape(-1, 4).T.copy()
    return np.frombuffer(lzma.compress(raw.tobytes(), preset=9), dtype=np.uint8)


def _unpack_f32(blob: np.ndarray, shape) -> np.ndarray:
    planes = np.frombuffer(lzma.decompress(blob.tobytes()), dtype=np.uint8).reshape(4, -1)
    return planes.T.copy().view("<f4").reshape(tuple(int(s) for s in shape))


def _grid(n: int, stride: int) -> np.ndarray:
    return np.unique(np.r_[np.arange(0, n, stride), n - 1])


def pack_case(case: str) -> Path:
    """Write test/data/vggt_golden_<case>.npz from the full fixtures."""
    inp = np.load(SHARED / case / "input.npz")
    ref = np.load(SHARED / case / "output.npz")
    h, w = inp["images"].shape[-2:]
    rows, cols = _grid(h, CASES[case]), _grid(w, CASES[case])
    out: dict[str, np.ndarray] = {
        "images_lzma": _pack_f32(inp["images"]),
        "images_shape": np.array(inp["images"].shape),
        "query_points": inp["query_points"],
        "rows": rows,
        "cols": cols,
    }
    for k in SMALL:
        out[k] = ref[k]
    for k in DENSE:
        out[k + "_sub"] = ref[k][:, :, rows][:, :, :, cols]
    path = DATA_DIR / f"vggt_golden_{case}.npz"
    np.savez_compressed(path, **out)
    return path


def load_case(case: str) -> dict[str, np.ndarray]:
    """Inputs and reference outputs; dense maps on the compact subset (rows x cols)."""
    path = DATA_DIR / f"vggt_golden_{case}.npz"
    if path.is_file():
        z = np.load(path)
        d = {k: z[k] for k in z.files if not k.startswith("images_")}
        d["images"] = _unpack_f32(z["images_lzma"], z["images_shape"])
        for k in DENSE:
            d[k] = d.pop(k + "_sub")
        return d
    if not (SHARED / case).is_dir():
        pytest.skip(f"golden case {case} is neither in test/data nor in ../shared")
    inp, ref = np.load(SHARED / case / "input.npz"), np.load(SHARED / case / "output.npz")
    h, w = inp["images"].shape[-2:]
    rows, cols = _grid(h, CASES[case]), _grid(w, CASES[case])
    d = {"images": inp["images"], "query_points": inp["query_points"], "rows": rows, "cols": cols}
    d.update({k: ref[k] for k in SMALL})
    d.update({k: ref[k][:, :, rows][:, :, :, cols] for k in DENSE})
    return d


def rel_err(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


# ---------------------------------------------------------------------------------- model
@pytest.fixture(scope="module")
def model():
    from vggt_ros.model.formula_weights import fill_module_
    from vggt_ros.model.vggt import VGGT

    m = VGGT.empty()
    fill_module_(m)
    torch.set_grad_enabled(False)
    yield m
    torch.set_grad_enabled(True)
    del m


@pytest.fixture(scope="module")
def results(model):
    """case -> (golden, our full forward as numpy, our patch tokens)."""
    res = {}
    for case in CASES:
        g = load_case(case)
        with torch.inference_mode():
            images = torch.from_numpy(g["images"])
            # infer() with every head is what forward() runs; it also hands back the DINO tokens.
            out, tokens = model.infer(
                images,
                query_points=torch.from_numpy(g["query_points"]),
                heads=("camera", "depth", "point", "track"),
                precision=None,
                keep_all_pose_iters=True,
            )
        ours = {k: v.numpy() for k, v in out.items() if isinstance(v, torch.Tensor)}
        ours["pose_enc_list"] = torch.stack(out["pose_enc_list"]).numpy()
        h, w = g["images"].shape[-2:]
        ours["extrinsic"], ours["intrinsic"] = pose_encoding_to_extri_intri(ours["pose_enc"], (h, w))
        res[case] = (g, ours, tokens)
    return res


def _compare(g, ours) -> dict[str, float]:
    rows, cols = g["rows"], g["cols"]
    errs = {}
    for k in ("pose_enc", "extrinsic", "intrinsic", "vis", "conf"):
        errs[k] = rel_err(ours[k], g[k])
    for k in DENSE:
        errs[k] = rel_err(ours[k][:, :, rows][:, :, :, cols], g[k])
    q = g["query_points"][None, None]
    errs["track_px"] = float(np.abs((ours["track"] - q) - (g["track"] - q)).max())
    return errs


@pytest.mark.parametrize("case", list(CASES))
def test_golden_parity(results, case):
    g, ours, _ = results[case]
    errs = _compare(g, ours)
    print(case, {k: f"{v:.2e}" for k, v in errs.items()})
    for k, tol in TOL.items():
        assert errs[k] <= tol, f"{case} {k}: {errs[k]:.3e} > {tol}"
    assert errs["track_px"] <= TRACK_PX
    assert rel_err(ours["pose_enc_list"], g["pose_enc_list"]) <= 1e-4
    # Frame 0 of the track is the query itself (the reference forces it).
    np.testing.assert_allclose(ours["track"][0, 0], g["query_points"], atol=1e-4)


@pytest.mark.parametrize("case", list(CASES))
def test_golden_full_dense_maps(results, case):
    """With ../shared present, every pixel of the dense maps (not only the compact subset)."""
    if not (SHARED / case).is_dir():
        pytest.skip("../shared absent: the compact subset was checked in test_golden_parity")
    ref = np.load(SHARED / case / "output.npz")
    _, ours, _ = results[case]
    for k in DENSE:
        assert rel_err(ours[k], ref[k]) <= TOL[k], k


def test_golden_selective_heads_and_cached_tokens(model, results):
    """Full-size: frame-subset depth + cached DINO tokens equal the full forward."""
    case = "case_2x140x196_q8"
    g, ours, tokens = results[case]
    images = torch.from_numpy(g["images"])
    with torch.inference_mode():
        cached = [tokens[0, 0], None]  # frame 0 reused, frame 1 recomputed
        out, tokens2 = model.infer(
            images,
            query_points=torch.from_numpy(g["query_points"]),
            depth_frames=[1],
            heads=("camera", "depth", "track"),
            cached_patch_tokens=cached,
            precision=None,
        )
    assert "world_points" not in out
    assert out["depth"].shape == (1, 1, *g["images"].shape[-2:], 1)
    assert rel_err(out["pose_enc"].numpy(), ours["pose_enc"]) <= 1e-4
    assert rel_err(out["depth"].numpy(), ours["depth"][:, 1:2]) <= 1e-4
    assert rel_err(out["depth_conf"].numpy(), ours["depth_conf"][:, 1:2]) <= 1e-4
    assert rel_err(out["vis"].numpy(), ours["vis"]) <= 1e-2
    assert np.abs(out["track"].numpy() - ours["track"]).max() <= TRACK_PX
    assert rel_err(tokens2.numpy(), tokens.numpy()) <= 1e-5


if __name__ == "__main__":
    if "--pack" in sys.argv:
        for c in CASES:
            p = pack_case(c)
            print(p, p.stat().st_size)
