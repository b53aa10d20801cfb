# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-gan)=
# # 7. Generative adversarial networks
#
# The networks so far map inputs to labels. A generative adversarial network {cite}`goodfellow2014`
# learns to *produce* data: a generator turns random noise into images, a discriminator tries to
# tell them from real ones, and each improves against the other. GANs are notorious for
# training that silently goes wrong, and for results judged by eye. This chapter fixes two
# defects of the notes' GAN, trains one on scikit-learn's handwritten digits, and *measures* the
# result: a Fréchet distance between real and generated images, and how many digit classes the
# generator covers.

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
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from companion import (
    Discriminator,
    GANTrainer,
    Generator,
    frechet_distance,
    load_digits_tensors,
    plot_image_grid,
    seed_everything,
    train_digits_classifier,
)

# %% [markdown]
# ## The game
#
# The discriminator $D$ outputs the probability that its input is real; the generator $G$ maps
# noise $\mathbf z \sim \mathcal N(0, I)$ to an image. They play
#
# $$
# \min_G \max_D \; \mathbb E_{\mathbf x \sim p_\text{data}}\big[\log D(\mathbf x)\big]
# + \mathbb E_{\mathbf z}\big[\log\big(1 - D(G(\mathbf z))\big)\big]:
# $$
#
# $D$ maximises the log-likelihood of telling real from fake, $G$ minimises it. At the game's
# equilibrium $G$'s images are distributed like the data and $D = \tfrac12$ everywhere.
#
# In practice $G$ does not minimise $\log(1 - D(G(\mathbf z)))$: early in training its images
# are obviously fake, $D(G(\mathbf z)) \approx 0$, and that term is flat there — the generator
# gets almost no gradient. It maximises $\log D(G(\mathbf z))$ instead, the **non-saturating**
# loss, which has the same fixed point but a steep slope exactly when $G$ is losing. With
# $D = \sigma(\ell)$ for a logit $\ell$, the two slopes are $-\sigma(\ell)$ and $1 - \sigma(\ell)$:

# %%
logit = torch.tensor([-4.6], requires_grad=True)  # D(G(z)) = sigmoid(-4.6) = 0.01
(saturating,) = torch.autograd.grad(-torch.log(1 - torch.sigmoid(logit)), logit)
(non_saturating,) = torch.autograd.grad(torch.log(torch.sigmoid(logit)), logit)
print(f"D(G(z)) = {torch.sigmoid(logit).item():.3f}")
print(f"generator's gradient through log(1 - D):  {saturating.item():+.3f}")
print(f"generator's gradient through log D:       {non_saturating.item():+.3f}")
assert non_saturating.abs() > 90 * saturating.abs()

# %% [markdown]
# ## Two defects of the notes' GAN
#
# (pitfall-batchnorm-eps)=
# ```{warning}
# **Pitfall: `BatchNorm1d(out_feat, 0.8)` sets eps, not momentum.** `nn.BatchNorm1d`'s signature
# is `(num_features, eps=1e-05, momentum=0.1, ...)`: the notes' second positional argument
# makes $\epsilon = 0.8$, added to the batch variance before the square root. With activations of
# variance around 1 that is no longer normalisation — it shrinks every output by about
# $\sqrt{1/1.8}$ and hides small-variance features. `companion.gan.Generator` uses the defaults.
# Test: `tests/test_gan.py::test_pitfall_batchnorm_second_positional_is_eps`.
# ```

# %%
notes_bn = nn.BatchNorm1d(256, 0.8)  # as in the notes
print(f"the notes' layer: eps = {notes_bn.eps}, momentum = {notes_bn.momentum}")
ours_bn = [m for m in Generator(32, (1, 8, 8)).modules() if isinstance(m, nn.BatchNorm1d)][0]
print(f"companion.gan.Generator: eps = {ours_bn.eps}, momentum = {ours_bn.momentum}")
assert notes_bn.eps == 0.8 and ours_bn.eps == 1e-5

# %% [markdown]
# (pitfall-sigmoid-bce)=
# ```{warning}
# **Pitfall: `Sigmoid` then `BCELoss` saturates.** The notes' discriminator ends in `nn.Sigmoid()`
# and is trained with `nn.BCELoss`. For a confident wrong answer the sigmoid rounds to exactly 0
# or 1 in float32, and $\log 0$ would be $-\infty$; PyTorch clamps the log at $-100$, so the loss
# is stuck at 100 and the gradient is **exactly zero** — the discriminator cannot learn from its
# worst mistakes. `companion.gan.Discriminator` returns the logit, and the loss is
# `BCEWithLogitsLoss`, which computes $\log \sigma(\ell)$ stably. Test:
# `tests/test_gan.py::test_pitfall_sigmoid_then_bceloss_saturates`.
# ```

