"""RGB-D frames: exact per-pixel ids consistent with the scene, geometry consistent with the mesh,
and the frame folder layout round trip."""
import numpy as np
import pytest
from scipy.spatial import cKDTree

from pcseg.errors import DataError
from pcseg.io.frames import FrameIntrinsics, RGBDFrame, backproject, read_frames, read_intrinsics, write_frames
from pcseg.synth import generate_scene


@pytest.fixture(scope="module")
def synth():
    return generate_scene(21, "scene0021_00", frames=3, kind="living room")


def test_frames_shapes_and_ids(synth):
    s = synth.scene
    assert len(synth.frames) == 3 and s.meta["numDepthFrames"] == "3"
    ids = set(np.unique(s.instance[s.instance > 0]).tolist())
    sem_of = {i: int(s.semantic[s.instance == i][0]) for i in ids}
    for f in synth.frames:
        assert f.depth.shape == (480, 640) and f.depth.dtype == np.uint16
        assert f.color.shape == (480, 640, 3) and f.color.dtype == np.uint8
        assert (f.depth > 0).mean() > 0.5
        seen = set(np.unique(f.instance).tolist()) - {0}
        assert seen and seen <= ids
        # label and instance images agree with the scene's classes, pixel by pixel
        for i in seen:
            assert np.all(f.label[f.instance == i] == sem_of[i])
        assert np.all(f.instance[f.depth == 0] == 0)


def test_backprojected_pixels_land_on_vertices_of_the_same_instance(synth):
    s = synth.scene
    tree = cKDTree(s.points)
    k = synth.intrinsics.intrinsic_depth
    for f in synth.frames:
        pts, pix = backproject(f.depth, k, f.pose)
        inst = f.instance[pix[:, 0], pix[:, 1]]
        pick = np.random.default_rng(0).choice(np.flatnonzero(inst > 0), 500, replace=False)
        dist, nn = tree.query(pts[pick])
        near = dist < 0.04
        assert near.mean() > 0.9, near.mean()  # the rest lies on parts the scan missed
        assert (s.instance[nn[near]] == inst[pick][near]).mean() > 0.97  # misses: object borders


def test_pose_is_in_the_scan_frame(synth):
    # camera heights are 1.3-1.7 m above the floor once the axis alignment is applied
    for f in synth.frames:
        aligned = synth.scene.axis_alignment @ f.pose
        assert 1.2 < aligned[2, 3] < 1.8
        assert np.allclose(f.pose[:3, :3] @ f.pose[:3, :3].T, np.eye(3), atol=1e-9)


def test_write_read_round_trip(tmp_path, synth):
    folder = write_frames(tmp_path / "frames", synth.frames, synth.intrinsics)
    for sub in ("color/0.jpg", "depth/2.png", "pose/1.txt", "label/0.png", "instance/0.png",
                "intrinsic/intrinsic_color.txt", "intrinsic/extrinsic_depth.txt"):
        assert (folder / sub).is_file(), sub
    frames, intr = read_frames(folder)
    assert np.allclose(intr.intrinsic_depth, synth.intrinsics.intrinsic_depth, atol=1e-6)
    for a, b in zip(frames, synth.frames):
        assert np.array_equal(a.depth, b.depth)
        assert np.array_equal(a.label, b.label) and np.array_equal(a.instance, b.instance)
        assert np.allclose(a.pose, b.pose, atol=1e-6)
        assert np.abs(a.color.astype(int) - b.color).mean() < 4  # jpeg
    assert (folder / "pose" / "0.txt").read_text().splitlines()[3].split() == ["0.000000"] * 3 + ["1.000000"]


def test_large_ids_use_16_bit_png(tmp_path):
    inst = np.zeros((4, 5), np.int64)
    inst[0, 0] = 300
    f = RGBDFrame(np.zeros((4, 5, 3), np.uint8), np.ones((4, 5), np.uint16), np.eye(4), inst.copy(), inst)
    folder = write_frames(tmp_path / "f", [f], FrameIntrinsics.pinhole(5, 5, 2, 1.5))
    back, _ = read_frames(folder)
    assert back[0].instance[0, 0] == 300


def test_read_errors_name_the_file(tmp_path):
    f = RGBDFrame(np.zeros((4, 5, 3), np.uint8), np.ones((4, 5), np.uint16), np.eye(4))
    folder = write_frames(tmp_path / "f", [f], FrameIntrinsics.pinhole(5, 5, 2, 1.5))
    (folder / "pose" / "0.txt").write_text("1 0 0\n0 1 0\n")
    with pytest.raises(DataError, match=r"pose/0\.txt"):
        read_frames(folder)
    (folder / "intrinsic" / "intrinsic_depth.txt").unlink()
    with pytest.raises(DataError, match="intrinsic_depth"):
        read_intrinsics(folder)
    with pytest.raises(DataError, match="pose"):
        read_frames(tmp_path / "nothing")


def test_bad_frame_is_refused_and_leaves_nothing(tmp_path):
    bad = RGBDFrame(np.zeros((4, 5, 3), np.uint8), np.ones((4, 5), np.float32), np.eye(4))
    with pytest.raises(ValueError, match="uint16"):
        write_frames(tmp_path / "f", [bad], FrameIntrinsics.pinhole(5, 5, 2, 1.5))
    assert list(tmp_path.iterdir()) == []
