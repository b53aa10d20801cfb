# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-training)=
# # 3. Training an MLP
#
# {ref}`Chapter 2 <ch-backpropagation>` computed every gradient by hand. From now on PyTorch's
# autograd does the backward pass, and the work moves to *training*: how to run the loop, what
# the learning rate does over time, when a network starts memorising its training data, and how
# to stop and resume a run without changing its result. The loop lives in
# `companion.Trainer`; this chapter uses it on the original notes' synthetic 3-class problem.

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
import tempfile
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from companion import (
    NeuralNetwork,
    Trainer,
    make_seed_dataset,
    mean_range,
    plot_history,
    recipe_source,
    seed_everything,
    train_seed_mlp,
    train_val_loaders,
)

# %% [markdown]
# ## The model outputs logits
#
# `NeuralNetwork(10, [64, 32], 3)` is the notes' network: two hidden layers of ReLU units with
# dropout, and a linear output layer with one unit per class.

# %%
model = NeuralNetwork(
    input_size=10,
    hidden_sizes=[64, 32],
    output_size=3,
    dropout_rate=0.2,
)
print(model)
print("parameters:", sum(p.numel() for p in model.parameters()))

# %% [markdown]
# Its three outputs are **logits** $\mathbf z$: any real numbers, not probabilities. The
# probabilities are $\operatorname{softmax}(\mathbf z)_k = e^{z_k} / \sum_j e^{z_j}$, and the
# cross-entropy loss of an example with label $y$ is
#
# $$
# \ell(\mathbf z, y) = -\log \operatorname{softmax}(\mathbf z)_y
# = -z_y + \log \sum_j e^{z_j}.
# $$
#
# The right-hand form is why the model stops at logits: `F.cross_entropy` (and
# `nn.CrossEntropyLoss`) computes $\log \sum_j e^{z_j}$ directly and stably, subtracting
# $\max_j z_j$ first as {ref}`chapter 2's softmax <sec-softmax-stable>` does, and its gradient
# is simply $\operatorname{softmax}(\mathbf z) - \mathbf e_y$. Taking the log of an already
# computed softmax loses precision and, for confident predictions, gives $\log 0 = -\infty$.
# Applying a softmax inside the model *and* using `cross_entropy` is a common slip: the loss
# then applies a second softmax, squashing the outputs into $[0, 1]$, so the loss can never get
# close to zero and its gradients shrink.

# %%
logits = torch.tensor([[2.0, -1.0, 0.5], [60.0, 0.0, -60.0]])
labels = torch.tensor([0, 2])
rows = torch.arange(2)
by_hand = -torch.log_softmax(logits, dim=1)[rows, labels]
naive = -torch.log(torch.softmax(logits, dim=1))[rows, labels]
stable = F.cross_entropy(logits, labels, reduction="none")
probabilities = torch.softmax(logits, dim=1)
double = F.cross_entropy(probabilities, labels, reduction="none")
print("cross_entropy(logits):          ", stable)
print("-log_softmax by hand:           ", by_hand)
print("-log(softmax(.)), the naive way:", naive)
print("softmax twice (a model that ends in softmax):", double)
certain = torch.softmax(torch.tensor([[100.0, 0.0, 0.0]]), dim=1)
floor = F.cross_entropy(certain, torch.tensor([0]))
print(f"softmax twice, even for a certain prediction: {floor.item():.4f}")
assert torch.allclose(stable, by_hand)
assert torch.isinf(naive[1]) and torch.isclose(by_hand[1], torch.tensor(120.0))
assert np.isclose(floor.item(), np.log(np.e + 2) - 1, atol=1e-6)
assert double[0] > floor

# %% [markdown]
# The second example is confidently wrong (its label is class 2, with the lowest score):
# the stable loss is a large but finite $120$; the naive one is infinite ($e^{-120}$ underflows
# to 0 in float32). With a softmax applied twice, the loss of a correctly classified example
# can never fall below $\log(e + 2) - 1 \approx 0.55$, however confident the model becomes.
# And the gradients, which are what training follows:

# %%
once = logits.clone().requires_grad_()
F.cross_entropy(once, labels, reduction="sum").backward()
twice = logits.clone().requires_grad_()
squashed = torch.softmax(twice, dim=1)
F.cross_entropy(squashed, labels, reduction="sum").backward()
print("gradient norm per example, logits:      ", once.grad.norm(dim=1))
print("gradient norm per example, softmax twice:", twice.grad.norm(dim=1))
assert twice.grad[0].norm() < 0.7 * once.grad[0].norm()
assert twice.grad[1].norm() == 0
assert torch.isclose(once.grad[1].norm(), torch.tensor(2.0).sqrt())

# %% [markdown]
# The confidently wrong example, the one the model most needs to learn from, gets a gradient of
# exactly zero once the softmax is applied twice: the inner softmax is saturated, and its
# derivative underflows. With logits, its gradient is
# $\operatorname{softmax}(\mathbf z) - \mathbf e_y \approx (1, 0, -1)$, of norm $\sqrt 2$.
#
# ## The data and the loop
#
# The synthetic problem of the original notes: 1000 points with 10 standard-normal features, of
# which only $x_0, x_1, x_2$ decide the class. The first 800 train, the last 200 validate,
# batches of 32. `train_val_loaders` gives the training loader its own seeded shuffling.

