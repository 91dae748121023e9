"""InstanceEvaluator on hand-built cases whose AP is known (docs/scannet-format.md §10)."""
import math

import numpy as np
import pytest

from pcseg.errors import DataError
from pcseg.evaluation import OVERLAPS, InstanceEvaluator, format_table, to_json_dict
from pcseg.io.official import encode_gt_ids
from pcseg.labels import INSTANCE_NAMES
from pcseg.structures import InstanceSet, Scene

CHAIR, TABLE, WALL = 5, 7, 1
I25 = int(np.flatnonzero(np.isclose(OVERLAPS, 0.25))[0])
I50 = int(np.flatnonzero(np.isclose(OVERLAPS, 0.5))[0])
I60 = int(np.flatnonzero(np.isclose(OVERLAPS, 0.6))[0])


def gt_blocks(*blocks, n=2000):
    """Official GT ids: blocks (start, stop, value) over n vertices, 0 elsewhere."""
    gt = np.zeros(n, np.int64)
    for start, stop, value in blocks:
        gt[start:stop] = value
    return gt


def preds(n, *items):
    """InstanceSet from (index ranges or arrays, nyu40, score) items."""
    masks = np.zeros((len(items), n), bool)
    for k, (idx, _, _) in enumerate(items):
        masks[k, idx] = True
    return InstanceSet(masks, [i[1] for i in items], [i[2] for i in items])


def run(gt, prediction):
    ev = InstanceEvaluator()
    ev.process(gt, prediction)
    return ev


# A: chair GT 0..200, B: chair GT 200..400, T: table GT 400..600, 600..2000 void (0 and wall)
GT = gt_blocks((0, 200, 5001), (200, 400, 5002), (400, 600, 7003), (600, 800, 1004))


@pytest.mark.parametrize("fp_score, expected", [(0.95, 0.125), (0.50, 0.5)])
def test_one_tp_one_missed_one_fp(fp_score, expected):
    p = preds(2000, (slice(0, 200), CHAIR, 0.9), (slice(400, 600), CHAIR, fp_score))
    r = run(GT, p).evaluate()
    assert r["classes"]["chair"] == pytest.approx({"AP": expected, "AP50": expected, "AP25": expected})
    assert r["classes"]["table"] == {"AP": 0.0, "AP50": 0.0, "AP25": 0.0}  # GT without prediction
    assert r["AP"] == pytest.approx(expected / 2)  # chair and table; every other class NaN, left out


def test_duplicate_with_higher_score_gives_19_over_24():
    p = preds(2000, (slice(0, 200), CHAIR, 0.9), (slice(0, 200), CHAIR, 0.95), (slice(200, 400), CHAIR, 0.8))
    assert run(GT, p).evaluate()["classes"]["chair"]["AP"] == pytest.approx(19 / 24)


def test_perfect_prediction_is_one_where_there_is_gt_and_nan_elsewhere():
    p = preds(2000, (slice(0, 200), CHAIR, 0.9), (slice(200, 400), CHAIR, 0.3), (slice(400, 600), TABLE, 0.5),
              (slice(600, 800), WALL, 0.9))  # wall is not an instance class: ignored
    r = run(GT, p).evaluate()
    assert (r["AP"], r["AP50"], r["AP25"]) == (1.0, 1.0, 1.0)
    for name, values in r["classes"].items():
        want = 1.0 if name in ("chair", "table") else None
        assert all((v == want) if want else math.isnan(v) for v in values.values()), name


def test_predictions_of_a_class_without_gt_cost_nothing():
    p = preds(2000, (slice(0, 200), CHAIR, 0.9), (slice(200, 400), CHAIR, 0.8), (slice(400, 600), TABLE, 0.5),
              (slice(1000, 1300), 39, 0.99))
    r = run(gt_blocks((0, 200, 5001), (200, 400, 5002), (400, 600, 7003)), p).evaluate()
    assert math.isnan(r["classes"]["otherfurniture"]["AP"]) and r["AP"] == 1.0


def test_prediction_on_void_is_dropped_or_fp_depending_on_threshold():
    # 130 void + 170 table vertices: ignored fraction 0.433 -> dropped at 0.25, FP from 0.5 on
    p = preds(2000, (slice(0, 200), CHAIR, 0.5), (np.r_[200:400], CHAIR, 0.4),
              (np.r_[1000:1130, 430:600], CHAIR, 0.9))
    aps = run(GT, p).ap_table()[INSTANCE_NAMES.index("chair")]
    assert aps[I25] == 1.0
    np.testing.assert_allclose(aps[:9], 2 / 3 * 0.25 + 0.5 * 0.5)  # the FP ranks above both TPs


def test_void_fraction_equal_to_the_threshold_is_a_false_positive():
    # 60 table + 90 void vertices: ignored fraction 90/150 = 0.6 <= t (0.6000000000000001) -> FP
    p = preds(2000, (slice(0, 200), CHAIR, 0.5), (slice(200, 400), CHAIR, 0.5),
              (np.r_[400:460, 1000:1090], CHAIR, 0.9))
    aps = run(GT, p).ap_table()[INSTANCE_NAMES.index("chair")]
    assert aps[I50] == 1.0 and aps[I60 - 1] == 1.0 and aps[I25] == 1.0
    assert aps[I60] < 1.0 and np.all(aps[I60:9] < 1.0)


