"""The pipelines, one unit per folder, and the ONE table that maps a name (a recipe's ``pipeline:``
key, a checkpoint's ``kind``) to its unit. ``pcseg train``, ``pcseg predict``, the demo and compare
choose a pipeline here and nowhere else. Adding a pipeline: a folder beside these and one line below.

A unit's ``__init__`` imports only its recipe: training the 3D pipeline never imports torchvision.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Sequence

from ..engine.pipeline import Pipeline, Predictor
from ..errors import ConfigError, DataError

UNITS = {  # name -> the module whose PIPELINE it is
    "bottomup": "pcseg.pipelines.bottomup",
    "maskrcnn2d": "pcseg.pipelines.maskrcnn2d",
    "grid": "pcseg.pipelines.grid",
}
DEFAULT = "bottomup"
SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "resources" / "bottomup_synthetic.pt"
SHIPPED_GRID_MODEL = Path(__file__).resolve().parents[1] / "resources" / "grid_synthetic.pt"


def get(name: str) -> Pipeline:
    """The unit of pipeline ``name``; ValueError naming the known ones."""
    if name not in UNITS:
        raise ValueError(f"unknown pipeline {name!r}: one of {sorted(UNITS)}")
    return importlib.import_module(UNITS[name]).PIPELINE


def load_recipe(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> tuple[Pipeline, Any]:
    """(pipeline, recipe dataclass) of a YAML recipe with ``key=value`` overrides."""
    from ..engine.config import OVERRIDES, build_config, read_values

    values, source, given = read_values(path, overrides)
    name = values.pop("pipeline", DEFAULT)
    if name not in UNITS:
        where = OVERRIDES if "pipeline" in given else source
        raise ConfigError(f"{where}: pipeline: must be one of {sorted(UNITS)}, got {name!r}")
    pipeline = get(name)
    return pipeline, build_config(pipeline.recipe, values, source, given)


def resume_recipe(pipeline: Pipeline, recipe: Any, overrides: Sequence[str] = ()) -> Any:
    """The recipe a ``--resume`` continues with: the one stored in ``<out_dir>/last.pt``, with only the
    command-line ``overrides`` applied (e.g. a larger ``max_minutes``); the YAML file only named out_dir."""
    from ..engine.checkpoint import load_checkpoint
    from ..engine.config import build_config, parse_overrides

    path = Path(recipe.out_dir) / "last.pt"
    if not path.is_file():
        raise ConfigError(f"--resume: no checkpoint at {path} (out_dir: {recipe.out_dir})")
    ckpt = load_checkpoint(path)
    if ckpt.get("kind") != pipeline.name:
        raise ConfigError(f"--resume: {path} is a {ckpt.get('kind')!r} checkpoint, not {pipeline.name!r}")
    given = parse_overrides(overrides)
    stored = {**ckpt["config"], "out_dir": recipe.out_dir}  # the folder may have moved
    resumed = build_config(pipeline.recipe, {**stored, **given}, f"{path} recipe", list(given))
    differ = sorted(k for k, v in recipe.to_dict().items() if k not in given and stored.get(k, v) != v)
    print(f"--resume: the recipe stored in {path}" + (f" with {', '.join(given)} from the command line" if given else "")
          + (f"; the YAML file's {', '.join(differ)} differ and are not used (pass key=value to change them)"
             if differ else ""))
    return resumed


def train_recipe(pipeline: Pipeline, recipe: Any, resume: bool = False, progress: bool = True) -> dict:
    """``pcseg train``: the engine's one training loop with ``pipeline``'s parts."""
    from ..engine.train import train

    return train(pipeline, recipe, resume=resume, progress=progress)


def load_predictor(checkpoint: str | os.PathLike | None = None, device: str = "cpu",
                   overrides: Sequence[str] = ()) -> Predictor:
    """The predictor of a checkpoint (the shipped model when None), its pipeline picked by the
    checkpoint's ``kind``; the file is read once."""
    from ..engine.checkpoint import load_checkpoint
    from ..engine.device import resolve_device

    device = str(resolve_device(device))  # before any checkpoint is read with it
    path = Path(checkpoint) if checkpoint else SHIPPED_MODEL
    ckpt = load_checkpoint(path, map_location=device)
    kind = ckpt.get("kind", DEFAULT)
    if kind not in UNITS:
        raise DataError(path, "kind", f"a {kind!r} checkpoint: pcseg predicts with {sorted(UNITS)} checkpoints")
    return get(kind).predictor(ckpt, path, device, overrides)


def predict_to_folder(inputs: str | os.PathLike, out_dir: str | os.PathLike, checkpoint=None, device: str = "cpu",
                      overrides: Sequence[str] = (), progress: bool = True, save_embeddings: bool = False,
                      skip_bad: bool = False, up: str = "z", masks: str = "auto") -> dict:
    """``pcseg predict``: ``engine.predict.predict_to_folder`` with the checkpoint's predictor (see there);
    ``up="auto"`` asks the shipped bottom-up model which way looks like a room where the geometry
    leaves a choice (``bottomup.orient``), whichever pipeline predicts."""
    from ..engine import predict
    from .bottomup.orient import room_confidence

    predict.check_out_dir(out_dir)  # before the model loads
    return predict.predict_to_folder(inputs, out_dir, load_predictor(checkpoint, device, overrides), progress,
                                     save_embeddings, skip_bad, up, room_confidence, masks)
