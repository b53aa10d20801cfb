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
# `companion.optim`, a few lines each, reproducing PyTorch's optimisers bit for bit on the CPU —
# watch them on two classic landscapes where plain gradient descent struggles, compare them on
# the chapter 3 network, and then build the two learning-rate schedules that modern training
# uses: the Transformer's warm-up and cosine annealing with warm restarts.

# %%
try:
    import companion
except ImportError:  # on Colab: install the book's package, once
    import subprocess
    import sys

    REPOSITORY = "https://github.com/neural-networks-tested/book"
    PIP = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.check_call([*PIP, f"git+{REPOSITORY}@main"])
    import companion

SEED = companion.seed_everything(0)  # seeds everything, and one CPU thread
DEVICE = companion.use_device("cpu")  # the book's numbers are CPU numbers

# %%
import math
import textwrap

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
    learning_rate_sweep,
    make_seed_dataset,
    mean_range,
    quadratic,
    rosenbrock,
    seed_everything,
    train_seed_mlp,
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
# by about $\eta$ per step whatever the scale of its gradient. (Weight decay $\lambda$, when
# used, adds $\lambda \theta_{t-1}$ to $g_t$ first, as in PyTorch.)
#
# ### What the bias correction does
#
# For a constant gradient $g$ the averages are $m_t = (1 - \beta_1^t)\, g$ and
# $v_t = (1 - \beta_2^t)\, g^2$: both start too small, and the corrections divide that out, so
# $\hat m_t / \sqrt{\hat v_t} = \operatorname{sign}(g)$ from the first step. Without them the
# step would be $(1 - \beta_1^t) / \sqrt{1 - \beta_2^t}$ times Adam's — *larger*, not smaller,
# because with $\beta_2 = 0.999$ the denominator is the more biased of the two
# ({cite}`kingma2015`, §3). The first steps come out tiny only if $v$ is corrected and $m$ is
# not. The four variants on a constant gradient, next to the steps `companion.optim.Adam`
# actually takes (with $\epsilon = 0$, so that the ratios are exact), in units of $\eta$:

# %%
beta1, beta2, lr = 0.9, 0.999, 1e-3
g = torch.tensor([0.5, -2e-3], dtype=torch.float64)  # two scales, constant
theta = torch.zeros(2, dtype=torch.float64, requires_grad=True)
adam = Adam([theta], lr=lr, betas=(beta1, beta2), eps=0.0)
taken = []  # the steps Adam takes, in units of lr, per coordinate
for _ in range(10):
    before = theta.detach().clone()
    adam.zero_grad()
    (g @ theta).backward()  # f = g·θ: the gradient is g at every θ
    adam.step()
    taken.append(((before - theta.detach()) / (lr * g.sign())).tolist())
taken = np.array(taken)

variants = {"both": [], "neither": [], "v only": [], "m only": []}
m = v = 0.0  # the recursions themselves, for one coordinate of g
for t in range(1, 11):
    m = beta1 * m + (1 - beta1) * g[0].item()
    v = beta2 * v + (1 - beta2) * g[0].item() ** 2
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    variants["both"].append(m_hat / math.sqrt(v_hat))
    variants["neither"].append(m / math.sqrt(v))
    variants["v only"].append(m / math.sqrt(v_hat))
    variants["m only"].append(m_hat / math.sqrt(v))
variants = {name: np.array(steps) for name, steps in variants.items()}

print(" " * 27, "the recursions, corrected:")
header = "".join(f"{k:>{len(k) + 2}}" for k in variants)
print(f"{'t':>3}{'Adam: g = 0.5':>14}{'-0.002':>8}  {header}")
for t in (1, 2, 5, 10):
    row = "".join(f"{variants[k][t - 1]:>{len(k) + 2}.3f}" for k in variants)
    print(f"{t:3d}{taken[t - 1, 0]:14.3f}{taken[t - 1, 1]:8.3f}  {row}")

t = np.arange(1, 11)
assert np.allclose(taken, 1.0, rtol=0, atol=1e-12)  # both coordinates
assert np.allclose(variants["both"], 1.0, rtol=0, atol=1e-12)
ratio = (1 - beta1**t) / np.sqrt(1 - beta2**t)  # Kingma & Ba, §3
assert np.allclose(variants["neither"], ratio, rtol=1e-12, atol=0)
assert np.allclose(variants["v only"], 1 - beta1**t, rtol=1e-12, atol=0)
assert np.allclose(variants["m only"], 1 / np.sqrt(1 - beta2**t), rtol=1e-12)
assert round(ratio[0], 1) == 3.2 and round(ratio[9], 1) == 6.5
assert abs(taken[0, 0] - variants["neither"][0]) > 2  # Adam is not "neither"

