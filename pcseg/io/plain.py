"""A user's own point clouds: ``.ply``, ``.npz`` (in and out), ``.pcd`` and ``.las`` / ``.laz`` (in) files, plus the
low-level PLY reading/writing that the ScanNet reader shares.

PLY vertex properties understood (any order, extra properties ignored):
    x y z                      coordinates (required)
    red green blue             colours: uchar 0..255, or float 0..1 (0..255 detected when > 1)
    nx ny nz                   normals
    label | semantic | nyu40   per-vertex class (NYU40 id)
    instance | instance_id     per-vertex instance id (-1 = none)
and a ``face`` element with a triangle list ``vertex_indices`` (or ``vertex_index``).

NPZ keys understood:
    points | coord | xyz       FloatArray[N, 3] (required)
    colors | color | rgb       FloatArray[N, 3] in 0..1, or 0..255 (integer dtype or values > 1)
    normals | normal           FloatArray[N, 3]
    semantic | label           IntArray[N]
    instance                   IntArray[N]
    faces                      IntArray[F, 3]

PCD (Point Cloud Library) files are read by Open3D: x y z, rgb / rgba colours, normals; no labels.
LAS / LAZ (lidar) files by laspy (``pip install 'pcseg[las]'``): x y z moved to the cloud's minimum
corner (georeferenced coordinates would lose precision in float32), red green blue (8 or 16 bit).

Labels are kept as stored (no remapping): pcseg's convention is NYU40 ids for ``semantic`` and
instance ids >= 1 with -1 for "none" (see ``pcseg.structures``).
"""
from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..structures import Scene
from .atomic import atomic_path

SEMANTIC_PROPS = ("label", "semantic", "nyu40")
INSTANCE_PROPS = ("instance", "instance_id")
FACE_PROPS = ("vertex_indices", "vertex_index")

_PLY_TYPE = {np.dtype(k): v for k, v in {
    "i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint",
    "f4": "float", "f8": "double"}.items()}


