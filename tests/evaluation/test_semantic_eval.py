"""SemanticEvaluator: per-class IoU over the 20 classes and mIoU (official evaluate_semantic_label rules)."""
import math

import numpy as np
import pytest

from pcseg.errors import DataError
from pcseg.evaluation import SemanticEvaluator, to_json_dict


def test_hand_confusion():
    gt = np.array([1, 1, 2, 2, 0, 13, 5, 5])
    pred = np.array([1, 2, 2, 2, 5, 1, 40, 5])
    ev = SemanticEvaluator()
    ev.process(gt, pred)
    r = ev.evaluate()
    assert r["classes"]["wall"] == 0.5  # 1 TP, 1 FN; the wall predicted on GT 13 is ignored
    assert r["classes"]["floor"] == pytest.approx(2 / 3)  # 2 TP, 1 FP
    assert r["classes"]["chair"] == 0.5  # 1 TP, 1 FN (predicted 40, not a benchmark class)
    assert math.isnan(r["classes"]["table"])  # never in GT, never predicted on valid GT
    assert r["mIoU"] == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
    assert to_json_dict(r)["classes"]["table"] is None


def test_accumulates_over_scenes_and_resets():
    ev = SemanticEvaluator()
    ev.process(np.array([5, 5]), np.array([5, 5]))
    ev.process(np.array([5, 5]), np.array([7, 5]))
    r = ev.evaluate()
    # table is not in the GT: no IoU, not averaged, its one predicted point reported
    assert r["classes"]["chair"] == 0.75 and math.isnan(r["classes"]["table"])
    assert r["mIoU"] == 0.75 and r["counted"] == ["chair"] and r["predicted_without_gt"] == {"table": 1}
    ev.reset()
    assert math.isnan(ev.evaluate()["mIoU"])


def test_random_matches_a_direct_count():
    rng = np.random.default_rng(0)
    gt, pred = rng.integers(0, 41, 5000), rng.integers(0, 41, 5000)
    ev = SemanticEvaluator()
    ev.process(gt, pred)
    r = ev.evaluate()
    valid = np.isin(gt, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39])
    for c, name in ((5, "chair"), (39, "otherfurniture")):
        tp = np.sum((gt == c) & (pred == c))
        union = np.sum(gt == c) + np.sum(valid & (pred == c)) - tp
        assert r["classes"][name] == pytest.approx(tp / union)


def test_length_mismatch():
    with pytest.raises(DataError, match="scene0000_00"):
        SemanticEvaluator().process(np.zeros(3, int), np.zeros(4, int), name="scene0000_00")
