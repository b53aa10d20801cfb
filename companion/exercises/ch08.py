r"""Checkers for chapter 8's exercises: Grad-CAM's map, completeness, the trapezoid rule and
the notes' Integrated Gradients on a batch."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..interpret import GradCAM, _ig_rule, integrated_gradients
from . import Wrong, as_array, call, exercise, number, same_shape

_SEED = 2024


def _close(a, b, tol: float = 1e-6) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(
        np.allclose(a, b, rtol=tol, atol=tol * (1 + np.abs(b).max()))
    )


# ---------------------------------------------------------------------------- 8.1 Grad-CAM
def _gradcam_reference(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    alpha = grads.mean(dim=(2, 3), keepdim=True)
    return torch.relu((alpha * acts).sum(dim=1))


def _gradcam_inputs():
    """Three images' maps (K = 6 channels, 5x7 positions); the third has no positive evidence."""
    gen = torch.Generator().manual_seed(_SEED)
    acts = torch.relu(torch.randn(3, 6, 5, 7, generator=gen, dtype=torch.float64))
    grads = torch.randn(3, 6, 5, 7, generator=gen, dtype=torch.float64)
    grads[2] = -grads[2].abs()  # every alpha_k < 0: the map is zero everywhere
    return acts, grads


@exercise("8.1", "Grad-CAM from activations and gradients", level="easy", kind="implement")
def check_gradcam_map(answer):
    r"""``answer(activations, gradients)``, both of shape (batch, K, h, w), must return the
    un-normalised maps of shape (batch, h, w),

    .. math::

        \alpha_k = \frac{1}{hw} \sum_{i,j} \frac{\partial y_c}{\partial A_k^{ij}}, \qquad
        L = \operatorname{ReLU}\Big(\sum_k \alpha_k A_k\Big),

    per image, to 1e-9; and, upsampled and scaled to [0, 1], reproduce ``GradCAM`` on a small
    convolutional network."""
    acts, grads = _gradcam_inputs()
    got = as_array(call(answer, acts.clone(), grads.clone(), what="gradcam_map"))
    expected = _gradcam_reference(acts, grads).numpy()
    batch, channels, h, w = acts.shape
    if got.shape == (batch, 1, h, w):
        raise Wrong(
            f"the maps have shape {got.shape}; expected {expected.shape}",
            "sum over the channels without keepdim: one (h, w) map per image",
        )
    same_shape(got, expected, "the maps")
    if np.isnan(got).any():
        raise Wrong(
            "your maps contain NaN (the third image has no positive evidence: its map is 0)",
            "return the map before any normalisation; dividing an all-zero map by its maximum "
            "gives NaN",
        )
    if _close(got, expected, 1e-9):
        pass
    elif _close(got, (grads.mean(dim=(2, 3), keepdim=True) * acts).sum(1).numpy(), 1e-9):
        raise Wrong(
            "your maps have negative values: the ReLU is missing",
            "keep the positive part: L = ReLU(sum_k alpha_k A_k), evidence *for* the class",
        )
    elif _close(got, torch.relu((grads.mean(1, keepdim=True) * acts).sum(1)).numpy(), 1e-9):
        raise Wrong(
            "you averaged the gradients over the channels",
            "alpha_k is one number per channel k: average dF/dA_k over the positions "
            "(dims 2 and 3), not over the channels (dim 1)",
        )
    elif _close(got, torch.relu((grads.mean((0, 2, 3), keepdim=True) * acts).sum(1)).numpy()):
        raise Wrong(
            "your channel weights are shared by the whole batch",
            "average over the positions of each image only, dims (2, 3); averaging over dim 0 "
            "too mixes the images' gradients",
        )
    elif _close(got, h * w * expected, 1e-9):
        raise Wrong(
            f"your maps are {h * w} = h*w times too large",
            "alpha_k is the *mean* of the gradient over positions: divide the sum by h*w",
        )
    elif _close(got, expected / np.maximum(expected.max((1, 2), keepdims=True), 1e-300)):
        raise Wrong(
            "your maps are scaled to a maximum of 1",
            "return the map before normalisation (GradCAM upsamples and scales it afterwards)",
        )
    else:
        worst = np.unravel_index(int(np.argmax(np.abs(got - expected))), got.shape)
        raise Wrong(
            f"at index {tuple(int(i) for i in worst)} you return {got[worst]:.6g}; expected "
            f"{expected[worst]:.6g}",
            "weights: grads.mean(dim=(2, 3), keepdim=True); map: ReLU of (weights * acts) "
            "summed over dim 1",
        )
    # against companion's GradCAM, on a small random CNN
    with torch.random.fork_rng():
        torch.manual_seed(_SEED)
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(4 * 4 * 4, 3),
        )  # fmt: skip
        x = torch.randn(4, 1, 8, 8)
    cam = GradCAM(model, model[1])
    maps = cam(x, target=[0, 1, 2, 0])
    mine = torch.as_tensor(
        as_array(call(answer, cam.activations, cam.gradients, what="gradcam_map")),
        dtype=torch.float32,
    )
    same_shape(mine.numpy(), cam.activations[:, 0].numpy(), "the maps")
    mine = F.interpolate(mine[:, None], size=(8, 8), mode="bilinear", align_corners=False)[:, 0]
    peak = mine.amax(dim=(1, 2), keepdim=True)
    mine = torch.where(peak > 0, mine / torch.where(peak > 0, peak, 1), 0)
    if not torch.allclose(mine, maps, atol=1e-5):
        raise Wrong("upsampled and scaled, your maps differ from companion.GradCAM's", None)
    return (
        "the maps match the formula on 3 images (one all zero) and, upsampled and scaled, "
        "companion.GradCAM on a small CNN."
    )


