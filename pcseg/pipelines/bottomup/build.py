"""The bottom-up recipe turned into parts: the model, the class weights, the clustering settings (the
backend, augmentation and datasets are every point-cloud pipeline's: ``pipelines.scenes``)."""
from __future__ import annotations

import numpy as np
import torch

from ...data import SceneDataset, feature_channels, semantic_point_counts
from ...models import BottomUpSegmenter, build_bottomup
from .recipe import BottomUpRecipe


def build_model(recipe: BottomUpRecipe) -> BottomUpSegmenter:
    return build_bottomup(
        in_channels=feature_channels(recipe.height_feature), num_classes=20, embed_dim=recipe.embed_dim,
        widths=tuple(recipe.widths), blocks=recipe.blocks, voxel_size=recipe.voxel_size,
        offsets=recipe.offsets, head_hidden=recipe.head_hidden, delta_v=recipe.delta_v, delta_d=recipe.delta_d,
        loss_weights={"semantic": recipe.loss_semantic, "embedding": recipe.loss_embedding,
                      "offset_l1": recipe.loss_offset_l1, "offset_direction": recipe.loss_offset_direction})


def balanced_class_weights(counts: np.ndarray, power: float) -> torch.Tensor:
    """Cross-entropy weights (median count / count) ** power over the classes present; absent
    classes (no point to weigh) get 1, clipped to [0.1, 10] so one tiny class cannot dominate."""
    counts = np.asarray(counts, dtype=np.float64)
    weights = np.ones_like(counts)
    present = counts > 0
    if present.any() and power > 0:
        weights[present] = np.clip((np.median(counts[present]) / counts[present]) ** power, 0.1, 10.0)
    return torch.as_tensor(weights, dtype=torch.float32)


def class_weights(recipe: BottomUpRecipe, dataset: SceneDataset) -> torch.Tensor | None:
    """The recipe's cross-entropy class weights from ``dataset``'s point counts, or None (class_balance 0)."""
    if recipe.class_balance <= 0:
        return None
    return balanced_class_weights(semantic_point_counts(dataset), recipe.class_balance)


def cluster_settings(recipe: BottomUpRecipe) -> dict:
    return dict(method=recipe.cluster_method, bandwidth=recipe.bandwidth, min_size=recipe.min_size,
                use_offsets=recipe.use_offsets, coord_weight=recipe.coord_weight,
                embedding_weight=recipe.embedding_weight,
                soft_threshold=recipe.soft_threshold or None, class_bandwidth=recipe.class_bandwidth or None,
                fragment_radius=recipe.fragment_radius, extra_scales=tuple(recipe.extra_scales),
                extra_score=recipe.extra_score)
