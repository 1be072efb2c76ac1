"""Keyframe Sim(3) pose graph: gtsam conventions, loop closure with rotation/translation/scale drift,
rejection of wrong loops, windows, segments and the scale-prior hook."""

import gtsam
import numpy as np
import pytest
from vggt_ros.geometry.se3 import Sim3, make_T, rot_z, rotation_angle, so3_exp
from vggt_ros.slam.pose_graph import (
    EdgeSigmas,
    PoseGraph,
    PoseGraphConfig,
    edge_sigmas,
    loop_measurement,
    sim3_from_gtsam,
    sim3_to_gtsam,
)

SIG = EdgeSigmas(rot_rad=0.005, trans=0.02, log_scale=0.005)


def square_truth(per_side: int = 10, side: float = 4.0) -> list[Sim3]:
    """Ground-truth keyframes on a 4 m square at 1 m height, facing along the path; last = first."""
    corners = np.array([[0, 0], [side, 0], [side, side], [0, side]], float)
    out = []
    for k in range(4):
        yaw = k * np.pi / 2
        for m in range(per_side):
            p = corners[k] + np.array([np.cos(yaw), np.sin(yaw)]) * side * m / per_side
            out.append(Sim3(1.0, rot_z(yaw), np.array([p[0], p[1], 1.0])))
    out.append(out[0])
    return out


def drifted(truth: list[Sim3], times: float = 1.0) -> list[Sim3]:
    """Odometry that drifts in rotation, translation and scale every step: 1.1^times scale over the
    loop, times x (0.26 deg rotation, 1.2 cm translation) per step."""
    steps = len(truth) - 1
    bias = Sim3(1.1 ** (times / steps), so3_exp(times * np.array([0.002, -0.001, 0.004])),
                times * np.array([0.01, 0.005, -0.003]))
    est = [truth[0]]
    for k in range(steps):
        est.append(est[-1] @ (truth[k].inverse() @ truth[k + 1]) @ bias)
    return est


def chain_graph(est: list[Sim3], config: PoseGraphConfig | None = None) -> PoseGraph:
    """Pipeline-style graph: nodes at the drifted rigid poses with scale 1 (world units), sequential
    edges = the stitched relative poses (S_world_i^-1 S_world_j of the estimates)."""
    g = PoseGraph(config)
    for k, S in enumerate(est):
        g.add_node(k, make_T(S.R, S.t))
    for k in range(len(est) - 1):
        g.add_sequential(k, k + 1, g.relative(k, k + 1), SIG)
    return g


def position_errors(T: dict[int, np.ndarray], truth: list[Sim3]) -> np.ndarray:
    return np.array([np.linalg.norm(T[k][:3, 3] - truth[k].t) for k in range(len(truth))])


def test_gtsam_similarity3_convention_verified():
    R = so3_exp(np.array([0.1, 0.2, 0.3]))
    t_g = np.array([1.0, 2.0, 3.0])
    g = gtsam.Similarity3(gtsam.Rot3(R), t_g, 2.0)
    p = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(g.transformFrom(p), 2.0 * (R @ p + t_g), atol=1e-12)
    M = g.matrix()
    np.testing.assert_allclose(M[:3, :3], R, atol=1e-12)
    np.testing.assert_allclose(M[:3, 3], t_g, atol=1e-12)
    assert M[3, 3] == pytest.approx(0.5)
    # tangent order [rotation, translation, log scale]
    ident = gtsam.Similarity3()
    np.testing.assert_allclose(ident.localCoordinates(gtsam.Similarity3(gtsam.Rot3(), np.zeros(3), 2.0)),
                               [0, 0, 0, 0, 0, 0, np.log(2.0)], atol=1e-12)


def test_sim3_gtsam_round_trip_and_composition():
    rng = np.random.default_rng(3)
    for _ in range(20):
        S = Sim3(float(np.exp(rng.normal(0, 0.5))), so3_exp(rng.normal(0, 1.0, 3)), rng.normal(0, 3.0, 3))
        T = Sim3(float(np.exp(rng.normal(0, 0.5))), so3_exp(rng.normal(0, 1.0, 3)), rng.normal(0, 3.0, 3))
        back = sim3_from_gtsam(sim3_to_gtsam(S))
        np.testing.assert_allclose(back.matrix(), S.matrix(), atol=1e-9)
        pts = rng.normal(0, 2.0, (5, 3))
        g = sim3_to_gtsam(S)
        np.testing.assert_allclose([g.transformFrom(p) for p in pts], S.apply(pts), atol=1e-9)
        np.testing.assert_allclose(sim3_from_gtsam(g.compose(sim3_to_gtsam(T))).matrix(), (S @ T).matrix(),
                                   atol=1e-9)
        np.testing.assert_allclose(sim3_from_gtsam(g.inverse()).matrix(), S.inverse().matrix(), atol=1e-9)


