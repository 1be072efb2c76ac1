"""Loop closure and relocalisation: place recognition, verification with the predictor, Sim(3) pose graph.

At every new keyframe (docs/architecture.md#loop-closure-and-the-pose-graph):
1. The keyframe becomes a pose-graph node (slam.pose_graph, gtsam) with a sequential edge to the
   keyframe it was stitched against (information from the stitch's inliers and residual); a
   keyframe that starts a segment has no edge: its segment keeps its own gauge. Each later window
   it anchors measures it again (StitchConfig.anchor_links): an edge from that window's gauge, after
   which the newest keyframes of the segment are solved (adjust_recent), the role of a local bundle
   adjustment.
2. Its global descriptor (the predictor's, e.g. from VGGT's DINOv2 patch tokens, else a classical
   image descriptor) goes into a PlaceDatabase; the database is queried for earlier keyframes
   that look alike, excluding the last `exclude_recent` keyframes of the same segment.
3. Each candidate (at most `max_candidates`) is verified geometrically: the predictor runs on a
   small window [candidate, up to verify_anchors - 1 of its covisible neighbours, query, up to
   verify_query_keyframes - 1 of its neighbours] (at most 5 frames by default), the TrackStitcher
   aligns it to the candidate's stored depth (the query's pose), and the loop is kept only with
   enough Sim(3) inliers and track inliers. The loop's scale: the window's scale from all anchors'
   stored depth (their consensus, as in the main windows, not one keyframe's regional depth bias),
   applied to the query side's re-predicted vs stored depth (median). Within one segment
   the implied move of the query must be explainable by drift (max_correction_rel of the path
   travelled since the candidate, plus max_correction_depth of its scene depth for the verification's
   own error): a larger jump means an aliased place, rejected.
4. The loop edge is added and the graph solved; an edge that does not fit (chi2 above
   max_loop_chi2), or that pushes an earlier loop over it, is rolled back, unless that earlier loop
   has been outvoted by PoseGraphConfig.loop_evict_votes such loops: then it is retracted instead.
   Accepted: the per-keyframe Sim(3) corrections are returned to
   the pipeline, which moves keyframes, their map points and the emitted path. A loop between
   two segments merges them (relocalisation).
Cost per keyframe: one database query (a matrix product, capped size) and at most
`max_candidates` predictions of <= 5 frames; after a closure the next `cooldown` keyframes skip step 3.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vggt_ros.geometry.se3 import Sim3, rotation_angle
from vggt_ros.slam.config import LoopConfig, PipelineConfig
from vggt_ros.slam.keyframes import Keyframe, KeyframeManager
from vggt_ros.slam.place_recognition import Candidate, PlaceDatabase, image_descriptor
from vggt_ros.slam.pose_graph import EdgeSigmas, PoseGraph, PoseGraphConfig, PoseGraphError, edge_sigmas
from vggt_ros.slam.stitching import AnchorLink, StitchInput, TrackQueries, TrackStitcher, anchor_depth_scale
from vggt_ros.slam.tracking import TrackingState, TrackingStatus
from vggt_ros.slam.updates import LoopClosure
from vggt_ros.types import Predictor

log = logging.getLogger(__name__)

_COOLDOWN = 4  # keyframes after a closure that skip verification (the place is connected already)
BREAK_KEYFRAMES = 3  # first keyframes of a new segment that also try the old segment's last keyframes
# anchor-link edges (add_anchor_link): floors of the PnP's per-axis sigmas (rotation rad, translation as a
# fraction of scene depth); the relative scale's sigma (log): PnP on the gauge's points does not measure
# the anchor's own depth scale, and a free scale (sigma 1.0) let a solve after a weakly linked recovery
# rescale a keyframe 3.7x (covered camera, 2x, seed 1, loop closure off: ATE 8.4 %; 0.8 % at 0.05);
# LINK_MAX_*: a local solve that turns or rescales a keyframe more than this is refused (adjust_recent).
# The translation floor, 1 % of the gauge's scene depth: the PnP's sigmas see the pixels' noise, not the
# gauge's map points' depth error, which is smooth (shared by all the points) and moves the measured
# camera centre by about that much. With exact tracks the links were 10-100x too confident, and the
# Sim(3) solves bent them into scale (kidnapped, exact tracks, seeds 0-5: drift 7.3 % and map scale
# drift 6.4 % at 1e-4, 2.8 % and 2.0 % at 0.01; README "Link sigmas")
LINK_MIN_ROT_RAD = 1e-4
LINK_MIN_TRANS_REL = 0.01
LINK_LOG_SCALE_SIGMA = 0.05
LINK_MAX_ROT_DEG = 12.0
LINK_MAX_LOG_SCALE = 0.1


@dataclass
class _Verified:
    """A verified candidate: the query's pose and scale as the match sees them (world units)."""

    match_id: int
    score: float
    T_world_query: np.ndarray
    scale_ratio: float
    num_inliers: int


