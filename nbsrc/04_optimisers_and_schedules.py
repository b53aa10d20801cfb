# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-optimisers)=
# # 4. Optimisers and learning-rate schedules
#
# {ref}`Chapter 3 <ch-training>` called `torch.optim.Adam` and a cosine schedule and got 98 %.
# This chapter opens both boxes. We write SGD, momentum and Adam from their update equations —
# `companion.optim`, a few lines each, reproducing PyTorch's optimisers bit for bit — watch them
# on two classic landscapes where plain gradient descent struggles, compare them on the chapter 3
# network, and then build the two learning-rate schedules that modern training uses: the
# Transformer's warm-up and cosine annealing with warm restarts.

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

from companion import (
    SGD,
    Adam,
    CosineAnnealingWarmRestarts,
    NeuralNetwork,
    NoamLR,
    Trainer,
    make_seed_dataset,
    optimization_path,
    quadratic,
    rosenbrock,
    seed_everything,
    train_val_loaders,
)

# %% [markdown]
# ## Three update rules
#
# Every optimiser here takes the gradient $g_t = \nabla_\theta L(\theta_{t-1})$ of the current
# mini-batch and moves the parameters $\theta$. **Gradient descent** moves against it:
#
# $$\theta_t = \theta_{t-1} - \eta\, g_t.$$
#
# **Momentum** accumulates past gradients in a buffer $b$ and moves along the buffer, so
# directions in which the gradient keeps its sign speed up, and directions in which it flips
# cancel out:
#
# $$b_t = \mu\, b_{t-1} + g_t, \qquad \theta_t = \theta_{t-1} - \eta\, b_t.$$
#
# **Adam** {cite}`kingma2015` keeps exponential averages of the gradient and of its square,
# element by element, corrects both for their start at zero, and divides:
#
# $$
# \begin{aligned}
# m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, &
# v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2, \\
# \hat m_t &= \frac{m_t}{1 - \beta_1^t}, &
# \hat v_t &= \frac{v_t}{1 - \beta_2^t}, \\
# \theta_t &= \theta_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}.
# \end{aligned}
# $$
#
# $\hat m_t / \sqrt{\hat v_t}$ is roughly the sign of a consistent gradient: each parameter moves
# by about $\eta$ per step whatever the scale of its gradient. Without the bias correction the
# first steps would be tiny: $m_1 = (1 - \beta_1) g_1 = 0.1\, g_1$. (Weight decay $\lambda$, when
# used, adds $\lambda \theta_{t-1}$ to $g_t$ first, as in PyTorch.)
#
# `companion.optim.SGD` and `companion.optim.Adam` are `torch.optim.Optimizer` subclasses whose
# `step` is exactly these lines. Because they also perform PyTorch's floating-point operations in
# the same order, they reproduce `torch.optim` to the last bit — checked here on the chapter 3
# network, in float64, over 200 steps (8 epochs of 25 batches):

# %%
X, y = make_seed_dataset()


def train_copy(make_optimizer, epochs=8, dtype=torch.float64):
    """Train the chapter-3 network from seed 0 with the given optimiser; return the model."""
    seed_everything(0)
    model = NeuralNetwork(10, [64, 32], 3, dropout_rate=0.2).to(dtype)
    loaders = train_val_loaders(X.to(dtype), y, train_size=800, batch_size=32, seed=0)
    trainer = Trainer(model, device="cpu")
    trainer.fit(*loaders, epochs, optimizer=make_optimizer(model.parameters()), progress=False)
    return model


def max_difference(a, b):
    pairs = zip(a.parameters(), b.parameters(), strict=True)
    return max((p - q).abs().max().item() for p, q in pairs)


