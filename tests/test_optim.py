import copy
import io

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from companion.optim import SGD, Adam, optimization_path, quadratic, rosenbrock

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
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5}


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


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("ours", "theirs", "kwargs"), CASES, ids=CASE_IDS)
def test_optimizer_matches_torch_for_200_steps(ours, theirs, kwargs, dtype):
    model, X, y = problem(dtype)
    reference = copy.deepcopy(model)
    start = copy.deepcopy(model)
    train(model, ours(model.parameters(), **kwargs), X, y, 200)
    train(reference, theirs(reference.parameters(), foreach=False, **kwargs), X, y, 200)
    assert max_difference(model, start) > 1e-2  # the parameters really moved
    assert max_difference(model, reference) <= TOLERANCE[dtype]


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
        assert abs(loss.item() - ref_loss.item()) <= 1e-12
    assert max_difference(model, reference) <= 1e-12
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
    assert max_difference(model, straight) <= 1e-12


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
    assert max_difference(model, reference) <= 1e-12


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
