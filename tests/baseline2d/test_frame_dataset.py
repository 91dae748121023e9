"""FrameDataset: targets match the instance image; every bad frame is skipped with a warning that
names the frame and the reason; colour at another resolution than depth is handled."""
import shutil
import warnings

import numpy as np
import pytest
from PIL import Image

from pcseg.baseline2d import FrameDataset, FrameSkipped, frame_targets, on_depth_grid
from pcseg.errors import DataError
from pcseg.baseline2d.targets import contiguous_to_nyu40, nyu40_to_contiguous
from pcseg.io.frames import read_frame
from pcseg.labels import INSTANCE_IDS

from conftest import FRAMES, ROOMS


def test_frame_targets_on_a_hand_made_image():
    label = np.zeros((6, 8), np.int64)
    inst = np.zeros((6, 8), np.int64)
    inst[1:3, 2:5], label[1:3, 2:5] = 4, 5       # chair (NYU40 5 -> 3)
    inst[4, 7], label[4, 7] = 9, 36              # one-pixel bathtub (36 -> 17)
    inst[0, :], label[0, :] = 2, 1               # a wall: not a benchmark class
    inst[5, 0:3], label[5, 0:3] = 3, 39          # otherfurniture with one mislabelled pixel
    label[5, 1] = 7
    t = frame_targets(label, inst)
    assert t.instance_ids.tolist() == [3, 4, 9]
    assert t.labels.tolist() == [18, 3, 17] and t.nyu40.tolist() == [39, 5, 36]
    assert t.boxes.tolist() == [[0, 5, 3, 6], [2, 1, 5, 3], [7, 4, 8, 5]]
    assert t.masks.dtype == np.uint8 and np.array_equal(t.masks[1], inst == 4)
    assert frame_targets(label, inst, min_area=2).instance_ids.tolist() == [3, 4]
    label[5, 2] = 11  # 39, 7, 11: a three-way tie goes to the smallest id (table)
    assert frame_targets(label, inst).nyu40.tolist() == [7, 5, 36]
    ids = np.array(INSTANCE_IDS)
    assert np.array_equal(contiguous_to_nyu40(nyu40_to_contiguous(ids)), ids)
    assert nyu40_to_contiguous([0, 1, 2, 40, 99]).tolist() == [0, 0, 0, 0, 0]


def test_samples_match_the_frame_files(frames_root):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FrameSkipped)  # the generated frames are all good
        ds = FrameDataset(frames_root)
    assert len(ds) == ROOMS * FRAMES
    sample = ds[3]
    frame = read_frame(frames_root / "scans" / sample.scene / "frames", sample.index)
    assert sample.image.shape == (480, 640, 3) and np.array_equal(sample.image, frame.color)
    assert np.allclose(sample.depth, frame.depth / 1000.0) and np.allclose(sample.pose, frame.pose)
    assert sample.intrinsic.shape == (3, 3)
    t = sample.targets
    seen = [i for i in np.unique(frame.instance) if i > 0
            and np.bincount(frame.label[frame.instance == i]).argmax() in INSTANCE_IDS]
    assert len(t) > 3 and t.instance_ids.tolist() == seen
    for k, i in enumerate(t.instance_ids):
        m = frame.instance == i
        assert np.array_equal(t.masks[k], m)
        assert contiguous_to_nyu40(t.labels[k]) == np.bincount(frame.label[m]).argmax()
        rows, cols = np.nonzero(m)
        assert t.boxes[k].tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
    image, target = sample.to_torch()
    assert tuple(image.shape) == (3, 480, 640) and float(image.max()) <= 1.0
    assert target["boxes"].dtype.is_floating_point and tuple(target["masks"].shape) == (len(t), 480, 640)


@pytest.fixture
def broken_root(frames_root, tmp_path):
    """A copy of the dataset with one bad frame per case in scene0000_00."""
    root = tmp_path / "broken"
    shutil.copytree(frames_root, root)
    f0, f1 = root / "scans" / "scene0000_00" / "frames", root / "scans" / "scene0001_00" / "frames"
    (f0 / "depth" / "0.png").unlink()                                           # missing depth
    pose = np.loadtxt(f0 / "pose" / "1.txt")
    pose[:3] = -np.inf
    np.savetxt(f0 / "pose" / "1.txt", pose, fmt="%f")                           # lost tracking
    with Image.open(f0 / "depth" / "2.png") as im:
        im.resize((320, 240), Image.Resampling.NEAREST).save(f0 / "depth" / "2.png")   # wrong depth size
    with Image.open(f0 / "label" / "3.png") as im:
        im.crop((0, 0, 600, 480)).save(f0 / "label" / "3.png")                  # label != depth size
    for sub, ext in (("color", "jpg"), ("depth", "png"), ("pose", "txt"), ("label", "png"), ("instance", "png")):
        shutil.copy(f1 / sub / f"0.{ext}", f0 / sub / f"9.{ext}")               # a frame of another scene
    return root


