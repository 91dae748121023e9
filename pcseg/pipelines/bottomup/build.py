"""The bottom-up recipe turned into parts: the model, the sparse backend, the augmentation, the datasets,
the class weights, the clustering settings."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...data import Augmentation, SceneDataset, feature_channels, semantic_point_counts
from ...errors import ConfigError
from ...models import BottomUpSegmenter, build_bottomup, resolve_backend, use_backend
from .recipe import BottomUpRecipe


def select_backend(recipe: BottomUpRecipe, device: torch.device) -> str:
    """Make the recipe's sparse-conv backend the process-wide one; a clear error if it cannot run here."""
    try:
        name = resolve_backend(recipe.backend, device)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(f"backend: {e}") from None
    use_backend(recipe.backend)
    return name


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


def build_augmentation(recipe: BottomUpRecipe) -> Augmentation | None:
    if not recipe.augment:
        return None
    return Augmentation(rotate=recipe.rotate, flip=recipe.flip, scale=recipe.scale_min != recipe.scale_max,
                        scale_range=(recipe.scale_min, recipe.scale_max), elastic=recipe.elastic,
                        color=recipe.color_jitter, color_cast=recipe.color_cast, gray_prob=recipe.gray_prob,
                        color_drop_prob=recipe.color_drop_prob, holes=recipe.holes, point_noise=recipe.point_noise)


def val_root(recipe: BottomUpRecipe) -> Path:
    return Path(recipe.val_root or recipe.data_root)


def train_dataset(recipe: BottomUpRecipe) -> SceneDataset:
    split = None if recipe.train_split == "all" else recipe.train_split  # "all": every scene under data_root
    return SceneDataset(recipe.data_root, split, labels_tsv=recipe.labels_tsv,
                        cache_dir=recipe.cache_dir, augment=build_augmentation(recipe), seed=recipe.seed)


def val_dataset(recipe: BottomUpRecipe) -> SceneDataset:
    cache = None if recipe.cache_dir is None else Path(recipe.cache_dir) / "val"
    split = None if recipe.val_split == "all" else recipe.val_split  # "all": every scene under val_root
    return SceneDataset(val_root(recipe), split, labels_tsv=recipe.labels_tsv, cache_dir=cache)


def cluster_settings(recipe: BottomUpRecipe) -> dict:
    return dict(method=recipe.cluster_method, bandwidth=recipe.bandwidth, min_size=recipe.min_size,
                use_offsets=recipe.use_offsets, coord_weight=recipe.coord_weight,
                soft_threshold=recipe.soft_threshold or None, class_bandwidth=recipe.class_bandwidth or None)
