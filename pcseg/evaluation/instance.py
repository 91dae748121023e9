"""ScanNet v2 3D instance evaluation: AP over IoU 0.50:0.05:0.90, AP50, AP25 (docs/scannet-format.md §10).

Reproduces the official ``evaluate_semantic_instance.py`` exactly (strict IoU > t, 100-vertex
minimum, void handling, duplicates, greedy matching per GT in ascending GT id order with
predictions in file order, AP with the convolve trick, NaN for classes without GT, nanmean) but
fast: ``process`` reduces a scene to small arrays (sizes and pred x GT intersection counts from
bit-packed masks, one bincount per mask), and ``evaluate`` matches all scenes at once on those.

The one deliberate difference: where the official script crashes (a class with GT and predictions
but no TP/FP entry at some threshold, caveat C2) the AP is 0 and a warning says so.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..errors import DataError
from ..io.official import encode_gt_ids
from ..labels import INSTANCE_IDS, INSTANCE_NAMES
from ..structures import InstanceSet, MemberInstances, Scene

OVERLAPS = np.append(np.arange(0.5, 0.95, 0.05), 0.25)  # 0.50..0.90 then 0.25, float noise included
MIN_REGION_SIZE = 100
_CLASS_IDS = np.asarray(INSTANCE_IDS, np.int64)
_CLASS_INDEX = np.full(41, -1, np.int64)  # nyu40 id -> 0..17, -1 = not an instance class
_CLASS_INDEX[_CLASS_IDS] = np.arange(len(INSTANCE_IDS))


def _class_index(nyu40: np.ndarray) -> np.ndarray:
    """IntArray -> 0..17 instance-class index, -1 for every other id (any integer allowed)."""
    nyu40 = np.asarray(nyu40, np.int64)
    ok = (nyu40 >= 0) & (nyu40 <= 40)
    return np.where(ok, _CLASS_INDEX[np.where(ok, nyu40, 0)], -1)


@dataclass
class _SceneSummary:
    """What the matching needs from one scene; everything small.

    gt_class, gt_size:  IntArray[G] per GT instance of a benchmark class, ascending GT id order
    pred_class, pred_size, pred_score, pred_void: [P] per surviving prediction, file order
    pair_pred, pair_gt, pair_inter: [M] same-class (pred, GT) pairs with intersection > 0,
    sorted by GT then prediction
    """

    gt_class: np.ndarray
    gt_size: np.ndarray
    pred_class: np.ndarray
    pred_size: np.ndarray
    pred_score: np.ndarray
    pred_void: np.ndarray
    pair_pred: np.ndarray
    pair_gt: np.ndarray
    pair_inter: np.ndarray


def _gt_instances(gt_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Official GT ids IntArray[N] -> (gt_class IntArray[G], gt_size IntArray[G], column IntArray[N]).

    The GT instances are the distinct non-zero ids whose ``id // 1000`` is an instance class, in
    ascending id order; ``column`` is each vertex's instance 0..G-1, or G for void. Uses a bincount
    when the ids are small (always, for nyu40 * 1000 + i): much faster than sorting.
    """
    small = gt_ids.size and gt_ids.min() >= 0 and gt_ids.max() < (1 << 20)
    if small:
        all_counts = np.bincount(gt_ids)
        values = np.flatnonzero(all_counts)
        counts = all_counts[values]
    else:
        values, inverse, counts = np.unique(gt_ids, return_inverse=True, return_counts=True)
    value_class = _class_index(values // 1000)  # floor division, as the official gt // 1000
    is_gt = (values != 0) & (value_class >= 0)
    g = int(is_gt.sum())
    value_column = np.where(is_gt, np.cumsum(is_gt) - 1, g)
    if small:
        lookup = np.full(all_counts.shape[0], g, np.int64)
        lookup[values] = value_column
        column = lookup[gt_ids]
    else:
        column = value_column[inverse.reshape(gt_ids.shape)]
    return value_class[is_gt], counts[is_gt], column


def _intersections(masks: np.ndarray | MemberInstances, column: np.ndarray, num_columns: int) -> np.ndarray:
    """IntArray[K, C]: number of points of each predicted instance in each column class (``column``:
    IntArray[N] in 0..C-1). Dense masks (BoolArray[K, N]) are bit-packed at once (8 vertices per
    byte); per row only the non-zero bytes are unpacked again, so each row's arrays are small (masks
    are sparse). ``MemberInstances`` are counted from their point lists: no K x N array is built."""
    column = column.astype(np.int32)  # smaller: the gathers below stay in cache
    out = np.empty((len(masks), num_columns), np.int64)
    if isinstance(masks, MemberInstances):
        for k, members in enumerate(masks.members):
            out[k] = np.bincount(column[members], minlength=num_columns)
        return out
    packed = np.packbits(masks, axis=1)  # bit 7 of byte j = vertex 8j
    for k in range(masks.shape[0]):
        row = packed[k]
        nonzero = np.flatnonzero(row != 0)  # numpy's nonzero is several times faster on bool
        hits = np.flatnonzero(np.unpackbits(row[nonzero]).view(bool))  # 0/1 bytes: a valid bool view
        out[k] = np.bincount(column[nonzero[hits >> 3] * 8 + (hits & 7)], minlength=num_columns)
    return out


def summarize_scene(gt_ids: np.ndarray, masks: np.ndarray | MemberInstances | None, labels: np.ndarray | None,
                    scores: np.ndarray | None, name: str | None = None) -> _SceneSummary:
    """Reduce one scene to a ``_SceneSummary``.

    gt_ids: IntArray[N] official GT ids (nyu40 * 1000 + instance); masks: BoolArray[K, N] (or
    non-zero = inside), or a ``MemberInstances`` (each instance's points, as a building floor's
    prediction is kept: its K x N masks are never built); labels: IntArray[K] nyu40 ids; scores:
    FloatArray[K]. masks None = no prediction for the scene (every GT missed).
    """
    gt_ids = np.asarray(gt_ids, np.int64).reshape(-1)
    n = gt_ids.shape[0]
    gt_class, gt_size, column = _gt_instances(gt_ids)
    g = gt_class.shape[0]

    if masks is None or len(masks) == 0:
        empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float64)
        return _SceneSummary(gt_class, gt_size, empty_i, empty_i, empty_f, empty_i, empty_i, empty_i, empty_i)
    if isinstance(masks, MemberInstances):
        if masks.num_points != n:
            raise DataError(name, "prediction masks", f"instances over {masks.num_points} points for a scene "
                            f"of {n} GT vertices")
    else:
        masks = np.asarray(masks)
        if masks.ndim != 2 or masks.shape[1] != n:
            raise DataError(name, "prediction masks", f"masks of shape {masks.shape} for a scene of {n} GT vertices")
        if masks.dtype != bool:
            masks = masks != 0
    k = len(masks)
    labels = np.asarray(labels, np.int64).reshape(k)
    scores = np.asarray(scores, np.float64).reshape(k)
    pred_class = _class_index(labels)
    inter = _intersections(masks, column, g + 1)
    sizes = inter.sum(1)
    keep = np.flatnonzero((pred_class >= 0) & (sizes >= MIN_REGION_SIZE))
    inter, pred_class = inter[keep], pred_class[keep]
    same = (inter[:, :g] > 0) & (pred_class[:, None] == gt_class[None, :])
    pair_gt, pair_pred = np.nonzero(same.T)  # sorted by GT, then prediction order
    return _SceneSummary(gt_class, gt_size, pred_class, sizes[keep], scores[keep], inter[:, g],
                         pair_pred, pair_gt, inter[pair_pred, pair_gt])


