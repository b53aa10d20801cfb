r"""Checkers for chapter 3's exercises: the per-example mean, early stopping, the rate budget."""

from __future__ import annotations

import numpy as np

from . import Wrong, call, exercise, number

_RNG_SEED = 2026


@exercise("3.1", "The mean loss per example", level="easy", kind="debug")
def check_per_example_mean(answer):
    r"""``answer(batch_losses, batch_sizes)`` gets the mean loss :math:`\bar\ell_b` of each
    batch and its size :math:`n_b` and must return the mean over the examples,
    :math:`\sum_b n_b \bar\ell_b / \sum_b n_b`, to 1e-12 relative; the notes'
    ``sum(batch_losses) / len(batch_losses)`` is right only when all batches are equal."""
    rng = np.random.default_rng(_RNG_SEED)
    sizes = [32] * 6 + [8]  # chapter 3's validation loader: 200 examples
    losses = rng.uniform(0.05, 0.6, size=len(sizes))
    cases = [(list(losses), list(sizes)), ([0.3, 0.9], [1, 3]), ([0.25] * 4, [16] * 4)]
    for batch_losses, batch_sizes in cases:
        got = number(call(answer, batch_losses, batch_sizes, what="per_example_mean"))
        expected = float(np.dot(batch_losses, batch_sizes) / np.sum(batch_sizes))
        if np.isclose(got, expected, rtol=1e-12, atol=0):
            continue
        if np.isclose(got, np.mean(batch_losses), rtol=1e-12):
            raise Wrong(
                "that is the notes' mean of batch means: the 8 examples of the last batch "
                "weigh as much as 32 others",
                "weight each batch's mean by its size: sum(n_b * loss_b) / sum(n_b)",
            )
        if np.isclose(got, np.dot(batch_losses, batch_sizes) / len(batch_sizes)):
            raise Wrong(
                "you weighted by the batch sizes but divided by the number of batches",
                "divide by the number of examples, sum(batch_sizes)",
            )
        if np.isclose(got, np.sum(batch_losses) / np.sum(batch_sizes)):
            raise Wrong(
                "the batch losses are already means: summing them and dividing by the "
                "number of examples divides by the batch size twice",
                "multiply each mean by its batch size first, to get the batch's summed loss",
            )
        raise Wrong(
            f"for losses {np.round(batch_losses, 3).tolist()} and sizes {batch_sizes} you "
            f"return {got:.6g}; the per-example mean is {expected:.6g}"
        )
    return "matches sum(n_b * loss_b) / sum(n_b) on 3 loaders, with a last batch of 8 too."


def early_stopping_epoch(val_losses, patience: int, strict: bool = True) -> tuple[int, int]:
    r"""The reference for exercise 3.2, the rule of :meth:`companion.Trainer.fit`: the epoch
    (1-based) whose weights are kept and the epoch training stops at. An epoch improves when
    its loss is *strictly* below the best so far; training stops after ``patience`` epochs in
    a row without improvement, or at the last epoch. ``strict=False`` is the typical mistake
    (``<=``: a tie counts as an improvement), which the checker recognises."""
    best, best_epoch, bad = np.inf, 0, 0
    for epoch, loss in enumerate(val_losses, start=1):
        if loss < best or (not strict and loss == best):
            best, best_epoch, bad = loss, epoch, 0
        else:
            bad += 1
            if bad >= patience:
                return best_epoch, epoch
    return best_epoch, len(val_losses)


def _histories():
    """Validation-loss curves, fixed: U-shaped, noisy, with plateaus, ties and a late dip."""
    rng = np.random.default_rng(_RNG_SEED)
    t = np.arange(40)
    curves = [list(0.2 + 0.001 * (t - 12) ** 2 + rng.normal(scale=0.01, size=40)) for _ in range(4)]
    curves.append([1.0, 0.8, 0.6, 0.7, 0.7, 0.7, 0.5, 0.9, 0.9, 0.9, 0.2])  # stop before 0.2
    curves.append([0.5, 0.4, 0.4, 0.4, 0.45, 0.5])  # ties: the first of equal losses
    curves.append([0.9, 0.8, 0.7, 0.6])  # still falling at the end
    return curves


