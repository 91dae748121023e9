"""The one post-processing step every pipeline's prediction goes through: snapping to the scan's
segments (ScanNet's over-segmentation: an object is a union of segments), or, for a scan that has
none, to superpoints computed for it (``cluster.superpoints``)."""
from __future__ import annotations

import time

from ..structures import Prediction, Scene


def snap_to_scene(pred: Prediction, scene: Scene, min_cover: float, min_size: int = 1,
                  superpoints: bool = False) -> Prediction:
    """The one post-processing step of every pipeline: with ``min_cover`` > 0, each mask keeps the
    scene's segments (ScanNet's over-segmentation) it covers by at least ``min_cover`` and loses the
    rest (masks left under ``min_size`` points go), and every point takes its segment's majority
    class. A scene without segments is snapped to superpoints computed for it when ``superpoints``
    (timing ``superpoints``) and it has a mesh or colours, else left unchanged. Adds the ``snap`` timing."""
    from ..cluster import snap_prediction

    if min_cover <= 0 or len(scene) == 0 or (scene.segments is None and not superpoints):
        return pred
    timings = dict(pred.timings)
    segments = scene.segments
    if segments is None:
        from ..cluster.superpoints import scene_superpoints, worth_computing

        if not worth_computing(scene):
            return pred
        start = time.perf_counter()
        segments = scene_superpoints(scene)
        timings["superpoints"] = time.perf_counter() - start
    start = time.perf_counter()
    instances, semantic = snap_prediction(pred.instances, pred.semantic, segments, min_cover, min_size)
    return Prediction(instances, semantic, {**timings, "snap": time.perf_counter() - start}, pred.embeddings)
