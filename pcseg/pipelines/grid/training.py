"""Training the grid pipeline: the point-cloud trainer (``pipelines.scenes.SceneTrainer``) with the
grid segmenter and its prediction for validation."""
from __future__ import annotations

from ..scenes import SceneTrainer
from .build import build_model
from .recipe import ARCHITECTURE_KEYS


class GridTrainer(SceneTrainer):
    """The engine's ``Trainer`` for the grid pipeline."""

    kind = "grid"
    architecture_keys, shown = ARCHITECTURE_KEYS, {"cat": "category", "mask": "mask"}

    def build_model(self, recipe):
        return build_model(recipe)

    def predict_scene(self, model, scene, recipe, device):
        from .predict import predict_scene

        return predict_scene(model, scene, recipe, device)
