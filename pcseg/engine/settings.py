"""What every pipeline's recipe has: its data, optimisation and run settings, declared and checked once.

A pipeline's recipe is a dataclass that inherits ``TrainingSettings`` and adds its own fields (a
subclass may redeclare a field to change its default). The YAML recipe stays one flat mapping.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

from .config import require


@dataclass
class TrainingSettings:
    # data
    data_root: str = "out/data/synth"
    train_split: str = "train"           # "all" = every scene under data_root
    val_root: str | None = None          # dataset used for validation (default: data_root)
    val_split: str = "val"               # "all" = every scene under val_root
    synth_scenes: int = 0                # > 0: generate this many synthetic rooms at data_root if it is missing
    synth_seed: int = 0
    val_synth_scenes: int = 0            # > 0: generate the validation rooms at val_root if missing
    val_synth_seed: int = 1
    # optimisation
    epochs: int = 30
    batch_size: int = 2
    lr: float = 0.002
    weight_decay: float = 0.0001
    warmup_steps: int = 0                # linear LR warm-up over this many steps
    grad_clip: float = 0.0               # 0 = off
    max_minutes: float = 0.0             # stop (and save) after this much training time; 0 = no limit
    seed: int = 0
    workers: int = 0
    device: str = "auto"                 # auto | cpu | cuda | cuda:N
    threads: int = 0                     # CPU threads; 0 = all usable cores
    # engine
    out_dir: str = "runs/run"
    val_every: int = 5                   # epochs between validations; 0 = only at the end
    checkpoint_every: int = 0            # steps between checkpoints; 0 = at the end of each epoch
    log_every: int = 10                  # steps between TensorBoard points

    def __post_init__(self) -> None:
        need = functools.partial(require, self)
        need(self.epochs >= 1, "epochs", "must be >= 1")
        need(self.batch_size >= 1, "batch_size", "must be >= 1")
        need(self.lr > 0, "lr", "must be > 0")
        need(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        need(self.workers >= 0 and self.threads >= 0, "workers", "workers and threads must be >= 0")
        need(self.val_every >= 0 and self.checkpoint_every >= 0, "val_every", "must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
