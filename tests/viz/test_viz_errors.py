"""The errors view: planted false positives, missed, merged and split instances get their colours."""
import numpy as np
import pytest

from pcseg.labels import INSTANCE_IDS
from pcseg.structures import InstanceSet
from pcseg.synth import generate_scene
from pcseg.viz import ERROR_LEGEND, colorize, error_colors, render_image

FP = np.array(ERROR_LEGEND["false positive"], np.float32)


@pytest.fixture(scope="module")
def scene():
    return generate_scene(3, "scene0003_00").scene


@pytest.fixture(scope="module")
def gt(scene):
    """The scene's benchmark GT instances of >= 100 points, as a perfect prediction."""
    inst = scene.instance_set()
    keep = np.isin(inst.labels, INSTANCE_IDS) & (inst.sizes() >= 100)
    assert keep.sum() >= 10
    return inst[keep]


def _with(pred: InstanceSet, masks, labels) -> InstanceSet:
    masks = np.asarray(masks, bool).reshape(-1, pred.num_points)
    return InstanceSet(np.vstack([pred.masks, masks]), np.r_[pred.labels, labels], np.ones(len(pred) + len(masks)))


def _is(colors, name):
    return np.all(colors == np.array(ERROR_LEGEND[name], np.float32), axis=1)


def test_perfect_prediction_is_all_matched(scene, gt):
    colors, summary = error_colors(scene, gt)
    assert summary["matched"] == summary["gt"] == len(gt) == summary["pred_matched"]
    assert summary["missed"] == summary["false_positive"] == summary["merged"] == summary["split"] == 0
    assert _is(colors, "matched").sum() == gt.masks.any(0).sum()


def test_planted_false_positive_on_the_wall(scene, gt):
    wall = scene.semantic == 1
    pred = _with(gt, wall, 5)  # a "chair" made of wall points
    colors, summary = error_colors(scene, pred)
    assert summary["false_positive"] == 1 and summary["matched"] == len(gt)
    assert _is(colors, "false positive")[wall].all()
    assert not _is(colors, "false positive")[~wall].any()
    np.testing.assert_array_equal(colorize(scene, "errors", pred), colors)
    # and the rendered pixels: the FP colour shows up, where the perfect prediction has none
    size = (160, 120)

    def fp_count(image):  # within 1/255: interpolated colours round either way
        return np.all(np.abs(image.astype(int) - np.round(FP * 255)) <= 1, -1).sum()

    fp_pixels = fp_count(render_image(scene, colors, size, lit=False))
    none = fp_count(render_image(scene, error_colors(scene, gt)[0], size, lit=False))
    assert none == 0 and fp_pixels > 0.03 * size[0] * size[1]


def test_planted_missed_instance(scene, gt):
    dropped = int(np.argmax(gt.sizes()))
    pred = gt[np.arange(len(gt)) != dropped]
    colors, summary = error_colors(scene, pred)
    assert summary["missed"] == 1 and summary["matched"] == len(gt) - 1 and summary["false_positive"] == 0
    assert _is(colors, "missed")[gt.masks[dropped]].all()
    assert _is(colors, "missed").sum() == gt.masks[dropped].sum()


def test_merged_and_split_instances(scene, gt):
    a, b, c = np.argsort(gt.sizes())[-3:]
    merged = gt.masks[a] | gt.masks[b]
    idx = np.flatnonzero(gt.masks[c])
    x = scene.points[idx, 0]
    # thirds: no part reaches IoU 0.5 (a half would be a match), each covers > 30% of the GT
    part = np.digitize(x, np.percentile(x, [100 / 3, 200 / 3]))
    thirds = np.zeros((3, len(scene)), bool)
    thirds[part, idx] = True
    rest = gt[[k for k in range(len(gt)) if k not in (a, b, c)]]
    pred = _with(_with(rest, merged, gt.labels[b]), thirds, [gt.labels[c]] * 3)
    colors, summary = error_colors(scene, pred)
    assert summary["merged"] == 1 and summary["merged_gt"] == 2
    assert summary["split"] == 1 and summary["pred_split"] == 3
    assert summary["missed"] == summary["false_positive"] == 0
    assert _is(colors, "merged")[merged].all() and _is(colors, "split")[gt.masks[c]].all()


def test_errors_need_labels_and_matching_sizes(scene, gt):
    with pytest.raises(ValueError, match="covers? .* points|prediction masks"):
        error_colors(scene[np.arange(100)], gt)
    with pytest.raises(ValueError, match="needs predicted instances"):
        colorize(scene, "errors")
