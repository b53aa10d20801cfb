r"""Convolution written out by hand in NumPy (chapter 5).

What deep-learning libraries call convolution is a cross-correlation: for an input
:math:`x` with :math:`C` channels and a kernel :math:`w` of size :math:`k_h \times k_w`,

.. math::

    y[o, i, j] = b[o] + \sum_{c=1}^{C} \sum_{u=0}^{k_h - 1} \sum_{v=0}^{k_w - 1}
        w[o, c, u, v]\; x[c,\; s i + u,\; s j + v]

with stride :math:`s`, after zero-padding :math:`x` by :math:`p` pixels on every side.
"""

from __future__ import annotations

import numpy as np

from . import _validate

__all__ = ["conv2d", "conv_output_size"]


def conv_output_size(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1):
    r"""Length of a convolution's or pooling's output along one axis.

    .. math::

        n_\text{out} = \left\lfloor \frac{n + 2p - d\,(k - 1) - 1}{s} \right\rfloor + 1

    A window of :math:`k` taps spaced :math:`d` apart spans :math:`d(k - 1) + 1` pixels; it
    fits :math:`n + 2p - d(k-1) - 1` positions past the first, and every :math:`s`-th is kept.

    Parameters
    ----------
    n : int
        Input length.
    kernel : int
        Kernel size :math:`k`.
    stride : int, default 1
    padding : int, default 0
    dilation : int, default 1

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If a size is not positive, ``padding`` is negative, or the kernel does not fit.
    """
    n = _validate.positive_int(n, "n")
    kernel = _validate.positive_int(kernel, "kernel")
    stride = _validate.positive_int(stride, "stride")
    padding = _validate.nonnegative_int(padding, "padding")
    dilation = _validate.positive_int(dilation, "dilation")
    span = dilation * (kernel - 1) + 1
    if n + 2 * padding < span:
        raise ValueError(
            f"kernel spans {span} pixels but the padded input has only {n + 2 * padding}"
        )
    return (n + 2 * padding - span) // stride + 1


def conv2d(x, weight, bias=None, stride: int = 1, padding: int = 0):
    r"""2-D cross-correlation of a batch of images, as ``torch.nn.functional.conv2d`` computes it.

    Written as in the module's equation: for every kernel offset :math:`(u, v)`, take the input
    pixels it meets at every output position (a strided slice) and accumulate their product with
    :math:`w[:, :, u, v]` over the channels. The loops run over the :math:`k_h k_w` offsets
    only; each step is one matrix product.

    Parameters
    ----------
    x : array_like of shape (batch, C_in, H, W)
    weight : array_like of shape (C_out, C_in, k_h, k_w)
    bias : array_like of shape (C_out,), optional
    stride : int, default 1
    padding : int, default 0
        Zeros added on every side.

    Returns
    -------
    ndarray of shape (batch, C_out, H_out, W_out)
        With :math:`H_\text{out}` and :math:`W_\text{out}` from :func:`conv_output_size`.

    Raises
    ------
    ValueError
        If the shapes do not fit together.
    """
    x = _validate.float_array(x, "x")
    weight = _validate.float_array(weight, "weight")
    if x.ndim != 4:
        raise ValueError(f"x must have shape (batch, C_in, H, W); got {x.shape}")
    if weight.ndim != 4 or weight.shape[1] != x.shape[1]:
        raise ValueError(
            f"weight must have shape (C_out, {x.shape[1]}, k_h, k_w) for {x.shape[1]} input "
            f"channels; got {weight.shape}"
        )
    c_out, _, k_h, k_w = weight.shape
    h_out = conv_output_size(x.shape[2], k_h, stride, padding)
    w_out = conv_output_size(x.shape[3], k_w, stride, padding)
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = np.zeros((x.shape[0], c_out, h_out, w_out), dtype=np.result_type(x, weight))
    for u in range(k_h):
        for v in range(k_w):
            patch = x[:, :, u : u + stride * h_out : stride, v : v + stride * w_out : stride]
            # sum over input channels c of w[o, c, u, v] * x[c, s i + u, s j + v]
            out += np.einsum("oc,bcij->boij", weight[:, :, u, v], patch)
    if bias is not None:
        bias = _validate.float_array(bias, "bias")
        if bias.shape != (c_out,):
            raise ValueError(f"bias must have shape ({c_out},); got {bias.shape}")
        out += bias[None, :, None, None]
    return out
