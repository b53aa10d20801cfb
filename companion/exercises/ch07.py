r"""Checkers for chapter 7's exercises: label smoothing, the GAN losses, the notes'
generator block, the Fréchet distance."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..gan import frechet_distance
from . import Wrong, call, exercise, number

_SEED = 2024


def optimal_logit(target: float) -> float:
    r"""The logit :math:`\ell^*` that minimises :math:`\ell(s, t) = -t \log\sigma(s) -
    (1 - t)\log(1 - \sigma(s))` (``BCEWithLogitsLoss``), found by Newton's method with
    autograd: the exact answer to exercise 7.1."""
    s = torch.zeros((), dtype=torch.float64, requires_grad=True)
    t = torch.tensor(target, dtype=torch.float64)
    for _ in range(50):
        loss = nn.functional.binary_cross_entropy_with_logits(s, t)
        (grad,) = torch.autograd.grad(loss, s)
        with torch.no_grad():
            p = torch.sigmoid(s)
            s -= grad / (p * (1 - p))  # the second derivative is p (1 - p)
    return s.item()


@exercise("7.1", "The discriminator's best logit with smoothing", level="easy", kind="predict")
def check_optimal_logit(answer):
    r"""With one-sided label smoothing :math:`s = 0.2` a real image has target
    :math:`t = 0.8`; the answer is the logit :math:`\ell` that minimises the discriminator's
    loss on it, :math:`\ell(\ell, 0.8)`, within 1e-3."""
    value = number(answer)
    exact = optimal_logit(0.8)
    if abs(value - exact) <= 1e-3:
        return f"the loss is smallest at sigma(l) = 0.8, l = ln 4 = {exact:.4f}."
    if abs(value - 0.8) <= 1e-3:
        raise Wrong(
            "0.8 is the best *probability* sigma(l); the question asks for the logit l",
            "solve sigma(l) = 0.8 for l: l = ln(p / (1 - p))",
        )
    if abs(value - math.log(0.8)) <= 1e-3:
        raise Wrong(
            "ln 0.8 is negative: that logit means the discriminator calls the image fake",
            "the logit of p is ln(p / (1 - p)), not ln p",
        )
    if abs(value - math.log10(4)) <= 1e-3:
        raise Wrong("that is log10(4); logits use the natural logarithm", None)
    if value > 10:
        raise Wrong(
            "that is the unsmoothed picture, where the loss keeps falling as l grows",
            "with target 0.8 the slope of the loss, sigma(l) - 0.8, is zero at a finite l",
        )
    raise Wrong(
        f"{value:.4g} is not the minimum",
        "the derivative of BCEWithLogits in the logit is sigma(l) - t; set it to zero",
    )


def _gan_setup():
    torch.manual_seed(_SEED)
    generator = nn.Linear(4, 6).double()
    discriminator = nn.Linear(6, 1).double()
    real = torch.randn(8, 6, dtype=torch.float64) + 1.0
    fake = generator(torch.randn(8, 4, dtype=torch.float64))
    return generator, discriminator, real, fake


def _bce(logits, target):
    return nn.functional.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


@exercise("7.2", "The two GAN losses with logits", level="medium", kind="implement")
def check_gan_losses(answer):
    r"""``answer(discriminator, real, fake, smoothing)`` must return ``(d_loss, g_loss)``,
    scalar tensors with :math:`\ell` = ``BCEWithLogitsLoss``:

    .. math::

        L_D = \tfrac12\big[\ell(D(x), 1 - s) + \ell(D(\operatorname{detach}(\tilde x)), 0)\big],
        \qquad L_G = \ell(D(\tilde x), 1),

    as :class:`companion.GANTrainer` computes them; ``d_loss`` must send no gradient into the
    generator, ``g_loss`` must."""
    for smoothing in (0.1, 0.0):
        generator, discriminator, real, fake = _gan_setup()
        out = call(answer, discriminator, real, fake, smoothing, what="gan_losses")
        if not isinstance(out, tuple) or len(out) != 2:
            raise Wrong(f"gan_losses must return a pair (d_loss, g_loss); got {out!r:.60}")
        d_loss, g_loss = out
        if not (isinstance(d_loss, torch.Tensor) and isinstance(g_loss, torch.Tensor)):
            raise Wrong(
                "both losses must be tensors, so that .backward() works",
                "do not call .item() on them",
            )
        d_value, g_value = number(d_loss, "d_loss"), number(g_loss, "g_loss")
        with torch.no_grad():
            r, f = discriminator(real), discriminator(fake)
            d_ref = 0.5 * (_bce(r, 1 - smoothing) + _bce(f, 0.0))
            g_ref = _bce(f, 1.0)
        if not math.isclose(d_value, d_ref.item(), rel_tol=1e-6):
            if math.isclose(d_value, 0.5 * (_bce(r, 0.0) + _bce(f, 1 - smoothing)).item()):
                raise Wrong(
                    "your discriminator loss has the labels swapped",
                    "real images get target 1 - s, fakes target 0",
                )
            if math.isclose(d_value, 0.5 * (_bce(r, 1 - smoothing) + _bce(f, smoothing)).item()):
                raise Wrong(
                    "you smoothed the fakes' target too",
                    "one-sided smoothing: only the real side gets 1 - s; fakes keep 0",
                )
            if math.isclose(d_value, 2 * d_ref.item(), rel_tol=1e-6):
                raise Wrong("d_loss is twice the reference", "average the two terms: 0.5 * (...)")
            if smoothing and math.isclose(d_value, 0.5 * (_bce(r, 1.0) + _bce(f, 0.0)).item()):
                raise Wrong("the smoothing is ignored", "the real target is 1 - smoothing")
            raise Wrong(
                f"with smoothing {smoothing}: d_loss = {d_value:.6g}; expected {d_ref.item():.6g}"
            )
        if not math.isclose(g_value, g_ref.item(), rel_tol=1e-6):
            if math.isclose(g_value, -_bce(f, 0.0).item(), rel_tol=1e-6):
                raise Wrong(
                    "that is the saturating minimax loss -l(D(fake), 0)",
                    "the generator trains on the non-saturating loss: target 1 on its fakes",
                )
            if math.isclose(g_value, _bce(f, 0.0).item(), rel_tol=1e-6):
                raise Wrong(
                    "your generator loss uses target 0: it would help the discriminator",
                    "the generator wants its fakes called real: l(D(fake), 1)",
                )
            raise Wrong(f"g_loss = {g_value:.6g}; expected {g_ref.item():.6g}")
        if d_loss.requires_grad:
            d_loss.backward(retain_graph=True)
            leaked = generator.weight.grad
            if leaked is not None and leaked.abs().sum() > 0:
                raise Wrong(
                    "d_loss sends gradient into the generator",
                    "use fake.detach() in the discriminator's step, or its backward also "
                    "fills the generator's .grad",
                )
        generator.zero_grad()
        if not g_loss.requires_grad:
            raise Wrong(
                "g_loss carries no gradient to the generator",
                "do not detach the fake in the generator's loss",
            )
        g_loss.backward()
        if generator.weight.grad is None or generator.weight.grad.abs().sum() == 0:
            raise Wrong(
                "g_loss carries no gradient to the generator",
                "do not detach the fake in the generator's loss",
            )
    return "both losses match GANTrainer's, and only g_loss reaches the generator."


def _as_module(block) -> nn.Module:
    if isinstance(block, list | tuple) and all(isinstance(m, nn.Module) for m in block):
        return nn.Sequential(*block)
    if isinstance(block, nn.Module):
        return block
    raise Wrong(
        f"generator_block must return an nn.Module (or a list of modules); got "
        f"{type(block).__name__}"
    )


@exercise("7.3", "Repair the notes' generator block", level="medium", kind="debug")
def check_generator_block(answer):
    r"""``answer(in_feat, out_feat)`` must return the notes' block, ``Linear(in_feat,
    out_feat)``, ``BatchNorm1d(out_feat)``, ``LeakyReLU(0.2)``, with the planted defect gone:
    the BatchNorm's :math:`\epsilon` small (the notes' positional ``0.8`` is eps, not momentum)
    and its momentum a weight for the *new* batch (the default 0.1, or Keras' 0.8 translated to
    0.2). The symptom is checked too: on features of standard deviation 0.05, the normalised
    output :math:`(z - \mu) / \sqrt{\sigma^2 + \epsilon}` must have unit variance."""
    block = _as_module(call(answer, 16, 32, what="generator_block"))
    layers = [m for m in block.modules() if not list(m.children())]
    norms = [m for m in layers if isinstance(m, nn.BatchNorm1d)]
    if not norms:
        raise Wrong(
            "the block has no BatchNorm1d any more",
            "repair its arguments; the normalisation itself is not the defect",
        )
    (bn,) = norms[:1]
    if math.isclose(bn.eps, 0.8):
        raise Wrong(
            "eps is still 0.8: the planted defect",
            "BatchNorm1d(num_features, eps, momentum): the second positional argument is eps; "
            "name what you mean (momentum=...) or keep the defaults",
        )
    if bn.eps > 1e-3:
        raise Wrong(f"eps = {bn.eps:g} is far too large", "keep the default eps = 1e-5")
    if bn.momentum is None or not 0.01 <= bn.momentum <= 0.3:
        if bn.momentum is not None and math.isclose(bn.momentum, 0.8):
            raise Wrong(
                "momentum = 0.8 in PyTorch makes each running statistic 80 % the latest batch",
                "PyTorch's momentum weighs the new batch (Keras' weighs the old): Keras' 0.8 "
                "is PyTorch's 0.2, and the default 0.1 is fine",
            )
        raise Wrong(f"momentum = {bn.momentum}; expected about 0.1 (the default) or 0.2", None)
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    if len(linears) != 1 or (linears[0].in_features, linears[0].out_features) != (16, 32):
        raise Wrong("the block must start with one Linear(in_feat, out_feat)", None)
    slopes = [m.negative_slope for m in layers if isinstance(m, nn.LeakyReLU)]
    if slopes != [0.2]:
        raise Wrong("the block must end with LeakyReLU(0.2), as the notes' does", None)
    gen = torch.Generator().manual_seed(_SEED)
    z = 0.05 * torch.randn(512, 32, generator=gen) + 0.3
    bn.train()
    with torch.no_grad():
        std = bn(z).std(0).mean().item()
    if not 0.95 < std < 1.05:
        raise Wrong(
            f"features of standard deviation 0.05 come out with {std:.2f}, not 1",
            "the normalisation divides by sqrt(var + eps): eps must be small next to var",
        )
    out = call(block, torch.randn(8, 16, generator=gen), what="the block")
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (8, 32):
        raise Wrong("the block must map (batch, in_feat) to (batch, out_feat)", None)
    return (
        f"eps = {bn.eps:g}, momentum = {bn.momentum:g}: small-variance features come out with "
        f"unit variance ({std:.3f})."
    )


def _features(n, k, shift, rng):
    mix = rng.normal(size=(k, k))
    return rng.normal(size=(n, k)) @ mix + shift


@exercise("7.4", "The Fréchet distance of two Gaussians", level="hard", kind="implement")
def check_frechet(answer):
    r"""``answer(feats_a, feats_b)``, NumPy arrays of shape ``(n_a, k)`` and ``(n_b, k)``, must
    return the float

    .. math::

        d^2 = \lVert \mu_a - \mu_b \rVert^2
            + \operatorname{Tr}\big(\Sigma_a + \Sigma_b - 2 (\Sigma_a \Sigma_b)^{1/2}\big)

    (sample covariances with divisor :math:`n - 1`) to a relative 1e-6, as
    :func:`companion.frechet_distance`, also for identical sets (0) and for fewer samples than
    features (singular covariances; finite, real)."""
    rng = np.random.default_rng(_SEED)
    a, b = _features(300, 5, 0.0, rng), _features(200, 5, 0.5, rng)
    try:
        got = number(call(answer, a, b, what="frechet"), "frechet's result")
    except Wrong as wrong:
        if " raised " not in wrong.message:
            raise
        raise Wrong(
            wrong.message,
            "features are columns: np.cov(x) treats rows as variables, so use "
            "np.cov(x, rowvar=False) (shape (k, k)) and x.mean(0)",
        ) from None
    expected = frechet_distance(a, b)
    if not math.isclose(got, expected, rel_tol=1e-6):
        mu = np.sum((a.mean(0) - b.mean(0)) ** 2)
        sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        ba, bb = np.cov(a, rowvar=False, bias=True), np.cov(b, rowvar=False, bias=True)
        if math.isclose(got, math.sqrt(expected), rel_tol=1e-6):
            raise Wrong("you returned d, not d^2", "FID reports the squared distance: no sqrt")
        vals = np.linalg.eigvals(ba @ bb)
        biased = mu + np.trace(ba + bb) - 2 * np.sum(np.sqrt(np.abs(vals)))
        if math.isclose(got, biased, rel_tol=1e-6):
            raise Wrong(
                "your covariances divide by n, not n - 1",
                "np.cov(x, rowvar=False) uses n - 1 (as companion does)",
            )
        elementwise = mu + np.trace(sa + sb) - 2 * np.trace(np.sqrt(np.abs(sa @ sb)))
        if math.isclose(got, elementwise, rel_tol=1e-4):
            raise Wrong(
                "you took the square root of each entry of Sigma_a Sigma_b",
                "(Sigma_a Sigma_b)^(1/2) is a matrix square root; its trace is the sum of "
                "the square roots of the eigenvalues of Sigma_a Sigma_b",
            )
        if math.isclose(got, mu + np.trace(sa + sb) - 2 * math.sqrt(np.trace(sa @ sb))):
            raise Wrong(
                "you used sqrt(Tr(Sigma_a Sigma_b)), not Tr((Sigma_a Sigma_b)^(1/2))",
                "the trace of a matrix square root is the sum of the square roots of its "
                "eigenvalues, not the square root of the trace",
            )
        no_mean = expected - mu
        if math.isclose(got, no_mean, rel_tol=1e-6):
            raise Wrong("the mean term is missing", "add ||mu_a - mu_b||^2")
        raise Wrong(
            f"you return {got:.6g}; the Fréchet distance is {expected:.6g}",
            "np.cov(x) treats rows as variables: features are columns, so rowvar=False",
        )
    same = number(call(answer, a, a.copy(), what="frechet"), "frechet's result")
    if abs(same) > 1e-6:
        raise Wrong(f"two identical sets give {same:.3g}, not 0", None)
    small_a, small_b = _features(4, 6, 0.0, rng), _features(5, 6, 1.0, rng)
    try:
        with np.errstate(all="ignore"):
            raw = call(answer, small_a, small_b, what="frechet")
        raw = np.real_if_close(raw)
        if isinstance(raw, np.ndarray) and raw.ndim == 0:
            raw = raw.item()
        got = number(raw, "frechet's result")
    except Wrong as wrong:
        raise Wrong(
            f"with 4 and 5 samples of 6 features (singular covariances): {wrong.message}",
            "scipy.linalg.sqrtm can return complex values or NaN there; the trace of "
            "(Sigma_a Sigma_b)^(1/2) is the sum of sqrt(eigenvalues) of the symmetric "
            "Sigma_a^(1/2) Sigma_b Sigma_a^(1/2), clipped at 0",
        ) from None
    expected = frechet_distance(small_a, small_b)
    if not math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9):
        raise Wrong(
            f"with fewer samples than features you return {got:.6g}; expected {expected:.6g}",
            "clip tiny negative eigenvalues to 0 before the square root",
        )
    return (
        f"your d^2 matches frechet_distance ({expected:.4g} on the singular case), "
        "and is 0 for a = b."
    )