# %% [markdown]
# Dropping both corrections makes the first step 3.2 times too large and the tenth 6.5 times;
# correcting only $v$ makes the first step ten times too small, and correcting only $m$ makes it
# 32 times too large. Adam, with both, moves each coordinate by exactly $\eta$ — the one of
# size $0.5$ and the one of size $0.002$ alike.
#
# ### Two variants: Nesterov momentum and AMSGrad
#
# Both are options of `companion.optim` and of `torch.optim`. **Nesterov momentum**
# (`SGD(..., nesterov=True)`) adds the gradient once more on top of the updated buffer,
#
# $$b_t = \mu\, b_{t-1} + g_t, \qquad \theta_t = \theta_{t-1} - \eta\, (g_t + \mu\, b_t),$$
#
# which is PyTorch's form of the method in {cite}`sutskever2013`: the step anticipates where the
# momentum is about to carry the parameters. **AMSGrad** (`Adam(..., amsgrad=True)`,
# {cite}`reddi2018`) divides by the largest second moment seen so far instead of the current
# one,
#
# $$
# v^{\max}_t = \max(v^{\max}_{t-1}, v_t), \qquad
# \theta_t = \theta_{t-1}
#     - \eta\, \frac{\hat m_t}{\sqrt{v^{\max}_t / (1 - \beta_2^t)} + \epsilon},
# $$
#
# so a large gradient, once seen, is never forgotten by the denominator: Reddi et al. built a
# problem on which plain Adam fails to converge because $v_t$ forgets rare large gradients.
#
# ### Bit for bit
#
# `companion.optim.SGD` and `companion.optim.Adam` are `torch.optim.Optimizer` subclasses whose
# `step` is exactly these lines. They also perform PyTorch's floating-point operations in the
# same order, so they reproduce `torch.optim`'s single-tensor implementation
# (`foreach=False`, PyTorch's default for parameters on the CPU) bit for bit: `torch.equal` on
# every weight, on the chapter 3 network over 200 steps (8 epochs of 25 batches), with both
# variants, in float64 and float32. The check can fail: PyTorch's fused kernel (`fused=True`)
# computes the same update with its own code, and its result differs in the last bits.

# %%
X, y = make_seed_dataset()


def train_network(make_optimizer, seed=0, epochs=8, dtype=torch.float64):
    """Train the chapter 3 network from `seed`; return its Trainer."""
    seed_everything(seed)
    model = NeuralNetwork(10, [64, 32], 3, dropout_rate=0.2).to(dtype)
    loaders = train_val_loaders(X.to(dtype), y, seed=seed)  # 800 / 200, 32
    trainer = Trainer(model, device=DEVICE)
    optimizer = make_optimizer(model.parameters())
    trainer.fit(*loaders, epochs, optimizer=optimizer, progress=False)
    return trainer


def weights(trainer):
    return [p.detach() for p in trainer.model.parameters()]


def max_difference(a, b):
    pairs = zip(weights(a), weights(b), strict=True)
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
runs = {}
print("torch.equal on every weight, ours against torch.optim:")
for (name, (ours, theirs, kwargs)), dtype in [
    (pair, dtype)
    for dtype in (torch.float64, torch.float32)
    for pair in pairs.items()
]:
    a = train_network(lambda p, o=ours, k=kwargs: o(p, **k), dtype=dtype)
    b = train_network(
        lambda p, t=theirs, k=kwargs: t(p, foreach=False, **k),
        dtype=dtype,
    )
    same = all(map(torch.equal, weights(a), weights(b)))
    label = f"{name}, {str(dtype)[6:]}"
    print(f"{label:>50}: {same}")
    assert same
    runs[label] = a

fused = train_network(lambda p: torch.optim.Adam(p, lr=1e-3, fused=True))
gap = max_difference(runs["Adam(lr=1e-3), float64"], fused)
print("Adam(lr=1e-3), float64, against fused=True:")
print(f"  torch.equal on every weight: {gap == 0}; "
      f"all within 1e-12: {gap < 1e-12}")  # fmt: skip
assert 0 < gap < 1e-12  # different bits, the same update

# %% [markdown]
# ## An ill-conditioned bowl
#
# Why is plain gradient descent not enough? Take the quadratic
# $f(x, y) = \tfrac12 (x^2 + 100\, y^2)$, a bowl 100 times steeper along $y$ than along $x$.
# A gradient step multiplies $y$ by $(1 - 100\eta)$, which diverges unless $\eta < 0.02$; at such
# a step $x$ shrinks by only $(1 - \eta) \ge 0.98$ per step. The steep direction dictates the
# step size, and the flat direction pays for it. The loss surfaces of real networks can be like
# this in many directions at once.
#
# To compare fairly, each optimiser gets the best learning rate of the same grid of 19 values
# from $10^{-4}$ to $100$, judged by $f$ after 100 steps from $(-10, 1)$ (momentum
# $\mu = 0.9$, Adam's default $\beta$s); the grid is wide enough that every optimiser's best
# rate lies inside it, not at an edge (asserted; a grid ending at 1 would put Adam's best at
# its edge, on both landscapes). `learning_rate_sweep` runs all 19 rates at
# once, one parameter group each, with the same iterates as 19 separate runs.

# %%
learning_rates = np.geomspace(1e-4, 1e2, 19)
optimisers = {  # each parameter group brings its own lr, overriding lr=1.0
    "gradient descent": lambda groups: SGD(groups, lr=1.0),
    "momentum 0.9": lambda groups: SGD(groups, lr=1.0, momentum=0.9),
    "Adam": lambda groups: Adam(groups),
}


def final_values(f, start, make_optimizer, steps, rates=learning_rates):
    """f after `steps` steps at each rate (inf where it blew up), and paths."""
    paths = learning_rate_sweep(f, start, make_optimizer, rates, steps)
    final = f(torch.tensor(paths[:, -1].T)).numpy()
    return np.where(np.isfinite(final), final, np.inf), paths


def best_runs(f, start, steps):
    """Per optimiser: f at every rate, the best rate's index, and its path."""
    best = {}
    for name, make in optimisers.items():
        final, paths = final_values(f, start, make, steps)
        k = int(final.argmin())
        best[name] = (final, k, paths[k])
        result = f"f after {steps} steps = {final[k]:.1e}"
        print(f"{name:>16}: best lr {learning_rates[k]:.1e}, {result}")
    return best


def best_is_inside_the_grid(best):
    return all(0 < k < len(learning_rates) - 1 for _, k, _ in best.values())


bowl = best_runs(quadratic, [-10.0, 1.0], steps=100)


