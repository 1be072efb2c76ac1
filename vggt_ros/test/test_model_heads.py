"""VGGT building blocks and heads, checked against direct formulas (docs/architecture.md#module-tree)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from vggt_ros.model.camera_head import CameraHead
from vggt_ros.model.dinov2 import DinoVisionTransformer
from vggt_ros.model.dpt_head import DPTHead, ResidualConvUnit, make_sincos_embed, uv_embedding
from vggt_ros.model.layers import Attention, RotaryPositionEmbedding2D, patch_positions


def _rope_reference(x: torch.Tensor, pos: torch.Tensor, base: float = 100.0) -> torch.Tensor:
    """docs/architecture.md#module-tree: halves by axis, per-axis cat(a, a) angles, rotate-half [-x2, x1]."""

    def rope1d(t, p):
        d = t.shape[-1]
        inv = 1.0 / (base ** (torch.arange(0, d, 2).float() / d))
        ang = p.float()[:, None] * inv[None]
        ang = torch.cat((ang, ang), -1)
        t1, t2 = t[..., : d // 2], t[..., d // 2 :]
        return t * ang.cos() + torch.cat((-t2, t1), -1) * ang.sin()

    y, xx = x.chunk(2, dim=-1)
    return torch.cat((rope1d(y, pos[:, 0]), rope1d(xx, pos[:, 1])), dim=-1)


def test_patch_positions_offsets_and_specials():
    pos = patch_positions(2, 3, n_special=5)
    assert pos.shape == (11, 2)
    assert (pos[:5] == 0).all()
    assert pos[5:].tolist() == [[1, 1], [1, 2], [1, 3], [2, 1], [2, 2], [2, 3]]


def test_rope_matches_spec_formula():
    rope = RotaryPositionEmbedding2D(100.0)
    pos = patch_positions(3, 4, 5)
    x = torch.randn(2, 3, pos.shape[0], 64)
    cos, sin = rope.tables(pos, 64, torch.float32)
    ours = rope.rotate(x, cos, sin)
    torch.testing.assert_close(ours, _rope_reference(x, pos), atol=0, rtol=0)  # bit-exact
    # position 0 (special tokens) is the identity; rotation preserves norms
    torch.testing.assert_close(ours[:, :, :5], x[:, :, :5])
    torch.testing.assert_close(ours.norm(dim=-1), x.norm(dim=-1), atol=1e-5, rtol=1e-5)


def test_attention_normalises_q_k_before_rope():
    torch.manual_seed(0)
    attn = Attention(32, 2, qk_norm=True).eval()
    for p in (attn.q_norm.weight, attn.k_norm.weight, attn.q_norm.bias, attn.k_norm.bias):
        torch.nn.init.uniform_(p, 0.5, 1.5)
    pos = patch_positions(2, 2, 1)
    x = torch.randn(3, pos.shape[0], 32)
    rope = RotaryPositionEmbedding2D()
    with torch.no_grad():
        out = attn(x, rope.tables(pos, 16, torch.float32))
        qkv = attn.qkv(x).reshape(3, 5, 3, 2, 16).permute(2, 0, 3, 1, 4)
        q = _rope_reference(attn.q_norm(qkv[0]), pos)
        k = _rope_reference(attn.k_norm(qkv[1]), pos)
        a = torch.softmax(q @ k.transpose(-1, -2) / 4.0, dim=-1) @ qkv[2]
        ref = attn.proj(a.transpose(1, 2).reshape(3, 5, 32))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_residual_conv_unit_skip_adds_relu_of_input():
    """In-place ReLU: the skip carries relu(x), not x (docs/architecture.md#parity-pitfalls)."""
    rcu = ResidualConvUnit(4)
    for conv in (rcu.conv1, rcu.conv2):
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    x = torch.randn(1, 4, 5, 5)
    x_copy = x.clone()
    torch.testing.assert_close(rcu(x), F.relu(x_copy))
    torch.testing.assert_close(x, x_copy)  # ours does not clobber the caller's tensor


def test_sincos_embed_uses_float64_frequencies():
    pos = torch.linspace(-0.9, 0.9, 37)
    emb = make_sincos_embed(64, pos)
    omega = 1.0 / 100.0 ** (torch.arange(32, dtype=torch.float64) / 32.0)
    ang = pos.double()[:, None] * omega[None]
    ref = torch.cat((ang.sin(), ang.cos()), 1).float()
    assert torch.equal(emb, ref)
    uv = uv_embedding(5, 3, 16, 5 / 3, torch.float32, "cpu")
    assert uv.shape == (16, 3, 5)
    # channel layout [sin(u) 4, cos(u) 4, sin(v) 4, cos(v) 4]: sin^2 + cos^2 = 1 per pair
    torch.testing.assert_close(uv[0] ** 2 + uv[4] ** 2, torch.ones(3, 5))
    torch.testing.assert_close(uv[8] ** 2 + uv[12] ** 2, torch.ones(3, 5))
    # first channel is sin(u) with omega 1: u spans +-span_x*(W-1)/W, the same along a column
    span_x = (5 / 3) / math.sqrt(1 + (5 / 3) ** 2)
    torch.testing.assert_close(uv[0, 1], torch.sin(torch.linspace(-span_x * 0.8, span_x * 0.8, 5)))


def _tokens(s=3, gh=2, gw=3, dim=16, layers=4, special=5):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(1, s, special + gh * gw, dim, generator=g) for _ in range(layers)]


