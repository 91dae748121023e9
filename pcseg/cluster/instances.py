"""Per-point predictions (semantic probabilities + embeddings and/or offsets) -> InstanceSet.

Bottom-up instance segmentation: points are split by their predicted class (argmax), and each
class's points are clustered in feature space (mean-shift, HDBSCAN or DBSCAN); every cluster of
at least ``min_size`` points becomes one instance of that class.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

from ..labels import semantic20_to_nyu40
from ..structures import InstanceSet, MemberInstances
from .meanshift import mean_shift_modes, nearest

METHODS = ("meanshift", "hdbscan", "hdbscan-package", "dbscan")


def _tensor(name: str, value, rows: int | None, cols: int | None, device=None) -> torch.Tensor:
    """numpy or torch -> float32 tensor (N, C) on ``device``; ValueError naming the argument."""
    t = torch.as_tensor(value)
    if t.ndim != 2 or (cols is not None and t.shape[1] != cols) or (rows is not None and t.shape[0] != rows):
        want = f"({rows if rows is not None else 'N'}, {cols if cols is not None else 'C'})"
        raise ValueError(f"cluster_instances: {name} must have shape {want}, got {tuple(t.shape)}")
    t = t.to(device=device if device is not None else t.device, dtype=torch.float32)
    # one sum is finite unless some entry is NaN/inf (or the sum overflows: then look closer)
    if not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        raise ValueError(f"cluster_instances: {name} holds NaN or infinite values")
    return t


def _nyu40_of(classes: Sequence[int], class_to_nyu40) -> np.ndarray:
    classes = np.asarray(classes, np.int64)
    if callable(class_to_nyu40):
        nyu = np.asarray(class_to_nyu40(classes), np.int64)
    else:
        table = np.asarray(class_to_nyu40, np.int64)
        if table.ndim != 1 or (classes.size and classes.max() >= table.shape[0]):
            raise ValueError(f"cluster_instances: class_to_nyu40 table of shape {table.shape} does not cover "
                             f"classes {classes.tolist()}")
        nyu = table[classes]
    if nyu.shape != classes.shape:
        raise ValueError(f"cluster_instances: class_to_nyu40 returned shape {nyu.shape} for {classes.shape} classes")
    return nyu


def _fit_and_assign(f: np.ndarray, max_fit_points: int, seed: int, fit: Callable, assign_radius: float | None,
                    rows_per_point: float = 1.0) -> np.ndarray:
    """Cluster f FloatArray[n, D] with ``fit(sample, rate) -> (labels IntArray[m], core BoolArray[m],
    predict)`` on at most max_fit_points random rows; every other row takes ``predict(rows)`` when the
    fit gives one, else the label of its nearest core sample (if within assign_radius, when given), else -1.
    ``rate``: sample rows per point, by which ``fit`` scales its counts (rows stand for
    1 / ``rows_per_point`` points each on average: voxels)."""
    n = f.shape[0]
    if n <= max_fit_points:
        return fit(f, rows_per_point)[0]
    pick = np.sort(np.random.default_rng(seed).choice(n, max_fit_points, replace=False))
    sample_labels, core, predict = fit(f[pick], max_fit_points / n * rows_per_point)
    labels = np.full(n, -1, np.int64)
    labels[pick] = sample_labels
    if not core.any():
        return labels
    rest = np.setdiff1d(np.arange(n), pick, assume_unique=True)
    if predict is not None:
        labels[rest] = predict(f[rest])
        return labels
    dist, idx = nearest(f[rest], f[pick][core])
    got = sample_labels[core][idx]
    if assign_radius is not None:
        got[dist > assign_radius ** 2] = -1
    labels[rest] = got
    return labels


def _hdbscan(f: np.ndarray, min_cluster_size: int, min_samples: int, max_fit_points: int, seed: int,
             rows_per_point: float = 1.0) -> np.ndarray:
    from sklearn.cluster import HDBSCAN

    def fit(sample, rate):
        mcs = max(2, math.ceil(min_cluster_size * rate))
        labels = HDBSCAN(min_cluster_size=mcs, min_samples=max(1, min(min_samples, mcs)),
                         allow_single_cluster=True, copy=True).fit_predict(sample)
        return labels.astype(np.int64), np.ones(sample.shape[0], bool), None

    return _fit_and_assign(f, max_fit_points, seed, fit, None, rows_per_point)


def _hdbscan_package(f: np.ndarray, min_cluster_size: int, min_samples: int, max_fit_points: int,
                     seed: int, rows_per_point: float = 1.0) -> np.ndarray:
    """As ``_hdbscan`` with the ``hdbscan`` package: the points outside the sample by its ``approximate_predict``."""
    try:
        import hdbscan
    except ImportError:
        raise ImportError("cluster_method 'hdbscan-package' needs the hdbscan package: "
                          "pip install 'pcseg[hdbscan]' (or use cluster_method=hdbscan, scikit-learn's)") from None

    def fit(sample, rate):
        mcs = max(2, math.ceil(min_cluster_size * rate))
        model = hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=max(1, min(min_samples, mcs)),
                                allow_single_cluster=True, prediction_data=rate < 1, core_dist_n_jobs=1).fit(sample)
        labels = model.labels_.astype(np.int64)
        return labels, labels >= 0, lambda rows: hdbscan.approximate_predict(model, rows)[0]

    return _fit_and_assign(f, max_fit_points, seed, fit, None, rows_per_point)


def _dbscan(f: np.ndarray, eps: float, min_samples: int, max_fit_points: int, seed: int,
            rows_per_point: float = 1.0) -> np.ndarray:
    from sklearn.cluster import DBSCAN

    def fit(sample, rate):
        model = DBSCAN(eps=eps, min_samples=max(1, round(min_samples * rate))).fit(sample)
        core = np.zeros(sample.shape[0], bool)
        core[model.core_sample_indices_] = True
        return model.labels_.astype(np.int64), core, None

    return _fit_and_assign(f, max_fit_points, seed, fit, eps, rows_per_point)


def fragment_factor(centres: np.ndarray, classes: np.ndarray, sizes: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """FloatArray[K]: each cluster's size over the size of the largest cluster of its class whose mean
    centre lies within ``radius`` [K] of its own (itself included), capped at 1. Joint grouping may
    split an object where its embeddings disagree; the centres say the parts belong together, so the
    smaller part is ranked lower (kept: two objects close together are two clusters too)."""
    near = (classes[:, None] == classes[None, :]) & \
        (np.linalg.norm(centres[:, None] - centres[None, :], axis=2) < radius[:, None])
    largest = np.where(near, sizes[None, :], 0).max(1)
    return np.minimum(1.0, sizes / np.maximum(largest, 1))


# The extra readings find their modes on a smaller sample of each class's rows than the first set
# (every row is still assigned): they rank below it, and on a 240k-point scan this halves their cost.
EXTRA_MAX_POINTS = 1000


def _add_unless_duplicate(members: list, labels: np.ndarray, scores: np.ndarray, new_members: list,
                          new_labels: np.ndarray, new_scores: np.ndarray, weights: np.ndarray, duplicate_iou: float):
    """The hypotheses (each its rows, ascending) with the new ones appended, in order, except each that
    has an IoU >= ``duplicate_iou`` (rows counted by ``weights``) with one of its label already kept."""
    all_members, all_labels = members + new_members, np.concatenate([labels, new_labels])
    size = np.array([weights[r].sum() for r in all_members])
    inside = np.zeros(len(weights), bool)
    kept = list(range(len(members)))
    for k in range(len(members), len(all_members)):
        inside[all_members[k]] = True
        for q in kept:
            # IoU <= the smaller size over the larger: most pairs need no counting
            if all_labels[q] == all_labels[k] and min(size[q], size[k]) >= duplicate_iou * max(size[q], size[k]):
                inter = weights[all_members[q][inside[all_members[q]]]].sum()
                if inter >= duplicate_iou * (size[q] + size[k] - inter):
                    break
        else:
            kept.append(k)
        inside[all_members[k]] = False
    return [all_members[k] for k in kept], all_labels[kept], np.concatenate([scores, new_scores])[kept]


def cluster_instances(embeddings, semantic_probs, points=None, *, method: str = "meanshift",
                      bandwidth: float = 0.6, eps: float | None = None, min_samples: int = 5,
                      min_cluster_size: int | None = None, min_size: int = 50,
                      classes: Sequence[int] = tuple(range(2, 20)),
                      class_to_nyu40: Callable | Sequence[int] | np.ndarray = semantic20_to_nyu40,
                      coord_weight: float = 0.0, embedding_weight: float = 1.0, offsets=None, use_offsets: bool = False,
                      offset_weight: float = 1.0, num_seeds: int = 256, iters: int = 20,
                      kernel: str = "flat", max_points: int = 10000, max_fit_points: int = 2000,
                      seed: int = 0, soft_threshold: float | None = None,
                      class_bandwidth: Sequence[float] | None = None, point_classes=None,
                      fragment_radius: float = 0.0, weights=None, extra_scales: Sequence[float] = (),
                      extra_score: float = 0.5, duplicate_iou: float = 0.9,
                      compact: bool = False) -> InstanceSet | MemberInstances:
    """Group points into instances: per predicted class, cluster that class's point features.

    embeddings:     FloatTensor[N, D] / FloatArray[N, D] per-point embeddings, or None when
                    clustering shifted coordinates only (``use_offsets=True``)
    semantic_probs: FloatTensor[N, C] softmax over the model's classes; a point's class is the argmax
    point_classes:  LongTensor[N] that argmax, when the caller has it already
    points:         FloatTensor[N, 3] coordinates, needed for ``coord_weight > 0`` or ``use_offsets``
    offsets:        FloatTensor[N, 3] predicted point -> object-centre vectors (PointGroup-style)
    weights:        FloatTensor[N] > 0, the number of points each row stands for (rows are voxels, the
                    network's own resolution: ``group_instances``), or None (one each). Mean-shift,
                    ``min_size`` and the scores count a row that many times; HDBSCAN and DBSCAN fit
                    the rows unweighted, their min_cluster_size and min_samples scaled by the class's
                    rows per point.

    The clustered feature of a point is the concatenation of
        embeddings * embedding_weight | points * coord_weight (if coord_weight > 0)
        | (points + offsets) * offset_weight (if use_offsets),
    and ``bandwidth`` (mean-shift radius), ``eps`` (DBSCAN radius, default bandwidth / 2) are
    distances in that space. ``class_bandwidth``: one bandwidth per model class (a column of
    semantic_probs), used instead of ``bandwidth`` for that class (and its default eps): predicted
    centres of a 3 m bed spread wider than those of a chair, while chairs in a row need a tight radius.
    Joining the pull/push embeddings (scaled down by ``embedding_weight``) to the predicted centres
    keeps apart neighbouring objects of one class whose predicted centres run together.

    method:    "meanshift" (``pcseg.cluster.mean_shift``, numpy on the CPU; num_seeds,
               iters, kernel, max_points and seed are passed on), "hdbscan" (sklearn.cluster.HDBSCAN,
               min_cluster_size default min_size, min_samples, allow_single_cluster so that a class
               holding one object yields it), "hdbscan-package" (the same with the optional ``hdbscan``
               package, its ``approximate_predict`` for the points outside the sample: lower AP and
               slower in benchmarks/bench_grouping.py, kept for comparison) or "dbscan"
               (sklearn.cluster.DBSCAN, eps, min_samples).
               HDBSCAN and DBSCAN are fitted on at most ``max_fit_points`` random points of a class
               (they are super-linear: DBSCAN keeps every eps-neighbourhood, which on tight embedding
               clusters is quadratic); min_cluster_size / min_samples are scaled by the sample
               fraction, and every other point takes the cluster of its nearest sampled point
               (DBSCAN: nearest core point within eps, as a DBSCAN border point would).
    min_size:  clusters (and classes) with fewer points are dropped
    soft_threshold: None: a point is clustered with its argmax class only. A float t: also with every
               class whose probability is >= t (SoftGroup's soft grouping), so an object whose points
               the semantic head splits between two classes can still be found whole under either;
               each hypothesis is ranked by its own class's mean probability.
    classes:   model class indices that have instances (default 2..19: ScanNet20 without wall, floor)
    class_to_nyu40: a vectorised callable (IntArray of class indices -> IntArray of NYU40 ids, like
               ``labels.semantic20_to_nyu40``, the default) or a table indexed by class index

    Score of an instance (in (0, 1], for AP ranking) = mean probability of its class over its points
    x compactness, compactness = exp(-mean distance of its features to their mean / bandwidth):
    confident, tight clusters rank first; with ``fragment_radius`` > 0 and both embeddings and
    offsets, also x ``fragment_factor`` (radius: fragment_radius x the class's bandwidth, in the
    centres' units). Returns an InstanceSet over the N points, labels NYU40 ids.

    extra_scales: more hypotheses per class, clustered (and scored) with the class's bandwidth times
               each of these, their scores times ``extra_score`` so that they rank below the first
               set's; one with the label and an IoU >= ``duplicate_iou`` (points counted by
               ``weights``) of a hypothesis already kept is dropped. Two desks side by side whose
               centres one radius joins come out apart at a smaller one (PointGroup's dual-set idea:
               the ranked list keeps both readings, the evaluator's matching picks per object).
    compact:   return the instances as their rows' indices (``MemberInstances``), no K x N masks.
    """
    if method not in METHODS:
        raise ValueError(f"cluster_instances: method must be one of {METHODS}, got {method!r}")
    if not bandwidth > 0:
        raise ValueError(f"cluster_instances: bandwidth must be > 0, got {bandwidth}")
    if not embedding_weight > 0:
        raise ValueError(f"cluster_instances: embedding_weight must be > 0, got {embedding_weight}")
    if not fragment_radius >= 0:
        raise ValueError(f"cluster_instances: fragment_radius must be >= 0, got {fragment_radius}")
    if not all(x > 0 for x in extra_scales) or not 0 < extra_score <= 1 or not 0 < duplicate_iou <= 1:
        raise ValueError("cluster_instances: extra_scales must be > 0, extra_score and duplicate_iou in (0, 1], "
                         f"got {list(extra_scales)}, {extra_score}, {duplicate_iou}")
    if embeddings is None and not use_offsets:
        raise ValueError("cluster_instances: embeddings is None: pass them, or offsets with use_offsets=True")
    min_cluster_size = min_size if min_cluster_size is None else min_cluster_size
    device = embeddings.device if isinstance(embeddings, torch.Tensor) else None
    probs = _tensor("semantic_probs", semantic_probs, None, None, device)
    n, num_classes = probs.shape
    if n and (float(probs.min()) < 0 or float(probs.max()) > 1 + 1e-4):
        raise ValueError("cluster_instances: semantic_probs must be probabilities (softmax), got values "
                         f"in [{float(probs.min()):.3g}, {float(probs.max()):.3g}]")
    classes = [int(c) for c in classes]
    if any(c < 0 or c >= num_classes for c in classes):
        raise ValueError(f"cluster_instances: classes {classes} outside the {num_classes} columns of semantic_probs")
    nyu = _nyu40_of(classes, class_to_nyu40)
    radius = [float(bandwidth)] * num_classes if class_bandwidth is None else [float(b) for b in class_bandwidth]
    if len(radius) != num_classes or not all(b > 0 for b in radius):
        raise ValueError(f"cluster_instances: class_bandwidth needs {num_classes} values > 0 (one per column "
                         f"of semantic_probs), got {class_bandwidth}")

    parts = []
    if embeddings is not None:
        emb = _tensor("embeddings", embeddings, n, None, device)
        parts.append(emb if embedding_weight == 1.0 else emb * embedding_weight)
    if coord_weight > 0 or use_offsets:
        if points is None:
            raise ValueError("cluster_instances: points are needed for coord_weight > 0 or use_offsets")
        xyz = _tensor("points", points, n, 3, device)
        if coord_weight > 0:
            parts.append(xyz * coord_weight)
        if use_offsets:
            if offsets is None:
                raise ValueError("cluster_instances: use_offsets=True but offsets is None")
            parts.append((xyz + _tensor("offsets", offsets, n, 3, device)) * offset_weight)
    feats = parts[0] if len(parts) == 1 else torch.cat(parts, 1)

    if soft_threshold is not None and not 0 < soft_threshold <= 1:
        raise ValueError(f"cluster_instances: soft_threshold must be None or in (0, 1], got {soft_threshold}")
    if weights is not None:
        weights = _tensor("weights", torch.as_tensor(weights).reshape(-1, 1), n, 1, device).reshape(-1)
        if n and not float(weights.min()) > 0:
            raise ValueError(f"cluster_instances: weights must be > 0, got {float(weights.min()):.3g}")
    pred = probs.argmax(1) if point_classes is None else torch.as_tensor(point_classes, device=probs.device)
    if pred.shape != (n,) or (n and (int(pred.min()) < 0 or int(pred.max()) >= num_classes)):
        raise ValueError(f"cluster_instances: point_classes must be {n} class indices in 0..{num_classes - 1}, "
                         f"got shape {tuple(pred.shape)}")
    # Every (class, point) pair in one nonzero() rather than one scan of the scene per class: a point
    # belongs to its argmax class and, with soft grouping, to every class it is likely enough to be.
    member = probs >= soft_threshold if soft_threshold is not None else torch.zeros_like(probs, dtype=torch.bool)
    member[torch.arange(n, device=probs.device), pred] = True
    pairs = torch.nonzero(member.T)  # (class, point), sorted by class, then point
    ends = torch.cumsum(torch.bincount(pairs[:, 0], minlength=num_classes), 0).tolist()
    pairs = pairs[:, 1]

    label_of = dict(zip(classes, nyu.tolist()))

    def hypotheses(scale: float, max_points: int):
        """(members: each cluster's rows, ascending; labels; scores) of every class's clusters at ``scale`` x
        its bandwidth, or None; mean-shift finds modes on at most ``max_points`` rows of a class."""
        cluster_of, point_of = [], []  # per class: the (cluster, point) pairs of its clusters
        cluster_class = []             # per cluster (numbered on across the classes): its class
        for c in classes:
            idx = pairs[(ends[c - 1] if c else 0):ends[c]]
            if idx.numel() < max(min_size, 1):
                continue
            f = feats[idx]
            bw = radius[c] * scale
            eps_c = bw / 2 if eps is None else eps
            if method == "meanshift":
                cid = mean_shift_modes(f, bw, num_seeds, iters, seed, min_size, kernel=kernel, max_points=max_points,
                                       checked=True, weights=None if weights is None else weights[idx])[0]
            else:
                fn = f.cpu().numpy()
                # weighted rows: the counts are scaled to rows (these fits take no weights)
                rate = 1.0 if weights is None else idx.numel() / float(weights[idx].sum())
                if method == "hdbscan":
                    cid = _hdbscan(fn, min_cluster_size, min_samples, max_fit_points, seed, rate)
                elif method == "hdbscan-package":
                    cid = _hdbscan_package(fn, min_cluster_size, min_samples, max_fit_points, seed, rate)
                else:
                    cid = _dbscan(fn, eps_c, min_samples, max_fit_points, seed, rate)
                cid = torch.from_numpy(cid).to(f.device)
            k = int(cid.max()) + 1 if cid.numel() else 0
            if k == 0:
                continue
            valid = cid >= 0
            cluster_of.append(cid[valid] + len(cluster_class))
            point_of.append(idx[valid])
            cluster_class += [c] * k
        if not cluster_class:
            return None
        # every class's clusters scored at once: a handful of calls per scene, not per class
        count = len(cluster_class)
        cid, point = torch.cat(cluster_of), torch.cat(point_of)
        f = feats[point]
        klass = torch.tensor(cluster_class, device=f.device)
        w = None if weights is None else weights[point].to(f.dtype)
        points_in = torch.bincount(cid, w, minlength=count)
        size = points_in.to(f.dtype).clamp_min(1)

        def mean_of(values):  # per cluster, over its points
            total = torch.zeros((count, *values.shape[1:]), dtype=f.dtype, device=f.device)
            return total.index_add_(0, cid, values if w is None else values * w.reshape(-1, *[1] * (values.ndim - 1)))

        mean = mean_of(f) / size[:, None]
        spread = mean_of((f - mean[cid]).norm(dim=1)) / size
        conf = mean_of(probs[point, klass[cid]]) / size
        bandwidths = torch.tensor(radius, dtype=f.dtype, device=f.device)[klass] * scale
        score = (conf * torch.exp(-spread / bandwidths)).double().cpu().numpy()
        if fragment_radius > 0 and embeddings is not None and use_offsets:
            centre = mean[:, -3:]  # the clusters' mean predicted centre (the last part of the features)
            score *= fragment_factor(centre.double().cpu().numpy(), klass.cpu().numpy(), points_in.cpu().numpy(),
                                     fragment_radius * bandwidths.double().cpu().numpy())
        keep = (points_in >= max(min_size, 1)).cpu().numpy()
        if not keep.any():
            return None
        new_id = np.cumsum(keep) - 1
        cid, point = cid.cpu().numpy(), point.cpu().numpy()
        kept = keep[cid]
        owner, point = new_id[cid[kept]], point[kept]
        order = np.argsort(owner, kind="stable")  # each cluster's rows stay ascending
        members = np.split(point[order], np.cumsum(np.bincount(owner, minlength=int(keep.sum())))[:-1])
        # clamp: a far-spread cluster's exp() may underflow float32, yet every score must stay > 0
        score = np.clip(score[keep], np.finfo(np.float32).tiny, 1.0)
        labels = np.array([label_of[c] for c in cluster_class], np.int64)[keep]
        return members, labels, score.astype(np.float32)

    first = hypotheses(1.0, max_points)
    members, labels, scores = first if first is not None else ([], np.zeros(0, np.int64), np.zeros(0, np.float32))
    if extra_scales:
        row_weights = np.ones(n) if weights is None else weights.double().cpu().numpy()
    for scale in extra_scales:
        extra = hypotheses(float(scale), min(max_points, EXTRA_MAX_POINTS))
        if extra is not None:
            members, labels, scores = _add_unless_duplicate(members, labels, scores, extra[0], extra[1],
                                                            extra[2] * np.float32(extra_score), row_weights,
                                                            duplicate_iou)
    found = MemberInstances(members, labels, scores, n)
    return found if compact else InstanceSet(found.masks, labels, scores)
