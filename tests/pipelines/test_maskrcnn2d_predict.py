"""pcseg predict with a 2D checkpoint: per-frame masks -> lift_and_fuse -> the official submission
files that pcseg eval reads; with ground-truth masks as the network's output it gives exactly the
oracle's 3D instances."""
import numpy as np
import pytest
import torch

from pcseg.baseline2d import FusionConfig, lift_and_fuse, nyu40_to_contiguous, oracle_predictions
from pcseg.pipelines.maskrcnn2d.predict import predict_scene2d, vertex_semantic
from pcseg.pipelines.maskrcnn2d.recipe import MaskRCNNRecipe
from pcseg.io.frames import read_frames
from pcseg.io.scannet import list_scenes
from pcseg.structures import InstanceSet


class OracleNetwork(torch.nn.Module):
    """Stands in for Mask R-CNN in eval mode: returns each frame's ground-truth masks (in frame order)
    in torchvision's output format, so the glue around the network is what is tested."""

    def __init__(self, predictions):
        super().__init__()
        self.queue = list(predictions)

    def forward(self, images):
        out = []
        for image in images:
            masks, nyu40, scores = self.queue.pop(0)
            assert masks.shape[1:] == image.shape[1:]  # the network sees the frame on the depth grid
            out.append({"boxes": torch.zeros(len(masks), 4), "labels": torch.from_numpy(nyu40_to_contiguous(nyu40)),
                        "scores": torch.from_numpy(scores),
                        "masks": torch.from_numpy(masks.astype(np.float32))[:, None] * 0.9})
        return out


def test_oracle_network_through_predict_gives_the_oracle_instances(frames_root):
    folder = list_scenes(frames_root)[0]
    frames, intrinsics = read_frames(folder / "frames")
    oracle = oracle_predictions(frames)
    recipe = MaskRCNNRecipe(data_root=str(frames_root))
    scene, pred = predict_scene2d(OracleNetwork(oracle), recipe, folder)
    instances, timings = pred.instances, pred.timings
    from pcseg.io import read_scene

    expected = lift_and_fuse(read_scene(folder), frames, intrinsics, oracle, FusionConfig(), check_scene=False)
    assert len(instances) == len(expected) >= 5
    np.testing.assert_array_equal(instances.masks, expected.masks)
    np.testing.assert_array_equal(instances.labels, expected.labels)  # NYU40 again after the network's 1..18
    np.testing.assert_allclose(instances.scores, expected.scores, rtol=1e-6)
    assert timings["frames"] == len(frames) and timings["network"] >= 0 and timings["lift_fuse"] > 0
    assert set(timings) >= {"read", "projection", "lifting", "fusion"}


def test_vertex_semantic_takes_the_best_instance():
    masks = np.array([[1, 1, 0, 0], [0, 1, 1, 0]], bool)
    inst = InstanceSet(masks, np.array([5, 7]), np.array([0.4, 0.9], np.float32))
    np.testing.assert_array_equal(vertex_semantic(inst), [5, 7, 7, 0])


@pytest.fixture(scope="module")
def checkpoint2d(tmp_path_factory):
    """A randomly initialised tiny 2D model saved as `pcseg train` saves model.pt."""
    pytest.importorskip("torchvision")
    from pcseg.engine.checkpoint import save_checkpoint
    from pcseg.pipelines.maskrcnn2d.training import build_model2d

    recipe = MaskRCNNRecipe(backbone="resnet18", min_size=64, max_size=96, anchor_sizes=[8, 16, 32, 64, 128],
                            mask_head_channels=32, rpn_post_nms_test=32, detections_per_img=10,
                            box_score_thresh=0.0, fuse_score_thresh=0.0)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt2d") / "model.pt"
    weights = build_model2d(recipe).state_dict()
    save_checkpoint(path, {"kind": "maskrcnn2d", "config": recipe.to_dict(), "model": weights})
    return path


def test_predict_cli_with_a_2d_checkpoint_writes_files_that_eval_reads(frames_root, checkpoint2d, tmp_path, capsys):
    from pcseg.cli import main
    from pcseg.io.official import read_instance_predictions
    from pcseg.io.scannet import read_scannet_scene

    out, gt = tmp_path / "pred", tmp_path / "gt"
    assert main(["-q", "predict", "--checkpoint", str(checkpoint2d), "--input", str(frames_root / "scans"),
                 "--out", str(out), "fuse_min_frames=1"]) == 0
    printed = capsys.readouterr().out
    assert "network per frame" in printed and "lift_fuse" in printed
    for folder in list_scenes(frames_root):
        scene = read_scannet_scene(folder)
        inst = read_instance_predictions(out, scene.name, num_points=len(scene))
        ids = np.loadtxt(out / "instance_ids" / f"{scene.name}.txt", dtype=np.int64)
        np.testing.assert_array_equal(ids, inst.to_ids())
        assert (out / "semantic" / f"{scene.name}.txt").is_file()
    assert main(["-q", "data", "export-gt", "--scannet", str(frames_root), "--out", str(gt)]) == 0
    assert main(["-q", "eval", "--gt", str(gt), "--pred", str(out)]) == 0
    assert "AP" in capsys.readouterr().out


def test_predict_with_a_2d_checkpoint_needs_frames(frames_root, checkpoint2d, tmp_path, capsys):
    from pcseg.cli import main

    ply = next((frames_root / "scans" / "scene0000_00").glob("*_vh_clean_2.ply"))
    assert main(["-q", "predict", "--checkpoint", str(checkpoint2d), "--input", str(ply),
                 "--out", str(tmp_path / "p")]) == 2
    assert "RGB-D frames" in capsys.readouterr().err and not (tmp_path / "p").exists()
