"""Place database (cosine retrieval, cap, exclusions) and the global descriptors, on the synthetic room."""

import numpy as np
import pytest
from vggt_ros.sim import trajectories
from vggt_ros.sim.scene import Scene, render
from vggt_ros.sim.sequence import SyntheticSequence, intrinsics, make_sequence
from vggt_ros.slam.place_recognition import (
    IMAGE_DESCRIPTOR_DIM,
    PlaceConfig,
    PlaceDatabase,
    image_descriptor,
)

N_LOOP = 121  # one lap, 3 degrees of the ellipse per frame; frame 120 == frame 0


def noisy(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure change (gain, offset) and sensor noise."""
    img = rgb.astype(np.float64) * 0.9 + 10.0 + rng.normal(0.0, 5.0, rgb.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def lap() -> SyntheticSequence:
    return make_sequence("loop", N_LOOP, seed=0)


def test_closed_loop_scores_high_and_the_far_side_low(lap):
    rng = np.random.default_rng(0)
    d0 = image_descriptor(lap[0].rgb)
    score = {i: float(d0 @ image_descriptor(noisy(lap[i].rgb, rng))) for i in (116, 120, 30, 60, 90)}
    assert score[120] > 0.97  # same viewpoint, different exposure and noise (measured 0.999)
    assert score[116] > 0.6  # 12 degrees of the ellipse before closing (0.72)
    for far in (30, 60, 90):  # the far side and the two flanks (0.14, 0.44, 0.30)
        assert score[far] < 0.55 and score[far] < score[116] - 0.15


def test_second_lap_retrieves_the_matching_place():
    """A second lap on an offset ellipse (10 cm out, 10 cm up, looking elsewhere) finds lap one's
    keyframe at the same place first, by a clear margin over places more than 10 frames away."""
    K = intrinsics()
    scene = Scene(seed=0)
    first = SyntheticSequence(scene, trajectories.loop(N_LOOP), K)
    second = SyntheticSequence(scene, trajectories.loop(N_LOOP, radii=(2.3, 1.7), height=1.5, lead=0.7), K)
    db = PlaceDatabase()
    for i in range(N_LOOP - 1):
        db.add(i, image_descriptor(first[i].rgb), first.poses[i])
    rng = np.random.default_rng(1)
    for q in range(0, N_LOOP - 1, 6):
        hits = db.query(image_descriptor(noisy(second[q].rgb, rng)), k=N_LOOP)
        dist = np.array([abs((h.kf_id - q + 60) % 120 - 60) for h in hits])
        assert dist[0] <= 3, (q, hits[0].kf_id)
        best_far = max(h.score for h, d in zip(hits, dist) if d > 10)
        assert hits[0].score - best_far > 0.2, q  # measured minimum 0.32


def test_image_descriptor_invariances_and_bad_input(lap):
    rgb = lap[10].rgb
    d = image_descriptor(rgb)
    assert d.shape == (IMAGE_DESCRIPTOR_DIM,) and d.dtype == np.float32
    assert np.linalg.norm(d) == pytest.approx(1.0, abs=1e-5)
    brighter = np.clip(rgb.astype(np.float64) * 1.2 + 15, 0, 255).astype(np.uint8)
    assert float(d @ image_descriptor(brighter)) > 0.98
    # the same view rendered at twice the resolution
    big, _ = render(lap.scene, intrinsics(640, 480), lap.poses[10], (480, 640))
    assert float(d @ image_descriptor(big)) > 0.97
    black = np.zeros((240, 320, 3), np.uint8)
    np.testing.assert_allclose(image_descriptor(black), image_descriptor(np.full_like(black, 90)))
    with pytest.raises(ValueError):
        image_descriptor(rgb.astype(np.float32))
    with pytest.raises(ValueError):
        image_descriptor(rgb[..., 0])
    # small images (small cameras, strided keyframe images) are enlarged, not refused
    small = image_descriptor(rgb[::4, ::4])
    assert small.shape == d.shape and np.isclose(np.linalg.norm(small), 1.0, atol=1e-5)
    assert float(d @ small) > 0.8


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_query_ranks_by_cosine_and_excludes():
    desc = unit_vectors(20, 16)
    db = PlaceDatabase(PlaceConfig(initial_capacity=4))
    for i, d in enumerate(desc):
        db.add(100 + i, 3.0 * d, np.eye(4), segment_id=i % 2)  # scale is normalised away
    assert db.capacity == 32 and len(db) == 20  # 4 -> 8 -> 16 -> 32
    q = desc[5] + 0.1 * desc[6]
    hits = db.query(q, k=3)
    cos = desc @ (q / np.linalg.norm(q))
    assert [h.kf_id for h in hits] == [100 + int(i) for i in np.argsort(-cos)[:3]]
    assert hits[0].kf_id == 105 and hits[0].score > hits[1].score > hits[2].score
    np.testing.assert_allclose([h.score for h in hits], np.sort(cos)[::-1][:3], atol=1e-5)
    assert all(h.kf_id != 105 for h in db.query(q, k=20, exclude_ids={105}))
    recent = db.query(q, k=20, exclude_recent=15)  # entries 105..119 are the last 15 added
    assert {h.kf_id for h in recent} == set(range(100, 105))
    assert all(h.score >= 0.2 for h in db.query(q, k=20, min_score=0.2))
    assert all(h.segment_id == 1 for h in db.query(q, k=20, segment_id=1))
    assert db.query(q, k=0) == [] and PlaceDatabase().query(q) == []


def test_cap_drops_the_most_redundant_and_keeps_distinct_places():
    rng = np.random.default_rng(2)
    places = unit_vectors(10, 32, seed=3)
    db = PlaceDatabase(PlaceConfig(max_entries=20, initial_capacity=4))
    kf = 0
    for p in places:  # 10 distinct places, then a long stay at place 0 (near-duplicates)
        db.add(kf, p, np.eye(4))
        kf += 1
    for _ in range(100):
        db.add(kf, places[0] + rng.normal(0.0, 0.01, 32), np.eye(4))
        kf += 1
    assert len(db) == 20 and db.capacity == 20 and db.dropped == 90
    ids = db.ids
    assert set(range(10)) <= set(ids)  # every distinct place survived
    assert ids[-1] == kf - 1  # the newest entry is always stored
    for i, p in enumerate(places):
        assert db.query(p, k=1)[0].kf_id == i or i == 0


def test_redundancy_scores_stay_exact_through_drops_and_removals():
    rng = np.random.default_rng(5)
    db = PlaceDatabase(PlaceConfig(max_entries=30, initial_capacity=4))
    vecs = {}
    for i in range(120):
        v = rng.normal(size=16)
        if i % 3 == 0 and vecs:  # some near-repeats of earlier entries
            v = vecs[int(rng.choice(list(vecs)))] + rng.normal(0.0, 0.2, 16)
        db.add(i, v, np.eye(4))
        vecs[i] = v
        if i % 17 == 16:
            db.remove(db.ids[int(rng.integers(len(db)))])
    ids = db.ids
    unit = np.stack([vecs[i] / np.linalg.norm(vecs[i]) for i in ids])
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    np.testing.assert_allclose([db.redundancy(i) for i in ids], sims.max(axis=1), atol=1e-5)


def test_edit_operations_and_bad_input():
    desc = unit_vectors(5, 8)
    db = PlaceDatabase()
    for i, d in enumerate(desc):
        db.add(i, d, np.eye(4), segment_id=7)
    T = np.eye(4)
    T[:3, 3] = [1.0, 2.0, 3.0]
    db.set_pose(2, T)
    np.testing.assert_array_equal(db.query(desc[2], k=1)[0].T_world_cam, T)
    assert db.relabel_segment(7, 3) == 5 and db.query(desc[0], k=1, segment_id=7) == []
    db.remove(1)
    assert 1 not in db and len(db) == 4 and db.ids == [0, 2, 3, 4]
    assert db.query(desc[4], k=1)[0].kf_id == 4  # the moved row still answers for its id
    with pytest.raises(KeyError):
        db.remove(1)
    with pytest.raises(ValueError):
        db.add(0, desc[0], np.eye(4))  # duplicate id
    with pytest.raises(ValueError):
        db.add(9, np.ones(9), np.eye(4))  # wrong dimension
    with pytest.raises(ValueError):
        db.add(9, np.zeros(8), np.eye(4))
    with pytest.raises(ValueError):
        db.add(9, np.full(8, np.nan), np.eye(4))
    with pytest.raises(ValueError):
        db.add(9, desc[0], np.eye(3))
    with pytest.raises(ValueError):
        db.query(np.ones(3))
    with pytest.raises(ValueError):
        PlaceConfig(max_entries=0)


def test_arrays_round_trip(tmp_path):
    db = PlaceDatabase(PlaceConfig(max_entries=12, initial_capacity=4))
    desc = unit_vectors(30, 8, seed=9)
    for i, d in enumerate(desc):
        db.add(i, d, np.eye(4), segment_id=i // 10)
    db.remove(db.ids[3])
    np.savez(tmp_path / "places.npz", **db.to_arrays())
    with np.load(tmp_path / "places.npz") as z:
        back = PlaceDatabase.from_arrays(dict(z), PlaceConfig(max_entries=12))
    assert back.ids == db.ids and back.dropped == db.dropped and back.dim == 8
    assert [back.redundancy(i) for i in db.ids] == [db.redundancy(i) for i in db.ids]
    q = desc[25]
    a, b = back.query(q, k=5, exclude_recent=3), db.query(q, k=5, exclude_recent=3)
    assert [h.kf_id for h in a] == [h.kf_id for h in b]
    np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-6)
    assert len(back) == 11
    back.add(100, desc[0], np.eye(4))
    back.add(101, desc[1], np.eye(4))  # at the cap: drops one
    assert len(back) == 12 and back.dropped == db.dropped + 1
    with pytest.raises(ValueError):
        PlaceDatabase.from_arrays(db.to_arrays(), PlaceConfig(max_entries=5))
