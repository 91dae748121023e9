"""COCO mask and box AP (pycocotools) of 2D predictions: perfect predictions give 1.0, and the
numbers move the way COCO's protocol says they must."""
import json
import math

import numpy as np
import pytest

from pcseg.baseline2d import FrameDataset
from pcseg.baseline2d.coco import export_coco
from pcseg.evaluation.coco2d import Coco2DEvaluator, evaluate_coco


def square(h, w, y0, x0, size):
    m = np.zeros((h, w), bool)
    m[y0:y0 + size, x0:x0 + size] = True
    return m


def test_perfect_predictions_of_the_synthetic_frames_give_ap_1(frames_root):
    dataset = FrameDataset(frames_root)
    ev = Coco2DEvaluator()
    for i in range(len(dataset)):
        t = dataset[i].targets
        ev.process(t.masks, t.labels, t.masks.astype(bool), t.labels, np.linspace(1, 0.5, len(t)), t.boxes)
    result = ev.evaluate()
    assert result["images"] == len(dataset) and result["detections"] == sum(len(dataset[i].targets)
                                                                            for i in range(len(dataset)))
    for key in ("mask_AP", "mask_AP50", "mask_AP75", "box_AP", "box_AP50", "box_AP75"):
        assert result[key] == pytest.approx(1.0), key
    per_class = result["mask_AP_per_class"]
    assert all(v == pytest.approx(1.0) or math.isnan(v) for v in per_class.values())
    assert sum(not math.isnan(v) for v in per_class.values()) >= 5  # the rooms hold several classes


def test_perfect_predictions_against_the_exported_coco_file(frames_root, tmp_path):
    out = tmp_path / "coco.json"
    export_coco(frames_root, out, progress=False)
    gt = json.loads(out.read_text())
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "score": 1.0,
                "segmentation": a["segmentation"], "bbox": a["bbox"]} for a in gt["annotations"]]
    result = evaluate_coco(gt, results)
    assert result["mask_AP"] == pytest.approx(1.0) and result["box_AP"] == pytest.approx(1.0)
    assert evaluate_coco(gt, results[::2])["mask_AP"] < 0.75  # half the objects missed


def test_ap_follows_iou_class_and_score_order():
    h, w = 64, 64
    gt = np.stack([square(h, w, 5, 5, 20), square(h, w, 35, 35, 20)]).astype(np.uint8)
    labels = np.array([3, 5])

    def score(pred_masks, pred_labels, scores):
        ev = Coco2DEvaluator()
        ev.process(gt, labels, np.asarray(pred_masks, bool).reshape(-1, h, w), np.asarray(pred_labels),
                   np.asarray(scores, float))
        return ev.evaluate()

    # IoU of a 20x20 square shifted by 4 px: 16*20 / (2*400 - 320) = 0.667: counts at 0.5, not at 0.75
    shifted = score([square(h, w, 9, 5, 20), gt[1]], [3, 5], [0.9, 0.8])
    assert shifted["mask_AP50"] == pytest.approx(1.0) and shifted["mask_AP75"] == pytest.approx(0.5)
    assert shifted["mask_AP_per_class"][3] == pytest.approx(0.4)  # IoU 0.667 passes 0.50, 0.55, 0.60, 0.65: 4 of 10
    wrong_class = score([gt[0], gt[1]], [3, 7], [0.9, 0.8])
    assert wrong_class["mask_AP"] == pytest.approx(0.5)  # class 5 missed, class 7 has no GT (not averaged)
    assert wrong_class["mask_AP_per_class"][5] == 0.0 and math.isnan(wrong_class["mask_AP_per_class"][7])
    # a false positive ranked above the true detection halves the precision at that recall
    fp_first = score([square(h, w, 40, 0, 10), gt[0], gt[1]], [3, 3, 5], [0.99, 0.5, 0.5])
    fp_last = score([square(h, w, 40, 0, 10), gt[0], gt[1]], [3, 3, 5], [0.01, 0.5, 0.5])
    assert fp_first["mask_AP_per_class"][3] == pytest.approx(0.5, abs=0.01)
    assert fp_last["mask_AP_per_class"][3] == pytest.approx(1.0)
    nothing = score(np.zeros((0, h, w)), [], [])
    assert nothing["mask_AP"] == 0.0 and nothing["box_AP"] == 0.0 and nothing["detections"] == 0


def test_frames_on_another_grid_are_rejected():
    ev = Coco2DEvaluator()
    with pytest.raises(ValueError, match="same grid"):
        ev.process(np.zeros((1, 8, 8), np.uint8), [1], np.zeros((1, 8, 9), bool), [1], [0.5])
