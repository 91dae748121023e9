"""``pcseg train``: the training loop of the bottom-up pipeline.

One process, or several under ``torchrun`` (DDP; gloo on CPUs, nccl on GPUs). Data order and
augmentation depend only on (seed, epoch, index), checkpoints hold the model, optimizer, scheduler,
RNG states and the position in the epoch, so ``--resume`` after a crash (even ``kill -9``)
continues with exactly the losses an uninterrupted run would have had (on a CPU).
"""
from __future__ import annotations

import functools
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data import collate
from ..errors import ConfigError
from .build import build_model, class_weights, resolve_device, select_backend, train_dataset, val_dataset, val_root
from .checkpoint import (check_compatible, load_checkpoint, load_model_state, rng_state, save_checkpoint,
                         set_rng_state)
from .distributed import DistInfo, all_reduce_mean, barrier, cleanup, init_distributed
from .recipe import ARCHITECTURE_KEYS, BottomUpRecipe


def epoch_batches(num_items: int, batch_size: int, seed: int, epoch: int, rank: int = 0,
                  world: int = 1) -> list[list[int]]:
    """This rank's batches of dataset indices for ``epoch``: a seeded shuffle, padded by wrapping
    around so every rank runs the same number of steps (DDP needs that)."""
    order = torch.randperm(num_items, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).tolist()
    per_rank = math.ceil(num_items / world)
    order = (order * (world + 1))[:per_rank * world]
    shard = order[rank::world]
    return [shard[i:i + batch_size] for i in range(0, len(shard), batch_size)]


def lr_factor(step: int, total_steps: int, time_fraction: float = 0.0, warmup_steps: int = 0,
              power: float = 0.9) -> float:
    """Linear warm-up over ``warmup_steps``, times the poly decay (1 - progress) ** power, progress =
    the larger of the step fraction and the spent fraction of the time budget (0 without one)."""
    warm = max(min(1.0, (step + 1) / warmup_steps), 1e-3) if warmup_steps > 0 else 1.0
    progress = max(step / max(total_steps, 1), time_fraction)
    return warm * max(1.0 - progress, 0.0) ** power