# %% tags=["hide-input"] mystnb={"image": {"alt": "Contour plot of the elongated quadratic bowl with the 100-step paths of gradient descent, momentum and Adam from (-10, 1) towards the minimum at the origin."}}
def contour_with_paths(f, best, xlim, ylim, minimum, title, log_levels):
    gx, gy = np.meshgrid(np.linspace(*xlim, 300), np.linspace(*ylim, 300))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.contour(
        gx, gy, f(np.stack([gx, gy])), levels=log_levels, colors="grey",
        linewidths=0.5,
    )  # fmt: skip
    for colour, (name, (_, k, path)) in zip("012", best.items(), strict=True):
        label = f"{name}, lr {learning_rates[k]:.0e}"
        ax.plot(
            path[:, 0], path[:, 1], ".-", color=f"C{colour}", ms=3, lw=1,
            label=label,
        )  # fmt: skip
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

# %%
f_start = float(quadratic(torch.tensor([-10.0, 1.0])))
gd_final, gd_best, _ = bowl["gradient descent"]
assert np.array_equal(gd_final > f_start, learning_rates > 0.02)  # 2 / 100
assert gd_best == np.flatnonzero(learning_rates < 0.02)[-1]  # largest stable
assert gd_final[gd_best] > 1
assert bowl["momentum 0.9"][0].min() < 1e-3 and bowl["Adam"][0].min() < 1e-3
assert best_is_inside_the_grid(bowl)
assert bowl["Adam"][0][:13].argmin() == 12  # a grid ending at 1: at its edge

# %% [markdown]
# Gradient descent (blue) diverges at every rate of the grid above $0.02$ and descends at
# every rate below (asserted); at its best, the largest stable rate, it is still far from the
# minimum after 100 steps: it crawls along $x$. Momentum (orange) oscillates across the valley
# at first, but the oscillations cancel in the buffer while the consistent pull along $x$ adds
# up. Adam (green) divides each coordinate's step by the size of that coordinate's own
# gradients, so each coordinate moves by about $\eta$ per step, the flat one as fast as the
# steep one.
#
# Is it because the bowl's axes are the coordinate axes? The ablation changes only that: the
# same bowl rotated by 45° (the same eigenvalues, 1 and 100, along the diagonals),
# $f(x, y) = \tfrac12 (u^2 + 100\, w^2)$ with $(u, w)$ the rotated coordinates, started from
# the rotated start point. Gradient descent and momentum do not depend on the orientation: their
# results must not change, which checks that the rotation is the only change. Adam's
# per-coordinate scaling does depend on it. Because one start point could be a lucky one, Adam
# also starts from four more points of the same height $f = 100$:

# %%
rotation = math.pi / 4


def rotated_bowl(p):
    return quadratic(p, angle=rotation)


def rotated(point):  # rotated_bowl(rotated(p)) == quadratic(p)
    c, s = math.cos(rotation), math.sin(rotation)
    return [c * point[0] - s * point[1], s * point[0] + c * point[1]]


for name in ("gradient descent", "momentum 0.9"):
    final, _ = final_values(rotated_bowl, rotated([-10.0, 1.0]),
                            optimisers[name], steps=100)  # fmt: skip
    stable = bowl[name][0] < 1e6
    change = np.abs(final[stable] / bowl[name][0][stable] - 1).max()
    print(f"{name:>16}: largest relative change of f at any stable rate "
          f"{change:.0e}")  # fmt: skip
    assert change < 1e-12

print("start (x, y)        Adam: aligned   rotated by 45°")
adam_rates = learning_rates[6:16]  # 1e-2 ... 10, around Adam's best rates
adam_changes = []
for x0 in (-4.0, -7.0, -10.0, -12.0, -13.5):
    start = [x0, math.sqrt(2 - x0**2 / 100)]  # on the level set f = 100
    results = []
    for f, point in ((quadratic, start), (rotated_bowl, rotated(start))):
        final, _ = final_values(f, point, optimisers["Adam"], 100, adam_rates)
        assert 0 < final.argmin() < len(adam_rates) - 1  # inside the grid
        results.append(final.min())
    adam_changes.append(results[1] / results[0])
    print(f"({start[0]:5.1f}, {start[1]:.2f})      "
          f"{results[0]:.1e}       {results[1]:.1e}")  # fmt: skip
    if x0 == -10.0:
        assert results[0] == bowl["Adam"][0].min()  # the same run as above
        adam_rotated = results[1]
adam_changes = np.array(adam_changes)
assert 4 < adam_rotated / bowl["Adam"][0].min() < 6
assert (adam_changes > 1).sum() == 4 and (adam_changes < 1).sum() == 1
assert adam_rotated < gd_final[gd_best] / 1000

# %% [markdown]
# Rotation leaves gradient descent and momentum unchanged to rounding (relative change
# $< 10^{-12}$ at every stable rate). Adam's result from $(-10, 1)$ gets about five times
# worse, $5.4 \times 10^{-4} \to 2.6 \times 10^{-3}$; from the five start points it gets worse
# from four and better from one. So the alignment of the bowl with the axes does help Adam, but
# irregularly, and it is not what puts Adam ahead of gradient descent here: from $(-10, 1)$,
# rotated, Adam still ends more than a thousand times lower than gradient descent.
#
# ## Rosenbrock's valley
#
# $f(x, y) = (1 - x)^2 + 100 (y - x^2)^2$ has its minimum at $(1, 1)$ at the end of a curved,
# nearly flat valley with steep walls. 500 steps from $(-1.5, 2)$, each optimiser again at its
# best learning rate from the grid:

