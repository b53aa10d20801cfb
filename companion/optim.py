r"""Stochastic gradient descent and Adam, written from their update equations (chapter 4).

Both optimisers subclass :class:`torch.optim.Optimizer`, so they plug into any PyTorch training
loop, learning-rate scheduler or checkpoint: ``zero_grad``, ``param_groups``, ``state_dict`` and
``load_state_dict`` are inherited. Only ``step`` is ours: one loop over the parameters, a few
in-place tensor operations per parameter, each one line of the algorithm in the class docstring.
They perform the floating-point operations of PyTorch's single-tensor implementation
(``foreach=False``, its default for CPU parameters) in the same order, so they reproduce
:class:`torch.optim.SGD` and :class:`torch.optim.Adam` bit for bit there (``torch.equal``, in
float32 and float64, Nesterov and AMSGrad included). PyTorch's ``fused=True`` kernels order the
operations differently and agree only to rounding.

:func:`learning_rate_sweep` runs one minimisation per learning rate, all at once, for the
chapter's learning-rate grids on :func:`quadratic` and :func:`rosenbrock`.
"""

from __future__ import annotations

import math

import torch

from . import _validate

__all__ = [
    "SGD",
    "Adam",
    "learning_rate_sweep",
    "optimization_path",
    "quadratic",
    "rosenbrock",
]


def _betas(betas) -> tuple[float, float]:
    """Return ``betas`` as a pair of floats, each in [0, 1)."""
    if not isinstance(betas, tuple | list) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2); got {betas!r}")
    checked = []
    for i, beta in enumerate(betas):
        beta = _validate.finite_float(beta, f"betas[{i}]")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"betas[{i}] must lie in [0, 1); got {beta}")
        checked.append(beta)
    return checked[0], checked[1]


def _dense_grad(param: torch.Tensor, optimizer: str) -> torch.Tensor:
    """Return ``param.grad``, refusing sparse gradients with a message that says what to do."""
    grad = param.grad
    if grad.is_sparse:
        raise TypeError(
            f"{optimizer} does not support sparse gradients (parameter of shape "
            f"{tuple(param.shape)}); use dense gradients, e.g. nn.Embedding(..., sparse=False), "
            "or torch.optim.SparseAdam"
        )
    return grad


class _Optimizer(torch.optim.Optimizer):
    """What SGD and Adam share: hyper-parameter checks for every group, and the closure."""

    @staticmethod
    def _check_hyperparameters(hp: dict) -> None:
        raise NotImplementedError

    def __init__(self, params, defaults: dict):
        self._check_hyperparameters(defaults)
        super().__init__(params, defaults)

    def add_param_group(self, param_group):
        """Add a parameter group, checking the hyper-parameters it overrides."""
        self._check_hyperparameters({**self.defaults, **param_group})
        super().add_param_group(param_group)

    @staticmethod
    def _evaluate(closure):
        """The loss from ``closure()``, computed with gradients enabled (None without one)."""
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()


