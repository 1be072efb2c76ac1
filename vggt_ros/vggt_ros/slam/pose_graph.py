"""Keyframe Sim(3) pose graph (loop closure), solved with gtsam's Levenberg-Marquardt.

Model
-----
Node i = keyframe i's pose in the world as a Sim(3) ``S_world_i`` (our ``geometry.se3.Sim3``,
x -> s R x + t): R, t are the rotation and translation of the keyframe's rigid ``T_world_cam``
(t = camera centre in world units) and s maps keyframe-local units to world units, so a point
X_cam stored in keyframe i's camera frame is at ``S_world_i.apply(X_cam)`` in the world. Nodes
start with s = 1 (the pipeline stores keyframes in world units already).

Edges measure ``S_i_j = S_world_i^-1 S_world_j`` (keyframe j's local frame -> keyframe i's):
sequential edges from stitching, loop edges from verified loop candidates (robust kernel:
Huber by default, Cauchy or none on request). Each edge has diagonal sigmas (``EdgeSigmas``) on
gtsam's tangent [rotation (3, rad), translation (3, keyframe-i units), log scale (1)];
``edge_sigmas`` derives them from a stitch's inlier count and relative residual.
``add_scale_prior`` puts a prior on one node's scale alone (hook for a metric scale source).

Gauge: in every connected component of the solved graph the earliest-added node gets a tight
prior (rotation, translation AND scale), unless the component touches nodes held fixed by a
window; so separate map segments each keep their own gauge until an edge joins them.

Solve and roll back: ``optimize()`` never changes the graph; it returns a ``PoseGraphResult``
with the corrected poses/scales, the per-node Sim(3) correction ``C_i = S_new_i S_old_i^-1``
(move world points attached to keyframe i with ``C_i.apply``) and every solved edge's chi2
(squared Mahalanobis norm, without the robust kernel). ``apply(result)`` commits it;
``remove_edge`` undoes an edge. ``try_loop`` does add -> optimise -> gate -> commit or remove,
where the gate is: the new loop's chi2 <= loop_chi2_max and no loop that fitted before now fails, unless
that loop was outvoted: `loop_evict_votes` (3) later loops, each fitting alone, broke it; then it is
retracted and the new loop kept if all others fit without it (a wrong early loop must not block every
later one; one loop alone never evicts another). The votes are not saved with the graph.
``to_arrays`` / ``from_arrays`` save and restore the graph exactly (np.savez-ready).

Cost (bench/pose_graph_bench.py, shared 2-core CPU): a full solve of a 5,000-node chain with one
loop takes ~0.4-0.6 s (gtsam's LM ~0.2 s, the rest is Python assembly and per-edge chi2), 1,000
nodes ~0.06 s; ``optimize(window=n)`` frees only the newest n nodes (the others fixed) for a
bounded cost (~0.08 s with n = 200 at 5,000 nodes). Adding a node + edge costs ~0.1 ms.

gtsam convention (verified in test_slam_pose_graph.py): ``gtsam.Similarity3(R, t_g, s)`` maps
p -> s (R p + t_g) and its matrix() is [[R, t_g], [0, 1/s]], so our t = s * t_g. The two
conversions below are the only place that knows this.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import gtsam
import numpy as np

from vggt_ros.geometry.se3 import Sim3, make_T

#: tangent dimension of Sim(3) and the index of the log-scale component in gtsam's ordering
SIM3_DIM = 7
LOG_SCALE_INDEX = 6
#: the two edge kinds
SEQUENTIAL = "sequential"
LOOP = "loop"
_ROBUST_KINDS = ("none", "huber", "cauchy")


def sim3_to_gtsam(S: Sim3) -> Any:
    """Our Sim3 (x -> s R x + t) -> gtsam.Similarity3 (x -> s (R x + t / s))."""
    return gtsam.Similarity3(gtsam.Rot3(S.R), np.asarray(S.t) / S.scale, S.scale)


def sim3_parts_from_gtsam(g: Any) -> tuple[float, np.ndarray, np.ndarray]:
    """gtsam.Similarity3 (x -> s (R x + t_g)) -> (s, R (3,3), t = s t_g (3,)) of our x -> s R x + t."""
    s = float(g.scale())
    return s, g.rotation().matrix(), s * np.asarray(g.translation(), dtype=np.float64)


def sim3_from_gtsam(g: Any) -> Sim3:
    """gtsam.Similarity3 -> our Sim3 (see sim3_parts_from_gtsam)."""
    return Sim3(*sim3_parts_from_gtsam(g))


def _key(kf_id: int) -> int:
    return int(gtsam.symbol("k", kf_id))


@dataclass
class PoseGraphConfig:
    """Pose-graph settings (the single source of these defaults).

    Edge information (``edge_sigmas``): sigma = max(floor, sigma_gain * residual_rel / sqrt(inliers)),
        relative quantities; the translation sigma is multiplied by the scene depth. Floors: the
        stitch's Sim(3) has errors that do not average out with more points (depth bias, tracking).
    gauge_sigma: prior sigma (all 7 tangent components) of gauge and window-fixed nodes.
    loop_robust / loop_robust_k: default kernel of loop edges ('none', 'huber', 'cauchy') and its
        threshold in whitened units (sqrt of chi2). A good 7-dof edge has sqrt(chi2) ~ 2.6.
        Huber by default: it bounds a wrong loop's pull yet stays convex, so a correct loop whose
        initial error is large (long drift) still closes; Cauchy switches a wrong loop off almost
        completely but also ignores a correct loop that starts far off (test_slam_pose_graph.py).
        Either way try_loop's chi2 gate, not the kernel, decides whether a loop is kept.
    loop_chi2_max: a loop edge whose chi2 after the solve exceeds this is flagged (try_loop rejects
        it). 24.3 is chi2(7)'s 99.9 % quantile.
    loop_evict_votes: a loop accepted earlier that this many later loops (distinct keyframe pairs), each
        fitting by itself, have pushed over loop_chi2_max is the one that is wrong: the next such loop
        is accepted in its place if every other loop then fits (try_loop). One loop alone never evicts
        another; 3: a wrong early loop (3-lap loop, 2x, 2 deg parallax gate, seed 0: one loop blocked 71
        later ones while the map's scale drifted 13 %) goes after the third.
    max_iterations / relative_error_tol: Levenberg-Marquardt stopping rules.
    """

    sigma_gain: float = 3.0
    min_rot_sigma_rad: float = 0.0035
    min_trans_sigma_rel: float = 0.005
    min_log_scale_sigma: float = 0.005
    gauge_sigma: float = 1e-6
    loop_robust: str = "huber"
    loop_robust_k: float = 5.0
    loop_chi2_max: float = 24.3
    loop_evict_votes: int = 3
    max_iterations: int = 100
    relative_error_tol: float = 1e-7

    def __post_init__(self) -> None:
        if self.loop_robust not in _ROBUST_KINDS:
            raise ValueError(f"loop_robust must be one of {_ROBUST_KINDS}, got {self.loop_robust!r}")
        if min(self.sigma_gain, self.min_rot_sigma_rad, self.min_trans_sigma_rel,
               self.min_log_scale_sigma, self.gauge_sigma, self.loop_robust_k, self.loop_chi2_max) <= 0:
            raise ValueError("pose graph sigmas, gains and thresholds must be > 0")
        if self.max_iterations < 1 or self.loop_evict_votes < 1:
            raise ValueError("max_iterations and loop_evict_votes must be >= 1")


@dataclass(frozen=True)
class EdgeSigmas:
    """Standard deviations of a relative Sim(3) measurement on gtsam's tangent.

    rot_rad: per rotation axis (radians). trans: per translation axis, in keyframe-i units.
    log_scale: of the relative scale (0.01 = 1 %).
    """

    rot_rad: float
    trans: float
    log_scale: float

    def __post_init__(self) -> None:
        v = (self.rot_rad, self.trans, self.log_scale)
        if not all(np.isfinite(x) and x > 0 for x in v):
            raise ValueError(f"EdgeSigmas must be finite and > 0, got {v}")

    def vector(self) -> np.ndarray:
        """(7,) [rot x3, trans x3, log scale] in gtsam's tangent order."""
        return np.array([self.rot_rad] * 3 + [self.trans] * 3 + [self.log_scale])


def edge_sigmas(num_inliers: int, residual_rel: float, depth: float = 1.0,
                config: PoseGraphConfig | None = None) -> EdgeSigmas:
    """Sigmas of a Sim(3) estimated from `num_inliers` correspondences with inlier RMS residual
    `residual_rel` (a fraction of scene depth), in a scene of median depth `depth` (world units).

    A point error r (relative to depth) tilts the fit by ~r radians, shifts it by ~r * depth and
    rescales it by ~r; averaged over N independent inliers that is r / sqrt(N), inflated by
    `sigma_gain` (RANSAC inliers are not independent) and floored by the config's minima.
    Raises ValueError for num_inliers < 1 or a non-finite / negative residual or depth <= 0.
    """
    cfg = config or PoseGraphConfig()
    if int(num_inliers) < 1:
        raise ValueError(f"num_inliers must be >= 1, got {num_inliers}")
    r = float(residual_rel)
    d = float(depth)
    if not (np.isfinite(r) and r >= 0.0 and np.isfinite(d) and d > 0.0):
        raise ValueError(f"need finite residual_rel >= 0 and depth > 0, got {residual_rel}, {depth}")
    rel = cfg.sigma_gain * r / np.sqrt(int(num_inliers))
    return EdgeSigmas(
        rot_rad=max(cfg.min_rot_sigma_rad, rel),
        trans=max(cfg.min_trans_sigma_rel, rel) * d,
        log_scale=max(cfg.min_log_scale_sigma, rel),
    )


def loop_measurement(S_world_i: Sim3, S_world_j: Sim3,
                     A_world_win_via_i: Sim3, A_world_win_via_j: Sim3) -> Sim3:
    """Loop edge S_i_j from a verification window that sees both keyframes i and j.

    A_world_win_via_i / _via_j: the window's frame -> world, aligned on keyframe i's / keyframe j's
    map points (e.g. the stitcher's Sim(3) on each set). With drift the two disagree; a point x of
    the window is at S_world_i^-1 A_via_i(x) in i's local frame and at S_world_j^-1 A_via_j(x) in
    j's, so S_i_j = S_world_i^-1 A_via_i A_via_j^-1 S_world_j (= the current relative without drift).
    """
    return S_world_i.inverse() @ A_world_win_via_i @ A_world_win_via_j.inverse() @ S_world_j


@dataclass
class _Edge:
    kind: str
    i: int
    j: int
    measured: Sim3
    sigmas: EdgeSigmas
    robust: str
    factor: Any  # the factor solved (robust kernel if any)
    plain: Any  # the same factor with a Gaussian noise model: 2 * error = chi2
    kernel: Any  # the gtsam mEstimator, or None


@dataclass(frozen=True)
class EdgeResidual:
    """One solved edge: chi2 = squared whitened error without the robust kernel, at the initial
    and the optimised values; weight = the robust kernel's weight at the optimum (1 if none)."""

    kind: str
    i: int
    j: int
    chi2_initial: float
    chi2_final: float
    weight: float


@dataclass(frozen=True)
class PoseGraphResult:
    """Outcome of one solve; nothing in the graph changes until ``PoseGraph.apply(result)``.

    T_world_cam: kf_id -> (4,4) rigid pose (optimised rotation and camera centre, world units).
    scale: kf_id -> optimised node scale (keyframe-local units -> world units).
    correction: kf_id -> Sim3 C_i = S_new_i S_old_i^-1 (world -> world); identity for fixed nodes.
    The three hold every node of the solve (free, and the fixed ones its edges reach); a windowed solve
    leaves the other nodes out (they keep their estimates), so its cost does not grow with the graph.
    edges: edge id -> EdgeResidual for every edge in the solve.
    flagged_loops: loop edge ids whose chi2_final > config.loop_chi2_max.
    initial_error / final_error: gtsam's graph error 0.5 * sum(robust chi2), priors included.
    num_free: nodes optimised (the others were held fixed). revision: graph revision solved.
    """

    T_world_cam: dict[int, np.ndarray]
    scale: dict[int, float]
    correction: dict[int, Sim3]
    edges: dict[int, EdgeResidual]
    flagged_loops: tuple[int, ...]
    iterations: int
    initial_error: float
    final_error: float
    time_s: float
    num_free: int
    revision: int


@dataclass(frozen=True)
class LoopOutcome:
    """try_loop's answer: edge_id is None when the loop was rejected (its edge was removed); retracted:
    (i, j) of the earlier loops removed in its favour (outvoted, see PoseGraphConfig.loop_evict_votes)."""

    accepted: bool
    edge_id: int | None
    chi2: float
    result: PoseGraphResult
    retracted: tuple[tuple[int, int], ...] = ()


def _check_pose(T_world_cam: np.ndarray) -> np.ndarray:
    T = np.asarray(T_world_cam, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ValueError(f"T_world_cam must be a finite (4,4) matrix, got shape {T.shape}")
    R = T[:3, :3]
    if np.abs(R @ R.T - np.eye(3)).max() > 1e-6 or np.linalg.det(R) <= 0:
        raise ValueError("T_world_cam rotation block is not a rotation")
    return T


def _components(nodes: list[int], pairs: list[tuple[int, int]]) -> list[list[int]]:
    """Connected components of `nodes` (insertion order kept inside each) linked by `pairs`."""
    parent = {n: n for n in nodes}

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[rb] = ra
    groups: dict[int, list[int]] = {}
    for n in nodes:
        groups.setdefault(find(n), []).append(n)
    return list(groups.values())


class PoseGraphError(RuntimeError):
    """The solver failed (e.g. an under-constrained system); the graph is unchanged."""


def _scale_prior_factor(kf_id: int, scale: float, sigma: float) -> Any:
    """gtsam CustomFactor with the 1-d residual log(s_i) - log(scale) (rotation/translation free).

    gtsam retracts Similarity3 as x * Expmap(xi) with xi = [w, v, lambda] and the scale of
    Expmap(xi) is exp(lambda), so d log(s_i) / d xi = [0 0 0 0 0 0 1].
    """
    target = float(np.log(scale))

    def error(this: Any, values: Any, H: Any) -> np.ndarray:
        s = values.atSimilarity3(this.keys()[0]).scale()
        if H is not None:
            H[0] = np.eye(1, SIM3_DIM, LOG_SCALE_INDEX)
        return np.array([np.log(s) - target])

    return gtsam.CustomFactor(gtsam.noiseModel.Isotropic.Sigma(1, float(sigma)), [_key(kf_id)], error)


class PoseGraph:
    """Keyframe Sim(3) pose graph. Node ids are the caller's keyframe ids (ints >= 0).

    Nodes keep their current estimate (a Sim3 S_world_kf); edges and priors are stored with their
    gtsam factors built once, so a solve only assembles them. Every change bumps `revision`.
    """

    def __init__(self, config: PoseGraphConfig | None = None) -> None:
        self.config = config or PoseGraphConfig()
        self._nodes: dict[int, Sim3] = {}  # insertion order = age (gauge = oldest of a component)
        self._edges: dict[int, _Edge] = {}
        self._adjacent: dict[int, set[int]] = {}  # kf_id -> ids of the edges at it
        self._age: dict[int, int] = {}  # kf_id -> insertion rank (the order of _nodes)
        self._scale_priors: dict[int, tuple[float, float, Any]] = {}  # kf_id -> (scale, sigma, factor)
        self._next_edge = 0
        self.revision = 0
        # loop edge id -> keyframe pairs of later loops that fitted alone but pushed it over the limit
        self._votes: dict[int, set[tuple[int, int]]] = {}

    # ---- nodes -------------------------------------------------------------------------------
    def add_node(self, kf_id: int, T_world_cam: np.ndarray, scale: float = 1.0) -> None:
        """Add keyframe kf_id with rigid pose T_world_cam (4,4) and scale (local -> world units)."""
        kf_id = int(kf_id)
        if kf_id < 0:
            raise ValueError(f"kf_id must be >= 0, got {kf_id}")
        if kf_id in self._nodes:
            raise ValueError(f"node {kf_id} already exists")
        self._nodes[kf_id] = Sim3.from_T(_check_pose(T_world_cam), scale)
        self._adjacent[kf_id] = set()
        self._age[kf_id] = len(self._age)
        self.revision += 1

    def set_node(self, kf_id: int, T_world_cam: np.ndarray, scale: float = 1.0) -> None:
        """Overwrite the current estimate of an existing node."""
        self._require(kf_id)
        self._nodes[int(kf_id)] = Sim3.from_T(_check_pose(T_world_cam), scale)
        self.revision += 1

    def node(self, kf_id: int) -> Sim3:
        """Current estimate S_world_kf."""
        self._require(kf_id)
        return self._nodes[int(kf_id)]

    def has_node(self, kf_id: int) -> bool:
        return int(kf_id) in self._nodes

    @property
    def node_ids(self) -> list[int]:
        """Node ids, oldest first."""
        return list(self._nodes)

    @property
    def num_nodes(self) -> int:
        return len(self._nodes)

    @property
    def num_edges(self) -> int:
        return len(self._edges)

    def relative(self, i: int, j: int) -> Sim3:
        """S_i_j = S_world_i^-1 S_world_j from the current estimates."""
        return self.node(i).inverse() @ self.node(j)

    def _require(self, kf_id: int) -> None:
        if int(kf_id) not in self._nodes:
            raise ValueError(f"unknown node {kf_id}")

    # ---- edges and priors --------------------------------------------------------------------
    def add_sequential(self, i: int, j: int, S_i_j: Sim3, sigmas: EdgeSigmas) -> int:
        """Edge from stitching: measured S_i_j = S_world_i^-1 S_world_j (Gaussian). Returns its id."""
        return self._add_edge(SEQUENTIAL, i, j, S_i_j, sigmas, "none")

    def add_loop(self, i: int, j: int, S_i_j: Sim3, sigmas: EdgeSigmas, robust: str | None = None) -> int:
        """Edge from a verified loop candidate; robust kernel per `robust` (default config.loop_robust)."""
        kernel = self.config.loop_robust if robust is None else robust
        return self._add_edge(LOOP, i, j, S_i_j, sigmas, kernel)

    def _add_edge(self, kind: str, i: int, j: int, S_i_j: Sim3, sigmas: EdgeSigmas, robust: str) -> int:
        i, j = int(i), int(j)
        self._require(i)
        self._require(j)
        if i == j:
            raise ValueError(f"edge from node {i} to itself")
        if not isinstance(S_i_j, Sim3):
            raise TypeError(f"S_i_j must be a Sim3, got {type(S_i_j).__name__}")
        if robust not in _ROBUST_KINDS:
            raise ValueError(f"robust must be one of {_ROBUST_KINDS}, got {robust!r}")
        gauss = gtsam.noiseModel.Diagonal.Sigmas(sigmas.vector())
        noise: Any = gauss
        kernel: Any = None
        k = self.config.loop_robust_k
        if robust == "huber":
            kernel = gtsam.noiseModel.mEstimator.Huber.Create(k)
        elif robust == "cauchy":
            kernel = gtsam.noiseModel.mEstimator.Cauchy.Create(k)
        if kernel is not None:
            noise = gtsam.noiseModel.Robust.Create(kernel, gauss)
        meas = sim3_to_gtsam(S_i_j)
        edge = _Edge(kind, i, j, S_i_j, sigmas, robust,
                     factor=gtsam.BetweenFactorSimilarity3(_key(i), _key(j), meas, noise),
                     plain=gtsam.BetweenFactorSimilarity3(_key(i), _key(j), meas, gauss), kernel=kernel)
        eid = self._next_edge
        self._next_edge += 1
        self._edges[eid] = edge
        self._adjacent[i].add(eid)
        self._adjacent[j].add(eid)
        self.revision += 1
        return eid

    def remove_edge(self, edge_id: int) -> None:
        """Remove an edge (e.g. a rejected loop). Raises KeyError if there is no such edge."""
        if int(edge_id) not in self._edges:
            raise KeyError(f"no edge {edge_id}")
        e = self._edges.pop(int(edge_id))
        self._adjacent[e.i].discard(int(edge_id))
        self._adjacent[e.j].discard(int(edge_id))
        self._votes.pop(int(edge_id), None)
        self.revision += 1

    def edge(self, edge_id: int) -> tuple[str, int, int, Sim3, EdgeSigmas]:
        """(kind, i, j, measured S_i_j, sigmas) of an edge."""
        e = self._edges[int(edge_id)]
        return e.kind, e.i, e.j, e.measured, e.sigmas

    def edge_ids(self, kind: str | None = None) -> list[int]:
        """Edge ids (oldest first), optionally only those of one kind ('sequential' / 'loop')."""
        return [k for k, e in self._edges.items() if kind is None or e.kind == kind]

    def add_scale_prior(self, kf_id: int, scale: float, sigma_log: float) -> None:
        """Prior on node kf_id's scale only: log(s_i) ~ N(log(scale), sigma_log^2). Replaces any
        earlier one on that node. (On a gauge node the tight gauge prior wins.)"""
        self._require(kf_id)
        if not (np.isfinite(scale) and scale > 0 and np.isfinite(sigma_log) and sigma_log > 0):
            raise ValueError(f"need scale > 0 and sigma_log > 0, got {scale}, {sigma_log}")
        self._scale_priors[int(kf_id)] = (float(scale), float(sigma_log),
                                          _scale_prior_factor(int(kf_id), scale, sigma_log))
        self.revision += 1

    def remove_scale_prior(self, kf_id: int) -> None:
        self._scale_priors.pop(int(kf_id), None)
        self.revision += 1

    # ---- solving -----------------------------------------------------------------------------
    def _free_nodes(self, window: int | Collection[int] | None) -> set[int]:
        if window is None:
            return set(self._nodes)
        if isinstance(window, (int, np.integer)):
            if int(window) < 1:
                raise ValueError(f"window must be >= 1 nodes, got {window}")
            return set(list(self._nodes)[-int(window):])
        free = {int(k) for k in window}
        for k in free:
            self._require(k)
        return free

    def _assemble(self, free: set[int], exclude: Collection[int] = ()
                  ) -> tuple[Any, Any, dict[int, _Edge], set[int]]:
        """Factor graph and initial values of a solve over `free` nodes, without the `exclude` edges.

        Returns (graph, values, solved edges, pinned nodes): edges with a free endpoint are
        solved; their non-free endpoints are pinned (tight prior at the current estimate), and so
        is the oldest node of every component that has no pinned node (the gauge).
        """
        ids = sorted({k for n in free for k in self._adjacent[n]} - {int(k) for k in exclude})
        edges = {k: self._edges[k] for k in ids}
        included = set(free)
        for e in edges.values():
            included.update((e.i, e.j))
        pinned = included - free
        order = sorted(included, key=self._age.__getitem__)
        for comp in _components(order, [(e.i, e.j) for e in edges.values()]):
            if not any(n in pinned for n in comp):
                pinned.add(comp[0])
        graph = gtsam.NonlinearFactorGraph()
        values = gtsam.Values()
        prior_noise = gtsam.noiseModel.Isotropic.Sigma(SIM3_DIM, self.config.gauge_sigma)
        for n in order:
            g = sim3_to_gtsam(self._nodes[n])
            values.insert(_key(n), g)
            if n in pinned:
                graph.add(gtsam.PriorFactorSimilarity3(_key(n), g, prior_noise))
            elif n in self._scale_priors:
                graph.add(self._scale_priors[n][2])
        for e in edges.values():
            graph.add(e.factor)
        return graph, values, edges, pinned

    def optimize(self, window: int | Collection[int] | None = None,
                 exclude: Collection[int] = ()) -> PoseGraphResult:
        """Solve with Levenberg-Marquardt; the graph is not changed (see apply).

        window: None = all nodes free; an int n = only the newest n nodes free; a collection of
        node ids = those free. Nodes outside it (and the gauge) keep their estimates exactly.
        exclude: edge ids left out of this solve (what the graph would be without them).
        Raises PoseGraphError if gtsam fails.
        """
        t0 = time.perf_counter()
        free = self._free_nodes(window)
        graph, values, edges, pinned = self._assemble(free, exclude)
        params = gtsam.LevenbergMarquardtParams()
        params.setMaxIterations(self.config.max_iterations)
        params.setRelativeErrorTol(self.config.relative_error_tol)
        try:
            optimizer = gtsam.LevenbergMarquardtOptimizer(graph, values, params)
            solved = optimizer.optimize()
        except RuntimeError as exc:  # gtsam's IndeterminantLinearSystemException and friends
            raise PoseGraphError(f"pose graph solve failed: {exc}") from exc
        T, scale, corr = {}, {}, {}
        for n in sorted(free | pinned):  # every node of the solve (the graph's when all are free)
            old = self._nodes[n]
            if n in pinned or n not in free:
                T[n], scale[n], corr[n] = make_T(old.R, old.t), old.scale, Sim3.identity()
                continue
            s_new, R_new, t_new = sim3_parts_from_gtsam(solved.atSimilarity3(_key(n)))
            T[n], scale[n] = make_T(R_new, t_new), s_new
            # C = S_new S_old^-1: x -> (s_new/s_old) R_new R_old^T (x - t_old) + t_new
            s_c, R_c = s_new / old.scale, R_new @ old.R.T
            corr[n] = Sim3(s_c, R_c, t_new - s_c * (R_c @ old.t))
        residuals = {k: self._residual(e, values, solved) for k, e in edges.items()}
        flagged = tuple(k for k, r in residuals.items()
                        if r.kind == LOOP and r.chi2_final > self.config.loop_chi2_max)
        return PoseGraphResult(
            T_world_cam=T, scale=scale, correction=corr, edges=residuals, flagged_loops=flagged,
            iterations=int(optimizer.iterations()), initial_error=float(graph.error(values)),
            final_error=float(graph.error(solved)), time_s=time.perf_counter() - t0,
            num_free=len(free - pinned), revision=self.revision)

    def _residual(self, e: _Edge, initial: Any, final: Any) -> EdgeResidual:
        chi2_0 = 2.0 * float(e.plain.error(initial))
        chi2_1 = 2.0 * float(e.plain.error(final))
        weight = 1.0 if e.kernel is None else float(e.kernel.weight(np.sqrt(chi2_1)))
        return EdgeResidual(e.kind, e.i, e.j, chi2_0, chi2_1, weight)

    def apply(self, result: PoseGraphResult) -> None:
        """Commit a solve's poses and scales as the new estimates. Raises ValueError if the graph
        changed since that solve (its corrections would not match the stored estimates)."""
        if result.revision != self.revision:
            raise ValueError(f"stale result: solved revision {result.revision}, graph is at {self.revision}")
        for n in result.T_world_cam:
            self._nodes[n] = Sim3.from_T(result.T_world_cam[n], result.scale[n])
        self.revision += 1

    def try_loop(self, i: int, j: int, S_i_j: Sim3, sigmas: EdgeSigmas, *, robust: str | None = None,
                 window: int | Collection[int] | None = None, commit: bool = True) -> LoopOutcome:
        """Add a loop edge, solve, and keep it only if it fits: its chi2 after the solve is <=
        loop_chi2_max, and no other loop edge that fitted before the solve is pushed above it, unless
        those loops were outvoted (loop_evict_votes later loops broke each): then they are retracted
        in its favour when, without them, it and every other loop fit (LoopOutcome.retracted).

        Rejected: the edge is removed and nothing else changes. Accepted: the solve is applied when
        commit is True (then move the map with result.correction), else call apply(result) later
        (retracted loops are removed either way).
        """
        eid = self.add_loop(i, j, S_i_j, sigmas, robust)
        try:
            result = self.optimize(window)
            broken = self._broken_loops(result, eid)
            retracted: list[int] = []
            if broken and eid not in result.flagged_loops:
                retracted, result = self._outvote(eid, broken, result, window)
        except PoseGraphError:
            self.remove_edge(eid)
            raise
        chi2 = result.edges[eid].chi2_final
        if eid in result.flagged_loops or (broken and not retracted):
            self.remove_edge(eid)
            return LoopOutcome(False, None, chi2, result)
        pairs = tuple((self._edges[k].i, self._edges[k].j) for k in retracted)
        for k in retracted:
            self.remove_edge(k)
        if retracted:  # solved without them already: the result is the graph's after their removal
            result = dataclasses.replace(result, revision=self.revision)
        if commit:
            self.apply(result)
        return LoopOutcome(True, eid, chi2, result, pairs)

    def _broken_loops(self, result: PoseGraphResult, new: int) -> list[int]:
        """Loop edges of the solve other than `new` that fitted before it and fail after it."""
        limit = self.config.loop_chi2_max
        return [k for k in result.flagged_loops if k != new and result.edges[k].chi2_initial <= limit]

    def _outvote(self, new: int, broken: list[int], result: PoseGraphResult,
                 window: int | Collection[int] | None) -> tuple[list[int], PoseGraphResult]:
        """Loop edge `new` fits but breaks the `broken` loops: count its vote (its keyframe pair) against
        each; when every one of them has loop_evict_votes votes, solve without them. Returns (the loops
        to retract, the solve to keep): ([], result) unless that solve fits the new loop and every
        other loop that fitted before."""
        pair = (self._edges[new].i, self._edges[new].j)
        for k in broken:
            self._votes.setdefault(k, set()).add(pair)
        if any(len(self._votes[k]) < self.config.loop_evict_votes for k in broken):
            return [], result
        kept = [(e.i, e.j) for k, e in self._edges.items() if k not in broken]
        comp = {n: c for c, group in enumerate(_components(list(self._nodes), kept)) for n in group}
        if any(comp[self._edges[k].i] != comp[self._edges[k].j] for k in broken):
            return [], result  # a loop that alone joins two map segments is never retracted
        alt = self.optimize(window, exclude=broken)
        if new in alt.flagged_loops or self._broken_loops(alt, new):  # the excluded loops are not in alt
            return [], result
        return broken, alt

    # ---- persistence -------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The graph as plain arrays (for np.savez): nodes, edges (ids kept), scale priors."""
        nodes = list(self._nodes.items())
        edges = list(self._edges.items())
        priors = list(self._scale_priors.items())
        return {
            "node_ids": np.array([k for k, _ in nodes], np.int64),
            "node_scale": np.array([S.scale for _, S in nodes], np.float64),
            "node_R": np.array([S.R for _, S in nodes], np.float64).reshape(-1, 3, 3),
            "node_t": np.array([S.t for _, S in nodes], np.float64).reshape(-1, 3),
            "edge_ids": np.array([k for k, _ in edges], np.int64),
            "edge_kind": np.array([e.kind == LOOP for _, e in edges], np.int8),
            "edge_ij": np.array([(e.i, e.j) for _, e in edges], np.int64).reshape(-1, 2),
            "edge_scale": np.array([e.measured.scale for _, e in edges], np.float64),
            "edge_R": np.array([e.measured.R for _, e in edges], np.float64).reshape(-1, 3, 3),
            "edge_t": np.array([e.measured.t for _, e in edges], np.float64).reshape(-1, 3),
            "edge_sigmas": np.array([(e.sigmas.rot_rad, e.sigmas.trans, e.sigmas.log_scale)
                                     for _, e in edges], np.float64).reshape(-1, 3),
            "edge_robust": np.array([_ROBUST_KINDS.index(e.robust) for _, e in edges], np.int8),
            "prior_ids": np.array([k for k, _ in priors], np.int64),
            "prior_scale_sigma": np.array([p[:2] for _, p in priors], np.float64).reshape(-1, 2),
            "next_edge": np.array(self._next_edge, np.int64),
        }

    @staticmethod
    def from_arrays(arrays: dict[str, np.ndarray], config: PoseGraphConfig | None = None) -> PoseGraph:
        """Rebuild a graph saved by to_arrays (same node order, edge ids and estimates).
        Raises ValueError/KeyError on missing or inconsistent arrays (every entry is re-validated)."""
        g = PoseGraph(config)
        if len(set(arrays["edge_ids"].tolist())) != len(arrays["edge_ids"]):
            raise ValueError("duplicate edge ids")
        for k, s, R, t in zip(arrays["node_ids"], arrays["node_scale"], arrays["node_R"], arrays["node_t"]):
            g.add_node(int(k), make_T(R, t), float(s))
        cols = ("edge_ids", "edge_kind", "edge_ij", "edge_scale", "edge_R", "edge_t", "edge_sigmas",
                "edge_robust")
        for eid, kind, ij, s, R, t, sig, rob in zip(*(arrays[c] for c in cols)):
            g._next_edge = int(eid)
            g._add_edge(LOOP if kind else SEQUENTIAL, int(ij[0]), int(ij[1]), Sim3(float(s), R, t),
                        EdgeSigmas(*(float(x) for x in sig)), _ROBUST_KINDS[int(rob)])
        for k, (s, sig) in zip(arrays["prior_ids"], arrays["prior_scale_sigma"]):
            g.add_scale_prior(int(k), float(s), float(sig))
        g._next_edge = max(int(arrays["next_edge"]), g._next_edge)
        return g
