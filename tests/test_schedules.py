import math

import pytest
import torch
from torch import nn

from companion.optim import SGD, Adam
from companion.schedules import CosineAnnealingWarmRestarts, NoamLR

BASE_LRS = (0.1, 0.05, 1.0)


def optimizer(kind=SGD, lrs=BASE_LRS):
    """An optimizer with one parameter group per learning rate (no gradients: steps are no-ops)."""
    groups = [{"params": [nn.Parameter(torch.zeros(2))], "lr": lr} for lr in lrs]
    return kind(groups, lr=lrs[0])


def lrs_used(opt, scheduler, n_steps):
    """The learning rates of optimizer steps 1..n, one list per step, in training-loop order."""
    used = []
    for _ in range(n_steps):
        used.append([group["lr"] for group in opt.param_groups])
        opt.step()
        scheduler.step()
    return used


def noam(s, d_model, warmup, scale=1.0):
    return scale * d_model**-0.5 * min(s**-0.5, s * warmup**-1.5)


@pytest.mark.parametrize(("d_model", "warmup", "scale"), [(512, 4000, 1.0), (64, 100, 2.0)])
def test_noam_matches_its_closed_form_over_5000_steps(d_model, warmup, scale):
    opt = optimizer(Adam)
    used = lrs_used(opt, NoamLR(opt, d_model, warmup, scale=scale), 5000)
    for s, lrs in enumerate(used, start=1):
        assert all(abs(lr - noam(s, d_model, warmup, scale)) <= 1e-12 for lr in lrs)


def test_noam_peaks_at_step_warmup_steps():
    opt = optimizer(Adam, lrs=(1e-3,))
    used = [lrs[0] for lrs in lrs_used(opt, NoamLR(opt, d_model=64, warmup_steps=300), 1000)]
    assert used.index(max(used)) + 1 == 300
    assert math.isclose(max(used), (64 * 300) ** -0.5, rel_tol=1e-12)
    assert all(a < b for a, b in zip(used[:299], used[1:300], strict=True))  # linear warm-up
    assert all(a > b for a, b in zip(used[299:-1], used[300:], strict=True))  # then 1/sqrt(s)


def test_noam_first_rate_is_finite_positive_and_used_once():
    # Construction calls step() with last_epoch = 0: no 0 ** -0.5, and s = 1 is not repeated.
    opt = optimizer(Adam, lrs=(1e-3,))
    scheduler = NoamLR(opt, d_model=512, warmup_steps=4000)
    assert scheduler.last_epoch == 0
    first = opt.param_groups[0]["lr"]
    assert math.isfinite(first) and first > 0 and first == noam(1, 512, 4000)
    opt.step()
    scheduler.step()
    assert opt.param_groups[0]["lr"] == noam(2, 512, 4000) == 2 * first


def test_noam_ignores_the_optimizer_lr_and_sets_every_group():
    opt = optimizer(Adam)
    scheduler = NoamLR(opt, d_model=16, warmup_steps=10)
    assert scheduler.get_last_lr() == [noam(1, 16, 10)] * len(BASE_LRS)


@pytest.mark.parametrize("T_mult", [1, 2, 3])
@pytest.mark.parametrize("eta_min", [0.0, 1e-3])
def test_cosine_restarts_match_torch_over_several_restarts(T_mult, eta_min):
    T_0 = 5
    n_steps = 5 * T_0 if T_mult == 1 else T_0 * (T_mult**4 - 1) // (T_mult - 1) + 3  # 4 restarts
    ours_opt = optimizer(SGD)
    theirs_opt = optimizer(torch.optim.SGD)
    ours = CosineAnnealingWarmRestarts(ours_opt, T_0, T_mult=T_mult, eta_min=eta_min)
    theirs = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        theirs_opt, T_0, T_mult=T_mult, eta_min=eta_min
    )
    used = lrs_used(ours_opt, ours, n_steps)
    expected = lrs_used(theirs_opt, theirs, n_steps)
    for lrs, ref in zip(used, expected, strict=True):
        assert max(abs(a - b) for a, b in zip(lrs, ref, strict=True)) <= 1e-12
    restarts = [t for t in range(1, n_steps) if used[t][0] > used[t - 1][0]]
    assert len(restarts) >= 3 and all(used[t] == list(BASE_LRS) for t in restarts)


