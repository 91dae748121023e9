"""The MinkowskiEngine backend against the pure-torch reference (runs where MinkowskiEngine is built)."""
import pytest
import torch

from pcseg.sparse import SparseConv3d, SparseInverseConv3d, SparseTensor, SubMConv3d, use_backend
from pcseg.sparse.backend import is_importable
from pcseg.sparse.minkowski_backend import me_kernel_order, to_me_weight


def test_kernel_order_is_x_fastest_permutation_of_ours():
    order = me_kernel_order(3)
    assert sorted(order.tolist()) == list(range(27))
    # ME offset 1 is (ix, iy, iz) = (1, 0, 0): our index (1 * 3 + 0) * 3 + 0 = 9; ME 3 is (0, 1, 0): ours 3.
    assert order[1] == 9 and order[3] == 3 and order[9] == 1 and order[13] == 13
    w = torch.randn(8, 2, 3)
    assert torch.equal(to_me_weight(w)[1], w[4])  # k = 2: ME (1, 0, 0) is our (1 * 2 + 0) * 2 + 0


needs_me = pytest.mark.skipif(not is_importable("minkowski"),
                              reason="MinkowskiEngine is not installed (optional: bash scripts/build_minkowskiengine.sh)")


def random_tensor(seed, channels, batch=2, grid=8, occupancy=0.3, shift=0):
    g = torch.Generator().manual_seed(seed)
    coords = (torch.rand(batch, grid, grid, grid, generator=g) < occupancy).nonzero()
    coords[:, 1:] += shift
    coords = coords[torch.randperm(coords.shape[0], generator=g)]
    return SparseTensor(torch.randn(coords.shape[0], channels, generator=g), coords)


def fresh(x):
    return SparseTensor(x.features.detach().clone().requires_grad_(), x.coords.clone(), x.stride)


def run(name, layer, *inputs):
    inputs = [fresh(t) for t in inputs]
    layer.zero_grad(set_to_none=True)
    with use_backend(name):
        out = layer(*inputs)
        up = torch.randn(out.features.shape, generator=torch.Generator().manual_seed(7))
        (out.features * up).sum().backward()
    return out, [t.features.grad for t in inputs], [p.grad.clone() for p in layer.parameters()]


def assert_all_close(got, ref, tol=1e-4):
    torch.testing.assert_close(got[0].features, ref[0].features, rtol=tol, atol=tol)
    for a, b in zip(got[1] + got[2], ref[1] + ref[2]):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@needs_me
@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_submanifold_conv_matches_torch_backend(kernel_size):
    x = random_tensor(0, 5, shift=-3)
    torch.manual_seed(1)
    conv = SubMConv3d(5, 7, kernel_size, bias=True)
    ref, got = run("torch", conv, x), run("minkowski", conv, x)
    assert torch.equal(got[0].coords, x.coords)
    assert_all_close(got, ref)


@needs_me
def test_strided_conv_matches_torch_backend():
    x = random_tensor(2, 4, shift=-5)
    torch.manual_seed(3)
    conv = SparseConv3d(4, 6, 2, 2, bias=True)
    ref, got = run("torch", conv, x), run("minkowski", conv, x)
    assert torch.equal(got[0].coords, ref[0].coords) and got[0].stride == 2
    assert_all_close(got, ref)


@needs_me
def test_down_then_inverse_conv_matches_torch_backend():
    fine = random_tensor(4, 3, shift=-2)
    torch.manual_seed(5)

    class DownUp(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.down, self.up = SparseConv3d(3, 6, 2, 2), SparseInverseConv3d(6, 4, 2, 2, bias=True)

        def forward(self, x):
            return self.up(self.down(x), x)

    net = DownUp()
    ref, got = run("torch", net, fine), run("minkowski", net, fine)
    assert torch.equal(got[0].coords, fine.coords)
    assert_all_close(got, ref)


@needs_me
def test_unet_checkpoint_runs_the_same_on_minkowski():
    from pcseg.models.backbone import SparseUNet

    x = random_tensor(10, 3, grid=12, shift=-7)  # negative coordinates through 3 levels
    torch.manual_seed(11)
    trained_on_torch = SparseUNet(3, (8, 16, 24)).eval()
    other = SparseUNet(3, (8, 16, 24)).eval()
    other.load_state_dict(trained_on_torch.state_dict())
    ref, got = run("torch", trained_on_torch, x), run("minkowski", other, x)
    assert torch.equal(got[0].coords, x.coords)
    assert_all_close(got, ref, 1e-4)