# %% mystnb={"image": {"alt": "Contour plot of the Rosenbrock valley with the paths of gradient descent, momentum and Adam from (-1.5, 2) towards the minimum at (1, 1)."}}
valley = best_runs(rosenbrock, [-1.5, 2.0], steps=500)
contour_with_paths(
    rosenbrock, valley, (-2, 2), (-0.5, 3), (1, 1),
    "Rosenbrock: 500 steps from $(-1.5, 2)$", np.geomspace(0.01, 2000, 20),
)  # fmt: skip
valley_start = float(rosenbrock(torch.tensor([-1.5, 2.0])))
gd_final, gd_best, _ = valley["gradient descent"]
assert np.isclose(learning_rates[gd_best], 1e-3) and gd_final[gd_best] > 1
assert np.all(gd_final[gd_best + 1 :] > valley_start)  # all larger diverge
assert np.all(gd_final[: gd_best + 1] < valley_start)  # the others descend
assert valley["momentum 0.9"][0].min() < 1e-3
assert valley["Adam"][0].min() < 1e-3
assert best_is_inside_the_grid(valley)
assert valley["Adam"][0][:13].argmin() == 12  # a grid ending at 1: at its edge

# %% [markdown]
# The walls force gradient descent to a tiny step ($10^{-3}$; every larger rate of the grid
# diverges), and it has barely entered the valley after 500 steps. Momentum and Adam both reach
# the minimum to within $f < 10^{-3}$.

# %% [markdown]
# ## On a real network
#
# The same optimisers on the chapter 3 network and data. Each number below is the mean over
# three seeds (initial weights, dropout and batch order), with the range in brackets.
#
# **Momentum 0.9 at learning rate $\eta$ behaves like gradient descent at $10\eta$.** When the
# gradient changes slowly, the buffer sums a geometric series,
# $b \approx g\,(1 + \mu + \mu^2 + \dots) = g / (1 - \mu)$, so the effective step is
# $\eta / (1 - \mu)$. Two pairs, 10 epochs each. The controls pair the same four runs with
# the wrong factor, $10/3$ and $100/3$ instead of 10: a check that passed them too would not
# be testing the factor.

# %%
SEEDS = (0, 1, 2)


val_loss_10 = {}
for name, momentum, rates in [
    ("gradient descent", 0.0, (0.03, 0.1)),
    ("momentum 0.9", 0.9, (0.003, 0.01)),
]:
    for rate in rates:
        for seed in SEEDS:
            trainer = train_network(
                lambda p, r=rate, mu=momentum: SGD(p, lr=r, momentum=mu),
                seed=seed, epochs=10, dtype=torch.float32,
            )  # fmt: skip
            val_loss_10[name, rate, seed] = trainer.history["val_loss"][-1]


def loss_ratios(momentum_rate, gd_rate):
    return [
        val_loss_10["momentum 0.9", momentum_rate, seed]
        / val_loss_10["gradient descent", gd_rate, seed]
        for seed in SEEDS
    ]


print("validation loss after 10 epochs, momentum / gradient descent")
ratios = {}
pairs_and_controls = [(0.003, 0.03), (0.01, 0.1), (0.01, 0.03), (0.003, 0.1)]
for momentum_rate, gd_rate in pairs_and_controls:
    ratios[momentum_rate, gd_rate] = loss_ratios(momentum_rate, gd_rate)
    pair = f"momentum at {momentum_rate:<5g} / GD at {gd_rate:<4g}"
    kind = "" if gd_rate == 10 * momentum_rate else " (control)"
    print(f"  {pair}: {mean_range(ratios[momentum_rate, gd_rate])}{kind}")
paired = ratios[0.003, 0.03] + ratios[0.01, 0.1]
assert all(1 < r < 1.1 for r in paired)  # within 10 %, momentum behind
assert max(ratios[0.01, 0.03]) < 0.5 and min(ratios[0.003, 0.1]) > 2

# %% [markdown]
# Both pairs agree within 10 % on every seed, momentum slightly behind, and both controls
# fail by far, at less than half and more than twice the loss.
# Momentum's real gains are on ill-conditioned, curved landscapes like the two above.
#
# **Adam's largest rate: overfitting, or noise?** Adam at three constant rates for 30 epochs,
# each run judged by its validation loss averaged over the last five epochs. Overfitting would
# mean fitting the training set *better* at the price of the validation set, so we also measure
# the training loss without dropout, on all 800 training points after the last epoch (the
# running average that `Trainer` records during an epoch has dropout on). The ablation changes
# one thing: the largest rate, $10^{-2}$, decayed to zero over the 30 epochs by a cosine
# (chapter 3's schedule, `train_seed_mlp` with `schedule="cosine"`), instead of held constant.
# The last column is how much the validation loss moves over the last ten epochs (max − min):

# %%
settings = {
    "constant 1e-3": (1e-3, "constant"),
    "constant 3e-3": (3e-3, "constant"),
    "constant 1e-2": (1e-2, "constant"),
    "cosine from 1e-2": (1e-2, "cosine"),
}
train_set = [(X[:800], y[:800])]  # one batch: the whole training set
adam_runs = {}
for name, (rate, schedule) in settings.items():
    for seed in SEEDS:
        trainer = train_seed_mlp(seed, epochs=30, lr=rate, schedule=schedule)
        val_loss = np.array(trainer.history["val_loss"])
        adam_runs[name, seed] = {
            "val_loss": val_loss,
            "val": val_loss[-5:].mean(),
            "train": trainer.validate(train_set)[0],  # eval mode: no dropout
            "jitter": np.ptp(val_loss[-10:]),
        }


def across_seeds(name, key):
    return [adam_runs[name, seed][key] for seed in SEEDS]


