# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-backpropagation)=
# # 2. Backpropagation from scratch
#
# {ref}`The last chapter <ch-perceptron>` ended with a network that computes XOR, but only
# because we told its hidden units what to do. To *learn* hidden units we need, for every weight,
# the derivative of the error with respect to that weight. Backpropagation
# {cite}`rumelhart1986` computes all of them in one backward sweep, with nothing but the chain
# rule. We write it out in NumPy, check it three ways, and train with it.

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
from sklearn.datasets import make_moons

from companion import (
    NumpyMLP,
    autograd_gradients,
    gradient_check,
    make_seed_dataset,
    plot_decision_regions,
    sigmoid,
    sigmoid_grad,
)

# %% [markdown]
# ## The network and its loss
#
# A network of $L$ layers maps a batch of inputs $A^{(0)} = X$ (one row per example) through
#
# $$
# Z^{(l)} = A^{(l-1)} W^{(l)} + \mathbf b^{(l)}, \qquad A^{(l)} = f\big(Z^{(l)}\big),
# \qquad l = 1, \dots, L,
# $$
#
# where $w^{(l)}_{ij}$ connects unit $i$ of layer $l - 1$ to unit $j$ of layer $l$ and $f$ is one
# of the activations of chapter 1. The last layer turns scores into probabilities: a sigmoid for a
# single output unit (two classes), a softmax $p_k = e^{z_k} / \sum_j e^{z_j}$ for $K$ classes.
# The loss is the mean **cross-entropy**, minus the log-probability given to the right class:
#
# $$
# L = -\frac{1}{n} \sum_{i=1}^{n} \log p_{i, y_i},
# $$
#
# which for a single sigmoid output $a_i = P(y_i = 1)$ reads
#
# $$
# L = -\frac1n \sum_{i=1}^{n} \big[y_i \log a_i + (1 - y_i) \log(1 - a_i)\big].
# $$
#
# ## The chain rule, one weight at a time
#
# A weight $w_{ij}^{(l)}$ affects the loss only through $z_j^{(l)}$, which affects it only
# through $a_j^{(l)}$. The chain rule multiplies the three local derivatives along that path:
#
# $$
# \frac{\partial L}{\partial w_{ij}^{(l)}}
# = \frac{\partial L}{\partial a_j^{(l)}} \cdot
#   \frac{\partial a_j^{(l)}}{\partial z_j^{(l)}} \cdot
#   \frac{\partial z_j^{(l)}}{\partial w_{ij}^{(l)}}
# = \frac{\partial L}{\partial a_j^{(l)}} \cdot f'\big(z_j^{(l)}\big) \cdot a_i^{(l-1)} .
# $$
#
# The last two factors are local: the slope of the activation and the input that the weight
# multiplies. Only the first, how the loss depends on this unit's output, needs the rest of the
# network. At the output layer it is simple. For a sigmoid unit with cross-entropy,
# $\partial L / \partial a = (a - y) / \big(a(1 - a)\big)$ and $\partial a / \partial z =
# a(1 - a)$, so their product collapses to
#
# $$
# \delta^{(L)} \equiv \frac{\partial L}{\partial z^{(L)}} = a^{(L)} - y,
# $$
#
# and the same holds for softmax with cross-entropy, $\delta^{(L)} = \mathbf p - \mathbf e_y$.
# (This is why the two always come as a pair.) For a hidden unit, $a_j^{(l)}$ feeds every unit
# $k$ of the next layer, so the chain rule sums over them:
# $\partial L / \partial a_j^{(l)} = \sum_k \delta_k^{(l+1)} w_{jk}^{(l+1)}$. That is the
# backward pass: errors $\delta$ flow from the output to the input, through the same weights, in
# reverse. In matrix form, for a batch,
#
# $$
# \begin{aligned}
# \delta^{(L)} &= \tfrac1n \big(A^{(L)} - Y\big), &
# \delta^{(l-1)} &= \big(\delta^{(l)} W^{(l)\top}\big) \odot f'\big(Z^{(l-1)}\big), \\
# \frac{\partial L}{\partial W^{(l)}} &= A^{(l-1)\top} \delta^{(l)}, &
# \frac{\partial L}{\partial \mathbf b^{(l)}} &= \textstyle\sum_i \delta^{(l)}_i .
# \end{aligned}
# $$
#
# Then every weight takes a gradient-descent step, $w_{ij}^{(l)} \leftarrow w_{ij}^{(l)} - \eta
# \, \partial L / \partial w_{ij}^{(l)}$. `companion.NumpyMLP` implements exactly these lines:
# `forward` keeps every $Z^{(l)}$ and $A^{(l)}$, `backward` runs the recursion, `step` takes the
# step.
#
# ## A 2-2-1 network by hand
#
# Two inputs, two sigmoid hidden units, one sigmoid output; one example
# $\mathbf x = (0.05, 0.10)$ with label $y = 1$, and weights chosen by hand.