def test_bad_frames_are_skipped_with_a_warning_naming_frame_and_reason(broken_root):
    with pytest.warns(FrameSkipped) as record:
        ds = FrameDataset(broken_root)
    messages = sorted(str(w.message) for w in record if issubclass(w.category, FrameSkipped))
    assert len(messages) == 5, messages
    expected = {0: "missing depth image depth/0.png", 1: "non-finite values",
                2: "depth image is 320x240 but the scene's "
                "depth size is 640x480", 3: "label image is 600x480 but the depth image is 640x480",
                9: "of its depth points lie within 10 cm of the scene's mesh"}
    for i, reason in expected.items():
        assert any(m.startswith(f"scene0000_00 frame {i}: skipped: ") and reason in m for m in messages), (i, messages)
    kept = [(r.scene, r.index) for r in ds.records]
    assert kept == [("scene0000_00", 4)] + [("scene0001_00", i) for i in range(FRAMES)]


def test_colour_at_another_resolution_is_resampled_onto_the_depth_grid(frames_root, tmp_path):
    # real ScanNet: colour 1296x968 with its own intrinsics; here the colour is upsampled 2x
    root = tmp_path / "hires"
    shutil.copytree(frames_root / "scans" / "scene0001_00", root / "scans" / "scene0001_00")
    scene = root / "scans" / "scene0001_00"
    frames = scene / "frames"
    k = np.loadtxt(frames / "intrinsic" / "intrinsic_color.txt")
    # depth pixel centre u <-> continuous u + 0.5 <-> colour continuous 2u + 1 <-> colour centre 2u + 0.5
    k[0, 0], k[1, 1], k[0, 2], k[1, 2] = 2 * k[0, 0], 2 * k[1, 1], 2 * k[0, 2] + 0.5, 2 * k[1, 2] + 0.5
    np.savetxt(frames / "intrinsic" / "intrinsic_color.txt", k, fmt="%f")
    originals = {}
    for i in range(FRAMES):
        with Image.open(frames / "color" / f"{i}.jpg") as im:
            originals[i] = np.asarray(im)
            im.resize((1280, 960), Image.Resampling.NEAREST).save(frames / "color" / f"{i}.jpg", quality=95)
    meta = scene / "scene0001_00.txt"
    with pytest.warns(FrameSkipped, match="colour image is 1280x960 but the scene's colour size is 640x480"):
        with pytest.raises(DataError, match="no usable RGB-D frames"):  # every frame of the only scene
            FrameDataset(root)
    meta.write_text(meta.read_text().replace("colorHeight = 480", "colorHeight = 960")
                    .replace("colorWidth = 640", "colorWidth = 1280"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FrameSkipped)
        ds = FrameDataset(root)
    assert len(ds) == FRAMES and not ds.on_depth_grid(0)
    s = ds[0]
    assert s.image.shape == (480, 640, 3)
    err = np.abs(s.image.astype(int) - originals[s.index]).mean()
    assert err < 3, err  # jpeg twice; a one-pixel misalignment would give ~10


def test_intrinsics_for_another_resolution_skip_the_scene(frames_root, tmp_path):
    root = tmp_path / "badk"
    shutil.copytree(frames_root / "scans" / "scene0000_00", root / "scans" / "scene0000_00")
    shutil.copytree(frames_root / "scans" / "scene0001_00", root / "scans" / "scene0001_00")
    path = root / "scans" / "scene0000_00" / "frames" / "intrinsic" / "intrinsic_depth.txt"
    k = np.loadtxt(path)
    k[0, 2], k[1, 2] = 647.5, 483.5  # the principal point of a 1296x968 colour camera
    np.savetxt(path, k, fmt="%f")
    with pytest.warns(FrameSkipped, match=r"scene0000_00 \(all frames\): skipped: intrinsic_depth's principal point"):
        ds = FrameDataset(root)
    assert {r.scene for r in ds.records} == {"scene0001_00"}


def test_on_depth_grid_identity_and_shift():
    color = np.random.default_rng(0).integers(0, 255, (8, 10, 3)).astype(np.uint8)
    k = np.array([[5.0, 0, 4.5], [0, 5.0, 3.5], [0, 0, 1]])
    assert on_depth_grid(color, k, k, (8, 10)) is color
    shifted = k.copy()
    shifted[0, 2] += 1  # colour principal point one pixel right: depth pixel u sees colour pixel u + 1
    out = on_depth_grid(color, shifted, k, (8, 10))
    assert np.array_equal(out[:, :9], color[:, 1:])