# ---------------------------------------------------------------------------- 8.2 completeness
def linear_problem():
    r"""The model, input and baseline of exercise 8.2 (``torch.manual_seed(8)``, then
    ``nn.Linear(4, 3)``), built without touching the caller's random state."""
    with torch.random.fork_rng():
        torch.manual_seed(8)
        linear = nn.Linear(4, 3)
    x = torch.tensor([[1.0, -2.0, 0.5, 3.0]])
    return linear, x, torch.full_like(x, 0.5)


@exercise("8.2", "What do the attributions of a linear model add up to?", "medium", "predict")
def check_linear_completeness(answer):
    r"""The sum :math:`\sum_i \mathrm{IG}_i` for class 2 of the seeded ``nn.Linear(4, 3)``,
    input ``[1, -2, 0.5, 3]`` and baseline 0.5 everywhere: by completeness
    :math:`F_2(\mathbf x) - F_2(\mathbf x') = \mathbf w_2 \cdot (\mathbf x - \mathbf x')`,
    within 1e-4. The checker computes it with ``integrated_gradients``."""
    value = number(answer)
    linear, x, base = linear_problem()
    target = 2
    ig = integrated_gradients(linear, x, target, base, n_steps=2, method="riemann_trapezoid")
    expected = float(ig.sum())
    w, b = linear.weight.detach().double(), linear.bias.detach().double()
    xd, based = x[0].double(), base[0].double()
    assert abs(expected - float(w[target] @ (xd - based))) < 1e-5  # completeness, exactly
    if abs(value - expected) <= 1e-4 * max(1.0, abs(expected)):
        return (
            f"the attributions sum to F(x) - F(x') = {expected:.4f}: for a linear model the "
            "gradient is the constant w_c, so any rule is exact."
        )
    candidates = [
        (float(w[target] @ xd + b[target]), "that is F(x), the logit itself",
         "subtract the baseline's logit F(x'): the attributions explain the difference"),
        (float(w[target] @ xd), "that is w_c . x: the attributions from a zero baseline",
         "the baseline here is 0.5 everywhere: IG_i = w_ci (x_i - x'_i)"),
        (float(w[target].sum()), "that is the sum of the gradient w_c, not of the attributions",
         "IG multiplies the (average) gradient by x - x'"),
        (float(w.sum(0) @ (xd - based)), "that is the sum over all three classes",
         "explain class 2 only: its row w_2 of the weight matrix"),
        (float(w[target] @ (xd - based) + b[target]), "the bias does not belong in it",
         "b cancels in F(x) - F(x')"),
    ]  # fmt: skip
    for wrong, message, hint in candidates:
        if abs(value - wrong) <= 1e-4 * max(1.0, abs(wrong)):
            raise Wrong(f"{value:.4f}: {message}", hint)
    raise Wrong(
        f"{value:.4g} is not the sum of the attributions",
        "completeness: sum_i IG_i = F_2(x) - F_2(x'); compute both logits with the model",
    )


# ---------------------------------------------------------------------------- 8.3 trapezoid
@exercise("8.3", "The trapezoid weights", level="medium", kind="implement")
def check_trapezoid_weights(answer):
    r"""``answer(n)`` must return the :math:`n \ge 2` weights of the trapezoid rule on the nodes
    ``linspace(0, 1, n)``: :math:`1/(n-1)` inside, :math:`1/(2(n-1))` at both ends (summing
    to 1), as ``integrated_gradients(method="riemann_trapezoid")`` uses, to 1e-12."""
    for n in (2, 3, 4, 5, 10, 50, 51):
        got = as_array(call(answer, n, what="trapezoid_weights"), "trapezoid_weights's result")
        _, expected = _ig_rule(n, "riemann_trapezoid")
        if got.shape != expected.shape:
            raise Wrong(
                f"for n = {n} you return shape {got.shape}; expected ({n},): one weight per node",
                None,
            )
        if np.allclose(got, expected, rtol=0, atol=1e-12):
            continue
        if np.allclose(got, 1 / n, rtol=0, atol=1e-12):
            raise Wrong(
                f"for n = {n} every weight is 1/n: that is the notes' mean over linspace(0, 1, n)",
                "it gives the two endpoints twice their share: the trapezoid rule halves the "
                "weights of the first and last node",
            )
        if np.allclose(got, np.full(n, 1 / (n - 1)), rtol=0, atol=1e-12):
            raise Wrong(
                f"for n = {n} your weights sum to n/(n-1) = {n / (n - 1):.4g}",
                "halve the weights of the first and the last node",
            )
        captum = np.full(n, 1 / n)
        captum[[0, -1]] /= 2
        if np.allclose(got, captum, rtol=0, atol=1e-12) or np.isclose(got.sum(), (n - 1) / n):
            raise Wrong(
                f"for n = {n} your weights sum to (n-1)/n = {(n - 1) / n:.4g}, captum's bias",
                "the nodes of linspace(0, 1, n) are 1/(n-1) apart, not 1/n: the weights must "
                "sum to 1",
            )
        if not np.isclose(got.sum(), 1):
            raise Wrong(
                f"for n = {n} your weights sum to {got.sum():.6g}",
                "the weights must sum to 1, so that a constant gradient is integrated exactly",
            )
        raise Wrong(
            f"for n = {n} you return {np.round(got[:4], 5)}...; expected "
            f"{np.round(expected[:4], 5)}...",
            "check the smallest case, n = 2: the nodes 0 and 1 get 1/2 each",
        )
    return "the weights match the trapezoid rule for n = 2 ... 51, and sum to 1."


