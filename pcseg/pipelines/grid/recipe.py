"""The grid pipeline's recipe (``pipeline: grid``): the settings of every point-cloud pipeline
(``SceneSettings``) and the grid head's."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

from ...engine.config import require
from ..scenes import SceneSettings

NMS_KERNELS = ("gaussian", "linear")
NMS_METHODS = ("matrix", "mask")
# settings that define the network: a checkpoint only loads into a model built with the same values
ARCHITECTURE_KEYS = ("voxel_size", "widths", "blocks", "height_feature", "grids", "size_ranges", "mask_dim",
                     "head_hidden", "dynamic_hidden", "coord_features")
# the keys a prediction may override (`pcseg predict ... key=value`): the rest were fixed by training
PREDICT_KEYS = ("color_reference", "score_threshold", "peak_window", "mask_threshold", "nms", "nms_iou", "nms_kernel", "nms_sigma", "final_threshold",
                "max_instances",
                "min_size", "segment_snap", "superpoints", "tile_size", "tile_overlap",
                "backend", "threads")


@dataclass
class GridRecipe(SceneSettings):
    """See ``pcseg.models.grid`` for what the settings mean."""

    # model
    grids: list[int] = field(default_factory=lambda: [12, 24])       # S of each bird's-eye S x S grid, increasing
    size_ranges: list[list[float]] = field(default_factory=lambda: [[1.2, 100.0], [0.0, 1.2]])  # metres, per grid:
                                         # the objects (larger xy side) each grid is responsible for
    centre_radius: float = 0.2           # centre sampling: cells within this fraction of half the object's size
    mask_dim: int = 8                    # learned mask features per voxel (+ 3 relative coordinates)
    head_hidden: int = 64                # width of the category and kernel branches
    dynamic_hidden: int = 8              # hidden width of each cell's dynamic mask MLP
    coord_features: bool = True          # positions fed to both branches (CoordConv) and to the masks; False:
                                         # the ablation without them
    mask_weight: float = 3.0             # dice loss weight against the focal loss (SOLO's 3)
    max_masks: int = 64                  # responsible cells whose masks are trained per step (a random subset)
    # prediction
    score_threshold: float = 0.1         # cells (per class) below this category score yield no mask
    peak_window: int = 1                 # > 1 (odd): only cells whose class score peaks in this window of
                                         # cells yield a mask (SOLOv2's point NMS); 1: every cell
    mask_threshold: float = 0.5          # mask probability -> voxel in the mask
    nms: str = "matrix"                  # duplicate removal: Matrix-NMS (soft, one parallel step) | mask (greedy NMS)
    nms_iou: float = 0.5                 # nms: mask drops a mask over this IoU with a better one of its class
    nms_kernel: str = "gaussian"         # Matrix-NMS decay
    nms_sigma: float = 2.0
    final_threshold: float = 0.05        # masks whose score after Matrix-NMS is below this are dropped
    max_instances: int = 100             # per scene: masks are computed for this many best cells, and kept
    min_size: int = 50                   # masks of fewer points are dropped (also after snapping)
    # engine
    out_dir: str = "runs/grid"

    def __post_init__(self) -> None:
        super().__post_init__()
        need = functools.partial(require, self)
        need(len(self.grids) >= 1 and all(s >= 1 for s in self.grids)
             and all(b > a for a, b in zip(self.grids, self.grids[1:])), "grids", "needs sizes >= 1 that increase")
        need(len(self.size_ranges) == len(self.grids) and all(len(r) == 2 and 0 <= r[0] < r[1] for r in self.size_ranges),
             "size_ranges", "needs one [low, high] with 0 <= low < high (metres) per grid")
        need(0 <= self.centre_radius <= 1, "centre_radius", "must be in [0, 1]")
        need(self.mask_dim >= 1 and self.head_hidden >= 8 and self.dynamic_hidden >= 1, "mask_dim",
             "mask_dim and dynamic_hidden must be >= 1, head_hidden >= 8")
        need(self.mask_weight >= 0 and self.max_masks >= 1, "mask_weight", "mask_weight >= 0 and max_masks >= 1")
        need(0 < self.score_threshold < 1 and 0 < self.mask_threshold < 1, "score_threshold",
             "score_threshold and mask_threshold must be in (0, 1)")
        need(self.peak_window >= 1 and self.peak_window % 2 == 1, "peak_window", "must be an odd number >= 1")
        need(self.nms_kernel in NMS_KERNELS, "nms_kernel", f"must be one of {NMS_KERNELS}")
        need(self.nms in NMS_METHODS and 0 <= self.nms_iou <= 1, "nms", f"nms must be one of {NMS_METHODS}, nms_iou in [0, 1]")
        need(self.nms_sigma > 0 and 0 <= self.final_threshold < 1, "nms_sigma",
             "nms_sigma must be > 0 and final_threshold in [0, 1)")
        need(self.max_instances >= 1 and self.min_size >= 1, "max_instances", "max_instances and min_size must be >= 1")
