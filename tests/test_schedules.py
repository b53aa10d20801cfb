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
    assert used == expected  # float for float
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


# ------------------------------------------------------------------ the notes' schedulers
class NotesNoamScheduler:
    """The notes' ``CustomLRScheduler``: sets the rate only inside ``step()``, no state_dict."""

    def __init__(self, optimizer, warmup_steps=1000, d_model=512):
        self.optimizer = optimizer
        self.warmup_steps = warmup_steps
        self.d_model = d_model
        self.step_num = 0

    def step(self):
        self.step_num += 1
        lr = self.d_model ** (-0.5) * min(
            self.step_num ** (-0.5), self.step_num * self.warmup_steps ** (-1.5)
        )
        for param_group in self.optimizer.param_groups:
            param_group["lr"] = lr
        return lr


class NotesCosineAnnealingWarmRestarts:
    """The notes' version: the rate from ``T_cur``, then ``T_cur += 1``; no state_dict."""

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0):
        self.optimizer = optimizer
        self.T_0 = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = 0
        self.T_i = T_0
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]

    def step(self):
        if self.T_cur == self.T_i:
            self.T_cur = 0
            self.T_i *= self.T_mult
        for param_group, base_lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            param_group["lr"] = (
                self.eta_min
                + (base_lr - self.eta_min) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
            )
        self.T_cur += 1


def test_pitfall_notes_noam_first_step_uses_optimizer_lr_and_cannot_resume():
    # Defect: stepped after optimizer.step(), as PyTorch schedulers are, the notes' scheduler
    # lets the first update run at the optimizer's own lr, 1e-3 instead of
    # eta(1) = 512^-0.5 * 1000^-1.5 = 1.4e-6 (715.5 times larger), and every later step one late.
    eta = [noam(s, 512, 1000) for s in range(1, 7)]
    opt = optimizer(Adam, lrs=(1e-3,))
    notes = [lrs[0] for lrs in lrs_used(opt, NotesNoamScheduler(opt), 6)]
    assert notes[0] == 1e-3 and round(notes[0] / eta[0], 1) == 715.5
    assert all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(notes[1:], eta, strict=False))
    # ... and it cannot be checkpointed: rebuilding it restarts the warm-up at eta(1).
    assert not hasattr(NotesNoamScheduler(opt), "state_dict")
    rebuilt = NotesNoamScheduler(opt)
    rebuilt.step()
    assert math.isclose(opt.param_groups[0]["lr"], eta[0], rel_tol=1e-12)  # not eta(7)

    # Fix: NoamLR sets eta(1) before the first step and resumes exactly from its state_dict.
    opt = optimizer(Adam, lrs=(1e-3,))
    ours = [lrs[0] for lrs in lrs_used(opt, NoamLR(opt, d_model=512, warmup_steps=1000), 6)]
    assert ours == eta
    opt = optimizer(Adam, lrs=(1e-3,))
    scheduler = NoamLR(opt, d_model=512, warmup_steps=1000)
    first = [lrs[0] for lrs in lrs_used(opt, scheduler, 3)]
    resumed_opt = optimizer(Adam, lrs=(1e-3,))
    resumed = NoamLR(resumed_opt, d_model=512, warmup_steps=1000)
    resumed_opt.load_state_dict(opt.state_dict())
    resumed.load_state_dict(scheduler.state_dict())
    assert first + [lrs[0] for lrs in lrs_used(resumed_opt, resumed, 3)] == eta


@pytest.mark.parametrize("T_mult", [1, 2])
def test_pitfall_notes_cosine_restarts_one_step_late_and_cannot_resume(T_mult):
    # Defect: the notes' class is one step behind PyTorch's: the base rate is used twice
    # (0.1, 0.1, 0.0905, ... for T_0 = 5) and every restart comes one step late.
    n = 40
    notes_opt = optimizer(SGD, lrs=(0.1,))
    notes = [
        lrs[0]
        for lrs in lrs_used(notes_opt, NotesCosineAnnealingWarmRestarts(notes_opt, 5, T_mult), n)
    ]
    torch_opt = optimizer(torch.optim.SGD, lrs=(0.1,))
    reference = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(torch_opt, 5, T_mult)
    expected = [lrs[0] for lrs in lrs_used(torch_opt, reference, n)]
    assert notes[:3] == [0.1, 0.1, notes[2]] and expected[:2] == [0.1, notes[2]]
    assert math.isclose(notes[2], 0.05 * (1 + math.cos(math.pi / 5)), rel_tol=1e-15)
    assert notes == [0.1] + expected[:-1]  # the whole schedule, one step late
    restarts = [t for t in range(1, n) if expected[t] > expected[t - 1]]
    notes_restarts = [t for t in range(2, n) if notes[t] > notes[t - 1]]
    assert notes_restarts == [t + 1 for t in restarts] and restarts[0] == 5
    assert not hasattr(NotesCosineAnnealingWarmRestarts(notes_opt, 5), "state_dict")

    # Fix: companion's class equals PyTorch's float for float and resumes from its state_dict.
    ours_opt = optimizer(SGD, lrs=(0.1,))
    ours = [
        lrs[0] for lrs in lrs_used(ours_opt, CosineAnnealingWarmRestarts(ours_opt, 5, T_mult), n)
    ]
    assert ours == expected and ours != notes
    opt = optimizer(SGD, lrs=(0.1,))
    scheduler = CosineAnnealingWarmRestarts(opt, 5, T_mult)
    first = [lrs[0] for lrs in lrs_used(opt, scheduler, 17)]
    resumed_opt = optimizer(SGD, lrs=(0.1,))
    resumed = CosineAnnealingWarmRestarts(resumed_opt, 5, T_mult)
    resumed_opt.load_state_dict(opt.state_dict())
    resumed.load_state_dict(scheduler.state_dict())
    assert first + [lrs[0] for lrs in lrs_used(resumed_opt, resumed, n - 17)] == expected
