"""Losses against values worked out by hand on tiny inputs."""
import math

import pytest
import torch

from pcseg.models.losses import discriminative_loss, offset_loss, semantic_loss


# --- semantic ------------------------------------------------------------------------------------

def test_semantic_loss_hand_values_with_ignore_and_weights():
    # Row 0: softmax([0, ln 3]) = [1/4, 3/4], target 1 -> -ln(3/4) = ln(4/3).
    # Row 1: softmax([0, 0]) = [1/2, 1/2], target 0 -> ln 2.  Row 2 is ignored.
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0], [50.0, -50.0]], requires_grad=True)
    target = torch.tensor([1, 0, -1])
    loss = semantic_loss(logits, target)
    assert loss.item() == pytest.approx((math.log(4 / 3) + math.log(2)) / 2, rel=1e-6)
    # Weights [1, 3]: weighted mean (3 ln(4/3) + 1 ln 2) / (3 + 1).
    weighted = semantic_loss(logits, target, weight=torch.tensor([1.0, 3.0]))
    assert weighted.item() == pytest.approx((3 * math.log(4 / 3) + math.log(2)) / 4, rel=1e-6)
    loss.backward()
    assert torch.all(logits.grad[2] == 0)  # the ignored row gets no gradient


def test_semantic_loss_all_ignored_is_zero_with_grad():
    logits = torch.randn(4, 3, requires_grad=True)
    loss = semantic_loss(logits, torch.full((4,), -1))
    assert loss.item() == 0.0 and not torch.isnan(loss)
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(4, 3))


def test_semantic_loss_rejects_bad_targets():
    with pytest.raises(ValueError, match="0..1"):
        semantic_loss(torch.zeros(2, 2), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="target"):
        semantic_loss(torch.zeros(2, 2), torch.tensor([0, 1, 1]))


# --- discriminative ------------------------------------------------------------------------------

def _two_scene_example():
    """Scene 0: instance 0 at (0,0), (2,0) [centre (1,0)], instance 1 at (1,2) twice [centre (1,2)].
    Scene 1: instance 0 (same id as in scene 0!) at (3,4), and an ignored point."""
    emb = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 2.0], [1.0, 2.0], [3.0, 4.0], [100.0, 100.0]])
    inst = torch.tensor([0, 0, 1, 1, 0, -1])
    scene = torch.tensor([0, 0, 0, 0, 1, 1])
    return emb, inst, scene


def test_discriminative_loss_hand_values_two_scenes():
    emb, inst, scene = _two_scene_example()
    out = discriminative_loss(emb, inst, scene, delta_v=0.5, delta_d=1.5, alpha=1, beta=1, gamma=0.001)
    # Scene 0: pull = mean(relu(1 - .5)^2 = .25 for both points of inst 0, 0 for inst 1) = .125;
    #          centres 2 apart: push = relu(3 - 2)^2 = 1 for both ordered pairs -> 1;
    #          reg = (|(1,0)| + |(1,2)|) / 2 = (1 + sqrt 5) / 2.
    # Scene 1: one instance: pull 0, push 0 (no pairs), reg = |(3,4)| = 5.
    pull, push, reg = 0.125 / 2, 1.0 / 2, ((1 + math.sqrt(5)) / 2 + 5) / 2
    assert out["pull"].item() == pytest.approx(pull, rel=1e-6)
    assert out["push"].item() == pytest.approx(push, rel=1e-6)
    assert out["reg"].item() == pytest.approx(reg, rel=1e-6)
    assert out["total"].item() == pytest.approx(pull + push + 0.001 * reg, rel=1e-6)
    weighted = discriminative_loss(emb, inst, scene, alpha=2, beta=3, gamma=0.5)
    assert weighted["total"].item() == pytest.approx(2 * pull + 3 * push + 0.5 * reg, rel=1e-6)


