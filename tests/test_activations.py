import warnings

import numpy as np
import pytest
import torch

from companion import activations as A

GRID = np.concatenate([np.linspace(-30, 30, 2001), [-1e-9, 1e-9, 0.5, -0.5]])

PAIRS = [
    (A.sigmoid, A.sigmoid_grad, torch.sigmoid),
    (A.tanh, A.tanh_grad, torch.tanh),
    (A.relu, A.relu_grad, torch.relu),
]


@pytest.mark.parametrize("f, f_grad, torch_f", PAIRS, ids=["sigmoid", "tanh", "relu"])
def test_values_and_derivatives_match_torch_autograd_float64(f, f_grad, torch_f):
    x = torch.tensor(GRID, dtype=torch.float64, requires_grad=True)
    y = torch_f(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    np.testing.assert_allclose(f(GRID), y.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(f_grad(GRID), grad.numpy(), rtol=0, atol=1e-12)


def test_relu_derivative_at_zero_is_zero_like_autograd():
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    torch.relu(x).backward()
    assert A.relu_grad(np.zeros(1))[0] == x.grad.item() == 0.0


def naive_sigmoid(x):
    """The textbook formula, as the original notes write it."""
    return 1.0 / (1.0 + np.exp(-x))


def naive_sigmoid_grad(x):
    """The derivative written the same way: e^-x / (1 + e^-x)^2."""
    return np.exp(-x) / (1.0 + np.exp(-x)) ** 2


def test_naive_sigmoid_overflows_pitfall():
    x = np.array([-1000.0])
    with pytest.warns(RuntimeWarning, match="overflow"):
        naive_sigmoid(x)
    with pytest.warns(RuntimeWarning):
        assert np.isnan(naive_sigmoid_grad(x)[0])  # inf / inf: a silent NaN
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert A.sigmoid(x)[0] == 0.0 and A.sigmoid_grad(x)[0] == 0.0


def test_sigmoid_is_finite_and_warning_free_up_to_1e4():
    x = np.linspace(-1e4, 1e4, 20001)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            s = A.sigmoid(x)
            g = A.sigmoid_grad(x)
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(g))
    assert s.min() >= 0.0 and s.max() <= 1.0
    assert np.all(np.diff(s) >= 0), "sigmoid must be monotone"
    assert s[0] == 0.0 and s[-1] == 1.0


def test_sigmoid_tails_keep_relative_precision():
    # sigma(-700) = e^-700 / (1 + e^-700): the stable form keeps it, 1 - sigma(700) would not.
    np.testing.assert_allclose(A.sigmoid(-700.0), np.exp(-700.0), rtol=1e-12)


# A wide grid for sigma': the far tails (+-40, +-700) are where a careless formula loses them.
WIDE = np.concatenate([np.linspace(-700, 700, 7001), [-40.0, 40.0, -700.0, 700.0, -1e-9, 1e-9]])


def product_form_sigmoid_grad(x):
    """sigma(1 - sigma): the textbook identity, computed as written (the negative control)."""
    s = A.sigmoid(x)
    return s * (1.0 - s)


def test_sigmoid_grad_is_exactly_symmetric():
    assert np.array_equal(A.sigmoid_grad(WIDE), A.sigmoid_grad(-WIDE))
    assert A.sigmoid_grad(40.0) == A.sigmoid_grad(-40.0) > 0.0


def test_sigmoid_grad_matches_high_precision_reference():
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(50):
        reference = np.array(
            [float(mpmath.exp(x) / (1 + mpmath.exp(x)) ** 2) for x in WIDE.tolist()]
        )
    assert reference.min() > 0.0  # every point is a normal float: relative error is meaningful
    np.testing.assert_allclose(A.sigmoid_grad(WIDE), reference, rtol=1e-12, atol=0)


def test_sigmoid_grad_matches_the_cosh_form():
    # sigma'(x) = 1 / (4 cosh^2(x / 2)): an independent closed form, no mpmath needed.
    np.testing.assert_allclose(
        A.sigmoid_grad(WIDE), 0.25 / np.cosh(WIDE / 2) ** 2, rtol=1e-12, atol=0
    )


def test_product_form_sigmoid_grad_is_asymmetric_negative_control():
    # The same checks fail for sigma(1 - sigma): sigma(40) rounds to 1, so the product is 0.
    assert product_form_sigmoid_grad(40.0) == 0.0
    np.testing.assert_allclose(product_form_sigmoid_grad(-40.0), 4.248354255291589e-18, rtol=1e-12)
    assert not np.array_equal(product_form_sigmoid_grad(WIDE), product_form_sigmoid_grad(-WIDE))
    reference = 0.25 / np.cosh(WIDE / 2) ** 2
    relative = np.abs(product_form_sigmoid_grad(WIDE) - reference) / reference
    assert relative.max() == 1.0  # somewhere it returns 0 for a positive number


def test_sigmoid_is_exactly_one_from_about_37_but_zero_only_below_about_minus_745():
    # The docstring's statement about where float64 runs out, on both sides.
    assert A.sigmoid(36.7) < 1.0 and A.sigmoid(36.8) == 1.0
    assert A.sigmoid(-745.0) > 0.0 and A.sigmoid(-745.2) == 0.0
    x32 = np.float32
    assert A.sigmoid(x32(16.6)) < 1.0 and A.sigmoid(x32(16.7)) == 1.0
    assert A.sigmoid(x32(-103.9)) > 0.0 and A.sigmoid(x32(-104.0)) == 0.0


def notes_tanh(x):
    """The notes' formula (e^x - e^-x) / (e^x + e^-x), evaluated as written."""
    return (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x))