def test_square_loop_with_rotation_translation_and_scale_drift_is_closed():
    truth = square_truth()
    est = drifted(truth)
    n = len(truth)
    assert est[-1].scale == pytest.approx(1.1)  # 10 % scale drift over the loop
    g = chain_graph(est)
    pos_before = position_errors({k: make_T(S.R, S.t) for k, S in enumerate(est)}, truth)
    rot_before = np.degrees(rotation_angle(est[-1].R.T @ truth[-1].R))
    # the verified loop measures the true relative pose, in keyframe n-1's drifted local units
    loop = (truth[0].inverse() @ truth[-1]) @ Sim3(1.0 / est[-1].scale)
    gauge_before = g.node(0)
    out = g.try_loop(0, n - 1, loop, SIG)
    r = out.result
    pos_after = position_errors(r.T_world_cam, truth)
    rot_after = np.degrees(rotation_angle(r.T_world_cam[n - 1][:3, :3].T @ truth[-1].R))
    assert out.accepted and out.edge_id is not None and out.chi2 < 5.0
    assert r.flagged_loops == ()
    # before: end 0.56 m and 9.2 deg off; after: ~1 mm and ~0.2 deg
    assert pos_before[-1] > 0.5 and pos_after[-1] < 0.01
    assert rot_before > 8.0 and rot_after < 0.5
    # the whole path: RMSE 0.33 m -> 0.11 m (the bias is spread over the loop, not removed)
    assert np.sqrt(np.mean(pos_after**2)) < 0.4 * np.sqrt(np.mean(pos_before**2))
    # the end keyframe's local units are 1.1x too large: its scale becomes ~1/1.1
    assert r.scale[n - 1] == pytest.approx(1 / 1.1, rel=0.01)
    assert r.final_error < 0.5 * r.initial_error and r.iterations >= 1
    # gauge node unchanged, exactly; the graph now holds the committed estimates
    np.testing.assert_array_equal(g.node(0).matrix(), gauge_before.matrix())
    np.testing.assert_allclose(r.correction[0].matrix(), np.eye(4), atol=0)
    committed = Sim3.from_T(r.T_world_cam[n - 1], r.scale[n - 1])
    np.testing.assert_allclose(g.node(n - 1).matrix(), committed.matrix())


def test_correction_moves_points_attached_to_a_keyframe():
    truth = square_truth()
    est = drifted(truth)
    n = len(truth)
    g = chain_graph(est)
    old = g.node(25)
    x_cam = np.array([[0.3, -0.2, 2.0], [1.0, 0.5, 4.0]])
    x_world_old = old.apply(x_cam)
    r = g.try_loop(0, n - 1, (truth[0].inverse() @ truth[-1]) @ Sim3(1 / 1.1), SIG).result
    new = Sim3.from_T(r.T_world_cam[25], r.scale[25])
    np.testing.assert_allclose(r.correction[25].apply(x_world_old), new.apply(x_cam), atol=1e-9)
    assert np.linalg.norm(new.apply(x_cam) - x_world_old) > 0.05  # it did move


def test_wrong_loop_is_down_weighted_flagged_and_rolled_back():
    truth = square_truth()
    n = len(truth)
    g = chain_graph(drifted(truth))
    assert g.try_loop(0, n - 1, (truth[0].inverse() @ truth[-1]) @ Sim3(1 / 1.1), SIG).accepted
    before = {k: g.node(k).matrix() for k in g.node_ids}
    revision = g.revision
    # a false place match: claims keyframes 10 and 30 (4 m apart, opposite headings) coincide
    wrong = g.try_loop(10, 30, Sim3.identity(), SIG, robust="cauchy")
    assert not wrong.accepted and wrong.edge_id is None
    assert wrong.chi2 > 1e4  # far above loop_chi2_max = 24.3
    (eid,) = wrong.result.flagged_loops
    assert wrong.result.edges[eid].weight < 1e-3  # the kernel switched it off ...
    moved = max(np.linalg.norm(wrong.result.T_world_cam[k][:3, 3] - before[k][:3, 3]) for k in range(n))
    assert moved < 0.02  # ... so the trajectory barely moved in that solve
    # rolled back: the edge is gone and the estimates untouched
    assert g.edge_ids("loop") == [n - 1] and g.num_edges == n
    assert all(np.array_equal(g.node(k).matrix(), before[k]) for k in g.node_ids)
    assert g.revision == revision + 2  # add + remove