# %%
np.random.seed(7)  # noqa: NPY002 (a reader's own global seed)
expected = np.random.rand()  # noqa: NPY002
np.random.seed(7)  # noqa: NPY002
X, y = make_seed_dataset()
untouched = np.random.rand() == expected  # noqa: NPY002
train_loader, val_loader = train_val_loaders(
    X,
    y,
    train_size=800,
    batch_size=32,
    seed=0,
)
print("class counts:", torch.bincount(y).tolist())
print("batches per epoch:", len(train_loader))
print("validation batches:", len(val_loader))
print("global NumPy state untouched by make_seed_dataset:", untouched)
try:
    make_seed_dataset(n_classes=5)
except ValueError as err:
    print(textwrap.fill(f"ValueError: {err}", 79))
assert X.shape == (1000, 10) and torch.bincount(y).sum() == 1000
assert len(train_loader) == 25 and len(val_loader) == 7 and untouched

# %% [markdown]
# (pitfall-notes-data-seeding)=
# ```{warning}
# **Pitfall: data that reseed the world, ignore an argument, and leave torch unseeded.** The
# notes' `create_synthetic_data` calls `np.random.seed(42)`: every NumPy draw after it, anywhere
# in the program, is the same whatever the reader seeded before. It takes `n_classes` and never
# reads it (ask for 5 classes, get 3). And nothing seeds torch, so the initial weights, the
# dropout masks and the batch order change on every run: the data are fixed, the results are
# not. `make_seed_dataset` draws from its own generator (the cell above checks that the global
# one is untouched), rejects any `n_classes` but 3, the only number of classes its rule has,
# and takes `seed` and `n_classes` by keyword, so the notes' call `(1000, 10, 3)` raises a
# `TypeError` instead of silently meaning `seed=3`. The chapter's first cell calls
# `seed_everything(0)`, which seeds Python, NumPy and torch. Tests: the three `test_pitfall_*`
# tests in `tests/test_data.py`.
# ```
#
# `Trainer.fit` runs, per epoch, the loop every PyTorch program has: for each batch,
# `zero_grad`, forward, loss, `backward`, `step`; then it evaluates on the validation data in
# `eval` mode (dropout off, no gradients) and records the mean loss and accuracy of both, and the
# learning rate the epoch trained with. It also steps a learning-rate scheduler, and can clip
# gradients, stop early and checkpoint. Mind what the two pairs of numbers are: the validation
# loss and accuracy are those of the epoch's final weights; the *training* loss and accuracy are
# running averages over the epoch's batches, each scored in training mode (dropout on) by the
# weights before its own step. They lag behind the model, and dropout makes them worse: in every
# run below, the reported training loss of the last epoch is above the loss of its final
# weights on the same data, which `trainer.validate` on the training data measures.
#
# ## The recipes
#
# Every run in the first half of this chapter is one call of
# {py:func}`companion.models.train_seed_mlp`: the notes' network and data, Adam, a learning rate
# and a schedule. Here is its code, printed from the package, the one copy that every chapter
# runs:

# %%
print(recipe_source(train_seed_mlp))  # the code, without its docstring

# %% [markdown]
# ## The original recipe, and its pitfall
#
# The notes train for 50 epochs with Adam at learning rate $10^{-3}$ and
# `StepLR(step_size=10, gamma=0.1)`, which divides the learning rate by 10 every 10 epochs.
# Beside it, the trivial baseline that any accuracy must beat: always answering the class that
# is most frequent in the validation data.

# %%
original = train_seed_mlp(0, epochs=50, lr=1e-3, schedule="step")
history = original.history
print(f"validation accuracy after 20 epochs: {history['val_acc'][19]:.1%}")
print(f"validation accuracy after 50 epochs: {history['val_acc'][-1]:.1%}")
majority = torch.bincount(y[800:]).max().item() / len(y[800:])
print(f"always answering the most frequent class: {majority:.1%}")
# far above the trivial baseline
assert history["val_acc"][-1] > majority + 0.4
print(
    "learning rate in epochs 1, 11, 21, 31, 41:",
    *[f"{lr:.0e}" for lr in history["lr"][::10]],
)

# %% mystnb={"image": {"alt": "Training and validation loss and accuracy over 50 epochs of the notes' recipe, with the learning rate dropping tenfold every 10 epochs."}}
fig = plot_history(history)
fig.suptitle(
    "The original recipe: Adam 1e-3 with StepLR(step_size=10, gamma=0.1)",
    y=1.03,
)
plt.show()
assert np.isclose(history["lr"][20], 1e-5)
assert np.isclose(history["lr"][40], 1e-7)

# %% [markdown]
# From epoch 21 on the learning rate is $10^{-5}$ or less, and the curves go flat. Is the
# schedule to blame, switching learning off too early? Or the learning rate, too small to get
# anywhere in the 20 epochs the schedule leaves? A recipe that changes both at once cannot
# tell; an experiment that changes one of them at a time can. Two rates, $10^{-3}$ and
# $10^{-2}$, times two schedules over the same 50 epochs: the notes' `StepLR`, and cosine
# annealing, $\eta_t = \tfrac12 \eta_0 \big(1 + \cos(\pi t / T)\big)$, which lowers the rate
# smoothly to zero at the end of the run. Each of the four on three seeds (other initial
# weights, dropout masks and batch orders). Besides the validation accuracy and loss, the
# table shows the loss of the final weights on their own *training* data, in evaluation mode:
# whether the model has even fitted what it was shown.

