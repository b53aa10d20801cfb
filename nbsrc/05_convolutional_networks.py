# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-cnn)=
# # 5. Convolutional networks
#
# An image of $32 \times 32$ pixels fed to the MLP of {ref}`chapter 3 <ch-training>` is just a
# vector of 1024 numbers: the network would have to learn separately, for every position, what
# an edge or a corner looks like, and it ignores that neighbouring pixels belong together. A
# *convolutional* layer slides one small set of weights over the whole image instead. This
# chapter writes convolution by hand, checks it against PyTorch, and trains the notes' CNN —
# repaired so that it takes images of any size — on handwritten digits and on synthetic shapes.

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
import itertools
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from companion import (
    SHAPE_NAMES,
    ConvolutionalNN,
    Trainer,
    conv2d,
    conv_output_size,
    load_digits_tensors,
    make_shapes,
    seed_everything,
    train_shapes_cnn,
    train_val_loaders,
)

# %% [markdown]
# ## Convolution by hand
#
# A convolutional layer with $C_\text{out}$ filters, each of $C_\text{in}$ channels and
# $k_h \times k_w$ pixels, computes at every output position $(i, j)$
#
# $$
# y[o, i, j] = b[o] + \sum_{c=1}^{C_\text{in}} \sum_{u=0}^{k_h - 1} \sum_{v=0}^{k_w - 1}
#     w[o, c, u, v]\; x[c,\; s\,i + u,\; s\,j + v],
# $$
#
# the dot product of filter $o$ with the patch of the (zero-padded) input under it, moved by the
# stride $s$. Strictly this is a *cross-correlation* — a true convolution flips the kernel — but
# since the kernel is learned the flip does not matter, and every library computes this.
# The same weights $w$ are used at every position: a $3 \times 3$ filter on a grey image has 10
# parameters however large the image is.
#
# `companion.conv2d` is this equation in NumPy, with one loop over the kernel offsets
# $(u, v)$. It agrees with PyTorch's `F.conv2d`:

# %%
rng = np.random.default_rng(0)
x = rng.normal(size=(2, 3, 10, 9))  # batch 2, 3 channels, 10 x 9 pixels
w = rng.normal(size=(4, 3, 3, 3))  # 4 filters
b = rng.normal(size=4)
for stride, padding in [(1, 0), (1, 1), (2, 1)]:
    ours = conv2d(x, w, b, stride=stride, padding=padding)
    theirs = F.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride, padding).numpy()
    gap = np.abs(ours - theirs).max()
    print(f"stride {stride}, padding {padding}: output {ours.shape}, max |ours - F.conv2d| < 1e-12")
    assert gap < 1e-12

# %% [markdown]
# What does a filter do? A classic hand-made one, a vertical-edge detector, responds where the
# brightness changes from left to right. Applied to a digit from scikit-learn's data set:

# %%
digits, digit_labels = load_digits_tensors()
image = digits[0:1].numpy().astype(np.float64)  # shape (1, 1, 8, 8): a zero
edge = np.array([[[[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]]])  # Sobel filter
response = conv2d(image, edge, padding=1)
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
axes[0].imshow(image[0, 0], cmap="gray_r")
axes[0].set_title(f"digit {digit_labels[0].item()}")
axes[1].imshow(edge[0, 0], cmap="coolwarm")
axes[1].set_title("vertical-edge filter")
axes[2].imshow(response[0, 0], cmap="coolwarm")
axes[2].set_title("feature map")
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()
middle_row = response[0, 0, 4]
print("feature map, middle row:", middle_row.round(1))
assert middle_row[1] < -2 and middle_row[3] > 2 and middle_row[4] < -2 and middle_row[6] > 2

# %% [markdown]
# At each position the filter takes the left column of the patch minus the right one, so the map
# is negative where ink begins (reading left to right) and positive where it ends: each of the
# zero's two vertical strokes shows up as a blue–red pair, as the middle row's values confirm.
# A CNN learns dozens of such filters in its first layer, and combines their maps in the next.
#
# ## The size of the output
#
# A window of $k$ taps spaced $d$ apart (the *dilation*) spans $d(k-1) + 1$ pixels. On an input
# of length $n$ padded by $p$ on both sides it fits in $n + 2p - d(k - 1)$ positions, of which
# every $s$-th is kept:
#
# $$
# n_\text{out} = \left\lfloor \frac{n + 2p - d\,(k - 1) - 1}{s} \right\rfloor + 1 .
# $$
#
# The same formula holds for pooling. `conv_output_size` implements it; here it is checked
# against what PyTorch's layers actually produce, for every combination below:

# %%
checked = 0
for n, k, s, p, d in itertools.product(range(8, 20), (1, 2, 3, 5), (1, 2, 3), (0, 1, 2), (1, 2)):
    if n + 2 * p < d * (k - 1) + 1:
        continue  # the kernel does not fit
    layer = torch.nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)
    assert conv_output_size(n, k, s, p, d) == layer(torch.zeros(1, 1, n, n)).shape[-1]
    checked += 1
