"""The grid pipeline: a SOLO-style one-stage head on the sparse backbone; grid cells that hold an
object's centre predict its class and a mask over the scene (no clustering, no proposals)."""
from ...engine.pipeline import Pipeline, lazy
from .recipe import ARCHITECTURE_KEYS, PREDICT_KEYS, GridRecipe

PIPELINE = Pipeline("grid", GridRecipe, ARCHITECTURE_KEYS, PREDICT_KEYS,
                    trainer=lazy("pcseg.pipelines.grid.training:GridTrainer"),
                    predictor=lazy("pcseg.pipelines.grid.predict:GridPredictor"), distributed=True)
