"""Estimating which way is up in a cloud that does not say (--up auto): a synthetic room turned to
each file axis and to random orientations is found upright again; read_scene says what it did."""
import warnings

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pcseg.errors import DataError
from pcseg.io import read_scene
from pcseg.io.plain import UP_ROTATIONS, UpEstimated
from pcseg.io.scannet import list_scenes, read_scannet_scene
from pcseg.io.upright import WALL_HEADING, _turn_about_z, canonical_heading, estimate_up, manhattan_frame
from pcseg.synth import write_synthetic_dataset


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    root = tmp_path_factory.mktemp("upright")
    write_synthetic_dataset(root / "synth", 1, seed=11, workers=1, progress=False)
    return read_scannet_scene(list_scenes(root / "synth")[0], labels=False)


@pytest.mark.parametrize("axis", sorted(UP_ROTATIONS))
def test_a_room_exported_with_any_file_axis_up_is_found(room, axis):
    to_file = UP_ROTATIONS[axis].T  # how a file with this up axis stores the room
    est = estimate_up(room.points.astype(np.float64) @ to_file.T)
    assert est.axis == axis
    # exactly the axis' rotation, then the room's own turn about the vertical, whichever axis it came in
    np.testing.assert_array_equal(est.rotation, _turn_about_z(est.heading) @ UP_ROTATIONS[axis])
    assert est.heading == pytest.approx(estimate_up(room.points.astype(np.float64)).heading, abs=0.5)
    assert est.floor_share > 0.1 > est.ceiling_share and est.margin > 0


def _canonical(room):
    est = estimate_up(room.points.astype(np.float64))
    return room.points.astype(np.float64) @ est.rotation.T


@pytest.mark.parametrize("seed", range(3))
def test_a_room_in_a_random_orientation_is_found_upright(room, seed):
    turn = Rotation.random(random_state=seed).as_matrix()
    est = estimate_up(room.points.astype(np.float64) @ turn.T)
    true_up = turn @ np.array([0.0, 0.0, 1.0])
    assert np.degrees(np.arccos(np.clip(est.up @ true_up, -1, 1))) < 3
    np.testing.assert_allclose(est.rotation @ est.up, [0, 0, 1], atol=1e-9)
    assert np.isclose(np.linalg.det(est.rotation), 1.0) and np.allclose(est.rotation @ est.rotation.T, np.eye(3))
    # any orientation reaches the network the same way: walls on the axes, the same quarter turn
    moved = np.abs((room.points.astype(np.float64) @ turn.T) @ est.rotation.T - _canonical(room)).max(1)
    assert np.median(moved) < 0.01 and moved.max() < 0.05


def test_canonical_heading_is_fixed_by_the_walls_the_long_side_and_the_mass():
    rng = np.random.default_rng(0)
    # a 6 x 3 m room's walls and floor, a heavy table at its -x end, turned 30 deg about z
    walls = np.concatenate([np.c_[rng.uniform(-3, 3, 2000), np.full(2000, -1.5), rng.uniform(0, 2, 2000)],
                            np.c_[np.full(1000, 3.0), rng.uniform(-1.5, 1.5, 1000), rng.uniform(0, 2, 1000)],
                            np.c_[rng.uniform(-3, 3, 3000), rng.uniform(-1.5, 1.5, 3000), np.zeros(3000)],
                            np.c_[rng.uniform(-2.8, -1.8, 3000), rng.uniform(-1, 1, 3000), np.full(3000, 0.7)]])
    turned = walls @ _turn_about_z(30.0).T
    for direction in ([np.cos(np.radians(30)), np.sin(np.radians(30))],       # one wall direction
                      [-np.sin(np.radians(30)), np.cos(np.radians(30))]):     # or the other
        heading = canonical_heading(turned, np.array(direction + [0.0]))
        # -30 to the axes, 180 to put the table on the +x side, then WALL_HEADING off the axes
        assert heading == pytest.approx((-30 + 180 + WALL_HEADING + 180) % 360 - 180)
    walls = walls @ _turn_about_z(180.0 + WALL_HEADING).T  # already at that heading: no turn
    wall = np.array([np.cos(np.radians(WALL_HEADING)), np.sin(np.radians(WALL_HEADING)), 0.0])
    assert canonical_heading(walls, wall) == 0.0
    assert canonical_heading(walls @ _turn_about_z(2.0).T, wall) == 0.0  # within 3 deg
    assert canonical_heading(walls @ _turn_about_z(-90.0).T, wall) == 90.0  # exact quarter turns


def test_manhattan_frame_of_three_planes():
    rng = np.random.default_rng(0)
    axes = Rotation.random(random_state=1).as_matrix()
    normals = np.concatenate([np.tile(axes[i], (n, 1)) for i, n in enumerate((500, 300, 200))])
    normals += rng.normal(0, 0.02, normals.shape)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    frame = manhattan_frame(normals)
    np.testing.assert_allclose(np.abs(frame @ axes.T), np.eye(3), atol=0.01)  # the most common first


