"""What the 3D and 2D trainers share: data order, the LR schedule, the step, the run's position and
best result, its checkpoint payload and --resume, and the metrics log.

Data order depends only on (seed, epoch, rank); a checkpoint holds the model, optimizer, scheduler,
RNG states and the position in the epoch, so a resumed run continues with the losses of an
uninterrupted one (on a CPU, with ``lr_anneal: steps``).
"""
from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..errors import ConfigError
from .checkpoint import check_compatible, load_checkpoint, load_model_state, rng_state, set_rng_state
from .device import synchronize


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


def plain_result(result: dict) -> dict:
    """A validation result with NaN -> None and str keys (checkpoints hold plain values only)."""
    from ..evaluation import to_json_dict

    return to_json_dict(result) if result else {}


class MetricsLog:
    """metrics.jsonl (one JSON record per line) + TensorBoard; writes nothing when not ``enabled``
    (the DDP ranks other than 0)."""

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


class Run:
    """A training run's position (epoch, batch in the epoch, step), its training time against the time
    budget, its LR schedule and its best validation result; what a resumable checkpoint holds of it.

    The LR follows ``lr_factor``: warm-up, then poly decay over epochs x steps or, with
    ``anneal_over_budget``, over the time budget too, whichever ends first, so a run stopped by the
    budget still anneals to 0 (the time fraction is measured, so such a run is not bit-reproducible
    on --resume). ``metric``: the validation key that decides ``best.pt``.

    The time budget (``max_minutes``) is wall-clock time of the training loop: steps, data loading,
    validations and checkpoints. The run stops when one more step and the final validation (as long
    as the last one took) would not fit, so it ends within the budget rather than after it.
    """

    def __init__(self, kind: str, recipe, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 steps_per_epoch: int, metric: str, anneal_over_budget: bool) -> None:
        self.kind, self.recipe, self.model, self.optimizer, self.metric = kind, recipe, model, optimizer, metric
        self.total_steps = recipe.epochs * steps_per_epoch
        self.budget = recipe.max_minutes * 60 if recipe.max_minutes > 0 else math.inf
        self.anneal_over_budget = anneal_over_budget
        self.time_fraction = 0.0
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, self.total_steps, self.time_fraction, recipe.warmup_steps))
        self.epoch = self.batch = self.step = 0
        self.train_seconds = 0.0          # time in training steps (forward, backward, optimizer)
        self.wall_seconds = 0.0           # loop time before this process's clock started (--resume)
        self.validation_seconds = 0.0     # how long the last validation took
        self._clock = time.perf_counter()
        self.best: dict = {metric: -1.0}

    def resume(self, path: Path, device, architecture_keys) -> None:
        """--resume: load ``path`` (checked against the recipe's architecture and the run's kind) into
        the model, optimizer, scheduler and RNGs, and continue from its position."""
        if not path.is_file():
            raise ConfigError(f"--resume: no checkpoint at {path}")
        ckpt = load_checkpoint(path, map_location=device)
        if ckpt.get("kind") != self.kind:
            raise ConfigError(f"--resume: {path} is a {ckpt.get('kind')!r} checkpoint, not {self.kind!r}")
        check_compatible(path, ckpt["config"], self.recipe.to_dict(), architecture_keys)
        load_model_state(path, self.model, ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
        self.epoch, self.batch, self.step = ckpt["epoch"], ckpt["batch"], ckpt["step"]
        self.train_seconds, self.best = ckpt["train_seconds"], ckpt["best"]
        self.wall_seconds = ckpt.get("wall_seconds", self.train_seconds)
        self.validation_seconds = ckpt.get("validation_seconds", 0.0)

    def start_clock(self) -> None:
        """The training loop starts now: the time budget counts from here (plus a resumed run's time)."""
        self._clock = time.perf_counter()

    @property
    def elapsed(self) -> float:
        """Wall-clock seconds of the training loop so far, resumed runs included."""
        return self.wall_seconds + (time.perf_counter() - self._clock)

    def finished_already(self) -> str | None:
        """Why a resumed run has nothing left to do (its epochs or its time budget are used up), or None."""
        if self.epoch >= self.recipe.epochs:
            return f"all {self.recipe.epochs} epochs are done (raise epochs=N to train more)"
        if self.wall_seconds >= self.budget:
            return (f"its time budget is used up ({self.wall_seconds / 60:.1f} of max_minutes="
                    f"{self.recipe.max_minutes:g}; raise max_minutes to train more)")
        return None

    def schedule_note(self) -> str:
        """The LR the run continues with and why, for a resumed run."""
        factor = lr_factor(self.step, self.total_steps, self.elapsed / self.budget if self.anneal_over_budget else 0.0,
                           self.recipe.warmup_steps)
        note = f"LR {self.recipe.lr * factor:.2e} (= lr x {factor:.3f}"
        if factor < 0.1:
            by_time = self.anneal_over_budget and self.elapsed / self.budget >= self.step / max(self.total_steps, 1)
            why = (f"the time budget is {self.elapsed / self.budget:.0%} spent" if by_time
                   else f"step {self.step} of {self.total_steps}")
            note += f": the poly decay is near its end, {why}; the LR stays low unless epochs or max_minutes grow more"
        return note + ")"

    def progress_bar(self, enabled: bool) -> tqdm:
        """Steps out of epochs x steps; with a time budget, seconds of the budget (its steps are unknown)."""
        if math.isfinite(self.budget):
            return tqdm(total=round(self.budget), initial=round(min(self.elapsed, self.budget)), unit="s",
                        desc="train (time budget)", disable=not enabled,
                        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]")
        return tqdm(total=self.total_steps, initial=self.step, desc="train", unit="step", disable=not enabled)

    def note_validation(self, seconds: float) -> None:
        self.validation_seconds = seconds

    def payload(self) -> dict:
        """Everything ``last.pt`` / ``best.pt`` hold."""
        return {"kind": self.kind, "config": self.recipe.to_dict(), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "epoch": self.epoch, "batch": self.batch, "step": self.step, "train_seconds": self.train_seconds,
                "wall_seconds": self.elapsed, "validation_seconds": self.validation_seconds,
                "best": self.best, "rng": rng_state()}

    def optimize(self, loss: torch.Tensor, start: float) -> float:
        """Backward and optimizer step on ``loss``, then advance the position and the LR; returns the
        seconds since ``start`` (taken before the forward pass)."""
        apply_gradients(self.model, self.optimizer, loss, self.recipe.grad_clip)
        synchronize(loss.device)  # on a GPU the step's kernels run after the call returns
        seconds = time.perf_counter() - start
        self.train_seconds += seconds
        if self.anneal_over_budget:
            self.time_fraction = self.elapsed / self.budget
        self.scheduler.step()
        self.step += 1
        self.batch += 1
        return seconds

    @property
    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    @property
    def over_budget(self) -> bool:
        """Whether one more step plus the final validation would overrun the time budget."""
        if not math.isfinite(self.budget):
            return False
        step = self.train_seconds / max(self.step, 1)  # the mean step so far
        return self.elapsed + step + self.validation_seconds > self.budget

    def check_finite(self, total: float, losses: dict[str, float]) -> None:
        """Stop with a clear error when the (logged) loss of the step just taken is NaN or infinite;
        ``last.pt`` was written before this step and holds the last finite state."""
        if not math.isfinite(total):
            raise ConfigError(f"{self.recipe.out_dir}: the loss became {total} at step {self.step} "
                              f"({ {k: round(v, 4) for k, v in losses.items()} }); lower lr, raise warmup_steps "
                              "or set grad_clip (last.pt holds the last finite state)")

    def after_step(self, record: dict, log: MetricsLog, bar: tqdm, checkpoint, **postfix: str) -> None:
        """Log ``record``, advance the progress bar, and write ``last.pt`` every ``checkpoint_every`` steps."""
        log.record(record, "train", tensorboard=self.step % self.recipe.log_every == 0)
        bar.update(max(0, round(min(self.elapsed, self.budget)) - bar.n) if math.isfinite(self.budget) else 1)
        bar.set_postfix(**postfix)
        if self.recipe.checkpoint_every and self.step % self.recipe.checkpoint_every == 0:
            checkpoint()

    def end_epoch(self, stopped: bool) -> bool:
        """Move to the next epoch unless the budget stopped this one; returns whether training is over."""
        if not stopped:
            self.epoch, self.batch = self.epoch + 1, 0
        return stopped or self.epoch >= self.recipe.epochs

    def validation_due(self, finished: bool) -> bool:
        return finished or bool(self.recipe.val_every and self.epoch % self.recipe.val_every == 0)

    def improved(self, result: dict, also: tuple[str, ...] = ()) -> bool:
        """Whether ``result[metric]`` beats the best so far; if so it becomes the best (with ``also``)."""
        value = result[self.metric]
        if math.isnan(value) or value <= self.best[self.metric]:
            return False
        self.best = {self.metric: value, **{k: result[k] for k in also}, "step": self.step}
        return True
