"""RGB-D frames of a synthetic room, rendered by casting one ray per pixel against the full room
mesh: depth, colour (the hit triangle's colour), and exact per-pixel label and instance ids."""
from __future__ import annotations

import numpy as np

from ..io.frames import FrameIntrinsics, RGBDFrame
from .mesh import RoomMesh
from .scan import cast_rays

WIDTH, HEIGHT = 640, 480
# ScanNet's typical depth camera (docs/scannet-format.md §9): fx = fy ~ 577.9 at 640 x 480
INTRINSICS = FrameIntrinsics.pinhole(577.870605, 577.870605, 319.5, 239.5)
MAX_DEPTH = 8.0  # metres; farther returns are invalid (0)
CHUNK = 4  # frames cast per call (bounds memory at ~4 x 640 x 480 rays)


def pixel_rays(intrinsic: np.ndarray, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """FloatArray[H, W, 3]: camera-frame ray per pixel with z = 1 (so t_hit is the z-depth)."""
    u, v = np.meshgrid(np.arange(width), np.arange(height), indexing="xy")
    return np.stack([(u - intrinsic[0, 2]) / intrinsic[0, 0], (v - intrinsic[1, 2]) / intrinsic[1, 1],
                     np.ones(u.shape)], -1)


def render(scene, mesh: RoomMesh, face_label: np.ndarray, face_instance: np.ndarray, poses: np.ndarray,
           rng: np.random.Generator, depth_noise: bool = True) -> list[RGBDFrame]:
    """Render one frame per pose (room frame). The frames' poses are the given ones; callers moving
    the room into another frame replace them.

    face_label, face_instance: IntArray[F] per triangle of ``mesh`` (0 = none).
    poses: FloatArray[K, 4, 4] camera-to-world.
    """
    cam_rays = pixel_rays(INTRINSICS.intrinsic_depth).astype(np.float32).reshape(-1, 3)
    # per-triangle colour (mean of its vertices): triangles are ~3 cm and the shading varies slowly,
    # so this looks like interpolation at a quarter of the cost
    face_color = mesh.colors[mesh.faces].mean(1).astype(np.float32)
    n = len(cam_rays)
    # one table of Gaussian noise per scene, read at a random offset per frame: drawing 4 x 307k
    # normals per frame would cost more than casting its rays
    noise = rng.standard_normal(8 * n, dtype=np.float32)
    frames = []
    for start in range(0, len(poses), CHUNK):
        chunk = poses[start:start + CHUNK]
        rays = np.empty((len(chunk), len(cam_rays), 6), np.float32)
        rays[..., :3] = chunk[:, None, :3, 3]
        rot = chunk[:, :3, :3].astype(np.float32)
        # world direction = R @ camera ray, written out per column (a tiny 3x3 matmul is slow in numpy)
        rays[..., 3:] = (cam_rays[None, :, 0:1] * rot[:, None, :, 0] + cam_rays[None, :, 1:2] * rot[:, None, :, 1]
                         + cam_rays[None, :, 2:3] * rot[:, None, :, 2])
        hit = cast_rays(scene, rays)
        for i in range(len(chunk)):
            t = hit["t_hit"][i]
            ok = np.isfinite(t) & (t < MAX_DEPTH)
            prim = np.where(ok, hit["primitive_ids"][i], 0)
            z = np.where(ok, t, 0.0)
            if depth_noise:  # structured-light noise grows with the square of the distance
                o = int(rng.integers(4 * n))
                z = z + noise[o:o + n] * (0.0012 * z * z)
            depth = np.clip(np.round(z * 1000.0), 0, 65535).astype(np.uint16)
            rgb = face_color[prim]
            o = int(rng.integers(5 * n))
            rgb = rgb * np.float32(rng.uniform(0.9, 1.1)) + noise[o:o + 3 * n].reshape(n, 3) * np.float32(0.012)
            rgb[~ok] = 0.0
            color = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
            okw = ok.reshape(HEIGHT, WIDTH)
            frames.append(RGBDFrame(color.reshape(HEIGHT, WIDTH, 3), depth.reshape(HEIGHT, WIDTH), chunk[i].copy(),
                                    np.where(okw, face_label[prim].reshape(HEIGHT, WIDTH), 0),
                                    np.where(okw, face_instance[prim].reshape(HEIGHT, WIDTH), 0)))
    return frames
