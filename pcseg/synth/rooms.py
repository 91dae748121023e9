"""Room programs: which furniture a bedroom, office, living room, kitchen, bathroom, conference
room or classroom gets, and how it is grouped (touching rows, chairs at tables, objects on objects).
"""
from __future__ import annotations

import numpy as np

from .fixtures import bathtub, small_furniture, toilet, vanity
from .furniture import Group, bed, bookshelf, cabinet, chair, desk, kitchen_row, lamp, refrigerator, sofa, table
from .layout import Room, compose, row

ROOM_TYPES = ("bedroom", "office", "living room", "kitchen", "bathroom", "conference room", "classroom")
# width range, depth range (metres)
SIZES = {"bedroom": ((4.0, 5.6), (3.5, 4.8)), "office": ((4.2, 6.5), (3.6, 5.2)),
         "living room": ((4.5, 6.5), (3.8, 5.4)), "kitchen": ((3.6, 5.5), (3.2, 4.6)),
         "bathroom": ((3.4, 4.6), (3.0, 4.0)), "conference room": ((5.0, 7.0), (4.0, 5.6)),
         "classroom": ((5.5, 7.2), (4.5, 6.0))}


def chairs_at(rng, t: Group, sides=(0, 1), raw: str = "chair", packed: bool = False) -> Group:
    """Table ``t`` with chairs along its +y/-y sides (side 0: +y, 1: -y), some pushed in, facing it.

    packed: chairs side by side with 0-10 mm gaps (touching), else spread evenly.
    """
    items = [(t, 0.0, 0.0, 0.0)]
    for side in sides:
        c0 = chair(rng, raw)
        n = max(1, int((t.width - 0.1) // (c0.width + (0.01 if packed else 0.2))))
        if packed:
            gaps = rng.uniform(0.0, 0.01, n)
            xs = np.cumsum(np.full(n, c0.width) + gaps) - c0.width / 2
            xs -= (xs[-1] + xs[0]) / 2
        else:
            xs = (np.arange(n) + 0.5) * t.width / n - t.width / 2
        for x in xs:
            c = chair(rng, raw) if not packed else c0
            push = rng.uniform(-0.02, 0.25)
            y = t.depth / 2 + c.depth / 2 - push
            yaw = np.pi + rng.normal(0, 0.08 if packed else 0.2)
            items.append((c, x, y if side == 0 else -y, yaw if side == 0 else yaw - np.pi))
    return compose(items)


def desks_row(rng, n: int, items: bool = True) -> Group:
    """n desks side by side (touching), each with an office chair pushed toward it."""
    desks = [desk(rng, items) for _ in range(n)]
    g = row(desks, rng)
    parts = [(g, 0.0, 0.0, 0.0)]
    x = -g.width / 2
    for d in desks:
        c = chair(rng, rng.choice(["office chair", "chair"]))
        parts.append((c, x + d.width / 2 + rng.normal(0, 0.1), g.depth / 2 + c.depth / 2 - rng.uniform(-0.05, 0.2),
                      np.pi + rng.normal(0, 0.3)))
        x += d.width
    return compose(parts)


def _pictures(room: Room, n: int) -> None:
    rng = room.rng
    for _ in range(n):
        w, h = rng.uniform(0.3, 1.1), rng.uniform(0.3, 0.8)
        room.add_on_wall("picture", w, h, rng.uniform(1.2, 2.1 - h / 2))


def _openings(room: Room, doors: int, windows: int, curtains: float) -> None:
    for _ in range(doors):
        room.add_door()
    for _ in range(windows):
        room.add_window(curtains)


def furnish(room: Room) -> None:
    """Fill ``room`` according to its kind (one of ROOM_TYPES)."""
    rng, kind = room.rng, room.kind
    r = lambda a, b: int(rng.integers(a, b + 1))  # noqa: E731
    if kind == "bedroom":
        _openings(room, r(1, 2), 0, 0.0)
        beds = [bed(rng) for _ in range(2 if rng.random() < 0.25 else 1)]
        stands = [small_furniture(rng, "nightstand") for _ in range(r(1, 2))]
        # the bed goes in before the windows, which then find a wall it does not block
        if not room.place_against_wall(row([stands[0]] + beds + stands[1:], rng)):
            room.place_against_wall(beds[0]) or room.place_free(beds[0], clearance=0.2)
        _openings(room, 0, r(1, 2), 0.8)
        room.place_against_wall(small_furniture(rng, rng.choice(["wardrobe", "dresser"])))
        room.place_against_wall(row([cabinet(rng, "cabinet") for _ in range(r(1, 2))], rng))
        room.place_against_wall(desks_row(rng, 1)) or room.place_against_wall(desk(rng))
        room.place_against_wall(row([bookshelf(rng) for _ in range(r(1, 2))], rng))
        if rng.random() < 0.6:
            room.place_free(chair(rng, "armchair"))
        for raw in ("trash can", "ottoman", "backpack", "box"):
            if rng.random() < 0.6:
                room.place_free(small_furniture(rng, raw), clearance=0.3)
        _pictures(room, r(2, 5))
    elif kind == "office":
        _openings(room, r(1, 2), r(1, 3), 0.4)
        room.place_against_wall(desks_row(rng, r(2, 3)))
        room.place_against_wall(desks_row(rng, r(1, 2)))
        room.place_against_wall(row([cabinet(rng, "file cabinet", 0.45, 0.6, 0.75) for _ in range(r(2, 4))], rng))
        room.place_against_wall(row([bookshelf(rng, rng.choice(["bookshelf", "bookshelves"])) for _ in range(r(1, 3))], rng))
        if rng.random() < 0.6:
            room.place_free(chairs_at(rng, table(rng, "table", w=rng.uniform(1.2, 1.8)), packed=rng.random() < 0.4))
        if rng.random() < 0.4:
            room.place_against_wall(sofa(rng, rng.choice(["sofa", "couch"]), pillows=r(0, 2)))
        room.add_on_wall("whiteboard", rng.uniform(1.2, 2.0), rng.uniform(0.9, 1.1), 0.9)
        for raw in ("trash can", "trash can", "box", "plant", "box"):
            if rng.random() < 0.6:
                room.place_free(small_furniture(rng, raw), clearance=0.3)
        _pictures(room, r(1, 3))
    elif kind == "living room":
        _openings(room, r(1, 2), 0, 0.0)
        raw = rng.choice(["sofa", "couch"])
        sofas = row([sofa(rng, raw, pillows=r(1, 3)) for _ in range(1 if rng.random() < 0.4 else 2)], rng)
        ct = table(rng, "coffee table")
        if not room.place_against_wall(compose([(sofas, 0.0, 0.0, 0.0),
                                                (ct, 0.0, sofas.depth / 2 + rng.uniform(0.35, 0.5) + ct.depth / 2, 0.0)])):
            room.place_against_wall(sofa(rng, raw, pillows=r(1, 2)))
        _openings(room, 0, r(2, 3), 0.8)
        room.place_against_wall(small_furniture(rng, "tv stand"))
        arm = rng.choice(["armchair", "sofa chair"])
        armchairs = row([chair(rng, arm) for _ in range(r(1, 2))], rng)  # side by side, touching
        room.place_free(armchairs, clearance=0.3)
        room.place_against_wall(row([bookshelf(rng) for _ in range(r(1, 2))], rng))
        room.place_against_wall(row([cabinet(rng) for _ in range(r(1, 2))], rng))
        if rng.random() < 0.5:
            room.place_free(chairs_at(rng, table(rng, "dining table")))
        for raw in ("ottoman", "plant", "trash can"):
            if rng.random() < 0.6:
                room.place_free(small_furniture(rng, raw), clearance=0.3)
        if rng.random() < 0.6:
            room.place_free(Group([lamp(rng, 0.0, 0.0, 0.0, small=False)], 0.5, 0.5, 1.9), clearance=0.2)
        _pictures(room, r(2, 4))
    elif kind == "kitchen":
        _openings(room, r(1, 2), 0, 0.0)
        kr = kitchen_row(rng, r(3, 5), sink=True)
        if not room.place_against_wall(row([kr, refrigerator(rng)], rng)):
            room.place_against_wall(kr)
            room.place_against_wall(refrigerator(rng))
        _openings(room, 0, r(1, 2), 0.4)
        room.place_against_wall(kitchen_row(rng, r(2, 3), sink=rng.random() < 0.3))
        room.place_free(chairs_at(rng, table(rng, rng.choice(["table", "dining table"])),
                                  raw=rng.choice(["chair", "chair", "office chair"]), packed=rng.random() < 0.4))
        for raw in ("trash can", "stool", "stool", "box"):
            if rng.random() < 0.6:
                room.place_free(small_furniture(rng, raw), clearance=0.3)
        room.place_against_wall(row([cabinet(rng) for _ in range(r(1, 2))], rng))
        _pictures(room, r(1, 3))
    elif kind == "bathroom":
        _openings(room, r(1, 2), r(0, 1), 0.5)
        room.place_against_wall(bathtub(rng, curtain=rng.random() < 0.85))
        room.place_against_wall(toilet(rng))
        room.place_against_wall(vanity(rng, sinks=r(1, 2)))
        cabs = [cabinet(rng, rng.choice(["cabinet", "bathroom vanity"]), h=rng.uniform(0.8, 1.9)) for _ in range(r(2, 3))]
        room.place_against_wall(row(cabs, rng)) or room.place_against_wall(cabs[0])
        if rng.random() < 0.5:
            room.place_against_wall(toilet(rng))
        hung_d, hung_h, hung_z = rng.uniform(0.15, 0.3), rng.uniform(0.4, 0.7), rng.uniform(1.3, 1.6)
        wall_cabs = [cabinet(rng, "cabinet", rng.uniform(0.4, 0.7), hung_d, hung_h, z0=hung_z) for _ in range(r(1, 2))]
        room.place_against_wall(row(wall_cabs, rng), hung=True) or room.place_against_wall(wall_cabs[0], hung=True)
        room.add_on_wall("mirror", rng.uniform(0.5, 1.0), rng.uniform(0.6, 0.9), 1.2)
        for _ in range(r(1, 2)):
            room.add_on_wall("towel", rng.uniform(0.3, 0.6), rng.uniform(0.4, 0.7), 0.9)
        for raw in ("trash can", "stool", "box"):
            if rng.random() < 0.7:
                room.place_free(small_furniture(rng, raw), clearance=0.2)
        _pictures(room, r(2, 4))
    elif kind == "conference room":
        _openings(room, r(1, 2), r(2, 3), 0.6)
        t1 = table(rng, "table", w=rng.uniform(1.6, 2.4), d=rng.uniform(0.9, 1.2))
        if rng.random() < 0.5:  # two tables pushed together
            t2 = table(rng, "table", w=t1.width, d=t1.depth, h=0.75)
            t1 = compose([(t1, 0.0, 0.0, 0.0), (t2, t1.width + rng.uniform(0.0, 0.01), 0.0, 0.0)])
        raw, packed = rng.choice(["chair", "office chair"]), rng.random() < 0.5
        if not room.place_free(chairs_at(rng, t1, raw=raw, packed=packed), clearance=0.6):
            room.place_free(chairs_at(rng, table(rng, "table"), raw=raw, packed=packed), clearance=0.5)
        room.add_on_wall("whiteboard", rng.uniform(1.5, 2.4), rng.uniform(0.9, 1.2), 0.9)
        room.place_against_wall(row([cabinet(rng) for _ in range(r(1, 3))], rng))
        room.place_against_wall(small_furniture(rng, "tv stand"))
        for raw in ("trash can", "plant"):
            room.place_free(small_furniture(rng, raw), clearance=0.3)
        _pictures(room, r(1, 3))
    elif kind == "classroom":
        _openings(room, r(1, 2), r(2, 4), 0.3)
        n_rows, per_row = r(2, 3), r(2, 3)
        desks = []
        for _ in range(n_rows):
            g = row([desk(rng, items=False) for _ in range(per_row)], rng)
            desks.append(chairs_at(rng, g, sides=(0,), raw="chair", packed=rng.random() < 0.6))
        cx, cy = room.width / 2, room.depth / 2
        for g in desks:
            room.place_free(g, clearance=0.35, near=(cx, cy))
        room.place_against_wall(desks_row(rng, 1))
        room.add_on_wall("whiteboard", rng.uniform(1.8, 2.6), rng.uniform(1.0, 1.2), 0.9)
        room.place_against_wall(row([bookshelf(rng) for _ in range(r(1, 2))], rng))
        room.place_against_wall(row([cabinet(rng) for _ in range(r(1, 2))], rng))
        room.place_free(small_furniture(rng, "trash can"), clearance=0.3)
        _pictures(room, r(1, 3))
    else:
        raise ValueError(f"unknown room type {kind!r}; expected one of {ROOM_TYPES}")


def make_room(rng: np.random.Generator, kind: str | None = None) -> Room:
    """A furnished room of ``kind`` (random when None)."""
    kind = kind or str(rng.choice(ROOM_TYPES))
    (w0, w1), (d0, d1) = SIZES[kind]
    room = Room(kind, rng.uniform(w0, w1), rng.uniform(d0, d1), rng.uniform(2.5, 3.0), rng)
    furnish(room)
    room.objects = room.shell() + room.objects
    return room
