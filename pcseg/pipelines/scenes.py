"""What the point-cloud pipelines (bottom-up, grid) share: the recipe settings of scene data, sparse
backend, augmentation, fine-tuning and snapping (``SceneSettings``), the parts built from them (the
sparse backend, the augmentation, the datasets, the synthetic rooms, initial weights), validation on
scenes, and ``SceneTrainer``: the engine's Trainer for a model that maps a Batch to named losses.

Data order and augmentation depend only on (seed, epoch, index): ``--resume`` and DDP over several
processes (torchrun; each takes its share of every epoch's batches) reproduce the same run."""
from __future__ import annotations

import functools
import time
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data import REFERENCE_COLOR, Augmentation, SceneDataset, input_batch
from ..engine.checkpoint import check_compatible, load_checkpoint, load_model_state
from ..engine.config import prediction_recipe, require
from ..engine.device import resolve_device
from ..engine.distributed import DistInfo, all_reduce_mean, barrier
from ..engine.loop import epoch_batches, plain_result
from ..engine.settings import TrainingSettings
from ..errors import ConfigError
from ..models import resolve_backend, use_backend
from ..models.narrowing import narrow_unet_state, narrows
from ..runtime import apply_prediction_threads, apply_recipe_threads
from ..structures import Prediction, Scene

SPARSE_BACKENDS = ("auto", "torch", "spconv", "minkowski")
BACKBONE_KEYS = ("voxel_size", "widths", "blocks", "height_feature")  # what the sparse U-Net's weights depend on


