"""BottomUpSegmenter: train/eval outputs, the voxel -> point map, bad input, and overfitting."""
import math

import pytest
import torch

from pcseg.models.segmenter import BottomUpSegmenter, build_bottomup
from pcseg.models.backbone import SparseUNet
from pcseg.models.heads import EmbeddingHead, SemanticHead
from pcseg.structures import Batch


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def random_batch(counts=(120, 80), channels=3, seed=0, num_classes=5):
    g = torch.Generator().manual_seed(seed)
    m = sum(counts)
    return Batch(points=torch.rand(m, 3, generator=g), features=torch.rand(m, channels, generator=g),
                 offset=torch.cumsum(torch.tensor(counts), 0),
                 semantic=torch.randint(-1, num_classes, (m,), generator=g),
                 instance=torch.randint(-1, 4, (m,), generator=g))


def tiny_model(offsets=True, **kw):
    torch.manual_seed(0)
    return build_bottomup(3, num_classes=5, embed_dim=4, widths=(8, 16), voxel_size=0.1,
                          offsets=offsets, **kw)


def test_training_returns_named_losses_and_gradients_reach_every_parameter():
    model = tiny_model().train()
    losses = model(random_batch())
    assert set(losses) == {"semantic", "pull", "push", "reg", "embedding", "offset_l1",
                           "offset_direction", "total"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    expected = (losses["semantic"] + losses["embedding"] + losses["offset_l1"]
                + losses["offset_direction"])
    assert losses["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    losses["total"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_loss_weights_and_no_offset_branch():
    model = tiny_model(offsets=False, loss_weights={"semantic": 2.0, "embedding": 0.5}).train()
    losses = model(random_batch())
    assert "offset_l1" not in losses
    assert losses["total"].item() == pytest.approx(
        2.0 * losses["semantic"].item() + 0.5 * losses["embedding"].item(), rel=1e-6)
    with pytest.raises(ValueError, match="unknown loss weight 'semantc'"):
        tiny_model(loss_weights={"semantc": 1.0})


def test_eval_outputs_per_point_and_equal_within_a_voxel():
    batch = random_batch()
    model = tiny_model().eval()
    with torch.no_grad():
        out = model(batch)
    m = batch.points.shape[0]
    assert out["semantic_logits"].shape == (m, 5)
    assert out["embeddings"].shape == (m, 4)
    assert out["offsets"].shape == (m, 3)
    # Two points in the same voxel of the same scene get the same outputs; the same position in
    # the other scene is a different voxel.
    pts = torch.tensor([[0.01, 0.01, 0.01], [0.05, 0.02, 0.08], [0.9, 0.9, 0.9], [0.01, 0.01, 0.01],
                        [0.6, 0.2, 0.3]])
    feats = torch.tensor([[1.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1]])
    small = Batch(pts, feats, torch.tensor([3, 5]))
    with torch.no_grad():
        out = model(small)
    emb = out["embeddings"]
    assert torch.equal(emb[0], emb[1])
    assert not torch.allclose(emb[0], emb[3])
    assert "offsets" not in tiny_model(offsets=False).eval()(small)
    # once per voxel, as prediction groups them: the inverse map gives back the points' outputs
    with torch.no_grad():
        per_voxel, voxels = model.voxel_outputs(batch)
        per_point = model(batch)
    assert per_voxel.keys() == per_point.keys() and voxels.num_voxels < m
    for name, value in per_voxel.items():
        assert torch.equal(value[voxels.inverse], per_point[name])


def test_single_point_scene_and_single_point_batch_train():
    model = tiny_model().train()
    one = Batch(torch.zeros(1, 3), torch.ones(1, 3), torch.tensor([1]), torch.tensor([2]), torch.tensor([0]))
    losses = model(one)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["total"].backward()
    # An empty scene inside a batch is fine too.
    batch = random_batch(counts=(30, 0, 1))
    assert torch.isfinite(model(batch)["total"])


def test_bad_input_is_rejected_with_the_field_named():
    model = tiny_model().train()
    batch = random_batch()
    empty = Batch(torch.zeros(0, 3), torch.zeros(0, 3), torch.tensor([0]), torch.zeros(0, dtype=torch.long),
                  torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="Batch.points is empty"):
        model(empty)
    feats = batch.features.clone()
    feats[7, 1] = math.nan
    with pytest.raises(ValueError, match="Batch.features.*point 7"):
        model(Batch(batch.points, feats, batch.offset, batch.semantic, batch.instance))
    pts = batch.points.clone()
    pts[3, 0] = math.inf
    with pytest.raises(ValueError, match="Batch.points.*point 3"):
        model(Batch(pts, batch.features, batch.offset, batch.semantic, batch.instance))
    with pytest.raises(ValueError, match="Batch.features has 4 channels"):
        model(Batch(batch.points, torch.rand(200, 4), batch.offset, batch.semantic, batch.instance))
    with pytest.raises(ValueError, match="Batch.semantic targets"):
        model(Batch(batch.points, batch.features, batch.offset))
    sem = batch.semantic.clone()
    sem[0] = 5
    with pytest.raises(ValueError, match="Batch.semantic must be in 0..4"):
        model(Batch(batch.points, batch.features, batch.offset, sem, batch.instance))
    inst = batch.instance.clone()
    inst[0] = -2
    with pytest.raises(ValueError, match="Batch.instance"):
        model(Batch(batch.points, batch.features, batch.offset, batch.semantic, inst))
    with pytest.raises(ValueError, match="voxel_size"):
        tiny_model().__class__(SparseUNet(3, (4,)), SemanticHead(4, 5), EmbeddingHead(4, 2), voxel_size=0)
    # Eval needs no targets.
    model.eval()
    assert model(Batch(batch.points, batch.features, batch.offset))["embeddings"].shape == (200, 4)


def test_composed_from_parts():
    backbone = SparseUNet(3, widths=(6, 10))
    model = BottomUpSegmenter(backbone, SemanticHead(6, 4), EmbeddingHead(6, 3), None, voxel_size=0.1,
                              num_classes=4, class_weights=torch.tensor([1.0, 2.0, 1.0, 1.0]))
    assert model.offset_head is None and model.class_weights.shape == (4,)
    assert model.eval()(random_batch(num_classes=4))["embeddings"].shape == (200, 3)


# --- overfitting ---------------------------------------------------------------------------------

def _box_surface(g, lo, hi, n):
    lo, hi = torch.tensor(lo), torch.tensor(hi)
    p = lo + torch.rand(n, 3, generator=g) * (hi - lo)
    axis = torch.randint(0, 3, (n,), generator=g)
    on_hi = torch.randint(0, 2, (n,), generator=g).bool()
    rows = torch.arange(n)
    p[rows, axis] = torch.where(on_hi, hi[axis], lo[axis])
    return p


def two_touching_boxes():
    """A floor (class 1, no instance) and two touching boxes of class 0, instances 0 and 1, with
    the same colour: only geometry tells the boxes apart."""
    g = torch.Generator().manual_seed(0)
    floor = torch.rand(160, 3, generator=g) * torch.tensor([1.0, 0.6, 0.0])
    a = _box_surface(g, (0.1, 0.1, 0.0), (0.5, 0.5, 0.4), 150)
    b = _box_surface(g, (0.5, 0.1, 0.0), (0.9, 0.5, 0.4), 150)
    colours = torch.cat([torch.full((160, 3), 0.5), torch.tensor([0.6, 0.4, 0.2]).expand(300, 3)])
    colours = colours + 0.02 * torch.randn(colours.shape, generator=g)
    semantic = torch.cat([torch.full((160,), 1), torch.zeros(300)]).long()
    instance = torch.cat([torch.full((160,), -1), torch.zeros(150), torch.ones(150)]).long()
    return Batch(torch.cat([floor, a, b]), colours, torch.tensor([460]), semantic, instance)


def test_overfits_one_scene_semantics_and_separable_embeddings():
    torch.manual_seed(0)
    batch = two_touching_boxes()
    model = build_bottomup(3, num_classes=2, embed_dim=4, widths=(16, 32, 48), voxel_size=0.05)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(100):
        losses = model(batch)
        first = losses if first is None else first
        opt.zero_grad()
        losses["total"].backward()
        opt.step()
    # Measured (seeds 0-2): semantic 0.71-0.74 -> ~0.11, pull ~0.05, push < 0.01.
    assert losses["semantic"].item() < 0.3 * first["semantic"].item()
    assert losses["pull"].item() < 0.1 and losses["push"].item() < 0.1

    model.eval()
    with torch.no_grad():
        out = model(batch)
    accuracy = (out["semantic_logits"].argmax(1) == batch.semantic).float().mean().item()
    assert accuracy > 0.85  # the floor and box bottoms share voxels, so not 1.0
    emb = out["embeddings"]
    ea, eb = emb[160:310], emb[310:]
    ca, cb = ea.mean(0), eb.mean(0)
    # Measured: centres ~2.9 apart (push margin 2 delta_d = 3), mean spread ~0.41 (delta_v = 0.5).
    assert (ca - cb).norm().item() > 2.0
    assert (ea - ca).norm(dim=1).mean().item() < 0.6
    assert (eb - cb).norm(dim=1).mean().item() < 0.6
    nearer_own = torch.cat([(ea - ca).norm(dim=1) < (ea - cb).norm(dim=1),
                            (eb - cb).norm(dim=1) < (eb - ca).norm(dim=1)]).float().mean().item()
    assert nearer_own > 0.95  # measured 0.98; points on the shared face share voxels with the other box
