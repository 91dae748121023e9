"""Official evaluation file formats: GT txt, instance submission, semantic txt (docs §8)."""
import os

import numpy as np
import pytest

from pcseg.errors import DataError
from pcseg.io import official
from pcseg.io.official import (encode_gt_ids, read_gt_txt, read_instance_predictions, read_prediction_arrays,
                               read_semantic_txt, write_gt_txt, write_instance_predictions, write_semantic_txt)
from pcseg.structures import InstanceSet


def random_instances(rng, k=4, n=300):
    masks = rng.random((k, n)) < 0.3
    labels = rng.choice([1, 3, 5, 39, 40], k)
    scores = np.round(rng.random(k), 6)
    return InstanceSet(masks, labels, scores)


# --- GT and semantic txt -------------------------------------------------------------------------
def test_encode_gt_ids_follows_the_official_encoding():
    semantic = np.array([1, 5, 5, 7, 0, 5, 40])
    instance = np.array([1, 2, 2, 4, -1, 0, 999])
    assert encode_gt_ids(semantic, instance).tolist() == [1001, 5002, 5002, 7004, 0, 0, 40999]


def test_encode_gt_ids_rejects_ids_that_do_not_fit():
    with pytest.raises(ValueError, match="1000"):
        encode_gt_ids(np.array([5]), np.array([1000]))
    with pytest.raises(ValueError, match="semantic"):
        encode_gt_ids(np.array([5, 5]), np.array([1]))


def test_gt_and_semantic_txt_round_trip(tmp_path):
    ids = np.array([0, 1001, 5002, 5002, 39017, 0])
    path = write_gt_txt(tmp_path / "scene0000_00.txt", ids)
    assert path.read_text() == "0\n1001\n5002\n5002\n39017\n0\n"
    assert read_gt_txt(path).tolist() == ids.tolist()
    sem = np.array([1, 2, 40, 0])
    write_semantic_txt(tmp_path / "sem.txt", sem)
    assert read_semantic_txt(tmp_path / "sem.txt").tolist() == sem.tolist()
    assert list(tmp_path.iterdir()) and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("body, line, problem", [
    ("1\n2\nx\n", 3, "not an integer"),
    ("1\n1.0\n", 2, "not an integer"),
    ("1\n\n2\n", 2, "blank line"),
])
def test_read_gt_txt_names_file_and_line(tmp_path, body, line, problem):
    path = tmp_path / "scene0001_00.txt"
    path.write_text(body)
    with pytest.raises(DataError, match=problem) as err:
        read_gt_txt(path)
    assert str(path) in str(err.value) and f"line {line}" in str(err.value)


def test_read_gt_txt_tolerates_trailing_blank_lines_and_reports_missing_file(tmp_path):
    (tmp_path / "a.txt").write_text("5001\n5001\n\n")
    assert read_gt_txt(tmp_path / "a.txt").tolist() == [5001, 5001]
    with pytest.raises(DataError, match="not found"):
        read_gt_txt(tmp_path / "missing.txt")


# --- instance submission -------------------------------------------------------------------------
def test_instance_predictions_round_trip(tmp_path):
    inst = random_instances(np.random.default_rng(0))
    txt = write_instance_predictions(tmp_path, "scene0002_00", inst)
    lines = txt.read_text().splitlines()
    assert lines[0] == f"predicted_masks/scene0002_00_000.txt {inst.labels[0]} {inst.scores[0]:.6f}"
    assert len(lines) == 4
    mask_text = (tmp_path / "predicted_masks" / "scene0002_00_001.txt").read_text()
    assert mask_text.splitlines() == [str(int(v)) for v in inst.masks[1]]
    back = read_instance_predictions(tmp_path, "scene0002_00", num_points=300)
    np.testing.assert_array_equal(back.masks, inst.masks)
    np.testing.assert_array_equal(back.labels, inst.labels)
    np.testing.assert_allclose(back.scores, inst.scores, atol=1e-6)
    assert [p.name for p in tmp_path.rglob(".*")] == []


def test_rewriting_a_scene_with_fewer_instances_removes_stale_masks(tmp_path):
    rng = np.random.default_rng(1)
    write_instance_predictions(tmp_path, "scene0003_00", random_instances(rng, k=4))
    write_instance_predictions(tmp_path, "scene0003_01", random_instances(rng, k=2))
    write_instance_predictions(tmp_path, "scene0003_00", random_instances(rng, k=1))
    names = sorted(p.name for p in (tmp_path / "predicted_masks").iterdir())
    assert names == ["scene0003_00_000.txt", "scene0003_01_000.txt", "scene0003_01_001.txt"]
    assert len(read_instance_predictions(tmp_path, "scene0003_00")) == 1


