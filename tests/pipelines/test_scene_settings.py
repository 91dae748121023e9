"""The settings every scene pipeline shares: augmentation keys reach the augmentation, bad values are named."""
import numpy as np
import pytest

from pcseg.pipelines.bottomup.recipe import BottomUpRecipe
from pcseg.pipelines.scenes import build_augmentation
from pcseg.structures import Scene


def test_crop_points_trains_on_a_partial_scene():
    assert build_augmentation(BottomUpRecipe()).crop_points is None  # 0: whole scenes
    aug = build_augmentation(BottomUpRecipe(crop_points=300, rotate=False, flip=False, scale_min=1.0, scale_max=1.0,
                                            elastic=False, color_jitter=False))
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 5, (2000, 3)).astype(np.float32)
    scene = Scene(points, np.full((2000, 3), 0.5, np.float32), semantic=np.zeros(2000, np.int64),
                  instance=np.zeros(2000, np.int64))
    out = aug(scene, np.random.default_rng(1))
    assert len(out) == 300
    # the 300 kept are the nearest to one point: a ball, nothing farther than any dropped point
    kept = {tuple(p) for p in out.points.tolist()}
    dropped = np.array([p for p in points.tolist() if tuple(p) not in kept])
    centre = out.points.mean(0)
    assert np.linalg.norm(out.points - centre, axis=1).max() < np.linalg.norm(dropped - centre, axis=1).max()


@pytest.mark.parametrize("value", [-1, 1.5, True])
def test_bad_crop_points_is_named(value):
    with pytest.raises(ValueError, match="crop_points: must be an integer"):
        BottomUpRecipe(crop_points=value)


def test_color_reference_defaults_to_the_synthetic_rooms_and_is_checked():
    from pcseg.data import REFERENCE_COLOR
    from pcseg.pipelines.grid.recipe import GridRecipe

    assert BottomUpRecipe().color_reference == list(REFERENCE_COLOR) == GridRecipe().color_reference
    assert BottomUpRecipe(color_reference=[]).color_reference == []
    for bad in ([0.5, 0.5], [0.0, 0.5, 0.5], [0.5, 1.2, 0.5]):
        with pytest.raises(ValueError, match="color_reference: must be"):
            BottomUpRecipe(color_reference=bad)
