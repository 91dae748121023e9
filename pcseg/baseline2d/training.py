"""FrameDataset samples as torchvision detection inputs, with seeded augmentation, and inference on
frames: the glue between the frame dataset, Mask R-CNN and the engine."""
from __future__ import annotations

import numpy as np
import torch

from .dataset import FrameDataset, FrameSample
from .model import frame_tensor
from .targets import FrameTargets


def flip_sample(image: np.ndarray, depth: np.ndarray, targets: FrameTargets) -> tuple:
    """Mirror a frame left-right: image (H, W, 3), depth (H, W) and targets (boxes XYXY with
    x2 = last column + 1, so x1' = W - x2 and x2' = W - x1)."""
    w = image.shape[1]
    boxes = targets.boxes.copy()
    boxes[:, [0, 2]] = w - targets.boxes[:, [2, 0]]
    flipped = FrameTargets(boxes, targets.labels, np.ascontiguousarray(targets.masks[:, :, ::-1]),
                           targets.instance_ids)
    return np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(depth[:, ::-1]), flipped


class FrameTrainingSet(torch.utils.data.Dataset):
    """Item i: (FloatTensor[C, H, W] image (C = 3, or 4 with depth), target dict {boxes
    FloatTensor[K, 4], labels Int64Tensor[K] 1..18, masks UInt8Tensor[K, H, W]}).

    Augmentation depends only on (seed, epoch, i), so a resumed run sees the same samples:
    a left-right flip with probability 1/2, and brightness/contrast jitter of the colour.
    """

    def __init__(self, frames: FrameDataset, depth: bool = False, flip: bool = True, color_jitter: bool = True,
                 seed: int = 0):
        self.frames, self.depth, self.flip, self.color_jitter, self.seed = frames, depth, flip, color_jitter, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, item: int):
        sample = self.frames[item]
        if sample.targets is None:  # FrameDataset(require_labels=True) never yields this; a clear error if misused
            raise ValueError(f"{sample.scene} frame {sample.index}: no label/instance images to train on")
        image, depth, targets = sample.image, sample.depth, sample.targets
        rng = np.random.default_rng([self.seed, self.epoch, item])
        if self.flip and rng.random() < 0.5:
            image, depth, targets = flip_sample(image, depth, targets)
        if self.color_jitter:
            gain, offset = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
            image = np.clip(image.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)
        return frame_tensor(image, depth if self.depth else None), targets.to_torch()


def collate_frames(batch: list) -> tuple[list, list]:
    """Detection batches are lists (images may differ in size): ([image, ...], [target, ...])."""
    images, targets = zip(*batch)
    return list(images), list(targets)


@torch.no_grad()
def detect(model: torch.nn.Module, samples: list[FrameSample], depth: bool, device: torch.device | str = "cpu",
           mask_threshold: float = 0.5) -> list[dict[str, np.ndarray]]:
    """Run Mask R-CNN (eval mode) on frames; per frame: boxes FloatArray[K, 4] XYXY, labels
    IntArray[K] 1..18, scores FloatArray[K], masks BoolArray[K, H, W] (probability >= mask_threshold)."""
    was_training = model.training
    model.eval()
    images = [frame_tensor(s.image, s.depth if depth else None).to(device) for s in samples]
    outputs = model(images)
    model.train(was_training)
    return [{"boxes": o["boxes"].cpu().numpy(), "labels": o["labels"].cpu().numpy().astype(np.int64),
             "scores": o["scores"].cpu().numpy(), "masks": (o["masks"][:, 0] >= mask_threshold).cpu().numpy()}
            for o in outputs]
