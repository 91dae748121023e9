"""pcseg predict: official submission files that pcseg eval scores; clear errors for bad checkpoints."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from pcseg.cli import main
from pcseg.cluster import snap_labels_to_segments, snap_to_segments
from pcseg.cluster.superpoints import scene_superpoints
from pcseg.pipelines.bottomup.build import build_model
from pcseg.engine.checkpoint import save_checkpoint
from pcseg.engine.config import load_config
from pcseg.pipelines.bottomup.predict import load_model, predict_scene
from pcseg.pipelines.bottomup.recipe import BottomUpRecipe
from pcseg.errors import DataError
from pcseg.io.official import read_instance_predictions, read_semantic_txt
from pcseg.io.scannet import list_scenes, read_scannet_scene
from pcseg.structures import Scene
from pcseg.synth import write_synthetic_dataset


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    data = root / "synth"
    write_synthetic_dataset(data, 2, seed=4, workers=1, progress=False)
    recipe = load_config(BottomUpRecipe, None, ["voxel_size=0.1", "widths=[8,16]", "embed_dim=4", "min_size=20"])
    torch.manual_seed(0)
    model = build_model(recipe)
    ckpt = root / "model.pt"
    save_checkpoint(ckpt, {"kind": "bottomup", "config": recipe.to_dict(), "model": model.state_dict()})
    return data, ckpt


def test_predict_writes_official_files_that_eval_scores(setup, tmp_path, capsys):
    data, ckpt = setup
    out, gt = tmp_path / "pred", tmp_path / "gt"
    assert main(["-q", "predict", "--checkpoint", str(ckpt), "--input", str(data), "--out", str(out)]) == 0
    for folder in list_scenes(data):
        scene = read_scannet_scene(folder)
        inst = read_instance_predictions(out, scene.name, num_points=len(scene))
        assert inst.num_points == len(scene)
        assert read_semantic_txt(out / "semantic" / f"{scene.name}.txt").shape == (len(scene),)
        ids = np.loadtxt(out / "instance_ids" / f"{scene.name}.txt", dtype=np.int64)
        np.testing.assert_array_equal(ids, inst.to_ids())
    assert "seconds per scene" in capsys.readouterr().out
    assert main(["-q", "data", "export-gt", "--scannet", str(data), "--out", str(gt)]) == 0
    capsys.readouterr()
    assert main(["-q", "eval", "--gt", str(gt), "--pred", str(out), "--json", str(tmp_path / "r.json")]) == 0
    # semantic/ is scored too: the same mIoU as an evaluator fed the same arrays
    from pcseg.evaluation import SemanticEvaluator

    want = SemanticEvaluator()
    for folder in list_scenes(data):
        scene = read_scannet_scene(folder)
        want.process(scene.semantic * (scene.instance > 0), read_semantic_txt(out / "semantic" / f"{scene.name}.txt"))
    got = json.loads((tmp_path / "r.json").read_text())["semantic"]
    assert got["mIoU"] == pytest.approx(want.evaluate()["mIoU"]) and got["counted"] == want.evaluate()["counted"]
    assert "classes present in the GT" in capsys.readouterr().out


def test_one_scene_folder_is_one_scene(setup, tmp_path):
    data, ckpt = setup
    folder = list_scenes(data)[0]
    out = tmp_path / "one"
    assert main(["-q", "predict", "--checkpoint", str(ckpt), "--input", str(folder), "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "instance_ids").iterdir()) == [f"{folder.name}.txt"]


def test_predict_plain_files_and_empty_scene(setup, tmp_path, capsys):
    data, ckpt = setup
    scene = read_scannet_scene(list_scenes(data)[0])
    path = tmp_path / "cloud.npz"
    np.savez(path, points=scene.points, colors=scene.colors)
    assert main(["-q", "predict", "--checkpoint", str(ckpt), "--input", str(path), "--out", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out  # a user's cloud has no annotation: no advice to score it
    assert "look at it: pcseg viz CLOUD" in out and "score it" not in out
    # the same room exported y-up, predicted with --up y: the same instances, point for point
    y_up = np.stack([scene.points[:, 0], scene.points[:, 2], -scene.points[:, 1]], 1)
    (tmp_path / "y").mkdir()
    np.savez(tmp_path / "y" / "cloud.npz", points=y_up, colors=scene.colors)
    assert main(["-q", "predict", "--checkpoint", str(ckpt), "--input", str(tmp_path / "y" / "cloud.npz"),
                 "--up", "y", "--out", str(tmp_path / "py")]) == 0
    for folder in ("instance_ids", "semantic"):
        assert (tmp_path / "p" / folder / "cloud.txt").read_text() == (tmp_path / "py" / folder / "cloud.txt").read_text()
    model, recipe = load_model(ckpt)
    empty = predict_scene(model, Scene(np.zeros((0, 3))), recipe)
    assert len(empty.instances) == 0 and empty.semantic.shape == (0,)
    one = predict_scene(model, Scene(np.zeros((1, 3))), recipe)
    assert one.semantic.shape == (1,)


def test_bad_checkpoints_are_clear_errors_and_leave_no_folder(setup, tmp_path, capsys):
    data, ckpt = setup
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(ckpt.read_bytes()[:1000])
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(corrupt), "--input", str(data), "--out", str(out)]) == 2
    assert "corrupt.pt" in capsys.readouterr().err and not out.exists()
    # weights of another architecture under this config
    recipe = load_config(BottomUpRecipe, None, ["voxel_size=0.1", "widths=[8,16]", "embed_dim=4"])
    other = build_model(load_config(BottomUpRecipe, None, ["widths=[8,16,24]", "embed_dim=4"]))
    mixed = tmp_path / "mixed.pt"
    save_checkpoint(mixed, {"kind": "bottomup", "config": recipe.to_dict(), "model": other.state_dict()})
    with pytest.raises(DataError, match="weights do not fit"):
        load_model(mixed)
    assert main(["predict", "--checkpoint", str(mixed), "--input", str(data), "--out", str(out)]) == 2
    assert not out.exists()
    # a folder that is not ours is never overwritten
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert main(["predict", "--checkpoint", str(ckpt), "--input", str(data), "--out", str(tmp_path / "mine")]) == 2
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_unknown_override_is_named(setup, tmp_path, capsys):
    data, ckpt = setup
    assert main(["predict", "--checkpoint", str(ckpt), "--input", str(data), "--out", str(tmp_path / "p"),
                 "bandwith=0.5"]) == 2
    assert "command-line override: unknown key 'bandwith' (did you mean 'bandwidth'?)" in capsys.readouterr().err


def test_training_keys_are_refused_at_prediction(setup, tmp_path, capsys):
    data, ckpt = setup
    out = tmp_path / "p"
    assert main(["predict", "--checkpoint", str(ckpt), "--input", str(data), "--out", str(out), "lr=0.5"]) == 2
    err = capsys.readouterr().err
    assert "lr: set by training and fixed in the checkpoint" in err and "bandwidth" in err
    assert not out.exists()


@pytest.mark.parametrize("device, message", [
    ("gpu", "'gpu' is not a device; use cpu, cuda, cuda:N or auto"),
    ("cuda", "CUDA is not available on this machine"),
])
def test_a_device_this_machine_lacks_is_named(setup, tmp_path, capsys, monkeypatch, device, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data, ckpt = setup
    assert main(["predict", "--checkpoint", str(ckpt), "--input", str(data), "--out", str(tmp_path / "p"),
                 "--device", device]) == 2
    err = capsys.readouterr().err
    assert message in err and "checkpoint" not in err


def test_exported_half_weights_predict_like_the_original(setup, tmp_path):
    from pcseg.engine.checkpoint import export_weights

    data, ckpt = setup
    small = export_weights(ckpt, tmp_path / "small.pt")
    assert small.stat().st_size < 0.6 * ckpt.stat().st_size
    scene = read_scannet_scene(list_scenes(data)[0])
    full_model, recipe = load_model(ckpt)
    half_model, _ = load_model(small)
    batch_scene = Scene(scene.points, scene.colors)
    from pcseg.data import collate

    with torch.no_grad():
        a = full_model(collate([batch_scene]))["semantic_logits"]
        b = half_model(collate([batch_scene]))["semantic_logits"]
    assert torch.allclose(a, b, atol=0.05 * a.abs().max().item())


def test_a_checkpoint_runs_on_the_spconv_backend_too(setup):
    pytest.importorskip("spconv.pytorch")
    from pcseg.data import collate
    from pcseg.errors import ConfigError
    from pcseg.models import use_backend

    data, ckpt = setup
    scene = read_scannet_scene(list_scenes(data)[0])
    batch = collate([Scene(scene.points[:3000], scene.colors[:3000])])
    from pcseg.runtime import set_threads

    before = torch.get_num_threads()
    try:
        set_threads(2)  # threads already chosen: loading a model keeps them (a fresh process would pick its own)
        torch.set_num_threads(2)
        with pytest.raises(ConfigError, match="backend"):  # spconv's CPU path is unsafe multithreaded
            load_model(ckpt, overrides=["backend=spconv"])
        torch.set_num_threads(1)
        torch_model, _ = load_model(ckpt, overrides=["backend=torch"])
        with torch.no_grad():
            reference = torch_model(batch)["embeddings"]
        spconv_model, _ = load_model(ckpt, overrides=["backend=spconv"])
        with torch.no_grad():
            other = spconv_model(batch)["embeddings"]
        torch.testing.assert_close(other, reference, atol=1e-4, rtol=1e-4)
    finally:
        use_backend("auto")
        torch.set_num_threads(before)


def test_segment_snap_applies_to_scenes_with_segments_only(setup):
    data, ckpt = setup
    model, recipe = load_model(ckpt, overrides=["min_size=5", "bandwidth=0.2"])
    scene = read_scannet_scene(list_scenes(data)[0])
    plain = predict_scene(model, scene, recipe)
    assert len(plain.instances) > 0
    snapped = predict_scene(model, scene, dataclasses.replace(recipe, segment_snap=0.5))
    expect = snap_to_segments(plain.instances, scene.segments, 0.5, recipe.min_size)
    np.testing.assert_array_equal(snapped.instances.masks, expect.masks)
    assert not np.array_equal(snapped.instances.masks, plain.instances.masks)
    np.testing.assert_array_equal(snapped.semantic, snap_labels_to_segments(plain.semantic, scene.segments))
    # a plain point cloud: snapped to superpoints computed for it, or not at all with superpoints off
    without = dataclasses.replace(scene, segments=None)
    computed = predict_scene(model, without, dataclasses.replace(recipe, segment_snap=0.5))
    expect = snap_to_segments(plain.instances, scene_superpoints(without), 0.5, recipe.min_size)
    np.testing.assert_array_equal(computed.instances.masks, expect.masks)
    assert computed.timings["superpoints"] > 0
    off = predict_scene(model, without, dataclasses.replace(recipe, segment_snap=0.5, superpoints=False))
    np.testing.assert_array_equal(off.instances.masks, plain.instances.masks)
    assert "superpoints" not in off.timings
    # a bare cloud without colours (all one grey) is not snapped: normals alone join objects to the floor
    grey = dataclasses.replace(without, colors=np.full_like(without.colors, 0.5), faces=None)
    np.testing.assert_array_equal(predict_scene(model, grey, dataclasses.replace(recipe, segment_snap=0.5)).instances.masks,
                                  predict_scene(model, grey, recipe).instances.masks)


def test_bad_inputs_are_found_before_the_network_runs(setup, tmp_path, capsys, monkeypatch):
    from pcseg.pipelines.bottomup import predict as predict_module

    data, ckpt = setup
    scene = read_scannet_scene(list_scenes(data)[0])
    folder = tmp_path / "clouds"
    folder.mkdir()
    for name in ("a", "c"):
        np.savez(folder / f"{name}.npz", points=scene.points, colors=scene.colors)
    (folder / "b.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 10\n")  # truncated
    runs = []
    real = predict_module.run_network
    monkeypatch.setattr(predict_module, "run_network", lambda *a, **k: runs.append(1) or real(*a, **k))
    out = tmp_path / "p"
    assert main(["-q", "predict", "--checkpoint", str(ckpt), "--input", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "1 of 3 input(s) cannot be read, nothing was predicted" in err and "b.ply" in err and "--skip-bad" in err
    assert runs == [] and not out.exists()
    with pytest.warns(UserWarning, match="skipping 1 of 3 input.*b.ply"):
        assert main(["-q", "predict", "--checkpoint", str(ckpt), "--input", str(folder), "--out", str(out),
                     "--skip-bad"]) == 0
    assert len(runs) == 2 and sorted(p.name for p in out.glob("*.txt")) == ["a.txt", "c.txt"]


def test_the_overlapped_folder_run_writes_what_predict_scene_predicts(setup, tmp_path):
    from pcseg.pipelines import predict_to_folder

    data, ckpt = setup
    totals = predict_to_folder(data, tmp_path / "p", checkpoint=ckpt, progress=False)
    assert totals["scenes"] == 2 and totals["wall"] > 0
    model, recipe = load_model(ckpt)
    for folder in list_scenes(data):
        scene = read_scannet_scene(folder)
        want = predict_scene(model, scene, recipe)
        np.testing.assert_array_equal(read_semantic_txt(tmp_path / "p" / "semantic" / f"{scene.name}.txt"), want.semantic)
        got = read_instance_predictions(tmp_path / "p", scene.name, num_points=len(scene))
        np.testing.assert_array_equal(got.masks, want.instances.masks)


def test_prediction_reads_no_annotation(setup, tmp_path):
    """A scan predicts without the labels tsv beside it and with an annotation that would not read:
    prediction needs points, colours and segments only (and predicts the same)."""
    import shutil

    from pcseg.io import read_scene

    data, ckpt = setup
    source = list_scenes(data)[0]
    scan = tmp_path / "scans" / source.name
    shutil.copytree(source, scan)
    next(scan.glob("*.aggregation.json")).write_text("{corrupt")
    with pytest.raises(DataError, match="aggregation"):
        read_scene(scan)
    scene = read_scene(scan, labels=False)
    assert scene.semantic is None and scene.segments is not None
    assert main(["-q", "predict", "--checkpoint", str(ckpt), "--input", str(tmp_path / "scans"),
                 "--out", str(tmp_path / "p"), "--labels", "ignored.tsv"]) == 0
    model, recipe = load_model(ckpt)
    want = predict_scene(model, read_scannet_scene(source), recipe)
    got = read_instance_predictions(tmp_path / "p", source.name, num_points=len(scene))
    np.testing.assert_array_equal(got.masks, want.instances.masks)


def test_the_recipes_embedding_weight_reaches_the_clustering(setup):
    from pcseg.cluster import cluster_instances
    from pcseg.pipelines.bottomup.build import cluster_settings
    from pcseg.pipelines.bottomup.predict import group_instances, run_network

    data, ckpt = setup
    model, recipe = load_model(ckpt, overrides=["use_embeddings=true", "use_offsets=true", "embedding_weight=0.3",
                                                "min_size=5", "bandwidth=0.3"])
    scene = read_scannet_scene(list_scenes(data)[0])
    out = run_network(model, scene, recipe)
    got = group_instances(out, recipe).instances
    settings = {**cluster_settings(recipe), "embedding_weight": 1.0}
    # the voxels are clustered, each weighted by its points; every point takes its voxel's instances
    want = cluster_instances(out.embeddings * 0.3, out.probs, out.points, offsets=out.offsets,
                             weights=out.counts, **settings)
    assert len(want) > 0 and want.num_points == len(out.counts) < len(scene) == got.num_points
    np.testing.assert_array_equal(got.masks, want.masks[:, out.inverse.numpy()])
    unweighted = group_instances(out, dataclasses.replace(recipe, embedding_weight=1.0)).instances
    assert unweighted.masks.shape != got.masks.shape or not np.array_equal(unweighted.masks, got.masks)
    # a prediction's extra hypotheses (extra_scales) come after the first set, unchanged
    extra = dataclasses.replace(recipe, extra_scales=[0.5], extra_score=0.4)
    both = group_instances(out, extra).instances
    wider = cluster_instances(out.embeddings * 0.3, out.probs, out.points, offsets=out.offsets, weights=out.counts,
                              **{**settings, "extra_scales": (0.5,), "extra_score": 0.4})
    np.testing.assert_array_equal(both.masks, wider.masks[:, out.inverse.numpy()])
    np.testing.assert_array_equal(both.masks[:len(got)], got.masks)


def test_a_scan_wider_than_a_block_is_predicted_in_blocks(setup, tmp_path, capsys):
    """Two rooms side by side as one plain cloud: predicted block by block (tile_size), written whole."""
    from pcseg.io.plain import write_point_cloud
    from pcseg.synth.floor import floor_of_rooms

    data, ckpt = setup
    rooms = [read_scannet_scene(f) for f in list_scenes(data)]
    floor = floor_of_rooms(rooms, gap=1.0, name="floor")
    write_point_cloud(Scene(floor.points, floor.colors, name="floor"), tmp_path / "floor.ply")
    out = tmp_path / "pred"
    assert main(["-q", "predict", "--checkpoint", str(ckpt), "--input", str(tmp_path / "floor.ply"), "--out", str(out),
                 "tile_size=5", "tile_overlap=1.5", "min_size=5", "bandwidth=0.2"]) == 0
    printed = capsys.readouterr().out
    assert "predicted in" in printed and "overlapping blocks" in printed and "merge" in printed
    inst = read_instance_predictions(out, "floor", num_points=len(floor))
    assert len(inst) > 0 and read_semantic_txt(out / "semantic" / "floor.txt").shape == (len(floor),)
    assert main(["-q", "predict", "--checkpoint", str(ckpt), "--input", str(tmp_path / "floor.ply"), "--out",
                 str(tmp_path / "p2"), "tile_size=5", "tile_overlap=5"]) != 0
    assert "tile_overlap: must be >= 0 and smaller than tile_size" in capsys.readouterr().err
    assert not (tmp_path / "p2").exists()


def test_masks_compact_and_auto_write_one_file_per_scene_that_eval_scores_alike(setup, tmp_path, capsys, monkeypatch):
    """--masks compact: instances/<scene>.npz instead of per-instance mask files, the same AP; --masks
    auto switches to it (with a warning naming the scene) where the files would pass the limit."""
    import pcseg.engine.predict as engine_predict

    data, ckpt = setup
    base = ["-q", "predict", "--checkpoint", str(ckpt), "--input", str(data), "min_size=5", "bandwidth=0.2"]
    assert main(base + ["--out", str(tmp_path / "files")]) == 0
    assert main(base + ["--out", str(tmp_path / "compact"), "--masks", "compact"]) == 0
    assert not (tmp_path / "compact" / "predicted_masks").exists()
    assert main(["-q", "data", "export-gt", "--scannet", str(data), "--out", str(tmp_path / "gt")]) == 0
    results = {}
    for kind in ("files", "compact"):
        assert main(["-q", "eval", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / kind),
                     "--json", str(tmp_path / f"{kind}.json")]) == 0
        results[kind] = json.loads((tmp_path / f"{kind}.json").read_text())
    for folder in list_scenes(data):
        scene = read_scannet_scene(folder)
        want = read_instance_predictions(tmp_path / "files", scene.name, num_points=len(scene))
        got = read_instance_predictions(tmp_path / "compact", scene.name, num_points=len(scene))
        assert len(want) > 0
        np.testing.assert_array_equal(got.masks, want.masks)
        np.testing.assert_array_equal(got.labels, want.labels)
    assert results["compact"]["AP"] == pytest.approx(results["files"]["AP"], abs=1e-6)
    monkeypatch.setattr(engine_predict, "MASK_FILE_LINES_LIMIT", 1)
    capsys.readouterr()
    with pytest.warns(UserWarning, match=r"official mask files; wrote pcseg's compact instances/"):
        assert main(base + ["--out", str(tmp_path / "auto")]) == 0
    assert sorted(p.name for p in (tmp_path / "auto" / "instances").iterdir()) == \
        sorted(p.name for p in (tmp_path / "compact" / "instances").iterdir())
    assert main(base + ["--out", str(tmp_path / "forced"), "--masks", "files"]) == 0
    assert (tmp_path / "forced" / "predicted_masks").is_dir() and not (tmp_path / "forced" / "instances").exists()


def test_a_colour_cast_scan_predicts_as_the_scan_does(setup):
    """Colours are balanced per scene before the network (``color_reference``): a darker, warmer copy of a
    scan (a per-channel gain, as a real scan's exposure and white balance) gives the same network outputs
    and instances; with ``color_reference=[]`` the network reads the colours as they are."""
    from pcseg.pipelines.bottomup.predict import run_network

    data, ckpt = setup
    scene = read_scannet_scene(list_scenes(data)[0])
    cast = dataclasses.replace(scene, colors=scene.colors * np.array([0.8, 0.6, 0.45], np.float32))
    model, recipe = load_model(ckpt, overrides=["min_size=5", "bandwidth=0.2"])
    a, b = run_network(model, scene, recipe), run_network(model, cast, recipe)
    torch.testing.assert_close(b.probs, a.probs, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(b.embeddings, a.embeddings, atol=1e-5, rtol=1e-4)
    first, second = predict_scene(model, scene, recipe), predict_scene(model, cast, recipe)
    assert len(first.instances) > 0
    np.testing.assert_array_equal(second.instances.to_ids(), first.instances.to_ids())
    model, recipe = load_model(ckpt, overrides=["color_reference=[]"])
    a, b = run_network(model, scene, recipe), run_network(model, cast, recipe)
    assert not torch.allclose(a.embeddings, b.embeddings, atol=1e-3)