# %%
x = np.array([[0.05, 0.10]])
y = np.array([1])
W1 = np.array([[0.15, 0.25], [0.20, 0.30]])  # W1[i, j]: input i -> hidden unit j
b1 = np.array([0.35, 0.35])
W2 = np.array([[0.40], [0.45]])  # hidden unit j -> output
b2 = np.array([0.60])

z1 = x @ W1 + b1
a1 = sigmoid(z1)
z2 = a1 @ W2 + b2
a2 = sigmoid(z2)
loss = -np.log(a2[0, 0])
print("hidden pre-activations z1 =", z1.round(5), "  activations a1 =", a1.round(5))
print(f"output z2 = {z2[0, 0]:.5f}, a2 = {a2[0, 0]:.5f}, loss = -log a2 = {loss:.5f}")

# %% [markdown]
# Backward: the output error, then the chain rule for one weight of each layer — $w^{(2)}_{1}$
# (hidden unit 1 to the output) and $w^{(1)}_{11}$ (input 1 to hidden unit 1).

# %%
delta2 = a2 - y  # dL/dz2 = a2 - y
dL_dw2_1 = delta2[0, 0] * a1[0, 0]  # dz2/dw2_1 = a1_1
dL_da1_1 = delta2[0, 0] * W2[0, 0]  # dL/da1_1 = delta2 * w2_1
da1_dz1_1 = sigmoid_grad(z1[0, 0])  # sigma'(z) = a (1 - a)
dz1_dw1_11 = x[0, 0]  # dz1_1/dw1_11 = x_1
dL_dw1_11 = dL_da1_1 * da1_dz1_1 * dz1_dw1_11
print(f"delta2 = a2 - y = {delta2[0, 0]:.5f}")
print(f"dL/dw2_1  = delta2 * a1_1 = {dL_dw2_1:.6f}")
print(
    f"dL/dw1_11 = dL/da1_1 * da1_1/dz1_1 * dz1_1/dw1_11 "
    f"= {dL_da1_1:.5f} * {da1_dz1_1:.5f} * {dz1_dw1_11:.2f} = {dL_dw1_11:.7f}"
)

# %% [markdown]
# The same network in `NumpyMLP` must give the same numbers; its `backward` also fills in the
# other five weights and the three biases.

# %%
net = NumpyMLP([2, 2, 1], activation="sigmoid")
net.weights[0][:], net.biases[0][:] = W1, b1
net.weights[1][:], net.biases[1][:] = W2, b2
assert np.isclose(net.loss(x, y), loss, rtol=0, atol=1e-15)
grad_W, grad_b = net.backward(y)
print("dL/dW1 =\n", grad_W[0].round(7))
print("dL/dW2 =", grad_W[1].ravel().round(6))
assert np.isclose(grad_W[1][0, 0], dL_dw2_1, rtol=0, atol=1e-15)
assert np.isclose(grad_W[0][0, 0], dL_dw1_11, rtol=0, atol=1e-15)

# %% [markdown]
# A step against the gradient must lower the loss, and it does:

# %%
net.step(lr=0.5)
new_loss = net.loss(x, y)
print(f"loss before the step {loss:.5f}, after {new_loss:.5f}")
assert new_loss < loss