# --- low-level PLY ------------------------------------------------------------------------------
def load_ply(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a PLY file (binary or ASCII) with plyfile.

    Returns (vertex, faces): ``vertex`` is the structured array of the ``vertex`` element (copied
    out of the memory map), ``faces`` IntArray[F, 3] int32 or None when the file has no faces.
    Every parse problem becomes a DataError naming the file and the element.
    """
    from plyfile import PlyData, PlyElementParseError, PlyHeaderParseError

    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "file not found")
    # Telling plyfile the list length lets it memory-map faces instead of a per-face Python loop.
    known = {"face": {p: 3 for p in FACE_PROPS}}
    try:
        ply = PlyData.read(str(path), known_list_len=known)
    except PlyElementParseError as e:
        parts = [f"element {e.element.name!r}" if e.element is not None else "",
                 f"row {e.row}" if e.row is not None else "", f"property {e.prop.name!r}" if e.prop else ""]
        where = ", ".join(p for p in parts if p) or None
        problem = e.message
        if e.message == "unexpected list length":
            problem = "only triangle faces are supported (found a face with another vertex count)"
        elif "end-of-file" in e.message:
            problem = f"file is truncated ({e.message})"
        raise DataError(path, where, problem) from None
    except PlyHeaderParseError as e:
        raise DataError(path, "header", f"not a valid PLY header ({e})") from None
    except Exception as e:  # plyfile/numpy raise assorted errors on corrupt bodies
        raise DataError(path, None, f"cannot parse PLY: {type(e).__name__}: {e}") from None

    names = [el.name for el in ply.elements]
    if "vertex" not in names:
        raise DataError(path, "vertex", f"no 'vertex' element (elements: {names})")
    vertex = np.array(ply["vertex"].data)  # copy: releases the memory map
    faces = None
    if "face" in names and ply["face"].count:
        face_el = ply["face"]
        prop = next((p for p in FACE_PROPS if p in face_el.data.dtype.names), None)
        if prop is None:
            raise DataError(path, "face", f"no 'vertex_indices' property (has {face_el.data.dtype.names})")
        lists = face_el.data[prop]
        if lists.dtype == object:  # ASCII files: one array per face, possibly of other lengths
            sizes = np.fromiter((len(f) for f in lists), np.int64, len(lists))
            if np.any(sizes != 3):
                raise DataError(path, f"face.{prop}", f"only triangle faces are supported "
                                f"(face {int(np.flatnonzero(sizes != 3)[0])} has {int(sizes[sizes != 3][0])} vertices)")
            lists = np.stack(lists)
        faces = np.asarray(lists, np.int64)
        if faces.size and (faces.min() < 0 or faces.max() >= len(vertex)):  # whole-array checks: fast
            bad = np.flatnonzero((faces < 0).any(1) | (faces >= len(vertex)).any(1))
            raise DataError(path, f"face.{prop}", f"face {int(bad[0])} refers to a vertex outside 0..{len(vertex) - 1}")
        faces = faces.astype(np.int32)
    return vertex, faces


def save_ply(path: str | os.PathLike, vertex: np.ndarray, faces: np.ndarray | None, write_faces: bool = True) -> None:
    """Write a binary little-endian PLY (not atomic: callers write into a temporary path).

    vertex: structured array, one field per scalar property, in header order
    faces:  IntArray[F, 3] or None; written as ``property list uchar int vertex_indices``
            (an empty face element when None and ``write_faces``).
    Written with numpy in one block per element: plyfile's writer loops per face in Python.
    """
    lines = ["ply", "format binary_little_endian 1.0", f"element vertex {len(vertex)}"]
    for name in vertex.dtype.names:
        dt = vertex.dtype[name]
        if dt.base.newbyteorder("=") not in _PLY_TYPE or dt.shape:
            raise ValueError(f"save_ply: property {name!r} has unsupported dtype {dt}")
        lines.append(f"property {_PLY_TYPE[dt.newbyteorder('=')]} {name}")
    nface = 0 if faces is None else len(faces)
    if write_faces or nface:
        lines += [f"element face {nface}", "property list uchar int vertex_indices"]
    lines.append("end_header")
    le = np.dtype([(n, vertex.dtype[n].newbyteorder("<")) for n in vertex.dtype.names])
    with open(path, "wb") as f:
        f.write(("\n".join(lines) + "\n").encode("ascii"))
        f.write(vertex.astype(le).tobytes())
        if nface:
            rec = np.empty(nface, [("n", "u1"), ("v", "<i4", (3,))])
            rec["n"] = 3
            rec["v"] = faces
            f.write(rec.tobytes())


def rgb_to_unit(values: np.ndarray, path: Path, field: str) -> np.ndarray:
    """Colours (N, 3) as stored -> float32 0..1. Integer dtypes and float values above 1 are 0..255."""
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.number) or values.dtype == bool:
        raise DataError(path, field, f"colours must be numbers, got dtype {values.dtype}")
    v = values.astype(np.float64)
    if not np.all(np.isfinite(v)):
        raise DataError(path, field, f"non-finite colour at point {int(np.flatnonzero(~np.isfinite(v).all(1))[0])}")
    if v.size and v.min() < 0:
        raise DataError(path, field, f"negative colour value {v.min()}")
    if np.issubdtype(values.dtype, np.integer) or (v.size and v.max() > 1.0):
        if v.size and v.max() > 255:
            raise DataError(path, field, f"colour value {v.max()} above 255")
        v = v / 255.0
    return v.astype(np.float32)


def unit_to_uchar(colors: np.ndarray) -> np.ndarray:
    """Colours 0..1 -> uint8 0..255 (rounded, so uchar -> float -> uchar is exact)."""
    return np.clip(np.round(np.asarray(colors, np.float64) * 255.0), 0, 255).astype(np.uint8)


def check_points(points: np.ndarray, path: Path, field: str) -> np.ndarray:
    """FloatArray[N, 3] float32; DataError for an empty cloud or a non-finite coordinate."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise DataError(path, field, f"expected shape (N, 3), got {points.shape}")
    if not np.issubdtype(points.dtype, np.number) or points.dtype == bool:
        raise DataError(path, field, f"coordinates must be numbers, got dtype {points.dtype}")
    if len(points) == 0:
        raise DataError(path, field, "no points (empty scene)")
    finite = np.isfinite(points).all(1)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise DataError(path, field, f"non-finite coordinate at vertex {i}: {points[i].tolist()}")
    return points.astype(np.float32)


def int_labels(values, n: int, path: Path, field: str) -> np.ndarray:
    """IntArray[n] int64 from integer (or integral float) values; DataError naming ``field`` otherwise."""
    values = np.asarray(values)
    if values.ndim != 1 or len(values) != n:
        raise DataError(path, field, f"expected {n} values (one per point), got shape {values.shape}")
    if not np.issubdtype(values.dtype, np.number) or values.dtype == bool:
        raise DataError(path, field, f"expected integers, got dtype {values.dtype}")
    if not np.issubdtype(values.dtype, np.integer):
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            raise DataError(path, field, f"non-integer value {values[bad][0]} at point {int(np.flatnonzero(bad)[0])}")
    return values.astype(np.int64)


def _first(names, candidates):
    return next((c for c in candidates if c in names), None)


def _read_pcd_cloud(path: Path) -> tuple[Scene, bool]:
    import open3d as o3d

    if not path.is_file():
        raise DataError(path, None, "file not found")
    with open(path, "rb") as f:
        head = f.read(4096)
    if b"DATA" not in head or not any(line.startswith(b"FIELDS") for line in head.splitlines()):
        raise DataError(path, None, "not a PCD file: no FIELDS / DATA header")
    cloud = o3d.io.read_point_cloud(str(path), format="pcd")
    if not cloud.has_points():
        raise DataError(path, "points", "no points read (an empty or unreadable PCD file)")
    points = check_points(np.asarray(cloud.points), path, "points")
    colors = np.asarray(cloud.colors, np.float32) if cloud.has_colors() else None
    normals = np.asarray(cloud.normals, np.float32) if cloud.has_normals() else None
    return Scene(points, colors, normals=normals, name=path.stem), colors is not None


def _read_las_cloud(path: Path) -> tuple[Scene, bool]:
    try:
        import laspy
    except ImportError:
        raise DataError(path, None, "reading LAS / LAZ needs laspy: pip install 'pcseg[las]'") from None
    if not path.is_file():
        raise DataError(path, None, "file not found")
    try:
        las = laspy.read(path)
    except Exception as e:  # laspy's errors: bad header, no LAZ backend, truncated data
        raise DataError(path, None, f"not a readable LAS / LAZ file ({type(e).__name__}: {e})") from None
    xyz = np.stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)], 1)
    if len(xyz) == 0:
        raise DataError(path, "points", "no points")
    # lidar coordinates are often georeferenced (e.g. UTM, millions of metres): float32 keeps ~0.25 m
    # there, so the cloud is moved to its own minimum corner first (outputs are per point: nothing moves back)
    points = check_points((xyz - xyz.min(0)).astype(np.float32), path, "x y z")
    colors = None
    names = set(las.point_format.dimension_names)
    if {"red", "green", "blue"} <= names:
        rgb = np.stack([np.asarray(las.red), np.asarray(las.green), np.asarray(las.blue)], 1).astype(np.float64)
        if rgb.max(initial=0) > 0:  # formats with colour fields that hold none store zeros
            colors = (rgb / (255.0 if rgb.max() <= 255 else 65535.0)).astype(np.float32)
    return Scene(points, colors, name=path.stem), colors is not None


