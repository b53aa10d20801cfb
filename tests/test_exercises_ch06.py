"""Chapter 6's exercises: realistic wrong answers get their intended hint."""

import math

import torch
from test_exercises import wrong_answer_test

from companion import sinusoidal_encoding
from companion.exercises.ch06 import _largest_weight


def table_in_blocks(length, d_model):
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    angle = pos / 10000.0 ** (torch.arange(0, d_model, 2) / d_model)
    return torch.cat([angle.sin(), angle.cos()[:, : d_model // 2]], dim=1)


def table_swapped(length, d_model):
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    angle = pos / 10000.0 ** (torch.arange(0, d_model, 2) / d_model)
    pe = torch.zeros(length, d_model, dtype=torch.float64)
    pe[:, 0::2] = angle.cos()
    pe[:, 1::2] = angle.sin()[:, : d_model // 2]
    return pe


def table_double_two(length, d_model):
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
    angle = pos / 10000.0 ** (2 * two_i / d_model)
    pe = torch.zeros(length, d_model, dtype=torch.float64)
    pe[:, 0::2] = angle.sin()
    pe[:, 1::2] = angle.cos()[:, : d_model // 2]
    return pe


def table_even_only(length, d_model):  # the notes' version: crashes for odd d_model
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    angle = pos / 10000.0 ** (torch.arange(0, d_model, 2) / d_model)
    pe = torch.zeros(length, d_model, dtype=torch.float64)
    pe[:, 0::2] = angle.sin()
    pe[:, 1::2] = angle.cos()
    return pe


def notes_positions(x, pe):
    return x + pe.unsqueeze(0).transpose(0, 1)[: x.size(0)]


def positions_in_place(x, pe):
    x += pe[: x.size(1)]
    return x


def positions_sequence_first(x, pe):
    return x + pe[: x.size(1)].unsqueeze(1)


def attention(q, k, v, mask, *, scale=True, dim=-1, fill=None, invert=False):
    scores = q @ k.transpose(-2, -1)
    if scale:
        scores = scores / math.sqrt(q.shape[-1])
    blocked = mask if invert else ~mask
    value = torch.finfo(scores.dtype).min if fill is None else fill
    scores = scores.masked_fill(blocked, value)
    weights = scores.softmax(dim=dim)
    if fill is None:
        weights = weights.masked_fill(~(~blocked).any(-1, keepdim=True), 0.0)
    return weights @ v


WRONG = [
    ("6.1", table_in_blocks, "interleaves"),
    ("6.1", table_swapped, "even columns are sines"),
    ("6.1", table_double_two, "do not multiply it by 2 again"),
    ("6.1", table_even_only, "one more sine column"),
    ("6.1", lambda n, d: sinusoidal_encoding(n, d).T, "(length, d_model)"),
    ("6.2", notes_positions, "defect is still there"),
    ("6.2", positions_in_place, "in place"),
    ("6.2", positions_sequence_first, "pe[:x.size(1)]"),
    ("6.2", lambda x, pe: x, "never added"),
    ("6.3", _largest_weight(16, scale=True), "*with* the division"),
    ("6.3", 0.1, "uniform softmax"),
    ("6.3", 1.5, "impossible"),
    ("6.3", 0.99, "too high"),
    ("6.4", lambda q, k, v, m: attention(q, k, v, m, invert=True), "True = may attend"),
    ("6.4", lambda q, k, v, m: attention(q, k, v, m, scale=False), "sqrt(d_k)"),
    ("6.4", lambda q, k, v, m: attention(q, k, v, m, dim=-2), "softmax(dim=-1)"),
    ("6.4", lambda q, k, v, m: attention(q, k, v, m, fill=float("-inf")), "0/0"),
    ("6.4", lambda q, k, v, m: attention(q, k, v, m, fill=-1e9), "uniform"),
    ("6.4", lambda q, k, v, m: (q @ k.transpose(-2, -1) / 8**0.5).softmax(-1) @ v, "ignored"),
]


test_a_realistic_wrong_answer_gets_its_intended_hint = wrong_answer_test(WRONG)
