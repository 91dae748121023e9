"""Open3D rendering of scenes: colour modes and headless PNG rendering.

Open3D is imported lazily, so importing pcseg.viz costs nothing until something is drawn.
Headless images are ray cast on the CPU with Open3D's ``RaycastingScene`` rather than drawn with
``OffscreenRenderer``: on these machines Filament (on Mesa's software Vulkan) hung on the second
``render_to_image`` after a room-sized mesh was swapped in, while ray casting is exact (each pixel
knows its triangle), deterministic and fast (about 0.4 s for a 100k-triangle room at 1280x960).
The interactive window is Open3D's own visualizer.
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


def front_faces(points: np.ndarray, faces: np.ndarray, eye: np.ndarray) -> np.ndarray:
    """IntArray[F', 3]: the triangles whose front side (counter-clockwise normal) faces ``eye``.

    Scanned walls only have an inside: drawing their back sides from an outside viewpoint would hide
    the room, so back faces are culled as scan viewers do."""
    tri = points[faces].astype(np.float64)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return faces[np.einsum("ij,ij->i", normal, eye - tri.mean(1)) > 0]


def to_open3d(scene: Scene, colors: np.ndarray | None = None):
    """An Open3D TriangleMesh (when the scene has faces) or PointCloud with the given colours
    (for Open3D's interactive window)."""
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
        eye = center + np.array([-0.36, -0.58, 0.78]) * extent
        return center, eye, np.array([0.0, 0.0, 1.0])
    raise ValueError(f"unknown view {view!r}; choose one of {VIEWS}")


def _camera_basis(center, eye, up) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit (forward, right, up) vectors of a camera at ``eye`` looking at ``center``."""
    forward = (center - eye) / np.linalg.norm(center - eye)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    return forward, right, np.cross(right, forward)


def camera_rays(center: np.ndarray, eye: np.ndarray, up: np.ndarray, size: tuple[int, int],
                fov_deg: float = 50.0) -> np.ndarray:
    """FloatArray[H, W, 6]: (origin, unit direction) of a pinhole camera at ``eye`` looking at
    ``center``; row 0 is the top of the image, ``fov_deg`` the vertical field of view."""
    width, height = size
    forward, right, true_up = _camera_basis(center, eye, up)
    half = np.tan(np.radians(fov_deg) / 2)
    x = ((np.arange(width) + 0.5) / width * 2 - 1) * half * width / height
    y = (1 - (np.arange(height) + 0.5) / height * 2) * half
    dirs = forward + x[None, :, None] * right + y[:, None, None] * true_up
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    return np.concatenate([np.broadcast_to(eye, dirs.shape), dirs], -1).astype(np.float32)


def _shade(colors: np.ndarray, normals: np.ndarray | None, dirs: np.ndarray, lit: bool) -> np.ndarray:
    """Headlight shading: surfaces facing the camera keep their colour, grazing ones darken."""
    if not lit or normals is None:
        return colors
    facing = np.abs(np.einsum("ij,ij->i", normals, dirs))
    return colors * (0.45 + 0.55 * facing)[:, None]


def _render_mesh(points, faces, colors, rays, eye, lit) -> tuple[np.ndarray, np.ndarray]:
    import open3d as o3d

    faces = front_faces(points, faces, eye)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(points, np.float32)),
                        o3d.core.Tensor(np.ascontiguousarray(faces, np.uint32)))
    flat = rays.reshape(-1, 6)
    out = scene.cast_rays(o3d.core.Tensor(flat))
    prim = out["primitive_ids"].numpy()
    hit = prim != o3d.t.geometry.RaycastingScene.INVALID_ID
    tri = faces[prim[hit]]
    uv = out["primitive_uvs"].numpy()[hit]
    u, v = uv[:, :1], uv[:, 1:]
    color = colors[tri[:, 0]] * (1 - u - v) + colors[tri[:, 1]] * u + colors[tri[:, 2]] * v
    return hit, _shade(color, out["primitive_normals"].numpy()[hit], flat[hit, 3:], lit)


def _render_points(points, colors, center, eye, up, size, fov_deg, point_size) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer splatting of points as squares of ``point_size`` pixels."""
    width, height = size
    forward, right, true_up = _camera_basis(center, eye, up)
    rel = points.astype(np.float64) - eye
    depth = rel @ forward
    front = depth > 1e-3
    focal = height / 2 / np.tan(np.radians(fov_deg) / 2)
    col = (rel[front] @ right) / depth[front] * focal + width / 2
    row = height / 2 - (rel[front] @ true_up) / depth[front] * focal
    radius = max(int(round(point_size)), 1)
    offsets = np.arange(radius) - radius // 2
    rows = np.floor(row)[:, None] + np.repeat(offsets, radius)[None, :]
    cols = np.floor(col)[:, None] + np.tile(offsets, radius)[None, :]
    idx = np.broadcast_to(np.arange(len(row))[:, None], rows.shape)
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    pixel = (rows[inside] * width + cols[inside]).astype(np.int64)
    owner = idx[inside]
    order = np.lexsort((depth[front][owner], pixel))  # per pixel, nearest point first
    pixel, first = np.unique(pixel[order], return_index=True)
    hit = np.zeros(width * height, bool)
    hit[pixel] = True
    return hit, colors[front][owner[order][first]]


def render_image(scene: Scene, colors: np.ndarray | None = None, size: tuple[int, int] = (1280, 960),
                 view: str = "oblique", lit: bool = True, point_size: float = 3.0,
                 background: tuple[float, float, float] = (1.0, 1.0, 1.0), fov_deg: float = 50.0) -> np.ndarray:
    """UInt8Array[H, W, 3]: the scene rendered headless on the CPU.

    Meshes are ray cast with Open3D's ``RaycastingScene`` (exact per-pixel triangle, colours
    interpolated from the vertices, back faces culled); plain point clouds are splatted with a
    z-buffer. ``lit=False`` keeps colours exact (no shading), which tests rely on.
    """
    if len(scene) == 0:
        raise ValueError(f"Scene({scene.name!r}) is empty: nothing to render")
    colors = np.clip(scene.colors if colors is None else np.asarray(colors, np.float32), 0, 1)
    if colors.shape != (len(scene), 3):
        raise ValueError(f"render_image: colors of shape {colors.shape} for {len(scene)} points")
    center, eye, up = camera_for(scene.points, view)
    width, height = size
    if scene.faces is not None and len(scene.faces):
        rays = camera_rays(center, eye, up, size, fov_deg)
        hit, shaded = _render_mesh(scene.points, scene.faces, colors, rays, eye, lit)
    else:
        hit, shaded = _render_points(scene.points, colors, center, eye, up, size, fov_deg, point_size)
    image = np.empty((width * height, 3), np.float32)
    image[:] = background
    image[hit] = shaded
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8).reshape(height, width, 3)


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
