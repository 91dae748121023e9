"""Fusion across views on hand-made lifted masks: two views of one object merge, two touching
objects of one class stay apart, votes, scores, segments and exclusivity."""
import numpy as np
import pytest

from pcseg.baseline2d import FusionConfig, LiftedMask, fuse


def rng_idx(a, b):
    return np.arange(a, b)


def two_views():
    """Objects A = 0..199 and B = 200..399 (same class 5, touching). Frame 0 sees 0..299,
    frame 1 sees 100..399; frame 1's mask of A bleeds onto B's first 10 vertices."""
    visible = np.zeros((2, 400), bool)
    visible[0, :300] = True
    visible[1, 100:] = True
    masks = [LiftedMask(rng_idx(0, 200), 5, 0.9, 0), LiftedMask(rng_idx(200, 300), 5, 0.8, 0),
             LiftedMask(rng_idx(100, 210), 5, 0.7, 1), LiftedMask(rng_idx(200, 400), 5, 0.6, 1)]
    return masks, visible


def test_two_views_merge_and_touching_objects_stay_apart():
    masks, visible = two_views()
    # the two views of A share only half their vertices: plain IoU would not merge them
    a0, a1 = set(masks[0].vertices), set(masks[2].vertices)
    assert len(a0 & a1) / len(a0 | a1) < 0.5
    out = fuse(masks, visible, FusionConfig(min_vertices=50))
    assert len(out) == 2
    assert np.array_equal(out.labels, [5, 5])
    a, b = out.masks[0], out.masks[1]  # score order: A (0.9, 0.7) before B (0.8, 0.6)
    assert a[:200].all() and not a[210:].any()
    assert b[200:].all() and not b[:200].any()
    # the bleed (200..209) was seen by both of A's frames and covered by one: vote 0.5 keeps it at
    # vote=0.5, drops it above
    out = fuse(masks, visible, FusionConfig(min_vertices=50, vote=0.6))
    assert np.array_equal(np.flatnonzero(out.masks[0]), np.arange(200))
    assert np.allclose(out.scores, [0.8, 0.7])  # mean mask scores, both objects found in every view


def test_classes_never_merge_and_one_mask_per_frame():
    masks, visible = two_views()
    masks[2] = LiftedMask(masks[2].vertices, 7, 0.7, 1)  # frame 1 calls A a table
    out = fuse(masks, visible, FusionConfig(min_vertices=50))
    assert sorted(out.labels.tolist()) == [5, 5, 7]
    # two masks of one frame on one object are not fused into one instance
    dup = [LiftedMask(rng_idx(0, 200), 5, 0.9, 0), LiftedMask(rng_idx(0, 190), 5, 0.5, 0)]
    assert len(fuse(dup, visible, FusionConfig(min_vertices=50))) == 2


def test_support_lowers_the_score_of_an_object_missed_in_other_views():
    visible = np.ones((4, 300), bool)  # four frames see everything
    masks = [LiftedMask(rng_idx(0, 150), 3, 0.8, 0)] + [LiftedMask(rng_idx(150, 300), 5, 0.8, f) for f in range(4)]
    out = fuse(masks, visible, FusionConfig(min_vertices=100))
    score = dict(zip(out.labels.tolist(), out.scores.tolist()))
    assert score[5] == pytest.approx(0.8)  # detected in all 4 frames that see it
    assert score[3] == pytest.approx(0.2)  # detected in 1 of 4
    assert len(fuse(masks, visible, FusionConfig(min_vertices=100, min_frames=2))) == 1


def test_small_instances_and_slivers_are_dropped():
    visible = np.ones((1, 500), bool)
    masks = [LiftedMask(rng_idx(0, 99), 5, 1.0, 0), LiftedMask(rng_idx(100, 105), 3, 1.0, 0),
             LiftedMask(rng_idx(200, 400), 7, 1.0, 0)]
    out = fuse(masks, visible, FusionConfig(min_vertices=100, min_lifted=10))
    assert out.labels.tolist() == [7] and out.masks[0].sum() == 200


def test_segments_claim_their_unseen_vertices():
    # segment 0 = vertices 0..99, half of which no frame sees; segment 1 = 100..199 is seen but the
    # mask covers only 30% of it
    visible = np.zeros((1, 200), bool)
    visible[0, :50] = True
    visible[0, 100:] = True
    segments = np.repeat([10, 20], 100)
    masks = [LiftedMask(np.r_[rng_idx(0, 50), rng_idx(100, 130)], 5, 1.0, 0)]
    out = fuse(masks, visible, FusionConfig(min_vertices=50), segments=segments)
    assert np.array_equal(np.flatnonzero(out.masks[0]), np.arange(100))
    off = fuse(masks, visible, FusionConfig(min_vertices=50, segment_vote=0), segments=segments)
    assert off.masks[0].sum() == 80
    minority = [LiftedMask(rng_idx(100, 130), 5, 1.0, 0)]  # 30% of one segment: segments cannot judge it
    assert np.flatnonzero(fuse(minority, visible, FusionConfig(min_vertices=20), segments=segments).masks[0]).tolist() \
        == list(range(100, 130))


def test_exclusive_gives_each_vertex_to_one_instance():
    visible = np.ones((1, 300), bool)
    masks = [LiftedMask(rng_idx(0, 200), 5, 0.9, 0), LiftedMask(rng_idx(100, 300), 6, 0.6, 0)]
    shared = fuse(masks, visible, FusionConfig(min_vertices=50))
    assert shared.masks.sum(0).max() == 2
    excl = fuse(masks, visible, FusionConfig(min_vertices=50, exclusive=True))
    assert excl.masks.sum(0).max() == 1
    assert np.array_equal(np.flatnonzero(excl.masks[0]), np.arange(200))  # the higher score wins 100..199
    assert np.array_equal(np.flatnonzero(excl.masks[1]), np.arange(200, 300))


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="overlap"):
        FusionConfig(overlap=0)
    with pytest.raises(ValueError, match="min_vertices"):
        FusionConfig(min_vertices=0)


def test_adjacent_views_without_common_vertices_join_unless_seen_apart():
    # a 2 m table top along x: frame 0 sees (and detects) its left half, frame 1 its right half;
    # no vertex is seen by both, so only adjacency can join the halves
    x = np.linspace(0, 2, 201)
    points = np.column_stack([x, np.zeros_like(x), np.full_like(x, 0.75)])
    visible = np.zeros((2, 201), bool)
    visible[0, :100], visible[1, 100:] = True, True
    halves = [LiftedMask(rng_idx(0, 100), 7, 1.0, 0), LiftedMask(rng_idx(100, 201), 7, 1.0, 1)]
    cfg = FusionConfig(min_vertices=50)
    assert len(fuse(halves, visible, cfg)) == 2  # without the points
    joined = fuse(halves, visible, cfg, points=points)
    assert len(joined) == 1 and joined.masks[0].all()
    assert len(fuse(halves, visible, FusionConfig(min_vertices=50, adjacency=0), points=points)) == 2
    # two touching tables that one frame detected side by side stay apart
    visible[:] = True
    seen_apart = halves + [LiftedMask(rng_idx(0, 100), 7, 0.9, 1), LiftedMask(rng_idx(100, 201), 7, 0.9, 0)]
    out = fuse(seen_apart, visible, cfg, points=points)
    assert len(out) == 2 and not (out.masks[0] & out.masks[1]).any()
