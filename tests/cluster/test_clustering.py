import numpy as np
import pytest
import torch

from pcseg.cluster import (cluster_instances, dbscan_xyz, mean_shift, mean_shift_modes, snap_labels_to_segments,
                           snap_to_segments)
from pcseg.cluster.instances import fragment_factor
from pcseg.labels import semantic20_to_nyu40
from pcseg.structures import InstanceSet, MemberInstances


def test_connected_components_split_touching_classes_but_not_far_ones():
    rng = np.random.default_rng(0)
    # two chairs 1 m apart, one table between them touching neither; 0.02 m point spacing
    grid = np.stack(np.meshgrid(np.arange(0, 0.4, 0.02), np.arange(0, 0.4, 0.02), [0.0]), -1).reshape(-1, 3)
    chair_a, chair_b, table = grid, grid + [1.0, 0, 0], grid + [0.5, 0.6, 0]
    points = np.concatenate([chair_a, chair_b, table]) + rng.normal(0, 0.001, (3 * len(grid), 3))
    semantic = np.r_[[5] * (2 * len(grid)), [7] * len(grid)]
    inst = dbscan_xyz(points, semantic, eps=0.05, min_size=10)
    assert sorted(inst.labels.tolist()) == [5, 5, 7]
    assert sorted(inst.sizes().tolist()) == [len(grid)] * 3
    assert not np.any(inst.masks.sum(0) > 1)
    chair_masks = inst.masks[inst.labels == 5]
    assert {tuple(np.flatnonzero(m)[[0, -1]]) for m in chair_masks} == {(0, len(grid) - 1), (len(grid), 2 * len(grid) - 1)}


def test_small_clusters_dropped_and_empty_result():
    points = np.array([[0, 0, 0], [5, 5, 5]], np.float32)
    inst = dbscan_xyz(points, np.array([5, 5]), min_size=2)
    assert len(inst) == 0 and inst.num_points == 2


# --- mean-shift ------------------------------------------------------------------------------------

def blobs(sizes, dim=4, spread=0.05, gap=3.0, seed=0, centres=None):
    """Gaussian blobs on well-separated centres: (x FloatTensor[N, dim], gt LongTensor[N])."""
    g = torch.Generator().manual_seed(seed)
    k = len(sizes)
    if centres is None:
        centres = torch.zeros(k, dim)
        centres[:, 0] = torch.arange(k) * gap  # on a line: every pair at least `gap` apart
        centres[:, 1:] = torch.rand(k, dim - 1, generator=g)
    gt = torch.repeat_interleave(torch.arange(k), torch.as_tensor(sizes))
    x = centres[gt] + spread * torch.randn(gt.numel(), dim, generator=g)
    perm = torch.randperm(gt.numel(), generator=g)
    return x[perm], gt[perm]


def same_partition(labels, gt) -> bool:
    """True when labels equal gt up to a renaming of the cluster ids (noise must match noise)."""
    labels, gt = np.asarray(labels), np.asarray(gt)
    if np.any((labels < 0) != (gt < 0)):
        return False
    pairs = set(zip(labels[labels >= 0].tolist(), gt[gt >= 0].tolist()))
    return len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})


def mostly_same_partition(labels, gt, min_assigned=0.99) -> bool:
    """same_partition on the points given a cluster, and at least min_assigned of them given one
    (points in a blob's far tail may fall outside every cluster's reach)."""
    labels, gt = np.asarray(labels), np.asarray(gt)
    got = labels >= 0
    return got.mean() >= min_assigned and same_partition(labels[got], gt[got]) and \
        len(set(labels[got].tolist())) == len(set(gt.tolist()))


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
@pytest.mark.parametrize("seeding", ["fps", "random"])
def test_mean_shift_recovers_separated_blobs(kernel, seeding):
    x, gt = blobs([300, 120, 500, 60, 200])
    labels = mean_shift(x, bandwidth=0.5, kernel=kernel, seeding=seeding)
    assert labels.dtype == torch.long and labels.shape == gt.shape
    assert same_partition(labels, gt)
    assert int(labels.max()) == 4
    # ids are ordered densest mode first: the 500-point blob is cluster 0
    assert torch.equal(labels == 0, gt == 2)


