"""A user's own point clouds: .ply (plyfile-written, binary and ASCII) and .npz in and out."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from pcseg.errors import DataError
from pcseg.structures import Scene
from pcseg.io.plain import read_point_cloud, write_point_cloud

N = 50


def cloud(seed=0):
    rng = np.random.default_rng(seed)
    return {"points": rng.normal(size=(N, 3)).astype(np.float32),
            "rgb": rng.integers(0, 256, (N, 3), dtype=np.uint8),
            "normals": rng.normal(size=(N, 3)).astype(np.float32),
            "semantic": rng.integers(0, 41, N), "instance": rng.integers(-1, 6, N)}


def write_user_ply(path: Path, fields: dict, text=False, faces=None) -> Path:
    """fields: property name -> 1-D array, written in order with its own dtype."""
    vertex = np.empty(len(next(iter(fields.values()))), [(k, v.dtype.str) for k, v in fields.items()])
    for k, v in fields.items():
        vertex[k] = v
    elements = [PlyElement.describe(vertex, "vertex")]
    if faces is not None:
        face = np.empty(len(faces), [("vertex_indices", "O")])
        face["vertex_indices"] = [np.asarray(f, np.int32) for f in faces]
        elements.append(PlyElement.describe(face, "face"))
    PlyData(elements, text=text).write(str(path))
    return path


def xyz_fields(c):
    return {k: c["points"][:, i] for i, k in enumerate("xyz")}


@pytest.mark.parametrize("text", [False, True])
def test_ply_with_uchar_colours_normals_and_labels(tmp_path, text):
    c = cloud()
    fields = {**xyz_fields(c), **{k: c["rgb"][:, i] for i, k in enumerate(("red", "green", "blue"))},
              **{k: c["normals"][:, i] for i, k in enumerate(("nx", "ny", "nz"))},
              "label": c["semantic"].astype(np.uint16), "instance_id": c["instance"].astype(np.int32)}
    scene = read_point_cloud(write_user_ply(tmp_path / "room.ply", fields, text=text, faces=[[0, 1, 2]]))
    assert scene.name == "room"
    np.testing.assert_array_equal(scene.points, c["points"])
    np.testing.assert_array_equal(scene.colors, (c["rgb"] / 255.0).astype(np.float32))
    np.testing.assert_array_equal(scene.normals, c["normals"])
    np.testing.assert_array_equal(scene.semantic, c["semantic"])
    np.testing.assert_array_equal(scene.instance, c["instance"])
    np.testing.assert_array_equal(scene.faces, [[0, 1, 2]])


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_ply_float_colours_detect_range(tmp_path, scale):
    c = cloud()
    unit = c["rgb"] / 255.0
    fields = {**xyz_fields(c), **{k: (unit[:, i] * scale).astype(np.float32)
                                   for i, k in enumerate(("red", "green", "blue"))}}
    scene = read_point_cloud(write_user_ply(tmp_path / "a.ply", fields))
    np.testing.assert_allclose(scene.colors, unit, atol=1e-6)
    assert scene.semantic is None and scene.instance is None and scene.normals is None


def test_ply_without_colours_gets_default_grey_and_a_warning(tmp_path):
    from pcseg.io.plain import MissingColors

    c = cloud()
    with pytest.warns(MissingColors, match="a.ply: no colours"):
        scene = read_point_cloud(write_user_ply(tmp_path / "a.ply", {**xyz_fields(c), "semantic": c["semantic"].astype(np.int32)}))
    assert np.all(scene.colors == 0.5)
    np.savez(tmp_path / "b.npz", points=c["points"])
    with pytest.warns(MissingColors, match="b.npz: no colours"):
        read_point_cloud(tmp_path / "b.npz")
    np.testing.assert_array_equal(scene.semantic, c["semantic"])


def test_npz_alternative_keys_and_0_255_colours(tmp_path):
    c = cloud()
    np.savez(tmp_path / "a.npz", coord=c["points"].astype(np.float64), rgb=c["rgb"],
             label=c["semantic"], instance=c["instance"])
    scene = read_point_cloud(tmp_path / "a.npz")
    np.testing.assert_array_equal(scene.points, c["points"])
    np.testing.assert_allclose(scene.colors, c["rgb"] / 255.0, atol=1e-7)
    np.testing.assert_array_equal(scene.semantic, c["semantic"])
    np.testing.assert_array_equal(scene.instance, c["instance"])
    # float colours above 1 are 0..255 too; at most 1 they are 0..1
    np.savez(tmp_path / "b.npz", xyz=c["points"], color=c["rgb"].astype(np.float32))
    np.testing.assert_allclose(read_point_cloud(tmp_path / "b.npz").colors, c["rgb"] / 255.0, atol=1e-7)
    np.savez(tmp_path / "c.npz", points=c["points"], colors=c["rgb"] / 255.0)
    np.testing.assert_allclose(read_point_cloud(tmp_path / "c.npz").colors, c["rgb"] / 255.0, atol=1e-7)


@pytest.mark.parametrize("suffix", [".ply", ".npz"])
def test_write_read_round_trip(tmp_path, suffix):
    c = cloud()
    scene = Scene(points=c["points"], colors=c["rgb"] / 255.0, semantic=c["semantic"], instance=c["instance"],
                  normals=c["normals"], faces=[[0, 1, 2], [2, 3, 4]], name="mine")
    back = read_point_cloud(write_point_cloud(scene, tmp_path / f"mine{suffix}"))
    for name in ("points", "colors", "normals", "semantic", "instance", "faces"):
        np.testing.assert_array_equal(getattr(back, name), getattr(scene, name), err_msg=name)
    assert back.name == "mine"


def test_npz_keeps_float_colours_exactly_and_ply_rounds_to_uchar(tmp_path):
    rng = np.random.default_rng(3)
    scene = Scene(points=rng.normal(size=(N, 3)), colors=rng.random((N, 3)))
    np.testing.assert_array_equal(read_point_cloud(write_point_cloud(scene, tmp_path / "a.npz")).colors, scene.colors)
    ply = read_point_cloud(write_point_cloud(scene, tmp_path / "a.ply"))
    np.testing.assert_array_equal(ply.colors, (np.round(scene.colors.astype(np.float64) * 255) / 255.0).astype(np.float32))
    assert ply.semantic is None and ply.faces is None


# --- bad input ------------------------------------------------------------------------------------
def message(path) -> str:
    with pytest.raises(DataError) as e:
        read_point_cloud(path)
    return str(e.value)


def test_npz_missing_points_key(tmp_path):
    np.savez(tmp_path / "a.npz", colors=np.zeros((3, 3)))
    msg = message(tmp_path / "a.npz")
    assert "a.npz: points" in msg and "coord" in msg and "colors" in msg


@pytest.mark.parametrize("key", ["semantic", "instance", "label"])
def test_npz_wrong_label_length(tmp_path, key):
    np.savez(tmp_path / "a.npz", points=np.zeros((5, 3)), **{key: np.zeros(4, int)})
    msg = message(tmp_path / "a.npz")
    assert f"a.npz: {key}" in msg and "5" in msg and "(4,)" in msg


def test_npz_bad_colours_and_labels(tmp_path):
    np.savez(tmp_path / "a.npz", points=np.zeros((5, 3)), rgb=np.zeros((5, 4)))
    assert "a.npz: rgb" in message(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", points=np.zeros((5, 3)), colors=np.full((5, 3), 300.0))
    assert "b.npz: colors" in message(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", points=np.zeros((5, 3)), instance=np.full(5, 1.5))
    assert "c.npz: instance" in message(tmp_path / "c.npz")


def test_non_finite_and_empty(tmp_path):
    pts = np.zeros((6, 3))
    pts[4, 2] = np.nan
    np.savez(tmp_path / "a.npz", points=pts)
    msg = message(tmp_path / "a.npz")
    assert "a.npz: points" in msg and "vertex 4" in msg
    np.savez(tmp_path / "b.npz", points=np.zeros((0, 3)))
    assert "empty" in message(tmp_path / "b.npz")
    c = cloud()
    c["points"][9, 0] = np.inf
    assert "vertex 9" in message(write_user_ply(tmp_path / "c.ply", xyz_fields(c)))


def test_corrupt_files(tmp_path):
    (tmp_path / "a.npz").write_bytes(b"not a zip")
    assert "a.npz" in message(tmp_path / "a.npz")
    ply = write_user_ply(tmp_path / "b.ply", xyz_fields(cloud()))
    ply.write_bytes(ply.read_bytes()[:-5])
    msg = message(ply)
    assert "b.ply" in msg and "truncated" in msg and "vertex" in msg
    ply.write_bytes(b"PNG...")
    assert "b.ply: header" in message(ply)
    assert "file not found" in message(tmp_path / "missing.ply")
    assert "unsupported" in message(tmp_path / "x.xyz")


def test_ply_without_coordinates(tmp_path):
    ply = write_user_ply(tmp_path / "a.ply", {"x": np.zeros(3, np.float32), "y": np.zeros(3, np.float32)})
    msg = message(ply)
    assert "a.ply: vertex" in msg and "'z'" in msg


def test_unsupported_output_suffix_writes_nothing(tmp_path):
    with pytest.raises(DataError, match="unsupported"):
        write_point_cloud(Scene(points=np.zeros((2, 3))), tmp_path / "out.xyz")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("unit, factor, width", [("centimetres", 100.0, 6.5), ("millimetres", 1000.0, 6.5),
                                                 ("millimetres", 1000.0, 40.0)])
def test_a_cloud_in_centimetres_or_millimetres_is_rescaled_to_metres_with_a_warning(tmp_path, unit, factor, width):
    from pcseg.io.plain import UnitsRescaled

    room = np.random.default_rng(1).uniform([0, 0, 0], [width, 5.0, 2.7], (500, 3)).astype(np.float32)
    np.savez(tmp_path / "metres.npz", points=room, colors=np.full((500, 3), 0.3, np.float32))
    np.savez(tmp_path / "other.npz", points=room * factor, colors=np.full((500, 3), 0.3, np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # metres: read as they are, no warning
        np.testing.assert_array_equal(read_point_cloud(tmp_path / "metres.npz").points, room)
    with pytest.warns(UnitsRescaled, match=rf"other.npz: the points span .* read as {unit} .* {width - 0.1:.0f}\.\d m across"):
        scene = read_point_cloud(tmp_path / "other.npz")
    np.testing.assert_allclose(scene.points, room, rtol=1e-5, atol=1e-5)


def test_a_cloud_wider_than_any_unit_allows_is_refused_naming_the_file():
    from pcseg.io.plain import to_metres

    scene = Scene(np.array([[0, 0, 0], [5e8, 1, 1]], np.float32))
    with pytest.raises(DataError, match="huge.ply.*points.*even as millimetres"):
        to_metres(scene, Path("huge.ply"))


def test_pcd_clouds_read_through_read_scene_with_colours_normals_and_clear_errors(tmp_path):
    import open3d as o3d

    from pcseg.io import read_scene
    from pcseg.io.plain import MissingColors

    c = cloud()
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(c["points"].astype(np.float64)))
    pcd.colors = o3d.utility.Vector3dVector(c["rgb"] / 255.0)
    pcd.normals = o3d.utility.Vector3dVector(c["normals"].astype(np.float64))
    assert o3d.io.write_point_cloud(str(tmp_path / "room.pcd"), pcd, write_ascii=False)
    scene = read_scene(tmp_path / "room.pcd")
    assert scene.name == "room" and len(scene) == N
    np.testing.assert_allclose(scene.points, c["points"], atol=1e-6)
    np.testing.assert_allclose(scene.colors, c["rgb"] / 255.0, atol=1 / 255)
    np.testing.assert_allclose(scene.normals, c["normals"], atol=1e-6)
    plain = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(c["points"].astype(np.float64)))
    assert o3d.io.write_point_cloud(str(tmp_path / "xyz.pcd"), plain, write_ascii=True)
    with pytest.warns(MissingColors, match="xyz.pcd: no colours"):
        assert np.all(read_scene(tmp_path / "xyz.pcd").colors == 0.5)
    (tmp_path / "junk.pcd").write_bytes(b"this is not a point cloud")
    with pytest.raises(DataError, match="junk.pcd.*not a PCD file"):
        read_scene(tmp_path / "junk.pcd")
    (tmp_path / "empty.pcd").write_text("VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\n"
                                        "WIDTH 0\nHEIGHT 1\nPOINTS 0\nDATA ascii\n")
    with pytest.raises(DataError, match="empty.pcd.*no points"):
        read_scene(tmp_path / "empty.pcd")


@pytest.mark.parametrize("up, axis", [("z", [0, 0, 1]), ("-z", [0, 0, -1]), ("y", [0, 1, 0]), ("-y", [0, -1, 0]),
                                      ("x", [1, 0, 0]), ("-x", [-1, 0, 0])])
def test_each_up_axis_is_turned_to_plus_z_by_a_proper_rotation(up, axis):
    from pcseg.cli import UP_AXES
    from pcseg.io.plain import UP_CHOICES, UP_ROTATIONS

    assert set(UP_AXES) == set(UP_CHOICES) == set(UP_ROTATIONS) | {"auto"}
    rotation = UP_ROTATIONS[up]
    np.testing.assert_allclose(rotation @ np.array(axis), [0, 0, 1])
    assert np.isclose(np.linalg.det(rotation), 1.0) and np.allclose(rotation @ rotation.T, np.eye(3))


def test_a_y_up_cloud_read_with_up_y_is_the_z_up_cloud(tmp_path):
    from pcseg.io import read_scene

    c = cloud()
    z_up = c["points"]
    y_up = np.stack([z_up[:, 0], z_up[:, 2], -z_up[:, 1]], 1)  # how a y-up export stores the same room
    np.savez(tmp_path / "y.npz", points=y_up, colors=c["rgb"], normals=np.stack(
        [c["normals"][:, 0], c["normals"][:, 2], -c["normals"][:, 1]], 1))
    scene = read_scene(tmp_path / "y.npz", up="y")
    np.testing.assert_allclose(scene.points, z_up, atol=1e-6)
    np.testing.assert_allclose(scene.normals, c["normals"], atol=1e-6)
    with pytest.raises(DataError, match="y.npz: up: expected one of z, -z, y, -y, x, -x, auto, got 'w'"):
        read_scene(tmp_path / "y.npz", up="w")
    folder = tmp_path / "scans" / "scene0000_00"
    folder.mkdir(parents=True)
    with pytest.raises(DataError, match="applies to plain point clouds"):
        read_scene(folder, up="y")


@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_las_and_laz_clouds_are_read_moved_to_their_corner_with_16_bit_colours(tmp_path, suffix):
    laspy = pytest.importorskip("laspy")
    from pcseg.io import read_scene

    c = cloud()
    las = laspy.LasData(laspy.LasHeader(point_format=3, version="1.2"))
    las.header.offsets = [500000.0, 4000000.0, 100.0]  # georeferenced, as lidar is (UTM metres)
    las.header.scales = [0.001, 0.001, 0.001]
    corner = np.array([500012.0, 4000034.0, 101.0])
    xyz = corner + (c["points"] - c["points"].min(0))
    las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    las.red, las.green, las.blue = (c["rgb"][:, i].astype(np.uint16) * 257 for i in range(3))
    las.write(tmp_path / f"scan{suffix}")
    scene = read_scene(tmp_path / f"scan{suffix}")
    assert scene.name == "scan" and len(scene) == N
    np.testing.assert_allclose(scene.points, c["points"] - c["points"].min(0), atol=2e-3)
    np.testing.assert_allclose(scene.colors, c["rgb"] / 255.0, atol=1e-6)
    (tmp_path / f"bad{suffix}").write_bytes(b"LASF but not really")
    with pytest.raises(DataError, match=f"bad{suffix}: not a readable LAS"):
        read_scene(tmp_path / f"bad{suffix}")


@pytest.mark.parametrize("spans, named", [((4.0, 3.0, 0.0), "0 m along z"), ((4.0, 0.0, 0.004), "0 m along y, 0.004 m along z")])
def test_a_flat_cloud_is_refused_with_its_name(tmp_path, spans, named):
    from pcseg.io import read_scene

    points = (np.random.default_rng(0).random((500, 3)) * spans).astype(np.float32)
    np.savez(tmp_path / "plan.npz", points=points, colors=np.full((500, 3), 0.5, np.float32))
    with pytest.raises(DataError, match=f"plan.npz: points: the points are flat: they span {named}"):
        read_scene(tmp_path / "plan.npz")
