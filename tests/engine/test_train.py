"""Training engine: runs end to end, resumes a run killed with kill -9 with identical losses, runs
as 2 DDP processes (gloo) and as one torchrun process, and rejects bad recipes and checkpoints."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from pcseg.engine.checkpoint import load_checkpoint
from pcseg.engine.config import load_config
from pcseg.pipelines.bottomup.recipe import BottomUpRecipe
from pcseg.errors import ConfigError, DataError
from pcseg.synth import write_synthetic_dataset

TINY = ["voxel_size=0.1", "widths=[8,16]", "embed_dim=4", "batch_size=2", "threads=1", "workers=0",
        "val_every=0", "val_scenes=1", "elastic=false", "min_size=20"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine") / "synth"
    write_synthetic_dataset(root, 5, seed=3, workers=1, progress=False)
    recipe = root.parent / "recipe.yaml"
    recipe.write_text(f"data_root: {root}\n")
    return recipe


def run_cli(args, **kwargs):
    return subprocess.run([sys.executable, "-m", "pcseg.cli", "-q", *args], capture_output=True, text=True,
                          timeout=600, **kwargs)


def losses(out_dir):
    records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["total"]) for r in records if "total" in r]


def test_resume_after_kill_9_reproduces_the_uninterrupted_losses(data, tmp_path):
    args = ["train", str(data), *TINY, "epochs=3", "checkpoint_every=1"]
    full = run_cli([*args, f"out_dir={tmp_path / 'full'}"])
    assert full.returncode == 0, full.stderr
    reference = losses(tmp_path / "full")
    assert len(reference) == 6  # 4 training scenes, batch 2, 3 epochs
    assert list((tmp_path / "full" / "tensorboard").glob("events.out.tfevents.*"))
    assert (tmp_path / "full" / "model.pt").is_file() and (tmp_path / "full" / "best.pt").is_file()

    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "pcseg.cli", "-q", *args, f"out_dir={killed_dir}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (killed_dir / "metrics.jsonl").exists() and len(losses(killed_dir)) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ckpt = load_checkpoint(killed_dir / "last.pt")
    assert 1 <= ckpt["step"] < 6

    resumed = run_cli([*args, f"out_dir={killed_dir}", "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert losses(killed_dir) == reference  # exactly the same floats, step by step


def test_two_process_ddp_on_gloo(data, tmp_path):
    out = tmp_path / "ddp"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "pcseg.cli", "-q", "train", str(data), *TINY, "epochs=1", f"out_dir={out}"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # 4 training scenes over 2 ranks with batch 2: one step per epoch, each rank a different batch
    assert [s for s, _ in losses(out)] == [1]
    model = load_checkpoint(out / "model.pt")
    assert model["step"] == 1 and all(torch.isfinite(v).all() for v in model["model"].values() if v.is_floating_point())


def test_torchrun_with_one_process_joins_the_group_and_trains_as_a_plain_run(data, tmp_path):
    # --nproc_per_node 1 takes the DDP code path (gloo here, nccl on a GPU) with a plain run's losses
    plain = run_cli(["train", str(data), *TINY, "epochs=1", f"out_dir={tmp_path / 'plain'}"])
    assert plain.returncode == 0, plain.stderr
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
                           "-m", "pcseg", "train", str(data), *TINY, "epochs=1", f"out_dir={tmp_path / 'ddp'}"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(1 process(es), DDP over gloo)" in proc.stdout
    assert losses(tmp_path / "ddp") == losses(tmp_path / "plain")


def test_recipe_typos_and_bad_values_are_named(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("data_root: x\nvoxel_sise: 0.05\n")
    with pytest.raises(ConfigError, match="voxel_sise"):
        load_config(BottomUpRecipe, path)
    with pytest.raises(ConfigError, match="cluster_method"):
        load_config(BottomUpRecipe, None, ["cluster_method=kmeans"])
    with pytest.raises(ConfigError, match="voxel_size"):
        load_config(BottomUpRecipe, None, ["voxel_size=-1"])


def test_resume_rejects_a_checkpoint_of_another_architecture(data, tmp_path):
    out = tmp_path / "run"
    assert run_cli(["train", str(data), *TINY, "epochs=1", f"out_dir={out}"]).returncode == 0
    other = run_cli(["train", str(data), *TINY, "epochs=2", "widths=[8,16,24]", f"out_dir={out}", "--resume"])
    assert other.returncode == 2 and "widths" in other.stderr and "last.pt" in other.stderr
    missing = run_cli(["train", str(data), *TINY, f"out_dir={tmp_path / 'none'}", "--resume"])
    assert missing.returncode == 2 and "no checkpoint" in missing.stderr


def test_lr_factor_anneals_over_steps_or_the_time_budget_whichever_ends_first():
    from pcseg.engine.loop import lr_factor

    assert lr_factor(0, 100) == 1.0
    assert lr_factor(50, 100) == pytest.approx(0.5 ** 0.9)
    assert lr_factor(100, 100) == 0.0 and lr_factor(150, 100) == 0.0
    # Under a time budget the spent fraction drives the decay once it is ahead of the steps.
    assert lr_factor(10, 1000, time_fraction=0.75) == pytest.approx(0.25 ** 0.9)
    assert lr_factor(900, 1000, time_fraction=0.5) == pytest.approx(0.1 ** 0.9)
    assert lr_factor(10, 1000, time_fraction=1.2) == 0.0
    # Linear warm-up multiplies the decay during the first warmup_steps.
    assert lr_factor(0, 100, warmup_steps=10) == pytest.approx(0.1)
    assert lr_factor(4, 100, warmup_steps=10) == pytest.approx(0.5 * 0.96 ** 0.9)
    assert lr_factor(20, 100, warmup_steps=10) == pytest.approx(0.8 ** 0.9)


def test_balanced_class_weights_by_hand():
    from pcseg.pipelines.bottomup.build import balanced_class_weights

    # counts 100, 400, 1600 (median 400) and one absent class: (400 / n) ** 0.5 = 2, 1, 0.5; absent -> 1
    w = balanced_class_weights(np.array([100, 400, 1600, 0]), 0.5)
    assert w.tolist() == pytest.approx([2.0, 1.0, 0.5, 1.0])
    assert balanced_class_weights(np.array([100, 400, 1600]), 0.0).tolist() == [1.0, 1.0, 1.0]
    # clipped to [0.1, 10]
    assert balanced_class_weights(np.array([1, 10_000, 10_000_000]), 1.0).tolist() == pytest.approx([10.0, 1.0, 0.1])


def test_class_balance_weights_the_training_loss_and_not_the_checkpoint(data, tmp_path):
    from pcseg.data import semantic_point_counts, training_labels
    from pcseg.pipelines.bottomup.build import build_model, class_weights
    from pcseg.pipelines.scenes import train_dataset

    recipe = load_config(BottomUpRecipe, data, ["train_split=all", "class_balance=0.5"])
    dataset = train_dataset(recipe)
    counts = semantic_point_counts(dataset)
    expected = np.zeros(20, dtype=np.int64)
    for i in range(len(dataset)):
        sem = training_labels(dataset.load(i))[0]
        expected += np.bincount(sem[sem >= 0], minlength=20)
    assert counts.tolist() == expected.tolist() and counts.sum() > 0
    weights = class_weights(recipe, dataset)
    present = counts > 0
    assert weights[present].tolist() == pytest.approx(
        np.clip((np.median(counts[present]) / counts[present]) ** 0.5, 0.1, 10).tolist())
    model = build_model(recipe)
    model.set_class_weights(weights)
    assert "class_weights" not in model.state_dict()  # a training setting: checkpoints load either way
    build_model(recipe).load_state_dict(model.state_dict())
    with pytest.raises(ValueError, match="class_weights"):
        model.set_class_weights(torch.ones(3))


def test_train_split_all_uses_every_scene(data, tmp_path):
    from pcseg.pipelines.scenes import train_dataset

    root = load_config(BottomUpRecipe, data).data_root
    recipe = load_config(BottomUpRecipe, data, ["train_split=all"])
    assert len(train_dataset(recipe)) == 5
    assert len(train_dataset(load_config(BottomUpRecipe, data))) < 5, root


def test_recipe_checks_the_clustering_keys():
    ok = load_config(BottomUpRecipe, None, ["class_bandwidth=[" + ",".join(["0.5"] * 20) + "]", "soft_threshold=0.2",
                                            "extra_scales=[0.7,0.5]", "extra_score=0.3"])
    assert ok.class_bandwidth == [0.5] * 20 and ok.soft_threshold == 0.2
    assert ok.extra_scales == [0.7, 0.5] and ok.extra_score == 0.3
    for bad in ("class_bandwidth=[0.5,0.5]", "soft_threshold=1.5", "class_balance=2", "warmup_steps=-1",
                "embedding_weight=0", "extra_scales=[0.7,0]", "extra_score=0"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            load_config(BottomUpRecipe, None, [bad])


def test_a_diverging_loss_stops_with_a_clear_error_and_a_clean_last_checkpoint(data, tmp_path, monkeypatch):
    from pcseg.engine.train import train
    from pcseg.pipelines import get
    from pcseg.models import segmenter

    forward = segmenter.BottomUpSegmenter.forward
    calls = {"n": 0}

    def nan_on_third_step(self, batch):
        out = forward(self, batch)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 3:
                out["total"] = out["total"] * float("nan")
        return out

    monkeypatch.setattr(segmenter.BottomUpSegmenter, "forward", nan_on_third_step)
    recipe = load_config(BottomUpRecipe, str(data), [*TINY, "epochs=3", "checkpoint_every=1",
                                                     f"out_dir={tmp_path / 'run'}"])
    with pytest.raises(ConfigError, match=r"loss became nan at step 3 .*lower lr"):
        train(get("bottomup"), recipe, progress=False)
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["step"] == 2
    assert all(bool(torch.isfinite(v).all()) for v in last["model"].values() if v.is_floating_point())


def test_a_2d_recipe_without_torchvision_stops_before_generating_rooms(tmp_path, monkeypatch, capsys):
    import sys

    from pcseg.cli import main

    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision raises ImportError
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"pipeline: maskrcnn2d\ndata_root: {tmp_path / 'rooms'}\nsynth_scenes: 3\n")
    assert main(["-q", "train", str(recipe), f"out_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert "needs torchvision" in err and "pip install -e '.[2d]'" in err
    assert not (tmp_path / "rooms").exists() and not (tmp_path / "run").exists()


def test_resume_continues_the_stored_recipe_not_the_changed_yaml(data, tmp_path):
    out = tmp_path / "run"
    assert run_cli(["train", str(data), *TINY, "epochs=1", f"out_dir={out}"]).returncode == 0
    changed = tmp_path / "changed.yaml"  # the YAML file was edited since: more rooms, another LR
    changed.write_text(data.read_text() + f"synth_scenes: 400\nlr: 0.5\nout_dir: {out}\n")
    resumed = run_cli(["train", str(changed), "epochs=2", "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    note = next(line for line in resumed.stdout.splitlines() if line.startswith("--resume: the recipe stored in"))
    assert "with epochs from the command line" in note and "differ and are not used" in note
    assert " lr," in note and "synth_scenes" in note and "widths" in note  # TINY's values were overrides
    assert "generating" not in resumed.stdout
    stored = load_checkpoint(out / "last.pt")
    assert stored["epoch"] == 2 and stored["config"]["lr"] == 0.002 and stored["config"]["epochs"] == 2
    # nothing left to do: says so and returns at once, without a step or a validation
    again = run_cli(["train", str(changed), "epochs=2", "--resume"])
    assert again.returncode == 0 and "nothing to resume: all 2 epochs are done" in again.stdout
    assert losses(out)[-1][0] == load_checkpoint(out / "last.pt")["step"]


def test_the_time_budget_stops_before_the_next_step_and_final_validation_would_overrun():
    from types import SimpleNamespace

    from pcseg.engine.loop import Run

    model = torch.nn.Linear(2, 2)
    recipe = SimpleNamespace(epochs=100, max_minutes=1.0, warmup_steps=0, lr=0.01, grad_clip=0.0,
                             checkpoint_every=0, log_every=10, val_every=0)
    run = Run("bottomup", recipe, model, torch.optim.SGD(model.parameters(), lr=0.01), 10, "AP50", True)
    run.wall_seconds, run._clock = 50.0, time.perf_counter()  # 50 s of the 60 s budget spent
    run.step, run.train_seconds = 2, 8.0  # 4 s per step
    assert not run.over_budget  # 50 + 4 < 60
    run.note_validation(7.0)
    assert run.over_budget  # 50 + 4 + 7 > 60: stop now, not at 64 s
    bar = run.progress_bar(False)
    assert bar.total == 60 and bar.n == 50  # seconds of the budget, not epochs x steps
    run.wall_seconds = 61.0
    assert "time budget is used up" in run.finished_already()
    assert "the time budget is" in run.schedule_note()  # why the LR is ~0


def test_init_weights_starts_from_a_checkpoint_of_the_same_architecture(data, tmp_path):
    first = tmp_path / "first"
    assert run_cli(["train", str(data), *TINY, "epochs=1", f"out_dir={first}"]).returncode == 0
    # lr ~ 0: the weights stay those it started from (BatchNorm statistics still move)
    tuned = tmp_path / "tuned"
    done = run_cli(["train", str(data), *TINY, "epochs=1", "lr=1e-20", "augment=false",
                    f"init_weights={first / 'model.pt'}", f"out_dir={tuned}"])
    assert done.returncode == 0 and "starting from the weights of" in done.stdout, done.stderr
    want, got = load_checkpoint(first / "model.pt")["model"], load_checkpoint(tuned / "model.pt")["model"]
    for key in want:
        if "running" not in key and "num_batches" not in key:
            torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-6)
    other = run_cli(["train", str(data), *TINY, "epochs=1", "widths=[8,16,24]", f"init_weights={first / 'model.pt'}",
                     f"out_dir={tmp_path / 'other'}"])
    assert other.returncode == 2 and "widths" in other.stderr


def test_a_model_gains_the_height_channel_with_the_same_outputs(data, tmp_path):
    """init_weights from a checkpoint without height_feature into a recipe with it: the first conv's new
    input channel starts at zero, so the new model predicts exactly what the old one did."""
    from pcseg.data import collate
    from pcseg.pipelines.bottomup.build import build_model
    from pcseg.pipelines.bottomup.recipe import ARCHITECTURE_KEYS
    from pcseg.pipelines.scenes import load_initial_weights
    from pcseg.io.scannet import list_scenes, read_scannet_scene

    first = tmp_path / "first"
    assert run_cli(["train", str(data), *TINY, "epochs=1", f"out_dir={first}"]).returncode == 0
    ckpt = load_checkpoint(first / "model.pt")
    old_recipe = BottomUpRecipe(**ckpt["config"])
    old = build_model(old_recipe)
    old.load_state_dict(ckpt["model"])
    new_recipe = BottomUpRecipe(**{**ckpt["config"], "height_feature": True})
    new = build_model(new_recipe)
    assert load_initial_weights(first / "model.pt", new, new_recipe, ARCHITECTURE_KEYS, "bottomup") == (True, False, None)
    root = load_config(BottomUpRecipe, data).data_root
    scene = read_scannet_scene(list_scenes(root)[0])
    with torch.no_grad():
        want = old.eval()(collate([scene]))["semantic_logits"]
        got = new.eval()(collate([scene], height=True))["semantic_logits"]
    torch.testing.assert_close(got, want)
    assert load_initial_weights(first / "model.pt", old, old_recipe, ARCHITECTURE_KEYS, "bottomup") == (False, False, None)
    with pytest.raises(DataError, match="height_feature"):  # a height model cannot start one without it
        tall = tmp_path / "tall.pt"
        torch.save({**ckpt, "config": {**ckpt["config"], "height_feature": True},
                    "model": new.state_dict()}, tall)
        load_initial_weights(tall, build_model(old_recipe), old_recipe, ARCHITECTURE_KEYS, "bottomup")


def test_a_grid_model_starts_from_a_bottomup_checkpoints_backbone(data, tmp_path):
    """init_weights of another pipeline's checkpoint: its sparse U-Net only, the heads start fresh; a
    backbone of another shape is refused naming the key."""
    from pcseg.pipelines.grid.build import build_model
    from pcseg.pipelines.grid.recipe import ARCHITECTURE_KEYS, GridRecipe
    from pcseg.pipelines.scenes import load_initial_weights

    first = tmp_path / "first"
    assert run_cli(["train", str(data), *TINY, "epochs=1", f"out_dir={first}"]).returncode == 0
    ckpt = load_checkpoint(first / "model.pt")
    backbone = {k: ckpt["config"][k] for k in ("voxel_size", "widths", "blocks", "height_feature")}
    recipe = GridRecipe(**backbone)
    torch.manual_seed(0)
    grid = build_model(recipe)
    head = {k: v.clone() for k, v in grid.state_dict().items() if k.startswith("head.")}
    assert load_initial_weights(first / "model.pt", grid, recipe, ARCHITECTURE_KEYS, "grid") == (False, True, None)
    state = grid.state_dict()
    assert all(torch.equal(state[k], v) for k, v in ckpt["model"].items() if k.startswith("backbone."))
    assert head and all(torch.equal(state[k], v) for k, v in head.items())
    wider = GridRecipe(**{**backbone, "widths": [16, 32]})
    with pytest.raises(DataError, match="widths"):
        load_initial_weights(first / "model.pt", build_model(wider), wider, ARCHITECTURE_KEYS, "grid")
    # a narrower U-Net of the same depth starts from the channels the checkpoint scales most
    from pcseg.models.narrowing import narrow_unet_state

    narrower = GridRecipe(**{**backbone, "widths": [6, 16]})
    small = build_model(narrower)
    assert load_initial_weights(first / "model.pt", small, narrower, ARCHITECTURE_KEYS, "grid") == (False, True, [8, 16])
    want = narrow_unet_state(ckpt["model"], [8, 16], [6, 16], prefix="backbone.")
    state = small.state_dict()
    assert all(torch.equal(state[k], want[k]) for k in state if k.startswith("backbone."))
    assert state["backbone.stem.0.weight"].shape[-1] == 6


def test_training_batches_read_colours_as_they_are(data):
    """The recipe's colour balance is for prediction: the training loader reads the (augmented) colours
    as they are, so the random colour casts reach the network."""
    from pcseg.data import balance_colors
    from pcseg.engine.distributed import DistInfo
    from pcseg.engine.loop import epoch_batches
    from pcseg.pipelines import get

    recipe = load_config(BottomUpRecipe, data, [*TINY, "augment=false", "train_split=all"])
    trainer = get("bottomup").trainer(recipe, torch.device("cpu"), DistInfo(), False, False)
    first = epoch_batches(len(trainer.dataset), recipe.batch_size, recipe.seed, 0)[0]
    scenes = [trainer.dataset[i] for i in first]
    colors = torch.from_numpy(np.concatenate([s.colors for s in scenes]))
    balanced = torch.from_numpy(np.concatenate([balance_colors(s.colors) for s in scenes]))
    features = next(iter(trainer.batches(0, 0))).features[:, :3]
    assert torch.equal(features, colors) and not torch.allclose(features, balanced)
