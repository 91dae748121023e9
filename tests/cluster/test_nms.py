"""Matrix-NMS and plain mask NMS against straightforward loops over the definitions, on random masks."""
import math

import numpy as np
import pytest
import torch

from pcseg.cluster.nms import class_iou, mask_iou, mask_nms, matrix_nms


def random_masks(seed, k=12, n=300, classes=3):
    """Masks that overlap a lot: some are noisy copies of others (what several grid cells predict)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(k // 2, n, generator=g) < 0.2
    copies = base[torch.randint(0, k // 2, (k - k // 2,), generator=g)] ^ (torch.rand(k - k // 2, n, generator=g) < 0.05)
    masks = torch.cat([base, copies])
    labels = torch.randint(0, classes, (k,), generator=g)
    scores = torch.round(torch.rand(k, generator=g) * 20) / 20  # ties on purpose
    return masks, labels, scores


def iou_loop(a, b):
    a, b = a.numpy(), b.numpy()
    union = np.logical_or(a, b).sum()
    return np.logical_and(a, b).sum() / union if union else 0.0


def matrix_nms_loop(masks, labels, scores, kernel, sigma):
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))  # stable: ties keep input order
    f = (lambda x: math.exp(-sigma * x * x)) if kernel == "gaussian" else (lambda x: 1 - x)
    out = scores.clone().double()
    for pos, j in enumerate(order):
        decay = 1.0
        for i in order[:pos]:
            if labels[i] != labels[j]:
                continue
            # how much the higher mask i is itself suppressed by the masks above it
            c = max([iou_loop(masks[h], masks[i]) for h in order[:order.index(i)] if labels[h] == labels[i]],
                    default=0.0)
            decay = min(decay, f(iou_loop(masks[i], masks[j])) / f(c) if f(c) > 0 else decay)
        out[j] = float(scores[j]) * min(decay, 1.0)
    return out.float()


def mask_nms_loop(masks, labels, scores, threshold):
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    kept = []
    for j in order:
        if all(labels[i] != labels[j] or iou_loop(masks[i], masks[j]) <= threshold for i in kept):
            kept.append(j)
    return kept


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
def test_matrix_nms_matches_the_loop(seed, kernel):
    masks, labels, scores = random_masks(seed)
    got = matrix_nms(masks, labels, scores, kernel=kernel, sigma=2.0)
    want = matrix_nms_loop(masks, labels, scores, kernel, 2.0)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert bool((got <= scores + 1e-7).all())
    top = int(torch.argmax(scores))  # the best mask is never decayed (nothing above it)
    assert float(got[top]) == pytest.approx(float(scores[top]))


def test_matrix_nms_decays_duplicates_and_spares_other_classes():
    a = torch.zeros(100, dtype=torch.bool)
    a[:50] = True
    b = a.clone()
    b[49] = False          # a near-copy of a
    c = ~a                 # disjoint
    masks = torch.stack([a, b, c, b])
    labels = torch.tensor([1, 1, 1, 2])  # the last one: the same points, another class
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    out = matrix_nms(masks, labels, scores)
    assert out[0] == pytest.approx(0.9) and out[2] == pytest.approx(0.7) and out[3] == pytest.approx(0.6)
    iou = 49 / 50
    assert out[1] == pytest.approx(0.8 * math.exp(-2.0 * iou ** 2))


@pytest.mark.parametrize("seed", range(6))
def test_mask_nms_matches_the_loop(seed):
    masks, labels, scores = random_masks(seed)
    for threshold in (0.3, 0.5, 0.8):
        assert mask_nms(masks, labels, scores, threshold).tolist() == mask_nms_loop(masks, labels, scores, threshold)


def test_iou_empty_and_bad_input():
    masks = torch.zeros(2, 5, dtype=torch.bool)
    assert mask_iou(masks).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    empty = torch.zeros(0, 5, dtype=torch.bool)
    assert matrix_nms(empty, torch.zeros(0, dtype=torch.long), torch.zeros(0)).shape == (0,)
    assert mask_nms(empty, torch.zeros(0, dtype=torch.long), torch.zeros(0)).shape == (0,)
    with pytest.raises(ValueError, match="kernel"):
        matrix_nms(masks, torch.zeros(2, dtype=torch.long), torch.ones(2), kernel="box")
    with pytest.raises(ValueError, match="expected masks"):
        matrix_nms(masks, torch.zeros(3, dtype=torch.long), torch.ones(2))
    with pytest.raises(ValueError, match="iou_threshold"):
        mask_nms(masks, torch.zeros(2, dtype=torch.long), torch.ones(2), 1.5)


@pytest.mark.parametrize("seed, by_label", [(0, False), (1, False), (2, True)])
def test_class_iou_is_the_pairwise_iou_within_each_class(seed, by_label):
    masks, labels, _ = random_masks(seed, k=16, classes=4)
    if by_label:  # each label's masks contiguous (as the grid's candidates come): taken as views
        order = torch.argsort(labels, stable=True)
        masks, labels = masks[order], labels[order]
    full = mask_iou(masks)
    same = labels[:, None] == labels[None, :]
    assert torch.allclose(class_iou(masks, labels), torch.where(same, full, torch.zeros_like(full)), atol=1e-6)
    assert torch.allclose(class_iou(masks.float(), labels), class_iou(masks, labels), atol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_iou_from_pairs_equals_the_dense_iou_and_both_nms_agree(seed):
    """The grid's masks as (row, column) pairs: the same IoUs (empty masks included), so the same NMS."""
    from pcseg.cluster.nms import mask_nms_of_iou, matrix_nms_of_iou, pairs_class_iou

    masks, labels, scores = random_masks(seed, k=20, classes=3)
    masks[3] = False  # an empty mask meets nothing
    rows, cols = torch.nonzero(masks, as_tuple=True)
    iou = pairs_class_iou(rows, cols, labels)
    assert torch.allclose(iou, class_iou(masks, labels), atol=1e-6)
    assert torch.equal(matrix_nms_of_iou(iou, labels, scores), matrix_nms(masks, labels, scores))
    assert torch.equal(mask_nms_of_iou(iou, labels, scores, 0.3), mask_nms(masks, labels, scores, 0.3))
    none = pairs_class_iou(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), labels[:2])
    assert torch.equal(none, torch.zeros(2, 2))
