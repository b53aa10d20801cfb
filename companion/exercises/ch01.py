r"""Checkers for chapter 1's exercises: activations, their derivatives, the perceptron rule."""

from __future__ import annotations

import warnings

import numpy as np

from ..activations import sigmoid, sigmoid_grad, tanh_grad
from . import Wrong, as_array, call, exercise, number, same_shape

_RNG_SEED = 2024


def _inputs(scale: float, n: int = 200) -> np.ndarray:
    """Random inputs plus zero and a few round values (fixed, so a verdict repeats)."""
    rng = np.random.default_rng(_RNG_SEED)
    return np.concatenate([[0.0, 1.0, -1.0, 2.5, -2.5], rng.normal(scale=scale, size=n)])


def _quietly(fn, x, what):
    """Call the reader's ``fn(x)``; overflow and invalid-value warnings become hints."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with np.errstate(all="warn"):
            got = as_array(call(fn, x, what=what), f"{what}'s result")
    overflow = [w for w in caught if "overflow" in str(w.message) or "invalid" in str(w.message)]
    return got, overflow


@exercise("1.1", "The sigmoid's derivative", level="easy", kind="implement")
def check_sigmoid_derivative(answer):
    r"""``answer(x)`` must return :math:`\sigma'(x) = \sigma(x)(1 - \sigma(x))` elementwise, to
    1e-12 absolute, for moderate inputs and for :math:`|x|` up to 1000 without a warning."""
    x = _inputs(scale=4.0)
    got, _ = _quietly(answer, x, "sigmoid_derivative")
    expected = sigmoid_grad(x)
    same_shape(got, expected)
    if np.allclose(got, sigmoid(x), atol=1e-12):
        raise Wrong(
            "you returned sigma(x) itself, not its derivative",
            "differentiate 1 / (1 + e^{-x}): the result is sigma(x) * (1 - sigma(x))",
        )
    if np.allclose(got, x * (1 - x), atol=1e-9):
        raise Wrong(
            "you returned x * (1 - x)",
            "the formula sigma' = s (1 - s) needs s = sigma(x), not x itself",
        )
    if np.allclose(got, -expected, atol=1e-12):
        raise Wrong("the sign is wrong: sigma is increasing, so sigma' > 0", None)
    if not np.allclose(got, expected, rtol=0, atol=1e-12):
        worst = int(np.argmax(np.abs(got - expected)))
        raise Wrong(
            f"at x = {x[worst]:.4g} you return {got[worst]:.6g}; sigma'(x) = {expected[worst]:.6g}",
            "check the formula at x = 0, where sigma'(0) = 1/4",
        )
    large = np.array([-1000.0, -800.0, -40.0, 40.0, 800.0, 1000.0])
    got_large, warned = _quietly(answer, large, "sigmoid_derivative")
    if warned or not np.all(np.isfinite(got_large)):
        raise Wrong(
            "for |x| up to 1000 your function overflows (a warning, or inf/NaN in the result)",
            "np.exp(-x) overflows for x < -709; write sigma with u = e^{-|x|}, which never "
            "overflows, as chapter 1's pitfall box does",
        )
    if not np.allclose(got_large, sigmoid_grad(large), rtol=0, atol=1e-12):
        raise Wrong("large inputs give wrong values: sigma' must tend to 0 on both sides", None)
    return "sigma'(x) matches to 1e-12 on 205 inputs, and is finite without warnings to |x| = 1000."


@exercise("1.2", "One step of the perceptron rule", level="easy", kind="implement")
def check_perceptron_step(answer):
    r"""``answer(w, b, x, y, lr)`` must return ``(w_new, b_new)`` of the rule
    :math:`w \leftarrow w + \eta (y - \hat y) x`, :math:`b \leftarrow b + \eta (y - \hat y)`,
    :math:`\hat y = H(w \cdot x + b)`, without changing the caller's ``w``."""
    rng = np.random.default_rng(_RNG_SEED)
    cases = []
    for _ in range(40):
        w, x = rng.normal(size=3), rng.normal(size=3)
        cases.append(
            (w, float(rng.normal()), x, int(rng.integers(0, 2)), float(rng.uniform(0.1, 2)))
        )
    cases.append((np.array([1.0, 0.0]), -1.0, np.array([1.0, 5.0]), 0, 1.0))  # w.x + b = 0 -> 1
    for w, b, x, y, lr in cases:
        w_before = w.copy()
        out = call(answer, w, b, x, y, lr, what="perceptron_step")
        if not isinstance(out, tuple) or len(out) != 2:
            raise Wrong(f"perceptron_step must return a pair (w_new, b_new); got {out!r:.60}")
        w_new, b_new = as_array(out[0], "w_new"), number(out[1], "b_new")
        if not np.array_equal(w, w_before):
            raise Wrong(
                "your function changed the caller's w in place",
                "write w_new = w + ...; `w += ...` modifies the array that was passed in",
            )
        y_hat = 1.0 if w @ x + b >= 0 else 0.0
        err = y - y_hat
        expected_w, expected_b = w + lr * err * x, b + lr * err
        if np.allclose(w_new, expected_w) and np.isclose(b_new, expected_b):
            continue
        if err != 0 and np.allclose(w_new, w - lr * err * x):
            raise Wrong("the update moves the boundary the wrong way", "the factor is y - y_hat")
        if err != 0 and np.allclose(w_new, expected_w) and np.isclose(b_new, b):
            raise Wrong("the weights are right but the bias never changes", "b += lr * (y - y_hat)")
        if err == 0 and not np.allclose(w_new, w):
            raise Wrong(
                "the weights changed although the prediction was right",
                "the rule changes nothing when y_hat == y",
            )
        if w @ x + b == 0:
            raise Wrong(
                "at w.x + b = 0 exactly your prediction differs from H(0) = 1",
                "the step function is 1 for a score >= 0",
            )
        raise Wrong(
            f"for w={np.round(w, 3)}, b={b:.3f}, x={np.round(x, 3)}, y={y}, lr={lr:.3f} you "
            f"return ({np.round(w_new, 4)}, {b_new:.4f}); expected ({np.round(expected_w, 4)}, "
            f"{expected_b:.4f})"
        )
    return "all 41 updates match the perceptron rule, and the caller's weights are untouched."


