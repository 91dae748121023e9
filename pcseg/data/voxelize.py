"""Voxelization of packed point clouds, keeping the inverse map back to every point.

``voxelize`` turns the M points of a Batch (packed scenes, ``offset`` = cumulative counts) into V
unique voxels with integer coordinates ``(batch, x, y, z)``; ``inverse`` sends every point to its
voxel row, so per-voxel outputs come back to all original points with ``values[inverse]``
(MinkowskiEngine's ``TensorField.slice``). ``voxel_mean`` averages per-point values into voxels.

Everything is vectorised torch and runs on whatever device the inputs are on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Voxel coordinates are returned as int32, so every axis must stay below this.
INT32_LIMIT = (1 << 31) - 1
# Keys are int64; the packed key of the largest voxel must stay below this.
KEY_LIMIT = (1 << 63) - 1
# ``anchor_floor``: the grid's z origin is the lowest point that is not a stray, one more than
# STRAY_DEPTH below the floor (the 1st percentile of z, as the height feature's), moved down by whole
# GRID_PERIODs (voxels) to below the strays. A U-Net's strided convs pair voxel layers (0-1, 2-3, ...)
# at every level, so a floor one layer higher than in training changes what the network sees: on a
# synthetic room, one stray point 5 cm below the floor changed a quarter of the predicted classes.
# Without strays this is the lowest point, where training put the origin. 16 covers four stride-2 levels.
FLOOR_PERCENTILE = 1.0
STRAY_DEPTH = 0.05
GRID_PERIOD = 16


@dataclass
class Voxels:
    """The voxels of a packed batch.

    coords:     IntTensor[V, 4] (batch index, x, y, z); per scene x, y, z = floor((p - origin) / voxel_size),
                so every scene's smallest voxel index on each axis is 0 (z: >= 0 with ``anchor_floor``).
                Rows are sorted by (batch, x, y, z).
    inverse:    LongTensor[M] voxel row of every input point.
    counts:     LongTensor[V] number of points in each voxel.
    offset:     LongTensor[B] cumulative voxel counts: scene b owns voxel rows offset[b-1]:offset[b].
    origin:     FloatTensor[B, 3] per-scene minimum corner of the points (zeros for an empty scene); with
                ``anchor_floor`` z lies whole grid periods below the floor instead (``voxelize``).
    voxel_size: edge length in the points' units (metres).
    """

    coords: torch.Tensor
    inverse: torch.Tensor
    counts: torch.Tensor
    offset: torch.Tensor
    origin: torch.Tensor
    voxel_size: float

    @property
    def num_voxels(self) -> int:
        return self.coords.shape[0]

    @property
    def batch_index(self) -> torch.Tensor:
        """LongTensor[V]: scene of each voxel."""
        return self.coords[:, 0].long()

    def centers(self) -> torch.Tensor:
        """FloatTensor[V, 3]: voxel centres in the points' frame (origin + (index + 0.5) * voxel_size)."""
        idx = self.coords[:, 1:].to(self.origin.dtype)
        return self.origin[self.batch_index] + (idx + 0.5) * self.voxel_size


def _check_offset(offset: torch.Tensor, m: int) -> None:
    if not isinstance(offset, torch.Tensor) or offset.ndim != 1 or offset.dtype != torch.long:
        raise ValueError("voxelize: offset must be a 1-D LongTensor of cumulative point counts")
    if offset.numel() == 0:
        if m:
            raise ValueError(f"voxelize: offset is empty but there are {m} points")
        return
    if int(offset[-1]) != m or int(offset[0]) < 0 or bool((offset[1:] < offset[:-1]).any()):
        raise ValueError(f"voxelize: offset must be non-decreasing and end at the point count {m}, "
                         f"got {offset.tolist()[:8]}{' ...' if offset.numel() > 8 else ''}")


