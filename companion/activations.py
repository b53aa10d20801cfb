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
        Same shape as ``x``, values in :math:`[0, 1]`. The two ends are reached at very different
        places: in float64 :math:`\sigma(x)` rounds to exactly 1 from :math:`x \approx 36.8`
        (where :math:`u` drops below half an ulp of 1, :math:`2^{-53}`), but is exactly 0 only
        below :math:`x \approx -745.1`, where :math:`e^{x}` underflows (in float32: 1 from
        :math:`x \approx 16.7`, 0 below :math:`x \approx -103.9`).

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

    Computed as

    .. math::

        \sigma'(x) = \frac{u}{(1 + u)^2} = \frac{1}{1 + u} \cdot \frac{u}{1 + u},
        \qquad u = e^{-|x|} \in (0, 1],

    the same function (:math:`\sigma'` is even, and for :math:`x \ge 0`
    :math:`\sigma'(x) = e^{-x} / (1 + e^{-x})^2`). It never overflows and is symmetric to the
    last bit, ``sigmoid_grad(x) == sigmoid_grad(-x)``. The two factors are
    :math:`\sigma(|x|)` and :math:`1 - \sigma(|x|)`, but the second is computed as
    :math:`u / (1 + u)`, not by the subtraction :math:`1 - \sigma`, which cancels: for
    :math:`x = 40`, :math:`\sigma(40)` rounds to 1 and :math:`\sigma(1 - \sigma)` returns 0,
    while for :math:`x = -40` it returns the right :math:`4.2 \times 10^{-18}`. (Written as one
    quotient, :math:`u / (1 + u)^2` rounds one ulp above :math:`1/4` near :math:`x = 0`; the
    product of the two factors does not.) The result is 0 only where :math:`u` underflows,
    :math:`|x| \gtrsim 745` in float64.

    Its maximum is :math:`\sigma'(0) = 1/4`. That bounds the activation's factor in each layer
    of backpropagation, not the layer's whole factor :math:`W^\top \operatorname{diag}(\sigma')`:
    the weights can shrink the gradient further or amplify it (chapter 1 measures both).

    Parameters
    ----------
    x : array_like

    Returns
    -------
    ndarray
        Same shape as ``x``, values in :math:`[0, 1/4]`.

    Raises
    ------
    TypeError
        If ``x`` is not numeric.
    """
    x = _validate.float_array(x, "x")
    u = np.exp(-np.abs(x))
    return ((1.0 / (1.0 + u)) * (u / (1.0 + u))).astype(x.dtype, copy=False)


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

    Evaluated as :math:`\operatorname{sech}^2 x`, written with
    :math:`u = e^{-2|x|} \in (0, 1]`:

    .. math:: \tanh'(x) = \frac{4u}{(1 + u)^2}
              = 4 \cdot \frac{1}{1 + u} \cdot \frac{u}{1 + u}.

    The textbook form :math:`1 - \tanh^2 x` loses every digit once
    :math:`\tanh x` rounds to 1 (from :math:`|x| \approx 19`) and returns exactly
    0, while the true value stays a positive double up to :math:`|x| \approx 373`;
    the form above keeps full relative precision while the value is a normal double
    (:math:`|x| \le 354`), stays positive up to 373, and is exactly symmetric.

    Parameters
    ----------
    x : array_like

    Returns
    -------
    ndarray
        Same shape as ``x``, values in :math:`[0, 1]`, largest at :math:`x = 0`.

    Raises
    ------
    TypeError
        If ``x`` is not numeric.
    """
    x = _validate.float_array(x, "x")
    u = np.exp(-2.0 * np.abs(x))
    return (4.0 * (1.0 / (1.0 + u)) * (u / (1.0 + u))).astype(x.dtype, copy=False)


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
