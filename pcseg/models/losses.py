"""Losses of the bottom-up segmenter, as plain functions on packed per-point tensors.

Every loss returns a scalar that stays connected to its prediction tensor even when there is
nothing to supervise (all points ignored, no instances): it is then ``0`` with a zero gradient,
never NaN, so a training step on such a batch is harmless.

Instances are identified by the pair (scene, instance id): ``batch_index`` says which scene of a
packed batch each point belongs to, so id 3 in scene 0 and id 3 in scene 1 are two instances.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pcseg.labels import IGNORE


def _zero(*tensors: torch.Tensor) -> torch.Tensor:
    """A 0 scalar with a (zero) gradient path to every tensor given."""
    return sum(t.sum() * 0.0 for t in tensors)


def _check_rows(who: str, m: int, **tensors: torch.Tensor) -> None:
    for name, t in tensors.items():
        if t.dim() != 1 or t.shape[0] != m:
            raise ValueError(f"{who}: {name} must have shape [{m}], got {list(t.shape)}")
        if t.dtype.is_floating_point or t.dtype == torch.bool:
            raise ValueError(f"{who}: {name} must be an integer tensor, got {t.dtype}")


def semantic_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE,
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over the points whose target is not ``ignore_index``.

    logits: FloatTensor[M, C]; target: LongTensor[M] in 0..C-1 or ``ignore_index``;
    weight: FloatTensor[C] class weights or None.

        loss = sum_i w[t_i] * (-log softmax(logits_i)[t_i]) / sum_i w[t_i]   over non-ignored i

    (torch's ``cross_entropy`` mean). With every point ignored the loss is 0 (not NaN).
    """
    if logits.dim() != 2:
        raise ValueError(f"semantic_loss: logits must have shape [M, C], got {list(logits.shape)}")
    m, c = logits.shape
    _check_rows("semantic_loss", m, target=target)
    valid = target != ignore_index
    if valid.any():
        t = target[valid]
        if int(t.min()) < 0 or int(t.max()) >= c:
            raise ValueError(f"semantic_loss: target values must be in 0..{c - 1} or {ignore_index}, "
                             f"got range [{int(t.min())}, {int(t.max())}]")
    if weight is not None and tuple(weight.shape) != (c,):
        raise ValueError(f"semantic_loss: weight must have shape [{c}], got {list(weight.shape)}")
    if not valid.any():
        return _zero(logits)
    return F.cross_entropy(logits[valid], target[valid], weight=weight)


def _instance_groups(instance: torch.Tensor, batch_index: torch.Tensor):
    """Group the points with ``instance >= 0`` by (scene, instance id).

    Returns (valid BoolTensor[M], group LongTensor[Mv] of each valid point in 0..K-1,
    group_scene LongTensor[K], counts FloatTensor[K] points per group).
    """
    valid = instance >= 0
    ids, scenes = instance[valid], batch_index[valid]
    if ids.numel() == 0:
        empty = instance.new_zeros(0)
        return valid, empty, empty, torch.zeros(0, device=instance.device)
    # One int64 key per (scene, id) pair; scene-major so groups come out sorted by scene.
    key = scenes * (int(ids.max()) + 1) + ids
    unique_keys, group = torch.unique(key, return_inverse=True)
    group_scene = torch.div(unique_keys, int(ids.max()) + 1, rounding_mode="floor")
    counts = torch.bincount(group, minlength=unique_keys.numel()).to(torch.float32)
    return valid, group, group_scene, counts