def test_wrong_loop_is_rejected_with_the_default_kernel():
    truth = square_truth()
    g = chain_graph(drifted(truth))
    before = {k: g.node(k).matrix() for k in g.node_ids}
    out = g.try_loop(10, 30, Sim3.identity(), SIG)  # huber
    (eid,) = out.result.flagged_loops
    assert not out.accepted and out.chi2 > 1e3 and out.result.edges[eid].weight < 0.05
    assert g.edge_ids("loop") == [] and all(np.array_equal(g.node(k).matrix(), before[k]) for k in before)


def test_loop_that_fits_itself_but_breaks_an_accepted_loop_is_rejected():
    truth = square_truth()
    n = len(truth)
    g = chain_graph(drifted(truth))
    loop = (truth[0].inverse() @ truth[-1]) @ Sim3(1 / 1.1)
    loose = EdgeSigmas(0.02, 0.05, 0.02)
    first = g.try_loop(0, n - 1, loop, loose)
    assert first.accepted
    # a tighter, contradicting claim (40 cm off): it fits itself by pushing the first loop out
    out = g.try_loop(0, n - 1, loop @ Sim3(1.0, np.eye(3), [0.4, 0.0, 0.0]), SIG, robust="none")
    cfg = PoseGraphConfig()
    assert out.chi2 <= cfg.loop_chi2_max  # on its own it would pass ...
    assert out.result.edges[first.edge_id].chi2_final > cfg.loop_chi2_max  # ... but breaks the first
    assert not out.accepted and g.edge_ids("loop") == [first.edge_id]


def test_correct_loop_after_long_drift_closes_with_huber_but_not_cauchy():
    """Twice the drift (20 % scale, 18 deg): the loop edge starts at chi2 ~ 1e4. Huber (convex)
    still closes it; Cauchy (redescending) down-weights it from the start and leaves it open."""
    truth = square_truth()
    n = len(truth)
    est = drifted(truth, times=2.0)
    loop = (truth[0].inverse() @ truth[-1]) @ Sim3(1.0 / est[-1].scale)
    huber = chain_graph(est).try_loop(0, n - 1, loop, SIG, robust="huber")
    cauchy = chain_graph(est).try_loop(0, n - 1, loop, SIG, robust="cauchy")
    assert huber.accepted and huber.chi2 < 10.0
    assert position_errors(huber.result.T_world_cam, truth)[-1] < 0.01
    assert not cauchy.accepted and cauchy.chi2 > 1e3


def test_wrong_loop_without_kernel_distorts_the_solve():
    truth = square_truth()
    g = chain_graph(drifted(truth))
    base = position_errors(g.optimize().T_world_cam, truth)
    g.add_loop(10, 30, Sim3.identity(), SIG, robust="none")
    r = g.optimize()
    assert r.flagged_loops == tuple(g.edge_ids("loop"))
    assert np.sqrt(np.mean(position_errors(r.T_world_cam, truth) ** 2)) > np.sqrt(np.mean(base**2)) + 1.0


def test_long_chain_solves_and_stays_consistent():
    rng = np.random.default_rng(0)
    n = 200
    step = Sim3(1.0, rot_z(2 * np.pi / (n - 1)), np.array([0.1, 0.0, 0.0]))
    truth = [Sim3.identity()]
    for _ in range(n - 1):
        truth.append(truth[-1] @ step)
    g = PoseGraph()
    noisy = [truth[0]]
    for _ in range(1, n):
        meas = step @ Sim3(float(np.exp(rng.normal(0, 0.002))), so3_exp(rng.normal(0, 0.002, 3)),
                           rng.normal(0, 0.002, 3))
        noisy.append(noisy[-1] @ meas)
    for k, S in enumerate(noisy):
        g.add_node(k, make_T(S.R, S.t), S.scale)
    for k in range(n - 1):
        g.add_sequential(k, k + 1, g.relative(k, k + 1), edge_sigmas(300, 0.02, depth=2.0))
    loop_id = g.add_loop(0, n - 1, truth[0].inverse() @ truth[-1], edge_sigmas(300, 0.02, depth=2.0))
    r = g.optimize()
    assert len(r.T_world_cam) == n and r.num_free == n - 1
    assert r.edges[loop_id].chi2_final < r.edges[loop_id].chi2_initial
    end_before = np.linalg.norm(noisy[-1].t - truth[-1].t)
    end_after = np.linalg.norm(r.T_world_cam[n - 1][:3, 3] - truth[-1].t)
    assert end_after < 0.2 * end_before


