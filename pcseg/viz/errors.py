"""The errors view: which ground-truth instances a prediction missed, split or merged, and which
predicted instances are false positives, painted over a grey scene.

Instances are those of the ScanNet instance benchmark (the 18 classes of ``pcseg.labels``): GT
instances are the scene's instance ids >= 1 whose majority NYU40 class is a benchmark class;
predictions with another class, and GT instances or predictions with fewer than ``MIN_REGION_SIZE``
points, are ignored as the evaluator ignores them.

* merged:         a prediction covering >= ``cover`` of each of >= 2 GT instances (its points,
                  and the GT instances it swallowed that no other prediction matches);
* matched:        a GT instance with a (non-merging) prediction of its class at IoU >= ``iou``
                  (and those predictions), drawn in a muted colour;
* split:          an unmatched GT instance of which >= 2 predictions each cover >= ``cover``;
* missed:         every other unmatched GT instance;
* false positive: every other unmatched prediction (drawn last, so it shows even on a missed GT).
"""
from __future__ import annotations

import numpy as np

from ..evaluation.instance import MIN_REGION_SIZE
from ..labels import INSTANCE_IDS
from ..structures import InstanceSet, Scene

BACKGROUND = (0.80, 0.80, 0.80)
# name -> RGB in 0..1, in drawing order (later categories are drawn over earlier ones)
ERROR_LEGEND: dict[str, tuple[float, float, float]] = {
    "matched": (0.56, 0.76, 0.60),
    "missed": (0.89, 0.10, 0.11),
    "split": (1.00, 0.60, 0.00),
    "merged": (0.58, 0.20, 0.80),
    "false positive": (0.10, 0.45, 0.95),
}


def _gt_columns(scene: Scene, min_points: int) -> tuple[np.ndarray, np.ndarray]:
    """(column IntArray[N]: each point's GT benchmark instance 0..G-1, G = none; gt_class IntArray[G]).
    GT instances smaller than ``min_points`` are left out, as the evaluator leaves them out."""
    if not scene.has_labels:
        raise ValueError(f"Scene({scene.name!r}): the errors view needs GT semantic and instance labels")
    ids = scene.instance
    valid = ids >= 1
    values, inverse = np.unique(ids[valid], return_inverse=True)
    # majority NYU40 class of each GT id, as InstanceSet.from_ids decides it
    counts = np.zeros((len(values), 41), np.int64)
    sem = np.clip(scene.semantic[valid], 0, 40)
    np.add.at(counts, (inverse, sem), 1)
    cls = counts.argmax(1)
    keep = np.isin(cls, INSTANCE_IDS) & (counts.sum(1) >= min_points)
    g = int(keep.sum())
    remap = np.where(keep, np.cumsum(keep) - 1, g)
    column = np.full(len(scene), g, np.int64)
    column[valid] = remap[inverse]
    return column, cls[keep]