pairs = {
    "Adam(lr=1e-3)": (Adam, torch.optim.Adam, {"lr": 1e-3}),
    "Adam(lr=1e-2, weight_decay=1e-4, amsgrad)": (
        Adam,
        torch.optim.Adam,
        {"lr": 1e-2, "weight_decay": 1e-4, "amsgrad": True},
    ),
    "SGD(lr=0.05, momentum=0.9, nesterov)": (
        SGD,
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.9, "nesterov": True},
    ),
}
for name, (ours, theirs, kwargs) in pairs.items():
    gap = max_difference(
        train_copy(lambda p, o=ours, k=kwargs: o(p, **k)),
        train_copy(lambda p, t=theirs, k=kwargs: t(p, **k)),
    )
    print(f"{name:>42}: max |ours - torch.optim| after 200 steps = {gap:.1e}")
    assert gap <= 1e-12

# %% [markdown]
# ## An ill-conditioned bowl
#
# Why is plain gradient descent not enough? Take the quadratic
# $f(x, y) = \tfrac12 (x^2 + 100\, y^2)$, a bowl 100 times steeper along $y$ than along $x$.
# A gradient step multiplies $y$ by $(1 - 100\eta)$, which diverges unless $\eta < 0.02$; at such
# a step $x$ shrinks by only $(1 - \eta) \ge 0.98$ per step. The steep direction dictates the
# step size, and the flat direction pays for it. Real loss surfaces are like this in millions of
# directions at once.
#
# To compare fairly, each optimiser gets the best learning rate of the same grid of 13 values
# from $10^{-4}$ to $1$, judged by $f$ after 100 steps from $(-10, 1)$ (momentum $\mu = 0.9$,
# Adam's default $\beta$s):

# %%
learning_rates = np.geomspace(1e-4, 1.0, 13)
optimisers = {
    "gradient descent": lambda lr: lambda p: SGD(p, lr=lr),
    "momentum 0.9": lambda lr: lambda p: SGD(p, lr=lr, momentum=0.9),
    "Adam": lambda lr: lambda p: Adam(p, lr=lr),
}


def best_paths(f, start, steps):
    """For each optimiser, the path of the learning rate with the lowest final f."""
    best = {}
    for name, make in optimisers.items():
        results = []
        for lr in learning_rates:
            path = optimization_path(f, start, make(lr), steps)
            final = float(f(torch.tensor(path[-1])))
            results.append((final if np.isfinite(final) else np.inf, lr, path))
        best[name] = min(results, key=lambda r: r[0])
        final, lr, _ = best[name]
        print(f"{name:>16}: best lr {lr:.1e}, f after {steps} steps = {final:.1e}")
    return best


with np.errstate(over="ignore", invalid="ignore"):  # diverging learning rates overflow
    bowl = best_paths(quadratic, [-10.0, 1.0], steps=100)


# %%
def contour_with_paths(f, best, xlim, ylim, minimum, title, log_levels):
    gx, gy = np.meshgrid(np.linspace(*xlim, 300), np.linspace(*ylim, 300))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.contour(gx, gy, f(np.stack([gx, gy])), levels=log_levels, colors="grey", linewidths=0.5)
    for (name, (_, lr, path)), colour in zip(best.items(), ["C0", "C1", "C2"], strict=True):
        ax.plot(
            path[:, 0], path[:, 1], ".-", color=colour, ms=3, lw=1, label=f"{name}, lr {lr:.0e}"
        )
    ax.plot(*minimum, "k*", ms=12, label="minimum")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("$x$")
    ax.set_ylabel("$y$")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    plt.show()


contour_with_paths(
    quadratic, bowl, (-11, 2), (-1.5, 1.5), (0, 0),
    r"$f = \frac{1}{2}(x^2 + 100 y^2)$: 100 steps from $(-10, 1)$",
    np.geomspace(0.01, 200, 15),
)  # fmt: skip
assert bowl["gradient descent"][0] > 1 and bowl["gradient descent"][1] < 0.02
assert bowl["momentum 0.9"][0] < 1e-3 and bowl["Adam"][0] < 1e-3

