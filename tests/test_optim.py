import copy
import io

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from companion.optim import (
    SGD,
    Adam,
    learning_rate_sweep,
    optimization_path,
    quadratic,
    rosenbrock,
)

SGD_SETTINGS = {
    "plain": {"lr": 0.1},
    "momentum": {"lr": 0.1, "momentum": 0.9},
    "nesterov": {"lr": 0.1, "momentum": 0.9, "nesterov": True},
    "weight_decay": {"lr": 0.1, "weight_decay": 0.01},
    "momentum+weight_decay": {"lr": 0.05, "momentum": 0.8, "weight_decay": 0.05},
}
ADAM_SETTINGS = {
    "default": {},
    "lr+betas": {"lr": 0.01, "betas": (0.5, 0.9)},
    "weight_decay": {"lr": 0.01, "weight_decay": 0.05},
    "amsgrad": {"lr": 0.01, "amsgrad": True},
    "amsgrad+weight_decay": {"lr": 0.01, "amsgrad": True, "weight_decay": 0.05},
    "eps": {"lr": 0.01, "eps": 1e-6},
}
CASES = [(SGD, torch.optim.SGD, kw) for kw in SGD_SETTINGS.values()] + [
    (Adam, torch.optim.Adam, kw) for kw in ADAM_SETTINGS.values()
]
CASE_IDS = [f"SGD-{k}" for k in SGD_SETTINGS] + [f"Adam-{k}" for k in ADAM_SETTINGS]


