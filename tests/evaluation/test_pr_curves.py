"""InstanceEvaluator.pr_curves: the official precision-recall points; their area is the evaluator's AP."""
import math
import warnings

import numpy as np
import pytest
from random_eval_scenes import random_scene

from pcseg.evaluation import OVERLAPS, InstanceEvaluator, precision_recall
from pcseg.evaluation.instance import PRCurve
from pcseg.labels import INSTANCE_NAMES
from pcseg.structures import InstanceSet


def area(curve: PRCurve) -> float:
    """sum_i p_i (r_{i-1} - r_{i+1}) / 2, r_{-1} = r_0, r_{K+1} = 0, written as a plain loop (§10)."""
    p, r = curve.precision.tolist(), curve.recall.tolist()
    total = 0.0
    for i in range(len(p)):
        before = r[i - 1] if i > 0 else r[0]
        after = r[i + 1] if i + 1 < len(r) else 0.0
        total += p[i] * (before - after) / 2
    return total


@pytest.mark.parametrize("seed", range(25))
def test_curve_area_is_the_class_ap_at_every_threshold(seed):
    rng = np.random.default_rng(100 + seed)
    ev = InstanceEvaluator()
    for s in range(int(rng.integers(1, 5))):
        gt, pred = random_scene(rng)
        ev.process(gt, pred, name=f"scene{s}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aps = ev.ap_table()
        for o, t in enumerate(OVERLAPS):
            curves = ev.pr_curves(float(round(t, 2)))
            assert list(curves) == list(INSTANCE_NAMES)
            for c, name in enumerate(INSTANCE_NAMES):
                curve = curves[name]
                if math.isnan(aps[c, o]):
                    assert curve is None
                    continue
                assert curve.ap == aps[c, o]
                assert area(curve) == pytest.approx(aps[c, o], abs=1e-12)
                k = curve.scores.shape[0]
                assert curve.precision.shape == curve.recall.shape == (k + 1,)
                assert (curve.precision[-1], curve.recall[-1]) == (1.0, 0.0)
                assert np.all(np.diff(curve.scores) > 0) and np.all(np.diff(curve.recall) <= 0)
                assert curve.num_tp <= curve.num_gt


def test_curve_points_of_the_hand_checked_case():
    """One TP (0.9), one missed GT, one FP (0.95): points (p, r) = (0.5, 0.5), (0, 0), then (1, 0); AP 0.125."""
    n = 2000
    gt = np.zeros(n, np.int64)
    gt[:200], gt[200:400], gt[1000:1200] = 5001, 5002, 7003  # two chairs, a table
    masks = np.zeros((2, n), bool)
    masks[0, :200] = True  # TP on chair 1
    masks[1, 1000:1200] = True  # a "chair" on the table: an FP (on void it would be dropped)
    ev = InstanceEvaluator()
    ev.process(gt, InstanceSet(masks, np.array([5, 5]), np.array([0.9, 0.95])))
    curve = ev.pr_curves(0.5)["chair"]
    np.testing.assert_allclose(curve.precision, [0.5, 0.0, 1.0])
    np.testing.assert_allclose(curve.recall, [0.5, 0.0, 0.0])
    np.testing.assert_allclose(curve.scores, [0.9, 0.95])
    assert curve.ap == pytest.approx(0.125) == ev.evaluate()["classes"]["chair"]["AP50"]
    assert (curve.num_gt, curve.num_tp, curve.num_fp) == (2, 1, 1)
    assert ev.pr_curves(0.5)["bed"] is None


def test_class_without_predictions_is_the_artificial_point_alone():
    gt = np.zeros(500, np.int64)
    gt[:150] = 7001
    ev = InstanceEvaluator()
    ev.process(gt, None)
    curve = ev.pr_curves(0.25)["table"]
    assert curve.ap == 0.0 and curve.precision.tolist() == [1.0] and curve.recall.tolist() == [0.0]
    assert curve.to_dict()["scores"] == []


def test_precision_recall_counts_ties_together():
    p, r, s = precision_recall(np.array([1.0, 0.0, 1.0]), np.array([0.5, 0.5, 0.2]), hard_fn=1)
    np.testing.assert_allclose(s, [0.2, 0.5])
    np.testing.assert_allclose(p, [2 / 3, 1 / 2, 1.0])
    np.testing.assert_allclose(r, [2 / 3, 1 / 3, 0.0])


def test_unknown_threshold_is_rejected():
    with pytest.raises(ValueError, match="0.95"):
        InstanceEvaluator().pr_curves(0.95)


def test_scene_results_evaluate_each_scene_alone():
    rng = np.random.default_rng(7)
    ev = InstanceEvaluator()
    scenes = [random_scene(rng) for _ in range(3)]
    for i, (gt, pred) in enumerate(scenes):
        ev.process(gt, pred, name=f"room{i}")
    ev.process(np.zeros(300, np.int64), None, name="empty")  # no benchmark GT: NaN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = ev.scene_results()
        assert [r["scene"] for r in rows] == ["room0", "room1", "room2", "empty"]
        for (gt, pred), row in zip(scenes, rows):
            alone = InstanceEvaluator()
            alone.process(gt, pred)
            expected = alone.evaluate()
            np.testing.assert_array_equal([row["AP"], row["AP50"], row["AP25"]],
                                          [expected["AP"], expected["AP50"], expected["AP25"]])
        assert sum(np.isfinite(r["AP"]) for r in rows[:3]) >= 2  # the check is not vacuous
    assert math.isnan(rows[3]["AP"]) and rows[3]["num_gt"] == 0 and rows[3]["num_pred"] == 0
