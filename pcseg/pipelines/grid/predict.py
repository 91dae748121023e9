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

from ...cluster.nms import mask_nms_of_iou, matrix_nms_of_iou, pairs_class_iou
from ...data import input_batch
from ...engine.device import synchronize
from ...engine.snapping import snap_to_scene
from ...ids import members_of_pairs, nonzero_pairs
from ...labels import semantic20_to_nyu40
from ...models.grid_segmenter import Candidates
from ...structures import InstanceSet, MemberInstances, Prediction, Scene
from ..scenes import ScenePredictor, load_scene_model
from .build import build_model
from .recipe import PREDICT_KEYS, GridRecipe


def load_model(checkpoint: str | os.PathLike, device: str | torch.device = "cpu", overrides: Sequence[str] = (),
               ckpt: dict | None = None) -> tuple[torch.nn.Module, GridRecipe]:
    """A trained grid model in eval mode and its recipe (the PREDICT_KEYS settings may be overridden)."""
    return load_scene_model(Path(checkpoint), device, overrides, ckpt, GridRecipe, PREDICT_KEYS, build_model)


@dataclass
class GridOutput:
    candidates: Candidates
    inverse: torch.Tensor      # LongTensor[N] voxel of every point
    seconds: float


@torch.no_grad()
def run_network(model: torch.nn.Module, scene: Scene, recipe: GridRecipe, device: str | torch.device = "cpu") -> GridOutput:
    start = time.perf_counter()
    batch = input_batch([scene], recipe).to(device)
    out = model(batch)
    synchronize(device)
    return GridOutput(out["candidates"][0], out["voxels"].inverse, time.perf_counter() - start)


def to_instances(out: GridOutput, recipe: GridRecipe) -> Prediction:
    """Candidates (masks: mask probability > mask_threshold) scored by category score x mean mask
    probability inside the mask (SOLO's maskness), Matrix-NMS (or greedy mask NMS: ``nms``), the best ``max_instances`` above
    ``final_threshold``, back to points; semantic: each point takes its best instance's class."""
    start = time.perf_counter()
    c, n = out.candidates, out.inverse.shape[0]
    # the masks as (candidate, column) pairs: each covers ~1% of the scene, so every step below costs
    # the masks' areas instead of K x V
    rows, cols = (torch.from_numpy(a) for a in nonzero_pairs(c.masks.cpu().numpy()))
    area = torch.bincount(rows, minlength=c.masks.shape[0]).to(c.scores.device)
    # maskness: the mean probability inside the mask
    classes, scores = c.classes, c.scores * c.inside / area.clamp_min(1)
    iou = pairs_class_iou(rows, cols, classes)
    if recipe.nms == "matrix":
        decayed = matrix_nms_of_iou(iou, classes, scores, recipe.nms_kernel, recipe.nms_sigma)
    else:  # plain greedy NMS: the kept masks keep their scores, the others drop out
        decayed = torch.zeros_like(scores, dtype=torch.float32)
        kept = mask_nms_of_iou(iou, classes, scores, recipe.nms_iou)
        decayed[kept] = scores[kept].float()
    order = torch.argsort(decayed, descending=True, stable=True)
    order = order[(decayed[order] > recipe.final_threshold) & (area[order] > 0)][: recipe.max_instances]
    # points per mask from the voxels' point counts: the masks that stay under min_size never reach the points
    column = torch.empty_like(c.columns)
    column[c.columns] = torch.arange(len(c.columns), device=c.columns.device)
    inverse = column[out.inverse].cpu().numpy()  # every point's mask column
    rows, cols = rows.numpy(), cols.numpy()
    voxel_points = np.bincount(inverse, minlength=c.masks.shape[1])
    points = np.bincount(rows, weights=voxel_points[cols], minlength=c.masks.shape[0])
    order = order.cpu().numpy()
    order = order[points[order] >= recipe.min_size]
    place = np.full(c.masks.shape[0], -1)
    place[order] = np.arange(len(order))  # each chosen mask's place in the prediction
    chosen = place[rows] >= 0
    # by their points' indices (snapping and writing take them as they are): no K x N masks
    instances = MemberInstances(members_of_pairs(place[rows[chosen]], cols[chosen], inverse, len(order), c.masks.shape[1]),
                                semantic20_to_nyu40(classes.cpu().numpy()[order]),
                                decayed.cpu().numpy()[order].astype(np.float32), n) if n else InstanceSet.empty(0)
    return Prediction(instances, instances.labels_per_point(),
                      {"network": out.seconds, "cluster": time.perf_counter() - start})


def predict_scene(model: torch.nn.Module, scene: Scene, recipe: GridRecipe, device: str | torch.device = "cpu") -> Prediction:
    """Network, Matrix-NMS, back to points, snapped to the scene's segments at ``recipe.segment_snap``."""
    if len(scene) == 0:
        return Prediction(InstanceSet.empty(0), np.zeros(0, np.int64), {"network": 0.0, "cluster": 0.0})
    return snap_to_scene(to_instances(run_network(model, scene, recipe, device), recipe), scene,
                         recipe.segment_snap, recipe.min_size, recipe.superpoints)


class GridPredictor(ScenePredictor):
    """The engine's ``Predictor`` for a grid checkpoint."""

    def load(self, path, device, overrides, ckpt):
        return load_model(path, device, overrides, ckpt)

    def run(self, scene: Scene) -> GridOutput:
        return run_network(self.model, scene, self.recipe, self.device)

    def group(self, output: GridOutput) -> Prediction:
        return to_instances(output, self.recipe)

    def predict_scene(self, model, scene, recipe, device) -> Prediction:
        return predict_scene(model, scene, recipe, device)
