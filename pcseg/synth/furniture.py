"""Parametric furniture built from boxes and cylinders, with random sizes and colours.

Every builder returns a :class:`Group`: one or more objects in a local frame whose footprint is
``x in [-width/2, width/2]``, ``y in [-depth/2, depth/2]``, floor at z = 0; the back (the side
that goes against a wall) is -y and the front +y. A group may hold objects on objects (a monitor
on a desk, pillows on a bed, a sink in a counter, books in a bookshelf).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .parts import Part, box, cylinder, merge

WOOD = [(0.55, 0.38, 0.22), (0.72, 0.56, 0.38), (0.35, 0.24, 0.15), (0.82, 0.72, 0.55)]
FABRIC = [(0.45, 0.45, 0.50), (0.60, 0.25, 0.22), (0.25, 0.35, 0.55), (0.70, 0.65, 0.55),
          (0.30, 0.45, 0.30), (0.20, 0.20, 0.22)]
WHITE = [(0.90, 0.90, 0.88), (0.80, 0.82, 0.85), (0.95, 0.93, 0.88)]
METAL = [(0.25, 0.25, 0.27), (0.60, 0.61, 0.63), (0.10, 0.10, 0.10)]
BRIGHT = [(0.85, 0.30, 0.25), (0.25, 0.55, 0.80), (0.95, 0.80, 0.30), (0.40, 0.70, 0.40),
          (0.75, 0.45, 0.75), (0.90, 0.55, 0.20)]


@dataclass
class Obj:
    """One annotated object: a raw category (a key of labels.BUNDLED_RAW_CATEGORIES) and its parts."""

    raw: str
    parts: list[Part]

    def __post_init__(self) -> None:
        self.raw = str(self.raw)  # rng.choice hands back numpy strings


@dataclass
class Group:
    """Objects placed together, in the local frame described in the module docstring."""

    objects: list[Obj]
    width: float
    depth: float
    height: float
    tall: bool = field(default=False)  # blocks a window (taller than a sill)


def color(rng: np.random.Generator, palette) -> np.ndarray:
    """A palette colour with per-object brightness and tint variation."""
    base = np.asarray(palette[rng.integers(len(palette))], float)
    return np.clip(base * rng.uniform(0.85, 1.15) + rng.normal(0, 0.03, 3), 0.02, 1.0)


def legs(w: float, d: float, h: float, t: float, col, inset: float = 0.03) -> list[Part]:
    """Four square legs of thickness t under a w x d top, from the floor to height h."""
    out = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            x = sx * (w / 2 - inset - t / 2)
            y = sy * (d / 2 - inset - t / 2)
            out.append(box((x - t / 2, y - t / 2, 0), (x + t / 2, y + t / 2, h), col, bottom=False))
    return out


# --- seating ------------------------------------------------------------------------------------
def chair(rng, raw: str = "chair") -> Group:
    """A chair ('chair' with legs, 'office chair' on a column, 'armchair' upholstered)."""
    if raw == "armchair":
        w, d = rng.uniform(0.7, 0.9), rng.uniform(0.75, 0.9)
        c = color(rng, FABRIC)
        arm = rng.uniform(0.1, 0.16)
        parts = [box((-w / 2 + arm, -d / 2 + 0.18, 0), (w / 2 - arm, d / 2, 0.42), c, bottom=False),
                 box((-w / 2, -d / 2, 0), (w / 2, -d / 2 + 0.18, 0.85), c, bottom=False),
                 box((-w / 2, -d / 2 + 0.18, 0), (-w / 2 + arm, d / 2, 0.62), c, bottom=False),
                 box((w / 2 - arm, -d / 2 + 0.18, 0), (w / 2, d / 2, 0.62), c, bottom=False)]
        return Group([Obj(raw, parts)], w, d, 0.85)
    w, d = rng.uniform(0.42, 0.52), rng.uniform(0.42, 0.52)
    h = rng.uniform(0.43, 0.48)
    back = rng.uniform(0.35, 0.5)
    seat_c = color(rng, FABRIC if raw == "office chair" else WOOD + FABRIC)
    frame_c = color(rng, METAL if raw == "office chair" else WOOD)
    seat = box((-w / 2, -d / 2, h - 0.05), (w / 2, d / 2, h), seat_c)
    backrest = box((-w / 2, -d / 2, h), (w / 2, -d / 2 + 0.04, h + back), seat_c)
    if raw == "office chair":
        parts = [cylinder((0, 0), 0.28, 0.03, 0.08, frame_c),
                 cylinder((0, 0), 0.03, 0.08, h - 0.05, frame_c, top=False),
                 seat, box((-w / 2 + 0.03, -d / 2, h + 0.06), (w / 2 - 0.03, -d / 2 + 0.05, h + back + 0.08), seat_c)]
    else:
        parts = legs(w, d, h - 0.05, 0.035, frame_c, inset=0.0) + [seat, backrest]
    return Group([Obj(raw, parts)], w, d, h + back)


def sofa(rng, raw: str = "sofa", pillows: int = 2) -> Group:
    """A sofa with arms, seat cushions and pillows leaning on the back."""
    w, d = rng.uniform(1.5, 2.3), rng.uniform(0.85, 1.0)
    c = color(rng, FABRIC)
    arm, back = rng.uniform(0.12, 0.22), rng.uniform(0.18, 0.25)
    seat_h = rng.uniform(0.38, 0.45)
    parts = [box((-w / 2 + arm, -d / 2 + back, 0), (w / 2 - arm, d / 2, seat_h), c, bottom=False),
             box((-w / 2, -d / 2, 0), (w / 2, -d / 2 + back, 0.85), c, bottom=False),
             box((-w / 2, -d / 2 + back, 0), (-w / 2 + arm, d / 2, 0.62), c, bottom=False),
             box((w / 2 - arm, -d / 2 + back, 0), (w / 2, d / 2, 0.62), c, bottom=False)]
    n_cush = 2 if w < 1.9 else 3
    xs = np.linspace(-w / 2 + arm, w / 2 - arm, n_cush + 1)
    for a, b in zip(xs[:-1], xs[1:]):
        parts.append(box((a + 0.005, -d / 2 + back, seat_h), (b - 0.005, d / 2 - 0.02, seat_h + 0.1), c,
                         bottom=False))
    objs = [Obj(raw, parts)]
    for k in range(pillows):
        x = rng.uniform(-w / 2 + arm + 0.25, w / 2 - arm - 0.25)
        pw = rng.uniform(0.35, 0.5)
        y0 = -d / 2 + back
        objs.append(Obj("pillow", [box((x - pw / 2, y0, seat_h + 0.1), (x + pw / 2, y0 + 0.14, seat_h + 0.1 + pw * 0.9),
                                       color(rng, BRIGHT))]))
    return Group(objs, w, d, 0.85)


def bed(rng) -> Group:
    """A bed: frame, mattress, headboard, pillows on the mattress."""
    w, d = rng.choice([rng.uniform(0.9, 1.1), rng.uniform(1.4, 1.8)]), rng.uniform(1.95, 2.15)
    frame_c, sheet_c = color(rng, WOOD), color(rng, WHITE + FABRIC)
    fh = rng.uniform(0.25, 0.35)
    mh = fh + rng.uniform(0.18, 0.25)
    parts = [box((-w / 2, -d / 2 + 0.05, 0), (w / 2, d / 2, fh), frame_c, bottom=False),
             box((-w / 2 + 0.02, -d / 2 + 0.06, fh), (w / 2 - 0.02, d / 2 - 0.02, mh), sheet_c, bottom=False),
             box((-w / 2, -d / 2, 0), (w / 2, -d / 2 + 0.05, mh + rng.uniform(0.4, 0.7)), frame_c, bottom=False)]
    objs = [Obj("bed", parts)]
    n = 1 if w < 1.2 else 2
    for k in range(n):
        pw = w / n - 0.12
        x = -w / 2 + (k + 0.5) * w / n
        objs.append(Obj("pillow", [box((x - pw / 2, -d / 2 + 0.08, mh), (x + pw / 2, -d / 2 + 0.45, mh + 0.13),
                                       color(rng, WHITE + BRIGHT), bottom=False)]))
    return Group(objs, w, d, mh + 0.5, tall=True)


# --- tables and desks ---------------------------------------------------------------------------
def table(rng, raw: str = "table", w: float | None = None, d: float | None = None, h: float | None = None,
          round_top: bool = False) -> Group:
    """A table with four legs (or a round table on a column)."""
    if raw == "coffee table":
        w, d, h = w or rng.uniform(0.8, 1.2), d or rng.uniform(0.5, 0.7), h or rng.uniform(0.38, 0.48)
    w, d, h = w or rng.uniform(1.0, 1.8), d or rng.uniform(0.7, 1.0), h or rng.uniform(0.72, 0.78)
    c, lc = color(rng, WOOD + WHITE), color(rng, WOOD + METAL)
    t = rng.uniform(0.025, 0.05)
    if round_top:
        r = min(w, d) / 2
        parts = [cylinder((0, 0), r, h - t, h, c, bottom=True),
                 cylinder((0, 0), 0.04, 0.04, h - t, lc, top=False),
                 cylinder((0, 0), 0.25, 0.0, 0.04, lc)]
        return Group([Obj(raw, parts)], 2 * r, 2 * r, h)
    parts = [box((-w / 2, -d / 2, h - t), (w / 2, d / 2, h), c)] + legs(w, d, h - t, rng.uniform(0.04, 0.07), lc)
    return Group([Obj(raw, parts)], w, d, h)


def desk(rng, items: bool = True) -> Group:
    """A desk (top, side panels, drawer block) with a monitor, keyboard and clutter on it."""
    w, d, h = rng.uniform(1.1, 1.6), rng.uniform(0.6, 0.8), rng.uniform(0.72, 0.76)
    c = color(rng, WOOD + WHITE)
    parts = [box((-w / 2, -d / 2, h - 0.03), (w / 2, d / 2, h), c),
             box((-w / 2, -d / 2, 0), (-w / 2 + 0.025, d / 2, h - 0.03), c, bottom=False),
             box((w / 2 - 0.025, -d / 2, 0), (w / 2, d / 2, h - 0.03), c, bottom=False)]
    if rng.random() < 0.6:
        parts.append(box((w / 2 - 0.45, -d / 2 + 0.02, 0), (w / 2 - 0.025, d / 2 - 0.02, h - 0.03), c, bottom=False))
    objs = [Obj("desk", parts)]
    if items:
        objs += desk_items(rng, w, d, h)
    return Group(objs, w, d, h)


def desk_items(rng, w: float, d: float, h: float) -> list[Obj]:
    """Monitor, keyboard and a box or lamp or books standing on a top of size w x d at height h."""
    objs = []
    mw = rng.uniform(0.45, 0.65)
    mx = rng.uniform(-w / 2 + mw / 2 + 0.05, w / 2 - mw / 2 - 0.05)
    mc = color(rng, METAL)
    y0 = -d / 2 + rng.uniform(0.05, 0.15)
    objs.append(Obj("monitor", [box((mx - 0.1, y0, h), (mx + 0.1, y0 + 0.18, h + 0.02), mc, bottom=False),
                                box((mx - 0.025, y0 + 0.02, h + 0.02), (mx + 0.025, y0 + 0.06, h + 0.12), mc, bottom=False),
                                box((mx - mw / 2, y0 + 0.06, h + 0.1), (mx + mw / 2, y0 + 0.1, h + 0.1 + mw * 0.6), mc)]))
    objs.append(Obj("keyboard", [box((mx - 0.22, y0 + 0.25, h), (mx + 0.22, y0 + 0.4, h + 0.03), mc, bottom=False)]))
    side = -1 if mx > 0 else 1
    x = side * rng.uniform(w / 2 - 0.3, w / 2 - 0.15)
    kind = rng.integers(3)
    if kind == 0:
        s = rng.uniform(0.15, 0.3, 3)
        objs.append(Obj("box", [box((x - s[0] / 2, -s[1] / 2, h), (x + s[0] / 2, s[1] / 2, h + s[2]),
                                    color(rng, WOOD + WHITE), bottom=False)]))
    elif kind == 1:
        objs.append(lamp(rng, x, 0.0, h, small=True))
    else:
        objs.append(books_row(rng, x - 0.12, x + 0.12, -0.1, 0.12, h, rng.uniform(0.18, 0.25), lying=True))
    return objs


def lamp(rng, x: float, y: float, z: float, small: bool) -> Obj:
    """A lamp: base, pole and shade (a table lamp when ``small``, else a floor lamp)."""
    c = color(rng, METAL + WHITE)
    pole = rng.uniform(0.25, 0.4) if small else rng.uniform(1.3, 1.6)
    r = rng.uniform(0.1, 0.15) if small else rng.uniform(0.18, 0.25)
    return Obj("lamp", [cylinder((x, y), r * 0.7, z, z + 0.03, c),
                        cylinder((x, y), 0.012, z + 0.03, z + pole, c, top=False),
                        cylinder((x, y), r, z + pole, z + pole + r * 1.2, color(rng, WHITE + BRIGHT), bottom=True)])


def books_row(rng, x0, x1, y0, y1, z, h, lying: bool = False) -> Obj:
    """'books': a row of upright book blocks from x0 to x1 (or a lying stack) on a shelf at z."""
    parts = []
    if lying:
        zz = z
        for _ in range(rng.integers(2, 5)):
            t = rng.uniform(0.02, 0.05)
            parts.append(box((x0, y0, zz), (x1, y1, zz + t), color(rng, BRIGHT), bottom=False))
            zz += t
        return Obj("books", parts)
    x = x0
    while x < x1 - 0.02:
        t = min(rng.uniform(0.02, 0.06), x1 - x)
        parts.append(box((x, y0, z), (x + t, y1 - rng.uniform(0, 0.04), z + h * rng.uniform(0.7, 1.0)),
                         color(rng, BRIGHT + WHITE), bottom=False))
        x += t
    return Obj("books", [merge(parts, parts[0].color)])


# --- storage ------------------------------------------------------------------------------------
def cabinet(rng, raw: str = "cabinet", w: float | None = None, d: float | None = None,
            h: float | None = None, z0: float = 0.0, col=None) -> Group:
    """A cabinet body with door/drawer fronts and handles; ``z0`` lifts it (wall cabinets)."""
    w, d, h = w or rng.uniform(0.5, 1.0), d or rng.uniform(0.4, 0.6), h or rng.uniform(0.7, 1.2)
    c = color(rng, WOOD + WHITE) if col is None else col
    parts = [box((-w / 2, -d / 2, z0), (w / 2, d / 2 - 0.02, z0 + h), c, bottom=z0 > 0)]
    n = 1 if w < 0.6 else 2
    xs = np.linspace(-w / 2, w / 2, n + 1)
    hc = color(rng, METAL)
    for a, b in zip(xs[:-1], xs[1:]):
        parts.append(box((a + 0.005, d / 2 - 0.02, z0 + 0.04), (b - 0.005, d / 2, z0 + h - 0.01), c, bottom=False))
        hx = b - 0.06 if a < 0 or n == 1 else a + 0.06
        parts.append(box((hx - 0.01, d / 2, z0 + h * 0.6), (hx + 0.01, d / 2 + 0.025, z0 + h * 0.6 + 0.12), hc))
    return Group([Obj(raw, parts)], w, d, z0 + h, tall=z0 + h > 0.9)


def bookshelf(rng, raw: str = "bookshelf") -> Group:
    """An open bookshelf (sides, shelves, back) with rows of books on some shelves."""
    w, d, h = rng.uniform(0.6, 1.0), rng.uniform(0.28, 0.4), rng.uniform(1.2, 2.0)
    c = color(rng, WOOD + WHITE)
    t = 0.02
    parts = [box((-w / 2, -d / 2, 0), (-w / 2 + t, d / 2, h), c, bottom=False),
             box((w / 2 - t, -d / 2, 0), (w / 2, d / 2, h), c, bottom=False),
             box((-w / 2 + t, -d / 2, 0), (w / 2 - t, -d / 2 + t, h), c, bottom=False)]
    levels = np.linspace(0.0, h - t, int(h / 0.35) + 1)
    objs = []
    for k, z in enumerate(levels):
        parts.append(box((-w / 2 + t, -d / 2 + t, z), (w / 2 - t, d / 2, z + t), c, bottom=k > 0))
        if k + 1 < len(levels) and rng.random() < 0.7:
            x0 = -w / 2 + t + rng.uniform(0, 0.2)
            x1 = x0 + rng.uniform(0.2, w - 2 * t - (x0 + w / 2 - t))
            objs.append(books_row(rng, x0, x1, -d / 2 + t + 0.01, d / 2 - 0.02, z + t,
                                  min(0.3, levels[k + 1] - z - t - 0.02)))
    return Group([Obj(raw, parts)] + objs, w, d, h, tall=True)


def refrigerator(rng) -> Group:
    """A refrigerator: body, two doors, handles."""
    w, d, h = rng.uniform(0.6, 0.8), rng.uniform(0.65, 0.75), rng.uniform(1.6, 1.9)
    c, hc = color(rng, WHITE + METAL[1:2]), color(rng, METAL)
    split = h * rng.uniform(0.3, 0.4)
    parts = [box((-w / 2, -d / 2, 0), (w / 2, d / 2 - 0.03, h), c, bottom=False),
             box((-w / 2, d / 2 - 0.03, 0.02), (w / 2, d / 2, split - 0.005), c, bottom=False),
             box((-w / 2, d / 2 - 0.03, split + 0.005), (w / 2, d / 2, h), c, bottom=False),
             box((w / 2 - 0.08, d / 2, split - 0.3), (w / 2 - 0.06, d / 2 + 0.04, split - 0.05), hc),
             box((w / 2 - 0.08, d / 2, split + 0.1), (w / 2 - 0.06, d / 2 + 0.04, split + 0.6), hc)]
    return Group([Obj("refrigerator", parts)], w, d, h, tall=True)


def basin(x0, x1, y0, y1, z_bottom, z_top, col, wall: float = 0.015) -> list[Part]:
    """An open basin (bottom and four walls) in the box x0..x1, y0..y1, z_bottom..z_top."""
    return [box((x0, y0, z_bottom), (x1, y1, z_bottom + wall), col),
            box((x0, y0, z_bottom), (x0 + wall, y1, z_top), col), box((x1 - wall, y0, z_bottom), (x1, y1, z_top), col),
            box((x0, y0, z_bottom), (x1, y0 + wall, z_top), col), box((x0, y1 - wall, z_bottom), (x1, y1, z_top), col)]


def kitchen_row(rng, n: int, sink: bool) -> Group:
    """Base 'kitchen cabinets' in a row (touching), one 'counter' over all of them, a 'sink' in the
    counter, and wall cabinets above."""
    d, h = rng.uniform(0.55, 0.65), rng.uniform(0.82, 0.88)
    widths = rng.uniform(0.45, 0.8, n)
    w = float(widths.sum())
    xs = -w / 2 + np.concatenate([[0], np.cumsum(widths)])
    raw = rng.choice(["kitchen cabinets", "kitchen cabinet", "cabinet"])
    objs = []
    col = color(rng, WOOD + WHITE)
    upper_h, upper_z = rng.uniform(0.6, 0.8), rng.uniform(1.4, 1.55)
    for a, b in zip(xs[:-1], xs[1:]):
        g = cabinet(rng, raw, b - a - 0.002, d - 0.02, h - 0.04, col=col)
        objs += shift(g.objects, ((a + b) / 2, -0.01, 0.0))
        if rng.random() < 0.7:
            g = cabinet(rng, raw, b - a - 0.002, 0.35, upper_h, z0=upper_z, col=col)
            objs += shift(g.objects, ((a + b) / 2, -d / 2 + 0.175, 0.0))
    top_c = color(rng, WHITE + METAL + WOOD)
    z0, z1 = h - 0.04, h
    if sink and n >= 2:
        k = int(rng.integers(n))
        sx0, sx1 = xs[k] + 0.06, xs[k + 1] - 0.06
        sy0, sy1 = -d / 2 + 0.1, d / 2 - 0.08
        slab = [box((xs[0], -d / 2, z0), (sx0, d / 2, z1), top_c), box((sx1, -d / 2, z0), (xs[-1], d / 2, z1), top_c),
                box((sx0, -d / 2, z0), (sx1, sy0, z1), top_c), box((sx0, sy1, z0), (sx1, d / 2, z1), top_c)]
        sc = color(rng, METAL[1:] + WHITE)
        fx = (sx0 + sx1) / 2
        objs.append(Obj("sink", basin(sx0, sx1, sy0, sy1, z1 - 0.2, z1 + 0.005, sc)
                        + [cylinder((fx, sy0 - 0.05), 0.015, z1, z1 + 0.3, sc),
                           box((fx - 0.012, sy0 - 0.05, z1 + 0.27), (fx + 0.012, sy0 + 0.12, z1 + 0.3), sc)]))
    else:
        slab = [box((xs[0], -d / 2, z0), (xs[-1], d / 2, z1), top_c)]
    objs.append(Obj(rng.choice(["counter", "kitchen counter"]), slab))
    return Group(objs, w, d, upper_z + upper_h, tall=True)


def shift(objs: list[Obj], offset, yaw: float = 0.0) -> list[Obj]:
    """The objects rotated by ``yaw`` about +z, then moved by ``offset`` (3,)."""
    return [Obj(o.raw, [p.transformed(yaw, offset) for p in o.parts]) for o in objs]