def problem(dtype=torch.float64, seed=0):
    """A small MLP and a fixed 3-class batch, all in ``dtype``."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 3)).to(dtype)
    X = torch.randn(64, 10, generator=gen, dtype=dtype)
    y = torch.randint(0, 3, (64,), generator=gen)
    return model, X, y


def train(model, optimizer, X, y, steps):
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(X), y).backward()
        optimizer.step()


def max_difference(model_a, model_b):
    return max(
        (a - b).abs().max().item()
        for a, b in zip(model_a.parameters(), model_b.parameters(), strict=True)
    )


def identical(model_a, model_b):
    """Every parameter equal bit for bit (torch.equal)."""
    pairs = zip(model_a.parameters(), model_b.parameters(), strict=True)
    return all(torch.equal(a, b) for a, b in pairs)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("ours", "theirs", "kwargs"), CASES, ids=CASE_IDS)
def test_optimizer_is_bit_identical_to_torch_single_tensor_path_for_200_steps(
    ours, theirs, kwargs, dtype
):
    model, X, y = problem(dtype)
    reference = copy.deepcopy(model)
    start = copy.deepcopy(model)
    train(model, ours(model.parameters(), **kwargs), X, y, 200)
    train(reference, theirs(reference.parameters(), foreach=False, **kwargs), X, y, 200)
    assert max_difference(model, start) > 1e-2  # the parameters really moved
    assert identical(model, reference)


@pytest.mark.parametrize(("ours", "theirs", "kwargs"), CASES, ids=CASE_IDS)
def test_torch_fused_path_is_close_but_not_the_same_computation(ours, theirs, kwargs):
    # The negative control of the test above: torch.equal does fail on a path that computes
    # the update in another order (fused=True), although the difference is rounding-sized.
    model, X, y = problem(torch.float64)
    reference = copy.deepcopy(model)
    train(model, ours(model.parameters(), **kwargs), X, y, 200)
    train(reference, theirs(reference.parameters(), fused=True, **kwargs), X, y, 200)
    plain_sgd = ours is SGD and kwargs.get("momentum", 0) == 0
    if plain_sgd:  # θ − ηg is a single operation whichever kernel computes it
        assert identical(model, reference)
    else:
        assert not identical(model, reference)
    assert max_difference(model, reference) <= 1e-10


def uncorrected_adam_steps(g, lr, beta1, beta2, steps, correct_m, correct_v):
    """Adam's step sizes on a constant gradient g, with either bias correction left out."""
    m = v = 0.0
    sizes = []
    for t in range(1, steps + 1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_used = m / (1 - beta1**t) if correct_m else m
        v_used = v / (1 - beta2**t) if correct_v else v
        sizes.append(lr * m_used / v_used**0.5)
    return np.array(sizes)


def test_adam_bias_correction_keeps_first_steps_at_lr_and_without_it_they_are_larger():
    # Kingma & Ba, section 3: without both corrections the step is (1 - β1^t) / sqrt(1 - β2^t)
    # times larger, 3.2x at t = 1 and 6.5x at t = 10; correcting v alone makes it tiny.
    lr, beta1, beta2, g = 1e-3, 0.9, 0.999, 0.25
    theta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    adam = Adam([theta], lr=lr, betas=(beta1, beta2), eps=0.0)
    taken = []
    for _ in range(10):
        before = theta.item()
        theta.grad = torch.full_like(theta, g)
        adam.step()
        taken.append(before - theta.item())
    np.testing.assert_allclose(taken, lr, rtol=1e-12)
    t = np.arange(1, 11)
    neither = uncorrected_adam_steps(g, lr, beta1, beta2, 10, False, False)
    np.testing.assert_allclose(neither / lr, (1 - beta1**t) / np.sqrt(1 - beta2**t), rtol=1e-12)
    assert round(neither[0] / lr, 1) == 3.2 and round(neither[9] / lr, 1) == 6.5
    v_only = uncorrected_adam_steps(g, lr, beta1, beta2, 10, False, True)
    assert v_only[0] / lr == pytest.approx(0.1, rel=1e-12)  # the only tiny variant
    both = uncorrected_adam_steps(g, lr, beta1, beta2, 10, True, True)
    np.testing.assert_allclose(taken, both, rtol=1e-12)
    assert not np.allclose(taken, neither, rtol=0.5)  # the test can tell them apart


def test_sgd_first_step_is_exactly_theta_minus_lr_times_gradient():
    model, X, y = problem()
    before = [p.detach().clone() for p in model.parameters()]
    F.cross_entropy(model(X), y).backward()
    SGD(model.parameters(), lr=0.3).step()
    for p, p0 in zip(model.parameters(), before, strict=True):
        assert (p - (p0 - 0.3 * p.grad)).abs().max().item() <= 1e-16


def test_adam_first_step_moves_every_weight_by_about_lr():
    # m̂₁ = g and v̂₁ = g², so the first step is -lr · g / (|g| + eps) ≈ -lr · sign(g).
    model, X, y = problem()
    before = [p.detach().clone() for p in model.parameters()]
    F.cross_entropy(model(X), y).backward()
    Adam(model.parameters(), lr=0.01).step()
    for p, p0 in zip(model.parameters(), before, strict=True):
        expected = p0 - 0.01 * p.grad / (p.grad.abs() + 1e-8)
        assert (p - expected).abs().max().item() <= 1e-15


@pytest.mark.parametrize(("ours", "theirs", "kwargs"), CASES, ids=CASE_IDS)
def test_step_with_closure_returns_its_loss_and_matches_torch(ours, theirs, kwargs):
    model, X, y = problem()
    reference = copy.deepcopy(model)
    opt_ours = ours(model.parameters(), **kwargs)
    opt_theirs = theirs(reference.parameters(), foreach=False, **kwargs)

    def closure_for(net, opt):
        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(net(X), y)
            loss.backward()
            return loss

        return closure

    for _ in range(20):
        loss = opt_ours.step(closure_for(model, opt_ours))
        ref_loss = opt_theirs.step(closure_for(reference, opt_theirs))
        assert isinstance(loss, torch.Tensor) and loss.requires_grad
        assert loss.item() == ref_loss.item()
    assert identical(model, reference)
    assert opt_ours.step() is None  # no closure, no loss


@pytest.mark.parametrize(("ours", "kwargs"), [(c[0], c[2]) for c in CASES], ids=CASE_IDS)
def test_resume_from_state_dict_reproduces_uninterrupted_run(ours, kwargs):
    model, X, y = problem()
    straight = copy.deepcopy(model)
    train(straight, ours(straight.parameters(), **kwargs), X, y, 200)

    first = ours(model.parameters(), **kwargs)
    train(model, first, X, y, 100)
    buffer = io.BytesIO()  # a real checkpoint: serialised, then loaded with weights_only
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed_model = copy.deepcopy(model)
    resumed = ours(resumed_model.parameters(), **kwargs)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    train(resumed_model, resumed, X, y, 100)

    assert max_difference(resumed_model, straight) == 0.0


def test_resume_without_optimizer_state_diverges_from_uninterrupted_run():
    # The control for the test above: restoring only the weights loses Adam's m, v and t.
    model, X, y = problem()
    straight = copy.deepcopy(model)
    train(straight, Adam(straight.parameters(), lr=0.01), X, y, 200)
    train(model, Adam(model.parameters(), lr=0.01), X, y, 100)
    train(model, Adam(model.parameters(), lr=0.01), X, y, 100)
    assert max_difference(model, straight) > 1e-4


@pytest.mark.parametrize(("ours", "theirs"), [(SGD, torch.optim.SGD), (Adam, torch.optim.Adam)])
def test_a_torch_optim_checkpoint_resumes_identically_in_ours(ours, theirs):
    kwargs = {"lr": 0.01, "momentum": 0.9} if ours is SGD else {"lr": 0.01}
    model, X, y = problem()
    straight = copy.deepcopy(model)
    train(straight, theirs(straight.parameters(), foreach=False, **kwargs), X, y, 200)
    torch_opt = theirs(model.parameters(), foreach=False, **kwargs)
    train(model, torch_opt, X, y, 100)
    resumed = ours(model.parameters(), **kwargs)
    resumed.load_state_dict(torch_opt.state_dict())  # Adam's step counter is a tensor there
    train(model, resumed, X, y, 100)
    assert identical(model, straight)


def test_state_holds_the_documented_entries():
    model, X, y = problem()
    params = list(model.parameters())
    adam, ams = Adam(params), Adam(params, amsgrad=True)
    sgd, plain = SGD(params, lr=0.1, momentum=0.9), SGD(params, lr=0.1)
    for opt in (adam, ams, sgd, plain):
        train(model, opt, X, y, 3)
    for p in params:
        assert adam.state[p]["step"] == 3
        assert set(adam.state[p]) == {"step", "exp_avg", "exp_avg_sq"}
        assert set(ams.state[p]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
        assert set(sgd.state[p]) == {"momentum_buffer"}
        assert p not in plain.state
    saved = adam.state_dict()["state"][0]
    assert saved["step"] == 3 and saved["exp_avg"].shape == params[0].shape


@pytest.mark.parametrize(("ours", "kwargs"), [(c[0], c[2]) for c in CASES], ids=CASE_IDS)
def test_parameters_without_gradient_are_untouched(ours, kwargs):
    model, X, y = problem()
    model[0].requires_grad_(False)  # frozen first layer: its grad stays None
    frozen = [p.detach().clone() for p in model[0].parameters()]
    opt = ours(model.parameters(), **kwargs)
    train(model, opt, X, y, 5)
    for p, p0 in zip(model[0].parameters(), frozen, strict=True):
        assert p.grad is None and torch.equal(p, p0) and p not in opt.state


def test_param_groups_use_their_own_learning_rates():
    model, X, y = problem()
    reference = copy.deepcopy(model)
    groups = [
        {"params": model[0].parameters(), "lr": 0.02},
        {"params": model[2].parameters(), "betas": (0.8, 0.99)},
    ]
    ref_groups = [
        {"params": reference[0].parameters(), "lr": 0.02},
        {"params": reference[2].parameters(), "betas": (0.8, 0.99)},
    ]
    train(model, Adam(groups, lr=0.005), X, y, 50)
    train(reference, torch.optim.Adam(ref_groups, lr=0.005, foreach=False), X, y, 50)
    assert identical(model, reference)


@pytest.mark.parametrize("optimizer", [SGD, Adam])
def test_sparse_gradients_are_refused_with_a_clear_error(optimizer):
    emb = nn.Embedding(10, 4, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(TypeError, match="sparse"):
        optimizer(emb.parameters(), lr=0.1).step()


def test_adam_refuses_complex_parameters_instead_of_mis_squaring_them():
    z = nn.Parameter(torch.zeros(3, dtype=torch.complex128))
    z.grad = torch.ones_like(z)
    with pytest.raises(TypeError, match="real parameters"):
        Adam([z]).step()


BAD_ARGUMENTS = [
    (SGD, {"lr": -0.1}, ValueError, "lr"),
    (SGD, {"lr": float("nan")}, ValueError, "lr"),
    (SGD, {"lr": float("inf")}, ValueError, "lr"),
    (SGD, {"lr": "0.1"}, TypeError, "lr"),
    (SGD, {"lr": 0.1, "momentum": -0.9}, ValueError, "momentum"),
    (SGD, {"lr": 0.1, "weight_decay": -1e-4}, ValueError, "weight_decay"),
    (SGD, {"lr": 0.1, "nesterov": True}, ValueError, "nesterov"),
    (Adam, {"lr": -1e-3}, ValueError, "lr"),
    (Adam, {"lr": float("nan")}, ValueError, "lr"),
    (Adam, {"eps": -1e-8}, ValueError, "eps"),
    (Adam, {"weight_decay": -0.01}, ValueError, "weight_decay"),
    (Adam, {"betas": (1.0, 0.999)}, ValueError, "betas"),
    (Adam, {"betas": (0.9, -0.1)}, ValueError, "betas"),
    (Adam, {"betas": (0.9,)}, ValueError, "betas"),
    (Adam, {"betas": 0.9}, ValueError, "betas"),
]


@pytest.mark.parametrize(
    ("optimizer", "kwargs", "error", "name"),
    BAD_ARGUMENTS,
    ids=[f"{c.__name__}-{k}" for c, k, _, _ in BAD_ARGUMENTS],
)
def test_bad_arguments_raise_an_error_naming_the_argument(optimizer, kwargs, error, name):
    params = [nn.Parameter(torch.zeros(3))]
    with pytest.raises(error, match=f"^{name}"):
        optimizer(params, **kwargs)


@pytest.mark.parametrize("optimizer", [SGD, Adam])
def test_a_param_group_with_a_bad_learning_rate_is_refused(optimizer):
    groups = [{"params": [nn.Parameter(torch.zeros(3))], "lr": -0.5}]
    with pytest.raises(ValueError, match="^lr"):
        optimizer(groups, lr=0.1)


def test_optimization_path_of_gradient_descent_on_a_bowl_is_geometric():
    # f = (x^2 + 4 y^2) / 2: one SGD step multiplies x by (1 - lr) and y by (1 - 4 lr).
    path = optimization_path(lambda p: quadratic(p, 4.0), [2.0, 1.0], lambda p: SGD(p, lr=0.1), 20)
    t = np.arange(21)
    np.testing.assert_allclose(path[:, 0], 2.0 * 0.9**t, rtol=1e-12)
    np.testing.assert_allclose(path[:, 1], 1.0 * 0.6**t, rtol=1e-12)


def test_rosenbrock_minimum_and_path_errors():
    assert rosenbrock(np.array([1.0, 1.0])) == 0.0
    assert rosenbrock(np.array([0.0, 0.0])) == 1.0
    with pytest.raises(ValueError, match="start must be a 1-D point"):
        optimization_path(rosenbrock, [[0.0, 0.0]], lambda p: SGD(p, lr=0.1), 5)
    with pytest.raises(ValueError, match="steps"):
        optimization_path(rosenbrock, [0.0, 0.0], lambda p: SGD(p, lr=0.1), 0)
    with pytest.raises(TypeError, match="make_optimizer must return"):
        optimization_path(rosenbrock, [0.0, 0.0], lambda p: p, 5)


def test_rotated_quadratic_has_the_same_values_along_rotated_points():
    # f_α(R(α)ᵀ p) = f_0(p): the rotation only turns the bowl; angle 0 is the plain formula.
    rng = np.random.default_rng(0)
    p = rng.normal(size=(2, 50))
    assert np.array_equal(quadratic(p, angle=0.0), 0.5 * (p[0] ** 2 + 100 * p[1] ** 2))
    alpha = 0.7
    c, s = np.cos(alpha), np.sin(alpha)
    q = np.stack([c * p[0] - s * p[1], s * p[0] + c * p[1]])  # R(α)ᵀ p
    np.testing.assert_allclose(quadratic(q, angle=alpha), quadratic(p), rtol=1e-12)
    # The Hessian of the rotated bowl keeps the eigenvalues 1 and κ.
    hessian = torch.autograd.functional.hessian(
        lambda z: quadratic(z, condition=100.0, angle=alpha), torch.zeros(2, dtype=torch.float64)
    )
    np.testing.assert_allclose(torch.linalg.eigvalsh(hessian).numpy(), [1.0, 100.0], rtol=1e-12)


@pytest.mark.parametrize(
    ("make", "equivariant"),
    [(lambda p: SGD(p, lr=0.01, momentum=0.9), True), (lambda p: Adam(p, lr=0.5), False)],
    ids=["momentum", "Adam"],
)
def test_momentum_is_rotation_equivariant_and_adam_is_not(make, equivariant):
    # On the rotated bowl from the rotated start, a rotation-equivariant method follows the
    # rotated path and ends at the same f; Adam (per coordinate) does not: the chapter's ablation.
    alpha = np.pi / 4
    c, s = np.cos(alpha), np.sin(alpha)
    start = np.array([-10.0, 1.0])
    aligned = optimization_path(quadratic, start, make, 100)
    rotated_start = [c * start[0] - s * start[1], s * start[0] + c * start[1]]
    rotated = optimization_path(lambda p: quadratic(p, angle=alpha), rotated_start, make, 100)
    x, y = rotated[:, 0], rotated[:, 1]
    back = np.stack([c * x + s * y, c * y - s * x], axis=1)  # R(α) p: back to the aligned frame
    gap = np.abs(back - aligned).max()
    if equivariant:
        assert gap <= 1e-12
    else:
        assert gap > 1e-2


@pytest.mark.parametrize(
    "make",
    [
        lambda groups: SGD(groups, lr=1.0),
        lambda groups: SGD(groups, lr=1.0, momentum=0.9, nesterov=True),
        lambda groups: Adam(groups, amsgrad=True),
    ],
    ids=["SGD", "Nesterov", "AMSGrad"],
)
def test_learning_rate_sweep_equals_separate_runs_bit_for_bit(make):
    rates = [1e-4, 1e-3, 2e-3, 0.05, 3.0]
    paths = learning_rate_sweep(rosenbrock, [-1.5, 2.0], make, rates, 60)
    assert paths.shape == (5, 61, 2)
    for lr, path in zip(rates, paths, strict=True):
        alone = optimization_path(
            rosenbrock, [-1.5, 2.0], lambda p, lr=lr: make([{"params": p, "lr": lr}]), 60
        )
        assert np.array_equal(path, alone, equal_nan=True)
    assert not np.array_equal(paths[0], paths[1])  # the rates do give different runs


def test_a_diverging_rate_does_not_disturb_the_other_runs_of_a_sweep():
    # Gradient descent at 2e-3 and above blows up on Rosenbrock; inf and NaN stay in their run.
    sgd = lambda groups: SGD(groups, lr=1.0)  # noqa: E731
    paths = learning_rate_sweep(rosenbrock, [-1.5, 2.0], sgd, [1e-3, 0.05], 100)
    assert np.isfinite(paths[0]).all() and not np.isfinite(paths[1, -1]).all()
    alone = optimization_path(rosenbrock, [-1.5, 2.0], lambda p: SGD(p, lr=1e-3), 100)
    assert np.array_equal(paths[0], alone)


def test_learning_rate_sweep_refuses_bad_arguments():
    sgd = lambda groups: SGD(groups, lr=1.0)  # noqa: E731
    with pytest.raises(ValueError, match="learning_rates is empty"):
        learning_rate_sweep(quadratic, [1.0, 1.0], sgd, [], 5)
    with pytest.raises(ValueError, match="^learning_rates"):
        learning_rate_sweep(quadratic, [1.0, 1.0], sgd, [0.1, -0.1], 5)
    with pytest.raises(TypeError, match="^learning_rates"):
        learning_rate_sweep(quadratic, [1.0, 1.0], sgd, ["0.1"], 5)
    with pytest.raises(ValueError, match="one value per point"):
        learning_rate_sweep(lambda p: p.sum(), [1.0, 1.0], sgd, [0.1, 0.2], 5)
    with pytest.raises(ValueError, match="start must be a 1-D point"):
        learning_rate_sweep(quadratic, [[1.0, 1.0]], sgd, [0.1], 5)
    with pytest.raises(ValueError, match="steps"):
        learning_rate_sweep(quadratic, [1.0, 1.0], sgd, [0.1], 0)
    with pytest.raises(TypeError, match="make_optimizer must return"):
        learning_rate_sweep(quadratic, [1.0, 1.0], lambda groups: groups, [0.1], 5)