headers = {"val": "val loss", "train": "train loss", "jitter": "val jitter"}
for columns in (("val", "train"), ("jitter",)):
    print(
        f"{'Adam':>16}", *(f"{headers[key]:>22}" for key in columns), sep="  "
    )
    for name in settings:
        cells = (mean_range(across_seeds(name, key)) for key in columns)
        print(f"{name:>16}", *cells, sep="  ")

# %% tags=["hide-input"] mystnb={"image": {"alt": "Validation cross-entropy over 30 epochs on a log scale for Adam at constant 3e-3, constant 1e-2 and cosine from 1e-2, mean and range over three seeds: the cosine schedule ends lowest."}}
fig, ax = plt.subplots(figsize=(7, 3.8))
epochs = np.arange(1, 31)
for name in ("constant 3e-3", "constant 1e-2", "cosine from 1e-2"):
    curves = np.array(across_seeds(name, "val_loss"))
    (line,) = ax.plot(epochs, curves.mean(axis=0), label=name)
    ax.fill_between(epochs, curves.min(axis=0), curves.max(axis=0),
                    color=line.get_color(), alpha=0.2, lw=0)  # fmt: skip
ax.set_xlabel("epoch")
ax.set_ylabel("validation cross-entropy")
ax.set_yscale("log")
ax.set_title("Adam: mean and range over three seeds")
ax.legend()
plt.show()

# %% tags=["nbval-ignore-output"]
# Output varies in the last digits across CPUs; the asserts carry the claims.
val, train, jitter = (
    {name: np.array(across_seeds(name, key)) for name in settings}
    for key in ("val", "train", "jitter")
)
small, best, large = "constant 1e-3", "constant 3e-3", "constant 1e-2"
cosine = "cosine from 1e-2"
closer = train[large] / train[cosine]
print("training loss, constant 1e-2 / cosine from 1e-2:", mean_range(closer))
print("training loss, constant 1e-2 / constant 3e-3:  ",
      mean_range(train[large] / train[best]))  # fmt: skip
# 3e-3 is the best constant rate on every seed, inside the grid:
assert np.all(val[best] < val[small]) and np.all(val[best] < val[large])
# ... but 1e-2 fits the training set about as well (within a factor 1.5):
assert np.all(np.abs(np.log(train[large] / train[best])) < np.log(1.5))
# the ablation: decaying 1e-2 fits the training set closer, on every seed,
assert train[cosine].max() < train[large].min()
assert np.all(closer > 1.5) and 2 < closer.mean() < 4
# ... AND validates better, on every seed:
assert np.all(val[cosine] < val[large])
# the jitter: larger at 1e-2 than at 1e-3, and mostly gone with the cosine
assert jitter[large].min() > jitter[small].max()
assert jitter[large].min() > jitter[cosine].max()

# %% [markdown]
# At the constant rate $10^{-2}$ the validation loss ends higher than at $3 \times 10^{-3}$ on
# each of these three seeds (by a small margin: other seeds can tie) — but not because the
# network overfits. Its training loss is about the same as at
# $3 \times 10^{-3}$ (within a factor 1.5 on every seed), and the ablation goes the other way
# from what overfitting predicts: decaying the same rate to zero fits the training set more
# closely, on every seed and about three times on average, *and* gives a lower validation
# loss, on every seed. What the
# constant rate adds is noise: the validation loss jumps from epoch to epoch, more at
# $10^{-2}$ than at $10^{-3}$ on every seed (the jitter column), and the cosine schedule,
# whose steps are small by the last ten epochs, removes most of it. That is the case for the
# schedules of the next section: large steps early, small ones at the end.
#
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
# $1/\sqrt{s}$. Why start small? This chapter does not test it; two explanations from the
# literature are that Adam's $\hat v_t$ rests on a handful of gradients at first, so its
# variance is large {cite}`liu2020`, and that a Transformer with LayerNorm after each residual
# block has large gradients near its output at initialisation {cite}`xiong2020`. `NoamLR`
# takes $s = $ `last_epoch + 1`, so the very first step already has the finite rate $\eta(1)$:
# no division by zero.

# %% mystnb={"image": {"alt": "The NoamLR learning rate over 12,000 steps: a linear warm-up to a peak, then a decay proportional to one over the square root of the step."}}
steps = np.arange(1, 12_001)
fig, ax = plt.subplots(figsize=(7, 3.8))
schedules = {}
for d_model, warmup in [(512, 4000), (512, 8000), (256, 4000)]:
    optimizer = Adam(
        [torch.zeros(1, requires_grad=True)], lr=1.0, betas=(0.9, 0.98),
        eps=1e-9,
    )  # fmt: skip
    scheduler = NoamLR(optimizer, d_model=d_model, warmup_steps=warmup)
    lrs = []
    for _ in steps:
        lrs.append(optimizer.param_groups[0]["lr"])  # the rate this step uses
        optimizer.step()
        scheduler.step()
    lrs = schedules[d_model, warmup] = np.array(lrs)
    label = f"$d_{{model}}$ = {d_model}, $w$ = {warmup}"
    ax.plot(steps, lrs * 1e3, label=label)
    closed_form = d_model**-0.5 * np.minimum(steps**-0.5, steps * warmup**-1.5)
    assert np.allclose(lrs, closed_form, rtol=1e-12, atol=0)
    assert lrs.argmax() + 1 == warmup
    assert np.isclose(lrs.max(), (d_model * warmup) ** -0.5)
