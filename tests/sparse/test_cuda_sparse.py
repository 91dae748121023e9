"""The sparse convolutions on a GPU: the torch backend on CUDA gives what it gives on the CPU, and
spconv's CUDA build gives what the torch backend gives, forward and backward. Marked ``cuda``:
skipped without a CUDA device; benchmarks/gpu_check.py runs them on a lent GPU."""
import pytest
import torch

from pcseg.sparse import SparseConv3d, SparseInverseConv3d, SparseTensor, SubMConv3d, use_backend
from pcseg.sparse import backend as selection

pytestmark = pytest.mark.cuda


def random_tensor(seed, channels, batch=2, grid=10, occupancy=0.3, shift=-4, dtype=torch.float32):
    """SparseTensor[M, channels] on the CPU: ~occupancy of each scene's grid^3 cells, rows shuffled."""
    g = torch.Generator().manual_seed(seed)
    coords = (torch.rand(batch, grid, grid, grid, generator=g) < occupancy).nonzero()
    coords[:, 1:] += shift
    coords = coords[torch.randperm(coords.shape[0], generator=g)]
    return SparseTensor(torch.randn(coords.shape[0], channels, generator=g, dtype=dtype), coords)


def run(backend, device, layer, *inputs):
    """Forward on ``device`` under ``backend``, backward of a fixed random projection; results on the CPU.
    -> (output coords, output features, grads of the inputs' features, grads of the layer's parameters)"""
    layer = layer.to(device)
    layer.zero_grad(set_to_none=True)
    moved = [SparseTensor(t.features.to(device).requires_grad_(), t.coords.to(device), t.stride) for t in inputs]
    with use_backend(backend):
        out = layer(*moved)
        up = torch.randn(out.features.shape, generator=torch.Generator().manual_seed(7), dtype=out.features.dtype)
        (out.features * up.to(device)).sum().backward()
    grads = [t.features.grad.cpu() for t in moved] + [p.grad.cpu() for p in layer.parameters()]
    return out.coords.cpu(), out.features.detach().cpu(), grads


def assert_same(a, b, tol):
    assert torch.equal(a[0], b[0])  # the same output sites in the same order
    torch.testing.assert_close(a[1], b[1], rtol=tol, atol=tol)
    for x, y in zip(a[2], b[2]):
        torch.testing.assert_close(x, y, rtol=tol, atol=tol)


def layers():
    torch.manual_seed(0)
    return {"subm3": (SubMConv3d(5, 7, 3, bias=True), 5), "subm1": (SubMConv3d(5, 7, 1), 5),
            "down2": (SparseConv3d(4, 6, 2, 2, bias=True), 4), "down3": (SparseConv3d(4, 6, 3, 2), 4)}


@pytest.mark.parametrize("name", ["subm3", "subm1", "down2", "down3"])
def test_torch_backend_on_cuda_matches_cpu(name):
    layer, channels = layers()[name]
    x = random_tensor(1, channels, dtype=torch.float64)
    layer = layer.double()
    assert_same(run("torch", "cuda", layer, x), run("torch", "cpu", layer, x), 1e-10)


def test_inverse_conv_on_cuda_matches_cpu():
    torch.manual_seed(5)
    down, up = SparseConv3d(3, 6, 2, 2).double(), SparseInverseConv3d(6, 3, 2).double()
    fine = random_tensor(4, 3, dtype=torch.float64)
    results = []
    for device in ("cuda", "cpu"):
        down, up = down.to(device), up.to(device)
        x = SparseTensor(fine.features.to(device).requires_grad_(), fine.coords.to(device))
        with use_backend("torch"):
            coarse = down(x)
            out = up(coarse, x)
            out.features.square().sum().backward()
        results.append((out.coords.cpu(), out.features.detach().cpu(), [x.features.grad.cpu()]))
    assert_same(*results, 1e-10)


def spconv_cuda():
    if not (selection.is_importable("spconv") and selection._spconv_has_cuda()):
        pytest.skip("spconv's CUDA build is not installed (pip install spconv-cu12x)")


@pytest.mark.parametrize("name", ["subm3", "subm1", "down2", "down3"])
def test_spconv_cuda_matches_torch_backend(name):
    spconv_cuda()
    layer, channels = layers()[name]
    x = random_tensor(2, channels)
    assert_same(run("spconv", "cuda", layer, x), run("torch", "cuda", layer, x), 1e-4)


def test_auto_backend_is_spconv_on_cuda_when_its_cuda_build_is_installed():
    spconv_cuda()
    assert selection.resolve_backend("auto", "cuda") == "spconv"