# %% tags=["nbval-ignore-output"]
# Output varies in the last digits across CPUs; the asserts carry the claims.
SEEDS = (0, 1, 2)
train_data = DataLoader(TensorDataset(X[:800], y[:800]), batch_size=400)
runs = {(1e-3, "step", 0): original}  # seed 0 of the notes' recipe ran above
for lr in (1e-3, 1e-2):
    for schedule in ("step", "cosine"):
        for seed in SEEDS:
            if (lr, schedule, seed) not in runs:
                runs[lr, schedule, seed] = train_seed_mlp(
                    seed,
                    epochs=50,
                    lr=lr,
                    schedule=schedule,
                )
table = {}
for (lr, schedule, _seed), run in runs.items():
    cell = table.setdefault((lr, schedule), {"acc": [], "loss": [], "fit": []})
    cell["acc"].append(run.history["val_acc"][-1])
    cell["loss"].append(run.history["val_loss"][-1])
    cell["fit"].append(run.validate(train_data)[0])
    cell.setdefault("reported", []).append(run.history["train_loss"][-1])


print("50 epochs, seeds 0-2: mean (min to max)")
print(f"{'':14}{'val. accuracy':>24}{'val. loss':>24}")
for (lr, schedule), cell in table.items():
    acc, loss = mean_range(cell["acc"], ".1%"), mean_range(cell["loss"])
    print(f"{lr:.0e}, {schedule:6}{acc:>24}{loss:>24}")
print(f"{'':14}{'training loss':>27}")
for (lr, schedule), cell in table.items():
    print(f"{lr:.0e}, {schedule:6}{mean_range(cell['fit'], '.4f'):>27}")
reported = table[1e-3, "step"]["reported"]
print(f"reported training loss, 1e-03 step: {mean_range(reported, '.4f')}")
print("sum of the learning rates over the run:")
for lr, schedule in table:
    total = sum(runs[lr, schedule, 0].history["lr"])
    table[lr, schedule]["budget"] = total
    print(f"  {lr:.0e}, {schedule:8} {total:.4f}")

# %% [markdown]
# Read the table one change at a time.
#
# - **The notes' recipe underfits.** On their own training data its final weights have twice
#   the loss of the same rate annealed smoothly and about ten times that of the same schedule at
#   $10^{-2}$: it has not fitted what it was shown, and the last 30 epochs, at a rate of
#   $10^{-5}$ and less, cannot make up for it.
# - **Same schedule, ten times the rate:** the training loss falls about tenfold, the
#   validation loss to about a third. The step schedule itself does no harm at this rate:
#   at $10^{-2}$ cosine is no better than `StepLR` (their validation losses differ by less
#   than the spread of either over the seeds).
# - **Same rate, cosine instead of steps:** better too; cosine keeps the rate above half its
#   start for 25 epochs, where `StepLR` cuts it tenfold after 10.
#
# What the four cells share is the amount of learning the schedule allows at its rate. Adam
# moves each weight by about $\eta_t$ per step, and never by more than
# $\eta_t (1 - \beta_1)/\sqrt{1 - \beta_2} \approx 3.2\,\eta_t$ {cite}`kingma2015` (§2.1),
# so the sum of the epochs' rates, $\sum_t \eta_t$, times the 25 steps of an epoch, sets the
# scale of how far a weight can travel: $\sum_t \eta_t = 0.011$ for the notes' recipe,
# $0.026$ and $0.11$ for the two single changes, $0.26$ for both. The training loss falls in
# the same order, at least twofold at each step. Accuracy on 200 validation examples is a
# coarse measure (one example is half a point), so the claims that need a margin are made on
# the losses.

# %%
notes, cosine = table[1e-3, "step"], table[1e-3, "cosine"]
larger, both = table[1e-2, "step"], table[1e-2, "cosine"]


# the reported (running, dropout-on) training loss overstates the final one
assert all(
    reported > fit
    for cell in table.values()
    for reported, fit in zip(cell["reported"], cell["fit"], strict=True)
)
# the rates follow the schedules' equations
cosine_rates = runs[1e-3, "cosine", 0].history["lr"]
assert min(cosine_rates[:25]) >= 0.5e-3 > max(cosine_rates[26:])
assert np.isclose(notes["budget"], 10e-3 * (1 - 0.1**5) / (1 - 0.1))
assert np.isclose(cosine["budget"], 1e-3 * 25.5)  # sum of cos(pi t / 50) is 1
assert np.isclose(larger["budget"], 10 * notes["budget"])
assert np.isclose(both["budget"], 10 * cosine["budget"])
# the notes' recipe underfits: 2x cosine's training loss, ~10x that of 1e-2
assert min(notes["fit"]) > 2 * max(cosine["fit"])
assert min(notes["fit"]) > 5 * max(larger["fit"])
assert 8 < np.mean(notes["fit"]) / np.mean(larger["fit"]) < 14
# each single change lowers the validation loss, per seed, by more than 0.05
for seed in range(len(SEEDS)):
    assert larger["loss"][seed] < notes["loss"][seed] - 0.1
    assert cosine["loss"][seed] < notes["loss"][seed] - 0.05
