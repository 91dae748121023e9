import functools
import os
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

import pcseg.data.dataset as dataset_mod
from pcseg.data import Augmentation, PointCloudFiles, SceneDataset, collate, feature_channels
from pcseg.errors import DataError
from pcseg.io.plain import write_point_cloud
from pcseg.io.scannet import write_scannet_scene
from pcseg.labels import IGNORE, LABELS_TSV_NAME, write_label_tsv
from pcseg.structures import Scene

# (NYU40 class, instance id, number of points) of each object in a test room
LAYOUT = [(1, 1, 40), (2, 2, 40), (5, 3, 30), (5, 4, 30), (7, 5, 25), (40, 6, 15), (0, -1, 20)]


def make_scene(name, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    sem = np.concatenate([np.full(n, c) for c, _, n in LAYOUT])
    inst = np.concatenate([np.full(n, i) for _, i, n in LAYOUT])
    n = len(sem)
    pts = rng.uniform(0, 3.0, (n, 3)) + shift
    return Scene(points=pts, colors=rng.uniform(0, 1, (n, 3)), semantic=sem, instance=inst, name=name)


def build(root, names=("scene0000_00", "scene0001_00", "scene0002_00"), train=("scene0002_00", "scene0000_00"),
          val=("scene0001_00",)):
    scenes = {}
    for i, name in enumerate(names):
        scenes[name] = make_scene(name, i, shift=float(i))
        write_scannet_scene(scenes[name], root / "scans" / name)
    write_label_tsv(root / LABELS_TSV_NAME)
    if train is not None:
        (root / "scannetv2_train.txt").write_text("".join(s + "\n" for s in train))
    if val is not None:
        (root / "scannetv2_val.txt").write_text("".join(s + "\n" for s in val))
    return scenes


@pytest.fixture
def data(tmp_path):
    return tmp_path, build(tmp_path)


class CountingReader:
    """Wraps read_scannet_scene and counts calls (to see whether the cache was used)."""

    def __init__(self):
        self.calls = 0
        self.real = dataset_mod.read_scannet_scene

    def __call__(self, *a, **k):
        self.calls += 1
        return self.real(*a, **k)


def test_reads_the_split_in_order(data):
    root, scenes = data
    ds = SceneDataset(root, split="train")
    assert len(ds) == 2 and ds.names == ["scene0002_00", "scene0000_00"]
    s = ds[0]
    ref = scenes["scene0002_00"]
    assert s.name == "scene0002_00"
    assert np.allclose(s.points, ref.points) and np.allclose(s.colors, ref.colors, atol=1 / 255)
    assert np.array_equal(s.semantic, ref.semantic) and np.array_equal(s.instance, ref.instance)
    assert SceneDataset(root, split="val").names == ["scene0001_00"]
    assert len(SceneDataset(root, split=None)) == 3
    assert ds[-1].name == "scene0000_00"
    with pytest.raises(IndexError):
        ds[2]


def test_missing_split_file_falls_back_to_all_scenes(data):
    root, _ = data
    with pytest.warns(UserWarning, match="split file not found"):
        ds = SceneDataset(root, split="nosuchsplit")
    assert ds.names == ["scene0000_00", "scene0001_00", "scene0002_00"]


def test_split_naming_a_missing_scene_is_an_error(data):
    root, _ = data
    (root / "scannetv2_train.txt").write_text("scene0000_00\nscene0099_00\n")
    with pytest.raises(DataError, match="scene0099_00"):
        SceneDataset(root, split="train")


def test_cache_written_once_reused_and_rebuilt_after_changes(data, monkeypatch):
    root, scenes = data
    reader = CountingReader()
    monkeypatch.setattr(dataset_mod, "read_scannet_scene", reader)
    ds = SceneDataset(root, split="train")
    cache = root / ".pcseg_cache" / "scene0002_00.npz"
    assert not cache.exists()
    first = ds[0]
    assert reader.calls == 1 and cache.is_file()
    mtime = cache.stat().st_mtime_ns
    again = SceneDataset(root, split="train")[0]  # a fresh dataset object reuses the file too
    assert reader.calls == 1 and cache.stat().st_mtime_ns == mtime
    assert np.array_equal(first.points, again.points) and np.array_equal(first.instance, again.instance)
    assert first.segments is not None and np.array_equal(first.segments, again.segments)  # kept for snapping
    assert not [p for p in cache.parent.iterdir() if p.name != "scene0002_00.npz"]  # no temp files left

    # the source changes: the scene is read again and the cache replaced
    changed = make_scene("scene0002_00", 7, shift=5.0)
    write_scannet_scene(changed, root / "scans" / "scene0002_00")
    s = ds[0]
    assert reader.calls == 2 and np.allclose(s.points, changed.points)
    ds[0]
    assert reader.calls == 2

    # the labels tsv is a source too
    tsv = root / LABELS_TSV_NAME
    st = tsv.stat()
    os.utime(tsv, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    ds[0]
    assert reader.calls == 3


def test_corrupt_cache_is_rebuilt(data, monkeypatch):
    root, _ = data
    ds = SceneDataset(root, split="val", cache_dir=root / "elsewhere")
    ref = ds[0]
    cache = root / "elsewhere" / "scene0001_00.npz"
    assert cache.is_file() and not (root / ".pcseg_cache").exists()
    cache.write_bytes(b"not a zip file")
    reader = CountingReader()
    monkeypatch.setattr(dataset_mod, "read_scannet_scene", reader)
    with pytest.warns(UserWarning, match="unreadable cache"):
        s = ds[0]
    assert reader.calls == 1 and np.array_equal(s.points, ref.points)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds[0]
    assert reader.calls == 1


def test_augmentation_is_deterministic_per_seed_epoch_and_index(data):
    root, _ = data
    aug = Augmentation(dropout=0.1)
    ds = SceneDataset(root, split=None, augment=aug, seed=3)
    plain = SceneDataset(root, split=None)
    a, b = ds[0], ds[0]
    assert np.array_equal(a.points, b.points) and np.array_equal(a.colors, b.colors)
    assert len(a) < len(plain[0]) or not np.allclose(a.points, plain[0].points)
    ds.set_epoch(1)
    c = ds[0]
    assert len(c) != len(a) or not np.allclose(c.points, a.points)
    ds.set_epoch(0)
    assert np.array_equal(ds[0].points, a.points)
    other_seed = SceneDataset(root, split=None, augment=aug, seed=4)[0]
    assert len(other_seed) != len(a) or not np.allclose(other_seed.points, a.points)
    with pytest.raises(ValueError):
        ds.set_epoch(-1)
    with pytest.raises(ValueError):
        SceneDataset(root, split=None, seed=-2)


def test_collate_offsets_features_and_label_spaces(data):
    root, _ = data
    ds = SceneDataset(root, split=None)
    scenes = [ds[0], ds[1]]
    batch = collate(scenes)
    n = sum(n for _, _, n in LAYOUT)
    assert batch.offset.tolist() == [n, 2 * n] and batch.names == ("scene0000_00", "scene0001_00")
    assert batch.features.shape == (2 * n, feature_channels()) == (2 * n, 3)
    assert torch.allclose(batch.features[:n], torch.from_numpy(scenes[0].colors))
    assert batch.semantic.dtype == torch.long and batch.instance.dtype == torch.long
    sem, inst = batch.semantic[:n], batch.instance[:n]
    start = 0
    expect_sem = {1: 0, 2: 1, 5: 4, 7: 6, 40: IGNORE, 0: IGNORE}  # NYU40 -> ScanNet20 index
    for cls, iid, count in LAYOUT:
        part = slice(start, start + count)
        assert set(sem[part].tolist()) == {expect_sem[cls]}
        # only the 18 instance classes keep their ids: wall, floor, otherprop and unannotated -> -1
        assert set(inst[part].tolist()) == ({iid} if cls in (5, 7) else {-1})
        start += count
    assert torch.equal(batch.instance[n:], batch.instance[:n])  # ids are per scene, not renumbered

    tall = collate(scenes, height=True)
    assert tall.features.shape == (2 * n, feature_channels(height=True))
    z = tall.points[n:, 2]
    assert torch.allclose(tall.features[n:, 3], z - float(np.percentile(z.numpy(), 1)))  # above the floor level

    unlabelled = Scene(points=np.zeros((4, 3)), name="u")
    assert collate([scenes[0], unlabelled]).semantic is None
    with pytest.raises(ValueError):
        collate([])


def test_dataloader_with_workers_matches_the_main_process(data):
    root, _ = data
    ds = SceneDataset(root, split=None, augment=Augmentation(), seed=1)
    for i in range(len(ds)):
        ds.load(i)  # fill the cache first, so workers do not race on writing it
    loader = DataLoader(ds, batch_size=2, shuffle=False, num_workers=2,
                        collate_fn=functools.partial(collate, height=True))
    batches = list(loader)
    assert [len(b) for b in batches] == [2, 1]
    expected = collate([ds[0], ds[1]], height=True)
    assert torch.equal(batches[0].points, expected.points) and torch.equal(batches[0].offset, expected.offset)
    assert torch.equal(batches[0].features, expected.features)
    assert batches[1].names == ("scene0002_00",)


def test_distributed_sampler_splits_the_scenes(data):
    root, _ = data
    ds = SceneDataset(root, split=None)
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        sampler.set_epoch(0)
        names = [n for b in DataLoader(ds, batch_size=1, sampler=sampler, collate_fn=collate) for n in b.names]
        assert len(names) == 2
        seen += names
    assert set(seen) == set(ds.names)


def test_point_cloud_files(tmp_path):
    a = make_scene("a", 0)
    b = make_scene("b", 1)
    pa = write_point_cloud(a, tmp_path / "a.npz")
    pb = write_point_cloud(b, tmp_path / "b.ply")
    ds = PointCloudFiles([pa, pb], augment=Augmentation(), seed=2)
    assert len(ds) == 2
    s = ds.load(1)
    assert s.name == "b" and np.array_equal(s.semantic, b.semantic) and np.allclose(s.points, b.points)
    assert np.array_equal(ds[0].points, ds[0].points) and not np.allclose(ds[0].points, a.points)
    batch = collate([ds[0], ds[1]])
    assert batch.offset.tolist() == [len(a), len(a) + len(b)]
    with pytest.raises(DataError, match="missing.npz"):
        PointCloudFiles([tmp_path / "missing.npz"])
    with pytest.raises(TypeError):
        PointCloudFiles(str(pa))


def test_instance_sizes_and_semantic_point_counts_by_hand():
    from pcseg.data import instance_sizes, semantic_point_counts

    # a 1 x 2 x 2 m chair (NYU40 5 -> class 4) of 4 points, a 3 x 4 x 0 m table (NYU40 7 -> class 6)
    # of 3 points, and 2 wall points (class 0, not an instance class)
    points = np.array([[0, 0, 0], [1, 2, 2], [0, 2, 0], [1, 0, 2],
                       [5, 5, 1], [8, 9, 1], [6, 5, 1], [0, 0, 3], [1, 1, 3]], np.float32)
    semantic = np.array([5, 5, 5, 5, 7, 7, 7, 1, 1])
    instance = np.array([1, 1, 1, 1, 2, 2, 2, 3, 3])
    scene = Scene(points, np.zeros_like(points), semantic=semantic, instance=instance, name="s")

    class Rooms:
        def __len__(self):
            return 2

        def load(self, index):
            return scene

    sizes = instance_sizes(Rooms())
    assert sizes[4] == pytest.approx([3.0, 3.0]) and sizes[6] == pytest.approx([5.0, 5.0])
    assert all(not s for c, s in enumerate(sizes) if c not in (4, 6))
    counts = semantic_point_counts(Rooms())
    assert counts[4] == 8 and counts[6] == 6 and counts[0] == 4 and counts.sum() == 18


def test_height_channel_is_measured_from_the_floor_not_a_stray_point():
    from pcseg.data import collate
    from pcseg.data.dataset import floor_level

    rng = np.random.default_rng(0)
    points = np.concatenate([rng.uniform([0, 0, 0], [4, 4, 0.01], (2000, 3)),   # the floor at z ~ 0
                             rng.uniform([0, 0, 0.5], [4, 4, 2.5], (3000, 3)),  # furniture and walls
                             [[1.0, 1.0, -1.5]]]).astype(np.float32)            # one reflection below the floor
    assert 0 <= floor_level(points[:, 2]) <= 0.01
    batch = collate([Scene(points, np.full_like(points, 0.5), name="s")], height=True)
    height = batch.features[:, 3].numpy()
    assert height.shape == (5001,) and abs(np.median(height[:2000])) < 0.01 and height[-1] < -1.4


def test_balance_colors_moves_each_scene_to_the_reference_mean():
    from pcseg.data import REFERENCE_COLOR, balance_colors

    rng = np.random.default_rng(0)
    colors = rng.uniform(0.1, 0.4, (1000, 3)).astype(np.float32)
    out = balance_colors(colors, (0.6, 0.5, 0.4))
    np.testing.assert_allclose(out.mean(0), [0.6, 0.5, 0.4], rtol=1e-5)  # no value clipped here
    np.testing.assert_allclose(out, colors * (np.array([0.6, 0.5, 0.4]) / colors.mean(0)), rtol=1e-5)
    # a per-channel cast and darkening of the scan is undone: same result without and with it
    cast = colors * np.array([0.9, 0.7, 0.6], np.float32)
    np.testing.assert_allclose(balance_colors(cast), balance_colors(colors), rtol=1e-5)
    np.testing.assert_allclose(balance_colors(colors).mean(0), REFERENCE_COLOR, rtol=1e-5)
    # clipped to 0..1; a nearly black channel gains at most MAX_COLOR_GAIN; black and empty scans stay so
    bright = balance_colors(np.array([[0.9, 0.01, 0.0], [0.1, 0.01, 0.0]], np.float32), (0.9, 0.5, 0.5))
    np.testing.assert_allclose(bright, [[1.0, 0.04, 0.0], [0.18, 0.04, 0.0]], rtol=1e-5)
    assert balance_colors(np.zeros((0, 3), np.float32)).shape == (0, 3)
    grey = np.full((50, 3), 0.5, np.float32)  # a cloud without colours: one grey, left as read
    np.testing.assert_array_equal(balance_colors(grey), grey)


def test_collate_balances_each_scene_on_its_own(data):
    from pcseg.data import balance_colors

    root, _ = data
    ds = SceneDataset(root, split=None)
    scenes = [ds[0], ds[1]]
    n = len(scenes[0])
    batch = collate(scenes, height=True, color_reference=(0.5, 0.5, 0.5))
    assert torch.allclose(batch.features[:n, :3], torch.from_numpy(balance_colors(scenes[0].colors, (0.5, 0.5, 0.5))))
    assert torch.allclose(batch.features[n:, :3], torch.from_numpy(balance_colors(scenes[1].colors, (0.5, 0.5, 0.5))))
    assert torch.equal(batch.features[:, 3], collate(scenes, height=True).features[:, 3])  # height unchanged


def test_input_batch_balances_colours_at_prediction_and_reads_them_as_they_are_in_training(data):
    from types import SimpleNamespace

    from pcseg.data import REFERENCE_COLOR, balance_colors, input_batch

    root, _ = data
    scene = SceneDataset(root, split=None)[0]
    recipe = SimpleNamespace(height_feature=True, color_reference=list(REFERENCE_COLOR))
    predicted, trained = input_batch([scene], recipe), input_batch([scene], recipe, training=True)
    assert not np.allclose(scene.colors, balance_colors(scene.colors))  # the balance changes these colours
    assert torch.allclose(predicted.features[:, :3], torch.from_numpy(balance_colors(scene.colors)))
    assert torch.allclose(trained.features[:, :3], torch.from_numpy(scene.colors))
    assert torch.equal(predicted.features[:, 3], trained.features[:, 3])  # the height channel either way
    recipe.color_reference = []
    assert torch.allclose(input_batch([scene], recipe).features[:, :3], torch.from_numpy(scene.colors))
