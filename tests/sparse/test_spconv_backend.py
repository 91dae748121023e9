"""The spconv backend against the pure-torch reference, and backend selection."""
import pytest
import torch

from pcseg.sparse import (SparseConv3d, SparseInverseConv3d, SparseTensor, SubMConv3d,
                          available_backends, get_backend, resolve_backend, use_backend)
from pcseg.sparse import backend as selection

spconv_backend = pytest.importorskip("pcseg.sparse.spconv_backend")
pytest.importorskip("spconv.pytorch")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def random_tensor(seed, channels, batch=2, grid=8, occupancy=0.3, shift=0, dtype=torch.float64):
    """SparseTensor[M, channels]: ~occupancy of each scene's grid^3 cells, rows in random order."""
    g = torch.Generator().manual_seed(seed)
    coords = (torch.rand(batch, grid, grid, grid, generator=g) < occupancy).nonzero()
    coords[:, 1:] += shift
    coords = coords[torch.randperm(coords.shape[0], generator=g)]
    feats = torch.randn(coords.shape[0], channels, generator=g, dtype=dtype).requires_grad_()
    return SparseTensor(feats, coords)


def fresh(x):
    """Same sites and feature values, new leaf and empty cache (no kernel maps shared between runs)."""
    return SparseTensor(x.features.detach().clone().requires_grad_(), x.coords.clone(), x.stride)


def run(name, layer, *inputs):
    """Forward under backend ``name``, backward of a fixed random projection.
    -> (output SparseTensor, grads of inputs' features, grads of layer parameters)"""
    inputs = [fresh(t) for t in inputs]
    layer.zero_grad(set_to_none=True)
    with use_backend(name):
        out = layer(*inputs)
        g = torch.Generator().manual_seed(7)
        up = torch.randn(out.features.shape, generator=g, dtype=out.features.dtype)
        (out.features * up).sum().backward()
    return out, [t.features.grad for t in inputs], [p.grad.clone() for p in layer.parameters()]


def assert_same(a, b, tol):
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_submanifold_conv_matches_torch_backend(kernel_size, dtype, tol):
    x = random_tensor(0, 5, dtype=dtype, shift=-3)  # negative coordinates too
    torch.manual_seed(1)
    conv = SubMConv3d(5, 7, kernel_size, bias=True).to(dtype)
    ref = run("torch", conv, x)
    got = run("spconv", conv, x)
    assert torch.equal(got[0].coords, x.coords)
    assert_same(got[0].features, ref[0].features, tol)
    for a, b in zip(got[1] + got[2], ref[1] + ref[2]):
        assert_same(a, b, tol)


