"""Superpoints (graph-based over-segmentation) for scans without segs.json: the segmentation's
limits checked against exact references (connected components), the edges and normals against hand
values, and scans of known surfaces split where a user would split them."""
import json

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pcseg.cli import main
from pcseg.cluster.superpoints import felzenszwalb, knn_edges, mesh_edges, mesh_normals, superpoints
from pcseg.io.plain import write_point_cloud
from pcseg.io.scannet import read_segments
from pcseg.structures import Scene


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Two labellings split the nodes the same way (labels may differ)."""
    pairs = np.unique(np.stack([a, b], 1), axis=0)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)[1]


def random_graph(seed: int, n: int = 300, m: int = 700):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, n, m), rng.integers(0, n, m)
    keep = a != b
    weight = rng.choice([0.0, 0.3, 0.7], keep.sum())  # ties and zeros on purpose
    return n, a[keep], b[keep], weight


@pytest.mark.parametrize("seed", range(5))
def test_threshold_limits_are_connected_components(seed):
    n, a, b, weight = random_graph(seed)
    # k = 0: only free edges join (w <= Int + 0 holds for w = 0 only while Int = 0)
    zero = weight == 0
    assert same_partition(felzenszwalb(n, a, b, weight, 0.0), components(n, a[zero], b[zero]))
    # a huge k: every edge joins, the segments are the graph's connected components
    assert same_partition(felzenszwalb(n, a, b, weight, 1e9), components(n, a, b))


@pytest.mark.parametrize("seed", range(3))
def test_min_size_merges_small_segments_within_their_component(seed):
    n, a, b, weight = random_graph(seed, n=200, m=600)
    labels = felzenszwalb(n, a, b, weight, 0.0, min_size=10)
    comp = components(n, a, b)
    sizes = np.bincount(labels)
    for s in np.unique(labels):  # a segment under 10 only where its whole component is smaller
        members = labels == s
        assert len(np.unique(comp[members])) == 1
        assert sizes[s] >= 10 or members.sum() == (comp == comp[members][0]).sum()
    assert labels.min() == 0 and labels.max() == len(sizes) - 1  # dense ids


def test_two_groups_joined_by_an_expensive_edge_stay_apart():
    # nodes 0-4 and 5-9 are chains of cheap edges; one expensive edge joins them
    a = np.array([0, 1, 2, 3, 5, 6, 7, 8, 4])
    b = np.array([1, 2, 3, 4, 6, 7, 8, 9, 5])
    w = np.array([0.01] * 8 + [0.9])
    labels = felzenszwalb(10, a, b, w, threshold=0.1)
    assert same_partition(labels, np.repeat([0, 1], 5))
    assert len(np.unique(felzenszwalb(10, a, b, w, threshold=10.0))) == 1


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="threshold must be >= 0"):
        felzenszwalb(3, np.array([0]), np.array([1]), np.array([0.1]), -1.0)
    with pytest.raises(ValueError, match="min_size"):
        felzenszwalb(3, np.array([0]), np.array([1]), np.array([0.1]), 0.1, min_size=0)


def test_mesh_edges_and_normals_of_a_square():
    points = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    a, b = mesh_edges(faces)
    assert {tuple(sorted(e)) for e in zip(a.tolist(), b.tolist())} == {(0, 1), (1, 2), (0, 2), (2, 3), (0, 3)}
    np.testing.assert_allclose(mesh_normals(points, faces), np.tile([0, 0, 1], (4, 1)), atol=1e-6)


def test_knn_edges_join_each_point_to_its_nearest():
    points = np.array([[0, 0, 0], [0.1, 0, 0], [5, 0, 0], [5.1, 0, 0]], np.float32)
    a, b = knn_edges(points, 1)
    assert {tuple(sorted(e)) for e in zip(a.tolist(), b.tolist())} == {(0, 1), (2, 3)}
    assert len(knn_edges(points[:1], 8)[0]) == 0  # one point: no edges


def box_on_floor(spacing: float = 0.03, seed: int = 0):
    """Points on a 2 x 2 m floor and on the top and sides of a 0.5 m box standing on it, plus two
    coplanar 0.6 m floor tiles of different colours: (points, colours, part id)."""
    rng = np.random.default_rng(seed)
    g = np.arange(0, 2, spacing)
    floor = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    under = (np.abs(floor - 1.0) < 0.25).all(1)
    floor = floor[~under]
    tile = (floor[:, 0] < 0.6) & (floor[:, 1] < 0.6)
    parts, pts, cols = [], [], []
    pts.append(np.c_[floor, np.zeros(len(floor))])
    cols.append(np.where(tile[:, None], [0.8, 0.2, 0.2], [0.5, 0.5, 0.5]))
    parts.append(np.where(tile, 1, 0))
    s = np.arange(0.75, 1.25, spacing)
    top = np.stack(np.meshgrid(s, s), -1).reshape(-1, 2)
    pts.append(np.c_[top, np.full(len(top), 0.5)])
    h = np.arange(spacing, 0.5, spacing)
    side = np.stack(np.meshgrid(s, h), -1).reshape(-1, 2)
    for x in (0.75, 1.25 - spacing):  # two opposite sides
        pts.append(np.c_[np.full(len(side), x), side])
    for y in (0.75, 1.25 - spacing):
        pts.append(np.c_[side[:, 0], np.full(len(side), y), side[:, 1]])
    for i in range(5):
        cols.append(np.full((len(pts[i + 1]), 3), 0.3))
        parts.append(np.full(len(pts[i + 1]), 2))
    points = np.concatenate(pts).astype(np.float32) + rng.normal(0, 0.002, (sum(map(len, pts)), 3)).astype(np.float32)
    return points, np.concatenate(cols).astype(np.float32), np.concatenate(parts)


def test_superpoints_of_a_cloud_keep_floor_box_and_tile_apart():
    points, colors, part = box_on_floor()
    sp = superpoints(points, colors)
    # no superpoint spans two parts, except a few points at the creases where normals are mixed
    majority = np.zeros(sp.max() + 1, np.int64)
    for s in range(sp.max() + 1):
        majority[s] = np.bincount(part[sp == s]).argmax()
    assert (majority[sp] == part).mean() > 0.97
    assert len(np.unique(sp)) < len(points) / 20  # and it is not one point per superpoint
    # without the colour term the tile is floor: only geometry is left to tell them apart
    grey = superpoints(points, colors, color_weight=0.0)
    tile = part == 1
    assert np.bincount(grey[tile]).max() < np.isin(grey, grey[tile]).sum()


def test_superpoints_of_an_empty_or_tiny_scan():
    assert superpoints(np.zeros((0, 3), np.float32)).shape == (0,)
    np.testing.assert_array_equal(superpoints(np.zeros((1, 3), np.float32)), [0])
    assert superpoints(np.random.default_rng(0).random((5, 3)).astype(np.float32), min_size=20).max() == 0


def test_cli_writes_a_segs_json_that_reads_back(tmp_path, capsys):
    points, colors, part = box_on_floor()
    cloud = tmp_path / "room.ply"
    write_point_cloud(Scene(points, colors), cloud)
    out = tmp_path / "room.segs.json"
    assert main(["-q", "data", "segment", str(cloud), "--out", str(out), "--threshold", "0.05"]) == 0
    assert "superpoints over 8 nearest neighbours" in capsys.readouterr().out
    seg = read_segments(out, len(points))
    np.testing.assert_array_equal(seg, superpoints(points, colors))
    data = json.loads(out.read_text())
    assert data["sceneId"] == "room" and data["params"]["threshold"] == "0.05"
    with pytest.raises(SystemExit):
        main(["-q", "data", "segment", str(cloud), "--out", str(out), "--threshold", "-1"])
    assert main(["-q", "data", "segment", str(tmp_path / "missing.ply"), "--out", str(tmp_path / "x.json")]) != 0
    assert not (tmp_path / "x.json").exists()