def test_discriminative_loss_does_not_mix_scenes():
    emb, inst, scene = _two_scene_example()
    shared = discriminative_loss(emb, inst, scene)
    # Renaming scene 1's instance changes nothing: (scene, id) is the identity.
    renamed = discriminative_loss(emb, torch.tensor([0, 0, 1, 1, 7, -1]), scene)
    for key in shared:
        assert shared[key].item() == pytest.approx(renamed[key].item(), rel=1e-6)
    # Putting everything in one scene does merge id 0 across the two groups: a different loss.
    merged = discriminative_loss(emb, inst, torch.zeros(6, dtype=torch.long))
    assert merged["pull"].item() != pytest.approx(shared["pull"].item(), rel=1e-3)
    # Far-apart scenes: a pair across scenes would have no hinge, but a close instance in another
    # scene must not create a push term either.
    emb2 = torch.tensor([[0.0, 0.0], [0.1, 0.0]])
    out = discriminative_loss(emb2, torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert out["push"].item() == 0.0


def test_discriminative_push_three_instances_one_scene():
    # 1-D centres 0, 1, 5 (one point each), 2 delta_d = 3: only the pair (0, 1) is closer than 3:
    # relu(3 - 1)^2 = 4, counted in both orders, over 3 * 2 ordered pairs -> 8 / 6.
    emb = torch.tensor([[0.0], [1.0], [5.0]])
    out = discriminative_loss(emb, torch.tensor([2, 0, 1]), torch.zeros(3, dtype=torch.long))
    assert out["push"].item() == pytest.approx(8 / 6, rel=1e-6)
    assert out["pull"].item() == 0.0
    assert out["reg"].item() == pytest.approx(2.0, rel=1e-6)  # (0 + 1 + 5) / 3


def test_discriminative_loss_degenerate_cases_are_finite():
    # No instances at all: zeros, with a gradient path.
    emb = torch.randn(5, 3, requires_grad=True)
    out = discriminative_loss(emb, torch.full((5,), -1), torch.zeros(5, dtype=torch.long))
    assert all(v.item() == 0.0 for v in out.values())
    out["total"].backward()
    assert torch.equal(emb.grad, torch.zeros(5, 3))
    # Two instances with identical centres, every point on its centre: zero distances everywhere.
    emb = torch.ones(4, 2, requires_grad=True)
    out = discriminative_loss(emb, torch.tensor([0, 0, 1, 1]), torch.zeros(4, dtype=torch.long))
    assert out["push"].item() == pytest.approx(9.0)  # relu(3 - 0)^2
    out["total"].backward()
    assert torch.isfinite(emb.grad).all()


def test_discriminative_loss_gradient_matches_autograd_on_loop_reference():
    # A plain per-scene, per-instance loop of the documented formulas, against the vectorised one.
    torch.manual_seed(0)
    emb = torch.randn(40, 3, dtype=torch.float64, requires_grad=True)
    inst = torch.randint(-1, 4, (40,))
    scene = torch.sort(torch.randint(0, 3, (40,))).values

    def reference(x):
        pulls, pushes, regs = [], [], []
        for s in scene.unique():
            ids = inst[(scene == s) & (inst >= 0)].unique()
            if ids.numel() == 0:
                continue
            mus = [x[(scene == s) & (inst == i)].mean(0) for i in ids]
            pulls.append(sum(torch.relu((x[(scene == s) & (inst == i)] - mu).norm(dim=1) - 0.5).pow(2).mean()
                             for i, mu in zip(ids, mus)) / len(mus))
            pairs = [torch.relu(3.0 - (a - b).norm()).pow(2) for i, a in enumerate(mus)
                     for j, b in enumerate(mus) if i != j]
            pushes.append(sum(pairs) / len(pairs) if pairs else x.sum() * 0)
            regs.append(sum(mu.norm() for mu in mus) / len(mus))
        n = len(pulls)
        return sum(pulls) / n + sum(pushes) / n + 0.001 * sum(regs) / n

    got = discriminative_loss(emb, inst, scene)["total"]
    want = reference(emb)
    assert got.item() == pytest.approx(want.item(), rel=1e-9)
    g1, = torch.autograd.grad(got, emb)
    g2, = torch.autograd.grad(want, emb)
    assert torch.allclose(g1, g2, atol=1e-10)


# --- offsets -------------------------------------------------------------------------------------

def test_offset_loss_hand_values_and_scene_separation():
    # Scene 0, instance 0: points (0,0,0), (2,0,0) -> centroid (1,0,0), targets (1,0,0), (-1,0,0).
    # Scene 1, instance 0 (same id): point (5,5,5) -> target 0. Scene 1 also has an ignored point.
    points = torch.tensor([[0.0, 0, 0], [2, 0, 0], [5, 5, 5], [9, 9, 9]])
    offsets = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 2], [3, 3, 3]], requires_grad=True)
    inst = torch.tensor([0, 0, 0, -1])
    scene = torch.tensor([0, 0, 1, 1])
    out = offset_loss(offsets, points, inst, scene)
    # L1: |0| ; |(0,1,0) - (-1,0,0)| = 2 ; |(0,0,2) - 0| = 2  -> 4 / 3.
    assert out["l1"].item() == pytest.approx(4 / 3, rel=1e-6)
    # cosines: 1 ; (0,1,0).(-1,0,0) = 0 ; zero target -> 0  -> -(1) / 3.
    assert out["direction"].item() == pytest.approx(-1 / 3, rel=1e-6)
    (out["l1"] + out["direction"]).backward()
    assert torch.isfinite(offsets.grad).all() and torch.all(offsets.grad[3] == 0)
    # Mixing the scenes would move the centroid of id 0 to (7/3, 5/3, 5/3): a different loss.
    mixed = offset_loss(offsets, points, inst, torch.zeros(4, dtype=torch.long))
    assert mixed["l1"].item() != pytest.approx(4 / 3, rel=1e-3)


def test_offset_loss_no_instances_and_bad_shapes():
    offsets = torch.randn(3, 3, requires_grad=True)
    out = offset_loss(offsets, torch.randn(3, 3), torch.full((3,), -1), torch.zeros(3, dtype=torch.long))
    assert out["l1"].item() == 0.0 and out["direction"].item() == 0.0
    out["l1"].backward()
    with pytest.raises(ValueError, match="offsets"):
        offset_loss(torch.zeros(3, 2), torch.zeros(3, 3), torch.zeros(3, dtype=torch.long),
                    torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="batch_index"):
        offset_loss(torch.zeros(3, 3), torch.zeros(3, 3), torch.zeros(3, dtype=torch.long),
                    torch.zeros(2, dtype=torch.long))
