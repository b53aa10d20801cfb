r"""Attention and the Transformer encoder, written from the equations (chapter 6).

Everything is *batch-first*: a batch of sequences is a tensor of shape
``(batch, length, d_model)``, as with ``nn.MultiheadAttention(batch_first=True)``.

Mask convention, used by every function and module here: a mask is a **boolean** tensor,
broadcastable to ``(..., L_q, L_k)``, and ``True`` means *query i may attend to key j*, as the
boolean ``attn_mask`` of :func:`torch.nn.functional.scaled_dot_product_attention`. (PyTorch's
``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` use the opposite boolean
convention, ``True`` = *masked out*: pass ``~mask`` to them.) A query whose row of the mask is
all ``False`` attends to nothing: its attention weights are all zero and its attention output is
the zero vector, without NaN, exactly as PyTorch's ``scaled_dot_product_attention`` returns.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from . import _validate

__all__ = [
    "MultiHeadAttention",
    "PositionalEncoding",
    "TransformerBlock",
    "TransformerClassifier",
    "causal_mask",
    "scaled_dot_product_attention",
    "sinusoidal_encoding",
]


# ------------------------------------------------------------------------------------ checks
def _tensor(x, name: str, ndim: int | None = None, min_ndim: int | None = None) -> torch.Tensor:
    """Raise unless ``x`` is a floating-point tensor with ``ndim`` (or at least ``min_ndim``)
    dimensions."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")
    if ndim is not None and x.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {tuple(x.shape)}")
    if min_ndim is not None and x.dim() < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions; got {tuple(x.shape)}")
    return x


