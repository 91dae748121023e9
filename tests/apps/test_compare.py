"""pcseg compare: every method in its own process, scored by the same evaluator, one table and plot."""
import json

import numpy as np
import pytest
from untrained_checkpoints import untrained_checkpoint

from pcseg.cli import main
from pcseg.apps.compare import CompareConfig
from pcseg.evaluation import InstanceEvaluator
from pcseg.io.official import read_instance_predictions
from pcseg.io.scannet import list_scenes, read_scannet_scene
from pcseg.synth import write_synthetic_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare") / "rooms"
    write_synthetic_dataset(root, 2, seed=5, frames=4, workers=1, progress=False)
    return root


def test_compare_scores_each_method_like_the_evaluator(data, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["-q", "compare", "configs/compare_synthetic.yaml", f"data_root={data}", f"out_dir={out}",
            "methods=[gt-components, lift-gt-masks, maskrcnn2d, grid]", "checkpoint_2d=null",
            f"checkpoint_grid={tmp_path / 'none.pt'}", "threads=1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "maskrcnn2d: no checkpoint_2d given" in printed  # skipped, and said so
    assert f"grid: no checkpoint at {tmp_path / 'none.pt'}" in printed
    summary = json.loads((out / "compare.json").read_text())
    assert list(summary["results"]) == ["gt-components", "lift-gt-masks"]
    scenes = [read_scannet_scene(f) for f in list_scenes(data)]
    for method, result in summary["results"].items():
        evaluator = InstanceEvaluator()
        for scene in scenes:
            evaluator.process(scene, read_instance_predictions(out / "predictions" / method, scene.name,
                                                               num_points=len(scene)))
        assert result["AP50"] == pytest.approx(evaluator.evaluate()["AP50"])
        run = summary["runs"][method]
        assert run["scenes"] == 2 and run["peak_rss_mib"] > 50 and sum(run["seconds_per_scene"].values()) > 0
    assert set(summary["runs"]["lift-gt-masks"]["seconds_per_scene"]) >= {"read frames", "projection", "fusion", "snap"}
    # segment_snap 0.5 (the config's): every mask of every method is a union of the scene's segments
    for method in summary["results"]:
        for scene in scenes:
            masks = read_instance_predictions(out / "predictions" / method, scene.name, num_points=len(scene)).masks
            assert masks.shape[0] > 0
            for segment in np.unique(scene.segments):
                inside = masks[:, scene.segments == segment]
                assert np.all(inside.all(1) | ~inside.any(1))
    table = (out / "compare.md").read_text()
    assert "| gt-components |" in table and "| lift-gt-masks |" in table and "AP50 per class" in table
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_method_and_bad_snap_are_named():
    with pytest.raises(ValueError, match="frcnn"):
        CompareConfig(methods=["frcnn"])
    with pytest.raises(ValueError, match="segment_snap"):
        CompareConfig(segment_snap=1.5)


def test_compare_runs_the_grid_pipeline_from_its_checkpoint(data, tmp_path):
    ckpt = untrained_checkpoint(tmp_path / "grid.pt", "grid",
                                ["voxel_size=0.1", "widths=[8,16]", "grids=[4]", "size_ranges=[[0, 100]]"])
    out = tmp_path / "cmp"
    assert main(["-q", "compare", "configs/compare_synthetic.yaml", f"data_root={data}", f"out_dir={out}",
                 "methods=[grid]", f"checkpoint_grid={ckpt}", "threads=1"]) == 0
    summary = json.loads((out / "compare.json").read_text())
    assert list(summary["results"]) == ["grid"] and summary["runs"]["grid"]["scenes"] == 2
    assert summary["runs"]["grid"]["seconds_per_scene"]["network"] > 0
