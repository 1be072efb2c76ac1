"""LoopCloser's candidate gate: a loop within the query's segment needs min_score; a relocalisation into
another segment needs only reloc_min_score, the best-ranked one reloc_best_min_score (verification, not
the descriptor, decides a merge)."""

from __future__ import annotations

import numpy as np
import pytest
from vggt_ros.geometry.se3 import Sim3, rotation_angle, so3_exp
from vggt_ros.slam.config import LoopConfig, PipelineConfig
from vggt_ros.slam.keyframes import Keyframe, KeyframeManager
from vggt_ros.slam.loop_closure import LoopCloser
from vggt_ros.slam.stitching import AnchorLink, TrackStitcher
from vggt_ros.slam.tracking import TrackingStatus


def _kf(kf_id: int, segment: int, descriptor: np.ndarray, x: float) -> Keyframe:
    T = np.eye(4)
    T[0, 3] = x
    K = np.array([[50.0, 0, 40], [0, 50.0, 30], [0, 0, 1]])
    return Keyframe(kf_id, kf_id * 4, kf_id, "cam", kf_id, T, K, (60, 80), True, 4, 1,
                    np.ones((15, 20), np.float32), np.ones((15, 20), np.float32),
                    np.zeros((60, 80, 3), np.uint8), 1.0, segment_id=segment, descriptor=descriptor)


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


@pytest.mark.parametrize(("query_segment", "score", "verified"),
                         [(1, 0.8, True), (0, 0.8, False), (0, 0.95, True), (1, 0.5, True), (0, 0.5, False),
                          (1, 0.3, False)])
def test_candidate_score_gate_depends_on_the_segment(query_segment, score, verified, monkeypatch):
    cfg = LoopConfig(reloc_last_keyframes=0)  # the descriptor gate alone (break candidates: below)
    assert cfg.reloc_best_min_score < 0.5 < cfg.reloc_min_score < 0.8 < cfg.min_score < 0.95
    base = _unit(np.eye(16)[0])
    other = _unit(np.eye(16)[1])
    match = _kf(0, 0, base, 0.0)  # the mapped place, segment 0
    fillers = [_kf(i, 0, _unit(np.eye(16)[i]), 0.0) for i in range(2, 15)]  # the segment's later keyframes
    query = _kf(20, query_segment, _unit(score * base + np.sqrt(1 - score**2) * other), 0.1)
    assert float(query.descriptor @ base) == pytest.approx(score, abs=1e-6)
    keyframes = KeyframeManager()
    keyframes.keyframes = [match, *fillers, query]
    closer = LoopCloser(cfg)
    for kf in [match, *fillers]:
        closer.places.add(kf.keyframe_id, kf.descriptor, kf.T_world_cam, kf.segment_id)
    calls = []
    monkeypatch.setattr(LoopCloser, "_verify", lambda self, q, m, *a: calls.append(m.keyframe_id))
    closer.detect(query, keyframes, None, TrackStitcher(), PipelineConfig(), TrackingStatus())
    assert calls == ([0] if verified else [])


def test_below_reloc_min_score_only_the_best_other_segment_candidate_is_verified(monkeypatch):
    """Keyframes 0 and 2 of segment 0 both look somewhat like the query of segment 1 (0.5, 0.45): the best
    one is verified (a view-dependent descriptor scores a place seen from elsewhere that low), the
    runner-up is not; a segment-1 keyframe at 0.55 is a loop candidate and stays under min_score. Only
    in a segment's first reloc_best_keyframes keyframes (the query is its 18th)."""
    e = [_unit(np.eye(16)[i]) for i in range(16)]
    q = _unit(0.5 * e[0] + 0.45 * e[2] + 0.55 * e[3] + np.sqrt(1 - 0.5**2 - 0.45**2 - 0.55**2) * e[1])
    kfs = [_kf(0, 0, e[0], 0.0), _kf(2, 0, e[2], 0.0), _kf(3, 1, e[3], 0.0)]
    kfs += [_kf(i, 1, e[i], 0.0) for i in range(4, 16)]  # segment 1's recent keyframes (excluded)
    keyframes = KeyframeManager()
    keyframes.keyframes = [*kfs, _kf(20, 1, q, 0.1)]
    calls: list[int] = []
    monkeypatch.setattr(LoopCloser, "_verify", lambda self, q, m, *a: calls.append(m.keyframe_id))
    for age_limit, expected in ((18, [0]), (17, [])):
        cfg = LoopConfig(reloc_last_keyframes=0, exclude_recent=12, reloc_best_keyframes=age_limit)
        closer = LoopCloser(cfg)
        for kf in kfs:
            closer.places.add(kf.keyframe_id, kf.descriptor, kf.T_world_cam, kf.segment_id)
        calls.clear()
        closer.detect(keyframes.keyframes[-1], keyframes, None, TrackStitcher(), PipelineConfig(),
                      TrackingStatus())
        assert calls == expected, age_limit
    assert LoopConfig().reloc_best_keyframes > 18