# --- public API ---------------------------------------------------------------------------------
class MissingColors(UserWarning):
    """A point cloud without colours: pcseg paints it grey, and models trained on colour lose accuracy."""


class UnitsRescaled(UserWarning):
    """A point cloud in centimetres or millimetres: pcseg rescaled it to metres."""


class UpEstimated(UserWarning):
    """``up="auto"``: pcseg estimated which way is up in a point cloud and turned it to +z."""


# An indoor scan is at most a building floor: wider than this it is not in metres. 200-2000 units are
# taken for centimetres (a 2-20 m room), 2000-200000 for millimetres (2-200 m, the usual export of CAD
# and photogrammetry tools); anything wider is refused.
MAX_METRES = 200.0
UNITS = (("centimetres", 0.01, 2000.0), ("millimetres", 0.001, MAX_METRES / 0.001))


def to_metres(scene: Scene, path: Path) -> Scene:
    """``scene`` with its points in metres: a cloud whose extent no indoor scene in metres has is
    rescaled from centimetres or millimetres (an ``UnitsRescaled`` warning says which), or refused."""
    if len(scene) < 2:
        return scene
    extent = float(np.ptp(scene.points, axis=0).max())
    if extent <= MAX_METRES:
        return scene
    for unit, factor, widest in UNITS:
        if extent <= widest:
            warnings.warn(f"{path}: the points span {extent:.0f} units, too wide for an indoor scene in metres "
                          f"(pcseg's unit); read as {unit} (x {factor:g}): {extent * factor:.1f} m across",
                          UnitsRescaled, stacklevel=3)
            scene.points = (scene.points.astype(np.float64) * factor).astype(np.float32)
            return scene
    raise DataError(path, "points", f"the points span {extent:.3g} units: more than {MAX_METRES:g} km even as "
                    "millimetres; pcseg reads coordinates in metres")


