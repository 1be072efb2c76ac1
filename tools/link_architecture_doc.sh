#!/usr/bin/env bash
# One-off, for the merge of issue 12: point the 33 ARCHITECTURE.md / SPEC.md comments at
# docs/architecture.md (run from the repo root; content-matched, so line moves do not matter; the
# last grep fails if a reference is left). Delete this file once applied.
set -euo pipefail
P=vggt_ros
# lines that would pass 110 columns: reworded or broken where the link is inserted
sed -i 's|^    # what ARCHITECTURE\.md asks RViz to show: global map, window cloud, path, depth, camera image (+ TF)$|    # docs/architecture.md#rviz: RViz shows the global map, window cloud, path, depth, camera image, TF|' $P/test/test_launch_rviz_consistency.py
sed -i -e 's|^"""Building blocks and heads of the VGGT model, checked against direct formulas of SPEC\.md\."""$|"""VGGT building blocks and heads, checked against direct formulas (docs/architecture.md#module-tree)."""|' \
       -e 's|^    """SPEC\.md §1 literally: halves by axis, per-axis cat(a, a) angles, rotate-half \[-x2, x1\]\."""$|    """docs/architecture.md#module-tree: halves by axis, per-axis cat(a, a) angles, rotate-half [-x2, x1]."""|' \
       -e 's|^    """The reference.s in-place ReLU makes the skip carry relu(x), not x (SPEC\.md §7)\."""$|    """In-place ReLU: the skip carries relu(x), not x (docs/architecture.md#parity-pitfalls)."""|' $P/test/test_model_heads.py
sed -i 's|^Pixel convention is VGGT.s (`unproject_depth_map_to_point_map`, SPEC\.md §4): pixel (u, v)$|Pixel convention is VGGT'"'"'s (`unproject_depth_map_to_point_map`, docs/architecture.md#reference-conventions):\npixel (u, v)|' $P/vggt_ros/geometry/depth.py
sed -i 's|^absT_quaR_FoV encoding (SPEC\.md §4) both use\. Works on numpy arrays or torch tensors and$|absT_quaR_FoV encoding (docs/architecture.md#reference-conventions) both use. Works on numpy arrays\nor torch tensors and|' $P/vggt_ros/geometry/quaternion.py
sed -i -e 's|^ViT-L/14-reg in VGGT (SPEC\.md §1): patch conv 14x14, |ViT-L/14-reg in VGGT (docs/architecture.md#module-tree):\npatch conv 14x14, |' \
       -e 's|^        # torch.s antialiased bicubic uses a = -0\.5 (SPEC\.md §7); size given, no offset\.$|        # antialiased bicubic with a = -0.5, size given, no offset (docs/architecture.md#parity-pitfalls)|' $P/vggt_ros/model/dinov2.py
sed -i 's|^-> activation (SPEC\.md §1)\. Every frame is processed independently, so running the head on a$|-> activation (docs/architecture.md#module-tree). Every frame is processed independently,\nso running the head on a|' $P/vggt_ros/model/dpt_head.py
sed -i -e 's|^    ``cat(a, a)`` and rotate-half ``\[-x2, x1\]`` (not interleaved) — SPEC\.md §1\. Computed in the$|    ``cat(a, a)`` and rotate-half ``[-x2, x1]`` (not interleaved; docs/architecture.md#module-tree).\n    Computed in the|' \
       -e 's|^        # q/k-norm is a LayerNorm with the default eps 1e-5 in every block (SPEC\.md §7)\.$|        # q/k-norm: a LayerNorm, default eps 1e-5, in every block (docs/architecture.md#parity-pitfalls).|' $P/vggt_ros/model/layers.py
sed -i 's|^The policy is transport-free\. A `Publication` names its topic (ARCHITECTURE\.md.s contract, relative to$|The policy is transport-free. A `Publication` names its topic (docs/architecture.md#interface-contract,\nrelative to|' $P/vggt_ros/runtime/publishing.py
# the rest fit as they are
grep -rlZ "ARCHITECTURE\|SPEC\.md" $P --include=*.py | xargs -0 -r sed -i \
  -e 's|SPEC\.md §1|docs/architecture.md#module-tree|g' \
  -e 's|SPEC\.md §2|docs/architecture.md#checkpoint-keys|g' \
  -e 's|SPEC\.md §3|docs/architecture.md#forward-outputs|g' \
  -e 's|SPEC\.md §4|docs/architecture.md#reference-conventions|g' \
  -e 's|SPEC\.md §7|docs/architecture.md#parity-pitfalls|g' \
  -e 's|ARCHITECTURE\.md "Scale"|docs/architecture.md#scale|' \
  -e 's|(ARCHITECTURE\.md "runtime/")|(docs/architecture.md#package-layout)|' \
  -e 's|Conventions (ARCHITECTURE\.md):|Conventions (docs/architecture.md#conventions):|' \
  -e 's|(ARCHITECTURE\.md; REP 2003)|(docs/architecture.md#qos; REP 2003)|' \
  -e 's|ARCHITECTURE\.md.s interface contract|docs/architecture.md#interface-contract|' \
  -e 's|camera body frame, ARCHITECTURE\.md)|camera body frame, docs/architecture.md#frames)|' \
  -e 's|(ARCHITECTURE\.md, "The contract between them and slam/")|(docs/architecture.md#predictor-contract)|'
grep -rn "ARCHITECTURE\|SPEC\.md" $P --include=*.py && { echo "unmapped references left" >&2; exit 1; } || true