def test_mean_shift_noise_and_small_clusters():
    x, gt = blobs([200, 300, 150])
    # a clump of 6 points in the middle of a bandwidth-sized seeding cell (seeded noise: the test
    # must not depend on the global RNG state other tests leave behind)
    tiny = torch.tensor([20.25, 20.25, 20.25, 20.25]) + 0.01 * torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    outliers = torch.tensor([[-30.0, 0, 0, 0], [50, 5, 5, 5], [0, 40, 0, 0]])
    x_all = torch.cat([x, tiny, outliers])
    labels = mean_shift(x_all, bandwidth=0.5, min_size=10)
    assert same_partition(labels[: len(gt)], gt)
    assert bool((labels[len(gt):] == -1).all())
    assert set(labels.unique().tolist()) == {-1, 0, 1, 2}  # kept ids stay contiguous
    # without min_size the clump is a cluster; the outliers, alone in their grid bins, get no seed
    # and lie farther than the bandwidth from every mode: noise
    labels1 = mean_shift(x_all, bandwidth=0.5, min_size=1)
    assert same_partition(labels1[: len(gt) + 6], torch.cat([gt, torch.full((6,), 3)]))
    assert bool((labels1[-3:] == -1).all())
    # seeded from every point, each outlier is a mode of its own (and all blob seeds merge)
    labels2 = mean_shift(x_all, bandwidth=0.5, min_size=1, seeding="random", num_seeds=len(x_all))
    assert same_partition(labels2, torch.cat([gt, torch.full((6,), 3), torch.tensor([4, 5, 6])]))


def test_mean_shift_merges_seeds_of_one_mode():
    x, _ = blobs([400], dim=3, spread=0.1)
    for seeding in ("fps", "random"):
        labels, modes = mean_shift_modes(x, bandwidth=0.6, num_seeds=64, seeding=seeding)
        assert bool((labels == 0).all()) and modes.shape == (1, 3)
        assert torch.allclose(modes[0], x.mean(0), atol=0.02)


def test_mean_shift_is_deterministic_and_chunking_changes_nothing():
    x, gt = blobs([3000, 2500, 1500, 40], dim=8, spread=0.12, gap=2.0, seed=3)
    noise = torch.rand(200, 8, generator=torch.Generator().manual_seed(9)) * 8 - 2
    x = torch.cat([x, noise])
    kwargs = dict(bandwidth=0.6, seed=5, min_size=30, max_points=2000, seeding="random", num_seeds=64)
    a, modes_a = mean_shift_modes(x, **kwargs)
    b, modes_b = mean_shift_modes(x, **kwargs)
    assert torch.equal(a, b) and torch.equal(modes_a, modes_b)
    c, modes_c = mean_shift_modes(x, chunk_size=37, **kwargs)  # 1 seed row x 37 cols at a time
    assert torch.equal(a, c) and torch.allclose(modes_a, modes_c, atol=1e-5)
    blob = gt < 3  # the 40-point blob is below min_size
    assert mostly_same_partition(a[: len(gt)][blob], gt[blob]) and bool((a[: len(gt)][~blob] == -1).all())
    # another seed draws another subsample, yet the blobs are the same clusters
    d = mean_shift(x, **{**kwargs, "seed": 6})
    assert mostly_same_partition(d[: len(gt)][blob], gt[blob])


def test_mean_shift_inputs():
    x, gt = blobs([50, 80], dim=2)
    from_numpy = mean_shift(x.numpy(), 0.5)
    assert torch.equal(from_numpy, mean_shift(x, 0.5))
    assert torch.equal(mean_shift(x.double(), 0.5), from_numpy)
    empty = mean_shift(torch.zeros(0, 8), 0.5)
    assert empty.shape == (0,) and empty.dtype == torch.long
    with pytest.raises(ValueError, match="bandwidth"):
        mean_shift(x, 0.0)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        mean_shift(torch.zeros(5), 0.5)
    with pytest.raises(ValueError, match="NaN"):
        mean_shift(torch.full((4, 2), float("nan")), 0.5)


@pytest.mark.cuda
def test_mean_shift_cuda_matches_cpu():
    x, gt = blobs([500, 300, 700], dim=8, spread=0.1)
    cpu = mean_shift(x, 0.6)
    gpu = mean_shift(x.cuda(), 0.6)
    assert gpu.device.type == "cuda" and torch.equal(gpu.cpu(), cpu)


# --- cluster_instances -----------------------------------------------------------------------------

def one_hot_probs(classes, num_classes=20, confidence=0.9):
    classes = np.asarray(classes)
    p = np.full((classes.size, num_classes), (1 - confidence) / (num_classes - 1), np.float32)
    p[np.arange(classes.size), classes] = confidence
    return p


def scene(seed=0, dim=8):
    """Two classes whose instance embeddings interleave: chairs (class 4) and tables (class 6) share
    blob centres, so only the per-class split keeps them apart. Plus wall points (class 0)."""
    x, gt = blobs([300, 200, 250, 150], dim=dim, spread=0.08, gap=2.5, seed=seed)
    gt = gt.numpy()
    cls = np.where(gt % 2 == 0, 4, 6)  # blob 0, 2 chairs; 1, 3 tables
    x2, gt2 = blobs([220, 180], dim=dim, spread=0.08, gap=2.5, seed=seed + 1)
    # table 4 sits exactly on chair blob 0's centre, chair 5 on table blob 1's centre
    emb = np.concatenate([x.numpy(), x2.numpy()])
    gt_all = np.r_[gt, gt2.numpy() + 4]
    cls_all = np.r_[cls, np.where(gt2.numpy() == 0, 6, 4)]
    wall = np.random.default_rng(seed).uniform(-1, 9, (100, dim)).astype(np.float32)
    return (np.concatenate([emb, wall]), np.r_[gt_all, np.full(100, -1)], np.r_[cls_all, np.zeros(100, np.int64)])


