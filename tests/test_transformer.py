import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from companion.data import make_reversal_task
from companion.training import Trainer
from companion.transformer import (
    MultiHeadAttention,
    PositionalEncoding,
    TransformerBlock,
    TransformerClassifier,
    causal_mask,
    scaled_dot_product_attention,
    sinusoidal_encoding,
)

# float32 throughout unless a test says otherwise; the reference implementations run the same
# matrix products in a different order, which costs a few ulps (~1e-7) per entry.
TOL = 1e-6


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def random_mask(*shape, seed=0, p=0.6):
    """A boolean mask with about ``p`` of the entries True and every row holding a True."""
    mask = torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) < p
    mask[..., 0] = True
    return mask


def max_diff(a, b):
    return (a - b).abs().max().item()


# ------------------------------------------------------------------------------ attention
SDPA_MASKS = {
    "none": lambda lq, lk: None,
    "causal": lambda lq, lk: causal_mask(lq),
    "random (B, H, Lq, Lk)": lambda lq, lk: random_mask(2, 3, lq, lk),
    "padding (B, 1, 1, Lk)": lambda lq, lk: random_mask(2, 1, 1, lk, seed=1),
}


@pytest.mark.parametrize("make_mask", SDPA_MASKS.values(), ids=SDPA_MASKS.keys())
def test_attention_matches_torch_scaled_dot_product_attention(make_mask):
    q, k, v = randn(2, 3, 7, 8, seed=0), randn(2, 3, 7, 8, seed=1), randn(2, 3, 7, 5, seed=2)
    mask = make_mask(7, 7)
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert out.shape == (2, 3, 7, 5) and weights.shape == (2, 3, 7, 7)
    assert max_diff(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask)) <= TOL
    assert max_diff(weights.sum(-1), torch.ones(2, 3, 7)) <= TOL
    if mask is not None:
        assert (weights[~mask.expand_as(weights)] == 0).all()


def test_attention_with_more_keys_than_queries_matches_torch():
    q, k, v = randn(4, 3, 6, seed=0), randn(4, 9, 6, seed=1), randn(4, 9, 2, seed=2)
    mask = random_mask(4, 3, 9)
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert weights.shape == (4, 3, 9)
    assert max_diff(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask)) <= TOL


def test_attention_weights_are_softmax_of_scaled_scores():
    q, k = randn(5, 4, seed=0, dtype=torch.float64), randn(6, 4, seed=1, dtype=torch.float64)
    v = randn(6, 3, seed=2, dtype=torch.float64)
    out, weights = scaled_dot_product_attention(q, k, v)
    expected = torch.softmax(q @ k.T / 2.0, dim=-1)  # sqrt(d_k) = sqrt(4)
    assert max_diff(weights, expected) <= 1e-15
    assert max_diff(out, expected @ v) <= 1e-15


def test_fully_masked_query_gets_zero_weights_and_output_and_finite_gradients():
    q = randn(1, 4, 8, seed=0).requires_grad_()
    k, v = randn(1, 6, 8, seed=1).requires_grad_(), randn(1, 6, 8, seed=2).requires_grad_()
    mask = random_mask(4, 6)
    mask[2] = False  # query 2 may attend to nothing
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert (weights[0, 2] == 0).all() and (out[0, 2] == 0).all()
    assert max_diff(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask)) <= TOL
    out.sum().backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()
    assert (q.grad[0, 2] == 0).all()


def test_causal_mask_lets_position_i_see_only_positions_up_to_i():
    mask = causal_mask(4)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [
        [True, False, False, False],
        [True, True, False, False],
        [True, True, True, False],
        [True, True, True, True],
    ]


