"""``pcseg train``: the training loop of the bottom-up pipeline.

One process, or several under ``torchrun`` (DDP; gloo on CPUs, nccl on GPUs). Data order and
augmentation depend only on (seed, epoch, index), checkpoints hold the model, optimizer, scheduler,
RNG states and the position in the epoch (``loop.Run``), so ``--resume`` after a crash (even
``kill -9``) continues with exactly the losses an uninterrupted run would have had (on a CPU).
"""
from __future__ import annotations

import functools
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data import collate
from ..runtime import apply_recipe_threads
from .build import build_model, class_weights, resolve_device, select_backend, train_dataset, val_dataset, val_root
from .checkpoint import check_compatible, load_checkpoint, load_model_state, save_checkpoint
from .distributed import DistInfo, all_reduce_mean, barrier, cleanup, init_distributed
from .loop import MetricsLog, Run, epoch_batches, plain_result
from .recipe import ARCHITECTURE_KEYS, BottomUpRecipe


def ensure_synthetic_data(recipe: BottomUpRecipe, info: DistInfo, progress: bool = True) -> None:
    """Generate the recipe's synthetic rooms once (rank 0) when asked to and missing."""
    from ..synth import ensure_synthetic_dataset

    wanted = [(Path(recipe.data_root), recipe.synth_scenes, recipe.synth_seed)]
    if recipe.val_root:
        wanted.append((val_root(recipe), recipe.val_synth_scenes, recipe.val_synth_seed))
    if info.is_main:
        for root, scenes, seed in wanted:
            if scenes > 0:
                ensure_synthetic_dataset(root, scenes, seed=seed, progress=progress)
    barrier(info)


def validate(model: torch.nn.Module, recipe: BottomUpRecipe, device: torch.device, progress: bool = False) -> dict:
    """AP / AP50 / AP25 (ScanNet protocol) and semantic mIoU on the validation split."""
    from ..evaluation import InstanceEvaluator, SemanticEvaluator
    from .predict import predict_scene

    dataset = val_dataset(recipe)
    count = len(dataset) if recipe.val_scenes <= 0 else min(recipe.val_scenes, len(dataset))
    instances, semantic = InstanceEvaluator(), SemanticEvaluator()
    was_training = model.training
    model.eval()
    seconds = 0.0
    # on a terminal only (disable=None): in a log, a bar nested in the training bar leaves escape codes
    for i in tqdm(range(count), desc="validate", unit="scene", disable=(not progress) or None, leave=False):
        scene = dataset.load(i)
        start = time.perf_counter()
        pred = predict_scene(model, scene, recipe, device)
        seconds += time.perf_counter() - start
        instances.process(scene, pred.instances, name=scene.name)
        semantic.process(scene.semantic, pred.semantic, name=scene.name)
    model.train(was_training)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes absent from a small validation set are expected
        result = instances.evaluate()
        result["mIoU"] = semantic.evaluate()["mIoU"]
    result["seconds_per_scene"] = seconds / max(count, 1)
    return result


def load_initial_weights(path: Path, model: torch.nn.Module, recipe: BottomUpRecipe) -> bool:
    """Load the weights of the checkpoint ``path`` (``init_weights``) into ``model``. The architecture
    must match, except that a model without the height channel may start a model with it: the first
    conv's weights for the new channel start at zero, so the model computes what it did. Returns
    whether the height channel was added."""
    init = load_checkpoint(path)
    saved = dict(init["config"])
    add_height = recipe.height_feature and not saved.get("height_feature", False)
    if add_height:
        saved["height_feature"] = True
    check_compatible(path, saved, recipe.to_dict(), ARCHITECTURE_KEYS)
    state = dict(init["model"])
    if add_height:  # the first conv's input-channel axis (its place depends on the sparse backend) grows by one
        key = "backbone.stem.0.weight"
        old, want = state[key], model.state_dict()[key].shape
        axis = next(i for i, (a, b) in enumerate(zip(old.shape, want)) if a + 1 == b)
        extra = list(old.shape)
        extra[axis] = 1
        state[key] = torch.cat([old, old.new_zeros(extra)], axis)
    load_model_state(path, model, state)
    return add_height