# %% [markdown]
# Gradient descent (blue) is still far from the minimum after 100 steps at its largest stable
# learning rate: it crawls along $x$. Momentum (orange) oscillates across the valley at first,
# but the oscillations cancel in the buffer while the consistent pull along $x$ adds up. Adam
# (green) divides each coordinate's step by the size of its own gradients, so the steep and the
# flat direction advance at similar speeds — here because the bowl's axes are the coordinate
# axes; a rotated bowl would not give Adam this advantage.
#
# ## Rosenbrock's valley
#
# $f(x, y) = (1 - x)^2 + 100 (y - x^2)^2$ has its minimum at $(1, 1)$ at the end of a curved,
# nearly flat valley with steep walls. 500 steps from $(-1.5, 2)$, each optimiser again at its
# best learning rate from the grid:

# %%
with np.errstate(over="ignore", invalid="ignore"):
    valley = best_paths(rosenbrock, [-1.5, 2.0], steps=500)
contour_with_paths(
    rosenbrock, valley, (-2, 2), (-0.5, 3), (1, 1),
    "Rosenbrock: 500 steps from $(-1.5, 2)$", np.geomspace(0.01, 2000, 20),
)  # fmt: skip
assert valley["gradient descent"][0] > 1
assert valley["momentum 0.9"][0] < 1e-3 and valley["Adam"][0] < 1e-3

# %% [markdown]
# The walls force gradient descent to a tiny step ($10^{-3}$; anything larger diverges), and it
# has barely entered the valley after 500 steps. Momentum and Adam both reach the minimum to
# within $f < 10^{-3}$.

# %% [markdown]
# ## On a real network
#
# The same three optimisers on the chapter 3 network and data, 30 epochs each, with three
# learning rates apiece. Momentum's grid is gradient descent's divided by 10, for a reason that
# the results make clear:

# %%
candidates = {
    "gradient descent": (lambda p, lr: SGD(p, lr=lr), [0.03, 0.1, 0.3]),
    "momentum 0.9": (lambda p, lr: SGD(p, lr=lr, momentum=0.9), [0.003, 0.01, 0.03]),
    "Adam": (lambda p, lr: Adam(p, lr=lr), [1e-3, 3e-3, 1e-2]),
}
trials = {}
print(f"{'':>16}  {'lr':>6}  val loss @10  @30  val acc @30")
for name, (make, lrs) in candidates.items():
    for lr in lrs:
        seed_everything(0)
        model = NeuralNetwork(10, [64, 32], 3, dropout_rate=0.2)
        trainer = Trainer(model, device="cpu")
        loaders = train_val_loaders(X, y, train_size=800, batch_size=32, seed=0)
        trainer.fit(*loaders, 30, optimizer=make(model.parameters(), lr), progress=False)
        history = trials[name, lr] = trainer.history
        print(
            f"{name:>16}  {lr:>6g}  {history['val_loss'][9]:11.3f}  {history['val_loss'][-1]:.3f}"
            f"  {history['val_acc'][-1]:10.1%}"
        )
best = {
    name: min(lrs, key=lambda lr, n=name: trials[n, lr]["val_loss"][-1])
    for name, (_, lrs) in candidates.items()
}

# %%
fig, (ax_train, ax_val) = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
for name, lr in best.items():
    history = trials[name, lr]
    epochs = np.arange(1, 31)
    ax_train.plot(epochs, history["train_loss"], label=f"{name} (lr {lr:g})")
    ax_val.plot(epochs, history["val_loss"], label=f"{name} (lr {lr:g})")
ax_train.set_title("training loss, best learning rate of each")
ax_val.set_title("validation loss, best learning rate of each")
for ax in (ax_train, ax_val):
    ax.set_xlabel("epoch")
    ax.set_yscale("log")