assert np.all(schedules[256, 4000] > schedules[512, 4000])
ax.set_xlabel("optimiser step $s$")
ax.set_ylabel("learning rate ($10^{-3}$)")
ax.set_title("NoamLR: linear warm-up, then $1/\\sqrt{s}$ decay")
ax.legend()
plt.show()

# %% [markdown]
# Each curve peaks exactly at its warm-up length, at $(d_\text{model}\, w)^{-1/2}$ (asserted),
# and the rate each optimiser step uses equals the closed form at every one of the 12 000
# steps (the notes' scheduler, below, fails this check). Wider models get smaller rates, at
# every step.
#
# (pitfall-noam-first-step)=
# ```{warning}
# **Pitfall: a warm-up scheduler whose first step runs at the optimiser's rate.** The notes'
# `CustomLRScheduler` sets the learning rate only inside its `step()`. Stepped after
# `optimizer.step()`, as PyTorch's schedulers are, it lets the first update run at the rate
# the optimiser was built with — $10^{-3}$ instead of
# $\eta(1) = 512^{-1/2} \cdot 1000^{-3/2} = 1.4 \times 10^{-6}$ for $d_\text{model} = 512$ and
# $w = 1000$, 715.5 times too large, at the very step the warm-up exists to protect — and every
# later step uses the rate meant for the step before. It also has no `state_dict`, so a
# checkpoint cannot save it, and a resumed run starts its warm-up again. `NoamLR` sets $\eta(1)$
# when it is constructed and saves its step in `state_dict`. Test:
# `tests/test_schedules.py::test_pitfall_notes_noam_first_step_uses_optimizer_lr_and_cannot_resume`.
# ```


# %%
class CustomLRScheduler:  # the notes' code, verbatim
    def __init__(self, optimizer, warmup_steps=1000, d_model=512):
        self.optimizer = optimizer
        self.warmup_steps = warmup_steps
        self.d_model = d_model
        self.step_num = 0

    def step(self):
        self.step_num += 1
        lr = self.d_model ** (-0.5) * min(
            self.step_num ** (-0.5),
            self.step_num * self.warmup_steps ** (-1.5),
        )
        for param_group in self.optimizer.param_groups:
            param_group["lr"] = lr
        return lr


def rates_used(optimizer, scheduler, n_steps):
    """The lr of each optimiser step; the scheduler is stepped after it."""
    used = []
    for _ in range(n_steps):
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return used


def noam_pair(scheduler_class, **kwargs):
    optimizer = Adam([torch.zeros(1, requires_grad=True)], lr=1e-3)
    return optimizer, scheduler_class(optimizer, **kwargs)


notes = rates_used(*noam_pair(CustomLRScheduler), 4)
ours = rates_used(*noam_pair(NoamLR, d_model=512, warmup_steps=1000), 4)
eta = [512**-0.5 * min(s**-0.5, s * 1000**-1.5) for s in (1, 2, 3, 4)]
print("step s:              1        2        3        4")
print("eta(s):       ", "  ".join(f"{r:.1e}" for r in eta))
print("the notes':   ", "  ".join(f"{r:.1e}" for r in notes))
print("NoamLR:       ", "  ".join(f"{r:.1e}" for r in ours))
print(f"first step: {notes[0] / eta[0]:.1f} times eta(1)")
assert np.allclose(ours, eta, rtol=1e-12)
assert round(notes[0] / eta[0], 1) == 715.5
assert np.allclose(notes[1:], eta[:-1], rtol=1e-12)  # one step late
assert not hasattr(CustomLRScheduler(None), "state_dict")

# %% [markdown]
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
# twice as long as the one before. In SGDR the restarts are meant to move the run out of the
# region it has settled in, and the end of each cycle, at a small rate, is where a snapshot of
# the model is taken; here we only check the schedule. Chapter 3's recipe was a single such
# cycle. Ours matches PyTorch's own implementation exactly:

# %% mystnb={"image": {"alt": "Learning rate over 150 steps of cosine annealing with warm restarts: cycles of equal length for T_mult = 1 and doubling length for T_mult = 2."}}
fig, ax = plt.subplots(figsize=(7, 3.8))
for t_mult, expected in [(1, list(range(10, 150, 10))), (2, [10, 30, 70])]:
    params = [torch.zeros(1, requires_grad=True)]
    ours = CosineAnnealingWarmRestarts(
        SGD(params, lr=0.1), T_0=10, T_mult=t_mult, eta_min=1e-3,
    )  # fmt: skip
    reference_params = [torch.zeros(1, requires_grad=True)]
    reference_optimizer = torch.optim.SGD(reference_params, lr=0.1)
    reference = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        reference_optimizer, T_0=10, T_mult=t_mult, eta_min=1e-3
    )
    ours_lr = rates_used(ours.optimizer, ours, 150)
    reference_lr = rates_used(reference_optimizer, reference, 150)
    ax.plot(ours_lr, label=f"$T_0$ = 10, $T_{{mult}}$ = {t_mult}")
    assert ours_lr == reference_lr  # the same floats
    restarts = [t for t in range(1, 150) if ours_lr[t] > ours_lr[t - 1]]
    text = f"T_mult = {t_mult}: restarts at steps {restarts}"
    print(textwrap.fill(text, 79, subsequent_indent=" " * 31))
    assert restarts == expected
ax.set_xlabel("step")
ax.set_ylabel("learning rate")
ax.set_title("Cosine annealing with warm restarts")
ax.legend()
plt.show()

