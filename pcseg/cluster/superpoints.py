"""Superpoints for scans that come without ScanNet's ``segs.json``: a graph-based over-segmentation
(Felzenszwalb & Huttenlocher 2004, the method behind ScanNet's own segments) over the mesh edges when
the scan has faces and over a k-nearest-neighbour graph when it has none.

An edge costs the normal difference of its two points (``1 - n_a . n_b``, ``1 - |n_a . n_b|`` for the
unoriented normals of a bare cloud) plus, optionally, ``color_weight`` times their colour distance.
No kept library runs the algorithm on an arbitrary graph without compiling (scikit-image's works on
image grids, the ScanNet segmentator and its Python bindings are C++ to build), so it is written here,
vectorised: instead of one union-find pass over the sorted edges, rounds in Boruvka's manner, where
each segment looks at its cheapest outgoing edge and merges across it when the F-H predicate
``w <= min(Int(A) + k/|A|, Int(B) + k/|B|)`` holds (Int: the largest edge already merged inside);
the chains of merges of a round are joined as connected components. Segments under ``min_size``
points then join their cheapest neighbour, as ScanNet's segmentator does.
"""
from __future__ import annotations

import numpy as np

from ..io.upright import cloud_normals, unit_rows

# The defaults, chosen on tuning rooms (seed 2) by benchmarks/bench_superpoints.py.
THRESHOLD = 0.05
MIN_SIZE = 20
NEIGHBOURS = 8
COLOR_WEIGHT = 1.5
# what ``scene_superpoints`` (pcseg predict, pcseg data segment) uses
DEFAULTS = {"threshold": THRESHOLD, "min_size": MIN_SIZE, "neighbours": NEIGHBOURS, "color_weight": COLOR_WEIGHT}


def mesh_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The edges of a triangle mesh's faces (an edge shared by two faces appears twice: harmless to
    the segmentation, cheaper than removing)."""
    faces = np.asarray(faces, np.int64)
    a = faces.reshape(-1)
    b = faces[:, [1, 2, 0]].reshape(-1)
    keep = a != b
    return a[keep], b[keep]


def knn_edges(points: np.ndarray, neighbours: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """The edges (each once) joining every point to its ``neighbours`` nearest."""
    from scipy.spatial import cKDTree

    n = len(points)
    k = min(neighbours, n - 1)
    if k < 1:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    idx = cKDTree(points).query(points, k + 1, workers=-1)[1][:, 1:]
    idx = np.where(idx < n, idx, np.arange(n)[:, None]).astype(np.int32)  # cKDTree marks a missing neighbour n
    a, b = np.repeat(np.arange(n, dtype=np.int32), k), idx.reshape(-1)
    # an edge found from both ends is kept from its lower end only
    down = np.flatnonzero(a > b)
    found_back = (idx[b[down]] == a[down, None]).any(1)
    keep = a < b
    keep[down[~found_back]] = True
    return a[keep].astype(np.int64), b[keep].astype(np.int64)


def mesh_normals(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Per-vertex unit normals: the area-weighted sum of the adjacent faces' normals."""
    faces = np.asarray(faces, np.int64)
    p = points.astype(np.float64)
    face_normal = np.cross(p[faces[:, 1]] - p[faces[:, 0]], p[faces[:, 2]] - p[faces[:, 0]])  # length 2 x area
    normals = np.zeros_like(p)
    for corner in range(3):
        for axis in range(3):
            normals[:, axis] += np.bincount(faces[:, corner], face_normal[:, axis], len(p))
    return unit_rows(normals)