# %%
wrong = torch.tensor([-200.0], requires_grad=True)  # a real image judged fake, very confidently
target = torch.ones(1)
notes_loss = nn.BCELoss()(torch.sigmoid(wrong), target)
(notes_grad,) = torch.autograd.grad(notes_loss, wrong)
ours_loss = nn.BCEWithLogitsLoss()(wrong, target)
(ours_grad,) = torch.autograd.grad(ours_loss, wrong)
print(f"Sigmoid + BCELoss:  loss {notes_loss.item():7.1f}, gradient {notes_grad.item() + 0.0:+.2f}")
print(f"BCEWithLogitsLoss:  loss {ours_loss.item():7.1f}, gradient {ours_grad.item():+.2f}")
assert notes_grad.item() == 0.0 and ours_grad.item() == -1.0 and ours_loss.item() == 200.0

# %% [markdown]
# ## Data, and a ruler to measure with
#
# scikit-learn's 1797 digits, $8 \times 8$ pixels, scaled to $[-1, 1]$ to match the generator's
# $\tanh$ output. To *measure* generated images we need a network that knows digits:
# `train_digits_classifier` trains a small MLP on 1400 of them (the GAN trains on the same 1400)
# and keeps 397 aside. Its 64 penultimate activations are the features in which we compare
# images, and its predictions tell which digit a generated image looks like.

# %%
classifier = train_digits_classifier(seed=0)
digits, digit_labels = load_digits_tensors()
digits = digits * 2 - 1
train_images, held_out = digits[classifier.train_idx], digits[classifier.test_idx]
print(f"classifier: {classifier.test_accuracy:.1%} on the {len(held_out)} held-out digits")
assert classifier.test_accuracy >= 0.95

# %% [markdown]
# ## Training
#
# A generator with two hidden layers (128 and 256 units; the notes' four layers up to 1024 are
# far more than $8 \times 8$ images need) from 32-dimensional noise, a discriminator with two
# (256 and 128, dropout 0.3), both trained with Adam at $5 \times 10^{-4}$ and
# $\beta_1 = 0.5$, batches of 64, for 60 epochs. Real images get the target $0.9$ instead of 1
# (*one-sided label smoothing*), which keeps the discriminator from becoming over-confident and
# starving the generator of gradient. Each step first updates $D$ on a real and a generated
# batch, then $G$ against the updated $D$.

# %% tags=["nbval-ignore-output"]
# Output varies in the last digits across CPU models; the asserts carry the claims.
seed_everything(0)
generator = Generator(32, (1, 8, 8), hidden=(128, 256))
discriminator = Discriminator((1, 8, 8), hidden=(256, 128), dropout=0.3)
gan = GANTrainer(
    generator, discriminator, latent_dim=32, lr=5e-4, betas=(0.5, 0.999), device="cpu",
    label_smoothing=0.1, seed=0,
)  # fmt: skip
untrained_samples = gan.sample(1000)
loader = DataLoader(
    TensorDataset(train_images),
    batch_size=64,
    shuffle=True,
    drop_last=True,
    generator=torch.Generator().manual_seed(0),
)
history = gan.fit(loader, epochs=60, progress=False, sample_every=1)
print(f"final epoch: D(x) = {history['d_real'][-1]:.2f}, D(G(z)) = {history['d_fake'][-1]:.2f}")
assert 0.2 < history["d_fake"][-1] < history["d_real"][-1] < 0.8

# %%
epochs = np.arange(1, 61)
fig, (ax_loss, ax_d) = plt.subplots(1, 2, figsize=(11, 3.6))
ax_loss.plot(epochs, history["d_loss"], label="discriminator")
ax_loss.plot(epochs, history["g_loss"], label="generator")
ax_loss.set_ylabel("loss (mean per epoch)")
ax_d.plot(epochs, history["d_real"], label="D(x), real images")
ax_d.plot(epochs, history["d_fake"], label="D(G(z)), generated")
ax_d.axhline(0.5, color="grey", lw=0.5)
ax_d.set_ylabel("discriminator output")
for ax in (ax_loss, ax_d):
    ax.set_xlabel("epoch")
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# Neither loss goes to zero — that would mean one player had won. They settle into a
# stalemate: the discriminator still rates real images higher than generated ones, but it is
# far from certain about either. Losses alone say little about image quality, which is why we
# look at samples and then measure.
#
# The same 64 noise vectors, pushed through the generator after epochs 1, 5, 20 and 60:

