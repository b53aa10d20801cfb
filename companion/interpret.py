r"""Model interpretability: Grad-CAM, Integrated Gradients, SHAP and sanity checks (chapter 8).

Three ways to ask a trained classifier *which part of the input made it say class* :math:`c`:

* **Grad-CAM** (Selvaraju et al., 2017) weighs the feature maps :math:`A_k` of a convolutional
  layer by the spatial mean of their gradients and keeps the positive part,

  .. math::

      \alpha_k = \frac{1}{hw} \sum_{i,j} \frac{\partial y_c}{\partial A_k^{ij}}, \qquad
      L_c = \operatorname{ReLU}\Big(\sum_k \alpha_k A_k\Big).

* **Integrated Gradients** (Sundararajan et al., 2017) integrates the gradient along the straight
  path from a baseline :math:`\mathbf x'` to the input,

  .. math::

      \mathrm{IG}_i(\mathbf x) = (x_i - x'_i) \int_0^1
          \frac{\partial F_c}{\partial x_i}\big(\mathbf x' + \alpha(\mathbf x - \mathbf x')\big)
          \, d\alpha,

  and is *complete*: :math:`\sum_i \mathrm{IG}_i = F_c(\mathbf x) - F_c(\mathbf x')`, up to
  the quadrature error that :func:`completeness_error` measures.

* **SHAP**'s DeepExplainer (Lundberg & Lee, 2017) is *additive*: the values plus the expected
  output reproduce the model's output exactly (:func:`additivity_error`).

Defects of the original notes fixed here (each has a ``test_pitfall_...`` in
``tests/test_interpret.py``): the deprecated ``Module.register_backward_hook`` (a
``FutureWarning`` in torch 2.x whose ``grad_input`` belongs to the module's *last* operation,
not the module); the stored activations scaled in place, so a second call gives another map;
``output[0, class_idx]``, which back-propagates the first image of a batch only (and crashes
for ``class_idx=None`` with more than one image); a division by the maximum that turns an
all-zero map into NaN; hooks that are never removed; no ``model.eval()``, so dropout changes
every map; one forward pass per interpolation step; a quadrature (the mean over
``linspace(0, 1, m)``) that overweights both endpoints; and a ``'blur'`` baseline that calls a
method that does not exist.

Completeness and additivity hold for *any* model, a randomly initialised one included: they
check the implementation, not whether an explanation is faithful to what the model learnt.

:func:`pointing_game`, :func:`randomized_copy` and :func:`spearman` are the sanity checks of
the chapter: does the map point at the object, and does it change when the weights are
randomised (Adebayo et al., 2018)?
"""

from __future__ import annotations

import copy
import functools
import math
import numbers
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import _validate

__all__ = [
    "GradCAM",
    "integrated_gradients",
    "gaussian_blur",
    "completeness_error",
    "shap_values",
    "additivity_error",
    "pointing_game",
    "randomized_copy",
    "spearman",
]

IG_BATCH_SIZE = 1024  # interpolation points per forward pass when batch_size is None

IG_METHODS = (
    "gausslegendre",
    "riemann_trapezoid",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
)


# --------------------------------------------------------------------------- helpers
def _module(model, name: str = "model") -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module; got {type(model).__name__}")
    return model


def _batch(x, name: str = "x", ndim: int | None = None) -> torch.Tensor:
    """Check that ``x`` is a floating tensor holding a batch: at least 2-D (or exactly ``ndim``)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(
            f"{name} must be a batch of shape (batch, channels, H, W); got shape {tuple(x.shape)}"
        )
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(
            f"{name} must be a non-empty batch of shape (batch, ...); got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")
    return x


class _EvalMode:
    """Context: the model in eval mode, every module's own training flag restored on exit."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        return self.model

    def __exit__(self, *exc):
        for m, mode in self.modes:
            m.training = mode
        return False


