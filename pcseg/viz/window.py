"""Open3D's interactive window: one or more scenes, their colour modes on keys, the camera of the
headless pictures, and a check that a display really exists.

Open3D 0.20 does not fail when there is no X server: GLFW reports an error and the visualizer
silently falls back to an invisible EGL context, so ``run()`` would wait on a window nobody can
see or close. ``display_available`` therefore connects to the X server (or finds the Wayland
socket) before any window is opened, and callers fall back to a PNG when it says no.
"""
from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from ..structures import Scene

if TYPE_CHECKING:
    from .view import PredictionFiles


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


def panel_offsets(scene: Scene, count: int, view: str = "oblique", gap: float = 0.15) -> np.ndarray:
    """FloatArray[count, 3]: where each copy of ``scene`` stands when panels are shown side by side
    (GT | prediction | ...): in a row along the ``view`` camera's horizontal axis, so each copy is
    seen as the headless picture shows it, ``gap`` x the room's width apart."""
    from .render import camera_basis, camera_for

    if count <= 1 or not len(scene):
        return np.zeros((count, 3))
    _, right, _ = camera_basis(*camera_for(scene.points, view))
    width = float(np.ptp(scene.points @ right))
    return np.arange(count)[:, None] * width * (1 + gap) * right[None, :]


def side_by_side_geometries(scene: Scene, colors: Sequence[np.ndarray], view: str = "oblique",
                            gap: float = 0.15) -> list:
    """Open3D geometries of ``scene``, one copy per colour array (FloatArray[N, 3]), placed in a row
    by ``panel_offsets`` (GT | prediction | ...) for one view."""
    from .render import to_open3d

    geoms = []
    for c, offset in zip(colors, panel_offsets(scene, len(colors), view, gap)):
        geom = to_open3d(scene, c)
        geom.translate(tuple(offset))
        geoms.append(geom)
    return geoms


def pinhole_parameters(points: np.ndarray, size: tuple[int, int], view: str = "fitted", fov_deg: float = 50.0):
    """Open3D PinholeCameraParameters of the headless pictures' camera (``render.camera_for``) for
    a window of ``size`` (width, height): the window opens on the same framing as the PNGs."""
    import open3d as o3d

    from .render import camera_basis, camera_for

    width, height = size
    center, eye, up = camera_for(points, view, size, fov_deg)
    forward, right, true_up = camera_basis(center, eye, up)
    rotation = np.stack([right, -true_up, forward])  # Open3D's camera: x right, y down, z forward
    extrinsic = np.eye(4)
    extrinsic[:3, :3] = rotation
    extrinsic[:3, 3] = -rotation @ eye
    focal = height / 2 / np.tan(np.radians(fov_deg) / 2)
    params = o3d.camera.PinholeCameraParameters()
    params.intrinsic = o3d.camera.PinholeCameraIntrinsic(width, height, focal, focal, width / 2 - 0.5, height / 2 - 0.5)
    params.extrinsic = extrinsic
    return params


KEYS = (("N", "next scene"), ("P", "previous scene"), ("C", "next colour mode"), ("Q / Esc", "quit"))
MODE_MEANING = {
    "rgb": "the scan's own colours",
    "instance": "one colour per instance; light grey: in no instance (walls and floor are no instances)",
    "embedding": "the embeddings' first three principal components as RGB: close colours, close embeddings",
}


def colour_swatch(rgb: Sequence[float], tty: bool) -> str:
    """Two coloured blocks in a 24-bit colour terminal, else the colour as hex."""
    r, g, b = (int(round(255 * float(v))) for v in rgb)
    return f"\x1b[48;2;{r};{g};{b}m  \x1b[0m" if tty else f"#{r:02x}{g:02x}{b:02x}"


def describe_colours(scene: Scene, mode: str, shown: list[np.ndarray] | None = None, tty: bool = False) -> str:
    """One line saying what the colours of ``mode`` mean (the legend of the headless pictures)."""
    from .legend import legend_for

    entries = legend_for(scene, mode, shown)
    if mode in MODE_MEANING or not entries:
        return MODE_MEANING.get(mode, mode)
    return ", ".join(f"{colour_swatch(c, tty)} {name}" for name, c in entries)


@dataclass
class ViewerItem:
    """One scene of the viewer, with what a prediction folder says about it (or None)."""

    scene: Scene
    pred: PredictionFiles | None = None


