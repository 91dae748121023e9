"""Colour modes: embeddings through PCA (deterministic, clusters apart), semantic, errors of input."""
import numpy as np
import pytest

from pcseg.labels import NYU40_PALETTE
from pcseg.structures import Scene
from pcseg.viz import colorize, embedding_colors, pca_components


def _two_clusters(seed=0, n=2000, d=8):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, d)) * 3
    label = rng.integers(0, 2, n)
    return centres[label] + rng.normal(scale=0.2, size=(n, d)), label


def test_embedding_colours_are_deterministic_and_separate_clusters():
    emb, label = _two_clusters()
    colors = embedding_colors(emb)
    assert colors.shape == (len(emb), 3) and colors.dtype == np.float32
    np.testing.assert_array_equal(colors, embedding_colors(emb.copy()))
    # the same points in another order get the same colours: the signs do not depend on the solver's input
    perm = np.random.default_rng(1).permutation(len(emb))
    np.testing.assert_allclose(embedding_colors(emb[perm]), colors[perm], atol=1e-4)
    mean0, mean1 = colors[label == 0].mean(0), colors[label == 1].mean(0)
    channel = np.abs(mean0 - mean1).argmax()  # the first component: the clusters' axis
    spread = max(colors[label == 0, channel].std(), colors[label == 1, channel].std())
    assert channel == 0 and abs(mean0 - mean1)[0] > 0.8 and spread < 0.05


def test_pca_signs_make_the_largest_loading_positive():
    emb, _ = _two_clusters(seed=3)
    _, axes = pca_components(emb)
    assert np.all(axes[np.arange(3), np.abs(axes).argmax(1)] > 0)
    _, flipped = pca_components(-emb)  # negated data: same axes up to sign, fixed the same way
    np.testing.assert_allclose(flipped, axes, atol=1e-6)


def test_colorize_modes_and_bad_input():
    pts = np.random.default_rng(0).random((50, 3))
    scene = Scene(pts, semantic=np.r_[np.full(25, 5), np.full(25, 7)], instance=np.r_[np.full(25, 1), np.full(25, 2)])
    np.testing.assert_allclose(colorize(scene, "semantic")[0], NYU40_PALETTE[5] / 255, atol=1e-6)
    emb, _ = _two_clusters(n=50, d=4)
    assert colorize(scene, "embedding", embeddings=emb).shape == (50, 3)
    with pytest.raises(ValueError, match="needs per-point embeddings"):
        colorize(scene, "embedding")
    with pytest.raises(ValueError, match="10 embeddings for 50 points"):
        colorize(scene, "embedding", embeddings=emb[:10])
    with pytest.raises(ValueError, match="unknown colour mode"):
        colorize(scene, "depth")
    with pytest.raises(ValueError, match="NaN"):
        embedding_colors(np.full((5, 2), np.nan))


def test_gt_instances_of_walls_and_floor_stay_grey_as_in_a_prediction():
    from pcseg.viz.colors import NONE_GREY

    pts = np.random.default_rng(0).random((30, 3))
    # wall (1), floor (2), chair (5): only the chair is an instance to the benchmark
    scene = Scene(pts, semantic=np.repeat([1, 2, 5], 10), instance=np.repeat([1, 2, 3], 10))
    colors = colorize(scene, "instance")
    np.testing.assert_allclose(colors[:20], np.tile(NONE_GREY, (20, 1)))
    assert not np.allclose(colors[20:], NONE_GREY)
