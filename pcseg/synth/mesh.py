"""Turn a furnished room (objects made of parts) into one triangle mesh with per-vertex object ids
and over-segment keys, then shade and colour it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .furniture import Obj

QUANT = 2000.0  # 0.5 mm: vertices of one part closer than this are the same vertex (box edges)


@dataclass
class RoomMesh:
    """The full (unscanned) room surface.

    verts:   FloatArray[V, 3] room frame, metres
    faces:   IntArray[F, 3]
    normals: FloatArray[V, 3]
    obj:     IntArray[V] index into the object list
    seg:     IntArray[V] over-segment key: unique per (object, part, cell)
    colors:  FloatArray[V, 3] 0..1, shaded
    """

    verts: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    obj: np.ndarray
    seg: np.ndarray
    colors: np.ndarray

    @property
    def face_obj(self) -> np.ndarray:
        """IntArray[F]: the object of each triangle (its vertices all belong to one object)."""
        return self.obj[self.faces[:, 0]]


def assemble(objects: list[Obj], rng: np.random.Generator) -> RoomMesh:
    """Concatenate every part of every object, weld coincident vertices within each part, and
    give each vertex a colour (part colour, low-frequency tint, simple lighting)."""
    verts, faces, normals, obj, part_id, cells, base = [], [], [], [], [], [], []
    n = 0
    pid = 0
    for i, o in enumerate(objects):
        for p in o.parts:
            if not len(p.faces):
                continue
            verts.append(p.verts)
            faces.append(p.faces + n)
            normals.append(p.normals)
            obj.append(np.full(len(p.verts), i, np.int64))
            part_id.append(np.full(len(p.verts), pid, np.int64))
            cells.append(p.cells)
            base.append(np.broadcast_to(p.color, p.verts.shape))
            n += len(p.verts)
            pid += 1
    if pid >= 1 << 12:  # the weld key packs the part index into 12 bits
        raise ValueError(f"assemble: {pid} parts, at most {1 << 12} supported")
    verts, faces, normals = np.concatenate(verts), np.concatenate(faces), np.concatenate(normals)
    obj, part_id, cells, base = (np.concatenate(a) for a in (obj, part_id, cells, base))

    # weld: one key per (part, quantised position); the first vertex of each key survives
    q = np.round(verts * QUANT).astype(np.int64) + (1 << 16)
    key = (((part_id << 17 | q[:, 0]) << 17 | q[:, 1]) << 17) | q[:, 2]
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(first)  # keep the original vertex order among survivors
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    keep = first[order]
    remap = rank[inverse]
    summed = np.zeros((len(keep), 3))
    np.add.at(summed, remap, normals)
    normals = summed / np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-9)
    faces = remap[faces]
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    verts, obj, part_id, cells, base = verts[keep], obj[keep], part_id[keep], cells[keep], base[keep]

    seg = np.unique(part_id << 32 | cells, return_inverse=True)[1].reshape(-1)
    return RoomMesh(verts, faces, normals, obj, seg, shade(verts, normals, base, obj, rng))


def shade(verts, normals, base, obj, rng) -> np.ndarray:
    """FloatArray[V, 3]: base colour x per-object tint x a smooth spatial variation x lighting."""
    tint = rng.uniform(0.9, 1.1, (int(obj.max()) + 1, 3))[obj]
    k = rng.normal(0, 1.5, (3, 3))
    phase = rng.uniform(0, 2 * np.pi, 3)
    wave = 1.0 + 0.05 * np.sin(verts @ k + phase).mean(1, keepdims=True)
    light = rng.normal(0, 1, 3) * [0.3, 0.3, 0.0] + [0, 0, 1.0]
    light /= np.linalg.norm(light)
    lit = 0.72 + 0.28 * np.abs(normals @ light)[:, None]
    return np.clip(base * tint * wave * lit, 0.0, 1.0)
