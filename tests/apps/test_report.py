"""Evaluation report: the HTML and Markdown show the evaluator's numbers, images are embedded PNGs,
nothing is fetched from the network, and a failed write leaves no report folder behind."""
import base64
import html as html_lib
import io
import json
import math
import re
import warnings

import numpy as np
import pytest
from PIL import Image
from random_eval_scenes import random_scene

from pcseg.evaluation import InstanceEvaluator
from pcseg.apps import report as report_module
from pcseg.apps.report import SceneRender, best_and_worst, write_report


def evaluation(seed=11, scenes=3):
    rng = np.random.default_rng(seed)
    ev = InstanceEvaluator()
    for s in range(scenes):
        gt, pred = random_scene(rng)
        ev.process(gt, pred, name=f"scene{s:04d}_00")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ev.evaluate(), ev.pr_curves(0.5), ev.scene_results()


def fmt(v):
    return "n/a" if v is None or math.isnan(v) else f"{v:.3f}"


def html_rows(page):
    """Every table row of the page as a list of cell texts."""
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", page):
        rows.append([html_lib.unescape(c) for c in re.findall(r"<t[dh]>(.*?)</t[dh]>", row)])
    return rows


def md_rows(text):
    return [[c.strip() for c in line.strip().strip("|").split(" | ")] for line in text.splitlines()
            if line.startswith("| ")]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    result, curves, scenes = evaluation()
    semantic = {"mIoU": 0.4321, "classes": {"wall": 0.9, "floor": float("nan"), "sofa": float("nan")},
                "counted": ["wall"], "predicted_without_gt": {"sofa": 12}}
    block = np.zeros((60, 90, 3), np.uint8)
    block[:, :, 0] = 255
    renders = [SceneRender("best scene: scene0000_00", block, "ground truth | prediction | errors")]
    out = tmp_path_factory.mktemp("report") / "rep"
    page = write_report(out, result, curves, scenes=scenes, renders=renders, semantic=semantic, notes=["a note"])
    return out, page, result, curves, scenes


def test_html_tables_show_the_evaluators_numbers(written):
    out, page, result, _, scenes = written
    assert page == out / "index.html"
    rows = html_rows(page.read_text())
    assert ["AP", fmt(result["AP"])] in rows and ["AP50", fmt(result["AP50"])] in rows
    assert ["AP25", fmt(result["AP25"])] in rows and ["mIoU (1 classes with GT)", "0.432"] in rows
    for name, r in result["classes"].items():
        assert [name, fmt(r["AP"]), fmt(r["AP50"]), fmt(r["AP25"])] in rows
    assert sum(not math.isnan(r["AP"]) for r in result["classes"].values()) >= 3  # real numbers, not only n/a
    assert ["wall", "0.900"] in rows and ["floor", "n/a: not in GT"] in rows
    assert ["sofa", "n/a: not in GT, predicted on 12 points"] in rows
    scene_rows = [r for r in rows if r and r[0].startswith("scene0")]
    assert [r[0] for r in scene_rows] == [s["scene"] for s in sorted(scenes, key=lambda s: -s["AP"])]
    for s in scenes:
        assert [s["scene"], fmt(s["AP"]), fmt(s["AP50"]), fmt(s["AP25"]), str(s["num_gt"]), str(s["num_pred"])] in rows


def test_markdown_has_the_same_tables(written):
    out, page, *_ = written
    html_table_rows = [r for r in html_rows(page.read_text()) if r]
    md = (out / "report.md").read_text()
    assert md_rows(md) == html_table_rows  # same rows, same order, same text
    for name in ("pr_curves.png", "ap_per_class.png", "scene_0.png"):
        assert f"]({name})" in md and (out / name).is_file()


def test_images_are_embedded_pngs_and_nothing_is_fetched(written):
    out, page, *_ = written
    text = page.read_text()
    uris = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(uris) == 3  # PR curves, AP chart, one render
    sizes = []
    for data in uris:
        raw = base64.b64decode(data)
        assert raw.startswith(b"\x89PNG\r\n\x1a\n")
        sizes.append(Image.open(io.BytesIO(raw)).size)
    assert (90, 60) in sizes and all(w > 300 and h > 150 for w, h in sizes if (w, h) != (90, 60))
    assert not re.search(r"(src|href)=['\"](?!data:)", text)  # no external or relative resource
    assert "http://" not in text and "https://" not in text and "<style>" in text


def test_json_keeps_curves_and_results(written):
    out, _, result, curves, _ = written
    saved = json.loads((out / "report.json").read_text())
    assert saved["result"]["AP50"] == pytest.approx(result["AP50"])
    for name, curve in curves.items():
        if curve is None:
            assert saved["pr_curves"][name] is None
        else:
            assert saved["pr_curves"][name]["precision"] == pytest.approx(curve.precision.tolist())
            assert saved["pr_curves"][name]["ap"] == pytest.approx(result["classes"][name]["AP50"])


def test_without_renders_the_page_says_so(tmp_path):
    result, curves, scenes = evaluation(seed=3, scenes=2)
    page = write_report(tmp_path / "r", result, curves, scenes=scenes)
    assert "No scene renders: scene meshes were not given" in page.read_text()
    assert "No scene renders" in (tmp_path / "r" / "report.md").read_text()
    assert len(re.findall("data:image/png", page.read_text())) == 2


def test_failure_mid_write_leaves_no_report_folder(tmp_path, monkeypatch):
    result, curves, scenes = evaluation(seed=4, scenes=1)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(report_module, "_markdown", broken)  # after the PNGs, JSON and HTML are written
    with pytest.raises(OSError, match="disk full"):
        write_report(tmp_path / "rep", result, curves, scenes=scenes)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a temporary one
    monkeypatch.undo()
    write_report(tmp_path / "rep", result, curves, scenes=scenes)
    before = (tmp_path / "rep" / "index.html").read_text()
    monkeypatch.setattr(report_module, "_markdown", broken)
    with pytest.raises(OSError):
        write_report(tmp_path / "rep", result, curves, scenes=[])
    assert (tmp_path / "rep" / "index.html").read_text() == before  # the old report is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]


def test_best_and_worst_skip_scenes_without_gt():
    rows = [{"scene": n, "AP": ap, "AP50": ap50, "AP25": 0.0}
            for n, ap, ap50 in (("a", 0.2, 0.5), ("b", float("nan"), float("nan")), ("c", 0.2, 0.7), ("d", 0.1, 0.9))]
    assert [(w, r["scene"]) for w, r in best_and_worst(rows)] == [("best", "c"), ("worst", "d")]
    assert [(w, r["scene"]) for w, r in best_and_worst(rows[:1])] == [("best", "a")]
    assert best_and_worst(rows[1:2]) == []


def test_the_ap_chart_legend_covers_no_bar():
    from pcseg.apps.report import ap_bar_figure

    classes = {f"class{i}": {"AP": 0.9, "AP50": 0.95, "AP25": 1.0} for i in range(8)}
    fig = ap_bar_figure({"AP": 0.9, "AP50": 0.95, "AP25": 1.0, "classes": classes})
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    bars = [patch.get_window_extent(renderer) for patch in ax.patches]
    assert len(bars) == 24 and not any(legend.overlaps(bar) for bar in bars)
