"""Snap instance masks (and per-point labels) to the scan's over-segmentation (ScanNet's ``segs.json``).

ScanNet's annotators labelled whole segments, so an object is a union of segments and a segment
never spans two objects (the synthetic rooms are built the same way). A clustered mask whose
boundary cuts through segments is therefore wrong there: each mask keeps a segment when it holds at
least ``min_cover`` of that segment's points, and loses the rest. Masks of different instances may
overlap before and after, as they may in a submission. Per-point labels likewise become each
segment's majority label.
"""
from __future__ import annotations

import numpy as np

from ..ids import dense_ids, members_of_rows
from ..structures import InstanceSet, MemberInstances, Scene


def _dense(segments: np.ndarray) -> np.ndarray:
    """Segment ids (any integers) -> 0..S-1 per point, in the order of the ids."""
    return dense_ids(segments)[1]


def _check_masks(instances: InstanceSet, segments: np.ndarray, min_cover: float) -> None:
    if not 0 < min_cover <= 1:
        raise ValueError(f"snap_to_segments: min_cover must be in (0, 1], got {min_cover}")
    n = instances.num_points  # not masks.shape: MemberInstances would build their K x N masks
    if segments.shape != (n,):
        raise ValueError(f"snap_to_segments: segments must have shape ({n},) for the scene's {n} points, "
                         f"got {segments.shape}")


def _check_labels(labels: np.ndarray, segments: np.ndarray) -> None:
    if labels.shape != segments.shape or labels.ndim != 1:
        raise ValueError(f"snap_labels_to_segments: labels {labels.shape} and segments {segments.shape} must be "
                         "two arrays of the same length")
    if labels.size and labels.min() < 0:
        raise ValueError("snap_labels_to_segments: labels must be >= 0")


def _snap_masks(instances: InstanceSet, seg: np.ndarray, min_cover: float, min_size: int) -> InstanceSet:
    if len(instances) == 0:
        return instances
    count = np.bincount(seg)
    # points of each mask per segment: one bincount over (mask, segment) pairs of the masks' points
    mask_of, point = instances.pairs()
    covered = np.bincount(mask_of * len(count) + seg[point], minlength=len(instances) * len(count))
    kept_segments = covered.reshape(len(instances), len(count)) >= min_cover * count
    keep = kept_segments @ count >= max(min_size, 1)  # points per snapped mask
    if isinstance(instances, MemberInstances):  # members in, members out: no K x N array
        return MemberInstances(members_of_rows(kept_segments[keep], seg), instances.labels[keep],
                               instances.scores[keep], len(seg))
    snapped = np.take(kept_segments[keep], seg, axis=1)
    return InstanceSet(snapped, instances.labels[keep], instances.scores[keep])


def _snap_labels(labels: np.ndarray, seg: np.ndarray) -> np.ndarray:
    if labels.size == 0:
        return labels.astype(np.int64)
    classes, label = dense_ids(labels)
    votes = np.bincount(seg * len(classes) + label, minlength=(seg.max() + 1) * len(classes))
    return classes[votes.reshape(-1, len(classes)).argmax(1)][seg].astype(np.int64)


def snap_to_segments(instances: InstanceSet, segments, min_cover: float = 0.5, min_size: int = 1) -> InstanceSet:
    """Each mask becomes the union of the segments it covers by at least ``min_cover`` (a fraction in
    (0, 1]); masks left with fewer than ``min_size`` points are dropped. Labels and scores are kept.

    segments: IntArray[N] segment id per point (any integers, as in segs.json's ``segIndices``)
    """
    segments = np.asarray(segments)
    _check_masks(instances, segments, min_cover)
    return _snap_masks(instances, _dense(segments), min_cover, min_size) if len(instances) else instances


def snap_labels_to_segments(labels, segments) -> np.ndarray:
    """Every point takes its segment's most frequent label (ties: the smallest label).

    labels:   IntArray[N] non-negative class ids
    segments: IntArray[N] segment id per point
    """
    labels, segments = np.asarray(labels), np.asarray(segments)
    _check_labels(labels, segments)
    return _snap_labels(labels, _dense(segments))


def snap_prediction(instances: InstanceSet, labels, segments, min_cover: float = 0.5,
                    min_size: int = 1) -> tuple[InstanceSet, np.ndarray]:
    """``snap_to_segments`` and ``snap_labels_to_segments`` of one scene's prediction, sharing the
    segment lookup (the per-point ``np.unique`` is most of their cost)."""
    labels, segments = np.asarray(labels), np.asarray(segments)
    _check_masks(instances, segments, min_cover)
    _check_labels(labels, segments)
    seg = _dense(segments)
    return _snap_masks(instances, seg, min_cover, min_size), _snap_labels(labels, seg)


def snap_to_scene_segments(instances: InstanceSet, scene: Scene, min_cover: float, min_size: int = 1) -> InstanceSet:
    """``snap_to_segments`` with the scene's segments; unchanged when ``min_cover`` is 0 (off) or the
    scene has no segments (a plain point cloud)."""
    if min_cover <= 0 or scene.segments is None:
        return instances
    return snap_to_segments(instances, scene.segments, min_cover, min_size)
