# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-transformer)=
# # 6. Attention and the Transformer
#
# A convolution looks at a fixed neighbourhood. *Attention* lets every element of a sequence
# decide, from the data, which other elements to look at. Stacked with small feed-forward
# networks it gives the Transformer {cite}`vaswani2017`. This chapter builds attention from a
# worked example, checks every piece of `companion.transformer` against PyTorch's own modules,
# repairs the notes' positional encoding, and trains a small Transformer to reverse sequences —
# a task that is impossible without knowing where each token is.

# %%
try:
    import companion
except ImportError:  # on Colab: install the book's package from its repository, once
    import subprocess
    import sys

    REPOSITORY = "https://github.com/neural-networks-tested/book"
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", f"git+{REPOSITORY}@main"])
    import companion

SEED = companion.seed_everything(0)

# %%

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from companion import (
    Adam,
    MultiHeadAttention,
    NoamLR,
    PositionalEncoding,
    Trainer,
    TransformerBlock,
    TransformerClassifier,
    causal_mask,
    make_reversal_task,
    scaled_dot_product_attention,
    seed_everything,
    sinusoidal_encoding,
)

# %% [markdown]
# ## Attention is a soft dictionary lookup
#
# A dictionary maps keys to values: a query that equals a key returns its value. Attention
# relaxes "equals" to "is similar to": a query $\mathbf q$ is compared with every key
# $\mathbf k_j$ by a dot product, the scores become weights by a softmax, and the result is the
# weighted average of the values,
#
# $$
# \operatorname{Attention}(Q, K, V)
# = \operatorname{softmax}\!\Big(\frac{Q K^\top}{\sqrt{d_k}}\Big)\, V .
# $$
#
# A worked example with three keys in two dimensions, and a query closest to the second key:

# %%
keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
values = torch.tensor([[10.0], [20.0], [30.0]])
query = torch.tensor([[0.2, 2.0]])
scores = query @ keys.T / np.sqrt(2)
weights = torch.softmax(scores, dim=-1)
print("scores  q.k / sqrt(d):", scores.numpy().round(3))
print("weights softmax:      ", weights.numpy().round(3))
print("output  sum w_j v_j:  ", (weights @ values).numpy().round(3))
output, companion_weights = scaled_dot_product_attention(query, keys, values)
assert torch.allclose(output, weights @ values) and torch.allclose(companion_weights, weights)
assert weights.argmax() == 1 and torch.isclose(weights.sum(), torch.tensor(1.0))
assert round((weights @ values).item(), 1) == 19.5

# %% [markdown]
# The query is most similar to the second key, so the output, $19.5$, is pulled towards its
# value $20$, with a little of the others mixed in. Everything is differentiable, so the
# network can learn what to ask (queries), what to offer for matching (keys) and what to pass
# on (values).
#
# **Why divide by $\sqrt{d_k}$?** For random queries and keys with unit-variance entries, the dot
# product over $d_k$ dimensions has variance $d_k$. Unscaled, the scores of a 64-dimensional head
# are spread over a range of about $\pm 16$, the softmax puts almost all weight on one key, and
# its gradient vanishes. Dividing by $\sqrt{d_k}$ restores unit variance:

# %%
generator = torch.Generator().manual_seed(0)
q, k = torch.randn(2, 10_000, 64, generator=generator)
raw = (q * k).sum(-1)
print(f"std of q.k for d_k = 64: {raw.std():.2f}   after dividing by 8: {(raw / 8).std():.2f}")
assert abs(raw.std() - 8) < 0.3 and abs((raw / 8).std() - 1) < 0.05

# %% [markdown]
# **Masks.** Some positions must not be looked at: padding, or, when generating text, the
# future. `companion` uses one convention everywhere, the same as PyTorch's
# `F.scaled_dot_product_attention`: a boolean mask in which **True means "may attend"**. The
# causal mask lets position $i$ see positions $0 \dots i$. (Beware: `nn.MultiheadAttention` uses
# the opposite convention for boolean masks, True = *blocked*.)

