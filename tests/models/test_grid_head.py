"""The grid head: grid geometry, centre-sampling targets, the dynamic mask MLP, the losses against hand
computations, and a few training steps that reduce the loss."""
import math

import pytest
import torch

from pcseg.data import collate
from pcseg.models.backbone import SparseUNet
from pcseg.models.grid import GridHead, dice_loss, focal_loss, make_grid, relative_positions
from pcseg.models.grid_segmenter import FIRST_INSTANCE_CLASS, GridSegmenter, peak_cells
from pcseg.structures import Batch

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_grid_cells_cover_each_scenes_box():
    xy = torch.tensor([[0.0, 0.0], [3.99, 0.1], [2.0, 1.99], [10.0, 10.0], [12.0, 14.0]])
    grid = make_grid(xy, torch.tensor([0, 0, 0, 1, 1]), 2, 4)
    # scene 0: x in [0, 3.99], y in [0, 1.99]: cells of 0.9975 x 0.4975 m
    assert grid.cell_of.tolist()[:3] == [0, 3, 3 * 4 + 2]
    assert grid.cell_of.tolist()[3:] == [16 + 0, 16 + 15]  # scene 1 starts at row S * S
    centres = grid.centres()
    assert centres.shape == (32, 2)
    torch.testing.assert_close(centres[0], torch.tensor([0.99750 / 2, 0.4975 / 2]))


def box(lo, hi, n, g):
    lo, hi = torch.tensor(lo), torch.tensor(hi)
    return lo + torch.rand(n, 3, generator=g) * (hi - lo)


def two_objects():
    """A 6 x 6 m floor, a 2 x 1 m bed (class 3) and a 0.5 m chair (class 4)."""
    g = torch.Generator().manual_seed(0)
    floor = box([0, 0, 0], [6, 6, 0.02], 3000, g)
    bed = box([1.6, 0.5, 0], [3.6, 1.5, 0.5], 800, g)
    chair = box([4.0, 4.0, 0], [4.5, 4.5, 0.8], 400, g)
    points = torch.cat([floor, bed, chair])
    semantic = torch.cat([torch.full((3000,), 1), torch.full((800,), 3), torch.full((400,), 4)])
    instance = torch.cat([torch.full((3000,), -1), torch.full((800,), 1), torch.full((400,), 2)])
    return Batch(points, torch.rand(len(points), 3, generator=g), torch.tensor([len(points)]), semantic, instance)


def tiny(grids=(4, 8), size_ranges=((1.2, 1e9), (0.0, 1.2)), **kw):
    torch.manual_seed(0)
    backbone = SparseUNet(3, (8, 16))
    head = GridHead(backbone.out_channels, 18, grids=grids, size_ranges=size_ranges, hidden=16, **kw)
    return GridSegmenter(backbone, head, voxel_size=0.1)


def test_targets_put_each_object_on_its_grid_at_its_centre():
    model = tiny(centre_radius=0.0)
    batch = two_objects()
    from pcseg.data.voxelize import voxelize

    voxels = voxelize(batch.points, batch.offset, 0.1)
    centres = voxels.centers()
    grids = [make_grid(centres[:, :2], voxels.batch_index, 1, s) for s in model.head.grids]
    t = model.targets(batch, voxels, centres, grids)
    rows, classes = torch.nonzero(t.category, as_tuple=True)
    # the bed (2 m) on the 4 x 4 grid, its centre (2.6, 1.0) in cell (1, 0) of ~1.5 m cells; the chair
    # (0.5 m) on the 8 x 8 grid (rows from 16 on), its centre (4.25, 4.25) in cell (5, 5) of ~0.74 m
    assert sorted(zip(rows.tolist(), classes.tolist())) == [(0 * 4 + 1, 3 - FIRST_INSTANCE_CLASS),
                                                           (16 + 5 * 8 + 5, 4 - FIRST_INSTANCE_CLASS)]
    assert t.positive.numel() == 2 and t.fractions.shape == (2, voxels.num_voxels)
    # the fractions are the share of each voxel's points in the instance: summed, its point count
    counts = voxels.counts.float()
    assert sorted((t.fractions * counts).sum(1).round().tolist()) == [400.0, 800.0]
    wide = tiny(centre_radius=1.0).targets(batch, voxels, centres, grids)
    assert wide.positive.numel() > 2  # centre sampling: cells near the centre are positive too