def test_mostly_void_prediction_is_never_a_false_positive():
    p = preds(2000, (slice(0, 200), CHAIR, 0.5), (slice(200, 400), CHAIR, 0.5),
              (np.r_[395:400, 1000:1195], CHAIR, 0.9))  # 97.5% void
    assert run(GT, p).evaluate()["classes"]["chair"] == {"AP": 1.0, "AP50": 1.0, "AP25": 1.0}


def test_small_gt_and_small_predictions_are_ignored():
    gt = gt_blocks((0, 60, 5001), (200, 400, 7002))  # a 60-vertex chair: too small to count
    r = run(gt, preds(2000, (np.r_[200:299], TABLE, 0.9))).evaluate()  # 99-vertex prediction: dropped
    assert math.isnan(r["classes"]["chair"]["AP"])
    assert r["classes"]["table"]["AP"] == 0.0
    r = run(gt, preds(2000, (np.r_[200:300], TABLE, 0.9))).evaluate()  # 100 vertices: IoU 0.5 counts
    assert r["classes"]["table"]["AP25"] == 1.0 and r["classes"]["table"]["AP50"] == 0.0
    # a prediction matching the small chair (IoU 60/150 > 0.25) is neither TP nor FP
    r = run(gt_blocks((0, 60, 5001), (200, 400, 5002)),
            preds(2000, (np.r_[200:400], CHAIR, 0.5), (np.r_[0:60, 1000:1090], CHAIR, 0.9))).evaluate()
    assert r["classes"]["chair"] == {"AP": 1.0, "AP50": 1.0, "AP25": 1.0}


def test_crash_case_c2_gives_zero_with_a_warning():
    # chair GT missed, the only chair prediction lies on void: no TP/FP entry at all
    p = preds(2000, (np.r_[1000:1300], CHAIR, 0.9))
    with pytest.warns(UserWarning, match="crashes"):
        r = run(GT, p).evaluate()
    assert r["classes"]["chair"] == {"AP": 0.0, "AP50": 0.0, "AP25": 0.0}


def test_ap25_depends_on_prediction_order_c1():
    gt = gt_blocks((0, 200, 5001), (200, 400, 5002))
    p1 = (np.r_[60:200, 200:300], CHAIR, 0.9)  # IoU > 0.25 with both GTs
    p2 = (np.r_[0:120], CHAIR, 0.8)  # IoU 0.6 with the first GT only
    first = run(gt, preds(2000, p1, p2)).evaluate()["classes"]["chair"]
    second = run(gt, preds(2000, p2, p1)).evaluate()["classes"]["chair"]
    assert first["AP50"] == second["AP50"] and first["AP"] == second["AP"]
    # p1 first: GT 1 takes p1, p2 is a duplicate, GT 2 is missed. p2 first: both GTs are matched
    assert first["AP25"] == pytest.approx(0.5) and second["AP25"] == 1.0


def test_scene_and_gt_ids_give_the_same_result_and_pool_over_scenes():
    rng = np.random.default_rng(0)
    semantic = np.repeat([5, 5, 7, 0], 250)
    instance = np.repeat([1, 2, 3, -1], 250)
    scene = Scene(rng.random((1000, 3)), semantic=semantic, instance=instance, name="s")
    p = preds(1000, (slice(0, 250), CHAIR, 0.7), (slice(500, 750), CHAIR, 0.8))
    a, b = InstanceEvaluator(), InstanceEvaluator()
    a.process(scene, p)
    b.process(encode_gt_ids(semantic, instance), p)
    assert to_json_dict(a.evaluate()) == to_json_dict(b.evaluate())
    # pooled: the same scene twice keeps the same precision/recall ratios
    a.process(scene, p)
    np.testing.assert_allclose(a.ap_table(), b.ap_table(), equal_nan=True)
    a.reset()
    assert len(a) == 0 and math.isnan(a.evaluate()["AP"])


def test_scene_without_prediction_counts_as_missed():
    ev = run(GT, preds(2000, (slice(0, 200), CHAIR, 0.9), (slice(200, 400), CHAIR, 0.8)))
    assert ev.evaluate()["classes"]["chair"]["AP"] == 1.0
    ev.process(GT, None)
    assert ev.evaluate()["classes"]["chair"]["AP"] == pytest.approx(0.5)


def test_mask_length_mismatch_is_a_data_error():
    with pytest.raises(DataError, match="scene0001_00"):
        InstanceEvaluator().process(GT, preds(1999, (slice(0, 200), CHAIR, 0.9)), name="scene0001_00")


def test_json_dict_and_table():
    r = run(GT, preds(2000, (slice(0, 200), CHAIR, 0.9))).evaluate()
    j = to_json_dict(r)
    assert j["classes"]["bed"] == {"AP": None, "AP50": None, "AP25": None}
    assert j["classes"]["chair"]["AP"] == pytest.approx(0.5)
    table = format_table(r)
    lines = table.splitlines()
    assert any(line.startswith("chair") and line.split()[-3:] == ["0.500", "0.500", "0.500"] for line in lines)
    assert any(line.startswith("average") and line.split()[-1] == "0.250" for line in lines)
    assert sum(1 for line in lines if ":" in line) == 1 + 18 + 1
