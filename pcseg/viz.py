"""Open3D rendering of scenes: colour modes and headless PNG rendering.

Open3D is imported lazily, so importing pcseg.viz costs nothing until something is drawn.
Headless rendering uses ``OffscreenRenderer`` (Filament on Mesa's software Vulkan on a CPU).
"""
from __future__ import annotations

import colorsys
import os
from pathlib import Path

import numpy as np

from .labels import NYU40_PALETTE
from .structures import InstanceSet, Scene

COLOR_MODES = ("rgb", "semantic", "instance")
VIEWS = ("oblique", "top")
_NONE_GREY = np.array([0.75, 0.75, 0.75], np.float32)


def instance_colors(n: int) -> np.ndarray:
    """FloatArray[n, 3]: distinct colours, the same for instance k in every run (golden-ratio hues)."""
    hues = (np.arange(n) * 0.618033988749895) % 1.0
    sat = 0.55 + 0.35 * ((np.arange(n) * 7) % 3) / 2
    val = 0.95 - 0.25 * ((np.arange(n) * 5) % 2)
    return np.array([colorsys.hsv_to_rgb(h, s, v) for h, s, v in zip(hues, sat, val)], np.float32).reshape(n, 3)


def colorize(scene: Scene, mode: str = "rgb", instances: InstanceSet | None = None) -> np.ndarray:
    """FloatArray[N, 3] per-point colours for ``mode`` in COLOR_MODES.

    instance: the given InstanceSet (highest score wins overlaps), else the scene's GT instances;
    points in no instance are grey.
    """
    if mode == "rgb":
        return scene.colors
    if mode == "semantic":
        if scene.semantic is None:
            raise ValueError(f"Scene({scene.name!r}) has no semantic labels to colour by")
        return NYU40_PALETTE[np.clip(scene.semantic, 0, 40)].astype(np.float32) / 255.0
    if mode == "instance":
        if instances is not None:
            ids = instances.to_ids()
        elif scene.instance is not None:
            ids = np.where(scene.instance > 0, scene.instance, 0)
        else:
            raise ValueError(f"Scene({scene.name!r}) has no instances to colour by")
        colors = np.tile(_NONE_GREY, (len(scene), 1))
        has = ids > 0
        colors[has] = instance_colors(int(ids.max(initial=0)) + 1)[ids[has]]
        return colors
    raise ValueError(f"unknown colour mode {mode!r}; choose one of {COLOR_MODES}")


def to_open3d(scene: Scene, colors: np.ndarray | None = None):
    """An Open3D TriangleMesh (when the scene has faces) or PointCloud with the given colours."""
    import open3d as o3d

    colors = o3d.utility.Vector3dVector(np.clip(scene.colors if colors is None else colors, 0, 1).astype(np.float64))
    vertices = o3d.utility.Vector3dVector(scene.points.astype(np.float64))
    if scene.faces is not None and len(scene.faces):
        geom = o3d.geometry.TriangleMesh(vertices, o3d.utility.Vector3iVector(scene.faces))
        geom.compute_vertex_normals()
        geom.vertex_colors = colors
    else:
        geom = o3d.geometry.PointCloud(vertices)
        geom.colors = colors
    return geom


def camera_for(points: np.ndarray, view: str = "oblique") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(center, eye, up) fitted to the points' bounding box. The camera looks from above, so walls
    and a ceiling never hide the room's contents."""
    lo, hi = np.percentile(points, 1, axis=0), np.percentile(points, 99, axis=0)
    center = (lo + hi) / 2
    extent = float(np.linalg.norm(hi[:2] - lo[:2]))
    if view == "top":
        return center, center + np.array([0.0, 0.0, 1.25 * extent + hi[2]]), np.array([0.0, 1.0, 0.0])
    if view == "oblique":
        eye = center + np.array([-0.45, -0.75, 0.95]) * extent
        return center, eye, np.array([0.0, 0.0, 1.0])
    raise ValueError(f"unknown view {view!r}; choose one of {VIEWS}")


_RENDERER: dict = {}


def _renderer(width: int, height: int):
    """One OffscreenRenderer per process (Open3D aborts at exit when several were created)."""
    import open3d.visualization.rendering as rendering

    if _RENDERER.get("size") != (width, height):
        old = _RENDERER.pop("renderer", None)
        if old is not None:
            old.scene.clear_geometry()
            del old
        _RENDERER["renderer"] = rendering.OffscreenRenderer(width, height)
        _RENDERER["size"] = (width, height)
    return _RENDERER["renderer"]


def render_image(scene: Scene, colors: np.ndarray | None = None, size: tuple[int, int] = (1280, 960),
                 view: str = "oblique", lit: bool = True, point_size: float = 3.0) -> np.ndarray:
    """UInt8Array[H, W, 3]: the scene rendered headless. ``lit=False`` gives exact, unshaded colours."""
    import open3d.visualization.rendering as rendering

    if len(scene) == 0:
        raise ValueError(f"Scene({scene.name!r}) is empty: nothing to render")
    r = _renderer(*size)
    r.scene.clear_geometry()
    r.scene.set_background([1.0, 1.0, 1.0, 1.0])
    r.scene.view.set_post_processing(lit)
    mat = rendering.MaterialRecord()
    mat.shader = "defaultLit" if lit else "defaultUnlit"
    mat.point_size = point_size
    r.scene.add_geometry("scene", to_open3d(scene, colors), mat)
    if lit:
        r.scene.scene.set_sun_light([-0.3, -0.5, -1.0], [1.0, 1.0, 1.0], 45000)
        r.scene.scene.enable_sun_light(True)
    center, eye, up = camera_for(scene.points, view)
    r.setup_camera(50.0, center.astype(np.float32), eye.astype(np.float32), up.astype(np.float32))
    image = np.asarray(r.render_to_image()).copy()
    r.scene.clear_geometry()
    return image


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an image atomically (PIL)."""
    from PIL import Image

    from .io.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return path


def side_by_side(images: list[np.ndarray], gap: int = 8) -> np.ndarray:
    """Concatenate equally tall images horizontally with a white gap."""
    h = images[0].shape[0]
    spacer = np.full((h, gap, 3), 255, np.uint8)
    parts = []
    for i, im in enumerate(images):
        parts += ([spacer] if i else []) + [im]
    return np.concatenate(parts, axis=1)