def test_causal_attention_output_ignores_future_tokens():
    q, k, v = randn(1, 6, 4, seed=0), randn(1, 6, 4, seed=1), randn(1, 6, 4, seed=2)
    out, _ = scaled_dot_product_attention(q, k, v, causal_mask(6))
    k2, v2 = k.clone(), v.clone()
    k2[:, 4:], v2[:, 4:] = 100.0, -100.0  # change the last two positions
    out2, _ = scaled_dot_product_attention(q, k2, v2, causal_mask(6))
    assert torch.equal(out[:, :4], out2[:, :4])
    assert not torch.allclose(out[:, 4:], out2[:, 4:])


# --------------------------------------------------------------------- multi-head attention
def mha_pair(d_model=16, num_heads=4, seed=0):
    """Our MultiHeadAttention and nn.MultiheadAttention(batch_first=True) with equal weights."""
    torch.manual_seed(seed)
    ours = MultiHeadAttention(d_model, num_heads)
    theirs = nn.MultiheadAttention(d_model, num_heads, batch_first=True)
    with torch.no_grad():  # non-zero biases on both sides
        theirs.in_proj_bias.normal_(0.0, 0.1)
        theirs.out_proj.bias.normal_()
    ours.load_torch_weights(theirs)
    return ours, theirs


MHA_MASKS = {
    "none": lambda b, h, lq, lk: None,
    "causal (Lq, Lk)": lambda b, h, lq, lk: causal_mask(lq) if lq == lk else random_mask(lq, lk),
    "per sequence (B, Lq, Lk)": lambda b, h, lq, lk: random_mask(b, lq, lk, seed=3),
}


def torch_attn_mask(mask, num_heads):
    """Our mask (True = may attend) as nn.MultiheadAttention's (True = may NOT attend)."""
    if mask is None:
        return None
    if mask.dim() == 3:  # nn.MultiheadAttention wants (batch * heads, Lq, Lk)
        mask = mask.repeat_interleave(num_heads, dim=0)
    return ~mask


@pytest.mark.parametrize("make_mask", MHA_MASKS.values(), ids=MHA_MASKS.keys())
@pytest.mark.parametrize("length_k", [7, 11], ids=["self-attention", "cross-attention"])
def test_multi_head_attention_matches_nn_multihead_attention(make_mask, length_k):
    ours, theirs = mha_pair()
    query = randn(3, 7, 16, seed=1)
    key = query if length_k == 7 else randn(3, length_k, 16, seed=2)
    value = query if length_k == 7 else randn(3, length_k, 16, seed=3)
    mask = make_mask(3, 4, 7, length_k)
    out, weights = ours(query, key, value, mask)
    ref_out, ref_weights = theirs(query, key, value, attn_mask=torch_attn_mask(mask, 4))
    assert weights.shape == (3, 4, 7, length_k)  # per head
    assert max_diff(out, ref_out) <= TOL
    assert max_diff(weights.mean(dim=1), ref_weights) <= TOL
    per_head = theirs(
        query, key, value, attn_mask=torch_attn_mask(mask, 4), average_attn_weights=False
    )[1]
    assert max_diff(weights, per_head) <= TOL


def test_multi_head_attention_gradients_match_nn_multihead_attention():
    ours, theirs = mha_pair()
    x = randn(2, 5, 16, seed=4)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, _ = ours(x1, x1, x1, causal_mask(5))
    ref, _ = theirs(x2, x2, x2, attn_mask=~causal_mask(5))
    (out**2).sum().backward()
    (ref**2).sum().backward()
    # Gradients are sums over the batch and reach ~10: compare relative to their size.
    close = {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(x1.grad, x2.grad, **close)
    torch.testing.assert_close(ours.w_o.weight.grad, theirs.out_proj.weight.grad, **close)
    torch.testing.assert_close(ours.w_q.weight.grad, theirs.in_proj_weight.grad[:16], **close)
    torch.testing.assert_close(ours.w_v.bias.grad, theirs.in_proj_bias.grad[32:], **close)


def test_multi_head_attention_need_weights_false_returns_none_and_same_output():
    ours, _ = mha_pair()
    x = randn(2, 5, 16, seed=4)
    out, weights = ours(x, x, x, need_weights=False)
    assert weights is None
    assert torch.equal(out, ours(x, x, x)[0])


def test_multi_head_attention_padding_mask_hides_padded_keys():
    ours, _ = mha_pair()
    x = randn(2, 6, 16, seed=5)
    keep = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])  # sequence 1 has 2 pads
    out, weights = ours(x, x, x, keep[:, None, :])  # (batch, 1, L_k): the same for every query
    assert (weights[1, :, :, 4:] == 0).all()
    x2 = x.clone()
    x2[1, 4:] = 123.0  # whatever the pads hold, the real tokens' outputs do not change
    out2, _ = ours(x2, x2, x2, keep[:, None, :])
    assert max_diff(out[1, :4], out2[1, :4]) <= TOL


