"""The bottom-up segmenter: sparse U-Net -> per-point semantic logits, embeddings, offsets.

Composed from parts passed to the constructor (torchvision style). ``forward(batch)`` returns a
dict of named losses in training mode and a dict of per-point predictions in eval mode. Turning
the predictions into instances (clustering) is ``pcseg.cluster``'s job, not the model's.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from pcseg.data.voxelize import Voxels, voxel_mean, voxelize
from pcseg.labels import IGNORE
from pcseg.models.backbone import SparseUNet
from pcseg.models.heads import EmbeddingHead, OffsetHead, SemanticHead
from pcseg.sparse import SparseTensor
from pcseg.structures import Batch

# weights a recipe may give although the model lacks that head (offsets: false): accepted, unused
OPTIONAL_LOSS_NAMES = ("offset_l1", "offset_direction")


class BottomUpSegmenter(nn.Module):
    """Semantic + instance-embedding (+ optional centre-offset) segmenter on a sparse backbone.

    backbone:       module SparseTensor[V, C_in] -> SparseTensor[V, c] on the same sites, with
                    ``in_channels`` and ``out_channels`` attributes (e.g. ``SparseUNet``).
    semantic_head:  FloatTensor[V, c] -> FloatTensor[V, num_classes]
    embedding_head: FloatTensor[V, c] -> FloatTensor[V, D]
    offset_head:    FloatTensor[V, c] -> FloatTensor[V, 3], or None (no offset branch)
    voxel_size:     voxel edge in the points' units (metres).
    loss_weights:   weights of the heads' named losses in ``total`` (each head lists its own in
                    ``loss_names``; missing keys keep 1.0). The pull/push margins are the
                    embedding head's (``EmbeddingHead(delta_v, delta_d)``).
    class_weights:  FloatTensor[num_classes] for the cross-entropy, or None. A training setting:
                    it is not saved in the state dict (``set_class_weights`` changes it).

    forward(batch: Batch) with batch.features FloatTensor[M, C_in]:
      training -> dict(semantic, pull, push, reg, embedding, [offset_l1, offset_direction], total),
                  scalars; needs ``batch.semantic`` (0..num_classes-1, IGNORE = -1) and
                  ``batch.instance`` (ids >= 0 count for embeddings/offsets, -1 = ignore).
      eval     -> dict(semantic_logits FloatTensor[M, num_classes], embeddings FloatTensor[M, D],
                  offsets FloatTensor[M, 3] when there is an offset head).
    Every voxel's outputs are copied to all the points in it (the voxelization's inverse map).
    """

    def __init__(self, backbone: nn.Module, semantic_head: nn.Module, embedding_head: nn.Module,
                 offset_head: nn.Module | None = None, voxel_size: float = 0.05, num_classes: int = 20,
                 loss_weights: Mapping[str, float] | None = None, class_weights: torch.Tensor | None = None) -> None:
        super().__init__()
        voxel_size = float(voxel_size)
        if not 0 < voxel_size < float("inf"):
            raise ValueError(f"BottomUpSegmenter: voxel_size must be a positive finite number, got {voxel_size}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"BottomUpSegmenter: num_classes must be a positive int, got {num_classes!r}")
        self.backbone, self.semantic_head = backbone, semantic_head
        self.embedding_head, self.offset_head = embedding_head, offset_head
        self.voxel_size, self.num_classes = voxel_size, num_classes
        weights = {name: 1.0 for head in self.heads() for name in head.loss_names}
        for key, value in (loss_weights or {}).items():
            if key not in weights and key not in OPTIONAL_LOSS_NAMES:
                raise ValueError(f"BottomUpSegmenter: unknown loss weight {key!r}; expected one of {sorted(weights)}")
            weights[key] = float(value)
        self.loss_weights = weights
        self.set_class_weights(class_weights)

    def heads(self) -> list[nn.Module]:
        """The per-voxel heads, in the order of the outputs and of the terms of the total loss."""
        return [h for h in (self.semantic_head, self.embedding_head, self.offset_head) if h is not None]

    @property
    def class_weights(self) -> torch.Tensor | None:
        return self.semantic_head.class_weights

    def set_class_weights(self, class_weights: torch.Tensor | None) -> None:
        """Cross-entropy class weights FloatTensor[num_classes], or None for an unweighted loss."""
        self.semantic_head.set_class_weights(class_weights)

    def _check(self, batch: Batch) -> None:
        if not isinstance(batch, Batch):
            raise ValueError(f"BottomUpSegmenter: expected a Batch, got {type(batch).__name__}")
        if batch.points.shape[0] == 0:
            raise ValueError("BottomUpSegmenter: Batch.points is empty (no points in the batch)")
        for name in ("points", "features"):
            t = getattr(batch, name)
            if not t.is_floating_point():
                raise ValueError(f"BottomUpSegmenter: Batch.{name} must be floating point, got {t.dtype}")
            finite = torch.isfinite(t).all(1)
            if not bool(finite.all()):
                bad = int(torch.nonzero(~finite)[0, 0])
                raise ValueError(f"BottomUpSegmenter: Batch.{name} has a NaN or infinite value at point {bad}")
        c_in = getattr(self.backbone, "in_channels", None)
        if c_in is not None and batch.features.shape[1] != c_in:
            raise ValueError(f"BottomUpSegmenter: Batch.features has {batch.features.shape[1]} channels, "
                             f"the backbone expects {c_in}")
        if not self.training:
            return
        for name in ("semantic", "instance"):
            if getattr(batch, name) is None:
                raise ValueError(f"BottomUpSegmenter: training needs Batch.{name} targets, got None")
        sem = batch.semantic
        bad = (sem != IGNORE) & ((sem < 0) | (sem >= self.num_classes))
        if bool(bad.any()):
            raise ValueError(f"BottomUpSegmenter: Batch.semantic must be in 0..{self.num_classes - 1} or "
                             f"{IGNORE}, got {int(sem[bad][0])}")
        if bool((batch.instance < IGNORE).any()):
            raise ValueError(f"BottomUpSegmenter: Batch.instance must be >= {IGNORE}, "
                             f"got {int(batch.instance.min())}")

    def _voxel_features(self, batch: Batch) -> tuple[torch.Tensor, Voxels]:
        self._check(batch)
        voxels = voxelize(batch.points, batch.offset, self.voxel_size, anchor_floor=True)
        x = SparseTensor(voxel_mean(batch.features, voxels), voxels.coords)
        return self.backbone(x).features, voxels                                  # [V, c]

    def voxel_outputs(self, batch: Batch) -> tuple[dict[str, torch.Tensor], Voxels]:
        """The eval outputs once per voxel ([V, ...], the resolution the network sees) and the
        voxelization, whose ``inverse`` copies them to the points: what prediction groups, at a
        fraction of the points' rows."""
        features, voxels = self._voxel_features(batch)
        return {head.output: head(features) for head in self.heads()}, voxels

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        features, voxels = self._voxel_features(batch)
        # Heads run once per voxel; the inverse map copies each voxel's output to its points.
        inverse = voxels.inverse
        out = {head.output: head(features)[inverse] for head in self.heads()}
        if not self.training:
            return out
        batch_index = batch.batch_index
        losses: dict[str, torch.Tensor] = {}
        total = None
        for head in self.heads():
            named = head.losses(out[head.output], batch, batch_index)
            losses.update(named)
            for name in head.loss_names:  # summed term by term, in head order
                term = self.loss_weights[name] * named[name]
                total = term if total is None else total + term
        losses["total"] = total
        return losses


def build_bottomup(in_channels: int = 3, num_classes: int = 20, embed_dim: int = 8,
                   widths: Sequence[int] = (32, 64, 96, 128), blocks: int = 1, voxel_size: float = 0.05,
                   offsets: bool = True, head_hidden: int | None = None,
                   loss_weights: Mapping[str, float] | None = None, delta_v: float = 0.5,
                   delta_d: float = 1.5) -> BottomUpSegmenter:
    """A ``BottomUpSegmenter`` with a ``SparseUNet(in_channels, widths, blocks)`` backbone and
    Linear heads (Linear-BN-ReLU-Linear with ``head_hidden``); ``offsets=False`` drops the offset branch."""
    backbone = SparseUNet(in_channels, widths, blocks)
    c = backbone.out_channels
    return BottomUpSegmenter(
        backbone, SemanticHead(c, num_classes, head_hidden), EmbeddingHead(c, embed_dim, head_hidden, delta_v, delta_d),
        OffsetHead(c, head_hidden) if offsets else None, voxel_size=voxel_size, num_classes=num_classes,
        loss_weights=loss_weights)
