"""Looking at scenes: per-point colour modes, headless PNG rendering, legends, the errors view,
RGB-D frames with masks, and Open3D's interactive window.

    colors.py   colorize (rgb | semantic | instance | embedding | errors), instance colours, PCA
    errors.py   error_colors: missed / false-positive / merged / split instances, ERROR_LEGEND
    render.py   ray-cast (meshes) and splatted (point clouds) headless renders, camera presets
    legend.py   legends and titles drawn onto images
    frames.py   instance masks overlaid on RGB-D frames, frame grids
    window.py   the interactive window (SceneViewer: keys, camera, legend), the display check

Open3D is imported lazily, so importing pcseg.viz costs nothing until something is drawn.
pcseg.viz never imports models, sparse or engine.
"""
from .colors import COLOR_MODES, colorize, embedding_colors, instance_colors, pca_components, semantic_colors
from .errors import ERROR_LEGEND, error_colors, match_instances
from .frames import frame_grid, frame_overlay, mask_outlines
from .legend import draw_legend, legend_for, semantic_legend, titled
from .render import VIEWS, camera_for, camera_rays, front_faces, render_image, save_png, side_by_side, to_open3d
from .window import SceneViewer, ViewerItem, display_available, side_by_side_geometries

__all__ = [
    "COLOR_MODES", "ERROR_LEGEND", "VIEWS", "camera_for", "camera_rays", "colorize", "display_available",
    "draw_legend", "embedding_colors", "error_colors", "frame_grid", "frame_overlay", "front_faces",
    "instance_colors", "legend_for", "mask_outlines", "match_instances", "pca_components", "render_image",
    "SceneViewer", "ViewerItem", "save_png", "semantic_colors", "semantic_legend", "side_by_side", "side_by_side_geometries",
    "titled", "to_open3d",
]
