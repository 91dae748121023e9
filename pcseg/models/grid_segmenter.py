"""The grid segmenter: sparse U-Net -> GridHead; its training targets and losses, and its candidates.

``forward(batch)`` returns the named losses in training mode (``category``: focal loss over every
cell and class, ``mask``: dice of the responsible cells' masks, ``total``) and, in eval mode, every
scene's candidate instances (cell and class above ``score_threshold``, with mask probabilities over
the scene's voxels). Removing duplicates (Matrix-NMS) and going back to points is the predictor's job.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pcseg.data.voxelize import Voxels, voxel_mean, voxelize
from pcseg.models.grid import Grid, GridHead, dice_loss, focal_loss, make_grid, scene_bounds
from pcseg.sparse import SparseTensor
from pcseg.sparse.workers import run_tasks
from pcseg.structures import Batch

FIRST_INSTANCE_CLASS = 2  # ScanNet20 indices 2..19 are the 18 instance classes (no wall, floor)
MASK_REACH_CELLS = 1.0    # a predicted mask reaches one cell edge beyond half its grid's largest object


def _rows(voxels: Voxels, scene: int) -> tuple[int, int]:
    """The voxel rows [lo, hi) of one scene of the batch."""
    return (0 if scene == 0 else int(voxels.offset[scene - 1])), int(voxels.offset[scene])


@dataclass
class Candidates:
    """One scene's candidate instances before duplicate removal, sorted by class."""

    masks: torch.Tensor        # BoolTensor[K, V] over the scene's voxels: mask probability > mask_threshold
    columns: torch.Tensor      # LongTensor[V] the voxel of each column of ``masks``
    inside: torch.Tensor       # FloatTensor[K] the mask probabilities summed inside each mask
    classes: torch.Tensor      # LongTensor[K] ScanNet20 class index
    scores: torch.Tensor       # FloatTensor[K] category probability of the cell


@dataclass
class Targets:
    """Per cell (all grids, concatenated): category target; and for the positive cells: scene, instance."""

    category: torch.Tensor     # FloatTensor[cells, num_classes] 0/1
    positive: torch.Tensor     # LongTensor[P] cell rows
    scene: torch.Tensor        # LongTensor[P]
    instance: torch.Tensor     # LongTensor[P] row of the instance in ``fractions``
    fractions: torch.Tensor    # FloatTensor[I, V] share of each voxel's points in each instance


