"""Open3D's interactive window, with a check that a display really exists.

Open3D 0.20 does not fail when there is no X server: GLFW reports an error and the visualizer
silently falls back to an invisible EGL context, so ``run()`` would wait on a window nobody can
see or close. ``display_available`` therefore connects to the X server (or finds the Wayland
socket) before any window is opened, and callers fall back to a PNG when it says no.
"""
from __future__ import annotations

import os
import socket
from typing import Sequence

import numpy as np

from ..structures import Scene


def display_available(timeout: float = 1.0) -> bool:
    """True when ``$DISPLAY`` names an X server that accepts connections, or ``$WAYLAND_DISPLAY``
    names an existing socket."""
    wayland = os.environ.get("WAYLAND_DISPLAY")
    if wayland:
        path = wayland if os.path.isabs(wayland) else os.path.join(os.environ.get("XDG_RUNTIME_DIR", ""), wayland)
        if os.path.exists(path):
            return True
    display = os.environ.get("DISPLAY", "")
    if ":" not in display:
        return False
    host, _, rest = display.rpartition(":")
    try:
        number = int(rest.split(".")[0])
    except ValueError:
        return False
    try:
        if host in ("", "unix") or host.startswith("/"):
            path = host if host.startswith("/") else f"/tmp/.X11-unix/X{number}"
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                try:
                    s.connect(path)
                except OSError:
                    s.connect("\0" + path)  # Linux abstract socket, as Xorg also listens there
            return True
        with socket.create_connection((host, 6000 + number), timeout=timeout):
            return True
    except OSError:
        return False


def side_by_side_geometries(scene: Scene, colors: Sequence[np.ndarray], gap: float = 0.15) -> list:
    """Open3D geometries of ``scene``, one copy per colour array (FloatArray[N, 3]), translated along
    x so the copies stand next to each other (GT | prediction | ...) in one view."""
    from .render import to_open3d

    width = float(np.ptp(scene.points[:, 0])) if len(scene) else 0.0
    geoms = []
    for i, c in enumerate(colors):
        geom = to_open3d(scene, c)
        geom.translate((i * width * (1 + gap), 0.0, 0.0))
        geoms.append(geom)
    return geoms


def show_window(geometries: list, title: str = "pcseg", width: int = 1280, height: int = 960) -> bool:
    """Open Open3D's interactive window on ``geometries`` and wait until it is closed.

    Returns False, without raising, when no window could be opened (no display, no X server,
    Open3D missing its system libraries or failing to create the window): the caller then
    renders a PNG instead."""
    if not display_available():
        return False
    try:
        import open3d as o3d

        vis = o3d.visualization.Visualizer()
        if not vis.create_window(window_name=title, width=width, height=height):
            return False
        try:
            for g in geometries:
                vis.add_geometry(g)
            vis.run()
        finally:
            vis.destroy_window()
    except (ImportError, OSError, RuntimeError):
        return False
    return True
