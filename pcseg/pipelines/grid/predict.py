"""Predicting with a grid checkpoint: the network gives every scene's candidate masks (one per
responsible cell and class); Matrix-NMS removes the duplicates that neighbouring cells and grids
predict; the voxel masks go back to the points through the voxelization's inverse map."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ...cluster.nms import matrix_nms
from ...data import collate
from ...engine.checkpoint import load_checkpoint, load_model_state
from ...engine.config import prediction_recipe
from ...engine.device import resolve_device
from ...engine.snapping import snap_to_scene
from ...labels import semantic20_to_nyu40
from ...models.grid_segmenter import Candidates
from ...runtime import apply_prediction_threads
from ...structures import InstanceSet, Prediction, Scene
from ..scenes import select_backend
from .build import build_model
from .recipe import PREDICT_KEYS, GridRecipe


def load_model(checkpoint: str | os.PathLike, device: str | torch.device = "cpu", overrides: Sequence[str] = (),
               ckpt: dict | None = None) -> tuple[torch.nn.Module, GridRecipe]:
    """A trained grid model in eval mode and its recipe (the PREDICT_KEYS settings may be overridden)."""
    path = Path(checkpoint)
    if ckpt is None:
        ckpt = load_checkpoint(path, map_location=resolve_device(device))
    recipe, given = prediction_recipe(GridRecipe, dict(ckpt["config"]), overrides, PREDICT_KEYS, f"{path} config")
    apply_prediction_threads(recipe.threads, "threads" in given)
    select_backend(recipe, torch.device(device))
    model = build_model(recipe)
    load_model_state(path, model, ckpt["model"])
    return model.to(device).eval(), recipe


@dataclass
class GridOutput:
    candidates: Candidates
    inverse: torch.Tensor      # LongTensor[N] voxel of every point
    seconds: float


@torch.no_grad()
def run_network(model: torch.nn.Module, scene: Scene, recipe: GridRecipe, device: str | torch.device = "cpu") -> GridOutput:
    start = time.perf_counter()
    batch = collate([Scene(scene.points, scene.colors, name=scene.name)], height=recipe.height_feature).to(device)
    out = model(batch)
    return GridOutput(out["candidates"][0], out["voxels"].inverse, time.perf_counter() - start)


def to_instances(out: GridOutput, recipe: GridRecipe) -> Prediction:
    """Candidates -> masks (mask probability > mask_threshold), scored by category score x mean mask
    probability inside the mask (SOLO's maskness), Matrix-NMS, the best ``max_instances`` above
    ``final_threshold``, back to points; semantic: each point takes its best instance's class."""
    start = time.perf_counter()
    c, n = out.candidates, out.inverse.shape[0]
    masks = c.mask_probs > recipe.mask_threshold
    area = masks.sum(1)
    keep = area > 0
    masks, probs, classes, scores, area = masks[keep], c.mask_probs[keep], c.classes[keep], c.scores[keep], area[keep]
    scores = scores * (probs * masks).sum(1) / area.clamp_min(1)
    decayed = matrix_nms(masks, classes, scores, recipe.nms_kernel, recipe.nms_sigma)
    order = torch.argsort(decayed, descending=True, stable=True)
    order = order[decayed[order] > recipe.final_threshold][: recipe.max_instances]
    point_masks = masks[order][:, out.inverse].cpu().numpy()
    big = point_masks.sum(1) >= recipe.min_size
    instances = InstanceSet(point_masks[big], semantic20_to_nyu40(classes[order].cpu().numpy())[big],
                            decayed[order].cpu().numpy().astype(np.float32)[big]) if n else InstanceSet.empty(0)
    return Prediction(instances, instances.labels_per_point(),
                      {"network": out.seconds, "cluster": time.perf_counter() - start})


def predict_scene(model: torch.nn.Module, scene: Scene, recipe: GridRecipe, device: str | torch.device = "cpu") -> Prediction:
    """Network, Matrix-NMS, back to points, snapped to the scene's segments at ``recipe.segment_snap``."""
    if len(scene) == 0:
        return Prediction(InstanceSet.empty(0), np.zeros(0, np.int64), {"network": 0.0, "cluster": 0.0})
    return snap_to_scene(to_instances(run_network(model, scene, recipe, device), recipe), scene,
                         recipe.segment_snap, recipe.min_size)


class GridPredictor:
    """The engine's ``Predictor`` for a grid checkpoint."""

    def __init__(self, ckpt: dict, path: Path, device: str, overrides: Sequence[str] = ()):
        self.device, self.train_seconds = device, ckpt.get("train_seconds")
        self.model, self.recipe = load_model(path, device, overrides, ckpt)
        self.segment_snap, self.min_size = self.recipe.segment_snap, self.recipe.min_size

    def check(self, sources: Sequence[Path]) -> None:
        """Scene folders and plain point clouds alike."""

    def network(self, scene: Scene, source: Path) -> GridOutput | None:
        return run_network(self.model, scene, self.recipe, self.device) if len(scene) else None

    def finish(self, scene: Scene, output: GridOutput | None) -> Prediction:
        if output is None:
            return predict_scene(self.model, scene, self.recipe, self.device)  # the empty prediction
        return to_instances(output, self.recipe)
