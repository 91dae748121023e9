"""The pure-PyTorch sparse conv against dense torch.nn.functional.conv3d / conv_transpose3d."""
import pytest
import torch
import torch.nn.functional as F

from pcseg.sparse import (BatchNorm, KernelMapCache, ReLU, Sequential, SparseConv3d,
                          SparseInverseConv3d, SparseTensor, SubMConv3d, from_dense_conv_weight,
                          to_dense_conv_weight)
from pcseg.sparse import torch_backend as backend

GRID = 8
BATCH = 2


pytestmark = pytest.mark.usefixtures("two_threads")  # tests/conftest.py


@pytest.fixture(autouse=True, params=["pairs", "columns"])
def conv_path(request, monkeypatch):
    """Every test runs both ways a conv can go: through its pairs (pieces, summed per row) and
    through each output row's neighbourhood (what convs with few input channels do)."""
    monkeypatch.setattr(backend, "FEW_CHANNELS", 0 if request.param == "pairs" else 1 << 20)
    return request.param


def random_sites(seed, grid=GRID, batch=BATCH, occupancy=0.3, shift=0):
    """IntTensor[M, 4] with ~occupancy of each scene's grid^3 cells active, in random row order."""
    g = torch.Generator().manual_seed(seed)
    active = torch.rand(batch, grid, grid, grid, generator=g) < occupancy
    coords = active.nonzero()
    coords[:, 1:] += shift
    return coords[torch.randperm(coords.shape[0], generator=g)].int()


def random_tensor(seed, channels, dtype=torch.float64, shift=0, **kw):
    coords = random_sites(seed, shift=shift, **kw)
    g = torch.Generator().manual_seed(seed + 1)
    feats = torch.randn(coords.shape[0], channels, generator=g, dtype=dtype).requires_grad_()
    return SparseTensor(feats, coords)


def densify(features, coords, grid=GRID, batch=BATCH, lo=0):
    """features [M, C] at coords -> [B, C, grid, grid, grid] with zeros elsewhere (differentiable)."""
    dense = features.new_zeros(batch, grid, grid, grid, features.shape[1])
    c = coords.long()
    dense[c[:, 0], c[:, 1] - lo, c[:, 2] - lo, c[:, 3] - lo] = features
    return dense.permute(0, 4, 1, 2, 3)


def read(dense, coords, lo=0):
    """[B, C, D, D, D] read at coords [M, 4] -> [M, C]."""
    c = coords.long()
    return dense.permute(0, 2, 3, 4, 1)[c[:, 0], c[:, 1] - lo, c[:, 2] - lo, c[:, 3] - lo]


def grads(out, upstream, *leaves):
    return torch.autograd.grad((out * upstream).sum(), leaves)