def instance_partition(inst, n):
    """InstanceSet -> per-point instance index (-1 = none); asserts the masks do not overlap."""
    assert not np.any(inst.masks.sum(0) > 1)
    ids = np.full(n, -1)
    for k, m in enumerate(inst.masks):
        ids[m] = k
    return ids


@pytest.mark.parametrize("method", ["meanshift", "hdbscan", "hdbscan-package", "dbscan"])
def test_cluster_instances_per_class_with_every_method(method):
    emb, gt, cls = scene()
    inst = cluster_instances(emb, one_hot_probs(cls), method=method, bandwidth=0.6, min_size=50)
    assert len(inst) == 6
    assert same_partition(instance_partition(inst, len(gt)), gt)
    # labels mapped to NYU40: class 4 -> bed (4), class 6 -> sofa (6)... via the ScanNet20 table
    for k, m in enumerate(inst.masks):
        assert set(cls[m].tolist()) in ({4}, {6})  # never across classes
        assert inst.labels[k] == semantic20_to_nyu40(cls[m][:1])[0]
    assert sorted(inst.labels.tolist()) == [5, 5, 5, 7, 7, 7]
    assert np.all((inst.scores > 0) & (inst.scores <= 1))


def test_cluster_instances_class_mapping_and_classes():
    emb, gt, cls = scene()
    probs = one_hot_probs(cls)
    table = np.arange(20) + 100
    inst = cluster_instances(emb, probs, class_to_nyu40=table)
    assert sorted(set(inst.labels.tolist())) == [104, 106]
    inst = cluster_instances(emb, probs, classes=[6], class_to_nyu40=lambda c: c * 0 + 33)
    assert len(inst) == 3 and set(inst.labels.tolist()) == {33}
    assert set(cls[inst.masks.any(0)].tolist()) == {6}
    # wall (class 0) is not an instance class by default, but clusters when asked to
    assert not np.any(inst.masks[:, gt == -1])
    with pytest.raises(ValueError, match="classes"):
        cluster_instances(emb, probs, classes=[20])
    with pytest.raises(ValueError, match="class_to_nyu40"):
        cluster_instances(emb, probs, class_to_nyu40=np.arange(5))


def test_cluster_instances_min_size_and_too_small_class():
    emb, gt, cls = scene()
    sizes = np.bincount(gt[gt >= 0])  # 300 200 250 150 220 180
    inst = cluster_instances(emb, one_hot_probs(cls), min_size=190)
    assert sorted(inst.sizes().tolist()) == sorted(s for s in sizes.tolist() if s >= 190)
    # a class with fewer points than min_size yields nothing; the other class is unaffected
    few = cls.copy()
    few[np.flatnonzero(cls == 6)[40:]] = 0  # only 40 table points left
    inst = cluster_instances(emb, one_hot_probs(few), min_size=50)
    assert set(inst.labels.tolist()) == {5} and len(inst) == 3


def test_scores_rank_tight_and_confident_clusters_first():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0] * 8, [3.0] + [0.0] * 7, [6.0] + [0.0] * 7])
    spreads = torch.tensor([0.02, 0.1, 0.02])
    gt = torch.arange(3).repeat_interleave(200)
    emb = centres[gt] + spreads[gt, None] * torch.randn(600, 8, generator=g)
    probs = torch.from_numpy(one_hot_probs(np.full(600, 3)))
    probs[gt == 2] = torch.from_numpy(one_hot_probs(np.full(200, 3), confidence=0.5))
    inst = cluster_instances(emb, probs)
    assert len(inst) == 3
    by_blob = [inst.scores[np.argmax(inst.masks[:, (gt == b).numpy()].sum(1))] for b in range(3)]
    assert by_blob[0] > by_blob[1]  # same confidence, tighter
    assert by_blob[0] > by_blob[2]  # same spread, more confident
    assert np.isclose(by_blob[2] / by_blob[0], 0.5 / 0.9, rtol=0.02)
    assert np.all((inst.scores > 0) & (inst.scores <= 1))


def test_cluster_instances_numpy_and_torch_inputs_agree():
    emb, gt, cls = scene()
    probs = one_hot_probs(cls)
    a = cluster_instances(emb, probs)
    b = cluster_instances(torch.from_numpy(emb), torch.from_numpy(probs))
    assert np.array_equal(a.masks, b.masks) and np.array_equal(a.labels, b.labels)
    assert np.allclose(a.scores, b.scores)