# %% [markdown]
# (pitfall-cosine-restart-late)=
# ```{warning}
# **Pitfall: a cosine schedule one step late.** The notes' `CosineAnnealingWarmRestarts` sets
# the rate inside `step()` from its counter and only then advances the counter. Stepped after
# `optimizer.step()`, the first two steps both run at the base rate and the whole schedule —
# every restart included — comes one step late: with $T_0 = 5$ the notes give 0.1, 0.1,
# 0.0905, … and restart at $t = 6$, PyTorch and `companion` give 0.1, 0.0905, … and restart
# at $t = 5$ (counting steps from $t = 0$, as above). Like the warm-up scheduler above it has
# no `state_dict`, so it cannot be checkpointed. `companion`'s class computes the rate from
# `last_epoch` in closed form, equals `torch.optim.lr_scheduler.CosineAnnealingWarmRestarts`
# float for float, and resumes from its `state_dict`. Test:
# `tests/test_schedules.py::test_pitfall_notes_cosine_restarts_one_step_late_and_cannot_resume`.
# ```


# %%
class NotesCosineAnnealingWarmRestarts:  # the notes' code, renamed, wrapped
    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0):
        self.optimizer = optimizer
        self.T_0 = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = 0
        self.T_i = T_0
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]

    def step(self):
        if self.T_cur == self.T_i:
            self.T_cur = 0
            self.T_i *= self.T_mult

        pairs = zip(self.optimizer.param_groups, self.base_lrs, strict=True)
        for param_group, base_lr in pairs:
            cosine = 1 + math.cos(math.pi * self.T_cur / self.T_i)
            lr = self.eta_min + (base_lr - self.eta_min) * cosine / 2
            param_group["lr"] = lr

        self.T_cur += 1


def cosine_rates(make_scheduler, optimizer_class=SGD, n_steps=12):
    optimizer = optimizer_class([torch.zeros(1, requires_grad=True)], lr=0.1)
    return rates_used(optimizer, make_scheduler(optimizer), n_steps)


notes = cosine_rates(lambda opt: NotesCosineAnnealingWarmRestarts(opt, T_0=5))
torch_cosine = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts
torch_rates = cosine_rates(
    lambda opt: torch_cosine(opt, T_0=5),
    optimizer_class=torch.optim.SGD,
)
ours = cosine_rates(lambda opt: CosineAnnealingWarmRestarts(opt, T_0=5))
sequences = {"the notes'": notes, "torch": torch_rates, "ours": ours}
for start in (0, 6):  # steps 1-6, then 7-12
    steps = range(start + 1, start + 7)
    print(f"{'step':>10}:", " ".join(f"{t:>6}" for t in steps))
    for name, rates in sequences.items():
        row = rates[start : start + 6]
        print(f"{name:>10}:", " ".join(f"{r:.4f}" for r in row))
assert ours == torch_rates and notes == [0.1] + torch_rates[:-1]
assert notes.index(0.1, 2) == 6 and torch_rates.index(0.1, 1) == 5
assert not hasattr(NotesCosineAnnealingWarmRestarts, "state_dict")

# %% [markdown]
# Both of `companion`'s schedules resume exactly from a checkpoint: run 12 steps, save the
# optimiser's and the scheduler's `state_dict` after 5, load them into fresh objects and run
# the remaining 7. The control resumes without the scheduler's state and restarts the
# schedule:

