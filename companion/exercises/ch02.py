r"""Checkers for chapter 2's exercises: accumulated gradients, finite differences, softmax."""

from __future__ import annotations

import warnings

import numpy as np

from ..backprop import numerical_gradient, relative_error
from . import Wrong, as_array, call, exercise, number, same_shape

_RNG_SEED = 2025


def accumulated_grad(zero_grad: bool, step: bool, steps: int = 3) -> float:
    r"""``w.grad`` after ``steps`` iterations of ``loss = w ** 2; loss.backward()`` from
    :math:`w = 3`, with SGD at :math:`\eta = 0.1` (if ``step``) and with or without
    ``zero_grad`` before each backward pass (the exact answer to exercise 2.1 has neither)."""
    import torch

    w = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([w], lr=0.1)
    for _ in range(steps):
        if zero_grad:
            optimizer.zero_grad()
        (w**2).backward()
        if step:
            optimizer.step()
    return w.grad.item()


@exercise("2.1", "What does w.grad hold without zero_grad?", level="easy", kind="predict")
def check_accumulated_grad(answer):
    r"""Three iterations of ``loss = w ** 2; loss.backward(); optimizer.step()`` with SGD at
    :math:`\eta = 0.1` from :math:`w = 3` and no ``zero_grad``: the answer is ``w.grad`` after
    the loop, :math:`\sum_t 2 w_t` (each step uses the *sum* so far), within 1e-6."""
    value = number(answer)
    exact = accumulated_grad(zero_grad=False, step=True)
    if abs(value - exact) <= 1e-6 * abs(exact):
        return f"the sum of the three gradients 2 w_t is {exact:.6g}; you said {value:.6g}."
    if np.isclose(value, accumulated_grad(zero_grad=True, step=True)):
        raise Wrong(
            "that is the gradient 2 w of the third step with zero_grad, as if .grad were reset",
            "backward() adds to .grad; nothing clears it in this loop, so it holds the sum of "
            "the three gradients",
        )
    if np.isclose(value, accumulated_grad(zero_grad=False, step=False)):
        raise Wrong(
            "that is 3 x 2 w at w = 3: the sum, but as if w never moved",
            "optimizer.step() changes w by -0.1 * w.grad after each backward pass, and it uses "
            "the accumulated .grad, so the steps grow too",
        )
    if np.isclose(value, 6.0):
        raise Wrong(
            "6 is the first gradient only",
            "each backward() adds its gradient 2 w to .grad; follow w through the three steps",
        )
    raise Wrong(
        f"w.grad is not {value:.6g}",
        "write down w, .grad after backward and w after step for each of the 3 iterations, "
        "or run the loop with torch",
    )


