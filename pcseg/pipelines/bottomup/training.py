"""Training the bottom-up pipeline: its parts of a run (the engine's loop does the rest).

Data order and augmentation depend only on (seed, epoch, index): ``--resume`` and DDP over several
processes (torchrun; each takes its share of every epoch's batches) reproduce the same run.
"""
from __future__ import annotations

import functools
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ...data import collate
from ...engine.distributed import DistInfo, all_reduce_mean
from ...engine.loop import epoch_batches, plain_result
from ...runtime import apply_recipe_threads
from ..scenes import ensure_synthetic_data, load_initial_weights, select_backend, train_dataset, val_dataset
from .build import build_model, class_weights
from .recipe import ARCHITECTURE_KEYS, BottomUpRecipe


def validate(model: torch.nn.Module, recipe: BottomUpRecipe, device: torch.device, progress: bool = False) -> dict:
    """AP / AP50 / AP25 (ScanNet protocol) and semantic mIoU on the validation split."""
    from ...evaluation import InstanceEvaluator, SemanticEvaluator
    from .predict import predict_scene

    dataset = val_dataset(recipe)
    count = len(dataset) if recipe.val_scenes <= 0 else min(recipe.val_scenes, len(dataset))
    instances, semantic = InstanceEvaluator(), SemanticEvaluator()
    was_training = model.training
    model.eval()
    seconds = 0.0
    # on a terminal only (disable=None): in a log, a bar nested in the training bar leaves escape codes
    for i in tqdm(range(count), desc="validate", unit="scene", disable=(not progress) or None, leave=False):
        scene = dataset.load(i)
        start = time.perf_counter()
        pred = predict_scene(model, scene, recipe, device)
        seconds += time.perf_counter() - start
        instances.process(scene, pred.instances, name=scene.name)
        semantic.process(scene.semantic, pred.semantic, name=scene.name)
    model.train(was_training)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes absent from a small validation set are expected
        result = instances.evaluate()
        result["mIoU"] = semantic.evaluate()["mIoU"]
    result["seconds_per_scene"] = seconds / max(count, 1)
    return result


class BottomUpTrainer:
    """The engine's ``Trainer`` for the bottom-up pipeline."""

    metric, also, distributed = "AP50", ("AP",), True

    def __init__(self, recipe: BottomUpRecipe, device: torch.device, info: DistInfo, resume: bool, progress: bool):
        self.recipe, self.device, self.info = recipe, device, info
        apply_recipe_threads(recipe.threads)
        self.backend = select_backend(recipe, device)
        ensure_synthetic_data(recipe, info, progress)
        torch.manual_seed(recipe.seed)
        np.random.seed(recipe.seed)
        model = build_model(recipe)
        if recipe.init_weights and not resume:
            added = load_initial_weights(Path(recipe.init_weights), model, recipe, ARCHITECTURE_KEYS)
            if info.is_main:
                print(f"starting from the weights of {recipe.init_weights}" + (
                    " (the height channel added with zero weights: the same outputs at the start)" if added else ""))
        self.model = model.to(device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        self.dataset = train_dataset(recipe)
        weights = class_weights(recipe, self.dataset)
        if weights is not None:
            self.model.set_class_weights(weights)
            if info.is_main and progress:
                from ...labels import SEMANTIC20_NAMES

                print("class weights: " + ", ".join(f"{n} {w:.2f}" for n, w in zip(SEMANTIC20_NAMES, weights.tolist())))
        self.steps_per_epoch = len(epoch_batches(len(self.dataset), recipe.batch_size, recipe.seed, 0, info.rank,
                                                 info.world_size))
        self.anneal_over_budget = recipe.lr_anneal == "budget"
        self.net = torch.nn.parallel.DistributedDataParallel(self.model) if info.enabled else self.model

    def intro(self) -> str:
        return (f"training on {self.device} ({self.info.world_size} process(es)), sparse backend {self.backend}")

    def batches(self, epoch: int, first: int):
        recipe, info = self.recipe, self.info
        self.dataset.set_epoch(epoch)
        batches = epoch_batches(len(self.dataset), recipe.batch_size, recipe.seed, epoch, info.rank, info.world_size)
        return DataLoader(self.dataset, batch_sampler=batches[first:], num_workers=recipe.workers,
                          collate_fn=functools.partial(collate, height=recipe.height_feature))

    def forward(self, batch):
        losses = self.net(batch.to(self.device))
        return losses["total"], losses

    def record(self, total, losses, batch, seconds):
        # means over the ranks, so every rank sees the same values (and stops together)
        values = {k: all_reduce_mean(float(v.detach()), self.info) for k, v in losses.items()}
        rate = all_reduce_mean(batch.points.shape[0] / seconds, self.info) * self.info.world_size
        fields = {**values, "points_per_s": rate}
        return fields, {"loss": f"{fields['total']:.3f}", "sem": f"{fields['semantic']:.3f}", "pts_s": f"{rate:.0f}"}

    def validate(self, progress: bool) -> dict:
        return validate(self.model, self.recipe, self.device, progress)

    def describe(self, result: dict) -> str:
        return (f"AP {result['AP']:.3f} AP50 {result['AP50']:.3f} AP25 {result['AP25']:.3f} "
                f"mIoU {result['mIoU']:.3f}")

    def plain(self, result: dict) -> dict:
        return plain_result(result)