assert 0.2 < np.mean(larger["loss"]) / np.mean(notes["loss"]) < 0.45  # a third
# at 1e-2 the schedule makes no difference beyond the seeds' spread
gap = abs(np.mean(larger["loss"]) - np.mean(both["loss"]))
assert gap < min(np.ptp(larger["loss"]), np.ptp(both["loss"]))
# in accuracy, the gains exceed the notes' own spread over the seeds
assert np.mean(larger["acc"]) - np.mean(notes["acc"]) > np.ptp(notes["acc"])
assert np.mean(cosine["acc"]) - np.mean(notes["acc"]) > np.ptp(notes["acc"])
# the training loss falls as the sum of the rates grows, by 2x at each step
ordered = sorted(table.values(), key=lambda cell: cell["budget"])
fits = [np.mean(cell["fit"]) for cell in ordered]
assert all(a > 2 * b for a, b in zip(fits, fits[1:], strict=False))
# the notes' last 30 epochs change the validation accuracy by at most a point
for seed in SEEDS:
    acc = runs[1e-3, "step", seed].history["val_acc"]
    assert abs(acc[-1] - acc[19]) <= 0.01

# %% [markdown]
# (pitfall-steplr-decay)=
# ```{warning}
# **Pitfall: a step schedule that decays before a small learning rate has done its work.**
# The notes' Adam at $10^{-3}$ with `StepLR(step_size=10, gamma=0.1)` over 50 epochs ends near
# 93 % (the table above, over three seeds) because the model *underfits*: the rate is
# $10^{-5}$ or less from epoch 21, before the network has fitted its training data, and the
# last 30 epochs change nothing. Neither the step shape nor the rate is wrong on its own: the
# same `StepLR` from $10^{-2}$, or the same $10^{-3}$ annealed smoothly over all 50 epochs,
# fits the data and generalises better. Match the schedule to the rate: the sum of the rates
# over the run, $\sum_t \eta_t$, must be large enough to reach a good fit; look at the training
# loss of the final weights to see whether it was. Test:
# `test_pitfall_notes_steplr_recipe_underfits_because_its_rate_is_too_small_for_the_schedule`
# in `tests/test_training.py`.
# ```
#
# ## A better recipe
#
# Both changes at once, and twice the epochs: Adam at $10^{-2}$, cosine-annealed to zero over
# 100 epochs {cite}`loshchilov2017`. These are the defaults of `train_seed_mlp`, and chapter 8
# reuses the model of seed 0. Chapter 4 derives both Adam and the schedule. Three seeds again:

# %% tags=["nbval-ignore-output"]
# Output varies in the last digits across CPUs; the asserts carry the claims.
better_runs = [train_seed_mlp(seed) for seed in SEEDS]
better = better_runs[0]
better_acc = [run.history["val_acc"][-1] for run in better_runs]
print("validation accuracy, seeds 0-2:", [f"{a:.1%}" for a in better_acc])
print(f"better recipe:   {mean_range(better_acc, '.1%')}")
print(f"original recipe: {mean_range(notes['acc'], '.1%')}")
assert 0.97 <= min(better_acc) and np.mean(better_acc) <= 0.99
assert 0.92 <= np.mean(notes["acc"]) <= 0.945
gain = np.mean(better_acc) - np.mean(notes["acc"])
assert gain > np.ptp(better_acc) + np.ptp(notes["acc"])

# %% tags=["hide-input"] mystnb={"image": {"alt": "Training and validation loss and accuracy over 100 epochs of Adam at 1e-2 with cosine annealing, reaching higher validation accuracy."}}
fig = plot_history(better.history)
fig.suptitle("Adam 1e-2, cosine annealing over 100 epochs (seed 0)", y=1.03)
plt.show()

# %% [markdown]
# About 98 % on held-out data, on every seed, against 93 % for the notes' recipe. It has no
# early stopping, and it does overfit a little: the validation loss (left panel) reaches its
# minimum well before the end and then creeps up while the training loss keeps falling.

# %% tags=["nbval-ignore-output"]
# Output varies in the last digits across CPUs; the asserts carry the claims.
for seed, run in zip(SEEDS, better_runs, strict=True):
    val_loss, val_acc = run.history["val_loss"], run.history["val_acc"]
    best = int(np.argmin(val_loss))
    print(
        f"seed {seed}: validation loss {val_loss[best]:.4f} at epoch"
        f" {best + 1} ({val_acc[best]:.1%}), {val_loss[-1]:.4f} at epoch 100"
        f" ({val_acc[-1]:.1%})"
    )
val_losses = [run.history["val_loss"] for run in better_runs]
rises = [v[-1] - min(v) for v in val_losses]
minima = [int(np.argmin(v)) + 1 for v in val_losses]
print(f"rise of the validation loss since: {mean_range(rises, '.4f')}")
print(f"epoch of the minimum: {mean_range(minima, '.0f')}")
assert min(rises) > np.ptp(rises) and 0.01 < np.mean(rises) < 0.03
assert max(minima) + np.ptp(minima) < 100
for run, epoch in zip(better_runs, minima, strict=True):  # still falling
    assert run.history["train_loss"][-1] < run.history["train_loss"][epoch - 1]

# %% [markdown]
# The rise is small: the validation loss ends about 0.02 above its minimum with these seeds
# (on some other seeds it is smaller still, and the minimum comes later). Early stopping,
# below, would have kept an earlier epoch; the next section makes overfitting large enough to
# study.