# Rotations (det +1) that take each axis a cloud may have as "up" to +z, pcseg's up: faces keep
# their orientation and the scene its handedness.
UP_ROTATIONS = {
    "z": np.eye(3),
    "-z": np.array([[1, 0, 0], [0, -1, 0], [0, 0, -1]]),
    "y": np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]]),
    "-y": np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]]),
    "x": np.array([[0, 0, -1], [0, 1, 0], [1, 0, 0]]),
    "-x": np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]]),
}


UP_CHOICES = (*UP_ROTATIONS, "auto")


def make_upright(scene: Scene, up: str, path: str | os.PathLike = "", up_judge=None) -> Scene:
    """``scene`` rotated so that its axis ``up`` (one of UP_ROTATIONS: phone and photogrammetry
    exports are often y-up) points along +z; points and normals turn, per-point data stays.
    ``up="auto"``: estimated (``io.upright.estimate_up``, asking ``up_judge`` where the geometry
    leaves a choice), with an ``UpEstimated`` warning naming ``path`` and saying what was done when
    the estimate is not +z."""
    if up not in UP_CHOICES:
        raise ValueError(f"up: expected one of {', '.join(UP_CHOICES)}, got {up!r}")
    if up == "auto":
        from .upright import estimate_up

        if len(scene) < 100:
            raise DataError(path, "points", f"{len(scene)} points: too few to estimate the up axis (--up z, y, ... "
                            "says which it is)")
        estimate = estimate_up(scene.points, colors=scene.colors, judge=up_judge)
        rotation = estimate.rotation
        if estimate.axis != "z":
            warnings.warn(f"{path}: {estimate.describe()}; turned to +z for the network (the files written are "
                          f"per point, so nothing turns back). --up {estimate.axis or 'AXIS'} gives it without the "
                          "estimate", UpEstimated, stacklevel=3)
    elif up == "z":
        return scene
    else:
        rotation = UP_ROTATIONS[up].astype(np.float64)
    scene.points = (scene.points.astype(np.float64) @ rotation.T).astype(np.float32)
    if scene.normals is not None:
        scene.normals = (scene.normals.astype(np.float64) @ rotation.T).astype(np.float32)
    return scene


def read_point_cloud(path: str | os.PathLike, up: str = "z", up_judge=None) -> Scene:
    """Read a user's ``.ply``, ``.npz``, ``.pcd``, ``.las`` or ``.laz`` point cloud into a Scene named after the file stem. A cloud
    without colours is read as grey, with a ``MissingColors`` warning that says so; one in
    centimetres or millimetres is rescaled to metres (``to_metres``). ``up``: the file's up axis
    (``make_upright`` turns it to +z)."""
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(path, None, f"unsupported point-cloud format (expected {', '.join(CLOUD_SUFFIXES)})")
    scene, has_colors = reader(path)
    if not has_colors and len(scene):
        # the cost measured by benchmarks/bench_inputs.py (the validation rooms as .ply clouds)
        warnings.warn(f"{path}: no colours (no red/green/blue or colors): the points are read as grey, as a "
                      "fifth of the shipped models' training scenes were; without colour the shipped bottom-up "
                      "model's AP falls from 0.75 to 0.57 on the validation rooms, the grid model's from 0.84 "
                      "to 0.77", MissingColors, stacklevel=2)
    return make_upright(check_solid(to_metres(scene, path), path), up, path, up_judge)


FLAT_METRES = 0.01  # a scan thinner than this along an axis is a plane or a line, not a 3D scene


def check_solid(scene: Scene, path: Path) -> Scene:
    """``scene`` unchanged, or a DataError naming the file when its points (two or more) lie in a
    plane or on a line along the file's axes (a floor plan or a profile saved as 3D, not a scan)."""
    if len(scene) < 2:
        return scene
    extent = np.ptp(scene.points, axis=0)
    flat = [axis for axis, e in zip("xyz", extent) if e < FLAT_METRES]
    if flat:
        raise DataError(path, "points", f"the points are flat: they span {', '.join(f'{extent[i]:.3g} m along {a}' for i, a in enumerate('xyz') if a in flat)} "
                        "(less than 1 cm); pcseg needs a 3D scan")
    return scene