print(f"the formula matches torch.nn.Conv2d in all {checked} cases")
print("3x3, padding 1, stride 1 keeps the size:", conv_output_size(32, 3, 1, 1))
print("2x2 max-pooling with stride 2 halves it: ", conv_output_size(32, 2, 2, 0))

# %% [markdown]
# **Max-pooling** keeps the largest value of each $2 \times 2$ block: it halves the resolution,
# and makes the output insensitive to shifts of a pixel or so within a block.

# %%
block = torch.arange(16.0).reshape(1, 1, 4, 4)
print(block[0, 0])
print(torch.nn.functional.max_pool2d(block, 2)[0, 0])

# %% [markdown]
# ## The notes' CNN, and an input size it cannot take
#
# The notes' network has three blocks of ($3 \times 3$ convolution with padding 1 → ReLU →
# $2 \times 2$ max-pooling) with 32, 64 and 128 filters, then linear layers of 256, 128 and the
# classes. Each block halves the image, so a $32 \times 32$ input leaves a $128 \times 4 \times 4$
# feature map — and the notes hard-code exactly that, `x.view(-1, 128 * 4 * 4)`.

# %%
model = ConvolutionalNN(input_channels=1, num_classes=10)
for size in (8, 28, 32, 64):
    feature_map = model.features(torch.zeros(1, 1, size, size))
    print(f"{size:2d} x {size:<2d} input -> feature map {tuple(feature_map.shape[1:])}")
print("at 28 x 28 a batch of 16 holds", 16 * 128 * 3 * 3, "features = 9 rows of", 128 * 4 * 4)

# %% [markdown]
# (pitfall-cnn-flatten)=
# ```{warning}
# **Pitfall: a flatten size that only fits 32 × 32.** A $28 \times 28$ image (MNIST's size)
# leaves a $128 \times 3 \times 3$ map, and `view(-1, 128 * 4 * 4)` fails — or, worse, for a
# batch of 16 images it *succeeds*: $16 \cdot 1152 = 9 \cdot 2048$, so the 16 images silently
# become 9 rows of mixed-up features, and the error surfaces later as a batch-size mismatch in
# the loss, far from its cause. `companion.ConvolutionalNN` puts an adaptive average pool in
# front of the first linear layer, which resizes any map to $4 \times 4$: for $32 \times 32$
# inputs it does nothing (the network is exactly the notes'), and any input of at least
# $8 \times 8$ works. Test: `tests/test_models.py::test_original_cnn_only_takes_32x32_pitfall`.
# ```

# %%
for size in (8, 28, 32, 64):
    assert model(torch.zeros(16, 1, size, size)).shape == (16, 10)
print("ConvolutionalNN maps a batch of 16 images to (16, 10) logits at 8, 28, 32 and 64 pixels")

# %% [markdown]
# ## Handwritten digits
#
# scikit-learn ships 1797 handwritten digits of $8 \times 8$ pixels — the smallest size the
# network takes. We shuffle them once (the file is ordered by writer), keep 1437 for training and
# 360 for testing, and train the notes' CNN with Adam, cosine-annealed over 15 epochs.

