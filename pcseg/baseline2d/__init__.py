"""The two-stage 2D baseline's data side: RGB-D frame dataset with detection targets, COCO export,
lifting 2D masks onto a scene's vertices and fusing them across views into an InstanceSet.

Mask R-CNN itself (torchvision) is imported only where it is used; nothing here needs torch.
"""
from .align import on_depth_grid
from .checks import FrameSkipped, depth_agreement, pose_problem
from .dataset import FrameDataset, FrameSample
from .fusion import FusionConfig, LiftedMask, fuse
from .lift import lift_masks
from .oracle import gt_predictions, oracle_predictions
from .pipeline import check_frame, lift_and_fuse
from .project import Projection, project_points, visible_vertices
from .targets import (CATEGORY_NAMES, NUM_CLASSES, FrameTargets, contiguous_to_nyu40, frame_targets,
                      masks_to_boxes, nyu40_to_contiguous)

__all__ = ["CATEGORY_NAMES", "NUM_CLASSES", "FrameDataset", "FrameSample", "FrameSkipped", "FrameTargets",
           "FusionConfig", "LiftedMask", "Projection", "check_frame", "contiguous_to_nyu40", "depth_agreement",
           "frame_targets", "fuse",
           "gt_predictions", "lift_and_fuse", "lift_masks", "masks_to_boxes", "nyu40_to_contiguous",
           "on_depth_grid", "oracle_predictions", "pose_problem", "project_points", "visible_vertices"]
