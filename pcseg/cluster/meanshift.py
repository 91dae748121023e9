"""Seeded, batched mean-shift in torch (CPU or CUDA), and the chunked distance helpers it uses.

sklearn's MeanShift shifts one seed at a time with a ball tree and is far too slow on 10^5 points;
here all seeds move together as one (seeds x points) kernel matrix product per iteration, computed
in row chunks so that no distance matrix exceeds ``chunk_size`` entries.
"""
from __future__ import annotations

import numpy as np
import torch

KERNELS = ("flat", "gaussian")


def sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """FloatTensor[A, D], FloatTensor[B, D] -> FloatTensor[A, B] squared Euclidean distances."""
    return torch.addmm(b.pow(2).sum(1)[None], a, b.T, alpha=-2.0).add_(a.pow(2).sum(1, keepdim=True)).clamp_min_(0.0)


def _row_chunks(rows: int, cols: int, chunk_size: int):
    step = max(1, chunk_size // max(cols, 1))
    for start in range(0, rows, step):
        yield slice(start, min(start + step, rows))


def nearest(x: torch.Tensor, ref: torch.Tensor, chunk_size: int = 1 << 22) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of x FloatTensor[N, D] its nearest row of ref FloatTensor[M, D] (M >= 1):
    (squared distance FloatTensor[N], index LongTensor[N]), chunked over the rows of x."""
    dist = x.new_empty(x.shape[0])
    index = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    ref_sq = ref.pow(2).sum(1)[None]
    for rows in _row_chunks(x.shape[0], ref.shape[0], chunk_size):
        # |x|^2 is constant along a row: add it after the min, not to every entry
        d, index[rows] = torch.addmm(ref_sq, x[rows], ref.T, alpha=-2.0).min(1)
        dist[rows] = d.add_(x[rows].pow(2).sum(1)).clamp_min_(0.0)
    return dist, index


def _farthest_points(cand: torch.Tensor, k: int, stop_sq: float) -> list[int]:
    """Greedy farthest-point picks among cand FloatTensor[M, D] until k are chosen or every candidate
    lies within sqrt(stop_sq) of a pick. Ties go to the lowest index: the first pick is cand[0]."""
    picks: list[int] = []
    if cand.shape[0] <= 4096:  # the usual case: one distance matrix, then numpy's cheap per-pick calls
        dist = sq_dist(cand, cand).cpu().numpy()
        min_sq = np.full(cand.shape[0], np.inf, dist.dtype)
        while len(picks) < k:
            i = int(np.argmax(min_sq))
            if min_sq[i] <= stop_sq:
                break
            picks.append(i)
            np.minimum(min_sq, dist[i], out=min_sq)
        return picks
    min_sq = torch.full((cand.shape[0],), float("inf"), dtype=cand.dtype, device=cand.device)
    while len(picks) < k and min_sq.numel():
        i = int(torch.argmax(min_sq))
        if float(min_sq[i]) <= stop_sq:
            break
        picks.append(i)
        min_sq = torch.minimum(min_sq, sq_dist(cand[i:i + 1], cand)[0])
    return picks


def _seeds(xs: torch.Tensor, bandwidth: float, num_seeds: int, seeding: str, min_bin_freq: int,
           gen: torch.Generator) -> torch.Tensor:
    """Starting points FloatTensor[S, D] (S <= num_seeds) for the points xs FloatTensor[M, D].

    "fps": xs is binned on a grid of cell side ``bandwidth`` and farthest-point sampling runs over
    the centres (means) of the bins holding >= min_bin_freq points, densest first. Skipping sparse
    bins keeps isolated noise points from using up the seed budget; FPS gives every separated
    cluster a seed before any cluster gets a second; it stops once every centre lies within one
    bandwidth of a seed (a further seed that close would start inside that seed's window and, on
    blobs wider than a grid cell, only multiply the seeds that converge to the same mode).
    "random": num_seeds distinct points of xs drawn with ``gen``.
    """
    if seeding == "random":
        pick = torch.randperm(xs.shape[0], generator=gen)[:num_seeds].to(xs.device)
        return xs[pick]
    cells = torch.floor(xs / bandwidth).long()
    # one int64 key per cell (polynomial hash, wrapping): a rare collision only yields a poorer
    # starting point, which mean-shift then moves to a mode anyway
    mult = torch.randint(1 << 40, 1 << 62, (xs.shape[1],), generator=torch.Generator().manual_seed(1)) | 1
    key = (cells * mult.to(xs.device)).sum(1)
    _, inverse, counts = torch.unique(key, return_inverse=True, return_counts=True)
    centres = torch.zeros(counts.shape[0], xs.shape[1], dtype=xs.dtype, device=xs.device)
    centres.index_add_(0, inverse, xs).div_(counts[:, None].to(xs.dtype))
    order = torch.argsort(-counts, stable=True)  # densest first; unique's sort order breaks ties
    centres, counts = centres[order], counts[order]
    # Sparse bins are used only when no bin is dense: a cluster whose points all sit in bins of
    # their own is wider than the bandwidth and mean-shift would shatter it anyway.
    dense = counts >= min_bin_freq
    cand = centres[dense] if bool(dense.any()) else centres
    return cand[_farthest_points(cand, num_seeds, bandwidth ** 2)]


def _shift(modes: torch.Tensor, xs: torch.Tensor, xs_sq: torch.Tensor, xs_one: torch.Tensor, bandwidth: float,
           kernel: str, chunk_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One mean-shift step for every mode: (weighted mean of xs FloatTensor[S, D], kernel mass [S]).
    xs_sq = |xs|^2 [1, M] and xs_one = [xs | 1] [M, D + 1] are the caller's, computed once: a class's
    points are a few thousand, so the count of torch calls, not arithmetic, sets the time."""
    new = torch.empty_like(modes)
    mass = modes.new_empty(modes.shape[0])
    h2 = bandwidth * bandwidth
    for rows in _row_chunks(modes.shape[0], xs.shape[0], chunk_size):
        m = modes[rows]
        m_sq = m.pow(2).sum(1, keepdim=True)
        part = torch.addmm(xs_sq, m, xs.T, alpha=-2.0)  # d^2 - |m|^2
        if kernel == "flat":  # d^2 <= h^2  <=>  d^2 - |m|^2 <= h^2 - |m|^2: one pass, no clamp
            w = part.le_(h2 - m_sq)  # in place: 1.0 / 0.0 in part's own memory, no bool copy
        else:
            w = torch.exp(part.add_(m_sq).clamp_min_(0.0).mul_(-0.5 / h2))
        total = w @ xs_one  # weighted sums and, in the last column, the mass: one product
        mass[rows] = total[:, -1]
        # a window that lost every point (possible only with the flat kernel) stays where it is
        new[rows] = torch.where(total[:, -1:] > 0, total[:, :-1] / total[:, -1:].clamp_min(1e-12), m)
    return new, mass


def _merge(modes: torch.Tensor, density: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Indices of the modes kept after greedy merging, densest first: a mode closer than
    bandwidth/2 to an already kept (denser) mode is dropped."""
    order = torch.argsort(-density, stable=True).cpu().tolist()
    close = (torch.cdist(modes.double(), modes.double()) < bandwidth / 2).cpu().numpy()
    kept: list[int] = []
    for i in order:
        if not kept or not close[i, kept].any():
            kept.append(i)
    return torch.tensor(kept, dtype=torch.long, device=modes.device)


def mean_shift_modes(x, bandwidth: float, num_seeds: int = 256, iters: int = 20, seed: int = 0,
                     min_size: int = 1, *, kernel: str = "flat", seeding: str = "fps",
                     max_points: int = 20000, min_bin_freq: int = 2, tol: float = 1e-3,
                     chunk_size: int = 1 << 22, checked: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean_shift`` that also returns the modes: (labels LongTensor[N], modes FloatTensor[K, D]);
    modes[k] is the mode of cluster k. See ``mean_shift`` for the arguments; ``checked``: the caller
    has already checked that x is finite (``cluster_instances`` checks the whole scene once)."""
    x = torch.as_tensor(x)
    if x.ndim != 2:
        raise ValueError(f"mean_shift: x must be (N, D), got shape {tuple(x.shape)}")
    if not bandwidth > 0:
        raise ValueError(f"mean_shift: bandwidth must be > 0, got {bandwidth}")
    if kernel not in KERNELS or seeding not in ("fps", "random"):
        raise ValueError(f"mean_shift: kernel must be one of {KERNELS} and seeding 'fps' or 'random', "
                         f"got {kernel!r}, {seeding!r}")
    if num_seeds < 1 or iters < 0 or max_points < 1 or chunk_size < 1:
        raise ValueError("mean_shift: num_seeds, max_points and chunk_size must be >= 1, iters >= 0")
    x = x if x.is_floating_point() else x.float()
    n = x.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.long, device=x.device), x.new_empty(0, x.shape[1])
    if not checked and not bool(torch.isfinite(x).all()):
        raise ValueError("mean_shift: x holds NaN or infinite values")
    gen = torch.Generator().manual_seed(seed)  # on the CPU: the same draws on every device
    # Modes are found on a uniform subsample: its kernel density estimate has the same modes (up to
    # sampling noise) at a fraction of the cost; every point is still assigned below.
    xs = x if n <= max_points else x[torch.randperm(n, generator=gen)[:max_points].sort().values.to(x.device)]
    modes = _seeds(xs, bandwidth, num_seeds, seeding, min_bin_freq, gen)
    xs_sq, xs_one = xs.pow(2).sum(1)[None], torch.cat([xs, xs.new_ones(xs.shape[0], 1)], 1)
    active = torch.arange(modes.shape[0], device=x.device)
    for _ in range(iters):
        current = modes[active]
        new, _ = _shift(current, xs, xs_sq, xs_one, bandwidth, kernel, chunk_size)
        moved = (new - current).norm(dim=1) > tol * bandwidth
        modes[active] = new
        active = active[moved]
        if active.numel() == 0:
            break
    _, mass = _shift(modes, xs, xs_sq, xs_one, bandwidth, "flat", chunk_size)  # density: points within the bandwidth
    modes = modes[_merge(modes, mass, bandwidth)]
    dist, labels = nearest(x, modes, chunk_size)
    labels[dist > bandwidth * bandwidth] = -1
    # drop clusters below min_size and renumber the rest 0..K-1 in mode order (densest first)
    sizes = torch.bincount(labels[labels >= 0], minlength=modes.shape[0])
    keep = sizes >= max(min_size, 1)
    new_id = torch.cumsum(keep.long(), 0) - 1
    new_id[~keep] = -1
    labels = torch.where(labels >= 0, new_id[labels.clamp_min(0)], labels)
    return labels, modes[keep]


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
               chunk_size=2**22 (most entries of any seeds x points matrix)

    Converged modes closer than bandwidth/2 merge (the denser survives); every point joins its
    nearest mode if within the bandwidth, else -1. Runs on x's device; the same seed gives the same
    result. Returns LongTensor[N] cluster ids 0..K-1 (0 = the densest mode), -1 for noise.
    """
    return mean_shift_modes(x, bandwidth, num_seeds, iters, seed, min_size, **options)[0]