def test_multi_head_attention_dropout_only_in_training_and_weights_stay_normalised():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, dropout=0.5)
    x = randn(2, 5, 16)
    mha.eval()
    out_a, w = mha(x, x, x)
    assert torch.equal(out_a, mha(x, x, x)[0])
    mha.train()
    out_b, w_train = mha(x, x, x)
    assert not torch.allclose(out_a, out_b)
    assert max_diff(w_train.sum(-1), torch.ones(2, 4, 5)) <= TOL  # returned before dropout


# ---------------------------------------------------------------------- transformer block
def block_pair(norm_first, d_model=16, num_heads=4, d_ff=32, seed=0):
    torch.manual_seed(seed)
    ours = TransformerBlock(d_model, num_heads, d_ff, dropout=0.0, norm_first=norm_first)
    theirs = nn.TransformerEncoderLayer(
        d_model, num_heads, d_ff, dropout=0.0, batch_first=True, norm_first=norm_first
    )
    with torch.no_grad():
        for p in theirs.parameters():  # LayerNorms start at (1, 0): make them non-trivial
            p.add_(0.1 * torch.randn_like(p))
    ours.load_torch_weights(theirs)
    return ours, theirs


@pytest.mark.parametrize("masked", [False, True], ids=["no mask", "causal mask"])
@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_block_matches_nn_transformer_encoder_layer(norm_first, masked, mode):
    ours, theirs = block_pair(norm_first)
    ours.train(mode == "train")
    theirs.train(mode == "train")  # dropout is 0, so training mode only changes the code path
    x = randn(3, 9, 16, seed=6)
    mask = causal_mask(9) if masked else None
    out = ours(x, mask)
    ref = theirs(x, src_mask=None if mask is None else ~mask)  # PyTorch: True = masked out
    # 1e-5, not 1e-6: LayerNorm's outputs reach |y| ~ 3-4, where one float32 ulp is 2.4e-7, and
    # it divides by a float32 standard deviation that amplifies earlier few-ulp differences.
    # Measured over 160 seeds x cases: max 9.5e-7, i.e. 4 ulps, too close to 1e-6 to be robust.
    assert max_diff(out, ref) <= 1e-5
    assert ours.attention_weights.shape == (3, 4, 9, 9)


