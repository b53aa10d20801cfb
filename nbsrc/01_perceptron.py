# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-perceptron)=
# # 1. The perceptron and activation functions
#
# A neural network is built from one simple part, repeated. In this chapter we write that part
# down, look closely at the functions that make it non-linear, train the oldest neural network
# there is, Rosenblatt's perceptron {cite}`rosenblatt1958`, and find the wall it runs into. Every
# number printed below is re-computed by the book's test suite, and every claim in the text is an
# `assert` in a code cell.
#
# The first cell makes the chapter self-contained: on Colab it installs the book's `companion`
# package (once), then it seeds every random number generator.

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
import warnings

import matplotlib.pyplot as plt
import numpy as np

from companion import (
    Perceptron,
    heaviside,
    make_separable,
    plot_decision_regions,
    relu,
    relu_grad,
    sigmoid,
    sigmoid_grad,
    tanh,
    tanh_grad,
)

# %% [markdown]
# ## One neuron
#
# A neuron takes inputs $x_1, \dots, x_n$, weighs each by $w_i$, adds a bias $b$ and passes the
# sum through an *activation function* $f$:
#
# $$
# y = f\Big(\sum_{i=1}^{n} w_i x_i + b\Big) = f(\mathbf w \cdot \mathbf x + b).
# $$
#
# The sum $z = \mathbf w \cdot \mathbf x + b$ is the *pre-activation*. The weights say how much
# each input matters and in which direction; the bias shifts the point at which the neuron
# "fires". With $\mathbf w = (0.5, -1)$, $b = 0.2$ and $\mathbf x = (1, 2)$, the pre-activation is
# $0.5 - 2 + 0.2 = -1.3$, and a sigmoid turns it into $\sigma(-1.3) \approx 0.214$:

# %%
w = np.array([0.5, -1.0])
b = 0.2
x = np.array([1.0, 2.0])
z = w @ x + b
y = sigmoid(z)
print(f"z = {z:.4f}, y = sigmoid(z) = {y:.4f}")
assert np.isclose(z, -1.3) and round(float(y), 3) == 0.214

# %% [markdown]
# ## Activation functions and their derivatives
#
# Without $f$, a stack of neurons is one big linear map, no more expressive than a single layer.
# The activation is where the non-linearity comes from. Three are used everywhere; training
# (chapter 2) needs their derivatives too:
#
# | name | $f(x)$ | $f'(x)$ |
# |---|---|---|
# | sigmoid | $\sigma(x) = \dfrac{1}{1 + e^{-x}}$ | $\sigma(x)\,\big(1 - \sigma(x)\big)$ |
# | tanh | $\tanh(x) = \dfrac{e^{x} - e^{-x}}{e^{x} + e^{-x}}$ | $1 - \tanh^2(x)$ |
# | ReLU | $\max(0, x)$ | $1$ if $x > 0$, else $0$ |
#
# The derivative of the sigmoid follows from the quotient rule:
# $\sigma'(x) = e^{-x} / (1 + e^{-x})^2 = \sigma(x) \cdot \frac{e^{-x}}{1 + e^{-x}}
# = \sigma(x)\,(1 - \sigma(x))$. ReLU has no derivative at $0$; by convention (and in PyTorch) it
# is taken to be $0$ there. The unit tests check all three derivatives against PyTorch's
# automatic differentiation to $10^{-12}$.

# %%
grid = np.linspace(-5, 5, 501)
pairs = [
    ("sigmoid", sigmoid, sigmoid_grad),
    ("tanh", tanh, tanh_grad),
    ("ReLU", relu, relu_grad),
]
fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), sharex=True)
for ax, (name, f, f_grad) in zip(axes, pairs, strict=True):
    ax.plot(grid, f(grid), label=f"{name}$(x)$")
    ax.plot(grid, f_grad(grid), "--", label=f"{name}$'(x)$")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_title(name)
    ax.set_xlabel("$x$")
    ax.legend(loc="upper left")
axes[0].set_ylabel("value")
fig.tight_layout()
plt.show()

# %% [markdown]
# Each activation (solid) and its derivative (dashed). Look at the derivatives: the sigmoid's
# never exceeds $1/4$, reached at $x = 0$; tanh's peaks at $1$; ReLU's is exactly $1$ for every
# positive input. Since backpropagation multiplies one such factor per layer, ten sigmoid layers
# shrink a gradient by at least $4^{10} \approx 10^6$ — the *vanishing gradient* that made deep
# sigmoid networks so hard to train, and one reason ReLU took over.

# %%
peak = sigmoid_grad(grid).argmax()
print(f"max sigmoid'(x) = {sigmoid_grad(grid)[peak]:.4f} at x = {grid[peak]:.1f}")
print(f"tanh'(0) = {tanh_grad(0.0):.1f},  ReLU' takes the values {np.unique(relu_grad(grid))}")
print(f"ten sigmoid layers: gradient factor at most 0.25**10 = {0.25**10:.2e}")
assert sigmoid_grad(grid).max() == 0.25 and tanh_grad(0.0) == 1.0
assert set(np.unique(relu_grad(grid))) == {0.0, 1.0}
assert np.all(sigmoid_grad(grid) ** 10 <= 0.25**10)