def _group_mean(values: torch.Tensor, group: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """values: [Mv, ...] -> [K, ...] mean of each group."""
    sums = values.new_zeros((counts.numel(),) + tuple(values.shape[1:])).index_add_(0, group, values)
    return sums / counts.to(values.dtype).view((-1,) + (1,) * (values.dim() - 1))


def discriminative_loss(embeddings: torch.Tensor, instance: torch.Tensor, batch_index: torch.Tensor,
                        delta_v: float = 0.5, delta_d: float = 1.5, alpha: float = 1.0,
                        beta: float = 1.0, gamma: float = 0.001) -> dict[str, torch.Tensor]:
    """Discriminative (pull / push / regularisation) loss of De Brabandere et al. (2017).

    embeddings: FloatTensor[M, D]; instance: LongTensor[M] (ids >= 0 count, negative ids are
    ignored — the caller sets -1 on points that must not count); batch_index: LongTensor[M].

    Per scene s with instances C_s (distinct ids >= 0 among its points), centres
    mu_c = mean of the embeddings of instance c, N_c its point count:

        pull_s = 1/|C_s| sum_c 1/N_c sum_{i in c} relu(||mu_c - x_i|| - delta_v)^2
        push_s = 1/(|C_s|(|C_s|-1)) sum_{c != c' in C_s} relu(2 delta_d - ||mu_c - mu_c'||)^2
                 (0 when |C_s| < 2: no pairs)
        reg_s  = 1/|C_s| sum_c ||mu_c||

    Each term is then averaged over the scenes with |C_s| >= 1 (a scene with a single instance
    counts with push 0), and total = alpha * pull + beta * push + gamma * reg. Instances of
    different scenes are never paired. Returns dict(pull=, push=, reg=, total=), scalars.
    """
    if embeddings.dim() != 2:
        raise ValueError(f"discriminative_loss: embeddings must have shape [M, D], got {list(embeddings.shape)}")
    _check_rows("discriminative_loss", embeddings.shape[0], instance=instance, batch_index=batch_index)
    valid, group, group_scene, counts = _instance_groups(instance, batch_index)
    if group.numel() == 0:
        zero = _zero(embeddings)
        return dict(pull=zero, push=zero, reg=zero, total=zero)
    x = embeddings[valid]
    k = counts.numel()
    mu = _group_mean(x, group, counts)                                           # [K, D]

    # Per-instance terms.
    dist = torch.linalg.vector_norm(mu[group] - x, dim=1)                        # [Mv]
    pull_k = _group_mean(torch.relu(dist - delta_v) ** 2, group, counts)         # [K]
    reg_k = torch.linalg.vector_norm(mu, dim=1)                                  # [K]

    # Pairs of distinct instances of the same scene: a block-diagonal mask over the K x K pairs.
    same = group_scene[:, None] == group_scene[None, :]
    pair = same & ~torch.eye(k, dtype=torch.bool, device=same.device)
    # vector_norm's gradient at 0 is 0, so the masked diagonal cannot inject NaN.
    centre_dist = torch.linalg.vector_norm(mu[:, None, :] - mu[None, :, :], dim=2)  # [K, K]
    hinge = torch.where(pair, torch.relu(2 * delta_d - centre_dist) ** 2, torch.zeros_like(centre_dist))

    # Scene averages: the groups' scenes, renumbered 0..S-1 over scenes that have instances.
    scenes, scene_of = torch.unique(group_scene, return_inverse=True)
    s = scenes.numel()
    per_scene = torch.bincount(scene_of, minlength=s).to(x.dtype)               # |C_s|
    pull_s = x.new_zeros(s).index_add_(0, scene_of, pull_k) / per_scene
    reg_s = x.new_zeros(s).index_add_(0, scene_of, reg_k) / per_scene
    pairs_s = per_scene * (per_scene - 1)
    push_sum = x.new_zeros(s).index_add_(0, scene_of, hinge.sum(1))
    push_s = torch.where(pairs_s > 0, push_sum / pairs_s.clamp_min(1), torch.zeros_like(push_sum))

    pull, push, reg = pull_s.mean(), push_s.mean(), reg_s.mean()
    return dict(pull=pull, push=push, reg=reg, total=alpha * pull + beta * push + gamma * reg)


def offset_loss(offsets: torch.Tensor, points: torch.Tensor, instance: torch.Tensor,
                batch_index: torch.Tensor, eps: float = 1e-8) -> dict[str, torch.Tensor]:
    """PointGroup's offset losses: predicted offsets should point at the instance centroid.

    offsets: FloatTensor[M, 3] predictions; points: FloatTensor[M, 3]; instance: LongTensor[M]
    (negative ids ignored); batch_index: LongTensor[M]. Over the N valid points, with
    target t_i = centroid(instance of i, in its scene) - p_i and prediction o_i:

        l1        = 1/N sum_i sum_xyz |o_i - t_i|
        direction = 1/N sum_i -(o_i / (||o_i|| + eps)) . (t_i / (||t_i|| + eps))

    Returns dict(l1=, direction=), scalars (0 when no point has an instance).
    """
    for name, t in (("offsets", offsets), ("points", points)):
        if t.dim() != 2 or t.shape[1] != 3:
            raise ValueError(f"offset_loss: {name} must have shape [M, 3], got {list(t.shape)}")
    if points.shape[0] != offsets.shape[0]:
        raise ValueError(f"offset_loss: {offsets.shape[0]} offsets but {points.shape[0]} points")
    _check_rows("offset_loss", offsets.shape[0], instance=instance, batch_index=batch_index)
    valid, group, _, counts = _instance_groups(instance, batch_index)
    if group.numel() == 0:
        zero = _zero(offsets)
        return dict(l1=zero, direction=zero)
    p = points[valid].to(offsets.dtype)
    o = offsets[valid]
    target = _group_mean(p, group, counts)[group] - p
    l1 = (o - target).abs().sum(1).mean()
    o_dir = o / (torch.linalg.vector_norm(o, dim=1, keepdim=True) + eps)
    t_dir = target / (torch.linalg.vector_norm(target, dim=1, keepdim=True) + eps)
    direction = -(o_dir * t_dir).sum(1).mean()
    return dict(l1=l1, direction=direction)
