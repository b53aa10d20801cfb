import numpy as np
import pytest

from companion.data import make_separable
from companion.perceptron import Perceptron

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([0, 1, 1, 0])


def test_converges_on_separable_data_within_novikoff_bound():
    X, y, w_star, b_star = make_separable(200)
    p = Perceptron(seed=1).fit(X, y)
    assert p.converged_ and p.errors_[-1] == 0
    assert p.score(X, y) == 1.0
    # Novikoff: mistakes <= (R / gamma)^2 on the augmented vectors (x, 1).
    X_aug = np.column_stack([X, np.ones(len(X))])
    u = np.append(w_star, b_star)
    gamma = np.min((2 * y - 1) * (X_aug @ u)) / np.linalg.norm(u)
    R = np.linalg.norm(X_aug, axis=1).max()
    assert sum(p.errors_) <= (R / gamma) ** 2


def test_learning_rate_only_scales_the_weights():
    X, y, *_ = make_separable(200)
    a = Perceptron(lr=1.0, seed=3).fit(X, y)
    b = Perceptron(lr=0.01, seed=3).fit(X, y)
    assert a.errors_ == b.errors_
    np.testing.assert_allclose(a.weights_ * 0.01, b.weights_, rtol=1e-12)


def test_cannot_learn_xor():
    p = Perceptron(max_epochs=200, seed=0).fit(XOR_X, XOR_Y)
    assert not p.converged_
    assert min(p.errors_) > 0
    assert p.score(XOR_X, XOR_Y) <= 0.75


def test_learns_and_or():
    for y in ([0, 0, 0, 1], [0, 1, 1, 1]):
        p = Perceptron(seed=0).fit(XOR_X, y)
        assert p.converged_ and p.score(XOR_X, y) == 1.0


def test_predict_returns_int_labels():
    p = Perceptron().fit(XOR_X, [0, 0, 0, 1])
    pred = p.predict(XOR_X)
    assert pred.dtype == np.int64 and set(pred) <= {0, 1}


def test_mismatched_lengths_name_y():
    with pytest.raises(ValueError, match=r"y has 3 labels but X has 4 samples"):
        Perceptron().fit(XOR_X, [0, 1, 1])


@pytest.mark.parametrize("bad", [[0, 1, 2, 0], [-1, 1, 1, -1], [0.5, 1, 1, 0]])
def test_non_binary_labels_name_y(bad):
    with pytest.raises(ValueError, match=r"^y must hold"):
        Perceptron().fit(XOR_X, bad)


def test_boolean_labels_are_accepted():
    p = Perceptron().fit(XOR_X, np.array([False, False, False, True]))
    assert p.converged_


def test_nan_and_bad_shape_in_X_are_rejected():
    X = XOR_X.copy()
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"X contains 1 NaN.*index \(2, 1\)"):
        Perceptron().fit(X, XOR_Y)
    with pytest.raises(ValueError, match="X must be 2-D"):
        Perceptron().fit(XOR_X.ravel(), XOR_Y)


def test_predict_checks_feature_count_and_fit_state():
    with pytest.raises(RuntimeError, match="not fitted"):
        Perceptron().predict(XOR_X)
    p = Perceptron().fit(XOR_X, [0, 0, 0, 1])
    with pytest.raises(ValueError, match="X must have 2 features"):
        p.predict(np.ones((3, 5)))


@pytest.mark.parametrize(
    "kwargs, name", [({"lr": 0}, "lr"), ({"max_epochs": 0}, "max_epochs"), ({"seed": -1}, "seed")]
)
def test_bad_hyper_parameters_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Perceptron(**kwargs)