# %% [markdown]
# (pitfall-sigmoid-overflow)=
# ```{warning}
# **Pitfall: the textbook sigmoid overflows.** Written as `1 / (1 + np.exp(-x))`, the sigmoid
# computes $e^{1000} = \infty$ for $x = -1000$. The value happens to come out right
# ($1/\infty = 0$), but NumPy warns about the overflow, and the derivative written the same way,
# $e^{-x}/(1 + e^{-x})^2 = \infty/\infty$, is **NaN**: a silent wrong answer that then spreads
# through every gradient it touches. `companion.sigmoid` uses $u = e^{-|x|} \le 1$, which never
# overflows: $\sigma(x) = 1/(1 + u)$ for $x \ge 0$ and $u/(1 + u)$ for $x < 0$. Tests:
# `test_naive_sigmoid_overflows_pitfall` and `test_sigmoid_is_finite_and_warning_free_up_to_1e4`
# in `tests/test_activations.py`.
# ```
#
# Here is the defect re-created in two lines, next to the fix:

# %%
x_far = np.array([-1000.0, 1000.0])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    naive = 1 / (1 + np.exp(-x_far))
    naive_grad = np.exp(-x_far) / (1 + np.exp(-x_far)) ** 2
print("naive sigmoid:   ", naive, "  derivative:", naive_grad)
print("warnings raised: ", sorted({str(w.message) for w in caught}))
print("companion:       ", sigmoid(x_far), "  derivative:", sigmoid_grad(x_far))
assert np.isnan(naive_grad[0]) and len(caught) > 0
assert np.array_equal(sigmoid(x_far), [0.0, 1.0]) and np.array_equal(
    sigmoid_grad(x_far), [0.0, 0.0]
)

# %% [markdown]
# ## The perceptron
#
# Rosenblatt's perceptron is a single neuron whose activation is the step function
# $H(z) = 1$ if $z \ge 0$ and $0$ otherwise: it answers yes or no. The set of inputs where it
# switches, $\mathbf w \cdot \mathbf x + b = 0$, is a line in the plane (a hyperplane in general),
# the *decision boundary*.
#
# The step has no useful derivative, so the perceptron is not trained by gradients but by its
# own **learning rule**. Visit the examples one by one; predict $\hat y = H(\mathbf w \cdot
# \mathbf x + b)$; then
#
# $$
# \mathbf w \leftarrow \mathbf w + \eta\,(y - \hat y)\,\mathbf x, \qquad
# b \leftarrow b + \eta\,(y - \hat y).
# $$
#
# A correct prediction ($y = \hat y$) changes nothing. A missed positive ($y = 1$, $\hat y = 0$)
# adds $\mathbf x$ to $\mathbf w$, which raises $\mathbf w \cdot \mathbf x$ next time; a false
# positive subtracts it. The rule stops when a whole pass over the data makes no mistake.
#
# We try it on two classes that a line can separate: 100 points on either side of the line
# $x_1 + 2x_2 = 1/2$, none closer to it than $0.3$.

# %%
X, y, w_star, b_star = make_separable(100, margin=0.3, seed=0)
perceptron = Perceptron(lr=1.0, max_epochs=100, seed=0).fit(X, y)
print("mistakes per epoch:", perceptron.errors_)
print("converged:", perceptron.converged_, " training accuracy:", perceptron.score(X, y))
print("learned w =", perceptron.weights_.round(3), " b =", round(perceptron.bias_, 3))
assert perceptron.converged_ and perceptron.score(X, y) == 1.0

# %% [markdown]
# It converged: the last epoch made no mistake. That is no accident. **Novikoff's theorem**
# {cite}`novikoff1962` says that if some unit vector $\mathbf u$ separates the data with margin
# $\gamma$ (every example has $(2y - 1)\,\mathbf u \cdot \tilde{\mathbf x} \ge \gamma$, where
# $\tilde{\mathbf x} = (\mathbf x, 1)$ folds the bias in), and every $\|\tilde{\mathbf x}\| \le
# R$, then the rule, started from zero, makes at most $(R/\gamma)^2$ mistakes in total — however
# the examples are ordered. We know a separator, the line the data were made with, so we can
# check the bound:

# %%
X_aug = np.column_stack([X, np.ones(len(X))])
u = np.append(w_star, b_star) / np.linalg.norm(np.append(w_star, b_star))
gamma = np.min((2 * y - 1) * (X_aug @ u))
R = np.linalg.norm(X_aug, axis=1).max()
bound = (R / gamma) ** 2
print(f"total mistakes = {sum(perceptron.errors_)},  Novikoff bound (R/gamma)^2 = {bound:.0f}")
assert sum(perceptron.errors_) <= bound

