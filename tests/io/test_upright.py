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
from pcseg.io.upright import estimate_up, manhattan_frame
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
    np.testing.assert_array_equal(est.rotation, UP_ROTATIONS[axis])  # exactly the axis' rotation
    assert est.floor_share > 0.1 > est.ceiling_share and est.margin > 0


@pytest.mark.parametrize("seed", range(3))
def test_a_room_in_a_random_orientation_is_found_upright(room, seed):
    turn = Rotation.random(random_state=seed).as_matrix()
    est = estimate_up(room.points.astype(np.float64) @ turn.T)
    true_up = turn @ np.array([0.0, 0.0, 1.0])
    assert np.degrees(np.arccos(np.clip(est.up @ true_up, -1, 1))) < 3
    np.testing.assert_allclose(est.rotation @ est.up, [0, 0, 1], atol=1e-9)
    assert np.isclose(np.linalg.det(est.rotation), 1.0) and np.allclose(est.rotation @ est.rotation.T, np.eye(3))


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
    with pytest.warns(UpEstimated, match=r"y.npz: up estimated as \+y .*--up y gives it without the estimate"):
        scene = read_scene(tmp_path / "y.npz", up="auto")
    np.testing.assert_allclose(scene.points, room.points, atol=1e-5)
    np.savez(tmp_path / "z.npz", points=room.points, colors=room.colors)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a z-up cloud: nothing to say
        np.testing.assert_array_equal(read_scene(tmp_path / "z.npz", up="auto").points, room.points)
    np.savez(tmp_path / "few.npz", points=room.points[:50], colors=room.colors[:50])
    with pytest.raises(DataError, match="few.npz.*50 points: too few to estimate the up axis"):
        read_scene(tmp_path / "few.npz", up="auto")
