"""The grid pipeline end to end on tiny rooms: pcseg train (recipe checks, checkpoint kind), pcseg predict
(the checkpoint's kind picks the pipeline), pcseg eval, and the empty and one-point scenes."""
import subprocess
import sys

import numpy as np
import pytest

from pcseg.cli import main
from pcseg.engine.checkpoint import load_checkpoint
from pcseg.errors import ConfigError
from pcseg.io.official import read_instance_predictions
from pcseg.io.scannet import list_scenes, read_scannet_scene
from pcseg.pipelines import load_recipe
from pcseg.structures import Scene
from pcseg.synth import write_synthetic_dataset

TINY = ["voxel_size=0.1", "widths=[8,16]", "head_hidden=16", "grids=[4,8]", "batch_size=2",
        "threads=1", "workers=0", "val_every=0", "val_scenes=1", "elastic=false", "min_size=20", "epochs=2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    data = root / "synth"
    write_synthetic_dataset(data, 4, seed=5, workers=1, progress=False)
    out, recipe = root / "run", root / "grid.yaml"
    recipe.write_text(f"pipeline: grid\ndata_root: {data}\ntrain_split: all\nval_split: all\n")
    # in a child process: training sets the process's thread counts, which other tests must not inherit
    done = subprocess.run([sys.executable, "-m", "pcseg.cli", "-q", "train", str(recipe), *TINY, f"out_dir={out}"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return data, out / "model.pt"


def test_train_writes_a_grid_checkpoint_and_predict_picks_the_pipeline_by_its_kind(trained, tmp_path, capsys):
    data, ckpt = trained
    saved = load_checkpoint(ckpt)
    assert saved["kind"] == "grid" and saved["config"]["grids"] == [4, 8]
    pred = tmp_path / "pred"
    assert main(["-q", "predict", "--checkpoint", str(ckpt), "--input", str(data), "--out", str(pred),
                 "score_threshold=0.05"]) == 0
    for folder in list_scenes(data):
        scene = read_scannet_scene(folder)
        inst = read_instance_predictions(pred, scene.name, num_points=len(scene))
        assert inst.num_points == len(scene)
    gt = tmp_path / "gt"
    assert main(["-q", "data", "export-gt", "--scannet", str(data), "--out", str(gt)]) == 0
    report = tmp_path / "report"
    assert main(["-q", "eval", "--gt", str(gt), "--pred", str(pred), "--report", str(report), "--scenes", str(data)]) == 0
    assert "AP_50%" in capsys.readouterr().out and (report / "index.html").is_file()
    png = tmp_path / "errors.png"  # the viewer reads a grid prediction folder like any other
    assert main(["viz", str(list_scenes(data)[0]), "--pred", str(pred), "--color", "errors", "--side-by-side",
                 "--out", str(png), "--width", "320", "--height", "240"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_empty_and_one_point_scenes_predict_nothing(trained):
    from pcseg.pipelines import load_predictor

    _, ckpt = trained
    predictor = load_predictor(ckpt)
    for n in (0, 1):
        scene = Scene(np.zeros((n, 3), np.float32), np.zeros((n, 3), np.float32), name="tiny")
        pred = predictor.finish(scene, predictor.network(scene, None))
        assert len(pred.instances) == 0 and pred.semantic.shape == (n,)


@pytest.mark.parametrize("bad, key", [("grids=[8,4]", "grids"), ("grids=[0]", "grids"),
                                      ("size_ranges=[[1.0,0.5],[0,1]]", "size_ranges"), ("nms_kernel=box", "nms_kernel"),
                                      ("score_threshold=1.5", "score_threshold"), ("centre_radius=-1", "centre_radius"),
                                      ("nms=soft", "nms"), ("nms_iou=2", "nms"), ("peak_window=2", "peak_window"),
                                      ("peak_window=0", "peak_window")])
def test_bad_grid_recipe_values_name_the_key(bad, key):
    with pytest.raises(ConfigError, match=key):
        load_recipe(None, ["pipeline=grid", bad])


def test_a_prediction_override_of_another_pipeline_is_refused(trained, tmp_path):
    data, ckpt = trained
    assert main(["-q", "predict", "--checkpoint", str(ckpt), "--input", str(data), "--out", str(tmp_path / "p"),
                 "cluster_method=dbscan"]) == 2  # a bottom-up key: refused, naming the keys a grid prediction takes


@pytest.mark.parametrize("nms, scores", [("mask", [0.9, 0.7]), ("matrix", None)])
def test_duplicates_are_removed_by_matrix_nms_or_plain_mask_nms(nms, scores):
    import torch

    from pcseg.models.grid_segmenter import Candidates
    from pcseg.pipelines.grid.predict import GridOutput, to_instances
    from pcseg.pipelines.grid.recipe import GridRecipe

    masks = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 1]], dtype=torch.float32)  # IoU(a, b) = 0.75
    out = GridOutput(Candidates(masks, torch.arange(4), masks.sum(1), torch.tensor([4, 4, 4]), torch.tensor([0.9, 0.8, 0.7])),
                     torch.arange(4), 0.0)
    pred = to_instances(out, GridRecipe(nms=nms, nms_iou=0.5, min_size=1))
    if nms == "mask":  # the second mask is dropped, the others keep their scores
        assert pred.instances.scores.tolist() == pytest.approx(scores)
        assert pred.instances.masks.tolist() == [[True, True, True, False], [False, False, False, True]]
    else:  # Matrix-NMS decays the duplicate's score instead (below the non-overlapping third mask's)
        got = pred.instances.scores.tolist()
        assert len(got) == 3 and got[0] == pytest.approx(0.9) and got[1] == pytest.approx(0.7) and got[2] < 0.7


def test_masks_go_back_to_the_points_through_their_columns_and_maskness_scores_them():
    import torch

    from pcseg.models.grid_segmenter import Candidates
    from pcseg.pipelines.grid.predict import GridOutput, to_instances
    from pcseg.pipelines.grid.recipe import GridRecipe

    # mask columns hold voxels 2, 0, 1 (in that order); points 0..4 lie in voxels 0, 1, 2, 2, 0
    masks = torch.tensor([[1, 0, 0], [0, 1, 1]], dtype=torch.float32)  # voxel 2 / voxels 0 and 1
    inside = torch.tensor([0.8, 1.2])  # maskness 0.8 and 0.6
    out = GridOutput(Candidates(masks, torch.tensor([2, 0, 1]), inside, torch.tensor([4, 5]), torch.tensor([0.5, 1.0])),
                     torch.tensor([0, 1, 2, 2, 0]), 0.0)
    pred = to_instances(out, GridRecipe(min_size=3, final_threshold=0.05))
    assert pred.instances.masks.tolist() == [[True, True, False, False, True]]  # the 2-point mask is under min_size
    assert pred.instances.scores.tolist() == pytest.approx([0.6])


def _losses(out_dir):
    import json

    records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["total"]) for r in records if "total" in r]