ax_train.set_ylabel("cross-entropy")
ax_val.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# Three observations, each asserted below.
#
# 1. **Momentum 0.9 at learning rate $\eta$ behaves like gradient descent at $10\eta$.** When
#    the gradient changes slowly, the buffer sums a geometric series,
#    $b \approx g\,(1 + \mu + \mu^2 + \dots) = g / (1 - \mu)$, so the effective step is
#    $\eta / (1 - \mu)$. Pair by pair, the validation losses after 10 epochs agree to within
#    15 %. Momentum's real gains are on ill-conditioned, curved landscapes like the two above,
#    where it damps the oscillations that limit gradient descent.
# 2. **Tuned, all three end within two points of each other** on this small, well-scaled
#    problem. There is no universally best optimiser; there are learning rates that suit each.
# 3. **Adam's largest rate overfits.** At $10^{-2}$ its training loss is the lowest of all nine
#    runs, but its validation loss after 30 epochs is higher than at its best rate — chapter 3
#    needed a schedule that decays to zero to use that rate well.

# %%
for lr in (0.003, 0.01, 0.03):
    gd, momentum = trials["gradient descent", 10 * lr], trials["momentum 0.9", lr]
    assert abs(momentum["val_loss"][9] / gd["val_loss"][9] - 1) < 0.15
final_acc = [trials[name, lr]["val_acc"][-1] for name, lr in best.items()]
assert max(final_acc) - min(final_acc) <= 0.02
adam_fast, adam_best = trials["Adam", 1e-2], trials["Adam", best["Adam"]]
assert best["Adam"] < 1e-2 and adam_fast["val_loss"][-1] > adam_best["val_loss"][-1]
assert adam_fast["train_loss"][-1] == min(h["train_loss"][-1] for h in trials.values())

# %% [markdown]
# ## Learning-rate schedules
#
# A constant learning rate is a compromise: large enough to make progress early, small enough
# to settle at the end. Schedules change it during training. `companion.schedules` has two,
# both `torch.optim.lr_scheduler.LRScheduler` subclasses, so they work with any optimiser and
# are saved in checkpoints.
#
# ### Warm-up: the Transformer's schedule
#
# The Transformer {cite}`vaswani2017` trains with
#
# $$
# \eta(s) = d_\text{model}^{-1/2} \cdot \min\big(s^{-1/2},\; s \cdot w^{-3/2}\big),
# $$
#
# where $s = 1, 2, \dots$ counts optimiser steps and $w$ is the number of warm-up steps: the rate
# grows linearly for $w$ steps, peaks at $(d_\text{model}\, w)^{-1/2}$, then decays as
# $1/\sqrt{s}$. Why start small? At the first steps Adam's second-moment estimate $\hat v_t$ rests
# on a handful of gradients and is noisy, and a freshly initialised deep network can be knocked
# into a bad region by a few large updates (in a Transformer, attention weights saturate and
# LayerNorm amplifies early errors). Warming up lets the statistics settle before the steps get
# large. `NoamLR` takes $s = $ `last_epoch + 1`, so the very first step already has the
# finite rate $\eta(1)$: no division by zero.

# %%
steps = np.arange(1, 20_001)
fig, ax = plt.subplots(figsize=(7, 3.8))
for d_model, warmup in [(512, 4000), (512, 8000), (256, 4000)]:
    optimizer = Adam([torch.zeros(1, requires_grad=True)], lr=1.0, betas=(0.9, 0.98), eps=1e-9)
    scheduler = NoamLR(optimizer, d_model=d_model, warmup_steps=warmup)
    lrs = []
    for _ in steps:
        lrs.append(optimizer.param_groups[0]["lr"])  # the rate this optimiser step uses
        optimizer.step()
        scheduler.step()
    lrs = np.array(lrs)
    ax.plot(steps, lrs * 1e3, label=f"$d_{{model}}$ = {d_model}, $w$ = {warmup}")
    closed_form = d_model**-0.5 * np.minimum(steps**-0.5, steps * warmup**-1.5)
    assert np.allclose(lrs, closed_form, rtol=1e-12, atol=0)
    assert lrs.argmax() + 1 == warmup and np.isclose(lrs.max(), (d_model * warmup) ** -0.5)