def _read_ply_cloud(path: Path) -> tuple[Scene, bool]:
    vertex, faces = load_ply(path)
    names = vertex.dtype.names
    missing = [c for c in "xyz" if c not in names]
    if missing:
        raise DataError(path, "vertex", f"missing coordinate properties {missing} (has {list(names)})")
    points = check_points(np.stack([vertex[c] for c in "xyz"], 1), path, "vertex x/y/z")
    n = len(points)
    colors = normals = semantic = instance = None
    if all(c in names for c in ("red", "green", "blue")):
        colors = rgb_to_unit(np.stack([vertex[c] for c in ("red", "green", "blue")], 1), path, "vertex red/green/blue")
    if all(c in names for c in ("nx", "ny", "nz")):
        normals = np.stack([vertex[c] for c in ("nx", "ny", "nz")], 1).astype(np.float32)
    if (prop := _first(names, SEMANTIC_PROPS)) is not None:
        semantic = int_labels(vertex[prop], n, path, f"vertex {prop}")
    if (prop := _first(names, INSTANCE_PROPS)) is not None:
        instance = int_labels(vertex[prop], n, path, f"vertex {prop}")
    return Scene(points=points, colors=colors, semantic=semantic, instance=instance, name=path.stem,
                 normals=normals, faces=faces), colors is not None


def _read_npz_cloud(path: Path) -> tuple[Scene, bool]:
    if not path.is_file():
        raise DataError(path, None, "file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise DataError(path, None, f"not a readable .npz archive ({type(e).__name__}: {e})") from None
    key = _first(data, ("points", "coord", "xyz"))
    if key is None:
        raise DataError(path, "points", f"no coordinates: expected key 'points', 'coord' or 'xyz' (has {sorted(data)})")
    points = check_points(data[key], path, key)
    n = len(points)
    colors = normals = semantic = instance = faces = None
    if (key := _first(data, ("colors", "color", "rgb"))) is not None:
        if data[key].shape != (n, 3):
            raise DataError(path, key, f"expected shape ({n}, 3), got {data[key].shape}")
        colors = rgb_to_unit(data[key], path, key)
    if (key := _first(data, ("normals", "normal"))) is not None:
        if data[key].shape != (n, 3):
            raise DataError(path, key, f"expected shape ({n}, 3), got {data[key].shape}")
        normals = data[key].astype(np.float32)
    if (key := _first(data, ("semantic", "label"))) is not None:
        semantic = int_labels(data[key], n, path, key)
    if "instance" in data:
        instance = int_labels(data["instance"], n, path, "instance")
    if "faces" in data:
        f = data["faces"]
        if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
            raise DataError(path, "faces", f"expected integer shape (F, 3), got {f.dtype} {f.shape}")
        if f.size and (f.min() < 0 or f.max() >= n):
            raise DataError(path, "faces", f"vertex index out of range 0..{n - 1}")
        faces = f
    return Scene(points=points, colors=colors, semantic=semantic, instance=instance, name=path.stem,
                 normals=normals, faces=faces), colors is not None


def write_point_cloud(scene: Scene, path: str | os.PathLike) -> Path:
    """Write ``scene`` as ``.ply`` (binary: x y z float, red green blue uchar, optional nx ny nz
    float, semantic/instance int, faces) or ``.npz`` (float32 colours, exact). Atomic."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".ply", ".npz"):
        raise DataError(path, None, "unsupported point-cloud format (expected .ply or .npz)")
    with atomic_path(path) as tmp:
        if suffix == ".npz":
            arrays = {"points": scene.points, "colors": scene.colors}
            for name in ("normals", "semantic", "instance", "faces"):
                if getattr(scene, name) is not None:
                    arrays[name] = getattr(scene, name)
            with open(tmp, "wb") as f:  # a file object: np.savez would otherwise append ".npz"
                np.savez_compressed(f, **arrays)
        else:
            fields = [("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
            if scene.normals is not None:
                fields += [("nx", "f4"), ("ny", "f4"), ("nz", "f4")]
            fields += [(name, "i4") for name in ("semantic", "instance") if getattr(scene, name) is not None]
            vertex = np.empty(len(scene), fields)
            for i, c in enumerate("xyz"):
                vertex[c] = scene.points[:, i]
            rgb = unit_to_uchar(scene.colors)
            for i, c in enumerate(("red", "green", "blue")):
                vertex[c] = rgb[:, i]
            if scene.normals is not None:
                for i, c in enumerate(("nx", "ny", "nz")):
                    vertex[c] = scene.normals[:, i]
            for name in ("semantic", "instance"):
                if getattr(scene, name) is not None:
                    vertex[name] = getattr(scene, name)
            save_ply(tmp, vertex, scene.faces, write_faces=False)
    return path


# the readers by suffix: (Scene, has_colors)
_READERS = {".ply": _read_ply_cloud, ".npz": _read_npz_cloud, ".pcd": _read_pcd_cloud,
            ".las": _read_las_cloud, ".laz": _read_las_cloud}
CLOUD_SUFFIXES = tuple(_READERS)  # what read_point_cloud reads
