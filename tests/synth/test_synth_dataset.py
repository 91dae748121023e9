"""write_synthetic_dataset: ScanNet download layout, readable by the ScanNet reader, byte-identical
for a seed whatever the number of workers, clear errors on bad arguments."""
import json
import os

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


def test_a_failed_generation_leaves_nothing(tmp_path, monkeypatch):
    from pcseg.synth import dataset as synth_dataset

    real = synth_dataset.write_scene

    def fail_on_second(out_dir, name, *rest):
        if name.endswith("1_00"):
            raise RuntimeError("disk full")
        return real(out_dir, name, *rest)

    monkeypatch.setattr(synth_dataset, "write_scene", fail_on_second)
    with pytest.raises(RuntimeError, match="disk full"):
        write_synthetic_dataset(tmp_path / "out", 2, workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither the dataset nor its temporary folder


def test_an_existing_dataset_is_never_overwritten(tmp_path):
    from pcseg.errors import ConfigError

    real = tmp_path / "root" / "scans" / "scene0000_00"
    real.mkdir(parents=True)
    (real / "scene0000_00_vh_clean_2.ply").write_text("a real scan")
    with pytest.raises(ConfigError, match="already holds a dataset .*choose another --out or delete"):
        write_synthetic_dataset(tmp_path / "root", 1, workers=1, progress=False)
    assert (real / "scene0000_00_vh_clean_2.ply").read_text() == "a real scan"
    (tmp_path / "empty").mkdir()  # an empty folder is fine
    write_synthetic_dataset(tmp_path / "empty", 1, workers=1, progress=False)
    assert (tmp_path / "empty" / "scans" / "scene0000_00").is_dir()


def test_ensure_generates_once_and_names_an_unfinished_dataset(tmp_path, capsys):
    from pcseg.errors import ConfigError
    from pcseg.synth import ensure_synthetic_dataset

    root = tmp_path / "data"
    assert ensure_synthetic_dataset(root, 1, seed=3, progress=False)
    assert not ensure_synthetic_dataset(root, 1, seed=3, progress=False)  # complete: reused
    unfinished = tmp_path / "unfinished"
    (unfinished / "scans").mkdir(parents=True)  # what an interrupted older pcseg left
    with pytest.raises(ConfigError, match=r"no scannetv2-labels.combined.tsv: an unfinished dataset .*delete"):
        ensure_synthetic_dataset(unfinished, 1, progress=False)


def test_ctrl_c_stops_the_workers_within_seconds_and_leaves_nothing(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "big"
    proc = subprocess.Popen([sys.executable, "-m", "pcseg.cli", "-q", "data", "synth", "--out", str(out),
                             "--scenes", "40", "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".big.*.tmp/big/scans/scene*")) and time.monotonic() < deadline:
        time.sleep(0.2)  # the workers are writing
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    start = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - start < 15
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert list(tmp_path.iterdir()) == []


def test_sigterm_cleans_up_too(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "one"
    proc = subprocess.Popen([sys.executable, "-m", "pcseg.cli", "-q", "data", "synth", "--out", str(out),
                             "--scenes", "40", "--workers", "1"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".one.*.tmp/one/scans/scene*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and "stopped by SIGTERM" in err, err[-2000:]
    assert list(tmp_path.iterdir()) == []
