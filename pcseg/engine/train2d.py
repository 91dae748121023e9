"""``pcseg train`` for the 2D baseline (recipes with ``pipeline: maskrcnn2d``): torchvision's Mask
R-CNN on RGB-D frames, on the same engine as the 3D pipeline: progress bar, metrics.jsonl +
TensorBoard, atomic checkpoints loadable with ``weights_only=True``, ``--resume``, a time budget
with the LR annealed over it, and periodic validation (COCO mask and box AP on held-out frames).

Data order and augmentation depend only on (seed, epoch, index), and the checkpoint holds the RNG
states that the RPN/RoI samplers draw from, so a resumed run continues as the uninterrupted one.
One process (the 2D recipes are small; multi-GPU training is the 3D pipeline's).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..errors import ConfigError
from ..runtime import apply_recipe_threads
from .build import resolve_device
from .checkpoint import save_checkpoint
from .loop import MetricsLog, Run, epoch_batches, plain_result
from .recipe2d import ARCHITECTURE_KEYS_2D, MaskRCNNRecipe

KIND = "maskrcnn2d"


def build_model2d(recipe: MaskRCNNRecipe, fetch: bool = True) -> torch.nn.Module:
    """The recipe's Mask R-CNN; ``fetch=False`` when the weights come from a checkpoint."""
    from ..baseline2d.model import build_maskrcnn

    return build_maskrcnn(**recipe.model_options(), fetch=fetch)


def ensure_synthetic_frames(recipe: MaskRCNNRecipe, progress: bool = True) -> None:
    """Generate the recipe's synthetic rooms with frames once, when asked to and missing."""
    from ..synth import ensure_synthetic_dataset

    wanted = [(Path(recipe.data_root), recipe.synth_scenes, recipe.synth_seed, recipe.synth_frames)]
    if recipe.val_root:
        wanted.append((Path(recipe.val_root), recipe.val_synth_scenes, recipe.val_synth_seed, recipe.val_synth_frames))
    for root, scenes, seed, frames in wanted:
        if scenes > 0:
            ensure_synthetic_dataset(root, scenes, seed=seed, frames=frames, progress=progress)


def frame_dataset(recipe: MaskRCNNRecipe, val: bool = False):
    from ..baseline2d import FrameDataset

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
    from ..baseline2d.training import detect
    from ..evaluation.coco2d import Coco2DEvaluator

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


