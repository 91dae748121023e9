"""Tiled prediction of scans wider than a block: every point in one core, objects smaller than the
overlap found whole and once, classes from the core's block; the building-floor layout of rooms."""
import numpy as np
import pytest

from pcseg.engine.tiling import TileGrid, _drop_duplicates, needs_tiles, predict_tiled
from pcseg.structures import InstanceSet, Prediction, Scene
from pcseg.synth.floor import floor_of_rooms


def test_every_point_has_one_core_and_lies_in_that_block():
    xy = np.random.default_rng(0).random((5000, 2)) * [23.0, 9.0]
    grid = TileGrid.over(xy, size=6.0, overlap=2.0)
    assert grid.shape == (6, 3)
    cell = grid.cells(xy)
    blocks = dict(grid.blocks(xy, cell))
    for c, index in blocks.items():
        assert set(np.flatnonzero(cell == c)) <= set(index.tolist())
        i, j = divmod(c, grid.shape[1])
        lo = grid.origin + np.array([i, j]) * grid.stride - 1.0
        inside = xy[index]
        assert ((inside >= lo - 1e-9) | (cell[index] == c)[:, None]).all()
    assert sum((cell == c).sum() for c in blocks) == len(xy)
    with pytest.raises(ValueError, match="overlap < size"):
        TileGrid.over(xy, size=2.0, overlap=2.0)


def _blocks_by_definition(grid, xy, cell):
    """Each cell's block as its definition reads: the points within its widened bounds, and its core's."""
    out = []
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            lo = grid.origin + np.array([i, j]) * grid.stride - grid.overlap / 2
            inside = np.flatnonzero(((xy >= lo) & (xy < lo + grid.stride + grid.overlap)).all(1)
                                    | (cell == i * grid.shape[1] + j))
            if len(inside):
                out.append((i * grid.shape[1] + j, inside))
    return out


@pytest.mark.parametrize("size, overlap", [(6.0, 2.0), (10.0, 0.5), (4.0, 3.5)])
def test_blocks_are_the_points_within_each_cells_widened_bounds(size, overlap):
    rng = np.random.default_rng(int(size * 10))
    spread = rng.random((3000, 2)) * [23.0, 9.0]
    on_bounds = np.floor(spread[:300] / (size - overlap)) * (size - overlap) + overlap / 2  # exactly on a bound
    xy = np.concatenate([spread, on_bounds, spread[:200].astype(np.float32)])
    grid = TileGrid.over(xy, size, overlap)
    cell = grid.cells(xy)
    got, want = grid.blocks(xy, cell), _blocks_by_definition(grid, xy, cell)
    assert [c for c, _ in got] == [c for c, _ in want]
    for (_, a), (_, b) in zip(got, want):
        np.testing.assert_array_equal(a, b)


class ObjectsPredictor:
    """A stand-in for a trained model: instances are the objects whose id (>= 1) is written in the
    red channel x 100, scored 0.9, class 5; every point's class is its object's id. It records the
    block sizes it was given."""

    segment_snap, min_size, superpoints = 0.0, 1, False

    def __init__(self):
        self.sizes = []

    def network(self, scene, source):
        self.sizes.append(len(scene))
        return np.rint(scene.colors[:, 0] * 100).astype(np.int64)

    def finish(self, scene, ids):
        objects = [i for i in np.unique(ids) if i >= 1]
        masks = np.stack([ids == i for i in objects]) if objects else np.zeros((0, len(scene)), bool)
        return Prediction(InstanceSet(masks, np.full(len(objects), 5), np.full(len(objects), 0.9, np.float32)), ids,
                          {"network": 0.0})


def test_tiled_prediction_finds_each_small_object_once_and_whole():
    rng = np.random.default_rng(1)
    background = np.c_[rng.random((20000, 2)) * 30, np.zeros(20000)]
    objects, ids = [background], [np.zeros(20000, np.int64)]
    for k in range(1, 41):  # 40 boxes up to 1.5 m, anywhere, some across block borders
        centre, half = rng.random(2) * 28 + 1, rng.random(2) * 0.7 + 0.05
        pts = np.c_[centre + (rng.random((300, 2)) * 2 - 1) * half, rng.random(300)]
        objects.append(pts)
        ids.append(np.full(300, k))
    points, ids = np.concatenate(objects).astype(np.float32), np.concatenate(ids)
    colors = np.c_[ids / 100, np.zeros((len(ids), 2))].astype(np.float32)
    scene = Scene(points, colors, name="floor")
    assert needs_tiles(scene, 10.0) and not needs_tiles(scene, 40.0) and not needs_tiles(scene, 0.0)
    predictor = ObjectsPredictor()
    pred = predict_tiled(predictor, scene, size=8.0, overlap=3.0, progress=False)
    assert pred.timings["blocks"] == len(predictor.sizes) > 9 and max(predictor.sizes) < len(scene) / 4
    found = sorted(tuple(np.flatnonzero(m)) for m in pred.instances.masks)
    # overlapping boxes merge their ids' points only where ids collide: compare by id
    want = sorted(tuple(np.flatnonzero(ids == k)) for k in range(1, 41))
    assert found == want
    np.testing.assert_array_equal(pred.semantic, ids)  # classes from the block whose core holds the point


def test_duplicates_keep_the_higher_score():
    a, b, c = np.arange(0, 100), np.arange(5, 100), np.arange(200, 260)
    keep = _drop_duplicates([a, b, c], np.array([0.5, 0.8, 0.1]), 300)
    assert keep.tolist() == [1, 2]
    # copies come from different blocks: one block's own overlapping hypotheses all stay
    assert _drop_duplicates([a, b, c], np.array([0.5, 0.8, 0.1]), 300, np.array([4, 4, 4])).tolist() == [0, 1, 2]
    assert _drop_duplicates([a, b, c], np.array([0.5, 0.8, 0.1]), 300, np.array([3, 4, 4])).tolist() == [1, 2]


def test_floor_of_rooms_renumbers_and_aligns(tmp_path):
    rng = np.random.default_rng(2)

    def room(z0):
        pts = np.c_[rng.random((500, 2)) * 4, z0 + rng.random(500) * 2].astype(np.float32)
        return Scene(pts, np.full((500, 3), 0.5, np.float32), np.full(500, 5), rng.integers(1, 4, 500),
                     segments=rng.integers(100, 140, 500))

    rooms = [room(0.3), room(-0.2), room(0.0)]
    floor = floor_of_rooms(rooms, gap=1.0)
    assert len(floor) == 1500
    parts = np.split(np.arange(1500), [500, 1000])
    for r, idx in zip(rooms, parts):
        assert np.percentile(floor.points[idx, 2], 1) == pytest.approx(0.0, abs=1e-5)  # floors at z = 0
        # each room's instances and segments are its own
        assert len(np.unique(floor.instance[idx])) == len(np.unique(r.instance))
    assert len(np.unique(floor.instance)) == sum(len(np.unique(r.instance)) for r in rooms)
    assert len(np.unique(floor.segments)) == sum(len(np.unique(r.segments)) for r in rooms)
    spans = [floor.points[idx, :2] for idx in parts]
    assert spans[0][:, 0].max() + 1.0 <= spans[1][:, 0].min() + 1e-5  # side by side with the gap
