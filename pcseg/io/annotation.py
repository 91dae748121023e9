"""A scan's annotation -> per-vertex labels (docs/scannet-format.md §4), and the labels tsv.

Labels are built exactly as the official helper ``export_train_mesh_for_evaluation.py`` builds
them (§4): classes are filled per raw category (categories in order of first appearance, each over
all segments of its groups), then instances per objectId (``objectId + 1``, groups in file order,
later ones overwriting), including the helper's list aliasing (the first group of a category also
claims the segments of that category's later groups, which they then overwrite). Vertices in no
group get semantic 0 and instance -1 (pcseg's "none"; the official helper writes 0). On real scans
this is the same as "each vertex takes its last group's class and instance"; the two only differ
when groups of different categories share a segment, and then we follow the official code.
Raw categories missing from the tsv become 0 (unannotated) with a warning.
"""
from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..ids import dense_ids
from ..labels import LABELS_TSV_NAME, map_raw_categories, read_label_map
from ..structures import SegGroup


def _segment_positions(uniq: np.ndarray, segments) -> tuple[np.ndarray, list[int]]:
    """Rows of ``uniq`` (sorted segment ids) for the given segment ids, and the ids not in it."""
    seg = np.asarray(segments, np.int64)
    if not len(uniq):
        return seg[:0], sorted(set(seg.tolist()))
    pos = np.clip(np.searchsorted(uniq, seg), 0, len(uniq) - 1)
    found = uniq[pos] == seg
    return pos[found], sorted(set(seg[~found].tolist()))


def _warn_missing_segments(source, missing: dict[int, list[int]]) -> None:
    if missing:
        shown = dict(list(missing.items())[:5])
        warnings.warn(f"{source}: segGroups refer to segment ids absent from segIndices (ignored); "
                      f"group id -> segments: {shown}{' ...' if len(missing) > 5 else ''}", stacklevel=4)


def owner_groups(segments: np.ndarray, groups: Sequence[SegGroup], source: str | os.PathLike = "",
                 warn: bool = True) -> np.ndarray:
    """IntArray[N]: index of the last group whose segments contain each vertex's segment, -1 for none.

    Segment ids of a group that no vertex has are skipped (with a warning naming ``source``)."""
    uniq, inverse = dense_ids(segments)
    owner = np.full(len(uniq), -1, np.int64)
    missing: dict[int, list[int]] = {}
    for gi, g in enumerate(groups):
        pos, absent = _segment_positions(uniq, g.segments)
        owner[pos] = gi
        if absent:
            missing[g.id] = absent
    if warn:
        _warn_missing_segments(source, missing)
    return owner[inverse]


def build_labels(segments: np.ndarray, groups: Sequence[SegGroup], label_map: Mapping[str, int],
                 source: str | os.PathLike = "") -> tuple[np.ndarray, np.ndarray]:
    """(semantic, instance) IntArray[N] each, from per-vertex segments and the aggregation's groups,
    by the official helper's rule (see the module docstring)."""
    uniq, inverse = dense_ids(segments)
    object_segs: dict[int, list[int]] = {}
    label_segs: dict[str, list[int]] = {}
    missing: dict[int, list[int]] = {}
    for g in groups:
        segs = list(g.segments)
        object_segs[g.object_id + 1] = segs
        if g.label in label_segs:
            label_segs[g.label].extend(segs)
        else:
            label_segs[g.label] = segs  # the same list object as the group's: the official aliasing
        absent = _segment_positions(uniq, g.segments)[1]
        if absent:
            missing[g.id] = absent
    _warn_missing_segments(source, missing)

    nyu = map_raw_categories(list(label_segs), label_map, source)
    seg_semantic = np.zeros(len(uniq), np.int64)
    for value, segs in zip(nyu, label_segs.values()):
        seg_semantic[_segment_positions(uniq, segs)[0]] = value
    seg_instance = np.full(len(uniq), -1, np.int64)
    for object_id, segs in object_segs.items():
        seg_instance[_segment_positions(uniq, segs)[0]] = object_id
    return seg_semantic[inverse], seg_instance[inverse]


def find_labels_tsv(path: str | os.PathLike) -> Path | None:
    """``scannetv2-labels.combined.tsv`` for a path: the path itself if it is a file, else the first
    found in the path, its parent or its grandparent (a scene folder's dataset root)."""
    path = Path(path)
    if path.is_file():
        return path
    for folder in (path, path.parent, path.parent.parent):
        if (folder / LABELS_TSV_NAME).is_file():
            return folder / LABELS_TSV_NAME
    return None


@functools.lru_cache(maxsize=8)
def _cached_label_map(path: str, mtime_ns: int, size: int) -> dict[str, int]:
    return read_label_map(path)


def _label_map(path: Path) -> dict[str, int]:
    st = path.stat() if path.is_file() else None
    if st is None:
        return read_label_map(path)  # raises the DataError for a missing tsv
    return _cached_label_map(str(path), st.st_mtime_ns, st.st_size)
