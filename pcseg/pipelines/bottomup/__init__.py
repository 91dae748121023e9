"""The bottom-up pipeline: a sparse U-Net predicts per-point classes, embeddings and centre offsets;
clustering them per class gives the instances."""
from ...engine.pipeline import Pipeline, lazy
from .recipe import ARCHITECTURE_KEYS, PREDICT_KEYS, BottomUpRecipe

PIPELINE = Pipeline("bottomup", BottomUpRecipe, ARCHITECTURE_KEYS, PREDICT_KEYS,
                    trainer=lazy("pcseg.pipelines.bottomup.training:BottomUpTrainer"),
                    predictor=lazy("pcseg.pipelines.bottomup.predict:BottomUpPredictor"), distributed=True)
