"""Room shell and furniture placement.

A room is the rectangle x in [0, width], y in [0, depth], floor z = 0, walls to ``height``
(the axis-aligned frame; ``generate`` later moves it into a random "scan frame"). Walls are
numbered counter-clockwise: wall k starts at corner P_k and runs along e_k, its inward normal is
e_k turned by +90 degrees, so an object built with its back at -y is placed against wall k by a
rotation of k * 90 degrees.

Placement keeps two kinds of records: per wall, rectangles in (position along the wall, z) for
doors, windows, curtains, furniture and pictures (a picture fits above a low cabinet but not over
a window); and on the floor, axis-aligned footprints so groups on neighbouring walls and groups in
the middle of the room do not collide. Touching is deliberate *inside* groups (chairs at a table,
cabinets in a row), with 0-10 mm gaps.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .fixtures import curtain, door, flat_on_wall, window
from .furniture import Group, Obj, shift
from .parts import rect

CORNERS = lambda w, d: np.array([[0, 0], [w, 0], [w, d], [0, d]], float)  # noqa: E731
DIRS = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], float)


def compose(items: list[tuple[Group, float, float, float]]) -> Group:
    """One group from (group, dx, dy, yaw) items, re-centred on the bounding box of its geometry."""
    objs = []
    tall = False
    for g, dx, dy, yaw in items:
        objs += shift(g.objects, (dx, dy, 0.0), yaw)
        tall |= g.tall
    allv = np.concatenate([p.verts for o in objs for p in o.parts])
    lo, hi = allv.min(0), allv.max(0)
    centre = (lo + hi) / 2
    objs = shift(objs, (-centre[0], -centre[1], 0.0))
    return Group(objs, hi[0] - lo[0], hi[1] - lo[1], hi[2], tall)


def row(groups: list[Group], rng, gap: tuple[float, float] = (0.0, 0.01)) -> Group:
    """Groups side by side along x, backs aligned, touching (gap drawn from ``gap``)."""
    items, x = [], 0.0
    for g in groups:
        items.append((g, x + g.width / 2, g.depth / 2, 0.0))
        x += g.width + rng.uniform(*gap)
    return compose(items)


@dataclass
class Room:
    """The room being furnished. ``objects`` are in room coordinates."""

    kind: str
    width: float
    depth: float
    height: float
    rng: np.random.Generator
    objects: list[Obj] = field(default_factory=list)
    footprints: list[tuple[float, float, float, float]] = field(default_factory=list)
    spans: list[list[tuple[float, float, float, float]]] = field(default_factory=lambda: [[], [], [], []])
    holes: list[list[tuple[float, float, float, float]]] = field(default_factory=lambda: [[], [], [], []])
    tall_depth: float = 0.0

    def wall_length(self, k: int) -> float:
        return self.width if k % 2 == 0 else self.depth

    def _frame(self, k: int, s: float, off: float) -> tuple[float, np.ndarray]:
        """yaw and xy of the point at distance s along wall k, ``off`` into the room."""
        e = DIRS[k]
        n = np.array([-e[1], e[0]])
        return k * np.pi / 2, CORNERS(self.width, self.depth)[k] + e * s + n * off

    def _footprint(self, k: int, s: float, w: float, d: float) -> tuple[float, float, float, float]:
        _, a = self._frame(k, s - w / 2, 0.0)
        _, b = self._frame(k, s + w / 2, d)
        return min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])

    def free_on_floor(self, r, clearance: float = 0.0) -> bool:
        x0, y0, x1, y1 = r
        if x0 < -1e-6 or y0 < -1e-6 or x1 > self.width + 1e-6 or y1 > self.depth + 1e-6:
            return False
        return all(x0 >= b[2] + clearance - 1e-3 or x1 <= b[0] - clearance + 1e-3 or
                   y0 >= b[3] + clearance - 1e-3 or y1 <= b[1] - clearance + 1e-3 for b in self.footprints)

    def free_on_wall(self, k: int, s0: float, s1: float, z0: float, z1: float) -> bool:
        if s0 < -1e-6 or s1 > self.wall_length(k) + 1e-6:
            return False
        return all(s0 >= b[1] - 1e-3 or s1 <= b[0] + 1e-3 or z0 >= b[3] or z1 <= b[2] for b in self.spans[k])

    def _add(self, objs: list[Obj], k: int, s: float, off: float) -> None:
        yaw, xy = self._frame(k, s, off)
        self.objects += shift(objs, (xy[0], xy[1], 0.0), yaw)

    # --- placing --------------------------------------------------------------------------------
    def place_against_wall(self, g: Group, walls=None, tries: int = 40, hung: bool = False) -> bool:
        """Put group ``g`` with its back on a wall (one of ``walls``), where it fits.

        hung: the group hangs on the wall (its lowest point is above the floor): it takes wall space
        from that height up and no floor space."""
        walls = list(range(4)) if walls is None else list(walls)
        z0 = min(float(p.verts[:, 2].min()) for o in g.objects for p in o.parts) if hung else 0.0
        for _ in range(tries):
            k = int(self.rng.choice(walls))
            length = self.wall_length(k)
            if g.width > length:
                continue
            s = self.rng.uniform(g.width / 2, length - g.width / 2)
            if self.rng.random() < 0.4:  # into a corner, as furniture often is
                s = g.width / 2 + 0.002 if self.rng.random() < 0.5 else length - g.width / 2 - 0.002
            fp = self._footprint(k, s, g.width, g.depth)
            if self.free_on_wall(k, s - g.width / 2, s + g.width / 2, z0, g.height) and (
                    hung or self.free_on_floor(fp)):
                self.spans[k].append((s - g.width / 2, s + g.width / 2, z0, g.height))
                if not hung:
                    self.footprints.append(fp)
                self._add(g.objects, k, s, g.depth / 2 + 0.002)
                if g.tall:
                    self.tall_depth = max(self.tall_depth, g.depth)
                return True
        return False

    def place_free(self, g: Group, clearance: float = 0.45, tries: int = 60, near=None) -> bool:
        """Put group ``g`` somewhere on the floor (yaw a multiple of 90 degrees), ``clearance`` away
        from everything else; ``near`` (x, y) biases the search toward a point."""
        for _ in range(tries):
            quarter = int(self.rng.integers(4))
            w, d = (g.width, g.depth) if quarter % 2 == 0 else (g.depth, g.width)
            if w > self.width or d > self.depth:
                continue
            if near is not None:
                x, y = np.asarray(near) + self.rng.normal(0, 0.6, 2)
            else:
                x, y = self.rng.uniform(w / 2, self.width - w / 2), self.rng.uniform(d / 2, self.depth - d / 2)
            fp = (x - w / 2, y - d / 2, x + w / 2, y + d / 2)
            if self.free_on_floor(fp, clearance):
                self.footprints.append(fp)
                self.objects += shift(g.objects, (x, y, 0.0), quarter * np.pi / 2)
                return True
        return False

    def add_door(self, w: float | None = None, h: float | None = None) -> bool:
        """A door in some wall, with a clear floor area in front of it."""
        w, h = w or self.rng.uniform(0.8, 1.0), h or self.rng.uniform(2.0, 2.1)
        for _ in range(30):
            k = int(self.rng.integers(4))
            s = self.rng.uniform(w / 2 + 0.15, self.wall_length(k) - w / 2 - 0.15)
            fp = self._footprint(k, s, w + 0.2, 0.8)
            if self.free_on_wall(k, s - w / 2 - 0.1, s + w / 2 + 0.1, 0.0, h + 0.1) and self.free_on_floor(fp):
                self.spans[k].append((s - w / 2 - 0.1, s + w / 2 + 0.1, 0.0, h + 0.1))
                self.footprints.append(fp)
                self.holes[k].append((s - w / 2, s + w / 2, 0.0, h))
                self._add([door(self.rng, w, h)], k, s, 0.0)
                return True
        return False

    def add_window(self, curtains: float = 0.6) -> bool:
        """A window (opening with frame) in some wall, with curtains on both sides with probability
        ``curtains``."""
        w = self.rng.uniform(0.8, 1.8)
        z0 = self.rng.uniform(0.8, 1.0)
        z1 = min(self.height - 0.25, z0 + self.rng.uniform(1.0, 1.4))
        for _ in range(30):
            k = int(self.rng.integers(4))
            s = self.rng.uniform(w / 2 + 0.5, self.wall_length(k) - w / 2 - 0.5)
            with_curtain = self.rng.random() < curtains
            cw = self.rng.uniform(0.25, 0.45)
            cz0 = 0.02 if self.rng.random() < 0.5 else z0 - 0.1
            s0, s1 = s - w / 2 - (cw if with_curtain else 0.0), s + w / 2 + (cw if with_curtain else 0.0)
            if not self.free_on_wall(k, s0 - 0.05, s1 + 0.05, (cz0 if with_curtain else z0) - 0.05, z1 + 0.15):
                continue
            self.spans[k].append((s0 - 0.05, s1 + 0.05, (cz0 if with_curtain else z0) - 0.05, z1 + 0.15))
            self.holes[k].append((s - w / 2, s + w / 2, z0, z1))
            objs = [window(self.rng, w, z0, z1)]
            if with_curtain:
                objs += [curtain(self.rng, -w / 2 - cw, -w / 2 + 0.05, cz0, z1 + 0.12),
                         curtain(self.rng, w / 2 - 0.05, w / 2 + cw, cz0, z1 + 0.12)]
                if cz0 < 0.1:
                    self.footprints.append(self._footprint(k, s, s1 - s0, 0.2))
            self._add(objs, k, s, 0.0)
            return True
        return False

    def add_on_wall(self, raw: str, w: float, h: float, z0: float, tries: int = 30) -> bool:
        """A flat wall object (picture, whiteboard, mirror, towel) where the wall is free."""
        for _ in range(tries):
            k = int(self.rng.integers(4))
            if w + 0.2 > self.wall_length(k):
                continue
            s = self.rng.uniform(w / 2 + 0.1, self.wall_length(k) - w / 2 - 0.1)
            if self.free_on_wall(k, s - w / 2 - 0.05, s + w / 2 + 0.05, z0 - 0.05, z0 + h + 0.05):
                self.spans[k].append((s - w / 2 - 0.05, s + w / 2 + 0.05, z0 - 0.05, z0 + h + 0.05))
                self._add([flat_on_wall(self.rng, raw, w, h, z0)], k, s, 0.0)
                return True
        return False

    def shell(self) -> list[Obj]:
        """Floor and the four walls (with door and window openings), as separate objects."""
        rng = self.rng
        floor_c = np.clip(np.array(rng.choice([(0.55, 0.45, 0.35), (0.7, 0.7, 0.68), (0.35, 0.3, 0.28)]))
                          * rng.uniform(0.85, 1.15), 0, 1)
        wall_c = np.clip(np.array(rng.choice([(0.9, 0.9, 0.86), (0.85, 0.82, 0.75), (0.75, 0.8, 0.85)]))
                         * rng.uniform(0.9, 1.05), 0, 1)
        out = [Obj("floor", [rect((0, 0, 0), (self.width, 0, 0), (0, self.depth, 0), floor_c, cell=0.5)])]
        corners = CORNERS(self.width, self.depth)
        for k in range(4):
            length = self.wall_length(k)
            end = corners[k] + DIRS[k] * length
            # u runs backwards along the wall so that u x z points into the room
            holes = [(length - s1, length - s0, z0, z1) for s0, s1, z0, z1 in self.holes[k]]
            out.append(Obj("wall", [rect((end[0], end[1], 0), (-DIRS[k][0] * length, -DIRS[k][1] * length, 0),
                                         (0, 0, self.height), wall_c, cell=0.5, holes=holes)]))
        return out