def train(recipe: BottomUpRecipe, resume: bool = False, progress: bool = True) -> dict:
    """Train; returns the last validation result (or {} when none ran). Writes under ``out_dir``:
    ``last.pt`` (resumable), ``best.pt`` (best validation AP50), ``model.pt`` (weights + recipe),
    ``metrics.jsonl`` and ``tensorboard/``."""
    device = resolve_device(recipe.device)
    info = init_distributed(device)
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    apply_recipe_threads(recipe.threads)
    backend = select_backend(recipe, device)
    out = Path(recipe.out_dir)
    try:
        ensure_synthetic_data(recipe, info, progress)
        torch.manual_seed(recipe.seed)
        np.random.seed(recipe.seed)
        model = build_model(recipe)
        if recipe.init_weights and not resume:
            added = load_initial_weights(Path(recipe.init_weights), model, recipe)
            if info.is_main:
                print(f"starting from the weights of {recipe.init_weights}" + (
                    " (the height channel added with zero weights: the same outputs at the start)" if added else ""))
        model = model.to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        dataset = train_dataset(recipe)
        weights = class_weights(recipe, dataset)
        if weights is not None:
            model.set_class_weights(weights)
            if info.is_main and progress:
                from ..labels import SEMANTIC20_NAMES

                print("class weights: " + ", ".join(f"{n} {w:.2f}" for n, w in zip(SEMANTIC20_NAMES, weights.tolist())))
        steps_per_epoch = len(epoch_batches(len(dataset), recipe.batch_size, recipe.seed, 0, info.rank,
                                            info.world_size))
        run = Run("bottomup", recipe, model, optimizer, steps_per_epoch, "AP50",
                  anneal_over_budget=recipe.lr_anneal == "budget")
        if resume:
            run.resume(out / "last.pt", device, ARCHITECTURE_KEYS)
            done = run.finished_already()
            if done:
                if info.is_main:
                    print(f"{out / 'last.pt'}: nothing to resume: {done}")
                return {}
            if info.is_main:
                print(f"resuming {out / 'last.pt'} at epoch {run.epoch}, step {run.step}: {run.schedule_note()}")
        if info.is_main and progress:
            print(f"training on {device} ({info.world_size} process(es)), sparse backend {backend}")
        net = torch.nn.parallel.DistributedDataParallel(model) if info.enabled else model
        log = MetricsLog(out, info.is_main, run.step if resume else None)
        bar = run.progress_bar(progress and info.is_main)
        last_val: dict = {}

        def checkpoint(name: str = "last.pt") -> None:
            if info.is_main:
                save_checkpoint(out / name, run.payload())

        model.train()
        stop = False
        run.start_clock()
        while run.epoch < recipe.epochs and not stop:
            dataset.set_epoch(run.epoch)
            batches = epoch_batches(len(dataset), recipe.batch_size, recipe.seed, run.epoch, info.rank,
                                    info.world_size)
            loader = DataLoader(dataset, batch_sampler=batches[run.batch:], num_workers=recipe.workers,
                                collate_fn=functools.partial(collate, height=recipe.height_feature))
            for batch in loader:
                start = time.perf_counter()
                batch = batch.to(device)
                losses = net(batch)
                seconds = run.optimize(losses["total"], start)
                # means over the ranks, so every rank sees the same values (and stops together)
                values = {k: all_reduce_mean(float(v.detach()), info) for k, v in losses.items()}
                run.check_finite(values["total"], values)
                record = {"step": run.step, "epoch": run.epoch, "lr": run.lr, **values,
                          "points_per_s": all_reduce_mean(batch.points.shape[0] / seconds, info) * info.world_size}
                run.after_step(record, log, bar, checkpoint, loss=f"{record['total']:.3f}",
                               sem=f"{record['semantic']:.3f}", pts_s=f"{record['points_per_s']:.0f}")
                if run.over_budget:
                    stop = True
                    break
            finished = run.end_epoch(stop)
            checkpoint()
            if info.is_main and run.validation_due(finished):
                start = time.perf_counter()
                last_val = validate(model, recipe, device, progress)
                run.note_validation(time.perf_counter() - start)
                log.record({"step": run.step, "epoch": run.epoch,
                            **{f"val_{k}": v for k, v in last_val.items() if k != "classes"}}, "val")
                bar.write(f"epoch {run.epoch} step {run.step}: AP {last_val['AP']:.3f} AP50 {last_val['AP50']:.3f} "
                          f"AP25 {last_val['AP25']:.3f} mIoU {last_val['mIoU']:.3f}")
                if run.improved(last_val, also=("AP",)):
                    checkpoint("best.pt")
                checkpoint()
            barrier(info)
        bar.close()
        if info.is_main:
            save_checkpoint(out / "model.pt", {"kind": "bottomup", "config": recipe.to_dict(),
                                               "model": model.state_dict(), "step": run.step,
                                               "train_seconds": run.train_seconds, "validation": plain_result(last_val)})
            print(f"trained {run.step} steps in {run.train_seconds / 60:.1f} min; model: {out / 'model.pt'}")
        log.close()
        return last_val
    finally:
        cleanup(info)

