"""The HTML report opened in headless Chromium: the page renders with its embedded images.

Needs Debian's ``chromium`` (``make test`` installs it through scripts/setup.sh, PCSEG_TEST_TOOLS=1)."""
import re
import warnings

import numpy as np
import pytest
from PIL import Image
from random_eval_scenes import random_scene

from pcseg.evaluation import InstanceEvaluator
from pcseg.apps.report import SceneRender, find_chromium, screenshot_html, write_report

pytestmark = pytest.mark.skipif(find_chromium() is None,
                                reason="headless Chromium not installed (apt-get install chromium, "
                                       "or `make test`, which installs it)")
MAGENTA = (255, 0, 255)


def colourful(image: np.ndarray) -> np.ndarray:
    """BoolArray[H, W]: saturated pixels (plots and renders; the tables and text are grey)."""
    im = image.astype(np.int16)
    return (im.max(-1) - im.min(-1)) > 80


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chromium")
    rng = np.random.default_rng(5)
    ev = InstanceEvaluator()
    for s in range(3):
        gt, pred = random_scene(rng)
        ev.process(gt, pred, name=f"scene{s:04d}_00")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result, curves, scenes = ev.evaluate(), ev.pr_curves(0.5), ev.scene_results()
    render = np.full((200, 300, 3), MAGENTA, np.uint8)  # a stand-in render, easy to find on screen
    page = write_report(tmp / "report", result, curves, scenes=scenes, renders=[SceneRender("best scene", render)])
    # the same page with every image removed: what the screenshot looks like if images do not load
    bare = tmp / "bare.html"
    bare.write_text(re.sub(r"src='data:image/png;base64,[^']*'", "src=''", page.read_text()))
    with_images = np.asarray(Image.open(screenshot_html(page, tmp / "page.png")).convert("RGB"))
    without = np.asarray(Image.open(screenshot_html(bare, tmp / "bare.png")).convert("RGB"))
    return with_images, without


def test_screenshot_is_the_page_not_a_blank(shots):
    image, _ = shots
    assert image.shape == (2400, 1280, 3)
    dark = (image.max(-1) < 100).mean()  # text and table borders
    assert 0.001 < dark < 0.5 and (image.min(-1) > 240).mean() > 0.3


def test_plots_and_renders_appear_on_screen(shots):
    image, bare = shots
    # the plots (blue/orange/green bars and curves) and the render put colour on the page; without them none
    assert colourful(image).sum() > 20 * colourful(bare).sum() + 5000
    magenta = np.all(np.abs(image.astype(np.int16) - MAGENTA) < 30, axis=-1)
    assert magenta.sum() > 0.8 * 200 * 300  # the render, shown at full size
    rows = np.flatnonzero(magenta.any(1))
    plot_rows = np.flatnonzero(colourful(image)[: rows[0]].any(1))
    # the AP chart (beside the class table) and the PR curves (below it) both show, above the render
    assert plot_rows.size > 100 and np.ptp(plot_rows) > 400
