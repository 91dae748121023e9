"""Helper for tests: a checkpoint of a small, untrained model of a pipeline (for commands that load one)."""
from pathlib import Path

import torch

from pcseg.engine.checkpoint import save_checkpoint
from pcseg.pipelines import load_recipe


def untrained_checkpoint(path: Path, pipeline: str, overrides: list[str]) -> Path:
    """Write ``path``: the ``pipeline`` model of the recipe with ``overrides``, random weights (seed 0)."""
    if pipeline == "grid":
        from pcseg.pipelines.grid.build import build_model
    else:
        from pcseg.pipelines.bottomup.build import build_model
    _, recipe = load_recipe(None, [f"pipeline={pipeline}", *overrides])
    torch.manual_seed(0)
    save_checkpoint(path, {"kind": pipeline, "config": recipe.to_dict(), "model": build_model(recipe).state_dict()})
    return path
