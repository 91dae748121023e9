"""Data for the model: datasets of scenes, augmentations, collate into a Batch, and voxelization
with the inverse map back to points.

    ds = SceneDataset(root, split="train", augment=Augmentation())
    loader = DataLoader(ds, batch_size=4, collate_fn=collate, num_workers=4)
    vox = voxelize(batch.points, batch.offset, voxel_size=0.02)
    feats = voxel_mean(batch.features, vox)          # FloatTensor[V, C]; back to points: out[vox.inverse]
"""
from pcseg.data.augment import Augmentation, elastic_distortion, jitter_colors, rotation_z
from pcseg.data.dataset import (REFERENCE_COLOR, PointCloudFiles, SceneDataset, balance_colors, collate,
                                 feature_channels, input_batch, instance_sizes, semantic_point_counts, training_labels)
from pcseg.data.voxelize import Voxels, voxel_mean, voxelize

__all__ = [
    "Voxels", "voxelize", "voxel_mean",
    "Augmentation", "elastic_distortion", "jitter_colors", "rotation_z",
    "SceneDataset", "PointCloudFiles", "collate", "input_batch", "balance_colors", "REFERENCE_COLOR", "feature_channels",
    "semantic_point_counts",
    "instance_sizes", "training_labels",
]
