"""write_synthetic_dataset: ScanNet download layout, readable by the ScanNet reader, byte-identical
for a seed whatever the number of workers, clear errors on bad arguments."""
import json

import numpy as np
import pytest

from pcseg.io.frames import read_frames
from pcseg.io.scannet import read_scannet_scene, read_split
from pcseg.synth import generate_scene, write_synthetic_dataset
from pcseg.synth.dataset import scene_seeds


def tree_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "data"
    summary = write_synthetic_dataset(out, 2, seed=7, frames=2, workers=1, progress=False)
    return out, summary


def test_layout(dataset):
    out, summary = dataset
    assert (out / "scannetv2-labels.combined.tsv").is_file()
    train, val = read_split(out, "train"), read_split(out, "val")
    assert sorted(train + val) == ["scene0000_00", "scene0001_00"] and not set(train) & set(val)
    scene = out / "scans" / "scene0001_00"
    for name in ("scene0001_00_vh_clean_2.ply", "scene0001_00_vh_clean_2.0.010000.segs.json",
                 "scene0001_00.aggregation.json", "scene0001_00.txt", "frames/color/1.jpg", "frames/depth/1.png",
                 "frames/pose/1.txt", "frames/label/0.png", "frames/instance/0.png",
                 "frames/intrinsic/intrinsic_color.txt", "frames/intrinsic/extrinsic_color.txt"):
        assert (scene / name).is_file(), name
    assert not [p for p in (out / "scans").iterdir() if p.name.startswith(".")], "temporary folders left"
    stats = json.loads((out / "synth_stats.json").read_text())
    assert [s["name"] for s in stats["scenes"]] == ["scene0000_00", "scene0001_00"]
    assert summary["scenes"] == 2 and summary["vertices"]["min"] > 0 and summary["num_classes_covered"] >= 5


def test_written_scene_reads_back_like_the_generated_one(dataset):
    out, _ = dataset
    read = read_scannet_scene(out / "scans" / "scene0000_00")
    mem = generate_scene(scene_seeds(7, 2)[0], "scene0000_00", frames=2)
    assert np.allclose(read.points, mem.scene.points, atol=1e-6)
    assert np.array_equal(read.semantic, mem.scene.semantic)
    assert np.array_equal(read.instance, mem.scene.instance)
    assert np.array_equal(read.segments, mem.scene.segments)
    assert np.array_equal(read.faces, mem.scene.faces)
    assert np.allclose(read.axis_alignment, mem.scene.axis_alignment, atol=1e-6)
    assert read.meta["sceneType"] == mem.scene.meta["sceneType"]
    frames, _ = read_frames(out / "scans" / "scene0000_00" / "frames")
    assert np.array_equal(frames[1].instance, mem.frames[1].instance)


def test_same_seed_same_bytes_with_any_worker_count(dataset, tmp_path):
    out, _ = dataset
    again = tmp_path / "again"
    write_synthetic_dataset(again, 2, seed=7, frames=2, workers=2, progress=False)
    assert tree_bytes(again) == tree_bytes(out)


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_scenes=-1), "num_scenes"), (dict(num_scenes=0), "num_scenes"), (dict(num_scenes=2.5), "num_scenes"),
    (dict(num_scenes=1, seed=-3), "seed"), (dict(num_scenes=1, frames=-1), "frames"),
    (dict(num_scenes=1, workers=0), "workers"),
])
def test_bad_arguments_fail_before_writing(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        write_synthetic_dataset(tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


def test_output_path_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        write_synthetic_dataset(tmp_path / "f", 1, progress=False)
