"""Simulated scanning: a walk-through camera trajectory, what it sees, and sensor noise.

The operator walks a loop through the room at 1.3-1.7 m, looking around. A vertex survives in
the reconstructed mesh when an unoccluded line of sight reaches it from one of ``k`` cameras of
the trajectory (drawn per vertex), within range, not at a grazing angle and not steeply above
the camera (scanners rarely point at the ceiling). A triangle survives when its three vertices do.
All sight lines of a scene are cast in one ``RaycastingScene.cast_rays`` call.
"""
from __future__ import annotations

import numpy as np
import open3d as o3d

from .layout import Room
from .mesh import RoomMesh

MAX_RANGE = 4.5  # metres: farther surfaces are too noisy to fuse
MIN_COS = 0.12  # grazing limit: sight line at most ~83 degrees off the surface normal
MAX_UP = 0.75  # sin of the highest elevation the camera is pointed at (~49 degrees)
OCCLUSION_TOL = 0.02  # a hit this close before the vertex is the vertex's own surface
RAY_THREADS = 0  # threads per cast_rays call (0 = all cores); worker processes set 1


def raycaster(mesh: RoomMesh) -> o3d.t.geometry.RaycastingScene:
    """One RaycastingScene holding the full room mesh (geometry id 0, primitive ids = face rows)."""
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(mesh.verts.astype(np.float32)),
                        o3d.core.Tensor(mesh.faces.astype(np.uint32)))
    return scene


def cast(scene: o3d.t.geometry.RaycastingScene, origins: np.ndarray, dirs: np.ndarray) -> dict[str, np.ndarray]:
    """Cast rays (origins, dirs: (..., 3)); t_hit is in units of |dir|, inf on a miss."""
    return cast_rays(scene, np.concatenate([origins, dirs], -1).astype(np.float32))


def cast_rays(scene: o3d.t.geometry.RaycastingScene, rays: np.ndarray) -> dict[str, np.ndarray]:
    """Cast rays FloatArray[..., 6] (origin, direction): t_hit, primitive_ids, primitive_uvs, ... as numpy."""
    out = scene.cast_rays(o3d.core.Tensor.from_numpy(np.ascontiguousarray(rays, np.float32)), nthreads=RAY_THREADS)
    return {k: v.numpy() for k, v in out.items()}


def trajectory(room: Room, n: int, rng: np.random.Generator) -> np.ndarray:
    """FloatArray[n, 3]: camera centres on a loop through the room (room frame), kept clear of the
    tall furniture along the walls, at 1.3-1.7 m height."""
    w, d = room.width, room.depth
    inset = min(max(0.8, room.tall_depth + 0.35), min(w, d) / 2 - 0.25)
    x0, y0, x1, y1 = inset, inset, w - inset, d - inset
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])
    seg = np.linalg.norm(np.diff(corners, axis=0), axis=1)
    cum = np.concatenate([[0], np.cumsum(seg)])
    s = (rng.uniform(0, cum[-1]) + np.arange(n) * cum[-1] / n) % cum[-1]
    k = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, 3)
    t = (s - cum[k]) / np.maximum(seg[k], 1e-9)
    xy = corners[k] + t[:, None] * (corners[k + 1] - corners[k])
    xy += rng.normal(0, 0.12, xy.shape)
    xy = np.clip(xy, 0.3, [w - 0.3, d - 0.3])
    phase = rng.uniform(0, 2 * np.pi)
    z = rng.uniform(1.4, 1.6) + 0.1 * np.sin(np.linspace(0, 4 * np.pi, n) + phase)
    return np.column_stack([xy, z])


def look_poses(room: Room, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """FloatArray[n, 4, 4] camera-to-world (room frame; camera x right, y down, z forward) looking
    roughly toward the middle of the room, pitched 10-40 degrees down."""
    mid = np.array([room.width / 2, room.depth / 2])
    yaw = np.arctan2(mid[1] - centres[:, 1], mid[0] - centres[:, 0]) + rng.uniform(-1.2, 1.2, len(centres))
    pitch = -rng.uniform(0.17, 0.7, len(centres))
    fwd = np.column_stack([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)])
    right = np.column_stack([np.sin(yaw), -np.cos(yaw), np.zeros(len(yaw))])
    down = np.cross(fwd, right)
    poses = np.tile(np.eye(4), (len(centres), 1, 1))
    poses[:, :3, 0], poses[:, :3, 1], poses[:, :3, 2], poses[:, :3, 3] = right, down, fwd, centres
    return poses


def visible_vertices(scene, mesh: RoomMesh, cams: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """BoolArray[V]: vertices seen from at least one of ``k`` cameras drawn (per vertex) from ``cams``."""
    v, nrm = mesh.verts, mesh.normals
    pick = cams[rng.integers(len(cams), size=(len(v), k))]  # (V, k, 3)
    ray = v[:, None, :] - pick
    dist = np.linalg.norm(ray, axis=2)
    unit = ray / np.maximum(dist[..., None], 1e-9)
    ok = ((-(unit * nrm[:, None, :]).sum(2) > MIN_COS) & (dist < MAX_RANGE) & (unit[..., 2] < MAX_UP))
    hit = cast(scene, pick[ok], unit[ok])["t_hit"]
    seen = np.zeros(ok.shape, bool)
    seen[ok] = hit > dist[ok] - OCCLUSION_TOL
    return seen.any(1)


def cull(mesh: RoomMesh, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep triangles whose three vertices are visible, and the vertices they use.

    Returns (vertex_index IntArray[V'] into the full mesh, faces IntArray[F', 3] over the kept vertices).
    """
    faces = mesh.faces[visible[mesh.faces].all(1)]
    used = np.zeros(len(mesh.verts), bool)
    used[faces.ravel()] = True
    index = np.flatnonzero(used)
    remap = np.full(len(mesh.verts), -1, np.int64)
    remap[index] = np.arange(len(index))
    return index, remap[faces]


def triangle_areas(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """FloatArray[F]: the area of each triangle."""
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)


def sensor_noise(points: np.ndarray, colors: np.ndarray, rng: np.random.Generator,
                 sigma: float = 0.003, color_sigma: float = 0.025) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian jitter of vertex positions (metres) and colours (0..1)."""
    return (points + rng.normal(0, sigma, points.shape),
            np.clip(colors + rng.normal(0, color_sigma, colors.shape), 0.0, 1.0))
