"""The pipelines ``pcseg train`` can run, chosen by a recipe's ``pipeline:`` key (default: bottomup).

One explicit table, resolved lazily: training the 3D pipeline never imports torchvision.
"""
from __future__ import annotations

import importlib
import os
from typing import Any, Sequence

from ..errors import ConfigError
from .config import OVERRIDES, build_config, read_values

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
        where = OVERRIDES if "pipeline" in given else source
        raise ConfigError(f"{where}: pipeline: must be one of {sorted(PIPELINES)}, got {name!r}")
    return name, build_config(_resolve(PIPELINES[name][0]), values, source, given)


def resume_recipe(name: str, recipe: Any, overrides: Sequence[str] = ()) -> Any:
    """The recipe a ``--resume`` continues with: the one stored in ``<out_dir>/last.pt``, with only the
    command-line ``overrides`` applied (e.g. a larger ``max_minutes``); the YAML file only named out_dir."""
    from pathlib import Path

    from .checkpoint import load_checkpoint
    from .config import parse_overrides

    path = Path(recipe.out_dir) / "last.pt"
    if not path.is_file():
        raise ConfigError(f"--resume: no checkpoint at {path} (out_dir: {recipe.out_dir})")
    ckpt = load_checkpoint(path)
    if ckpt.get("kind") != name:
        raise ConfigError(f"--resume: {path} is a {ckpt.get('kind')!r} checkpoint, not {name!r}")
    given = parse_overrides(overrides)
    stored = {**ckpt["config"], "out_dir": recipe.out_dir}  # the folder may have moved
    resumed = build_config(_resolve(PIPELINES[name][0]), {**stored, **given}, f"{path} recipe", list(given))
    differ = sorted(k for k, v in recipe.to_dict().items() if k not in given and stored.get(k, v) != v)
    print(f"--resume: the recipe stored in {path}" + (f" with {', '.join(given)} from the command line" if given else "")
          + (f"; the YAML file's {', '.join(differ)} differ and are not used (pass key=value to change them)"
             if differ else ""))
    return resumed


def train_recipe(name: str, recipe: Any, resume: bool = False, progress: bool = True) -> dict:
    """Run the train function of pipeline ``name``."""
    return _resolve(PIPELINES[name][1])(recipe, resume=resume, progress=progress)