@exercise("3.2", "Which epoch does early stopping keep?", level="medium", kind="implement")
def check_early_stopping(answer):
    r"""``answer(val_losses, patience)`` must return the 1-based epoch whose weights early
    stopping keeps, by the rule of ``companion.Trainer.fit(early_stopping=patience)``: strict
    improvement, stop after ``patience`` epochs without one, keep the best epoch *seen*."""
    cases = [(losses, patience) for losses in _histories() for patience in (1, 3, 10)]
    got = [
        number(call(answer, list(losses), p, what="kept_epoch"), "the epoch") for losses, p in cases
    ]
    keep = [early_stopping_epoch(losses, p)[0] for losses, p in cases]
    if got == keep:
        return "the kept epoch matches Trainer's rule on 7 histories x 3 patiences."
    first = next(i for i, (a, b) in enumerate(zip(got, keep, strict=True)) if a != b)
    losses, patience = cases[first]
    shown = f"losses {np.round(losses, 3).tolist()}, patience {patience}"
    stop = early_stopping_epoch(losses, patience)[1]

    def like(rule):
        return got == [rule(losses, p) for losses, p in cases]

    if like(lambda v, p: early_stopping_epoch(v, p)[0] - 1):
        raise Wrong(
            f"you return {got[first]:g}, one less than epoch {keep[first]}: a 0-based index "
            f"({shown})",
            "epochs count from 1, like Trainer.best_epoch: return index + 1",
        )
    if like(lambda v, p: int(np.argmin(v)) + 1):
        raise Wrong(
            f"you return the minimum of the whole history, epoch {got[first]:g}, but training "
            f"stopped at epoch {stop} and never saw it ({shown})",
            "early stopping only knows the epochs before it stops: stop after `patience` "
            "epochs in a row without improvement",
        )
    if like(lambda v, p: early_stopping_epoch(v, p, strict=False)[0]):
        raise Wrong(
            f"with equal losses you keep epoch {got[first]:g}, not the first, {keep[first]} "
            f"({shown})",
            "an epoch improves only when its loss is strictly lower (<, not <=)",
        )
    for shift in (-1, 1):
        if like(lambda v, p, s=shift: early_stopping_epoch(v, max(p + s, 1))[0]):
            raise Wrong(
                f"you kept epoch {got[first]:g}: that is what patience {patience + shift} "
                f"keeps ({shown})",
                "stop when the count of epochs without improvement reaches `patience`; reset "
                "the count to 0 at each improvement",
            )
    raise Wrong(f"you return {got[first]:g}; the epoch kept is {keep[first]} ({shown})")


def _rates(lr: float, schedule: str, epochs: int = 50) -> tuple[list, list]:
    """The rates the epochs train with, and those ``get_last_lr()`` reports after each
    ``scheduler.step()`` (the next epoch's), from PyTorch's own schedulers."""
    import torch

    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=lr)
    if schedule == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.1)
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    used, reported = [], []
    for _ in range(epochs):
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
        reported.append(scheduler.get_last_lr()[0])
    return used, reported


def rate_budget(lr: float, schedule: str, epochs: int = 50) -> float:
    r""":math:`\sum_t \eta_t` over ``epochs`` epochs of Adam at ``lr`` under chapter 3's
    ``"step"`` (``StepLR(10, 0.1)``) or ``"cosine"`` (``CosineAnnealingLR(T_max=epochs)``)
    schedule: the rates each epoch trains with (the answer to exercise 3.3)."""
    return float(sum(_rates(lr, schedule, epochs)[0]))


_GRID = [(1e-3, "step"), (1e-3, "cosine"), (1e-2, "step"), (1e-2, "cosine")]


@exercise("3.3", "The learning budget of the 2 x 2 grid", level="hard", kind="experiment")
def check_rate_budget(answer):
    r"""``answer`` must be a dict ``{(lr, schedule): total}`` for the chapter's four cells,
    ``lr`` in (1e-3, 1e-2) and ``schedule`` in ("step", "cosine"), with ``total`` the sum
    :math:`\sum_{t=0}^{49} \eta_t` of the rates the 50 epochs *train with*, to 1e-9 relative."""
    if not isinstance(answer, dict):
        raise Wrong(f"the answer must be a dict {{(lr, schedule): total}}; got {type(answer)}")
    missing = [key for key in _GRID if key not in answer]
    if missing:
        raise Wrong(
            f"the dict lacks the cells {missing}",
            "use the keys (1e-3, 'step'), (1e-3, 'cosine'), (1e-2, 'step'), (1e-2, 'cosine')",
        )
    for lr, schedule in _GRID:
        got = number(answer[lr, schedule], f"the total for {(lr, schedule)}")
        used, reported = _rates(lr, schedule)
        expected = float(sum(used))
        if np.isclose(got, expected, rtol=1e-9, atol=0):
            continue
        if np.isclose(got, sum(reported), rtol=1e-9):
            raise Wrong(
                f"for {(lr, schedule)} you summed the rates read after scheduler.step(): "
                "each is the next epoch's, as in the notes' printout",
                "read optimizer.param_groups[0]['lr'] before scheduler.step(), at the start "
                "of the epoch that trains with it",
            )
        if np.isclose(got, sum(used[:49]), rtol=1e-9) or np.isclose(got, sum(used[1:]), rtol=1e-9):
            raise Wrong(
                f"for {(lr, schedule)} your sum has 49 epochs, not 50",
                "sum over t = 0, 1, ..., 49: range(50)",
            )
        if np.isclose(got, 50 * lr, rtol=1e-9):
            raise Wrong(
                f"for {(lr, schedule)} you summed a constant rate: the schedule never ran",
                "call scheduler.step() once per epoch, after optimizer.step()",
            )
        raise Wrong(
            f"for {(lr, schedule)} you report {got:.6g}; the rates sum to {expected:.6g}",
            "sum optimizer.param_groups[0]['lr'] over the 50 epochs, stepping the scheduler "
            "after each",
        )
    ratio = rate_budget(1e-2, "cosine") / rate_budget(1e-3, "step")
    return f"all four sums match; both changes together give {ratio:.3g} times the notes' budget."
