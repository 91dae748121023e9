"""`pcseg eval --report DIR [--scenes DATASET_ROOT]` end to end on tiny synthetic rooms."""
import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from pcseg.cli import main
from pcseg.io.official import write_instance_predictions
from pcseg.io.scannet import list_scenes, read_scannet_scene
from pcseg.structures import InstanceSet
from pcseg.synth import write_synthetic_dataset


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two rooms; scene0000_00 predicted perfectly, scene0001_00 with half its instances missing and
    a false positive, so the best and worst scenes are known."""
    tmp = tmp_path_factory.mktemp("evalreport")
    root, gt_dir, pred_dir = tmp / "synth", tmp / "gt", tmp / "pred"
    write_synthetic_dataset(root, 2, seed=6, workers=1, progress=False)
    assert main(["-q", "data", "export-gt", "--scannet", str(root), "--out", str(gt_dir)]) == 0
    for i, folder in enumerate(list_scenes(root)):
        scene = read_scannet_scene(folder)
        gt = scene.instance_set()
        if i == 1:
            keep = np.arange(len(gt)) % 2 == 0
            fp = np.zeros((1, len(scene)), bool)
            # a confident false "chair": 500 points outside any instance plus one whole object (so it is
            # not dropped as lying on void)
            fp[0, np.flatnonzero(scene.instance <= 0)[:500]] = True
            fp[0, np.flatnonzero(gt.masks[1])] = True
            gt = InstanceSet(np.r_[gt.masks[keep], fp], np.r_[gt.labels[keep], [5]], np.r_[gt.scores[keep], [0.99]])
        write_instance_predictions(pred_dir, scene.name, gt)
    return root, gt_dir, pred_dir


def embedded_pngs(page: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(d)))
            for d in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)]


def test_report_with_renders_of_the_best_and_worst_scene(folders, tmp_path, capsys):
    root, gt_dir, pred_dir = folders
    rep, js = tmp_path / "report", tmp_path / "r.json"
    assert main(["-q", "eval", "--gt", str(gt_dir), "--pred", str(pred_dir), "--json", str(js),
                 "--report", str(rep), "--scenes", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1] == f"report: {rep / 'index.html'}"
    page = (rep / "index.html").read_text()
    result = json.loads(js.read_text())
    assert 0 < result["AP"] < 1
    assert f"<td>AP</td><td>{result['AP']:.3f}</td>" in page and f"| AP | {result['AP']:.3f} |" in (
        rep / "report.md").read_text()
    best = page.index("best scene: scene0000_00 (AP 1.000")
    assert page.index("worst scene: scene0001_00") > best
    images = embedded_pngs(page)
    assert len(images) == 4  # PR curves, AP chart, two renders
    for im in images[2:]:  # GT | prediction | errors, 480 px each, under titles
        arr = np.asarray(im.convert("RGB"))
        assert arr.shape[1] == 3 * 480 + 2 * 8 and arr.shape[0] >= 360
        assert (arr.min(-1) < 200).mean() > 0.1  # the room, not a white image
    scenes = json.loads((rep / "report.json").read_text())["scenes"]
    assert {s["scene"]: s["AP"] for s in scenes}["scene0000_00"] == 1.0


def test_report_without_scenes_has_no_renders(folders, tmp_path, capsys):
    _, gt_dir, pred_dir = folders
    rep = tmp_path / "report"
    assert main(["-q", "eval", "--gt", str(gt_dir), "--pred", str(pred_dir), "--report", str(rep)]) == 0
    assert "no scene renders" in capsys.readouterr().out
    page = (rep / "index.html").read_text()
    assert len(embedded_pngs(page)) == 2 and "No scene renders" in page


def test_bad_scenes_root_fails_cleanly_without_a_report(folders, tmp_path, capsys):
    _, gt_dir, pred_dir = folders
    rep = tmp_path / "report"
    assert main(["-q", "eval", "--gt", str(gt_dir), "--pred", str(pred_dir), "--report", str(rep),
                 "--scenes", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pcseg: error:") and "nowhere" in err and "scans" in err
    assert not rep.exists()
    assert main(["-q", "eval", "--gt", str(gt_dir), "--pred", str(pred_dir), "--scenes", str(tmp_path)]) == 2
    assert "--report" in capsys.readouterr().err
