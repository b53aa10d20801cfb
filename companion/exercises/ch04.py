r"""Checkers for chapter 4's exercises: one Adam step, its bias correction, a cosine schedule."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..optim import SGD, Adam
from ..schedules import CosineAnnealingWarmRestarts
from . import Wrong, as_array, call, exercise, number

_SEED = 2024


# ------------------------------------------------------------------------------ 4.1
def _adam_variant(theta, g, m, v, t, lr, beta1, beta2, eps, variant="right"):
    r"""One Adam step in NumPy, right or with one of the typical mistakes.

    .. math::

        m_t = \beta_1 m + (1 - \beta_1) g, \quad v_t = \beta_2 v + (1 - \beta_2) g^2, \quad
        \theta_t = \theta - \eta \frac{m_t / (1 - \beta_1^t)}
            {\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}
    """
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    tc = t + 1 if variant == "t+1" else t
    with np.errstate(all="ignore"):
        c1 = 1 - beta1**tc
        c2 = 1 - beta2**tc
        if variant == "no correction":
            c1 = c2 = 1.0
        if variant == "m only":
            c2 = 1.0
        if variant == "eps inside":
            step = (m / c1) / np.sqrt(v / c2 + eps)
        else:
            step = (m / c1) / (np.sqrt(v / c2) + eps)
    return theta - lr * step, m, v


_ADAM_HINTS = {
    "no correction": (
        "your steps match Adam without bias correction",
        "divide m_t by (1 - beta1^t) and v_t by (1 - beta2^t) before the update; without it "
        "the first steps are (1 - beta1) / sqrt(1 - beta2) times too large",
    ),
    "m only": (
        "your steps match Adam with only m_t bias-corrected",
        "v_t needs its correction too: v_hat = v_t / (1 - beta2^t)",
    ),
    "eps inside": (
        "your steps match Adam with eps inside the square root",
        "torch.optim.Adam divides by sqrt(v_hat) + eps, not by sqrt(v_hat + eps)",
    ),
    "t+1": (
        "your steps match bias corrections with t + 1 instead of t",
        "the step counter is off by one: the first step has t = 1, and the corrections use "
        "beta^t with that t",
    ),
}


def _adam_cases():
    """(shape, lr, betas, eps, gradients) for a few runs, fixed so a verdict repeats."""
    rng = np.random.default_rng(_SEED)
    cases = []
    for shape, lr, betas, eps in [
        ((3, 4), 1e-2, (0.9, 0.999), 1e-8),
        ((5,), 0.1, (0.8, 0.99), 1e-3),
        ((2, 3), 1e-3, (0.9, 0.999), 1e-8),
    ]:
        grads = [rng.normal(scale=1e-2, size=shape) for _ in range(6)]
        grads[2] = np.zeros(shape)  # a step with no gradient: Adam still moves (momentum)
        cases.append((shape, lr, betas, eps, grads))
    return cases


def _reference_thetas(theta0, lr, betas, eps, grads):
    """The parameters after each step of ``companion.optim.Adam`` (= torch.optim.Adam)."""
    p = torch.tensor(theta0, dtype=torch.float64, requires_grad=True)
    optimizer = Adam([p], lr=lr, betas=betas, eps=eps)
    out = []
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
        out.append(p.detach().numpy().copy())
    return out


def _close(a, b) -> bool:
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-9, atol=1e-15)


@exercise("4.1", "One Adam step from its equations", level="easy", kind="implement")
def check_adam_step(answer):
    r"""``answer(theta, grad, m, v, t, lr, betas, eps)`` must return ``(theta, m, v)`` after
    step :math:`t` (1 for the first) of

    .. math::

        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2, \quad
        \theta_t = \theta_{t-1} - \eta \frac{m_t / (1 - \beta_1^t)}
            {\sqrt{v_t / (1 - \beta_2^t)} + \epsilon},

    equal to ``torch.optim.Adam`` (via ``companion.optim.Adam``) to a relative 1e-9 over six
    steps of three runs (float64 tensors, one step with a zero gradient)."""
    rng = np.random.default_rng(_SEED + 1)
    for shape, lr, betas, eps, grads in _adam_cases():
        theta0 = rng.normal(size=shape)
        expected = _reference_thetas(theta0, lr, betas, eps, grads)
        theta = torch.tensor(theta0, dtype=torch.float64)
        m, v = torch.zeros(shape, dtype=torch.float64), torch.zeros(shape, dtype=torch.float64)
        got = []
        for t, g in enumerate(grads, start=1):
            grad = torch.tensor(g, dtype=torch.float64)
            out = call(
                answer, theta.clone(), grad, m.clone(), v.clone(), t, lr, betas, eps,
                what="adam_step",
            )  # fmt: skip
            if not isinstance(out, tuple) or len(out) != 3:
                raise Wrong(f"adam_step must return a triple (theta, m, v); got {out!r:.60}")
            theta, m, v = (
                torch.as_tensor(as_array(o, n))
                for o, n in zip(out, ("theta", "m", "v"), strict=True)
            )
            got.append(as_array(theta, "theta"))
        if all(_close(a, b) for a, b in zip(got, expected, strict=True)):
            continue
        if got[0].shape != expected[0].shape:
            raise Wrong(
                f"theta has shape {got[0].shape}; expected {expected[0].shape}",
                "every operation of Adam is element-wise: keep the parameter's shape",
            )
        for variant, (message, hint) in _ADAM_HINTS.items():
            th, mm, vv = theta0, np.zeros(shape), np.zeros(shape)
            trajectory = []
            for t, g in enumerate(grads, start=1):
                th, mm, vv = _adam_variant(th, g, mm, vv, t, lr, *betas, eps, variant)
                trajectory.append(th)
            if all(_close(a, b) for a, b in zip(got, trajectory, strict=True)):
                raise Wrong(message, hint)
        if not np.all(np.isfinite(got[0])):
            raise Wrong(
                "the first step gives inf or NaN",
                "is the step counter off by one? The first step has t = 1, so the "
                "corrections 1 - beta1^t and 1 - beta2^t are never 0",
            )
        first = next(
            i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if not _close(a, b)
        )
        raise Wrong(
            f"step {first + 1} of a run with lr={lr}, betas={betas}, eps={eps} differs from "
            f"torch.optim.Adam by up to {np.abs(got[first] - expected[first]).max():.3g}",
            "m takes (1 - beta1) of the new gradient and v (1 - beta2) of its square; the step "
            "is -lr * m_hat / (sqrt(v_hat) + eps); return the new m and v as well",
        )
    return "18 steps in three runs match torch.optim.Adam to a relative 1e-9."


# ------------------------------------------------------------------------------ 4.2
def first_step_ratio(beta1: float = 0.9, beta2: float = 0.999, lr: float = 1e-3) -> float:
    r"""The exact answer to exercise 4.2: the first step's size without bias correction
    divided by its size with it, measured with ``companion.optim.Adam`` for the corrected step:

    .. math::

        \frac{\eta (1 - \beta_1) g / (\sqrt{(1 - \beta_2) g^2} + \epsilon)}
            {|\theta_1 - \theta_0|} \approx \frac{1 - \beta_1}{\sqrt{1 - \beta_2}}
    """
    g = 0.5
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = Adam([p], lr=lr, betas=(beta1, beta2))
    p.grad = torch.full((1,), g, dtype=torch.float64)
    optimizer.step()
    corrected = abs(p.item())
    eps = optimizer.param_groups[0]["eps"]
    uncorrected = lr * (1 - beta1) * g / (math.sqrt((1 - beta2) * g * g) + eps)
    return uncorrected / corrected


@exercise("4.2", "The first step without bias correction", level="medium", kind="predict")
def check_first_step_ratio(answer):
    r"""The answer is the size of Adam's first step without bias correction divided by its size
    with it, for :math:`\beta_1 = 0.9`, :math:`\beta_2 = 0.999`, within 1 %:
    :math:`(1 - \beta_1) / \sqrt{1 - \beta_2}` when :math:`\epsilon` is negligible."""
    value = number(answer)
    exact = first_step_ratio()
    if abs(value - exact) <= 0.01 * exact:
        return (
            f"without correction the first step is {exact:.4g} times larger; you said {value:.4g}."
        )
    b1, b2 = 0.9, 0.999
    if abs(value - 1) < 0.01:
        raise Wrong(
            "1 would mean that the two corrections cancel",
            "at t = 1, m_1 = (1 - beta1) g and v_1 = (1 - beta2) g^2: the numerator shrinks by "
            "0.1 but the denominator only by sqrt(0.001)",
        )
    if abs(value - (1 - b1) / (1 - b2)) <= 0.01 * (1 - b1) / (1 - b2):
        raise Wrong(
            "that is (1 - beta1) / (1 - beta2), without the square root",
            "the step divides by sqrt(v), so v's factor (1 - beta2) enters as its square root",
        )
    if abs(value * exact - 1) < 0.01:
        raise Wrong(
            "that is the inverse: the corrected step over the uncorrected one",
            "the uncorrected first step is the larger one",
        )
    if abs(value - (1 - b1)) < 0.001 or abs(value - 1 / math.sqrt(1 - b2)) < 0.3:
        raise Wrong(
            "you took only one of the two corrections into account",
            "both m_1 and v_1 are too small without correction; the ratio is "
            "(1 - beta1) / sqrt(1 - beta2)",
        )
    raise Wrong(
        f"{value:.4g} is {value / exact:.3g} times the true ratio",
        "write m_1 and v_1 for a gradient g, then the step lr * m_1 / sqrt(v_1) with and "
        "without dividing m_1 by 1 - beta1 and v_1 by 1 - beta2",
    )


# ------------------------------------------------------------------------------ 4.3
_COSINE_CASES = [
    {"T_0": 5, "T_mult": 1, "eta_min": 0.0},
    {"T_0": 3, "T_mult": 2, "eta_min": 0.01},
]


def _rates(make, n_steps: int = 30):
    """The lr of both groups at each optimiser step; the scheduler is stepped after it."""
    params = [torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)]
    optimizer = SGD([{"params": params[:1], "lr": 0.1}, {"params": params[1:], "lr": 0.05}], lr=0.1)
    scheduler = make(optimizer)
    used = []
    for _ in range(n_steps):
        used.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        call(scheduler.step, what="your scheduler's step()")
    return np.array(used, dtype=np.float64)


@exercise("4.3", "Repair the notes' cosine restarts", level="hard", kind="debug")
def check_cosine_restarts(answer):
    r"""``answer(optimizer, T_0, T_mult, eta_min)`` is a scheduler whose ``step()`` is called
    after ``optimizer.step()``; the rate of optimiser step :math:`t = 0, 1, \dots` must be

    .. math::

        \eta_t = \eta_\min + \tfrac12 (\eta_\max - \eta_\min)
            \big(1 + \cos(\pi T_\text{cur} / T_i)\big),

    as ``companion.CosineAnnealingWarmRestarts`` gives, for 30 steps, two parameter groups
    and :math:`T_\text{mult} \in \{1, 2\}`, to 1e-12."""
    for case in _COSINE_CASES:
        expected = _rates(lambda opt, c=case: CosineAnnealingWarmRestarts(opt, **c))

        def make(opt, c=case):
            return call(answer, opt, what="your scheduler's constructor", **c)

        got = _rates(make)
        if np.allclose(got, expected, rtol=1e-12, atol=0):
            continue
        described = ", ".join(f"{k}={v}" for k, v in case.items())
        if np.allclose(got[1:], expected[:-1], rtol=1e-12) and np.allclose(got[0], expected[0]):
            raise Wrong(
                f"with {described} every rate comes one step late (the first rate is used "
                "twice): the notes' defect is still there",
                "step() is called after the optimiser's step, so it must set the rate of the "
                "*next* step: advance T_cur first, then restart if needed, then set the rate",
            )
        restarts = np.flatnonzero(np.isclose(expected[:, 0], 0.1))[1:]
        if np.any(np.isclose(got[restarts, 0], case["eta_min"] + 0 * got[restarts, 0])):
            raise Wrong(
                f"with {described} the step where the schedule should restart runs at eta_min "
                "instead",
                "T_cur reached T_i before the restart check: compare T_cur with T_i after "
                "advancing the counter, so that T_cur / T_i stays below 1",
            )
        if np.allclose(got[:, 0], expected[:, 0], rtol=1e-12):
            raise Wrong(
                "the first parameter group is right, the second (initial lr 0.05) is not",
                "each group anneals from its own initial lr (keep base_lrs per group)",
            )
        if case["T_mult"] != 1 and np.allclose(got[: case["T_0"] + 1], expected[: case["T_0"] + 1]):
            raise Wrong(
                f"with {described} the first cycle is right, the later ones are not",
                "at each restart the cycle length T_i is multiplied by T_mult",
            )
        first = int(np.flatnonzero(~np.isclose(got, expected, rtol=1e-12, atol=0).all(1))[0])
        raise Wrong(
            f"with {described}, step {first} runs at {got[first].tolist()}; expected "
            f"{expected[first].tolist()}",
            "the rate of step t = 0 is the initial lr; check T_cur and T_i step by step",
        )
    return "60 steps of two schedules (T_mult = 1 and 2), both groups, match companion's."
