"""torchvision's Mask R-CNN as the 2D baseline builds it: losses in training, predictions in eval,
RGB and RGB-D, RoIAlign and RoIPool, local weights files, pretrained weights without a download."""
import urllib.error

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from pcseg.baseline2d.model import build_maskrcnn, frame_tensor, load_weights_file  # noqa: E402
from pcseg.baseline2d.roipool import MultiScaleRoIPool  # noqa: E402
from pcseg.errors import ConfigError, DataError  # noqa: E402

LOSSES = {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
SMALL = dict(backbone="resnet18", min_size=96, max_size=128, anchor_sizes=(8, 16, 32, 64, 128),
             rpn_post_nms_top_n_train=100, rpn_pre_nms_top_n_train=100, box_batch_size_per_image=32)


def frame(depth: bool, seed: int = 0):
    """A 96x128 image with two boxes of known class (a chair, a table) and their masks."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    masks = np.zeros((2, 96, 128), np.uint8)
    masks[0, 10:40, 20:50] = 1
    masks[1, 50:90, 60:120] = 1
    image[masks[0] > 0] = (200, 30, 30)
    image[masks[1] > 0] = (30, 200, 30)
    z = np.full((96, 128), 3.0, np.float32)
    z[masks[1] > 0] = 1.5
    target = {"boxes": torch.tensor([[20, 10, 50, 40], [60, 50, 120, 90]], dtype=torch.float32),
              "labels": torch.tensor([2, 4]), "masks": torch.from_numpy(masks)}
    return frame_tensor(image, z if depth else None), target


@pytest.mark.parametrize("depth", [False, True])
@pytest.mark.parametrize("roi_pool", ["align", "pool"])
def test_training_gives_torchvisions_losses_and_eval_gives_masks(depth, roi_pool):
    torch.manual_seed(0)
    model = build_maskrcnn(depth=depth, roi_pool=roi_pool, **SMALL)
    assert model.backbone.body.conv1.in_channels == (4 if depth else 3)
    assert len(model.transform.image_mean) == (4 if depth else 3)
    pooler = type(model.roi_heads.box_roi_pool).__name__
    assert pooler == ("MultiScaleRoIAlign" if roi_pool == "align" else "MultiScaleRoIPool")
    assert model.roi_heads.box_predictor.cls_score.out_features == 19  # background + 18 classes
    image, target = frame(depth)
    model.train()
    losses = model([image, image.flip(-1)], [target, target])
    assert set(losses) == LOSSES
    assert all(torch.isfinite(v) and v >= 0 for v in losses.values())
    sum(losses.values()).backward()
    assert model.backbone.body.conv1.weight.grad.abs().sum() > 0  # gradients reach the (depth) input conv
    model.eval()
    with torch.no_grad():
        (out,) = model([image])
    k = len(out["boxes"])
    assert out["masks"].shape == (k, 1, 96, 128) and out["labels"].shape == (k,) and out["scores"].shape == (k,)
    assert ((out["labels"] >= 1) & (out["labels"] <= 18)).all()


def test_resnet50_is_torchvisions_maskrcnn_resnet50_fpn_and_the_generic_path_builds_the_same_network():
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    ours = build_maskrcnn("resnet50")  # torchvision's builder (random init)
    reference = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=19)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    # the layout a checkpoint of a pretrained run is rebuilt with (frozen BatchNorm, no download)
    rebuilt = build_maskrcnn("resnet50", pretrained="imagenet", fetch=False)
    frozen = {k for k in rebuilt.state_dict() if k.endswith("num_batches_tracked")}
    assert not frozen and type(rebuilt.backbone.body.bn1).__name__ == "FrozenBatchNorm2d"
    assert set(rebuilt.state_dict()) == {k for k in ours.state_dict() if not k.endswith("num_batches_tracked")}


def test_mask_head_width_option():
    model = build_maskrcnn(mask_head_channels=64, **SMALL)
    assert model.roi_heads.mask_head[0][0].out_channels == 64
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 19


def test_weights_file_whole_detector_into_an_rgbd_model_and_an_imagenet_resnet(tmp_path):
    import torchvision

    torch.manual_seed(1)
    rgb = build_maskrcnn(**SMALL)
    path = tmp_path / "detector.pth"
    torch.save(rgb.state_dict(), path)
    torch.manual_seed(2)
    rgbd = build_maskrcnn(depth=True, weights_file=path, **SMALL)
    conv = rgbd.backbone.body.conv1.weight.detach()
    src = rgb.backbone.body.conv1.weight.detach()
    assert torch.equal(conv[:, :3], src)
    assert torch.allclose(conv[:, 3], src.mean(1))
    logits = "roi_heads.mask_predictor.mask_fcn_logits.weight"
    assert torch.equal(rgbd.state_dict()[logits], rgb.state_dict()[logits])
    assert type(rgbd.backbone.body.bn1).__name__ == "FrozenBatchNorm2d"  # loaded statistics stay fixed

    resnet = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(resnet.state_dict(), path)
    model = build_maskrcnn(**SMALL)
    report = load_weights_file(model, path)
    assert "backbone.body.layer4.1.conv2.weight" in report["loaded"] and not report["skipped"]
    assert torch.equal(model.backbone.body.layer4[1].conv2.weight, resnet.layer4[1].conv2.weight)

    bad = tmp_path / "other.pth"
    torch.save({"something.else": torch.zeros(3)}, bad)
    with pytest.raises(DataError, match="other.pth"):
        load_weights_file(build_maskrcnn(**SMALL), bad)
    with pytest.raises(DataError, match="not found"):
        build_maskrcnn(weights_file=tmp_path / "missing.pth", **SMALL)


def test_pretrained_weights_that_cannot_be_fetched_are_a_clear_error(tmp_path, monkeypatch):
    import torchvision.models._api as api

    def offline(*args, **kwargs):  # what torch.hub does here: no network
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(ConfigError, match="resnet18-.*torch hub cache"):
        build_maskrcnn(pretrained="imagenet", **SMALL)
    with pytest.raises(ConfigError, match="resnet50 only"):
        build_maskrcnn(pretrained="coco", **SMALL)


def test_multiscale_roipool_in_align_mode_is_torchvisions_multiscale_roialign():
    from torchvision.ops import MultiScaleRoIAlign

    torch.manual_seed(0)
    names = ["0", "1", "2", "3"]
    feats = {n: torch.randn(2, 8, 64 // 2 ** i, 96 // 2 ** i) for i, n in enumerate(names)}  # strides 4..32
    boxes = [torch.tensor([[3.3, 5.7, 40.2, 30.9], [10.0, 12.5, 250.0, 200.0], [0.4, 0.6, 9.5, 8.2]]),
             torch.tensor([[50.1, 20.2, 300.7, 250.3], [100.5, 80.5, 160.3, 140.9]])]
    shapes = [(256, 384), (256, 384)]
    ours = MultiScaleRoIPool(names, 7, sampling_ratio=2, op="align")(feats, boxes, shapes)
    theirs = MultiScaleRoIAlign(names, 7, sampling_ratio=2)(feats, boxes, shapes)
    assert torch.allclose(ours, theirs, atol=1e-6)  # same FPN level per box, same scales


def test_roipool_quantises_the_box_and_roialign_does_not():
    torch.manual_seed(0)
    names = ["0", "1", "2", "3"]
    feats = {n: torch.randn(1, 4, 64 // 2 ** i, 64 // 2 ** i) for i, n in enumerate(names)}
    shapes = [(256, 256)]
    # a 36 px box maps to level P2 (stride 4): feature coordinates 2.35..11.15 x 3.6..12.4
    box = torch.tensor([[9.4, 14.4, 44.6, 49.6]])
    rounded = (box / 4).round() * 4  # the box RoIPool actually pools: 2,4 .. 11,12 on the grid
    pool = MultiScaleRoIPool(names, 7, op="pool")
    align = MultiScaleRoIPool(names, 7, op="align")
    assert torch.equal(pool(feats, [box], shapes), pool(feats, [rounded], shapes))
    assert not torch.allclose(align(feats, [box], shapes), align(feats, [rounded], shapes), atol=1e-3)
    assert not torch.allclose(pool(feats, [box], shapes), align(feats, [box], shapes), atol=1e-3)
    # a shift that rounds to the same grid cells leaves RoIPool's output unchanged; RoIAlign follows it
    shifted = box + 0.2  # feature coordinates 2.4, 3.65, 11.2, 12.45: still 2, 4, 11, 12
    assert torch.equal(pool(feats, [box], shapes), pool(feats, [shifted], shapes))
    assert not torch.allclose(align(feats, [box], shapes), align(feats, [shifted], shapes), atol=1e-3)


@pytest.mark.cuda
def test_trains_and_predicts_on_cuda():
    torch.manual_seed(0)
    model = build_maskrcnn(depth=True, **SMALL).cuda().train()
    image, target = frame(True)
    target = {k: v.cuda() for k, v in target.items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(2):
        losses = model([image.cuda(), image.flip(-1).cuda()], [target, target])
        assert set(losses) == LOSSES and all(torch.isfinite(v) for v in losses.values())
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        (out,) = model([image.cuda()])
    assert out["masks"].is_cuda and out["masks"].shape[1:] == (1, 96, 128)
