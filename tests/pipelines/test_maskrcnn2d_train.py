"""pcseg train with a 2D recipe (pipeline: maskrcnn2d): the engine's checkpoints, logs, validation
(COCO AP) and --resume after kill -9 with the uninterrupted run's losses; bad recipes named."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("torchvision")

import torch  # noqa: E402

from pcseg.engine.checkpoint import load_checkpoint  # noqa: E402
from pcseg.pipelines import load_recipe  # noqa: E402
from pcseg.errors import ConfigError  # noqa: E402

# 64x85 inputs, a thin ResNet-18 Mask R-CNN: a step takes a fraction of a second
TINY2D = ["backbone=resnet18", "min_size=64", "max_size=96", "anchor_sizes=[8,16,32,64,128]",
          "rpn_post_nms_train=64", "rpn_post_nms_test=32", "box_batch_size=16", "mask_head_channels=32",
          "detections_per_img=20", "box_score_thresh=0.0", "threads=1", "workers=0", "val_every=0",
          "val_frames=3", "val_split=all", "train_split=all", "batch_size=2", "warmup_steps=2", "lr=0.005"]


@pytest.fixture(scope="module")
def recipe2d(frames_root, tmp_path_factory):
    path = tmp_path_factory.mktemp("train2d") / "maskrcnn2d.yaml"
    path.write_text(f"pipeline: maskrcnn2d\ndata_root: {frames_root}\n")
    return path


def run_cli(args):
    return subprocess.run([sys.executable, "-m", "pcseg.cli", "-q", *args], capture_output=True, text=True,
                          timeout=600)


def losses(out_dir):
    records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["total"], r["loss_mask"]) for r in records if "total" in r]


@pytest.fixture(scope="module")
def full_run(recipe2d, tmp_path_factory):
    """10 frames, batch 2, 2 epochs: 10 steps, a checkpoint after each."""
    out = tmp_path_factory.mktemp("train2d_full") / "run"
    proc = run_cli(["train", str(recipe2d), *TINY2D, "epochs=2", "checkpoint_every=1", f"out_dir={out}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_2d_training_writes_the_engines_files(full_run):
    steps = losses(full_run)
    assert [s for s, _, _ in steps] == list(range(1, 11))
    assert all(torch.isfinite(torch.tensor(total)) for _, total, _ in steps)
    assert list((full_run / "tensorboard").glob("events.out.tfevents.*"))
    records = [json.loads(line) for line in (full_run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if "val_mask_AP50" in r]
    assert len(val) == 1 and val[0]["step"] == 10 and 0.0 <= val[0]["val_mask_AP50"] <= 1.0
    for name in ("last.pt", "model.pt"):  # load_checkpoint uses torch.load(weights_only=True)
        ckpt = load_checkpoint(full_run / name)
        assert ckpt["kind"] == "maskrcnn2d" and ckpt["step"] == 10
        assert ckpt["config"]["backbone"] == "resnet18" and ckpt["config"]["mask_head_channels"] == 32
    assert set(load_checkpoint(full_run / "last.pt")) >= {"optimizer", "scheduler", "rng", "epoch", "batch"}
    assert (full_run / "best.pt").is_file()  # the only validation is the best one


def test_resume_after_kill_9_reproduces_the_uninterrupted_losses(recipe2d, full_run, tmp_path):
    args = ["train", str(recipe2d), *TINY2D, "epochs=2", "checkpoint_every=1"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "pcseg.cli", "-q", *args, f"out_dir={killed}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (killed / "metrics.jsonl").exists() and len(losses(killed)) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ckpt = load_checkpoint(killed / "last.pt")
    assert 1 <= ckpt["step"] < 10
    resumed = run_cli([*args, f"out_dir={killed}", "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert losses(killed) == losses(full_run)  # the same floats, step by step


def test_resume_rejects_another_architecture_and_a_missing_checkpoint(recipe2d, full_run, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(full_run, out)
    other = run_cli(["train", str(recipe2d), *TINY2D, "epochs=3", "roi_pool=pool", f"out_dir={out}", "--resume"])
    assert other.returncode == 2 and "roi_pool" in other.stderr and "last.pt" in other.stderr
    missing = run_cli(["train", str(recipe2d), *TINY2D, f"out_dir={tmp_path / 'none'}", "--resume"])
    assert missing.returncode == 2 and "no checkpoint" in missing.stderr


def test_2d_recipe_errors_name_the_key(recipe2d):
    pipeline, recipe = load_recipe(recipe2d, ["roi_pool=pool", "depth=true"])
    assert pipeline.name == "maskrcnn2d" and recipe.roi_pool == "pool" and recipe.depth
    with pytest.raises(ConfigError, match="roi_pool"):
        load_recipe(recipe2d, ["roi_pool=roialign"])
    with pytest.raises(ConfigError, match="backbon"):
        load_recipe(recipe2d, ["backbon=resnet18"])
    with pytest.raises(ConfigError, match="pipeline"):
        load_recipe(recipe2d, ["pipeline=maskrcnn3d"])
    with pytest.raises(ConfigError, match="resnet50 only"):
        load_recipe(recipe2d, ["pretrained=coco", "backbone=resnet18"])
    assert load_recipe(None, ["voxel_size=0.1"])[0].name == "bottomup"  # no pipeline key: the 3D pipeline


def test_synthetic_rooms_with_frames_are_generated_on_first_use(tmp_path):
    recipe = tmp_path / "gen.yaml"
    recipe.write_text(f"pipeline: maskrcnn2d\ndata_root: {tmp_path / 'train'}\nsynth_scenes: 1\nsynth_frames: 2\n"
                      f"val_root: {tmp_path / 'val'}\nval_synth_scenes: 1\nval_synth_frames: 3\nval_synth_seed: 5\n")
    proc = run_cli(["train", str(recipe), *TINY2D, "epochs=1", f"out_dir={tmp_path / 'run'}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list((tmp_path / "train" / "scans" / "scene0000_00" / "frames" / "pose").glob("*.txt"))) == 2
    assert len(list((tmp_path / "val" / "scans" / "scene0000_00" / "frames" / "pose").glob("*.txt"))) == 3
    assert [s for s, _, _ in losses(tmp_path / "run")] == [1]  # 2 frames, batch 2
    assert "generating 1 synthetic ScanNet-format rooms with 3 RGB-D frames each (seed 5)" in proc.stdout
    assert "synth scenes" not in proc.stdout + proc.stderr  # -q: no progress bars
