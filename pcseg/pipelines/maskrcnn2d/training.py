"""Training the 2D baseline (recipes with ``pipeline: maskrcnn2d``): torchvision's Mask R-CNN on RGB-D
frames, its parts of a run on the engine's loop (progress bar, metrics.jsonl + TensorBoard, atomic
checkpoints loadable with ``weights_only=True``, ``--resume``, a time budget with the LR annealed
over it), validated by COCO mask and box AP on held-out frames.

Data order and augmentation depend only on (seed, epoch, index), and the checkpoint holds the RNG
states that the RPN/RoI samplers draw from, so a resumed run continues as the uninterrupted one.
One process (the 2D recipes are small; multi-GPU training is the 3D pipeline's).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ...engine.loop import epoch_batches, plain_result
from ...runtime import apply_recipe_threads
from .recipe import MaskRCNNRecipe

def build_model2d(recipe: MaskRCNNRecipe, fetch: bool = True) -> torch.nn.Module:
    """The recipe's Mask R-CNN; ``fetch=False`` when the weights come from a checkpoint."""
    from ...baseline2d.model import build_maskrcnn

    return build_maskrcnn(**recipe.model_options(), fetch=fetch)


def ensure_synthetic_frames(recipe: MaskRCNNRecipe, progress: bool = True) -> None:
    """Generate the recipe's synthetic rooms with frames once, when asked to and missing."""
    from ...synth import ensure_synthetic_dataset

    wanted = [(Path(recipe.data_root), recipe.synth_scenes, recipe.synth_seed, recipe.synth_frames)]
    if recipe.val_root:
        wanted.append((Path(recipe.val_root), recipe.val_synth_scenes, recipe.val_synth_seed, recipe.val_synth_frames))
    for root, scenes, seed, frames in wanted:
        if scenes > 0:
            ensure_synthetic_dataset(root, scenes, seed=seed, frames=frames, progress=progress)


def frame_dataset(recipe: MaskRCNNRecipe, val: bool = False):
    from ...baseline2d import FrameDataset

    root = (recipe.val_root or recipe.data_root) if val else recipe.data_root
    split = recipe.val_split if val else recipe.train_split
    # bad frames are skipped with a FrameSkipped warning naming the frame and the reason
    return FrameDataset(root, split=None if split == "all" else split, frames_dir=recipe.frames_dir,
                        step=recipe.frame_step, min_area=recipe.min_area)


def val_indices(count: int, limit: int) -> list[int]:
    """``limit`` frames spread evenly over the validation set (all when limit is 0): the first N
    frames would be the first few rooms only."""
    if limit <= 0 or limit >= count:
        return list(range(count))
    return sorted({int(i) for i in np.linspace(0, count - 1, limit).round()})


def validate2d(model: torch.nn.Module, recipe: MaskRCNNRecipe, device: torch.device, dataset=None,
               progress: bool = False) -> dict:
    """COCO mask and box AP (pycocotools) of the model on the validation frames, + seconds per frame."""
    from ...baseline2d.training import detect
    from ...evaluation.coco2d import Coco2DEvaluator

    dataset = dataset if dataset is not None else frame_dataset(recipe, val=True)
    evaluator = Coco2DEvaluator()
    seconds = 0.0
    items = val_indices(len(dataset), recipe.val_frames)
    # on a terminal only (disable=None): see engine.train.validate
    for i in tqdm(items, desc="validate", unit="frame", disable=(not progress) or None, leave=False):
        sample = dataset[i]
        start = time.perf_counter()
        (pred,) = detect(model, [sample], recipe.depth, device, recipe.mask_threshold)
        seconds += time.perf_counter() - start
        t = sample.targets
        evaluator.process(t.masks, t.labels, pred["masks"], pred["labels"], pred["scores"], pred["boxes"],
                          name=f"{sample.scene} frame {sample.index}")
    result = evaluator.evaluate()
    result["seconds_per_frame"] = seconds / max(len(items), 1)
    return result