# ---------------------------------------------------------------------------- 8.4 batched IG
def _notes_rule_ig(model, x, target, steps):
    r"""The notes' rule, the mean of the gradient over ``linspace(0, 1, steps)``, per input, from
    companion's rules: :math:`\frac{n-1}{n}\mathrm{IG}_{\rm trap} + \frac{1}{2n}
    (\mathrm{IG}_{\alpha=0} + \mathrm{IG}_{\alpha=1})`."""
    trap = integrated_gradients(model, x, target, n_steps=steps, method="riemann_trapezoid")
    at_0 = integrated_gradients(model, x, target, n_steps=1, method="riemann_left")
    at_1 = integrated_gradients(model, x, target, n_steps=1, method="riemann_right")
    return (steps - 1) / steps * trap + (at_0 + at_1) / (2 * steps)


def _batch_ig_problem():
    with torch.random.fork_rng():
        torch.manual_seed(_SEED)
        model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()
        x = torch.randn(5, 6, dtype=torch.float64)
    return model, x


@exercise("8.4", "The notes' IG on a batch", level="hard", kind="debug")
def check_batch_ig(answer):
    r"""``answer(model, x, target, steps=50)`` must give *each* input of the batch ``x`` its own
    attributions: those of the notes' rule (mean of the gradient over
    ``linspace(0, 1, steps)``), or of companion's trapezoid or Gauss-Legendre rule, to 1e-6
    relative; for a batch of 5 and a batch of 1, on a small tanh network in float64."""
    model, x = _batch_ig_problem()
    target, steps = 1, 50
    refs = [
        _notes_rule_ig(model, x, target, steps),
        integrated_gradients(model, x, target, n_steps=steps, method="riemann_trapezoid"),
        integrated_gradients(model, x, target, n_steps=steps),
    ]
    try:
        got = as_array(call(answer, model, x.clone(), target, steps, what="batch_ig"))
    except Wrong as wrong:
        if "scalar outputs" in wrong.message:
            raise Wrong(
                wrong.message,
                "output[:, target] holds one score per input: backward() needs a scalar, so "
                "sum them, output[:, target].sum(); each input's gradient is still its own",
            ) from None
        raise
    same_shape(got, x.numpy(), "the attributions")
    if any(_close(got, r) for r in refs):
        one = as_array(call(answer, model, x[3:4].clone(), target, steps, what="batch_ig"))
        same_shape(one, x[3:4].numpy(), "the attributions of a batch of 1")
        if not _close(one, got[3:4]):
            raise Wrong("for a batch of one input you return other attributions", None)
        return "each of the 5 inputs gets its own attributions, as alone, to 1e-6."
    notes = refs[0].numpy()
    if np.allclose(got[1:], 0) and _close(got[:1], notes[:1]):
        raise Wrong(
            "inputs 2 to 5 get zero attributions: only the first input is explained",
            "output[0, target] is the first input's score; back-propagate the sum of every "
            "input's score, output[:, target].sum()",
        )
    if _close(got * len(x), notes):
        raise Wrong(
            f"your attributions are {len(x)} times too small: off by the batch size",
            "sum the scores, do not average them: output[:, target].sum()",
        )
    every_class = sum(_notes_rule_ig(model, x, c, steps) for c in range(3)).numpy()
    if _close(got, every_class):
        raise Wrong(
            "you explain the sum of all the logits",
            f"pick the target class's column, output[:, target], before summing (target={target})",
        )
    if _close(got * x.numpy(), notes):
        raise Wrong(
            "you return the mean gradient: the factor (x - baseline) is missing",
            "IG = (x - x') times the mean of the gradient along the path",
        )
    raise Wrong(
        "your attributions match neither the notes' rule nor companion.integrated_gradients",
        "keep the notes' loop and rule; change only which scores are back-propagated",
    )
