"""Seeded, batched mean-shift, and the chunked distance helpers it uses.

sklearn's MeanShift shifts one seed at a time with a ball tree and is far too slow on 10^5 points;
here all seeds move together as one (seeds x points) kernel matrix product per iteration, computed
in row chunks so that no distance matrix exceeds ``chunk_size`` entries.

It runs in numpy on the CPU whatever device the input is on: a class's points are a few thousand and
its seeds a few dozen, so the count of array calls, not arithmetic, sets the time, and a numpy call
costs a fraction of a torch one (1.4x faster end to end than the same algorithm in torch, measured on
the shipped model's outputs; numpy's BLAS also runs these skinny products faster than torch's).
"""
from __future__ import annotations

import functools

import numpy as np
import torch

KERNELS = ("flat", "gaussian")


def _row_chunks(rows: int, cols: int, chunk_size: int):
    step = max(1, chunk_size // max(cols, 1))
    for start in range(0, rows, step):
        yield slice(start, min(start + step, rows))


def nearest(x: np.ndarray, ref: np.ndarray, chunk_size: int = 1 << 22) -> tuple[np.ndarray, np.ndarray]:
    """For each row of x FloatArray[N, D] its nearest row of ref FloatArray[M, D] (M >= 1):
    (squared distance FloatArray[N], index IntArray[N]), chunked over the rows of x."""
    dist = np.empty(x.shape[0], x.dtype)
    index = np.empty(x.shape[0], np.int64)
    ref_t, ref_sq = (ref * -2.0).T.astype(x.dtype), (ref * ref).sum(1)[None].astype(x.dtype)
    for rows in _row_chunks(x.shape[0], ref.shape[0], chunk_size):
        part = x[rows] @ ref_t
        part += ref_sq
        # |x|^2 is constant along a row: add it after the min, not to every entry
        index[rows] = part.argmin(1)
        dist[rows] = np.take_along_axis(part, index[rows, None], 1)[:, 0] + (x[rows] * x[rows]).sum(1)
    return np.maximum(dist, 0.0, out=dist), index


def _sq_dist(a: np.ndarray) -> np.ndarray:
    """FloatArray[A, D] -> FloatArray[A, A] squared Euclidean distances between its rows."""
    sq = (a * a).sum(1)
    d = a @ (a.T * -2.0)
    d += sq[None]
    d += sq[:, None]
    return np.maximum(d, 0.0, out=d)


def _farthest_points(cand: np.ndarray, k: int, stop_sq: float) -> list[int]:
    """Greedy farthest-point picks among cand FloatArray[M, D] until k are chosen or every candidate
    lies within sqrt(stop_sq) of a pick. Ties go to the lowest index: the first pick is cand[0]."""
    picks: list[int] = []
    dist = _sq_dist(cand) if cand.shape[0] <= 4096 else None  # else one row at a time
    min_sq = np.full(cand.shape[0], np.inf, cand.dtype)
    while len(picks) < k:
        i = int(np.argmax(min_sq))
        if min_sq[i] <= stop_sq:
            break
        picks.append(i)
        row = dist[i] if dist is not None else np.maximum(((cand - cand[i]) ** 2).sum(1), 0.0)
        np.minimum(min_sq, row, out=min_sq)
    return picks


@functools.lru_cache(maxsize=None)
def _bin_multipliers(dim: int) -> np.ndarray:
    """Odd random int64 factors of the bins' hash, the same in every call."""
    return (torch.randint(1 << 40, 1 << 62, (dim,), generator=torch.Generator().manual_seed(1)) | 1).numpy()


def _seeds(xs: np.ndarray, bandwidth: float, num_seeds: int, seeding: str, min_bin_freq: int,
           gen: torch.Generator, ws: np.ndarray | None = None) -> np.ndarray:
    """Starting points FloatArray[S, D] (S <= num_seeds) for the points xs FloatArray[M, D], each
    standing for ws FloatArray[M] points (None: one each).

    "fps": xs is binned on a grid of cell side ``bandwidth`` and farthest-point sampling runs over
    the centres (means) of the bins holding >= min_bin_freq points, densest first. Skipping sparse
    bins keeps isolated noise points from using up the seed budget; FPS gives every separated
    cluster a seed before any cluster gets a second; it stops once every centre lies within one
    bandwidth of a seed (a further seed that close would start inside that seed's window and, on
    blobs wider than a grid cell, only multiply the seeds that converge to the same mode).
    "random": num_seeds distinct points of xs drawn with ``gen``.
    """
    if seeding == "random":
        return xs[torch.randperm(xs.shape[0], generator=gen)[:num_seeds].numpy()]
    cells = np.floor(xs / bandwidth).astype(np.int64)
    # one int64 key per cell (polynomial hash, wrapping): a rare collision only yields a poorer
    # starting point, which mean-shift then moves to a mode anyway
    key = (cells * _bin_multipliers(xs.shape[1])).sum(1)
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    if ws is not None:
        counts = np.bincount(inverse, ws, counts.shape[0])
    # bin means, one weighted bincount per dimension (np.add.at is several times slower)
    wx = xs if ws is None else xs * ws[:, None]
    centres = np.stack([np.bincount(inverse, wx[:, d], counts.shape[0]) for d in range(xs.shape[1])], 1)
    centres = (centres / counts[:, None]).astype(xs.dtype)
    order = np.argsort(-counts, kind="stable")  # densest first; unique's sort order breaks ties
    centres, counts = centres[order], counts[order]
    # Sparse bins are used only when no bin is dense: a cluster whose points all sit in bins of
    # their own is wider than the bandwidth and mean-shift would shatter it anyway.
    dense = counts >= min_bin_freq
    cand = centres[dense] if dense.any() else centres
    return cand[_farthest_points(cand, num_seeds, bandwidth ** 2)]


def _shift(modes: np.ndarray, xs_t: np.ndarray, xs_sq: np.ndarray, xs_one: np.ndarray, bandwidth: float,
           kernel: str, chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """One mean-shift step for every mode: (weighted mean of the points FloatArray[S, D], kernel mass [S]).
    xs_t = -2 xs^T [D, M], xs_sq = |xs|^2 [1, M] and xs_one = [xs w | w] [M, D + 1] (w: the points'
    weights) are the caller's, computed once per call of ``mean_shift_modes``."""
    new = np.empty_like(modes)
    mass = np.empty(modes.shape[0], modes.dtype)
    h2 = bandwidth * bandwidth
    for rows in _row_chunks(modes.shape[0], xs_t.shape[1], chunk_size):
        m = modes[rows]
        m_sq = (m * m).sum(1, keepdims=True)
        part = m @ xs_t
        part += xs_sq  # d^2 - |m|^2
        if kernel == "flat":  # d^2 <= h^2  <=>  d^2 - |m|^2 <= h^2 - |m|^2: no clamp
            w = (part <= h2 - m_sq).astype(m.dtype)
        else:
            part += m_sq
            w = np.exp(np.maximum(part, 0.0, out=part) * (-0.5 / h2))
        total = w @ xs_one  # weighted sums and, in the last column, the mass: one product
        mass[rows] = total[:, -1]
        # a window that lost every point (possible only with the flat kernel) stays where it is
        new[rows] = np.where(total[:, -1:] > 0, total[:, :-1] / np.maximum(total[:, -1:], 1e-12), m)
    return new, mass


def _merge(modes: np.ndarray, density: np.ndarray, bandwidth: float) -> np.ndarray:
    """Indices of the modes kept after greedy merging, densest first: a mode closer than
    bandwidth/2 to an already kept (denser) mode is dropped."""
    order = np.argsort(-density, kind="stable")
    close = _sq_dist(modes.astype(np.float64)) < (bandwidth / 2) ** 2
    kept: list[int] = []
    for i in order.tolist():
        if not kept or not close[i, kept].any():
            kept.append(i)
    return np.asarray(kept, np.int64)


def mean_shift_modes(x, bandwidth: float, num_seeds: int = 256, iters: int = 20, seed: int = 0,
                     min_size: int = 1, *, kernel: str = "flat", seeding: str = "fps",
                     max_points: int = 20000, min_bin_freq: int = 2, tol: float = 1e-3,
                     chunk_size: int = 1 << 22, checked: bool = False,
                     weights=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean_shift`` that also returns the modes: (labels LongTensor[N], modes FloatTensor[K, D]),
    on x's device; modes[k] is the mode of cluster k. See ``mean_shift`` for the arguments;
    ``checked``: the caller has already checked that x is finite (``cluster_instances`` checks the
    whole scene once). ``weights``: FloatArray[N] > 0, the number of points each row of x stands for
    (a voxel's points): every density, mean, bin count and ``min_size`` counts a row that many times,
    as if its points were all there; None: one each."""
    device = x.device if isinstance(x, torch.Tensor) else torch.device("cpu")
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"mean_shift: x must be (N, D), got shape {tuple(x.shape)}")
    if not bandwidth > 0:
        raise ValueError(f"mean_shift: bandwidth must be > 0, got {bandwidth}")
    if kernel not in KERNELS or seeding not in ("fps", "random"):
        raise ValueError(f"mean_shift: kernel must be one of {KERNELS} and seeding 'fps' or 'random', "
                         f"got {kernel!r}, {seeding!r}")
    if num_seeds < 1 or iters < 0 or max_points < 1 or chunk_size < 1:
        raise ValueError("mean_shift: num_seeds, max_points and chunk_size must be >= 1, iters >= 0")
    x = x if x.dtype in (np.float32, np.float64) else x.astype(np.float32)
    n = x.shape[0]
    if n == 0:
        return (torch.empty(0, dtype=torch.long, device=device),
                torch.empty(0, x.shape[1], dtype=torch.from_numpy(x).dtype, device=device))
    if not checked and not np.isfinite(x).all():
        raise ValueError("mean_shift: x holds NaN or infinite values")
    if weights is not None:
        weights = weights.detach().cpu().numpy() if isinstance(weights, torch.Tensor) else np.asarray(weights)
        weights = weights.astype(x.dtype, copy=False)
        if weights.shape != (n,) or (not checked and not (weights > 0).all()):
            raise ValueError(f"mean_shift: weights must be {n} values > 0, got shape {weights.shape}")
    gen = torch.Generator().manual_seed(seed)
    # Modes are found on a uniform subsample: its kernel density estimate has the same modes (up to
    # sampling noise) at a fraction of the cost; every point is still assigned below.
    pick = None if n <= max_points else torch.randperm(n, generator=gen)[:max_points].sort().values.numpy()
    xs = x if pick is None else x[pick]
    ws = None if weights is None else weights if pick is None else weights[pick]
    modes = _seeds(xs, bandwidth, num_seeds, seeding, min_bin_freq, gen, ws)
    xs_t, xs_sq = (xs * -2.0).T.copy(), (xs * xs).sum(1)[None]
    xs_one = (np.concatenate([xs, np.ones((xs.shape[0], 1), xs.dtype)], 1) if ws is None
              else np.concatenate([xs * ws[:, None], ws[:, None]], 1))
    active = np.arange(modes.shape[0])
    mass = None  # flat kernel: points within the bandwidth of each mode where it stopped
    for _ in range(iters):
        current = modes[active]
        new, window = _shift(current, xs_t, xs_sq, xs_one, bandwidth, kernel, chunk_size)
        if kernel == "flat":  # a mode that stopped keeps the window it had: its mass is that of its last step
            if mass is None:
                mass = window
            else:
                mass[active] = window
        moved = ((new - current) ** 2).sum(1) > (tol * bandwidth) ** 2
        modes[active] = new
        active = active[moved]
        if active.size == 0:
            break
    if mass is None or active.size:  # gaussian kernel, no step, or steps left unfinished: count afresh
        mass = _shift(modes, xs_t, xs_sq, xs_one, bandwidth, "flat", chunk_size)[1]
    modes = modes[_merge(modes, mass, bandwidth)]
    dist, labels = nearest(x, modes, chunk_size)
    labels[dist > bandwidth * bandwidth] = -1
    # drop clusters below min_size and renumber the rest 0..K-1 in mode order (densest first)
    member = labels >= 0
    sizes = np.bincount(labels[member], None if weights is None else weights[member], modes.shape[0])
    keep = sizes >= max(min_size, 1)
    new_id = np.cumsum(keep) - 1
    new_id[~keep] = -1
    labels = np.where(labels >= 0, new_id[np.maximum(labels, 0)], labels)
    return torch.from_numpy(labels).to(device), torch.from_numpy(np.ascontiguousarray(modes[keep])).to(device)


def mean_shift(x, bandwidth: float, num_seeds: int = 256, iters: int = 20, seed: int = 0,
               min_size: int = 1, **options) -> torch.Tensor:
    """Cluster x FloatTensor[N, D] (numpy accepted) by seeded, batched mean-shift.

    bandwidth: kernel radius (flat kernel: the ball; gaussian: the standard deviation)
    num_seeds: at most this many starting points (see ``_seeds``: farthest-point over grid bins by
               default, ``seeding="random"`` for random points drawn with ``seed``)
    iters:     at most this many shifts; a seed stops once it moves less than tol * bandwidth
    min_size:  clusters with fewer points become -1
    options:   kernel="flat"|"gaussian", seeding="fps"|"random", max_points=20000 (modes are
               sought on a random subsample of this size), min_bin_freq=2, tol=1e-3,
               chunk_size=2**22 (most entries of any seeds x points matrix), weights=None (the
               number of points each row stands for: ``mean_shift_modes``)

    Converged modes closer than bandwidth/2 merge (the denser survives); every point joins its
    nearest mode if within the bandwidth, else -1. Computed on the CPU (numpy), returned on x's device;
    the same seed gives the same result. Returns LongTensor[N] cluster ids 0..K-1 (0 = the densest
    mode), -1 for noise.
    """
    return mean_shift_modes(x, bandwidth, num_seeds, iters, seed, min_size, **options)[0]
