"""Fusing per-frame vertex masks across views into 3D instances.

Greedy, in decreasing score order (ties: larger masks first), class by class: a lifted mask joins
the existing instance of its class that it overlaps best, if the overlap is high enough, else it
starts a new instance. Overlap is measured **where both views can see**, so two views of one
object that see different sides still merge while two touching objects stay apart:

    r1 = |mask ∩ inst| / |mask ∩ seen(inst)|     seen(inst): vertices visible in any of inst's frames
    r2 = |mask ∩ inst| / |inst ∩ visible(frame)| visible(frame): vertices the mask's frame sees
    merge when min(r1, r2) >= overlap

An instance takes at most one mask per frame (two masks of one class in one frame are two objects).
Views that share no visible vertex cannot be matched that way (a table top seen from one side and
its other end from another): instances of one class that lie within ``adjacency`` of each other and
were never detected in a common frame are joined afterwards; two touching objects of one class are
nearly always detected side by side in some frame, which keeps them apart.
Each instance's vertices are then voted: a vertex stays when the instance's masks cover it in at
least ``vote`` of the instance's frames that see it, which removes mask bleeding at object borders.
With the scene's over-segmentation, an instance then becomes the segments it mostly holds (see
``FusionConfig.segment_vote``). Score = mean mask score x support, support = frames that detected
the instance / frames that see at least half of it (capped at 1): an object missed in most views
that saw it scores low.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..structures import InstanceSet


@dataclass
class FusionConfig:
    """Lifting and fusion settings.

    tolerance, relative: depth consistency |z - depth| <= max(tolerance m, relative * depth)
    min_lifted:   lifted masks on fewer vertices are dropped before fusion (slivers, far objects)
    overlap:      visibility-aware overlap needed to merge a mask into an instance (see module doc)
    vote:         fraction of an instance's frames that see a vertex and must cover it
    min_vertices: fused instances with fewer vertices are dropped (100 = the evaluator's minimum region size)
    min_frames:   fused instances detected in fewer frames are dropped
    exclusive:    every vertex in at most one instance: the one with the highest score x vote
                  fraction (off by default: the ScanNet submission format allows overlaps, and an
                  alternative class for an ambiguous object can only add AP)
    see_fraction: a frame "sees" an instance when it sees at least this fraction of its vertices
    adjacency:    metres; same-class instances closer than this with no common frame are joined (0: off)
    segment_vote: with the scene's over-segmentation (ScanNet's segs.json, of which annotated objects
                  are unions), an instance becomes the union of the segments where it holds at least
                  this fraction of the segment's seen vertices: it claims their vertices no frame
                  saw (the frames see less than the scan) and sheds its minority segments (mask
                  bleeding onto a neighbour); 0 turns it off
    """

    tolerance: float = 0.05
    relative: float = 0.01
    min_lifted: int = 10
    overlap: float = 0.5
    vote: float = 0.5
    min_vertices: int = 100
    min_frames: int = 1
    exclusive: bool = False
    see_fraction: float = 0.5
    adjacency: float = 0.05
    segment_vote: float = 0.5

    def __post_init__(self) -> None:
        for name in ("tolerance", "relative", "adjacency"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"FusionConfig.{name}: must be >= 0, got {getattr(self, name)!r}")
        for name in ("overlap", "vote", "see_fraction"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"FusionConfig.{name}: must lie in (0, 1], got {getattr(self, name)!r}")
        if not 0 <= self.segment_vote <= 1:
            raise ValueError(f"FusionConfig.segment_vote: must lie in [0, 1], got {self.segment_vote!r}")
        for name in ("min_lifted", "min_vertices", "min_frames"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"FusionConfig.{name}: must be an integer >= 1, got {v!r}")


@dataclass
class LiftedMask:
    """One 2D mask lifted onto the scene: vertices IntArray[m], NYU40 label, score, frame position."""

    vertices: np.ndarray
    label: int
    score: float
    frame: int


class _Instance:
    """An instance being fused: its masks, the union of their vertices and what its frames see."""

    def __init__(self, mask: LiftedMask, visible: np.ndarray):
        self.masks = [mask]
        self.frames = {mask.frame}
        self.union = np.zeros(visible.shape[0], bool)
        self.union[mask.vertices] = True
        self.seen = visible.copy()

    def add(self, mask: LiftedMask, visible: np.ndarray) -> None:
        self.masks.append(mask)
        self.frames.add(mask.frame)
        self.union[mask.vertices] = True
        self.seen |= visible

    def absorb(self, other: "_Instance") -> None:
        self.masks += other.masks
        self.frames |= other.frames
        self.union |= other.union
        self.seen |= other.seen


def _join_adjacent(insts: list[_Instance], points: np.ndarray, radius: float) -> list[_Instance]:
    """Join instances (of one class) closer than ``radius`` that share no frame, largest first."""
    from scipy.spatial import cKDTree

    insts = sorted(insts, key=lambda x: -np.count_nonzero(x.union))
    pts = [points[x.union] for x in insts]
    lo = [p.min(0) - radius for p in pts]
    hi = [p.max(0) + radius for p in pts]
    trees: dict[int, cKDTree] = {}
    alive = [True] * len(insts)
    for a in range(len(insts)):
        if not alive[a]:
            continue
        for b in range(a + 1, len(insts)):
            if (not alive[b] or insts[a].frames & insts[b].frames
                    or np.any(lo[b] > hi[a]) or np.any(hi[b] < lo[a])):
                continue
            if a not in trees:
                trees[a] = cKDTree(pts[a])
            dist, _ = trees[a].query(pts[b], distance_upper_bound=radius)
            if np.isfinite(dist).any():
                insts[a].absorb(insts[b])
                alive[b] = False
                pts[a] = points[insts[a].union]
                lo[a], hi[a] = np.minimum(lo[a], lo[b]), np.maximum(hi[a], hi[b])
                trees.pop(a, None)
    return [x for x, keep in zip(insts, alive) if keep]


def _overlap(inst: _Instance, mask: LiftedMask, visible: np.ndarray) -> float:
    inter = np.count_nonzero(inst.union[mask.vertices])
    if inter == 0:
        return 0.0
    r1 = inter / np.count_nonzero(inst.seen[mask.vertices])
    r2 = inter / np.count_nonzero(inst.union & visible)
    return min(r1, r2)


def fuse(masks: list[LiftedMask], visible: np.ndarray, config: FusionConfig | None = None,
         segments: np.ndarray | None = None, points: np.ndarray | None = None) -> InstanceSet:
    """Fuse lifted masks into an InstanceSet over the scene's N vertices.

    masks:    the lifted masks of every frame (``frame`` = row of ``visible``)
    visible:  BoolArray[F, N] vertices each frame sees (``Projection.vertex``)
    segments: IntArray[N] over-segment id per vertex (``Scene.segments``), or None
    points:   FloatArray[N, 3] the vertices, for joining adjacent instances (skipped when None)
    """
    cfg = config or FusionConfig()
    visible = np.asarray(visible, bool)
    n = visible.shape[1]
    snap = None
    if segments is not None and cfg.segment_vote > 0:
        segments = np.asarray(segments)
        if segments.shape != (n,):
            raise ValueError(f"fuse: segments of shape {segments.shape} for {n} vertices")
        seg_of = np.unique(segments, return_inverse=True)[1].reshape(-1)
        seen_per_seg = np.bincount(seg_of[visible.any(0)], minlength=seg_of.max() + 1)
        snap = (seg_of, seen_per_seg)
    masks = [m for m in masks if len(m.vertices) >= cfg.min_lifted]
    order = sorted(range(len(masks)), key=lambda i: (-masks[i].score, -len(masks[i].vertices), i))
    by_label: dict[int, list[_Instance]] = {}
    for i in order:
        m = masks[i]
        vis = visible[m.frame]
        best, best_r = None, cfg.overlap
        for inst in by_label.setdefault(int(m.label), []):
            if m.frame in inst.frames:
                continue
            r = _overlap(inst, m, vis)
            if r >= best_r:
                best, best_r = inst, r
        if best is None:
            by_label[int(m.label)].append(_Instance(m, vis))
        else:
            best.add(m, vis)
    if points is not None and cfg.adjacency > 0:
        by_label = {label: _join_adjacent(insts, points, cfg.adjacency) for label, insts in by_label.items()}

    out_idx, out_frac, labels, scores = [], [], [], []
    for label, insts in by_label.items():
        for inst in insts:
            if len(inst.frames) < cfg.min_frames:
                continue
            idx = np.flatnonzero(inst.union)
            hits = np.bincount(np.concatenate([m.vertices for m in inst.masks]), minlength=n)[idx]
            seen = visible[sorted(inst.frames)][:, idx].sum(0)
            frac = hits / np.maximum(seen, 1)
            keep = frac >= cfg.vote
            idx, frac = idx[keep], frac[keep]
            if snap is not None:
                idx, frac = _snap(idx, frac, *snap, cfg.segment_vote)
            if len(idx) < cfg.min_vertices:
                continue
            seeing = np.count_nonzero(visible[:, idx].sum(1) >= cfg.see_fraction * len(idx))
            support = min(1.0, len(inst.frames) / max(seeing, 1))
            out_idx.append(idx)
            out_frac.append(frac)
            labels.append(label)
            scores.append(float(np.mean([m.score for m in inst.masks])) * support)
    if cfg.exclusive and out_idx:
        out_idx, keep = _exclusive(out_idx, out_frac, np.asarray(scores), n, cfg.min_vertices)
        labels, scores = [labels[k] for k in keep], [scores[k] for k in keep]
    result = np.zeros((len(out_idx), n), bool)
    for k, idx in enumerate(out_idx):
        result[k, idx] = True
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    return InstanceSet(result[order], np.asarray(labels, np.int64)[order], np.asarray(scores, np.float32)[order])


def _snap(idx: np.ndarray, frac: np.ndarray, seg_of: np.ndarray, seen_per_seg: np.ndarray,
          threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Replace an instance's vertices by the segments where it holds at least ``threshold`` of the
    seen vertices (unchanged when there is none). Claimed vertices that no mask covered get vote
    fraction ``threshold`` (for exclusive assignment)."""
    held = np.bincount(seg_of[idx], minlength=seen_per_seg.shape[0])
    take = held >= threshold * np.maximum(seen_per_seg, 1)
    take &= held > 0
    new = np.flatnonzero(take[seg_of])
    if new.shape[0] == 0:  # a minority of every segment it touches: segments cannot judge it
        return idx, frac
    new_frac = np.full(new.shape[0], threshold, np.float64)
    pos = np.searchsorted(new, idx)
    inside = (pos < new.shape[0]) & (new[np.minimum(pos, new.shape[0] - 1)] == idx)
    new_frac[pos[inside]] = frac[inside]
    return new, new_frac


def _exclusive(idx: list[np.ndarray], frac: list[np.ndarray], scores: np.ndarray, n: int,
               min_vertices: int) -> tuple[list[np.ndarray], list[int]]:
    """Give each vertex to the instance with the highest score x vote fraction; drop instances
    left with fewer than ``min_vertices``. Returns the new index arrays and the kept positions."""
    owner = np.concatenate([np.full(len(v), k) for k, v in enumerate(idx)])
    vert = np.concatenate(idx)
    weight = np.concatenate([f * scores[k] for k, f in enumerate(frac)])
    order = np.lexsort((-weight, vert))  # by vertex, best weight first
    first = np.r_[True, vert[order][1:] != vert[order][:-1]]
    win_vert, win_owner = vert[order[first]], owner[order[first]]  # sorted by vertex
    new, kept = [], []
    for k in range(len(idx)):
        v = win_vert[win_owner == k]
        if len(v) >= min_vertices:
            new.append(v)
            kept.append(k)
    return new, kept