def test_empty_prediction_file_means_no_instances(tmp_path):
    write_instance_predictions(tmp_path, "scene0004_00", InstanceSet.empty(50))
    assert (tmp_path / "scene0004_00.txt").read_text() == ""
    back = read_instance_predictions(tmp_path, "scene0004_00", num_points=50)
    assert len(back) == 0 and back.masks.shape == (0, 50)


@pytest.mark.parametrize("atomic", [True, False])
def test_failed_write_leaves_no_scene_file_and_no_temporaries(tmp_path, monkeypatch, atomic):
    real = official._write_new_file
    calls = []

    def failing(fd, data):
        calls.append(1)
        if len(calls) == 3:
            os.close(fd)
            raise OSError("disk full")
        return real(fd, data)

    monkeypatch.setattr(official, "_write_new_file", failing)
    with pytest.raises(OSError, match="disk full"):
        write_instance_predictions(tmp_path, "scene0005_00", random_instances(np.random.default_rng(2)),
                                   atomic=atomic)
    assert not (tmp_path / "scene0005_00.txt").exists()
    assert list((tmp_path / "predicted_masks").iterdir()) == []


def test_written_in_place_the_files_are_the_same(tmp_path):
    """``atomic=False`` (a folder renamed whole by its writer): the same bytes, and no temporaries."""
    instances = random_instances(np.random.default_rng(3), k=4)
    write_instance_predictions(tmp_path / "a", "scene0006_00", instances)
    write_instance_predictions(tmp_path / "b", "scene0006_00", instances, atomic=False)
    write_semantic_txt(tmp_path / "a" / "s.txt", np.arange(5))
    write_semantic_txt(tmp_path / "b" / "s.txt", np.arange(5), atomic=False)
    files = {d: sorted(p.relative_to(tmp_path / d) for p in (tmp_path / d).rglob("*") if p.is_file()) for d in "ab"}
    assert files["a"] == files["b"] and len(files["a"]) == 6
    for name in files["a"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_reader_keeps_labels_and_line_order_and_last_line_of_a_repeated_path(tmp_path):
    (tmp_path / "m").mkdir()
    for name, bits in (("a.txt", "1\n0\n1\n"), ("b.txt", "0\n2\n0\n"), ("c.txt", "-1\n0\n0\n")):
        (tmp_path / "m" / name).write_text(bits)
    (tmp_path / "s.txt").write_text("m/b.txt 5.0 0.5\nm/a.txt 1 0.25\nm/c.txt 13 1e-1\nm/../m/b.txt 7 0.75\n")
    masks, labels, scores = read_prediction_arrays(tmp_path, "s", num_points=3)
    assert labels.tolist() == [7, 1, 13] and scores.tolist() == [0.75, 0.25, 0.1]
    assert scores.dtype == np.float64
    assert masks.tolist() == [[False, True, False], [True, False, True], [True, False, False]]


def _write_case(tmp_path, line, mask_text="1\n0\n1\n"):
    (tmp_path / "predicted_masks").mkdir(exist_ok=True)
    (tmp_path / "predicted_masks" / "m.txt").write_text(mask_text)
    (tmp_path / "scene0006_00.txt").write_text(line)


@pytest.mark.parametrize("content, where, problem", [
    ("predicted_masks/m.txt 5\n", "line 1", "3 space-separated fields"),
    ("predicted_masks/m.txt 5 0.9\npredicted_masks/m.txt 5  0.9\n", "line 2", "got 4"),
    ("predicted_masks/m.txt\t5\t0.9\n", "line 1", "got 1"),
    ("predicted_masks/m.txt 5 0.9\n\npredicted_masks/m.txt 5 0.9\n", "line 2", "got 1"),
    ("predicted_masks/m.txt chair 0.9\n", "line 1", "class id"),
    ("predicted_masks/m.txt 5 high\n", "line 1", "score"),
    ("predicted_masks/m.txt 5 nan\n", "line 1", "not finite"),
    ("../predicted_masks/m.txt 5 0.9\n", "line 1", "outside"),
    ("predicted_masks/../../x.txt 5 0.9\n", "line 1", "outside"),
])
def test_bad_prediction_lines_name_file_and_line(tmp_path, content, where, problem):
    _write_case(tmp_path, content)
    with pytest.raises(DataError, match=problem) as err:
        read_instance_predictions(tmp_path, "scene0006_00", num_points=3)
    assert str(tmp_path / "scene0006_00.txt") in str(err.value) and where in str(err.value)


def test_absolute_mask_path_is_rejected(tmp_path):
    _write_case(tmp_path, f"{tmp_path / 'predicted_masks' / 'm.txt'} 5 0.9\n")
    with pytest.raises(DataError, match="relative") as err:
        read_instance_predictions(tmp_path, "scene0006_00", num_points=3)
    assert "scene0006_00.txt" in str(err.value)


@pytest.mark.parametrize("mask_text, problem", [
    ("1\n1.0\n0\n", "line 2: not an integer"),
    ("1\n0\n", "expected 3 lines"),
    ("1\n\n0\n", "line 2: blank line"),
])
def test_bad_mask_files_name_the_mask_file(tmp_path, mask_text, problem):
    _write_case(tmp_path, "predicted_masks/m.txt 5 0.9\n", mask_text)
    with pytest.raises(DataError, match=problem) as err:
        read_instance_predictions(tmp_path, "scene0006_00", num_points=3)
    assert str(tmp_path / "predicted_masks" / "m.txt") in str(err.value)


def test_missing_mask_file_and_missing_scene_file(tmp_path):
    _write_case(tmp_path, "predicted_masks/gone.txt 5 0.9\n")
    with pytest.raises(DataError, match="mask file not found") as err:
        read_instance_predictions(tmp_path, "scene0006_00")
    assert "gone.txt" in str(err.value) and "line 1" in str(err.value)
    with pytest.raises(DataError, match="prediction file not found"):
        read_instance_predictions(tmp_path, "scene9999_00")


def test_masks_of_different_lengths_without_num_points(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.txt").write_text("1\n0\n1\n")
    (tmp_path / "p" / "b.txt").write_text("1\n0\n")
    (tmp_path / "s.txt").write_text("p/a.txt 5 0.9\np/b.txt 5 0.8\n")
    with pytest.raises(DataError, match="first mask") as err:
        read_instance_predictions(tmp_path, "s")
    assert os.path.join("p", "b.txt") in str(err.value)


def test_mask_fast_path_agrees_with_the_general_parser(tmp_path):
    from pcseg.io.official import _binary_lines, _int_lines

    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2, 1000)
    text = "".join(f"{b}\n" for b in bits)
    np.testing.assert_array_equal(_binary_lines(text), bits)
    # anything that is not exactly "0|1\n" per line goes to the general parser, with its rules
    for other, expected in [("0\n2\n", [0, 2]), ("1\n0", [1, 0]), ("01\n1\n", [1, 1]), ("1\n\n", [1])]:
        assert _binary_lines(other) is None
        path = tmp_path / "m.txt"
        path.write_text(other)
        np.testing.assert_array_equal(_int_lines(path, "mask"), expected)
    path.write_text("1.0\n")
    with pytest.raises(DataError, match="line 1"):
        _int_lines(path, "mask")


def test_a_dead_writers_temporary_folder_is_removed_by_the_next_write(tmp_path):
    import subprocess
    import sys

    from pcseg.io.atomic import atomic_path, write_text

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".out.{int(dead.stdout)}.abc123.tmp"
    (stale / "out").mkdir(parents=True)
    alive = tmp_path / ".out.1.def456.tmp"  # pid 1 exists: kept
    alive.mkdir()
    other = tmp_path / f".other.{int(dead.stdout)}.x.tmp"  # another path's: not ours to touch
    other.mkdir()
    with atomic_path(tmp_path / "out") as tmp:
        tmp.mkdir()
    assert not stale.exists() and alive.exists() and other.exists() and (tmp_path / "out").is_dir()
    write_text(tmp_path / "t.txt", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name, "out", "t.txt"])


def test_int_lines_bytes_matches_python_formatting():
    rng = np.random.default_rng(5)
    extremes = np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max, -1, 0, 9, 10, -10, 99, 100])
    for values in (extremes, rng.integers(-10**15, 10**15, 2000), rng.integers(0, 41, 5000), np.arange(-1001, 1002),
                   np.zeros(0, np.int64), np.array([7], np.int32),
                   np.array([0, 99999, 10, 9, 100]), rng.integers(0, 10**5, 3000), np.array([0]), np.array([100000, 3])):
        assert official.int_lines_bytes(values) == "".join(f"{int(v)}\n" for v in values).encode()


def test_member_instances_write_the_same_files_as_dense_masks(tmp_path):
    from pcseg.structures import MemberInstances

    dense = random_instances(np.random.default_rng(4), k=5)
    members = MemberInstances([np.flatnonzero(m) for m in dense.masks], dense.labels, dense.scores, dense.num_points)
    write_instance_predictions(tmp_path / "a", "scene0007_00", dense)
    write_instance_predictions(tmp_path / "b", "scene0007_00", members, atomic=False)
    assert members._masks is None  # written from the members alone
    names = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(names) == 6
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