# %%
fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
for ax, epoch in zip(axes, [1, 5, 20, 60], strict=True):
    plot_image_grid(history["samples"][epoch - 1], ncols=8, ax=ax)
    ax.set_title(f"after epoch {epoch}")
plt.show()

# %% [markdown]
# ## Measuring instead of eyeballing: the Fréchet distance
#
# Fit a Gaussian to the features of each image set — means $\boldsymbol\mu_a, \boldsymbol\mu_b$,
# covariances $\Sigma_a, \Sigma_b$ — and compute the (squared) Fréchet distance between the two
# Gaussians,
#
# $$
# d^2 = \|\boldsymbol\mu_a - \boldsymbol\mu_b\|^2
#     + \operatorname{Tr}\big(\Sigma_a + \Sigma_b - 2\,(\Sigma_a \Sigma_b)^{1/2}\big).
# $$
#
# Computed on the features of an Inception network trained on ImageNet, this is the FID
# {cite}`heusel2017` that GAN papers report. We cannot download Inception here, and it was
# never meant for $8 \times 8$ digits anyway; our features come from the digits classifier
# above. The numbers are therefore only comparable *within this chapter*, not with published
# FIDs. Three references put the GAN's score in context: uniform noise, the untrained
# generator, and the real training images themselves (the best one can hope for, since 397
# held-out digits are a finite sample).


# %% tags=["nbval-ignore-output"]
# Output varies in the last digits across CPU models; the asserts carry the claims.
@torch.no_grad()
def features(images):
    return classifier.features(images).numpy()


held_out_features = features(held_out)
generated = gan.sample(1000)
noise = torch.rand(1000, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
fid = {
    "real training digits": frechet_distance(features(train_images), held_out_features),
    "trained GAN": frechet_distance(features(generated), held_out_features),
    "untrained generator": frechet_distance(features(untrained_samples), held_out_features),
    "uniform noise": frechet_distance(features(noise), held_out_features),
}
for name, value in fid.items():
    print(f"{name:>22}: {value:7.2f}")
assert fid["trained GAN"] < 0.25 * fid["uniform noise"]
assert fid["trained GAN"] < 0.1 * fid["untrained generator"]

# %% [markdown]
# The trained generator is more than ten times closer to real digits than it was before
# training, and far below the quarter of the noise score that we set as the bar.
#
# ## Mode coverage
#
# A generator can score well on average while producing only a few kinds of digit — *mode
# collapse*, the classic GAN failure. The classifier tells which digit each of 1000 generated
# images resembles:

# %% tags=["nbval-ignore-output"]
# Output varies in the last digits across CPU models; the asserts carry the claims.
with torch.no_grad():
    predicted = classifier(generated).argmax(1)
counts = torch.bincount(predicted, minlength=10)
fig, ax = plt.subplots(figsize=(7, 3.2))
ax.bar(range(10), counts.numpy())
ax.axhline(100, color="grey", ls="--", lw=0.8, label="uniform (100 each)")
ax.set_xticks(range(10))
ax.set_xlabel("digit predicted by the classifier")
ax.set_ylabel("generated images")
ax.set_title("1000 generated digits by class")
ax.legend()
plt.show()
covered = int((counts >= 10).sum())
print("images per class:", counts.tolist(), f"-> {covered} of 10 classes have at least 1 %")
assert covered >= 8

# %% [markdown]
# Every class is produced, none overwhelmingly: no mode collapse here. Label smoothing,
# dropout in the discriminator and a learning rate that keeps the two players balanced are the
# usual first remedies when it does appear.
#
# ## Summary
#
# - A GAN is a two-player game; the generator trains on the non-saturating loss
#   $-\log D(G(\mathbf z))$, which has gradient exactly when the generator is losing.
# - Two defects of the notes, fixed and tested: `BatchNorm1d(n, 0.8)` sets $\epsilon$, not the
#   momentum; `Sigmoid` + `BCELoss` has zero gradient on confident mistakes — use logits and
#   `BCEWithLogitsLoss`.
# - Judge a generator by numbers: a Fréchet distance in the features of a classifier (here
#   below a quarter of the noise's), and coverage of the classes (here all ten).
