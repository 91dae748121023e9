"""The grid head: SOLO-style instances by location, on the sparse backbone's voxel features.

A scene's bird's-eye xy extent is cut into an S x S grid, at several sizes S. An object belongs to the
grid whose cell size suits its own size (as SOLO assigns FPN levels), and there to the cells near its
centre ("centre sampling": its centre cell and the cells within ``centre_radius`` of its half size).
Voxel features are pooled (mean) into the cells, with each cell's normalised position appended
(CoordConv), and two small 2D conv branches run over every grid:

* category: per cell and class, is this cell responsible for an object of this class (sigmoid, focal
  loss, as SOLO);
* kernel: per cell, the weights of a tiny dynamic MLP (SOLOv2, DyCo3D) that, applied to every voxel's
  mask features (a learned embedding + the voxel's position relative to the cell), gives that cell's
  mask over the scene (dice loss, optionally + BCE).

At inference every (cell, class) above a score threshold yields a mask, computed only where the cell
can reach (half the largest object its grid answers for, plus a cell: ``candidate_masks``); duplicates
from neighbouring cells and grids are removed by Matrix-NMS (``pcseg.cluster.nms``), outside ``forward``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..sparse.workers import run_tasks

MIN_EXTENT = 0.5  # metres: a scene smaller than this in x or y is gridded as if it were this wide


@dataclass
class Grid:
    """The geometry of one grid size over a batch: cell of every voxel and the cells' centres."""

    size: int                  # S
    cell_of: torch.Tensor      # LongTensor[V]: row b * S * S + iy * S + ix of each voxel's cell
    lo: torch.Tensor           # FloatTensor[B, 2]: each scene's xy minimum
    cell: torch.Tensor         # FloatTensor[B, 2]: each scene's cell edge in x and y (metres)

    def centres(self) -> torch.Tensor:
        """FloatTensor[B * S * S, 2]: xy centre of every cell."""
        s = self.size
        iy, ix = torch.meshgrid(torch.arange(s, device=self.lo.device), torch.arange(s, device=self.lo.device),
                                indexing="ij")
        idx = torch.stack([ix.reshape(-1), iy.reshape(-1)], 1).to(self.lo.dtype) + 0.5   # [S*S, 2]
        return (self.lo[:, None, :] + idx[None] * self.cell[:, None, :]).reshape(-1, 2)