def test_window_keeps_outside_nodes_exactly_and_gauges_segments():
    truth = square_truth()
    n = len(truth)
    g = chain_graph(drifted(truth))
    loop = (truth[0].inverse() @ truth[-1]) @ Sim3(1 / 1.1)
    g.add_loop(0, n - 1, loop, SIG)
    full = g.optimize()
    win = g.optimize(window=15)
    assert win.num_free == 15
    for k in range(n - 15):  # fixed: identity where the solve's edges reach them, else left out
        C = win.correction.get(k)
        assert C is None or np.array_equal(C.matrix(), np.eye(4))
    assert 15 < len(win.correction) < n  # the window and the nodes it is tied to, not the whole graph
    end_drift = np.linalg.norm(g.node(n - 1).t - truth[-1].t)
    # the last 15 of 40 nodes absorb the loop alone: the end error halves (full solve: ~1 mm)
    assert np.linalg.norm(win.T_world_cam[n - 1][:3, 3] - truth[-1].t) < 0.5 * end_drift
    assert np.linalg.norm(full.T_world_cam[n - 1][:3, 3] - truth[-1].t) < 0.01
    assert win.final_error > full.final_error  # fewer free nodes: a worse but bounded solve
    # the ids form also works and validates
    assert g.optimize(window=range(n - 15, n)).num_free == 15
    with pytest.raises(ValueError):
        g.optimize(window=[999])