def test_cosine_restarts_reach_eta_min_only_in_the_limit_and_restart_at_base_lr():
    opt = optimizer(SGD, lrs=(1.0,))
    used = [lrs[0] for lrs in lrs_used(opt, CosineAnnealingWarmRestarts(opt, 4, 2, 0.1), 30)]
    # Cycles of 4, 8, 16 steps start at steps 0, 4, 12, 28 (0-based) with the base rate.
    assert [t for t, lr in enumerate(used) if lr == 1.0] == [0, 4, 12, 28]
    assert min(used) > 0.1 and math.isclose(used[4 + 4], 0.1 + 0.9 / 2, rel_tol=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        lambda opt: NoamLR(opt, d_model=32, warmup_steps=20, scale=0.5),
        lambda opt: CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2, eta_min=0.01),
    ],
    ids=["NoamLR", "CosineAnnealingWarmRestarts"],
)
def test_resume_from_state_dict_reproduces_uninterrupted_schedule(make):
    opt = optimizer(Adam)
    straight = lrs_used(opt, make(opt), 60)

    opt = optimizer(Adam)
    scheduler = make(opt)
    first_half = lrs_used(opt, scheduler, 30)
    opt_state, sched_state = opt.state_dict(), scheduler.state_dict()

    resumed_opt = optimizer(Adam)
    resumed = make(resumed_opt)  # construct the scheduler first, then load both states
    resumed_opt.load_state_dict(opt_state)
    resumed.load_state_dict(sched_state)
    assert first_half + lrs_used(resumed_opt, resumed, 30) == straight


def test_get_lr_outside_step_returns_the_current_rates_without_warning():
    opt = optimizer(SGD)
    scheduler = CosineAnnealingWarmRestarts(opt, T_0=4)
    lrs_used(opt, scheduler, 3)
    assert scheduler.get_lr() == scheduler.get_last_lr()  # pytest turns warnings into errors


BAD_ARGUMENTS = [
    (NoamLR, {"d_model": 0, "warmup_steps": 10}, ValueError, "d_model"),
    (NoamLR, {"d_model": -8, "warmup_steps": 10}, ValueError, "d_model"),
    (NoamLR, {"d_model": 8.5, "warmup_steps": 10}, TypeError, "d_model"),
    (NoamLR, {"d_model": 8, "warmup_steps": 0}, ValueError, "warmup_steps"),
    (NoamLR, {"d_model": 8, "warmup_steps": 10.0}, TypeError, "warmup_steps"),
    (NoamLR, {"d_model": 8, "warmup_steps": 10, "scale": 0.0}, ValueError, "scale"),
    (CosineAnnealingWarmRestarts, {"T_0": 0}, ValueError, "T_0"),
    (CosineAnnealingWarmRestarts, {"T_0": 2.5}, TypeError, "T_0"),
    (CosineAnnealingWarmRestarts, {"T_0": 5, "T_mult": 0}, ValueError, "T_mult"),
    (CosineAnnealingWarmRestarts, {"T_0": 5, "T_mult": 1.5}, TypeError, "T_mult"),
    (CosineAnnealingWarmRestarts, {"T_0": 5, "eta_min": -1e-3}, ValueError, "eta_min"),
    (CosineAnnealingWarmRestarts, {"T_0": 5, "eta_min": float("nan")}, ValueError, "eta_min"),
]


@pytest.mark.parametrize(
    ("scheduler", "kwargs", "error", "name"),
    BAD_ARGUMENTS,
    ids=[f"{s.__name__}-{k}" for s, k, _, _ in BAD_ARGUMENTS],
)
def test_bad_arguments_raise_an_error_naming_the_argument(scheduler, kwargs, error, name):
    opt = optimizer()
    with pytest.raises(error, match=f"^{name}"):
        scheduler(opt, **kwargs)
    assert "initial_lr" not in opt.param_groups[0]  # refused before touching the optimizer