@dataclass
class SceneSettings(TrainingSettings):
    """The shared settings (``TrainingSettings``) and those of every pipeline that learns on scenes."""

    # data
    labels_tsv: str | None = None
    cache_dir: str | None = None
    height_feature: bool = False         # add height above the floor as a 4th input channel
    color_reference: list[float] = field(default_factory=lambda: list(REFERENCE_COLOR))
                                         # at prediction, each scene's colours scaled per channel to this mean
                                         # colour (data.balance_colors: a per-scene white balance, real scans
                                         # are darker and warmer; training reads colours as they are and
                                         # casts them at random); [] = colours as read
    # the sparse U-Net backbone
    voxel_size: float = 0.05
    widths: list[int] = field(default_factory=lambda: [32, 64, 96, 128])
    blocks: int = 1
    backend: str = "auto"                # sparse convs: auto (spconv on CUDA, else torch) | torch | spconv | minkowski
    # augmentation
    augment: bool = True
    rotate: bool = True
    flip: bool = True
    scale_min: float = 0.9
    scale_max: float = 1.1
    elastic: bool = True
    color_jitter: bool = True
    color_cast: float = 0.0              # per-scene per-channel colour gains in [1 - this, 1 + this]
    gray_prob: float = 0.0               # probability of training on a scene's grey levels
    color_drop_prob: float = 0.0         # probability of a scene with all colours one grey (geometry only)
    holes: int = 0                       # cut up to this many holes (0.2-0.6 m) per scene, as real scans have
    point_noise: float = 0.0             # per-scene point noise, std uniform in [0, this] metres
    crop_points: int = 0                 # train on the this-many points nearest a random point of each scene
                                         # (a partial scan; bounds a step's memory on big scans); 0 = whole
    # optimisation
    init_weights: str | None = None      # start from this checkpoint's weights (same architecture), e.g. to
                                         # fine-tune the shipped model, or a checkpoint of
                                         # another pipeline: its backbone only; --resume continues a run instead
    lr_anneal: str = "steps"             # poly decay over epochs x steps ("steps"), or over the time budget
                                         # as well, whichever ends first ("budget"; needs max_minutes)
    # prediction
    segment_snap: float = 0.0            # > 0: a mask keeps the scan's segments (segs.json) it covers by at
                                         # least this fraction and loses the rest; 0 = off
    superpoints: bool = True             # a scan without segs.json snaps to superpoints computed for it
                                         # (cluster.superpoints); false: such scans are not snapped
    tile_size: float = 10.0              # pcseg predict cuts a scan wider than this (metres, in x or y) into
                                         # overlapping square blocks of this size (engine.tiling); 0 = never
    tile_overlap: float = 3.0            # metres the blocks overlap: objects up to this size stay whole in one
    # engine
    val_scenes: int = 0                  # validate on the first N scenes; 0 = all

    def __post_init__(self) -> None:
        super().__post_init__()
        need = functools.partial(require, self)
        need(self.voxel_size > 0, "voxel_size", "must be > 0")
        need(len(self.widths) >= 1 and all(w > 0 for w in self.widths), "widths", "needs positive widths")
        need(self.blocks >= 1, "blocks", "must be >= 1")
        need(self.backend in SPARSE_BACKENDS, "backend", f"must be one of {SPARSE_BACKENDS}")
        need(self.lr_anneal in ("steps", "budget"), "lr_anneal", "must be steps or budget")
        need(0 < self.scale_min <= self.scale_max, "scale_min", "needs 0 < scale_min <= scale_max")
        need(0 <= self.color_cast <= 1, "color_cast", "must be in [0, 1]")
        need(len(self.color_reference) in (0, 3) and all(0 < c <= 1 for c in self.color_reference),
             "color_reference", "must be [] (off) or three colour values in (0, 1]")
        need(isinstance(self.holes, int) and not isinstance(self.holes, bool) and self.holes >= 0, "holes",
             "must be an integer >= 0")
        need(0 <= self.point_noise <= 0.1, "point_noise", "must be in [0, 0.1] metres")
        need(isinstance(self.crop_points, int) and not isinstance(self.crop_points, bool) and self.crop_points >= 0,
             "crop_points", "must be an integer >= 0 (0 = whole scenes)")
        need(0 <= self.gray_prob <= 1 and 0 <= self.color_drop_prob <= 1, "gray_prob",
             "gray_prob and color_drop_prob must be in [0, 1]")
        need(0 <= self.segment_snap <= 1, "segment_snap", "must be in [0, 1] (0 = off)")
        need(self.tile_size >= 0, "tile_size", "must be >= 0 metres (0 = never tile)")
        need(0 <= self.tile_overlap and (self.tile_size == 0 or self.tile_overlap < self.tile_size), "tile_overlap",
             "must be >= 0 and smaller than tile_size")


def select_backend(recipe: SceneSettings, device: torch.device) -> str:
    """Make the recipe's sparse-conv backend the process-wide one; a clear error if it cannot run here."""
    try:
        name = resolve_backend(recipe.backend, device)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(f"backend: {e}") from None
    use_backend(recipe.backend)
    return name


def build_augmentation(recipe: SceneSettings) -> Augmentation | None:
    if not recipe.augment:
        return None
    return Augmentation(rotate=recipe.rotate, flip=recipe.flip, scale=recipe.scale_min != recipe.scale_max,
                        scale_range=(recipe.scale_min, recipe.scale_max), elastic=recipe.elastic,
                        color=recipe.color_jitter, color_cast=recipe.color_cast, gray_prob=recipe.gray_prob,
                        color_drop_prob=recipe.color_drop_prob, holes=recipe.holes, point_noise=recipe.point_noise,
                        crop_points=recipe.crop_points or None)


def val_root(recipe: SceneSettings) -> Path:
    return Path(recipe.val_root or recipe.data_root)


def train_dataset(recipe: SceneSettings) -> SceneDataset:
    split = None if recipe.train_split == "all" else recipe.train_split  # "all": every scene under data_root
    return SceneDataset(recipe.data_root, split, labels_tsv=recipe.labels_tsv,
                        cache_dir=recipe.cache_dir, augment=build_augmentation(recipe), seed=recipe.seed)


