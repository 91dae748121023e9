"""Small per-voxel heads on backbone features (a 1x1x1 conv is a Linear on the feature rows).

Each head maps ``FloatTensor[V, c] -> FloatTensor[V, out]``. With ``hidden=None`` a head is one
Linear; with ``hidden=h`` it is Linear(c, h) - BatchNorm - ReLU - Linear(h, out).

Each head also owns its training signal: ``output`` names what it predicts (the key in the model's
eval outputs), ``losses(per-point output, batch, batch_index)`` returns its named losses, and
``loss_names`` lists those that add (weighted) to the model's total. A new head drops in beside these
without touching the segmenter's loss code.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pcseg.labels import IGNORE
from pcseg.models.losses import discriminative_loss, offset_loss, semantic_loss


class RowBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d that accepts a single row in training mode (normalising it with the running
    statistics, left unchanged), so a one-voxel scene does not crash the heads."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] <= 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                training=False, eps=self.eps)
        return super().forward(x)


class _Head(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, hidden: int | None) -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive int, got {v!r}")
        if hidden is not None and (isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1):
            raise ValueError(f"{type(self).__name__}: hidden must be None or a positive int, got {hidden!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        if hidden is None:
            self.net = nn.Linear(in_channels, out_channels)
        else:
            self.net = nn.Sequential(nn.Linear(in_channels, hidden, bias=False), RowBatchNorm1d(hidden),
                                     nn.ReLU(), nn.Linear(hidden, out_channels))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() != 2 or features.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}: expected features of shape [V, {self.in_channels}], "
                             f"got {list(features.shape)}")
        return self.net(features)


class SemanticHead(_Head):
    """Class logits per voxel: FloatTensor[V, c] -> FloatTensor[V, num_classes]; loss: cross-entropy
    (``semantic``) with optional class weights (a training setting, not saved in the state dict)."""

    output, loss_names = "semantic_logits", ("semantic",)

    def __init__(self, in_channels: int, num_classes: int, hidden: int | None = None) -> None:
        super().__init__(in_channels, num_classes, hidden)
        self.num_classes = num_classes
        self.register_buffer("class_weights", None, persistent=False)

    def set_class_weights(self, class_weights: torch.Tensor | None) -> None:
        """Cross-entropy class weights FloatTensor[num_classes], or None for an unweighted loss."""
        if class_weights is not None:
            class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
            if tuple(class_weights.shape) != (self.num_classes,):
                raise ValueError(f"BottomUpSegmenter: class_weights must have shape [{self.num_classes}], "
                                 f"got {list(class_weights.shape)}")
            if not bool(torch.isfinite(class_weights).all()) or bool((class_weights < 0).any()):
                raise ValueError("BottomUpSegmenter: class_weights must be finite and >= 0")
            class_weights = class_weights.to(next(self.parameters()).device)
        self.class_weights = class_weights

    def losses(self, logits: torch.Tensor, batch, batch_index: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"semantic": semantic_loss(logits, batch.semantic, IGNORE, self.class_weights)}


class EmbeddingHead(_Head):
    """Instance embedding per voxel: FloatTensor[V, c] -> FloatTensor[V, dim]; loss: the pull/push
    (discriminative) loss with margins delta_v < delta_d (``embedding``; its parts pull, push, reg)."""

    output, loss_names = "embeddings", ("embedding",)

    def __init__(self, in_channels: int, dim: int, hidden: int | None = None, delta_v: float = 0.5,
                 delta_d: float = 1.5) -> None:
        super().__init__(in_channels, dim, hidden)
        if not 0 < delta_v < delta_d:
            raise ValueError(f"BottomUpSegmenter: need 0 < delta_v < delta_d, got delta_v={delta_v}, delta_d={delta_d}")
        self.dim, self.delta_v, self.delta_d = dim, float(delta_v), float(delta_d)

    def losses(self, embeddings: torch.Tensor, batch, batch_index: torch.Tensor) -> dict[str, torch.Tensor]:
        disc = discriminative_loss(embeddings, batch.instance, batch_index, self.delta_v, self.delta_d)
        return {"pull": disc["pull"], "push": disc["push"], "reg": disc["reg"], "embedding": disc["total"]}


class OffsetHead(_Head):
    """3D vector from each voxel to its instance centre (metres): FloatTensor[V, c] -> FloatTensor[V, 3];
    losses: L1 to the true centre (``offset_l1``) and minus the cosine to it (``offset_direction``)."""

    output, loss_names = "offsets", ("offset_l1", "offset_direction")

    def __init__(self, in_channels: int, hidden: int | None = None) -> None:
        super().__init__(in_channels, 3, hidden)

    def losses(self, offsets: torch.Tensor, batch, batch_index: torch.Tensor) -> dict[str, torch.Tensor]:
        off = offset_loss(offsets, batch.points, batch.instance, batch_index)
        return {"offset_l1": off["l1"], "offset_direction": off["direction"]}