def test_read_scene_auto_turns_a_y_up_cloud_and_says_so(room, tmp_path):
    y_up = room.points @ UP_ROTATIONS["y"]  # rows: R^T p, the y-up file's coordinates
    np.savez(tmp_path / "y.npz", points=y_up, colors=room.colors)
    with pytest.warns(UpEstimated, match=r"y.npz: up estimated as \+y .*walls onto the x and y axes.*--up y "
                                         r"gives it without the estimate"):
        scene = read_scene(tmp_path / "y.npz", up="auto")
    np.testing.assert_allclose(scene.points, _canonical(room), atol=1e-5)
    np.savez(tmp_path / "z.npz", points=room.points, colors=room.colors)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a z-up cloud: nothing to say (its heading only is turned)
        np.testing.assert_allclose(read_scene(tmp_path / "z.npz", up="auto").points, _canonical(room), atol=1e-5)
    np.savez(tmp_path / "few.npz", points=room.points[:50], colors=room.colors[:50])
    with pytest.raises(DataError, match="few.npz.*50 points: too few to estimate the up axis"):
        read_scene(tmp_path / "few.npz", up="auto")


def _corner(room):
    """The room cut to the quarter below its median x and y: two walls with nothing opposite."""
    p = room.points
    keep = (p[:, 0] < np.median(p[:, 0])) & (p[:, 1] < np.median(p[:, 1]))
    return p[keep].astype(np.float64), room.colors[keep]


def _three_planes(n=3000, seed=0):
    """A bare corner: three orthogonal 3 x 3 m planes (z = 0, x = 0, y = 0), each a floor to the geometry."""
    rng = np.random.default_rng(seed)
    uv = rng.uniform(0, 3, (3, n, 2))
    planes = [np.c_[uv[0], np.zeros(n)], np.c_[np.zeros(n), uv[1]], np.c_[uv[2][:, :1], np.zeros(n), uv[2][:, 1:]]]
    points = np.concatenate(planes) + rng.normal(0, 0.003, (3 * n, 3))
    return points, rng.uniform(0, 1, (3 * n, 3)).astype(np.float32)


def test_the_judge_is_asked_when_several_directions_look_like_floors_and_may_overrule():
    points, colors = _three_planes()
    geometric = estimate_up(points)
    seen = []

    def indifferent(cloud, cloud_colors):
        seen.append((cloud.shape, cloud_colors.shape))
        return 0.5

    same = estimate_up(points, colors=colors, judge=indifferent)
    assert same.judged == len(seen) == 3 and not same.overruled  # a tie keeps the geometry's answer
    np.testing.assert_array_equal(same.up, geometric.up)
    assert all(shape == (len(points), 3) == colour_shape for shape, colour_shape in seen)
    # a judge that prefers the second candidate by more than the margin gets it
    calls = []
    second = estimate_up(points, colors=colors, judge=lambda c, k: calls.append(1) or float(len(calls) == 2))
    assert second.overruled and second.judged == len(calls) and not np.allclose(second.up, geometric.up)
    assert "the model's choice" in second.describe()
    np.testing.assert_allclose(second.rotation @ second.up, [0, 0, 1], atol=1e-9)
    # without colours (or a judge) the geometry decides alone
    assert estimate_up(points, judge=indifferent).judged == 0


@pytest.fixture(scope="module")
def corner_room(tmp_path_factory):
    """A room whose corner the geometry alone gets wrong (it takes a wall for the floor)."""
    root = tmp_path_factory.mktemp("corner")
    write_synthetic_dataset(root / "synth", 1, seed=14, workers=1, progress=False)
    return read_scannet_scene(list_scenes(root / "synth")[0], labels=False)


@pytest.mark.parametrize("seed", [None, 0])
def test_the_shipped_model_finds_up_in_a_corner_scan_the_geometry_gets_wrong(corner_room, seed):
    from pcseg.pipelines.bottomup.orient import room_confidence

    points, colors = _corner(corner_room)
    turn = np.eye(3) if seed is None else Rotation.random(random_state=seed).as_matrix()
    up = turn @ np.array([0.0, 0.0, 1.0])
    assert estimate_up(points @ turn.T).up @ up < 0.5
    est = estimate_up(points @ turn.T, colors=colors, judge=room_confidence)
    assert est.up @ up > np.cos(np.radians(5)) and est.overruled


def test_pcseg_predict_up_auto_asks_the_model_for_a_corner_scan(corner_room, tmp_path):
    """The whole command's path: a y-up corner cloud is turned by the model's choice, and says so."""
    from pcseg.pipelines import predict_to_folder

    points, colors = _corner(corner_room)
    np.savez(tmp_path / "corner.npz", points=points @ UP_ROTATIONS["y"], colors=colors)
    with pytest.warns(UpEstimated, match=r"corner.npz: up estimated as \+y .*the model's choice among"):
        predict_to_folder(tmp_path / "corner.npz", tmp_path / "pred", progress=False, up="auto")
    assert (tmp_path / "pred" / "corner.txt").is_file()
