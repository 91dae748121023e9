"""Independent, deliberately plain implementation of the official ScanNet v2 instance evaluation
(docs/scannet-format.md §10), structured like the official script: ``assign_instances_for_scan``
(per-prediction full-length mask operations, per-GT equality masks), ``evaluate_matches`` (nested
loops over thresholds, classes, scenes, GT and predictions with a global "visited" dict, arrays
grown with np.append) and ``compute_averages``. Used as the oracle of the tests and as the
baseline of benchmarks/bench_eval.py. Only difference from the original: the C2 crash -> AP 0.
"""
from __future__ import annotations

import numpy as np

CLASS_IDS = [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39]
CLASS_NAMES = ["cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
               "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink", "bathtub",
               "otherfurniture"]
NAME_OF_ID = dict(zip(CLASS_IDS, CLASS_NAMES))
THRESHOLDS = np.append(np.arange(0.5, 0.95, 0.05), 0.25)
MIN_SIZE = 100


def gt_instances_of(gt_ids):
    """{class name: [instance dict]} for each distinct non-zero GT value of a benchmark class."""
    found = {name: [] for name in CLASS_NAMES}
    for value in np.unique(gt_ids):
        if value == 0:
            continue
        label = int(value) // 1000
        if label in NAME_OF_ID:
            found[NAME_OF_ID[label]].append({"instance_id": int(value), "label_id": label,
                                             "vert_count": int(np.count_nonzero(gt_ids == value))})
    return found