def test_block_activations_are_separate_relu_modules():
    block = TransformerBlock(16, 4, 32)
    relus = [m for m in block.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 1 and isinstance(block.feed_forward[1], nn.ReLU)
    classifier = TransformerClassifier(10, 10, d_model=16, num_heads=4, d_ff=32, num_layers=3)
    relus = [m for m in classifier.modules() if isinstance(m, nn.ReLU)]
    assert len({id(m) for m in relus}) == 3


# ------------------------------------------------------------------- positional encoding
@pytest.mark.parametrize("d_model", [8, 7], ids=["even d_model", "odd d_model"])
def test_positional_encoding_matches_the_sine_cosine_formula(d_model):
    table = sinusoidal_encoding(50, d_model)
    for pos in range(50):
        for j in range(d_model):
            i = j // 2
            angle = pos / 10000 ** (2 * i / d_model)
            expected = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert abs(table[pos, j].item() - expected) <= 1e-12
    pe = PositionalEncoding(d_model, max_len=50)
    assert pe.pe.shape == (1, 50, d_model) and pe.pe.dtype == torch.float32
    assert max_diff(pe.pe[0].double(), table) <= 1e-7  # float32 rounding only


def test_positional_encoding_of_a_shifted_position_is_a_rotation():
    # The reason for sine/cosine pairs: PE(pos + k) is a fixed linear map of PE(pos).
    d, k = 16, 5
    table = sinusoidal_encoding(40, d)
    omega = 1 / 10000 ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    c, s = torch.cos(k * omega), torch.sin(k * omega)
    sin_part, cos_part = table[:-k, 0::2], table[:-k, 1::2]
    assert max_diff(table[k:, 0::2], sin_part * c + cos_part * s) <= 1e-12
    assert max_diff(table[k:, 1::2], cos_part * c - sin_part * s) <= 1e-12


class NotesPositionalEncoding(nn.Module):
    """The original notes' class, verbatim in substance: a sequence-first buffer."""

    def __init__(self, d_model, max_len=5000):
        super().__init__()
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        pe = pe.unsqueeze(0).transpose(0, 1)  # (max_len, 1, d_model)
        self.register_buffer("pe", pe)

    def forward(self, x):
        return x + self.pe[: x.size(0), :]


def test_pitfall_notes_positional_encoding_adds_batch_index_to_batch_first_input():
    batch, length, d = 4, 6, 8
    x = randn(batch, length, d, seed=7)
    table = sinusoidal_encoding(100, d).float()
    notes = NotesPositionalEncoding(d, max_len=100)(x)  # no error: broadcasting hides the bug
    assert notes.shape == x.shape
    wrong = x + table[:batch, None, :]  # row b of the table, added to every token of sequence b
    right = x + table[None, :length, :]  # row t of the table, added to token t of every sequence
    assert max_diff(notes, wrong) <= 1e-6
    assert max_diff(notes, right) > 0.5
    # Every token of a sequence got the same encoding: the model cannot tell positions apart.
    added = notes - x
    assert max_diff(added, added[:, :1, :].expand_as(x)) <= 1e-6
    ours = PositionalEncoding(d, max_len=100)(x)
    assert max_diff(ours, right) <= 1e-6
    # The notes' class is right only for sequence-first input (length, batch, d_model).
    seq_first = NotesPositionalEncoding(d, max_len=100)(x.transpose(0, 1)).transpose(0, 1)
    assert max_diff(seq_first, ours) <= 1e-6


def test_positional_encoding_takes_float64_input_and_is_not_in_state_dict():
    pe = PositionalEncoding(8, max_len=20)
    x = torch.zeros(2, 5, 8, dtype=torch.float64)
    out = pe(x)
    assert out.dtype == torch.float64
    assert max_diff(out[1], sinusoidal_encoding(5, 8)) <= 1e-7
    assert "pe" not in pe.state_dict()


# ------------------------------------------------------------------------------ classifier
@pytest.mark.parametrize(("pool", "shape"), [(None, (3, 7, 5)), ("mean", (3, 5))])
def test_classifier_output_shape_per_token_or_pooled(pool, shape):
    model = TransformerClassifier(11, 5, d_model=16, num_heads=2, d_ff=32, max_len=10, pool=pool)
    tokens = torch.randint(0, 11, (3, 7), generator=torch.Generator().manual_seed(0))
    assert model(tokens).shape == shape
    maps = model.attention_maps
    assert len(maps) == 2 and all(m.shape == (3, 2, 7, 7) for m in maps)
    assert max_diff(maps[0].sum(-1), torch.ones(3, 2, 7)) <= TOL


def test_classifier_pre_norm_has_final_layer_norm_and_runs():
    model = TransformerClassifier(6, 6, d_model=8, num_heads=2, d_ff=16, norm_first=True)
    assert isinstance(model.final_norm, nn.LayerNorm)
    assert model(torch.zeros(2, 4, dtype=torch.long)).shape == (2, 4, 6)


def test_without_positional_encoding_the_model_is_permutation_equivariant():
    torch.manual_seed(0)
    tokens = torch.randint(0, 12, (4, 9), generator=torch.Generator().manual_seed(1))
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(2))
    no_pe = TransformerClassifier(12, 12, d_model=16, num_heads=4, positional_encoding=False)
    no_pe.eval()
    # Permuting the input tokens permutes the per-token outputs, and nothing else changes.
    assert max_diff(no_pe(tokens[:, perm]), no_pe(tokens)[:, perm]) <= 1e-5
    with_pe = TransformerClassifier(12, 12, d_model=16, num_heads=4)
    with_pe.load_state_dict(no_pe.state_dict())  # same weights; PE is not a parameter
    with_pe.eval()
    assert max_diff(with_pe(tokens[:, perm]), with_pe(tokens)[:, perm]) > 0.1


