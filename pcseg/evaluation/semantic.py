"""ScanNet v2 3D semantic evaluation: per-class IoU over the 20 benchmark classes and mIoU
(official ``evaluate_semantic_label.py``, docs/scannet-format.md §8.3).

GT ids outside the 20 classes are ignored; predicted ids outside the 20 count as wrong.

Which classes count in mIoU: the classes present in the ground truth of the evaluated scenes, as
the instance AP counts the classes that have GT instances (and as the usual benchmark tables do).
A class absent from the GT has no IoU (NaN, shown as n/a); where it was predicted anyway, the
points it took are false negatives of the GT classes they belong to, and ``predicted_without_gt``
says how many there were.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..errors import DataError
from ..labels import SEMANTIC20_NAMES, nyu40_to_semantic20

_C = len(SEMANTIC20_NAMES)


class SemanticEvaluator:
    """detectron2-style evaluator over NYU40 label arrays: ``reset``, ``process``, ``evaluate``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        # rows: GT class 0..19; columns: predicted class 0..19, column 20 = any other id
        self.confusion = np.zeros((_C, _C + 1), np.int64)

    def process(self, gt_nyu40: np.ndarray, pred_nyu40: np.ndarray, name: str | None = None) -> None:
        """gt_nyu40, pred_nyu40: IntArray[N] NYU40 ids per vertex of one scene."""
        gt = np.asarray(gt_nyu40, np.int64).reshape(-1)
        pred = np.asarray(pred_nyu40, np.int64).reshape(-1)
        if gt.shape != pred.shape:
            raise DataError(name, "prediction", f"{pred.shape[0]} labels for a scene of {gt.shape[0]} GT vertices")
        g = nyu40_to_semantic20(gt)
        p = nyu40_to_semantic20(pred)
        p[p < 0] = _C
        valid = g >= 0
        self.confusion += np.bincount(g[valid] * (_C + 1) + p[valid], minlength=_C * (_C + 1)).reshape(_C, _C + 1)

    def evaluate(self) -> dict:
        """-> {"mIoU": float, "classes": {name: IoU, NaN for a class absent from the GT},
        "counted": [the names averaged into mIoU], "predicted_without_gt": {name: points}}."""
        conf = self.confusion
        tp = np.diag(conf[:, :_C]).astype(np.float64)
        in_gt = conf.sum(1)
        fn = in_gt - tp
        fp = conf[:, :_C].sum(0) - tp
        denom = tp + fp + fn
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(in_gt > 0, tp / np.maximum(denom, 1), np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: mIoU is NaN
            miou = float(np.nanmean(iou))
        return {"mIoU": miou, "classes": {name: float(v) for name, v in zip(SEMANTIC20_NAMES, iou)},
                "counted": [name for name, n in zip(SEMANTIC20_NAMES, in_gt) if n > 0],
                "predicted_without_gt": {name: int(p) for name, n, p in zip(SEMANTIC20_NAMES, in_gt, fp)
                                         if n == 0 and p > 0}}


def iou_text(result: dict, name: str) -> str | None:
    """``"n/a: not in GT"`` (``", predicted on N points"`` when it was) for a class absent from the GT
    of ``SemanticEvaluator.evaluate()``'s ``result``, None for a class with an IoU."""
    iou = result["classes"][name]
    if iou is not None and not np.isnan(iou):
        return None
    extra = result.get("predicted_without_gt", {}).get(name)
    return "n/a: not in GT" + (f", predicted on {extra} points" if extra else "")


def format_semantic(result: dict) -> str:
    """The per-class IoU table and mIoU of ``SemanticEvaluator.evaluate()`` as text, saying which
    classes count."""
    lines = [f"{'semantic class':16}{'IoU':>10}"]
    for name, iou in result["classes"].items():
        text = iou_text(result, name)
        lines.append(f"{name:16}" + (f"  {text}" if text else f"{iou:10.3f}"))
    lines.append(f"{'mIoU':16}{result['mIoU']:10.3f}  (mean over the {len(result['counted'])} classes present in the GT)")
    return "\n".join(lines)
