"""The one post-processing step every pipeline's prediction goes through: snapping to the scan's
segments (ScanNet's over-segmentation: an object is a union of segments)."""
from __future__ import annotations

import time

from ..structures import Prediction, Scene


def snap_to_scene(pred: Prediction, scene: Scene, min_cover: float, min_size: int = 1) -> Prediction:
    """The one post-processing step of every pipeline: with ``min_cover`` > 0 and a scene that has
    segments (ScanNet's over-segmentation), each mask keeps the segments it covers by at least
    ``min_cover`` and loses the rest (masks left under ``min_size`` points go), and every point takes
    its segment's majority class. Unchanged otherwise. Adds the ``snap`` timing."""
    from ..cluster import snap_prediction

    if min_cover <= 0 or scene.segments is None or len(scene) == 0:
        return pred
    start = time.perf_counter()
    instances, semantic = snap_prediction(pred.instances, pred.semantic, scene.segments, min_cover, min_size)
    return Prediction(instances, semantic, {**pred.timings, "snap": time.perf_counter() - start}, pred.embeddings)