def _targets(target, n: int, num_classes: int, name: str, device) -> torch.Tensor:
    """Return one class index per input as an int64 tensor, checked against ``num_classes``."""
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        idx = torch.full((n,), int(target), dtype=torch.long)
    else:
        try:
            idx = torch.as_tensor(target)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name} must be an int or a 1-D sequence of ints") from err
        if idx.ndim != 1 or idx.shape[0] != n:
            raise ValueError(
                f"{name} must be an int or hold one class per input ({n}); "
                f"got shape {tuple(idx.shape)}"
            )
        if idx.is_floating_point() or idx.dtype == torch.bool or idx.is_complex():
            raise TypeError(f"{name} must hold integer class indices; got dtype {idx.dtype}")
        idx = idx.long()
    if idx.numel() and (idx.min() < 0 or idx.max() >= num_classes):
        bad = int(idx[(idx < 0) | (idx >= num_classes)][0])
        raise ValueError(f"{name} must be a class index in 0..{num_classes - 1}; got {bad}")
    return idx.to(device)


# --------------------------------------------------------------------------- Grad-CAM
class GradCAM:
    r"""Grad-CAM heat maps of a convolutional layer, for a whole batch at once.

    For image :math:`b` and class :math:`c`, with :math:`A_k` the :math:`k`-th feature map of
    ``target_layer`` (height :math:`h`, width :math:`w`),

    .. math::

        \alpha_k = \frac{1}{hw} \sum_{i,j} \frac{\partial y_c}{\partial A_k^{ij}}, \qquad
        L_c = \operatorname{ReLU}\Big(\sum_k \alpha_k A_k\Big),

    upsampled bilinearly to the input's size and divided by its maximum, so each map lies in
    :math:`[0, 1]` (a map that is zero everywhere stays zero, never NaN).

    The layer's output is captured by a forward hook that exists only during a call (it is
    registered when ``cam(x, target)`` starts and removed in a ``finally``, so no hook is
    left on the model, even after an error), and its gradient is taken with
    :func:`torch.autograd.grad`, which is exact whatever the layer computes (the deprecated
    ``Module.register_backward_hook`` of the original notes is not) and leaves the ``.grad``
    and ``requires_grad`` of the model's parameters untouched.
    The gradients of all images come from one backward pass of
    :math:`\sum_b y_{b, c_b}`: in eval mode images do not interact, so each image's part of the
    gradient is its own.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier returning logits of shape (batch, num_classes).
    target_layer : torch.nn.Module
        A submodule of ``model`` whose output has shape (batch, channels, h, w), e.g.
        ``ConvolutionalNN.relu3``.

    Raises
    ------
    TypeError
        If ``model`` or ``target_layer`` is not a module.
    ValueError
        If ``target_layer`` is not a submodule of ``model``.

    Examples
    --------
    >>> with GradCAM(model, model.relu3) as cam:  # doctest: +SKIP
    ...     maps = cam(images)  # (batch, H, W), each in [0, 1]
    """

    def __init__(self, model, target_layer):
        self.model = _module(model)
        _module(target_layer, "target_layer")
        if not any(m is target_layer for m in self.model.modules()):
            raise ValueError(
                f"target_layer ({type(target_layer).__name__}) is not a submodule of model; "
                "pass a layer of this model, e.g. model.relu3"
            )
        self.target_layer = target_layer
        self.activations: torch.Tensor | None = None
        self.gradients: torch.Tensor | None = None
        self._output: torch.Tensor | None = None
        self._removed = False

    def _forward_hook(self, module, inputs, output):
        if not isinstance(output, torch.Tensor) or output.ndim != 4:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output)
            raise ValueError(
                f"target_layer must output a tensor of shape (batch, channels, h, w); got {shape}"
            )
        self._output = output

    def __call__(self, x, target=None, *, class_idx=None) -> torch.Tensor:
        """Heat maps for a batch of images.

        Parameters
        ----------
        x : torch.Tensor of shape (batch, channels, H, W)
        target : None, int, or 1-D sequence of ints, default None
            The class to explain, named as in :func:`integrated_gradients` and captum. None:
            each image's predicted class; an int: that class for every image; a sequence: one
            class per image.
        class_idx : deprecated
            The old name of ``target`` (a ``DeprecationWarning``); give one of the two.

        Returns
        -------
        torch.Tensor of float32, shape (batch, H, W), on the CPU
            Values in :math:`[0, 1]`; the maximum of each map is 1 unless the map is all zero.

        Raises
        ------
        TypeError, ValueError
            If ``x`` is not a 4-D floating batch, or ``target`` has the wrong length or is out
            of range, or both ``target`` and ``class_idx`` are given. Also if this object was
            retired by :meth:`remove`.
        """
        if class_idx is not None:
            if target is not None:
                raise TypeError("give target only; class_idx is its deprecated name")
            warnings.warn(
                "GradCAM's class_idx is deprecated; use target", DeprecationWarning, stacklevel=2
            )
            target = class_idx
        if self._removed:
            raise ValueError("this GradCAM was removed; create a new one")
        x = _batch(x, "x", ndim=4)
        self.activations = self.gradients = self._output = None
        handle = self.target_layer.register_forward_hook(self._forward_hook)
        try:
            with _EvalMode(self.model), torch.enable_grad():
                out = self.model(x.detach().clone().requires_grad_(True))
                if self._output is None:
                    raise ValueError("target_layer was not called in the model's forward pass")
                if target is None:
                    idx = out.detach().argmax(dim=1)
                else:
                    idx = _targets(target, out.shape[0], out.shape[1], "target", out.device)
                score = out.gather(1, idx[:, None]).sum()
                (grad,) = torch.autograd.grad(score, self._output, allow_unused=True)
        finally:
            handle.remove()
            output, self._output = self._output, None  # hold no graph after the call
        self.activations = output.detach()
        if grad is None:
            raise ValueError("no gradient reached target_layer: the class score does not use it")
        self.gradients = grad.detach()
        weights = self.gradients.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((weights * self.activations).sum(dim=1, keepdim=True))
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        peak = cam.amax(dim=(1, 2), keepdim=True)
        cam = torch.where(peak > 0, cam / torch.where(peak > 0, peak, 1), 0)
        return cam.detach().to(device="cpu", dtype=torch.float32)

    def remove(self) -> None:
        """Retire this object: later calls raise (safe to call twice).

        No hook outlives a call, so there is nothing to detach from the model; ``remove`` and
        the context manager are kept so that code written for the hook-holding version (and
        the notes' habit of never removing anything) stays correct.
        """
        self._removed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