def test_pitfall_notes_tanh_formula_is_nan_beyond_710():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.isfinite(notes_tanh(np.array([709.0])))[0]
        assert np.isnan(notes_tanh(np.array([710.0, -710.0]))).all()  # inf / inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(A.tanh([710.0, -710.0, 1e6]), [1.0, -1.0, 1.0])


# sech^2 is a normal double up to |x| = 354 (then subnormal, with fewer digits) and positive up
# to |x| = 373.
TANH_WIDE = np.concatenate([np.linspace(-354, 354, 7081), [-19.5, 19.5, -1e-9, 1e-9]])


def test_tanh_grad_keeps_relative_precision_in_the_tails():
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(50):
        reference = np.array([float(mpmath.sech(x) ** 2) for x in TANH_WIDE.tolist()])
    assert reference.min() > 0.0
    np.testing.assert_allclose(A.tanh_grad(TANH_WIDE), reference, rtol=1e-12, atol=0)
    assert np.array_equal(A.tanh_grad(TANH_WIDE), A.tanh_grad(-TANH_WIDE))
    assert A.tanh_grad(372.0) > 0.0 and A.tanh_grad(374.0) == 0.0


def test_one_minus_tanh_squared_is_exactly_zero_from_19_negative_control():
    # The textbook form fails the same check: tanh(x) rounds to 1, so 1 - t^2 is exactly 0.
    def textbook(x):
        return 1.0 - np.tanh(x) ** 2

    assert textbook(18.9) > 0.0 and textbook(19.0) == 0.0
    reference = 1.0 / np.cosh(TANH_WIDE) ** 2
    relative = np.abs(textbook(TANH_WIDE) - reference) / reference
    assert relative.max() == 1.0
    np.testing.assert_allclose(A.tanh_grad(19.0), 1.0 / np.cosh(19.0) ** 2, rtol=1e-12)


def test_sigmoid_symmetry_and_tanh_relation():
    x = np.linspace(-20, 20, 401)
    np.testing.assert_allclose(A.sigmoid(-x), 1 - A.sigmoid(x), atol=1e-15)
    np.testing.assert_allclose(A.tanh(x), 2 * A.sigmoid(2 * x) - 1, atol=1e-15)


def test_derivative_maxima():
    assert A.sigmoid_grad(0.0) == 0.25
    assert A.tanh_grad(0.0) == 1.0
    assert A.sigmoid_grad(GRID).max() == 0.25


def test_sigmoid_grad_never_rounds_above_a_quarter_near_zero():
    x = np.concatenate([np.geomspace(1e-20, 1e-2, 20001), np.linspace(-3, 3, 60001)])
    assert A.sigmoid_grad(x).max() <= 0.25 and A.sigmoid_grad(-x).max() <= 0.25
    # Negative control: the single quotient u / (1 + u)^2 does round above 1/4 there.
    u = np.exp(-np.abs(x))
    assert (u / (1.0 + u) ** 2).max() > 0.25


def test_shape_and_dtype_preserved():
    x32 = np.ones((2, 3), dtype=np.float32)
    for f in (A.sigmoid, A.tanh, A.relu, A.sigmoid_grad, A.tanh_grad, A.relu_grad, A.heaviside):
        out = f(x32)
        assert out.shape == (2, 3) and out.dtype == np.float32, f.__name__
    assert A.relu([1, -2, 3]).dtype == np.float64  # ints become float64
    assert A.sigmoid(2.0).shape == ()


def test_heaviside_is_a_step_at_zero():
    np.testing.assert_array_equal(A.heaviside([-2.0, -1e-12, 0.0, 3.0]), [0, 0, 1, 1])


def test_softmax_is_stable_and_normalised():
    z = np.array([[1000.0, 1001.0, 1002.0], [-1e4, 0.0, 1e4]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = A.softmax(z)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-15)
    np.testing.assert_allclose(p[0], A.softmax(np.array([0.0, 1.0, 2.0])), atol=1e-15)
    expected = torch.softmax(torch.tensor(z), dim=1).numpy()
    np.testing.assert_allclose(p, expected, atol=1e-15)


@pytest.mark.parametrize("f", [A.sigmoid, A.relu, A.tanh, A.sigmoid_grad, A.softmax])
def test_non_numeric_input_raises_type_error(f):
    with pytest.raises(TypeError, match="real numbers"):
        f(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="real numbers"):
        f(np.array([1 + 2j]))
