"""ScanNet v2 scene folders: labels as the official helper builds them, lossless round trips,
test scans, dataset helpers and clear errors on bad input."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData
from scannet_fixtures import (FIXTURE_TSV, GROUPS, META, SEG_IDS, TSV_NAME, official_helper_labels,
                              reference_labels, write_ply, write_scene, write_tsv)

from pcseg.errors import DataError
from pcseg.labels import write_label_tsv
from pcseg.structures import Scene, SegGroup
from pcseg.io.scannet import (find_labels_tsv, list_scenes, read_scannet_scene, read_split,
                              write_scannet_scene)

SID = "scene0000_00"


def files_of(folder: Path, sid: str = SID):
    return (folder / f"{sid}_vh_clean_2.ply", folder / f"{sid}_vh_clean_2.0.010000.segs.json",
            folder / f"{sid}.aggregation.json", folder / f"{sid}.txt")


@pytest.fixture
def dataset(tmp_path):
    """A dataset root with the tsv beside scans/ and the standard fixture scene."""
    write_tsv(tmp_path / TSV_NAME)
    write_scene(tmp_path / "scans" / SID)
    return tmp_path


def read_quiet(folder, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_scannet_scene(folder, **kw)


def assert_scenes_equal(a: Scene, b: Scene):
    assert a.name == b.name
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.colors, b.colors)
    for name in ("faces", "segments", "semantic", "instance", "axis_alignment"):
        va, vb = getattr(a, name), getattr(b, name)
        assert (va is None) == (vb is None), name
        if va is not None:
            np.testing.assert_array_equal(va, vb, err_msg=name)
    assert a.seg_groups == b.seg_groups
    assert list(a.meta.items()) == list(b.meta.items())


# --- labels ---------------------------------------------------------------------------------------
def test_labels_match_reference_per_vertex_loop(dataset):
    folder = dataset / "scans" / SID
    with pytest.warns(UserWarning, match="mystery gadget"):
        scene = read_scannet_scene(folder)
    ply, segs, agg, _ = files_of(folder)
    sem, inst = reference_labels(segs, agg, dataset / TSV_NAME)
    np.testing.assert_array_equal(scene.semantic, sem)
    np.testing.assert_array_equal(scene.instance, inst)
    # the cases the fixture was built for, spelled out
    seg = np.repeat(SEG_IDS, 6)
    assert set(scene.semantic[seg == 3]) == {FIXTURE_TSV["table"]}   # overlap: later group wins
    assert set(scene.instance[seg == 3]) == {2}                       # objectId 1 + 1
    assert set(scene.semantic[seg == 42]) == {0} and set(scene.instance[seg == 42]) == {3}  # unknown raw category
    assert set(scene.semantic[np.isin(seg, [23, 5])]) == {0}          # unannotated
    assert set(scene.instance[np.isin(seg, [23, 5])]) == {-1}
    assert set(scene.semantic[seg == 100]) == {FIXTURE_TSV["couch"]}


def test_labels_agree_with_official_helper_code(dataset):
    folder = dataset / "scans" / SID
    scene = read_quiet(folder)
    _, segs, agg, _ = files_of(folder)
    sem, inst = official_helper_labels(segs, agg, dataset / TSV_NAME)
    np.testing.assert_array_equal(scene.semantic, sem)
    np.testing.assert_array_equal(scene.instance, inst)


def test_cross_label_overlap_follows_the_official_helper_code(tmp_path):
    # chair(seg 1), table(seg 2), chair(seg 2): the official helper fills classes per raw category in
    # order of first appearance (chair, then table), so seg 2 is a table, while its instance is the
    # last group's (object 3). We reproduce that, not the per-group rule.
    groups = [{"id": 0, "objectId": 0, "segments": [1], "label": "chair"},
              {"id": 1, "objectId": 1, "segments": [2], "label": "table"},
              {"id": 2, "objectId": 2, "segments": [2], "label": "chair"}]
    write_tsv(tmp_path / TSV_NAME)
    folder = write_scene(tmp_path / "scans" / SID, seg_indices=[1] * 4 + [2] * 4, groups=groups)
    scene = read_scannet_scene(folder)
    _, segs, agg, _ = files_of(folder)
    sem, inst = official_helper_labels(segs, agg, tmp_path / TSV_NAME)
    np.testing.assert_array_equal(scene.semantic, sem)
    np.testing.assert_array_equal(scene.instance, inst)
    assert scene.semantic[4:].tolist() == [7] * 4 and scene.instance[4:].tolist() == [3] * 4
    assert reference_labels(segs, agg, tmp_path / TSV_NAME)[0][4:].tolist() == [5] * 4


def test_duplicate_object_ids_and_aliasing_match_the_official_helper(tmp_path):
    # two groups share objectId 4 (the later one's segments win the dict), and chairs alias their
    # segment lists: every case must equal the official code on the same files
    groups = [{"id": 0, "objectId": 4, "segments": [1, 2], "label": "chair"},
              {"id": 1, "objectId": 1, "segments": [3], "label": "chair"},
              {"id": 2, "objectId": 4, "segments": [5], "label": "table"},
              {"id": 3, "objectId": 0, "segments": [2], "label": "couch"}]
    write_tsv(tmp_path / TSV_NAME)
    folder = write_scene(tmp_path / "scans" / SID, seg_indices=[1] * 2 + [2] * 2 + [3] * 2 + [5] * 2,
                         groups=groups)
    scene = read_scannet_scene(folder)
    _, segs, agg, _ = files_of(folder)
    sem, inst = official_helper_labels(segs, agg, tmp_path / TSV_NAME)
    np.testing.assert_array_equal(scene.semantic, sem)
    np.testing.assert_array_equal(scene.instance, inst)


def test_geometry_colours_meta_and_groups(dataset):
    folder = dataset / "scans" / SID
    scene = read_quiet(folder)
    ply = PlyData.read(str(files_of(folder)[0]))
    v = ply["vertex"].data
    np.testing.assert_array_equal(scene.points, np.stack([v["x"], v["y"], v["z"]], 1))
    np.testing.assert_array_equal(scene.colors, (np.stack([v["red"], v["green"], v["blue"]], 1) / 255.0).astype(np.float32))
    np.testing.assert_array_equal(scene.faces, np.stack(ply["face"].data["vertex_indices"]))
    assert scene.name == SID and scene.faces.dtype == np.int32
    np.testing.assert_array_equal(scene.segments, np.repeat(SEG_IDS, 6))
    assert scene.seg_groups == tuple(SegGroup(g["id"], g["objectId"], g["label"], tuple(g["segments"]))
                                     for g in GROUPS)
    axis = np.array([float(x) for x in META[0].split("=")[1].split()]).reshape(4, 4)
    np.testing.assert_array_equal(scene.axis_alignment, axis)
    assert list(scene.meta.items()) == [("colorHeight", "968"), ("colorWidth", "1296"), ("sceneType", "Apartment")]
    aligned = scene.aligned().points
    np.testing.assert_allclose(aligned, scene.points @ axis[:3, :3].T + axis[:3, 3], rtol=1e-5, atol=1e-5)


def test_ascii_ply_reads_like_binary(tmp_path):
    write_tsv(tmp_path / TSV_NAME)
    a = read_quiet(write_scene(tmp_path / "scans" / SID))
    b = read_quiet(write_scene(tmp_path / "other" / "scans" / SID, text_ply=True), labels_tsv=tmp_path / TSV_NAME)
    assert_scenes_equal(a, b)


def test_test_scan_has_no_labels_and_needs_no_tsv(tmp_path):
    folder = write_scene(tmp_path / "scans_test" / "scene0707_00", annotated=False,
                         meta=["colorHeight = 968", "sceneType = Office"], points=np.zeros((5, 3), np.float32) + 1)
    scene = read_scannet_scene(folder)
    assert scene.semantic is None and scene.instance is None and scene.segments is None
    assert scene.seg_groups is None and scene.axis_alignment is None and not scene.has_labels
    assert len(scene) == 5 and scene.meta == {"colorHeight": "968", "sceneType": "Office"}
    # ply alone (no meta) also reads
    (folder / "scene0707_00.txt").unlink()
    assert read_scannet_scene(folder).meta == {}


def test_unannotated_scene_in_scans_warns(tmp_path):
    folder = write_scene(tmp_path / "scans" / SID, annotated=False)
    with pytest.warns(UserWarning, match="no scene0000_00.aggregation.json"):
        assert read_scannet_scene(folder).semantic is None


def test_explicit_labels_tsv_overrides_search(tmp_path):
    folder = write_scene(tmp_path / "elsewhere" / SID)
    tsv = write_tsv(tmp_path / "my.tsv", {**FIXTURE_TSV, "table": 14, "mystery gadget": 40})
    scene = read_scannet_scene(folder, labels_tsv=tsv)
    seg = np.repeat(SEG_IDS, 6)
    assert set(scene.semantic[seg == 15]) == {14} and set(scene.semantic[seg == 42]) == {40}


# --- round trips ----------------------------------------------------------------------------------
def test_read_write_read_is_lossless(dataset, tmp_path):
    a = read_quiet(dataset / "scans" / SID)
    out = write_scannet_scene(a, tmp_path / "out" / "scans" / SID)
    write_tsv(tmp_path / "out" / TSV_NAME)
    b = read_quiet(out)
    assert_scenes_equal(a, b)
    # written in the real format
    ply, segs, agg, meta = files_of(out)
    header = ply.read_bytes().split(b"end_header\n")[0].decode()
    assert "format binary_little_endian 1.0" in header
    assert [ln for ln in header.splitlines() if ln.startswith("property")] == [
        "property float x", "property float y", "property float z", "property uchar red",
        "property uchar green", "property uchar blue", "property uchar alpha",
        "property list uchar int vertex_indices"]
    assert set(PlyData.read(str(ply))["vertex"].data["alpha"]) == {255}
    s = json.loads(segs.read_text())
    assert set(s) == {"params", "sceneId", "segIndices"} and s["sceneId"] == SID
    g = json.loads(agg.read_text())
    assert g["sceneId"] == f"scannet.{SID}" and g["appId"]
    assert g["segmentsFile"] == f"scannet.{SID}_vh_clean_2.0.010000.segs.json"
    assert g["segGroups"] == GROUPS
    assert meta.read_text().splitlines()[0].startswith("axisAlignment = ")


def test_write_read_scene_with_groups(tmp_path):
    rng = np.random.default_rng(1)
    n = 40
    segments = np.repeat([11, 12, 13, 14], 10)
    groups = (SegGroup(0, 0, "chair", (11,)), SegGroup(1, 5, "table", (12, 13)))
    semantic = np.repeat([5, 7, 7, 0], 10)
    instance = np.repeat([1, 6, 6, -1], 10)
    axis = rng.normal(size=(4, 4))
    scene = Scene(points=rng.normal(size=(n, 3)), colors=rng.integers(0, 256, (n, 3)) / 255.0,
                  semantic=semantic, instance=instance, name="scene0042_01", faces=[[0, 1, 2], [3, 4, 39]],
                  segments=segments, seg_groups=groups, axis_alignment=axis, meta={"b": "2", "a": "x = y"})
    write_tsv(tmp_path / TSV_NAME)
    back = read_scannet_scene(write_scannet_scene(scene, tmp_path / "scans" / "scene0042_01"))
    assert_scenes_equal(scene, back)


def test_labelled_cloud_without_groups_gets_derived_groups(tmp_path):
    rng = np.random.default_rng(2)
    n = 60
    instance = np.repeat([3, 1, -1, 7, 2, -1], 10)
    semantic = np.repeat([5, 7, 0, 24, 39, 0], 10)   # chair, table, -, refrigerator, otherfurniture, -
    scene = Scene(points=rng.normal(size=(n, 3)), colors=rng.random((n, 3)), semantic=semantic,
                  instance=instance, name="room")
    write_label_tsv(tmp_path / TSV_NAME)           # the bundled tsv maps the derived raw categories back
    back = read_scannet_scene(write_scannet_scene(scene, tmp_path / "scans" / "room"))
    np.testing.assert_array_equal(back.semantic, semantic)
    np.testing.assert_array_equal(back.instance, instance)
    np.testing.assert_array_equal(back.points, scene.points)
    np.testing.assert_allclose(back.colors, scene.colors, atol=0.5 / 255 + 1e-7)
    assert [g.object_id for g in back.seg_groups] == [0, 1, 2, 6]
    assert back.faces is None


def test_derived_groups_keep_segments_that_respect_instances(tmp_path):
    n = 30
    scene = Scene(points=np.arange(n * 3).reshape(n, 3), semantic=np.repeat([5, 5, 0], 10),
                  instance=np.repeat([1, 1, -1], 10), segments=np.repeat([4, 9, 2], 10), name="s")
    write_label_tsv(tmp_path / TSV_NAME)
    back = read_scannet_scene(write_scannet_scene(scene, tmp_path / "scans" / "s"))
    np.testing.assert_array_equal(back.segments, scene.segments)
    assert back.seg_groups == (SegGroup(0, 0, "chair", (4, 9)),)


# --- writer refusals ------------------------------------------------------------------------------
def leftovers(parent: Path):
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


def test_failed_write_leaves_no_partial_folder(tmp_path):
    scene = Scene(points=np.zeros((4, 3)), name="s", meta={"bad=key": "1"})
    with pytest.raises(DataError, match=r"meta\['bad=key'\]"):
        write_scannet_scene(scene, tmp_path / "scans" / "s")
    assert leftovers(tmp_path / "scans") == []


def test_groups_that_disagree_with_instances_are_refused(tmp_path):
    scene = Scene(points=np.zeros((4, 3)), semantic=[5, 5, 5, 5], instance=[1, 1, 2, 2], segments=[0, 0, 1, 1],
                  seg_groups=(SegGroup(0, 0, "chair", (0, 1)),), name="s")
    with pytest.raises(DataError) as e:
        write_scannet_scene(scene, tmp_path / "s")
    assert "Scene.instance" in str(e.value) and "vertex 2" in str(e.value)
    assert leftovers(tmp_path) == []


def test_existing_folder_with_other_files_is_not_replaced(dataset):
    folder = dataset / "scans" / SID
    (folder / f"{SID}.sens").write_bytes(b"x")
    scene = read_quiet(folder)
    with pytest.raises(DataError, match="other files"):
        write_scannet_scene(scene, folder)
    assert (folder / f"{SID}.sens").exists()
    (folder / f"{SID}.sens").unlink()
    write_scannet_scene(scene, folder)  # only our own files: replaced in place
    assert_scenes_equal(read_quiet(folder), scene)


# --- bad input ------------------------------------------------------------------------------------
def error_of(folder, **kw) -> str:
    with pytest.raises(DataError) as e:
        read_quiet(folder, **kw)
    return str(e.value)


def test_missing_mesh_is_named(tmp_path):
    folder = write_scene(tmp_path / "scans" / SID)
    files_of(folder)[0].unlink()
    msg = error_of(folder)
    assert f"{SID}_vh_clean_2.ply" in msg and "missing" in msg
    assert "not a folder" in error_of(tmp_path / "nope")


def test_missing_segs_is_named(dataset):
    folder = dataset / "scans" / SID
    files_of(folder)[1].unlink()
    msg = error_of(folder)
    assert f"{SID}_vh_clean_2.0.010000.segs.json" in msg and "aggregation.json" in msg


def test_missing_tsv_says_pass_labels(tmp_path):
    folder = write_scene(tmp_path / "scans" / SID)
    msg = error_of(folder)
    assert "--labels" in msg and TSV_NAME in msg


@pytest.mark.parametrize("keep", [0, 200, -7])
def test_truncated_ply(dataset, keep):
    ply = files_of(dataset / "scans" / SID)[0]
    data = ply.read_bytes()
    ply.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    msg = error_of(dataset / "scans" / SID)
    assert ply.name in msg
    if keep != 0:
        assert "truncated" in msg or "header" in msg


def test_garbage_ply(dataset):
    ply = files_of(dataset / "scans" / SID)[0]
    ply.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex what\nend_header\n")
    msg = error_of(dataset / "scans" / SID)
    assert ply.name in msg and "header" in msg


@pytest.mark.parametrize("which", [1, 2])
def test_corrupt_json(dataset, which):
    path = files_of(dataset / "scans" / SID)[which]
    path.write_text(path.read_text()[:-10])
    msg = error_of(dataset / "scans" / SID)
    assert path.name in msg and "corrupt JSON" in msg and "line 1" in msg


def test_vertex_count_mismatch(tmp_path):
    write_tsv(tmp_path / TSV_NAME)
    folder = write_scene(tmp_path / "scans" / SID, points=np.zeros((47, 3), np.float32))
    msg = error_of(folder)
    assert f"{SID}_vh_clean_2.0.010000.segs.json: segIndices" in msg and "48" in msg and "47" in msg


def test_aggregation_segment_absent_from_segs_warns(dataset):
    folder = dataset / "scans" / SID
    groups = [*GROUPS, {"id": 6, "objectId": 5, "segments": [999, 23], "label": "wall"}]
    write_scene(folder, groups=groups)
    with pytest.warns(UserWarning, match=r"aggregation\.json.*999"), pytest.warns(UserWarning, match="mystery"):
        scene = read_scannet_scene(folder)
    seg = np.repeat(SEG_IDS, 6)
    assert set(scene.instance[seg == 23]) == {6} and set(scene.semantic[seg == 23]) == {1}


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_coordinate_names_vertex(tmp_path, bad):
    points = np.ones((48, 3), np.float32)
    points[17, 1] = bad
    folder = write_scene(tmp_path / "scans" / SID, points=points)
    msg = error_of(folder, labels_tsv=write_tsv(tmp_path / TSV_NAME))
    assert f"{SID}_vh_clean_2.ply" in msg and "vertex 17" in msg and "x/y/z" in msg


def test_empty_scene(tmp_path):
    folder = tmp_path / "scans_test" / SID
    folder.mkdir(parents=True)
    write_ply(folder / f"{SID}_vh_clean_2.ply", np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), [])
    msg = error_of(folder)
    assert f"{SID}_vh_clean_2.ply" in msg and "empty" in msg


def test_bad_aggregation_fields(dataset):
    folder = dataset / "scans" / SID
    groups = [dict(g) for g in GROUPS]
    del groups[1]["objectId"]
    write_scene(folder, groups=groups)
    assert "segGroups[1].objectId: missing" in error_of(folder)
    groups[1]["objectId"] = 1
    groups[2]["segments"] = [42, "x"]
    write_scene(folder, groups=groups)
    assert "segGroups[2].segments" in error_of(folder)


def test_bad_axis_alignment(dataset):
    folder = dataset / "scans" / SID
    write_scene(folder, meta=["axisAlignment = 1 0 0 0 0 1 0 0 0 0 1 0 0 0 0", "sceneType = Office"])
    msg = error_of(folder)
    assert f"{SID}.txt: axisAlignment" in msg
    write_scene(folder, meta=["just words"])
    assert f"{SID}.txt: line 1" in error_of(folder)


@pytest.mark.parametrize("text", [False, True])
def test_non_triangle_face(tmp_path, text):
    folder = write_scene(tmp_path / "scans_test" / SID, annotated=False, faces=[[0, 1, 2], [0, 1, 2, 3]],
                         text_ply=text)
    msg = error_of(folder)
    assert f"{SID}_vh_clean_2.ply" in msg and "face" in msg and "triangle" in msg


def test_face_index_out_of_range(tmp_path):
    folder = write_scene(tmp_path / "scans_test" / SID, annotated=False, faces=[[0, 1, 48]])
    assert "face 0" in error_of(folder)


# --- dataset helpers ------------------------------------------------------------------------------
def test_list_scenes_from_root_scans_or_scene(tmp_path):
    for sid in ("scene0002_00", "scene0000_01", "scene0001_00"):
        write_scene(tmp_path / "scans" / sid, annotated=False)
    (tmp_path / "scans" / "notes").mkdir()
    want = [tmp_path / "scans" / s for s in ("scene0000_01", "scene0001_00", "scene0002_00")]
    assert list_scenes(tmp_path) == want
    assert list_scenes(tmp_path / "scans") == want
    assert list_scenes(want[1]) == [want[1]]
    with pytest.raises(DataError, match="no ScanNet scene folders"):
        list_scenes(tmp_path / "scans" / "notes")


def test_read_split(tmp_path):
    (tmp_path / "scans").mkdir()
    (tmp_path / "scannetv2_val.txt").write_text("scene0011_00\n\nscene0011_01  \n")
    assert read_split(tmp_path, "val") == ["scene0011_00", "scene0011_01"]
    assert read_split(tmp_path / "scans", "val") == ["scene0011_00", "scene0011_01"]
    with pytest.raises(DataError, match="scannetv2_train.txt"):
        read_split(tmp_path, "train")


def test_find_labels_tsv(dataset):
    tsv = dataset / TSV_NAME
    assert find_labels_tsv(dataset) == tsv
    assert find_labels_tsv(dataset / "scans") == tsv
    assert find_labels_tsv(dataset / "scans" / SID) == tsv
    assert find_labels_tsv(tsv) == tsv
    tsv.unlink()
    assert find_labels_tsv(dataset / "scans" / SID) is None


@pytest.mark.parametrize("text", [
    '{"params": {"kThresh": "0.0001"}, "sceneId": "s", "segIndices": [4, -1 ,\n 7, 0]}',
    '{"segIndices":[4,-1,7,0],"sceneId":"s"}',
])
def test_segs_json_read_fast_as_json_reads_it(tmp_path, text):
    from pcseg.io.scannet import _plain_seg_indices, read_segments

    path = tmp_path / "s.segs.json"
    path.write_text(text)
    assert _plain_seg_indices(text.encode()).tolist() == json.loads(text)["segIndices"]
    assert read_segments(path, 4).tolist() == [4, -1, 7, 0]


@pytest.mark.parametrize("text, problem", [
    ('{"segIndices": [1, 2.5, 3, 4]}', "expected a list of integers"),
    ('{"segIndices": [1, true, 3, 4]}', "expected a list of integers"),
    ('{"segIndices": [1, 2, 3, 4]', "corrupt JSON"),
    ('{"segIndices": [1, 2, 3, 4], "x": [}', "corrupt JSON"),
    ('{"a": {"segIndices": [1, 2, 3, 4]}}', "missing"),
    ('{"segIndices": [1, 2, 3, 99999999999999999999]}', "outside the int64 range"),
])
def test_a_segs_json_that_is_not_plain_is_read_by_json_and_named(tmp_path, text, problem):
    from pcseg.io.scannet import _plain_seg_indices, read_segments

    path = tmp_path / "s.segs.json"
    path.write_text(text)
    assert _plain_seg_indices(text.encode()) is None
    with pytest.raises(DataError, match=problem) as caught:
        read_segments(path, 4)
    assert "s.segs.json" in str(caught.value)