def val_dataset(recipe: SceneSettings) -> SceneDataset:
    cache = None if recipe.cache_dir is None else Path(recipe.cache_dir) / "val"
    split = None if recipe.val_split == "all" else recipe.val_split  # "all": every scene under val_root
    return SceneDataset(val_root(recipe), split, labels_tsv=recipe.labels_tsv, cache_dir=cache)


def ensure_synthetic_data(recipe: SceneSettings, info: DistInfo, progress: bool = True) -> None:
    """Generate the recipe's synthetic rooms once (rank 0) when asked to and missing."""
    from ..synth import ensure_synthetic_dataset

    wanted = [(Path(recipe.data_root), recipe.synth_scenes, recipe.synth_seed)]
    if recipe.val_root:
        wanted.append((val_root(recipe), recipe.val_synth_scenes, recipe.val_synth_seed))
    if info.is_main:
        for root, scenes, seed in wanted:
            if scenes > 0:
                ensure_synthetic_dataset(root, scenes, seed=seed, progress=progress)
    barrier(info)


def load_initial_weights(path: Path, model: torch.nn.Module, recipe: SceneSettings,
                         architecture_keys: tuple[str, ...], kind: str) -> tuple[bool, bool, list | None]:
    """Load the weights of the checkpoint ``path`` (``init_weights``) into ``model``, a ``kind`` model.
    A checkpoint of the same kind must match the architecture; one of another pipeline gives its sparse
    U-Net only (``backbone.*``: BACKBONE_KEYS must match) and the heads keep their fresh weights. A
    model without the height channel may start a model with it: the first conv's weights for the new
    channel start at zero, so the model computes what it did. A narrower U-Net of the same depth starts
    from another pipeline's wider one: each feature space keeps the channels with the largest batch-norm
    scales (``models.narrowing``). Returns (height channel added, backbone only, the checkpoint's widths
    where they were narrowed, else None)."""
    init = load_checkpoint(path)
    saved = dict(init["config"])
    add_height = recipe.height_feature and not saved.get("height_feature", False)
    if add_height:
        saved["height_feature"] = True
    backbone_only = init.get("kind") != kind
    saved_widths = list(saved.get("widths") or [])
    narrow = backbone_only and saved_widths != list(recipe.widths) and narrows(saved_widths, recipe.widths)
    keys = BACKBONE_KEYS if backbone_only else architecture_keys
    check_compatible(path, saved, recipe.to_dict(), tuple(k for k in keys if not (narrow and k == "widths")))
    state = dict(init["model"])
    if backbone_only:
        state = {**{k: v for k, v in model.state_dict().items() if not k.startswith("backbone.")},
                 **{k: v for k, v in state.items() if k.startswith("backbone.")}}
    if narrow:  # a narrower U-Net keeps the channels the wider one scales most (models.narrowing)
        state = narrow_unet_state(state, saved_widths, recipe.widths, saved.get("blocks", 1), prefix="backbone.")
    if add_height:  # the first conv's input-channel axis (its place depends on the sparse backend) grows by one
        key = "backbone.stem.0.weight"
        old, want = state[key], model.state_dict()[key].shape
        axis = next(i for i, (a, b) in enumerate(zip(old.shape, want)) if a + 1 == b)
        extra = list(old.shape)
        extra[axis] = 1
        state[key] = torch.cat([old, old.new_zeros(extra)], axis)
    load_model_state(path, model, state)
    return add_height, backbone_only, (saved_widths if narrow else None)


