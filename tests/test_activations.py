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


def test_sigmoid_symmetry_and_tanh_relation():
    x = np.linspace(-20, 20, 401)
    np.testing.assert_allclose(A.sigmoid(-x), 1 - A.sigmoid(x), atol=1e-15)
    np.testing.assert_allclose(A.tanh(x), 2 * A.sigmoid(2 * x) - 1, atol=1e-15)


def test_derivative_maxima():
    assert A.sigmoid_grad(0.0) == 0.25
    assert A.tanh_grad(0.0) == 1.0
    assert A.sigmoid_grad(GRID).max() == 0.25


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
