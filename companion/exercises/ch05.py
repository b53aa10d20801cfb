r"""Checkers for chapter 5's exercises: output sizes, receptive fields, flattening maps."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from ..convolution import conv_output_size, receptive_field
from ..models import ConvolutionalNN
from . import Wrong, call, exercise, number


# ------------------------------------------------------------------------------ 5.1
def _size_grid():
    """(n, k, s, p, d) for which the kernel fits the padded input."""
    for n, k, s, p, d in itertools.product(
        (1, 5, 8, 13, 28, 32), (1, 2, 3, 5), (1, 2, 3), (0, 1, 2), (1, 2, 3)
    ):
        if n + 2 * p >= d * (k - 1) + 1:
            yield n, k, s, p, d


_SIZE_MISTAKES = [
    (
        lambda n, k, s, p, d: (n - d * (k - 1) - 1) // s + 1,
        "your sizes ignore the padding",
        "padding adds p pixels on *both* sides: n + 2p",
    ),
    (
        lambda n, k, s, p, d: (n + p - d * (k - 1) - 1) // s + 1,
        "your sizes count the padding once",
        "padding adds p pixels on both sides: n + 2p, not n + p",
    ),
    (
        lambda n, k, s, p, d: n + 2 * p - d * (k - 1),
        "your sizes ignore the stride",
        "with stride s only every s-th position is kept: divide (floor) by s, then add 1",
    ),
    (
        lambda n, k, s, p, d: (n + 2 * p - k) // s + 1,
        "your sizes ignore the dilation",
        "a kernel of k taps d apart spans d (k - 1) + 1 pixels",
    ),
    (
        lambda n, k, s, p, d: -(-(n + 2 * p - d * (k - 1) - 1) // s) + 1,
        "your sizes round up",
        "a window that would run past the border is dropped: floor the division",
    ),
    (
        lambda n, k, s, p, d: (n + 2 * p - d * (k - 1) - 1) // s,
        "your sizes are one short",
        "the first position counts too: floor(...) + 1",
    ),
]


@exercise("5.1", "The size of a convolution's output", level="easy", kind="implement")
def check_output_size(answer):
    r"""``answer(n, k, s, p, d)`` must return, as an int,

    .. math::

        n_\text{out} = \left\lfloor \frac{n + 2p - d\,(k - 1) - 1}{s} \right\rfloor + 1,

    equal to ``companion.conv_output_size`` (checked against ``nn.Conv2d`` in the chapter) on
    every case of a grid of sizes, kernels, strides, paddings and dilations."""
    cases = list(_size_grid())
    got, expected = [], []
    for n, k, s, p, d in cases:
        value = call(answer, n, k, s, p, d, what="output_size")
        if isinstance(value, float) and not value.is_integer():
            raise Wrong(
                f"output_size({n}, {k}, {s}, {p}, {d}) returned {value}, not a whole number",
                "use floor division //: a window that would run past the border is dropped",
            )
        got.append(number(value, f"output_size({n}, {k}, {s}, {p}, {d})"))
        expected.append(conv_output_size(n, k, s, p, d))
    got, expected = np.array(got), np.array(expected)
    if np.array_equal(got, expected):
        return f"all {len(cases)} sizes match conv_output_size (and so nn.Conv2d)."
    for formula, message, hint in _SIZE_MISTAKES:
        if np.array_equal(got, [formula(*c) for c in cases]):
            raise Wrong(message, hint)
    i = int(np.flatnonzero(got != expected)[0])
    n, k, s, p, d = cases[i]
    raise Wrong(
        f"for n={n}, k={k}, s={s}, p={p}, d={d} you return {got[i]:g}; nn.Conv2d gives "
        f"{expected[i]}",
        "check n=32, k=3, s=1, p=1 (32: the size is kept) and n=32, k=2, s=2 (16)",
    )


# ------------------------------------------------------------------------------ 5.2
_FOUR_BLOCKS = ([3, 2] * 4, [1, 2] * 4)  # conv 3x3 stride 1, pool 2x2 stride 2, four times


@exercise("5.2", "The receptive field of a fourth block", level="medium", kind="predict")
def check_four_block_field(answer):
    r"""The answer is the side of the receptive field of one cell of the last map when a fourth
    block (3 x 3 conv, padding 1, then 2 x 2 max-pool) is added:
    :math:`r_L = 1 + \sum_l (k_l - 1) \prod_{i<l} s_i`, exactly (``receptive_field``)."""
    value = number(answer)
    exact = receptive_field(*_FOUR_BLOCKS)
    if value == exact:
        return f"one cell of the fourth map sees {exact} x {exact} pixels."
    three = receptive_field(_FOUR_BLOCKS[0][:6], _FOUR_BLOCKS[1][:6])
    if value == receptive_field(_FOUR_BLOCKS[0]):
        raise Wrong(
            f"{value:g} is the formula without the strides",
            "after each pool the next layer's units are twice as far apart: layer l widens "
            "the window by (k_l - 1) times the product of the strides below it",
        )
    if value == three:
        raise Wrong(f"{three} is the field of the three-block network", "add the fourth block")
    if value == 2 * three:
        raise Wrong(
            "doubling the three-block field overcounts",
            "the field grows by (k - 1) times the spacing, it does not scale: the fourth "
            "conv adds 2 * 8 pixels and its pool 1 * 8",
        )
    if value == three + 2 * 8:
        raise Wrong(
            "you added the fourth convolution but not the fourth pool",
            "a 2 x 2 pool is a layer too: k = 2, stride 2, spacing 8 below it",
        )
    raise Wrong(
        f"{value:g} is not the field",
        "the three-block field is 22; the fourth block's layers see units 8 pixels apart",
    )


# ------------------------------------------------------------------------------ 5.3
def _maps():
    """Feature maps to flatten: contiguous, 28 x 28 maps, and channels-last ones."""
    g = torch.Generator().manual_seed(5)
    model = ConvolutionalNN(1, 10, channels=(4, 6, 8), input_size=28)
    with torch.no_grad():
        from_model = model.features(torch.randn(3, 1, 28, 28, generator=g))
    return [
        ("16 maps of 128 x 4 x 4", torch.randn(16, 128, 4, 4, generator=g)),
        ("16 maps of 128 x 3 x 3 (28 x 28 images)", torch.randn(16, 128, 3, 3, generator=g)),
        ("1 map of 8 x 5 x 5", torch.randn(1, 8, 5, 5, generator=g)),
        ("ConvolutionalNN.features of 3 images (channels last)", from_model),
    ]


@exercise("5.3", "Repair the notes' flatten", level="hard", kind="debug")
def check_flatten(answer):
    r"""``answer(x)`` must turn feature maps of shape :math:`(B, C, H, W)` into
    :math:`(B, C H W)`, image by image and in ``x.reshape(B, -1)``'s order, for any
    :math:`C, H, W`, also for the channels-last maps ``ConvolutionalNN.features`` returns."""
    for what, x in _maps():
        original = x.clone()
        try:
            out = call(answer, x, what="flatten_maps")
        except Wrong as wrong:
            if "view size is not compatible" in wrong.message:
                raise Wrong(
                    f"for {what}: {wrong.message}",
                    "view needs memory it can reinterpret, and channels-last maps are not "
                    "laid out that way: x.flatten(1) (or reshape) copies when it must",
                ) from wrong
            raise
        if not isinstance(out, torch.Tensor):
            raise Wrong(f"flatten_maps must return a tensor; got {type(out).__name__}")
        if not torch.equal(x, original):
            raise Wrong("your function changed its input in place", None)
        b = x.shape[0]
        expected = x.reshape(b, -1)
        if out.ndim == 1:
            raise Wrong(
                f"for {what} you return one long vector of {out.numel()}: the batch is merged",
                "x.flatten(1) keeps dimension 0, the batch, and merges only the others",
            )
        if out.shape[0] != b:
            raise Wrong(
                f"for {what} you return shape {tuple(out.shape)}: {b} images became "
                f"{out.shape[0]} rows, so features of different images are mixed",
                "never view(-1, n) with a hard-coded n: x.flatten(1) keeps the batch",
            )
        if out.shape != expected.shape:
            raise Wrong(
                f"for {what} you return shape {tuple(out.shape)}; expected {tuple(expected.shape)}",
                "keep dimension 0 and merge C, H, W",
            )
        if not torch.equal(out, expected):
            if torch.equal(out, x.permute(0, 2, 3, 1).reshape(b, -1)):
                raise Wrong(
                    f"for {what} the features are in (H, W, C) order",
                    "the layout in memory does not change the order: flatten C, H, W in that "
                    "order, as x.flatten(1) does",
                )
            raise Wrong(f"for {what} the values differ from x.reshape(B, -1)", None)
    return "four kinds of maps flatten to (batch, features), channels-last maps included."