def _optimizer(recipe: MaskRCNNRecipe, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]  # frozen pretrained stages stay out
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=0.9, weight_decay=recipe.weight_decay)
    return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def require_torchvision(recipe: MaskRCNNRecipe) -> None:
    """Before any room is generated: the 2D pipeline needs torchvision."""
    from ...baseline2d.model import require_torchvision as require

    require()


class MaskRCNNTrainer:
    """The engine's ``Trainer`` for the 2D baseline (one process: the 2D recipes are small)."""

    metric, also = "mask_AP50", ("mask_AP",)
    anneal_over_budget = True

    def __init__(self, recipe: MaskRCNNRecipe, device: torch.device, info, resume: bool, progress: bool):
        from ...baseline2d.training import FrameTrainingSet

        self.recipe, self.device = recipe, device
        torch.set_num_threads(apply_recipe_threads(recipe.threads))  # dense convs: torch's own threads
        ensure_synthetic_frames(recipe, progress)
        torch.manual_seed(recipe.seed)
        np.random.seed(recipe.seed)
        # on --resume the weights come from the checkpoint: no pretrained weights are fetched
        self.model = build_model2d(recipe, fetch=not resume).to(device)
        self.optimizer = _optimizer(recipe, self.model)
        self.dataset = FrameTrainingSet(frame_dataset(recipe), depth=recipe.depth, flip=recipe.flip,
                                        color_jitter=recipe.color_jitter, seed=recipe.seed)
        self.val_set = frame_dataset(recipe, val=True)
        self.steps_per_epoch = len(epoch_batches(len(self.dataset), recipe.batch_size, recipe.seed, 0))

    def intro(self) -> str:
        r = self.recipe
        return (f"training Mask R-CNN ({r.backbone}-FPN, Ro{'IAlign' if r.roi_pool == 'align' else 'IPool'}"
                f"{', RGB-D' if r.depth else ''}) on {self.device}: {len(self.dataset)} training frames, "
                f"{len(val_indices(len(self.val_set), r.val_frames))} validation frames")

    def batches(self, epoch: int, first: int):
        from ...baseline2d.training import collate_frames

        recipe = self.recipe
        self.dataset.set_epoch(epoch)
        batches = epoch_batches(len(self.dataset), recipe.batch_size, recipe.seed, epoch)
        # its own generator: a DataLoader draws a seed when it starts, and from the global RNG that
        # draw would shift the RPN/RoI samplers' random stream of a run resumed mid-epoch
        return DataLoader(self.dataset, batch_sampler=batches[first:], num_workers=recipe.workers,
                          collate_fn=collate_frames, generator=torch.Generator().manual_seed(recipe.seed + epoch))

    def forward(self, batch):
        images, targets = batch
        images = [im.to(self.device) for im in images]
        targets = [{k: v.to(self.device) for k, v in t.items()} for t in targets]
        losses = self.model(images, targets)
        return sum(losses.values()), losses

    def record(self, total, losses, batch, seconds):
        values = {k: float(v.detach()) for k, v in losses.items()}
        fields = {"total": float(total.detach()), **values, "frames_per_s": len(batch[0]) / seconds}
        return fields, {"loss": f"{fields['total']:.3f}", "mask": f"{fields['loss_mask']:.3f}",
                        "s_step": f"{seconds:.2f}"}

    def validate(self, progress: bool) -> dict:
        return validate2d(self.model, self.recipe, self.device, self.val_set, progress)

    def describe(self, result: dict) -> str:
        return (f"mask AP {result['mask_AP']:.3f} AP50 {result['mask_AP50']:.3f} | box AP {result['box_AP']:.3f} "
                f"AP50 {result['box_AP50']:.3f}")

    def plain(self, result: dict) -> dict:
        return plain_result(_flat(result))


def _flat(result: dict) -> dict:
    """A validation result with the per-class dict keyed by str (checkpoints hold plain values)."""
    return {k: ({str(c): v for c, v in value.items()} if isinstance(value, dict) else value)
            for k, value in result.items()}
