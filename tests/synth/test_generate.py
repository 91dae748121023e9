"""generate_scene: a valid, realistic, hard scene; labels consistent with segments and groups."""
import numpy as np
import pytest

from pcseg.labels import BUNDLED_RAW_CATEGORIES, INSTANCE_IDS
from pcseg.synth import generate_scene
from pcseg.synth.generate import touching_pairs


@pytest.fixture(scope="module")
def synth():
    return generate_scene(11, "scene0011_00", frames=0, kind="kitchen")


def test_scene_is_valid_mesh_with_labels(synth):
    s = synth.scene
    assert s.faces is not None and len(s.faces) > len(s) // 2
    used = np.zeros(len(s), bool)
    used[s.faces.ravel()] = True
    assert used.all(), "every kept vertex belongs to a kept triangle"
    assert s.has_labels and s.segments is not None and s.seg_groups
    assert set(np.unique(s.instance)) <= {-1} | set(range(1, len(s.seg_groups) + 1))
    # unannotated vertices have semantic 0, annotated ones a NYU40 class
    assert np.all((s.instance == -1) == (s.semantic == 0))
    for g in s.seg_groups:
        assert g.label in BUNDLED_RAW_CATEGORIES
        sem = np.unique(s.semantic[s.instance == g.object_id + 1])
        assert sem.tolist() == [BUNDLED_RAW_CATEGORIES[g.label]]


def test_realism_ranges(synth):
    st = synth.stats
    assert 50_000 <= st["vertices"] <= 150_000
    assert 15 <= st["benchmark_instances"] <= 40
    assert 0.025 <= st["nn_spacing"] <= 0.035
    assert 0.3 < st["visible_fraction"] < 0.9
    assert st["touching_pairs"] >= 1  # kitchen cabinets in a row
    assert st["room_type"] == "kitchen" and synth.scene.meta["sceneType"] == "Kitchen"


def test_axis_alignment_puts_the_room_upright_at_the_origin(synth):
    s = synth.scene
    pts = s.aligned().points
    floor = pts[s.semantic == 2]
    assert abs(np.median(floor[:, 2])) < 0.005
    assert pts[:, :2].min() > -0.3 and pts[:, 2].min() > -0.05
    # the scan frame really differs from the aligned one (a random yaw and shift)
    assert not np.allclose(s.axis_alignment, np.eye(4))
    walls = np.unique(s.instance[s.semantic == 1])
    assert len(walls) >= 3, "each wall is its own object"


def test_segments_never_straddle_two_objects(synth):
    s = synth.scene
    seg, inst = s.segments, s.instance
    order = np.lexsort((inst, seg))
    seg_s, inst_s = seg[order], inst[order]
    same_seg = seg_s[1:] == seg_s[:-1]
    assert not np.any(same_seg & (inst_s[1:] != inst_s[:-1]))
    sizes = np.unique(seg, return_counts=True)[1]
    assert np.median(sizes) >= 20 and len(sizes) > 200  # small patches, not whole objects


def test_seg_groups_rebuild_the_instances(synth):
    s = synth.scene
    rebuilt = np.full(len(s), -1)
    for g in s.seg_groups:
        rebuilt[np.isin(s.segments, g.segments)] = g.object_id + 1
    assert np.array_equal(rebuilt, s.instance)


def test_deterministic_for_a_seed():
    a = generate_scene(3, "scene0003_00", kind="bathroom").scene
    b = generate_scene(3, "scene0003_00", kind="bathroom").scene
    c = generate_scene(4, "scene0003_00", kind="bathroom").scene
    for field in ("points", "colors", "faces", "semantic", "instance", "segments", "axis_alignment"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert a.seg_groups == b.seg_groups and a.meta == b.meta
    assert len(a) != len(c) or not np.array_equal(a.points, c.points)


def test_class_coverage_over_room_types():
    classes = set()
    for seed, kind in enumerate(("living room", "bathroom", "bedroom", "office")):
        st = generate_scene(seed, f"scene{seed:04d}_00", kind=kind).stats
        assert st["benchmark_instances"] >= 12, st
        classes.update(st["classes"])
    assert classes <= set(INSTANCE_IDS)
    assert len(classes) >= 12, sorted(classes)


def test_touching_pairs_counts_same_class_neighbours_only():
    grid = np.stack(np.meshgrid(np.arange(10), np.arange(10), [0.0]), -1).reshape(-1, 3) * 0.03
    pts = np.concatenate([grid, grid + [0.285, 0, 0], grid + [0.6, 0, 0], grid + [0.885, 0, 0]])
    inst = np.repeat([1, 2, 3, 4], 100)
    # 1 and 2 touch (1.5 cm), 2 and 3 are 4.5 cm apart, 3 and 4 touch but differ in class
    sem = np.repeat([5, 5, 5, 7], 100)
    assert touching_pairs(pts, sem, inst) == 1
    assert touching_pairs(pts, np.repeat([5, 5, 5, 5], 100), inst) == 2
    assert touching_pairs(pts, np.repeat([1, 1, 1, 1], 100), inst) == 0  # walls are not benchmark classes


@pytest.mark.parametrize("kwargs, match", [
    (dict(seed=-1, name="s"), "seed"), (dict(seed=1.5, name="s"), "seed"),
    (dict(seed=0, name="s", frames=-2), "frames"), (dict(seed=0, name="s", kind="garage"), "room type"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_scene(**kwargs)


def test_the_shifted_domain_is_darker_warmer_noisier_holed_and_deterministic():
    from pcseg.synth import generate_scene

    standard = generate_scene(21, "s").scene
    shifted = generate_scene(21, "s", domain="shifted").scene
    again = generate_scene(21, "s", domain="shifted").scene
    np.testing.assert_array_equal(shifted.points, again.points)
    np.testing.assert_array_equal(shifted.colors, again.colors)
    assert len(shifted) < len(standard)  # holes cut into the same scan
    mean_standard, mean_shifted = standard.colors.mean(0), shifted.colors.mean(0)
    assert (mean_shifted < mean_standard - 0.04).all()  # darker in every channel
    assert mean_shifted[0] - mean_shifted[2] > mean_standard[0] - mean_standard[2] + 0.05  # warmer: red over blue
    # same room, same labels vocabulary: only appearance, geometry noise, holes and annotation gaps differ
    assert set(np.unique(shifted.semantic)) <= set(np.unique(standard.semantic)) | {0}


def test_an_unknown_domain_is_refused(tmp_path):
    from pcseg.errors import ConfigError
    from pcseg.synth import generate_scene, write_synthetic_dataset

    with pytest.raises(ValueError, match="unknown synthetic domain 'real'"):
        generate_scene(1, "s", domain="real")
    with pytest.raises(ConfigError, match="unknown synthetic domain"):
        write_synthetic_dataset(tmp_path / "out", 1, domain="real", progress=False)
    assert not (tmp_path / "out").exists()