# %%
print(causal_mask(4).int())
x = torch.randn(1, 4, 8, generator=generator)
_, w = scaled_dot_product_attention(x, x, x, mask=causal_mask(4))
print("weights under the causal mask:\n", w[0].numpy().round(2))
assert torch.all(w[0].triu(1) == 0)
ours, _ = scaled_dot_product_attention(x, x, x, mask=causal_mask(4))
assert torch.allclose(
    ours, F.scaled_dot_product_attention(x, x, x, attn_mask=causal_mask(4)), atol=1e-6
)

# %% [markdown]
# ## Several heads
#
# One attention can only form one kind of weighted average per position. *Multi-head*
# attention runs $h$ of them in parallel on learned projections of dimension
# $d_k = d_\text{model}/h$ and concatenates the results:
#
# $$
# \operatorname{head}_i = \operatorname{Attention}(Q W_i^Q, K W_i^K, V W_i^V), \qquad
# \operatorname{MultiHead}(Q, K, V) = [\operatorname{head}_1; \dots; \operatorname{head}_h]\, W^O .
# $$
#
# `MultiHeadAttention` is batch-first and returns the weights of every head. With the weights
# copied over, it computes the same as PyTorch's `nn.MultiheadAttention`:

# %%
seed_everything(0)
d_model, heads = 32, 4
ours = MultiHeadAttention(d_model, heads)
reference = nn.MultiheadAttention(d_model, heads, batch_first=True)
ours.load_torch_weights(reference)  # split PyTorch's stacked in_proj_weight into W_q, W_k, W_v
x = torch.randn(3, 7, d_model)
out, per_head = ours(x, x, x, mask=causal_mask(7))
ref_out, ref_avg = reference(x, x, x, attn_mask=~causal_mask(7))  # its True = blocked
gap = (out - ref_out).abs().max().item()
print("weights per head:", tuple(per_head.shape), " outputs agree to 1e-6:", gap < 1e-6)
assert torch.allclose(out, ref_out, atol=1e-6) and torch.allclose(
    per_head.mean(1), ref_avg, atol=1e-6
)

# %% [markdown]
# ## Where is each token? Positional encoding
#
# Attention compares contents only: permute the input tokens and the outputs are permuted the
# same way. To know *where* a token is, the Transformer adds to each embedding a vector that
# depends on its position,
#
# $$
# \mathrm{PE}(pos, 2i) = \sin\!\big(pos / 10000^{2i/d}\big), \qquad
# \mathrm{PE}(pos, 2i+1) = \cos\!\big(pos / 10000^{2i/d}\big),
# $$
#
# sinusoids of wavelengths from $2\pi$ to $10000 \cdot 2\pi$: low dimensions change fast from
# one position to the next, high dimensions slowly, like the digits of a counter.