class SGD(_Optimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum and L2 weight decay.

    .. math::

        \begin{aligned}
        &\textbf{input: } \eta \text{ (lr)},\ \mu \text{ (momentum)},\
            \lambda \text{ (weight decay)},\ \theta_0 \text{ (params)},\
            f(\theta) \text{ (objective)},\ \textit{nesterov} \\
        &\textbf{for } t = 1, 2, \ldots \textbf{ do} \\
        &\qquad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1}) \\
        &\qquad \textbf{if } \lambda \neq 0: \quad g_t \leftarrow g_t + \lambda \theta_{t-1} \\
        &\qquad \textbf{if } \mu \neq 0: \\
        &\qquad\qquad b_t \leftarrow g_t \ \textbf{ if } t = 1
            \textbf{ else } \mu b_{t-1} + g_t \\
        &\qquad\qquad g_t \leftarrow g_t + \mu b_t \ \textbf{ if } \textit{nesterov}
            \textbf{ else } b_t \\
        &\qquad \theta_t \leftarrow \theta_{t-1} - \eta g_t
        \end{aligned}

    This is :class:`torch.optim.SGD` with ``dampening=0`` and ``maximize=False``: the momentum
    buffer :math:`b` accumulates raw gradients (it is not an exponential average), so with
    momentum :math:`\mu` a constant gradient moves :math:`\theta` by up to
    :math:`\eta g / (1 - \mu)` per step.

    Parameters
    ----------
    params : iterable of torch.Tensor or of dict
        The parameters to optimise, or dicts defining parameter groups (each may override any
        of the keyword arguments below).
    lr : float
        Learning rate :math:`\eta \ge 0`.
    momentum : float, default 0.0
        Momentum factor :math:`\mu \ge 0`; 0 is plain gradient descent.
    nesterov : bool, default False
        Use Nesterov momentum (look ahead along the buffer); requires ``momentum > 0``.
    weight_decay : float, default 0.0
        L2 penalty :math:`\lambda \ge 0`, added to the gradient.

    Raises
    ------
    TypeError
        If a hyper-parameter is not a number, or (in :meth:`step`) a gradient is sparse.
    ValueError
        If ``lr``, ``momentum`` or ``weight_decay`` is negative or not finite, or
        ``nesterov=True`` with ``momentum == 0``.

    Notes
    -----
    State per parameter (``optimizer.state[p]``): ``"momentum_buffer"`` (:math:`b_t`), present
    only when ``momentum > 0`` and after the parameter's first gradient. Parameters whose
    ``grad`` is ``None`` are skipped and keep no state.
    """

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "nesterov": nesterov,
            "weight_decay": weight_decay,
        }
        super().__init__(params, defaults)

    @staticmethod
    def _check_hyperparameters(hp: dict) -> None:
        _check_sgd_hyperparameters(hp)

    @torch.no_grad()
    def step(self, closure=None):
        """Take one optimisation step; return ``closure()`` if a closure is given, else None.

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss; called with gradients enabled.
        """
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = _dense_grad(p, "SGD")
                if wd != 0:
                    g = g.add(p, alpha=wd)  # g ← g + λθ  (a new tensor: p.grad is untouched)
                if mu != 0:
                    state = self.state[p]
                    b = state.get("momentum_buffer")
                    if b is None:
                        b = state["momentum_buffer"] = g.clone()  # b₁ ← g₁
                    else:
                        b.mul_(mu).add_(g)  # b ← μb + g
                    g = g.add(b, alpha=mu) if group["nesterov"] else b  # g ← g + μb  or  b
                p.add_(g, alpha=-lr)  # θ ← θ − ηg
        return loss


def _check_sgd_hyperparameters(hp: dict) -> None:
    """lr, momentum, weight_decay >= 0; nesterov a bool that needs momentum > 0."""
    _validate.nonnegative_float(hp["lr"], "lr")
    momentum = _validate.nonnegative_float(hp["momentum"], "momentum")
    _validate.nonnegative_float(hp["weight_decay"], "weight_decay")
    if not isinstance(hp["nesterov"], bool):
        raise TypeError(f"nesterov must be True or False; got {type(hp['nesterov']).__name__}")
    if hp["nesterov"] and momentum == 0:
        raise ValueError("nesterov=True needs momentum > 0; got momentum=0")


class Adam(_Optimizer):
    r"""Adam (Kingma & Ba, 2015): momentum on the gradient, step sizes from its running square.

    .. math::

        \begin{aligned}
        &\textbf{input: } \eta \text{ (lr)},\ \beta_1, \beta_2 \text{ (betas)},\
            \epsilon \text{ (eps)},\ \lambda \text{ (weight decay)},\
            \theta_0 \text{ (params)},\ f(\theta) \text{ (objective)},\ \textit{amsgrad} \\
        &\textbf{initialise: } m_0 \leftarrow 0,\ v_0 \leftarrow 0,\
            v^{\max}_0 \leftarrow 0 \\
        &\textbf{for } t = 1, 2, \ldots \textbf{ do} \\
        &\qquad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1}) \\
        &\qquad \textbf{if } \lambda \neq 0: \quad g_t \leftarrow g_t + \lambda \theta_{t-1} \\
        &\qquad m_t \leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        &\qquad v_t \leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        &\qquad \hat m_t \leftarrow m_t / (1 - \beta_1^t) \\
        &\qquad \textbf{if } \textit{amsgrad}: \quad
            v^{\max}_t \leftarrow \max(v^{\max}_{t-1}, v_t), \quad
            \hat v_t \leftarrow v^{\max}_t / (1 - \beta_2^t) \\
        &\qquad \textbf{else}: \quad \hat v_t \leftarrow v_t / (1 - \beta_2^t) \\
        &\qquad \theta_t \leftarrow \theta_{t-1} - \eta\, \hat m_t \big/ \big(\sqrt{\hat v_t}
            + \epsilon\big)
        \end{aligned}

    All operations on :math:`g, m, v` are element-wise. This is :class:`torch.optim.Adam` with
    its defaults (``maximize=False``, L2 weight decay added to the gradient, not the decoupled
    decay of AdamW) and the same order of floating-point operations: :math:`\epsilon` is added
    to :math:`\sqrt{v_t} / \sqrt{1 - \beta_2^t}`, and AMSGrad keeps the maximum of the *raw*
    :math:`v_t` and bias-corrects it afterwards, as PyTorch does.

    Parameters
    ----------
    params : iterable of torch.Tensor or of dict
        The parameters to optimise, or dicts defining parameter groups (each may override any
        of the keyword arguments below).
    lr : float, default 1e-3
        Learning rate :math:`\eta \ge 0`.
    betas : tuple of two floats, default (0.9, 0.999)
        Decay rates :math:`(\beta_1, \beta_2)` of the running averages, each in :math:`[0, 1)`.
    eps : float, default 1e-8
        :math:`\epsilon \ge 0`, added to the denominator.
    weight_decay : float, default 0.0
        L2 penalty :math:`\lambda \ge 0`, added to the gradient.
    amsgrad : bool, default False
        Use AMSGrad (Reddi et al., 2018): never let the denominator shrink.

    Raises
    ------
    TypeError
        If a hyper-parameter is not a number, or (in :meth:`step`) a gradient is sparse or a
        parameter complex.
    ValueError
        If ``lr``, ``eps`` or ``weight_decay`` is negative or not finite, or ``betas`` is not a
        pair of numbers in :math:`[0, 1)`.

    Notes
    -----
    State per parameter (``optimizer.state[p]``), created at its first gradient: ``"step"``
    (:math:`t`, a Python int), ``"exp_avg"`` (:math:`m_t`), ``"exp_avg_sq"`` (:math:`v_t`) and,
    with AMSGrad, ``"max_exp_avg_sq"`` (:math:`v^{\max}_t`). Parameters whose ``grad`` is
    ``None`` are skipped: their :math:`t` does not advance.
    """

    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False
    ):
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
        }
        super().__init__(params, defaults)

    @staticmethod
    def _check_hyperparameters(hp: dict) -> None:
        _check_adam_hyperparameters(hp)

    @torch.no_grad()
    def step(self, closure=None):
        """Take one optimisation step; return ``closure()`` if a closure is given, else None.

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss; called with gradients enabled.
        """
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = _dense_grad(p, "Adam")
                state = self.state[p]
                if not state:
                    self._init_state(p, state, group["amsgrad"])
                t = state["step"] = int(state["step"]) + 1  # int() also reads torch's tensor t
                m, v = state["exp_avg"], state["exp_avg_sq"]

                if wd != 0:
                    g = g.add(p, alpha=wd)  # g ← g + λθ  (a new tensor: p.grad is untouched)
                m.lerp_(g, 1 - beta1)  # m ← β1 m + (1 − β1) g, computed as m + (1 − β1)(g − m)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v ← β2 v + (1 − β2) g²
                if group["amsgrad"]:
                    v = torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])

                bias_correction1 = 1 - beta1**t
                bias_correction2 = 1 - beta2**t
                # θ ← θ − η m̂ / (√v̂ + ε), with m̂ = m / (1 − β1ᵗ) and √v̂ = √v / √(1 − β2ᵗ)
                denom = v.sqrt().div_(math.sqrt(bias_correction2)).add_(eps)
                p.addcdiv_(m, denom, value=-lr / bias_correction1)
        return loss

    @staticmethod
    def _init_state(p: torch.Tensor, state: dict, amsgrad: bool) -> None:
        if torch.is_complex(p):
            raise TypeError(
                f"Adam here supports real parameters only; got a {p.dtype} parameter of shape "
                f"{tuple(p.shape)} (torch.optim.Adam handles complex ones)"
            )
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if amsgrad:
            state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)


def _check_adam_hyperparameters(hp: dict) -> None:
    """lr, eps, weight_decay >= 0; betas in [0, 1); amsgrad a bool."""
    _validate.nonnegative_float(hp["lr"], "lr")
    _betas(hp["betas"])
    _validate.nonnegative_float(hp["eps"], "eps")
    _validate.nonnegative_float(hp["weight_decay"], "weight_decay")
    if not isinstance(hp["amsgrad"], bool):
        raise TypeError(f"amsgrad must be True or False; got {type(hp['amsgrad']).__name__}")


def quadratic(p, condition: float = 100.0, angle: float = 0.0):
    r"""An ill-conditioned bowl, :math:`f(x, y) = \tfrac12 (u^2 + \kappa w^2)`, optionally rotated.

    .. math::

        \begin{pmatrix} u \\ w \end{pmatrix} =
        \begin{pmatrix} \cos\alpha & \sin\alpha \\ -\sin\alpha & \cos\alpha \end{pmatrix}
        \begin{pmatrix} x \\ y \end{pmatrix}

    With :math:`\alpha = 0` this is :math:`\tfrac12 (x^2 + \kappa y^2)`, whose Hessian is
    :math:`\operatorname{diag}(1, \kappa)`: the curvature along :math:`y` is :math:`\kappa`
    times that along :math:`x`. Gradient descent is stable only for :math:`\eta < 2/\kappa`,
    and at such a step it shrinks :math:`x` by only a factor :math:`(1 - \eta)` per step. A
    rotation by :math:`\alpha` keeps the eigenvalues :math:`1, \kappa` of the Hessian and turns
    its eigenvectors away from the coordinate axes.

    Parameters
    ----------
    p : torch.Tensor or ndarray of shape (2, ...)
        The point(s) :math:`(x, y)`; extra dimensions evaluate a grid.
    condition : float, default 100
        The condition number :math:`\kappa \ge 1`.
    angle : float, default 0
        The rotation :math:`\alpha` in radians (keyword; 0 is exactly the unrotated formula).

    Returns
    -------
    torch.Tensor or ndarray
        :math:`f(x, y)`, shape ``p.shape[1:]``.
    """
    if angle == 0:
        return 0.5 * (p[0] ** 2 + condition * p[1] ** 2)
    c, s = math.cos(angle), math.sin(angle)
    u, w = c * p[0] + s * p[1], c * p[1] - s * p[0]
    return 0.5 * (u**2 + condition * w**2)


def rosenbrock(p, a: float = 1.0, b: float = 100.0):
    r"""Rosenbrock's banana valley, :math:`f(x, y) = (a - x)^2 + b\,(y - x^2)^2`.

    The minimum :math:`f = 0` lies at :math:`(a, a^2)` at the bottom of a long, curved, flat
    valley with steep walls: easy to fall into, slow to follow.

    Parameters
    ----------
    p : torch.Tensor or ndarray of shape (2, ...)
        The point(s) :math:`(x, y)`; extra dimensions evaluate a grid.
    a, b : float, default 1 and 100

    Returns
    -------
    torch.Tensor or ndarray
        :math:`f(x, y)`, shape ``p.shape[1:]``.
    """
    return (a - p[0]) ** 2 + b * (p[1] - p[0] ** 2) ** 2


def _check_path_arguments(f, start, make_optimizer, steps):
    """Validate what :func:`optimization_path` and :func:`learning_rate_sweep` share.

    Returns ``start`` as a finite 1-D float array and ``steps`` as a positive int.
    """
    if not callable(f) or not callable(make_optimizer):
        raise TypeError("f and make_optimizer must be callable")
    start = _validate.float_array(start, "start")
    if start.ndim != 1 or start.size == 0:
        raise ValueError(f"start must be a 1-D point; got shape {start.shape}")
    _validate.finite(start, "start")
    return start, _validate.positive_int(steps, "steps")


def optimization_path(f, start, make_optimizer, steps: int):
    r"""Minimise ``f`` from ``start`` with an optimiser; return every iterate.

    Runs :math:`\theta_{t} = \operatorname{step}(\theta_{t-1}, \nabla f(\theta_{t-1}))` for
    :math:`t = 1 \dots` ``steps`` in float64, with gradients from autograd.

    Parameters
    ----------
    f : callable
        Maps a 1-D float64 tensor :math:`\theta` to a scalar tensor.
    start : array_like of shape (d,)
        :math:`\theta_0`.
    make_optimizer : callable
        Builds the optimiser from a list of parameters, e.g. ``lambda p: Adam(p, lr=0.1)``.
    steps : int
        Number of optimiser steps.

    Returns
    -------
    ndarray of shape (steps + 1, d)
        :math:`\theta_0, \dots, \theta_\text{steps}`. Iterates of a diverging run become
        inf or NaN; they are returned as they are.

    Raises
    ------
    TypeError
        If ``f`` or ``make_optimizer`` is not callable, or ``make_optimizer`` does not return a
        :class:`torch.optim.Optimizer`.
    ValueError
        If ``start`` is not a finite 1-D array or ``steps`` is not a positive int.
    """
    start, steps = _check_path_arguments(f, start, make_optimizer, steps)
    theta = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer([theta])
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"make_optimizer must return a torch.optim.Optimizer; got {optimizer!r}")
    path = [theta.detach().clone()]
    for _ in range(steps):
        optimizer.zero_grad()
        f(theta).backward()
        optimizer.step()
        path.append(theta.detach().clone())
    return torch.stack(path).numpy()


def learning_rate_sweep(f, start, make_optimizer, learning_rates, steps: int):
    r"""Minimise ``f`` from ``start`` once per learning rate, all runs advancing together.

    For every :math:`\eta_k` of ``learning_rates`` this computes the same iterates as
    ``optimization_path(f, start, lambda p: make_optimizer([{"params": p, "lr": eta_k}]),
    steps)``: each run is one parameter group with its own ``lr`` and its own state, and one
    backward pass of :math:`\sum_k f(\theta^{(k)})` gives every run its own gradient
    :math:`\nabla f(\theta^{(k)})`, because the terms share no parameters. One optimiser step
    then advances all runs, which is much faster than one optimiser per rate.

    Parameters
    ----------
    f : callable
        Maps a float64 tensor of shape ``(d, n)`` (``n`` points as columns) to the ``n``
        values, like :func:`quadratic` and :func:`rosenbrock`.
    start : array_like of shape (d,)
        :math:`\theta_0`, the same for every run.
    make_optimizer : callable
        Builds the optimiser from a list of parameter groups, each holding its ``lr``, e.g.
        ``lambda groups: SGD(groups, lr=1.0, momentum=0.9)`` (the groups' rates override
        ``lr``). Only element-wise optimisers keep the runs independent (SGD, Adam).
    learning_rates : sequence of float
        The rates :math:`\eta_k > 0`.
    steps : int
        Number of optimiser steps.

    Returns
    -------
    ndarray of shape (len(learning_rates), steps + 1, d)
        The path of each run, :math:`\theta^{(k)}_0 \dots \theta^{(k)}_\text{steps}`;
        diverging runs become inf or NaN without disturbing the others.

    Raises
    ------
    TypeError
        If ``f`` or ``make_optimizer`` is not callable, ``make_optimizer`` does not return a
        :class:`torch.optim.Optimizer`, or a rate is not a number.
    ValueError
        If ``start`` is not a finite 1-D array, ``steps`` is not a positive int, ``learning_rates``
        is empty or a rate is not positive, or ``f`` does not return one value per point.
    """
    start, steps = _check_path_arguments(f, start, make_optimizer, steps)
    rates = [_validate.positive_float(lr, "learning_rates") for lr in learning_rates]
    if not rates:
        raise ValueError("learning_rates is empty: give at least one rate")
    thetas = [torch.tensor(start, dtype=torch.float64, requires_grad=True) for _ in rates]
    groups = [{"params": [t], "lr": lr} for t, lr in zip(thetas, rates, strict=True)]
    optimizer = make_optimizer(groups)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"make_optimizer must return a torch.optim.Optimizer; got {optimizer!r}")
    path = [torch.stack([t.detach().clone() for t in thetas])]
    for _ in range(steps):
        optimizer.zero_grad()
        values = f(torch.stack(thetas, dim=1))
        if values.shape != (len(rates),):
            raise ValueError(
                f"f must return one value per point, shape ({len(rates)},); got "
                f"{tuple(values.shape)}"
            )
        values.sum().backward()
        optimizer.step()
        path.append(torch.stack([t.detach().clone() for t in thetas]))
    return torch.stack(path, dim=1).numpy()
