"""Data for the model: voxelization with the inverse map back to points."""
from pcseg.data.voxelize import Voxels, voxel_mean, voxelize

__all__ = ["Voxels", "voxelize", "voxel_mean"]
