"""Mesh primitives for the synthetic rooms: rectangles, boxes, cylinders and pleated sheets,
subdivided into triangles with ~3 cm edges (the vertex density of a ScanNet ``_vh_clean_2`` mesh).

Every primitive is a :class:`Part`: vertices with one normal each and a *cell* id per vertex.
Cells are the 20-50 cm patches the over-segmentation (segs.json) is made of; they are local to the
part and later combined with the object and part index, so a segment never spans two objects.
Built with numpy grids: no per-triangle Python loops.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EDGE = 0.033  # longest grid edge, metres: the median vertex spacing comes out near 3 cm
CELL_STRIDE = 1 << 16  # cells of one face of a part are numbered face * CELL_STRIDE + cell


@dataclass
class Part:
    """A triangle mesh piece with one colour.

    verts:   FloatArray[V, 3]
    faces:   IntArray[F, 3] (counter-clockwise seen from the side the normals point to)
    normals: FloatArray[V, 3] unit outward normals
    cells:   IntArray[V] over-segmentation patch id, local to this part
    color:   FloatArray[3] base colour 0..1
    """

    verts: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    cells: np.ndarray
    color: np.ndarray

    def transformed(self, yaw: float, offset) -> "Part":
        """The part rotated by ``yaw`` (radians) about +z, then shifted by ``offset`` (3,)."""
        c, s = np.cos(yaw), np.sin(yaw)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return Part(self.verts @ rot.T + np.asarray(offset, float), self.faces, self.normals @ rot.T,
                    self.cells, self.color)


def _counts(length: float, edge: float, cell: float) -> tuple[int, int]:
    return max(1, int(np.ceil(length / edge - 1e-9))), max(1, int(round(length / cell)))


def _grid_faces(nu: int, nv: int) -> np.ndarray:
    """IntArray[2*nu*nv, 3] triangles of an (nu+1) x (nv+1) vertex grid (u fastest)."""
    i, j = np.meshgrid(np.arange(nu), np.arange(nv), indexing="xy")
    a = (j * (nu + 1) + i).ravel()
    b, c, d = a + 1, a + nu + 1, a + nu + 2
    return np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])


def rect(origin, u, v, color, edge: float = EDGE, cell: float = 0.35, face_id: int = 0,
         holes: list[tuple[float, float, float, float]] = ()) -> Part:
    """A rectangle ``origin + s*u + t*v`` (s, t in 0..1), normal along ``u x v``.

    holes: (s0, s1, t0, t1) in metres along u and v; triangles whose centre lies inside are dropped
    (door and window openings in walls).
    """
    origin, u, v = (np.asarray(x, float) for x in (origin, u, v))
    lu, lv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    nu, cu = _counts(lu, edge, cell)
    nv, cv = _counts(lv, edge, cell)
    s = np.linspace(0.0, 1.0, nu + 1)
    t = np.linspace(0.0, 1.0, nv + 1)
    ss, tt = np.meshgrid(s, t, indexing="xy")
    verts = origin + ss.reshape(-1, 1) * u + tt.reshape(-1, 1) * v
    faces = _grid_faces(nu, nv)
    if holes:
        centre_s = ss.ravel()[faces].mean(1) * lu
        centre_t = tt.ravel()[faces].mean(1) * lv
        keep = np.ones(len(faces), bool)
        for s0, s1, t0, t1 in holes:
            keep &= ~((centre_s > s0) & (centre_s < s1) & (centre_t > t0) & (centre_t < t1))
        faces = faces[keep]
    normal = np.cross(u, v)
    normal /= np.linalg.norm(normal)
    cells = (np.minimum((tt.ravel() * cv).astype(np.int64), cv - 1) * cu
             + np.minimum((ss.ravel() * cu).astype(np.int64), cu - 1)) + face_id * CELL_STRIDE
    return Part(verts, faces, np.broadcast_to(normal, verts.shape).copy(), cells,
                np.asarray(color, float))


def merge(parts: list[Part], color=None) -> Part:
    """Concatenate parts into one (cells stay distinct: each part's cells are offset)."""
    verts, faces, normals, cells = [], [], [], []
    n = 0
    cell_base = 0
    for p in parts:
        verts.append(p.verts)
        faces.append(p.faces + n)
        normals.append(p.normals)
        cells.append(p.cells + cell_base)
        n += len(p.verts)
        cell_base += int(p.cells.max()) + 1 if len(p.cells) else 0
    return Part(np.concatenate(verts), np.concatenate(faces), np.concatenate(normals),
                np.concatenate(cells), np.asarray(parts[0].color if color is None else color, float))


def box(lo, hi, color, cell: float = 0.35, bottom: bool = True, top: bool = True) -> Part:
    """An axis-aligned box from corner ``lo`` (3,) to ``hi`` (3,) with outward normals.

    bottom/top: whether to build the -z / +z faces (a box standing on the floor needs no bottom).
    """
    (x0, y0, z0), (x1, y1, z1) = np.asarray(lo, float), np.asarray(hi, float)
    dx, dy, dz = np.array([x1 - x0, 0, 0]), np.array([0, y1 - y0, 0]), np.array([0, 0, z1 - z0])
    faces = [rect((x0, y0, z0), dx, dz, color, cell=cell, face_id=0),          # -y
             rect((x1, y1, z0), -dx, dz, color, cell=cell, face_id=1),         # +y
             rect((x0, y1, z0), -dy, dz, color, cell=cell, face_id=2),         # -x
             rect((x1, y0, z0), dy, dz, color, cell=cell, face_id=3)]          # +x
    if top:
        faces.append(rect((x0, y0, z1), dx, dy, color, cell=cell, face_id=4))
    if bottom:
        faces.append(rect((x0, y1, z0), dx, -dy, color, cell=cell, face_id=5))
    return merge(faces)


def cylinder(center, radius: float, z0: float, z1: float, color, cell: float = 0.35,
             top: bool = True, bottom: bool = False, edge: float = EDGE) -> Part:
    """A vertical cylinder around ``center`` (x, y) from z0 to z1, with optional caps."""
    cx, cy = float(center[0]), float(center[1])
    n_theta = max(8, int(np.ceil(2 * np.pi * radius / edge)))
    nz, cz = _counts(z1 - z0, edge, cell)
    c_theta = max(1, int(round(2 * np.pi * radius / cell)))
    theta = np.linspace(0.0, 2 * np.pi, n_theta + 1)[:-1]
    z = np.linspace(z0, z1, nz + 1)
    th, zz = np.meshgrid(theta, z, indexing="xy")
    ring = np.stack([np.cos(th.ravel()), np.sin(th.ravel())], 1)
    verts = np.column_stack([cx + radius * ring[:, 0], cy + radius * ring[:, 1], zz.ravel()])
    normals = np.column_stack([ring, np.zeros(len(ring))])
    # side grid wraps around: column n_theta is column 0
    i, j = np.meshgrid(np.arange(n_theta), np.arange(nz), indexing="xy")
    a = (j * n_theta + i).ravel()
    b = (j * n_theta + (i + 1) % n_theta).ravel()
    c, d = a + n_theta, b + n_theta
    faces = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    k_theta = np.minimum((th.ravel() / (2 * np.pi) * c_theta).astype(np.int64), c_theta - 1)
    k_z = np.minimum(((zz.ravel() - z0) / max(z1 - z0, 1e-9) * cz).astype(np.int64), cz - 1)
    parts = [Part(verts, faces, normals, k_z * c_theta + k_theta, np.asarray(color, float))]
    for want, zc, sign, fid in ((top, z1, 1.0, 1), (bottom, z0, -1.0, 2)):
        if want:
            parts.append(_disk(cx, cy, zc, radius, n_theta, sign, color, fid))
    return merge(parts)


def _disk(cx, cy, z, radius, n_theta, sign, color, face_id) -> Part:
    """A flat disk of concentric rings (centre vertex + rings), normal +z (sign=1) or -z."""
    nr = max(1, int(np.ceil(radius / EDGE)))
    theta = np.linspace(0.0, 2 * np.pi, n_theta + 1)[:-1]
    r = np.linspace(radius / nr, radius, nr)
    rr, th = np.meshgrid(r, theta, indexing="ij")  # ring-major
    verts = np.column_stack([cx + (rr * np.cos(th)).ravel(), cy + (rr * np.sin(th)).ravel(),
                             np.full(rr.size, z)])
    verts = np.vstack([[cx, cy, z], verts])
    k = np.arange(n_theta)
    fan = np.stack([np.zeros(n_theta, np.int64), 1 + k, 1 + (k + 1) % n_theta], 1)
    ri, ki = np.meshgrid(np.arange(nr - 1), k, indexing="ij")
    a = (1 + ri * n_theta + ki).ravel()
    b = (1 + ri * n_theta + (ki + 1) % n_theta).ravel()
    quads = np.concatenate([np.stack([a, b + n_theta, b], 1), np.stack([a, a + n_theta, b + n_theta], 1)])
    faces = np.concatenate([fan, quads])
    if sign < 0:
        faces = faces[:, ::-1]
    normals = np.tile([0.0, 0.0, sign], (len(verts), 1))
    cells = np.full(len(verts), face_id * CELL_STRIDE, np.int64)
    return Part(verts, faces, normals, cells, np.asarray(color, float))


def pleated(x0: float, x1: float, y: float, z0: float, z1: float, color, depth: float = 0.05,
            period: float = 0.16, cell: float = 0.35) -> Part:
    """A pleated curtain hanging at plane y from x0 to x1, z0 to z1.

    The sheet zig-zags by ``depth`` every half ``period``; it faces +y (into the room).
    """
    n = max(2, int(round((x1 - x0) / (period / 2))))
    xs = np.linspace(x0, x1, n + 1)
    ys = y + depth * (np.arange(n + 1) % 2)
    parts = []
    for k in range(n):
        origin = (xs[k + 1], ys[k + 1], z0)
        u = (xs[k] - xs[k + 1], ys[k] - ys[k + 1], 0.0)
        parts.append(rect(origin, u, (0.0, 0.0, z1 - z0), color, cell=cell, face_id=k))
    # pleats of one panel share cells across a cell-sized span: renumber by x position
    out = merge(parts)
    col = np.minimum(((out.verts[:, 0] - x0) / max(x1 - x0, 1e-9) * max(1, round((x1 - x0) / cell)))
                     .astype(np.int64), max(1, round((x1 - x0) / cell)) - 1)
    row = np.minimum(((out.verts[:, 2] - z0) / (z1 - z0) * max(1, round((z1 - z0) / cell))).astype(np.int64),
                     max(1, round((z1 - z0) / cell)) - 1)
    out.cells = row * 1000 + col
    return out