@pytest.mark.parametrize("kernel_size,stride", [(2, 2), (3, 2), (1, 2), (3, 1)])
def test_strided_conv_matches_torch_backend(kernel_size, stride):
    x = random_tensor(2, 4, shift=-5)
    torch.manual_seed(3)
    conv = SparseConv3d(4, 6, kernel_size, stride, bias=True).double()
    ref = run("torch", conv, x)
    got = run("spconv", conv, x)
    # Same output sites in the same (sorted) order, same stride.
    assert torch.equal(got[0].coords, ref[0].coords) and got[0].stride == ref[0].stride == stride
    assert_same(got[0].features, ref[0].features, 1e-10)
    for a, b in zip(got[1] + got[2], ref[1] + ref[2]):
        assert_same(a, b, 1e-10)


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_inverse_conv_matches_torch_backend(kernel_size):
    fine = random_tensor(4, 3)
    torch.manual_seed(5)
    down = SparseConv3d(3, 6, kernel_size, 2).double()
    up = SparseInverseConv3d(6, 4, kernel_size, 2, bias=True).double()

    class DownUp(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.down, self.up = down, up

        def forward(self, x):
            return self.up(self.down(x), x)

    net = DownUp()
    ref = run("torch", net, fine)
    got = run("spconv", net, fine)
    assert torch.equal(got[0].coords, fine.coords)
    assert_same(got[0].features, ref[0].features, 1e-10)
    for a, b in zip(got[1] + got[2], ref[1] + ref[2]):
        assert_same(a, b, 1e-10)
    # The inverse conv reused the strided conv's pairs: one spconv "down" entry in the cache.
    x = fresh(fine)
    with use_backend("spconv"):
        net(x)
    keys = [key for key in x.cache._entries if key[1][:2] == ("spconv", "down")]
    assert keys == [(1, ("spconv", "down", kernel_size, 2))]


def test_inverse_conv_onto_sites_the_coarse_tensor_does_not_come_from():
    # Coarse sites unrelated to target (some missing, some extra, other order): the torch backend
    # looks them up by hash; the spconv backend must give the same result.
    target = random_tensor(6, 2)
    coarse = random_tensor(8, 5, grid=4, occupancy=0.5)
    coarse = SparseTensor(coarse.features, coarse.coords, stride=2)
    torch.manual_seed(9)
    up = SparseInverseConv3d(5, 3, 2, 2).double()
    ref = run("torch", up, coarse, target)
    got = run("spconv", up, coarse, target)
    assert_same(got[0].features, ref[0].features, 1e-10)
    for a, b in zip(got[1] + got[2], ref[1] + ref[2]):
        assert_same(a, b, 1e-10)


def test_unet_state_dict_runs_the_same_on_both_backends():
    from pcseg.models.backbone import SparseUNet

    x = random_tensor(10, 3, dtype=torch.float32)
    torch.manual_seed(11)
    trained_on_torch = SparseUNet(3, (8, 16)).eval()
    other = SparseUNet(3, (8, 16)).eval()
    other.load_state_dict(trained_on_torch.state_dict())  # a checkpoint moving between backends
    ref = run("torch", trained_on_torch, x)
    got = run("spconv", other, x)
    assert torch.equal(got[0].coords, x.coords)
    assert_same(got[0].features, ref[0].features, 1e-5)
    for a, b in zip(got[1] + got[2], ref[1] + ref[2]):
        assert_same(a, b, 1e-4)
    # Training mode (batch statistics) as well, forward only.
    trained_on_torch.train(), other.train()
    with use_backend("torch"):
        a = trained_on_torch(fresh(x)).features
    with use_backend("spconv"):
        b = other(fresh(x)).features
    assert_same(b, a, 1e-5)


def test_weight_layout_conversion_is_a_lossless_permutation():
    w = torch.randn(27, 4, 6)
    s = spconv_backend.to_spconv_weight(w)
    assert s.shape == (6, 3, 3, 3, 4)
    # Offset n = (ix * 3 + iy) * 3 + iz of ours is spconv's [:, ix, iy, iz, :], transposed.
    assert torch.equal(s[:, 1, 2, 0, :], w[(1 * 3 + 2) * 3 + 0].t())
    assert torch.equal(spconv_backend.from_spconv_weight(s), w)


def test_spconv_call_is_scoped_single_threaded_and_restores_state():
    from spconv.pytorch import ops

    gomp = spconv_backend._spconv_openmp()
    original = ops.get_current_stream
    if gomp:
        gomp.omp_set_num_threads(2)
    seen = {}

    def probe(*args, **kwargs):
        seen["stream"] = ops.get_current_stream()
        seen["threads"] = gomp.omp_get_max_threads() if gomp else 1
        return real(*args, **kwargs)

    real = ops.indice_conv
    ops.indice_conv = probe
    try:
        x = random_tensor(12, 2)
        with use_backend("spconv"):
            SubMConv3d(2, 2).double()(x)
    finally:
        ops.indice_conv = real
    assert seen == {"stream": 0, "threads": 1}
    assert ops.get_current_stream is original
    if gomp:
        assert gomp.omp_get_max_threads() == 2
        gomp.omp_set_num_threads(1)


def test_spconv_layer_refuses_several_threads_on_cpu():
    x = random_tensor(13, 2)
    conv = SubMConv3d(2, 3).double()
    torch.set_num_threads(2)
    with use_backend("spconv"), pytest.raises(RuntimeError, match="set_num_threads"):
        conv(x)


def test_resolve_backend(monkeypatch):
    assert resolve_backend("auto", "cpu") == "torch"
    assert resolve_backend() == "torch"
    assert resolve_backend("torch", "cpu") == "torch"
    assert resolve_backend("spconv", torch.device("cpu")) == "spconv"
    # On CUDA, auto takes spconv only from a CUDA build; the CPU wheel must not be picked.
    monkeypatch.setattr(selection, "_spconv_has_cuda", lambda: True)
    assert resolve_backend("auto", "cuda") == "spconv"
    monkeypatch.setattr(selection, "_spconv_has_cuda", lambda: False)
    assert resolve_backend("auto", "cuda") == "torch"
    with pytest.raises(RuntimeError, match="spconv-cu12x"):
        resolve_backend("spconv", "cuda")
    torch.set_num_threads(2)
    with pytest.raises(RuntimeError, match="get_num_threads"):
        resolve_backend("spconv", "cpu")
    assert resolve_backend("auto", "cpu") == "torch"
    with pytest.raises(ValueError, match="unknown backend"):
        resolve_backend("cuda-magic")
    with pytest.raises(ValueError, match="unknown backend"):
        use_backend("Spconv")
    assert available_backends()[:2] == ["torch", "spconv"]


def test_minkowski_is_refused_clearly_when_not_importable(monkeypatch):
    monkeypatch.setitem(selection._importable, "minkowski", False)
    with pytest.raises(RuntimeError, match="not available.*MinkowskiEngine"):
        resolve_backend("minkowski")
    assert "minkowski" not in available_backends()
    x = random_tensor(14, 2)
    with use_backend("minkowski"), pytest.raises(RuntimeError, match="minkowski"):
        SubMConv3d(2, 3).double()(x)


def test_use_backend_sets_and_restores():
    assert get_backend() == "auto"
    with use_backend("spconv"):
        assert get_backend() == "spconv"
        with use_backend("torch"):
            assert get_backend() == "torch"
        assert get_backend() == "spconv"
    assert get_backend() == "auto"
    setting = use_backend("torch")
    try:
        assert get_backend() == "torch"
    finally:
        setting.__exit__(None, None, None)
    assert get_backend() == "auto"
