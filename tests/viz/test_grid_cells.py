"""The grid head's picture: per grid, every cell's class probabilities, drawn from above beside the instances."""
import numpy as np
import torch

from pcseg.engine.config import load_config
from pcseg.pipelines.grid.build import build_model
from pcseg.pipelines.grid.recipe import GridRecipe
from pcseg.structures import InstanceSet, Scene
from pcseg.viz.grid_cells import draw_grid_cells, grid_cells


def test_cells_of_each_grid_and_a_picture(tmp_path):
    recipe = load_config(GridRecipe, None, ["voxel_size=0.1", "widths=[8,16]", "grids=[4,8]"])
    torch.manual_seed(0)
    model = build_model(recipe)
    rng = np.random.default_rng(0)
    points = (rng.random((3000, 3)) * [4.0, 3.0, 2.0]).astype(np.float32)
    scene = Scene(points, rng.random((3000, 3)).astype(np.float32), name="room")
    cells = grid_cells(model, scene, recipe)
    assert [c["size"] for c in cells] == [4, 8]
    for c in cells:
        assert c["probs"].shape == (c["size"], c["size"], 18) and ((c["probs"] >= 0) & (c["probs"] <= 1)).all()
        np.testing.assert_allclose(c["lo"], points[:, :2].min(0), atol=0.1)  # the grid covers the room
        np.testing.assert_allclose(c["cell"] * c["size"], np.ptp(points[:, :2], 0), atol=0.2)
    masks = np.zeros((2, 3000), bool)
    masks[0, :100], masks[1, 100:300] = True, True
    png = draw_grid_cells(scene, cells, InstanceSet(masks, np.array([5, 7]), np.ones(2, np.float32)), tmp_path / "grid.png", 0.4)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