def voxelize(points: torch.Tensor, offset: torch.Tensor, voxel_size: float, anchor_floor: bool = False) -> Voxels:
    """Voxelize packed scenes.

    points:     FloatTensor[M, 3] (the scenes concatenated).
    offset:     LongTensor[B] cumulative point counts, as in ``Batch.offset``.
    voxel_size: voxel edge length (> 0), in the points' units.

    anchor_floor: the z origin is each scene's lowest point that is no stray (STRAY_DEPTH or more
                below the floor level), moved down by whole GRID_PERIODs until no point lies below it,
                so the floor's voxel layer is the same, modulo the period, whatever stray points lie
                under it (real scans have some); without strays, the lowest point as without.

    Returns ``Voxels`` (see its docstring). Scenes never share a voxel (the batch index is part of
    the key), and the voxel order depends only on the coordinates, so it is deterministic.
    Indices are computed in the points' dtype: ``floor((p - min_scene) / voxel_size)``.

    Raises ValueError for voxel_size <= 0, non-finite points (naming the first), a malformed
    offset, or a grid too large to pack into int64 keys / int32 coordinates.
    """
    voxel_size = float(voxel_size)
    if not voxel_size > 0 or voxel_size == float("inf"):
        raise ValueError(f"voxelize: voxel_size must be a positive finite number, got {voxel_size}")
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"voxelize: points must have shape (M, 3), got {tuple(points.shape)}")
    if not points.is_floating_point():
        raise ValueError(f"voxelize: points must be floating point, got {points.dtype}")
    m, device = points.shape[0], points.device
    _check_offset(offset, m)
    offset = offset.to(device)
    b = offset.numel()

    finite = torch.isfinite(points).all(1)
    if not bool(finite.all()):
        bad = int(torch.nonzero(~finite)[0, 0])
        raise ValueError(f"voxelize: point {bad} is not finite: {points[bad].tolist()}")

    if m == 0:
        return Voxels(coords=torch.zeros(0, 4, dtype=torch.int32, device=device),
                      inverse=torch.zeros(0, dtype=torch.long, device=device),
                      counts=torch.zeros(0, dtype=torch.long, device=device),
                      offset=torch.zeros(b, dtype=torch.long, device=device),
                      origin=points.new_zeros(b, 3), voxel_size=voxel_size)

    counts = torch.diff(offset, prepend=offset.new_zeros(1))
    batch = torch.repeat_interleave(torch.arange(b, device=device), counts)
    origin = points.new_zeros(b, 3).scatter_reduce_(0, batch.unsqueeze(1).expand(-1, 3), points, "amin",
                                                   include_self=False)
    if anchor_floor:
        origin[:, 2] = _floor_anchors(points[:, 2], counts, origin[:, 2], voxel_size)
    grid = torch.floor((points - origin[batch]) / voxel_size)

    # Check the extent while still in floating point: casting huge floats to int64 silently wraps.
    extent = grid.max(0).values
    if float(extent.max()) >= INT32_LIMIT:
        raise ValueError(f"voxelize: the scene spans {float(extent.max()) + 1:.3g} voxels on one axis with "
                         f"voxel_size {voxel_size}; voxel coordinates must fit in int32 (coordinates too large "
                         f"or voxel_size too small?)")
    grid = grid.long()
    # Mixed-radix key (batch, x, y, z) with radices sized to this batch: sorted keys order voxels
    # by (batch, x, y, z), and nothing collides as long as the product fits in int64.
    radix = [int(r) + 1 for r in extent.tolist()]
    if b * radix[0] * radix[1] * radix[2] > KEY_LIMIT:
        raise ValueError(f"voxelize: {b} scenes of {radix[0]} x {radix[1]} x {radix[2]} voxels do not fit "
                         f"the int64 voxel key (coordinates too large or voxel_size {voxel_size} too small)")
    key = ((batch * radix[0] + grid[:, 0]) * radix[1] + grid[:, 1]) * radix[2] + grid[:, 2]
    uniq, inverse, vcounts = torch.unique(key, sorted=True, return_inverse=True, return_counts=True)

    coords = torch.empty(uniq.shape[0], 4, dtype=torch.long, device=device)
    rest = uniq
    for axis in (3, 2, 1):
        coords[:, axis] = rest % radix[axis - 1]
        rest = torch.div(rest, radix[axis - 1], rounding_mode="floor")
    coords[:, 0] = rest
    per_scene = torch.bincount(coords[:, 0], minlength=b)
    return Voxels(coords=coords.to(torch.int32), inverse=inverse, counts=vcounts,
                  offset=torch.cumsum(per_scene, 0), origin=origin, voxel_size=voxel_size)


def _floor_anchors(z: torch.Tensor, counts: torch.Tensor, lowest: torch.Tensor, voxel_size: float) -> torch.Tensor:
    """Per scene: the z origin of ``voxelize(anchor_floor=True)`` (``lowest``: each scene's minimum z)."""
    out = lowest.clone()
    period = GRID_PERIOD * voxel_size
    for b, part in enumerate(z.split(counts.tolist())):
        if part.numel() == 0:
            continue
        k = max(1, int(round(part.numel() * FLOOR_PERCENTILE / 100)))
        floor = float(torch.kthvalue(part, k).values)
        anchor = float(part[part >= floor - STRAY_DEPTH].min())
        out[b] = anchor - max(0, math.ceil((anchor - float(lowest[b])) / period - 1e-9)) * period
    return torch.minimum(out, lowest)


def voxel_mean(values: torch.Tensor, voxels: Voxels) -> torch.Tensor:
    """Average per-point values into their voxels (differentiable with respect to ``values``).

    values: Tensor[M, C] floating point, one row per input point of ``voxels``.
    Returns Tensor[V, C].
    """
    if values.ndim != 2 or values.shape[0] != voxels.inverse.shape[0]:
        raise ValueError(f"voxel_mean: values must have shape ({voxels.inverse.shape[0]}, C), "
                         f"got {tuple(values.shape)}")
    if not values.is_floating_point():
        raise ValueError(f"voxel_mean: values must be floating point, got {values.dtype}")
    total = values.new_zeros(voxels.num_voxels, values.shape[1]).index_add(0, voxels.inverse, values)
    return total / voxels.counts.to(values.dtype).unsqueeze(1)
