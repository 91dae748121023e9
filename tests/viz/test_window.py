"""The Open3D window for real: the public commands open it on a private virtual X display, keys are
pressed as a person presses them, and screenshots are checked as a person would look at them."""
import numpy as np
import pytest

from pcseg.io.official import write_instance_predictions
from pcseg.io.scannet import list_scenes, read_scannet_scene
from pcseg.labels import INSTANCE_IDS
from pcseg.structures import InstanceSet
from pcseg.synth import write_synthetic_dataset
from pcseg.viz import colorize, render_image

from xdisplay import VirtualDisplay, Window, missing_tools

SIZE = ["--width", "480", "--height", "360"]
BACKGROUND = 255


@pytest.fixture(scope="module")
def display():
    missing = missing_tools()
    if missing:
        pytest.skip(f"no virtual X display: apt-get install {' '.join(missing)} (make test installs them)")
    server = VirtualDisplay()
    yield server
    server.close()


@pytest.fixture(scope="module")
def rooms(tmp_path_factory):
    root = tmp_path_factory.mktemp("window")
    write_synthetic_dataset(root / "synth", 2, seed=9, frames=0, workers=1, progress=False)
    folders = list_scenes(root / "synth")
    for folder in folders:  # the GT's benchmark instances as a prediction: the same colours as the GT's
        scene = read_scannet_scene(folder)
        gt = scene.instance_set()
        keep = np.isin(gt.labels, INSTANCE_IDS)
        write_instance_predictions(root / "pred", scene.name, InstanceSet(gt.masks[keep], gt.labels[keep], gt.scores[keep]))
    return root, folders


def drawn(image: np.ndarray) -> np.ndarray:
    """BoolArray[H, W]: pixels that are not the white background."""
    return (image < BACKGROUND - 3).any(-1)


