"""The bottom-up recipe: every setting of a training run, validated, in one flat dataclass (the shared
settings from ``TrainingSettings``)."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from ...engine.config import require
from ...engine.settings import TrainingSettings

CLUSTER_METHODS = ("meanshift", "hdbscan", "dbscan")
SPARSE_BACKENDS = ("auto", "torch", "spconv", "minkowski")
# settings that define the network: a checkpoint only loads into a model built with the same values
ARCHITECTURE_KEYS = ("voxel_size", "widths", "blocks", "embed_dim", "offsets", "head_hidden", "height_feature")
# the keys a prediction may override (`pcseg predict ... key=value`): the rest were fixed by training
PREDICT_KEYS = ("cluster_method", "bandwidth", "min_size", "use_embeddings", "use_offsets", "coord_weight",
                "class_bandwidth", "soft_threshold", "segment_snap", "backend", "threads")


@dataclass
class BottomUpRecipe(TrainingSettings):
    """The bottom-up pipeline's recipe: the shared settings (``TrainingSettings``) and these."""

    # data
    labels_tsv: str | None = None
    cache_dir: str | None = None
    height_feature: bool = False         # add height above the floor as a 4th input channel
    # model
    voxel_size: float = 0.05
    widths: list[int] = field(default_factory=lambda: [32, 64, 96, 128])
    blocks: int = 1
    embed_dim: int = 8
    offsets: bool = True
    head_hidden: int | None = None
    backend: str = "auto"                # sparse convs: auto (spconv on CUDA, else torch) | torch | spconv | minkowski
    delta_v: float = 0.5
    delta_d: float = 1.5
    loss_semantic: float = 1.0
    class_balance: float = 0.0           # cross-entropy class weights (median count / class count) ** this,
                                         # from the training set's point counts: 0 = unweighted, 0.5 = sqrt
    loss_embedding: float = 1.0
    loss_offset_l1: float = 1.0
    loss_offset_direction: float = 1.0
    # augmentation
    augment: bool = True
    rotate: bool = True
    flip: bool = True
    scale_min: float = 0.9
    scale_max: float = 1.1
    elastic: bool = True
    color_jitter: bool = True
    color_cast: float = 0.0              # per-scene per-channel colour gains in [1 - this, 1 + this]
    gray_prob: float = 0.0               # probability of training on a scene's grey levels
    color_drop_prob: float = 0.0         # probability of a scene with all colours one grey (geometry only)
    holes: int = 0                       # cut up to this many holes (0.2-0.6 m) per scene, as real scans have
    point_noise: float = 0.0             # per-scene point noise, std uniform in [0, this] metres
    # optimisation
    init_weights: str | None = None      # start from this checkpoint's weights (same architecture), e.g. to
                                         # fine-tune the shipped model; --resume continues a run instead
    lr_anneal: str = "steps"             # poly decay over epochs x steps ("steps"), or over the time budget
                                         # as well, whichever ends first ("budget"; needs max_minutes)
    # clustering (validation and prediction)
    cluster_method: str = "meanshift"
    bandwidth: float = 0.6
    min_size: int = 50
    use_embeddings: bool = True          # cluster the embeddings ...
    use_offsets: bool = False            # ... and/or the predicted instance centres (points + offsets)
    coord_weight: float = 0.0
    class_bandwidth: list[float] = field(default_factory=list)  # one bandwidth per ScanNet20 class, used
                                         # instead of bandwidth (benchmarks/tune_clustering.py); [] = off
    soft_threshold: float = 0.0          # > 0: also cluster each point under every class with probability
                                         # >= this (SoftGroup's soft grouping); 0 = argmax class only
    segment_snap: float = 0.0            # > 0: a mask keeps the scan's segments (segs.json) it covers by at
                                         # least this fraction and loses the rest; 0 = off
    # engine
    out_dir: str = "runs/bottomup"
    val_scenes: int = 0                  # validate on the first N scenes; 0 = all

    def __post_init__(self) -> None:
        super().__post_init__()
        need = functools.partial(require, self)

        need(self.voxel_size > 0, "voxel_size", "must be > 0")
        need(len(self.widths) >= 1 and all(w > 0 for w in self.widths), "widths", "needs positive widths")
        need(self.blocks >= 1, "blocks", "must be >= 1")
        need(self.embed_dim >= 1, "embed_dim", "must be >= 1")
        need(0 < self.delta_v < self.delta_d, "delta_v", "needs 0 < delta_v < delta_d")
        need(0 <= self.class_balance <= 1, "class_balance", "must be in [0, 1]")
        need(self.lr_anneal in ("steps", "budget"), "lr_anneal", "must be steps or budget")
        need(0 < self.scale_min <= self.scale_max, "scale_min", "needs 0 < scale_min <= scale_max")
        need(0 <= self.color_cast <= 1, "color_cast", "must be in [0, 1]")
        need(isinstance(self.holes, int) and not isinstance(self.holes, bool) and self.holes >= 0, "holes",
             "must be an integer >= 0")
        need(0 <= self.point_noise <= 0.1, "point_noise", "must be in [0, 0.1] metres")
        need(0 <= self.gray_prob <= 1 and 0 <= self.color_drop_prob <= 1, "gray_prob",
             "gray_prob and color_drop_prob must be in [0, 1]")
        need(self.cluster_method in CLUSTER_METHODS, "cluster_method", f"must be one of {CLUSTER_METHODS}")
        need(self.backend in SPARSE_BACKENDS, "backend", f"must be one of {SPARSE_BACKENDS}")
        need(self.bandwidth > 0, "bandwidth", "must be > 0")
        need(not self.class_bandwidth or (len(self.class_bandwidth) == 20 and min(self.class_bandwidth) > 0),
             "class_bandwidth", "needs 20 values > 0 (one per ScanNet20 class) or none")
        need(self.use_embeddings or (self.use_offsets and self.offsets), "use_offsets",
             "clustering needs use_embeddings, or use_offsets with an offset head")
        need(0 <= self.soft_threshold <= 1, "soft_threshold", "must be in [0, 1]")
        need(0 <= self.segment_snap <= 1, "segment_snap", "must be in [0, 1] (0 = off)")
        need(self.min_size >= 1, "min_size", "must be >= 1")

    def architecture(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ARCHITECTURE_KEYS}