def scene_bounds(xy: torch.Tensor, batch_index: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each scene's xy minimum and maximum FloatTensor[B, 2] (0 for a scene without voxels)."""
    inf = torch.full((batch_size, 2), float("inf"), dtype=xy.dtype, device=xy.device)
    lo = inf.scatter_reduce(0, batch_index[:, None].expand(-1, 2), xy, "amin")
    hi = (-inf).scatter_reduce(0, batch_index[:, None].expand(-1, 2), xy, "amax")
    lo = torch.where(torch.isfinite(lo), lo, torch.zeros_like(lo))
    return lo, torch.where(torch.isfinite(hi), hi, lo)


def make_grid(xy: torch.Tensor, batch_index: torch.Tensor, batch_size: int, size: int,
              bounds: tuple[torch.Tensor, torch.Tensor] | None = None) -> Grid:
    """The S x S grid over each scene's xy bounding box (xy FloatTensor[V, 2]; ``bounds``: the
    scenes' ``scene_bounds``, when already known)."""
    lo, hi = bounds if bounds is not None else scene_bounds(xy, batch_index, batch_size)
    cell = (hi - lo).clamp_min(MIN_EXTENT) / size
    ij = ((xy - lo[batch_index]) / cell[batch_index]).floor().long().clamp(0, size - 1)
    return Grid(size, batch_index * size * size + ij[:, 1] * size + ij[:, 0], lo, cell)


class GridHead(nn.Module):
    """Category and kernel branches over S x S grids of pooled voxel features, and the per-voxel mask
    features the kernels act on. See the module docstring.

    in_channels: width of the backbone's voxel features; num_classes: instance classes (their
    indices are the model's class indices); grids: grid sizes S, increasing; size_ranges: for each
    grid, the (low, high) range in metres of the objects' larger xy side it is responsible for;
    mask_dim: the learned part of the mask features; hidden: width of the branches and of the
    dynamic MLP's hidden layer; coord_features: False leaves out the cells' positions (CoordConv) and
    the voxels' positions relative to each cell (the ablation of both).
    """

    def __init__(self, in_channels: int, num_classes: int, grids: Sequence[int] = (12, 24),
                 size_ranges: Sequence[tuple[float, float]] = ((1.2, 1e9), (0.0, 1.2)), mask_dim: int = 8,
                 hidden: int = 64, dynamic_hidden: int = 8, centre_radius: float = 0.2,
                 coord_features: bool = True) -> None:
        super().__init__()
        grids = [int(s) for s in grids]
        if not grids or any(s < 1 for s in grids) or any(b <= a for a, b in zip(grids, grids[1:])):
            raise ValueError(f"GridHead: grids must be sizes >= 1 that increase, got {list(grids)}")
        if len(size_ranges) != len(grids) or any(not 0 <= lo < hi for lo, hi in size_ranges):
            raise ValueError(f"GridHead: size_ranges needs one (low, high) with 0 <= low < high per grid, got "
                             f"{list(size_ranges)}")
        if not 0 <= centre_radius <= 1:
            raise ValueError(f"GridHead: centre_radius must be in [0, 1], got {centre_radius}")
        self.grids, self.size_ranges = grids, [tuple(map(float, r)) for r in size_ranges]
        self.num_classes, self.mask_dim, self.dynamic_hidden = num_classes, mask_dim, dynamic_hidden
        self.centre_radius = float(centre_radius)
        self.coord_features = bool(coord_features)
        c = in_channels + (2 if coord_features else 0)  # + the cell's normalised x, y (CoordConv)
        self.trunk = nn.Sequential(nn.Conv2d(c, hidden, 3, padding=1), nn.GroupNorm(8, hidden), nn.ReLU(),
                                   nn.Conv2d(hidden, hidden, 3, padding=1), nn.GroupNorm(8, hidden), nn.ReLU())
        self.category = nn.Conv2d(hidden, num_classes, 3, padding=1)
        nn.init.constant_(self.category.bias, -4.6)  # prior 0.01: the focal loss's usual start
        d, h = mask_dim + 3, dynamic_hidden
        self.kernel_size = d * h + h + h + 1  # two dynamic layers: d -> h -> 1, with biases
        self.kernel = nn.Conv2d(hidden, self.kernel_size, 3, padding=1)
        self.mask_features = nn.Sequential(nn.Linear(in_channels, hidden), nn.ReLU(), nn.Linear(hidden, mask_dim))

    def grid_outputs(self, features: torch.Tensor, grid: Grid, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(category logits FloatTensor[B * S * S, num_classes], kernels FloatTensor[B * S * S, K])."""
        s, c = grid.size, features.shape[1]
        cells = batch_size * s * s
        pooled = features.new_zeros(cells, c).index_add_(0, grid.cell_of, features)
        count = torch.bincount(grid.cell_of, minlength=cells).to(features.dtype).clamp_min(1)
        pooled = pooled / count[:, None]
        coords = torch.linspace(-1, 1, s, device=features.device, dtype=features.dtype)
        cy, cx = torch.meshgrid(coords, coords, indexing="ij")
        image = pooled.reshape(batch_size, s, s, c).permute(0, 3, 1, 2)
        if self.coord_features:
            image = torch.cat([image, cx.expand(batch_size, 1, s, s), cy.expand(batch_size, 1, s, s)], 1)
        trunk = self.trunk(image)
        logits = self.category(trunk).permute(0, 2, 3, 1).reshape(cells, self.num_classes)
        kernels = self.kernel(trunk).permute(0, 2, 3, 1).reshape(cells, self.kernel_size)
        return logits, kernels

    def _folded_layers(self, kernels: torch.Tensor, cell_xy: torch.Tensor, cell: torch.Tensor, floor: float):
        """The cells' dynamic MLPs with their relative positions folded in: (first layer weights
        [P * hidden, d + 1] acting on [mask features, position, 1], second layer w2 [P, hidden], b2 [P]).
        Each cell's MLP sees [mask features, ``relative_positions``]; the positions enter the first
        layer linearly, so each cell's offset and scale become part of its weights and bias: one
        [P * hidden, d] x [d, V] product instead of a [P, V, d] input per cell."""
        d, h, m, p = self.mask_dim + 3, self.dynamic_hidden, self.mask_dim, kernels.shape[0]
        w1 = kernels[:, : d * h].reshape(p, d, h)
        b1 = kernels[:, d * h: d * h + h]
        w2 = kernels[:, d * h + h: d * h + 2 * h]
        b2 = kernels[:, -1]
        # relative position j = (position_j - shift_j) * scale_j (xy: in cell edges; z: above the floor / 3 m)
        scale = torch.cat([1.0 / cell, cell.new_full((p, 1), 1.0 / 3.0)], 1)                  # [P, 3]
        shift = torch.cat([cell_xy, cell_xy.new_full((p, 1), float(floor))], 1)                 # [P, 3]
        # (the ablation without coordinate features: the MLP sees no position)
        w_pos = w1[:, m:, :] * scale[:, :, None] if self.coord_features else w1.new_zeros(p, 3, h)  # [P, 3, h]
        bias = b1 - (shift[:, :, None] * w_pos).sum(1)                                          # [P, h]
        # the bias as the weight of a constant input 1: one product writes the pre-activations
        weights = torch.cat([w1[:, :m, :], w_pos, bias[:, None, :]], 1).transpose(1, 2).reshape(p * h, d + 1)
        return weights, w2, b2

    def mask_logits(self, kernels: torch.Tensor, mask_feats: torch.Tensor, centres: torch.Tensor,
                    cell_xy: torch.Tensor, cell: torch.Tensor, floor: float) -> torch.Tensor:
        """Dynamic MLP (see ``_folded_layers``): kernels FloatTensor[P, K] of cells p (centres cell_xy,
        edges cell [P, 2]) on one scene's voxels (mask_feats [V, mask_dim], centres [V, 3]) -> mask
        logits FloatTensor[P, V]; the training path (one product, gradients kept)."""
        weights, w2, b2 = self._folded_layers(kernels, cell_xy, cell, floor)
        return _dynamic_mlp(weights, _mlp_input(mask_feats, centres), w2, b2)

    @torch.no_grad()
    def candidate_masks(self, kernels: torch.Tensor, features: torch.Tensor, centres: torch.Tensor,
                        cell_xy: torch.Tensor, cell: torch.Tensor, floor: float, threshold: float,
                        reach: torch.Tensor | None = None,
                        copies: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Prediction: the cells' masks over one scene's voxels (backbone ``features`` [V, C], centres
        [V, 3]): (masks, inside, columns). masks: BoolTensor[P, V], sigmoid(``mask_logits``)
        > ``threshold``, on the squares of ``MASK_TILE`` metres within ``reach`` [P] metres (default:
        anywhere) of the cell's centre in x and y, zero elsewhere; inside: each mask's probabilities
        summed inside it FloatTensor[P] (SOLO's maskness, before dividing by the area); columns:
        LongTensor[V] the voxel of each mask column.
        ``copies`` LongTensor[K]: return K rows, row k the mask of cell ``copies[k]`` (a cell that is a
        candidate for several classes), written so by the blocks instead of copied afterwards.

        A cell of a fine grid answers for small objects only, so its mask is computed near it alone:
        the voxels are sorted into squares (``columns``), and each square runs the MLPs of the cells
        whose reach touches it. The MLP, the sigmoid and the threshold run together on blocks of a
        square's voxels small enough for the cache, on pcseg's CPU workers: no [P, V] probabilities
        are kept."""
        weights, w2, b2 = self._folded_layers(kernels, cell_xy, cell, floor)
        p, v, h = kernels.shape[0], features.shape[0], self.dynamic_hidden
        xy = centres[:, :2]
        lo_xy = xy.min(0).values if v else xy.new_zeros(2)
        if reach is None:
            reach = cell_xy.new_full((p,), float("inf"))
        side = int(float((xy.max(0).values - lo_xy).max()) // MASK_TILE) + 1 if v else 1  # squares per row
        square = ((xy - lo_xy) / MASK_TILE).floor().long().clamp(0, side - 1)
        square = square[:, 1] * side + square[:, 0]  # each voxel's square, numbered row by row
        columns = torch.argsort(square)
        bounds = torch.searchsorted(square[columns], torch.arange(side * side + 1, device=xy.device)).tolist()
        m = self.mask_dim
        x = features.new_empty(v, m + 4)  # the MLP's input, as _mlp_input lays it out
        x[:, m:m + 3], x[:, m + 3] = centres, 1.0
        run_tasks(lambda part: x[part, :m].copy_(self.mask_features(features[part])),
                  [slice(lo, lo + MASK_FEATURE_BLOCK) for lo in range(0, v, MASK_FEATURE_BLOCK)])
        x = x[columns]
        if copies is None:
            copies = torch.arange(p, device=kernels.device)
        # bool: a quarter of the bytes of 0/1 floats to clear and write, and what NMS takes apart
        masks, inside = torch.zeros(len(copies), v, dtype=torch.bool, device=features.device), features.new_zeros(len(copies))
        # which cells' reach touches each square
        tile_lo = lo_xy + MASK_TILE * torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side), indexing="xy"),
                                                  -1).reshape(-1, 2).to(xy)
        near, far = cell_xy[None] - reach[None, :, None], cell_xy[None] + reach[None, :, None]   # [1, P, 2]
        touches = ((near <= tile_lo[:, None] + MASK_TILE) & (far >= tile_lo[:, None])).all(2)  # [squares, P]
        weights = weights.view(p, h, -1)
        tasks = []
        for t in range(side * side):
            first, last = bounds[t], bounds[t + 1]
            rows = torch.nonzero(touches[t])[:, 0]
            if last == first or rows.numel() == 0:
                continue
            step = max(256, MASK_BLOCK_FLOATS // (rows.numel() * h))
            touched = touches[t][copies]  # the output rows whose cell runs here, and that cell's place in rows
            out_rows = torch.nonzero(touched)[:, 0]
            place = torch.searchsorted(rows, copies[out_rows])
            group = (weights[rows].reshape(-1, weights.shape[2]), w2[rows], b2[rows], out_rows, place)
            tasks += [(group, x, lo, min(lo + step, last), float(threshold), masks) for lo in range(first, last, step)]
        for rows, sums in run_tasks(_candidate_block, tasks):
            inside.index_add_(0, rows, sums)
        return masks, inside, columns


MASK_BLOCK_FLOATS = 1 << 19  # hidden activations per block of voxels at prediction (2 MiB)
MASK_TILE = 1.5  # metres: candidate_masks computes a mask on the squares of this edge its cell reaches
MASK_FEATURE_BLOCK = 8192  # voxels per block of the mask features at prediction


def _dynamic_mlp(weights: torch.Tensor, x: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    """weights [P*h, d+1] (first layer, bias last), x [V, d+1] (inputs, 1 last), w2 [P, h], b2 [P] -> [P, V]."""
    p, h = w2.shape
    # hidden units as rows: [P*h, V] is [P, h, V] without a copy, and the second layer is one bmm
    hidden = torch.mm(weights, x.t()).relu_().view(p, h, -1)
    return torch.bmm(w2[:, None, :], hidden)[:, 0, :] + b2[:, None]


def _mlp_input(mask_feats: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """[mask features, position, 1] per voxel: the input the folded first layer acts on."""
    return torch.cat([mask_feats, centres.to(mask_feats.dtype), mask_feats.new_ones(len(mask_feats), 1)], 1)


def _candidate_block(task) -> tuple[torch.Tensor, torch.Tensor]:
    (weights, w2, b2, out_rows, place), x, lo, hi, threshold, masks = task
    prob = _dynamic_mlp(weights, x[lo:hi], w2, b2).sigmoid_()
    inside = prob > threshold
    masks[out_rows, lo:hi] = inside[place]
    return out_rows, prob.mul_(inside).sum(1)[place]


def relative_positions(centres: torch.Tensor, cell_xy: torch.Tensor, cell: torch.Tensor, floor: float) -> torch.Tensor:
    """FloatTensor[P, V, 3]: each voxel's xy offset from cell p's centre in cell edges, and its height
    above the scene's floor in metres / 3 (a room's height), the coordinates the dynamic MLP sees.
    centres FloatTensor[V, 3]: one scene's voxel centres; cell_xy, cell FloatTensor[P, 2]: the cells'
    centres and edges."""
    xy = (centres[None, :, :2] - cell_xy[:, None, :]) / cell[:, None, :]
    z = ((centres[:, 2] - floor) / 3.0)[None, :, None].expand(cell_xy.shape[0], -1, 1)
    return torch.cat([xy, z], 2)


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over rows of 1 - 2 sum(p t) / (sum p^2 + sum t^2) (V-Net's dice, as SOLO), p = sigmoid."""
    p = torch.sigmoid(logits)
    inter = (p * target).sum(1)
    return (1 - 2 * inter / ((p * p).sum(1) + (target * target).sum(1)).clamp_min(1e-6)).mean()


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al. 2017), summed: logits and 0/1 target FloatTensor[..., C]."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    a_t = alpha * target + (1 - alpha) * (1 - target)
    return (a_t * (1 - p_t) ** gamma * ce).sum()