def validate(model: torch.nn.Module, recipe: SceneSettings, predict: Callable[[Scene], Prediction],
             progress: bool = False) -> dict:
    """AP / AP50 / AP25 (ScanNet protocol) and semantic mIoU of ``predict`` on the validation split."""
    from ..evaluation import InstanceEvaluator, SemanticEvaluator

    dataset = val_dataset(recipe)
    count = len(dataset) if recipe.val_scenes <= 0 else min(recipe.val_scenes, len(dataset))
    instances, semantic = InstanceEvaluator(), SemanticEvaluator()
    was_training = model.training
    model.eval()
    seconds = 0.0
    # on a terminal only (disable=None): in a log, a bar nested in the training bar leaves escape codes
    for i in tqdm(range(count), desc="validate", unit="scene", disable=(not progress) or None, leave=False):
        scene = dataset.load(i)
        start = time.perf_counter()
        pred = predict(scene)
        seconds += time.perf_counter() - start
        instances.process(scene, pred.instances, name=scene.name)
        semantic.process(scene.semantic, pred.semantic, name=scene.name)
    model.train(was_training)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes absent from a small validation set are expected
        result = instances.evaluate()
        result["mIoU"] = semantic.evaluate()["mIoU"]
    result["seconds_per_scene"] = seconds / max(count, 1)
    return result


