"""A building floor made of rooms: scans laid side by side in a grid, as one scene (for measuring
prediction on scans far larger than a room: ``pcseg predict`` tiles them)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..data.dataset import floor_level
from ..structures import Scene


def floor_of_rooms(rooms: Sequence[Scene], gap: float = 0.5, columns: int | None = None,
                   name: str = "scene0900_00") -> Scene:
    """One scene holding ``rooms`` in a grid (``columns`` per row, default about square), each moved
    to its own cell with ``gap`` metres between cells and its floor (``floor_level``) to z = 0, as the
    rooms of one building floor share theirs. Instance and segment ids are renumbered so that no two
    rooms share one; faces follow their vertices."""
    if not rooms:
        raise ValueError("floor_of_rooms: no rooms given")
    columns = columns or math.ceil(math.sqrt(len(rooms)))
    size = np.max([np.ptp(r.points[:, :2], axis=0) for r in rooms], axis=0) + gap
    parts: dict[str, list] = {k: [] for k in ("points", "colors", "semantic", "instance", "segments", "faces")}
    labelled = all(r.semantic is not None and r.instance is not None for r in rooms)
    with_faces = all(r.faces is not None for r in rooms)
    with_segments = all(r.segments is not None for r in rooms)
    vertices = next_instance = next_segment = 0
    for i, room in enumerate(rooms):
        corner = room.points.min(0)
        offset = np.array([(i % columns) * size[0], (i // columns) * size[1], 0.0]) - [corner[0], corner[1],
                                                                                        floor_level(room.points[:, 2])]
        parts["points"].append((room.points + offset).astype(np.float32))
        parts["colors"].append(room.colors)
        if labelled:
            parts["semantic"].append(room.semantic)
            parts["instance"].append(np.where(room.instance >= 1, room.instance + next_instance, room.instance))
            next_instance += int(room.instance.max(initial=0))
        if with_segments:
            seg = np.unique(room.segments, return_inverse=True)[1].reshape(-1)
            parts["segments"].append(seg + next_segment)
            next_segment += int(seg.max(initial=-1)) + 1
        if with_faces:
            parts["faces"].append(room.faces + vertices)
        vertices += len(room)

    def joined(key):
        return np.concatenate(parts[key]) if parts[key] else None

    return Scene(joined("points"), joined("colors"), joined("semantic"), joined("instance"), name=name,
                 faces=joined("faces"), segments=joined("segments"))
