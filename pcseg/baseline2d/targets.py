"""Per-frame detection targets from the instance and label images, in the format torchvision's
detection models take: boxes XYXY, contiguous labels 1..18 (0 is the background), binary masks.

Only the 18 ScanNet instance benchmark classes become targets (docs/scannet-format.md §7); walls,
floors and every other NYU40 id are background.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..labels import INSTANCE_IDS, INSTANCE_NAMES

NUM_CLASSES = len(INSTANCE_IDS)  # 18; a torchvision model needs num_classes = NUM_CLASSES + 1
_TO_CONTIGUOUS = np.zeros(max(INSTANCE_IDS) + 1, np.int64)
_TO_CONTIGUOUS[list(INSTANCE_IDS)] = np.arange(1, NUM_CLASSES + 1)
CATEGORY_NAMES = dict(zip(range(1, NUM_CLASSES + 1), INSTANCE_NAMES))


def nyu40_to_contiguous(nyu40: np.ndarray) -> np.ndarray:
    """IntArray[...] NYU40 ids -> 1..18 for the benchmark classes, 0 for every other id."""
    nyu40 = np.asarray(nyu40, np.int64)
    ok = (nyu40 >= 0) & (nyu40 < len(_TO_CONTIGUOUS))
    return np.where(ok, _TO_CONTIGUOUS[np.clip(nyu40, 0, len(_TO_CONTIGUOUS) - 1)], 0)


def contiguous_to_nyu40(labels: np.ndarray) -> np.ndarray:
    """IntArray[...] 1..18 -> NYU40 ids (anything else -> 0)."""
    labels = np.asarray(labels, np.int64)
    table = np.asarray((0,) + tuple(INSTANCE_IDS), np.int64)
    ok = (labels >= 1) & (labels <= NUM_CLASSES)
    return np.where(ok, table[np.clip(labels, 0, NUM_CLASSES)], 0)


@dataclass
class FrameTargets:
    """The benchmark-class instances of one frame (K of them, in increasing instance id).

    boxes:        FloatArray[K, 4] x1, y1, x2, y2 in pixels, pixel-edge convention (x2 = last column + 1),
                  so a one-pixel mask has a 1 x 1 box, as COCO's bbox of the same mask
    labels:       IntArray[K] 1..18 (order of ``pcseg.labels.INSTANCE_IDS``)
    masks:        UInt8Array[K, H, W] 0/1
    instance_ids: IntArray[K] the scene's instance id of each (instance image value)
    """

    boxes: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    instance_ids: np.ndarray

    def __len__(self) -> int:
        return self.labels.shape[0]

    @property
    def nyu40(self) -> np.ndarray:
        """IntArray[K] NYU40 id of each instance."""
        return contiguous_to_nyu40(self.labels)

    def to_torch(self) -> dict:
        """The target dict torchvision's Mask R-CNN trains on (boxes float32, labels int64, masks uint8)."""
        import torch

        return {"boxes": torch.from_numpy(self.boxes.astype(np.float32)),
                "labels": torch.from_numpy(self.labels.astype(np.int64)),
                "masks": torch.from_numpy(self.masks.astype(np.uint8))}


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """BoolArray[K, H, W] (non-empty masks) -> FloatArray[K, 4] XYXY, x2/y2 = last column/row + 1."""
    k = masks.shape[0]
    boxes = np.zeros((k, 4), np.float32)
    rows, cols = masks.any(2), masks.any(1)
    for i in range(k):
        r, c = np.flatnonzero(rows[i]), np.flatnonzero(cols[i])
        boxes[i] = (c[0], r[0], c[-1] + 1, r[-1] + 1)
    return boxes


def frame_targets(label: np.ndarray, instance: np.ndarray, min_area: int = 1) -> FrameTargets:
    """Targets of one frame.

    label:    IntArray[H, W] NYU40 id per pixel (0 = none)
    instance: IntArray[H, W] instance id per pixel (0 = none)
    min_area: instances covering fewer pixels are left out (slivers at the image border)

    An instance's class is the majority label over its pixels (our frames and ScanNet's filtered
    exports have one label per instance; the vote only decides at anti-aliased borders).
    """
    label = np.asarray(label, np.int64)
    instance = np.asarray(instance, np.int64)
    if label.shape != instance.shape or label.ndim != 2:
        raise ValueError(f"frame_targets: label {label.shape} and instance {instance.shape} must be the same (H, W)")
    h, w = instance.shape
    flat = instance.ravel()
    on = np.flatnonzero(flat > 0)
    ids, inverse, area = np.unique(flat[on], return_inverse=True, return_counts=True)
    cls = np.zeros(len(ids), np.int64)
    if len(ids):
        lab = label.ravel()[on]
        # majority label per instance: count (instance, label) pairs, take the most frequent label
        pairs, counts = np.unique(inverse * (lab.max() + 1) + lab, return_counts=True)
        owner, value = pairs // (lab.max() + 1), pairs % (lab.max() + 1)
        best = np.zeros(len(ids), np.int64)
        np.maximum.at(best, owner, counts)
        win = counts == best[owner]
        cls[owner[win][::-1]] = value[win][::-1]  # ties: the smallest label (deterministic)
    contiguous = nyu40_to_contiguous(cls)
    keep = (contiguous > 0) & (area >= min_area)
    ids = ids[keep]
    masks = instance[None] == ids[:, None, None]
    return FrameTargets(masks_to_boxes(masks) if len(ids) else np.zeros((0, 4), np.float32),
                        contiguous[keep], masks.astype(np.uint8).reshape(len(ids), h, w), ids)