def test_cluster_instances_takes_the_callers_argmax():
    emb, gt, cls = scene()
    probs = one_hot_probs(cls, confidence=0.6)
    a = cluster_instances(emb, probs, soft_threshold=0.2)
    b = cluster_instances(emb, probs, soft_threshold=0.2, point_classes=torch.from_numpy(cls))
    assert len(a) > 0 and np.array_equal(a.masks, b.masks) and np.array_equal(a.labels, b.labels)
    # the caller's classes decide: every point told it is class 9 is clustered as bookshelf (NYU40 10)
    c = cluster_instances(emb, probs, point_classes=np.full(len(cls), 9))
    assert set(c.labels.tolist()) == {10}
    with pytest.raises(ValueError, match="point_classes"):
        cluster_instances(emb, probs, point_classes=np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="point_classes"):
        cluster_instances(emb, probs, point_classes=np.full(len(cls), 20))


def test_cluster_instances_edge_cases():
    empty = cluster_instances(np.zeros((0, 8), np.float32), np.zeros((0, 20), np.float32))
    assert len(empty) == 0 and empty.num_points == 0
    x, gt = blobs([300, 200], dim=8, spread=0.08)
    one_class = cluster_instances(x, one_hot_probs(np.full(500, 9)))
    assert same_partition(instance_partition(one_class, 500), gt.numpy())
    assert set(one_class.labels.tolist()) == {10}  # ScanNet20 class 9 = bookshelf, NYU40 10
    none = cluster_instances(x, one_hot_probs(np.full(500, 1)))  # all floor
    assert len(none) == 0 and none.num_points == 500
    with pytest.raises(ValueError, match="embeddings"):
        cluster_instances(x[:10], one_hot_probs(np.full(500, 9)))
    with pytest.raises(ValueError, match="method"):
        cluster_instances(x, one_hot_probs(np.full(500, 9)), method="kmeans")
    with pytest.raises(ValueError, match="softmax"):
        cluster_instances(x, one_hot_probs(np.full(500, 9)) * 5)


def test_coordinates_and_offsets():
    rng = np.random.default_rng(0)
    # two chairs with the same embedding, 3 m apart: one instance unless coordinates take part
    pts = np.concatenate([rng.uniform(0, 0.5, (200, 3)), rng.uniform(0, 0.5, (200, 3)) + [3, 0, 0]]).astype(np.float32)
    emb = np.zeros((400, 8), np.float32) + rng.normal(0, 0.05, (400, 8)).astype(np.float32)
    probs = one_hot_probs(np.full(400, 4))
    assert len(cluster_instances(emb, probs, pts)) == 1
    inst = cluster_instances(emb, probs, pts, coord_weight=1.0)
    assert len(inst) == 2 and same_partition(instance_partition(inst, 400), np.repeat([0, 1], 200))
    # PointGroup-style: offsets move each point to its object's centre; points alone would merge
    touching = np.concatenate([rng.uniform(0, 1, (200, 3)), rng.uniform(1, 2, (200, 3))]).astype(np.float32)
    centre = np.where(np.arange(400)[:, None] < 200, [0.5, 0.5, 0.5], [1.5, 1.5, 1.5])
    offsets = (centre - touching + rng.normal(0, 0.02, (400, 3))).astype(np.float32)
    inst = cluster_instances(None, probs, touching, offsets=offsets, use_offsets=True, bandwidth=0.3)
    assert len(inst) == 2 and same_partition(instance_partition(inst, 400), np.repeat([0, 1], 200))
    with pytest.raises(ValueError, match="points"):
        cluster_instances(emb, probs, coord_weight=1.0)
    with pytest.raises(ValueError, match="offsets"):
        cluster_instances(emb, probs, pts, use_offsets=True)


@pytest.mark.parametrize("method", ["hdbscan", "hdbscan-package", "dbscan"])
def test_subsampled_fit_assigns_every_point(method):
    x, gt = blobs([900, 700, 400], dim=8, spread=0.08, seed=2)
    inst = cluster_instances(x, one_hot_probs(np.full(2000, 3)), method=method, max_fit_points=300)
    assert mostly_same_partition(instance_partition(inst, 2000), gt.numpy())


def test_soft_threshold_finds_an_object_whose_points_the_semantics_split():
    # One compact object of 300 points; the semantic head calls 180 of them class 2 (p 0.55 vs
    # 0.45) and 120 class 3 (p 0.55 vs 0.45).
    rng = np.random.default_rng(0)
    emb = torch.from_numpy(rng.normal(0, 0.05, (300, 4))).float()
    probs = torch.zeros(300, 20)
    probs[:180, 2], probs[:180, 3] = 0.55, 0.45
    probs[180:, 3], probs[180:, 2] = 0.55, 0.45
    hard = cluster_instances(emb, probs, bandwidth=0.5, min_size=20)
    assert sorted(hard.masks.sum(1).tolist()) == [120, 180]      # argmax: two partial instances
    soft = cluster_instances(emb, probs, bandwidth=0.5, min_size=20, soft_threshold=0.4)
    assert soft.masks.sum(1).tolist() == [300, 300]               # soft: the whole object, under each class
    assert sorted(soft.labels.tolist()) == sorted(semantic20_to_nyu40(np.array([2, 3])).tolist())
    by_label = dict(zip(soft.labels.tolist(), soft.scores.tolist()))
    # each hypothesis is scored with its own class's mean probability: (180*.55 + 120*.45) / 300 = .51
    assert by_label[int(semantic20_to_nyu40(np.array([2]))[0])] > by_label[int(semantic20_to_nyu40(np.array([3]))[0])]
    with pytest.raises(ValueError, match="soft_threshold"):
        cluster_instances(emb, probs, soft_threshold=1.5)


