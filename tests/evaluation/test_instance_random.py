"""InstanceEvaluator against the plain reference implementation on randomised scenes."""
import warnings

import numpy as np
import pytest
from random_eval_scenes import random_scene
from reference_eval import ReferenceEvaluator

from pcseg.evaluation import InstanceEvaluator

def flatten(result):
    values = [result["AP"], result["AP50"], result["AP25"]]
    return np.array(values + [v for c in result["classes"].values() for v in c.values()])


@pytest.mark.parametrize("seed", range(40))
def test_matches_reference_exactly(seed):
    rng = np.random.default_rng(seed)
    ours, ref = InstanceEvaluator(), ReferenceEvaluator()
    for s in range(int(rng.integers(1, 5))):
        gt, pred = random_scene(rng)
        ours.process(gt, pred, name=f"scene{s}")
        ref.process(gt, pred.masks, pred.labels, pred.scores, name=f"scene{s}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = flatten(ours.evaluate()), flatten(ref.evaluate())
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(a[:3]).all()


def test_random_scenes_exercise_the_hard_paths():
    """The generator must produce the cases that distinguish implementations: a prediction that is a
    candidate of two GTs at 0.25 (order-dependent greedy path) and duplicates."""
    from pcseg.evaluation.instance import summarize_scene

    shared = duplicates = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        for _ in range(int(rng.integers(1, 5))):
            gt, pred = random_scene(rng)
            s = summarize_scene(gt, pred.masks, pred.labels, pred.scores)
            iou = s.pair_inter / (s.gt_size[s.pair_gt] + s.pred_size[s.pair_pred] - s.pair_inter)
            over = iou > 0.25
            shared += np.unique(s.pair_pred[over]).shape[0] < s.pair_pred[over].shape[0]
            half = iou > 0.5
            duplicates += np.unique(s.pair_gt[half]).shape[0] < s.pair_gt[half].shape[0]
    assert shared >= 5 and duplicates >= 5


@pytest.mark.parametrize("seed", range(8))
def test_member_instances_are_evaluated_from_their_point_lists(seed):
    """A MemberInstances prediction (a building floor's) gives the same result as its dense masks,
    and the evaluator never builds those masks."""
    from pcseg.structures import MemberInstances

    rng = np.random.default_rng(seed)
    dense, members = InstanceEvaluator(), InstanceEvaluator()
    for s in range(int(rng.integers(1, 4))):
        gt, pred = random_scene(rng)
        listed = MemberInstances([np.flatnonzero(m) for m in pred.masks], pred.labels, pred.scores, pred.num_points)
        dense.process(gt, pred, name=f"scene{s}")
        members.process(gt, listed, name=f"scene{s}")
        assert listed._masks is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(flatten(members.evaluate()), flatten(dense.evaluate()))
