"""pcseg viz through the command line: PNG fallback without an X server, errors / embedding views
from a prediction folder, frames; pcseg predict --save-embeddings."""
import numpy as np
import pytest
import torch
from PIL import Image

from pcseg.cli import main
from pcseg.io.official import write_instance_predictions
from pcseg.io.scannet import list_scenes, read_scannet_scene
from pcseg.structures import InstanceSet
from pcseg.synth import write_synthetic_dataset
from pcseg.viz import ERROR_LEGEND, display_available

SMALL = ["--width", "320", "--height", "240"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("vizcli")
    write_synthetic_dataset(root / "synth", 1, seed=6, frames=2, workers=1, progress=False)
    folder = list_scenes(root / "synth")[0]
    scene = read_scannet_scene(folder)
    gt = scene.instance_set()
    wall = scene.semantic == 1
    pred = InstanceSet(np.vstack([gt.masks, wall]), np.r_[gt.labels, 5], np.ones(len(gt) + 1))  # + an FP
    write_instance_predictions(root / "pred", scene.name, pred)
    return folder, scene, root / "pred"


def test_no_x_server_falls_back_to_png(data, tmp_path, monkeypatch, capsys):
    folder, scene, _ = data
    monkeypatch.setenv("DISPLAY", ":99")  # set, but no X server behind it
    monkeypatch.chdir(tmp_path)
    assert not display_available()
    assert main(["viz", str(folder), "--color", "semantic", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "no usable display" in out and "instead of opening a window" in out
    image = np.asarray(Image.open(tmp_path / f"{scene.name}_semantic.png"))
    assert image.shape == (240, 320, 3) and (image != 255).any(-1).mean() > 0.2


def test_errors_view_side_by_side_shows_the_planted_false_positive(data, tmp_path):
    folder, _, pred = data
    out = tmp_path / "errors.png"
    assert main(["viz", str(folder), "--pred", str(pred), "--color", "errors", "--side-by-side",
                 "--out", str(out), *SMALL]) == 0
    image = np.asarray(Image.open(out)).astype(int)
    assert image.shape[1] == 3 * 320 + 2 * 8  # GT | prediction | errors
    fp = np.round(np.array(ERROR_LEGEND["false positive"]) * 255)
    errors_panel = image[:, 2 * 328:]
    # the lit render darkens the FP colour: compare hue-wise (blue dominant, red low)
    bluish = (errors_panel[..., 2] > 150) & (errors_panel[..., 0] < 60) & (errors_panel[..., 1] < 140)
    assert bluish.mean() > 0.03
    assert np.all(np.abs(image - fp) <= 1, -1).sum() >= 16  # the legend's swatch
    assert main(["viz", str(folder), "--color", "errors", "--out", str(out)]) == 2


def test_embedding_view_needs_the_embeddings_file(data, tmp_path, capsys):
    folder, scene, pred = data
    out = tmp_path / "emb.png"
    assert main(["viz", str(folder), "--pred", str(pred), "--color", "embedding", "--out", str(out)]) == 2
    assert f"embeddings/{scene.name}.npy" in capsys.readouterr().err
    (pred / "embeddings").mkdir(exist_ok=True)
    emb = np.where(scene.semantic[:, None] == 1, 1.0, -1.0) * np.ones((1, 4))  # walls vs the rest
    np.save(pred / "embeddings" / f"{scene.name}.npy", emb.astype(np.float16))
    assert main(["viz", str(folder), "--pred", str(pred), "--color", "embedding", "--out", str(out), *SMALL]) == 0
    image = np.asarray(Image.open(out))
    colors = {tuple(c) for c in image.reshape(-1, 3)[::7]}
    assert len(colors) > 10


def test_frame_with_masks(data, tmp_path):
    folder, _, _ = data
    out = tmp_path / "frame.png"
    assert main(["viz", str(folder), "--frame", "1", "--out", str(out)]) == 0
    image = np.asarray(Image.open(out))
    assert image.shape[1] >= 3 * 640  # colour | instance masks | classes
    assert main(["viz", str(folder), "--frame", "7", "--out", str(out)]) == 2


def test_predict_save_embeddings_writes_float16(data, tmp_path):
    from pcseg.pipelines.bottomup.build import build_model
    from pcseg.engine.checkpoint import save_checkpoint
    from pcseg.engine.config import load_config
    from pcseg.pipelines.bottomup.recipe import BottomUpRecipe

    _, scene, _ = data
    recipe = load_config(BottomUpRecipe, None, ["voxel_size=0.15", "widths=[8,16]", "embed_dim=5", "min_size=20"])
    torch.manual_seed(0)
    ckpt = tmp_path / "model.pt"
    save_checkpoint(ckpt, {"kind": "bottomup", "config": recipe.to_dict(), "model": build_model(recipe).state_dict()})
    cloud = tmp_path / "cloud.npz"
    np.savez(cloud, points=scene.points[::4], colors=scene.colors[::4])
    out = tmp_path / "pred"
    assert main(["-q", "predict", "--checkpoint", str(ckpt), "--input", str(cloud), "--out", str(out),
                 "--save-embeddings"]) == 0
    emb = np.load(out / "embeddings" / "cloud.npy")
    assert emb.dtype == np.float16 and emb.shape == (len(scene.points[::4]), 5)
    assert np.isfinite(emb).all() and emb.std() > 0
    assert main(["-q", "predict", "--checkpoint", str(ckpt), "--input", str(cloud), "--out", str(tmp_path / "p2")]) == 0
    assert not (tmp_path / "p2" / "embeddings").exists()


def test_display_available_connects_to_the_server(tmp_path, monkeypatch):
    import socket

    path = str(tmp_path / "X0")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        monkeypatch.setenv("DISPLAY", f"{path}:0")  # launchd-style DISPLAY naming the socket
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        assert display_available()
    monkeypatch.setenv("DISPLAY", f"{path}:0")
    assert not display_available()  # the socket file is left, nobody listens
    monkeypatch.delenv("DISPLAY")
    assert not display_available()


def test_a_scan_without_labels_shows_rgb_and_the_predicted_classes(data, tmp_path, capsys):
    """A user's own cloud has no GT: side by side is RGB | prediction, and the semantic view colours
    the predicted classes with a legend of those classes."""
    from pcseg.io.official import write_semantic_txt
    from pcseg.io.plain import write_point_cloud
    from pcseg.structures import Scene
    from pcseg.viz.legend import legend_for
    from pcseg.viz.view import read_prediction_files, scene_panels, semantic_shown

    import shutil

    folder, scene, shared = data
    pred_dir = shutil.copytree(shared, tmp_path / "pred")  # the module's folder stays as it was
    cloud = tmp_path / f"{scene.name}.ply"
    write_point_cloud(Scene(scene.points, scene.colors, name=scene.name), cloud)  # no labels
    predicted = np.where(scene.semantic == 1, 5, 1)  # walls predicted as chairs, the rest as wall
    write_semantic_txt(pred_dir / "semantic" / f"{scene.name}.txt", predicted)
    bare = Scene(scene.points, scene.colors, name=scene.name)
    pred = read_prediction_files(pred_dir, bare, semantic=True)
    panels = scene_panels(bare, "instance", pred, side_by_side=True)
    assert [t for t, _ in panels] == ["RGB", "prediction (instances)"]
    np.testing.assert_array_equal(panels[0][1], bare.colors)
    assert [t for t, _ in scene_panels(bare, "semantic", pred, side_by_side=True)] == ["RGB", "prediction (semantic)"]
    (title, colours), = scene_panels(bare, "semantic", pred)
    assert title == "semantic classes (prediction)"
    assert [name for name, _ in legend_for(bare, "semantic", semantic_shown(bare, pred, False))] == ["wall", "chair"]
    for extra in (["--side-by-side"], ["--color", "semantic"], ["--color", "semantic", "--side-by-side"]):
        out = tmp_path / "view.png"
        assert main(["-q", "viz", str(cloud), "--pred", str(pred_dir), *extra, "--out", str(out), *SMALL]) == 0
        image = np.asarray(Image.open(out))
        assert (image.shape[1] > 2 * 320) if "--side-by-side" in extra else (image.shape[:2] == (240, 320))
        assert (image != 255).any(-1).mean() > 0.1  # something drawn
    assert main(["-q", "viz", str(cloud), "--pred", str(pred_dir), "--color", "errors", "--out", str(out)]) != 0
    assert "needs GT semantic and instance labels" in capsys.readouterr().err
