"""What ``pcseg viz`` shows: the panels of a scene (GT, prediction, errors, embeddings) read from a
prediction folder, rendered to one image or laid out side by side in one Open3D window, and
RGB-D frames with their masks."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..structures import InstanceSet, Scene
from .colors import colorize, semantic_colors


@dataclass
class PredictionFiles:
    """What a prediction folder says about one scene; fields are None where not asked for."""

    instances: InstanceSet | None = None
    semantic: np.ndarray | None = None      # IntArray[N] NYU40 per point (semantic/<scene>.txt)
    embeddings: np.ndarray | None = None    # FloatArray[N, D] (embeddings/<scene>.npy)


def read_embeddings(pred_dir: str | os.PathLike, scene_name: str, num_points: int) -> np.ndarray:
    """FloatArray[N, D] from ``<pred_dir>/embeddings/<scene>.npy`` (written by
    ``pcseg predict --save-embeddings``)."""
    path = Path(pred_dir) / "embeddings" / f"{scene_name}.npy"
    if not path.is_file():
        raise DataError(path, None, "embeddings not found: predict with `pcseg predict --save-embeddings`")
    try:
        emb = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(path, None, f"cannot read a .npy array ({e})") from None
    if emb.ndim != 2 or emb.shape[0] != num_points or not np.issubdtype(emb.dtype, np.floating):
        raise DataError(path, "embeddings", f"expected a float array of shape ({num_points}, D), "
                        f"got {emb.dtype} {emb.shape}")
    return emb.astype(np.float32)


def saved_extras(pred_dir: str | os.PathLike, scene_name: str) -> dict[str, bool]:
    """Which optional files a prediction folder holds for a scene: ``semantic`` (semantic/<scene>.txt)
    and ``embeddings`` (embeddings/<scene>.npy, from ``pcseg predict --save-embeddings``)."""
    return {"semantic": (Path(pred_dir) / "semantic" / f"{scene_name}.txt").is_file(),
            "embeddings": (Path(pred_dir) / "embeddings" / f"{scene_name}.npy").is_file()}


def read_prediction_files(pred_dir: str | os.PathLike, scene: Scene, semantic: bool = False,
                          embeddings: bool = False) -> PredictionFiles:
    """The scene's predicted instances, and on request its per-point semantic classes and
    embeddings, from a ``pcseg predict`` folder (errors name the missing file)."""
    from ..io.official import read_instance_predictions, read_semantic_txt

    out = PredictionFiles(read_instance_predictions(pred_dir, scene.name, num_points=len(scene)))
    if semantic:
        path = Path(pred_dir) / "semantic" / f"{scene.name}.txt"
        if not path.is_file():
            raise DataError(path, None, "predicted semantic classes not found")
        out.semantic = read_semantic_txt(path)
        if len(out.semantic) != len(scene):
            raise DataError(path, None, f"{len(out.semantic)} lines for a scene of {len(scene)} points")
    if embeddings:
        out.embeddings = read_embeddings(pred_dir, scene.name, len(scene))
    return out


def scene_panels(scene: Scene, mode: str, pred: PredictionFiles | None = None,
                 side_by_side: bool = False) -> list[tuple[str, np.ndarray]]:
    """(title, colours FloatArray[N, 3]) of each panel to show.

    One panel: ``mode`` of the prediction when there is one (instance, semantic, errors, embedding),
    else of the GT. Side by side: the GT next to the prediction (instance, semantic), GT | prediction |
    errors, GT | prediction | embedding, or RGB | GT (| prediction) for ``rgb``; a scan without
    labels shows RGB where the GT would be (RGB | prediction).
    """
    instances = None if pred is None else pred.instances
    emb = None if pred is None else pred.embeddings
    pred_semantic = None if pred is None else pred.semantic
    if mode == "errors" and instances is None:
        raise ValueError("colour mode 'errors' needs a prediction folder (--pred)")
    if mode == "embedding" and emb is None:
        raise ValueError("colour mode 'embedding' needs a prediction folder with embeddings (--pred)")
    main_title = {"rgb": "RGB", "semantic": "semantic classes", "instance": "instances",
                  "embedding": "embeddings (PCA)", "errors": "errors"}[mode]
    if not side_by_side:
        if mode == "semantic" and pred_semantic is not None:
            return [(main_title + " (prediction)", semantic_colors(pred_semantic))]
        who = " (prediction)" if instances is not None and mode == "instance" else ""
        return [(main_title + who, colorize(scene, mode, instances, emb))]
    gt_mode = "semantic" if mode == "semantic" else "instance"
    labelled = (scene.semantic if gt_mode == "semantic" else scene.instance) is not None
    panels = []
    if mode == "rgb" or not labelled:
        panels.append(("RGB", scene.colors))
    if labelled:
        panels.append((f"ground truth ({'semantic' if gt_mode == 'semantic' else 'instances'})",
                       colorize(scene, gt_mode)))
    if mode == "semantic":
        if pred is not None:
            if pred_semantic is None:
                raise ValueError("side by side semantic view needs the prediction's semantic/<scene>.txt")
            panels.append(("prediction (semantic)", semantic_colors(pred_semantic)))
        return panels
    if instances is not None:
        panels.append(("prediction (instances)", colorize(scene, "instance", instances)))
    if mode in ("errors", "embedding"):
        panels.append((main_title, colorize(scene, mode, instances, emb)))
    return panels


def semantic_shown(scene: Scene, pred: PredictionFiles | None, side_by_side: bool) -> list[np.ndarray]:
    """The NYU40 label arrays that the semantic panels of ``scene_panels`` colour: the prediction's
    alone, GT and prediction side by side, else the GT."""
    if pred is None or pred.semantic is None:
        return [scene.semantic] if scene.semantic is not None else []
    return [scene.semantic, pred.semantic] if side_by_side and scene.semantic is not None else [pred.semantic]


def render_panels(scene: Scene, panels: list[tuple[str, np.ndarray]], mode: str,
                  size: tuple[int, int] = (1280, 960), view: str = "oblique", legend: bool = True,
                  shown: list[np.ndarray] | None = None) -> np.ndarray:
    """UInt8Array: each panel rendered at ``size``, titled when there are several, side by side,
    with the mode's legend (the classes of the label arrays ``shown``, default the GT's; error
    categories) in the top-left corner."""
    from .legend import draw_legend, legend_for
    from .render import render_image, side_by_side

    images = [render_image(scene, colors, size=size, view=view) for _, colors in panels]
    image = side_by_side(images, titles=[t for t, _ in panels]) if len(images) > 1 else images[0]
    if legend:
        entries = legend_for(scene, mode, shown)
        if mode == "instance" or mode == "rgb":
            entries = []
        image = draw_legend(image, entries, font_size=max(10, size[1] // 45))
    return image


def frame_panels(frames_dir: str | os.PathLike, index: int, alpha: float = 0.5) -> np.ndarray:
    """UInt8Array: frame ``index`` of an RGB-D frame folder: its colour image | GT instance masks
    overlaid | GT classes overlaid (NYU40 palette), titled."""
    from ..io.frames import frame_indices, read_frame
    from .frames import frame_grid, frame_overlay

    frames_dir = Path(frames_dir)
    available = frame_indices(frames_dir)
    if index not in available:
        raise DataError(frames_dir / "pose" / f"{index}.txt", None,
                        f"no frame {index}; the folder has frames {available[0]}..{available[-1]}"
                        if available else f"no frame {index}; the folder has no frames")
    fr = read_frame(frames_dir, index)
    if fr.instance is None:
        raise DataError(frames_dir / "instance" / f"{index}.png", None, "no instance image for this frame")
    images = [fr.color, frame_overlay(fr.color, fr.instance, alpha=alpha)]
    titles = [f"frame {index}", "instance masks"]
    if fr.label is not None:
        images.append(frame_overlay(fr.color, fr.instance, labels=fr.label, alpha=alpha))
        titles.append("classes")
    return frame_grid(images, columns=len(images), titles=titles)