def match_instances(scene: Scene, instances: InstanceSet, iou: float = 0.5, cover: float = 0.3,
                    min_points: int = MIN_REGION_SIZE) -> dict:
    """Classify GT and predicted instances (see the module docstring).

    Returns a dict: ``gt_column`` IntArray[N] (GT benchmark instance 0..G-1 per point, G = none),
    ``pred_index`` IntArray[P] (the rows of ``instances`` considered), ``gt_status`` list[G] and
    ``pred_status`` list[P] of category names, ``iou`` FloatArray[P, G].
    """
    if instances.num_points != len(scene):
        raise ValueError(f"Scene({scene.name!r}): prediction masks cover {instances.num_points} points "
                         f"but the scene has {len(scene)}")
    column, gt_class = _gt_columns(scene, min_points)
    g = len(gt_class)
    gt_size = np.bincount(column, minlength=g + 1)[:g]
    sizes = instances.sizes()
    pred_index = np.flatnonzero(np.isin(instances.labels, INSTANCE_IDS) & (sizes >= min_points))
    p = len(pred_index)
    inter = np.zeros((p, g), np.int64)
    for row, k in enumerate(pred_index):
        inter[row] = np.bincount(column[instances.point_indices(k)], minlength=g + 1)[:g]
    pred_size = sizes[pred_index]
    union = pred_size[:, None] + gt_size[None, :] - inter
    ious = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    same = instances.labels[pred_index][:, None] == gt_class[None, :]
    hit = (ious >= iou) & same
    covers = inter >= cover * np.maximum(gt_size[None, :], 1)  # prediction covers a good part of the GT

    # a prediction over >= 2 GT instances is a merge even when it also matches one of them at
    # IoU >= iou (the larger of two merged objects always has IoU >= 0.5 with their union)
    merging = covers.sum(1) >= 2
    hit &= ~merging[:, None]
    gt_matched, pred_matched = hit.any(0), hit.any(1)
    gt_status, pred_status = [], []
    for j in range(g):
        if gt_matched[j]:
            gt_status.append("matched")
        elif covers[:, j].sum() >= 2:
            gt_status.append("split")
        elif (covers[:, j] & merging).any():
            gt_status.append("merged")
        else:
            gt_status.append("missed")
    split_gt = np.array([s == "split" for s in gt_status], bool)
    for i in range(p):
        if merging[i]:
            pred_status.append("merged")
        elif pred_matched[i]:
            pred_status.append("matched")
        elif (covers[i] & split_gt).any():
            pred_status.append("split")
        else:
            pred_status.append("false positive")
    return {"gt_column": column, "pred_index": pred_index, "gt_status": gt_status,
            "pred_status": pred_status, "iou": ious}


def error_colors(scene: Scene, instances: InstanceSet, iou: float = 0.5, cover: float = 0.3,
                 min_points: int = MIN_REGION_SIZE) -> tuple[np.ndarray, dict]:
    """Colour the scene by the prediction's errors against its GT.

    scene: Scene with GT ``semantic`` and ``instance``; instances: InstanceSet over its N points.
    Returns (colors FloatArray[N, 3], summary) where summary holds the number of GT instances per
    category (``matched``, ``missed``, ``split``, ``merged_gt``), of predictions per category
    (``false_positive``, ``merged``, ``pred_matched``, ``pred_split``), the totals ``gt`` and
    ``predictions``, and ``points``: how many points got each ERROR_LEGEND colour.
    """
    m = match_instances(scene, instances, iou, cover, min_points)
    column = m["gt_column"]
    g = len(m["gt_status"])
    category = np.full(len(scene), -1, np.int64)  # index into ERROR_LEGEND, -1 = background
    names = list(ERROR_LEGEND)
    for rank, name in enumerate(names):  # drawing order: later categories overwrite earlier ones
        gt_cols = [j for j, s in enumerate(m["gt_status"]) if s == name]
        if gt_cols:
            category[np.isin(column, gt_cols) & (column < g)] = rank
        for row, s in enumerate(m["pred_status"]):
            # split parts are shown through their GT instance; a split prediction's other points stay as they are
            if s == name and name != "split":
                category[instances.point_indices(m["pred_index"][row])] = rank
    palette = np.array([BACKGROUND] + [ERROR_LEGEND[n] for n in names], np.float32)
    colors = palette[category + 1]
    gt_status, pred_status = m["gt_status"], m["pred_status"]
    summary = {
        "gt": g, "predictions": len(pred_status),
        "matched": gt_status.count("matched"), "missed": gt_status.count("missed"),
        "split": gt_status.count("split"), "merged_gt": gt_status.count("merged"),
        "pred_matched": pred_status.count("matched"), "merged": pred_status.count("merged"),
        "pred_split": pred_status.count("split"), "false_positive": pred_status.count("false positive"),
        "points": {name: int((category == rank).sum()) for rank, name in enumerate(names)},
    }
    return colors, summary