# %%
table = sinusoidal_encoding(64, 32)
fig, ax = plt.subplots(figsize=(7, 3.5))
image = ax.imshow(table.T, aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
ax.set_xlabel("position")
ax.set_ylabel("dimension")
ax.set_title("sinusoidal positional encoding, d = 32")
fig.colorbar(image)
plt.show()
assert torch.allclose(table[:, 0], torch.sin(torch.arange(64.0)).double(), atol=1e-12)

# %% [markdown]
# (pitfall-positional-encoding)=
# ```{warning}
# **Pitfall: a sequence-first encoding fed batch-first input.** The notes store the table as
# `pe.unsqueeze(0).transpose(0, 1)`, shape `(max_len, 1, d_model)` — sequence first — and add
# `self.pe[:x.size(0)]`. Their attention, though, is batch-first: `x` has shape
# `(batch, seq, d_model)`, so `x.size(0)` is the *batch size*, and broadcasting adds to every
# token of sequence $b$ the encoding of position $b$. No error, no warning: each sequence gets one
# constant vector, and the model has no idea of word order. `companion.PositionalEncoding` keeps
# a batch-first table of shape `(1, max_len, d_model)` and adds `pe[:, :x.size(1)]`. Test:
# `test_pitfall_notes_positional_encoding_adds_batch_index_to_batch_first_input` in
# `tests/test_transformer.py`.
# ```
#
# The difference in two lines, on a batch of 3 sequences of 5 tokens:

# %%
x = torch.zeros(3, 5, 16)
notes_table = sinusoidal_encoding(100, 16).float().unsqueeze(0).transpose(0, 1)  # (100, 1, 16)
notes_output = x + notes_table[: x.size(0)]  # what the notes compute
ours_output = PositionalEncoding(16, max_len=100)(x)
print(
    "notes: are all 5 tokens of a sequence encoded alike?",
    bool(torch.all(notes_output[:, 0:1] == notes_output)),
)
print(
    "ours:  are all 5 tokens of a sequence encoded alike?",
    bool(torch.all(ours_output[:, 0:1] == ours_output)),
)
assert torch.equal(notes_output[1, 3], notes_table[1, 0])  # token 3 of sequence 1 got position 1
assert torch.equal(ours_output[1, 3], sinusoidal_encoding(100, 16).float()[3])

# %% [markdown]
# ## The Transformer block
#
# A block adds to each position what self-attention gathered, then what a small feed-forward
# network makes of it, each with a residual connection and layer normalisation:
#
# $$
# \mathbf h = \operatorname{LayerNorm}\big(\mathbf x + \operatorname{MultiHead}(\mathbf x,
# \mathbf x, \mathbf x)\big), \qquad
# \mathbf y = \operatorname{LayerNorm}\big(\mathbf h + W_2 \operatorname{ReLU}(W_1 \mathbf h)\big).
# $$
#
# That is the original *post-norm* order; `norm_first=True` gives the *pre-norm* variant
# $\mathbf h = \mathbf x + \operatorname{MultiHead}(\operatorname{LayerNorm}(\mathbf x))$, which
# trains more stably in deep stacks. Both match `nn.TransformerEncoderLayer` (the tests check
# both orders; here post-norm):

# %%
seed_everything(0)
block = TransformerBlock(32, 4, 64, dropout=0.0).eval()
layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True).eval()
block.load_torch_weights(layer)
x = torch.randn(2, 6, 32)
gap = (block(x) - layer(x)).abs().max().item()
print("TransformerBlock and nn.TransformerEncoderLayer agree to 1e-5:", gap < 1e-5)
assert gap < 1e-5

# %% [markdown]
# ## Learning to reverse a sequence
#
# `make_reversal_task` draws sequences of 10 tokens from a vocabulary of 16 and asks for them
# backwards: output position $i$ must copy input position $9 - i$. Content alone cannot solve
# this — the model must know positions. `TransformerClassifier` embeds the tokens, adds the
# positional encoding, applies two blocks (64 dimensions, 4 heads) and predicts a token at every
# position. Training uses our Adam with the paper's $\beta_2 = 0.98$ and the `NoamLR` warm-up
# of chapter 4 (400 warm-up steps, half the paper's scale), stepped after every batch.
# 4000 training sequences; 1000 held-out ones, drawn with another seed.

# %% tags=["nbval-ignore-output"]
# Output varies in the last digits across CPU models; the asserts carry the claims.
source, target = make_reversal_task(4000, seq_len=10, vocab=16, seed=0)
test_source, test_target = make_reversal_task(1000, seq_len=10, vocab=16, seed=10_000)
seen = {tuple(s) for s in source.tolist()}
assert not any(tuple(s) in seen for s in test_source.tolist()), "held-out sequences are new"
test_loader = DataLoader(TensorDataset(test_source, test_target), batch_size=1000)