def _greedy(pair_gt: np.ndarray, pair_pred: np.ndarray, scores: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Official greedy matching on candidate pairs (IoU > t, GT big enough), sorted by GT then pred.

    Returns (tp_gt, tp_score, dup_gt, dup_score): the matched GTs with their scores, and one FP per
    duplicate. A GT's first unused candidate is its match and becomes used; later candidates are
    duplicates (not used): the GT keeps the max score and the min goes to an FP, so the TP score
    is the max of its candidates and the FP scores are the others.
    """
    if pair_pred.shape[0] == 0:
        empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0)
        return empty_i, empty_f, empty_i, empty_f
    if np.unique(pair_pred).shape[0] == pair_pred.shape[0]:
        # no prediction is a candidate of two GTs (always so for t >= 0.5): nothing is ever skipped
        starts = np.flatnonzero(np.r_[True, pair_gt[1:] != pair_gt[:-1]])
        group = np.cumsum(np.r_[False, pair_gt[1:] != pair_gt[:-1]])
        s = scores[pair_pred]
        tp = np.maximum.reduceat(s, starts)
        at_max = np.flatnonzero(s == tp[group])
        _, first = np.unique(group[at_max], return_index=True)  # one TP per GT, the rest are FPs
        fp = np.ones(s.shape[0], bool)
        fp[at_max[first]] = False
        return pair_gt[starts], tp, pair_gt[fp], s[fp]
    used: set[int] = set()
    tp_scores: dict[int, float] = {}
    dup_gt: list[int] = []
    dup_score: list[float] = []
    for gt, pred in zip(pair_gt.tolist(), pair_pred.tolist()):
        if pred in used:
            continue
        conf = float(scores[pred])
        if gt in tp_scores:
            dup_gt.append(gt)
            dup_score.append(min(tp_scores[gt], conf))
            tp_scores[gt] = max(tp_scores[gt], conf)
        else:
            tp_scores[gt] = conf
            used.add(pred)
    return (np.fromiter(tp_scores.keys(), np.int64, len(tp_scores)),
            np.fromiter(tp_scores.values(), np.float64, len(tp_scores)),
            np.asarray(dup_gt, np.int64), np.asarray(dup_score, np.float64))


def precision_recall(y_true: np.ndarray, y_score: np.ndarray, hard_fn: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The official precision-recall points of one class at one IoU threshold.

    y_true: FloatArray[E] 1 = TP, 0 = FP (duplicates included); y_score: FloatArray[E] their scores;
    hard_fn: GT instances never matched. Returns (precision FloatArray[K+1], recall FloatArray[K+1],
    scores FloatArray[K]): one point per unique score s_k, ascending (point k counts every entry
    scored >= s_k), then the artificial point (recall 0, precision 1) that has no score.
    """
    order = np.argsort(y_score)
    y_score, y_true = y_score[order], y_true[order]
    cum = np.cumsum(y_true)
    _, first = np.unique(y_score, return_index=True)
    total, n = cum[-1], y_score.shape[0]
    below = np.append(cum, 0)[first - 1]  # TPs strictly below each unique score
    tp = total - below
    fp = n - first - tp
    fn = below + hard_fn
    return np.append(tp / (tp + fp), 1.0), np.append(tp / (tp + fn), 0.0), y_score[first]


def area_under_curve(precision: np.ndarray, recall: np.ndarray) -> float:
    """The official AP of ``precision_recall`` points: sum_i p_i * (r_{i-1} - r_{i+1}) / 2 with
    r_{-1} = r_0 and r_{K+1} = 0 (the convolve trick; precision is not interpolated)."""
    widths = np.convolve(np.concatenate([recall[:1], recall, [0.0]]), [-0.5, 0, 0.5], "valid")
    return float(np.dot(precision, widths))


def average_precision(y_true: np.ndarray, y_score: np.ndarray, hard_fn: int) -> float:
    """The official AP: unique-score PR points, the artificial (r=0, p=1) point, convolve trick."""
    precision, recall, _ = precision_recall(y_true, y_score, hard_fn)
    return area_under_curve(precision, recall)


@dataclass
class PRCurve:
    """Precision-recall curve of one class at one IoU threshold, as the official AP sees it.

    precision, recall: FloatArray[K+1] (see ``precision_recall``; K = 0 when the class has no
    prediction left to rank: the curve is the artificial point alone and AP is 0);
    scores: FloatArray[K]; ap: the class AP at this threshold (``area_under_curve`` of the points);
    num_gt: GT instances of >= 100 vertices; num_tp, num_fp: ranked entries (duplicates are FPs).
    """

    iou: float
    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray
    ap: float
    num_gt: int
    num_tp: int
    num_fp: int

    def to_dict(self) -> dict:
        """JSON-ready: arrays as lists."""
        return {"iou": self.iou, "precision": self.precision.tolist(), "recall": self.recall.tolist(),
                "scores": self.scores.tolist(), "ap": self.ap, "num_gt": self.num_gt,
                "num_tp": self.num_tp, "num_fp": self.num_fp}


class InstanceEvaluator:
    """detectron2-style evaluator: ``reset()``, ``process(gt, prediction)`` per scene, ``evaluate()``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._scenes: list[_SceneSummary] = []
        self._names: list[str] = []

    def __len__(self) -> int:
        return len(self._scenes)

    def process(self, gt: Scene | np.ndarray, prediction: InstanceSet | None, name: str | None = None) -> None:
        """Add one scene.

        gt: a labelled ``Scene`` (semantic NYU40 + instance ids) or IntArray[N] official GT ids.
        prediction: InstanceSet over the same N points (labels = NYU40 ids, scores), or None for
        a scene with no prediction at all (its GT instances count as missed).
        """
        if isinstance(gt, Scene):
            if not gt.has_labels:
                raise ValueError(f"Scene({gt.name!r}) has no semantic/instance labels to evaluate against")
            name = name or gt.name
            gt = encode_gt_ids(gt.semantic, gt.instance)
        if prediction is None:
            self.process_arrays(gt, None, None, None, name)
        else:
            masks = prediction if isinstance(prediction, MemberInstances) else prediction.masks
            self.process_arrays(gt, masks, prediction.labels, prediction.scores, name)

    def process_arrays(self, gt_ids: np.ndarray, masks: np.ndarray | MemberInstances | None, labels: np.ndarray | None,
                       scores: np.ndarray | None, name: str | None = None) -> None:
        """Add one scene from arrays (see ``summarize_scene``); scores may be float64 as read from files."""
        self._scenes.append(summarize_scene(gt_ids, masks, labels, scores, name))
        self._names.append(name if name is not None else f"scene {len(self._scenes) - 1}")

    def _pooled(self) -> _SceneSummary:
        """All scenes in one summary: GT and prediction indices offset per scene. Pairs stay sorted by
        (scene, GT, prediction), so the greedy matching sees them in the official order."""
        scenes = self._scenes
        gt_off = np.cumsum([0] + [s.gt_class.shape[0] for s in scenes])
        pred_off = np.cumsum([0] + [s.pred_class.shape[0] for s in scenes])

        def cat(field, offsets=None):
            parts = [getattr(s, field) + (0 if offsets is None else offsets[i]) for i, s in enumerate(scenes)]
            return np.concatenate(parts) if parts else np.zeros(0, np.float64 if field == "pred_score" else np.int64)

        return _SceneSummary(cat("gt_class"), cat("gt_size"), cat("pred_class"), cat("pred_size"),
                             cat("pred_score"), cat("pred_void"), cat("pair_pred", pred_off),
                             cat("pair_gt", gt_off), cat("pair_inter"))

    def _curves(self, overlap_indices) -> Iterator[tuple[int, int, PRCurve | None]]:
        """(class index, overlap index, curve or None for a class without GT) for the given indices
        of OVERLAPS, pooled over all scenes: the official matching, done once per threshold."""
        s = self._pooled()
        num_classes = len(INSTANCE_IDS)
        big = s.gt_size >= MIN_REGION_SIZE
        gt_size, pred_size = s.gt_size[s.pair_gt], s.pred_size[s.pair_pred]
        iou = s.pair_inter / (gt_size + pred_size - s.pair_inter)
        # what an unmatched prediction may lie on without being an FP: void and too-small same-class GT
        small = ~big[s.pair_gt]
        ignored = s.pred_void + np.bincount(s.pair_pred[small], s.pair_inter[small], s.pred_class.shape[0])
        has_gt = np.bincount(s.gt_class[big], minlength=num_classes) > 0
        has_pred = np.bincount(s.pred_class, minlength=num_classes) > 0
        num_gt = np.bincount(s.gt_class[big], minlength=num_classes)
        for o in overlap_indices:
            t = OVERLAPS[o]
            over = iou > t
            cand = over & big[s.pair_gt]
            tp_gt, tp_score, dup_gt, dup_score = _greedy(s.pair_gt[cand], s.pair_pred[cand], s.pred_score)
            hit = np.zeros(s.pred_class.shape[0], bool)
            hit[s.pair_pred[over]] = True  # above t with some same-class GT, of any size
            fp = np.flatnonzero(~hit & (ignored / s.pred_size <= t))
            tp_class, dup_class, fp_class = s.gt_class[tp_gt], s.gt_class[dup_gt], s.pred_class[fp]
            fp_score = s.pred_score[fp]
            for c in range(num_classes):
                yield c, o, self._class_curve(c, float(t), has_gt[c], has_pred[c], tp_score[tp_class == c],
                                              np.r_[dup_score[dup_class == c], fp_score[fp_class == c]],
                                              int(num_gt[c]))

    def ap_table(self) -> np.ndarray:
        """FloatArray[18, 10]: AP per class (INSTANCE_NAMES order) and threshold (OVERLAPS order)."""
        aps = np.zeros((len(INSTANCE_IDS), len(OVERLAPS)))
        for c, o, curve in self._curves(range(len(OVERLAPS))):
            aps[c, o] = math.nan if curve is None else curve.ap
        return aps

    def pr_curves(self, iou: float = 0.5) -> dict[str, PRCurve | None]:
        """Per benchmark class (INSTANCE_NAMES order), the precision-recall curve at IoU threshold
        ``iou`` (one of OVERLAPS: 0.25, 0.5, 0.55, ..., 0.9), pooled over all processed scenes, from
        the same matching and score ranking as ``ap_table``: ``curve.ap`` is the class AP at ``iou``.
        None for a class without GT (its AP is NaN)."""
        match = np.flatnonzero(np.isclose(OVERLAPS, iou))
        if match.shape[0] != 1:
            raise ValueError(f"pr_curves: iou {iou!r} is not an evaluated threshold; choose from "
                             f"{', '.join(f'{t:.2f}' for t in sorted(OVERLAPS))}")
        return {INSTANCE_NAMES[c]: curve for c, _, curve in self._curves(match)}

    def scene_results(self) -> list[dict]:
        """Each processed scene evaluated alone, in processing order: [{"scene", "AP", "AP50", "AP25",
        "num_gt", "num_pred"}] (num_gt: benchmark GT instances of >= 100 vertices; num_pred: surviving
        predictions). AP values are NaN for a scene without benchmark GT. Warnings of the per-scene
        evaluations (caveat C2) are silenced: they are about one scene, not the benchmark."""
        rows = []
        for name, summary in zip(self._names, self._scenes):
            alone = InstanceEvaluator()
            alone._scenes = [summary]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = alone.evaluate()
            rows.append({"scene": name, "AP": r["AP"], "AP50": r["AP50"], "AP25": r["AP25"],
                         "num_gt": int(np.count_nonzero(summary.gt_size >= MIN_REGION_SIZE)),
                         "num_pred": int(summary.pred_class.shape[0])})
        return rows

    @staticmethod
    def _class_curve(c: int, t: float, has_gt: bool, has_pred: bool, tp_scores: np.ndarray, fp_scores: np.ndarray,
                     num_gt: int) -> PRCurve | None:
        if not has_gt:
            return None  # AP NaN, even with predictions: FPs of classes without GT cost nothing
        num_tp, num_fp = tp_scores.shape[0], fp_scores.shape[0]
        if has_pred and num_tp + num_fp == 0:
            warnings.warn(f"instance evaluation: class {INSTANCE_NAMES[c]!r} at IoU {t:.2f}: every prediction "
                          "was dropped and no GT was matched; the official script crashes here (caveat C2), "
                          "AP set to 0", stacklevel=5)
        if num_tp + num_fp == 0:  # nothing ranked: only the artificial point, AP 0
            return PRCurve(t, np.ones(1), np.zeros(1), np.zeros(0), 0.0, num_gt, 0, 0)
        y_true = np.r_[np.ones(num_tp), np.zeros(num_fp)]
        precision, recall, scores = precision_recall(y_true, np.r_[tp_scores, fp_scores], num_gt - num_tp)
        return PRCurve(t, precision, recall, scores, area_under_curve(precision, recall), num_gt, num_tp, num_fp)

    def evaluate(self) -> dict:
        """-> {"AP", "AP50", "AP25", "classes": {name: {"AP", "AP50", "AP25"}}}; NaN for classes without GT."""
        aps = self.ap_table()
        o50 = np.flatnonzero(np.isclose(OVERLAPS, 0.5))
        o25 = np.flatnonzero(np.isclose(OVERLAPS, 0.25))
        rest = np.flatnonzero(~np.isclose(OVERLAPS, 0.25))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of all-NaN: NaN, as official
            result = {"AP": float(np.nanmean(aps[:, rest].T)), "AP50": float(np.nanmean(aps[:, o50])),
                      "AP25": float(np.nanmean(aps[:, o25]))}
        result["classes"] = {
            name: {"AP": float(np.average(aps[c, rest])), "AP50": float(aps[c, o50[0]]),
                   "AP25": float(aps[c, o25[0]])}
            for c, name in enumerate(INSTANCE_NAMES)}
        return result


def to_json_dict(result):
    """A copy of an evaluation result with every NaN replaced by None (JSON null)."""
    if isinstance(result, dict):
        return {k: to_json_dict(v) for k, v in result.items()}
    if isinstance(result, (list, tuple)):
        return [to_json_dict(v) for v in result]
    if isinstance(result, float) and math.isnan(result):
        return None
    return result


def format_table(result: dict) -> str:
    """The official-style 3-decimal table: one row per class, then the average."""
    width = 64

    def row(name, values):
        cells = "".join(f"{v:>15.3f}" if isinstance(v, float) else f"{v:>15}" for v in values)
        return f"{name:<15}:{cells}"

    lines = ["#" * width, row("what", ("AP", "AP_50%", "AP_25%")), "#" * width]
    for name, r in result["classes"].items():
        lines.append(row(name, (r["AP"], r["AP50"], r["AP25"])))
    lines += ["-" * width, row("average", (result["AP"], result["AP50"], result["AP25"])), ""]
    return "\n".join(lines)
