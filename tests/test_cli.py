"""End to end through the command line: synthetic rooms -> official GT -> predictions -> eval / viz."""
import json
from pathlib import Path

import numpy as np
import pytest

from pcseg.cli import main
from pcseg.io.official import read_gt_txt, write_instance_predictions
from pcseg.io.scannet import list_scenes, read_scannet_scene


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "synth"
    assert main(["-q", "data", "synth", "--out", str(root), "--scenes", "2", "--seed", "5", "--frames", "1",
                 "--workers", "1"]) == 0
    return root


def test_synth_writes_the_scannet_layout(dataset):
    assert (dataset / "scannetv2-labels.combined.tsv").is_file()
    assert (dataset / "scannetv2_train.txt").is_file() and (dataset / "scannetv2_val.txt").is_file()
    folders = list_scenes(dataset)
    assert [f.name for f in folders] == ["scene0000_00", "scene0001_00"]
    name = folders[0].name
    for suffix in ("_vh_clean_2.ply", "_vh_clean_2.0.010000.segs.json", ".aggregation.json", ".txt"):
        assert (folders[0] / f"{name}{suffix}").is_file()
    for sub, ext in (("color", "jpg"), ("depth", "png"), ("pose", "txt"), ("label", "png"), ("instance", "png")):
        assert (folders[0] / "frames" / sub / f"0.{ext}").is_file()


def test_export_gt_then_eval_a_perfect_submission(dataset, tmp_path, capsys):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    assert main(["-q", "data", "export-gt", "--scannet", str(dataset), "--out", str(gt_dir)]) == 0
    for folder in list_scenes(dataset):
        scene = read_scannet_scene(folder)
        gt = read_gt_txt(gt_dir / f"{scene.name}.txt")
        assert gt.shape == (len(scene),)
        np.testing.assert_array_equal(gt // 1000, np.where(scene.instance > 0, scene.semantic, 0))
        write_instance_predictions(pred_dir, scene.name, scene.instance_set())
    out_json = tmp_path / "result.json"
    assert main(["-q", "eval", "--gt", str(gt_dir), "--pred", str(pred_dir), "--json", str(out_json)]) == 0
    result = json.loads(out_json.read_text())
    assert result["AP"] == 1.0 and result["AP50"] == 1.0 and result["AP25"] == 1.0
    assert set(result["classes"]) >= {"chair", "table", "door"} and len(result["classes"]) == 18
    assert any(v["AP"] is None for v in result["classes"].values())  # classes without GT -> null
    assert "AP_50%" in capsys.readouterr().out


def test_eval_warns_about_gt_scenes_without_predictions(dataset, tmp_path, capsys):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    main(["-q", "data", "export-gt", "--scannet", str(dataset), "--out", str(gt_dir)])
    scene = read_scannet_scene(list_scenes(dataset)[0])
    write_instance_predictions(pred_dir, scene.name, scene.instance_set())
    with pytest.warns(UserWarning, match="scene0001_00"):
        assert main(["-q", "eval", "--gt", str(gt_dir), "--pred", str(pred_dir)]) == 0


def test_viz_writes_a_png_headless(dataset, tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.delenv("DISPLAY", raising=False)
    out = tmp_path / "scene.png"
    folder = list_scenes(dataset)[0]
    assert main(["viz", str(folder), "--color", "semantic", "--out", str(out), "--width", "320", "--height", "240"]) == 0
    image = np.asarray(Image.open(out))
    assert image.shape == (240, 320, 3) and (image < 250).any(axis=-1).mean() > 0.1


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["eval", "--gt", str(tmp_path / "missing"), "--pred", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pcseg: error:") and "missing" in err
    assert main(["viz", str(tmp_path / "nope.ply")]) == 2
    assert "nope.ply" in capsys.readouterr().err
    assert main(["data", "export-gt", "--scannet", str(tmp_path), "--out", str(tmp_path / "gt")]) == 2
    assert not (tmp_path / "gt").exists()


@pytest.mark.parametrize("args, message", [
    (["data", "synth", "--out", "X", "--scenes", "0"], "argument --scenes: must be >= 1, got 0"),
    (["data", "synth", "--out", "X", "--frames", "-1"], "argument --frames: must be >= 0, got -1"),
    (["data", "synth", "--out", "X", "--workers", "0"], "argument --workers: must be >= 1, got 0"),
    (["data", "synth", "--out", "X", "--seed", "-3"], "argument --seed: must be >= 0, got -3"),
    (["eval", "--gt", "a", "--pred", "b", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_arguments_exit_2_with_the_commands_own_usage(tmp_path, capsys, args, message):
    args = [str(tmp_path / a) if a == "X" else a for a in args]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and f"usage: pcseg {args[0]}" in err and "Traceback" not in err
    assert not (tmp_path / "X").exists()


def test_a_broken_yaml_override_is_one_line(tmp_path, capsys):
    recipe = Path(__file__).parents[1] / "configs" / "synthetic_bottomup.yaml"
    assert main(["train", str(recipe), "widths=[32,64"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pcseg: error: override 'widths=[32,64': the value is not valid YAML") and err.count("\n") == 1


def test_version_and_quiet_after_the_command(capsys):
    from pcseg import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"pcseg {__version__}"
    from pcseg.cli import build_parser

    assert build_parser().parse_args(["eval", "--gt", "a", "--pred", "b", "-q"]).quiet


def test_overrides_may_follow_an_option(tmp_path, capsys):
    # `pcseg train CFG --resume max_minutes=90` (the README's order) reaches the resume, not the usage
    recipe = Path(__file__).parents[1] / "configs" / "synthetic_bottomup.yaml"
    assert main(["train", str(recipe), "--resume", f"out_dir={tmp_path / 'run'}", "max_minutes=90"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint" in err and str(tmp_path / "run") in err