def test_classifier_learns_a_little_of_sequence_reversal_with_trainer():
    torch.manual_seed(0)
    src, tgt = make_reversal_task(512, seq_len=6, vocab=8, seed=0)
    loader = DataLoader(TensorDataset(src, tgt), batch_size=64)
    model = TransformerClassifier(8, 8, d_model=32, num_heads=4, d_ff=64, num_layers=1)
    trainer = Trainer(model, device="cpu")
    history = trainer.fit(
        loader, loader, 3, optimizer=torch.optim.Adam(model.parameters(), 3e-3), progress=False
    )
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["val_acc"][-1] > 0.3  # chance is 1/8


# ---------------------------------------------------------------------------- bad arguments
def _tokens(*shape, high=10, dtype=torch.long):
    return torch.randint(0, high, shape).to(dtype)


BAD_ARGUMENTS = {
    "d_model not divisible": (lambda: MultiHeadAttention(10, 3), ValueError, "d_model"),
    "num_heads zero": (lambda: MultiHeadAttention(8, 0), ValueError, "num_heads"),
    "d_model negative": (lambda: MultiHeadAttention(-8, 2), ValueError, "d_model"),
    "dropout 1": (lambda: MultiHeadAttention(8, 2, dropout=1.0), ValueError, "dropout"),
    "d_ff zero": (lambda: TransformerBlock(8, 2, 0), ValueError, "d_ff"),
    "norm_first not bool": (lambda: TransformerBlock(8, 2, 8, norm_first=1), TypeError, "norm_"),
    "max_len zero": (lambda: PositionalEncoding(8, max_len=0), ValueError, "max_len"),
    "vocab_size zero": (lambda: TransformerClassifier(0, 3), ValueError, "vocab_size"),
    "num_classes float": (lambda: TransformerClassifier(5, 2.0), TypeError, "num_classes"),
    "num_layers zero": (lambda: TransformerClassifier(5, 3, num_layers=0), ValueError, "num_l"),
    "pool unknown": (lambda: TransformerClassifier(5, 3, pool="max"), ValueError, "pool"),
    "causal length zero": (lambda: causal_mask(0), ValueError, "length"),
    "q k batch mismatch": (
        lambda: scaled_dot_product_attention(randn(2, 3, 4), randn(3, 3, 4), randn(3, 3, 4)),
        ValueError,
        "batch",
    ),
    "k feature mismatch": (
        lambda: scaled_dot_product_attention(randn(2, 3, 4), randn(2, 3, 5), randn(2, 3, 4)),
        ValueError,
        "d_k",
    ),
    "v length mismatch": (
        lambda: scaled_dot_product_attention(randn(2, 3, 4), randn(2, 3, 4), randn(2, 5, 4)),
        ValueError,
        "v must",
    ),
    "q integer": (
        lambda: scaled_dot_product_attention(_tokens(3, 4), randn(3, 4), randn(3, 4)),
        ValueError,
        "q must",
    ),
    "mask float": (
        lambda: scaled_dot_product_attention(
            randn(3, 4), randn(3, 4), randn(3, 4), torch.ones(3, 3)
        ),
        ValueError,
        "mask must be a boolean",
    ),
    "mask wrong shape": (
        lambda: scaled_dot_product_attention(randn(3, 4), randn(5, 4), randn(5, 4), causal_mask(3)),
        ValueError,
        "mask of shape",
    ),
    "mha feature size": (
        lambda: MultiHeadAttention(8, 2)(randn(2, 3, 6), randn(2, 3, 8), randn(2, 3, 8)),
        ValueError,
        "query must have d_model",
    ),
    "mha batch mismatch": (
        lambda: MultiHeadAttention(8, 2)(randn(2, 3, 8), randn(4, 3, 8), randn(4, 3, 8)),
        ValueError,
        "same batch size",
    ),
    "mha key value length": (
        lambda: MultiHeadAttention(8, 2)(randn(2, 3, 8), randn(2, 4, 8), randn(2, 5, 8)),
        ValueError,
        "key and value",
    ),
    "mha not batch-first 3-D": (
        lambda: MultiHeadAttention(8, 2)(randn(3, 8), randn(3, 8), randn(3, 8)),
        ValueError,
        "query must be 3-D",
    ),
    "mha mask int": (
        lambda: MultiHeadAttention(8, 2)(
            randn(2, 3, 8), randn(2, 3, 8), randn(2, 3, 8), causal_mask(3).int()
        ),
        ValueError,
        "mask must be a boolean",
    ),
    "mha mask shape": (
        lambda: MultiHeadAttention(8, 2)(
            randn(2, 3, 8), randn(2, 3, 8), randn(2, 3, 8), causal_mask(4)
        ),
        ValueError,
        "mask of shape",
    ),
    "pe too long": (lambda: PositionalEncoding(8, max_len=4)(randn(2, 5, 8)), ValueError, "max_"),
    "pe wrong width": (lambda: PositionalEncoding(8)(randn(2, 5, 6)), ValueError, "d_model=8"),
    "pe sequence-first 2-D": (lambda: PositionalEncoding(8)(randn(5, 8)), ValueError, "x must"),
    "token id too large": (
        lambda: TransformerClassifier(10, 3)(torch.tensor([[1, 2, 10]])),
        ValueError,
        "tokens must be ids in 0..9; found 10",
    ),
    "token id negative": (
        lambda: TransformerClassifier(10, 3)(torch.tensor([[1, -1]])),
        ValueError,
        "found -1",
    ),
    "tokens float": (
        lambda: TransformerClassifier(10, 3)(_tokens(2, 3, dtype=torch.float32)),
        ValueError,
        "tokens must be an integer",
    ),
    "tokens 1-D": (lambda: TransformerClassifier(10, 3)(_tokens(5)), ValueError, "tokens must be"),
    "tokens too long": (
        lambda: TransformerClassifier(10, 3, max_len=4)(_tokens(2, 5)),
        ValueError,
        "tokens has 5 positions",
    ),
}


