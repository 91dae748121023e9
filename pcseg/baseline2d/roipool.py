"""Quantised RoIPool over FPN levels: the RoIAlign ablation of Mask R-CNN (imports torchvision)."""
from __future__ import annotations

import math

import torch
from torchvision.ops import MultiScaleRoIAlign, roi_align, roi_pool


class MultiScaleRoIPool(MultiScaleRoIAlign):
    """A drop-in for ``torchvision.ops.MultiScaleRoIAlign`` (a subclass: torchvision's MaskRCNN
    accepts only that type) that pools with RoIPool's quantisation
    (Fast R-CNN): each box is rounded to the feature grid, split into integer bins, max-pooled.

    The FPN level of a box and the scale of each level are chosen exactly as MultiScaleRoIAlign does
    (level = floor(4 + log2(sqrt(area) / 224)), clamped to the available levels), so the two
    differ only in the per-level operator (``op="align"`` reproduces MultiScaleRoIAlign).

    forward(x: dict[str, FloatTensor[B, C, h_l, w_l]], boxes: list[FloatTensor[K_i, 4]] XYXY in
    input pixels, image_shapes: list[(H, W)]) -> FloatTensor[sum K_i, C, out, out]
    """

    def __init__(self, featmap_names: list[str], output_size: int, sampling_ratio: int = 2, op: str = "pool",
                 canonical_scale: int = 224, canonical_level: int = 4):
        super().__init__(featmap_names, output_size, sampling_ratio, canonical_scale=canonical_scale,
                         canonical_level=canonical_level)
        if op not in ("pool", "align"):
            raise ValueError(f"MultiScaleRoIPool: op must be 'pool' or 'align', got {op!r}")
        self.op = op
        self.output_size = (output_size, output_size)

    @staticmethod
    def _scale(feature: torch.Tensor, size: tuple[int, int]) -> float:
        # the stride of a level is a power of two: 2 ** round(log2(feature / image)), as torchvision infers it
        return 2.0 ** round(math.log2(feature.shape[-2] / size[0]))

    def _levels(self, boxes: torch.Tensor, scales: list[float]) -> torch.Tensor:
        k_min, k_max = round(-math.log2(scales[0])), round(-math.log2(scales[-1]))
        side = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        level = torch.floor(self.canonical_level + torch.log2(side / self.canonical_scale)
                            + torch.tensor(1e-6, dtype=side.dtype))
        return (level.clamp(k_min, k_max) - k_min).to(torch.int64)

    def forward(self, x: dict[str, torch.Tensor], boxes: list[torch.Tensor],
                image_shapes: list[tuple[int, int]]) -> torch.Tensor:
        features = [x[k] for k in self.featmap_names]
        size = (max(s[0] for s in image_shapes), max(s[1] for s in image_shapes))
        scales = [self._scale(f, size) for f in features]
        rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], 1) for i, b in enumerate(boxes)], 0)
        levels = self._levels(rois[:, 1:], scales)
        first = features[0]
        out = first.new_zeros((rois.shape[0], first.shape[1], *self.output_size))
        for level, (feature, scale) in enumerate(zip(features, scales)):
            idx = torch.where(levels == level)[0]
            if idx.numel() == 0:
                continue
            if self.op == "pool":
                pooled = roi_pool(feature, rois[idx], self.output_size, scale)
            else:
                pooled = roi_align(feature, rois[idx], self.output_size, scale, self.sampling_ratio, aligned=False)
            out[idx] = pooled.to(out.dtype)
        return out