def _mask(mask, target: tuple[int, ...], name: str = "mask") -> torch.Tensor:
    """Return ``mask`` if it is boolean and broadcasts to ``target`` without growing it."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a boolean torch.Tensor; got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise ValueError(
            f"{name} must be a boolean tensor (True = may attend); got dtype {mask.dtype}"
        )
    try:
        fits = torch.broadcast_shapes(mask.shape, target) == torch.Size(target)
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(
            f"{name} of shape {tuple(mask.shape)} does not broadcast to the attention scores' "
            f"shape {tuple(target)} (..., L_q, L_k)"
        )
    return mask


def _dropout(p, name: str = "dropout") -> float:
    p = _validate.nonnegative_float(p, name)
    if p >= 1:
        raise ValueError(f"{name} must be a probability in [0, 1); got {p}")
    return p


# ------------------------------------------------------------------------------- attention
def causal_mask(length: int, device=None) -> torch.Tensor:
    r"""The causal (look-back only) mask: :math:`M_{ij} = [\,j \le i\,]`.

    Parameters
    ----------
    length : int
        Sequence length :math:`L > 0`.
    device : str or torch.device, optional

    Returns
    -------
    torch.Tensor of bool, shape (length, length)
        Lower triangular: query :math:`i` may attend to keys :math:`0, \dots, i`.

    Raises
    ------
    TypeError, ValueError
        If ``length`` is not a positive int.
    """
    length = _validate.positive_int(length, "length")
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0):
    r"""Scaled dot-product attention (Vaswani et al., 2017), with its weights.

    .. math::

        A = \operatorname{softmax}\!\Big(\frac{Q K^\top}{\sqrt{d_k}} + M\Big), \qquad
        \operatorname{Attention}(Q, K, V) = A V,
        \qquad M_{ij} = \begin{cases} 0 & \text{if } \texttt{mask}_{ij} \\
        -\infty & \text{otherwise} \end{cases}

    The softmax runs over the keys (last dimension): row :math:`i` of :math:`A` says how much
    query :math:`i` draws from each value. A row whose mask is all ``False`` has no key to
    attend to; its weights are set to zero, so its output is the zero vector (NaN-free, as
    :func:`torch.nn.functional.scaled_dot_product_attention`).

    Parameters
    ----------
    q : torch.Tensor, shape (..., L_q, d_k)
        Queries.
    k : torch.Tensor, shape (..., L_k, d_k)
        Keys; the leading dimensions must equal those of ``q``.
    v : torch.Tensor, shape (..., L_k, d_v)
        Values.
    mask : torch.Tensor of bool, optional
        Broadcastable to ``(..., L_q, L_k)``; ``True`` = may attend (see :func:`causal_mask`).
    dropout_p : float, default 0.0
        Dropout probability applied to :math:`A` before it multiplies :math:`V` (pass 0 in
        evaluation). The returned weights are those *before* dropout.

    Returns
    -------
    output : torch.Tensor, shape (..., L_q, d_v)
    weights : torch.Tensor, shape (..., L_q, L_k)
        :math:`A`; each row sums to 1 (or is all zero where everything is masked).

    Raises
    ------
    TypeError
        If an input is not a tensor.
    ValueError
        If ``q``, ``k``, ``v`` are not floating point, have fewer than 2 dimensions, or disagree
        in leading (batch) dimensions, in :math:`d_k` or in :math:`L_k`; if ``mask`` is not
        boolean or does not broadcast to ``(..., L_q, L_k)``; if ``dropout_p`` is not in
        :math:`[0, 1)`.
    """
    q = _tensor(q, "q", min_ndim=2)
    k = _tensor(k, "k", min_ndim=2)
    v = _tensor(v, "v", min_ndim=2)
    if k.shape[:-2] != q.shape[:-2] or v.shape[:-2] != q.shape[:-2]:
        raise ValueError(
            "q, k and v must have the same leading (batch) dimensions; got shapes "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(
            f"k must have the feature size d_k = {q.shape[-1]} of q; got k of shape "
            f"{tuple(k.shape)}"
        )
    if v.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"v must have one row per key (L_k = {k.shape[-2]}); got v of shape {tuple(v.shape)}"
        )
    dropout_p = _dropout(dropout_p, "dropout_p")

    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., L_q, L_k)
    if mask is not None:
        mask = _mask(mask, scores.shape)
        # The most negative finite number, not -inf: a fully masked row then gives a uniform
        # softmax instead of 0/0 = NaN (in the forward and the backward pass); it is zeroed below.
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = scores.softmax(dim=-1)
    if mask is not None:
        weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    attended = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
    return attended @ v, weights


class MultiHeadAttention(nn.Module):
    r"""Multi-head attention: :math:`h` attentions of width :math:`d_k = d_\text{model}/h`
    side by side.

    .. math::

        \operatorname{MultiHead}(Q, K, V) = \operatorname{Concat}(\text{head}_1, \dots,
        \text{head}_h)\, W^O, \qquad
        \text{head}_i = \operatorname{Attention}(Q W^Q_i, K W^K_i, V W^V_i)

    :math:`W^Q, W^K, W^V, W^O` are :class:`torch.nn.Linear` layers ``w_q``, ``w_k``, ``w_v``,
    ``w_o`` of shape :math:`d_\text{model} \times d_\text{model}` with biases; head :math:`i`
    uses columns :math:`i d_k, \dots, (i+1) d_k - 1` of the first three. This is the computation
    of :class:`torch.nn.MultiheadAttention` (``batch_first=True``), whose packed
    ``in_proj_weight`` stacks :math:`W^Q, W^K, W^V`.

    Parameters
    ----------
    d_model : int
        Width :math:`d_\text{model}` of the inputs and outputs.
    num_heads : int
        Number of heads :math:`h`; must divide ``d_model``.
    dropout : float, default 0.0
        Dropout on the attention weights during training.

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive int, ``d_model`` is not divisible by ``num_heads``, or
        ``dropout`` is not in :math:`[0, 1)`.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.d_model = _validate.positive_int(d_model, "d_model")
        self.num_heads = _validate.positive_int(num_heads, "num_heads")
        if d_model % num_heads:
            raise ValueError(
                f"d_model must be divisible by num_heads; got d_model={d_model}, "
                f"num_heads={num_heads}"
            )
        self.d_k = d_model // num_heads
        self.dropout = _dropout(dropout)
        self.w_q = nn.Linear(d_model, d_model)
        self.w_k = nn.Linear(d_model, d_model)
        self.w_v = nn.Linear(d_model, d_model)
        self.w_o = nn.Linear(d_model, d_model)

    @torch.no_grad()
    def load_torch_weights(self, reference: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy the weights of a ``torch.nn.MultiheadAttention`` of the same size into this module.

        PyTorch stacks :math:`W^Q, W^K, W^V` in one ``in_proj_weight`` of shape
        ``(3 d_model, d_model)``; they are split into ``w_q``, ``w_k``, ``w_v``, and
        ``out_proj`` goes to ``w_o``. Used to check that both compute the same function.

        Parameters
        ----------
        reference : torch.nn.MultiheadAttention
            With ``embed_dim == d_model``, the same number of heads, and biases.

        Returns
        -------
        MultiHeadAttention
            ``self``.

        Raises
        ------
        ValueError
            If the sizes differ or ``reference`` has separate q/k/v dimensions or no biases.
        """
        if not isinstance(reference, nn.MultiheadAttention):
            raise TypeError(
                f"reference must be nn.MultiheadAttention; got {type(reference).__name__}"
            )
        if (
            reference.embed_dim != self.d_model
            or reference.num_heads != self.num_heads
            or reference.in_proj_weight is None
            or reference.in_proj_bias is None
        ):
            raise ValueError(
                "reference must have embed_dim == d_model, the same num_heads, one in_proj_weight "
                "and biases"
            )
        for linear, weight, bias in zip(
            (self.w_q, self.w_k, self.w_v),
            reference.in_proj_weight.chunk(3),
            reference.in_proj_bias.chunk(3),
            strict=True,
        ):
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)
        self.w_o.load_state_dict(reference.out_proj.state_dict())
        return self

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, L, d_model) -> (batch, heads, L, d_k)."""
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.d_k).transpose(1, 2)

    def forward(self, query, key, value, mask=None, need_weights: bool = True):
        r"""Attend from ``query`` to ``key``/``value``.

        Parameters
        ----------
        query : torch.Tensor, shape (batch, L_q, d_model)
        key : torch.Tensor, shape (batch, L_k, d_model)
        value : torch.Tensor, shape (batch, L_k, d_model)
        mask : torch.Tensor of bool, optional
            ``True`` = may attend. Shape ``(L_q, L_k)`` (the same for every sequence),
            ``(batch, L_q, L_k)`` (one per sequence) or ``(batch, num_heads, L_q, L_k)``;
            any of these dimensions may be 1 to broadcast, e.g. ``(batch, 1, L_k)`` to hide
            padding keys.
        need_weights : bool, default True
            Return the attention weights (else ``None``).

        Returns
        -------
        output : torch.Tensor, shape (batch, L_q, d_model)
            A query that may attend to no key gets the output bias :math:`b^O`.
        weights : torch.Tensor, shape (batch, num_heads, L_q, L_k), or None
            Per-head weights before dropout, each row summing to 1; ``weights.mean(dim=1)`` is
            what ``nn.MultiheadAttention`` returns by default (head-averaged).

        Raises
        ------
        ValueError
            If the inputs are not 3-D with last dimension ``d_model``, disagree in batch size,
            or ``key`` and ``value`` in length; if ``mask`` is not boolean or has a shape that
            does not fit.
        """
        query = _tensor(query, "query", ndim=3)
        key = _tensor(key, "key", ndim=3)
        value = _tensor(value, "value", ndim=3)
        for name, x in (("query", query), ("key", key), ("value", value)):
            if x.shape[-1] != self.d_model:
                raise ValueError(
                    f"{name} must have d_model = {self.d_model} features (batch, length, "
                    f"d_model); got shape {tuple(x.shape)}"
                )
        if not query.shape[0] == key.shape[0] == value.shape[0]:
            raise ValueError(
                "query, key and value must have the same batch size; got shapes "
                f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}"
            )
        if key.shape[1] != value.shape[1]:
            raise ValueError(
                f"key and value must have the same length; got {key.shape[1]} and {value.shape[1]}"
            )
        if mask is not None:
            batch, length_q, length_k = query.shape[0], query.shape[1], key.shape[1]
            ndim = mask.dim() if isinstance(mask, torch.Tensor) else 4
            target = {
                1: (length_q, length_k),
                2: (length_q, length_k),
                3: (batch, length_q, length_k),
            }
            mask = _mask(mask, target.get(ndim, (batch, self.num_heads, length_q, length_k)))
            if ndim == 3:  # (batch, L_q, L_k): the same for every head
                mask = mask.unsqueeze(1)

        q = self._split_heads(self.w_q(query))
        k = self._split_heads(self.w_k(key))
        v = self._split_heads(self.w_v(value))
        p = self.dropout if self.training else 0.0
        heads, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p=p)
        concat = heads.transpose(1, 2).reshape(query.shape[0], query.shape[1], self.d_model)
        return self.w_o(concat), (weights if need_weights else None)