def train_reverser(positional_encoding):
    seed_everything(0)
    loader = DataLoader(
        TensorDataset(source, target),
        batch_size=64,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    model = TransformerClassifier(
        16, 16, d_model=64, num_heads=4, d_ff=128, num_layers=2, max_len=10,
        positional_encoding=positional_encoding,
    )  # fmt: skip
    optimizer = Adam(model.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)
    scheduler = NoamLR(optimizer, d_model=64, warmup_steps=400, scale=0.5)
    trainer = Trainer(model, device="cpu")
    trainer.fit(
        loader, test_loader, 8, optimizer=optimizer, scheduler=scheduler,
        scheduler_step="batch", progress=False,
    )  # fmt: skip
    return trainer


def exact_sequence_accuracy(model):
    model.eval()
    with torch.no_grad():
        predicted = model(test_source).argmax(-1)
    return (predicted == test_target).all(dim=1).float().mean().item()


with_pe = train_reverser(positional_encoding=True)
without_pe = train_reverser(positional_encoding=False)
for name, trainer in [("with positional encoding", with_pe), ("without", without_pe)]:
    print(
        f"{name:>24}: per-token accuracy {trainer.history['val_acc'][-1]:.1%}, "
        f"exact-sequence accuracy {exact_sequence_accuracy(trainer.model):.1%}"
    )
assert exact_sequence_accuracy(with_pe.model) >= 0.99
assert exact_sequence_accuracy(without_pe.model) <= 0.01
assert without_pe.history["val_acc"][-1] <= 0.26

# %% [markdown]
# With positional encoding every held-out sequence is reversed exactly, after 8 epochs (a few
# seconds on a CPU). Without it, the same network gets no sequence
# right, and only about a quarter of the tokens. That quarter is no accident: a model that
# cannot see positions sees a *set* of tokens, and the best it can do at every position is to
# bet on a token that occurs in the set — right about 24 % of the time here, far from the 99 %
# and far from the $1/16$ of blind guessing.
#
# ## What the heads look at
#
# Each layer's attention weights, averaged over the held-out sequences: row $i$ shows where
# output position $i$ looks.

# %% tags=["nbval-ignore-output"]
# Output varies in the last digits across CPU models; the asserts carry the claims.
model = with_pe.model.eval()
with torch.no_grad():
    model(test_source)
maps = [layer_map.mean(0) for layer_map in model.attention_maps]  # (heads, L, L) per layer
fig, axes = plt.subplots(2, 4, figsize=(11, 5.5))
for layer_index, layer_map in enumerate(maps):
    for head in range(4):
        ax = axes[layer_index, head]
        ax.imshow(layer_map[head], cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"layer {layer_index + 1}, head {head + 1}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
axes[1, 0].set_xlabel("attended position")
axes[1, 0].set_ylabel("query position")
fig.suptitle("attention weights of the trained reverser (mean over 1000 sequences)")
plt.show()
mirror = torch.arange(9, -1, -1)
on_mirror = [layer_map[:, torch.arange(10), mirror].mean(1) for layer_map in maps]
print("mean weight on the mirrored position, per head:")
for layer_index, weights in enumerate(on_mirror):
    print(f"  layer {layer_index + 1}:", weights.numpy().round(2))
assert on_mirror[1].min() > 0.5 and on_mirror[0].max() < 0.5

# %% [markdown]
# The second layer's heads put most of their weight on the anti-diagonal: query position $i$
# reads input position $9 - i$, exactly the rule of the task, found by gradient descent. The
# first layer's weights are more spread out (below one half on the mirror in every head): it
# mixes information across positions, preparing representations for the second.
#
# ## Summary
#
# - Attention is a differentiable dictionary lookup: softmax of scaled query–key scores,
#   applied to values. $\sqrt{d_k}$ keeps the scores at unit scale.
# - One mask convention (True = may attend), causal masks, multiple heads and the Transformer
#   block all match PyTorch's modules with copied weights.
# - The notes' positional encoding, sequence-first in a batch-first model, silently encodes
#   the batch index; ours encodes positions.
# - A two-layer Transformer learns to reverse sequences perfectly, and is helpless without
#   positional encoding; its attention maps show the anti-diagonal it learned.