class LoopCloser:
    """Keyframe pose graph + place database; `detect` closes loops for the pipeline (see module doc)."""

    def __init__(self, config: LoopConfig, seed: int = 0) -> None:
        self.config = config
        self.seed = int(seed)
        self.graph = PoseGraph(PoseGraphConfig(loop_chi2_max=config.max_loop_chi2))
        self.places = PlaceDatabase()
        # camera travel from keyframe to keyframe (world units): the drift gate's yardstick; frame-to-frame
        # travel would add every frame's jitter and inflate the bound at high noise
        self.path_length: dict[int, float] = {}
        self._travelled = 0.0
        self._last_centre: np.ndarray | None = None
        self.changed = False  # a correction moved the map since the last map publication
        self._cooldown = 0
        # predictions run to verify candidates, those for loops within a segment, and keyframes whose
        # loop candidates a window's budget left unverified (cumulative)
        self.verifications = self.loop_verifications = self.budget_skips = 0

    # --- graph building ---------------------------------------------------------------------------
    def add_keyframe(
        self,
        kf: Keyframe,
        link: Keyframe | None,
        num_inliers: int,
        residual_rel: float,
        weak: bool = False,
    ) -> None:
        """Node for kf; sequential edge from `link` (the keyframe kf was stitched against, same segment).

        weak: kf was placed by the continuity guess after a failed stitch (a recovery): the edge only
        says "near the last camera" (sigmas WEAK_LINK: 0.1 rad, half a scene depth, 20 % scale), so a
        loop can correct it freely while the segment stays one pose-graph component.
        """
        self.graph.add_node(kf.keyframe_id, kf.T_world_cam, 1.0)
        c = kf.T_world_cam[:3, 3]
        step = float(np.linalg.norm(c - self._last_centre)) if self._last_centre is not None else 0.0
        self.path_length[kf.keyframe_id] = self._travelled = self._travelled + step
        self._last_centre = c.copy()
        if link is not None and self.graph.has_node(link.keyframe_id):
            rel = self.graph.relative(link.keyframe_id, kf.keyframe_id)
            if weak:
                sig = EdgeSigmas(0.1, 0.5 * max(kf.median_depth, 1e-6), 0.2)
            else:
                sig = edge_sigmas(
                    max(int(num_inliers), 100), max(float(residual_rel), 0.01), kf.median_depth
                )
            self.graph.add_sequential(link.keyframe_id, kf.keyframe_id, rel, sig)
        if kf.descriptor is None and kf.image is not None:
            kf.descriptor = image_descriptor(kf.image)
        if kf.descriptor is not None:
            if self.places.dim not in (None, kf.descriptor.size):
                # another kind of descriptor than the database's (a map saved by another predictor):
                # the keyframe stays in the pose graph but cannot be retrieved as a place
                log.warning("keyframe %d: %d-dim descriptor, the place database holds %d-dim ones; not "
                            "added as a place", kf.keyframe_id, kf.descriptor.size, self.places.dim)
                return
            self.places.add(kf.keyframe_id, kf.descriptor, kf.T_world_cam, kf.segment_id)

    def move_node(self, kf_id: int, C: Sim3) -> None:
        """Keyframe kf_id moved by the world-frame correction C outside an optimisation (a re-pinned gauge):
        its node follows, and the sequential edges into it, which only recorded where stitching had put
        it, now record where it is."""
        g = self.graph
        if not g.has_node(kf_id):
            return
        S = g.node(kf_id)
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = S.R, S.t
        g.set_node(kf_id, C.transform_pose(T), S.scale)
        for e in g.edge_ids("sequential"):
            _, i, j, _, sig = g.edge(e)
            if j == kf_id:
                g.remove_edge(e)
                g.add_sequential(i, j, g.relative(i, j), sig)

    def add_anchor_link(self, gauge: Keyframe, anchor: Keyframe, link: AnchorLink) -> int | None:
        """Edge gauge -> anchor from the anchor's pose measured again in the gauge's window
        (stitching.anchor_links): rotation and translation sigmas are the PnP's own (per axis, floored at
        LINK_MIN_ROT_RAD and LINK_MIN_TRANS_REL x the gauge's median depth); the relative scale keeps its
        current value within LINK_LOG_SCALE_SIGMA. Returns the edge id, or None (no edge) unless both
        keyframes are nodes of one segment."""
        g = self.graph
        if anchor.segment_id != gauge.segment_id or not (
            g.has_node(gauge.keyframe_id) and g.has_node(anchor.keyframe_id)
        ):
            return None
        S_g = g.node(gauge.keyframe_id)
        S_meas = Sim3.from_T(link.T_world_cam, g.node(anchor.keyframe_id).scale)
        trans = max(link.trans_sigma, LINK_MIN_TRANS_REL * max(gauge.median_depth, 1e-9))
        sig = EdgeSigmas(max(link.rot_sigma_rad, LINK_MIN_ROT_RAD), trans / S_g.scale, LINK_LOG_SCALE_SIGMA)
        return g.add_sequential(gauge.keyframe_id, anchor.keyframe_id, S_g.inverse() @ S_meas, sig)

    def adjust_recent(self, keyframes: KeyframeManager, segment_id: int, n: int, edges: list[int]
                      ) -> dict[int, Sim3] | None:
        """Solve the pose graph with only the n newest keyframes of the segment free (every other node
        keeps its estimate) after the anchor-link `edges` were added, and commit it. Returns the
        world-frame correction of each free keyframe, or None when the solve fails or moves a keyframe by
        more than LINK_MAX_ROT_DEG or LINK_MAX_LOG_SCALE (a wrong link, not drift): the edges are then
        removed and the graph is as before."""
        g = self.graph
        free = [k for k in self._recent_in_segment(keyframes, segment_id, n) if g.has_node(k)]
        try:
            result = g.optimize(window=free) if free else None
        except PoseGraphError as exc:
            log.warning("local pose-graph solve failed: %s", exc)
            result = None
        corrections = {k: result.correction[k] for k in free} if result is not None else {}
        if result is None or any(
            abs(np.log(C.scale)) > LINK_MAX_LOG_SCALE or np.degrees(rotation_angle(C.R)) > LINK_MAX_ROT_DEG
            for C in corrections.values()
        ):
            if result is not None:
                log.warning("anchor links of keyframe %d dropped: the local solve moved a keyframe too far",
                            max(free))
            for e in edges:
                g.remove_edge(e)
            return None
        g.apply(result)
        return corrections

    # --- detection --------------------------------------------------------------------------------
    def revisits_place(
        self, descriptor: np.ndarray | None, segment_id: int, keyframes: KeyframeManager
    ) -> bool:
        """True when a frame with this descriptor would be a loop candidate as a keyframe: an earlier
        keyframe of its segment (not among the newest exclude_recent) scores >= min_score, or one of
        another segment >= reloc_min_score. The pipeline then makes the frame a keyframe, so that
        closing a loop does not depend on a keyframe happening to fall where the path comes back (at
        the end of a figure-eight the last keyframe may be a few frames off the start's view, scoring
        0.77-0.88 where the frames before scored 0.94). No candidate while loop closure is off, in
        cooldown after a closure, or for a descriptor of another kind than the database's."""
        cfg = self.config
        if not cfg.enabled or descriptor is None or self._cooldown > 0:
            return False
        if self.places.dim is not None and descriptor.size != self.places.dim:
            return False
        recent = self._recent_in_segment(keyframes, int(segment_id), cfg.exclude_recent)
        for cand in self.places.query(descriptor, k=4, exclude_ids=recent,
                                      min_score=min(cfg.min_score, cfg.reloc_min_score)):
            if cand.score >= (cfg.min_score if cand.segment_id == segment_id else cfg.reloc_min_score):
                return True
        return False

    def detect(
        self,
        kf: Keyframe,
        keyframes: KeyframeManager,
        predictor: Predictor,
        stitcher: Any,
        config: PipelineConfig,
        tracking: TrackingStatus,
        loop_budget: int | None = None,
    ) -> tuple[dict[int, Sim3], LoopClosure] | None:
        """Verify candidates for keyframe kf: at most max_candidates predictions, of which at most
        loop_budget (None: no limit) for candidates in kf's own segment (loops; relocalisation
        candidates in other segments are not limited by it). Counted in self.verifications,
        self.loop_verifications and self.budget_skips (keyframes with a loop candidate left
        unverified for the budget). On success solve the graph and return (corrections kf_id -> world
        Sim(3), the LoopClosure event). None when nothing was closed."""
        cfg = self.config
        if not cfg.enabled or kf.descriptor is None or not isinstance(stitcher, TrackStitcher):
            return None
        if self._cooldown > 0:
            self._cooldown -= 1
            return None
        recent = self._recent_in_segment(keyframes, kf.segment_id, cfg.exclude_recent, kf.keyframe_id)
        cands = self.places.query(
            kf.descriptor,
            k=4 * cfg.max_candidates,
            exclude_ids=recent,
            min_score=min(cfg.min_score, cfg.reloc_min_score, cfg.reloc_best_min_score),
        )
        # verified whatever their score: the best other-segment candidate, the break candidates
        start = _segment_start(kf, keyframes)
        age = kf.keyframe_id - start.keyframe_id if start is not None else 0
        best_other = next((c for c in cands if c.segment_id != kf.segment_id), None)
        vouched = ({best_other.kf_id} if best_other and best_other.score >= cfg.reloc_best_min_score
                   and age < cfg.reloc_best_keyframes else set())
        forced = self._break_candidates(kf, start, keyframes, {c.kf_id for c in cands})
        cands += forced
        vouched |= {c.kf_id for c in forced}
        # a keyframe never runs more than max_candidates predictions: no budget is that many
        loops_left = cfg.max_candidates if loop_budget is None else loop_budget
        verified, budget_hit = 0, False
        for cand in cands:
            match = keyframes.keyframes[cand.kf_id]
            if not match.verifiable or match.size != kf.size:
                continue
            same = match.segment_id == kf.segment_id
            gate = cfg.min_score if same else cfg.reloc_min_score
            if cand.score < gate and match.keyframe_id not in vouched:
                continue
            if same and not self._within_drift(kf, match):
                continue  # looks alike but too far for drift: an aliased place, not worth a prediction
            if verified >= cfg.max_candidates:
                break
            if same and loops_left <= 0:
                if not budget_hit:
                    budget_hit, self.budget_skips = True, self.budget_skips + 1
                continue
            verified += 1
            self.verifications += 1
            if same:
                self.loop_verifications += 1
                loops_left -= 1
            ver = self._verify(kf, match, cand.score, predictor, stitcher, config, keyframes)
            if ver is None:
                continue
            if same and not self._drift_explains(kf, match, ver):
                tracking.loops_rejected += 1
                continue
            event = self._close(kf, match, ver, keyframes, tracking)
            if event is not None:
                return event
        return None

    def _break_candidates(self, kf: Keyframe, first: Keyframe | None, keyframes: KeyframeManager,
                          taken: set[int]) -> list[Candidate]:
        """For the first BREAK_KEYFRAMES keyframes of a segment started after a view break: the newest
        `reloc_last_keyframes` keyframes tracked before it in other segments, verified whatever their
        descriptor says. A break at close range or in fast motion leaves the camera where those
        keyframes are, and the image there can change too fast for the descriptor (kidnapped, 2
        anchors, 2x: 0.37 between keyframes 3 frames apart: the segments never merged); a true kidnap
        shares no view with them and its verification fails. Score -1: no descriptor vouches for them.
        first: the first keyframe of kf's segment (_segment_start)."""
        n = self.config.reloc_last_keyframes
        if n <= 0 or first is None or kf.keyframe_id - first.keyframe_id >= BREAK_KEYFRAMES:
            return []
        before = [k for k in keyframes.keyframes if k.keyframe_id < first.keyframe_id
                  and k.segment_id != kf.segment_id and k.keyframe_id not in taken]
        return [Candidate(k.keyframe_id, -1.0, k.segment_id, k.T_world_cam) for k in before[-n:]]

    @staticmethod
    def _recent_in_segment(keyframes: KeyframeManager, segment_id: int, n: int,
                           upto: int | None = None) -> list[int]:
        """The n newest keyframes of kf's segment (already tied to it by stitching), counting back from
        keyframe id `upto` (inclusive; None: the newest), plus every keyframe newer than `upto` (of a
        window that added several: tied to kf by the same window). Keyframes of other segments are
        never excluded: right after a new segment starts, the place it sees is most likely the old
        segment's newest keyframes, exactly the relocalisation targets."""
        out: list[int] = []
        taken = 0
        for k in reversed(keyframes.keyframes):
            if upto is not None and k.keyframe_id > upto:
                out.append(k.keyframe_id)
                continue
            if taken >= n:
                break
            if k.segment_id == segment_id:
                out.append(k.keyframe_id)
                taken += 1
        return out

    def _neighbours(
        self, kf: Keyframe, keyframes: KeyframeManager, n: int, exclude: set[int], earlier_only: bool
    ) -> list[Keyframe]:
        """Up to n other keyframes of kf's segment to verify with: verifiable, kf's image size, within
        verify_span keyframes of kf (only earlier ones when earlier_only), not in `exclude`, with at
        least verify_min_covisible of their points inside kf's view; nearest in time first (the map's
        scale walks from keyframe to keyframe: the nearest share kf's scale best), then most covisible."""
        cfg = self.config
        if n <= 0:
            return []
        lo = kf.keyframe_id - cfg.verify_span
        hi = kf.keyframe_id if earlier_only else kf.keyframe_id + cfg.verify_span
        scored: list[tuple[int, float, Keyframe]] = []
        for k in keyframes.keyframes[max(lo, 0): hi + 1]:
            if (k.keyframe_id == kf.keyframe_id or k.keyframe_id in exclude or k.segment_id != kf.segment_id
                    or not k.verifiable or k.size != kf.size):
                continue
            covis = keyframes.covisible_geometric(k, kf.T_world_cam, kf.K, kf.size, max_points=200)
            if covis >= cfg.verify_min_covisible:
                scored.append((abs(k.keyframe_id - kf.keyframe_id), -covis, k))
        scored.sort(key=lambda t: (t[0], t[1]))
        return [k for _, _, k in scored[:n]]

    def _verification_window(
        self, q: Keyframe, m: Keyframe, keyframes: KeyframeManager
    ) -> tuple[list[Keyframe], list[Keyframe]]:
        """(anchors [m, m's neighbours], query side [q, q's neighbours]) of the verification window.

        m's neighbours never come from q's own neighbourhood (the newest exclude_recent keyframes of
        q's segment): in a loop within one segment those carry the drift the loop is to measure."""
        cfg = self.config
        recent = set(self._recent_in_segment(keyframes, q.segment_id, cfg.exclude_recent, q.keyframe_id))
        anchors = [m] + self._neighbours(m, keyframes, cfg.verify_anchors - 1, recent | {q.keyframe_id},
                                         earlier_only=False)
        taken = {k.keyframe_id for k in anchors}
        query_side = [q] + self._neighbours(q, keyframes, cfg.verify_query_keyframes - 1, taken,
                                            earlier_only=True)
        return anchors, query_side

    def _verify(
        self,
        q: Keyframe,
        m: Keyframe,
        score: float,
        predictor: Predictor,
        stitcher: TrackStitcher,
        config: PipelineConfig,
        keyframes: KeyframeManager,
    ) -> _Verified | None:
        """Predict the window [anchors..., q, q's neighbours] (_verification_window, at most
        verify_anchors + verify_query_keyframes frames) with track queries from m's map points.

        q's pose: the window stitched to m alone (window frame 0 = m's camera, which the prediction
        places without pose noise; the other anchors' predicted poses would only add theirs), q the
        only new frame. None unless enough Sim(3) and track inliers. The loop's scale: the window ->
        world scale of all anchors (_consensus_scale), applied to the query side (_query_scale_ratio).
        """
        anchors, query_side = self._verification_window(q, m, keyframes)
        window = anchors + query_side
        A = len(anchors)
        uv, X, _ = m.points_world(max_points=config.stitch.num_queries, seed=self.seed + q.keyframe_id)
        if len(uv) < config.stitch.min_correspondences:
            return None
        try:
            frames = [k.as_frame() for k in window]
            pred = predictor.predict(frames, uv.astype(np.float32), list(range(len(window))))
        except Exception as exc:  # a failed verification is no loop, never a crash
            log.warning("loop verification failed: %s", exc)
            return None
        K = np.stack(
            [k.K for k in anchors] + [k.K if k.K_known else pred.K[A + i] for i, k in enumerate(query_side)]
        ).astype(np.float64)
        inp = StitchInput(
            pred, [m], [A], K, TrackQueries(uv, X), m.size, config.depth_conf_threshold,
            self.seed + q.keyframe_id,
        )
        try:
            res = stitcher.stitch(inp)
        except Exception as exc:
            log.warning("loop verification stitch failed: %s", exc)
            return None
        cfg = self.config
        if not res.accepted or res.sim3 is None or res.num_inliers < cfg.min_inliers:
            return None
        if not (res.track_inlier_ratio >= cfg.min_inlier_ratio):
            return None
        max_dev = config.stitch.max_depth_scale_dev
        scale = _consensus_scale(replace(inp, anchors=anchors), res.sim3.scale, max_dev)
        ratio = _query_scale_ratio(pred.depth, scale, query_side, A)
        return _Verified(m.keyframe_id, score, res.T_world_cam[A], ratio, res.num_inliers)

    def _drift_bound(self, q: Keyframe, m: Keyframe) -> float:
        """The largest move drift can explain between keyframes m and q of one segment (world units):
        max_correction_rel x the path travelled from m to q, plus max_correction_depth x m's scene depth
        (the verification's own pose error)."""
        cfg = self.config
        travelled = self.path_length.get(q.keyframe_id, 0.0) - self.path_length.get(m.keyframe_id, 0.0)
        return cfg.max_correction_rel * max(travelled, 0.0) + cfg.max_correction_depth * m.median_depth

    def _within_drift(self, q: Keyframe, m: Keyframe) -> bool:
        """Before verifying: a true loop's match is within drift of the query's estimate, give or take
        the distance from which both see the place (m's scene depth)."""
        gap = float(np.linalg.norm(q.T_world_cam[:3, 3] - m.T_world_cam[:3, 3]))
        return gap <= self._drift_bound(q, m) + m.median_depth

    def _drift_explains(self, q: Keyframe, m: Keyframe, ver: _Verified) -> bool:
        """Within one segment: the query's implied move must be at most drift-sized."""
        move = float(np.linalg.norm(ver.T_world_query[:3, 3] - q.T_world_cam[:3, 3]))
        bound = self._drift_bound(q, m)
        if move > bound:
            log.info(
                "loop %d-%d rejected: implied move %.3g > drift bound %.3g (aliased place?)",
                q.keyframe_id,
                m.keyframe_id,
                move,
                bound,
            )
            return False
        return True

    def _close(
        self, q: Keyframe, m: Keyframe, ver: _Verified, keyframes: KeyframeManager, tracking: TrackingStatus
    ) -> tuple[dict[int, Sim3], LoopClosure] | None:
        S_q = self.graph.node(q.keyframe_id)
        S_q_meas = Sim3.from_T(ver.T_world_query, S_q.scale * ver.scale_ratio)
        S_m = self.graph.node(m.keyframe_id)
        sig = edge_sigmas(ver.num_inliers, 0.02, m.median_depth)
        try:
            outcome = self.graph.try_loop(m.keyframe_id, q.keyframe_id, S_m.inverse() @ S_q_meas, sig)
        except PoseGraphError as exc:  # the edge is removed again: the graph is as before, the window stands
            tracking.loops_rejected += 1
            log.warning("loop %d-%d not closed: %s", q.keyframe_id, m.keyframe_id, exc)
            return None
        if not outcome.accepted:
            tracking.loops_rejected += 1
            log.info("loop %d-%d rolled back: chi2 %.3g", q.keyframe_id, m.keyframe_id, outcome.chi2)
            return None
        if outcome.retracted:
            tracking.loops_retracted += len(outcome.retracted)
            log.warning("loop(s) %s retracted: %d later loops that fit the map disagreed with them; "
                        "loop %d-%d closed in their place", outcome.retracted,
                        self.graph.config.loop_evict_votes, q.keyframe_id, m.keyframe_id)
        known = {k.keyframe_id: k for k in keyframes.keyframes}
        corrections = {i: C for i, C in outcome.result.correction.items() if i in known}
        big = _largest_correction(corrections, known)
        merged = -1
        if m.segment_id != q.segment_id:
            merged = q.segment_id
            for k in keyframes.keyframes:
                if k.segment_id == merged:
                    k.segment_id = m.segment_id
            tracking.segment_id = m.segment_id
            tracking.relocalisations += 1
            tracking.state = TrackingState.RELOCALISED
        tracking.loop_closures += 1
        self.changed = True
        self._cooldown = _COOLDOWN
        log.info(
            "loop closed: keyframe %d -> %d (score %.3f, %d inliers), max correction %.3g / %.2f deg",
            q.keyframe_id,
            m.keyframe_id,
            ver.score,
            ver.num_inliers,
            big[0],
            big[1],
        )
        return corrections, LoopClosure(
            q.stamp_ns, q.keyframe_id, m.keyframe_id, m.stamp_ns, ver.score, ver.num_inliers, merged, *big
        )