# %%
order = torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))
train_loader, test_loader = train_val_loaders(
    digits[order], digit_labels[order], train_size=1437, batch_size=64, seed=0
)
seed_everything(0)
digit_model = ConvolutionalNN(1, 10, dropout_rate=0.3)
optimizer = torch.optim.Adam(digit_model.parameters(), lr=1e-3)
scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=15)
start = time.perf_counter()
digit_trainer = Trainer(digit_model, device="cpu")
digit_trainer.fit(
    train_loader, test_loader, 15, optimizer=optimizer, scheduler=scheduler, progress=False
)
digit_seconds = time.perf_counter() - start
print(f"test accuracy on 360 held-out digits: {digit_trainer.history['val_acc'][-1]:.1%}")
assert digit_trainer.history["val_acc"][-1] >= 0.97
assert digit_seconds <= 30, f"training took {digit_seconds:.0f} s"

# %% [markdown]
# ## Shapes, and where they are
#
# `make_shapes` draws one square, circle or triangle per image, of random size and position, on
# Gaussian noise, and records each shape's bounding box; chapter 8 uses the boxes to check where
# an explanation method says the network looked.

# %%
images, labels, boxes = make_shapes(3000, size=32, seed=0)
fig, axes = plt.subplots(2, 6, figsize=(11, 4))
for ax, img, label, (r0, c0, r1, c1) in zip(axes.flat, images, labels, boxes, strict=False):
    ax.imshow(img[0], cmap="gray")
    ax.add_patch(plt.Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False, ec="C1"))
    ax.set_title(SHAPE_NAMES[label])
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()
print("class counts:", torch.bincount(labels).tolist())

# %% [markdown]
# `train_shapes_cnn` trains a slimmer version of the network (16, 32 and 64 filters) on the first
# 2400 images for 10 epochs and validates on the other 600. It is seeded end to end, so it
# returns bit-for-bit the same weights every time (a unit test checks this): chapter 8 simply
# calls it again rather than loading a stored file.

# %%
start = time.perf_counter()
shapes_trainer, _ = train_shapes_cnn(seed=0)
shapes_seconds = time.perf_counter() - start
print("validation accuracy per epoch:", [f"{a:.1%}" for a in shapes_trainer.history["val_acc"]])
assert shapes_trainer.history["val_acc"][-1] >= 0.95
assert shapes_seconds <= 30, f"training took {shapes_seconds:.0f} s"

# %% [markdown]
# ## What the network learned
#
# The first layer's 16 filters, each $3 \times 3$, and what they make of one image: the feature
# maps after the first convolution and ReLU.

# %%
shapes_model = shapes_trainer.model.eval()
filters = shapes_model.conv1.weight.detach()[:, 0]
fig, axes = plt.subplots(2, 8, figsize=(10, 2.8))
for ax, f in zip(axes.flat, filters, strict=True):
    ax.imshow(f, cmap="coolwarm", vmin=-filters.abs().max(), vmax=filters.abs().max())
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("first-layer filters of the shapes CNN (red positive, blue negative)")
plt.show()

# %%
example = images[2400:2401]  # the first validation image
with torch.no_grad():
    maps = shapes_model.relu1(shapes_model.conv1(example))[0]
fig, axes = plt.subplots(2, 9, figsize=(12, 3))
axes[0, 0].imshow(example[0, 0], cmap="gray")
axes[0, 0].set_title(SHAPE_NAMES[labels[2400]])
axes[1, 0].axis("off")
for ax, fmap in zip(axes[:, 1:].T.flat, maps, strict=True):
    ax.imshow(fmap, cmap="viridis")
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("an image and its 16 feature maps after conv1 + ReLU")
plt.show()

# %% [markdown]
# Some filters respond to the shape's edges of one orientation, some to its interior, some
# mostly to the noise; deeper layers combine these maps into corners and outlines, and the
# linear layers into a decision.
#
# ## Summary
#
# - A convolution is one small filter applied at every position: a cross-correlation, local and
#   with shared weights. Written by hand it matches `F.conv2d` to $10^{-12}$.
# - $n_\text{out} = \lfloor (n + 2p - d(k-1) - 1)/s \rfloor + 1$, checked against PyTorch.
# - The notes' hard-coded flatten only fits $32 \times 32$ inputs; an adaptive pool fixes it.
# - The repaired CNN reaches at least 97 % on held-out digits and 95 % on held-out shapes in
#   seconds on a CPU.