def chain_factor(depth: int = 10) -> float:
    r"""The exact answer to exercise 1.3: :math:`\prod_l \sigma'(z_l)` along the chain
    :math:`a_0 = 0`, :math:`z_l = a_{l-1}`, :math:`a_l = \sigma(z_l)`."""
    a, factor = 0.0, 1.0
    for _ in range(depth):
        factor *= float(sigmoid_grad(a))
        a = float(sigmoid(a))
    return factor


@exercise("1.3", "How much gradient survives ten sigmoids?", level="medium", kind="predict")
def check_chain_factor(answer):
    r"""The chain :math:`a_l = \sigma(a_{l-1})` of ten sigmoid units (weight 1, bias 0) starts at
    :math:`a_0 = 0`; the answer is :math:`\partial a_{10} / \partial a_0`, within 1 %."""
    value = number(answer)
    exact = chain_factor()
    if abs(value - exact) <= 0.01 * exact:
        return f"d a_10 / d a_0 = {exact:.4g}; you said {value:.4g}."
    if abs(value - 0.25**10) <= 0.01 * 0.25**10:
        raise Wrong(
            "that is (1/4)^10, the bound, as if every unit sat at z = 0",
            "only the first unit sees z = 0; the second sees sigma(0) = 0.5, where sigma' is "
            "smaller than 1/4; multiply sigma'(z_l) along the chain",
        )
    if value >= 1:
        raise Wrong("more than 1: with weights 1, each factor sigma'(z) is at most 1/4", None)
    if value < 0:
        raise Wrong("negative: every factor sigma'(z) of the chain is positive", None)
    ratio = value / exact
    raise Wrong(
        f"{value:.4g} is {ratio:.3g} times the true value",
        "compute z_1 = 0, a_1 = sigma(z_1), z_2 = a_1, ... and multiply the ten sigma'(z_l); "
        "or let autograd do it: torch.sigmoid applied ten times to a tensor 0. with "
        "requires_grad=True",
    )


@exercise("1.4", "Repair the textbook tanh derivative", level="hard", kind="debug")
def check_tanh_derivative(answer):
    r"""``answer(x)`` must return :math:`\tanh'(x)` to a relative error of 1e-6 for
    :math:`|x| \le 300`, where ``1 - np.tanh(x)**2`` returns exactly 0 from
    :math:`|x| \approx 19`."""
    x = np.concatenate([_inputs(scale=3.0), np.linspace(-300, 300, 61)])
    got, warned = _quietly(answer, x, "tanh_derivative")
    expected = tanh_grad(x)
    same_shape(got, expected)
    if warned or not np.all(np.isfinite(got)):
        raise Wrong(
            "your function overflows for large |x| (a warning, or inf/NaN in the result)",
            "e^{2|x|} overflows from |x| = 355; use u = e^{-2|x|}, which is at most 1",
        )
    relative = np.abs(got - expected) / expected
    if np.all(relative[np.abs(x) < 15] < 1e-6):
        if np.any(got[np.abs(x) > 20] == 0):
            raise Wrong(
                "right for small x, but exactly 0 for |x| above about 19: the defect is still "
                "there",
                "1 - tanh(x)^2 subtracts two numbers that are both 1 to the last bit; tanh'(x) "
                "= sech^2(x) = 4u / (1 + u)^2 with u = e^{-2|x|} has no subtraction",
            )
    worst = int(np.argmax(relative))
    if relative[worst] >= 1e-6:
        raise Wrong(
            f"at x = {x[worst]:.4g} you return {got[worst]:.6g}; tanh'(x) = {expected[worst]:.6g} "
            f"(relative error {relative[worst]:.1e})",
            "tanh'(0) must be 1, and tanh' is even: tanh'(-x) = tanh'(x)",
        )
    return f"relative error at most {relative.max():.1e} on {x.size} inputs up to |x| = 300."
