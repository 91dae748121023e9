import numpy as np
import pytest
import torch

from pcseg import Batch, InstanceSet, Scene
from pcseg.structures import MemberInstances


def make_scene(n=10, name="s"):
    rng = np.random.default_rng(0)
    return Scene(rng.random((n, 3)), rng.random((n, 3)), semantic=np.r_[[5] * (n // 2), [1] * (n - n // 2)],
                 instance=np.r_[[1] * (n // 2), [-1] * (n - n // 2)], name=name)


def test_scene_casts_dtypes_and_defaults_colors():
    s = Scene(np.zeros((4, 3), np.float64))
    assert s.points.dtype == np.float32 and s.colors.shape == (4, 3) and s.colors.dtype == np.float32
    assert s.semantic is None and not s.has_labels and len(s) == 4


@pytest.mark.parametrize("kwargs, message", [
    (dict(points=np.zeros((4, 2))), "points: expected shape (N, 3)"),
    (dict(points=np.zeros((4, 3)), colors=np.zeros((3, 3))), "colors: has 3 rows but the scene has 4"),
    (dict(points=np.zeros((4, 3)), semantic=np.zeros(5)), "semantic: has 5 rows"),
    (dict(points=np.zeros((4, 3)), instance=np.array([0.5, 1, 2, 3])), "instance: expected integers"),
    (dict(points=np.array([[0, 0, 0], [np.nan, 0, 0]])), "non-finite coordinate at point 1"),
    (dict(points=np.zeros((3, 3)), faces=np.array([[0, 1, 3]])), "faces: vertex index out of range"),
])
def test_scene_validation_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Scene(**kwargs)


def test_scene_boolean_and_slice_selection():
    s = make_scene(10)
    sel = s[s.semantic == 5]
    assert len(sel) == 5 and np.all(sel.semantic == 5) and np.all(sel.instance == 1)
    np.testing.assert_array_equal(s[2:4].points, s.points[2:4])
    with pytest.raises(IndexError):
        s[np.ones(3, bool)]


def test_scene_alignment_applies_the_matrix():
    m = np.eye(4)
    m[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    m[:3, 3] = [1, 2, 3]
    s = Scene(np.array([[1.0, 0, 0]]), axis_alignment=m)
    np.testing.assert_allclose(s.aligned().points, [[1, 3, 3]])
    assert s.aligned().axis_alignment is None


def test_instance_set_from_ids_majority_label_and_roundtrip():
    ids = np.array([1, 1, 1, 2, 2, -1, 0])
    sem = np.array([5, 5, 7, 3, 3, 1, 1])
    inst = InstanceSet.from_ids(ids, sem)
    assert inst.labels.tolist() == [5, 3]
    assert inst.masks.sum(1).tolist() == [3, 2]
    assert inst.to_ids().tolist() == [1, 1, 1, 2, 2, 0, 0]
    assert len(inst[inst.labels == 3]) == 1 and len(inst[:0]) == 0


def test_instance_set_validation():
    with pytest.raises(ValueError, match="labels: has 1 rows"):
        InstanceSet(np.zeros((2, 5), bool), np.array([1]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="NaN or infinite score"):
        InstanceSet(np.zeros((1, 5), bool), np.array([1]), np.array([np.nan]))
    assert len(InstanceSet.empty(7)) == 0 and InstanceSet.empty(7).num_points == 7


def test_to_ids_highest_score_wins_overlaps():
    masks = np.array([[1, 1, 0], [0, 1, 1]], bool)
    inst = InstanceSet(masks, np.array([5, 5]), np.array([0.2, 0.9]))
    assert inst.to_ids().tolist() == [1, 2, 2]


def test_member_instances_behave_as_their_dense_masks():
    rng = np.random.default_rng(0)
    dense = InstanceSet(rng.random((5, 200)) < 0.2, [3, 5, 5, 39, 4], rng.random(5).astype(np.float32))
    members = MemberInstances([np.flatnonzero(m) for m in dense.masks], dense.labels, dense.scores, 200)
    assert members._masks is None  # nothing dense until asked for
    assert len(members) == 5 and members.num_points == 200
    assert members.sizes().tolist() == dense.sizes().tolist()
    assert np.array_equal(members.to_ids(), dense.to_ids())
    assert np.array_equal(members.labels_per_point(), dense.labels_per_point())
    assert members.point_indices(2).tolist() == dense.point_indices(2).tolist()
    for index in ([4, 0], np.array([True, False, True, False, True]), slice(1, 3)):
        part = members[index]
        assert isinstance(part, MemberInstances) and np.array_equal(part.masks, dense[index].masks)
        assert np.array_equal(part.scores, dense[index].scores)
    assert np.array_equal(members.masks, dense.masks)
    empty = MemberInstances([], np.zeros(0), np.zeros(0), 7)
    assert len(empty) == 0 and empty.masks.shape == (0, 7) and empty.to_ids().tolist() == [0] * 7
    for bad in ([np.array([3, 200])], [np.array([5, 4])], [np.array([-1])], [np.array([2, 2])]):
        with pytest.raises(ValueError, match="members"):
            MemberInstances(bad, [3], [0.5], 200)
    with pytest.raises(ValueError, match="labels"):
        MemberInstances([np.array([1])], [3, 4], [0.5], 200)


def test_batch_packs_scenes_with_offsets_and_selects():
    a, b = make_scene(10, "a"), make_scene(6, "b")
    batch = Batch.from_scenes([a, b])
    assert batch.offset.tolist() == [10, 16] and len(batch) == 2 and batch.names == ("a", "b")
    assert batch.batch_index.tolist() == [0] * 10 + [1] * 6
    assert [t.shape[0] for t in batch.split(batch.points)] == [10, 6]
    torch.testing.assert_close(batch.split(batch.points)[1], torch.from_numpy(b.points))
    sel = batch[batch.semantic == 5]
    assert sel.offset.tolist() == [5, 8] and sel.batch_index.tolist() == [0] * 5 + [1] * 3


def test_batch_validation():
    with pytest.raises(ValueError, match="offset"):
        Batch(torch.zeros(4, 3), torch.zeros(4, 1), torch.tensor([3]))
    with pytest.raises(ValueError, match="features"):
        Batch(torch.zeros(4, 3), torch.zeros(3, 1), torch.tensor([4]))
    with pytest.raises(ValueError, match="no scenes"):
        Batch.from_scenes([])
