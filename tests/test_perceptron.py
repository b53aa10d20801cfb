import numpy as np
import pytest

from companion.data import make_separable
from companion.perceptron import Perceptron

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([0, 1, 1, 0])


def fitted(X, y, **kwargs):
    p = Perceptron(**kwargs)
    p.fit(X, y)
    return p


def novikoff_terms(X, y, w_star, b_star):
    """R and the margin gamma of the separator (w_star, b_star), on the vectors (x, 1)."""
    X_aug = np.column_stack([X, np.ones(len(X))])
    u = np.append(w_star, b_star)
    gamma = np.min((2 * y - 1) * (X_aug @ u)) / np.linalg.norm(u)
    return np.linalg.norm(X_aug, axis=1).max(), gamma


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_converges_on_separable_data_within_novikoff_bound(seed):
    X, y, w_star, b_star = make_separable(200)
    p = Perceptron(seed=seed)
    history = p.fit(X, y)
    assert p.converged_ and history["errors"][-1] == 0 and min(history["errors"][:-1] + [1]) > 0
    assert p.score(X, y) == 1.0
    R, gamma = novikoff_terms(X, y, w_star, b_star)
    assert sum(history["errors"]) <= (R / gamma) ** 2


def test_novikoff_check_fails_for_a_rule_that_forgets_the_bias_negative_control():
    # The check can fail: the same rule without the bias update (lines through the origin only)
    # cannot separate these data once they are shifted by (1, 1), where the best line through
    # the origin classifies 84.5 % correctly, so it never converges and its mistakes pass the
    # bound that the real rule stays under.
    X, y, w_star, b_star = make_separable(200)
    X, b_star = X + 1.0, b_star - w_star.sum()  # the same separator, moved with the data
    R, gamma = novikoff_terms(X, y, w_star, b_star)
    assert gamma > 0
    rng = np.random.default_rng(0)
    w, per_epoch = np.zeros(2), []
    for _ in range(100):
        mistakes = 0
        for i in rng.permutation(len(X)):
            update = y[i] - float(X[i] @ w >= 0)
            w += update * X[i]
            mistakes += int(update != 0)
        per_epoch.append(mistakes)
    assert min(per_epoch) > 0
    assert sum(per_epoch) > (R / gamma) ** 2
    assert sum(fitted(X, y, seed=0).history["errors"]) <= (R / gamma) ** 2


def test_fit_returns_the_history_and_stores_it():
    X, y, *_ = make_separable(200)
    p = Perceptron(seed=0)
    history = p.fit(X, y)
    assert history is p.history and set(history) == {"errors"}
    assert all(isinstance(e, int) for e in history["errors"])
    assert len(history["errors"]) >= 1 and history["errors"][-1] == 0
    # A second fit starts from zero again: the same run, a new history object.
    again = p.fit(X, y)
    assert again == history and again is not history and p.history is again
    # On XOR it runs all max_epochs and records every one.
    assert len(Perceptron(max_epochs=7).fit(XOR_X, XOR_Y)["errors"]) == 7


def test_learning_rate_only_scales_the_weights():
    X, y, *_ = make_separable(200)
    a = fitted(X, y, lr=1.0, seed=3)
    b = fitted(X, y, lr=0.01, seed=3)
    assert a.history == b.history
    np.testing.assert_allclose(a.weights_ * 0.01, b.weights_, rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cannot_learn_xor(seed):
    p = fitted(XOR_X, XOR_Y, max_epochs=200, seed=seed)
    assert not p.converged_
    assert min(p.history["errors"]) > 0
    assert p.score(XOR_X, XOR_Y) <= 0.75


def test_learns_and_or():
    for y in ([0, 0, 0, 1], [0, 1, 1, 1]):
        p = fitted(XOR_X, y, seed=0)
        assert p.converged_ and p.score(XOR_X, y) == 1.0


def test_predict_returns_int_labels():
    p = fitted(XOR_X, [0, 0, 0, 1])
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
    p = fitted(XOR_X, np.array([False, False, False, True]))
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
    p = fitted(XOR_X, [0, 0, 0, 1])
    with pytest.raises(ValueError, match="X must have 2 features"):
        p.predict(np.ones((3, 5)))


@pytest.mark.parametrize(
    "kwargs, name", [({"lr": 0}, "lr"), ({"max_epochs": 0}, "max_epochs"), ({"seed": -1}, "seed")]
)
def test_bad_hyper_parameters_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Perceptron(**kwargs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gates_learned_on_jittered_corners_compose_into_xor(seed):
    # Chapter 1's hidden layer: OR and NAND feed AND; each gate trained on 25 jittered copies of
    # each corner. Over several jitter draws every gate converges and the stack computes XOR,
    # while a single perceptron on the same jittered points does not converge (the control).
    rng = np.random.default_rng(seed)
    corner = np.repeat(np.arange(4), 25)
    X = XOR_X[corner] + rng.uniform(-0.2, 0.2, size=(100, 2))
    gates = {"OR": [0, 1, 1, 1], "NAND": [1, 1, 1, 0], "AND": [0, 0, 0, 1]}
    units = {name: fitted(X, np.array(t)[corner], seed=seed) for name, t in gates.items()}
    assert all(u.converged_ for u in units.values())
    hidden = np.column_stack([units["OR"].predict(XOR_X), units["NAND"].predict(XOR_X)])
    np.testing.assert_array_equal(units["AND"].predict(hidden), XOR_Y)
    assert not fitted(X, XOR_Y[corner], seed=seed).converged_