def test_dynamic_mask_mlp_equals_an_explicit_mlp_per_cell():
    """The folded computation equals each cell's MLP run on [mask features, relative positions]."""
    head = GridHead(8, 18, grids=(4,), size_ranges=((0.0, 1e9),), mask_dim=5, dynamic_hidden=3, hidden=16).double()
    g = torch.Generator().manual_seed(1)
    kernels = torch.randn(4, head.kernel_size, generator=g, dtype=torch.float64, requires_grad=True)
    feats = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    centres = torch.rand(7, 3, generator=g, dtype=torch.float64) * 6
    cell_xy = torch.rand(4, 2, generator=g, dtype=torch.float64) * 6
    cell = torch.rand(4, 2, generator=g, dtype=torch.float64) + 0.3
    got = head.mask_logits(kernels, feats, centres, cell_xy, cell, floor=0.2)
    rel = relative_positions(centres, cell_xy, cell, floor=0.2)
    d, h = 8, 3
    want = []
    for p in range(4):
        k = kernels[p]
        w1, b1, w2, b2 = k[: d * h].reshape(d, h), k[d * h: d * h + h], k[d * h + h: d * h + 2 * h], k[-1]
        want.append(torch.relu(torch.cat([feats, rel[p]], 1) @ w1 + b1) @ w2 + b2)
    want = torch.stack(want)
    torch.testing.assert_close(got, want)
    up = torch.randn(got.shape, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad((got * up).sum(), [kernels, feats])
    for a, b in zip(grads, torch.autograd.grad((want * up).sum(), [kernels, feats])):
        torch.testing.assert_close(a, b)


def test_without_coordinate_features_neither_branch_nor_mask_sees_a_position():
    """coord_features=False (the ablation): the masks equal the per-cell MLP on [mask features, 0, 0, 0],
    and the branches take the pooled features alone."""
    head = GridHead(8, 18, grids=(4,), size_ranges=((0.0, 1e9),), mask_dim=5, dynamic_hidden=3, hidden=16,
                    coord_features=False).double()
    assert head.trunk[0].in_channels == 8
    g = torch.Generator().manual_seed(2)
    kernels = torch.randn(4, head.kernel_size, generator=g, dtype=torch.float64)
    feats = torch.randn(7, 5, generator=g, dtype=torch.float64)
    centres = torch.rand(7, 3, generator=g, dtype=torch.float64) * 6
    cell_xy, cell = torch.rand(4, 2, generator=g, dtype=torch.float64) * 6, torch.rand(4, 2, generator=g, dtype=torch.float64) + 0.3
    got = head.mask_logits(kernels, feats, centres, cell_xy, cell, floor=0.2)
    d, h = 8, 3
    x = torch.cat([feats, torch.zeros(7, 3, dtype=torch.float64)], 1)
    want = torch.stack([torch.relu(x @ k[: d * h].reshape(d, h) + k[d * h: d * h + h]) @ k[d * h + h: d * h + 2 * h] + k[-1]
                        for k in kernels])
    torch.testing.assert_close(got, want)
    assert GridHead(8, 18, grids=(4,), size_ranges=((0.0, 1e9),), hidden=16).trunk[0].in_channels == 10


def _full_masks(head, kernels, features, centres, cell_xy, cell, threshold):
    """The reference for candidate_masks: every cell's MLP on every voxel, in voxel order."""
    with torch.no_grad():
        prob = torch.sigmoid(head.mask_logits(kernels, head.mask_features(features), centres, cell_xy, cell, 0.1))
    return (prob > threshold).float(), prob


@pytest.mark.parametrize("threads", [1, 2])
def test_candidate_masks_equal_the_whole_mlp_in_any_blocks_and_squares(monkeypatch, threads):
    from pcseg.models import grid
    from pcseg.sparse.workers import set_conv_threads

    head = GridHead(8, 18, grids=(4,), size_ranges=((0.0, 1e9),), mask_dim=5, dynamic_hidden=3, hidden=16)
    g = torch.Generator().manual_seed(2)
    kernels = torch.randn(6, head.kernel_size, generator=g)
    features, centres = torch.randn(1000, 8, generator=g), torch.rand(1000, 3, generator=g) * 6
    cell_xy, cell = torch.rand(6, 2, generator=g) * 6, torch.rand(6, 2, generator=g) + 0.3
    want, prob = _full_masks(head, kernels, features, centres, cell_xy, cell, 0.5)
    monkeypatch.setattr(grid, "MASK_BLOCK_FLOATS", 1)  # blocks of 256 voxels
    monkeypatch.setattr(grid, "MASK_FEATURE_BLOCK", 300)
    monkeypatch.setattr(grid, "MASK_TILE", 0.7)
    set_conv_threads(threads)
    try:
        masks, inside, columns = head.candidate_masks(kernels, features, centres, cell_xy, cell, 0.1, 0.5)
    finally:
        set_conv_threads(0)
    assert sorted(columns.tolist()) == list(range(1000))  # a permutation of the voxels
    assert masks.dtype == torch.bool and torch.equal(masks[:, torch.argsort(columns)], want.bool())
    torch.testing.assert_close(inside, (prob * want).sum(1))
    copies = torch.tensor([0, 0, 3, 1, 5, 3, 2, 4])  # cells that are candidates for several classes
    masks, inside, columns = head.candidate_masks(kernels, features, centres, cell_xy, cell, 0.1, 0.5,
                                                  torch.tensor([0.5, 1.0, 2.0, 9.0, 0.8, 1.5]), copies=copies)
    single, single_inside, _ = head.candidate_masks(kernels, features, centres, cell_xy, cell, 0.1, 0.5,
                                                    torch.tensor([0.5, 1.0, 2.0, 9.0, 0.8, 1.5]))
    assert torch.equal(masks, single[copies]) and torch.equal(inside, single_inside[copies])


def test_candidate_masks_keep_each_cell_to_the_squares_within_its_reach(monkeypatch):
    from pcseg.models import grid

    head = GridHead(8, 18, grids=(4,), size_ranges=((0.0, 1e9),), mask_dim=5, dynamic_hidden=3, hidden=16)
    g = torch.Generator().manual_seed(3)
    kernels = torch.randn(5, head.kernel_size, generator=g)
    features, centres = torch.randn(2000, 8, generator=g), torch.rand(2000, 3, generator=g) * 6
    cell_xy, cell = torch.rand(5, 2, generator=g) * 6, torch.rand(5, 2, generator=g) + 0.3
    reach = torch.tensor([0.5, 1.0, 2.0, 9.0, 0.8])
    monkeypatch.setattr(grid, "MASK_TILE", 1.0)
    full, prob = _full_masks(head, kernels, features, centres, cell_xy, cell, 0.5)
    masks, inside, columns = head.candidate_masks(kernels, features, centres, cell_xy, cell, 0.1, 0.5, reach)
    masks = masks[:, torch.argsort(columns)]
    # the loop reference: voxel j is computed for cell p when j's 1 m square (from the scene's xy
    # minimum) meets the box of half-edge reach_p around p's centre; elsewhere the mask is empty
    lo = centres[:, :2].min(0).values
    square_lo = ((centres[:, :2] - lo) / 1.0).floor() * 1.0 + lo
    want = torch.zeros_like(full)
    for p in range(5):
        for j in range(2000):
            meets = all(square_lo[j, a] <= cell_xy[p, a] + reach[p] and square_lo[j, a] + 1.0 >= cell_xy[p, a] - reach[p]
                        for a in range(2))
            want[p, j] = full[p, j] if meets else 0.0
    assert torch.equal(masks, want)
    within = ((centres[None, :, :2] - cell_xy[:, None]).abs() <= reach[:, None, None]).all(2)
    assert torch.equal(masks[within], full[within])  # the promise: nothing within reach is lost
    assert 0 < int(masks.sum()) < int(full.sum())
    torch.testing.assert_close(inside, (prob * want).sum(1))


def test_a_cell_reaches_half_its_grids_largest_object_plus_a_cell():
    model = tiny()
    xy = torch.tensor([[0.0, 0.0], [4.0, 2.0]])
    grids = [make_grid(xy, torch.zeros(2, dtype=torch.long), 1, s) for s in model.head.grids]
    reach = model._reach(grids, 1)
    for (s, (_, high)), start in zip(zip(model.head.grids, model.head.size_ranges), (0, model.head.grids[0] ** 2)):
        assert float(reach[start]) == pytest.approx(high / 2 + 4.0 / s)


def test_relative_positions_are_in_cell_edges_and_height_over_three_metres():
    centres = torch.tensor([[1.0, 2.0, 0.5], [3.0, 2.0, 1.5]])
    rel = relative_positions(centres, torch.tensor([[1.0, 1.0]]), torch.tensor([[0.5, 2.0]]), floor=0.0)
    torch.testing.assert_close(rel[0], torch.tensor([[0.0, 0.5, 0.5 / 3], [4.0, 0.5, 0.5]]))


def test_dice_and_focal_losses_by_hand():
    logits = torch.tensor([[0.0, 2.0, -2.0]])
    target = torch.tensor([[1.0, 1.0, 0.0]])
    p = torch.sigmoid(logits)[0]
    want = 1 - 2 * (p[0] + p[1]) / ((p ** 2).sum() + 2)
    assert float(dice_loss(logits, target)) == pytest.approx(float(want))
    x, t = torch.tensor([[1.5, -0.5]]), torch.tensor([[1.0, 0.0]])
    q = 1 / (1 + math.exp(-1.5)), 1 / (1 + math.exp(0.5))
    want = 0.25 * (1 - q[0]) ** 2 * -math.log(q[0]) + 0.75 * q[1] ** 2 * -math.log(1 - q[1])
    assert float(focal_loss(x, t)) == pytest.approx(want, rel=1e-5)


def test_training_reaches_every_parameter_and_lowers_the_loss_and_eval_gives_candidates():
    from pcseg.synth import generate_scene

    model = tiny().train()
    batch = collate([generate_scene(3, "s").scene])
    first = model(batch)
    assert set(first) == {"category", "mask", "total"} and torch.isfinite(first["total"])
    first["total"].backward()
    assert all(p.grad is not None for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), 3e-3)
    for _ in range(15):
        optimizer.zero_grad()
        loss = model(batch)
        loss["total"].backward()
        optimizer.step()
    assert float(loss["total"].detach()) < 0.6 * float(first["total"].detach())
    model.eval()
    (cands,) = model(batch)["candidates"]
    assert cands.masks.shape[0] == cands.classes.shape[0] == cands.scores.shape[0] == cands.inside.shape[0] > 0
    assert sorted(cands.columns.tolist()) == list(range(cands.masks.shape[1]))
    assert bool((cands.classes >= FIRST_INSTANCE_CLASS).all()) and bool((cands.scores > 0.1).all())


