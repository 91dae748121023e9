"""Small per-voxel heads on backbone features (a 1x1x1 conv is a Linear on the feature rows).

Each head maps ``FloatTensor[V, c] -> FloatTensor[V, out]``. With ``hidden=None`` a head is one
Linear; with ``hidden=h`` it is Linear(c, h) - BatchNorm - ReLU - Linear(h, out).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
    """Class logits per voxel: FloatTensor[V, c] -> FloatTensor[V, num_classes]."""

    def __init__(self, in_channels: int, num_classes: int, hidden: int | None = None) -> None:
        super().__init__(in_channels, num_classes, hidden)
        self.num_classes = num_classes


class EmbeddingHead(_Head):
    """Instance embedding per voxel: FloatTensor[V, c] -> FloatTensor[V, dim]."""

    def __init__(self, in_channels: int, dim: int, hidden: int | None = None) -> None:
        super().__init__(in_channels, dim, hidden)
        self.dim = dim


class OffsetHead(_Head):
    """3D vector from each voxel to its instance centre (metres): FloatTensor[V, c] -> FloatTensor[V, 3]."""

    def __init__(self, in_channels: int, hidden: int | None = None) -> None:
        super().__init__(in_channels, 3, hidden)
