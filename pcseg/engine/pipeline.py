"""What the engine needs from a pipeline: the small interface every unit under ``pcseg/pipelines/``
implements. The engine drives it (``engine.train.train``, ``engine.predict.predict_to_folder``) and
never chooses a pipeline by name: ``pcseg.pipelines`` holds the one table of units.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

import torch

from ..structures import Prediction, Scene


class Trainer(Protocol):
    """One training run's pipeline-specific parts, built by ``Pipeline.trainer`` (which also seeds the
    RNGs, builds the model and the optimizer and reads the datasets, in the order its resumed runs
    rely on). The engine's loop does the rest: schedule, budget, checkpoints, resume, metrics."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    steps_per_epoch: int
    metric: str                       # the validation result key that picks best.pt ...
    also: tuple[str, ...]             # ... and the keys that break its ties
    anneal_over_budget: bool          # the LR reaches 0 when the time budget ends

    def batches(self, epoch: int, first: int) -> Iterable[Any]:
        """This process's batches of ``epoch`` from batch number ``first`` on."""

    def step(self, batch: Any) -> tuple[torch.Tensor, dict[str, float], dict[str, float], dict[str, str]]:
        """Forward one batch: (total loss, loss values, other per-step numbers for the metrics log,
        short texts for the progress bar). The engine does backward and the optimizer step."""

    def validate(self, progress: bool) -> dict:
        """Validation result (the main process only)."""

    def describe(self, result: dict) -> str:
        """One line for the log: the validation result's headline numbers."""

    def plain(self, result: dict) -> dict:
        """The validation result as plain values for the checkpoint."""


class Predictor(Protocol):
    """A trained model that predicts scenes, built by ``Pipeline.predictor`` from a checkpoint.
    ``predict_to_folder`` runs ``network`` for a scene while ``finish`` of the previous scene runs
    in a second thread."""

    recipe: Any
    train_seconds: float | None       # how long the checkpoint trained (None when it does not say)
    segment_snap: float               # the engine snaps masks and classes to the scan's segments (0: off)
    min_size: int                     # masks left smaller than this after snapping are dropped
    superpoints: bool                 # a scan without segments snaps to superpoints computed for it
    tile_size: float                  # pcseg predict cuts scans wider than this into blocks (0: never)
    tile_overlap: float               # ... overlapping by this many metres (engine.tiling)

    def check(self, sources: Sequence[Path]) -> None:
        """A DataError naming what the pipeline cannot predict from (e.g. a folder without frames)."""

    def network(self, scene: Scene, source: Path) -> Any:
        """The network's part of predicting ``scene`` (read from ``source``)."""

    def finish(self, scene: Scene, output: Any) -> Prediction:
        """Everything after the network (grouping, lifting), before snapping and writing."""


@dataclass(frozen=True)
class Pipeline:
    """One pipeline: its name (a recipe's ``pipeline:`` key and a checkpoint's ``kind``), its recipe
    dataclass, the recipe keys that fix the network and those a prediction may override, and two
    builders: ``trainer(recipe, device, info, resume, progress) -> Trainer`` and
    ``predictor(checkpoint dict, path, device, overrides) -> Predictor``."""

    name: str
    recipe: type
    architecture_keys: tuple[str, ...]
    predict_keys: tuple[str, ...]
    trainer: Callable[..., Trainer]
    predictor: Callable[..., Predictor]
    distributed: bool = False         # may train as several processes (torchrun)
    prepare: Callable[[Any], None] | None = None  # checks before anything is generated or loaded


def lazy(target: str) -> Callable[..., Any]:
    """``"module:name"`` -> a function that imports the module when first called and calls ``name``:
    a unit names its trainer and predictor without importing them (nor torchvision) up front."""
    module, _, name = target.partition(":")

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__qualname__ = target
    return call