def _quietly(fn, *args, what):
    """Call the reader's function; overflow and invalid-value warnings are returned."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with np.errstate(all="warn"):
            got = as_array(call(fn, *args, what=what), f"{what}'s result")
    bad = [w for w in caught if "overflow" in str(w.message) or "invalid" in str(w.message)]
    return got, bad


@exercise("2.2", "A central-difference gradient", level="medium", kind="implement")
def check_central_difference(answer):
    r"""``answer(f, x, eps)`` must estimate :math:`\nabla f(x)` by
    :math:`(f(x + \varepsilon e_i) - f(x - \varepsilon e_i)) / 2\varepsilon`, entry by entry,
    for any array shape, and leave ``x`` as it was: it must agree with
    :func:`companion.numerical_gradient` to 1e-9 relative error, on a cubic whose forward
    difference is visibly worse."""
    rng = np.random.default_rng(_RNG_SEED)
    A = rng.normal(size=(3, 4))

    def f(x):
        return float(np.sum(A * x**3) + np.sum(np.sin(x)))

    for shape, eps in [((3, 4), 1e-3), ((3, 4), 1e-5)]:
        x = rng.normal(size=shape)
        before = x.copy()
        got = as_array(call(answer, f, x, eps, what="central_difference"), "the gradient")
        if not np.array_equal(x, before):
            raise Wrong(
                "after your function returns, x is not what it was",
                "restore each entry after perturbing it: x[i] = original (or work on a copy)",
            )
        expected = numerical_gradient(f, x.copy(), eps)
        same_shape(got, expected, "the gradient")
        if relative_error(got, expected) < 1e-9:
            continue
        exact = 3 * A * x**2 + np.cos(x)
        forward = np.empty_like(x)
        for i in np.ndindex(x.shape):
            e = np.zeros_like(x)
            e[i] = eps
            forward[i] = (f(x + e) - f(x)) / eps
        if relative_error(got, forward) < 1e-9:
            raise Wrong(
                "that is the forward difference (f(x + eps) - f(x)) / eps, with an O(eps) error",
                "use f(x + eps e_i) - f(x - eps e_i), which cancels the second-order term: its "
                "error is O(eps^2)",
            )
        if relative_error(got, 2 * expected) < 1e-9:
            raise Wrong(
                "your gradient is twice too large",
                "the two points are 2 eps apart: divide by 2 * eps, not eps",
            )
        if relative_error(got, 0.5 * expected) < 1e-9:
            raise Wrong("your gradient is half the true one", "divide by 2 * eps, not 4 * eps")
        if relative_error(got, -expected) < 1e-9:
            raise Wrong("the sign is wrong", "f(x + eps e_i) comes first: (f_plus - f_minus)")
        raise Wrong(
            f"relative error {relative_error(got, expected):.1e} to the central difference "
            f"(and {relative_error(got, exact):.1e} to the exact gradient) for eps = {eps:g}",
            "perturb one entry at a time (np.ndindex(x.shape) visits every index of any shape) "
            "and keep the other entries unchanged",
        )
    return "matches companion.numerical_gradient to 1e-9 on a 3 x 4 input, and x is unchanged."


def _reference_softmax_ce_grad(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    r"""The gradient of the mean cross-entropy by autograd, in float64."""
    import torch
    import torch.nn.functional as F

    logits = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    F.cross_entropy(logits, torch.as_tensor(y, dtype=torch.long)).backward()
    return logits.grad.numpy()


@exercise("2.3", "The gradient of softmax and cross-entropy", level="hard", kind="implement")
def check_softmax_ce_grad(answer):
    r"""``answer(z, y)`` for logits ``z`` of shape ``(N, K)`` and labels ``y`` of shape ``(N,)``
    must return :math:`\partial L / \partial z = (\mathbf p - \mathbf e_y) / N` for the mean
    cross-entropy :math:`L = -\frac1N \sum_n \log p_{n, y_n}`, :math:`\mathbf p =
    \operatorname{softmax}(\mathbf z)`: it must match autograd to 1e-10, and stay finite
    without a warning for logits of size 1000."""
    rng = np.random.default_rng(_RNG_SEED)
    cases = [(rng.normal(scale=3.0, size=(8, 4)), rng.integers(0, 4, size=8))]
    cases.append((rng.normal(size=(1, 3)), np.array([2])))
    for z, y in cases:
        got, _ = _quietly(answer, z.copy(), y, what="softmax_ce_grad")
        expected = _reference_softmax_ce_grad(z, y)
        same_shape(got, expected, "the gradient")
        if np.allclose(got, expected, rtol=0, atol=1e-10):
            continue
        n = len(y)
        if n > 1 and np.allclose(got, n * expected, atol=1e-9):
            raise Wrong(
                "that is p - e_y without the 1 / N: the gradient of the *sum* of the losses",
                "the loss is the mean over the batch, so divide by the batch size N = z.shape[0]",
            )
        if np.allclose(got, -expected, atol=1e-10) or np.allclose(got, -n * expected):
            raise Wrong(
                "the sign is wrong",
                "raising the true class's logit lowers the loss: the gradient is p - e_y",
            )
        p = expected * n
        p[np.arange(n), y] += 1
        if np.allclose(got, p, atol=1e-9) or np.allclose(got, p / n, atol=1e-9):
            raise Wrong("you returned the softmax p itself", "subtract the one-hot e_y from p")
        raise Wrong(
            f"for a batch of {n} the largest difference to autograd is "
            f"{np.abs(got - expected).max():.2e}",
            "softmax is over each row (axis=1, keepdims=True); only the entry of the true "
            "class gets the -1",
        )
    z = np.array([[1000.0, 0.0, -1000.0], [-1000.0, 999.0, 1000.0]])
    y = np.array([0, 1])
    got, warned = _quietly(answer, z.copy(), y, what="softmax_ce_grad")
    if warned or not np.all(np.isfinite(got)):
        raise Wrong(
            "for logits of size 1000 your function overflows (a warning, or inf/NaN)",
            "subtract the row's max, z - z.max(axis=1, keepdims=True), before np.exp: softmax "
            "does not change, and the largest exponent becomes e^0 = 1",
        )
    if not np.allclose(got, _reference_softmax_ce_grad(z, y), rtol=0, atol=1e-10):
        raise Wrong("large logits give wrong values", "compare with autograd at z = 1000")
    return "matches autograd to 1e-10 on batches of 8 and 1, and logits of 1000 stay finite."
