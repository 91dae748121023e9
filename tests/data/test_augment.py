import math

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from pcseg.data.augment import Augmentation, crop_indices, elastic_distortion, jitter_colors
from pcseg.errors import ConfigError
from pcseg.structures import Scene

OFF = dict(rotate=False, flip=False, scale=False, elastic=False, color=False)


def room(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    pts = rng.uniform([0, 0, 0], [5.0, 4.0, 2.5], (n, 3)) + [10.0, -3.0, 0.5]
    normals = rng.normal(size=(n, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return Scene(points=pts, colors=rng.uniform(0, 1, (n, 3)), semantic=rng.integers(0, 41, n),
                 instance=rng.integers(-1, 30, n), normals=normals, name="room",
                 axis_alignment=np.eye(4))


def only(**kw):
    return Augmentation(**{**OFF, **kw})


def test_rotation_preserves_distances_and_height():
    s = room(400)
    out = only(rotate=True)(s, np.random.default_rng(1))
    assert np.allclose(pdist(out.points), pdist(s.points), atol=1e-4)
    assert np.array_equal(out.points[:, 2], s.points[:, 2])
    assert not np.allclose(out.points[:, :2], s.points[:, :2], atol=1e-2)
    # normals turn with the points: the normal-point dot products of pairs are preserved
    assert np.allclose(np.einsum("ij,ij->i", out.normals, out.points - out.points[0]),
                       np.einsum("ij,ij->i", s.normals, s.points - s.points[0]), atol=1e-3)
    # the centre of the x/y bounding box is the rotation centre
    c = (s.points[:, :2].min(0) + s.points[:, :2].max(0)) / 2
    r_in = np.linalg.norm(s.points[:, :2] - c, axis=1)
    assert np.allclose(np.linalg.norm(out.points[:, :2] - c, axis=1), r_in, atol=1e-4)


def test_limited_rotation_stays_within_its_range():
    s = room(50)
    c = (s.points[:, :2].min(0) + s.points[:, :2].max(0)) / 2
    v0 = s.points[0, :2] - c
    for seed in range(20):
        out = only(rotate=True, rotate_max=0.1)(s, np.random.default_rng(seed))
        v1 = out.points[0, :2] - c
        angle = math.atan2(v0[0] * v1[1] - v0[1] * v1[0], v0 @ v1)
        assert abs(angle) <= 0.1 + 1e-4


def test_flips_mirror_about_the_centre():
    s = room(300)
    seen = set()
    for seed in range(12):
        out = only(flip=True)(s, np.random.default_rng(seed))
        flipped = []
        for axis in (0, 1):
            c = s.points[:, axis].min() + s.points[:, axis].max()
            if np.allclose(out.points[:, axis], s.points[:, axis]):
                flipped.append(False)
            else:
                assert np.allclose(out.points[:, axis], c - s.points[:, axis], atol=1e-4)
                assert np.allclose(out.normals[:, axis], -s.normals[:, axis])
                flipped.append(True)
        assert np.array_equal(out.points[:, 2], s.points[:, 2])
        seen.add(tuple(flipped))
    assert len(seen) >= 3  # independent per axis
    never = only(flip=True, flip_prob=0.0)(s, np.random.default_rng(0))
    assert np.array_equal(never.points, s.points)


def test_scaling_scales_distances_and_keeps_the_floor():
    s = room(300)
    out = only(scale=True, scale_range=(0.5, 2.0))(s, np.random.default_rng(3))
    ratio = pdist(out.points) / pdist(s.points)
    assert np.allclose(ratio, ratio[0], rtol=1e-4) and 0.5 <= ratio[0] <= 2.0 and abs(ratio[0] - 1) > 1e-3
    assert out.points[:, 2].min() == pytest.approx(s.points[:, 2].min(), abs=1e-5)
    fixed = only(scale=True, scale_range=(1.5, 1.5))(s, np.random.default_rng(3))
    assert np.allclose(pdist(fixed.points), 1.5 * pdist(s.points), rtol=1e-4)


def test_elastic_displacement_is_bounded_and_smooth():
    rng = np.random.default_rng(5)
    pts = rng.uniform(0, 4.0, (3000, 3))
    near = pts + rng.normal(size=pts.shape) * 1e-3  # a twin 1-2 mm away from every point
    g, m = 0.2, 0.4
    moved = elastic_distortion(np.concatenate([pts, near]), g, m, np.random.default_rng(7))
    d = moved - np.concatenate([pts, near])
    assert np.abs(d).max() <= m + 1e-9
    assert 0.005 < d.std() < 0.2  # real displacement, of the recipe's size (about 0.11 * magnitude)
    d_pts, d_near = d[:3000], d[3000:]
    sep = np.linalg.norm(near - pts, axis=1)
    near_diff = np.linalg.norm(d_pts - d_near, axis=1)
    # Lipschitz bound of the trilinear field (grid values in [-1, 1]): 2 * sqrt(3) * m / g per unit distance
    assert np.all(near_diff <= 2 * math.sqrt(3) * m / g * sep + 1e-9)
    far_diff = np.linalg.norm(d_pts - d_pts[np.random.default_rng(0).permutation(3000)], axis=1)
    assert np.median(near_diff) < 0.05 * np.median(far_diff)
    again = elastic_distortion(np.concatenate([pts, near]), g, m, np.random.default_rng(7))
    assert np.array_equal(moved, again)
    assert np.array_equal(elastic_distortion(pts, g, 0.0, rng), pts)
    with pytest.raises(ValueError, match="granularity"):
        elastic_distortion(pts * 1000, 0.01, 0.1, rng)


def test_elastic_in_augmentation_is_bounded_by_the_sum_of_magnitudes():
    s = room(1000)
    aug = only(elastic=True, elastic_params=((0.2, 0.05), (0.8, 0.1)), elastic_prob=1.0)
    out = aug(s, np.random.default_rng(2))
    d = out.points - s.points
    assert np.abs(d).max() <= 0.15 + 1e-5 and np.abs(d).max() > 1e-3


def test_colors_stay_in_unit_range():
    s = room(2000)
    s.colors[:100] = 0.0
    s.colors[100:200] = 1.0
    for seed in range(5):
        out = only(color=True, brightness=0.5, contrast=1.0, color_noise=0.3)(s, np.random.default_rng(seed))
        assert out.colors.dtype == np.float32
        assert out.colors.min() >= 0.0 and out.colors.max() <= 1.0
        assert not np.allclose(out.colors, s.colors)
        assert np.array_equal(out.points, s.points)
    c = np.full((10, 3), 0.5)
    shifted = jitter_colors(c, 0.2, 0.0, 0.0, np.random.default_rng(0))
    assert np.allclose(shifted, shifted[0, 0]) and abs(shifted[0, 0] - 0.5) <= 0.2 + 1e-6


def test_labels_untouched_and_order_preserved():
    s = room(1500)
    out = Augmentation()(s, np.random.default_rng(0))
    assert np.array_equal(out.semantic, s.semantic) and np.array_equal(out.instance, s.instance)
    assert out.name == s.name and len(out) == len(s)
    assert out.axis_alignment is None  # the alignment no longer describes moved points
    assert np.abs(out.points - s.points).max() > 0.01
    # the input is not modified
    assert np.array_equal(s.points, room(1500).points) and np.array_equal(s.colors, room(1500).colors)


def test_same_seed_same_result_different_seed_different():
    s = room(800)
    aug = Augmentation(dropout=0.2)
    a, b = aug(s, np.random.default_rng(11)), aug(s, np.random.default_rng(11))
    c = aug(s, np.random.default_rng(12))
    assert np.array_equal(a.points, b.points) and np.array_equal(a.colors, b.colors)
    assert len(a) != len(c) or not np.allclose(a.points, c.points)


def test_dropout_and_crop_select_points_in_order():
    s = room(1000)
    s = Scene(points=s.points, colors=s.colors, semantic=s.semantic, instance=np.arange(1000), name="r")
    out = only(dropout=0.3)(s, np.random.default_rng(0))
    kept = out.instance  # instance ids here are the original indices
    assert 550 < len(out) < 850 and np.all(np.diff(kept) > 0)
    assert np.array_equal(out.points, s.points[kept]) and np.array_equal(out.semantic, s.semantic[kept])
    out = only(crop_points=200)(s, np.random.default_rng(1))
    kept = out.instance
    assert len(out) == 200 and np.all(np.diff(kept) > 0)
    idx = crop_indices(s.points, 200, np.random.default_rng(1))
    assert np.array_equal(idx, kept)
    # the kept points are exactly the 200 nearest to some centre: a ball
    centre = s.points[np.random.default_rng(1).integers(1000)]
    d = np.linalg.norm(s.points - centre, axis=1)
    assert d[kept].max() <= np.delete(d, kept).min()
    small = only(crop_points=5000)(s, np.random.default_rng(0))
    assert len(small) == 1000


@pytest.mark.parametrize("kw, field", [
    (dict(rotate_max=4.0), "rotate_max"), (dict(flip_prob=1.5), "flip_prob"),
    (dict(scale_range=(1.2, 0.8)), "scale_range"), (dict(scale_range=(0, 1)), "scale_range"),
    (dict(elastic_params=((0.0, 0.4),)), "elastic_params"), (dict(elastic_params=(0.2, 0.4)), "elastic_params"),
    (dict(dropout=1.0), "dropout"), (dict(contrast=-0.1), "contrast"), (dict(color_noise=float("nan")), "color_noise"),
    (dict(crop_points=0), "crop_points"), (dict(rotate="yes"), "rotate"),
    (dict(holes=-1), "holes"), (dict(holes=1.5), "holes"), (dict(hole_radius=(0.5, 0.2)), "hole_radius"),
    (dict(point_noise=-0.01), "point_noise"),
])
def test_bad_config(kw, field):
    with pytest.raises(ConfigError, match=f"Augmentation.{field}"):
        Augmentation(**kw)


def test_config_from_yaml_lists():
    aug = Augmentation(scale_range=[0.8, 1.2], elastic_params=[[0.2, 0.4], [0.8, 1.6]])
    assert aug.scale_range == (0.8, 1.2) and aug.elastic_params == ((0.2, 0.4), (0.8, 1.6))


def test_appearance_randomisation_casts_greys_and_drops_colours():
    from pcseg.data.augment import randomize_appearance

    colors = np.random.default_rng(0).random((500, 3)).astype(np.float32)
    rng = np.random.default_rng(1)
    assert randomize_appearance(colors, 0.0, 0.0, 0.0, rng) is colors  # off: untouched, no draw
    assert rng.random() == np.random.default_rng(1).random()
    cast = randomize_appearance(colors, 0.5, 0.0, 0.0, np.random.default_rng(2))
    gains = np.median(cast / np.maximum(colors, 1e-6), axis=0)
    assert np.all((gains > 0.5) & (gains < 1.5)) and np.ptp(gains) > 0.01  # one gain per channel
    grey = randomize_appearance(colors, 0.0, 1.0, 0.0, np.random.default_rng(3))
    np.testing.assert_allclose(grey[:, 0], grey[:, 2])
    np.testing.assert_allclose(grey[:, 0], colors @ np.array([0.299, 0.587, 0.114]), atol=1e-6)
    dropped = randomize_appearance(colors, 0.0, 0.0, 1.0, np.random.default_rng(4))
    assert np.all(dropped == 0.5)


def test_holes_remove_balls_of_points_and_keep_the_order():
    from pcseg.data.augment import hole_mask

    s = room(3000)
    s = Scene(points=s.points, colors=s.colors, semantic=s.semantic, instance=np.arange(3000), name="r")
    keep = hole_mask(s.points, 3, (0.5, 0.5), np.random.default_rng(4))
    gone = s.points[~keep]
    assert 0 < len(gone) < 600
    # every removed point lies within 0.5 m of one of 3 centres, drawn from the points as the function does
    rng = np.random.default_rng(4)
    centres = []
    for _ in range(3):
        centres.append(s.points[rng.integers(3000)])
        rng.uniform(0.5, 0.5)
    d = np.min([np.linalg.norm(gone - c, axis=1) for c in centres], axis=0)
    assert d.max() <= 0.5
    kept_d = np.min([np.linalg.norm(s.points[keep] - c, axis=1) for c in centres], axis=0)
    assert kept_d.min() > 0.5
    out = only(holes=4)(s, np.random.default_rng(5))
    assert len(out) <= 3000 and np.all(np.diff(out.instance) > 0)
    assert hole_mask(s.points[:3], 5, (100.0, 100.0), np.random.default_rng(0)).sum() == 1  # never empty


def test_point_noise_moves_points_by_a_per_scene_std():
    s = room(5000)
    out = only(point_noise=0.02)(s, np.random.default_rng(6))
    moved = out.points - s.points
    assert 0 < moved.std() <= 0.02 * 1.1 and abs(moved.mean()) < 0.002
    assert out.axis_alignment is None  # the matrix no longer describes the points
