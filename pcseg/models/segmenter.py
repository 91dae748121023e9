"""The bottom-up segmenter: sparse U-Net -> per-point semantic logits, embeddings, offsets.

Composed from parts passed to the constructor (torchvision style). ``forward(batch)`` returns a
dict of named losses in training mode and a dict of per-point predictions in eval mode. Turning
the predictions into instances (clustering) is ``pcseg.cluster``'s job, not the model's.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from pcseg.data.voxelize import voxel_mean, voxelize
from pcseg.labels import IGNORE
from pcseg.models.backbone import SparseUNet
from pcseg.models.heads import EmbeddingHead, OffsetHead, SemanticHead
from pcseg.models.losses import discriminative_loss, offset_loss, semantic_loss
from pcseg.sparse import SparseTensor
from pcseg.structures import Batch

DEFAULT_LOSS_WEIGHTS = {"semantic": 1.0, "embedding": 1.0, "offset_l1": 1.0, "offset_direction": 1.0}


class BottomUpSegmenter(nn.Module):
    """Semantic + instance-embedding (+ optional centre-offset) segmenter on a sparse backbone.

    backbone:       module SparseTensor[V, C_in] -> SparseTensor[V, c] on the same sites, with
                    ``in_channels`` and ``out_channels`` attributes (e.g. ``SparseUNet``).
    semantic_head:  FloatTensor[V, c] -> FloatTensor[V, num_classes]
    embedding_head: FloatTensor[V, c] -> FloatTensor[V, D]
    offset_head:    FloatTensor[V, c] -> FloatTensor[V, 3], or None (no offset branch)
    voxel_size:     voxel edge in the points' units (metres).
    loss_weights:   weights of the named losses in ``total``; keys among
                    ``semantic, embedding, offset_l1, offset_direction`` (missing keys keep 1.0).
    delta_v, delta_d: margins of the discriminative loss.
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
                 loss_weights: Mapping[str, float] | None = None, delta_v: float = 0.5,
                 delta_d: float = 1.5, class_weights: torch.Tensor | None = None) -> None:
        super().__init__()
        voxel_size = float(voxel_size)
        if not 0 < voxel_size < float("inf"):
            raise ValueError(f"BottomUpSegmenter: voxel_size must be a positive finite number, got {voxel_size}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"BottomUpSegmenter: num_classes must be a positive int, got {num_classes!r}")
        weights = dict(DEFAULT_LOSS_WEIGHTS)
        for key, value in (loss_weights or {}).items():
            if key not in weights:
                raise ValueError(f"BottomUpSegmenter: unknown loss weight {key!r}; expected one of {sorted(weights)}")
            weights[key] = float(value)
        if not 0 < delta_v < delta_d:
            raise ValueError(f"BottomUpSegmenter: need 0 < delta_v < delta_d, got delta_v={delta_v}, delta_d={delta_d}")
        self.backbone, self.semantic_head = backbone, semantic_head
        self.embedding_head, self.offset_head = embedding_head, offset_head
        self.voxel_size, self.num_classes = voxel_size, num_classes
        self.loss_weights, self.delta_v, self.delta_d = weights, float(delta_v), float(delta_d)
        self.register_buffer("class_weights", None, persistent=False)
        self.set_class_weights(class_weights)

    def set_class_weights(self, class_weights: torch.Tensor | None) -> None:
        """Cross-entropy class weights FloatTensor[num_classes], or None for an unweighted loss."""
        if class_weights is not None:
            class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
            if tuple(class_weights.shape) != (self.num_classes,):
                raise ValueError(f"BottomUpSegmenter: class_weights must have shape [{self.num_classes}], "
                                 f"got {list(class_weights.shape)}")
            if not bool(torch.isfinite(class_weights).all()) or bool((class_weights < 0).any()):
                raise ValueError("BottomUpSegmenter: class_weights must be finite and >= 0")
            device = next(self.parameters(), torch.empty(0)).device
            class_weights = class_weights.to(device)
        self.class_weights = class_weights

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

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        self._check(batch)
        voxels = voxelize(batch.points, batch.offset, self.voxel_size)
        x = SparseTensor(voxel_mean(batch.features, voxels), voxels.coords)
        features = self.backbone(x).features                                      # [V, c]
        # Heads run once per voxel; the inverse map copies each voxel's output to its points.
        inverse = voxels.inverse
        logits = self.semantic_head(features)[inverse]
        embeddings = self.embedding_head(features)[inverse]
        offsets = None if self.offset_head is None else self.offset_head(features)[inverse]
        if not self.training:
            out = dict(semantic_logits=logits, embeddings=embeddings)
            if offsets is not None:
                out["offsets"] = offsets
            return out

        batch_index = batch.batch_index
        w = self.loss_weights
        losses = {"semantic": semantic_loss(logits, batch.semantic, IGNORE, self.class_weights)}
        disc = discriminative_loss(embeddings, batch.instance, batch_index, self.delta_v, self.delta_d)
        losses.update(pull=disc["pull"], push=disc["push"], reg=disc["reg"], embedding=disc["total"])
        total = w["semantic"] * losses["semantic"] + w["embedding"] * losses["embedding"]
        if offsets is not None:
            off = offset_loss(offsets, batch.points, batch.instance, batch_index)
            losses.update(offset_l1=off["l1"], offset_direction=off["direction"])
            total = total + w["offset_l1"] * off["l1"] + w["offset_direction"] * off["direction"]
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
        backbone, SemanticHead(c, num_classes, head_hidden), EmbeddingHead(c, embed_dim, head_hidden),
        OffsetHead(c, head_hidden) if offsets else None, voxel_size=voxel_size, num_classes=num_classes,
        loss_weights=loss_weights, delta_v=delta_v, delta_d=delta_d)
