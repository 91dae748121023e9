"""The 2D Mask R-CNN recipe (``pipeline: maskrcnn2d`` in a YAML recipe): every setting of a
training run of the 2D baseline and of its lifting into 3D, validated, in one flat dataclass."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from ...engine.config import require
from ...engine.settings import TrainingSettings

BACKBONES = ("resnet18", "resnet34", "resnet50")
ROI_POOLS = ("align", "pool")
PRETRAINED = ("none", "imagenet", "coco")
OPTIMIZERS = ("sgd", "adamw")
# settings that define the network: a checkpoint only loads into a model built with the same values
ARCHITECTURE_KEYS_2D = ("backbone", "depth", "roi_pool", "anchor_sizes", "mask_head_channels")
# the keys a prediction may override (`pcseg predict ... key=value`): the rest were fixed by training
PREDICT_KEYS_2D = ("mask_threshold", "fuse_score_thresh", "fuse_min_frames", "predict_step", "box_score_thresh",
                   "detections_per_img", "rpn_post_nms_test", "threads")


@dataclass
class MaskRCNNRecipe(TrainingSettings):
    """The 2D pipeline's recipe: the shared settings (``TrainingSettings``, with other defaults where
    Mask R-CNN needs them) and these."""

    # data: RGB-D frames in scans/<id>/<frames_dir>/ (pcseg data synth --frames N, or ScanNet exports)
    data_root: str = "out/data/synth2d_train"
    synth_frames: int = 10               # RGB-D frames per generated room
    val_synth_frames: int = 20           # more views per validation room: lifting into 3D needs them
    frames_dir: str = "frames"
    frame_step: int = 1                  # every N-th frame (real scans: thousands of near-duplicates)
    min_area: int = 20                   # instances of fewer pixels (at frame resolution) are no targets
    # model (torchvision Mask R-CNN)
    backbone: str = "resnet50"           # resnet50 (torchvision's maskrcnn_resnet50_fpn) | resnet34 | resnet18
    depth: bool = False                  # depth (metres) as a 4th input channel
    roi_pool: str = "align"              # align (RoIAlign) | pool (quantised RoIPool): the ablation
    pretrained: str = "none"             # none | imagenet (backbone) | coco (resnet50 detector), torchvision weights
    weights_file: str | None = None      # a local state dict (whole detector or ImageNet ResNet)
    trainable_layers: int = 3            # backbone stages trained when pretrained (from scratch: all 5)
    min_size: int = 800                  # torchvision's transform resizes the shorter side to this ...
    max_size: int = 1333                 # ... keeping the longer side at most this
    anchor_sizes: list[int] = field(default_factory=lambda: [32, 64, 128, 256, 512])  # one per FPN level
    rpn_post_nms_train: int = 2000       # proposals kept per image in training
    rpn_post_nms_test: int = 1000
    box_batch_size: int = 512            # RoIs sampled per image for the box/mask heads
    mask_head_channels: int = 256        # width of the mask head's 4 convs (torchvision: 256; CPU recipes 128)
    box_score_thresh: float = 0.05       # detections below this score are dropped
    detections_per_img: int = 100
    # augmentation
    flip: bool = True
    color_jitter: bool = True
    # optimisation
    epochs: int = 12
    optimizer: str = "sgd"               # sgd (momentum 0.9) | adamw
    lr: float = 0.02
    warmup_steps: int = 500              # linear warm-up from lr/1000 (Mask R-CNN diverges without it)
    # prediction: masks -> 3D (pcseg predict with a 2D checkpoint)
    mask_threshold: float = 0.5          # mask probability -> pixel in the mask
    fuse_score_thresh: float = 0.3       # detections below this score are not lifted
    fuse_min_frames: int = 1             # fused 3D instances detected in fewer frames are dropped
    predict_step: int = 1                # lift every N-th valid frame of a scene
    # engine
    out_dir: str = "runs/maskrcnn2d"
    val_every: int = 1                   # epochs between validations; 0 = only at the end
    val_frames: int = 0                  # validate on the first N frames; 0 = all

    def __post_init__(self) -> None:
        super().__post_init__()
        need = functools.partial(require, self)

        need(self.backbone in BACKBONES, "backbone", f"must be one of {BACKBONES}")
        need(self.roi_pool in ROI_POOLS, "roi_pool", f"must be one of {ROI_POOLS}")
        need(self.pretrained in PRETRAINED, "pretrained", f"must be one of {PRETRAINED}")
        need(self.pretrained != "coco" or self.backbone == "resnet50", "pretrained",
             "torchvision's COCO Mask R-CNN weights exist for backbone resnet50 only")
        need(self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {OPTIMIZERS}")
        need(0 <= self.trainable_layers <= 5, "trainable_layers", "must be in 0..5")
        need(32 <= self.min_size <= self.max_size, "min_size", "needs 32 <= min_size <= max_size")
        need(len(self.anchor_sizes) == 5 and all(s > 0 for s in self.anchor_sizes), "anchor_sizes",
             "needs 5 positive sizes (one per FPN level P2-P6)")
        need(self.frame_step >= 1 and self.predict_step >= 1, "frame_step", "frame_step and predict_step must be >= 1")
        need(self.synth_frames >= 1 and self.val_synth_frames >= 1, "synth_frames",
             "synth_frames and val_synth_frames must be >= 1")
        need(self.min_area >= 1, "min_area", "must be >= 1")
        need(self.rpn_post_nms_train >= 1 and self.rpn_post_nms_test >= 1, "rpn_post_nms_train", "must be >= 1")
        need(self.mask_head_channels >= 1, "mask_head_channels", "must be >= 1")
        need(self.box_batch_size >= 1 and self.detections_per_img >= 1, "box_batch_size",
             "box_batch_size and detections_per_img must be >= 1")
        need(0 <= self.box_score_thresh < 1, "box_score_thresh", "must be in [0, 1)")
        need(0 < self.mask_threshold < 1, "mask_threshold", "must be in (0, 1)")
        need(0 <= self.fuse_score_thresh < 1, "fuse_score_thresh", "must be in [0, 1)")
        need(self.fuse_min_frames >= 1, "fuse_min_frames", "must be >= 1")
        need(self.val_frames >= 0, "val_frames", "must be >= 0")

    def architecture(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ARCHITECTURE_KEYS_2D}

    def model_options(self) -> dict[str, Any]:
        """Keyword arguments of ``pcseg.baseline2d.model.build_maskrcnn``."""
        return dict(backbone=self.backbone, depth=self.depth, roi_pool=self.roi_pool, pretrained=self.pretrained,
                    weights_file=self.weights_file, trainable_layers=self.trainable_layers,
                    min_size=self.min_size, max_size=self.max_size, anchor_sizes=tuple(self.anchor_sizes),
                    mask_head_channels=self.mask_head_channels,
                    rpn_post_nms_top_n_train=self.rpn_post_nms_train, rpn_post_nms_top_n_test=self.rpn_post_nms_test,
                    rpn_pre_nms_top_n_train=self.rpn_post_nms_train, rpn_pre_nms_top_n_test=self.rpn_post_nms_test,
                    box_batch_size_per_image=self.box_batch_size, box_score_thresh=self.box_score_thresh,
                    box_detections_per_img=self.detections_per_img)
