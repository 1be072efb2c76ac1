"""Configuration of the streaming reconstruction core (one dataclass per component).

Defaults and why:
- window_size 16 = 4 anchors + 12 new frames. VGGT's global attention costs O(S^2) in the
  number of frames; the paper's runtime table (Wang et al., CVPR 2025, Table 9, H100) gives
  ~0.04 s for 1 frame, ~0.14 s for 10, ~0.31 s for 20 and ~1.04 s for 50 frames, so ~16 frames
  keep one inference near 0.2-0.25 s (about 50+ new frames/s) while 4 anchors give the
  stitcher several map views (depth overlap from different viewpoints, and >= 3 camera centres
  for the camera-centre baseline).
- Keyframes when < 70 % of the tracks from the last keyframe are still visible or the camera
  moved more than 15 % of the scene's median depth: parallax-based, so standing still or
  rotating in place (no parallax, full overlap until the view changes) adds none or few.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class KeyframeConfig:
    """KeyframeManager settings.

    min_covisible: new keyframe when the fraction of the last keyframe's tracks still visible
        in a frame falls below this. max_motion_rel: or when the camera centre moved more than
        this fraction of the last keyframe's median depth.
    depth_stride: keyframe depth/confidence kept at every `depth_stride`-th pixel (exact pixel
        correspondence with the camera grid, no interpolation).
    max_image_pixels: keyframe image kept at an integer stride so that H*W/stride^2 <= this.
    max_active: keyframes that keep image/depth/confidence at full precision (anchor
        candidates); older ones are archived: JPEG image and float16 depth/confidence, enough to
        verify a loop against them (slam.loop_closure).
    max_archived: archived keyframes kept with image and depth (loop/relocalisation targets);
        beyond it the oldest archives are dropped (pose and map points stay), so memory is bounded.
    min_frame_gap: frames since the last keyframe before a covisibility-only keyframe (see
        KeyframeManager.is_keyframe): anchors need baseline.
    min_motion_parallax_deg: a keyframe for camera motion (max_motion_rel) also needs the image to show
        it: the median shift of the window's tracks since the last keyframe, over the focal length, at
        least this angle (VINS-Mono's keyframe rule is of this kind: average tracked-feature parallax
        >= 10 px at a 460 px focal length, ~1.2 deg; Qin et al., IEEE T-RO 2018, Sec. IV-A). Otherwise the
        pose's own noise makes keyframes where the camera stands still at close range: the figure-eight
        stopped 5 s 0.35 m from a pillar (bench case stop_and_go, harsh 1x) added 46 keyframes in 150
        standing frames (their tracks had moved 0.7 deg median, 0.8 at the 95th percentile: noise), and
        its loop closer then looped onto them. 1 deg: above that noise, below every motion keyframe of the
        bench's worlds at 2x noise (>= 1.3 deg; >= 3.4 deg at 1x). At 2x the standing tracks' noise
        (1.6 deg median) passes it: 2 deg stopped that too, but changed keyframes of moving 2x runs.
    pinned_keyframe_wait: a keyframe due on a frame whose pose PnP did not pin to the map (the
        network's pose stands: too few tracks, or the PnP pose refused) moves to a pinned frame among the
        next this many new frames of its window; it stays when none is (0 = never moves). A keyframe
        becomes the next windows' gauge, so its pose error enters every window after it. At 1x 12 % of
        the figure-eight's keyframes carried the network's pose against 4 % of its frames (at 2x 31 %):
        a keyframe falls where the view has changed most since the last, where the fewest tracks reach
        it. 2 frames (seeds 0-5, twice the harsh noise): figure-eight ATE 1.66 -> 1.24 %, kidnapped 1.03
        -> 0.83, 3-lap loop 0.40 -> 0.32; at 1x neutral (open_eight / standing start, seeds 0-11: 0.39
        -> 0.41, 0.33 -> 0.35, as many seeds better as worse). Unbounded (any later pinned frame of the
        window) did as well at 2x but made keyframes sparser at 1x: open_eight seed 3 ATE 0.29 -> 0.67 %.
    long_anchor_rel: the last anchor slot goes to the oldest active keyframe of the segment that the last
        posed camera still sees at least this fraction as well as the best-seen older keyframe
        (KeyframeManager.anchors; 0 = every slot by covisibility, newest first on ties). Kidnapped and open
        figure-eight cases, seeds 0-23, harsh 1x, loop closure on (README, "An older anchor"): end-to-end
        scale drift median 1.98 -> 1.28 % and 3.09 -> 2.21 % (lower in 17 and 14 of 24 runs), ATE
        unchanged; the map's own scale walk did not move and the anchors grew only a little older (the
        last slot 4.05 -> 4.44 keyframes behind the window's new keyframe, the gauge 1; kidnapped seed
        0). Loop closure off (seeds 0-2) the ATE fell in 8 of 15 cases and rose in 4. The twin rooms
        lost: drift 0.96 -> 1.53 % (seeds 0-11), fewer loops closed where keyframes fell off the first
        pass's views. 0.3 was mixed (figure-eight drift 0.6 -> 1.0 %), as was giving the older keyframes
        two slots (1.7 %).
    """

    min_covisible: float = 0.7
    max_motion_rel: float = 0.15
    depth_stride: int = 4
    max_image_pixels: int = 640 * 480
    max_active: int = 8
    max_archived: int = 1000
    min_frame_gap: int = 4
    min_motion_parallax_deg: float = 1.0
    pinned_keyframe_wait: int = 2
    long_anchor_rel: float = 0.5

#: sources of a new frame's depth scale (StitchConfig.frame_depth_scale)
FRAME_DEPTH_SCALES = ("window", "dense", "tracks")


@dataclass
class StitchConfig:
    """Stitcher settings (ours; the baselines use the correspondence settings only).

    max_anchor_points: anchor-depth correspondences kept (uniform subsample, confidence-weighted).
    max_track_points: track (2D-3D) correspondences kept for the Sim(3) (all are used by PnP).
    num_queries: track queries on the window's frame 0 (the latest keyframe).
    min_track_vis / min_track_conf: a track observation is used when vis and conf exceed these.
    max_rel_rms: reject a window whose Sim(3) inlier residual RMS, each point's residual relative to its
        distance from the gauge camera (stitching.relative_residual), exceeds this. 0.45, measured on
        the robustness worlds (bench/slam_robustness.py): accepted windows have a median of 0.06 and
        a 99th percentile of 0.19 under harsh noise, up to ~0.44 at twice that noise; confident
        garbage windows score 0.58-0.68 (and ~0.0 in min_track_inlier_ratio).
    min_inlier_ratio: reject when fewer Sim(3) inliers than this fraction of correspondences.
    min_correspondences: reject below this many usable correspondences.
    pnp_min_px / pnp_max_px: range of the adaptive PnP reprojection inlier bound (3 robust sigma),
        as fractions of the image width (160 px wide: 1 .. 6.4 px).
    min_pnp_points: fewest track inliers to refine a frame's pose by PnP.
    min_frame_track_frac: a new frame that sees fewer tracks from window frame 0 than this fraction of
        num_queries (8 of 256), right after a frame that saw 4x as many, shares no view with the
        map (kidnap, cut): the window is not stitched (stitching.unconnected_frame; recovery starts a
        segment). A fraction, not a count: outlier tracks that happen to pass the vis/conf bounds grow
        with the queries; a fixed 8 with num_queries 1024 stitched the dropouts case across its 2 s gap
        (harsh 1x, seeds 0-5: 5 of 6 runs, ATE 0.42 -> 0.99 %; bench/slam_robustness.py).
    min_track_inlier_ratio: reject when the PnP inliers over all visible tracks fall below this
        (tracks that disagree with the map mean the window does not fit it). 0.25: real windows at
        twice the harsh noise reach 0.16-0.39, garbage 0.00-0.01; a window re-predicted alone must
        pass it too (its tracks against its own frame-0 depth) before it recovers.
    max_pnp_deviation_rel: keep the PnP pose only if its centre is within this fraction of scene
        depth of the Sim(3) pose (and within max_pnp_deviation_deg in rotation); 0.3 was tried (README,
        "The PnP deviation gate at 2x"): 2x ATE down by up to half, 1x up in 7 of 14 cases.
        12 deg: the network's
        poses at twice the harsh noise (2.4 deg RMS, plus the window's Sim(3)) are often more than 5 deg
        off, and a 5 deg gate refused 12 % of the PnP poses there; keeping them (bench/slam_robustness.py, 2x:
        figure-eight ATE 1.96 -> 1.48 %, covered black 1.19 -> 0.82 %; 1x: no PnP pose moved > 5 deg).
    max_pnp_sigma_deg: keep the PnP pose only if the matches determine its orientation to within this
        (1 sigma, degrees; geometry.pnp_uncertainty: its Gauss-Newton covariance at the fit's own pixel
        noise; 0 = no check). A few tracks on one close surface fit a pose that reprojects well and is
        wrong: the figure-eight begun at its left lobe (case open_eight, 1x, seed 2) passed 0.36 m from
        a pillar on 19 tracks; the PnP pose turned 11.5 deg from the network's (inside the 12 deg gate)
        at a sigma of 8.7 deg, 13.4 deg wrong against the network's 2.3, became the next windows' gauge
        keyframe and bent the whole path (ATE 1.24 %, 0.27 % with the check). Over figure-eight,
        kidnapped, fast, dropouts at 1x (seeds 0-5) and four cases at 2x (seeds 0-2), the kept PnP
        poses with sigma >= 2 deg were closer to the truth than the network's in 31 % (1x) and 58 %
        (2x) of 259 frames, those with 1-2 deg in 68 % / 73 %, below 1 deg in 86-96 %. Frames with a
        measured depth (inp.metric_depth) are not checked: their depth residuals remove the ambiguity.
    max_depth_scale_dev: the anchors' depth-ratio scale always sets the window's scale (when any anchor
        pixel is usable); within this fraction of the robust Sim(3)'s scale it keeps that fit's rotation,
        farther off the rotation and translation are fitted again at the depth-ratio scale
        (stitching.with_depth_scale). A per-frame depth scale (frame_depth_scale not "window") is used when
        within this fraction of the window scale.
    ransac_iterations: RANSAC hypotheses of the robust Sim(3) (cost ~ iterations x points).
    refresh_queries: average the gauge keyframe's re-predicted depth into the track map points
        before PnP (stitching.refresh_queries).
    fuse_track_depth: average the older anchors' (at their map poses) and the new frames' (posed by a first
        PnP) predicted depth of each tracked point into its map point, then refine the poses again
        (stitching.fuse_track_depths).
    frame_depth_scale: where a new frame's depth scale (window units -> map) comes from.
        "window" (default): the window's scale, i.e. the depth ratio of all its anchors, for every new
        frame: VGGT's scale is one per window, and a keyframe made from a new frame then inherits the
        anchors' averaged scale. "dense" / "tracks": the frame's own median ratio to the gauge
        keyframe's map points (all of them reprojected / the tracked ones): it removes the frame's own
        depth bias but ties every keyframe to the one gauge before it, so each keyframe adds the
        gauge's and the frame's regional depth bias as a step (~1.2 % RMS at harsh noise) to the map's
        scale random walk. Measured on the figure-eight (bench/slam_robustness.py, harsh 1x, seeds 0-5):
        end-to-end scale drift median 5.3 % ("dense") vs 1.6 % ("window"), ATE 1.15 vs 0.85 %.
    repin_gauge: a gauge keyframe whose pose the network set (Keyframe.pinned False: PnP could not pin it
        in its own window, typically the last frames of a close pass) is first moved by PnP onto the other
        anchors' map points, through its track queries followed into them (stitching.repin_gauge), with
        its map points, pose-graph node and link; the window's new frames are then pinned to a gauge that
        agrees with the map rather than to its error. Such keyframes carried ~60 % of the keyframe chain's
        rotation variance (bench/keyframe_chain.py, loop closure off, 1x, seeds 0-7): the rotation walk
        over 30 keyframes falls 2.19 -> 1.94 deg on the figure-eight, 1.58 -> 1.17 on the 3-lap loop,
        1.95 -> 1.79 on open_eight.
    anchor_links: every accepted window measures its older anchors (window indices >= 1) again: PnP of
        each on the gauge's fused map points through the gauge's tracks followed into it
        (stitching.anchor_links), a pose-graph edge gauge -> anchor with the PnP's own covariance; the
        newest anchor_link_window keyframes of the segment are then solved (LoopCloser.adjust_recent) and
        the map, keyframes and emitted poses follow. A keyframe was measured once, by the window it was
        made in; now also by each window it anchors (3 more with 4 anchors), by independent tracks and
        depth: the local bundle-adjustment role of ORB-SLAM3's covisibility graph at pose-graph cost.
        Robustness cases, 1x, loop closure on, seeds 0-11 (bench/slam_robustness.py): end-to-end scale
        drift median figure-eight 1.0 -> 0.5 %, stop-and-go 1.9 -> 0.6, open eight 3.4 -> 2.9,
        dropouts 2.3 -> 1.0, kidnapped 2.0 -> 2.1; ATE 0.30 / 0.21 / 0.29 / 0.42 / 0.39 -> 0.27 / 0.23 /
        0.23 / 0.41 / 0.30 %; ~6 % more CPU time. The edges' sigmas and gates: slam.loop_closure LINK_*.
    anchor_link_window: keyframes of the segment, newest first, left free by that solve (older ones stay).
    """

    max_anchor_points: int = 1000
    max_track_points: int = 600
    num_queries: int = 256
    min_track_vis: float = 0.5
    min_track_conf: float = 0.5
    max_rel_rms: float = 0.45
    min_inlier_ratio: float = 0.5
    min_correspondences: int = 30
    pnp_min_px: float = 0.006
    pnp_max_px: float = 0.04
    min_pnp_points: int = 12
    min_frame_track_frac: float = 8 / 256
    min_track_inlier_ratio: float = 0.25
    max_pnp_deviation_rel: float = 0.1
    max_pnp_deviation_deg: float = 12.0
    max_pnp_sigma_deg: float = 2.0
    max_depth_scale_dev: float = 0.1
    ransac_iterations: int = 64
    refresh_queries: bool = True
    fuse_track_depth: bool = True
    frame_depth_scale: str = "window"
    repin_gauge: bool = True
    anchor_links: bool = True
    anchor_link_window: int = 8

    def __post_init__(self) -> None:
        if self.frame_depth_scale not in FRAME_DEPTH_SCALES:
            raise ValueError(
                f"unknown frame_depth_scale {self.frame_depth_scale!r}; one of {FRAME_DEPTH_SCALES}"
            )
        if self.anchor_link_window < 1:
            raise ValueError(f"anchor_link_window must be >= 1, got {self.anchor_link_window}")


@dataclass
class MapConfig:
    """GlobalMap settings.

    voxel_size_rel: fused-grid voxel edge as a fraction of the first keyframe's median depth
        (map units are arbitrary, fixed by the first window).
    max_bytes: memory cap of the map (stored per-keyframe points + fused snapshot + records).
    points_per_keyframe: points stored per keyframe before any cap-driven thinning.
    """

    voxel_size_rel: float = 0.01
    max_bytes: int = 256 * 1024 * 1024
    points_per_keyframe: int = 20000

@dataclass
class LoopConfig:
    """Place recognition, loop/relocalisation verification and the pose graph (slam.loop_closure).

    enabled: look for loops and relocalisations at every new keyframe.
    min_score: cosine similarity of global descriptors for a candidate in the query's own segment (a loop).
    reloc_min_score: the same for a candidate in another segment (relocalisation after a kidnap or a
        break): lower, since a lost camera rarely sees a place from a keyframe's exact viewpoint and only
        verification can merge segments (the kidnapped case: the right place ranked first at 0.72-0.85
        for 40 frames before one keyframe reached 0.9).
    reloc_best_min_score: the best-ranked candidate in another segment is verified from this score on,
        below reloc_min_score: a view-dependent descriptor scores a mapped place seen from 4 m closer
        along its view at 0.41-0.56 (figure-eight with 2 s of dropped frames: the right place first at every
        keyframe for 150 frames, none reached 0.7, the segments merged only back at the start). The
        verification decides. Only for a segment's first reloc_best_keyframes keyframes (about 10 s
        of motion): each costs one prediction, and a segment that has not merged by then explores
        new ground, where only reloc_min_score candidates are worth one.
    reloc_last_keyframes: the first keyframes of a segment started after a view break also verify the
        newest this many keyframes of the segment tracked before it, whatever the descriptors say
        (LoopCloser._break_candidates).
    exclude_recent: the newest this many keyframes of the query's own segment are not loop candidates
        (already connected by the stitching chain); other segments' keyframes always are.
    max_candidates: candidates verified per new keyframe (each costs one prediction of a window of
        at most verify_anchors + verify_query_keyframes frames).
    max_loop_verifications_per_window: loop verification predictions (candidates in the query's own
        segment) per stitched window, all its new keyframes together, in order; a keyframe whose loop
        candidates it leaves unverified is counted as a loop_check_skipped. Bounds a window's loop
        cost whatever the descriptors say: with uninformative ones every keyframe has candidates (a
        tiny random model: 91 verification predictions beside 5 windows). A place the camera stays in
        is tried again at the next window's keyframes. Relocalisation candidates (other segments) are
        not limited by it, as a lost tracker tries to relocalise at every frame (ORB-SLAM3): a budget
        there delayed a kidnapped camera's relocalisation from 2 to 12 frames (2x, seed 2).
    min_inliers / min_inlier_ratio: the verification stitch must have this many Sim(3) inliers
        and this fraction of track observations within the PnP bound.
    max_correction_rel / max_correction_depth: a loop within one segment may move the query keyframe
        by at most max_correction_rel x the path length travelled since the matched keyframe, plus
        max_correction_depth x the matched keyframe's median depth: drift cannot be larger, so a bigger
        jump is a false loop (aliased places), rejected. The depth term is the verification's own pose
        error: the issue's VGGT-like noise puts a frame's centre 2.6 % of the depth off (RMS) and 1.2 deg
        of rotation adds ~2 %, so 0.2 is ~3 sigma at 2x that noise. It was 0.5: in the twin rooms at 2x
        (seed 6) a doorway seen 1.7 depths deep let a false loop through (implied move 1.68, bound 1.85;
        true loops there and on the figure-eight move at most 0.1 x the travel, none needs the slack).
    max_loop_chi2: after optimising, a loop edge whose chi2 exceeds this does not fit the graph:
        the loop is rolled back.
    verify_anchors: keyframes whose stored depth anchors the verification window: the candidate plus
        up to verify_anchors - 1 keyframes of its segment that see its view (verify_min_covisible of
        their points inside it) within verify_span keyframes of it. The window's scale is their
        consensus (stitching.anchor_depth_scale), as in the main windows: one keyframe's stored depth
        carries a few % of regional depth bias, and a relocalisation edge alone fixes a segment's scale.
    verify_query_keyframes: frames of the query's side: the query plus up to verify_query_keyframes - 1
        of its segment's keyframes (same covisibility and span rule); the loop's scale ratio is the
        median over all of them (their depth re-predicted in the window vs their stored depth).
        The verification window has at most verify_anchors + verify_query_keyframes frames.
    """

    enabled: bool = True
    min_score: float = 0.9
    reloc_min_score: float = 0.7
    reloc_best_min_score: float = 0.35
    reloc_best_keyframes: int = 30
    reloc_last_keyframes: int = 2
    exclude_recent: int = 12
    max_candidates: int = 2
    max_loop_verifications_per_window: int = 2
    min_inliers: int = 60
    min_inlier_ratio: float = 0.5
    max_correction_rel: float = 0.1
    max_correction_depth: float = 0.2
    max_loop_chi2: float = 50.0
    verify_anchors: int = 3
    verify_query_keyframes: int = 2
    verify_min_covisible: float = 0.5
    verify_span: int = 6

    def __post_init__(self) -> None:
        if self.verify_anchors < 1 or self.verify_query_keyframes < 1:
            raise ValueError(
                f"need verify_anchors, verify_query_keyframes >= 1, got {self.verify_anchors}, "
                f"{self.verify_query_keyframes}"
            )

@dataclass
class ScaleConfig:
    """Metric scale from a robot sensor (slam.metric_scale, docs/architecture.md#scale).

    source: 'none' (map units stay the first window's: arbitrary), 'depth' (a registered metric depth
        image per colour frame) or 'odometry' (T_odom_cam increments, e.g. wheel odometry / VIO).
    max_dt_s: a sensor sample pairs with the colour frame nearest in stamp within this many seconds
        (approximate-time matching; 20 ms < half a 30 Hz period).
    min_depth_m / max_depth_m: metric depth outside this range is not used (sensor range limits).
    min_pixels: fewest pixels valid in both depths for a per-frame observation.
    outlier_sigmas: log ratios further than this many robust sigmas (1.4826 MAD) from the median are
        rejected; min_inlier_ratio: fewer inliers than this fraction rejects the observation.
    max_step: after the first estimate, the scale changes by at most this ratio per window (the filter
        is bounded; reset() starts over). process_sigma: relative scale drift allowed per window
        (the map's own scale random walk between windows), the filter's process noise.
    min_sigma: floor of an observation's relative uncertainty (pixels of one frame are correlated).
    odom_min_step_m: odometry increments shorter than this are not used (standing, rotating in place:
        the scale is held); long enough that the map's per-frame position jitter (a few cm) does not bias
        |increment| upward. odom_max_turn_deg_per_m: an increment turning more than this per metre is a
        rotation (a camera off the rotation axis moves on a small circle): not used either.
        odom_horizon: increments in the robust estimate (slip resistance).
    odom_min_increments: fewest increments for an odometry observation. odom_max_speed_mps: an
        increment faster than this is a TF jump: rejected and the increment chain restarts.
    max_buffer: metric samples buffered per source while waiting for their colour frame.
    depth_in_geometry: with source 'depth', the measured depth also enters the geometry once the map is
        metric: each new frame's PnP pose is refined with it (stitching.refine_with_measured_depth) and a
        new keyframe keeps it where it agrees with the prediction (Keyframe.set_measured_depth). PnP
        alone from a narrow view couples rotation and translation, and its error is each keyframe link's
        drift; measured on the forward sequence at 2x noise (bench/metric_scale.py): per-frame step
        error ~0.6 -> ~0.4 deg, ATE SE(3) 0.95-1.29 % -> 0.62-0.82 % of path (seeds 0-2).
    """

    source: str = "none"
    max_dt_s: float = 0.02
    min_depth_m: float = 0.1
    max_depth_m: float = 10.0
    min_pixels: int = 200
    outlier_sigmas: float = 3.0
    min_inlier_ratio: float = 0.5
    max_step: float = 0.05
    process_sigma: float = 0.002
    min_sigma: float = 0.002
    odom_min_step_m: float = 0.3
    odom_max_turn_deg_per_m: float = 90.0
    odom_horizon: int = 20
    odom_min_increments: int = 3
    odom_max_speed_mps: float = 5.0
    max_buffer: int = 256
    depth_in_geometry: bool = True

    def __post_init__(self) -> None:
        if self.source not in ("none", "depth", "odometry"):
            raise ValueError(f"unknown scale source {self.source!r} (none, depth, odometry)")


@dataclass
class PipelineConfig:
    """Pipeline settings. stitcher: 'tracks' (ours), 'camera_centres' or 'point_map' (baselines).

    depth_conf_threshold: depth pixels with confidence below this are NaN in outputs and never
        enter the map (VGGT confidence is >= 1 by its 1 + exp(x) activation).
    use_camera_intrinsics: when a Frame carries K, use it (else VGGT's predicted K).
    cloud_stride: pixel stride of the per-window cloud. map_every: 0 (default): no MapChanged from
        push, the caller pulls Pipeline.map_update when it publishes the map (the runtime does, every
        map_publish_period); n > 0: a MapChanged every n windows that added keyframes.
    emit_depth: emit DepthFrame updates.
    fuse_anchor_depth: average each anchor's depth re-predicted by later windows into the keyframe
        (Keyframe.fuse_depth); every stitcher gets it, so the comparison stays fair.
    recover_new_segment: when a window cannot be stitched, re-predict it without anchors and start
        a new map segment from it (slam.tracking) instead of dropping it.
    predict_ahead: while tracking, a window's anchors (and gauge query pixels) are chosen before the
        previous window changes the map, so its prediction may run on the GPU while the previous
        window is stitched (Pipeline.set_executor; without an executor it runs at once, the same
        result: a deterministic replay of what the live node does). Costs: the previous window's new
        keyframes are not among the anchors, nor an older anchor (KeyframeConfig.long_anchor_rel: the
        oldest active keyframe is the next the window in flight archives).
        docs/architecture.md#predicting-ahead.
    predict_after_keyframes: the next window (when its frames are in) is launched as soon as this
        window's keyframes and anchor links are in the map, with the anchors a serial run would choose;
        this window's cloud, loop closure and map run beside its prediction (on the executor, as
        predict_ahead). No accuracy cost: a launch that is no longer the serial choice when the window
        is stitched (this window closed a loop) is predicted again, so the map is the serial one; less
        overlap than predict_ahead, which it overrides.
    standstill_max_change: a frame whose grey thumbnail differs from the last moving frame's by less
        than this (grey levels, geometry.image.image_change) is published at that frame's pose and never
        becomes a keyframe (slam.standstill); 0 = off. 1.0: sensor noise of sigma 3 reads 0.35 at 160 x
        120 (less at higher resolution), a move of about a pixel 1-3.
    refuse_repeated_images: refuse a frame whose image is byte for byte the last accepted one
        ("repeated_image", slam.validation): a stalled driver's repeats are not posed as a standing
        camera. Off for a noise-free simulated camera, whose standing frames repeat exactly.
    """

    window_size: int = 16
    num_anchors: int = 4
    stitcher: str = "tracks"
    depth_conf_threshold: float = 1.5
    use_camera_intrinsics: bool = True
    cloud_stride: int = 4
    map_every: int = 0
    emit_depth: bool = True
    fuse_anchor_depth: bool = True
    recover_new_segment: bool = True
    predict_ahead: bool = False
    predict_after_keyframes: bool = False
    standstill_max_change: float = 1.0
    refuse_repeated_images: bool = True
    seed: int = 0
    keyframes: KeyframeConfig = field(default_factory=KeyframeConfig)
    stitch: StitchConfig = field(default_factory=StitchConfig)
    map: MapConfig = field(default_factory=MapConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    scale: ScaleConfig = field(default_factory=ScaleConfig)

    def __post_init__(self) -> None:
        if self.num_anchors < 1 or self.window_size < self.num_anchors + 1:
            raise ValueError(
                f"need window_size > num_anchors >= 1, got {self.window_size}, {self.num_anchors}"
            )
        if self.stitcher not in ("tracks", "camera_centres", "point_map"):
            raise ValueError(f"unknown stitcher {self.stitcher!r}")
        if not 0.0 <= self.standstill_max_change < float("inf"):
            raise ValueError(f"standstill_max_change must be finite and >= 0, got "
                             f"{self.standstill_max_change}")

    @property
    def num_new(self) -> int:
        """New frames per window after the first (window_size - num_anchors)."""
        return self.window_size - self.num_anchors
