"""Instance masks on RGB-D frames: only the masked pixels change; grids lay frames out."""
import numpy as np
import pytest

from pcseg.synth import generate_scene
from pcseg.viz import frame_grid, frame_overlay, mask_outlines


def test_overlay_changes_exactly_the_masked_pixels():
    rng = np.random.default_rng(0)
    color = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    inst = np.zeros((60, 80), np.int64)
    inst[5:20, 10:30] = 3
    inst[30:55, 40:70] = 7
    out = frame_overlay(color, inst, alpha=0.6)
    changed = (out != color).any(-1)
    assert not changed[inst == 0].any()
    assert changed[inst > 0].mean() > 0.98  # a random pixel may by chance equal the blend
    edge = mask_outlines(inst)
    assert edge.sum() == 2 * (15 + 20) - 4 + 2 * (25 + 30) - 4  # the rectangles' borders, inside them
    assert (out[edge].astype(int).sum(-1) < out[(inst > 0) & ~edge].astype(int).sum(-1).mean()).mean() > 0.9


def test_overlay_on_a_synthetic_frame_with_labels_and_resize():
    frame = generate_scene(1, "scene0001_00", frames=1).frames[0]
    assert frame.instance is not None and frame.label is not None
    out = frame_overlay(frame.color, frame.instance, labels=frame.label)
    changed = (out != frame.color).any(-1)
    assert not changed[frame.instance == 0].any() and changed[frame.instance > 0].mean() > 0.9
    # instance ids at half resolution are scaled up nearest-neighbour to the colour image
    small = frame.instance[::2, ::2]
    up = frame_overlay(frame.color, small)
    assert up.shape == frame.color.shape
    with pytest.raises(ValueError, match="uint8"):
        frame_overlay(frame.color.astype(np.float32), frame.instance)


def test_frame_grid_layout():
    ims = [np.zeros((30, 40, 3), np.uint8) for _ in range(5)]
    grid = frame_grid(ims, columns=2, gap=4)
    assert grid.shape == (3 * 30 + 2 * 4, 2 * 40 + 4, 3)
    assert (grid[:30, :40] == 0).all() and (grid[:30, 40:44] == 255).all() and (grid[68:, 44:] == 255).all()
    assert frame_grid(ims, columns=3, titles=list("abcde")).shape[0] > 2 * 30
