"""Track head: state_dict layout, golden parity with the reference (formula weights), tracker pieces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from vggt_ros.model.formula_weights import formula_tensor
from vggt_ros.model.track_head import TrackHead
from vggt_ros.model.tracker import CorrBlock, bilinear_sample, flow_embedding, grid_sincos_embedding

CASE = "case_2x140x196_q8"


def load_track_case(shared_fixtures: Path) -> dict:
    """Aggregator layers 4/11/17/23 recorded by the reference (debug intermediates, ~9 MB: they stay in
    ../shared; without it this isolated test skips and test_model_vggt_golden covers the tracks)."""
    out = np.load(shared_fixtures / CASE / "output.npz")
    inp = np.load(shared_fixtures / CASE / "input.npz")
    case = {f"agg_tokens_L{i:02d}": out[f"inter__agg_tokens_L{i:02d}"] for i in (4, 11, 17, 23)}
    case["patch_start_idx"] = out["inter__patch_start_idx"]
    case["image_hw"] = np.array(inp["images"].shape[-2:])
    case["query_points"] = inp["query_points"]
    case.update(track=out["track"], vis=out["vis"], conf=out["conf"])
    return case


def formula_track_head() -> TrackHead:
    """The full-size TrackHead filled with the VGGT-FW1 weights of the `track_head.*` keys."""
    head = TrackHead().eval()
    with torch.no_grad():
        for name, t in head.state_dict(keep_vars=True).items():
            t.copy_(torch.from_numpy(formula_tensor("track_head." + name, tuple(t.shape))))
    return head


@pytest.fixture(scope="module")
def golden_head() -> TrackHead:
    return formula_track_head()


def test_state_dict_matches_checkpoint_layout(golden_head: TrackHead, data_dir: Path) -> None:
    sd = golden_head.state_dict()
    assert len(sd) == 394
    assert sum(v.numel() for v in sd.values()) == 65_941_396  # docs/architecture.md#checkpoint-keys
    assert tuple(sd["tracker.updateformer.virual_tracks"].shape) == (1, 64, 1, 384)
    assert tuple(sd["tracker.updateformer.time_blocks.0.attn.in_proj_weight"].shape) == (1152, 384)
    assert tuple(sd["tracker.corr_mlp.fc1.weight"].shape) == (384, 7 * 81)
    assert "feature_extractor.scratch.output_conv2.0.weight" not in sd


def test_state_dict_names_and_shapes_exact(golden_head: TrackHead, shared_fixtures: Path) -> None:
    ref = {}
    for line in (shared_fixtures / "state_dict_shapes.txt").read_text().splitlines():
        name, shape = line.split("\t")[:2]
        if name.startswith("track_head."):
            ref[name[len("track_head.") :]] = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
    got = {k: tuple(v.shape) for k, v in golden_head.state_dict().items()}
    assert got == ref


def _run_golden(head: TrackHead, case: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list]:
    tokens: list = [None] * 24
    for layer in (4, 11, 17, 23):
        tokens[layer] = torch.from_numpy(case[f"agg_tokens_L{layer:02d}"])
    hw = tuple(int(v) for v in case["image_hw"])
    images = torch.zeros(1, tokens[4].shape[1], 3, *hw)
    q = torch.from_numpy(case["query_points"])[None]
    with torch.no_grad():
        track_list, vis, conf = head(tokens, images, int(case["patch_start_idx"]), query_points=q)
    return track_list[-1], vis, conf, track_list


def test_golden_parity_2x140x196(golden_head: TrackHead, shared_fixtures: Path) -> None:
    """Reference forward with formula weights (README tolerances): |track-ref| < 0.05 px, vis/conf 1e-2."""
    case = load_track_case(shared_fixtures)
    track, vis, conf, track_list = _run_golden(golden_head, case)
    q = case["query_points"]
    ref_track, ref_vis, ref_conf = case["track"], case["vis"], case["conf"]
    assert len(track_list) == 4
    assert track.shape == ref_track.shape == (1, 2, 8, 2)
    # Frame 0 is the query frame: forced to the queries exactly.
    np.testing.assert_array_equal(track[0, 0].numpy(), q)
    moved = np.abs(ref_track - q).max()
    assert moved > 0.05  # the reference tracks do move: the comparison below is meaningful
    dtrack = np.abs((track.numpy() - q) - (ref_track - q)).max()
    assert dtrack < 0.05, dtrack
    rel_vis = np.abs(vis.numpy() - ref_vis).max() / np.abs(ref_vis).max()
    rel_conf = np.abs(conf.numpy() - ref_conf).max() / np.abs(ref_conf).max()
    assert rel_vis <= 1e-2 and rel_conf <= 1e-2, (rel_vis, rel_conf)
    print(f"track max|d| {dtrack:.2e} px (moved {moved:.3f} px), vis rel {rel_vis:.2e}, "
          f"conf rel {rel_conf:.2e}")


def test_bilinear_sample_pixel_convention() -> None:
    img = torch.arange(12, dtype=torch.float32).reshape(1, 1, 3, 4)  # value = 4 y + x
    pts = torch.tensor([[[[0.0, 0.0], [3.0, 2.0], [1.5, 0.5], [2.25, 1.0]]]])
    out = bilinear_sample(img, pts)[0, 0, 0]
    np.testing.assert_allclose(out.numpy(), [0.0, 11.0, 3.5, 6.25], atol=1e-6)
    # Zero padding outside: half weight at x = -0.5 (half-way to the zero pixel).
    z = bilinear_sample(img, torch.tensor([[[[-0.5, 1.0]]]]), padding_mode="zeros")
    assert abs(float(z) - 2.0) < 1e-6


def test_corr_block_window_layout() -> None:
    """The correlation window's first axis moves x (the checkpoint's corr_mlp expects this order)."""
    h, w, c = 16, 16, 4
    fmap = torch.zeros(1, 1, c, h, w)
    fmap[0, 0, 0, 7, 9] = 1.0  # a single bright pixel at (x=9, y=7)
    target = torch.zeros(1, 1, 1, c)
    target[..., 0] = 2.0
    corr = CorrBlock(fmap, num_levels=1, radius=2).sample(target, torch.tensor([[[[8.0, 6.0]]]]))
    win = corr.reshape(5, 5)
    a, b = np.unravel_index(int(win.argmax()), (5, 5))
    assert (a - 2, b - 2) == (1, 1)  # +1 in x along axis 0, +1 in y along axis 1
    assert abs(float(win.max()) - 2.0 / np.sqrt(c)) < 1e-6


def test_embeddings_shapes_and_values() -> None:
    e = flow_embedding(torch.tensor([[[0.0, 0.0], [1.0, 2.0]]]), 64)
    assert e.shape == (1, 2, 128)
    np.testing.assert_allclose(e[0, 0, 0::2].numpy(), 0.0)  # sin(0)
    np.testing.assert_allclose(e[0, 0, 1::2].numpy(), 1.0)  # cos(0)
    assert abs(float(e[0, 1, 2]) - np.sin(1.0 * 2 * 1000.0 / 64)) < 1e-4
    pos = grid_sincos_embedding(388, 3, 5)
    assert pos.shape == (1, 388, 3, 5) and pos.dtype == torch.float32
    # first half encodes x: constant down a column, varies along a row
    assert torch.equal(pos[0, :194, 0, 2], pos[0, :194, 2, 2])
    assert not torch.equal(pos[0, :194, 0, 1], pos[0, :194, 0, 2])


def test_tiny_head_runs_and_keeps_queries() -> None:
    torch.manual_seed(0)
    head = TrackHead(
        dim_in=32, features=16, hidden_size=32, depth=2, corr_levels=2, corr_radius=1,
        out_channels=(8, 8, 16, 16), intermediate_layer_idx=(0, 1, 2, 3),
    ).eval()
    tokens = [torch.randn(1, 3, 1 + 4 * 6, 32) for _ in range(4)]
    q = torch.tensor([[[3.0, 5.0], [40.0, 20.0]]])
    with torch.no_grad():
        tracks, vis, conf = head(tokens, None, 1, q, iters=2, image_hw=(56, 84))
    assert len(tracks) == 2 and tracks[-1].shape == (1, 3, 2, 2)
    assert torch.equal(tracks[-1][:, 0], q)
    assert vis.shape == conf.shape == (1, 3, 2)
    assert bool(((vis > 0) & (vis < 1)).all()) and torch.isfinite(tracks[-1]).all()


def test_coordinates_stay_fp32_under_bf16_autocast() -> None:
    """CPU bf16 autocast stands in for CUDA: the tracker's coordinates must not be quantised."""
    torch.manual_seed(0)
    head = TrackHead(
        dim_in=32, features=16, hidden_size=32, depth=1, corr_levels=2, corr_radius=1,
        out_channels=(8, 8, 16, 16), intermediate_layer_idx=(0, 1, 2, 3),
    ).eval()
    tokens = [torch.randn(1, 2, 1 + 36 * 37, 32) for _ in range(4)]
    q = torch.tensor([[[401.3, 257.7], [13.37, 500.1]]])  # bf16 would round these by up to 2 px
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        tracks, vis, _ = head(tokens, None, 1, q, iters=1, image_hw=(504, 518))
    assert tracks[-1].dtype == torch.float32
    assert torch.equal(tracks[-1][:, 0], q)
    assert torch.isfinite(tracks[-1]).all() and torch.isfinite(vis.float()).all()
