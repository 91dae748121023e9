"""Headless renders checked pixel by pixel: not blank, instance colours in the expected
proportions, camera presets, titles and legends."""
import numpy as np
import pytest

from pcseg.structures import Scene
from pcseg.synth import generate_scene
from pcseg.viz import (ERROR_LEGEND, VIEWS, colorize, draw_legend, instance_colors, render_image,
                       semantic_legend, side_by_side)
from pcseg.viz.legend import legend_for

SIZE = (320, 240)


def _count(image, rgb) -> int:
    """Pixels of colour ``rgb`` (0..1), allowing 1/255 for rounding of interpolated colours."""
    target = np.round(np.asarray(rgb) * 255).astype(int)
    return int(np.all(np.abs(image.astype(int) - target) <= 1, -1).sum())


def _plane_scene(mesh: bool) -> Scene:
    """Three flat rectangles on z = 0 of areas 1 : 1 : 2 (instances 1, 2, 3), each with its own
    vertices so no triangle mixes two instances."""
    points, faces, inst = [], [], []
    step = 0.05
    for k, (x0, x1) in enumerate([(0.0, 1.0), (1.0, 2.0), (2.0, 4.0)], start=1):
        if mesh:
            xs, ys = np.arange(x0, x1 + 1e-6, step), np.arange(0.0, 2.0 + 1e-6, step)
        else:  # point centres of a fine grid: one point per 1 cm^2 cell
            xs, ys = np.arange(x0 + 0.005, x1, 0.01), np.arange(0.005, 2.0, 0.01)
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        base = sum(len(p) for p in points)
        points.append(np.column_stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)]))
        inst.append(np.full(gx.size, k))
        if mesh:
            nx, ny = gx.shape
            i, j = np.meshgrid(np.arange(nx - 1), np.arange(ny - 1), indexing="ij")
            v = base + i * ny + j
            # counter-clockwise seen from above (+z): the front side faces a camera overhead
            faces += [np.column_stack([v.ravel(), (v + ny).ravel(), (v + ny + 1).ravel()]),
                      np.column_stack([v.ravel(), (v + ny + 1).ravel(), (v + 1).ravel()])]
    pts = np.concatenate(points)
    return Scene(pts, instance=np.concatenate(inst), semantic=np.full(len(pts), 5),
                 faces=np.concatenate(faces) if mesh else None)


@pytest.mark.parametrize("mesh", [True, False])
def test_instance_colours_cover_the_expected_shares(mesh):
    scene = _plane_scene(mesh)
    image = render_image(scene, colorize(scene, "instance"), SIZE, view="top", lit=False, point_size=2)
    counts = np.array([_count(image, c) for c in instance_colors(4)[1:]])
    background = np.all(image == 255, -1).sum()
    assert counts.sum() + background == SIZE[0] * SIZE[1]  # unlit: only exact instance colours
    assert counts.sum() > 0.2 * SIZE[0] * SIZE[1]
    # seen from straight above, pixel counts are proportional to the areas 1 : 1 : 2
    np.testing.assert_allclose(counts / counts.sum(), [0.25, 0.25, 0.5], atol=0.02)


@pytest.fixture(scope="module")
def room():
    return generate_scene(2, "scene0002_00").scene


def test_room_render_is_not_blank_and_shows_many_instances(room):
    image = render_image(room, colorize(room, "instance"), SIZE)
    assert image.shape == (240, 320, 3) and image.dtype == np.uint8
    assert (image != 255).any(-1).mean() > 0.25
    unlit = render_image(room, colorize(room, "instance"), SIZE, lit=False)
    ids = np.unique(room.instance[room.instance > 0])
    shown = [_count(unlit, instance_colors(ids.max() + 1)[i]) for i in ids]
    assert sum(n >= 20 for n in shown) >= 0.5 * len(ids)


def test_camera_presets(room):
    covered = {}
    for view in VIEWS:
        image = render_image(room, colorize(room, "semantic"), SIZE, view=view)
        rows, cols = np.nonzero((image != 255).any(-1))
        covered[view] = max((rows.max() - rows.min() + 1) / SIZE[1], (cols.max() - cols.min() + 1) / SIZE[0])
    assert covered["fitted"] > 0.9 and covered["fitted"] >= covered["oblique"] - 1e-9
    assert covered["top"] > 0.6
    with pytest.raises(ValueError, match="unknown view"):
        render_image(room, None, SIZE, view="side")


def test_point_cloud_renders(room):
    cloud = Scene(room.points, room.colors)
    image = render_image(cloud, size=SIZE)
    assert (image != 255).any(-1).mean() > 0.25


def test_side_by_side_titles_and_legend(room):
    a = render_image(room, colorize(room, "semantic"), SIZE)
    b = render_image(room, colorize(room, "instance"), (160, 120))
    joined = side_by_side([a, b], gap=8, titles=["ground truth", "prediction"])
    assert joined.shape[1] == 320 + 8 + 160 and joined.shape[0] > 240
    assert (joined[:joined.shape[0] - 240, :320] != 255).any()  # the title's text
    entries = semantic_legend(room)
    present = {n for n in np.unique(room.semantic) if n > 0}
    assert len(entries) == len(present)
    # a prediction's legend names the prediction's classes, not the GT's
    from pcseg.labels import NYU40_NAMES
    from pcseg.viz.view import PredictionFiles, semantic_shown

    predicted = np.full(len(room), 5)  # every point a chair
    predicted[:10] = 0
    alone = legend_for(room, "semantic", semantic_shown(room, PredictionFiles(semantic=predicted), False))
    assert [name for name, _ in alone] == [NYU40_NAMES[5]]
    both = legend_for(room, "semantic", semantic_shown(room, PredictionFiles(semantic=predicted), True))
    assert {name for name, _ in both} == {NYU40_NAMES[c] for c in present | {5}}
    with_legend = draw_legend(a, list(ERROR_LEGEND.items()))
    for color in ERROR_LEGEND.values():  # every swatch is drawn in its exact colour
        assert _count(with_legend, color) >= 16