class GridSegmenter(nn.Module):
    """backbone (SparseTensor -> SparseTensor, ``out_channels``) + GridHead, on voxels of ``voxel_size``."""

    def __init__(self, backbone: nn.Module, head: GridHead, voxel_size: float = 0.05, mask_weight: float = 3.0,
                 score_threshold: float = 0.1, max_masks: int = 64, max_candidates: int = 100,
                 peak_window: int = 1, mask_threshold: float = 0.5) -> None:
        super().__init__()
        if not 0 < float(voxel_size) < float("inf"):
            raise ValueError(f"GridSegmenter: voxel_size must be a positive finite number, got {voxel_size}")
        self.backbone, self.head, self.voxel_size = backbone, head, float(voxel_size)
        self.mask_weight, self.score_threshold, self.max_masks = float(mask_weight), float(score_threshold), max_masks
        self.max_candidates = max_candidates  # per scene at eval: masks are computed for the best ones only
        if peak_window < 1 or peak_window % 2 == 0:
            raise ValueError(f"GridSegmenter: peak_window must be an odd size >= 1, got {peak_window}")
        self.peak_window = int(peak_window)  # at eval: a cell is a candidate only where its class peaks
        if not 0 < float(mask_threshold) < 1:
            raise ValueError(f"GridSegmenter: mask_threshold must be in (0, 1), got {mask_threshold}")
        self.mask_threshold = float(mask_threshold)  # at eval: mask probability -> voxel in the mask

    def _run(self, batch: Batch):
        """Voxelize, the backbone, the grids and the head's per-cell outputs (logits, kernels) per grid."""
        if batch.points.shape[0] == 0:
            raise ValueError("GridSegmenter: Batch.points is empty (no points in the batch)")
        voxels = voxelize(batch.points, batch.offset, self.voxel_size, anchor_floor=True)
        features = self.backbone(SparseTensor(voxel_mean(batch.features, voxels), voxels.coords)).features
        centres = voxels.centers()
        b = int(batch.offset.numel())
        bounds = scene_bounds(centres[:, :2], voxels.batch_index, b)
        grids = [make_grid(centres[:, :2], voxels.batch_index, b, s, bounds) for s in self.head.grids]
        if torch.is_grad_enabled():
            outputs = [self.head.grid_outputs(features, g, b) for g in grids]
        else:  # prediction: the grids' small 2D branches side by side on the CPU workers
            outputs = run_tasks(lambda g: self.head.grid_outputs(features, g, b), grids)
        return voxels, features, centres, grids, outputs

    @torch.no_grad()
    def cell_probabilities(self, batch: Batch) -> list[tuple[Grid, torch.Tensor]]:
        """Each grid and its cells' category probabilities FloatTensor[B * S * S, instance classes]
        (for pictures of what the head sees)."""
        _, _, _, grids, outputs = self._run(batch)
        return [(g, torch.sigmoid(o[0])) for g, o in zip(grids, outputs)]

    def forward(self, batch: Batch):
        voxels, features, centres, grids, outputs = self._run(batch)
        logits = torch.cat([o[0] for o in outputs])
        kernels = torch.cat([o[1] for o in outputs])
        if self.training:
            targets = self.targets(batch, voxels, centres, grids)
            return self.losses(logits, kernels, self.head.mask_features(features), centres, voxels, grids, targets)
        return {"voxels": voxels, "candidates": self.candidates(logits, kernels, features, centres, voxels, grids)}

    # --- where a cell is and which scene it belongs to ---------------------------------------------
    def _cells(self, grids: list[Grid], batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For every cell (grids concatenated): xy centre, edge (xy) and scene."""
        xy = torch.cat([g.centres() for g in grids])
        edge = torch.cat([g.cell.repeat_interleave(g.size * g.size, 0) for g in grids])
        scene = torch.cat([torch.arange(batch_size, device=xy.device).repeat_interleave(g.size * g.size) for g in grids])
        return xy, edge, scene

    def _reach(self, grids: list[Grid], batch_size: int) -> torch.Tensor:
        """For every cell: how far (metres, in x and y) its mask may reach at prediction: half the
        largest object its grid answers for, plus ``MASK_REACH_CELLS`` cell edges (a cell next to the
        centre's may answer)."""
        return torch.cat([high / 2 + MASK_REACH_CELLS * g.cell.amax(1).repeat_interleave(g.size * g.size)
                          for (_, high), g in zip(self.head.size_ranges, grids)])

    @staticmethod
    def _floor(centres: torch.Tensor, lo: int, hi: int) -> float:
        """The scene's lowest voxel centre: the origin of the heights the mask MLP sees."""
        return float(centres[lo:hi, 2].min()) if hi > lo else 0.0

    # --- training -----------------------------------------------------------------------------------
    def targets(self, batch: Batch, voxels: Voxels, centres: torch.Tensor, grids: list[Grid]) -> Targets:
        head, b = self.head, int(batch.offset.numel())
        point_scene = batch.batch_index
        cells = sum(b * g.size * g.size for g in grids)
        category = torch.zeros(cells, head.num_classes, device=centres.device)
        first_cell = [0]
        for g in grids:
            first_cell.append(first_cell[-1] + b * g.size * g.size)
        # every (scene, instance id) of an instance class becomes one row
        valid = (batch.instance >= 0) & (batch.semantic >= FIRST_INSTANCE_CLASS)
        key = point_scene[valid] * (int(batch.instance.max()) + 1 if valid.any() else 1) + batch.instance[valid]
        uniq, inverse = torch.unique(key, return_inverse=True)
        n_inst = uniq.numel()
        fractions = centres.new_zeros(n_inst, voxels.num_voxels)
        if n_inst:
            fractions.index_put_((inverse, voxels.inverse[valid]), torch.ones_like(inverse, dtype=centres.dtype),
                                 accumulate=True)
            fractions /= voxels.counts.to(centres.dtype)[None, :]
        positive, scene_of, instance_of = [], [], []
        pts, sem, scn = batch.points[valid], batch.semantic[valid], point_scene[valid]
        for i in range(n_inst):
            member = inverse == i
            xy = pts[member, :2]
            lo_xy, hi_xy = xy.min(0).values, xy.max(0).values
            side, centre = float((hi_xy - lo_xy).max()), xy.mean(0)
            scene, cls = int(scn[member][0]), int(sem[member][0]) - FIRST_INSTANCE_CLASS
            for gi, g in enumerate(grids):
                low, high = head.size_ranges[gi]
                if not low <= side < high:
                    continue
                reach = head.centre_radius * (hi_xy - lo_xy) / 2
                first = ((centre - reach - g.lo[scene]) / g.cell[scene]).floor().long().clamp(0, g.size - 1)
                last = ((centre + reach - g.lo[scene]) / g.cell[scene]).floor().long().clamp(0, g.size - 1)
                for iy in range(int(first[1]), int(last[1]) + 1):
                    for ix in range(int(first[0]), int(last[0]) + 1):
                        row = first_cell[gi] + scene * g.size * g.size + iy * g.size + ix
                        category[row] = 0
                        category[row, cls] = 1
                        positive.append(row)
                        scene_of.append(scene)
                        instance_of.append(i)
        as_long = {"dtype": torch.long, "device": centres.device}
        return Targets(category, torch.tensor(positive, **as_long), torch.tensor(scene_of, **as_long),
                       torch.tensor(instance_of, **as_long), fractions)

    def losses(self, logits, kernels, mask_feats, centres, voxels, grids, targets: Targets) -> dict[str, torch.Tensor]:
        num_pos = targets.positive.numel()
        category = focal_loss(logits, targets.category) / (num_pos + 1)
        mask = logits.sum() * 0.0 + kernels.sum() * 0.0 + mask_feats.sum() * 0.0  # keeps every parameter in the graph
        if num_pos:
            pick = torch.arange(num_pos, device=logits.device)
            if num_pos > self.max_masks:  # at most max_masks masks a step: the first ones of a fixed shuffle
                pick = torch.randperm(num_pos, generator=torch.Generator().manual_seed(num_pos))[: self.max_masks]
            cell_xy, cell_edge, _ = self._cells(grids, int(voxels.offset.numel()))
            parts = []
            for scene in targets.scene[pick].unique().tolist():
                rows = pick[targets.scene[pick] == scene]
                cells = targets.positive[rows]
                lo, hi = _rows(voxels, scene)
                mask_logits = self.head.mask_logits(kernels[cells], mask_feats[lo:hi], centres[lo:hi], cell_xy[cells],
                                                    cell_edge[cells], self._floor(centres, lo, hi))
                parts.append((mask_logits, targets.fractions[targets.instance[rows], lo:hi]))
            mask = mask + sum(dice_loss(m, t) * m.shape[0] for m, t in parts) / pick.numel()
        return {"category": category, "mask": mask, "total": category + self.mask_weight * mask}

    # --- inference ----------------------------------------------------------------------------------
    @torch.no_grad()
    def candidates(self, logits, kernels, features, centres, voxels: Voxels, grids) -> list[Candidates]:
        b = int(voxels.offset.numel())
        cell_xy, cell_edge, cell_scene = self._cells(grids, b)
        reach = self._reach(grids, b)
        probs = peak_cells(torch.sigmoid(logits), grids, b, self.peak_window)
        out = []
        for scene in range(b):
            cell, cls = torch.nonzero((probs > self.score_threshold) & (cell_scene == scene)[:, None], as_tuple=True)
            if cell.numel() > self.max_candidates:  # a mask per candidate is the cost: keep the best scores
                best = torch.topk(probs[cell, cls], self.max_candidates).indices.sort().values
                cell, cls = cell[best], cls[best]
            by_class = torch.argsort(cls, stable=True)  # each class's masks contiguous: NMS takes them as views
            cell, cls = cell[by_class], cls[by_class]
            lo, hi = _rows(voxels, scene)
            if cell.numel() == 0 or hi == lo:
                out.append(Candidates(torch.zeros(0, hi - lo, dtype=torch.bool, device=centres.device),
                                      torch.arange(hi - lo, device=centres.device),
                                      centres.new_zeros(0), cls + FIRST_INSTANCE_CLASS, probs.new_zeros(0)))
                continue
            # a cell above the threshold for several classes has one kernel: its mask is computed once
            cells, which = torch.unique(cell, return_inverse=True)
            masks, inside, columns = self.head.candidate_masks(kernels[cells], features[lo:hi], centres[lo:hi],
                                                               cell_xy[cells], cell_edge[cells], self._floor(centres, lo, hi),
                                                               self.mask_threshold, reach[cells], copies=which)
            out.append(Candidates(masks, columns, inside, cls + FIRST_INSTANCE_CLASS, probs[cell, cls]))
        return out


def peak_cells(probs: torch.Tensor, grids: list[Grid], batch_size: int, window: int) -> torch.Tensor:
    """``probs`` FloatTensor[cells, C] (grids concatenated) with every (cell, class) zeroed that is
    not the maximum of its class over the ``window`` x ``window`` cells around it in its grid (SOLOv2's
    "point NMS"): neighbouring cells that centre sampling made responsible for the same object
    would otherwise each cost a mask and a place in Matrix-NMS. ``window`` 1: unchanged."""
    if window <= 1:
        return probs
    parts, start = [], 0
    for g in grids:
        n = batch_size * g.size * g.size
        heat = probs[start:start + n].reshape(batch_size, g.size, g.size, -1).permute(0, 3, 1, 2)
        peak = torch.nn.functional.max_pool2d(heat, window, stride=1, padding=window // 2)
        parts.append((heat * (heat == peak)).permute(0, 2, 3, 1).reshape(n, -1))
        start += n
    return torch.cat(parts)
