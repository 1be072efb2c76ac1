"""VGGT module: state_dict layout of the full model (meta device) and behaviour of the tiny config."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vggt_ros.model.formula_weights import fill_module_, read_shapes
from vggt_ros.model.vggt import VGGT, VGGTConfig, autocast_dtype

REF_KEYS = (
    "pose_enc",
    "pose_enc_list",
    "depth",
    "depth_conf",
    "world_points",
    "world_points_conf",
    "track",
    "vis",
    "conf",
    "images",
)


def test_full_state_dict_matches_checkpoint(data_dir):
    """Exactly the 1797 keys, shapes and order of facebook/VGGT-1B, no persistent buffers."""
    ref = read_shapes(data_dir / "state_dict_shapes.txt")
    with torch.device("meta"):
        model = VGGT()
    sd = model.state_dict()
    assert list(sd) == list(ref)
    assert {k: tuple(v.shape) for k, v in sd.items()} == ref
    assert sum(p.numel() for p in model.parameters()) == 1_256_537_516
    assert all(v.dtype == torch.float32 for v in sd.values())


def test_empty_build_is_materialised():
    m = VGGT.empty(VGGTConfig.tiny())
    assert all(p.device.type == "cpu" for p in m.parameters())
    assert not m.training


@pytest.fixture(scope="module")
def tiny():
    m = VGGT.empty(VGGTConfig.tiny())
    fill_module_(m)  # deterministic weights, same recipe as the golden model
    return m


def _inputs(s=3, h=56, w=84, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(s, 3, h, w, generator=g)
    q = torch.rand(n, 2, generator=g) * torch.tensor([w - 1.0, h - 1.0])
    return images, q


def test_tiny_forward_reference_keys_and_shapes(tiny):
    images, q = _inputs()
    with torch.inference_mode():
        out = tiny(images, q)
    assert set(out) == set(REF_KEYS)
    assert out["pose_enc"].shape == (1, 3, 9) and len(out["pose_enc_list"]) == 4
    assert out["depth"].shape == (1, 3, 56, 84, 1) and out["depth_conf"].shape == (1, 3, 56, 84)
    assert out["world_points"].shape == (1, 3, 56, 84, 3) and out["world_points_conf"].shape == (1, 3, 56, 84)
    assert (
        out["track"].shape == (1, 3, 6, 2)
        and out["vis"].shape == (1, 3, 6)
        and out["conf"].shape == (1, 3, 6)
    )
    assert (out["depth"] > 0).all() and (out["depth_conf"] > 1).all() and (out["world_points_conf"] > 1).all()
    assert (out["pose_enc"][..., 7:] >= 0).all()  # FoV is ReLU'd
    assert torch.isfinite(out["world_points"]).all()
    torch.testing.assert_close(out["track"][0, 0], q, atol=1e-5, rtol=0)
    # batched input [B, S, ...] gives the same result as the unbatched one
    with torch.inference_mode():
        out_b = tiny(images[None], q[None])
    torch.testing.assert_close(out_b["depth"], out["depth"], atol=1e-6, rtol=1e-5)
    # no query points: no track keys
    with torch.inference_mode():
        assert "track" not in tiny(images)


def test_frame0_gets_its_own_tokens(tiny):
    """Frame 0 uses slot 0 of camera/register tokens: swapping two identical frames' roles matters."""
    images, _ = _inputs(s=2)
    same = images[:1].expand(2, -1, -1, -1).contiguous()
    with torch.inference_mode():
        out = tiny(same)
    assert not torch.allclose(out["pose_enc"][0, 0], out["pose_enc"][0, 1])


def test_global_attention_mixes_frames(tiny):
    images, _ = _inputs(s=3)
    other = images.clone()
    other[2] = torch.rand(3, 56, 84, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        a, b = tiny(images), tiny(other)
    assert not torch.allclose(a["depth"][0, 0], b["depth"][0, 0])


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-4) -> None:
    err = float((a - b).abs().max() / b.abs().max())
    assert err <= tol, err


def test_infer_subset_heads_equal_full_forward(tiny):
    images, q = _inputs(s=4)
    with torch.inference_mode():
        full = tiny(images, q)
        out, tokens = tiny.infer(
            images, query_points=q, depth_frames=[3, 1], heads=("camera", "depth", "track")
        )
    assert "world_points" not in out
    _close(out["pose_enc"], full["pose_enc"])
    _close(out["depth"], full["depth"][:, [3, 1]])
    _close(out["depth_conf"], full["depth_conf"][:, [3, 1]])
    _close(out["track"], full["track"])
    _close(out["vis"], full["vis"], 1e-2)
    assert tokens.shape == (1, 4, 4 * 6, 32)
    with torch.inference_mode():
        pts, _ = tiny.infer(images, heads=("camera",), point_head=True, point_frames=[2])
    _close(pts["world_points"], full["world_points"][:, 2:3])
    assert "depth" not in pts