def assign_instances_for_scan(scene, gt_ids, masks, labels, scores):
    """-> (gt2pred, pred2gt) dicts of one scene. masks: (K, N) 0/1, labels nyu40, scores float."""
    gt2pred = gt_instances_of(gt_ids)
    for name in gt2pred:
        for gt in gt2pred[name]:
            gt["matched_pred"] = []
    pred2gt = {name: [] for name in CLASS_NAMES}
    void = np.logical_not(np.isin(gt_ids // 1000, CLASS_IDS))
    for k in range(len(labels)):
        label = int(labels[k])
        if label not in NAME_OF_ID:
            continue
        name = NAME_OF_ID[label]
        mask = np.not_equal(masks[k], 0)
        size = np.count_nonzero(mask)
        if size < MIN_SIZE:
            continue
        pred = {"filename": (scene, k), "vert_count": size, "confidence": float(scores[k]),
                "void_intersection": np.count_nonzero(np.logical_and(void, mask))}
        hits = []
        for gt in gt2pred[name]:
            inter = np.count_nonzero(np.logical_and(gt_ids == gt["instance_id"], mask))
            if inter > 0:
                gt_hit = {key: v for key, v in gt.items() if key != "matched_pred"}
                gt_hit["intersection"] = inter
                hits.append(gt_hit)
                pred_hit = dict(pred)
                pred_hit["intersection"] = inter
                gt["matched_pred"].append(pred_hit)
        pred["matched_gt"] = hits
        pred2gt[name].append(pred)
    return gt2pred, pred2gt


def _ap(y_true, y_score, hard_fn):
    order = np.argsort(y_score)
    scores_sorted = y_score[order]
    cumsum = np.cumsum(y_true[order])
    _, uniq = np.unique(scores_sorted, return_index=True)
    n_points = len(uniq) + 1
    n_all = len(scores_sorted)
    n_true = cumsum[-1]
    precision = np.zeros(n_points)
    recall = np.zeros(n_points)
    cumsum = np.append(cumsum, 0)
    for i, start in enumerate(uniq):
        below = cumsum[start - 1]
        tp = n_true - below
        fp = n_all - start - tp
        fn = below + hard_fn
        precision[i] = float(tp) / (tp + fp)
        recall[i] = float(tp) / (tp + fn)
    precision[-1] = 1.0
    recall[-1] = 0.0
    padded = np.append(np.append(recall[0], recall), 0.0)
    widths = np.convolve(padded, [-0.5, 0, 0.5], "valid")
    return np.dot(precision, widths)


def evaluate_matches(matches):
    """matches: {scene: {"gt": gt2pred, "pred": pred2gt}} -> ap FloatArray[1, 18, 10]."""
    ap = np.zeros((1, len(CLASS_NAMES), len(THRESHOLDS)))
    for oi, th in enumerate(THRESHOLDS):
        visited = {}
        for m in matches:
            for name in CLASS_NAMES:
                for p in matches[m]["pred"][name]:
                    visited[p["filename"]] = False
        for li, name in enumerate(CLASS_NAMES):
            y_true = np.empty(0)
            y_score = np.empty(0)
            hard_fn = 0
            has_gt = has_pred = False
            for m in matches:
                preds = matches[m]["pred"][name]
                gts = [g for g in matches[m]["gt"][name] if g["instance_id"] >= 1000 and g["vert_count"] >= MIN_SIZE]
                has_gt = has_gt or bool(gts)
                has_pred = has_pred or bool(preds)
                cur_true = np.ones(len(gts))
                cur_score = np.ones(len(gts)) * (-float("inf"))
                cur_match = np.zeros(len(gts), dtype=bool)
                for gi, gt in enumerate(gts):
                    found = False
                    for pred in gt["matched_pred"]:
                        if visited[pred["filename"]]:
                            continue
                        iou = float(pred["intersection"]) / (gt["vert_count"] + pred["vert_count"] - pred["intersection"])
                        if iou > th:
                            conf = pred["confidence"]
                            if cur_match[gi]:
                                hi, lo = max(cur_score[gi], conf), min(cur_score[gi], conf)
                                cur_score[gi] = hi
                                cur_true = np.append(cur_true, 0)
                                cur_score = np.append(cur_score, lo)
                                cur_match = np.append(cur_match, True)
                            else:
                                found = True
                                cur_match[gi] = True
                                cur_score[gi] = conf
                                visited[pred["filename"]] = True
                    if not found:
                        hard_fn += 1
                cur_true = cur_true[cur_match]
                cur_score = cur_score[cur_match]
                for pred in preds:
                    matched = False
                    for gt in pred["matched_gt"]:
                        iou = float(gt["intersection"]) / (gt["vert_count"] + pred["vert_count"] - gt["intersection"])
                        if iou > th:
                            matched = True
                            break
                    if not matched:
                        ignored = pred["void_intersection"]
                        for gt in pred["matched_gt"]:
                            if gt["instance_id"] < 1000:
                                ignored += gt["intersection"]
                            if gt["vert_count"] < MIN_SIZE:
                                ignored += gt["intersection"]
                        if float(ignored) / pred["vert_count"] <= th:
                            cur_true = np.append(cur_true, 0)
                            cur_score = np.append(cur_score, pred["confidence"])
                y_true = np.append(y_true, cur_true)
                y_score = np.append(y_score, cur_score)
            if has_gt and has_pred:
                ap[0, li, oi] = 0.0 if len(y_true) == 0 else _ap(y_true, y_score, hard_fn)
            elif has_gt:
                ap[0, li, oi] = 0.0
            else:
                ap[0, li, oi] = float("nan")
    return ap


def compute_averages(ap):
    """-> the same dict layout as pcseg's InstanceEvaluator.evaluate()."""
    o50 = np.where(np.isclose(THRESHOLDS, 0.5))
    o25 = np.where(np.isclose(THRESHOLDS, 0.25))
    rest = np.where(np.logical_not(np.isclose(THRESHOLDS, 0.25)))
    out = {"AP": float(np.nanmean(ap[0, :, rest])), "AP50": float(np.nanmean(ap[0, :, o50])),
           "AP25": float(np.nanmean(ap[0, :, o25])), "classes": {}}
    for li, name in enumerate(CLASS_NAMES):
        out["classes"][name] = {"AP": float(np.average(ap[0, li, rest])), "AP50": float(np.average(ap[0, li, o50])),
                                "AP25": float(np.average(ap[0, li, o25]))}
    return out


class ReferenceEvaluator:
    """process(gt_ids, masks, labels, scores) per scene, then evaluate() -> result dict."""

    def __init__(self):
        self.matches = {}

    def process(self, gt_ids, masks, labels, scores, name=None):
        name = len(self.matches) if name is None else name
        gt2pred, pred2gt = assign_instances_for_scan(name, np.asarray(gt_ids), masks, labels, scores)
        self.matches[name] = {"gt": gt2pred, "pred": pred2gt}

    def evaluate(self):
        return compute_averages(evaluate_matches(self.matches))
