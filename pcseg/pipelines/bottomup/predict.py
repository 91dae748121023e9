"""Predicting with a bottom-up model: voxelize, run the network, cluster each class's points into
instances (``group_instances``); the engine snaps the result to the scan's segments and writes it."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ...cluster import cluster_instances
from ...data import input_batch
from ...data.voxelize import voxel_mean
from ...engine.device import synchronize
from ...engine.snapping import snap_to_scene
from ...ids import members_of_pairs
from ...labels import semantic20_to_nyu40
from ...structures import InstanceSet, MemberInstances, Prediction, Scene
from .. import SHIPPED_MODEL
from ..scenes import ScenePredictor, load_scene_model
from .build import build_model, cluster_settings
from .recipe import PREDICT_KEYS, BottomUpRecipe



def load_model(checkpoint: str | os.PathLike | None = None, device: str | torch.device = "cpu",
               overrides: Sequence[str] = (), ckpt: dict | None = None) -> tuple[torch.nn.Module, BottomUpRecipe]:
    """A trained model in eval mode and its recipe (the PREDICT_KEYS settings may be overridden);
    ``ckpt``: the checkpoint already read from ``checkpoint``."""
    path = Path(checkpoint) if checkpoint else SHIPPED_MODEL
    return load_scene_model(path, device, overrides, ckpt, BottomUpRecipe, PREDICT_KEYS, build_model)


@dataclass
class NetworkOutput:
    """The network's outputs for one scene, before grouping: one row per voxel (the resolution the
    network sees; every point of a voxel gets the same outputs), ``inverse`` takes them to the points."""

    probs: torch.Tensor             # FloatTensor[V, 20] class probabilities
    embeddings: torch.Tensor        # FloatTensor[V, D]
    offsets: torch.Tensor | None    # FloatTensor[V, 3] predicted centre offsets, if the model has them
    points: torch.Tensor            # FloatTensor[V, 3] the mean of each voxel's points
    counts: torch.Tensor            # LongTensor[V] points in each voxel
    inverse: torch.Tensor           # LongTensor[N] voxel of each point
    seconds: float


@torch.no_grad()
def run_network(model: torch.nn.Module, scene: Scene, recipe: BottomUpRecipe,
                device: str | torch.device = "cpu") -> NetworkOutput:
    """Voxelize and run the network on a non-empty scene."""
    start = time.perf_counter()
    batch = input_batch([scene], recipe).to(device)
    out, voxels = model.voxel_outputs(batch)
    probs = torch.softmax(out["semantic_logits"], 1)
    points = voxel_mean(batch.points, voxels)
    synchronize(device)
    return NetworkOutput(probs, out["embeddings"], out.get("offsets"), points, voxels.counts, voxels.inverse,
                         time.perf_counter() - start)


@torch.no_grad()
def group_instances(out: NetworkOutput, recipe: BottomUpRecipe) -> Prediction:
    """Cluster the network's outputs per class into instances (not yet snapped to segments): the
    voxels are clustered, each weighted by its points (``cluster_instances(weights=)``; a voxel's
    points share its outputs, and the point offsets' spread within a 5 cm voxel is far below any
    bandwidth), then every point takes its voxel's instances and class."""
    start = time.perf_counter()
    embeddings = out.embeddings if recipe.use_embeddings else None
    classes = out.probs.argmax(1)
    voxel_instances = cluster_instances(embeddings, out.probs, out.points, offsets=out.offsets,
                                        point_classes=classes, weights=out.counts, compact=True,
                                        **cluster_settings(recipe))
    inverse = out.inverse.cpu().numpy()
    # by their points' indices (snapping and writing take them as they are): no K x N masks
    instances = MemberInstances(members_of_pairs(*voxel_instances.pairs(), inverse, len(voxel_instances),
                                                 voxel_instances.num_points),
                                voxel_instances.labels, voxel_instances.scores, len(inverse))
    classes = classes.cpu().numpy()[inverse]
    cluster = time.perf_counter() - start
    return Prediction(instances, semantic20_to_nyu40(classes), {"network": out.seconds, "cluster": cluster},
                      np.take(out.embeddings.float().cpu().numpy(), inverse, axis=0))


def predict_scene(model: torch.nn.Module, scene: Scene, recipe: BottomUpRecipe,
                  device: str | torch.device = "cpu") -> Prediction:
    """Voxelize, run the network, cluster per class, snap to the scene's segments at
    ``recipe.segment_snap`` (``run_network``, ``group_instances``, ``engine.snapping.snap_to_scene``).
    Timings (s): network (incl. voxelization), cluster, snap."""
    if len(scene) == 0:
        return Prediction(InstanceSet.empty(0), np.zeros(0, np.int64), {"network": 0.0, "cluster": 0.0},
                          np.zeros((0, recipe.embed_dim), np.float32))
    pred = group_instances(run_network(model, scene, recipe, device), recipe)
    return snap_to_scene(pred, scene, recipe.segment_snap, recipe.min_size, recipe.superpoints)


class BottomUpPredictor(ScenePredictor):
    """The engine's ``Predictor`` for a bottom-up checkpoint."""

    def load(self, path, device, overrides, ckpt):
        return load_model(path, device, overrides, ckpt)

    def run(self, scene: Scene) -> NetworkOutput:
        return run_network(self.model, scene, self.recipe, self.device)

    def group(self, output: NetworkOutput) -> Prediction:
        return group_instances(output, self.recipe)

    def predict_scene(self, model, scene, recipe, device) -> Prediction:
        return predict_scene(model, scene, recipe, device)