# --------------------------------------------------------------------------- Integrated Gradients
@functools.lru_cache(maxsize=32)
def _ig_rule(n_steps: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Nodes :math:`\\alpha_k \\in [0, 1]` and weights :math:`w_k` (summing to 1) of a rule."""
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n_steps)
        return (nodes + 1) / 2, weights / 2
    if method == "riemann_trapezoid":
        if n_steps < 2:
            raise ValueError(f"n_steps must be >= 2 for method='riemann_trapezoid'; got {n_steps}")
        weights = np.full(n_steps, 1.0 / (n_steps - 1))
        weights[[0, -1]] /= 2
        return np.linspace(0.0, 1.0, n_steps), weights
    offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method]
    return (np.arange(n_steps) + offset) / n_steps, np.full(n_steps, 1.0 / n_steps)


def gaussian_blur(x, sigma: float = 2.0) -> torch.Tensor:
    r"""Blur the last two dimensions of ``x`` with a Gaussian of standard deviation ``sigma``.

    The kernel :math:`g(t) \propto e^{-t^2 / 2\sigma^2}`, :math:`|t| \le \lceil 3\sigma \rceil`
    (cut to one less than the image side for small images), is normalised to sum to 1 and
    applied separably, rows then columns, with reflect padding, so a constant image is left
    unchanged and the output has ``x``'s shape and dtype.

    Parameters
    ----------
    x : torch.Tensor of shape (..., H, W)
        At least 2-D; leading dimensions (batch, channels) are blurred independently.
    sigma : float, default 2.0

    Returns
    -------
    torch.Tensor of x's shape and dtype

    Raises
    ------
    TypeError, ValueError
        If ``x`` is not a floating tensor of at least 2 dimensions or ``sigma`` is not > 0.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}")
    if x.ndim < 2 or not x.is_floating_point():
        raise ValueError(f"x must be a floating tensor of shape (..., H, W); got {tuple(x.shape)}")
    sigma = _validate.positive_float(sigma, "sigma")
    height, width = x.shape[-2:]
    radius = max(0, min(math.ceil(3 * sigma), height - 1, width - 1))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    flat = x.reshape(-1, 1, height, width)
    if radius > 0:
        flat = F.pad(flat, (radius, radius, radius, radius), mode="reflect")
        flat = F.conv2d(flat, kernel.view(1, 1, 1, -1))
        flat = F.conv2d(flat, kernel.view(1, 1, -1, 1))
    return flat.reshape(x.shape)


