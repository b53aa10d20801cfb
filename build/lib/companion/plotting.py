"""Figures shared by several chapters."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from . import _validate

__all__ = ["plot_decision_regions", "plot_image_grid"]


def plot_decision_regions(predict, X, y, ax=None, resolution: int = 200, padding: float = 0.5):
    r"""Colour the plane by the class a model predicts, and scatter the data on top.

    The model is evaluated on a ``resolution`` × ``resolution`` grid covering the data plus
    ``padding`` on every side; a boundary between colours is the model's decision boundary.

    Parameters
    ----------
    predict : callable
        Maps an array of shape (m, 2) to m integer class labels (e.g. ``model.predict``).
    X : array_like of shape (n_samples, 2)
    y : array_like of int, shape (n_samples,)
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made when omitted.
    resolution : int, default 200
    padding : float, default 0.5

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    TypeError
        If ``predict`` is not callable.
    ValueError
        If ``X`` does not have exactly two columns.
    """
    if not callable(predict):
        raise TypeError(f"predict must be callable; got {type(predict).__name__}")
    X = _validate.matrix(X, "X", n_columns=2)
    y = np.asarray(y)
    resolution = _validate.positive_int(resolution, "resolution")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4))
    lo, hi = X.min(axis=0) - padding, X.max(axis=0) + padding
    g0, g1 = np.meshgrid(
        np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution)
    )
    regions = np.asarray(predict(np.column_stack([g0.ravel(), g1.ravel()]))).reshape(g0.shape)
    classes = np.unique(np.concatenate([np.unique(y), np.unique(regions)]))
    cmap = plt.get_cmap("coolwarm" if len(classes) <= 2 else "viridis")
    norm = plt.Normalize(classes.min(), classes.max())
    levels = np.append(classes - 0.5, classes.max() + 0.5)
    ax.contourf(g0, g1, regions, levels=levels, cmap=cmap, norm=norm, alpha=0.3)
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap=cmap, norm=norm, s=14, edgecolors="k", linewidths=0.3)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    return ax


def plot_image_grid(images, ncols: int = 8, ax=None, value_range=(-1.0, 1.0), pad: int = 1):
    """Tile a batch of single-channel images into one picture.

    Parameters
    ----------
    images : torch.Tensor or ndarray of shape (n, 1, h, w) or (n, h, w)
    ncols : int, default 8
        Images per row; rows are added as needed.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made when omitted.
    value_range : tuple of two floats, default (-1, 1)
        The values shown as black and white (a GAN's tanh output lies in [-1, 1]).
    pad : int, default 1
        Pixels of background between images.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If ``images`` is not a batch of single-channel images.
    """
    arr = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images, dtype=float)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3 or len(arr) == 0:
        raise ValueError(f"images must have shape (n, 1, h, w) or (n, h, w); got {arr.shape}")
    ncols = _validate.positive_int(ncols, "ncols")
    n, h, w = arr.shape
    nrows = -(-n // ncols)
    canvas = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad), value_range[0])
    for k, img in enumerate(arr):
        r, c = divmod(k, ncols)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) :][:, :w] = img
    if ax is None:
        _, ax = plt.subplots(figsize=(ncols * 0.6, nrows * 0.6))
    ax.imshow(canvas, cmap="gray", vmin=value_range[0], vmax=value_range[1])
    ax.set_xticks([])
    ax.set_yticks([])
    return ax
