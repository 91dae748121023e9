"""The non-learned baseline: split each semantic class into spatially connected components (DBSCAN
on xyz with ``min_samples=1`` is exactly connected components of the eps-neighbourhood graph).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..labels import INSTANCE_IDS
from ..structures import InstanceSet


def _size_score(sizes: np.ndarray, scale: float = 1000.0) -> np.ndarray:
    """A monotone confidence for baselines without one: bigger segments are trusted more."""
    return (1.0 - np.exp(-np.asarray(sizes, np.float64) / scale)).astype(np.float32)


def dbscan_xyz(points: np.ndarray, semantic: np.ndarray, eps: float = 0.05, min_samples: int = 1,
               min_size: int = 50, classes: Sequence[int] = INSTANCE_IDS) -> InstanceSet:
    """Split every class in ``classes`` into DBSCAN clusters of its points' coordinates.

    points:   FloatArray[N, 3]
    semantic: IntArray[N] class per point (NYU40 ids by default ``classes``)
    eps:      neighbourhood radius in metres; with ``min_samples=1`` the clusters are the connected
              components of the graph joining points closer than eps
    min_size: clusters with fewer points are dropped
    Returns an InstanceSet with labels from ``semantic`` and a size-based score.
    """
    from sklearn.cluster import DBSCAN

    points = np.asarray(points, np.float32)
    semantic = np.asarray(semantic, np.int64)
    if points.ndim != 2 or points.shape[1] != 3 or semantic.shape != (points.shape[0],):
        raise ValueError(f"dbscan_xyz: expected points (N, 3) and semantic (N,), got {points.shape} and {semantic.shape}")
    n = points.shape[0]
    masks, labels = [], []
    for c in classes:
        idx = np.flatnonzero(semantic == c)
        if idx.size < max(min_size, 1):
            continue
        cluster = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(points[idx])
        ids, counts = np.unique(cluster[cluster >= 0], return_counts=True)
        for k in ids[counts >= min_size]:
            mask = np.zeros(n, bool)
            mask[idx[cluster == k]] = True
            masks.append(mask)
            labels.append(c)
    if not masks:
        return InstanceSet.empty(n)
    masks = np.stack(masks)
    return InstanceSet(masks, np.asarray(labels, np.int64), _size_score(masks.sum(1)))