def test_bad_head_settings_name_the_setting():
    with pytest.raises(ValueError, match="grids"):
        GridHead(8, 18, grids=(16, 8))
    with pytest.raises(ValueError, match="grids"):
        GridHead(8, 18, grids=(0, 8))
    with pytest.raises(ValueError, match="size_ranges"):
        GridHead(8, 18, grids=(8,), size_ranges=((1.0, 0.5),))
    with pytest.raises(ValueError, match="centre_radius"):
        GridHead(8, 18, centre_radius=2.0)


def test_peak_cells_keep_each_class_maximum_of_its_window_per_grid_and_scene():
    # two scenes, grids 3 and 4, two classes; the loop reference: a (cell, class) survives when no
    # cell of its grid and scene within the window has a higher score of that class
    torch.manual_seed(0)
    xy = torch.rand(40, 2) * 4
    batch_index = torch.tensor([0] * 20 + [1] * 20)
    grids = [make_grid(xy, batch_index, 2, s) for s in (3, 4)]
    probs = torch.rand(2 * 9 + 2 * 16, 2)
    assert torch.equal(peak_cells(probs, grids, 2, 1), probs)
    for window in (3, 5):
        kept = peak_cells(probs, grids, 2, window)
        start = 0
        for g in grids:
            s, r = g.size, window // 2
            for b in range(2):
                for iy in range(s):
                    for ix in range(s):
                        row = start + b * s * s + iy * s + ix
                        for c in range(2):
                            near = [probs[start + b * s * s + y * s + x, c] for y in range(max(0, iy - r), min(s, iy + r + 1))
                                    for x in range(max(0, ix - r), min(s, ix + r + 1))]
                            expect = probs[row, c] if probs[row, c] >= max(near) else 0.0
                            assert float(kept[row, c]) == float(expect)
            start += 2 * s * s
    assert 0 < int((peak_cells(probs, grids, 2, 3) > 0).sum()) < probs.numel()
    with pytest.raises(ValueError, match="peak_window"):
        GridSegmenter(SparseUNet(3, (8, 16), 1), GridHead(8, 18, grids=(2,), size_ranges=((0, 9),)), peak_window=2)