def _segment_start(kf: Keyframe, keyframes: KeyframeManager) -> Keyframe | None:
    """The first keyframe of kf's segment (None when the manager holds none of it)."""
    return next((k for k in keyframes.keyframes if k.segment_id == kf.segment_id), None)


def _largest_correction(
    corrections: dict[int, Sim3], known: dict[int, Keyframe]
) -> tuple[float, float, float]:
    """(largest keyframe-centre move in world units, largest rotation in degrees, largest scale ratio
    away from 1) over the corrections; computed before they are applied."""
    if not corrections:
        return 0.0, 0.0, 1.0
    c = {i: known[i].T_world_cam[:3, 3] for i in corrections}
    t = max(float(np.linalg.norm(C.apply(c[i]) - c[i])) for i, C in corrections.items())
    r = max(float(np.degrees(rotation_angle(C.R))) for C in corrections.values())
    s = max(abs(C.scale - 1.0) for C in corrections.values()) + 1.0
    return t, r, s


def _consensus_scale(inp: StitchInput, gauge_scale: float, max_dev: float) -> float:
    """Window -> world scale from all of inp.anchors' stored depth (stitching.anchor_depth_scale: the
    weighted median of log(d_map / d_win) over their pixels), as the main windows take theirs: each
    keyframe's stored depth carries its own few % of regional bias, the consensus less.
    gauge_scale: the scale of the stitch on the gauge alone; returned instead when the consensus is
    NaN or differs from it by more than max_dev (relative): the anchors do not agree, trust none more.
    """
    s = anchor_depth_scale(inp)
    if np.isfinite(s) and abs(s / gauge_scale - 1.0) <= max_dev:
        return float(s)
    log.info("loop verification: anchors' scale %.4g vs the gauge's %.4g, gauge kept", s, gauge_scale)
    return float(gauge_scale)