def _baseline(baseline, x: torch.Tensor, blur_sigma: float = 2.0) -> torch.Tensor:
    if baseline is None or (isinstance(baseline, str) and baseline == "zeros"):
        return torch.zeros_like(x)
    if isinstance(baseline, str):
        if baseline == "blur":
            return gaussian_blur(x, blur_sigma)
        raise ValueError(
            f"baseline must be None, 'zeros', 'blur' or a tensor; got {baseline!r} "
            "(the notes' 'random' baseline gives a different answer every call)"
        )
    if not isinstance(baseline, torch.Tensor):
        raise TypeError(f"baseline must be None, a string or a torch.Tensor; got {type(baseline)}")
    if baseline.shape == x.shape:
        return baseline.to(device=x.device, dtype=x.dtype)
    if baseline.shape == x.shape[1:]:
        return baseline.to(device=x.device, dtype=x.dtype).expand_as(x)
    raise ValueError(
        f"baseline must have x's shape {tuple(x.shape)} or one sample's shape "
        f"{tuple(x.shape[1:])}; got {tuple(baseline.shape)}"
    )


def integrated_gradients(
    model,
    x,
    target,
    baseline=None,
    n_steps: int = 50,
    method: str = "gausslegendre",
    batch_size: int | None = None,
    blur_sigma: float = 2.0,
) -> torch.Tensor:
    r"""Integrated Gradients of a batch, all interpolation points in a few forward passes.

    For input :math:`\mathbf x`, baseline :math:`\mathbf x'` and target class :math:`c`,

    .. math::

        \mathrm{IG}_i = (x_i - x'_i) \sum_{k=1}^{m} w_k \,
            \frac{\partial F_c}{\partial x_i}\big(\mathbf x' + \alpha_k (\mathbf x - \mathbf x')
            \big),

    a quadrature of :math:`(x_i - x'_i)\int_0^1 \partial_i F_c \, d\alpha` with :math:`m` =
    ``n_steps`` nodes :math:`\alpha_k` and weights :math:`w_k`. The :math:`m \times n` points of
    the :math:`n` inputs are stacked and evaluated ``batch_size`` at a time (the notes ran one
    forward and backward pass per step, for the first input only). Rules, named as in captum,
    all with weights summing to 1 (so a constant gradient is integrated exactly):

    * ``"gausslegendre"``: the Gauss-Legendre nodes and weights of
      :func:`numpy.polynomial.legendre.leggauss`, mapped from :math:`[-1, 1]` to :math:`[0, 1]`;
      exact for polynomials of degree :math:`2m - 1`, the best choice for smooth models.
    * ``"riemann_trapezoid"``: :math:`\alpha_k = k/(m-1)`, :math:`k = 0, \dots, m-1`, weights
      :math:`1/(m-1)` inside and :math:`1/(2(m-1))` at both ends (the textbook rule; captum's
      trapezoid weights sum to :math:`(m-1)/m`, which biases every attribution by :math:`1/m`).
    * ``"riemann_left"``, ``"riemann_right"``, ``"riemann_middle"``: :math:`\alpha_k = k/m`,
      :math:`(k+1)/m`, :math:`(k+\tfrac12)/m` for :math:`k = 0, \dots, m-1`, weights :math:`1/m`.

    The model runs in eval mode (dropout off; its training flags are restored afterwards) and
    gradients are taken with :func:`torch.autograd.grad`, so no ``.grad`` of the model's
    parameters changes.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits of shape (batch, num_classes).
    x : torch.Tensor of shape (n, ...)
        A batch of inputs.
    target : int or 1-D sequence of n ints
        The class whose logit is attributed, for all inputs or one per input.
    baseline : None, "zeros", "blur" or torch.Tensor, default None
        None or "zeros": all zeros; "blur": ``gaussian_blur(x, blur_sigma)``; a tensor of
        ``x``'s shape, or of one sample's shape ``x.shape[1:]`` (used for every input).
    n_steps : int, default 50
        Number :math:`m` of quadrature nodes (at least 2 for the trapezoid rule).
    method : str, default "gausslegendre"
    batch_size : int or None, default None
        At most this many interpolation points per forward pass; None: ``IG_BATCH_SIZE``
        (1024), so that a large batch of inputs does not put :math:`n m` points through one
        pass (the memory of the activations grows with it).
    blur_sigma : float, default 2.0
        Standard deviation of the "blur" baseline, in pixels.

    Returns
    -------
    torch.Tensor of x's shape and dtype
        The attributions; their sum over each input approximates
        :math:`F_c(\mathbf x) - F_c(\mathbf x')` (see :func:`completeness_error`).

    Raises
    ------
    TypeError, ValueError
        Naming ``x``, ``target`` (out of range, wrong length), ``baseline`` (unknown string, wrong
        shape), ``n_steps``, ``method`` or ``batch_size``.
    """
    model = _module(model)
    x = _batch(x)
    n_steps = _validate.positive_int(n_steps, "n_steps")
    _validate.one_of(method, "method", IG_METHODS)
    if batch_size is not None:
        batch_size = _validate.positive_int(batch_size, "batch_size")
    blur_sigma = _validate.positive_float(blur_sigma, "blur_sigma")
    x = x.detach()
    base = _baseline(baseline, x, blur_sigma).detach()
    alphas, weights = _ig_rule(n_steps, method)
    alphas = torch.tensor(alphas, dtype=x.dtype, device=x.device)
    weights = torch.tensor(weights, dtype=x.dtype, device=x.device)
    n = x.shape[0]
    diff = x - base
    total = n * n_steps
    chunk = IG_BATCH_SIZE if batch_size is None else batch_size
    grad_sum = torch.zeros_like(x)
    idx = None
    expand = (-1,) + (1,) * (x.ndim - 1)
    with _EvalMode(model), torch.enable_grad():
        if chunk >= total:  # one pass: broadcast instead of gathering rows
            a = alphas.view((-1,) + (1,) * x.ndim)
            points = (base + a * diff).reshape(total, *x.shape[1:]).requires_grad_(True)
            out = model(points)
            idx = _targets(target, n, out.shape[1], "target", out.device)
            score = out.gather(1, idx.repeat(n_steps)[:, None]).sum()
            (grad,) = torch.autograd.grad(score, points)
            grad = grad.view(n_steps, *x.shape)
            return diff * (weights.view((-1,) + (1,) * x.ndim) * grad).sum(0)
        for start in range(0, total, chunk):
            j = torch.arange(start, min(start + chunk, total), device=x.device)
            step, sample = j // n, j % n
            a = alphas[step].view(expand)
            points = (base[sample] + a * diff[sample]).requires_grad_(True)
            out = model(points)
            if idx is None:
                idx = _targets(target, n, out.shape[1], "target", out.device)
            score = out.gather(1, idx[sample][:, None]).sum()
            (grad,) = torch.autograd.grad(score, points)
            grad_sum.index_add_(0, sample, grad * weights[step].view(expand))
    return diff * grad_sum