def layer(cls, *args, dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    return cls(*args, **kw).to(dtype)


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_submanifold_conv_equals_dense_conv_at_active_sites(kernel_size):
    x = random_tensor(0, 5)
    conv = layer(SubMConv3d, 5, 7, kernel_size, bias=True)
    y = conv(x)
    assert y.coords is x.coords and y.stride == 1 and y.cache is x.cache
    dense = F.conv3d(densify(x.features, x.coords), to_dense_conv_weight(conv.weight), conv.bias,
                     padding=kernel_size // 2)
    ref = read(dense, x.coords)
    torch.testing.assert_close(y.features, ref, rtol=1e-10, atol=1e-10)
    up = torch.randn_like(ref)
    got = grads(y.features, up, x.features, conv.weight, conv.bias)
    want = grads(ref, up, x.features, conv.weight, conv.bias)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_float32_matches_dense_to_1e_5():
    x = random_tensor(1, 16, dtype=torch.float32)
    conv = layer(SubMConv3d, 16, 24, dtype=torch.float32)
    y = conv(x)
    ref = read(F.conv3d(densify(x.features, x.coords), to_dense_conv_weight(conv.weight), padding=1), x.coords)
    torch.testing.assert_close(y.features, ref, rtol=1e-5, atol=1e-5)
    up = torch.randn_like(ref)
    for a, b in zip(grads(y.features, up, x.features, conv.weight), grads(ref, up, x.features, conv.weight)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_strided_conv_equals_dense_strided_conv_at_output_sites():
    x = random_tensor(2, 4)
    conv = layer(SparseConv3d, 4, 6, kernel_size=2, stride=2)
    y = conv(x)
    assert y.stride == 2 and y.cache is x.cache
    expected_sites = torch.unique(torch.cat([x.coords[:, :1], x.coords[:, 1:] // 2], 1), dim=0)
    assert torch.equal(y.coords, expected_sites)  # floor(coord / 2), sorted by (b, x, y, z)
    dense = F.conv3d(densify(x.features, x.coords), to_dense_conv_weight(conv.weight), stride=2)
    ref = read(dense, y.coords)
    torch.testing.assert_close(y.features, ref, rtol=1e-10, atol=1e-10)
    up = torch.randn_like(ref)
    for a, b in zip(grads(y.features, up, x.features, conv.weight), grads(ref, up, x.features, conv.weight)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_strided_conv_with_kernel_larger_than_stride():
    # kernel 3, stride 2: output q sees inputs 2q .. 2q+2, so q runs from -1 to 3 on an 8-grid.
    x = random_tensor(3, 3)
    conv = layer(SparseConv3d, 3, 5, kernel_size=3, stride=2)
    y = conv(x)
    padded = F.pad(densify(x.features, x.coords), (2, 2) * 3)
    dense = F.conv3d(padded, to_dense_conv_weight(conv.weight), stride=2)   # index j <-> q = j - 1
    occupied = F.conv3d(F.pad(densify(torch.ones_like(x.features[:, :1]), x.coords), (2, 2) * 3),
                        torch.ones(1, 1, 3, 3, 3, dtype=torch.float64), stride=2)
    want_sites = occupied[:, 0].nonzero().int()
    want_sites[:, 1:] -= 1
    assert torch.equal(y.coords, want_sites)
    ref = read(dense, y.coords, lo=-1)
    torch.testing.assert_close(y.features, ref, rtol=1e-10, atol=1e-10)
    up = torch.randn_like(ref)
    for a, b in zip(grads(y.features, up, x.features, conv.weight), grads(ref, up, x.features, conv.weight)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_inverse_conv_equals_dense_transposed_conv_at_target_sites():
    x = random_tensor(4, 4)
    down = layer(SparseConv3d, 4, 6)
    inv = layer(SparseInverseConv3d, 6, 3, bias=True, seed=1)
    z = down(x)
    coarse = z.features.detach().requires_grad_()
    u = inv(z.replace_feature(coarse), x)
    assert u.coords is x.coords and u.stride == 1 and u.cache is x.cache
    dense = F.conv_transpose3d(densify(coarse, z.coords, grid=GRID // 2),
                               to_dense_conv_weight(inv.weight, transposed=True), inv.bias, stride=2)
    ref = read(dense, x.coords)
    torch.testing.assert_close(u.features, ref, rtol=1e-10, atol=1e-10)
    up = torch.randn_like(ref)
    got = grads(u.features, up, coarse, inv.weight, inv.bias)
    want = grads(ref, up, coarse, inv.weight, inv.bias)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_inverse_conv_reuses_the_downsampling_map_and_falls_back_to_lookup():
    x = random_tensor(5, 4)
    down, inv = layer(SparseConv3d, 4, 6), layer(SparseInverseConv3d, 6, 3)
    z = down(x)
    dmap = backend.get_downsample_map(x, 2, 2)
    umap = backend.get_upsample_map(z, x, 2, 2)
    assert len(umap.pairs) == len(dmap.pairs) > 0
    assert all(u[1] is d[2] and u[2] is d[1] for u, d in zip(umap.pairs, dmap.pairs))
    # The same coarse sites in another row order, in a tensor of their own: looked up by hash.
    perm = torch.randperm(z.num_sites, generator=torch.Generator().manual_seed(0))
    z2 = SparseTensor(z.features[perm], z.coords[perm], stride=2)
    torch.testing.assert_close(inv(z2, x).features, inv(z, x).features, rtol=1e-12, atol=1e-12)


def test_scenes_in_a_batch_do_not_mix():
    both = random_tensor(6, 3, batch=2)
    net = Sequential(layer(SubMConv3d, 3, 4), ReLU())
    down = layer(SparseConv3d, 4, 5)
    out = down(net(both))
    for b in range(2):
        rows = both.coords[:, 0] == b
        alone = SparseTensor(both.features[rows], both.coords[rows] * torch.tensor([0, 1, 1, 1], dtype=torch.int32))
        single = down(net(alone))
        mine = out.coords[:, 0] == b
        assert torch.equal(single.coords[:, 1:], out.coords[mine, 1:])
        torch.testing.assert_close(single.features, out.features[mine], rtol=1e-12, atol=1e-12)


def test_negative_coordinates_translate_exactly():
    base = random_tensor(7, 3)
    shifted = SparseTensor(base.features, base.coords - torch.tensor([0, 6, 10, 4], dtype=torch.int32))
    assert int(shifted.coords[:, 1:].min()) < 0
    subm, down = layer(SubMConv3d, 3, 4), layer(SparseConv3d, 4, 5)
    inv = layer(SparseInverseConv3d, 5, 2)
    a1 = subm(base); a2 = down(a1); a3 = inv(a2, a1)
    b1 = subm(shifted); b2 = down(b1); b3 = inv(b2, b1)
    torch.testing.assert_close(b1.features, a1.features, rtol=1e-12, atol=1e-12)
    assert torch.equal(b2.coords, a2.coords - torch.tensor([0, 3, 5, 2], dtype=torch.int32))
    torch.testing.assert_close(b2.features, a2.features, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(b3.features, a3.features, rtol=1e-12, atol=1e-12)


def test_hash_round_trip_with_negative_coordinates():
    coords = torch.tensor([[0, -32704, 0, 32703], [3, -1, -1, -1], [32767, 5, -7, 0]], dtype=torch.int32)
    keys = backend.hash_coords(coords)
    assert torch.equal(backend.unhash_keys(keys), coords)
    assert bool((keys >= 0).all())


def test_kernel_offset_order_is_z_fastest_like_conv3d():
    # A Conv3d weight with a single 1 at [ix, iy, iz] = [2, 1, 1] reads the site at +1 along x.
    dense_w = torch.zeros(1, 1, 3, 3, 3, dtype=torch.float64)
    dense_w[0, 0, 2, 1, 1] = 1.0
    w = from_dense_conv_weight(dense_w)
    assert w.shape == (27, 1, 1) and w[(2 * 3 + 1) * 3 + 1, 0, 0] == 1.0
    coords = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], dtype=torch.int32)
    x = SparseTensor(torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64), coords)
    conv = layer(SubMConv3d, 1, 1)
    with torch.no_grad():
        conv.weight.copy_(w)
    assert conv(x).features[:, 0].tolist() == [2.0, 0.0, 0.0]


def test_weight_conversion_round_trip():
    w = torch.randn(27, 4, 6)
    dense = to_dense_conv_weight(w)
    assert dense.shape == (6, 4, 3, 3, 3)
    assert torch.equal(from_dense_conv_weight(dense), w)
    dense_t = to_dense_conv_weight(w, transposed=True)
    assert dense_t.shape == (4, 6, 3, 3, 3)
    assert torch.equal(from_dense_conv_weight(dense_t, transposed=True), w)
    conv = torch.nn.Conv3d(4, 6, 3, bias=False)
    assert torch.equal(to_dense_conv_weight(from_dense_conv_weight(conv.weight.detach())), conv.weight.detach())


def test_layers_share_one_kernel_map_per_stride_and_kernel(monkeypatch):
    built = []
    original = backend.submanifold_map
    monkeypatch.setattr(backend, "submanifold_map", lambda *a: built.append(a) or original(*a))
    x = random_tensor(8, 3)
    net = Sequential(layer(SubMConv3d, 3, 4), BatchNorm(4).double(), ReLU(), layer(SubMConv3d, 4, 4))
    y = net(x)
    assert len(built) == 1 and y.cache is x.cache
    assert backend.get_submanifold_map(x, 3) is backend.get_submanifold_map(y, 3)
    layer(SubMConv3d, 4, 2)(y)
    assert len(built) == 1
    layer(SubMConv3d, 4, 2, kernel_size=5)(y)
    assert len(built) == 2


def test_results_are_deterministic():
    def run():
        x = random_tensor(9, 8, dtype=torch.float32)
        subm, down = layer(SubMConv3d, 8, 16, dtype=torch.float32), layer(SparseConv3d, 16, 16, dtype=torch.float32)
        inv = layer(SparseInverseConv3d, 16, 8, dtype=torch.float32)
        y = subm(x)
        u = inv(down(y), y)
        u.features.pow(2).sum().backward()
        return u.features.detach(), x.features.grad, subm.weight.grad, down.weight.grad
    for a, b in zip(run(), run()):
        assert torch.equal(a, b)


def test_replace_feature_returns_a_new_tensor():
    x = random_tensor(10, 3)
    f = torch.zeros(x.num_sites, 5, dtype=torch.float64)
    y = x.replace_feature(f)
    assert y is not x and y.features is f and x.features.shape[1] == 3
    assert y.coords is x.coords and y.cache is x.cache
    with pytest.raises(ValueError, match="expected .* rows"):
        x.replace_feature(f[:-1])


@pytest.mark.parametrize("features, coords, match", [
    (torch.zeros(3, 2), torch.zeros(3, 4), "integer tensor"),
    (torch.zeros(3, 2), torch.zeros(3, 3, dtype=torch.int32), r"shape \[M, 4\]"),
    (torch.zeros(3, 2), torch.zeros(4, 4, dtype=torch.int32), "3 rows but coords has 4"),
    (torch.zeros(3), torch.zeros(3, 4, dtype=torch.int32), r"shape \[M, C\]"),
    (torch.zeros(3, 2, dtype=torch.int64), torch.zeros(3, 4, dtype=torch.int32), "floating-point"),
    (torch.zeros(1, 2), torch.tensor([[-1, 0, 0, 0]]), "batch index"),
    (torch.zeros(1, 2), torch.tensor([[0, 0, 40000, 0]]), "must lie in"),
])
def test_bad_tensors_raise_clear_errors(features, coords, match):
    with pytest.raises(ValueError, match=match):
        SparseTensor(features, coords)


def test_bad_layer_use_raises_clear_errors():
    x = random_tensor(11, 3)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        SubMConv3d(3, 4, kernel_size=2)
    with pytest.raises(ValueError, match="expected 5 input channels, got 3"):
        layer(SubMConv3d, 5, 4)(x)
    with pytest.raises(ValueError, match="expected a SparseTensor"):
        layer(SubMConv3d, 3, 4)(x.features)
    with pytest.raises(ValueError, match="stride 1, expected target stride 1"):
        layer(SparseInverseConv3d, 3, 3)(x, x)
    dup = torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3]], dtype=torch.int32)
    with pytest.raises(ValueError, match="duplicate sites"):
        layer(SubMConv3d, 3, 4)(SparseTensor(torch.zeros(2, 3, dtype=torch.float64), dup))
    moved = x.coords.clone()
    moved[0, 1] = 100  # outside the 8-grid, so still unique
    other = SparseTensor(x.features, moved, cache=x.cache)
    layer(SubMConv3d, 3, 4)(x)
    with pytest.raises(ValueError, match="differ from the ones"):
        layer(SubMConv3d, 3, 4)(other)
    with pytest.raises(ValueError, match="cache must be a KernelMapCache"):
        SparseTensor(x.features, x.coords, cache={})
    assert isinstance(x.cache, KernelMapCache)


def test_empty_tensor_passes_through_every_layer():
    x = SparseTensor(torch.zeros(0, 3, requires_grad=True), torch.zeros(0, 4, dtype=torch.int32))
    y = SubMConv3d(3, 4)(x)
    z = SparseConv3d(4, 5)(y)
    u = SparseInverseConv3d(5, 2)(z, y)
    assert y.features.shape == (0, 4) and z.features.shape == (0, 5) and u.features.shape == (0, 2)
    u.features.sum().backward()
    assert x.features.grad.shape == (0, 3)


@pytest.mark.parametrize("shift", [0, -37])
def test_tiling_downsample_map_gives_the_searched_maps_pairs_in_order(shift):
    coords = random_sites(5, shift=shift)
    fast = backend.downsample_map(coords, 2, 2)  # kernel = stride: one coarse site per fine site
    searched = backend._searched_downsample_map(coords, 2, 2)
    assert fast.n_out == searched.n_out and torch.equal(fast.out_coords, searched.out_coords)
    assert [n for n, _, _ in fast.pairs] == [n for n, _, _ in searched.pairs]
    for (_, i, o), (_, i_ref, o_ref) in zip(fast.pairs, searched.pairs):
        assert torch.equal(i, i_ref) and torch.equal(o, o_ref)


def test_submanifold_map_mirrors_the_offsets_it_does_not_search():
    coords = random_sites(6, shift=-5)
    table = backend.HashTable(coords)
    kmap = backend.submanifold_map(table, 3)
    shifts = backend.offset_keys(backend.kernel_offsets(3) - 1)
    assert [n for n, _, _ in kmap.pairs] == sorted(n for n, _, _ in kmap.pairs) and kmap.identity == 13
    found = {n: (i, o) for n, i, o in kmap.pairs}
    for n in range(27):
        if n == 13:
            continue
        source = table.lookup(table.keys + shifts[n])  # output row r reads input row source[r]
        rows = torch.nonzero(source >= 0).squeeze(1)
        want = sorted(zip(rows.tolist(), source[rows].tolist()))
        i, o = found.get(n, (torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)))
        assert sorted(zip(o.tolist(), i.tolist())) == want, n


@pytest.mark.parametrize("kind", ["submanifold", "strided"])
def test_convs_in_pieces_of_a_few_products_equal_dense_convs(monkeypatch, kind):
    """Output rows go through gather, product and sum a piece at a time (for the cache): with
    pieces of about 7 products the outputs and both gradients still equal the dense conv's."""
    monkeypatch.setattr(backend, "PIECE_PRODUCTS", 7)
    x = random_tensor(3, 4)
    if kind == "submanifold":
        conv = layer(SubMConv3d, 4, 6, 3)
        y = conv(x)
        dense = F.conv3d(densify(x.features, x.coords), to_dense_conv_weight(conv.weight), padding=1)
        ref = read(dense, x.coords)
        kmap = backend.get_submanifold_map(x, 3)
    else:
        conv = layer(SparseConv3d, 4, 6, 2, 2)
        y = conv(x)
        dense = F.conv3d(densify(x.features, x.coords), to_dense_conv_weight(conv.weight), stride=2)
        ref = read(dense, y.coords)
        kmap = backend.get_downsample_map(x, 2, 2)
    torch.testing.assert_close(y.features, ref, rtol=1e-10, atol=1e-10)
    up = torch.randn_like(ref)
    for a, b in zip(grads(y.features, up, x.features, conv.weight), grads(ref, up, x.features, conv.weight)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert len(kmap.blocks(1)[0].pieces) > 10 and len(kmap.transposed().blocks(1)[0].pieces) > 10


def test_each_row_of_a_piece_sums_its_products_identity_first_then_offsets_in_order():
    x = random_tensor(4, 3, grid=9, occupancy=0.5)
    kmap = backend.get_submanifold_map(x, 3)
    # the transposed map's pieces are kmap's mirrored (offset n -> 26 - n), not cut again
    for twin, order in ((kmap, 1), (kmap.transposed(), -1)):
        for count in (1, 2):
            seen = []
            for block in twin.blocks(count):
                for piece in block.pieces:
                    assert block.lo <= piece.lo < piece.hi <= block.hi
                    # what each buffer row holds: (output row, offset), identity rows first
                    held = [(r, twin.identity) for r in range(piece.lo, piece.hi)]
                    held += [(o, n) for n, _, out_idx in piece.pairs for o in out_idx.tolist()]
                    assert piece.size == len(held)
                    ends = piece.bag_offsets.tolist()[1:] + [piece.size]
                    for r, (start, end) in enumerate(zip(piece.bag_offsets.tolist(), ends)):
                        got = [held[j] for j in piece.bag[start:end].tolist()]
                        offsets = [n for _, n in got]
                        assert {o for o, _ in got} == {piece.lo + r} and offsets[0] == twin.identity
                        assert offsets[1:] == sorted(offsets[1:], key=lambda n: order * n)
                    seen += [(n, i, o) for n, in_idx, out_idx in piece.pairs
                             for i, o in zip(in_idx.tolist(), out_idx.tolist())]
            want = [(n, i, o) for n, in_idx, out_idx in twin.pairs for i, o in zip(in_idx.tolist(), out_idx.tolist())]
            assert sorted(seen) == sorted(want)


@pytest.mark.parametrize("kind", ["submanifold", "strided"])
def test_without_gradients_a_conv_scatters_and_gives_the_same_outputs(kind):
    """Inference on a new scene uses each map about once: no pieces are built for it (nor a
    neighbour table for a few-channel conv), and the outputs equal the training forward's."""
    x = random_tensor(5, 4)
    conv = layer(SubMConv3d, 4, 6, 3) if kind == "submanifold" else layer(SparseConv3d, 4, 6, 2, 2)
    with torch.no_grad():
        y = conv(x)
    kmap = backend.get_submanifold_map(x, 3) if kind == "submanifold" else backend.get_downsample_map(x, 2, 2)
    assert not kmap._blocks and kmap._neighbours is None
    again = conv(SparseTensor(x.features.detach().requires_grad_(), x.coords))  # a new cache
    torch.testing.assert_close(y.features, again.features, rtol=1e-12, atol=1e-12)