# %% [markdown]
# ## Check 1: finite differences
#
# A derivative is a limit of difference quotients, so we can estimate any gradient without the
# chain rule, one weight at a time:
# $\partial L / \partial w \approx
# \big(L(w + \varepsilon) - L(w - \varepsilon)\big) / (2\varepsilon)$.
# The central difference is accurate to $O(\varepsilon^2)$; with $\varepsilon = 10^{-6}$ in
# float64 the estimate agrees with the true derivative to about 10 digits. We compare the whole
# gradient by the relative error $\|g - \hat g\| / (\|g\| + \|\hat g\|)$, which is scale-free.
# `gradient_check` does this for every weight matrix and bias vector of a network, here a deeper
# one, on 20 examples of the synthetic data set used below, with each activation. (It calls
# `numerical_gradient`, which nudges one weight at a time in place and puts it back.) The errors
# printed are rounding-dominated, so their last digits can differ between CPUs; the bound is
# what the test suite checks.

# %%
X_all, y_all = make_seed_dataset()  # the original notes' 3-class problem (tensors)
X_all, y_all = X_all.numpy().astype(np.float64), y_all.numpy()
X_small, y_small = X_all[:20], y_all[:20]

# %% tags=["nbval-ignore-output"]
worst = {}
for activation in ["sigmoid", "tanh", "relu"]:
    deep = NumpyMLP([10, 16, 8, 3], activation=activation, seed=1)
    worst[activation] = max(gradient_check(deep, X_small, y_small, eps=1e-6))
    print(f"{activation:>7}: largest relative error of the 6 arrays = {worst[activation]:.1e}")
assert max(worst.values()) < 1e-6

# %% [markdown]
# ## Check 2: automatic differentiation
#
# Finite differences are independent of our derivation, but only accurate to about $10^{-10}$.
# PyTorch's autograd is exact up to rounding: `autograd_gradients` rebuilds the same network from
# the same weights as float64 tensors, writes only the forward pass, and lets PyTorch derive the
# gradients. The printed gaps are pure rounding, around $10^{-16}$.

# %% tags=["nbval-ignore-output"]
for activation in ["sigmoid", "tanh", "relu"]:
    deep = NumpyMLP([10, 16, 8, 3], activation=activation, seed=1)
    ours = deep.loss(X_small, y_small)
    grad_W, grad_b = deep.backward(y_small)
    theirs, torch_W, torch_b = autograd_gradients(deep, X_small, y_small)
    gap = max(np.abs(g - t).max() for g, t in zip(grad_W + grad_b, torch_W + torch_b, strict=True))
    loss_gap = abs(ours - theirs)
    print(f"{activation:>7}: |loss - torch loss| = {loss_gap:.1e}, max |grad gap| = {gap:.1e}")
    assert loss_gap < 1e-12 and gap < 1e-10

# %% [markdown]
# ## Check 3: learning
#
# The last check is the one that matters: does gradient descent with these gradients learn? First
# XOR, which defeated the perceptron. Four tanh hidden units and full-batch descent:

# %%
X_xor = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
y_xor = np.array([0, 1, 1, 0])
xor_net = NumpyMLP([2, 4, 1], activation="tanh", seed=0)
xor_history = xor_net.fit(X_xor, y_xor, epochs=2000, lr=1.0)
print("predictions:", xor_net.predict(X_xor), " targets:", y_xor)
print(f"final loss {xor_history['loss'][-1]:.4f}, accuracy {xor_net.score(X_xor, y_xor):.0%}")
assert xor_net.score(X_xor, y_xor) == 1.0
assert xor_history["loss"][-1] < xor_history["loss"][0] / 100

# %%
fig, (ax_loss, ax_regions) = plt.subplots(1, 2, figsize=(9.5, 3.8))
ax_loss.semilogy(xor_history["loss"])
ax_loss.set_xlabel("epoch")
ax_loss.set_ylabel("cross-entropy (log scale)")
ax_loss.set_title("Training loss on XOR")
plot_decision_regions(xor_net.predict, X_xor, y_xor, ax=ax_regions, padding=0.6)
ax_regions.set_title("Learned decision regions")
fig.tight_layout()
plt.show()

# %% [markdown]
# The loss stalls at first, while the hidden units are still nearly alike, then falls by more
# than two orders of magnitude once they specialise. Unlike the hand-built network of chapter 1,
# nobody told these hidden units what to compute.
#
# Next, the original notes' synthetic problem: 1000 points in 10 dimensions, three classes
# decided by $x_0 + x_1$ and $x_2$ (the other seven features are noise). The first 800 points
# train, the last 200 validate, as in the notes. One hidden layer of 32 tanh units, mini-batches
# of 32, 100 epochs:

