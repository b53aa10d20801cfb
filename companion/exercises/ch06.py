r"""Checkers for chapter 6's exercises: positional encoding, the softmax without
:math:`\sqrt{d_k}`, masked scaled dot-product attention."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..transformer import causal_mask, scaled_dot_product_attention, sinusoidal_encoding
from . import Wrong, as_array, call, exercise, number, same_shape

_SEED = 2024


@exercise("6.1", "The sinusoidal position table", level="easy", kind="implement")
def check_sinusoid_table(answer):
    r"""``answer(length, d_model)`` must return the table of shape ``(length, d_model)``

    .. math::

        PE_{(pos,\, 2i)} = \sin\big(pos / 10000^{2i/d}\big), \qquad
        PE_{(pos,\, 2i+1)} = \cos\big(pos / 10000^{2i/d}\big),

    to 1e-6, for an even and for an odd ``d_model`` (compared with
    :func:`companion.sinusoidal_encoding`)."""
    for length, d_model in [(50, 16), (7, 6), (9, 5)]:
        try:
            got = as_array(call(answer, length, d_model, what="sinusoid_table"), "the table")
        except Wrong as wrong:
            if d_model % 2 == 0:
                raise
            raise Wrong(
                f"for the odd d_model = {d_model}: {wrong.message}",
                "an odd d_model has one more sine column than cosine columns: the cosines "
                "take only angle[:, : d_model // 2]",
            ) from None
        expected = sinusoidal_encoding(length, d_model).numpy()
        if got.shape == expected.T.shape and got.shape != expected.shape:
            raise Wrong(
                f"the table has shape {got.shape}; expected {expected.shape}",
                "one row per position, one column per feature: (length, d_model)",
            )
        same_shape(got, expected, "the table")
        if np.allclose(got, expected, atol=1e-6):
            continue
        pos = np.arange(length)[:, None]
        half = d_model // 2
        sines = np.sin(pos / 10000.0 ** (np.arange(0, d_model, 2) / d_model))
        cosines = np.cos(pos / 10000.0 ** (np.arange(0, d_model, 2) / d_model))
        blocks = np.concatenate([sines, cosines[:, :half]], axis=1)
        if np.allclose(got, blocks, atol=1e-6):
            raise Wrong(
                "your sines and cosines are in two blocks; the table interleaves them",
                "column 2i is a sine and column 2i+1 the cosine of the same angle: "
                "pe[:, 0::2] = sin, pe[:, 1::2] = cos",
            )
        swapped = expected.copy()
        swapped[:, 0::2] = np.cos(pos / 10000.0 ** (np.arange(0, d_model, 2) / d_model))
        swapped[:, 1::2] = np.sin(pos / 10000.0 ** (np.arange(0, d_model, 2) / d_model))[:, :half]
        if np.allclose(got, swapped, atol=1e-6):
            raise Wrong(
                "sine and cosine are swapped",
                "even columns are sines (PE(0) = 0, 1, 0, 1, ...), odd columns cosines",
            )
        if np.allclose(got[:, 0], expected[:, 0], atol=1e-6):
            raise Wrong(
                f"for d_model = {d_model}, column 0 is right but later columns are not: "
                "the frequencies are wrong",
                "the exponent is 2i / d_model with 2i = 0, 2, 4, ...; if your index "
                "already runs over 0, 2, 4, do not multiply it by 2 again",
            )
        worst = np.unravel_index(np.argmax(np.abs(got - expected)), got.shape)
        raise Wrong(
            f"for length {length}, d_model {d_model}: entry {tuple(map(int, worst))} is "
            f"{got[worst]:.6g}; expected {expected[worst]:.6g}",
            "row 0 must be 0, 1, 0, 1, ...; check the angle pos / 10000^(2i / d_model)",
        )
    return "the table matches sinusoidal_encoding for d_model = 16, 6 and the odd 5."


def _notes_encoding(x, pe):
    return x + pe.unsqueeze(0).transpose(0, 1)[: x.size(0)]


@exercise("6.2", "Repair the notes' positional encoding", level="medium", kind="debug")
def check_add_positions(answer):
    r"""``answer(x, pe)`` takes a batch-first ``x`` of shape ``(batch, seq, d_model)`` and a
    table ``pe`` of shape ``(max_len, d_model)`` and must return
    :math:`\text{out}_{b, pos} = x_{b, pos} + PE_{pos}`, without changing ``x``."""
    gen = torch.Generator().manual_seed(_SEED)
    pe = sinusoidal_encoding(64, 8)
    for shape in [(3, 5, 8), (4, 4, 8), (1, 6, 8), (6, 2, 8)]:
        x = torch.randn(*shape, generator=gen, dtype=torch.float64)
        before = x.clone()
        try:
            out = call(answer, x, pe, what="add_positions")
        except Wrong as wrong:
            raise Wrong(
                wrong.message,
                "x is batch-first: the position is dimension 1, so the rows you need are "
                "pe[:x.size(1)], shape (seq, d_model), which broadcasts over the batch",
            ) from None
        if not torch.equal(x, before):
            raise Wrong(
                "your function changed the caller's x in place",
                "return x + ...; `x += ...` modifies the tensor that was passed in",
            )
        got = as_array(out, "add_positions's result")
        expected = (x + pe[: shape[1]]).numpy()
        same_shape(got, expected)
        if np.allclose(got, expected, atol=1e-12):
            continue
        if np.allclose(got, _notes_encoding(x, pe).numpy(), atol=1e-12):
            raise Wrong(
                f"for x of shape {shape}, every token of sequence b gets the encoding of "
                "position b: the defect is still there",
                "pe.unsqueeze(0).transpose(0, 1)[:x.size(0)] is sequence-first and slices "
                "by the batch size; a batch-first x needs pe[:x.size(1)]",
            )
        if np.allclose(got, x.numpy(), atol=1e-12):
            raise Wrong("you returned x unchanged: the encoding is never added", None)
        raise Wrong(
            f"for x of shape {shape} the result differs from x + PE by up to "
            f"{np.abs(got - expected).max():.3g}",
            "token pos of every sequence gets row pos of the table, nothing else",
        )
    return "your x + PE is right for batch-first inputs of 4 shapes, batch = seq included."


def _largest_weight(d_k: int, scale: bool, keys: int = 10, rows: int = 20_000) -> float:
    """Mean largest softmax weight of ``rows`` random queries, each scoring ``keys`` keys."""
    gen = torch.Generator().manual_seed(_SEED)
    q = torch.randn(rows, 1, d_k, generator=gen, dtype=torch.float64)
    k = torch.randn(rows, keys, d_k, generator=gen, dtype=torch.float64)
    s = (q * k).sum(-1) / (math.sqrt(d_k) if scale else 1.0)
    return s.softmax(-1).max(-1).values.mean().item()


@exercise("6.3", "How peaked is the softmax without the square root?", "medium", "predict")
def check_largest_weight(answer):
    r"""Queries and keys with i.i.d. :math:`\mathcal N(0, 1)` entries, :math:`d_k = 16`, ten
    keys per query, scores :math:`q \cdot k` *not* divided by :math:`\sqrt{d_k}`: the answer is
    the mean (over queries) of the largest softmax weight, within 0.03 (of a seeded estimate
    from 20,000 queries)."""
    value = number(answer)
    exact = _largest_weight(16, scale=False)
    scaled = _largest_weight(16, scale=True)
    if abs(value - exact) <= 0.03:
        return f"the mean largest weight is {exact:.3f} (scaled by 1/4 it would be {scaled:.3f})."
    if not 0.1 <= value <= 1:
        raise Wrong(
            f"{value:.4g} is impossible: the largest of ten weights that sum to 1 lies "
            "between 1/10 and 1",
            None,
        )
    if abs(value - scaled) <= 0.03:
        raise Wrong(
            f"{value:.3g} is the value *with* the division by sqrt(d_k) = 4",
            "unscaled, the scores have standard deviation sqrt(16) = 4, not 1",
        )
    if abs(value - 0.1) <= 0.02:
        raise Wrong(
            "that is a uniform softmax; scores with standard deviation 4 are far from equal",
            None,
        )
    raise Wrong(
        f"{value:.3g} is {'too high' if value > exact else 'too low'}",
        "simulate it: q = torch.randn(10_000, 1, 16), k = torch.randn(10_000, 10, 16), "
        "s = (q * k).sum(-1), then s.softmax(-1).max(-1).values.mean(); the chapter's "
        f"64-wide head gives {_largest_weight(64, scale=False):.2f}",
    )


def _attention_cases():
    gen = torch.Generator().manual_seed(_SEED)
    q = torch.randn(2, 5, 8, generator=gen, dtype=torch.float64)
    k = torch.randn(2, 6, 8, generator=gen, dtype=torch.float64)
    v = torch.randn(2, 6, 3, generator=gen, dtype=torch.float64)
    padding = torch.rand(2, 1, 6, generator=gen) < 0.7
    padding[:, :, 0] = True  # every query keeps key 0
    mask = causal_mask(6)[:5] & padding  # (2, 5, 6), no row fully masked
    return q, k, v, mask


def _wrong_axis(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return scores.softmax(dim=-2) @ v


@exercise("6.4", "Masked scaled dot-product attention", level="hard", kind="implement")
def check_masked_attention(answer):
    r"""``answer(q, k, v, mask)`` must return
    :math:`\operatorname{softmax}(Q K^\top / \sqrt{d_k} + M)\, V` for batched ``q`` of shape
    ``(B, L_q, d_k)``, ``k`` ``(B, L_k, d_k)``, ``v`` ``(B, L_k, d_v)`` and a boolean mask
    broadcastable to ``(B, L_q, L_k)`` (``True`` = may attend, :math:`M = -\infty` elsewhere),
    to 1e-6, and a zero vector, not NaN, for a query whose row is fully masked (as
    :func:`companion.scaled_dot_product_attention` and PyTorch's own)."""
    q, k, v, mask = _attention_cases()
    got = as_array(call(answer, q, k, v, mask, what="masked_attention"), "the output")
    expected = scaled_dot_product_attention(q, k, v, mask)[0].numpy()
    same_shape(got, expected, "the output")
    if not np.allclose(got, expected, atol=1e-6):
        inverted = scaled_dot_product_attention(q, k, v, ~mask)[0].numpy()
        unscaled = scaled_dot_product_attention(q * math.sqrt(8), k, v, mask)[0].numpy()
        unmasked = scaled_dot_product_attention(q, k, v)[0].numpy()
        if np.allclose(np.nan_to_num(got), inverted, atol=1e-6):
            raise Wrong(
                "your queries attend exactly to the keys the mask forbids",
                "the convention is True = may attend: fill the scores where the mask is "
                "False, i.e. scores.masked_fill(~mask, ...)",
            )
        if np.allclose(got, unscaled, atol=1e-6):
            raise Wrong(
                "the scores are not divided by sqrt(d_k)",
                "softmax(Q K^T / sqrt(d_k)): with d_k = 8 the scores are sqrt(8) times too large",
            )
        if np.allclose(got, _wrong_axis(q, k, v, mask).numpy(), atol=1e-6):
            raise Wrong(
                "your softmax normalises over the queries",
                "each query's weights over the keys sum to 1: softmax(dim=-1), the last axis",
            )
        if np.allclose(got, unmasked, atol=1e-6):
            raise Wrong("the mask is ignored", "scores.masked_fill(~mask, float('-inf'))")
        raise Wrong(
            f"the output differs from attention by up to {np.nanmax(np.abs(got - expected)):.3g}",
            "scores = q @ k.transpose(-2, -1) / sqrt(d_k), masked, softmax over the last "
            "axis, then @ v",
        )
    blocked = mask.clone()
    blocked[1, 2] = False  # query 2 of sequence 1 may attend to nothing
    got = as_array(call(answer, q, k, v, blocked, what="masked_attention"), "the output")
    expected = scaled_dot_product_attention(q, k, v, blocked)[0].numpy()
    if np.isnan(got[1, 2]).any():
        raise Wrong(
            "a fully masked row gives NaN",
            "with -inf in every score of a row the softmax is 0/0; fill with a finite "
            "minimum and set the weights of such rows (~mask.any(-1, keepdim=True)) to 0",
        )
    if np.allclose(got[1, 2], v[1].mean(0).numpy(), atol=1e-6):
        raise Wrong(
            "a fully masked row returns the mean of all values",
            "a -1e9 (or finite-minimum) fill makes that row's softmax uniform over keys it "
            "may not see; set the weights of rows with no allowed key to 0",
        )
    if not np.allclose(got, expected, atol=1e-6):
        raise Wrong(
            "a fully masked query must return the zero vector, and other rows stay the same",
            "zero the weights where ~mask.any(dim=-1, keepdim=True)",
        )
    return "the output matches attention to 1e-6, and a fully masked query returns zeros."
