"""Removing duplicate instance masks: Matrix-NMS (SOLOv2) and plain mask NMS, for point masks.

A one-stage head (the grid head) predicts one mask per responsible cell, so an object seen by several
cells gets several near-identical masks. Matrix-NMS lowers each mask's score by how much it overlaps
a higher-scoring mask of its class, discounted by how much that higher mask was itself suppressed,
for all masks at once (one K x K product, no sequential loop); plain NMS drops every mask that
overlaps a kept, higher-scoring mask of its class by more than a threshold.
"""
from __future__ import annotations

import torch

KERNELS = ("gaussian", "linear")


def _check(masks: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor) -> None:
    if masks.ndim != 2 or labels.shape != (masks.shape[0],) or scores.shape != (masks.shape[0],):
        raise ValueError(f"nms: expected masks [K, N], labels [K] and scores [K], got {tuple(masks.shape)}, "
                         f"{tuple(labels.shape)}, {tuple(scores.shape)}")


def mask_iou(masks: torch.Tensor) -> torch.Tensor:
    """FloatTensor[K, K] intersection over union of every pair of masks (BoolTensor or soft [K, N])."""
    m = masks.float()
    inter = m @ m.T
    area = m.sum(1)
    union = area[:, None] + area[None, :] - inter
    return torch.where(union > 0, inter / union.clamp_min(1e-12), torch.zeros_like(inter))


def class_iou(masks: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """FloatTensor[K, K]: ``mask_iou`` between masks of the same label, 0 between labels (what both
    NMS variants use): one product per label, K_c^2 x N work instead of K^2 x N. Masks sorted by
    label are taken as views, not copied."""
    k = masks.shape[0]
    iou = torch.zeros(k, k, device=masks.device)
    for label in torch.unique(labels).tolist():
        rows = torch.nonzero(labels == label).flatten()
        first, last = int(rows[0]), int(rows[-1]) + 1
        same = masks[first:last] if last - first == rows.numel() else masks.index_select(0, rows)
        iou[rows[:, None], rows[None, :]] = mask_iou(same)
    return iou


def matrix_nms(masks: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor, kernel: str = "gaussian",
               sigma: float = 2.0) -> torch.Tensor:
    """Matrix-NMS (Wang et al., SOLOv2, 2020) on point masks: the decayed scores FloatTensor[K], in
    the input order (nothing is removed: threshold the result to drop masks).

    masks:  BoolTensor[K, N] (or soft masks in [0, 1]); labels: IntTensor[K]; scores: FloatTensor[K]
    For masks sorted by score, mask j's decay is min over higher masks i of its class of
    f(iou_ij) / f(c_i), where c_i = max IoU of mask i with any mask above it of its class (how much i
    itself is suppressed) and f(x) = exp(-sigma x^2) ("gaussian") or 1 - x ("linear").
    """
    _check(masks, labels, scores)
    if kernel not in KERNELS:
        raise ValueError(f"matrix_nms: kernel must be one of {KERNELS}, got {kernel!r}")
    if not sigma > 0:
        raise ValueError(f"matrix_nms: sigma must be > 0, got {sigma}")
    k = masks.shape[0]
    if k == 0:
        return scores.float().clone()
    order = torch.argsort(scores, descending=True, stable=True)
    iou = class_iou(masks, labels)[order][:, order]  # sorting the K x K IoUs, not the K x N masks
    same = labels[order][:, None] == labels[order][None, :]
    above = torch.triu(torch.ones(k, k, dtype=torch.bool, device=masks.device), diagonal=1)  # row i above column j
    iou = torch.where(same & above, iou, torch.zeros_like(iou))
    suppressed = iou.max(0).values                                   # c_j: how much mask j is suppressed
    if kernel == "gaussian":
        decay = torch.exp(-sigma * iou ** 2) / torch.exp(-sigma * suppressed[:, None] ** 2)
    else:
        decay = (1 - iou) / (1 - suppressed[:, None]).clamp_min(1e-12)
    decay = torch.where(above & same, decay, torch.ones_like(decay)).min(0).values.clamp(max=1.0)
    out = torch.empty_like(scores, dtype=torch.float32)
    out[order] = scores[order].float() * decay
    return out


def mask_nms(masks: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5) -> torch.Tensor:
    """Plain greedy NMS on point masks: LongTensor of the kept masks' indices, highest score first; a
    mask is dropped when its IoU with a kept, higher-scoring mask of its class exceeds the threshold."""
    _check(masks, labels, scores)
    if not 0 <= iou_threshold <= 1:
        raise ValueError(f"mask_nms: iou_threshold must be in [0, 1], got {iou_threshold}")
    order = torch.argsort(scores, descending=True, stable=True)
    iou = class_iou(masks, labels)[order][:, order].cpu()
    same = (labels[order][:, None] == labels[order][None, :]).cpu()
    kept: list[int] = []
    for j in range(len(order)):
        if not any(same[i, j] and iou[i, j] > iou_threshold for i in kept):
            kept.append(j)
    return order[torch.tensor(kept, dtype=torch.long, device=order.device)]
