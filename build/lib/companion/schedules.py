r"""Learning-rate schedules: Transformer warm-up and cosine annealing with restarts (chapter 4).

Both are :class:`torch.optim.lr_scheduler.LRScheduler` subclasses and follow its protocol: the
scheduler sets every parameter group's ``lr`` when it is constructed (the rate of the first
optimiser step) and again at each ``scheduler.step()``, which is called *after*
``optimizer.step()``. After :math:`k` calls of ``scheduler.step()`` the attribute ``last_epoch``
is :math:`k`. Each schedule is a closed-form function of ``last_epoch``, so ``get_lr()`` can be
called at any time and ``state_dict`` / ``load_state_dict`` resume a schedule exactly.
"""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import LRScheduler

from . import _validate

__all__ = ["NoamLR", "CosineAnnealingWarmRestarts"]


class NoamLR(LRScheduler):
    r"""The Transformer's schedule (Vaswani et al., 2017): linear warm-up, then :math:`1/\sqrt{s}`.

    .. math::

        \eta(s) = \text{scale} \cdot d_\text{model}^{-1/2}
            \cdot \min\!\big(s^{-1/2},\ s \cdot w^{-3/2}\big),
        \qquad s = 1, 2, 3, \ldots

    where :math:`s` is the number of the optimiser step the rate is used for and :math:`w` is
    ``warmup_steps``. The rate grows linearly for :math:`s \le w`, peaks at :math:`s = w` with
    :math:`\eta(w) = \text{scale} \cdot (d_\text{model}\, w)^{-1/2}`, then decays as
    :math:`s^{-1/2}`.

    Step convention: :math:`s = \texttt{last\_epoch} + 1`. Constructing the scheduler sets
    ``last_epoch = 0`` and the rate :math:`\eta(1)` for the first optimiser step (finite: no
    :math:`0^{-1/2}`); after ``scheduler.step()`` has been called :math:`k` times, the next
    optimiser step uses :math:`\eta(k + 1)`. Every :math:`s` is used exactly once (unlike the
    common ``max(step, 1)`` convention, which uses :math:`\eta(1)` twice).

    The schedule sets the learning rate itself: the ``lr`` the optimiser was built with is
    ignored (PyTorch keeps it as ``initial_lr``), and every parameter group gets the same rate.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        The optimiser whose ``lr`` is set (Adam with ``betas=(0.9, 0.98)`` in the paper).
    d_model : int
        Width of the model, :math:`d_\text{model} > 0`.
    warmup_steps : int
        Length of the linear warm-up, :math:`w > 0` (4000 in the paper).
    last_epoch : int, default -1
        Index of the last scheduler step; leave at -1 except when resuming.
    scale : float, default 1.0
        Constant factor in front of the formula (keyword only), > 0.

    Raises
    ------
    TypeError
        If ``d_model`` or ``warmup_steps`` is not an int, or ``scale`` not a number.
    ValueError
        If ``d_model``, ``warmup_steps`` or ``scale`` is not positive.
    """

    def __init__(self, optimizer, d_model, warmup_steps, last_epoch=-1, *, scale=1.0):
        self.d_model = _validate.positive_int(d_model, "d_model")
        self.warmup_steps = _validate.positive_int(warmup_steps, "warmup_steps")
        self.scale = _validate.positive_float(scale, "scale")
        super().__init__(optimizer, last_epoch)

    def rate(self, s: int) -> float:
        r"""The learning rate :math:`\eta(s)` of optimiser step :math:`s \ge 1`."""
        return self.scale * self.d_model**-0.5 * min(s**-0.5, s * self.warmup_steps**-1.5)

    def get_lr(self) -> list[float]:
        r"""Rates for the next optimiser step, one per parameter group: :math:`\eta(s)`."""
        lr = self.rate(self.last_epoch + 1)
        return [lr for _ in self.optimizer.param_groups]


class CosineAnnealingWarmRestarts(LRScheduler):
    r"""Cosine annealing with warm restarts, SGDR (Loshchilov & Hutter, 2017).

    .. math::

        \eta_t = \eta_\min + \tfrac12 (\eta_\max - \eta_\min)
            \Big(1 + \cos\Big(\pi \frac{T_\text{cur}}{T_i}\Big)\Big)

    where :math:`\eta_\max` is the parameter group's initial ``lr``, :math:`T_i` is the length
    of the current cycle and :math:`T_\text{cur} \in \{0, \ldots, T_i - 1\}` the number of steps
    since the last restart. The first cycle has :math:`T_0` steps and each restart multiplies the
    length by :math:`T_\text{mult}`, so cycle :math:`i` starts at step
    :math:`T_0 (T_\text{mult}^i - 1) / (T_\text{mult} - 1)` (at :math:`i\,T_0` when
    :math:`T_\text{mult} = 1`); there the rate jumps back to :math:`\eta_\max`.

    Step :math:`t` is ``last_epoch``: construction gives :math:`t = 0` (:math:`\eta_0 =
    \eta_\max`) for the first optimiser step and each ``scheduler.step()`` adds one. The values
    equal those of :class:`torch.optim.lr_scheduler.CosineAnnealingWarmRestarts` stepped without
    arguments; here :math:`(T_\text{cur}, T_i)` are recomputed from :math:`t` with integer
    arithmetic instead of being carried from step to step.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        The optimiser whose groups' ``lr`` are annealed; each group from its own initial ``lr``.
    T_0 : int
        Length of the first cycle, in scheduler steps, > 0.
    T_mult : int, default 1
        Factor by which each cycle is longer than the one before, >= 1.
    eta_min : float, default 0.0
        The lowest rate :math:`\eta_\min \ge 0`.
    last_epoch : int, default -1
        Index of the last scheduler step; leave at -1 except when resuming.

    Raises
    ------
    TypeError
        If ``T_0`` or ``T_mult`` is not an int, or ``eta_min`` not a number.
    ValueError
        If ``T_0 <= 0``, ``T_mult < 1``, or ``eta_min`` is negative or not finite.
    """

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0, last_epoch=-1):
        self.T_0 = _validate.positive_int(T_0, "T_0")
        self.T_mult = _validate.positive_int(T_mult, "T_mult")
        self.eta_min = _validate.nonnegative_float(eta_min, "eta_min")
        super().__init__(optimizer, last_epoch)

    def cycle_position(self, t: int) -> tuple[int, int]:
        r"""Return :math:`(T_\text{cur}, T_i)` at step :math:`t \ge 0`."""
        if self.T_mult == 1:
            return t % self.T_0, self.T_0
        t_cur, t_i = t, self.T_0
        while t_cur >= t_i:  # skip whole cycles: O(log t) iterations
            t_cur -= t_i
            t_i *= self.T_mult
        return t_cur, t_i

    def get_lr(self) -> list[float]:
        r"""Rates for the next optimiser step, one per parameter group: :math:`\eta_t`."""
        t_cur, t_i = self.cycle_position(self.last_epoch)
        return [
            self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2
            for base_lr in self.base_lrs
        ]