@pytest.mark.parametrize(
    ("call", "error", "match"), BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys()
)
def test_bad_arguments_raise_an_error_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------- the notes' attention, re-created
def notes_attention(q, k, v, mask=None):
    """The notes' ``scaled_dot_product_attention``: ``masked_fill(mask == 0, -1e9)``."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(mask == 0, -1e9)
    weights = F.softmax(scores, dim=-1)
    return weights @ v, weights


def notes_multi_head(mha, query, key, value, mask=None):
    """The notes' ``MultiHeadAttention.forward`` with the projections of ``mha``: the mask goes
    to the (batch, heads, L_q, L_k) scores as it is, never unsqueezed for the heads."""
    batch = query.size(0)

    def split(x):
        return x.view(batch, -1, mha.num_heads, mha.d_k).transpose(1, 2)

    out, weights = notes_attention(
        split(mha.w_q(query)), split(mha.w_k(key)), split(mha.w_v(value)), mask
    )
    out = out.transpose(1, 2).contiguous().view(batch, -1, mha.d_model)
    return mha.w_o(out), weights


def test_pitfall_notes_masked_fill_minus_1e9_overflows_fp16_and_fully_masked_rows_go_uniform():
    x = randn(1, 3, 4, seed=3)
    # Row 0 may see key 0, row 1 nothing (a padding query), row 2 everything.
    mask = torch.tensor([[True, False, False], [False, False, False], [True, True, True]])
    half = x.half()
    with pytest.raises(RuntimeError, match="overflow"):  # -1e9 is not a float16 (max 65504)
        notes_attention(half, half, half, mask)
    out16, w16 = scaled_dot_product_attention(half, half, half, mask)
    assert out16.dtype == torch.float16 and torch.isfinite(out16).all()
    assert torch.all(w16[0, 1] == 0) and w16[0, 0, 0] == 1
    # float32: the fully masked row silently attends uniformly to keys it must not see ...
    _, notes_w = notes_attention(x, x, x, mask)
    assert max_diff(notes_w[0, 1], torch.full((3,), 1 / 3)) <= 1e-6
    # ... and with -inf instead of -1e9 it is 0/0 = NaN.
    scores = (x @ x.transpose(-2, -1) / 2).masked_fill(~mask, float("-inf"))
    assert torch.isnan(scores.softmax(-1)[0, 1]).all()
    # The fix: the most negative finite number, and the fully masked row zeroed.
    out, w = scaled_dot_product_attention(x, x, x, mask)
    assert torch.all(w[0, 1] == 0) and torch.all(out[0, 1] == 0)
    assert max_diff(w[0, [0, 2]], notes_w[0, [0, 2]]) <= 1e-6  # other rows agree


def test_pitfall_notes_positional_encoding_crashes_for_odd_d_model():
    with pytest.raises(RuntimeError, match="size"):  # 4 cosines for 3 odd columns
        NotesPositionalEncoding(7, max_len=10)
    ours = PositionalEncoding(7, max_len=10)
    assert ours.pe.shape == (1, 10, 7)
    assert max_diff(ours.pe[0].double(), sinusoidal_encoding(10, 7)) <= 1e-7
    last = torch.sin(torch.arange(10.0, dtype=torch.float64) / 10000 ** (6 / 7))
    assert max_diff(sinusoidal_encoding(10, 7)[:, 6], last) <= 1e-12  # the extra column: a sine


def test_pitfall_notes_per_sequence_mask_is_applied_per_head_when_batch_equals_heads():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2).eval()  # 2 heads
    x = randn(2, 4, 8, seed=5)  # 2 sequences: batch == heads
    mask = torch.ones(2, 4, 4, dtype=torch.bool)
    mask[0, :, 2:] = False  # sequence 0 ends in two padding tokens; sequence 1 has none
    notes_out, notes_w = notes_multi_head(mha, x, x, x, mask)  # no error
    # (B, L, L) broadcasts against (B, H, L, L) as (1, B, L, L): the mask of sequence h is
    # applied to head h of every sequence.
    assert torch.all(notes_w[1, 0, :, 2:] == 0)  # sequence 1 loses two real tokens in head 0
    assert torch.all(notes_w[0, 1, :, 2:] > 0)  # sequence 0 reads its padding in head 1
    ours_out, ours_w = mha(x, x, x, mask)
    assert torch.all(ours_w[0, :, :, 2:] == 0) and torch.all(ours_w[1] > 0)
    alone, _ = mha(x[:1, :2], x[:1, :2], x[:1, :2])  # sequence 0 without its padding
    assert max_diff(ours_out[0, :2], alone[0]) <= TOL
    assert max_diff(notes_out, ours_out) > 0.01
    fixed, _ = notes_multi_head(mha, x, x, x, mask.unsqueeze(1))  # the fix: one mask per head
    assert max_diff(fixed, ours_out) <= TOL
    with pytest.raises(RuntimeError):  # batch != heads: at least this one fails loudly
        notes_multi_head(mha, randn(3, 4, 8), randn(3, 4, 8), randn(3, 4, 8), mask[[0, 1, 1]])
