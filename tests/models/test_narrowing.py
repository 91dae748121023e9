"""narrow_unet_state: a narrower U-Net started from a wider one computes exactly what the wider one
computes when the dropped channels are switched off (their batch norms scaled to 0)."""
import pytest
import torch

from pcseg.models.backbone import SparseUNet
from pcseg.models.narrowing import kept_channels, narrow_unet_state
from pcseg.sparse import SparseTensor
from test_backbone import random_sites

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _randomised(net: SparseUNet, seed: int) -> SparseUNet:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.3 if p.dim() > 1 else 1.0))
        for name, b in net.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return net.eval()


@pytest.mark.parametrize("old,new,blocks", [((8, 12, 16), (5, 9, 16), 1), ((8, 12, 16), (6, 12, 10), 2),
                                            ((8, 12), (8, 12), 1)])
def test_the_narrow_net_equals_the_wide_one_with_its_dropped_channels_switched_off(old, new, blocks):
    wide = _randomised(SparseUNet(4, old, blocks), seed=1)
    state = {k: v.clone() for k, v in wide.state_dict().items()}
    kept = kept_channels(state, old, new, blocks)
    narrow = SparseUNet(4, new, blocks).eval()
    narrow.load_state_dict(narrow_unet_state(state, old, new, blocks))
    # switch the dropped channels off in the wide net: every batch norm writing them outputs 0, and the
    # decoders' shortcuts (no batch norm) write 0 into them
    with torch.no_grad():
        for name, module in wide.named_modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                space = next(s for s, ids in kept.items() if not s.startswith("cat") and _writes(name, s))
                off = torch.ones(module.num_features, dtype=torch.bool)
                off[kept[space]] = False
                module.weight[off], module.bias[off] = 0.0, 0.0
            if name.endswith("shortcut") and module is not None:
                level = int(name.split(".")[1])
                off = torch.ones(module.weight.shape[0], dtype=torch.bool)
                off[kept[f"D{level}"]] = False
                module.weight[off] = 0.0
    coords = random_sites(400, 12, 2, seed=2)
    x = SparseTensor(torch.randn(coords.shape[0], 4, generator=torch.Generator().manual_seed(3)).double(), coords)
    wide, narrow = wide.double(), narrow.double()  # float64: the sums' order differs between the two nets
    with torch.no_grad():
        expected = wide(x).features[:, kept["D0"] if len(old) > 1 else kept["S0"]]
        got = narrow(x).features
    assert got.shape == (coords.shape[0], new[0])
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)
    if old == new:  # nothing to cut: the same weights
        assert all(torch.equal(a, b) for a, b in zip(narrow.state_dict().values(), wide.state_dict().values()))


def _writes(bn_module: str, space: str) -> bool:
    """Whether the batch norm module ``bn_module`` (its name without the trailing '.1' / '.0') writes ``space``."""
    from pcseg.models.narrowing import _space_names

    writers = {w for s, ws in _space_names(4, 2).items() if s == space for w in ws}
    return bn_module in writers


def test_channels_with_the_largest_batch_norm_scales_are_kept():
    net = SparseUNet(4, (6, 8), 1)
    with torch.no_grad():
        net.stem[1].weight.copy_(torch.tensor([0.1, 5.0, 0.2, 3.0, 0.0, 1.0]))
        net.encoders[0][0].conv2[1].weight.fill_(0.5)
    kept = kept_channels(net.state_dict(), (6, 8), (3, 8))
    assert kept["S0"].tolist() == [1, 3, 5]
    assert kept["cat0"].tolist()[3:] == [6 + 1, 6 + 3, 6 + 5]  # the skip half of decoder 0's input


def test_widening_or_another_depth_is_refused():
    state = SparseUNet(4, (6, 8), 1).state_dict()
    with pytest.raises(ValueError, match="do not narrow"):
        narrow_unet_state(state, (6, 8), (7, 8))
    with pytest.raises(ValueError, match="do not narrow"):
        narrow_unet_state(state, (6, 8), (6,))
