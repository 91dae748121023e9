"""Projection of known vertices onto known pixels with a hand-made camera, depth consistency,
and lifting masks onto vertices."""
import numpy as np
import pytest

from pcseg.baseline2d import lift_masks, project_points, visible_vertices
from pcseg.io.frames import backproject

K = np.array([[100.0, 0, 32.0], [0, 100.0, 24.0], [0, 0, 1]])  # 64 x 48 image
H, W = 48, 64


def camera_at(position, forward, down):
    """camera-to-world pose: camera x right, y down, z forward."""
    z = np.asarray(forward, float) / np.linalg.norm(forward)
    y = np.asarray(down, float) / np.linalg.norm(down)
    pose = np.eye(4)
    pose[:3, :3] = np.column_stack([np.cross(y, z), y, z])
    pose[:3, 3] = position
    return pose


# a camera at (1, 2, 1.5) looking along world +x with world -z down: camera x = world -y
POSE = camera_at((1, 2, 1.5), (1, 0, 0), (0, 0, -1))


def test_known_vertices_land_on_known_pixels():
    pts = np.array([[3.0, 2.0, 1.5],      # straight ahead, 2 m: the principal point
                    [3.0, 1.5, 1.5],      # 0.5 m to the camera's right (world -y): u = 32 + 100 * 0.5 / 2
                    [5.0, 2.0, 1.1],      # 0.4 m below at 4 m: v = 24 + 100 * 0.4 / 4
                    [0.0, 2.0, 1.5]])     # behind the camera
    uv, z = project_points(pts, K, POSE)
    assert np.allclose(z, [2, 2, 4, -1])
    assert np.allclose(uv[:3], [[32, 24], [57, 24], [32, 34]])


def test_round_trip_with_backproject():
    depth = np.zeros((H, W), np.uint16)
    depth[10, 20], depth[40, 5] = 2500, 1200
    pts, pix = backproject(depth, K, POSE)
    uv, z = project_points(pts, K, POSE)
    assert np.allclose(uv[:, ::-1], pix) and np.allclose(z, [2.5, 1.2])


def wall_depth(metres=2.0):
    return np.full((H, W), int(metres * 1000), np.uint16)


def test_visibility_keeps_only_depth_consistent_vertices_in_front_inside():
    pts = np.array([[3.0, 2.0, 1.5],     # on the wall (2 m): visible, pixel (24, 32)
                    [3.03, 1.5, 1.5],    # 3 cm off the measured surface: within 5 cm, visible
                    [4.0, 2.0, 1.5],     # same pixel as the first, 1 m behind the wall: occluded
                    [0.0, 2.0, 1.5],     # behind the camera
                    [3.0, -5.0, 1.5],    # outside the image
                    [3.0, 2.0, 1.42]])   # on the wall, pixel (28, 32), but that pixel has no depth
    depth = wall_depth()
    depth[28, 32] = 0
    proj = visible_vertices(pts, depth, K, POSE, tolerance=0.05, relative=0.0)
    assert proj.vertex.tolist() == [0, 1]
    assert proj.pixel.tolist() == [24 * W + 32, 24 * W + 57]  # u = 32 + 100 * 0.5 / 2.03 = 56.6
    assert proj.shape == (H, W)
    # a tighter tolerance rejects the vertex 3 cm off the surface; a relative one scales with depth
    assert visible_vertices(pts, depth, K, POSE, tolerance=0.02, relative=0.0).vertex.tolist() == [0]
    assert visible_vertices(pts, depth, K, POSE, tolerance=0.0, relative=0.02).vertex.tolist() == [0, 1]


def test_an_occluded_vertex_is_not_lifted_onto_the_occluder_mask():
    # a chair 2 m away in front of a wall 4 m away; the chair covers the image's left half
    depth = wall_depth(4.0)
    depth[:, :32] = 2000
    chair = np.array([[3.0, 2.2, 1.5]])       # left half (camera x = world -y), on the chair
    hidden = np.array([[5.0, 2.4, 1.5]])      # wall point behind the chair, same image half
    wall = np.array([[5.0, 1.2, 1.5]])        # wall point in the right half
    pts = np.concatenate([chair, hidden, wall])
    uv, _ = project_points(pts, K, POSE)
    assert uv[0, 0] < 32 and uv[1, 0] < 32 and uv[2, 0] >= 32
    chair_mask = np.zeros((1, H, W), bool)
    chair_mask[0, :, :32] = True
    proj = visible_vertices(pts, depth, K, POSE)
    assert lift_masks(proj, chair_mask)[0].tolist() == [0]  # not the wall vertex behind it
    assert proj.vertex.tolist() == [0, 2]


def test_lift_masks_uses_one_projection_for_all_masks():
    ys, zs = np.meshgrid(np.linspace(1.5, 2.5, 21), np.linspace(1.3, 1.7, 9))
    pts = np.column_stack([np.full(ys.size, 3.0), ys.ravel(), zs.ravel()])  # a grid on the 2 m wall
    proj = visible_vertices(pts, wall_depth(), K, POSE)
    uv, _ = project_points(pts, K, POSE)
    masks = np.zeros((3, H, W), bool)
    masks[0, :, :32] = True   # left half of the image = world y > 2
    masks[1, :24] = True      # top half = world z > 1.5
    out = lift_masks(proj, masks)
    col = np.floor(uv[:, 0] + 0.5)
    row = np.floor(uv[:, 1] + 0.5)
    assert out[0].tolist() == np.flatnonzero(col < 32).tolist()
    assert out[1].tolist() == np.flatnonzero(row < 24).tolist()
    assert len(out[0]) > 0 and len(out[1]) > 0 and len(out[2]) == 0
    with pytest.raises(ValueError, match="depth grid"):
        lift_masks(proj, np.zeros((1, H + 1, W), bool))
