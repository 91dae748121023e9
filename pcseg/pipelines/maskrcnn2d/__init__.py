"""The 2D baseline: torchvision's Mask R-CNN on a scan's RGB-D frames, its masks lifted onto the scan
and fused across views. Imports torchvision only when it trains or predicts."""
from ...engine.pipeline import Pipeline, lazy
from .recipe import ARCHITECTURE_KEYS_2D, PREDICT_KEYS_2D, MaskRCNNRecipe

PIPELINE = Pipeline("maskrcnn2d", MaskRCNNRecipe, ARCHITECTURE_KEYS_2D, PREDICT_KEYS_2D,
                    trainer=lazy("pcseg.pipelines.maskrcnn2d.training:MaskRCNNTrainer"),
                    predictor=lazy("pcseg.pipelines.maskrcnn2d.predict:MaskRCNNPredictor"),
                    prepare=lazy("pcseg.pipelines.maskrcnn2d.training:require_torchvision"))