def _place_db(cfg: LoopConfig) -> tuple[LoopCloser, KeyframeManager, np.ndarray]:
    """A segment-0 map: keyframe 0 at a place (descriptor e0), 13 later keyframes elsewhere."""
    base = _unit(np.eye(16)[0])
    kfs = [_kf(0, 0, base, 0.0)] + [_kf(i, 0, _unit(np.eye(16)[i]), 0.0) for i in range(2, 15)]
    keyframes = KeyframeManager()
    keyframes.keyframes = kfs
    closer = LoopCloser(cfg)
    for kf in kfs:
        closer.places.add(kf.keyframe_id, kf.descriptor, kf.T_world_cam, kf.segment_id)
    return closer, keyframes, base


@pytest.mark.parametrize(("segment", "score", "revisits"),
                         [(0, 0.95, True), (0, 0.8, False), (1, 0.8, True), (1, 0.6, False)])
def test_revisits_place_uses_the_candidate_gate(segment, score, revisits):
    """A frame that looks like an earlier keyframe (the gate detect() applies) is a place revisit."""
    closer, keyframes, base = _place_db(LoopConfig())
    d = _unit(score * base + np.sqrt(1 - score**2) * _unit(np.eye(16)[1]))
    assert closer.revisits_place(d, segment, keyframes) is revisits


def test_revisits_place_not_for_recent_keyframes_cooldown_or_when_off():
    closer, keyframes, base = _place_db(LoopConfig(exclude_recent=14))
    assert not closer.revisits_place(base, 0, keyframes)  # keyframe 0 is among the newest 14: connected
    closer, keyframes, base = _place_db(LoopConfig())
    assert closer.revisits_place(base, 0, keyframes)
    closer._cooldown = 2  # right after a closure
    assert not closer.revisits_place(base, 0, keyframes)
    closer, keyframes, base = _place_db(LoopConfig(enabled=False))
    assert not closer.revisits_place(base, 0, keyframes)
    closer, keyframes, _ = _place_db(LoopConfig())
    assert not closer.revisits_place(np.ones(8, np.float32), 0, keyframes)  # another descriptor kind
    assert not closer.revisits_place(None, 0, keyframes)


@pytest.mark.parametrize(("budget", "loop_calls", "skips"), [(None, 2, 0), (2, 2, 0), (1, 1, 1), (0, 0, 1)])
def test_window_budget_limits_loop_verifications_not_relocalisation(budget, loop_calls, skips, monkeypatch):
    """Keyframe 20 of segment 1 looks exactly like keyframes 0 and 1 (segment 0: relocalisation candidates)
    and 3 and 4 (its own segment, within drift: loop candidates). max_candidates 4: the relocalisation
    candidates are always verified; the loop ones only as far as the window's remaining budget goes."""
    base = _unit(np.eye(16)[0])
    old = [_kf(i, 0, base, 0.0) for i in (0, 1)]
    own = [_kf(i, 1, base, 0.05) for i in (3, 4)]
    fillers = [_kf(i, 1, _unit(np.eye(16)[i]), 0.1) for i in range(5, 15)]  # the newest: not candidates
    query = _kf(20, 1, base, 0.1)
    keyframes = KeyframeManager()
    keyframes.keyframes = [*old, *own, *fillers, query]
    closer = LoopCloser(LoopConfig(max_candidates=4, exclude_recent=10))
    for kf in [*old, *own, *fillers]:
        closer.places.add(kf.keyframe_id, kf.descriptor, kf.T_world_cam, kf.segment_id)
    monkeypatch.setattr(LoopCloser, "_within_drift", lambda self, q, m: True)
    calls = []
    monkeypatch.setattr(LoopCloser, "_verify", lambda self, q, m, *a: calls.append(m.keyframe_id))
    closer.detect(query, keyframes, None, TrackStitcher(), PipelineConfig(), TrackingStatus(), budget)
    assert sorted(c for c in calls if c < 2) == [0, 1]  # relocalisation: never budgeted
    assert len([c for c in calls if c >= 2]) == loop_calls == closer.loop_verifications
    assert closer.verifications == len(calls) and closer.budget_skips == skips