def test_cached_tokens_equal_full_forward(tiny):
    images, q = _inputs(s=3)
    with torch.inference_mode():
        full, tokens = tiny.infer(images, query_points=q)
        # tokens depend only on the frame: compute frame 2 alone and reuse 0 and 1
        only2, t2 = tiny.infer(images[2:3], heads=())
        assert only2 == {}
        _close(t2[0, 0], tokens[0, 2], 1e-5)
        cached, tok_c = tiny.infer(
            images, query_points=q, cached_patch_tokens=[tokens[0, 0], tokens[0, 1], None]
        )
        whole, _ = tiny.infer(images, query_points=q, cached_patch_tokens=tokens)
    for k in ("pose_enc", "depth", "depth_conf", "track"):
        _close(cached[k], full[k])
        _close(whole[k], full[k])
    _close(tok_c, tokens, 1e-5)


def test_cached_tokens_are_really_used(tiny):
    images, _ = _inputs(s=2)
    with torch.inference_mode():
        a, tokens = tiny.infer(images, heads=("camera",))
        # a per-token pattern, not a uniform shift: the LayerNorm before every block cancels a
        # constant added to all channels, so `tokens + 1.0` would change the output only by rounding
        g = torch.Generator().manual_seed(0)
        noise = torch.randn(tokens.shape, generator=g, dtype=tokens.dtype)
        b, _ = tiny.infer(images, heads=("camera",), cached_patch_tokens=tokens + noise)
    # the change is O(1e-2); rounding differences between machines are O(1e-7)
    assert (a["pose_enc"] - b["pose_enc"]).abs().max().item() > 1e-3


def test_bad_inputs_raise_clear_errors(tiny):
    images, q = _inputs(s=2)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        tiny.infer(images[..., :50, :])
    with pytest.raises(ValueError, match="out of range"):
        tiny.infer(images, depth_frames=[2])
    with pytest.raises(ValueError, match="unknown heads"):
        tiny.infer(images, heads=("normals",))
    with pytest.raises(ValueError, match=r"\[S,3,H,W\]"):
        tiny.infer(images[:, :2])
    with pytest.raises(ValueError, match="cached-token entries"):
        tiny.infer(images, cached_patch_tokens=[None])
    with pytest.raises(ValueError, match="do not match"):  # tokens of another resolution
        tiny.infer(images, cached_patch_tokens=[torch.zeros(20, 32), None])
    with pytest.raises(ValueError, match="do not match"):
        tiny.infer(images, cached_patch_tokens=torch.zeros(1, 2, 24, 16))
    no_point = VGGT.empty(VGGTConfig.tiny(), enable_point=False)
    with pytest.raises(ValueError, match="disabled"):
        no_point.infer(images, point_head=True)


def test_precision_policy_cpu_is_fp32(tiny):
    assert autocast_dtype(torch.device("cpu")) is None
    images, _ = _inputs(s=2)
    with torch.inference_mode():
        out, tokens = tiny.infer(images, heads=("camera", "depth"))
    assert out["depth"].dtype == torch.float32 and tokens.dtype == torch.float32


def test_heads_stay_fp32_under_autocast(tiny):
    """CPU bf16 autocast stands in for CUDA: trunk matmuls in bf16, heads forced to fp32."""
    images, _ = _inputs(s=2)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = tiny.infer(images, heads=("camera", "depth"), precision=None)
        ref, _ = tiny.infer(images, heads=("camera", "depth"), precision=None)
    assert out["pose_enc"].dtype == torch.float32 and out["depth"].dtype == torch.float32
    with torch.inference_mode():
        fp32, _ = tiny.infer(images, heads=("camera", "depth"))
    assert np.isfinite(out["depth"].numpy()).all()
    _close(out["depth"], fp32["depth"], 0.1)  # bf16 trunk: close, not equal
    torch.testing.assert_close(out["depth"], ref["depth"])


@pytest.mark.slow
def test_model_bench_runs_tiny(tmp_path, capsys):
    """bench/model_bench.py end to end on the tiny config (table and --compare)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "model_bench.py"
    spec = importlib.util.spec_from_file_location("model_bench", path)
    bench = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(bench)
    common = ["--config", "tiny", "--weights", "random", "--frames", "2", "--res", "56x84", "--queries", "4"]
    out_file = tmp_path / "table.md"
    assert bench.main([*common, "--heads", "agg,cam+depth,all", "--out", str(out_file)]) == 0
    rows = [r for r in out_file.read_text().splitlines() if r.startswith("| 2 ")]
    assert [r.split("|")[3].strip() for r in rows] == ["agg", "cam+depth", "all"]
    assert all(float(r.split("|")[5]) > 0 and float(r.split("|")[8]) > 0 for r in rows)
    assert bench.main([*common, "--heads", "cam+depth", "--compare"]) == 0
    assert "cached/plain" in capsys.readouterr().out
