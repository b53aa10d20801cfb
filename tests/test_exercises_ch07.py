"""Chapter 7's exercises: realistic wrong answers get their intended hint."""

import math

import numpy as np
import scipy.linalg
import torch
from test_exercises import wrong_answer_test
from torch import nn

from companion.exercises import check


def losses(*, real_t=None, fake_t=0.0, g_t=1.0, detach=True, half=0.5, g_sign=1.0):
    def gan_losses(discriminator, real, fake, smoothing):
        bce = nn.BCEWithLogitsLoss()
        r = discriminator(real)
        f = discriminator(fake.detach() if detach else fake)
        t = 1 - smoothing if real_t is None else real_t
        ft = smoothing if fake_t == "smoothed" else fake_t
        d_loss = half * (bce(r, torch.full_like(r, t)) + bce(f, torch.full_like(f, ft)))
        g = discriminator(fake)
        return d_loss, g_sign * bce(g, torch.full_like(g, g_t))

    return gan_losses


def swapped(discriminator, real, fake, smoothing):
    bce = nn.BCEWithLogitsLoss()
    r, f = discriminator(real), discriminator(fake.detach())
    d_loss = 0.5 * (bce(r, torch.zeros_like(r)) + bce(f, torch.full_like(f, 1 - smoothing)))
    g = discriminator(fake)
    return d_loss, bce(g, torch.ones_like(g))


def g_detached(discriminator, real, fake, smoothing):
    d_loss, _ = losses()(discriminator, real, fake, smoothing)
    g = discriminator(fake.detach())
    return d_loss, nn.BCEWithLogitsLoss()(g, torch.ones_like(g))


def block(bn=lambda n: nn.BatchNorm1d(n), slope=0.2, as_list=False):
    def generator_block(in_feat, out_feat):
        layers = [nn.Linear(in_feat, out_feat), bn(out_feat), nn.LeakyReLU(slope)]
        return layers if as_list else nn.Sequential(*layers)

    return generator_block


def frechet_variant(*, bias=False, root="eig", mean=True, squared=True):
    def frechet(a, b):
        ca = np.cov(a, rowvar=False, bias=bias)
        cb = np.cov(b, rowvar=False, bias=bias)
        if root == "eig":
            tr = np.sum(np.sqrt(np.abs(np.linalg.eigvals(ca @ cb))))
        elif root == "sqrtm":
            tr = np.trace(scipy.linalg.sqrtm(ca @ cb))
        elif root == "elementwise":
            tr = np.trace(np.sqrt(np.abs(ca @ cb)))
        else:
            tr = math.sqrt(np.trace(ca @ cb))
        d2 = np.trace(ca + cb) - 2 * tr
        if mean:
            d2 += np.sum((a.mean(0) - b.mean(0)) ** 2)
        return float(d2 if squared else math.sqrt(d2))

    return frechet


WRONG = [
    ("7.1", 0.8, "*probability*"),
    ("7.1", math.log(0.8), "not ln p"),
    ("7.1", math.log10(4), "natural logarithm"),
    ("7.1", math.log(9), "sigma(l) - t"),
    ("7.1", 100.0, "unsmoothed"),
    ("7.2", swapped, "labels swapped"),
    ("7.2", losses(detach=False), "fake.detach()"),
    ("7.2", losses(fake_t="smoothed"), "one-sided"),
    ("7.2", losses(real_t=1.0), "smoothing is ignored"),
    ("7.2", losses(half=1.0), "twice"),
    ("7.2", losses(g_t=0.0, g_sign=-1.0), "non-saturating"),
    ("7.2", losses(g_t=0.0), "target 0"),
    ("7.2", g_detached, "do not detach"),
    ("7.2", lambda d, r, f, s: (0.0, 0.0), "tensors"),
    ("7.4", frechet_variant(bias=True), "divide by n"),
    ("7.4", frechet_variant(root="elementwise"), "matrix square root"),
    ("7.4", frechet_variant(root="trace"), "sqrt(Tr(Sigma_a Sigma_b))"),
    ("7.4", frechet_variant(mean=False), "mean term"),
    ("7.4", frechet_variant(squared=False), "not d^2"),
    ("7.4", lambda a, b: frechet_variant()(a.T, b.T), "rowvar=False"),
]


test_a_realistic_wrong_answer_gets_its_intended_hint = wrong_answer_test(WRONG)


def test_sqrtm_answer_is_caught_on_singular_covariances_or_passes():
    """scipy's sqrtm agrees on full-rank covariances; on singular ones it may go complex."""
    result = check("7.4", frechet_variant(root="sqrtm"), quiet=True)
    assert result.status in ("correct", "wrong")
    if result.status == "wrong":
        assert "singular" in result.message or "fewer samples" in result.message, str(result)


def test_repaired_generator_block_passes_as_a_module_or_a_list():
    for answer in (block(), block(as_list=True), block(lambda n: nn.BatchNorm1d(n, momentum=0.2))):
        assert check("7.3", answer, quiet=True).status == "correct"
