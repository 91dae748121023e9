"""RGB-D frames with instance masks overlaid (GT masks from ``read_frame(...).instance`` or the
2D baseline's predicted masks), and grids of several frames."""
from __future__ import annotations

import numpy as np

from .colors import instance_colors, semantic_colors


def _resize_ids(ids: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an id image (depth resolution -> colour resolution)."""
    if ids.shape == shape:
        return ids
    rows = (np.arange(shape[0]) * ids.shape[0] / shape[0]).astype(np.int64)
    cols = (np.arange(shape[1]) * ids.shape[1] / shape[1]).astype(np.int64)
    return ids[rows[:, None], cols[None, :]]


def mask_outlines(instance: np.ndarray) -> np.ndarray:
    """BoolArray[H, W]: the pixels of a mask (id > 0) with a 4-neighbour of another id: the
    outline lies inside each mask, so drawing it changes no pixel outside the masks."""
    ids = np.asarray(instance)
    edge = np.zeros(ids.shape, bool)
    diff_v = ids[1:] != ids[:-1]
    diff_h = ids[:, 1:] != ids[:, :-1]
    edge[1:] |= diff_v
    edge[:-1] |= diff_v
    edge[:, 1:] |= diff_h
    edge[:, :-1] |= diff_h
    return edge & (ids > 0)


def frame_overlay(color: np.ndarray, instance: np.ndarray, labels: np.ndarray | None = None,
                  alpha: float = 0.5, outline: bool = True) -> np.ndarray:
    """UInt8Array[H, W, 3]: ``color`` with its instance masks blended in and outlined.

    color:    UInt8Array[H, W, 3] the frame's colour image;
    instance: IntArray[h, w] instance id per pixel, 0 = none (resized nearest-neighbour to H x W
              when the depth resolution differs);
    labels:   optional IntArray[h, w] NYU40 class per pixel: masks then take their class's NYU40
              colour (outlines still separate instances); else each instance id its own colour,
              the same as ``colorize(..., 'instance')`` gives the scene's instance;
    alpha:    weight of the mask colour. Pixels outside every mask are left unchanged.
    """
    color = np.asarray(color)
    if color.dtype != np.uint8 or color.ndim != 3 or color.shape[2] != 3:
        raise ValueError(f"frame_overlay: color must be a uint8 (H, W, 3) image, got {color.dtype} {color.shape}")
    instance = np.asarray(instance)
    if instance.ndim != 2 or not np.issubdtype(instance.dtype, np.integer):
        raise ValueError(f"frame_overlay: instance must be an integer (H, W) image, got {instance.dtype} {instance.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"frame_overlay: alpha must lie in 0..1, got {alpha}")
    shape = color.shape[:2]
    ids = _resize_ids(instance.astype(np.int64), shape)
    mask = ids > 0
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != instance.shape:
            raise ValueError(f"frame_overlay: labels of shape {labels.shape} for instance ids of shape {instance.shape}")
        paint = semantic_colors(_resize_ids(labels.astype(np.int64), shape)[mask])
    else:
        paint = instance_colors(int(ids.max(initial=0)) + 1)[ids[mask]]
    out = color.astype(np.float32) / 255
    out[mask] = (1 - alpha) * out[mask] + alpha * paint
    if outline:
        edge = mask_outlines(ids)
        out[edge] = (paint * 0.55)[edge[mask]]  # darker, opaque: the masks' borders stay visible
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def frame_grid(images: list[np.ndarray], columns: int = 3, titles: list[str] | None = None,
               gap: int = 6) -> np.ndarray:
    """UInt8Array: ``images`` (UInt8Array[H_i, W_i, 3]) laid out in rows of ``columns``, each under
    its title when given; cells are padded with white to the largest image."""
    if not images:
        raise ValueError("frame_grid: no images")
    if columns < 1:
        raise ValueError(f"frame_grid: columns must be >= 1, got {columns}")
    if titles is not None:
        from .legend import titled

        if len(titles) != len(images):
            raise ValueError(f"frame_grid: {len(titles)} titles for {len(images)} images")
        images = [titled(im, t) for im, t in zip(images, titles)]
    h = max(im.shape[0] for im in images)
    w = max(im.shape[1] for im in images)
    rows = -(-len(images) // columns)
    grid = np.full((rows * h + (rows - 1) * gap, columns * w + (columns - 1) * gap, 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * (h + gap): r * (h + gap) + im.shape[0], c * (w + gap): c * (w + gap) + im.shape[1]] = im
    return grid