def completeness_error(model, x, target, attributions, baseline=None) -> float:
    r"""Relative completeness gap of attributions, aggregated over a batch.

    .. math::

        \frac{\sum_b \big|\sum_i \mathrm{attr}_{b,i} - \Delta_b\big|}{\sum_b |\Delta_b|},
        \qquad \Delta_b = F_{c_b}(\mathbf x_b) - F_{c_b}(\mathbf x'_b),

    with :math:`F` the model's logits (eval mode). Exact Integrated Gradients give 0; the
    quadrature of :func:`integrated_gradients` gives a small positive number. If every
    :math:`\Delta_b` is 0 the absolute gap :math:`\sum_b |\sum_i \mathrm{attr}_{b,i}|` is
    returned instead.

    Parameters
    ----------
    model : torch.nn.Module
    x : torch.Tensor of shape (n, ...)
    target : int or 1-D sequence of n ints
    attributions : torch.Tensor of x's shape
    baseline : None, "zeros", "blur" or torch.Tensor, default None
        As in :func:`integrated_gradients` (the blur with its default ``sigma=2``).

    Returns
    -------
    float

    Raises
    ------
    TypeError, ValueError
        If ``attributions`` does not have ``x``'s shape, or as :func:`integrated_gradients`.
    """
    model = _module(model)
    x = _batch(x).detach()
    if not isinstance(attributions, torch.Tensor) or attributions.shape != x.shape:
        shape = tuple(attributions.shape) if isinstance(attributions, torch.Tensor) else None
        raise ValueError(
            f"attributions must be a tensor of x's shape {tuple(x.shape)}; got {shape}"
        )
    base = _baseline(baseline, x)
    with _EvalMode(model), torch.no_grad():
        both = model(torch.cat([x, base]))
    idx = _targets(target, x.shape[0], both.shape[1], "target", both.device)
    scores = both.gather(1, torch.cat([idx, idx])[:, None])[:, 0].double()
    delta = scores[: x.shape[0]] - scores[x.shape[0] :]
    sums = attributions.detach().flatten(1).sum(1).double().to(delta.device)
    gap = (sums - delta).abs().sum()
    scale = delta.abs().sum()
    return float(gap / scale) if scale > 0 else float(gap)