# %%
make_schedules = {
    "NoamLR": lambda opt: NoamLR(opt, d_model=512, warmup_steps=4),
    "CosineAnnealingWarmRestarts": lambda opt: CosineAnnealingWarmRestarts(
        opt, T_0=3, T_mult=2, eta_min=0.01
    ),
}
for name, make in make_schedules.items():
    straight = cosine_rates(make, Adam)
    optimizer = Adam([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = make(optimizer)
    first = rates_used(optimizer, scheduler, 5)
    resumed = {}
    for load_scheduler in (True, False):
        fresh_optimizer = Adam([torch.zeros(1, requires_grad=True)], lr=0.1)
        fresh = make(fresh_optimizer)  # construct first, then load the states
        fresh_optimizer.load_state_dict(optimizer.state_dict())
        if load_scheduler:
            fresh.load_state_dict(scheduler.state_dict())
        resumed[load_scheduler] = first + rates_used(fresh_optimizer, fresh, 7)
    print(f"{name}:")
    print(f"  resumed = uninterrupted: {resumed[True] == straight}; "
          f"without its state: {resumed[False] == straight}")  # fmt: skip
    assert resumed[True] == straight and resumed[False] != straight

# %% [markdown]
# ## Bad arguments fail early, and say why
#
# Without checks, a negative learning rate would climb the loss instead of descending it, and
# $\beta_2 = 1$ would make the correction $1 - \beta_2^t$ zero, a division by zero. The
# constructors refuse such values with a `ValueError` that starts with the argument's name
# (asserted), and accept the same calls with good values (the control):

# %%
params = [torch.zeros(2, requires_grad=True)]
for argument, make, good in [
    ("lr", lambda: SGD(params, lr=-0.1), lambda: SGD(params, lr=0.1)),
    (
        "betas[1]",
        lambda: Adam(params, betas=(0.9, 1.0)),
        lambda: Adam(params, betas=(0.9, 0.999)),
    ),
    (
        "warmup_steps",
        lambda: NoamLR(Adam(params), d_model=512, warmup_steps=0),
        lambda: NoamLR(Adam(params), d_model=512, warmup_steps=4000),
    ),
]:
    try:
        make()
    except ValueError as err:
        print(f"ValueError: {err}")
        assert str(err).startswith(argument)
    else:
        raise AssertionError(f"a bad {argument} was accepted")
    good()  # raises nothing

# %% [markdown]
# ## Summary
#
# - Gradient descent's step is limited by the steepest direction; momentum accumulates
#   consistent directions; Adam rescales each parameter by its own gradient history, and its
#   bias correction keeps the first steps at $\eta$ (without it they would be several times
#   larger).
# - Written from the equations, `companion.optim` matches `torch.optim`'s single-tensor path
#   exactly (`torch.equal`, float64 and float32, 200 steps, Nesterov and AMSGrad included), and
#   the benchmark (`make bench`) puts its step time on a par with PyTorch's.
# - On a real network, momentum at $\eta$ behaves like gradient descent at $10\eta$, and Adam's
#   largest constant rate loses not to overfitting but to the noise of its steps, which a
#   decaying schedule removes.
# - Warm-up protects the first steps, cosine annealing ends training at a small rate, and
#   restarts begin new cycles; both schedules plug into any optimiser, set the first step's rate
#   before it is taken and resume from a checkpoint — two things the notes' versions got wrong.

# %% [markdown]
# ## Exercises
#
# As in chapter 1, each exercise has a cell with a stub to replace and a call to `check`,
# which tests your answer against `companion` and, when it recognises the mistake, says what
# to look at. As committed, the stubs are unanswered and the checks report "not attempted".
# Solutions are folded below each exercise; try first.
#
# ```{exercise} 4.1 One Adam step from its equations (easy, implement)
# :label: ex-4-1
# :nonumber:
#
# Write `adam_step(theta, grad, m, v, t, lr, betas, eps)`: step $t$ of Adam (1 for the first)
# for float64 tensors, from the equations at the start of the chapter. Return the triple
# `(theta, m, v)` after the step; the checker compares six steps of three runs with
# `torch.optim.Adam`.
# ```

# %%
from companion.exercises import check


def adam_step(theta, grad, m, v, t, lr, betas, eps):
    raise NotImplementedError  # your code here


check("4.1", adam_step)

# %% [markdown]
# ````{solution} ex-4-1
# :class: dropdown
#
# Update the two running averages, bias-correct both with the step's own $t$, and divide by
# $\sqrt{\hat v_t} + \epsilon$ ($\epsilon$ outside the square root, as PyTorch does).
#
# ```python
# def adam_step(theta, grad, m, v, t, lr, betas, eps):
#     beta1, beta2 = betas
#     m = beta1 * m + (1 - beta1) * grad
#     v = beta2 * v + (1 - beta2) * grad**2
#     m_hat = m / (1 - beta1**t)
#     v_hat = v / (1 - beta2**t)
#     return theta - lr * m_hat / (v_hat.sqrt() + eps), m, v
# ```
# ````
#
# ```{exercise} 4.2 The first step without bias correction (medium, predict)
# :label: ex-4-2
# :nonumber:
#
# With $\beta_1 = 0.9$ and $\beta_2 = 0.999$, how many times larger is Adam's first step
# without bias correction than with it? Predict it from $m_1$ and $v_1$ for a gradient $g$
# (within 1 %).
# ```

# %%
first_step_ratio = ...  # your number

check("4.2", first_step_ratio)

# %% [markdown]
# ````{solution} ex-4-2
# :class: dropdown
#
# At $t = 1$, $m_1 = (1 - \beta_1) g$ and $v_1 = (1 - \beta_2) g^2$. The corrected step is
# $\eta\, g / |g| = \eta$; the uncorrected one is $\eta (1 - \beta_1) / \sqrt{1 - \beta_2}$:
# $0.1 / 0.0316 \approx 3.16$ times larger ($\epsilon$ changes the fifth digit).
#
# ```python
# first_step_ratio = (1 - 0.9) / (1 - 0.999) ** 0.5
# ```
# ````
#
# ```{exercise} 4.3 Repair the notes' cosine restarts (hard, debug)
# :label: ex-4-3
# :nonumber:
#
# Repair the notes' `CosineAnnealingWarmRestarts` (the
# {ref}`pitfall <pitfall-cosine-restart-late>` above): write a class with the same constructor
# `(optimizer, T_0, T_mult=1, eta_min=0.0)` whose `step()`, called after `optimizer.step()`,
# gives every step the rate `companion.CosineAnnealingWarmRestarts` gives it, restarts
# included, for each parameter group from its own initial rate.
# ```


# %%
class RepairedCosineRestarts:
    # the notes' step(), to repair: it sets the rate from T_cur first and
    # advances T_cur afterwards, so every rate comes one step late
    #     if self.T_cur == self.T_i:
    #         self.T_cur = 0
    #         self.T_i *= self.T_mult
    #     (set each group's lr from T_cur / T_i)
    #     self.T_cur += 1
    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0):
        raise NotImplementedError  # your code here


check("4.3", RepairedCosineRestarts)

# %% [markdown]
# ````{solution} ex-4-3
# :class: dropdown
#
# `step()` sets the rate of the *next* step, so it advances the counter first, restarts when
# the counter reaches the cycle's length, and only then computes the rate. The constructor
# needs to set nothing: step $t = 0$ runs at each group's initial rate, $\eta_\max$.
#
# ```python
# import math
#
#
# class RepairedCosineRestarts:
#     def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0):
#         self.optimizer, self.T_mult, self.eta_min = optimizer, T_mult, eta_min
#         self.T_cur, self.T_i = 0, T_0
#         self.base_lrs = [g["lr"] for g in optimizer.param_groups]
#
#     def step(self):
#         self.T_cur += 1
#         if self.T_cur == self.T_i:
#             self.T_cur = 0
#             self.T_i *= self.T_mult
#         cosine = 1 + math.cos(math.pi * self.T_cur / self.T_i)
#         for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
#             group["lr"] = self.eta_min + (base_lr - self.eta_min) * cosine / 2
# ```
# ````

# %% tags=["nbval-ignore-output"]
print(companion.executed_with())