def train2d(recipe: MaskRCNNRecipe, resume: bool = False, progress: bool = True) -> dict:
    """Train; returns the last validation result (or {}). Writes under ``out_dir``: ``last.pt``
    (resumable), ``best.pt`` (best validation mask AP50), ``model.pt`` (weights + recipe, for
    ``pcseg predict``), ``metrics.jsonl`` and ``tensorboard/``."""
    from ..baseline2d.training import FrameTrainingSet, collate_frames

    from ..baseline2d.model import require_torchvision

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("pipeline maskrcnn2d: trains as one process; run it without torchrun")
    require_torchvision()  # before generating any rooms
    device = resolve_device(recipe.device)
    torch.set_num_threads(apply_recipe_threads(recipe.threads))  # dense convs: torch's own threads
    out = Path(recipe.out_dir)
    ensure_synthetic_frames(recipe, progress)
    torch.manual_seed(recipe.seed)
    np.random.seed(recipe.seed)
    # on --resume the weights come from the checkpoint: no pretrained weights are fetched
    model = build_model2d(recipe, fetch=not resume).to(device)
    optimizer = _optimizer(recipe, model)
    dataset = FrameTrainingSet(frame_dataset(recipe), depth=recipe.depth, flip=recipe.flip,
                               color_jitter=recipe.color_jitter, seed=recipe.seed)
    val_set = frame_dataset(recipe, val=True)
    steps_per_epoch = len(epoch_batches(len(dataset), recipe.batch_size, recipe.seed, 0))
    run = Run(KIND, recipe, model, optimizer, steps_per_epoch, "mask_AP50", anneal_over_budget=True)
    if resume:
        run.resume(out / "last.pt", device, ARCHITECTURE_KEYS_2D)
        done = run.finished_already()
        if done:
            print(f"{out / 'last.pt'}: nothing to resume: {done}")
            return {}
        print(f"resuming {out / 'last.pt'} at epoch {run.epoch}, step {run.step}: {run.schedule_note()}")
    if progress:
        print(f"training Mask R-CNN ({recipe.backbone}-FPN, Ro{'IAlign' if recipe.roi_pool == 'align' else 'IPool'}"
              f"{', RGB-D' if recipe.depth else ''}) on {device}: {len(dataset)} training frames, "
              f"{len(val_indices(len(val_set), recipe.val_frames))} validation frames")
    log = MetricsLog(out, True, run.step if resume else None)
    bar = run.progress_bar(progress)
    last_val: dict = {}

    def checkpoint(name: str = "last.pt") -> None:
        save_checkpoint(out / name, run.payload())

    model.train()
    stop = False
    run.start_clock()
    while run.epoch < recipe.epochs and not stop:
        dataset.set_epoch(run.epoch)
        batches = epoch_batches(len(dataset), recipe.batch_size, recipe.seed, run.epoch)
        # its own generator: a DataLoader draws a seed when it starts, and from the global RNG that
        # draw would shift the RPN/RoI samplers' random stream of a run resumed mid-epoch
        loader = DataLoader(dataset, batch_sampler=batches[run.batch:], num_workers=recipe.workers,
                            collate_fn=collate_frames,
                            generator=torch.Generator().manual_seed(recipe.seed + run.epoch))
        for images, targets in loader:
            start = time.perf_counter()
            images = [im.to(device) for im in images]
            targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
            losses = model(images, targets)
            total = sum(losses.values())
            seconds = run.optimize(total, start)
            values = {k: float(v.detach()) for k, v in losses.items()}
            run.check_finite(float(total.detach()), values)
            record = {"step": run.step, "epoch": run.epoch, "lr": run.lr, "total": float(total.detach()),
                      **values, "frames_per_s": len(images) / seconds}
            run.after_step(record, log, bar, checkpoint, loss=f"{record['total']:.3f}",
                           mask=f"{record['loss_mask']:.3f}", s_step=f"{seconds:.2f}")
            if run.over_budget:
                stop = True
                break
        finished = run.end_epoch(stop)
        checkpoint()
        if run.validation_due(finished):
            start = time.perf_counter()
            last_val = validate2d(model, recipe, device, val_set, progress)
            run.note_validation(time.perf_counter() - start)
            log.record({"step": run.step, "epoch": run.epoch, **{f"val_{k}": v for k, v in last_val.items()
                                                                  if not isinstance(v, dict)}}, "val")
            bar.write(f"epoch {run.epoch} step {run.step}: mask AP {last_val['mask_AP']:.3f} "
                      f"AP50 {last_val['mask_AP50']:.3f} | box AP {last_val['box_AP']:.3f} "
                      f"AP50 {last_val['box_AP50']:.3f}")
            if run.improved(last_val, also=("mask_AP",)):
                checkpoint("best.pt")
            checkpoint()
    bar.close()
    save_checkpoint(out / "model.pt", {"kind": KIND, "config": recipe.to_dict(), "model": model.state_dict(),
                                       "step": run.step, "train_seconds": run.train_seconds,
                                       "validation": plain_result(_flat(last_val))})
    print(f"trained {run.step} steps in {run.train_seconds / 60:.1f} min; model: {out / 'model.pt'}")
    log.close()
    return last_val


def _flat(result: dict) -> dict:
    """A validation result with the per-class dict keyed by str (checkpoints hold plain values)."""
    return {k: ({str(c): v for c, v in value.items()} if isinstance(value, dict) else value)
            for k, value in result.items()}
