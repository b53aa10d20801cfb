r"""Activation functions and their derivatives (chapter 1), NumPy in, NumPy out.

A neuron computes :math:`y = f\left(\sum_{i=1}^{n} w_i x_i + b\right)`; this module holds the
choices of :math:`f` the book uses and the derivatives :math:`f'` that backpropagation needs.
Every function accepts array_like input of real numbers and returns an ndarray of the same shape;
float32 input stays float32, anything else becomes float64.
"""

from __future__ import annotations

import numpy as np

from . import _validate

__all__ = [
    "heaviside",
    "sigmoid",
    "relu",
    "tanh",
    "softmax",
    "sigmoid_grad",
    "relu_grad",
    "tanh_grad",
]


def heaviside(x):
    r"""Rosenblatt's step function :math:`H(x) = 1` if :math:`x \ge 0`, else :math:`0`.

    Its derivative is zero wherever it exists, which is why gradient descent cannot train it.

    Parameters
    ----------
    x : array_like

    Returns
    -------
    ndarray
        Zeros and ones, same shape as ``x``.
    """
    x = _validate.float_array(x, "x")
    return (x >= 0).astype(x.dtype)


def sigmoid(x):
    r"""Logistic function :math:`\sigma(x) = 1 / (1 + e^{-x})`, computed without overflow.

    The textbook formula overflows for large negative :math:`x` (:math:`e^{1000} = \infty`).
    With :math:`u = e^{-|x|} \in (0, 1]`, which never overflows,

    .. math::

        \sigma(x) = \begin{cases} 1/(1 + u) & x \ge 0 \\ u/(1 + u) & x < 0 \end{cases}

    Parameters
    ----------
    x : array_like

    Returns
    -------
    ndarray
        Same shape as ``x``, values in :math:`[0, 1]` (exactly 0 or 1 only where float
        precision runs out, :math:`|x| \gtrsim 37` in float64).

    Raises
    ------
    TypeError
        If ``x`` is not numeric.
    """
    x = _validate.float_array(x, "x")
    u = np.exp(-np.abs(x))
    return (np.where(x >= 0, 1.0, u) / (1.0 + u)).astype(x.dtype, copy=False)


def sigmoid_grad(x):
    r"""Derivative of the logistic function, :math:`\sigma'(x) = \sigma(x)\,(1 - \sigma(x))`.

    Its maximum is :math:`\sigma'(0) = 1/4`: every sigmoid layer shrinks a gradient by at least
    a factor of four.

    Parameters
    ----------
    x : array_like

    Returns
    -------
    ndarray
        Same shape as ``x``, values in :math:`[0, 1/4]`.
    """
    s = sigmoid(x)
    return s * (1.0 - s)


def tanh(x):
    r"""Hyperbolic tangent :math:`\tanh(x) = (e^{x} - e^{-x}) / (e^{x} + e^{-x})`.

    Computed with ``numpy.tanh``, which is stable for every :math:`x`. Note
    :math:`\tanh(x) = 2\sigma(2x) - 1`: a rescaled sigmoid centred on zero.

    Parameters
    ----------
    x : array_like

    Returns
    -------
    ndarray
        Same shape as ``x``, values in :math:`[-1, 1]`.
    """
    x = _validate.float_array(x, "x")
    return np.tanh(x)


def tanh_grad(x):
    r"""Derivative of the hyperbolic tangent, :math:`\tanh'(x) = 1 - \tanh^2(x)`.

    Parameters
    ----------
    x : array_like

    Returns
    -------
    ndarray
        Same shape as ``x``, values in :math:`[0, 1]`, largest at :math:`x = 0`.
    """
    t = tanh(x)
    return 1.0 - t * t


def relu(x):
    r"""Rectified linear unit :math:`\mathrm{ReLU}(x) = \max(0, x)`.

    Parameters
    ----------
    x : array_like

    Returns
    -------
    ndarray
        Same shape as ``x``, values :math:`\ge 0`.
    """
    x = _validate.float_array(x, "x")
    return np.maximum(x, 0.0).astype(x.dtype, copy=False)


def relu_grad(x):
    r"""Derivative of ReLU, :math:`\mathrm{ReLU}'(x) = 1` if :math:`x > 0`, else :math:`0`.

    ReLU has no derivative at :math:`x = 0`; like PyTorch's autograd we use 0 there.

    Parameters
    ----------
    x : array_like

    Returns
    -------
    ndarray
        Zeros and ones, same shape as ``x``.
    """
    x = _validate.float_array(x, "x")
    return (x > 0).astype(x.dtype)


def softmax(z, axis: int = -1):
    r"""Softmax :math:`\mathrm{softmax}(z)_k = e^{z_k} / \sum_j e^{z_j}` along ``axis``.

    Subtracting :math:`\max_j z_j` first leaves the result unchanged (it cancels between
    numerator and denominator) and keeps every exponent :math:`\le 0`, so nothing overflows.

    Parameters
    ----------
    z : array_like
        Scores ("logits").
    axis : int, default -1
        The axis that holds the classes.

    Returns
    -------
    ndarray
        Same shape as ``z``, non-negative, summing to 1 along ``axis``.
    """
    z = _validate.float_array(z, "z")
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)