# --------------------------------------------------------------------------- SHAP
def shap_values(model, background, x) -> tuple[torch.Tensor, torch.Tensor]:
    r"""SHAP values of a batch by ``shap.DeepExplainer``, in one layout whatever shap returns.

    DeepExplainer (DeepLIFT with the rescale rule, averaged over ``background``) is additive:

    .. math::

        \sum_i \phi_{i,c}(\mathbf x) + \mathbb E_{\mathbf b}[F_c(\mathbf b)] = F_c(\mathbf x),

    which :func:`additivity_error` checks. shap replaces the gradient of every *module* it
    recognises (``nn.ReLU``, ...) through hooks, so each activation must be its own module
    instance, used once: a reused ``nn.ReLU`` or a functional ``F.relu`` breaks additivity.
    :class:`companion.models.NeuralNetwork` and :class:`companion.models.ConvolutionalNN` are
    built that way.

    shap 0.51 returns an array of shape (n, \*dims, num_classes); older versions a list of
    per-class arrays, and single-output models may lose the class axis: all are normalised to
    the layout below. The ``DeprecationWarning`` "``__array_wrap__`` must accept context and
    return_scalar" that NumPy 2 raises when shap applies NumPy functions to torch tensors, and
    matplotlib's ``PendingDeprecationWarning`` about ``set_bad``, ``set_over`` and ``set_under``
    when shap is first imported, are harmless and silenced inside this call only.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits of shape (batch, num_classes). Run in eval mode during the call; its
        training flags are restored afterwards.
    background : torch.Tensor of shape (m, ...)
        Reference inputs whose mean output is the expected value (tens to a hundred samples).
    x : torch.Tensor of shape (n, ...)
        Inputs to explain, same per-sample shape as ``background``.

    Returns
    -------
    values : torch.Tensor of shape (n, \*x.shape[1:], num_classes), x's dtype
    expected_value : torch.Tensor of shape (num_classes,)

    Raises
    ------
    TypeError, ValueError
        If ``background`` or ``x`` is not a floating batch or their sample shapes differ.
    AssertionError
        From shap, if its own additivity check fails (see above).
    """
    model = _module(model)
    background = _batch(background, "background")
    x = _batch(x)
    if background.shape[1:] != x.shape[1:]:
        raise ValueError(
            f"background samples have shape {tuple(background.shape[1:])} but x samples have "
            f"{tuple(x.shape[1:])}; they must match"
        )
    with _EvalMode(model), warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"__array_wrap__ must accept context", category=DeprecationWarning
        )
        warnings.filterwarnings(
            "ignore",
            message=r"The set_(bad|over|under) function",
            category=PendingDeprecationWarning,
        )
        # shap imports tqdm.auto, which in a notebook without ipywidgets warns at import time
        warnings.filterwarnings("ignore", message=r"IProgress not found")
        import shap

        explainer = shap.DeepExplainer(model, background)
        raw = explainer.shap_values(x)
        expected = explainer.expected_value
    if isinstance(raw, list | tuple):
        values = np.stack([np.asarray(v) for v in raw], axis=-1)
    else:
        values = np.asarray(raw)
        if values.ndim == x.ndim:  # a single-output model: no class axis
            values = values[..., None]
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().cpu().numpy()
    expected = np.atleast_1d(np.asarray(expected, dtype=np.float64))
    return torch.as_tensor(values, dtype=x.dtype), torch.as_tensor(expected, dtype=x.dtype)