def test_class_bandwidth_fits_small_and_large_objects_at_once():
    # Predicted centres: two chairs (class 4) 0.6 m apart, tight; one 2 m sofa (class 5) whose
    # centres spread along its length. No single bandwidth gets both right.
    rng = np.random.default_rng(0)
    chairs = np.concatenate([rng.normal([0, 0, 0], 0.05, (200, 3)), rng.normal([0.6, 0, 0], 0.05, (200, 3))])
    sofa = np.stack([rng.uniform(9, 11, 600), rng.normal(0, 0.05, 600), rng.normal(0, 0.05, 600)], 1)
    pts = np.concatenate([chairs, sofa]).astype(np.float32)
    probs = one_hot_probs(np.repeat([4, 5], [400, 600]))
    zero = np.zeros_like(pts)
    truth = np.repeat([0, 1, 2], [200, 200, 600])

    def run(**kw):
        inst = cluster_instances(None, probs, pts, offsets=zero, use_offsets=True, min_size=50, **kw)
        return instance_partition(inst, 1000)

    assert not same_partition(run(bandwidth=0.3), truth)    # the sofa falls apart
    assert not same_partition(run(bandwidth=1.2), truth)    # the chairs merge
    per_class = [0.3] * 20
    per_class[5] = 1.2
    assert same_partition(run(bandwidth=0.3, class_bandwidth=per_class), truth)
    with pytest.raises(ValueError, match="class_bandwidth"):
        run(class_bandwidth=[0.3] * 3)


# --- snapping to segments ------------------------------------------------------------------------

def test_snap_to_segments_keeps_segments_covered_by_the_given_fraction():
    segments = np.array([7, 7, 7, 7, 3, 3, 9, 9, 9, 9])  # arbitrary ids, as in segs.json
    a = np.zeros(10, bool)
    a[[0, 1, 2, 4, 6]] = True   # 3/4 of segment 7, 1/2 of segment 3, 1/4 of segment 9
    b = np.zeros(10, bool)
    b[7] = True                 # 1/4 of segment 9 only
    inst = InstanceSet(np.stack([a, b]), np.array([5, 7]), np.array([0.9, 0.4], np.float32))
    half = snap_to_segments(inst, segments, 0.5)
    assert len(half) == 1 and half.labels.tolist() == [5] and half.scores.tolist() == [np.float32(0.9)]
    assert np.flatnonzero(half.masks[0]).tolist() == [0, 1, 2, 3, 4, 5]
    assert np.flatnonzero(snap_to_segments(inst, segments, 0.6).masks[0]).tolist() == [0, 1, 2, 3]
    assert np.flatnonzero(snap_to_segments(inst, segments, 0.25).masks[1]).tolist() == [6, 7, 8, 9]
    assert len(snap_to_segments(inst, segments, 0.5, min_size=7)) == 0  # 6 points left: dropped


def _snap_by_loops(masks, labels, segments, min_cover, min_size):
    """The definition, one segment and one mask at a time."""
    snapped = []
    for mask in masks:
        out = np.zeros_like(mask)
        for s in np.unique(segments):
            member = segments == s
            if mask[member].sum() >= min_cover * member.sum():
                out |= member
        snapped.append(out)
    kept = [m for m in snapped if m.sum() >= max(min_size, 1)]
    majority = labels.copy()
    for s in np.unique(segments):
        member = segments == s
        majority[member] = np.bincount(labels[member]).argmax()
    return kept, majority


@pytest.mark.parametrize("id_base", [0, -5, 10**12])  # small ids (lookup table), negative and huge ids (np.unique)
def test_snap_prediction_matches_the_definition_on_random_scenes(id_base):
    from pcseg.cluster import snap_prediction

    rng = np.random.default_rng(3)
    segments = id_base + 3 * rng.integers(0, 40, 600)
    masks = rng.random((7, 600)) < rng.random((7, 1))
    labels = rng.integers(0, 30, 600) * 2
    inst = InstanceSet(masks, np.arange(7), np.linspace(1, 0.1, 7).astype(np.float32))
    got, got_labels = snap_prediction(inst, labels, segments, 0.4, min_size=200)
    want, want_labels = _snap_by_loops(masks, labels, segments, 0.4, 200)
    assert 0 < len(want) < 7 and len(got) == len(want)
    np.testing.assert_array_equal(got.masks, np.array(want))
    np.testing.assert_array_equal(got_labels, want_labels)
    # the same instances given by their points: snapped to the same, still as points
    members = MemberInstances([np.flatnonzero(m) for m in masks], inst.labels, inst.scores, 600)
    got_members = snap_prediction(members, labels, segments, 0.4, min_size=200)[0]
    assert isinstance(got_members, MemberInstances) and got_members._masks is None
    assert members._masks is None  # nor were the input's K x N masks built to check them
    np.testing.assert_array_equal(got_members.masks, np.array(want))
    np.testing.assert_array_equal(got_members.scores, got.scores)


