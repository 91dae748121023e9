"""The bottom-up recipe: every setting of a training run, validated, in one flat dataclass (the shared
settings from ``pipelines.scenes.SceneSettings``)."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from ...engine.config import require
from ..scenes import SceneSettings

CLUSTER_METHODS = ("meanshift", "hdbscan", "hdbscan-package", "dbscan")
# settings that define the network: a checkpoint only loads into a model built with the same values
ARCHITECTURE_KEYS = ("voxel_size", "widths", "blocks", "embed_dim", "offsets", "head_hidden", "height_feature")
# the keys a prediction may override (`pcseg predict ... key=value`): the rest were fixed by training
PREDICT_KEYS = ("color_reference", "cluster_method", "bandwidth", "min_size", "use_embeddings", "embedding_weight", "use_offsets", "coord_weight",
                "class_bandwidth", "soft_threshold", "fragment_radius", "extra_scales", "extra_score", "segment_snap", "superpoints", "tile_size", "tile_overlap",
                "backend", "threads")


@dataclass
class BottomUpRecipe(SceneSettings):
    """The bottom-up pipeline's recipe: the settings of every point-cloud pipeline (``SceneSettings``) and these."""

    # model
    embed_dim: int = 8
    offsets: bool = True
    head_hidden: int | None = None
    delta_v: float = 0.5
    delta_d: float = 1.5
    loss_semantic: float = 1.0
    class_balance: float = 0.0           # cross-entropy class weights (median count / class count) ** this,
                                         # from the training set's point counts: 0 = unweighted, 0.5 = sqrt
    loss_embedding: float = 1.0
    loss_offset_l1: float = 1.0
    loss_offset_direction: float = 1.0
    # clustering (validation and prediction)
    cluster_method: str = "meanshift"
    bandwidth: float = 0.6
    min_size: int = 50
    use_embeddings: bool = True          # cluster the embeddings ...
    embedding_weight: float = 1.0        # the embeddings' scale in the clustered space: below 1 when they
                                         # join the centres (whose radii are in metres)
    use_offsets: bool = False            # ... and/or the predicted instance centres (points + offsets)
    coord_weight: float = 0.0
    class_bandwidth: list[float] = field(default_factory=list)  # one bandwidth per ScanNet20 class, used
                                         # instead of bandwidth (benchmarks/tune_clustering.py); [] = off
    soft_threshold: float = 0.0          # > 0: also cluster each point under every class with probability
                                         # >= this (SoftGroup's soft grouping); 0 = argmax class only
    fragment_radius: float = 2.0         # joint grouping: a cluster whose mean centre lies within this many
                                         # bandwidths of a larger one of its class is ranked by its share
                                         # of it (a part of an object the embeddings split); 0 = off
    extra_scales: list[float] = field(default_factory=list)  # more hypotheses per class at these
                                         # times its bandwidth (touching objects of one class that the
                                         # full radius joins); [] = one set
    extra_score: float = 0.5             # ... ranked at this times their own score, below the first set
    # engine
    out_dir: str = "runs/bottomup"

    def __post_init__(self) -> None:
        super().__post_init__()
        need = functools.partial(require, self)

        need(self.embed_dim >= 1, "embed_dim", "must be >= 1")
        need(0 < self.delta_v < self.delta_d, "delta_v", "needs 0 < delta_v < delta_d")
        need(0 <= self.class_balance <= 1, "class_balance", "must be in [0, 1]")
        need(self.cluster_method in CLUSTER_METHODS, "cluster_method", f"must be one of {CLUSTER_METHODS}")
        need(self.bandwidth > 0, "bandwidth", "must be > 0")
        need(self.embedding_weight > 0, "embedding_weight", "must be > 0")
        need(not self.class_bandwidth or (len(self.class_bandwidth) == 20 and min(self.class_bandwidth) > 0),
             "class_bandwidth", "needs 20 values > 0 (one per ScanNet20 class) or none")
        need(self.use_embeddings or (self.use_offsets and self.offsets), "use_offsets",
             "clustering needs use_embeddings, or use_offsets with an offset head")
        need(0 <= self.soft_threshold <= 1, "soft_threshold", "must be in [0, 1]")
        need(self.fragment_radius >= 0, "fragment_radius", "must be >= 0")
        need(all(x > 0 for x in self.extra_scales), "extra_scales", "must be bandwidth factors > 0")
        need(0 < self.extra_score <= 1, "extra_score", "must be in (0, 1]")
        need(self.min_size >= 1, "min_size", "must be >= 1")

    def architecture(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ARCHITECTURE_KEYS}