def additivity_error(model, x, values, expected_value) -> float:
    r"""Largest gap :math:`\max_{b,c} |\sum_i \phi_{b,i,c} + \mathbb E[F_c] - F_c(\mathbf x_b)|`.

    Parameters
    ----------
    model : torch.nn.Module
        Evaluated in eval mode (training flags restored).
    x : torch.Tensor of shape (n, ...)
    values : torch.Tensor of shape (n, \*x.shape[1:], num_classes)
    expected_value : torch.Tensor of shape (num_classes,)

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``values`` does not have the layout of :func:`shap_values`.
    """
    model = _module(model)
    x = _batch(x)
    values = torch.as_tensor(values)
    if values.ndim != x.ndim + 1 or values.shape[:-1] != x.shape:
        raise ValueError(
            f"values must have shape {(*x.shape, 'num_classes')}; got {tuple(values.shape)}"
        )
    with _EvalMode(model), torch.no_grad():
        out = model(x).double().cpu()
    total = values.reshape(x.shape[0], -1, values.shape[-1]).sum(1).double()
    total = total + torch.as_tensor(expected_value).double().reshape(1, -1)
    return float((total - out).abs().max())


# --------------------------------------------------------------------------- sanity checks
def pointing_game(heatmaps, boxes) -> float:
    r"""Fraction of heat maps whose hottest pixel lies inside the object's bounding box.

    For map :math:`L_b` with :math:`(r, c) = \arg\max L_b` (the first maximum in row-major
    order) and box :math:`(r_0, c_0, r_1, c_1)`, a hit is
    :math:`r_0 \le r \le r_1 \wedge c_0 \le c \le c_1`.

    Parameters
    ----------
    heatmaps : torch.Tensor or array_like of shape (n, H, W)
    boxes : torch.Tensor or array_like of ints, shape (n, 4)
        ``(row_min, col_min, row_max, col_max)``, inclusive, as from
        :func:`companion.data.make_shapes`.

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    ValueError
        If ``heatmaps`` is not 3-D or ``boxes`` is not (n, 4) for the same n.
    """
    maps = torch.as_tensor(heatmaps)
    if maps.ndim != 3 or maps.shape[0] == 0:
        raise ValueError(f"heatmaps must have shape (n, H, W); got {tuple(maps.shape)}")
    box = torch.as_tensor(boxes)
    if box.shape != (maps.shape[0], 4):
        raise ValueError(f"boxes must have shape ({maps.shape[0]}, 4); got {tuple(box.shape)}")
    flat = maps.flatten(1).argmax(dim=1)
    rows, cols = flat // maps.shape[2], flat % maps.shape[2]
    box = box.to(rows.device)
    hit = (rows >= box[:, 0]) & (rows <= box[:, 2]) & (cols >= box[:, 1]) & (cols <= box[:, 3])
    return float(hit.double().mean())


def randomized_copy(model, seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` with every layer's weights re-initialised (Adebayo et al., 2018).

    Every submodule with a ``reset_parameters`` method (``Linear``, ``Conv2d``, ...) is reset
    after ``torch.manual_seed(seed)``, inside :func:`torch.random.fork_rng`, so the global
    random state and the original model are untouched. A saliency method whose maps barely
    change on the copy (high :func:`spearman` correlation) explains the input, not the model.

    Parameters
    ----------
    model : torch.nn.Module
    seed : int, default 0

    Returns
    -------
    torch.nn.Module
    """
    model = _module(model)
    seed = _validate.nonnegative_int(seed, "seed")
    clone = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in clone.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    return clone


def spearman(a, b) -> float:
    r"""Spearman rank correlation of two maps, flattened: Pearson's correlation of their ranks.

    .. math::

        \rho = \frac{\operatorname{cov}(\operatorname{rk} a, \operatorname{rk} b)}
            {\sigma_{\operatorname{rk} a} \, \sigma_{\operatorname{rk} b}},

    ties getting their average rank (:func:`scipy.stats.spearmanr`). A constant map has no
    ranking: the result is then NaN (without scipy's warning).

    Parameters
    ----------
    a, b : torch.Tensor or array_like
        Same number of elements.

    Returns
    -------
    float in [-1, 1], or NaN

    Raises
    ------
    ValueError
        If the sizes differ or a map has fewer than 2 elements.
    """
    import scipy.stats

    def flat(m, name):
        if isinstance(m, torch.Tensor):
            m = m.detach().cpu().double().numpy()
        return _validate.float_array(m, name).ravel().astype(np.float64)

    a, b = flat(a, "a"), flat(b, "b")
    if a.size != b.size or a.size < 2:
        raise ValueError(f"a and b must have the same size (>= 2); got {a.size} and {b.size}")
    if np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(scipy.stats.spearmanr(a, b).statistic)
