r"""Network architectures trained in the book (chapter 3 onwards)."""

from __future__ import annotations

import numbers

import torch
from torch import nn

from . import _validate

__all__ = ["NeuralNetwork"]


class NeuralNetwork(nn.Module):
    r"""A multi-layer perceptron: (Linear → ReLU → Dropout) per hidden layer, then a Linear output.

    For hidden layers :math:`l = 1, \dots, L-1` and the output layer :math:`L`,

    .. math::

        \mathbf h^{(l)} = \operatorname{Dropout}_p\big(\operatorname{ReLU}(W^{(l)}
        \mathbf h^{(l-1)} + \mathbf b^{(l)})\big), \qquad
        \mathbf z = W^{(L)} \mathbf h^{(L-1)} + \mathbf b^{(L)},

    with :math:`\mathbf h^{(0)} = \mathbf x`. The output :math:`\mathbf z` are **logits**:
    unnormalised scores, to be fed to :class:`torch.nn.CrossEntropyLoss`, which applies the
    log-softmax itself. Every activation is its own :class:`torch.nn.ReLU` module (never reused,
    never in place), which SHAP's DeepExplainer needs (chapter 8).

    Parameters
    ----------
    input_size : int
        Number of input features. Inputs of shape ``(batch, *dims)`` are flattened, so
        ``(batch, 1, 8, 8)`` images work with ``input_size=64``.
    hidden_sizes : sequence of int
        Units per hidden layer; may be empty (a linear model).
    output_size : int
        Number of classes.
    dropout_rate : float, default 0.2
        Probability :math:`p \in [0, 1)` of zeroing a hidden unit during training.

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive int or ``dropout_rate`` is outside :math:`[0, 1)`.
    """

    def __init__(self, input_size, hidden_sizes, output_size, dropout_rate: float = 0.2):
        super().__init__()
        self.input_size = _validate.positive_int(input_size, "input_size")
        if isinstance(hidden_sizes, numbers.Integral):
            raise TypeError("hidden_sizes must be a sequence of ints, e.g. [64, 32]")
        hidden_sizes = [_validate.positive_int(h, "hidden_sizes entry") for h in hidden_sizes]
        self.output_size = _validate.positive_int(output_size, "output_size")
        if isinstance(dropout_rate, bool) or not isinstance(dropout_rate, numbers.Real):
            raise TypeError(f"dropout_rate must be a float; got {type(dropout_rate).__name__}")
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1); got {dropout_rate}")
        layers, width = [], self.input_size
        for h in hidden_sizes:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout_rate)]
            width = h
        layers.append(nn.Linear(width, self.output_size))
        self.network = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch.

        Parameters
        ----------
        x : torch.Tensor of shape (batch, input_size) or (batch, *dims)
            ``dims`` must multiply to ``input_size``.

        Returns
        -------
        torch.Tensor of shape (batch, output_size)

        Raises
        ------
        ValueError
            If a sample does not have ``input_size`` features.
        """
        if x.ndim < 2 or x.shape[1:].numel() != self.input_size:
            raise ValueError(
                f"x must have shape (batch, {self.input_size}) (or (batch, *dims) with "
                f"{self.input_size} values per sample); got {tuple(x.shape)}"
            )
        return self.network(x.flatten(1))
