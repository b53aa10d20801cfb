import matplotlib
import numpy as np
import pytest
import torch

from companion.plotting import plot_decision_regions, plot_image_grid

matplotlib.use("Agg")


def test_image_grid_tiles_images_in_rows():
    images = torch.linspace(-1, 1, 10 * 4 * 3).reshape(10, 1, 4, 3)
    ax = plot_image_grid(images, ncols=4, pad=1)
    canvas = ax.get_images()[0].get_array()
    assert canvas.shape == (3 * 5 + 1, 4 * 4 + 1)  # 3 rows of 4 columns
    np.testing.assert_allclose(canvas[1:5, 1:4], images[0, 0].numpy())
    np.testing.assert_allclose(canvas[6:10, 5:8], images[5, 0].numpy())
    with pytest.raises(ValueError, match="images must have shape"):
        plot_image_grid(torch.zeros(2, 3, 4, 4))


def test_decision_regions_colour_the_predicted_classes():
    X = np.array([[0.0, 0.0], [1.0, 1.0]])
    ax = plot_decision_regions(lambda P: (P[:, 0] > 0.5).astype(int), X, [0, 1], resolution=20)
    assert ax.get_xlabel() == "$x_1$"
    with pytest.raises(ValueError, match="X must have 2 features"):
        plot_decision_regions(lambda P: P, np.zeros((3, 3)), [0, 1, 0])
    with pytest.raises(TypeError, match="predict must be callable"):
        plot_decision_regions(None, X, [0, 1])