class SceneTrainer(ABC):
    """The engine's ``Trainer`` for a point-cloud pipeline whose model maps a Batch to named losses
    (``total`` among them). A unit subclasses it with ``build_model``, ``architecture_keys``,
    ``predict_scene(model, scene, recipe, device)`` and the losses shown on the progress bar."""

    metric, also, distributed = "AP50", ("AP",), True
    architecture_keys: tuple[str, ...] = ()
    kind: str = ""                       # the pipeline's name (its checkpoints' kind)
    shown: dict[str, str] = {}           # progress-bar label -> loss shown beside the total

    @abstractmethod
    def build_model(self, recipe) -> torch.nn.Module:
        """The unit's model for ``recipe``."""

    @abstractmethod
    def predict_scene(self, model, scene: Scene, recipe, device) -> Prediction:
        """The unit's prediction of one scene, as validation scores it."""

    def prepare(self, progress: bool) -> None:
        """After the training set is read, before the first step (e.g. class weights from it)."""

    def __init__(self, recipe: SceneSettings, device: torch.device, info: DistInfo, resume: bool, progress: bool):
        self.recipe, self.device, self.info = recipe, device, info
        apply_recipe_threads(recipe.threads)
        self.backend = select_backend(recipe, device)
        ensure_synthetic_data(recipe, info, progress)
        torch.manual_seed(recipe.seed)
        np.random.seed(recipe.seed)
        model = self.build_model(recipe)
        if recipe.init_weights and not resume:
            added, backbone_only, narrowed = load_initial_weights(Path(recipe.init_weights), model, recipe,
                                                                  self.architecture_keys, self.kind)
            if info.is_main:
                print(f"starting from the {'backbone' if backbone_only else 'weights'} of {recipe.init_weights}"
                      + (" (another pipeline's checkpoint: the heads start fresh)" if backbone_only else "")
                      + (" (the height channel added with zero weights)" if added else "")
                      + (f" (its U-Net narrowed from widths {narrowed} to {list(recipe.widths)}: the channels "
                         "with the largest batch-norm scales)" if narrowed else ""))
        self.model = model.to(device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        self.dataset = train_dataset(recipe)
        self.prepare(progress)
        self.steps_per_epoch = len(epoch_batches(len(self.dataset), recipe.batch_size, recipe.seed, 0, info.rank,
                                                 info.world_size))
        self.anneal_over_budget = recipe.lr_anneal == "budget"
        self.net = torch.nn.parallel.DistributedDataParallel(self.model) if info.enabled else self.model

    def intro(self) -> str:
        ddp = f", DDP over {torch.distributed.get_backend()}" if self.info.enabled else ""
        return f"training on {self.device} ({self.info.world_size} process(es){ddp}), sparse backend {self.backend}"

    def batches(self, epoch: int, first: int):
        recipe, info = self.recipe, self.info
        self.dataset.set_epoch(epoch)
        batches = epoch_batches(len(self.dataset), recipe.batch_size, recipe.seed, epoch, info.rank, info.world_size)
        return DataLoader(self.dataset, batch_sampler=batches[first:], num_workers=recipe.workers,
                          collate_fn=functools.partial(input_batch, recipe=recipe, training=True))

    def forward(self, batch):
        losses = self.net(batch.to(self.device))
        return losses["total"], losses

    def record(self, total, losses, batch, seconds):
        # means over the ranks, so every rank sees the same values (and stops together)
        values = {k: all_reduce_mean(float(v.detach()), self.info) for k, v in losses.items()}
        rate = all_reduce_mean(batch.points.shape[0] / seconds, self.info) * self.info.world_size
        fields = {**values, "points_per_s": rate}
        shown = {"loss": f"{fields['total']:.3f}", **{label: f"{fields[k]:.3f}" for label, k in self.shown.items()}}
        return fields, {**shown, "pts_s": f"{rate:.0f}"}

    def validate(self, progress: bool) -> dict:
        return validate(self.model, self.recipe, lambda s: self.predict_scene(self.model, s, self.recipe, self.device),
                        progress)

    def describe(self, result: dict) -> str:
        return (f"AP {result['AP']:.3f} AP50 {result['AP50']:.3f} AP25 {result['AP25']:.3f} "
                f"mIoU {result['mIoU']:.3f}")

    def plain(self, result: dict) -> dict:
        return plain_result(result)


def load_scene_model(path: Path, device, overrides: Sequence[str], ckpt: dict | None, recipe_cls: type,
                     predict_keys: Sequence[str], build_model: Callable) -> tuple[torch.nn.Module, Any]:
    """A point-cloud checkpoint's model in eval mode and its recipe, the ``predict_keys`` settings
    overridable; ``ckpt``: the checkpoint already read from ``path`` (else it is read here)."""
    if ckpt is None:
        ckpt = load_checkpoint(path, map_location=resolve_device(device))
    recipe, given = prediction_recipe(recipe_cls, dict(ckpt["config"]), overrides, predict_keys, f"{path} config")
    apply_prediction_threads(recipe.threads, "threads" in given)
    select_backend(recipe, torch.device(device))
    model = build_model(recipe)
    load_model_state(path, model, ckpt["model"])
    return model.to(device).eval(), recipe


class ScenePredictor(ABC):
    """The engine's ``Predictor`` for a point-cloud checkpoint: scene folders and plain point clouds
    alike; an empty scene skips the network. A unit gives ``load``, ``run`` (the network's part),
    ``group`` (the rest) and ``predict_scene`` (its whole prediction, used for empty scenes)."""

    def __init__(self, ckpt: dict, path: Path, device: str, overrides: Sequence[str] = ()):
        self.device, self.train_seconds = device, ckpt.get("train_seconds")
        self.model, self.recipe = self.load(path, device, overrides, ckpt)
        self.segment_snap, self.min_size = self.recipe.segment_snap, self.recipe.min_size
        self.superpoints = self.recipe.superpoints
        self.tile_size, self.tile_overlap = self.recipe.tile_size, self.recipe.tile_overlap

    @abstractmethod
    def load(self, path: Path, device: str, overrides: Sequence[str], ckpt: dict) -> tuple[torch.nn.Module, Any]:
        """(model, recipe) of the checkpoint."""

    @abstractmethod
    def run(self, scene: Scene) -> Any:
        """The network's outputs for a non-empty scene."""

    @abstractmethod
    def group(self, output: Any) -> Prediction:
        """The network's outputs -> Prediction (before snapping)."""

    @abstractmethod
    def predict_scene(self, model, scene: Scene, recipe, device) -> Prediction:
        """The whole prediction of one scene."""

    def check(self, sources: Sequence[Path]) -> None:
        """Scene folders and plain point clouds alike."""

    def network(self, scene: Scene, source: Path) -> Any:
        return self.run(scene) if len(scene) else None

    def finish(self, scene: Scene, output: Any) -> Prediction:
        if output is None:
            return self.predict_scene(self.model, scene, self.recipe, self.device)  # the empty prediction
        return self.group(output)
