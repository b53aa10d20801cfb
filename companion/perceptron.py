r"""Rosenblatt's perceptron and its learning rule (chapter 1)."""

from __future__ import annotations

import numpy as np

from . import _validate
from .activations import heaviside

__all__ = ["Perceptron"]


class Perceptron:
    r"""A single neuron with a step activation, trained by the perceptron learning rule.

    The model is :math:`\hat y = H(\mathbf w \cdot \mathbf x + b)` with the Heaviside step
    :math:`H`. For each training example in turn, the rule

    .. math::

        \mathbf w \leftarrow \mathbf w + \eta\,(y - \hat y)\,\mathbf x, \qquad
        b \leftarrow b + \eta\,(y - \hat y)

    changes nothing when the prediction is right and moves the boundary towards the example when
    it is wrong. If the classes are linearly separable the rule stops making mistakes after a
    finite number of updates (Novikoff's theorem); if they are not, as for XOR, it never does.

    Parameters
    ----------
    lr : float, default 1.0
        The learning rate :math:`\eta`. Starting from zero weights it only scales
        :math:`(\mathbf w, b)`, so the predictions do not depend on it.
    max_epochs : int, default 100
        Passes over the data before giving up.
    shuffle : bool, default True
        Visit the examples in a new random order every epoch.
    seed : int, default 0
        Seed of the shuffling order.

    Attributes
    ----------
    weights_ : ndarray of shape (n_features,)
    bias_ : float
    history : dict of list
        ``{"errors": [...]}``: the number of mistakes (updates) in each epoch of the last
        :meth:`fit`, the dict that :meth:`fit` returned.
    converged_ : bool
        True if an epoch passed without a single mistake.
    """

    def __init__(self, lr: float = 1.0, max_epochs: int = 100, shuffle: bool = True, seed: int = 0):
        self.lr = _validate.positive_float(lr, "lr")
        self.max_epochs = _validate.positive_int(max_epochs, "max_epochs")
        self.shuffle = bool(shuffle)
        self.seed = _validate.nonnegative_int(seed, "seed")

    def fit(self, X, y) -> dict:
        """Run the perceptron learning rule until an epoch has no mistakes or ``max_epochs``.

        Like every ``fit`` in ``companion``, it returns the training history, a dict of
        per-epoch lists, and also keeps it as :attr:`history`. Each call starts again from zero
        weights.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Finite real features.
        y : array_like of shape (n_samples,)
            Binary labels, 0 or 1 (booleans are accepted).

        Returns
        -------
        dict of list
            ``{"errors": [...]}``, the number of mistakes in each epoch; the last entry is 0
            exactly when the rule converged. The same dict is stored as :attr:`history`.

        Raises
        ------
        ValueError
            If ``X`` is not a finite 2-D array, ``y`` has a different length than ``X``, or ``y``
            holds a label other than 0 and 1.
        """
        X = _validate.matrix(X, "X")
        y = _validate.labels(y, "y", n_samples=X.shape[0], n_classes=2)
        rng = np.random.default_rng(self.seed)
        self.weights_ = np.zeros(X.shape[1])
        self.bias_ = 0.0
        errors = []
        self.converged_ = False
        for _ in range(self.max_epochs):
            order = rng.permutation(len(X)) if self.shuffle else np.arange(len(X))
            mistakes = 0
            for i in order:
                y_hat = heaviside(X[i] @ self.weights_ + self.bias_)
                update = self.lr * (y[i] - y_hat)
                if update != 0.0:
                    self.weights_ += update * X[i]
                    self.bias_ += update
                    mistakes += 1
            errors.append(mistakes)
            if mistakes == 0:
                self.converged_ = True
                break
        self.history = {"errors": errors}
        return self.history

    def decision_function(self, X) -> np.ndarray:
        r"""The pre-activation :math:`z = \mathbf w \cdot \mathbf x + b` for every row of ``X``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)

        Raises
        ------
        RuntimeError
            If called before :meth:`fit`.
        ValueError
            If ``X`` has a different number of features than the training data.
        """
        if not hasattr(self, "weights_"):
            raise RuntimeError("this Perceptron is not fitted yet: call fit(X, y) first")
        X = _validate.matrix(X, "X", n_columns=self.weights_.shape[0])
        return X @ self.weights_ + self.bias_

    def predict(self, X) -> np.ndarray:
        r"""Class labels :math:`\hat y = H(\mathbf w \cdot \mathbf x + b)`, as int 0 or 1.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of int64, shape (n_samples,)
        """
        return heaviside(self.decision_function(X)).astype(np.int64)

    def score(self, X, y) -> float:
        """Fraction of rows of ``X`` whose predicted label equals ``y``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : array_like of shape (n_samples,)

        Returns
        -------
        float
            Accuracy in :math:`[0, 1]`.
        """
        X = _validate.matrix(X, "X")
        y = _validate.labels(y, "y", n_samples=X.shape[0], n_classes=2)
        return float(np.mean(self.predict(X) == y))