def _cli(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "pcseg", "-q", "train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_a_grid_run_killed_with_kill_9_resumes_with_the_uninterrupted_losses(trained, tmp_path):
    import os
    import signal
    import time

    data, ckpt = trained
    recipe = ckpt.parent.parent / "grid.yaml"
    args = [str(recipe), *TINY, "epochs=3", "checkpoint_every=1"]
    full = _cli(*args, f"out_dir={tmp_path / 'full'}")
    assert full.wait(600) == 0, full.stderr.read()
    reference = _losses(tmp_path / "full")
    assert len(reference) == 6  # 4 rooms, batch 2, 3 epochs
    killed = _cli(*args, f"out_dir={tmp_path / 'killed'}")
    deadline = time.time() + 300
    while time.time() < deadline and killed.poll() is None:
        if (tmp_path / "killed" / "metrics.jsonl").exists() and len(_losses(tmp_path / "killed")) >= 3:
            break
        time.sleep(0.05)
    assert killed.poll() is None, "the run ended before it could be killed"
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert 1 <= load_checkpoint(tmp_path / "killed" / "last.pt")["step"] < 6
    resumed = _cli(*args, f"out_dir={tmp_path / 'killed'}", "--resume")
    assert resumed.wait(600) == 0, resumed.stderr.read()
    assert _losses(tmp_path / "killed") == reference


def test_grid_trains_as_two_ddp_processes(trained, tmp_path):
    data, ckpt = trained
    recipe = ckpt.parent.parent / "grid.yaml"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "pcseg", "-q", "train", str(recipe), *TINY, "epochs=1", f"out_dir={tmp_path / 'ddp'}"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [s for s, _ in _losses(tmp_path / "ddp")] == [1]  # 4 rooms over 2 ranks, batch 2: one step
    saved = load_checkpoint(tmp_path / "ddp" / "model.pt")
    assert saved["kind"] == "grid" and saved["step"] == 1
