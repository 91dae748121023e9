"""evaluate_folders over official-format GT and prediction folders."""
import json
import warnings

import numpy as np
import pytest

from pcseg.errors import DataError
from pcseg.evaluation import InstanceEvaluator, evaluate_folders, to_json_dict, write_json
from pcseg.io.official import write_gt_txt, write_instance_predictions
from pcseg.structures import InstanceSet


def make_scene(rng, n=1500):
    gt = np.zeros(n, np.int64)
    gt[:300], gt[300:600], gt[600:900], gt[900:1000] = 5001, 5002, 7003, 1004
    masks = np.zeros((4, n), bool)
    masks[0, :280] = True
    masks[1, 320:600] = True
    masks[2, 600:900] = True
    masks[3, rng.choice(n, 200, replace=False)] = True
    return gt, InstanceSet(masks, [5, 5, 7, 5], np.round(rng.random(4), 6))


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(0)
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    ev = InstanceEvaluator()
    for name in ("scene0000_00", "scene0001_00", "scene0002_00"):
        gt, pred = make_scene(rng)
        write_gt_txt(gt_dir / f"{name}.txt", gt)
        write_instance_predictions(pred_dir, name, pred)
        ev.process(gt, pred)
    (pred_dir / "semantic_instance_evaluation.txt").write_text("class,class id,ap,ap50,ap25\n")
    return gt_dir, pred_dir, ev.evaluate()


def test_folder_result_equals_in_memory_result(folders):
    gt_dir, pred_dir, expected = folders
    result = evaluate_folders(gt_dir, pred_dir, progress=False)
    assert to_json_dict(result) == to_json_dict(expected)
    assert 0 < result["AP"] < 1


def test_gt_without_prediction_warns_and_skip_or_miss(folders):
    gt_dir, pred_dir, expected = folders
    write_gt_txt(gt_dir / "scene0003_00.txt", np.full(1500, 5001))
    with pytest.warns(UserWarning, match="1 of 4 GT scene.*scene0003_00"):
        skipped = evaluate_folders(gt_dir, pred_dir, progress=False)
    assert to_json_dict(skipped) == to_json_dict(expected)
    with pytest.warns(UserWarning, match="all-missed"):
        missed = evaluate_folders(gt_dir, pred_dir, missing="miss", progress=False)
    assert missed["classes"]["chair"]["AP"] < skipped["classes"]["chair"]["AP"]


def test_prediction_without_gt_is_an_error(folders):
    gt_dir, pred_dir, _ = folders
    (gt_dir / "scene0001_00.txt").unlink()
    with pytest.raises(DataError, match="scene0001_00.txt.*no ground truth"):
        evaluate_folders(gt_dir, pred_dir, progress=False)


def test_bad_folders_and_options(folders, tmp_path):
    gt_dir, pred_dir, _ = folders
    with pytest.raises(DataError, match="prediction folder not found"):
        evaluate_folders(gt_dir, tmp_path / "nope", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no prediction"):
        evaluate_folders(gt_dir, tmp_path / "empty", progress=False)
    with pytest.raises(ValueError, match="missing"):
        evaluate_folders(gt_dir, pred_dir, missing="zero")


def test_mask_length_must_match_gt(folders):
    gt_dir, pred_dir, _ = folders
    write_gt_txt(gt_dir / "scene0000_00.txt", np.zeros(1400, np.int64))
    with pytest.raises(DataError, match=r"scene0000_00_000.txt.*expected 1400 lines"):
        evaluate_folders(gt_dir, pred_dir, progress=False)


def test_write_json_turns_nan_into_null(folders, tmp_path):
    _, _, result = folders
    path = write_json(result, tmp_path / "out" / "result.json")
    data = json.loads(path.read_text())
    assert data["classes"]["bed"]["AP"] is None and data["AP"] == pytest.approx(result["AP"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        json.dumps(data, allow_nan=False)
