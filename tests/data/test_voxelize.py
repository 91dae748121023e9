import numpy as np
import pytest
import torch

from pcseg.data.voxelize import GRID_PERIOD, Voxels, voxel_mean, voxelize


def packed(sizes, seed=0, scale=3.0, shift=None):
    """Random packed scenes: FloatTensor[M, 3], LongTensor[B]; scene b shifted by shift[b]."""
    g = torch.Generator().manual_seed(seed)
    parts = []
    for i, n in enumerate(sizes):
        p = torch.rand(n, 3, generator=g) * scale
        if shift is not None:
            p = p + torch.tensor(shift[i], dtype=torch.float32)
        parts.append(p)
    return torch.cat(parts), torch.cumsum(torch.tensor(sizes), 0)


def test_every_point_lies_in_its_voxel():
    pts, off = packed([500, 300, 700], shift=[(0, 0, 0), (-5.0, 2.0, 1.0), (100.0, -40.0, 3.0)])
    s = 0.13
    v = voxelize(pts, off, s)
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor([500, 300, 700]))
    for b, (lo, hi) in enumerate([(0, 500), (500, 800), (800, 1500)]):
        mins = pts[lo:hi].min(0).values
        expected = torch.floor((pts[lo:hi] - mins) / s).long()
        assert torch.equal(v.coords[v.inverse[lo:hi], 1:].long(), expected)
        assert torch.allclose(v.origin[b], mins)
        # shifted so the minimum voxel index of every scene is 0
        assert v.coords[v.coords[:, 0] == b, 1:].min(0).values.tolist() == [0, 0, 0]
    assert torch.equal(v.coords[v.inverse, 0].long(), batch)
    assert v.coords.dtype == torch.int32 and v.inverse.dtype == torch.long
    # voxel centres are within half a voxel of every point they hold
    assert (v.centers()[v.inverse] - pts).abs().max() <= s / 2 + 1e-5


def test_voxels_are_unique_counted_and_sorted():
    pts, off = packed([400, 400], seed=1)
    v = voxelize(pts, off, 0.25)
    rows = [tuple(r) for r in v.coords.tolist()]
    assert len(set(rows)) == v.num_voxels
    assert rows == sorted(rows)
    assert torch.equal(v.counts, torch.bincount(v.inverse, minlength=v.num_voxels))
    assert int(v.counts.sum()) == 800 and bool((v.counts > 0).all())
    assert v.offset.tolist() == [int((v.coords[:, 0] == 0).sum()), v.num_voxels]


def test_same_coordinates_in_two_scenes_stay_apart():
    p, _ = packed([200], seed=2)
    pts = torch.cat([p, p])
    v = voxelize(pts, torch.tensor([200, 400]), 0.5)
    single = voxelize(p, torch.tensor([200]), 0.5)
    assert v.num_voxels == 2 * single.num_voxels
    assert not set(v.inverse[:200].tolist()) & set(v.inverse[200:].tolist())
    assert torch.equal(v.coords[single.num_voxels:, 1:], single.coords[:, 1:])
    assert torch.equal(v.inverse[200:] - single.num_voxels, single.inverse)


def test_deterministic_and_independent_of_point_order():
    pts, off = packed([1000], seed=3)
    a = voxelize(pts, off, 0.2)
    b = voxelize(pts.clone(), off.clone(), 0.2)
    assert torch.equal(a.coords, b.coords) and torch.equal(a.inverse, b.inverse)
    perm = torch.randperm(1000, generator=torch.Generator().manual_seed(0))
    c = voxelize(pts[perm], off, 0.2)
    assert torch.equal(a.coords, c.coords)
    assert torch.equal(a.inverse[perm], c.inverse)


def test_inverse_round_trip_and_voxel_mean_matches_loop():
    pts, off = packed([300, 250], seed=4)
    v = voxelize(pts, off, 0.3)
    values = torch.randn(550, 5, dtype=torch.float64)
    mean = voxel_mean(values, v)
    ref = torch.zeros(v.num_voxels, 5, dtype=torch.float64)
    n = torch.zeros(v.num_voxels, dtype=torch.float64)
    for i in range(550):
        ref[v.inverse[i]] += values[i]
        n[v.inverse[i]] += 1
    assert torch.allclose(mean, ref / n[:, None])
    # per-voxel values go back to every point; constant-per-voxel data survives the round trip
    per_voxel = torch.randn(v.num_voxels, 2)
    assert torch.allclose(voxel_mean(per_voxel[v.inverse], v), per_voxel)


