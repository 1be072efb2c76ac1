"""VGGT-FW1 formula weights: the recipe's test vectors and the SHA-256 of every tensor."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest
from vggt_ros.model.formula_weights import (
    formula_params,
    formula_state_dict,
    formula_tensor,
    read_shapes,
    tensor_seed,
)

# (name, shape, seed, first values, (index, value) of a later element) — docs/formula_weights.md
VECTORS = [
    (
        "aggregator.camera_token",
        (1, 2, 1, 1024),
        0x33CCCF929CFB0CE3,
        [0.21141570806503296, 0.42434221506118774, 0.4924406111240387, -0.21661029756069183],
        (-1, -0.19838111102581024),
    ),
    (
        "aggregator.frame_blocks.0.attn.qkv.weight",
        (3072, 1024),
        0x2E37A8D1AD7E2DAA,
        [-0.021213548257946968, 0.00856810063123703, 0.011271818540990353, 0.0419708676636219],
        (-1, -0.03602099046111107),
    ),
    (
        "aggregator.frame_blocks.0.ls1.gamma",
        (1024,),
        0x225F7B7C830BB097,
        [0.13407722115516663, 0.06830202788114548, 0.1349542886018753, 0.11428222060203552],
        (-1, 0.1117917001247406),
    ),
    (
        "aggregator.patch_embed.blocks.0.ls1.gamma",
        (1024,),
        0x4990FFD8B916DF99,
        [1.3321115970611572, 1.336989402770996, 0.7515830993652344, 1.0149949789047241],
        (-1, 0.5986418128013611),
    ),
    (
        "depth_head.scratch.output_conv2.2.bias",
        (2,),
        0x68C34016FE594896,
        [0.039473894983530045, 0.02569292113184929],
        (1, 0.02569292113184929),
    ),
    (
        "camera_head.token_norm.weight",
        (2048,),
        0xABA70A3887E7AC81,
        [1.0425903797149658, 1.0506585836410522, 1.075181007385254, 0.9909299612045288],
        (-1, 1.0345932245254517),
    ),
    (
        "camera_head.pose_branch.fc2.bias",
        (9,),
        0xECAF2366217530AB,
        [0.004484974313527346, -0.044732894748449326, 0.02560301311314106, 0.006487925071269274],
        (8, 0.35253286361694336),
    ),
    (
        "camera_head.pose_branch.fc2.weight",
        (9, 1024),
        0x01B767146A492477,
        [0.0050375503487885, 0.004804974887520075, 0.0038719598669558764, 0.0034337565302848816],
        (-1, -0.004410630092024803),
    ),
    (
        "track_head.tracker.updateformer.flow_head.weight",
        (130, 384),
        0xA3755447701006FE,
        [-0.0021928087808191776, 0.008466795086860657, 0.005098294001072645, -0.007478929590433836],
        (-1, -0.0072791739366948605),
    ),
]


@pytest.mark.parametrize("name,shape,seed,first,later", VECTORS, ids=[v[0] for v in VECTORS])
def test_recipe_vectors(name, shape, seed, first, later):
    assert tensor_seed(name) == seed
    t = formula_tensor(name, shape)
    assert t.dtype == np.float32 and t.shape == shape
    flat = t.ravel()
    assert flat[: len(first)].astype(np.float64).tolist() == first
    assert float(flat[later[0]]) == later[1]


def test_constants_and_categories(data_dir):
    shapes = read_shapes(data_dir / "state_dict_shapes.txt")
    assert len(shapes) == 1797
    assert sum(int(np.prod(s)) for s in shapes.values()) == 1_256_537_516
    counts = Counter(formula_params(n, s)[0] for n, s in shapes.items())
    assert counts == {
        "bias": 811,
        "matrix": 504,
        "norm_weight": 318,
        "layerscale": 152,
        "token": 9,
        "damped_matrix": 2,
        "pose_bias": 1,
    }
    assert formula_params("camera_head.pose_branch.fc2.weight", (9, 1024))[2] == 0.005412658773652742
    assert formula_params("aggregator.frame_blocks.0.attn.qkv.weight", (3072, 1024))[2] == 0.05412658773652741


def test_chunk_boundaries_do_not_change_values(monkeypatch):
    import vggt_ros.model.formula_weights as fw

    whole = formula_tensor("x.weight", (7, 1000))
    monkeypatch.setattr(fw, "CHUNK", 333)
    assert np.array_equal(whole, fw.formula_tensor("x.weight", (7, 1000)))


def test_state_dict_small():
    sd = formula_state_dict({"a.bias": (3,), "b.weight": (2, 4)})
    assert set(sd) == {"a.bias", "b.weight"} and tuple(sd["b.weight"].shape) == (2, 4)
    assert np.array_equal(sd["a.bias"].numpy(), formula_tensor("a.bias", (3,)))


@pytest.mark.slow
def test_every_tensor_checksum(data_dir):
    """Bit-exact: SHA-256 of the little-endian float32 bytes of all 1797 tensors (~1.26 G values)."""
    rows = []
    with open(data_dir / "formula_weights_checksums.tsv", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#") or not line.strip():
                continue
            rows.append(line.rstrip("\n").split("\t"))
    assert len(rows) == 1797
    shapes = read_shapes(data_dir / "state_dict_shapes.txt")
    bad = []
    for name, shape_txt, category, _c0, c1, sha, total in rows:
        shape = shapes[name]
        assert shape_txt == str(shape)
        cat, _, my_c1 = formula_params(name, shape)
        assert cat == category and repr(my_c1) == c1, name
        t = formula_tensor(name, shape)
        if hashlib.sha256(t.astype("<f4", copy=False).tobytes()).hexdigest() != sha:
            bad.append(name)
        elif abs(float(t.sum(dtype=np.float64)) - float(total)) > 1e-6 * max(1.0, abs(float(total))):
            bad.append(name + " (sum)")
    assert not bad, f"{len(bad)} tensors differ, e.g. {bad[:5]}"
