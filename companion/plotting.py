"""Figures shared by several chapters."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from . import _validate

__all__ = ["plot_decision_regions"]


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