def test_voxel_mean_is_differentiable():
    pts, off = packed([100], seed=5)
    v = voxelize(pts, off, 0.5)
    values = torch.randn(100, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(v.num_voxels, 3, dtype=torch.float64)
    (voxel_mean(values, v) * weights).sum().backward()
    expected = weights[v.inverse] / v.counts[v.inverse, None].double()
    assert torch.allclose(values.grad, expected)
    assert torch.autograd.gradcheck(lambda x: voxel_mean(x, v), (values,))


def test_empty_input_and_empty_scenes():
    v = voxelize(torch.zeros(0, 3), torch.tensor([0, 0], dtype=torch.long), 0.1)
    assert isinstance(v, Voxels) and v.num_voxels == 0 and v.coords.shape == (0, 4)
    assert v.inverse.shape == (0,) and v.offset.tolist() == [0, 0]
    assert voxel_mean(torch.zeros(0, 2), v).shape == (0, 2)
    # an empty scene in the middle of a batch owns no voxels
    pts, _ = packed([50, 60], seed=6)
    v = voxelize(pts, torch.tensor([50, 50, 110]), 0.4)
    assert set(v.coords[:, 0].tolist()) == {0, 2}
    assert v.offset[0] == v.offset[1]


@pytest.mark.parametrize("size", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_voxel_size(size):
    with pytest.raises(ValueError, match="voxel_size"):
        voxelize(torch.rand(10, 3), torch.tensor([10]), size)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_point_is_named(bad):
    pts = torch.rand(20, 3)
    pts[13, 1] = bad
    pts[17, 0] = bad
    with pytest.raises(ValueError, match="point 13"):
        voxelize(pts, torch.tensor([20]), 0.1)


def test_coordinates_too_large():
    pts = torch.tensor([[0.0, 0.0, 0.0], [1e9, 0.0, 0.0]])
    with pytest.raises(ValueError, match="int32"):
        voxelize(pts, torch.tensor([2]), 1e-3)
    # every axis fits int32 but together they overflow the int64 key
    pts = torch.tensor([[0.0, 0.0, 0.0], [2e5, 2e5, 2e5]], dtype=torch.float64)
    with pytest.raises(ValueError, match="int64"):
        voxelize(pts, torch.tensor([2]), 1e-3)


def test_bad_offset_and_shapes():
    with pytest.raises(ValueError, match="offset"):
        voxelize(torch.rand(10, 3), torch.tensor([5]), 0.1)
    with pytest.raises(ValueError, match="offset"):
        voxelize(torch.rand(10, 3), torch.tensor([6, 4, 10]), 0.1)
    with pytest.raises(ValueError, match="offset"):
        voxelize(torch.rand(10, 3), torch.tensor([10.0]), 0.1)
    with pytest.raises(ValueError, match="shape"):
        voxelize(torch.rand(10, 2), torch.tensor([10]), 0.1)
    v = voxelize(torch.rand(10, 3), torch.tensor([10]), 0.1)
    with pytest.raises(ValueError, match="shape"):
        voxel_mean(torch.rand(9, 2), v)


def test_matches_numpy_unique_reference():
    pts, off = packed([2000, 1500], seed=7, scale=4.0)
    s = 0.05
    v = voxelize(pts, off, s)
    p = pts.numpy()
    batch = np.repeat([0, 1], [2000, 1500])
    rows = []
    for b in range(2):
        q = p[batch == b]
        rows.append(np.concatenate([np.full((len(q), 1), b), np.floor((q - q.min(0)) / np.float32(s))], 1))
    uniq, inv = np.unique(np.concatenate(rows).astype(np.int64), axis=0, return_inverse=True)
    assert np.array_equal(v.coords.numpy(), uniq)
    assert np.array_equal(v.inverse.numpy(), inv.reshape(-1))


@pytest.mark.cuda
def test_cuda_matches_cpu():
    pts, off = packed([3000, 2000], seed=8)
    a = voxelize(pts, off, 0.1)
    b = voxelize(pts.cuda(), off.cuda(), 0.1)
    assert torch.equal(a.coords, b.coords.cpu()) and torch.equal(a.inverse, b.inverse.cpu())
    values = torch.randn(5000, 4)
    assert torch.allclose(voxel_mean(values, a), voxel_mean(values.cuda(), b).cpu(), atol=1e-5)


def floor_scene(seed: int = 0) -> torch.Tensor:
    """A 3 x 3 m floor at z = 0 (1 cm noise) with a 0.8 m box on it."""
    g = torch.Generator().manual_seed(seed)
    floor = torch.cat([torch.rand(4000, 2, generator=g) * 3, torch.randn(4000, 1, generator=g) * 0.01], 1)
    box = torch.rand(1000, 3, generator=g) * torch.tensor([0.5, 0.5, 0.8]) + torch.tensor([1.0, 1.0, 0.0])
    return torch.cat([floor, box])


def test_anchor_floor_keeps_the_floor_layer_whatever_lies_below():
    pts = floor_scene()
    plain = voxelize(pts, torch.tensor([len(pts)]), 0.05)
    anchored = voxelize(pts, torch.tensor([len(pts)]), 0.05, anchor_floor=True)
    # no strays: the lowest point is the origin, as without anchoring (and as in training)
    assert torch.equal(plain.coords, anchored.coords) and torch.equal(plain.origin, anchored.origin)
    for depth in (0.06, 0.37, 2.0):  # one stray point that far below the lowest (STRAY_DEPTH below the floor)
        stray = torch.cat([pts, torch.tensor([[0.1, 0.1, float(pts[:, 2].min()) - depth]])])
        v = voxelize(stray, torch.tensor([len(stray)]), 0.05, anchor_floor=True)
        z = v.coords[v.inverse[: len(pts)], 3].long()
        # every original point's layer is the same modulo the grid period: the strided convs pair layers alike
        want = anchored.coords[anchored.inverse, 3].long()
        # (a point within float rounding of a voxel boundary may fall either side)
        assert float(((z - want) % GRID_PERIOD == 0).float().mean()) > 0.999
        assert int(v.coords[:, 3].min()) >= 0  # the stray point is on the grid too
        unanchored = voxelize(stray, torch.tensor([len(stray)]), 0.05)
        if depth in (0.06, 0.37):  # what anchoring prevents: the floor moved to another layer pairing
            assert not torch.equal((unanchored.coords[unanchored.inverse[: len(pts)], 3].long() - want) % 2,
                                   torch.zeros_like(z))
