"""Sparse-convolution U-Net backbone (MinkUNet / SparseConvNet style).

    x = SparseTensor(features, coords)        # FloatTensor[V, C_in], IntTensor[V, 4]
    y = SparseUNet(C_in)(x)                   # SparseTensor[V, widths[0]], same sites as x
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pcseg.sparse import (BatchNorm, ReLU, Sequential, SparseConv3d, SparseInverseConv3d,
                          SparseTensor, SubMConv3d)


class SiteBatchNorm(BatchNorm):
    """``pcseg.sparse.BatchNorm`` that also works on a tensor with a single site.

    BatchNorm1d refuses one row in training mode (the variance is undefined). A one-voxel scene,
    or the coarsest level of a tiny batch, has exactly one site, so there we normalise with the
    running statistics instead (and leave them unchanged).
    """

    def forward(self, x: SparseTensor) -> SparseTensor:
        if self.training and x.features.shape[0] <= 1:
            out = F.batch_norm(x.features, self.running_mean, self.running_var, self.weight,
                               self.bias, training=False, eps=self.eps)
            return x.replace_feature(out)
        return super().forward(x)


def _conv_bn_relu(c_in: int, c_out: int, kernel_size: int) -> Sequential:
    return Sequential(SubMConv3d(c_in, c_out, kernel_size), SiteBatchNorm(c_out), ReLU())


class ResidualBlock(nn.Module):
    """Two SubMConv-BN layers with a skip connection, then ReLU (the ResNet basic block).

    forward(x: SparseTensor[V, c_in]) -> SparseTensor[V, c_out] (same sites)
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv1 = _conv_bn_relu(c_in, c_out, kernel_size)
        self.conv2 = Sequential(SubMConv3d(c_out, c_out, kernel_size), SiteBatchNorm(c_out))
        # A 1x1x1 conv is a Linear on the features; only needed when the width changes.
        self.shortcut = nn.Linear(c_in, c_out, bias=False) if c_in != c_out else None

    def forward(self, x: SparseTensor) -> SparseTensor:
        identity = x.features if self.shortcut is None else self.shortcut(x.features)
        y = self.conv2(self.conv1(x))
        return y.replace_feature(torch.relu(y.features + identity))


def _blocks(c_in: int, c_out: int, count: int, kernel_size: int) -> nn.Sequential:
    layers = [ResidualBlock(c_in if i == 0 else c_out, c_out, kernel_size) for i in range(count)]
    return nn.Sequential(*layers)


class SparseUNet(nn.Module):
    """A sparse U-Net with ``len(widths)`` levels.

    Encoder: stem SubMConv(in_channels -> widths[0]); at level i, ``blocks`` residual blocks of width
    widths[i], then a stride-2 SparseConv3d (kernel 2) down to level i+1.
    Decoder: from the coarsest level up, a SparseInverseConv3d back to the skip's sites, concatenation
    with the skip features (2 * widths[i] channels), then ``blocks`` residual blocks of widths[i].

    forward(x: SparseTensor[V, in_channels] at any stride) -> SparseTensor[V, widths[0]] on x's sites.
    ``out_channels`` = widths[0].
    """

    def __init__(self, in_channels: int, widths: Sequence[int] = (32, 64, 96, 128), blocks: int = 1,
                 kernel_size: int = 3) -> None:
        super().__init__()
        widths = tuple(widths)
        if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"SparseUNet: widths must be a non-empty sequence of positive ints, got {widths!r}")
        if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
            raise ValueError(f"SparseUNet: blocks must be a positive int, got {blocks!r}")
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"SparseUNet: in_channels must be a positive int, got {in_channels!r}")
        self.in_channels, self.widths, self.out_channels = in_channels, widths, widths[0]
        self.stem = _conv_bn_relu(in_channels, widths[0], kernel_size)
        self.encoders = nn.ModuleList(_blocks(w, w, blocks, kernel_size) for w in widths)
        self.downs = nn.ModuleList(
            Sequential(SparseConv3d(widths[i], widths[i + 1], 2, 2), SiteBatchNorm(widths[i + 1]), ReLU())
            for i in range(len(widths) - 1))
        self.ups = nn.ModuleList(SparseInverseConv3d(widths[i + 1], widths[i], 2, 2)
                                 for i in range(len(widths) - 1))
        self.up_norms = nn.ModuleList(Sequential(SiteBatchNorm(widths[i]), ReLU())
                                      for i in range(len(widths) - 1))
        self.decoders = nn.ModuleList(_blocks(2 * widths[i], widths[i], blocks, kernel_size)
                                      for i in range(len(widths) - 1))

    def forward(self, x: SparseTensor) -> SparseTensor:
        if not isinstance(x, SparseTensor):
            raise ValueError(f"SparseUNet: expected a SparseTensor, got {type(x).__name__}")
        if x.features.shape[1] != self.in_channels:
            raise ValueError(f"SparseUNet: expected {self.in_channels} input channels, got {x.features.shape[1]}")
        x = self.stem(x)
        skips = []
        for level, encoder in enumerate(self.encoders):
            x = encoder(x)
            if level < len(self.downs):
                skips.append(x)
                x = self.downs[level](x)
        for level in reversed(range(len(self.ups))):
            skip = skips[level]
            x = self.up_norms[level](self.ups[level](x, skip))
            x = x.replace_feature(torch.cat([x.features, skip.features], 1))
            x = self.decoders[level](x)
        return x