def apply_gradients(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor,
                    grad_clip: float) -> None:
    """Backward, optional gradient-norm clipping (``grad_clip`` > 0), optimizer step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()


def after_step(recipe, record: dict, log: "_Log", bar: tqdm, checkpoint, **postfix: str) -> None:
    """Bookkeeping after each training step: log ``record``, advance the progress bar, and write
    ``last.pt`` every ``recipe.checkpoint_every`` steps."""
    step = record["step"]
    log.record(record, "train", tensorboard=step % recipe.log_every == 0)
    bar.update(1)
    bar.set_postfix(**postfix)
    if recipe.checkpoint_every and step % recipe.checkpoint_every == 0:
        checkpoint()


def restore_run(path: Path, device, recipe, architecture_keys, model, optimizer, scheduler,
                kind: str | None = None) -> dict:
    """--resume: load ``path`` (checked against the recipe's architecture and, if given, ``kind``)
    into the model, optimizer, scheduler and RNGs; returns the checkpoint for the loop's position."""
    if not path.is_file():
        raise ConfigError(f"--resume: no checkpoint at {path}")
    ckpt = load_checkpoint(path, map_location=device)
    if kind is not None and ckpt.get("kind") != kind:
        raise ConfigError(f"--resume: {path} is a {ckpt.get('kind')!r} checkpoint, not {kind!r}")
    check_compatible(path, ckpt["config"], recipe.to_dict(), architecture_keys)
    load_model_state(path, model, ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    set_rng_state(ckpt["rng"])
    return ckpt


def ensure_synthetic_data(recipe: BottomUpRecipe, info: DistInfo) -> None:
    """Generate the recipe's synthetic rooms once (rank 0) when asked to and missing."""
    from ..synth import write_synthetic_dataset

    wanted = [(Path(recipe.data_root), recipe.synth_scenes, recipe.synth_seed)]
    if recipe.val_root:
        wanted.append((val_root(recipe), recipe.val_synth_scenes, recipe.val_synth_seed))
    if info.is_main:
        for root, scenes, seed in wanted:
            if scenes > 0 and not (root / "scans").is_dir():
                print(f"generating {scenes} synthetic rooms (seed {seed}) in {root}")
                write_synthetic_dataset(root, scenes, seed=seed)
    barrier(info)


class _Log:
    """metrics.jsonl (one JSON record per line) + TensorBoard, on rank 0 only."""

    def __init__(self, out: Path, enabled: bool, resume_step: int | None) -> None:
        self.enabled = enabled
        self.writer = None
        self.path = out / "metrics.jsonl"
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        records = []
        if resume_step is not None and self.path.exists():  # drop what was logged after the checkpoint
            records = [r for r in map(json.loads, self.path.read_text().splitlines())
                       if r.get("step", 0) <= resume_step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in records))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tensorboard"))
        except ImportError:
            warnings.warn("tensorboard is not installed: no TensorBoard logs (metrics.jsonl is still written)")

    def record(self, record: dict[str, Any], prefix: str, tensorboard: bool = True) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None and tensorboard:
            for key, value in record.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(f"{prefix}/{key}", value, record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


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
    for i in tqdm(range(count), desc="validate", unit="scene", disable=not progress, leave=False):
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


def _payload(recipe, model, optimizer, scheduler, epoch, batch, step, train_seconds, best) -> dict:
    return {"kind": "bottomup", "config": recipe.to_dict(), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch,
            "batch": batch, "step": step, "train_seconds": train_seconds, "best": best, "rng": rng_state()}


def train(recipe: BottomUpRecipe, resume: bool = False, progress: bool = True) -> dict:
    """Train; returns the last validation result (or {} when none ran). Writes under ``out_dir``:
    ``last.pt`` (resumable), ``best.pt`` (best validation AP50), ``model.pt`` (weights + recipe),
    ``metrics.jsonl`` and ``tensorboard/``."""
    device = resolve_device(recipe.device)
    info = init_distributed(device)
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    backend = select_backend(recipe, device)
    out = Path(recipe.out_dir)
    try:
        ensure_synthetic_data(recipe, info)
        torch.manual_seed(recipe.seed)
        np.random.seed(recipe.seed)
        model = build_model(recipe).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        dataset = train_dataset(recipe)
        weights = class_weights(recipe, dataset)
        if weights is not None:
            model.set_class_weights(weights)
            if info.is_main and progress:
                print("class weights: " + " ".join(f"{w:.2f}" for w in weights.tolist()))
        steps_per_epoch = len(epoch_batches(len(dataset), recipe.batch_size, recipe.seed, 0, info.rank,
                                            info.world_size))
        total_steps = recipe.epochs * steps_per_epoch
        budget = recipe.max_minutes * 60 if recipe.max_minutes > 0 else math.inf
        # Poly decay over epochs x steps; with lr_anneal "budget" also over the time budget, whichever
        # ends first, so a run stopped by the budget still anneals to 0. (The time fraction is
        # measured, so such a run is not bit-reproducible on --resume.)
        spent = {"fraction": 0.0}
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, total_steps, spent["fraction"], recipe.warmup_steps))
        epoch = batch_in_epoch = step = 0
        train_seconds, best = 0.0, {"AP50": -1.0}
        if resume:
            path = out / "last.pt"
            ckpt = restore_run(path, device, recipe, ARCHITECTURE_KEYS, model, optimizer, scheduler)
            epoch, batch_in_epoch, step = ckpt["epoch"], ckpt["batch"], ckpt["step"]
            train_seconds, best = ckpt["train_seconds"], ckpt["best"]
            if info.is_main:
                print(f"resuming {path} at epoch {epoch}, step {step}")
        if info.is_main and progress:
            print(f"training on {device} ({info.world_size} process(es)), sparse backend {backend}")
        net = torch.nn.parallel.DistributedDataParallel(model) if info.enabled else model
        log = _Log(out, info.is_main, step if resume else None)
        bar = tqdm(total=total_steps, initial=step, desc="train", unit="step", disable=not (progress and info.is_main))
        last_val: dict = {}

        def checkpoint(name: str = "last.pt") -> None:
            if info.is_main:
                save_checkpoint(out / name, _payload(recipe, model, optimizer, scheduler, epoch, batch_in_epoch,
                                                     step, train_seconds, best))

        model.train()
        stop = False
        while epoch < recipe.epochs and not stop:
            dataset.set_epoch(epoch)
            batches = epoch_batches(len(dataset), recipe.batch_size, recipe.seed, epoch, info.rank, info.world_size)
            loader = DataLoader(dataset, batch_sampler=batches[batch_in_epoch:], num_workers=recipe.workers,
                                collate_fn=functools.partial(collate, height=recipe.height_feature))
            for batch in loader:
                start = time.perf_counter()
                batch = batch.to(device)
                losses = net(batch)
                apply_gradients(model, optimizer, losses["total"], recipe.grad_clip)
                seconds = time.perf_counter() - start
                train_seconds += seconds
                if recipe.lr_anneal == "budget":
                    spent["fraction"] = train_seconds / budget
                scheduler.step()
                step += 1
                batch_in_epoch += 1
                record = {"step": step, "epoch": epoch, "lr": scheduler.get_last_lr()[0],
                          **{k: all_reduce_mean(float(v.detach()), info) for k, v in losses.items()},
                          "points_per_s": all_reduce_mean(batch.points.shape[0] / seconds, info) * info.world_size}
                after_step(recipe, record, log, bar, checkpoint, loss=f"{record['total']:.3f}",
                           sem=f"{record['semantic']:.3f}", pts_s=f"{record['points_per_s']:.0f}")
                if train_seconds > budget:
                    stop = True
                    break
            if not stop:
                epoch, batch_in_epoch = epoch + 1, 0
            checkpoint()
            finished = stop or epoch >= recipe.epochs
            if info.is_main and (finished or (recipe.val_every and epoch % recipe.val_every == 0)):
                last_val = validate(model, recipe, device, progress)
                log.record({"step": step, "epoch": epoch, **{f"val_{k}": v for k, v in last_val.items()
                                                              if k != "classes"}}, "val")
                bar.write(f"epoch {epoch} step {step}: AP {last_val['AP']:.3f} AP50 {last_val['AP50']:.3f} "
                          f"AP25 {last_val['AP25']:.3f} mIoU {last_val['mIoU']:.3f}")
                if last_val["AP50"] > best["AP50"]:
                    best = {"AP50": last_val["AP50"], "AP": last_val["AP"], "step": step}
                    checkpoint("best.pt")
                checkpoint()
            barrier(info)
        bar.close()
        if info.is_main:
            save_checkpoint(out / "model.pt", {"kind": "bottomup", "config": recipe.to_dict(),
                                               "model": model.state_dict(), "step": step,
                                               "train_seconds": train_seconds, "validation": _plain(last_val)})
            print(f"trained {step} steps in {train_seconds / 60:.1f} min; model: {out / 'model.pt'}")
        log.close()
        return last_val
    finally:
        cleanup(info)


def _plain(result: dict) -> dict:
    """A validation result with NaN -> None (checkpoints hold plain values only)."""
    from ..evaluation import to_json_dict

    return to_json_dict(result) if result else {}