class SceneViewer:
    """Open3D's key-callback window over ``count`` scenes, ``load(i)`` giving the i-th: N / P next /
    previous scene, C the next colour mode the scene has data for, Q or Esc quit.

    It opens on the headless pictures' camera (``view``), prints the key help and what the colours
    mean, and one line per change. ``timings`` records (event, seconds): the first frame from
    ``run()``'s start, and each key press until its frame was drawn (benchmarks/bench_viewer.py)."""

    def __init__(self, load: Callable[[int], ViewerItem], count: int, mode: str = "instance",
                 side_by_side: bool = False, view: str = "fitted", size: tuple[int, int] = (1280, 960),
                 title: str = "pcseg viewer", out=None):
        if count < 1:
            raise ValueError("SceneViewer: no scenes to show")
        self.load, self.count, self.mode, self.side_by_side = load, count, mode, side_by_side
        self.view, self.size, self.title = view, size, title
        self.out = out or sys.stdout
        self.index, self.item = 0, None
        self.timings: list[tuple[str, float]] = []
        self._pressed: tuple[str, float] | None = None

    # what is shown ----------------------------------------------------------------------------
    def modes(self) -> list[str]:
        """The colour modes the current scene has data for, in COLOR_MODES order."""
        from .colors import COLOR_MODES

        scene, pred = self.item.scene, self.item.pred
        has_pred = pred is not None and pred.instances is not None
        available = {
            "rgb": scene.colors is not None,
            "semantic": scene.semantic is not None or (pred is not None and pred.semantic is not None),
            "instance": scene.instance is not None or has_pred,
            "embedding": pred is not None and pred.embeddings is not None,
            "errors": has_pred and scene.instance is not None,
        }
        if self.side_by_side:  # GT (or, without labels, RGB) beside the prediction
            available["instance"] = scene.instance is not None or has_pred
        return [m for m in COLOR_MODES if available[m]]

    def panels(self) -> list[tuple[str, np.ndarray]]:
        from .view import scene_panels

        return scene_panels(self.item.scene, self.mode, self.item.pred, side_by_side=self.side_by_side)

    def _load(self, index: int) -> None:
        self.index = index % self.count
        self.item = self.load(self.index)
        modes = self.modes()
        if not modes:
            raise ValueError(f"{self.item.scene.name}: nothing to colour the scene by")
        if self.mode not in modes:
            self.mode = "instance" if "instance" in modes else modes[0]

    def _geometries(self) -> list:
        return side_by_side_geometries(self.item.scene, [colors for _, colors in self.panels()], self.view)

    def status(self) -> str:
        from .view import semantic_shown

        scene = self.item.scene
        shown = semantic_shown(scene, self.item.pred, self.side_by_side) if self.mode == "semantic" else None
        tty = hasattr(self.out, "isatty") and self.out.isatty()
        which = f" ({self.index + 1}/{self.count})" if self.count > 1 else ""
        panels = " | ".join(t for t, _ in self.panels())
        return (f"{scene.name}{which} [{self.mode}] {panels}: {describe_colours(scene, self.mode, shown, tty)}")

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # the window ------------------------------------------------------------------------------
    def _show(self, vis, reset_camera: bool) -> None:
        vis.clear_geometries()
        for g in self._geometries():
            vis.add_geometry(g, reset_bounding_box=reset_camera)
        if reset_camera:
            self._set_camera(vis)
        self._print(self.status())

    def _set_camera(self, vis) -> None:
        control = vis.get_view_control()
        current = control.convert_to_pinhole_camera_parameters()  # the window's real size
        size = (current.intrinsic.width, current.intrinsic.height)
        scene, count = self.item.scene, len(self.panels())
        if count == 1:
            params = pinhole_parameters(scene.points, size, self.view)
        else:  # the row of copies, seen from the view's direction, fitted to the window, from far away
            # through a narrow lens (10 degrees to either side): every copy is seen from nearly the same angle
            points = np.concatenate([scene.points + o for o in panel_offsets(scene, count, self.view)])
            fov = float(np.degrees(2 * np.arctan(np.tan(np.radians(10)) * size[1] / size[0])))
            params = pinhole_parameters(points, size, "top" if self.view == "top" else "fitted", fov_deg=fov)
        if not control.convert_from_pinhole_camera_parameters(params, allow_arbitrary=True):
            self._print("(the window kept Open3D's own camera: it refused the pictures' camera)")

    def _on_key(self, name: str, action: Callable[[], bool]):
        def callback(vis):
            self._pressed = (name, time.perf_counter())
            reset = action()
            self._show(vis, reset_camera=reset)
            vis.register_animation_callback(self._frame_drawn)
            return False
        return callback

    def _frame_drawn(self, vis) -> bool:
        # Open3D calls this after drawing the frame the key press asked for
        if self._pressed is not None:
            name, start = self._pressed
            self.timings.append((f"key {name}: {self.item.scene.name}", time.perf_counter() - start))
            self._pressed = None
        vis.register_animation_callback(None)
        return False

    def _next_scene(self, delta: int) -> bool:
        if self.count == 1:
            self._print("(one scene only: N and P have nothing to go to)")
            return False
        self._load(self.index + delta)
        return True

    def _next_mode(self) -> bool:
        modes = self.modes()
        self.mode = modes[(modes.index(self.mode) + 1) % len(modes)] if self.mode in modes else modes[0]
        return False

    def run(self) -> bool:
        """Open the window and wait until it is closed. False, without raising, when no window
        could be opened (no display, Open3D missing its system libraries): the caller then renders
        a PNG instead."""
        if not display_available():
            return False
        start = time.perf_counter()
        try:
            import open3d as o3d

            vis = o3d.visualization.VisualizerWithKeyCallback()
            if not vis.create_window(window_name=self.title, width=self.size[0], height=self.size[1]):
                return False
        except (ImportError, OSError, RuntimeError):
            return False
        try:
            if self.item is None:
                self._load(self.index)
            # the keys first: one pressed while the first frame is drawn is not lost to Open3D's own
            vis.register_key_callback(ord("N"), self._on_key("N", lambda: self._next_scene(1)))
            vis.register_key_callback(ord("P"), self._on_key("P", lambda: self._next_scene(-1)))
            vis.register_key_callback(ord("C"), self._on_key("C", self._next_mode))
            vis.register_key_callback(ord("Q"), lambda v: v.close() or False)
            self._show(vis, reset_camera=True)
            vis.poll_events()
            vis.update_renderer()
            self.timings.append((f"first frame: {self.item.scene.name}", time.perf_counter() - start))
            # printed once the first frame is on screen (what the tests and the benchmark wait for)
            self._print("keys: " + ", ".join(f"{k} {what}" for k, what in KEYS)
                        + "; mouse: drag to turn, wheel to zoom, shift + drag to roll; H lists Open3D's own keys")
            vis.run()
        finally:
            vis.destroy_window()
        return True