# %%
X_train, y_train, X_val, y_val = X_all[:800], y_all[:800], X_all[800:], y_all[800:]
mlp = NumpyMLP([10, 32, 3], activation="tanh", seed=0)
history = mlp.fit(X_train, y_train, epochs=100, lr=0.1, batch_size=32, validation=(X_val, y_val))
print(f"training accuracy   {history['accuracy'][-1]:.1%}")
print(f"validation accuracy {history['val_accuracy'][-1]:.1%}")
assert history["val_accuracy"][-1] > 0.95
assert history["accuracy"][-1] > history["val_accuracy"][-1]

# %%
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9.5, 3.5))
ax_loss.plot(history["loss"], label="training")
ax_loss.plot(history["val_loss"], label="validation")
ax_loss.set_xlabel("epoch")
ax_loss.set_ylabel("cross-entropy")
ax_loss.legend()
ax_acc.plot(np.array(history["accuracy"]) * 100, label="training")
ax_acc.plot(np.array(history["val_accuracy"]) * 100, label="validation")
ax_acc.set_xlabel("epoch")
ax_acc.set_ylabel("accuracy (%)")
ax_acc.legend()
fig.suptitle("NumPy MLP on the 3-class synthetic data")
fig.tight_layout()
plt.show()

# %% [markdown]
# Above 95 % on held-out data, with gradients we derived by hand. Training accuracy ends about
# two points above validation accuracy: the network fits its own 800 examples better than new
# ones. Chapter 3 studies that gap, overfitting, with PyTorch, dropout and early stopping.
#
# ## Decision regions in two dimensions
#
# In 10 dimensions we cannot see what the network learned; in two we can. scikit-learn's
# two-moons data (300 points to train, 100 held out, with enough noise that the classes
# overlap) and the same network shape with each activation:

# %%
X_moons, y_moons = make_moons(400, noise=0.25, random_state=0)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True)
moons_val_accuracy = {}
for ax, activation in zip(axes, ["sigmoid", "tanh", "relu"], strict=True):
    moons_net = NumpyMLP([2, 16, 16, 2], activation=activation, seed=0)
    moons_history = moons_net.fit(
        X_moons[:300],
        y_moons[:300],
        epochs=300,
        lr=0.5,
        batch_size=32,
        validation=(X_moons[300:], y_moons[300:]),
    )
    moons_val_accuracy[activation] = moons_history["val_accuracy"][-1]
    plot_decision_regions(moons_net.predict, X_moons[:300], y_moons[:300], ax=ax)
    ax.set_title(f"{activation}: held-out accuracy {moons_val_accuracy[activation]:.0%}")
fig.tight_layout()
plt.show()
print({name: round(acc, 3) for name, acc in moons_val_accuracy.items()})
assert min(moons_val_accuracy.values()) >= 0.90

# %% [markdown]
# All three bend the boundary around the moons and reach at least 90 % on held-out points; the
# ReLU network's boundary is piecewise linear (a patchwork of the half-planes its units switch
# on), the sigmoid and tanh boundaries are smooth.
#
# ## When the input is wrong
#
# `NumpyMLP` checks its input and says what is wrong, instead of failing deep inside NumPy or,
# worse, returning NaN:

# %%
X_bad = X_val[:5].copy()
X_bad[3, 7] = np.nan
for call in (
    lambda: mlp.predict(X_val[:, :9]),
    lambda: mlp.predict(X_bad),
    lambda: mlp.loss(X_val[:5], [0, 1, 2, 3, 0]),
):
    try:
        call()
    except ValueError as err:
        print("ValueError:", err)

# %% [markdown]
# ## Summary
#
# - Backpropagation is the chain rule, $\partial L / \partial w_{ij} = \partial L / \partial a_j
#   \cdot f'(z_j) \cdot a_i$, evaluated from the output backwards so that each
#   $\partial L / \partial a$ is computed once and reused.
# - With softmax (or sigmoid) and cross-entropy the output error is just $\mathbf p - \mathbf y$.
# - A hand-written gradient is not done until it matches finite differences (relative error
#   below $10^{-6}$) and autograd (below $10^{-10}$).
# - Trained with those gradients, a small MLP solves XOR and exceeds 95 % on the synthetic
#   3-class problem. Chapter 3 hands the bookkeeping to PyTorch and studies training itself.