# %% [markdown]
# ## What the numbers mean
#
# A training loop is also bookkeeping, and the notes' loop gets three small things wrong. The
# first is measurable on the models just trained: the notes divide the summed batch losses by
# the number of *batches*. The 200 validation examples come in six batches of 32 and one of 8,
# so those last 8 weigh as much as 32 others:

# %% tags=["nbval-ignore-output"]
# Output varies in the last digits across CPUs; the asserts carry the claims.
errors = []
for run in better_runs:
    run.model.eval()
    with torch.no_grad():
        batches = [(run.model(a), b) for a, b in val_loader]
        batch_means = [F.cross_entropy(z, b).item() for z, b in batches]
        per_example = F.cross_entropy(run.model(X[800:]), y[800:]).item()
    run.model.train()
    notes_loss = sum(batch_means) / len(val_loader)  # the notes' validate()
    errors.append((per_example - notes_loss) / per_example)  # > 0: too low
    print(
        f"mean of batch means {notes_loss:.4f}, per-example mean"
        f" {per_example:.4f}, the trainer's {run.history['val_loss'][-1]:.4f}"
    )
    assert np.isclose(run.history["val_loss"][-1], per_example, rtol=1e-5)
print(f"the notes' average is too low by {mean_range(errors, '.1%')}")
assert min(errors) > np.ptp(errors) and 0.05 < np.mean(errors) < 0.2

# %% [markdown]
# The other two are about what gets printed. The notes print `scheduler.get_last_lr()` *after*
# `scheduler.step()`, which is already the rate of the next epoch, and only when
# `epoch % 10 == 0`:

# %%
sgd = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
step = torch.optim.lr_scheduler.StepLR(sgd, step_size=10, gamma=0.1)
used, printed = [], []
for _epoch in range(50):  # the notes' loop, without the training
    used.append(sgd.param_groups[0]["lr"])
    sgd.step()
    step.step()
    printed.append(step.get_last_lr()[0])
wrong = [e for e in range(50) if not np.isclose(printed[e], used[e])]
shown = [e for e in range(50) if e % 10 == 0]
print("epochs printed with another epoch's rate:", wrong)
print("epochs the notes print (0-based):", shown)
assert wrong == [9, 19, 29, 39, 49] and 49 not in shown
assert np.allclose(original.history["lr"], used)  # what the trainer records

# %% [markdown]
# (pitfall-notes-trainer-bookkeeping)=
# ```{warning}
# **Pitfall: a training loop that misreports its own numbers.** Four small defects of the
# notes' `Trainer`. Its losses are `total_loss / len(loader)`, a mean of batch means: with a
# smaller last batch the result is not the mean loss per example (here about 11 % too low);
# `companion.Trainer` sums `loss * batch_size` and divides by the number of examples. It prints
# `get_last_lr()` after `scheduler.step()`, the rate of the *next* epoch: with the notes'
# `StepLR` the epochs they print (0, 10, …) happen to be right, the epochs where the rate changes
# are not, and with a smooth schedule none is; the trainer records in `history["lr"]` the rate
# each epoch trained with. And `if epoch % 10 == 0` prints epochs 0 to 40 of 50, never the last
# one, the result of the run; the trainer keeps every epoch in `history` and its progress bar
# shows the latest. And its `train` builds a new Adam and a new `StepLR` on every call, so
# calling it again to train longer silently throws away Adam's moment estimates and restarts the
# schedule at the full rate; `Trainer.fit` takes the optimizer and scheduler from the caller,
# and a second `fit` continues both. Tests:
# `test_pitfall_mean_of_batch_means_overweights_a_smaller_last_batch`,
# `test_pitfall_get_last_lr_after_scheduler_step_reports_the_next_epochs_rate`,
# `test_pitfall_printing_when_epoch_modulo_10_is_0_never_shows_the_last_epoch` and
# `test_pitfall_notes_train_call_restarts_adam_and_the_schedule` in `tests/test_training.py`.
# ```
#
# ## Overfitting, dropout and early stopping
#
# With 800 examples this network barely overfits. To see overfitting clearly we give a wider
# network ($128 \times 128$ hidden units, about 18 000 weights) only the first 200 training
# examples, a constant learning rate, and 60 epochs, on three seeds. It can memorise 200 points;
# the question is what happens on the 200 it never sees.

# %%
val_all = DataLoader(TensorDataset(X[800:], y[800:]), batch_size=200)
wide = NeuralNetwork(10, [128, 128], 3)
n_weights = sum(p.numel() for p in wide.parameters())
print(f"the wider network has {n_weights:,} weights and biases")
assert 17_500 < n_weights < 18_500  # "about 18 000"