def felzenszwalb(num_nodes: int, a: np.ndarray, b: np.ndarray, weight: np.ndarray,
                 threshold: float, min_size: int = 1) -> np.ndarray:
    """Graph-based segmentation of ``num_nodes`` nodes joined by edges ``a[i] - b[i]`` of cost
    ``weight[i]``: IntArray[num_nodes] segment index 0..S-1 per node. ``threshold`` is F-H's k (larger:
    larger segments); segments under ``min_size`` nodes then join their cheapest neighbour."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if threshold < 0 or min_size < 1:
        raise ValueError(f"felzenszwalb: threshold must be >= 0 and min_size >= 1, got {threshold}, {min_size}")
    order = np.argsort(np.asarray(weight, np.float32))
    a, b, weight = np.asarray(a, np.int64)[order], np.asarray(b, np.int64)[order], np.asarray(weight, np.float32)[order]
    label = np.arange(num_nodes)
    size = np.ones(num_nodes)
    internal = np.zeros(num_nodes)

    def merge_rounds(predicate) -> None:
        nonlocal label, size, internal, a, b, weight
        while True:
            la, lb = label[a], label[b]
            crossing = la != lb
            a, b, weight, la, lb = a[crossing], b[crossing], weight[crossing], la[crossing], lb[crossing]
            if not len(a):
                return
            # each segment's cheapest outgoing edge: its first appearance in the weight-sorted edges
            ends = np.stack([la, lb], 1).reshape(-1)
            first = np.full(len(size), len(ends))
            np.minimum.at(first, ends, np.arange(len(ends)))
            segment = np.flatnonzero(first < len(ends))
            edge = first[segment] // 2
            other = np.where(la[edge] == segment, lb[edge], la[edge])
            w = weight[edge]
            merge = predicate(segment, other, w)
            if not merge.any():
                return
            count = len(size)
            links = coo_matrix((np.ones(int(merge.sum())), (segment[merge], other[merge])), shape=(count, count))
            _, joined = connected_components(links, directed=False)
            new_internal = np.zeros(joined.max() + 1)
            np.maximum.at(new_internal, joined, internal)
            np.maximum.at(new_internal, joined[segment[merge]], w[merge])
            size = np.bincount(joined, size)
            internal = new_internal
            label = joined[label]

    merge_rounds(lambda s, o, w: w <= np.minimum(internal[s] + threshold / size[s], internal[o] + threshold / size[o]))
    if min_size > 1:
        merge_rounds(lambda s, o, w: (size[s] < min_size) | (size[o] < min_size))
    return np.unique(label, return_inverse=True)[1].reshape(-1)


def superpoints(points: np.ndarray, colors: np.ndarray | None = None, faces: np.ndarray | None = None, *,
                threshold: float = THRESHOLD, min_size: int = MIN_SIZE, neighbours: int = NEIGHBOURS,
                color_weight: float = COLOR_WEIGHT) -> np.ndarray:
    """IntArray[N] superpoint index 0..S-1 per point of a scan (metres; colours in 0..1): F-H over the
    mesh edges when ``faces`` are given (and not empty), else over the ``neighbours`` nearest points."""
    points = np.asarray(points, np.float32)
    n = len(points)
    if n == 0:
        return np.zeros(0, np.int64)
    if faces is not None and len(faces):
        a, b = mesh_edges(faces)
        normals = mesh_normals(points, faces)
        weight = 1.0 - np.einsum("ij,ij->i", normals[a], normals[b])
    else:
        a, b = knn_edges(points, neighbours)
        normals = cloud_normals(points) if n >= 3 else np.zeros((n, 3))
        weight = 1.0 - np.abs(np.einsum("ij,ij->i", normals[a], normals[b]))
    if color_weight and colors is not None:
        colors = np.asarray(colors, np.float32)
        diff = colors[a] - colors[b]
        weight = weight + color_weight * np.sqrt(np.einsum("ij,ij->i", diff, diff) / 3.0)
    return felzenszwalb(n, a, b, np.maximum(weight, 0.0), threshold, min_size)


def worth_computing(scene) -> bool:
    """Whether snapping a ``structures.Scene`` to its superpoints can help: not for a bare cloud
    without colours (read as one grey), whose superpoints lean on kNN normals alone and join objects
    to what they stand on (on the tuning rooms that cost AP at every threshold tried)."""
    has_faces = scene.faces is not None and len(scene.faces) > 0
    return has_faces or bool((scene.colors.max(0) - scene.colors.min(0)).max() > 0)


def scene_superpoints(scene, **settings) -> np.ndarray:
    """``superpoints`` of a ``structures.Scene``: ``DEFAULTS`` unless ``settings`` say otherwise."""
    return superpoints(scene.points, scene.colors, scene.faces, **{**DEFAULTS, **settings})