def changed_share(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the pixels whose colour differs clearly between two screenshots."""
    return float((np.abs(a.astype(int) - b).sum(-1) > 30).mean())


def palette_share(image: np.ndarray, palette: np.ndarray) -> float:
    """Share of the drawn pixels whose colour is one of ``palette`` (FloatArray[K, 3] in 0..1)
    lit by Open3D's shading: a brightness factor 0.4-1.2 times the colour, within 8%."""
    pixels = image[drawn(image)].astype(np.float32) / 255
    explained = np.zeros(len(pixels), bool)
    for colour in palette:
        scale = pixels @ colour / float(colour @ colour)
        residual = np.linalg.norm(pixels - scale[:, None] * colour, axis=1)
        explained |= (residual < 0.08) & (scale > 0.4) & (scale < 1.2)
    return float(explained.mean())


def saturated_colours(colors: np.ndarray) -> np.ndarray:
    """The distinct strongly coloured entries of per-point colours (FloatArray[N, 3])."""
    unique = np.unique(np.round(colors, 3), axis=0)
    return unique[np.ptp(unique, axis=1) > 0.3]


def test_viz_window_shows_the_scene_in_the_pictures_framing_and_cycles_colours(display, rooms, tmp_path):
    _, folders = rooms
    scene = read_scannet_scene(folders[0])
    with Window(display, ["-m", "pcseg", "viz", str(folders[0]), *SIZE], f"pcseg viz: {scene.name}",
                str(tmp_path)) as window:
        assert "N next scene" in window.wait_for_line("keys:") and "C next colour mode" in window.output
        assert "one colour per instance" in window.wait_for_line(f"{scene.name} [instance]")
        first = window.settled_screenshot()
        assert first.shape == (360, 480, 3)
        assert drawn(first).mean() > 0.2 and len(np.unique(first.reshape(-1, 3), axis=0)) > 100
        # the same framing as the headless picture of the same view
        picture = render_image(scene, colorize(scene, "instance"), size=(480, 360), view="oblique")
        overlap = (drawn(first) & drawn(picture)).sum() / (drawn(first) | drawn(picture)).sum()
        assert overlap > 0.8
        instance_palette = saturated_colours(colorize(scene, "instance"))
        in_instance_mode = palette_share(first, instance_palette)
        assert in_instance_mode > 0.10  # the objects in their instance colours (walls, floor grey)

        line = window.press("c")  # instance -> rgb (the modes a scene without prediction has: rgb, semantic, instance)
        assert "the scan's own colours" in window.wait_for_line(f"{scene.name} [rgb]", after=line)
        rgb = window.settled_screenshot(different_from=first)
        assert changed_share(rgb, first) > 0.1
        assert palette_share(rgb, instance_palette) < in_instance_mode / 2

        line = window.press("c")  # -> semantic: the legend names the classes in the terminal
        legend = window.wait_for_line(f"{scene.name} [semantic]", after=line)
        assert "wall" in legend and "floor" in legend and "#" in legend
        semantic = window.settled_screenshot(different_from=rgb)
        assert palette_share(semantic, saturated_colours(colorize(scene, "semantic"))) > 0.3

        window.press("n")  # one scene: nothing to go to, said so
        window.wait_for_line("one scene only")
        assert window.quit("q") == 0


def test_show_scenes_goes_through_the_dataset_and_quits(display, rooms, tmp_path):
    root, folders = rooms
    names = [read_scannet_scene(f).name for f in folders]
    with Window(display, ["viz/show_scenes.py", str(root / "synth"), "--pred", str(root / "pred")],
                "pcseg scenes", str(tmp_path)) as window:
        window.wait_for_line(f"{names[0]} (1/2) [instance] instances (prediction)")
        window.wait_for_line("keys:")
        first = window.settled_screenshot()
        line = window.press("n")
        window.wait_for_line(f"{names[1]} (2/2) [instance]", after=line)
        second = window.settled_screenshot(different_from=first)
        assert changed_share(second, first) > 0.1
        line = window.press("c")  # instance -> errors (a prediction but no embeddings): all matched
        assert "matched" in window.wait_for_line(f"{names[1]} (2/2) [errors]", after=line)
        line = window.press("p")
        window.wait_for_line(f"{names[0]} (1/2) [errors]", after=line)
        assert window.quit("Escape") == 0


def test_side_by_side_window_shows_two_panels(display, rooms, tmp_path):
    root, folders = rooms
    scene = read_scannet_scene(folders[0])
    with Window(display, ["-m", "pcseg", "viz", str(folders[0]), "--pred", str(root / "pred"),
                          "--side-by-side", *SIZE], "pcseg viz", str(tmp_path)) as window:
        window.wait_for_line("ground truth (instances) | prediction (instances)")
        window.wait_for_line("keys:")
        shot = window.settled_screenshot()
        columns = drawn(shot).any(0)
        # two rooms in a row: two runs of drawn columns with an empty gap between them
        starts = np.flatnonzero(np.diff(np.r_[0, columns.astype(int)]) == 1)
        assert len(starts) == 2, f"expected two separate panels, drawn columns start at {starts}"
        assert palette_share(shot, saturated_colours(colorize(scene, "instance"))) > 0.10
        assert window.quit("q") == 0


def test_window_camera_projects_points_where_the_headless_rays_go():
    # no display needed: the pinhole parameters handed to Open3D against render.camera_rays
    from pcseg.viz.render import camera_for, camera_rays
    from pcseg.viz.window import pinhole_parameters

    rng = np.random.default_rng(0)
    points = rng.uniform([0, 0, 0], [6, 5, 2.6], (2000, 3))
    size = (320, 240)
    params = pinhole_parameters(points, size, "oblique")
    center, eye, up = camera_for(points, "oblique", size)
    rays = camera_rays(center, eye, up, size)
    k, extrinsic = params.intrinsic.intrinsic_matrix, params.extrinsic
    for row, col in [(0, 0), (120, 160), (239, 319), (30, 250)]:
        point = eye + 4.0 * rays[row, col, 3:]  # a point on the ray through that pixel's centre
        cam = extrinsic[:3, :3] @ point + extrinsic[:3, 3]
        u, v = (k @ cam)[:2] / cam[2]
        assert cam[2] > 0 and abs(u - col) < 1e-3 and abs(v - row) < 1e-3