def overfit_run(dropout_rate, seed, early_stopping=None):
    seed_everything(seed)
    small_train = DataLoader(
        TensorDataset(X[:200], y[:200]),
        batch_size=32,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    model = NeuralNetwork(10, [128, 128], 3, dropout_rate=dropout_rate)
    trainer = Trainer(model, device=DEVICE)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    trainer.fit(
        small_train, val_all, 60, optimizer=optimizer,
        early_stopping=early_stopping, progress=False,
    )  # fmt: skip
    return trainer


plain = [overfit_run(0.0, seed) for seed in SEEDS]
dropout = [overfit_run(0.5, seed) for seed in SEEDS]
early = overfit_run(0.0, 0, early_stopping=10)
summary = {}
for name, group in [("no dropout", plain), ("dropout 0.5", dropout)]:
    val = [run.history["val_loss"] for run in group]
    summary[name] = {
        "train": [run.history["train_loss"][-1] for run in group],
        "best": [min(v) for v in val],
        "epoch": [int(np.argmin(v)) + 1 for v in val],
        "ratio": [v[-1] / min(v) for v in val],
    }
    s = summary[name]
    print(f"{name}:")
    print(f"  final training loss  {mean_range(s['train'], '.4f')}")
    print(f"  best validation loss {mean_range(s['best'], '.3f')}")
    print(f"  at epoch             {mean_range(s['epoch'], '.0f')}")
    print(f"  final / best         {mean_range(s['ratio'], '.2f')}")

# %% tags=["hide-input"] mystnb={"image": {"alt": "Cross-entropy over 60 epochs: the training loss without dropout falls towards zero while both validation losses dip and climb again, dropout's later; dotted lines mark where early stopping keeps and stops."}}
fig, ax = plt.subplots(figsize=(7, 4))
epochs = np.arange(1, 61)
curves = [
    (plain[0].history["train_loss"], "C0--", "no dropout: training"),
    (plain[0].history["val_loss"], "C0", "no dropout: validation"),
    (dropout[0].history["val_loss"], "C1", "dropout 0.5: validation"),
]
for values, style, label in curves:
    ax.plot(epochs, values, style, label=label)
ax.axvline(
    early.best_epoch, color="C2", ls=":",
    label=f"early stopping keeps epoch {early.best_epoch}",
)  # fmt: skip
ax.axvline(
    early.epoch, color="C2", ls="-.", lw=0.8,
    label=f"and stops at epoch {early.epoch}",
)  # fmt: skip
ax.set_xlabel("epoch")
ax.set_ylabel("cross-entropy")
ax.set_ylim(0, 1.0)
ax.legend()
ax.set_title("200 training examples, 128 × 128 hidden units (seed 0)")
plt.show()

# %% [markdown]
# The training loss (dashed) falls towards zero: the network memorises its 200 examples. The
# validation loss (blue) is lowest after a few epochs and then climbs, to 1.7 to 1.9 times its
# minimum by epoch 60 — the predictions on new data grow confidently wrong while those on the
# training data grow confidently right. That is **overfitting**.
#
# **Dropout** {cite}`srivastava2014` zeroes each hidden unit with probability $p$ at every
# training step (and scales the others by $1/(1 - p)$), so no unit can rely on particular
# others; at evaluation it is off. Here, the only change being $p = 0.5$ instead of 0, it
# *delays* overfitting — the validation loss bottoms out about 20 epochs later — but it does
# not prevent it. Its best validation loss is a little lower than the plain network's, seed by
# seed (by 0.01 to 0.03), a small gain next to the rise that follows. **Early stopping**
# watches the validation loss, stops after 10 epochs without improvement and restores the
# weights of the best epoch — the lowest point of the blue curve.

# %%
plain_s, dropout_s = summary["no dropout"], summary["dropout 0.5"]
delays = np.subtract(dropout_s["epoch"], plain_s["epoch"]).tolist()
print(f"dropout delays the minimum by {mean_range(delays, '.0f')} epochs")
assert max(plain_s["train"]) < 0.01
assert min(plain_s["ratio"]) - 1 > np.ptp(plain_s["ratio"])
assert 1.6 < min(plain_s["ratio"]) and max(plain_s["ratio"]) < 2.0
assert min(delays) > np.ptp(delays) and 15 <= np.mean(delays) <= 25
assert min(dropout_s["ratio"]) - 1 > np.ptp(dropout_s["ratio"])
best_gain = np.subtract(plain_s["best"], dropout_s["best"])  # paired by seed
print(f"dropout lowers the best validation loss by {mean_range(best_gain)}")
assert np.all((best_gain > 0.005) & (best_gain < 0.04))
assert early.epoch < 60 and early.epoch == early.best_epoch + 10
assert early.best_epoch == plain_s["epoch"][0]  # the minimum of the blue curve
assert np.isclose(early.validate(val_all)[0], min(early.history["val_loss"]))

# %% [markdown]
# ## Checkpoints that resume exactly
#
# A long run should survive an interruption. `save_checkpoint` writes the model, the optimizer
# (Adam's moment estimates), the scheduler, the history and the state of every random number
# generator — including the training loader's shuffling — to a temporary file and renames it
# into place, so a crash mid-write never destroys the previous checkpoint. `load_checkpoint`
# reads it with `torch.load(weights_only=True)`, which unpickles only tensors and plain
# containers, so a checkpoint cannot run code. That guarantee holds from PyTorch 2.10 on:
# earlier versions had ways around it (CVE-2025-32434, fixed in 2.6, and CVE-2026-24747, fixed
# in 2.10), so the book's package requires at least 2.10 (in fact 2.11, the oldest it is tested
# with).
#
# The test of a resume is that it gives *exactly* the run that was never interrupted. Every
# object of the resumed run is new, as in a new process — model, optimizer, scheduler and the
# loaders, whose shuffling starts again from seed 0 — so only the checkpoint can make it
# continue where the first half stopped. A naive resume, which restores the weights, the
# optimizer and the schedule but not the random states, is the negative control:

# %%
release = torch.__version__.split("+")[0]
version = tuple(int(part) for part in release.split(".")[:2])
# the version: the last cell
print(f"PyTorch at least 2.10: {version >= (2, 10)}")
assert version >= (2, 10)


def start_run():
    seed_everything(0)
    model = NeuralNetwork(10, [64, 32], 3, dropout_rate=0.2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4)
    return Trainer(model, device=DEVICE), optimizer, scheduler


def same_weights(a, b):
    pairs = zip(a.model.parameters(), b.model.parameters(), strict=True)
    return all(torch.equal(p, q) for p, q in pairs)


straight, optimizer, scheduler = start_run()
straight.fit(
    *train_val_loaders(X, y, seed=0), epochs=4,
    optimizer=optimizer, scheduler=scheduler, progress=False,
)  # fmt: skip
first_half, optimizer, scheduler = start_run()
first_half.fit(
    *train_val_loaders(X, y, seed=0), epochs=2,
    optimizer=optimizer, scheduler=scheduler, progress=False,
)  # fmt: skip
with tempfile.TemporaryDirectory() as folder:
    path = first_half.save_checkpoint(Path(folder) / "run.pt")
    resumed, optimizer, scheduler = start_run()
    resumed.load_checkpoint(path, optimizer=optimizer, scheduler=scheduler)
    resumed.fit(*train_val_loaders(X, y, seed=0), epochs=2, progress=False)

    naive, optimizer, scheduler = start_run()
    saved = torch.load(path, weights_only=True)
    naive.model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    naive.fit(
        *train_val_loaders(X, y, seed=0), epochs=2,
        optimizer=optimizer, scheduler=scheduler, progress=False,
    )  # fmt: skip

print("resumed: identical history:", resumed.history == straight.history,
      " identical weights:", same_weights(resumed, straight))  # fmt: skip
print("naive:   identical weights:", same_weights(naive, straight))
assert resumed.history == straight.history and same_weights(resumed, straight)
assert not same_weights(naive, straight)
assert naive.history["train_loss"] != straight.history["train_loss"][2:]

# %% [markdown]
# The naive resume starts the loader's shuffling and torch's generator afresh, so its epochs 3
# and 4 see other batch orders and dropout masks than the uninterrupted run's, and it ends
# elsewhere. `tests/test_training.py` switches off each restore on its own — the
# loader's generator, then torch's — and checks that this demo then fails.
#
# ## When the loss is not a number
#
# If an input holds a NaN, the loss becomes NaN, and a step would spread it to every weight —
# silently, unless someone checks. The trainer checks every batch: a loss or a gradient
# element that is NaN or infinite stops training *before* that batch's step, naming the
# batch.

# %%
X_broken = X[:800].clone()
X_broken[100, 3] = float("nan")
broken_loader = DataLoader(TensorDataset(X_broken, y[:800]), batch_size=32)
seed_everything(0)
trainer = Trainer(NeuralNetwork(10, [64, 32], 3), device=DEVICE)
try:
    trainer.fit(broken_loader, val_loader, epochs=3, progress=False)
except FloatingPointError as err:
    print(textwrap.fill(f"FloatingPointError: {err}", 79))
assert trainer.epoch == 0
assert all(torch.isfinite(p).all() for p in trainer.model.parameters())

# %% [markdown]
# The check catches NaN and infinity, not divergence. With plain SGD at a learning rate of
# $10^3$ the weights explode while every number stays finite; the first one that is not is the
# loss of the fifth batch (batch 4), by which time the weights are useless:

# %%
seed_everything(0)
trainer = Trainer(NeuralNetwork(10, [64, 32], 3), device=DEVICE)
sgd = torch.optim.SGD(trainer.model.parameters(), lr=1e3)
in_order = DataLoader(TensorDataset(X[:800], y[:800]), batch_size=32)
try:
    trainer.fit(in_order, None, epochs=1, optimizer=sgd, progress=False)
except FloatingPointError as err:
    message = str(err)
    print(textwrap.fill(f"FloatingPointError: {message}", 79))
weights = [p.detach() for p in trainer.model.parameters()]
largest = max(w.abs().max().item() for w in weights)
assert all(torch.isfinite(w).all() for w in weights) and largest > 1e20
assert "the loss is nan at epoch 1, batch 4" in message

# %% [markdown]
# The weights are finite — no NaN reached them — and worthless: the largest is above
# $10^{20}$. A run that diverges shows first in its loss, before its weights overflow: watch
# the loss, lower the rate, or clip the gradient (`fit(clip_grad_norm=...)`). The gradient
# check matters when the loss is finite but its gradient is not, as for
# `torch.where(z > 0, z.sqrt(), z)`, whose untaken branch has a NaN derivative for negative
# `z`: `tests/test_training.py` shows that without the check one step puts NaN into the
# weights, and with it the step is never taken.
#
# ## Summary
#
# - The model outputs logits; `cross_entropy` applies the log-softmax itself, stably. A second
#   softmax puts a floor under the loss and takes the gradient of confident mistakes to zero.
# - The notes' recipe (Adam $10^{-3}$, `StepLR(10, 0.1)`, 50 epochs) underfits, at about 93 %:
#   its schedule leaves too little learning at its rate. A ten times larger rate under the same
#   schedule, or the same rate annealed smoothly, each fit the data better; both together over
#   100 epochs reach about 98 % on every seed.
# - The training loss and accuracy a loop reports are running averages in training mode; the
#   notes' loop also averaged batch means, printed the next epoch's rate and never printed its
#   last epoch.
# - Overfitting shows as a validation loss that rises while the training loss falls; dropout
#   delays it, early stopping undoes it by restoring the best epoch.
# - A checkpoint that saves every random state resumes a run bit for bit; the trainer stops on
#   a NaN or infinite loss or gradient before it reaches the weights, but a finite divergence is
#   the loss's to show.
#
# {ref}`Chapter 4 <ch-optimisers>` opens the optimiser and the schedule: Adam and SGD from their
# equations, and the warm-up schedules Transformers need.

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell with a stub to replace and a call to `check`, as in
# {ref}`chapter 1 <ch-perceptron>`: the checks report "not attempted" as committed, and say
# what to look at when they recognise a mistake. Solutions are folded; try first.
#
# ```{exercise} 3.1 The mean loss per example (easy, debug)
# :label: ex-3-1
# :nonumber:
#
# `per_example_mean(batch_losses, batch_sizes)` gets the mean loss of each batch and the
# batch's size. The notes return `sum(batch_losses) / len(batch_losses)`, which is wrong
# whenever the last batch is smaller. Repair it: return the mean loss over the examples.
# ```


# %%
from companion.exercises import check


def per_example_mean(batch_losses, batch_sizes):
    # the notes' version, to repair:
    #     return sum(batch_losses) / len(batch_losses)
    raise NotImplementedError  # your code here


check("3.1", per_example_mean)

# %% [markdown]
# ````{solution} ex-3-1
# :class: dropdown
#
# A batch's mean times its size is its summed loss; the sum over batches divided by the
# number of examples is the per-example mean (what `companion.Trainer` computes, the
# {ref}`pitfall <pitfall-notes-trainer-bookkeeping>` above).
#
# ```python
# def per_example_mean(batch_losses, batch_sizes):
#     total = sum(n * loss for loss, n in zip(batch_losses, batch_sizes))
#     return total / sum(batch_sizes)
# ```
# ````
#
# ```{exercise} 3.2 Which epoch does early stopping keep? (medium, implement)
# :label: ex-3-2
# :nonumber:
#
# Write `kept_epoch(val_losses, patience)`: given the validation loss of each epoch, the
# 1-based epoch whose weights `Trainer.fit(..., early_stopping=patience)` restores. An epoch
# improves when its loss is strictly below the best so far; training stops once `patience`
# epochs in a row have not improved, and never sees the epochs after.
# ```


# %%
def kept_epoch(val_losses, patience):
    raise NotImplementedError  # your code here


check("3.2", kept_epoch)

# %% [markdown]
# ````{solution} ex-3-2
# :class: dropdown
#
# Walk through the epochs, keep the best loss and its epoch, count the epochs without
# improvement and stop when the count reaches `patience`. The minimum of the whole history
# is not the answer: a later, lower loss comes after the run has stopped.
#
# ```python
# def kept_epoch(val_losses, patience):
#     best, best_epoch, bad = float("inf"), 0, 0
#     for epoch, loss in enumerate(val_losses, start=1):
#         if loss < best:
#             best, best_epoch, bad = loss, epoch, 0
#         else:
#             bad += 1
#             if bad == patience:
#                 break
#     return best_epoch
# ```
# ````
#
# ```{exercise} 3.3 The learning budget of the 2 x 2 grid (hard, experiment)
# :label: ex-3-3
# :nonumber:
#
# For the four cells of the chapter's grid, rates $10^{-3}$ and $10^{-2}$ times `StepLR(10,
# 0.1)` and cosine annealing (`CosineAnnealingLR(T_max=50)`), run PyTorch's schedulers on an
# Adam optimizer for 50 epochs, without training, and measure $\sum_t \eta_t$, the sum of the
# rates the 50 epochs train with. Answer with a dict `{(1e-3, "step"): total, ...}`.
# ```

# %%
rate_sums = ...  # your dict {(lr, schedule): sum of the rates}

check("3.3", rate_sums)

# %% [markdown]
# ````{solution} ex-3-3
# :class: dropdown
#
# Read the rate *before* `scheduler.step()`, at the start of the epoch that uses it (after
# the step it is the next epoch's, the notes' printing error). The sums are 0.0111, 0.0255,
# 0.111 and 0.255: each single change multiplies the notes' budget by about 2.3 or 10, and
# both together by about 23, the order in which the training loss fell above.
#
# ```python
# lr_scheduler = torch.optim.lr_scheduler
# rate_sums = {}
# for lr in (1e-3, 1e-2):
#     for schedule in ("step", "cosine"):
#         opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=lr)
#         if schedule == "step":
#             sched = lr_scheduler.StepLR(opt, step_size=10, gamma=0.1)
#         else:
#             sched = lr_scheduler.CosineAnnealingLR(opt, T_max=50)
#         total = 0.0
#         for _ in range(50):
#             total += opt.param_groups[0]["lr"]
#             opt.step()
#             sched.step()
#         rate_sums[lr, schedule] = total
# ```
# ````

# %% tags=["nbval-ignore-output"]
print(companion.executed_with())
