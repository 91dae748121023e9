"""Evaluation report: one self-contained HTML page (inline CSS, images as base64 data URIs, nothing
fetched) and the same tables in Markdown, written atomically into one folder.

Contents: overall AP/AP50/AP25 (and mIoU when semantic results are given), the per-class table, a
precision-recall plot per class, a per-class AP bar chart, the per-scene table and renders of the
best and worst scenes (GT | prediction | errors). matplotlib (Agg, no pyplot state) and the
renderer (pcseg.viz, Open3D) are imported only when a report is made.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import DataError
from ..io.atomic import atomic_path
from ..evaluation.instance import PRCurve, to_json_dict
from ..evaluation.semantic import iou_text

REPORT_HTML, REPORT_MD, REPORT_JSON = "index.html", "report.md", "report.json"
NO_RENDERS = "No scene renders: scene meshes were not given (`--scenes DATASET_ROOT`)."
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@dataclass
class SceneRender:
    """One picture of the report: ``image`` UInt8Array[H, W, 3], a title and a caption."""

    title: str
    image: np.ndarray
    caption: str = ""


def _fmt(value) -> str:
    """3 decimals as the official table; NaN / None (class without GT) as 'n/a'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _tables(result: dict, semantic: dict | None, scenes: Sequence[dict] | None
            ) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table, formatted once so HTML and Markdown show the same text."""
    overall = [["AP", _fmt(result["AP"])], ["AP50", _fmt(result["AP50"])], ["AP25", _fmt(result["AP25"])]]
    if semantic is not None:
        counted = semantic.get("counted")
        overall.append([f"mIoU ({len(counted)} classes with GT)" if counted is not None else "mIoU",
                        _fmt(semantic["mIoU"])])
    tables = [("Overall", ["metric", "value"], overall),
              ("Per class (instance AP)", ["class", "AP", "AP50", "AP25"],
               [[name, _fmt(r["AP"]), _fmt(r["AP50"]), _fmt(r["AP25"])] for name, r in result["classes"].items()])]
    if semantic is not None:
        tables.append(("Per class (semantic IoU)", ["class", "IoU"],
                       [[name, iou_text(semantic, name) or _fmt(v)] for name, v in semantic["classes"].items()]))
    if scenes:
        ranked = sorted(scenes, key=_rank_key, reverse=True)
        tables.append(("Per scene (each scene evaluated alone, best first)",
                       ["scene", "AP", "AP50", "AP25", "GT instances", "predictions"],
                       [[r["scene"], _fmt(r["AP"]), _fmt(r["AP50"]), _fmt(r["AP25"]), str(r["num_gt"]),
                         str(r["num_pred"])] for r in ranked]))
    return tables


def _rank_key(row: dict) -> tuple:
    """Order scenes by AP, then AP50, then AP25; scenes without GT (NaN) rank last."""
    values = [row[k] for k in ("AP", "AP50", "AP25")]
    return (not math.isnan(values[0]),) + tuple(-1.0 if math.isnan(v) else v for v in values)


def best_and_worst(scenes: Sequence[dict], count: int = 1) -> list[tuple[str, dict]]:
    """[("best" | "worst", row)]: the ``count`` best and ``count`` worst scenes by AP (then AP50,
    AP25) among those with GT; a scene is listed once even when fewer than 2 * count qualify."""
    ranked = sorted((r for r in scenes if not math.isnan(r["AP"])), key=_rank_key, reverse=True)
    best = ranked[:count]
    worst = [r for r in reversed(ranked[count:])][:count]
    return [("best", r) for r in best] + [("worst", r) for r in worst]


def render_scenes(picks: Sequence[tuple[str, dict]], load: Callable, size: tuple[int, int] = (480, 360)
                  ) -> list[SceneRender]:
    """GT | prediction | errors of each picked scene. ``load(name) -> (Scene, InstanceSet | None)``:
    the labelled scene and its prediction over the same points (None: no prediction)."""
    from ..structures import InstanceSet
    from ..viz import colorize, error_colors, render_image, side_by_side

    renders = []
    for which, row in picks:
        scene, instances = load(row["scene"])
        if instances is None:
            instances = InstanceSet.empty(len(scene))
        errors, summary = error_colors(scene, instances)  # what colorize(scene, "errors", ...) draws, + counts
        panels = [render_image(scene, colors, size=size)
                  for colors in (colorize(scene, "instance"), colorize(scene, "instance", instances), errors)]
        counts = ", ".join(f"{summary[k]} {label}" for k, label in (
            ("matched", "matched"), ("missed", "missed"), ("split", "split"), ("merged_gt", "merged GT"),
            ("false_positive", "false positive(s)")))
        renders.append(SceneRender(f"{which} scene: {row['scene']} (AP {_fmt(row['AP'])}, AP50 {_fmt(row['AP50'])})",
                                   side_by_side(panels, titles=["ground truth", "prediction", "errors"]),
                                   f"GT instances: {counts} (IoU 0.5)"))
    return renders


def _error_legend() -> dict[str, tuple[float, float, float]]:
    from ..viz import ERROR_LEGEND

    return ERROR_LEGEND


def _png_bytes(figure_or_image) -> bytes:
    """PNG bytes of a matplotlib Figure or a UInt8Array[H, W, 3]."""
    buf = io.BytesIO()
    if isinstance(figure_or_image, np.ndarray):
        from PIL import Image

        Image.fromarray(figure_or_image).save(buf, format="PNG")
    else:
        figure_or_image.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _figure(width: float, height: float):
    """A matplotlib Figure on the Agg canvas (no pyplot: no global state, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def pr_figure(curves: dict[str, PRCurve | None], columns: int = 6):
    """Small multiples: one precision-recall plot per class with GT (classes without GT are left out)."""
    shown = [(name, c) for name, c in curves.items() if c is not None]
    columns = max(1, min(columns, len(shown)))
    rows = max(1, math.ceil(len(shown) / columns))
    fig = _figure(2.1 * columns, 2.0 * rows + 0.3)
    iou = shown[0][1].iou if shown else 0.5
    fig.suptitle(f"precision-recall at IoU {iou:.2f} (points in descending score order)", fontsize=10)
    for i, (name, c) in enumerate(shown):
        ax = fig.add_subplot(rows, columns, i + 1)
        # the official points run from the lowest score (highest recall) to the artificial (0, 1)
        ax.plot(c.recall[::-1], c.precision[::-1], "-o", color="tab:blue", markersize=2.5, linewidth=1.2)
        ax.set_title(f"{name}  AP {c.ap:.3f}", fontsize=8)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.05)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
        if i % columns == 0:
            ax.set_ylabel("precision", fontsize=7)
        if i >= len(shown) - columns:
            ax.set_xlabel("recall", fontsize=7)
    if not shown:
        fig.text(0.5, 0.5, "no class has ground truth", ha="center")
    return fig


