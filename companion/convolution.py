r"""Convolution written out by hand in NumPy (chapter 5).

What deep-learning libraries call convolution is a cross-correlation: for an input
:math:`x` with :math:`C` channels and a kernel :math:`w` of size :math:`k_h \times k_w`,

.. math::

    y[o, i, j] = b[o] + \sum_{c=1}^{C} \sum_{u=0}^{k_h - 1} \sum_{v=0}^{k_w - 1}
        w[o, c, u, v]\; x[c,\; s i + u,\; s j + v]

with stride :math:`s`, after zero-padding :math:`x` by :math:`p` pixels on every side.
Also here: the receptive field of a stack of layers, and a measure of how far a layer is from
commuting with translations.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from . import _validate

__all__ = ["conv2d", "conv_output_size", "receptive_field", "shift_equivariance_gap"]


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


def receptive_field(kernels, strides=None) -> int:
    r"""Side of the input window that one unit at the top of a stack of layers depends on.

    Layer :math:`l` (a convolution or a pooling) has kernel :math:`k_l` and stride :math:`s_l`.
    One unit of layer :math:`l` covers :math:`k_l` units of layer :math:`l - 1`, which are
    :math:`\prod_{i<l} s_i` input pixels apart, so each layer widens the window by
    :math:`(k_l - 1)` times that spacing:

    .. math::

        r_L = 1 + \sum_{l=1}^{L} (k_l - 1) \prod_{i=1}^{l-1} s_i .

    Padding moves the window but does not change its size (near the border part of it falls
    on the padding).

    Parameters
    ----------
    kernels : sequence of int
        :math:`k_1, \dots, k_L`, from the input upwards.
    strides : sequence of int, optional
        :math:`s_1, \dots, s_L`; default all 1.

    Returns
    -------
    int

    Raises
    ------
    TypeError, ValueError
        If an entry is not a positive int or the two sequences differ in length.
    """
    if isinstance(kernels, numbers.Integral):
        raise TypeError("kernels must be a sequence of ints, e.g. [3, 2, 3]")
    kernels = [_validate.positive_int(k, "kernels entry") for k in kernels]
    strides = [1] * len(kernels) if strides is None else list(strides)
    if len(strides) != len(kernels):
        raise ValueError(f"strides has {len(strides)} entries but kernels has {len(kernels)}")
    strides = [_validate.positive_int(s, "strides entry") for s in strides]
    size, spacing = 1, 1
    for k, s in zip(kernels, strides, strict=True):
        size += (k - 1) * spacing
        spacing *= s
    return size


def shift_equivariance_gap(f, x, shift, out_shift=None, margin: int = 0) -> float:
    r"""How far ``f`` is from commuting with a translation, measured away from the borders.

    With :math:`T_{\mathbf s}` the shift of an image by :math:`\mathbf s = (s_y, s_x)`
    pixels (circular, ``torch.roll``) and :math:`\mathbf t` the matching shift of the output,

    .. math::

        \text{gap} = \frac{\max \lvert f(T_{\mathbf s}\, x) - T_{\mathbf t}\, f(x)
            \rvert}{\max \lvert T_{\mathbf t}\, f(x) \rvert},

    both maxima over the output with ``margin`` pixels cut from every side (where the wrapped
    pixels and the padding differ). A convolution with stride 1 is *equivariant*,
    :math:`f(T_{\mathbf s} x) = T_{\mathbf s} f(x)`: the gap is rounding error. A layer
    that downsamples by 2 can at best satisfy it with :math:`\mathbf t = \mathbf s / 2`.

    Parameters
    ----------
    f : callable
        Maps a tensor of shape (batch, C, H, W) to one of shape (batch, C', H', W').
    x : torch.Tensor of shape (batch, C, H, W)
    shift : pair of int
        :math:`\mathbf s`, in input pixels (down, right).
    out_shift : pair of int, optional
        :math:`\mathbf t`, in output pixels; default ``shift``.
    margin : int, default 0
        Output pixels ignored on every side.

    Returns
    -------
    float
        0 for an exactly equivariant ``f``; of order 1 when ``f`` ignores the shift.

    Raises
    ------
    TypeError, ValueError
        If ``x`` is not a 4-D tensor, a shift is not a pair of ints, or ``margin`` leaves
        nothing to compare.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise TypeError("x must be a torch.Tensor of shape (batch, C, H, W)")

    def pair(value, name):
        if (
            not isinstance(value, (tuple, list))
            or len(value) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
        ):
            raise TypeError(f"{name} must be a pair of ints (down, right); got {value!r}")
        return int(value[0]), int(value[1])

    shift = pair(shift, "shift")
    out_shift = shift if out_shift is None else pair(out_shift, "out_shift")
    margin = _validate.nonnegative_int(margin, "margin")
    with torch.no_grad():
        moved_first = f(torch.roll(x, shift, dims=(-2, -1)))
        moved_after = torch.roll(f(x), out_shift, dims=(-2, -1))
    if moved_first.ndim != 4 or moved_first.shape != moved_after.shape:
        raise ValueError("f must map (batch, C, H, W) to a 4-D tensor of a fixed shape")
    height, width = moved_after.shape[-2:]
    if 2 * margin >= min(height, width):
        raise ValueError(f"margin {margin} leaves nothing of a {height}x{width} output")
    inner = (..., slice(margin, height - margin), slice(margin, width - margin))
    scale = moved_after[inner].abs().max()
    return float((moved_first[inner] - moved_after[inner]).abs().max() / scale)
