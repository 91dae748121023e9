"""How the grid head sees a room, from above: the room in RGB, each S x S grid with the cells that
say "an object's centre is here" coloured by the class they predict (stronger = more confident), and
the instances their masks give after Matrix-NMS.

    draw_grid_cells(scene, cells, instances, path, score_threshold=0.1)
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..labels import NYU40_NAMES, NYU40_PALETTE, SEMANTIC20_IDS
from ..structures import InstanceSet, Scene
from .colors import instance_colors

MAX_POINTS = 40_000  # drawn per panel: enough to see the room


def grid_cells(model, scene: Scene, recipe, device="cpu") -> list[dict]:
    """Per grid of a grid model: its size, xy minimum, cell edge and the cells' category probabilities
    FloatArray[S, S, instance classes] (row = y, column = x) for ``scene``, read as ``recipe`` (the
    model's GridRecipe) has the network read it."""
    from ..data import input_batch

    batch = input_batch([scene], recipe).to(device)
    model.eval()
    out = []
    for grid, probs in model.cell_probabilities(batch):
        s = grid.size
        out.append({"size": s, "lo": grid.lo[0].cpu().numpy(), "cell": grid.cell[0].cpu().numpy(),
                    "probs": probs[: s * s].reshape(s, s, -1).cpu().numpy()})
    return out


def draw_grid_cells(scene: Scene, cells: list[dict], instances: InstanceSet, path: str | os.PathLike,
                    score_threshold: float = 0.1, first_class: int = 2) -> Path:
    """Write the picture (PNG): RGB from above | one panel per grid | the predicted instances.
    ``first_class``: the ScanNet20 index of the probabilities' first column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    rng = np.random.default_rng(0)
    shown = np.sort(rng.choice(len(scene), min(MAX_POINTS, len(scene)), replace=False))
    xy = scene.points[shown, :2]
    fig, axes = plt.subplots(1, len(cells) + 2, figsize=(4.2 * (len(cells) + 2), 4.6))

    def points(ax, colours, title):
        ax.scatter(xy[:, 0], xy[:, 1], c=colours, s=0.6, linewidths=0)
        ax.set_title(title, fontsize=11)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])

    points(axes[0], np.clip(scene.colors[shown], 0, 1), f"{scene.name}: RGB, from above")
    legend: dict[int, tuple] = {}
    for ax, grid in zip(axes[1:], cells):
        points(ax, np.full((len(xy), 3), 0.82), "")
        s, lo, edge, probs = grid["size"], grid["lo"], grid["cell"], grid["probs"]
        for i in range(s + 1):  # the grid lines
            ax.plot([lo[0], lo[0] + s * edge[0]], [lo[1] + i * edge[1]] * 2, color="0.6", lw=0.4)
            ax.plot([lo[0] + i * edge[0]] * 2, [lo[1], lo[1] + s * edge[1]], color="0.6", lw=0.4)
        best, cls = probs.max(-1), probs.argmax(-1)
        for iy, ix in zip(*np.nonzero(best > score_threshold)):
            nyu = int(SEMANTIC20_IDS[cls[iy, ix] + first_class])
            colour = NYU40_PALETTE[nyu] / 255.0
            legend[nyu] = colour
            ax.add_patch(Rectangle((lo[0] + ix * edge[0], lo[1] + iy * edge[1]), edge[0], edge[1],
                                   facecolor=colour, alpha=float(np.clip(0.25 + best[iy, ix], 0, 1)), edgecolor="k",
                                   lw=0.5))
        ax.set_title(f"{s} x {s} grid: cells holding a centre", fontsize=11)
    colours = np.full((len(scene), 3), 0.82, np.float32)
    palette = instance_colors(len(instances))
    for k in np.argsort(instances.sizes())[::-1]:  # small instances drawn last, on top
        colours[instances.point_indices(k)] = palette[k]
    points(axes[-1], colours[shown], f"{len(instances)} instances (masks after NMS)")
    if legend:
        handles = [Rectangle((0, 0), 1, 1, facecolor=c) for c in legend.values()]
        fig.legend(handles, [NYU40_NAMES[k] for k in legend], loc="lower center", ncol=min(len(handles), 9),
                   fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