def ap_bar_figure(result: dict):
    """Grouped horizontal bars of AP, AP50, AP25 per class with GT."""
    names = [n for n, r in result["classes"].items() if not math.isnan(r["AP"])]
    fig = _figure(8, 0.32 * max(len(names), 3) + 1.0)
    ax = fig.add_subplot()
    y = np.arange(len(names))
    for k, (key, color) in enumerate((("AP", "tab:blue"), ("AP50", "tab:orange"), ("AP25", "tab:green"))):
        ax.barh(y + (k - 1) * 0.27, [result["classes"][n][key] for n in names], height=0.27, color=color, label=key)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("average precision")
    ax.set_title(f"per-class AP (mean AP {_fmt(result['AP'])}, AP50 {_fmt(result['AP50'])}, "
                 f"AP25 {_fmt(result['AP25'])})", fontsize=10)
    # outside the axes: inside, it covered the last classes' bars
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return fig


_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1240px;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 10px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f0f0f0}tr:nth-child(even) td{background:#fafafa}
img{max-width:100%;border:1px solid #eee}figure{margin:1em 0}figcaption{color:#555;font-size:.9em}
.note{color:#555}.row{display:flex;gap:2em;align-items:flex-start;flex-wrap:wrap}
.legend span{display:inline-block;width:1em;height:1em;margin:0 .3em 0 1em;vertical-align:middle}"""


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells):
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "|".join("---" for _ in header) + "|"] + [line(r) for r in rows])


def write_report(out_dir: str | os.PathLike, result: dict, curves: dict[str, PRCurve | None],
                 scenes: Sequence[dict] | None = None, renders: Sequence[SceneRender] | None = None,
                 semantic: dict | None = None, title: str = "pcseg evaluation report",
                 notes: Sequence[str] = (), no_renders: str = NO_RENDERS) -> Path:
    """Write ``out_dir/`` with ``index.html`` (self-contained), ``report.md`` (same tables, images as
    the PNG files beside it), ``report.json`` (result, curves, scenes) and the PNGs. Atomic: the
    folder is built beside ``out_dir`` and renamed into place (an existing one is replaced).

    result: ``InstanceEvaluator.evaluate()``; curves: ``InstanceEvaluator.pr_curves()``; scenes:
    ``InstanceEvaluator.scene_results()``; renders: e.g. ``render_scenes(best_and_worst(scenes), ...)``
    (None: the page says no renders were made); semantic: ``SemanticEvaluator.evaluate()`` or None;
    notes: lines shown under the title (where the data came from); no_renders: what the page says in
    place of the renders when ``renders`` is None. Returns the path of index.html.
    """
    tables = _tables(result, semantic, scenes)
    images = [("pr_curves.png", "Precision-recall per class", _png_bytes(pr_figure(curves)), ""),
              ("ap_per_class.png", "AP per class", _png_bytes(ap_bar_figure(result)), "")]
    for i, r in enumerate(renders or ()):
        images.append((f"scene_{i}.png", r.title, _png_bytes(r.image), r.caption))
    if renders is not None:
        no_renders = "" if renders else "No scene renders: no scene has benchmark ground truth."
    legend = _error_legend() if renders else {}

    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for name, _, data, _ in images:
            (tmp / name).write_bytes(data)
        (tmp / REPORT_JSON).write_text(json.dumps(to_json_dict({
            "result": result, "semantic": semantic, "scenes": list(scenes or []),
            "pr_curves": {n: (None if c is None else c.to_dict()) for n, c in curves.items()}}),
            indent=1, allow_nan=False) + "\n")
        (tmp / REPORT_HTML).write_text(_html(title, notes, tables, images, legend, no_renders))
        (tmp / REPORT_MD).write_text(_markdown(title, notes, tables, images, legend, no_renders))
    return out_dir / REPORT_HTML


def _html(title, notes, tables, images, legend, no_renders) -> str:
    """The page: overall table; per-class table beside the AP chart; PR curves; renders; other tables."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in notes]

    def figure(name, caption_title, data, caption):
        src = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        text = html.escape(caption_title + (f": {caption}" if caption else ""))
        return f"<figure><img alt='{html.escape(name)}' src='{src}'><figcaption>{text}</figcaption></figure>"

    (t0, h0, r0), (t1, h1, r1) = tables[:2]
    parts.append(f"<h2>{html.escape(t0)}</h2>" + _html_table(h0, r0))
    parts.append(f"<h2>{html.escape(t1)}</h2><div class='row'>{_html_table(h1, r1)}{figure(*images[1])}</div>")
    parts.append("<h2>Precision-recall</h2>" + figure(*images[0]))
    parts.append("<h2>Best and worst scenes</h2>")
    if legend:
        parts.append("<p class='legend'>errors view:" + "".join(
            f"<span style='background:rgb({','.join(str(round(255 * v)) for v in rgb)})'></span>{html.escape(k)}"
            for k, rgb in legend.items()) + "</p>")
    parts += [figure(*im) for im in images[2:]] or [f"<p class='note'>{html.escape(no_renders.replace('`', ''))}</p>"]
    for t, header, rows in tables[2:]:
        parts.append(f"<h2>{html.escape(t)}</h2>" + _html_table(header, rows))
    return "".join(parts) + "</body></html>\n"


def _markdown(title, notes, tables, images, legend, no_renders) -> str:
    """The same sections and tables as ``_html``; images are the PNG files beside report.md."""
    def image(name, caption_title, _, caption):
        return f"![{caption_title}]({name})" + (f"\n\n{caption_title}: {caption}" if caption else "")

    (t0, h0, r0), (t1, h1, r1) = tables[:2]
    parts = [f"# {title}", *notes, f"## {t0}", _md_table(h0, r0), f"## {t1}", _md_table(h1, r1), image(*images[1]),
             "## Precision-recall", image(*images[0]), "## Best and worst scenes"]
    if legend:
        parts.append("errors view: " + ", ".join(legend))
    parts += [image(*im) for im in images[2:]] or [no_renders]
    for t, header, rows in tables[2:]:
        parts += [f"## {t}", _md_table(header, rows)]
    return "\n\n".join(parts) + "\n"


def make_report(out_dir: str | os.PathLike, evaluator, load: Callable | None = None, semantic: dict | None = None,
                title: str = "pcseg evaluation report", notes: Sequence[str] = (),
                render_size: tuple[int, int] = (480, 360),
                count: int = 1, result: dict | None = None, no_renders: str = NO_RENDERS) -> Path:
    """Evaluate ``evaluator`` (an ``InstanceEvaluator`` that has processed its scenes) and write its report:
    curves at IoU 0.5, per-scene results, and renders of the ``count`` best and worst scenes when
    ``load(name) -> (Scene, InstanceSet | None)`` is given. ``result``: ``evaluator.evaluate()`` when the
    caller already has it; no_renders: see ``write_report``. Returns the path of index.html."""
    result = evaluator.evaluate() if result is None else result
    scenes = evaluator.scene_results()
    renders = None if load is None else render_scenes(best_and_worst(scenes, count), load, render_size)
    return write_report(out_dir, result, evaluator.pr_curves(0.5), scenes=scenes, renders=renders,
                        semantic=semantic, title=title, notes=notes, no_renders=no_renders)


def folder_loader(dataset_root: str | os.PathLike, pred_dir: str | os.PathLike) -> Callable:
    """``load(name) -> (Scene, InstanceSet | None)`` for ``make_report``: the labelled scene from the
    ScanNet layout ``<dataset_root>/scans/<name>/`` and its prediction from the submission folder
    ``pred_dir`` (None when the scene has no prediction file)."""
    from ..io.official import prediction_exists, read_instance_predictions
    from ..io.scannet import read_scannet_scene

    root, pred_dir = Path(dataset_root), Path(pred_dir)

    def load(name: str):
        folder = root / "scans" / name
        if not folder.is_dir():
            raise DataError(folder, None, f"scene folder not found (the report renders scene {name} from "
                                          f"{root}, which must hold scans/<scene>/)")
        scene = read_scannet_scene(folder)
        if not prediction_exists(pred_dir, name):
            return scene, None
        return scene, read_instance_predictions(pred_dir, name, num_points=len(scene))

    return load


def find_chromium() -> str | None:
    """Path of a Chromium / Chrome executable on PATH, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot_html(page: str | os.PathLike, png: str | os.PathLike, window: tuple[int, int] = (1280, 2400),
                    timeout: float = 120.0) -> Path:
    """Screenshot a local HTML file with headless Chromium (``--headless --no-sandbox --disable-gpu``)
    into ``png``; raises RuntimeError when no Chromium is installed or it writes no image."""
    exe = find_chromium()
    if exe is None:
        raise RuntimeError(f"no Chromium found (tried {', '.join(CHROMIUM_NAMES)}); "
                           "Debian: apt-get install chromium")
    page, png = Path(page).resolve(), Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pcseg-chromium-") as profile:  # no state left in ~
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
               f"--screenshot={png}", f"--window-size={window[0]},{window[1]}", page.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not png.is_file():
        raise RuntimeError(f"{exe} wrote no screenshot {png} (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return png