def test_a_keyframe_is_never_its_own_or_a_newer_keyframes_candidate(monkeypatch):
    """A window that adds more than exclude_recent keyframes (28 new frames per window did: a crash,
    'edge from node 18 to itself'): its first keyframe, checked after all of them were added, must not
    find itself or the window's later keyframes; 'recent' counts back from the query."""
    base = _unit(np.eye(16)[0])
    kfs = [_kf(i, 0, base, 0.0) for i in range(20)]
    keyframes = KeyframeManager()
    keyframes.keyframes = kfs
    closer = LoopCloser(LoopConfig(max_candidates=20, exclude_recent=12))
    for kf in kfs:
        closer.places.add(kf.keyframe_id, kf.descriptor, kf.T_world_cam, kf.segment_id)
    monkeypatch.setattr(LoopCloser, "_within_drift", lambda self, q, m: True)
    calls = []
    monkeypatch.setattr(LoopCloser, "_verify",
                        lambda self, q, m, *a: calls.append((q.keyframe_id, m.keyframe_id)))
    for q in (5, 14, 19):
        closer.detect(kfs[q], keyframes, None, TrackStitcher(), PipelineConfig(), TrackingStatus())
    assert calls == [(14, 0), (14, 1), (14, 2), *[(19, i) for i in range(8)]]


@pytest.mark.parametrize(("nth", "last", "expected"), [(0, 2, [13, 14]), (2, 2, [13, 14]), (3, 2, []),
                                                       (0, 0, []), (0, 1, [14])])
def test_a_new_segment_verifies_the_last_keyframes_before_its_break(nth, last, expected, monkeypatch):
    """Segment 0: keyframes 0..14; segment 1 starts at keyframe 15 after a view break. Its descriptors
    match nothing (orthogonal), yet its first BREAK_KEYFRAMES (3) keyframes verify the newest
    `reloc_last_keyframes` of segment 0: right after a break the camera is most likely still there."""
    from vggt_ros.slam.loop_closure import BREAK_KEYFRAMES

    assert BREAK_KEYFRAMES == 3 and LoopConfig().reloc_last_keyframes == 2
    old = [_kf(i, 0, _unit(np.eye(16)[i]), 0.0) for i in range(15)]
    new = [_kf(15 + i, 1, _unit(np.eye(16)[15]), 0.1) for i in range(nth + 1)]
    keyframes = KeyframeManager()
    keyframes.keyframes = [*old, *new]  # list index == keyframe id, as KeyframeManager.add keeps it
    closer = LoopCloser(LoopConfig(reloc_last_keyframes=last))
    for kf in old:
        closer.places.add(kf.keyframe_id, kf.descriptor, kf.T_world_cam, kf.segment_id)
    calls = []
    monkeypatch.setattr(LoopCloser, "_verify", lambda self, q, m, *a: calls.append(m.keyframe_id))
    closer.detect(new[-1], keyframes, None, TrackStitcher(), PipelineConfig(), TrackingStatus())
    assert sorted(calls) == expected


def test_a_moved_node_keeps_its_place_in_the_next_solve():
    """LoopCloser.move_node (a re-pinned gauge): the keyframe's node follows the correction and its link
    records the new relative pose, so a later solve does not pull it back to where stitching put it."""
    closer = LoopCloser(LoopConfig())
    d = _unit(np.ones(8))
    kfs = [_kf(i, 0, d, 0.2 * i) for i in range(3)]
    closer.add_keyframe(kfs[0], None, 200, 0.02)
    closer.add_keyframe(kfs[1], kfs[0], 200, 0.02)
    closer.add_keyframe(kfs[2], kfs[1], 200, 0.02)
    C = Sim3(1.0, so3_exp(np.array([0.0, 0.03, 0.0])), np.array([0.0, 0.05, 0.0]))
    kfs[2].apply_correction(C)
    closer.move_node(2, C)
    g = closer.graph
    np.testing.assert_allclose(g.node(2).R, kfs[2].T_world_cam[:3, :3], atol=1e-12)
    np.testing.assert_allclose(g.node(2).t, kfs[2].T_world_cam[:3, 3], atol=1e-12)
    res = g.optimize()
    assert max(float(np.linalg.norm(Ci.t)) for Ci in res.correction.values()) < 1e-6
    assert g.num_edges == 2


