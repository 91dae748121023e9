"""``pcseg train``: ONE training loop for every pipeline.

The pipeline's ``Trainer`` (``engine.pipeline``) brings the model, the optimizer, the batches, the
forward pass and the validation; this loop brings the rest: the LR schedule and the time budget
(``Run``), checkpoints written atomically (``last.pt`` every ``checkpoint_every`` steps and at each
epoch's end, ``best.pt``, ``model.pt``), ``--resume`` that continues exactly where ``last.pt`` left
off (same data order, same RNG streams, so the losses equal an uninterrupted run's), metrics.jsonl +
TensorBoard, a progress bar, and DDP over several processes where the pipeline supports it.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from .checkpoint import save_checkpoint
from .device import resolve_device
from .distributed import DistInfo, barrier, cleanup, init_distributed
from .loop import MetricsLog, Run
from .pipeline import Pipeline


def train(pipeline: Pipeline, recipe: Any, resume: bool = False, progress: bool = True) -> dict:
    """Train ``pipeline`` with ``recipe``; returns the last validation result (or {}). Writes under
    ``recipe.out_dir``: ``last.pt`` (resumable), ``best.pt`` (best validation result), ``model.pt``
    (weights + recipe, for ``pcseg predict``), ``metrics.jsonl`` and ``tensorboard/``."""
    if not pipeline.distributed and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(f"pipeline {pipeline.name}: trains as one process; run it without torchrun")
    if pipeline.prepare is not None:
        pipeline.prepare(recipe)
    device = resolve_device(recipe.device)
    info = init_distributed(device) if pipeline.distributed else DistInfo()
    if device.type == "cuda" and info.enabled:  # init_distributed made it the process's current GPU
        device = torch.device("cuda", info.local_rank)
    out = Path(recipe.out_dir)
    try:
        trainer = pipeline.trainer(recipe, device, info, resume, progress)
        run = Run(pipeline.name, recipe, trainer.model, trainer.optimizer, trainer.steps_per_epoch, trainer.metric,
                  anneal_over_budget=trainer.anneal_over_budget)
        if resume:
            run.resume(out / "last.pt", device, pipeline.architecture_keys)
            done = run.finished_already()
            if done:
                if info.is_main:
                    print(f"{out / 'last.pt'}: nothing to resume: {done}")
                return {}
            if info.is_main:
                print(f"resuming {out / 'last.pt'} at epoch {run.epoch}, step {run.step}: {run.schedule_note()}")
        if info.is_main and progress:
            print(trainer.intro())
        log = MetricsLog(out, info.is_main, run.step if resume else None)
        bar = run.progress_bar(progress and info.is_main)
        last_val: dict = {}

        def checkpoint(name: str = "last.pt") -> None:
            if info.is_main:
                save_checkpoint(out / name, run.payload())

        trainer.model.train()
        stop = False
        run.start_clock()
        while run.epoch < recipe.epochs and not stop:
            for batch in trainer.batches(run.epoch, run.batch):
                start = time.perf_counter()
                total, losses = trainer.forward(batch)
                seconds = run.optimize(total, start)
                fields, shown = trainer.record(total, losses, batch, seconds)
                run.check_finite(fields["total"], fields)
                run.after_step({"step": run.step, "epoch": run.epoch, "lr": run.lr, **fields}, log, bar,
                               checkpoint, **shown)
                if run.over_budget:
                    stop = True
                    break
            finished = run.end_epoch(stop)
            checkpoint()
            if info.is_main and run.validation_due(finished):
                start = time.perf_counter()
                last_val = trainer.validate(progress)
                run.note_validation(time.perf_counter() - start)
                log.record({"step": run.step, "epoch": run.epoch,
                            **{f"val_{k}": v for k, v in last_val.items() if not isinstance(v, dict)}}, "val")
                bar.write(f"epoch {run.epoch} step {run.step}: {trainer.describe(last_val)}")
                if run.improved(last_val, also=trainer.also):
                    checkpoint("best.pt")
                checkpoint()
            barrier(info)
        bar.close()
        if info.is_main:
            save_checkpoint(out / "model.pt", {"kind": pipeline.name, "config": recipe.to_dict(),
                                               "model": trainer.model.state_dict(), "step": run.step,
                                               "train_seconds": run.train_seconds,
                                               "validation": trainer.plain(last_val)})
            print(f"trained {run.step} steps in {run.train_seconds / 60:.1f} min; model: {out / 'model.pt'}")
        log.close()
        return last_val
    finally:
        cleanup(info)
