"""torchvision's Mask R-CNN for the 18 benchmark classes, used as is (not reimplemented), with the
options the 2D baseline needs:

* backbone: ResNet-50-FPN (torchvision's ``maskrcnn_resnet50_fpn``, the default) or a lighter
  ResNet-18/34-FPN for CPU recipes (``resnet_fpn_backbone`` + ``MaskRCNN``);
* depth as a 4th input channel (first conv widened, the transform normalises depth too);
* RoIAlign (torchvision's ``MultiScaleRoIAlign``, default) or a quantised RoIPool
  (``roipool.MultiScaleRoIPool``: the same FPN level assignment, ``torchvision.ops.roi_pool`` per
  level) for the box and mask heads: the ablation of Mask R-CNN's key idea;
* pretrained weights when the user has them (torchvision's ``weights=`` enums, found in the torch
  hub cache or downloaded, or a local file), random init otherwise (training from scratch: plain
  BatchNorm instead of torchvision's frozen one, every layer trainable).

torchvision is imported inside the functions: importing pcseg never needs it.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, DataError
from .targets import NUM_CLASSES

BACKBONES = ("resnet18", "resnet34", "resnet50")
ROI_POOLS = ("align", "pool")
PRETRAINED = ("none", "imagenet", "coco")
RGB_MEAN, RGB_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # ImageNet's, as torchvision's default
# depth in metres is normalised with these (synthetic frames: mean 2.7 m, std 0.9 m over valid pixels)
DEPTH_MEAN, DEPTH_STD = 2.5, 1.0


def _pooler(kind: str, output_size: int):
    from torchvision.ops import MultiScaleRoIAlign

    from .roipool import MultiScaleRoIPool

    names = ["0", "1", "2", "3"]  # the FPN levels P2-P5 (the "pool" level feeds only the RPN)
    if kind == "align":
        return MultiScaleRoIAlign(names, output_size, sampling_ratio=2)
    return MultiScaleRoIPool(names, output_size, op="pool")


def require_torchvision() -> None:
    """A ConfigError saying how to install it unless a torchvision that matches torch imports."""
    try:
        import torchvision  # noqa: F401
    except (ImportError, RuntimeError) as e:  # RuntimeError: a torchvision built for another torch
        first = (str(e).strip().splitlines() or [""])[0]
        raise ConfigError("the 2D Mask R-CNN baseline needs torchvision matching the installed torch: "
                          "in the project folder `.venv/bin/pip install -e '.[2d]'` (or `make test`, which "
                          f"installs it) lets pip choose the pair ({type(e).__name__}: {first})") from None


def _weights_enum(backbone: str, pretrained: str):
    from torchvision.models import ResNet18_Weights, ResNet34_Weights, ResNet50_Weights
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

    if pretrained == "coco":
        if backbone != "resnet50":
            raise ConfigError(f"pretrained: torchvision has COCO Mask R-CNN weights for resnet50 only, "
                              f"not {backbone!r} (use pretrained=imagenet or weights_file)")
        return MaskRCNN_ResNet50_FPN_Weights.COCO_V1
    return {"resnet18": ResNet18_Weights, "resnet34": ResNet34_Weights,
            "resnet50": ResNet50_Weights}[backbone].IMAGENET1K_V1


def build_maskrcnn(backbone: str = "resnet50", depth: bool = False, roi_pool: str = "align",
                   pretrained: str = "none", weights_file: str | os.PathLike | None = None,
                   trainable_layers: int = 3, min_size: int = 800, max_size: int = 1333,
                   anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512), mask_head_channels: int = 256,
                   fetch: bool = True, **kwargs) -> nn.Module:
    """torchvision ``MaskRCNN`` with ``NUM_CLASSES + 1`` classes (background + 18).

    Input: list of FloatTensor[C, H, W], C = 3 (RGB 0..1) or 4 (+ depth in metres); see
    ``frame_tensor``. Training: ``model(images, targets)`` -> {loss_classifier, loss_box_reg,
    loss_mask, loss_objectness, loss_rpn_box_reg}; eval: ``model(images)`` -> per image
    {boxes FloatTensor[K, 4] XYXY, labels Int64Tensor[K] 1..18, scores FloatTensor[K],
    masks FloatTensor[K, 1, H, W] 0..1}.

    pretrained:       "none" (random init), "imagenet" (backbone) or "coco" (whole detector,
                      resnet50; its 91-class predictors are replaced by 19-class ones), through
                      torchvision's weights enums (the torch hub cache, else a download)
    weights_file:     a local state dict: a whole Mask R-CNN (e.g. torchvision's COCO .pth) or a
                      classification ResNet (ImageNet .pth); tensors whose shape differs are skipped
    trainable_layers: backbone stages trained when pretrained (0-5); from scratch all are
    mask_head_channels: width of the mask head's four 3x3 convs (torchvision: 256); on a CPU the
                      mask head dominates a training step, and 128 makes it ~4x cheaper
    fetch:            False: build the architecture ``pretrained``/``weights_file`` imply (frozen
                      BatchNorm) without loading them, for weights that come from a pcseg checkpoint
    kwargs:           passed to torchvision's MaskRCNN (rpn_post_nms_top_n_train, box_batch_size_per_image, ...)
    """
    require_torchvision()
    from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor
    from torchvision.ops import misc as misc_ops

    if backbone not in BACKBONES:
        raise ConfigError(f"backbone: must be one of {BACKBONES}, got {backbone!r}")
    if roi_pool not in ROI_POOLS:
        raise ConfigError(f"roi_pool: must be one of {ROI_POOLS}, got {roi_pool!r}")
    if pretrained not in PRETRAINED:
        raise ConfigError(f"pretrained: must be one of {PRETRAINED}, got {pretrained!r}")
    if len(anchor_sizes) != 5:
        raise ConfigError(f"anchor_sizes: one size per FPN level (5), got {list(anchor_sizes)}")
    trained = pretrained != "none" or weights_file is not None
    anchors = AnchorGenerator(tuple((int(s),) for s in anchor_sizes), ((0.5, 1.0, 2.0),) * 5)
    options = dict(min_size=min_size, max_size=max_size, image_mean=RGB_MEAN + [DEPTH_MEAN] * depth,
                   image_std=RGB_STD + [DEPTH_STD] * depth, rpn_anchor_generator=anchors,
                   box_roi_pool=_pooler(roi_pool, 7), mask_roi_pool=_pooler(roi_pool, 14), **kwargs)
    weights = _weights_enum(backbone, pretrained) if pretrained != "none" and fetch else None
    layers = trainable_layers if trained else 5  # from scratch every stage learns
    try:
        if backbone == "resnet50" and (not trained or weights is not None):
            coco = pretrained == "coco"
            # torchvision's builder: FrozenBatchNorm with pretrained weights, BatchNorm from scratch
            model = maskrcnn_resnet50_fpn(weights=weights if coco else None,
                                          num_classes=91 if coco else NUM_CLASSES + 1,
                                          weights_backbone=None if coco else weights,
                                          trainable_backbone_layers=layers if weights is not None else None,
                                          **options)
            if coco:  # the COCO heads predict 91 classes: new 19-class predictors on the same features
                box_in = model.roi_heads.box_predictor.cls_score.in_features
                model.roi_heads.box_predictor = FastRCNNPredictor(box_in, NUM_CLASSES + 1)
                model.roi_heads.mask_predictor = MaskRCNNPredictor(256, 256, NUM_CLASSES + 1)
        else:
            # the same construction as torchvision's builder, with any ResNet: pretrained (or
            # file-loaded) statistics stay frozen; from scratch, frozen identity statistics would
            # mean no normalisation at all
            norm = misc_ops.FrozenBatchNorm2d if trained else nn.BatchNorm2d
            body = resnet_fpn_backbone(backbone_name=backbone, weights=weights, norm_layer=norm,
                                       trainable_layers=layers)
            model = MaskRCNN(body, num_classes=NUM_CLASSES + 1, **options)
    except (OSError, RuntimeError) as e:  # offline: URLError is an OSError
        if weights is None:
            raise
        raise ConfigError(f"pretrained: {pretrained!r} weights ({weights.url.rsplit('/', 1)[-1]}) are neither in the "
                          f"torch hub cache ({torch.hub.get_dir()}/checkpoints) nor downloadable here ({e}); "
                          "put the file there, or pass it as weights_file, or use pretrained=none") from None
    if mask_head_channels != 256:
        from torchvision.models.detection.mask_rcnn import MaskRCNNHeads

        c = mask_head_channels
        model.roi_heads.mask_head = MaskRCNNHeads(model.backbone.out_channels, (c, c, c, c), 1)
        model.roi_heads.mask_predictor = MaskRCNNPredictor(c, c, NUM_CLASSES + 1)
    if depth:
        _widen_first_conv(model)
    if weights_file is not None and fetch:
        load_weights_file(model, weights_file)
    return model


def _widen_first_conv(model: nn.Module) -> None:
    """RGB conv1 [64, 3, 7, 7] -> RGB-D [64, 4, 7, 7]; the depth filter starts as the mean of the RGB
    filters (pretrained filters keep their meaning on RGB, depth starts as a grey image would).
    The widened conv always trains, even in a frozen pretrained stem: its depth filter must learn."""
    conv = model.backbone.body.conv1
    wide = nn.Conv2d(4, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=False)
    with torch.no_grad():
        wide.weight[:, :3] = conv.weight
        wide.weight[:, 3:] = conv.weight.mean(1, keepdim=True)
    model.backbone.body.conv1 = wide


def load_weights_file(model: nn.Module, path: str | os.PathLike) -> dict[str, list[str]]:
    """Load a local state dict into ``model`` (a built Mask R-CNN): a whole detector (keys
    ``backbone.body.*``, ``rpn.*``, ``roi_heads.*``) or a classification ResNet (``conv1.weight``,
    ``layer1.*``: loaded into the backbone). A 3-channel conv1 goes into an RGB-D model's first
    three channels (its depth channel is their mean). Tensors of another shape (e.g. COCO's
    91-class predictors) are skipped with a warning. Returns {"loaded": [...], "skipped": [...]}."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds of errors for foreign files
        raise DataError(path, None, f"not a readable torch state dict ({type(e).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):  # a pcseg checkpoint
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(path, None, "expected a state dict (parameter name -> tensor)")
    if "conv1.weight" in state and not any(k.startswith("backbone.") for k in state):
        state = {f"backbone.body.{k}": v for k, v in state.items() if not k.startswith("fc.")}
    own = model.state_dict()
    conv1 = "backbone.body.conv1.weight"
    if conv1 in state and conv1 in own and state[conv1].shape[1] == 3 and own[conv1].shape[1] == 4:
        rgb = state[conv1]
        state = {**state, conv1: torch.cat([rgb, rgb.mean(1, keepdim=True)], 1)}
    loaded = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    # BatchNorm's step counter has no place in a frozen BatchNorm: not worth a warning
    skipped = sorted(k for k in set(state) - set(loaded) if not k.endswith("num_batches_tracked"))
    if not loaded:
        raise DataError(path, None, "no tensor of the file fits this Mask R-CNN (names or shapes differ); "
                        f"e.g. {sorted(state)[:3]}")
    if skipped:
        warnings.warn(f"{path}: {len(skipped)} tensor(s) do not fit this model and keep their initial "
                      f"values: {skipped[:6]}{' ...' if len(skipped) > 6 else ''}", stacklevel=2)
    model.load_state_dict(loaded, strict=False)
    return {"loaded": sorted(loaded), "skipped": skipped}


def frame_tensor(image, depth=None) -> torch.Tensor:
    """The network input of one frame: FloatTensor[3, H, W] RGB in 0..1, or [4, H, W] with depth
    (metres, 0 = invalid) as the 4th channel.

    image: UInt8Array[H, W, 3]; depth: FloatArray[H, W] metres or None
    """
    # torch.tensor copies: frames read from files may be read-only arrays
    rgb = torch.tensor(np.asarray(image, np.uint8)).permute(2, 0, 1).float().div_(255.0)
    if depth is None:
        return rgb
    return torch.cat([rgb, torch.tensor(np.asarray(depth, np.float32))[None]], 0)