def test_snap_to_segments_bad_input():
    inst = InstanceSet(np.ones((1, 4), bool), np.array([5]), np.array([1.0], np.float32))
    with pytest.raises(ValueError, match="shape"):
        snap_to_segments(inst, np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="min_cover"):
        snap_to_segments(inst, np.zeros(4, np.int64), 0.0)
    empty = InstanceSet.empty(4)
    assert snap_to_segments(empty, np.zeros(4, np.int64)) is empty


def test_snap_labels_to_segments_takes_each_segments_majority():
    segments = np.array([7, 7, 7, 3, 3, 9, 9, 9, 9])
    labels = np.array([4, 4, 12, 5, 2, 6, 6, 1, 1])  # segment 3 and 9 tie: the smaller label wins
    assert snap_labels_to_segments(labels, segments).tolist() == [4, 4, 4, 2, 2, 1, 1, 1, 1]
    assert snap_labels_to_segments(np.zeros(0, np.int64), np.zeros(0, np.int64)).shape == (0,)
    with pytest.raises(ValueError, match="same length"):
        snap_labels_to_segments(labels, segments[:-1])
    with pytest.raises(ValueError, match=">= 0"):
        snap_labels_to_segments(-labels, segments)


def two_chairs_whose_centres_run_together():
    """Two objects of one class (200 points each) side by side: their predicted centres (points +
    offsets) lie 0.15 apart, inside one mean-shift radius; their 4-d embeddings lie 3.0 apart."""
    rng = np.random.default_rng(3)
    pts = np.concatenate([rng.uniform(0, 0.5, (200, 3)), rng.uniform(0, 0.5, (200, 3)) + [0.55, 0, 0]])
    centres = np.concatenate([rng.normal(0, 0.02, (200, 3)), rng.normal(0, 0.02, (200, 3)) + [0.15, 0, 0]])
    emb = np.concatenate([rng.normal(0, 0.05, (200, 4)), rng.normal(0, 0.05, (200, 4)) + [3.0, 0, 0, 0]])
    gt = np.repeat([0, 1], 200)
    as_t = lambda a: torch.from_numpy(a).float()  # noqa: E731
    return as_t(emb), as_t(pts), as_t(centres - pts), gt, one_hot_probs(np.full(400, 4))


def test_joint_space_keeps_apart_objects_whose_centres_run_together():
    emb, pts, offsets, gt, probs = two_chairs_whose_centres_run_together()
    kwargs = dict(offsets=offsets, use_offsets=True, bandwidth=0.4, min_size=50)
    centres_only = cluster_instances(None, probs, pts, **kwargs)
    assert centres_only.masks.sum(1).tolist() == [400]                     # one merged instance
    # joined, x 0.2: the embeddings add 3.0 * 0.2 = 0.6 > 0.4 between the objects, ~0.01 within one
    joint = cluster_instances(emb, probs, pts, embedding_weight=0.2, **kwargs)
    assert len(joint) == 2 and same_partition(instance_partition(joint, 400), gt)
    # the weight is applied: x 0.01 adds only 0.03 and the two stay merged
    assert len(cluster_instances(emb, probs, pts, embedding_weight=0.01, **kwargs)) == 1
    # unscaled embeddings alone find the two as well (their own radius)
    alone = cluster_instances(emb, probs, bandwidth=0.6, min_size=50)
    assert same_partition(instance_partition(alone, 400), gt)
    with pytest.raises(ValueError, match="embedding_weight"):
        cluster_instances(emb, probs, pts, embedding_weight=0.0, **kwargs)


def test_hdbscan_package_missing_says_how_to_install(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "hdbscan", None)  # import hdbscan -> ImportError
    emb, gt, cls = scene()
    with pytest.raises(ImportError, match=r"pcseg\[hdbscan\]"):
        cluster_instances(emb, one_hot_probs(cls), method="hdbscan-package")


def test_fragment_factor_is_the_share_of_the_largest_near_cluster_of_the_class():
    centres = np.array([[0.0, 0, 0], [0.5, 0, 0], [3.0, 0, 0], [0.2, 0, 0]])
    classes = np.array([4, 4, 4, 5])
    sizes = np.array([400, 100, 50, 30])
    radius = np.array([1.0, 1.0, 1.0, 1.0])
    # 0 and 1 are near each other (0.5 < 1): 1 gets 100 / 400; 2 is far; 3 has another class
    assert fragment_factor(centres, classes, sizes, radius).tolist() == pytest.approx([1.0, 0.25, 1.0, 1.0])
    # radius is per cluster (its class's bandwidth): at 0.4, 0 and 1 are not near
    assert fragment_factor(centres, classes, sizes, radius * 0.4).tolist() == pytest.approx([1.0, 1.0, 1.0, 1.0])