def _query_scale_ratio(
    depth: dict[int, np.ndarray], scale: float, query_side: list[Keyframe], first: int,
    min_pixels: int = 50,
) -> float:
    """Median over the query-side keyframes' stored depth pixels of d_loop / d_cur: d_loop = the
    verification window's depth (H, W) of window index first + i, times the window -> world scale;
    d_cur = keyframe i's stored depth (at its depth_stride, its segment's world units).

    > 1: the query's neighbourhood is mapped that much too small relative to the anchors' map.
    Pooling several keyframes averages each prediction's and each stored depth's regional bias.
    1.0 when fewer than min_pixels ratios are usable (no scale information: the edge keeps q's scale).
    """
    logs = []
    for i, kf in enumerate(query_side):
        d_win = depth.get(first + i)
        if kf.depth is None or d_win is None:
            continue
        st = kf.depth_stride
        d_loop = d_win.astype(np.float64)[::st, ::st] * scale
        with np.errstate(invalid="ignore", divide="ignore"):
            r = d_loop / kf.depth.astype(np.float64)
        logs.append(np.log(r[np.isfinite(r) & (r > 0)]))
    x = np.concatenate(logs) if logs else np.zeros(0)
    return float(np.exp(np.median(x))) if x.size >= min_pixels else 1.0
