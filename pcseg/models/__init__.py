"""Models: the sparse U-Net backbone, per-voxel heads, losses (plain functions) and the segmenters
composed of them. The only package that imports ``pcseg.sparse``.

    model = build_bottomup(in_channels=3, num_classes=20)
    losses = model(batch)            # training: dict of named losses, losses["total"].backward()
    model.eval(); out = model(batch) # eval: semantic_logits [M, C], embeddings [M, D], offsets [M, 3]
"""
from pcseg.models.backbone import ResidualBlock, SiteBatchNorm, SparseUNet
from pcseg.models.heads import EmbeddingHead, OffsetHead, SemanticHead
from pcseg.models.losses import discriminative_loss, offset_loss, semantic_loss
from pcseg.models.segmenter import BottomUpSegmenter, build_bottomup
from pcseg.sparse import resolve_backend, use_backend  # the engine picks the backend through models

__all__ = [
    "SparseUNet", "ResidualBlock", "SiteBatchNorm", "SemanticHead", "EmbeddingHead", "OffsetHead",
    "semantic_loss", "discriminative_loss", "offset_loss", "BottomUpSegmenter", "build_bottomup",
    "resolve_backend", "use_backend",
]