def test_a_part_of_an_object_the_embeddings_split_off_ranks_by_its_share():
    rng = np.random.default_rng(0)
    pts = rng.normal(0, 0.2, (300, 3)).astype(np.float32)
    offsets = -pts  # every point's predicted centre is the object's: the centres say one object
    emb = np.zeros((300, 4), np.float32)
    emb[250:, 0] = 5.0  # the embeddings split 50 points off
    probs = np.zeros((300, 20), np.float32)
    probs[:, 5] = 1.0
    kwargs = dict(offsets=offsets, use_offsets=True, bandwidth=0.4, min_size=20, embedding_weight=0.2)
    plain = cluster_instances(emb, probs, pts, **kwargs)
    ranked = cluster_instances(emb, probs, pts, fragment_radius=2.0, **kwargs)
    assert sorted(plain.masks.sum(1).tolist()) == sorted(ranked.masks.sum(1).tolist()) == [50, 250]
    by_size = {int(m.sum()): (s0, s1) for m, s0, s1 in zip(ranked.masks, plain.scores, ranked.scores)}
    assert by_size[250][1] == pytest.approx(by_size[250][0])
    assert by_size[50][1] == pytest.approx(by_size[50][0] * 50 / 250)
    # centres alone have no parts to rank, and a bad radius is named
    alone = cluster_instances(None, probs, pts, offsets=offsets, use_offsets=True, bandwidth=0.4, min_size=20,
                              fragment_radius=2.0)
    assert alone.masks.sum(1).tolist() == [300]
    with pytest.raises(ValueError, match="fragment_radius"):
        cluster_instances(emb, probs, pts, fragment_radius=-1.0, **kwargs)


# --- weighted rows (voxels standing for their points) ----------------------------------------------

def test_a_weighted_row_clusters_as_that_many_repeated_rows():
    """mean-shift with weights = the same rows repeated weight times: the same labels and modes, and
    min_size counts points: a 40-row blob of ~80 points survives min_size 60."""
    x, gt = blobs([120, 40, 200])
    w = np.random.default_rng(0).integers(1, 4, len(x))
    labels, modes = mean_shift_modes(x, 0.5, min_size=60, weights=torch.from_numpy(w).float())
    rep_labels, rep_modes = mean_shift_modes(np.repeat(x.numpy(), w, 0), 0.5, min_size=60)
    assert same_partition(labels, gt) and int(labels.max()) == 2
    assert torch.equal(rep_labels, torch.from_numpy(np.repeat(labels.numpy(), w)))
    assert torch.allclose(modes, rep_modes, atol=1e-5)
    assert int(mean_shift_modes(x, 0.5, min_size=60)[0].max()) == 1  # unweighted, the small blob goes
    with pytest.raises(ValueError, match="weights"):
        mean_shift_modes(x, 0.5, weights=np.ones(len(x) - 1))


def test_cluster_instances_with_weights_equals_the_repeated_points():
    emb, _, cls = scene()
    rng = np.random.default_rng(1)
    probs = one_hot_probs(cls, confidence=0.8)
    probs[:, 4] += rng.uniform(0, 0.1, len(cls)).astype(np.float32)  # confidences that differ by row
    probs /= probs.sum(1, keepdims=True)
    w = rng.integers(1, 5, len(emb))
    got = cluster_instances(emb, probs, weights=w, min_size=100)
    want = cluster_instances(np.repeat(emb, w, 0), np.repeat(probs, w, 0), min_size=100)
    assert len(got) == 6  # the scene's six objects
    assert np.array_equal(np.repeat(got.masks, w, 1), want.masks) and np.array_equal(got.labels, want.labels)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)
    with pytest.raises(ValueError, match="weights"):
        cluster_instances(emb, probs, weights=np.zeros(len(emb)))


@pytest.mark.parametrize("method", ["hdbscan", "hdbscan-package", "dbscan"])
def test_hdbscan_and_dbscan_count_a_weighted_row_as_its_points(method):
    """Two blobs of 40 rows standing for 80 points each: found with min_cluster_size / min_samples 60,
    which 40 unweighted rows could never meet."""
    x, gt = blobs([40, 40], dim=3)
    probs = one_hot_probs(np.full(80, 4))
    got = cluster_instances(x, probs, method=method, bandwidth=0.6, min_size=60, min_cluster_size=60,
                            min_samples=60, weights=np.full(80, 2.0))
    assert len(got) == 2 and same_partition(instance_partition(got, 80), gt)
    rows = cluster_instances(x, probs, method=method, bandwidth=0.6, min_size=1, min_cluster_size=60, min_samples=60)
    assert len(rows) < 2


