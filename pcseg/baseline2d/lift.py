"""Lifting per-frame 2D instance masks onto the scene's vertices through a frame's Projection."""
from __future__ import annotations

import numpy as np

from .project import Projection


def lift_masks(projection: Projection, masks: np.ndarray) -> list[np.ndarray]:
    """Vertex indices of each mask: the visible vertices whose pixel lies in the mask.

    masks: BoolArray[K, H, W] on the frame's depth grid (the projection's shape).
    Returns K IntArray[m_k] (increasing vertex indices).
    """
    masks = np.asarray(masks)
    if masks.ndim != 3 or tuple(masks.shape[1:]) != tuple(projection.shape):
        raise ValueError(f"lift_masks: masks of shape {masks.shape} for a depth grid of {projection.shape}")
    if masks.shape[0] == 0 or len(projection) == 0:
        return [np.zeros(0, np.int64) for _ in range(masks.shape[0])]
    # one gather for all masks of the frame: (K, M) membership of the visible vertices
    hit = masks.reshape(masks.shape[0], -1)[:, projection.pixel].astype(bool, copy=False)
    return [projection.vertex[row] for row in hit]