# %%
ax = plot_decision_regions(perceptron.predict, X, y)
line_x = np.linspace(X[:, 0].min(), X[:, 0].max(), 2)
ax.plot(line_x, (0.5 - line_x) / 2, "k--", lw=1, label="line the data were made with")
ax.set_title("Perceptron on separable data")
ax.legend(loc="lower left", fontsize=8)
plt.show()

# %% [markdown]
# The learned boundary (where the colours meet) separates the classes, but it is not the line
# the data came from (dashed): the rule stops at the *first* separating line it finds, not the
# best one.
#
# ## What a perceptron cannot learn: XOR
#
# Now the four points of the exclusive or, $y = 1$ exactly when one input is 1. No line puts
# $(0, 1)$ and $(1, 0)$ on one side and $(0, 0)$ and $(1, 1)$ on the other, and Minsky and Papert
# made this limitation famous {cite}`minsky1969`. The rule never stops making mistakes:

# %%
X_xor = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
y_xor = np.array([0, 1, 1, 0])
xor_perceptron = Perceptron(max_epochs=100, seed=0).fit(X_xor, y_xor)
print("converged:", xor_perceptron.converged_)
print("mistakes in the last 10 of 100 epochs:", xor_perceptron.errors_[-10:])
print("accuracy:", xor_perceptron.score(X_xor, y_xor))
assert not xor_perceptron.converged_ and min(xor_perceptron.errors_) > 0
assert xor_perceptron.score(X_xor, y_xor) <= 0.75

# %% [markdown]
# Three out of four is the best any line can do. A brute-force check makes that concrete: of
# 100 000 random lines, none classifies all four points correctly, and the best get exactly three.

# %%
rng = np.random.default_rng(0)
lines = rng.normal(size=(100_000, 3))  # rows (w1, w2, b)
predictions = heaviside(X_xor @ lines[:, :2].T + lines[:, 2])  # shape (4, 100000)
best = (predictions == y_xor[:, None]).mean(axis=0).max()
print(f"best accuracy of 100,000 random lines on XOR: {best}")
assert best == 0.75

# %% [markdown]
# ## The way out: a hidden layer
#
# XOR is "OR but not AND": $\mathrm{XOR}(x_1, x_2) = \mathrm{AND}\big(\mathrm{OR}(x_1, x_2),
# \mathrm{NAND}(x_1, x_2)\big)$. OR, NAND and AND are each linearly separable, so a perceptron
# learns each of them. Stacking them — two perceptrons in a *hidden layer* feeding a third —
# computes XOR. We train each gate on 25 jittered copies of each corner of the square; the jitter
# plays the role of noisy measurements and keeps the learned lines away from the corners.

# %%
gates = {
    "OR": np.array([0, 1, 1, 1]),
    "NAND": np.array([1, 1, 1, 0]),
    "AND": np.array([0, 0, 0, 1]),
}
corner = np.repeat(np.arange(4), 25)  # which corner each jittered point belongs to
X_jitter = X_xor[corner] + rng.uniform(-0.2, 0.2, size=(100, 2))
units = {name: Perceptron(seed=0).fit(X_jitter, target[corner]) for name, target in gates.items()}
print({name: unit.converged_ for name, unit in units.items()})
assert all(unit.converged_ for unit in units.values())


def two_layer_xor(X):
    hidden = np.column_stack([units["OR"].predict(X), units["NAND"].predict(X)])
    return units["AND"].predict(hidden)


print("two-layer network on the XOR inputs:", two_layer_xor(X_xor), " targets:", y_xor)
assert np.array_equal(two_layer_xor(X_xor), y_xor)

# %%
ax = plot_decision_regions(two_layer_xor, X_xor, y_xor, padding=0.6)
ax.set_title("Two layers of perceptrons compute XOR")
plt.show()

# %% [markdown]
# The decision region of the two-layer network is a band between two lines, one per hidden unit
# — a shape no single line can draw. With enough hidden units, such networks approximate any
# continuous function {cite}`cybenko1989`.
#
# But we cheated: we *told* each hidden unit what to compute (OR, NAND). The perceptron rule
# needs a target for every neuron, and hidden neurons have none; the data only say what the
# output should be. Learning the hidden layer means asking how a small change of each hidden
# weight changes the final error — a derivative. The step function's derivative is zero
# everywhere it exists, so it gives no answer; the smooth activations above do. The next chapter
# replaces $H$ by $\sigma$, $\tanh$ or ReLU and computes those derivatives with the chain rule:
# backpropagation.
#
# ## Summary
#
# - A neuron computes $y = f(\mathbf w \cdot \mathbf x + b)$; the activation $f$ is the only
#   non-linear part.
# - The sigmoid's derivative is at most $1/4$; tanh's at most $1$; ReLU's is $0$ or $1$.
#   Compute the sigmoid without overflow.
# - The perceptron rule provably converges on linearly separable data, within $(R/\gamma)^2$
#   mistakes, and never converges on XOR.
# - A hidden layer fixes XOR, but training it needs gradients, hence differentiable activations.
