"""The pipelines ``pcseg train`` can run, chosen by a recipe's ``pipeline:`` key (default: bottomup).

One explicit table, resolved lazily: training the 3D pipeline never imports torchvision.
"""
from __future__ import annotations

import importlib
import os
from typing import Any, Sequence

from ..errors import ConfigError
from .config import build_config, read_values

# pipeline name -> (recipe dataclass, train function), as "module:attribute"
PIPELINES = {
    "bottomup": ("pcseg.engine.recipe:BottomUpRecipe", "pcseg.engine.train:train"),
    "maskrcnn2d": ("pcseg.engine.recipe2d:MaskRCNNRecipe", "pcseg.engine.train2d:train2d"),
}


def _resolve(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def load_recipe(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> tuple[str, Any]:
    """(pipeline name, recipe dataclass) of a YAML recipe with ``key=value`` overrides."""
    values, source, given = read_values(path, overrides)
    name = values.pop("pipeline", "bottomup")
    if name not in PIPELINES:
        where = "command-line override" if "pipeline" in given else source
        raise ConfigError(f"{where}: pipeline: must be one of {sorted(PIPELINES)}, got {name!r}")
    return name, build_config(_resolve(PIPELINES[name][0]), values, source, given)


def train_recipe(name: str, recipe: Any, resume: bool = False, progress: bool = True) -> dict:
    """Run the train function of pipeline ``name``."""
    return _resolve(PIPELINES[name][1])(recipe, resume=resume, progress=progress)
