import numpy as np

from pcseg.cluster import dbscan_xyz


def test_connected_components_split_touching_classes_but_not_far_ones():
    rng = np.random.default_rng(0)
    # two chairs 1 m apart, one table between them touching neither; 0.02 m point spacing
    grid = np.stack(np.meshgrid(np.arange(0, 0.4, 0.02), np.arange(0, 0.4, 0.02), [0.0]), -1).reshape(-1, 3)
    chair_a, chair_b, table = grid, grid + [1.0, 0, 0], grid + [0.5, 0.6, 0]
    points = np.concatenate([chair_a, chair_b, table]) + rng.normal(0, 0.001, (3 * len(grid), 3))
    semantic = np.r_[[5] * (2 * len(grid)), [7] * len(grid)]
    inst = dbscan_xyz(points, semantic, eps=0.05, min_size=10)
    assert sorted(inst.labels.tolist()) == [5, 5, 7]
    assert sorted(inst.sizes().tolist()) == [len(grid)] * 3
    assert not np.any(inst.masks.sum(0) > 1)
    chair_masks = inst.masks[inst.labels == 5]
    assert {tuple(np.flatnonzero(m)[[0, -1]]) for m in chair_masks} == {(0, len(grid) - 1), (len(grid), 2 * len(grid) - 1)}


def test_small_clusters_dropped_and_empty_result():
    points = np.array([[0, 0, 0], [5, 5, 5]], np.float32)
    inst = dbscan_xyz(points, np.array([5, 5]), min_size=2)
    assert len(inst) == 0 and inst.num_points == 2