def _small_dpt(**kw):
    head = DPTHead(
        dim_in=16, features=8, out_channels=(8, 8, 16, 16), intermediate_layer_idx=(0, 1, 2, 3), **kw
    )
    torch.manual_seed(0)
    return head.eval()


def test_dpt_feature_only_track_extractor_shapes():
    head = _small_dpt(feature_only=True, down_ratio=2, pos_embed=False)
    assert head.scratch.output_conv2 is None
    assert head.scratch.output_conv1.out_channels == 8
    with torch.no_grad():
        feats = head(_tokens(), None, 5, image_hw=(28, 42))
    assert feats.shape == (1, 3, 8, 14, 21)


def test_dpt_frame_subset_and_chunking_equal_full():
    head = _small_dpt(output_dim=2, activation="exp", conf_activation="expp1")
    toks = _tokens(s=5)
    images = torch.zeros(1, 5, 3, 28, 42)
    with torch.no_grad():
        depth, conf = head(toks, images, 5)
        sub_d, sub_c = head(toks, images, 5, frames=[4, 0])
        chunked_d, _ = head(toks, images, 5, frames_chunk_size=2)
    assert depth.shape == (1, 5, 28, 42, 1) and conf.shape == (1, 5, 28, 42)
    assert (depth > 0).all() and (conf > 1).all()
    torch.testing.assert_close(sub_d, depth[:, [4, 0]], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(sub_c, conf[:, [4, 0]], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(chunked_d, depth, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="not kept"):
        head([None, *toks[1:]], images, 5)


def test_point_activation_is_inverse_log():
    head = _small_dpt(output_dim=4, activation="inv_log")
    torch.nn.init.zeros_(head.scratch.output_conv2[2].weight)
    with torch.no_grad():
        head.scratch.output_conv2[2].bias.copy_(torch.tensor([-1.0, 0.5, 2.0, 0.0]))
        pts, conf = head(_tokens(s=1), torch.zeros(1, 1, 3, 28, 42), 5)
    expected = torch.tensor([-(math.e - 1), math.expm1(0.5), math.expm1(2.0)])
    torch.testing.assert_close(pts[0, 0, 3, 7], expected)
    torch.testing.assert_close(conf, torch.full_like(conf, 2.0))  # 1 + exp(0)


def test_dino_pos_embed_resize():
    dino = DinoVisionTransformer(img_size=70, patch_size=14, embed_dim=8, depth=1, num_heads=2)
    torch.nn.init.normal_(dino.pos_embed)
    assert dino.interpolated_pos_embed(5, 5) is dino.pos_embed  # native grid: no interpolation
    pe = dino.interpolated_pos_embed(3, 4)
    assert pe.shape == (1, 13, 8)
    grid = dino.pos_embed[:, 1:].reshape(1, 5, 5, 8).permute(0, 3, 1, 2)
    ref = (
        F.interpolate(grid, size=(3, 4), mode="bicubic", antialias=True).permute(0, 2, 3, 1).reshape(1, 12, 8)
    )
    torch.testing.assert_close(pe[:, 1:], ref)
    plain = (
        F.interpolate(grid, size=(3, 4), mode="bicubic", antialias=False)
        .permute(0, 2, 3, 1)
        .reshape(1, 12, 8)
    )
    assert not torch.allclose(pe[:, 1:], plain)  # antialiasing matters when shrinking
    torch.testing.assert_close(pe[:, :1], dino.pos_embed[:, :1])
    with torch.no_grad():
        out = dino(torch.randn(2, 3, 42, 56))
    assert out.shape == (2, 12, 8)


def test_camera_head_iterations_and_fov_relu():
    head = CameraHead(dim_in=16, trunk_depth=1, num_heads=2).eval()
    torch.manual_seed(0)
    tokens = [None, torch.randn(1, 3, 7, 16)]
    with torch.no_grad():
        head.pose_branch.fc2.bias[7:] = -100.0  # push the FoV channels negative
        out = head(tokens, num_iterations=3)
    assert len(out) == 3 and out[-1].shape == (1, 3, 9)
    assert (out[-1][..., 7:] == 0).all()  # ReLU
    assert not torch.equal(out[0][..., :7], out[1][..., :7])  # refinement changes the estimate
    with pytest.raises(ValueError, match="last aggregator layer"):
        head([tokens[1], None])