# ------------------------------------------------------------------------ position encoding
def sinusoidal_encoding(length: int, d_model: int) -> torch.Tensor:
    r"""The sinusoidal position table of Vaswani et al. (2017), computed in float64.

    .. math::

        PE_{(pos,\, 2i)} = \sin\!\big(pos / 10000^{2i/d_\text{model}}\big), \qquad
        PE_{(pos,\, 2i+1)} = \cos\!\big(pos / 10000^{2i/d_\text{model}}\big)

    Each pair of columns :math:`(2i, 2i+1)` is a rotation at its own frequency, with
    wavelengths from :math:`2\pi` to :math:`10000 \cdot 2\pi`. An odd ``d_model`` is fine: its
    last column is a sine, :math:`i = (d_\text{model} - 1)/2`.

    Parameters
    ----------
    length : int
        Number of positions, :math:`pos = 0, \dots, \text{length} - 1`.
    d_model : int
        Number of columns.

    Returns
    -------
    torch.Tensor of float64, shape (length, d_model)

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive int.
    """
    length = _validate.positive_int(length, "length")
    d_model = _validate.positive_int(d_model, "d_model")
    position = torch.arange(length, dtype=torch.float64).unsqueeze(1)  # (length, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # 2i = 0, 2, 4, ...
    angle = position / 10000.0 ** (two_i / d_model)  # (length, ceil(d_model / 2))
    pe = torch.empty(length, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return pe


class PositionalEncoding(nn.Module):
    r"""Add the sinusoidal position encoding to a batch-first sequence: :math:`x + PE`.

    .. math::

        \text{output}_{b,\, pos} = \operatorname{dropout}\big(x_{b,\, pos} + PE_{pos}\big)

    with :math:`PE` from :func:`sinusoidal_encoding`, stored as the buffer ``pe`` of shape
    ``(1, max_len, d_model)`` (not saved in ``state_dict``: it is a fixed function of the
    shape). Token :math:`pos` of *every* sequence in the batch gets the same row
    :math:`PE_{pos}`: position is the second dimension, never the first.

    Parameters
    ----------
    d_model : int
        Width of the inputs; odd widths are supported.
    max_len : int, default 5000
        Longest sequence accepted.
    dropout : float, default 0.0
        Dropout applied to the sum during training.

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive int or ``dropout`` is not in :math:`[0, 1)`.
    """

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.0):
        super().__init__()
        self.d_model = _validate.positive_int(d_model, "d_model")
        self.max_len = _validate.positive_int(max_len, "max_len")
        self.dropout = nn.Dropout(_dropout(dropout))
        pe = sinusoidal_encoding(max_len, d_model).to(torch.get_default_dtype())
        self.register_buffer("pe", pe.unsqueeze(0), persistent=False)  # (1, max_len, d_model)

    def forward(self, x):
        """Return ``dropout(x + pe[:, :x.size(1)])``.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, length, d_model)

        Returns
        -------
        torch.Tensor, same shape as ``x``

        Raises
        ------
        ValueError
            If ``x`` is not 3-D with last dimension ``d_model``, or ``length > max_len``.
        """
        x = _tensor(x, "x", ndim=3)
        if x.shape[-1] != self.d_model:
            raise ValueError(
                f"x must be batch-first (batch, length, d_model={self.d_model}); got shape "
                f"{tuple(x.shape)}"
            )
        if x.shape[1] > self.max_len:
            raise ValueError(
                f"x has {x.shape[1]} positions, more than max_len = {self.max_len}; build "
                "PositionalEncoding with a larger max_len"
            )
        return self.dropout(x + self.pe[:, : x.shape[1]].to(x.dtype))


