"""Clustering: per-point predictions -> InstanceSet.

Works on arrays/tensors and ``structures`` only, never on a model (clustering stays out of
``forward``).

* ``mean_shift``: seeded, batched mean-shift (numpy on the CPU; tensors in and out on any device);
* ``cluster_instances``: embeddings / offsets + semantic probabilities -> InstanceSet, per class,
  with mean-shift, HDBSCAN or DBSCAN, and a score for AP ranking;
* ``dbscan_xyz``: the non-learned baseline (connected components of each class on xyz);
* ``snap_to_segments``, ``snap_labels_to_segments``: masks -> unions of the scan's over-segments
  (ScanNet's segs.json); per-point labels -> each segment's majority.
"""
from .instances import METHODS, cluster_instances
from .meanshift import mean_shift, mean_shift_modes
from .segments import snap_labels_to_segments, snap_prediction, snap_to_scene_segments, snap_to_segments
from .xyz import dbscan_xyz

__all__ = ["METHODS", "cluster_instances", "dbscan_xyz", "mean_shift", "mean_shift_modes", "snap_labels_to_segments",
           "snap_prediction", "snap_to_scene_segments", "snap_to_segments"]
