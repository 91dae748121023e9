"""configs/scannet_cpu.yaml end to end on synthetic rooms laid out as ScanNet (scans/, the labels tsv,
scannetv2_train.txt / scannetv2_val.txt): it fine-tunes the shipped model, or trains from scratch."""
import subprocess
import sys

import pytest

from pcseg.engine.checkpoint import load_checkpoint
from pcseg.io.scannet import read_split
from pcseg.pipelines import SHIPPED_MODEL
from pcseg.synth import write_synthetic_dataset

RECIPE = "configs/scannet_cpu.yaml"
SHORT = ["epochs=1", "threads=1", "val_scenes=1", "checkpoint_every=0"]


@pytest.fixture(scope="module")
def scannet_like(tmp_path_factory):
    root = tmp_path_factory.mktemp("scannet_cpu") / "ScanNet"
    write_synthetic_dataset(root, 5, seed=11, workers=1, progress=False)
    assert read_split(root, "train") and read_split(root, "val")  # the layout the recipe reads
    return root


def train(*args):
    return subprocess.run([sys.executable, "-m", "pcseg", "train", RECIPE, *args], capture_output=True, text=True,
                          timeout=600)


def test_fine_tunes_the_shipped_model_on_the_train_split(scannet_like, tmp_path):
    proc = train(f"data_root={scannet_like}", f"out_dir={tmp_path / 'ft'}", *SHORT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"starting from the weights of {SHIPPED_MODEL.relative_to(SHIPPED_MODEL.parents[2])}" in proc.stdout
    model = load_checkpoint(tmp_path / "ft" / "model.pt")
    train_scenes = len(read_split(scannet_like, "train"))
    assert model["kind"] == "bottomup" and model["step"] == -(-train_scenes // 2)  # one epoch of batches of 2
    assert set(model["validation"]) >= {"AP", "AP50", "mIoU"}


def test_trains_from_scratch_with_init_weights_null(scannet_like, tmp_path):
    proc = train(f"data_root={scannet_like}", f"out_dir={tmp_path / 'scratch'}", "init_weights=null", "lr=0.006", *SHORT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "starting from" not in proc.stdout
    assert load_checkpoint(tmp_path / "scratch" / "model.pt")["config"]["init_weights"] is None