# ------------------------------------------------------------------------------ the encoder
class TransformerBlock(nn.Module):
    r"""One Transformer encoder layer: self-attention and a feed-forward net, each in a residual.

    .. math::

        \text{post-norm:}\quad
        \begin{aligned}
        h &= \operatorname{LN}_1\big(x + \operatorname{MHA}(x, x, x)\big) \\
        y &= \operatorname{LN}_2\big(h + \operatorname{FFN}(h)\big)
        \end{aligned}
        \qquad\quad
        \text{pre-norm:}\quad
        \begin{aligned}
        h &= x + \operatorname{MHA}(\operatorname{LN}_1(x)) \\
        y &= h + \operatorname{FFN}(\operatorname{LN}_2(h))
        \end{aligned}

    with :math:`\operatorname{FFN}(x) = W_2\, \operatorname{dropout}(\max(0, W_1 x + b_1))
    + b_2` and dropout also on each branch before it joins the residual. Post-norm is the
    original paper's order and the default of :class:`torch.nn.TransformerEncoderLayer`;
    pre-norm trains more easily when deep. With the same weights, the block computes what
    ``nn.TransformerEncoderLayer(d_model, num_heads, d_ff, dropout, batch_first=True,
    norm_first=norm_first)`` computes.

    Parameters
    ----------
    d_model : int
    num_heads : int
        Must divide ``d_model``.
    d_ff : int
        Width of the feed-forward hidden layer.
    dropout : float, default 0.1
    norm_first : bool, default False
        Pre-norm when True, post-norm when False.

    Attributes
    ----------
    attention_weights : torch.Tensor or None
        The (detached) weights of the last forward pass, shape (batch, num_heads, L, L).

    Raises
    ------
    TypeError, ValueError
        On sizes that are not positive ints, ``d_model % num_heads != 0``, a ``dropout``
        outside :math:`[0, 1)` or a non-bool ``norm_first``.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        norm_first: bool = False,
    ):
        super().__init__()
        d_ff = _validate.positive_int(d_ff, "d_ff")
        dropout = _dropout(dropout)
        if not isinstance(norm_first, bool):
            raise TypeError(f"norm_first must be True or False; got {type(norm_first).__name__}")
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.feed_forward = nn.Sequential(
            nn.Linear(d_model, d_ff),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(d_ff, d_model),
        )
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.attention_weights = None

    @torch.no_grad()
    def load_torch_weights(self, reference: nn.TransformerEncoderLayer) -> TransformerBlock:
        """Copy the weights of a ``torch.nn.TransformerEncoderLayer`` of the same shape.

        Attention as in :meth:`MultiHeadAttention.load_torch_weights`; ``linear1`` and
        ``linear2`` go to the feed-forward network, ``norm1`` and ``norm2`` to the norms.

        Parameters
        ----------
        reference : torch.nn.TransformerEncoderLayer
            With the same d_model, heads and d_ff, and a ReLU activation.

        Returns
        -------
        TransformerBlock
            ``self``.
        """
        if not isinstance(reference, nn.TransformerEncoderLayer):
            raise TypeError(
                f"reference must be nn.TransformerEncoderLayer; got {type(reference).__name__}"
            )
        self.self_attn.load_torch_weights(reference.self_attn)
        self.feed_forward[0].load_state_dict(reference.linear1.state_dict())
        self.feed_forward[3].load_state_dict(reference.linear2.state_dict())
        self.norm1.load_state_dict(reference.norm1.state_dict())
        self.norm2.load_state_dict(reference.norm2.state_dict())
        return self

    def _attend(self, x, mask):
        out, weights = self.self_attn(x, x, x, mask)
        self.attention_weights = weights.detach()
        return self.dropout1(out)

    def forward(self, x, mask=None):
        """Apply the block.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, length, d_model)
        mask : torch.Tensor of bool, optional
            Self-attention mask, ``True`` = may attend (see :meth:`MultiHeadAttention.forward`).

        Returns
        -------
        torch.Tensor, shape (batch, length, d_model)
        """
        if self.norm_first:
            x = x + self._attend(self.norm1(x), mask)
            return x + self.dropout2(self.feed_forward(self.norm2(x)))
        x = self.norm1(x + self._attend(x, mask))
        return self.norm2(x + self.dropout2(self.feed_forward(x)))


class TransformerClassifier(nn.Module):
    r"""Token embedding, positional encoding, Transformer blocks, and a linear read-out.

    .. math::

        h^{(0)} = E[x] + PE, \qquad h^{(\ell)} = \operatorname{Block}_\ell(h^{(\ell - 1)}),
        \qquad \text{logits} = h^{(N)} W + b

    The embedding :math:`E` is :class:`torch.nn.Embedding` (initialised :math:`\mathcal N(0,
    1)`) and is *not* multiplied by :math:`\sqrt{d_\text{model}}`: its entries then have the
    same scale as those of :math:`PE` (in :math:`[-1, 1]`), so neither drowns the other. (The
    paper's :math:`\sqrt{d_\text{model}}` factor compensates for embeddings initialised at
    scale :math:`1/\sqrt{d_\text{model}}`.)

    After each forward pass, :attr:`attention_maps` holds every layer's attention weights, for
    plotting.

    Parameters
    ----------
    vocab_size : int
        Number of token ids; inputs must lie in ``0 .. vocab_size - 1``.
    num_classes : int
        Outputs per token (or per sequence when pooled).
    d_model, num_heads, d_ff, num_layers : int, defaults 64, 4, 128, 2
    max_len : int, default 64
        Longest sequence accepted (when ``positional_encoding`` is on).
    dropout : float, default 0.0
        Dropout in the positional encoding and in every block.
    positional_encoding : bool, default True
        Without it the model sees a *set* of tokens: every block is permutation-equivariant.
    pool : {None, "mean"}, default None
        ``None``: per-token logits ``(batch, length, num_classes)``; ``"mean"``: average the
        last hidden states over positions first, giving ``(batch, num_classes)``.
    norm_first : bool, default False
        Pre-norm blocks, followed by a final :class:`torch.nn.LayerNorm` before the read-out.

    Raises
    ------
    TypeError, ValueError
        On sizes that are not positive ints, ``d_model % num_heads != 0``, a bad ``dropout``
        or ``pool``.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        d_model: int = 64,
        num_heads: int = 4,
        d_ff: int = 128,
        num_layers: int = 2,
        max_len: int = 64,
        dropout: float = 0.0,
        positional_encoding: bool = True,
        pool: str | None = None,
        norm_first: bool = False,
    ):
        super().__init__()
        self.vocab_size = _validate.positive_int(vocab_size, "vocab_size")
        num_classes = _validate.positive_int(num_classes, "num_classes")
        d_model = _validate.positive_int(d_model, "d_model")
        num_layers = _validate.positive_int(num_layers, "num_layers")
        if pool is not None:
            _validate.one_of(pool, "pool", {"mean"})
        if not isinstance(positional_encoding, bool):
            raise TypeError(
                "positional_encoding must be True or False; got "
                f"{type(positional_encoding).__name__}"
            )
        self.pool = pool
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.positional_encoding = (
            PositionalEncoding(d_model, max_len, dropout) if positional_encoding else None
        )
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, num_heads, d_ff, dropout, norm_first)
            for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(d_model) if norm_first else None
        self.head = nn.Linear(d_model, num_classes)

    @property
    def attention_maps(self) -> list:
        """Per layer, the attention weights (batch, num_heads, L, L) of the last forward pass."""
        return [block.attention_weights for block in self.blocks]

    def forward(self, tokens, mask=None):
        """Logits for a batch of token-id sequences.

        Parameters
        ----------
        tokens : torch.Tensor of int, shape (batch, length)
        mask : torch.Tensor of bool, optional
            Self-attention mask for every block, ``True`` = may attend.

        Returns
        -------
        torch.Tensor
            ``(batch, length, num_classes)``, or ``(batch, num_classes)`` with ``pool="mean"``.

        Raises
        ------
        ValueError
            If ``tokens`` is not a 2-D integer tensor with ids in ``0 .. vocab_size - 1``, or is
            longer than ``max_len``.
        """
        if not isinstance(tokens, torch.Tensor):
            raise TypeError(f"tokens must be a torch.Tensor; got {type(tokens).__name__}")
        if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
            raise ValueError(f"tokens must be an integer tensor of ids; got dtype {tokens.dtype}")
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be 2-D (batch, length); got shape {tuple(tokens.shape)}")
        if tokens.numel():
            lo, hi = int(tokens.min()), int(tokens.max())
            if lo < 0 or hi >= self.vocab_size:
                raise ValueError(
                    f"tokens must be ids in 0..{self.vocab_size - 1}; found {lo if lo < 0 else hi}"
                )
        pe = self.positional_encoding
        if pe is not None and tokens.shape[1] > pe.max_len:
            raise ValueError(
                f"tokens has {tokens.shape[1]} positions, more than max_len = {pe.max_len}"
            )
        h = self.embedding(tokens)
        if pe is not None:
            h = pe(h)
        for block in self.blocks:
            h = block(h, mask)
        if self.final_norm is not None:
            h = self.final_norm(h)
        if self.pool == "mean":
            h = h.mean(dim=1)
        return self.head(h)
