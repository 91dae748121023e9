"""pcseg's compact instance file, ``<pred_dir>/instances/<scene>.npz``: each instance's point indices,
class and score in one file whose size grows with the points, not with points x instances.

The official submission (``io.official``) gives every instance a file with one line per point: a
building floor of 3 million points and 1000 instances is 6 GB of such files. ``pcseg predict`` writes
this file instead where the official files would be that large (``--masks``); every pcseg reader of a
prediction folder (``pcseg eval``, ``viz --pred``, the report) reads either.

Arrays: ``indices`` (the instances' sorted point indices, one after the other), ``offsets`` [K + 1]
(instance k holds ``indices[offsets[k]:offsets[k + 1]]``), ``labels`` [K] NYU40 ids, ``scores`` [K],
``num_points`` (the scene's point count).
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..structures import InstanceSet, MemberInstances

COMPACT_SUBDIR = "instances"
FIELDS = ("indices", "offsets", "labels", "scores", "num_points")


def compact_path(pred_dir: str | os.PathLike, scene_name: str) -> Path:
    return Path(pred_dir) / COMPACT_SUBDIR / f"{scene_name}.npz"


def write_compact_instances(path: str | os.PathLike, instances: InstanceSet) -> Path:
    """Write ``instances`` (any InstanceSet: only its point indices are stored) to ``path`` in place
    (``pcseg predict`` writes its whole folder under a temporary name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _, points = instances.pairs()  # grouped by instance, each instance's points sorted
    offsets = np.concatenate([[0], np.cumsum(instances.sizes())]).astype(np.int64)
    index_type = np.int32 if instances.num_points <= np.iinfo(np.int32).max else np.int64
    with open(path, "wb") as f:
        np.savez(f, indices=points.astype(index_type), offsets=offsets,
                 labels=np.asarray(instances.labels, np.int64), scores=np.asarray(instances.scores, np.float32),
                 num_points=np.int64(instances.num_points))
    return path


def read_compact_instances(path: str | os.PathLike, num_points: int | None = None) -> MemberInstances:
    """Read a compact instance file -> MemberInstances. ``num_points``: the scene's point count, checked
    against the file's. Any inconsistency is a DataError naming the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "compact instance file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {f: data[f] for f in FIELDS if f in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(path, None, f"not a readable .npz file ({e})") from None
    missing = [f for f in FIELDS if f not in arrays]
    if missing:
        raise DataError(path, missing[0], f"missing (a compact instance file holds {', '.join(FIELDS)})")
    n = arrays["num_points"]
    if n.shape != () or not np.issubdtype(n.dtype, np.integer) or int(n) < 0:
        raise DataError(path, "num_points", f"must be one integer >= 0, got {n!r}")
    n = int(n)
    if num_points is not None and n != num_points:
        raise DataError(path, "num_points", f"{n}, but the scene has {num_points} points")
    for field, kind in (("indices", np.integer), ("offsets", np.integer), ("labels", np.integer),
                        ("scores", np.floating)):
        a = arrays[field]
        if a.ndim != 1 or not (np.issubdtype(a.dtype, kind) or (a.size == 0 and kind is np.floating)):
            raise DataError(path, field, f"must be a 1-D {kind.__name__} array, got {a.dtype} {a.shape}")
    indices, offsets, labels, scores = (arrays[f] for f in ("indices", "offsets", "labels", "scores"))
    k = labels.shape[0]
    if scores.shape[0] != k:
        raise DataError(path, "scores", f"{scores.shape[0]} scores for {k} labels")
    if offsets.shape[0] != k + 1 or offsets[0] != 0 or offsets[-1] != indices.shape[0] or (np.diff(offsets) < 0).any():
        raise DataError(path, "offsets", f"must rise from 0 to len(indices) = {indices.shape[0]} in {k + 1} steps")
    if not np.isfinite(scores).all():
        raise DataError(path, "scores", "not finite")
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        raise DataError(path, "indices", f"out of range for {n} points")
    members = np.split(indices.astype(np.int64), offsets[1:-1]) if k else []
    try:  # MemberInstances checks that each instance's indices rise
        return MemberInstances(members, labels.astype(np.int64), scores.astype(np.float32), n)
    except ValueError:
        raise DataError(path, "indices", "each instance's indices must be sorted and distinct") from None
