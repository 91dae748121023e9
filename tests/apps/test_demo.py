"""pcseg demo: generates rooms, runs the configured methods, writes results; bad config keys fail."""
import json

import pytest
from untrained_checkpoints import untrained_checkpoint

from pcseg.apps.demo import run_demo
from pcseg.errors import ConfigError

TINY_BOTTOMUP = ["voxel_size=0.1", "widths=[8,16]", "embed_dim=4", "min_size=20"]


def test_demo_runs_methods_and_writes_results(tmp_path, capsys):
    ckpt = untrained_checkpoint(tmp_path / "model.pt", "bottomup", TINY_BOTTOMUP)
    results = run_demo(None, [f"data_dir={tmp_path / 'data'}", f"out_dir={tmp_path / 'out'}", "scenes=5",
                              f"checkpoint={ckpt}", "methods=[model, gt-components]", "render=false"])
    assert set(results) == {"model", "gt-components"}
    saved = json.loads((tmp_path / "out" / "results_gt-components.json").read_text())
    assert 0 < saved["AP50"] <= 1 and saved["AP50"] == pytest.approx(results["gt-components"]["AP50"])
    out = capsys.readouterr().out
    assert "AP_50%" in out and "gt-components" in out
    assert list((tmp_path / "out" / "predictions" / "model").glob("*.txt"))


def test_demo_rejects_unknown_keys_and_methods(tmp_path):
    with pytest.raises(ConfigError, match="scenez"):
        run_demo(None, ["scenez=3"])
    with pytest.raises(ConfigError, match="methods"):
        run_demo(None, ["methods=[magic]"])
    with pytest.raises(ConfigError, match="segment_snap"):
        run_demo(None, ["segment_snap=-0.5"])


def test_pred_dbscan_reuses_the_models_network_output(tmp_path, monkeypatch):
    from pcseg.pipelines.bottomup import predict as predict_module

    ckpt = untrained_checkpoint(tmp_path / "model.pt", "bottomup", TINY_BOTTOMUP)
    calls = []
    real = predict_module.run_network
    monkeypatch.setattr(predict_module, "run_network", lambda model, scene, *a, **k: calls.append(scene.name)
                        or real(model, scene, *a, **k))
    run_demo(None, [f"data_dir={tmp_path / 'data'}", f"out_dir={tmp_path / 'out'}", "scenes=5", "split=all",
                    f"checkpoint={ckpt}", "methods=[model, pred-dbscan]", "render=false", "report=false"])
    assert sorted(calls) == [f"scene000{i}_00" for i in range(5)]  # once per scene, not once per method


def test_demo_has_a_grid_row_and_drops_it_without_a_grid_model(tmp_path, capsys, monkeypatch):
    from pcseg import pipelines

    ckpt = untrained_checkpoint(tmp_path / "grid.pt", "grid", ["voxel_size=0.1", "widths=[8,16]", "grids=[4]",
                                                              "size_ranges=[[0, 100]]", "min_size=20"])
    args = [f"data_dir={tmp_path / 'data'}", f"out_dir={tmp_path / 'out'}", "scenes=2", "render=false", "report=false"]
    results = run_demo(None, [*args, f"grid_checkpoint={ckpt}", "methods=[grid, gt-components]"])
    assert set(results) == {"grid", "gt-components"}
    assert list((tmp_path / "out" / "predictions" / "grid").glob("*.txt"))
    monkeypatch.setattr(pipelines, "SHIPPED_GRID_MODEL", tmp_path / "none.pt")
    capsys.readouterr()
    assert set(run_demo(None, [*args, "methods=[grid, gt-components]"])) == {"gt-components"}
    assert "no trained grid model" in capsys.readouterr().out