def test_anchor_links_correct_the_newest_keyframes_or_are_refused():
    """LoopCloser.add_anchor_link / adjust_recent: a chain 0 -> 1 -> 2 in which keyframe 2 was placed 1 deg
    off; keyframe 2's window measures 0 and 1 again where they are seen from the true pose of 2. Solved with
    the segment's newest keyframe free (2; 0 and 1 fixed), keyframe 2 turns back by most of the 1 deg (0.85:
    its sequential edge holds the rest) and the edges stay. A link that would turn it by 30 deg (a wrong
    PnP) is refused: no correction, the edges are removed, the graph is as before."""
    def chain() -> tuple[LoopCloser, KeyframeManager, list[Keyframe], np.ndarray]:
        lc = LoopCloser(LoopConfig())
        kfs = [_kf(i, 0, _unit(np.eye(16)[i]), 0.3 * i) for i in range(3)]
        T2_true = kfs[2].T_world_cam.copy()
        kfs[2].T_world_cam = Sim3(1.0, so3_exp(np.radians(1.0) * np.array([0.0, 1.0, 0.0])),
                                  np.zeros(3)).transform_pose(T2_true)
        for i, kf in enumerate(kfs):
            lc.add_keyframe(kf, kfs[i - 1] if i else None, 500, 0.02)
        km = KeyframeManager()
        km.keyframes = kfs
        return lc, km, kfs, T2_true

    def seen_from(T2: np.ndarray, kfs: list[Keyframe], a: int) -> np.ndarray:
        """Where keyframe a is measured by keyframe 2's window if keyframe 2 sat at T2."""
        return kfs[2].T_world_cam @ np.linalg.inv(T2) @ kfs[a].T_world_cam

    lc, km, kfs, T2_true = chain()
    edges = [lc.add_anchor_link(kfs[2], kfs[a], AnchorLink(seen_from(T2_true, kfs, a), 0.002, 0.005, 150))
             for a in (0, 1)]
    assert None not in edges and lc.graph.num_edges == 4
    corrections = lc.adjust_recent(km, 0, 1, edges)
    assert corrections is not None and set(corrections) == {2}
    turn = np.degrees(rotation_angle(corrections[2].R))
    assert 0.7 < turn < 1.05, turn
    assert abs(np.log(corrections[2].scale)) < 0.01 and lc.graph.num_edges == 4

    lc, km, kfs, _ = chain()
    before = lc.graph.node(2)
    wrong = Sim3(1.0, so3_exp(np.radians(30.0) * np.array([0.0, 1.0, 0.0])), np.zeros(3))
    edges = [lc.add_anchor_link(kfs[2], kfs[a], AnchorLink(
        seen_from(wrong.transform_pose(kfs[2].T_world_cam), kfs, a), 1e-4, 1e-3, 150)) for a in (0, 1)]
    assert lc.adjust_recent(km, 0, 1, edges) is None
    assert lc.graph.num_edges == 2
    after = lc.graph.node(2)
    np.testing.assert_allclose(after.R, before.R)
    np.testing.assert_allclose(after.t, before.t)
    # across segments no edge is made
    other = _kf(3, 1, _unit(np.eye(16)[3]), 1.0)
    lc.add_keyframe(other, None, 500, 0.02)
    assert lc.add_anchor_link(other, kfs[1], AnchorLink(kfs[1].T_world_cam, 0.002, 0.005, 150)) is None


def test_an_anchor_link_is_never_surer_of_the_camera_centre_than_1_percent_of_depth():
    """The PnP's sigmas of a link see the tracks' pixel noise only; the gauge's map points carry a smooth
    depth error that moves the measured camera centre by ~1 % of the scene depth whatever the pixels say.
    With exact tracks (sigma ~0) the edge holds 1 % of the gauge's median depth (2.5 -> 0.025); a less
    certain PnP keeps its own sigma; the rotation keeps the PnP's."""
    lc = LoopCloser(LoopConfig())
    kfs = [_kf(i, 0, _unit(np.eye(16)[i]), 0.3 * i) for i in range(2)]
    kfs[1].median_depth = 2.5
    for i, kf in enumerate(kfs):
        lc.add_keyframe(kf, kfs[i - 1] if i else None, 500, 0.02)
    exact = lc.add_anchor_link(kfs[1], kfs[0], AnchorLink(kfs[0].T_world_cam, 0.002, 1e-6, 150))
    loose = lc.add_anchor_link(kfs[1], kfs[0], AnchorLink(kfs[0].T_world_cam, 0.002, 0.04, 150))
    assert exact is not None and loose is not None
    sig_exact, sig_loose = lc.graph.edge(exact)[4], lc.graph.edge(loose)[4]
    assert sig_exact.trans == pytest.approx(0.025) and sig_loose.trans == pytest.approx(0.04)
    assert sig_exact.rot_rad == pytest.approx(0.002)
