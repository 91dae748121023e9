"""Training the bottom-up pipeline: the point-cloud trainer (``pipelines.scenes.SceneTrainer``) with
this model, its class weights and its prediction for validation."""
from __future__ import annotations

from ..scenes import SceneTrainer
from .build import build_model, class_weights
from .recipe import ARCHITECTURE_KEYS


class BottomUpTrainer(SceneTrainer):
    """The engine's ``Trainer`` for the bottom-up pipeline."""

    kind = "bottomup"
    architecture_keys, shown = ARCHITECTURE_KEYS, {"sem": "semantic"}

    def build_model(self, recipe):
        return build_model(recipe)

    def predict_scene(self, model, scene, recipe, device):
        from .predict import predict_scene

        return predict_scene(model, scene, recipe, device)

    def prepare(self, progress: bool) -> None:
        weights = class_weights(self.recipe, self.dataset)
        if weights is not None:
            self.model.set_class_weights(weights)
            if self.info.is_main and progress:
                from ...labels import SEMANTIC20_NAMES

                print("class weights: " + ", ".join(f"{n} {w:.2f}" for n, w in zip(SEMANTIC20_NAMES, weights.tolist())))