ax.set_xlabel("optimiser step $s$")
ax.set_ylabel("learning rate ($10^{-3}$)")
ax.set_title("NoamLR: linear warm-up, then $1/\\sqrt{s}$ decay")
ax.legend()
plt.show()

# %% [markdown]
# Each curve peaks exactly at its warm-up length, at $(d_\text{model}\, w)^{-1/2}$ (asserted),
# and equals the closed form at every one of the 20 000 steps. Wider models get smaller rates.
#
# ### Cosine annealing with warm restarts
#
# SGDR {cite}`loshchilov2017` anneals the learning rate along half a cosine, from
# $\eta_\max$ to $\eta_\min$ over a cycle of $T_i$ steps, then *restarts* at $\eta_\max$:
#
# $$
# \eta_t = \eta_\min + \tfrac12 (\eta_\max - \eta_\min)\big(1 + \cos(\pi\, T_\text{cur} / T_i)\big),
# $$
#
# with $T_\text{cur}$ the steps since the last restart. With $T_\text{mult} = 2$ each cycle is
# twice as long as the one before. The restarts jolt the model out of the basin it settled in;
# the end of each cycle, at a small rate, is a natural moment to save a snapshot. Chapter 3's
# recipe was a single such cycle. Ours matches PyTorch's own implementation:

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
for t_mult in (1, 2):
    params = [torch.zeros(1, requires_grad=True)]
    ours = CosineAnnealingWarmRestarts(SGD(params, lr=0.1), T_0=10, T_mult=t_mult, eta_min=1e-3)
    reference_optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    reference = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        reference_optimizer, T_0=10, T_mult=t_mult, eta_min=1e-3
    )
    ours_lr, reference_lr = [], []
    for _ in range(150):
        ours_lr.append(ours.get_last_lr()[0])
        reference_lr.append(reference.get_last_lr()[0])
        ours.optimizer.step()
        reference_optimizer.step()
        ours.step()
        reference.step()
    ax.plot(ours_lr, label=f"$T_0$ = 10, $T_{{mult}}$ = {t_mult}")
    assert np.allclose(ours_lr, reference_lr, rtol=0, atol=1e-12)
    restarts = [t for t in range(1, 150) if ours_lr[t] > ours_lr[t - 1]]
    print(f"T_mult = {t_mult}: restarts at steps {restarts}")
ax.set_xlabel("step")
ax.set_ylabel("learning rate")
ax.set_title("Cosine annealing with warm restarts")
ax.legend()
plt.show()

# %% [markdown]
# ## Bad arguments fail early, and say why
#
# A negative learning rate or a $\beta$ of 1 would not crash; it would quietly train in the
# wrong direction, or divide by $1 - \beta^t = 0$. The constructors refuse them and name the
# argument:

# %%
params = [torch.zeros(2, requires_grad=True)]
for make in (
    lambda: SGD(params, lr=-0.1),
    lambda: Adam(params, betas=(0.9, 1.0)),
    lambda: NoamLR(Adam(params), d_model=512, warmup_steps=0),
):
    try:
        make()
    except ValueError as err:
        print("ValueError:", err)

# %% [markdown]
# ## Summary
#
# - Gradient descent's step is limited by the steepest direction; momentum accumulates
#   consistent directions; Adam rescales each parameter by its own gradient history.
# - Written from the equations, `companion.optim` matches `torch.optim` exactly (float64,
#   200 steps), and the benchmark (`make bench`) puts its step time on a par with PyTorch's.
# - Warm-up protects the first steps, cosine annealing ends training at a small rate, and
#   restarts begin new cycles; both schedules plug into any optimiser and checkpoint.