# --- extra hypotheses at a smaller bandwidth ------------------------------------------------------

def _two_desks(gap: float):
    """Two objects of one class whose predicted centres lie ``gap`` apart (200 points each), as
    (embeddings, probs, points, offsets): the centres are the only thing that tells them apart."""
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.5, 0.5, (400, 3)).astype(np.float32)
    centre = np.zeros((400, 3), np.float32)
    centre[200:, 0] = gap
    offsets = centre + rng.normal(0, 0.03, (400, 3)).astype(np.float32) - pts
    probs = np.zeros((400, 20), np.float32)
    probs[:, 12] = 1.0  # desk
    return None, probs, pts, offsets


def test_extra_scales_add_the_split_reading_of_objects_the_full_radius_joins():
    emb, probs, pts, offsets = _two_desks(gap=0.7)
    kwargs = dict(offsets=offsets, use_offsets=True, bandwidth=1.0, min_size=20)
    one = cluster_instances(emb, probs, pts, **kwargs)
    assert one.masks.sum(1).tolist() == [400]  # at 1 m the two centres 0.7 m apart are one mode
    both = cluster_instances(emb, probs, pts, extra_scales=(0.5,), extra_score=0.5, **kwargs)
    # the first set as it was, then the two objects found at 0.5 m, ranked at half their own score
    assert np.array_equal(both.masks[:1], one.masks) and both.scores[0] == one.scores[0]
    assert sorted(both.masks[1:].sum(1).tolist()) == [200, 200]
    assert not (both.masks[1] & both.masks[2]).any()
    alone = cluster_instances(emb, probs, pts, **{**kwargs, "bandwidth": 0.5})
    assert sorted((both.scores[1:] / 0.5).tolist()) == pytest.approx(sorted(alone.scores.tolist()))
    assert both.labels.tolist() == [semantic20_to_nyu40(np.array([12]))[0]] * 3


def test_extra_hypotheses_equal_to_a_kept_one_are_dropped():
    emb, probs, pts, offsets = _two_desks(gap=3.0)  # apart at any radius: the same two clusters again
    kwargs = dict(offsets=offsets, use_offsets=True, bandwidth=1.0, min_size=20)
    one = cluster_instances(emb, probs, pts, **kwargs)
    both = cluster_instances(emb, probs, pts, extra_scales=(0.7,), **kwargs)
    assert sorted(one.masks.sum(1).tolist()) == [200, 200]
    assert np.array_equal(both.masks, one.masks) and np.array_equal(both.scores, one.scores)


def test_duplicates_are_judged_by_points_and_label():
    from pcseg.cluster.instances import _add_unless_duplicate

    kept = [np.arange(200)]
    new = [np.arange(210),          # IoU 200 / 210 = 0.95 by rows
           np.arange(210),          # the same rows under another label
           np.arange(100, 300)]     # IoU 100 / 300
    labels, scores = np.array([5]), np.array([0.9], np.float32)
    new_labels, new_scores = np.array([5, 7, 5]), np.array([0.4, 0.3, 0.2], np.float32)
    members, out_labels, out_scores = _add_unless_duplicate(kept, labels, scores, new, new_labels, new_scores,
                                                            np.ones(300), 0.9)
    assert out_labels.tolist() == [5, 7, 5] and out_scores.tolist() == pytest.approx([0.9, 0.3, 0.2])
    assert [m.tolist() for m in members[1:]] == [m.tolist() for m in new[1:]]
    # rows that stand for many points (voxels): rows 200..209 hold 100 points each, IoU 200 / 1200
    w = np.ones(300)
    w[200:210] = 100.0
    members, out_labels, _ = _add_unless_duplicate(kept, labels, scores, new, new_labels, new_scores, w, 0.9)
    assert out_labels.tolist() == [5, 5, 7, 5]


@pytest.mark.parametrize("bad", [dict(extra_scales=(0.0,)), dict(extra_scales=(0.7,), extra_score=0.0),
                                 dict(extra_scales=(0.7,), duplicate_iou=1.5)])
def test_bad_extra_hypothesis_settings_are_named(bad):
    emb, probs, pts, offsets = _two_desks(gap=0.7)
    with pytest.raises(ValueError, match="extra_scales"):
        cluster_instances(emb, probs, pts, offsets=offsets, use_offsets=True, bandwidth=1.0, **bad)


def test_compact_instances_are_the_same_as_masks():
    emb, probs, pts, offsets = _two_desks(gap=0.7)
    kwargs = dict(offsets=offsets, use_offsets=True, bandwidth=1.0, min_size=20, extra_scales=(0.5,))
    dense = cluster_instances(emb, probs, pts, **kwargs)
    compact = cluster_instances(emb, probs, pts, compact=True, **kwargs)
    assert isinstance(compact, MemberInstances) and len(compact) == len(dense) == 3
    assert np.array_equal(compact.masks, dense.masks) and np.array_equal(compact.scores, dense.scores)
    assert np.array_equal(compact.labels, dense.labels)
