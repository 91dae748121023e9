"""pcseg's compact instance file: round trips, the readers of a prediction folder, bad files named."""
import numpy as np
import pytest

from pcseg.errors import DataError
from pcseg.evaluation.folders import evaluate_folders
from pcseg.io.compact import compact_path, read_compact_instances, write_compact_instances
from pcseg.io.official import (encode_gt_ids, read_instance_predictions, read_prediction_arrays,
                               write_gt_txt, write_instance_predictions)
from pcseg.structures import InstanceSet, MemberInstances


def _random_instances(rng, k=6, n=500):
    masks = rng.random((k, n)) < rng.uniform(0.01, 0.3, (k, 1))
    masks[2] = False  # an empty instance survives the trip
    return InstanceSet(masks, rng.integers(1, 40, k), rng.random(k).astype(np.float32))


@pytest.mark.parametrize("members", [False, True])
def test_round_trip_keeps_masks_labels_scores_and_order(tmp_path, members):
    inst = _random_instances(np.random.default_rng(0))
    if members:
        inst = MemberInstances([np.flatnonzero(m) for m in inst.masks], inst.labels, inst.scores, inst.num_points)
    path = write_compact_instances(compact_path(tmp_path, "s"), inst)
    assert path == tmp_path / "instances" / "s.npz"
    got = read_compact_instances(path, num_points=500)
    assert isinstance(got, MemberInstances) and got.num_points == 500
    np.testing.assert_array_equal(got.masks, inst.masks)
    np.testing.assert_array_equal(got.labels, inst.labels)
    np.testing.assert_array_equal(got.scores, inst.scores)


def test_empty_set_round_trips(tmp_path):
    empty = InstanceSet(np.zeros((0, 7), bool), np.zeros(0, np.int64), np.zeros(0, np.float32))
    got = read_compact_instances(write_compact_instances(tmp_path / "e.npz", empty))
    assert len(got) == 0 and got.num_points == 7


def test_folder_readers_and_the_evaluator_read_compact_as_the_official_files(tmp_path):
    rng = np.random.default_rng(1)
    n, classes = 3000, np.array([3, 5, 7, 3, 5, 7])
    instance = np.repeat(np.arange(1, 7), 500)  # six GT objects of 500 points (the evaluator needs >= 100)
    gt_ids = encode_gt_ids(classes[instance - 1], instance)
    official, compact = tmp_path / "official", tmp_path / "compact"
    for scene in ("a", "b"):
        write_gt_txt(tmp_path / "gt" / f"{scene}.txt", gt_ids)
        masks = (instance[None, :] == np.arange(1, 9)[:, None]) ^ (rng.random((8, n)) < 0.02)  # noisy objects
        inst = InstanceSet(masks, np.r_[classes, 3, 5], rng.random(8).astype(np.float32))
        write_instance_predictions(official, scene, inst)
        write_compact_instances(compact_path(compact, scene), inst)
        members, labels, scores = read_prediction_arrays(compact, scene, num_points=n)
        assert isinstance(members, MemberInstances)  # the evaluator counts point lists: no K x N masks
        np.testing.assert_array_equal(members.masks, inst.masks)
        np.testing.assert_array_equal(labels, inst.labels)
        assert scores.dtype == np.float64 and np.allclose(scores, inst.scores, atol=1e-6)
        assert isinstance(read_instance_predictions(compact, scene, num_points=n), MemberInstances)
    want = evaluate_folders(tmp_path / "gt", official, progress=False)
    got = evaluate_folders(tmp_path / "gt", compact, progress=False)
    assert want["AP"] > 0
    for key in ("AP", "AP50", "AP25"):
        assert got[key] == pytest.approx(want[key], abs=1e-6)  # official scores carry 6 decimals


def _write(path, **arrays):
    base = dict(indices=np.array([1, 3, 0, 2], np.int32), offsets=np.array([0, 2, 4]), labels=np.array([3, 5]),
                scores=np.array([0.5, 0.25], np.float32), num_points=np.int64(4))
    base.update(arrays)
    base = {k: v for k, v in base.items() if v is not None}
    np.savez(path, **base)
    return path


@pytest.mark.parametrize("arrays, field, words", [
    (dict(labels=None), "labels", "missing"),
    (dict(indices=np.array([1, 3, 0, 9])), "indices", "out of range for 4 points"),
    (dict(indices=np.array([3, 1, 0, 2])), "indices", "sorted and distinct"),
    (dict(indices=np.array([1, 1, 0, 2])), "indices", "sorted and distinct"),
    (dict(offsets=np.array([0, 3])), "offsets", "must rise from 0"),
    (dict(offsets=np.array([0, 3, 2])), "offsets", "must rise from 0"),
    (dict(scores=np.array([0.5])), "scores", "1 scores for 2 labels"),
    (dict(scores=np.array([0.5, np.nan])), "scores", "not finite"),
    (dict(num_points=np.array([4, 4])), "num_points", "one integer"),
    (dict(labels=np.array([3.0, 5.0])), "labels", "1-D integer array"),
])
def test_bad_files_name_the_file_and_field(tmp_path, arrays, field, words):
    path = _write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=words) as err:
        read_compact_instances(path)
    assert str(path) in str(err.value) and err.value.field == field


def test_a_good_file_reads_and_wrong_scene_size_or_corrupt_file_is_named(tmp_path):
    path = _write(tmp_path / "ok.npz")
    got = read_compact_instances(path)
    assert [m.tolist() for m in got.members] == [[1, 3], [0, 2]]
    with pytest.raises(DataError, match="4, but the scene has 5 points"):
        read_compact_instances(path, num_points=5)
    (tmp_path / "broken.npz").write_bytes(path.read_bytes()[:50])
    with pytest.raises(DataError, match="not a readable .npz") as err:
        read_compact_instances(tmp_path / "broken.npz")
    assert "broken.npz" in str(err.value)
    with pytest.raises(DataError, match="not found"):
        read_compact_instances(tmp_path / "none.npz")
