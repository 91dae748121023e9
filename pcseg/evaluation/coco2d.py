"""2D instance segmentation AP (COCO protocol) with pycocotools' COCOeval: mask AP and box AP
(AP = mean over IoU 0.50:0.05:0.95, AP50, AP75), per class too.

``evaluate_coco(gt, results)`` scores a COCO instances dict (e.g. ``pcseg data export-coco``) and
a COCO results list, i.e. works on files alone; ``Coco2DEvaluator`` accumulates frames in memory
(``reset / process / evaluate``) for validation during training.
"""
from __future__ import annotations

import contextlib
import copy
import io
import math

import numpy as np

from ..labels import INSTANCE_IDS, INSTANCE_NAMES

CATEGORY_IDS = tuple(range(1, len(INSTANCE_IDS) + 1))  # the contiguous labels 1..18 of the 2D baseline
_KEYS = ("AP", "AP50", "AP75")


def _rles(masks: np.ndarray) -> list[dict]:
    """BoolArray/UInt8Array[K, H, W] -> K RLEs (pycocotools' encoding, bytes counts)."""
    from pycocotools import mask as mask_utils

    if len(masks) == 0:
        return []
    return mask_utils.encode(np.asfortranarray(np.moveaxis(np.asarray(masks, np.uint8), 0, -1)))


def _quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        return fn(*args)


def _cocoeval(gt, results: list[dict], iou_type: str) -> tuple[dict, dict]:
    """(AP, AP50, AP75) overall and AP per category id for one iou_type ("segm" or "bbox")."""
    from pycocotools.cocoeval import COCOeval

    cats = [c["id"] for c in gt.dataset["categories"]]
    with_gt = {a["category_id"] for a in gt.dataset["annotations"]}
    if not results:  # loadRes cannot take an empty list: nothing detected -> AP 0 where GT exists
        zero = 0.0 if with_gt else math.nan
        return dict.fromkeys(_KEYS, zero), {c: (0.0 if c in with_gt else math.nan) for c in cats}
    dt = _quiet(gt.loadRes, copy.deepcopy(results))  # loadRes mutates the dicts
    ev = COCOeval(gt, dt, iou_type)
    _quiet(ev.evaluate)
    _quiet(ev.accumulate)
    _quiet(ev.summarize)
    stats = [math.nan if s < 0 else float(s) for s in ev.stats[:3]]
    precision = ev.eval["precision"]  # [T IoUs, R recalls, K categories, A areas, M maxDets]
    per_class = {}
    for k, cat in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        per_class[cat] = float(p[p > -1].mean()) if (p > -1).any() else math.nan
    return dict(zip(_KEYS, stats)), per_class


def evaluate_coco(gt: dict, results: list[dict]) -> dict:
    """Mask and box AP of ``results`` against the COCO instances dict ``gt``.

    gt:      {"images": [...], "annotations": [{image_id, category_id, segmentation (RLE), bbox, area,
             iscrowd}], "categories": [...]}
    results: [{image_id, category_id, score, segmentation (RLE) and/or bbox [x, y, w, h]}]
    Returns {"mask_AP", "mask_AP50", "mask_AP75", "box_AP", "box_AP50", "box_AP75",
    "mask_AP_per_class": {category id: AP}, "images", "detections"}; NaN where no GT exists.
    """
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = copy.deepcopy(gt)
    _quiet(coco.createIndex)
    out: dict = {}
    for iou_type, prefix, key in (("segm", "mask", "segmentation"), ("bbox", "box", "bbox")):
        # one iou_type at a time: loadRes of results with boxes would replace the masks' areas
        subset = [{k: v for k, v in r.items() if k not in ("segmentation", "bbox") or k == key}
                  for r in results if key in r]
        overall, per_class = _cocoeval(coco, subset, iou_type)
        out.update({f"{prefix}_{k}": v for k, v in overall.items()})
        if prefix == "mask":
            out["mask_AP_per_class"] = per_class
    out["images"], out["detections"] = len(gt["images"]), len(results)
    return out


class Coco2DEvaluator:
    """COCO mask and box AP over frames given as arrays (labels: the contiguous 1..18).

    process(gt_masks [K, H, W], gt_labels [K], pred_masks [P, H, W], pred_labels [P],
    pred_scores [P], pred_boxes FloatArray[P, 4] XYXY or None (then the masks' boxes), name=None)
    evaluate() -> the dict of ``evaluate_coco``.
    Masks are RLE-encoded as they come, so memory stays small.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.images: list[dict] = []
        self.annotations: list[dict] = []
        self.results: list[dict] = []

    def __len__(self) -> int:
        return len(self.images)

    def process(self, gt_masks, gt_labels, pred_masks, pred_labels, pred_scores, pred_boxes=None,
                name: str | None = None) -> None:
        from pycocotools import mask as mask_utils

        gt_masks, pred_masks = np.asarray(gt_masks), np.asarray(pred_masks)
        if gt_masks.ndim != 3 or pred_masks.ndim != 3 or gt_masks.shape[1:] != pred_masks.shape[1:]:
            raise ValueError(f"Coco2DEvaluator: {name or 'frame'}: GT masks {gt_masks.shape} and predicted masks "
                             f"{pred_masks.shape} must be (K, H, W) on the same grid")
        if not (len(pred_masks) == len(pred_labels) == len(pred_scores)) or len(gt_masks) != len(gt_labels):
            raise ValueError(f"Coco2DEvaluator: {name or 'frame'}: masks, labels and scores differ in length")
        image_id = len(self.images) + 1
        h, w = gt_masks.shape[1:]
        self.images.append({"id": image_id, "width": int(w), "height": int(h), "file_name": name or str(image_id)})
        gt_rles = _rles(gt_masks)
        for rle, label, area, box in zip(gt_rles, gt_labels, mask_utils.area(gt_rles) if gt_rles else [],
                                         mask_utils.toBbox(gt_rles) if gt_rles else []):
            self.annotations.append({"id": len(self.annotations) + 1, "image_id": image_id,
                                     "category_id": int(label), "segmentation": rle, "area": float(area),
                                     "bbox": [float(v) for v in box], "iscrowd": 0})
        pred_rles = _rles(pred_masks)
        if pred_boxes is None:
            boxes = mask_utils.toBbox(pred_rles) if pred_rles else np.zeros((0, 4))
        else:
            b = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
            boxes = np.column_stack([b[:, :2], b[:, 2:] - b[:, :2]])  # XYXY -> COCO's XYWH
        for rle, label, score, box in zip(pred_rles, pred_labels, pred_scores, boxes):
            self.results.append({"image_id": image_id, "category_id": int(label), "score": float(score),
                                 "segmentation": rle, "bbox": [float(v) for v in box]})

    def coco_gt(self) -> dict:
        categories = [{"id": c, "name": n} for c, n in zip(CATEGORY_IDS, INSTANCE_NAMES)]
        return {"images": self.images, "annotations": self.annotations, "categories": categories}

    def evaluate(self) -> dict:
        return evaluate_coco(self.coco_gt(), self.results)
