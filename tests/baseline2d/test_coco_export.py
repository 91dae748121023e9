"""COCO export: pycocotools loads it, the RLE masks decode to the dataset's masks, and COCOeval of
the ground truth against itself gives mask and box AP 1.0."""
import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pcseg.baseline2d import FrameDataset
from pcseg.cli import main


# pycocotools decode (its Cython code, not ours) trips a NumPy 2 DeprecationWarning per mask
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_export_coco_round_trip(frames_root, tmp_path):
    out = tmp_path / "coco.json"
    assert main(["-q", "data", "export-coco", str(frames_root), "--out", str(out)]) == 0
    ds = FrameDataset(frames_root)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(out))
    assert len(coco.getImgIds()) == len(ds)
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())][:3] == ["cabinet", "bed", "chair"]
    total = 0
    for item in range(len(ds)):
        sample = ds[item]
        img = coco.loadImgs(item + 1)[0]
        assert (img["scene"], img["frame"], img["height"], img["width"]) == (sample.scene, sample.index, 480, 640)
        assert (frames_root / img["file_name"]).is_file()
        anns = coco.loadAnns(coco.getAnnIds(imgIds=item + 1))
        t = sample.targets
        assert [a["category_id"] for a in anns] == t.labels.tolist()
        for a, m, box in zip(anns, t.masks, t.boxes):
            assert np.array_equal(coco.annToMask(a), m)
            x1, y1, x2, y2 = box
            assert a["bbox"] == [x1, y1, x2 - x1, y2 - y1] and a["area"] == m.sum()
        total += len(anns)
    assert total == len(coco.getAnnIds()) > 20

    # the ground truth as detections, every one with score 1: AP must be exactly 1
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": a["segmentation"],
             "bbox": a["bbox"], "score": 1.0} for a in coco.loadAnns(coco.getAnnIds())]
    for kind in ("segm", "bbox"):
        with contextlib.redirect_stdout(io.StringIO()):
            ev = COCOeval(coco, coco.loadRes(dets), kind)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        assert ev.stats[0] == 1.0 and ev.stats[1] == 1.0, (kind, ev.stats[:2])
    # and a wrong mask per image lowers mask AP
    broken = [dict(d) for d in dets]
    for d in broken[::2]:
        m = mask_utils.decode(d["segmentation"])
        m = np.roll(m, m.shape[1] // 2, axis=1)
        rle = mask_utils.encode(np.asfortranarray(m))
        d["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco, coco.loadRes(broken), "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] < 0.8
    json.loads(out.read_text())  # plain JSON (RLE counts as strings)
