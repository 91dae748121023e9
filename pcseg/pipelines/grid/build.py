"""The grid recipe turned into its model."""
from __future__ import annotations

from ...data import feature_channels
from ...models.backbone import SparseUNet
from ...models.grid import GridHead
from ...models.grid_segmenter import GridSegmenter
from .recipe import GridRecipe


def build_model(recipe: GridRecipe) -> GridSegmenter:
    backbone = SparseUNet(feature_channels(recipe.height_feature), tuple(recipe.widths), recipe.blocks)
    head = GridHead(backbone.out_channels, 18, grids=recipe.grids, size_ranges=[tuple(r) for r in recipe.size_ranges],
                    mask_dim=recipe.mask_dim, hidden=recipe.head_hidden, dynamic_hidden=recipe.dynamic_hidden,
                    coord_features=recipe.coord_features,
                    centre_radius=recipe.centre_radius)
    return GridSegmenter(backbone, head, voxel_size=recipe.voxel_size, mask_weight=recipe.mask_weight,
                         score_threshold=recipe.score_threshold, max_masks=recipe.max_masks,
                         max_candidates=recipe.max_instances, peak_window=recipe.peak_window,
                         mask_threshold=recipe.mask_threshold)
