"""SparseUNet and the heads: shapes, sites, tiny inputs, scene independence, gradients."""
import pytest
import torch

from pcseg.models.backbone import SparseUNet
from pcseg.models.heads import EmbeddingHead, OffsetHead, SemanticHead
from pcseg.sparse import SparseTensor


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def random_sites(n, extent, batch, seed):
    g = torch.Generator().manual_seed(seed)
    xyz = torch.randint(0, extent, (n, 3), generator=g)
    b = torch.randint(0, batch, (n, 1), generator=g)
    return torch.unique(torch.cat([b, xyz], 1), dim=0).int()


@pytest.mark.parametrize("widths", [(8,), (8, 12), (6, 8, 10, 12)])
def test_output_keeps_input_sites_and_width(widths):
    torch.manual_seed(0)
    coords = random_sites(300, 12, 2, seed=1)
    x = SparseTensor(torch.randn(coords.shape[0], 4), coords)
    net = SparseUNet(4, widths=widths, blocks=2)
    y = net(x)
    assert net.out_channels == widths[0]
    assert y.features.shape == (coords.shape[0], widths[0])
    assert torch.equal(y.coords, x.coords) and y.stride == 1
    y.features.square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # Every level contributes: the coarsest encoder weights get a non-zero gradient.
    assert net.encoders[-1][0].conv1[0].weight.grad.abs().sum() > 0


def test_single_voxel_and_tiny_batches_in_training_mode():
    net = SparseUNet(3, widths=(4, 8, 16))
    net.train()
    one = SparseTensor(torch.randn(1, 3), torch.tensor([[0, 0, 0, 0]]))
    y = net(one)
    assert y.features.shape == (1, 4) and torch.isfinite(y.features).all()
    # A one-voxel scene next to a normal one; every coarse level still has 2+ sites in batch terms.
    coords = torch.tensor([[0, 5, 5, 5], [1, 0, 0, 0], [1, 1, 0, 0], [1, 7, 7, 7]])
    y = net(SparseTensor(torch.randn(4, 3), coords))
    assert y.features.shape == (4, 4) and torch.isfinite(y.features).all()
    y.features.sum().backward()


def test_scenes_do_not_interact_in_eval_mode():
    # A scene's output must not depend on the other scenes packed with it (batch index in the
    # sparse keys; eval-mode BN uses running statistics).
    torch.manual_seed(0)
    net = SparseUNet(3, widths=(4, 6, 8)).eval()
    a = random_sites(80, 8, 1, seed=2)
    b = random_sites(80, 8, 1, seed=3)
    fa, fb = torch.randn(a.shape[0], 3), torch.randn(b.shape[0], 3)
    alone = net(SparseTensor(fa, a)).features
    b_shifted = b.clone()
    b_shifted[:, 0] = 1
    both = net(SparseTensor(torch.cat([fa, fb]), torch.cat([a, b_shifted]))).features
    assert torch.allclose(both[: a.shape[0]], alone, atol=1e-5)
    # The same sites in scene 0 as a sanity check that scene b would have changed a otherwise.
    b_same = b.clone()
    b_same[:, 0] = 0
    keep = ~(b_same[:, None, :] == a[None]).all(-1).any(1)  # only b's sites a does not have
    mixed = net(SparseTensor(torch.cat([fa, fb[keep]]), torch.cat([a, b_same[keep]]))).features
    assert not torch.allclose(mixed[: a.shape[0]], alone, atol=1e-5)


def test_backbone_rejects_bad_config_and_input():
    with pytest.raises(ValueError, match="widths"):
        SparseUNet(3, widths=())
    with pytest.raises(ValueError, match="blocks"):
        SparseUNet(3, blocks=0)
    net = SparseUNet(3, widths=(4,))
    with pytest.raises(ValueError, match="input channels"):
        net(SparseTensor(torch.randn(2, 5), torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0]])))
    with pytest.raises(ValueError, match="SparseTensor"):
        net(torch.randn(2, 3))


@pytest.mark.parametrize("hidden", [None, 5])
def test_heads_shapes_and_single_row(hidden):
    f = torch.randn(7, 4)
    assert SemanticHead(4, 20, hidden)(f).shape == (7, 20)
    assert EmbeddingHead(4, 8, hidden)(f).shape == (7, 8)
    assert OffsetHead(4, hidden)(f).shape == (7, 3)
    head = SemanticHead(4, 3, hidden).train()
    assert torch.isfinite(head(f[:1])).all()  # one voxel in training mode
    with pytest.raises(ValueError, match=r"\[V, 4\]"):
        head(torch.randn(7, 5))