def test_separate_segments_keep_their_own_gauge_until_joined():
    g = PoseGraph()
    for k in range(4):
        g.add_node(k, make_T(np.eye(3), [k, 0.0, 0.0]))
    g.add_sequential(0, 1, g.relative(0, 1), SIG)
    g.add_sequential(2, 3, g.relative(2, 3), SIG)  # second segment, its own frame
    r = g.optimize()
    assert r.num_free == 2  # nodes 1 and 3; 0 and 2 are the two gauges
    assert all(np.allclose(r.correction[k].matrix(), np.eye(4), atol=1e-9) for k in range(4))
    # a loop says node 2 sits 1 m above node 0: segment 2 moves as a block, segment 1 stays
    g.add_loop(0, 2, Sim3(1.0, np.eye(3), [0.0, 0.0, 1.0]), SIG, robust="none")
    r = g.optimize()
    assert r.num_free == 3
    np.testing.assert_allclose(r.T_world_cam[2][:3, 3], [0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(r.T_world_cam[3][:3, 3], [1, 0, 1], atol=1e-6)
    np.testing.assert_array_equal(r.T_world_cam[0], make_T(np.eye(3), [0, 0, 0]))


def test_scale_prior_acts_on_the_scale():
    g = PoseGraph()
    for k in range(3):
        g.add_node(k, make_T(np.eye(3), [k, 0.0, 0.0]))
    for k in range(2):
        g.add_sequential(k, k + 1, g.relative(k, k + 1), EdgeSigmas(0.001, 0.001, 0.5))
    g.add_scale_prior(2, 1.5, 0.01)
    r = g.optimize()
    assert r.scale[2] == pytest.approx(1.5, rel=0.02)
    assert r.scale[0] == 1.0 and 1.05 < r.scale[1] < 1.45  # the loose relative scales share it
    # rotations stay; each edge's 1 m (in node k's units) becomes s_k metres in the world
    for k in range(3):
        np.testing.assert_allclose(r.T_world_cam[k][:3, :3], np.eye(3), atol=1e-6)
    np.testing.assert_allclose(r.T_world_cam[2][:3, 3], [1.0 + r.scale[1], 0, 0], atol=1e-3)
    g.remove_scale_prior(2)
    assert g.optimize().scale[2] == pytest.approx(1.0, abs=1e-6)


def test_stale_result_bad_input_and_sigmas():
    g = PoseGraph()
    g.add_node(0, np.eye(4))
    g.add_node(1, make_T(np.eye(3), [1.0, 0, 0]))
    g.add_sequential(0, 1, g.relative(0, 1), SIG)
    r = g.optimize()
    g.add_node(2, np.eye(4))
    with pytest.raises(ValueError, match="stale"):
        g.apply(r)
    with pytest.raises(ValueError):
        g.add_node(2, np.eye(4))
    with pytest.raises(ValueError):
        g.add_node(3, np.diag([2.0, 1.0, 1.0, 1.0]))
    with pytest.raises(ValueError):
        g.add_node(3, np.full((4, 4), np.nan))
    with pytest.raises(ValueError):
        g.add_sequential(0, 7, Sim3.identity(), SIG)
    with pytest.raises(ValueError):
        g.add_sequential(1, 1, Sim3.identity(), SIG)
    with pytest.raises(TypeError):
        g.add_sequential(0, 1, np.eye(4), SIG)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        g.add_loop(0, 1, Sim3.identity(), SIG, robust="tukey")
    with pytest.raises(KeyError):
        g.remove_edge(42)
    with pytest.raises(ValueError):
        EdgeSigmas(0.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        edge_sigmas(0, 0.01)
    with pytest.raises(ValueError):
        edge_sigmas(100, float("nan"))
    # more inliers / smaller residual -> tighter, never below the floors; translation scales with depth
    cfg = PoseGraphConfig()
    loose, tight = edge_sigmas(20, 0.1, 2.0), edge_sigmas(2000, 0.01, 2.0)
    assert loose.rot_rad == pytest.approx(3 * 0.1 / np.sqrt(20))
    assert loose.trans == pytest.approx(2.0 * 3 * 0.1 / np.sqrt(20))
    assert tight.rot_rad == cfg.min_rot_sigma_rad and tight.log_scale == cfg.min_log_scale_sigma
    assert tight.trans == pytest.approx(2.0 * cfg.min_trans_sigma_rel)


def test_arrays_round_trip_restores_an_identical_graph(tmp_path):
    truth = square_truth()
    n = len(truth)
    g = chain_graph(drifted(truth))
    assert g.try_loop(0, n - 1, (truth[0].inverse() @ truth[-1]) @ Sim3(1 / 1.1), SIG).accepted
    g.remove_edge(3)  # a gap in the edge ids
    g.add_sequential(3, 4, g.relative(3, 4), EdgeSigmas(0.01, 0.03, 0.01))
    g.add_scale_prior(20, 0.95, 0.02)
    np.savez(tmp_path / "graph.npz", **g.to_arrays())
    with np.load(tmp_path / "graph.npz") as z:
        h = PoseGraph.from_arrays(dict(z))
    assert h.node_ids == g.node_ids and h.edge_ids() == g.edge_ids() and h.edge_ids("loop") == [n - 1]
    for k in g.node_ids:
        np.testing.assert_array_equal(h.node(k).matrix(), g.node(k).matrix())
    for e in g.edge_ids():
        kind, i, j, meas, sig = g.edge(e)
        kind2, i2, j2, meas2, sig2 = h.edge(e)
        assert (kind, i, j, sig) == (kind2, i2, j2, sig2)
        np.testing.assert_array_equal(meas.matrix(), meas2.matrix())
    ra, rb = g.optimize(), h.optimize()
    for k in g.node_ids:
        np.testing.assert_allclose(rb.T_world_cam[k], ra.T_world_cam[k], atol=1e-12)
    assert rb.final_error == pytest.approx(ra.final_error, rel=1e-9)
    assert h.add_loop(5, 6, Sim3.identity(), SIG) == g.add_loop(5, 6, Sim3.identity(), SIG)


def test_isam2_takes_the_same_similarity3_factors():
    """gtsam's python ISAM2 handles Similarity3 (an incremental solver stays an option)."""
    truth = square_truth()
    n = len(truth)
    g = chain_graph(drifted(truth))
    g.add_loop(0, n - 1, (truth[0].inverse() @ truth[-1]) @ Sim3(1 / 1.1), SIG, robust="none")
    graph, values, _, _ = g._assemble(set(g.node_ids))
    isam = gtsam.ISAM2()
    isam.update(graph, values)
    for _ in range(3):
        isam.update()
    est = isam.calculateEstimate()
    lm = g.optimize()
    key = int(gtsam.symbol("k", n - 1))
    end = sim3_from_gtsam(est.atSimilarity3(key)).t
    # from 0.55 m off to within 5 mm of the LM optimum (ISAM2 relinearises only above a threshold)
    assert np.linalg.norm(end - lm.T_world_cam[n - 1][:3, 3]) < 0.005


def test_loop_measurement_from_two_alignments_undoes_the_drift():
    rng = np.random.default_rng(4)

    def rand_sim3(spread: float) -> Sim3:
        scale = float(np.exp(rng.normal(0, 0.2)))
        return Sim3(scale, so3_exp(rng.normal(0, spread, 3)), rng.normal(0, 2.0, 3))

    S_i, S_j, A = rand_sim3(1.0), rand_sim3(1.0), rand_sim3(1.0)  # true poses, true window -> world
    np.testing.assert_allclose(loop_measurement(S_i, S_j, A, A).matrix(), (S_i.inverse() @ S_j).matrix(),
                               atol=1e-9)
    # the map around j drifted by D: its node and the window aligned on its points both carry D
    D = rand_sim3(0.2)
    meas = loop_measurement(S_i, D @ S_j, A, D @ A)
    np.testing.assert_allclose(meas.matrix(), (S_i.inverse() @ S_j).matrix(), atol=1e-9)
    assert np.linalg.norm(meas.matrix() - (S_i.inverse() @ D @ S_j).matrix()) > 0.1  # != the drifted relative


def test_a_loop_outvoted_by_later_loops_is_retracted_in_their_favour():
    """A wrong loop that fitted when it came (loose, 40 cm off) then blocks every correct later loop: each
    fits by itself but pushes the wrong one over the limit. The first two are rolled back; the third
    (loop_evict_votes = 3 distinct keyframe pairs) retracts the wrong loop and closes, and later correct
    loops close normally. One disagreeing loop alone evicts nothing (the test above)."""
    truth = square_truth()
    n = len(truth)
    steps = n - 1
    g = chain_graph(drifted(truth))

    def loop(i: int, j: int) -> Sim3:  # the true relative pose; relative scale undoes the chain's drift
        return (truth[i].inverse() @ truth[j]) @ Sim3(1.1 ** (-(j - i) / steps))

    wrong = g.try_loop(0, n - 1, loop(0, n - 1) @ Sim3(1.0, np.eye(3), [0.4, 0.0, 0.0]),
                       EdgeSigmas(0.02, 0.05, 0.02))
    assert wrong.accepted and not wrong.retracted
    pairs = [(1, n - 1), (0, n - 2), (0, n - 3)]
    outcomes = [g.try_loop(i, j, loop(i, j), SIG, robust="none") for i, j in pairs]
    assert [o.accepted for o in outcomes] == [False, False, True]
    limit = PoseGraphConfig().loop_chi2_max
    assert all(o.result.edges[wrong.edge_id].chi2_final > limit for o in outcomes[:2])
    assert outcomes[2].retracted == ((0, n - 1),) and outcomes[2].chi2 < 5.0
    assert g.edge_ids("loop") == [outcomes[2].edge_id]  # the wrong loop is gone, the third one stays
    later = g.try_loop(3, n - 4, loop(3, n - 4), SIG, robust="none")
    assert later.accepted and not later.retracted
    # the map is the one the wrong loop never touched: the same two loops on a clean chain
    clean = chain_graph(drifted(truth))
    for i, j in [(0, n - 3), (3, n - 4)]:
        assert clean.try_loop(i, j, loop(i, j), SIG, robust="none").accepted
    gap = [np.linalg.norm(g.node(k).t - clean.node(k).t) for k in range(n)]
    assert max(gap) < 1e-3
    # with more votes required, the same three loops are all rolled back and the wrong loop stays
    strict = chain_graph(drifted(truth), PoseGraphConfig(loop_evict_votes=4))
    first = strict.try_loop(0, n - 1, loop(0, n - 1) @ Sim3(1.0, np.eye(3), [0.4, 0.0, 0.0]),
                            EdgeSigmas(0.02, 0.05, 0.02))
    assert not any(strict.try_loop(i, j, loop(i, j), SIG, robust="none").accepted for i, j in pairs)
    assert strict.edge_ids("loop") == [first.edge_id]
    assert max(np.linalg.norm(strict.node(k).t - clean.node(k).t) for k in range(n)) > 0.1
