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


def pairs_class_iou(rows: torch.Tensor, cols: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``class_iou`` of 0/1 masks given by their (row, column) pairs, one per element of a mask
    (``torch.nonzero(masks, as_tuple=True)``): the work grows with the masks' areas and overlaps,
    not K x N. Two masks of one label meet in a column where both have a pair: with the pairs sorted
    by label and column, those sit next to each other, so pairs d apart in one column count for d = 1, 2, ..."""
    import numpy as np

    k = labels.shape[0]
    rows, cols = rows.cpu().numpy().astype(np.int64), cols.cpu().numpy().astype(np.int64)
    _, label = np.unique(labels.cpu().numpy(), return_inverse=True)
    width = int(cols.max()) + 1 if len(cols) else 1
    # sorted by (label, column, row): only masks of one label meet
    key = torch.sort(torch.from_numpy((label[rows] * width + cols) * k + rows))[0].numpy()  # torch's: ~5x numpy's
    column, row = np.divmod(key, k)
    inter = np.zeros(k * k)
    for d in range(1, len(key)):
        meet = column[d:] == column[:-d]
        if not meet.any():
            break
        inter += np.bincount(row[:-d][meet] * k + row[d:][meet], minlength=k * k)
    inter = inter.reshape(k, k)
    area = np.bincount(row, minlength=k).astype(np.float64)
    inter += inter.T + np.diag(area)
    union = area[:, None] + area[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return torch.from_numpy(iou).float().to(labels.device)


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
    return matrix_nms_of_iou(class_iou(masks, labels), labels, scores, kernel, sigma)


def matrix_nms_of_iou(iou: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor, kernel: str = "gaussian",
                      sigma: float = 2.0) -> torch.Tensor:
    """``matrix_nms`` given the masks' ``class_iou`` FloatTensor[K, K] (or ``pairs_class_iou``)."""
    if kernel not in KERNELS:
        raise ValueError(f"matrix_nms: kernel must be one of {KERNELS}, got {kernel!r}")
    if not sigma > 0:
        raise ValueError(f"matrix_nms: sigma must be > 0, got {sigma}")
    k = iou.shape[0]
    if k == 0:
        return scores.float().clone()
    order = torch.argsort(scores, descending=True, stable=True)
    iou = iou[order][:, order]  # sorting the K x K IoUs, not the K x N masks
    same = labels[order][:, None] == labels[order][None, :]
    above = torch.triu(torch.ones(k, k, dtype=torch.bool, device=iou.device), diagonal=1)  # row i above column j
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
    return mask_nms_of_iou(class_iou(masks, labels), labels, scores, iou_threshold)


def mask_nms_of_iou(iou: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5
                    ) -> torch.Tensor:
    """``mask_nms`` given the masks' ``class_iou`` FloatTensor[K, K] (or ``pairs_class_iou``)."""
    if not 0 <= iou_threshold <= 1:
        raise ValueError(f"mask_nms: iou_threshold must be in [0, 1], got {iou_threshold}")
    order = torch.argsort(scores, descending=True, stable=True)
    iou = iou[order][:, order].cpu()
    same = (labels[order][:, None] == labels[order][None, :]).cpu()
    kept: list[int] = []
    for j in range(len(order)):
        if not any(same[i, j] and iou[i, j] > iou_threshold for i in kept):
            kept.append(j)
    return order[torch.tensor(kept, dtype=torch.long, device=order.device)]
