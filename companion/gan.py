r"""Generative adversarial networks, and the Fréchet distance that scores them (chapter 7).

A generator :math:`G` maps noise :math:`\mathbf z \sim \mathcal N(0, I)` to images; a
discriminator :math:`D` maps an image to a **logit** :math:`D(\mathbf x) \in \mathbb R`, whose
sigmoid :math:`\sigma(D(\mathbf x))` is the probability that :math:`\mathbf x` is real. The two
play the minimax game of Goodfellow et al. (2014),

.. math::

    \min_G \max_D \;
        \mathbb E_{\mathbf x}\big[\log \sigma(D(\mathbf x))\big]
        + \mathbb E_{\mathbf z}\big[\log\big(1 - \sigma(D(G(\mathbf z)))\big)\big],

with the generator trained on the *non-saturating* loss :math:`-\log \sigma(D(G(\mathbf z)))`
instead of :math:`\log(1 - \sigma(D(G(\mathbf z))))`, whose gradient vanishes exactly when the
generator is bad and the discriminator sure of itself.

Two defects of the original notes are fixed here (each has a test in ``tests/test_gan.py``):

* ``nn.BatchNorm1d(out_feat, 0.8)`` sets **eps** (the constant added to the variance) to 0.8,
  not the momentum; we use the defaults, ``eps=1e-5`` and ``momentum=0.1``.
* ``nn.Sigmoid`` followed by :class:`torch.nn.BCELoss` saturates: from a logit of about 17 the
  sigmoid rounds to exactly 1 in float32, PyTorch clamps :math:`\log 0` to :math:`-100`, and a
  fake judged real (target 0) gives loss 100 and gradient zero; with target 1 (the generator's
  loss) the backward divides by :math:`\max(p(1-p), 10^{-12})`, which cuts the gradient from a
  logit of about :math:`-28`. The discriminator here returns logits and the loss is
  :class:`torch.nn.BCEWithLogitsLoss`, which evaluates :math:`\log \sigma` stably.

The notes' ``LeakyReLU(0.2, inplace=True)`` is not a defect (after a ``Linear`` or a
``BatchNorm1d`` the gradients are bit-for-bit the same), but it is dropped: it overwrites the
output that a forward hook on the preceding layer captured, and a full backward hook on it
raises ``RuntimeError``.
"""

from __future__ import annotations

import contextlib
import numbers

import numpy as np
import torch
from torch import nn

from . import _validate
from .optim import Adam
from .utils import get_device

__all__ = [
    "Generator",
    "Discriminator",
    "GANTrainer",
    "frechet_distance",
    "class_coverage",
    "DigitsClassifier",
    "train_digits_classifier",
    "train_digits_gan",
]


def _img_shape(img_shape) -> tuple[int, ...]:
    """Return ``img_shape`` as a tuple of positive ints, e.g. ``(1, 8, 8)``."""
    if not isinstance(img_shape, tuple | list) or len(img_shape) == 0:
        raise ValueError(f"img_shape must be a non-empty tuple of positive ints; got {img_shape!r}")
    for dim in img_shape:
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim <= 0:
            raise ValueError(f"img_shape must be a tuple of positive ints; got {img_shape!r}")
    return tuple(int(d) for d in img_shape)


def _widths(hidden, name: str) -> list[int]:
    """Return ``hidden`` as a non-empty list of positive ints."""
    if isinstance(hidden, numbers.Integral) or not hasattr(hidden, "__iter__"):
        raise TypeError(f"{name} must be a sequence of ints, e.g. (128, 256); got {hidden!r}")
    widths = [_validate.positive_int(h, f"{name} entry") for h in hidden]
    if not widths:
        raise ValueError(f"{name} must hold at least one width")
    return widths


class Generator(nn.Module):
    r"""An MLP generator: noise :math:`\mathbf z \in \mathbb R^{d}` to an image in :math:`[-1, 1]`.

    Hidden layer :math:`l` computes

    .. math::

        \mathbf h^{(l)} = \operatorname{LeakyReLU}_{0.2}\big(
            \operatorname{BN}(W^{(l)} \mathbf h^{(l-1)} + \mathbf b^{(l)})\big),

    without batch normalisation in the first layer (as in the notes), and the output is
    :math:`\tanh(W \mathbf h + \mathbf b)` reshaped to ``img_shape``. So real images must be
    scaled to :math:`[-1, 1]` too (e.g. ``2 * x - 1`` for pixels in :math:`[0, 1]`).

    Parameters
    ----------
    latent_dim : int
        Dimension :math:`d` of the noise.
    img_shape : tuple of int
        Shape of one image, e.g. ``(1, 8, 8)``.
    hidden : sequence of int, default (128, 256, 512, 1024)
        Widths of the hidden layers (the notes' defaults).
    batch_norm : bool, default True
        Batch normalisation after every hidden layer but the first, with PyTorch's defaults
        ``eps=1e-5`` and ``momentum=0.1``. (The notes' ``nn.BatchNorm1d(n, 0.8)`` sets ``eps``
        to 0.8 by accident: the second positional argument is ``eps``, not ``momentum``.)

    Raises
    ------
    TypeError, ValueError
        If ``latent_dim`` is not a positive int, ``img_shape`` not a tuple of positive ints, or a
        hidden width not a positive int.
    """

    def __init__(self, latent_dim, img_shape, hidden=(128, 256, 512, 1024), batch_norm=True):
        super().__init__()
        self.latent_dim = _validate.positive_int(latent_dim, "latent_dim")
        self.img_shape = _img_shape(img_shape)
        widths = _widths(hidden, "hidden")
        layers, width = [], self.latent_dim
        for i, out in enumerate(widths):
            layers.append(nn.Linear(width, out))
            if batch_norm and i > 0:
                layers.append(nn.BatchNorm1d(out))
            layers.append(nn.LeakyReLU(0.2))
            width = out
        layers += [nn.Linear(width, int(np.prod(self.img_shape))), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images for a batch of noise vectors.

        Parameters
        ----------
        z : torch.Tensor of shape (batch, latent_dim)

        Returns
        -------
        torch.Tensor of shape (batch, *img_shape), values in [-1, 1]

        Raises
        ------
        ValueError
            If ``z`` does not have shape ``(batch, latent_dim)``.
        """
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (batch, {self.latent_dim}); got {tuple(z.shape)}")
        return self.model(z).view(z.shape[0], *self.img_shape)


class Discriminator(nn.Module):
    r"""An MLP discriminator returning one **logit** per image (no sigmoid layer).

    .. math::

        \mathbf h^{(l)} = \operatorname{Dropout}_p\big(\operatorname{LeakyReLU}_{0.2}
            (W^{(l)} \mathbf h^{(l-1)} + \mathbf b^{(l)})\big), \qquad
        D(\mathbf x) = \mathbf w^\top \mathbf h^{(L)} + b,

    with :math:`\mathbf h^{(0)}` the flattened image. :math:`\sigma(D(\mathbf x))` is the
    probability that :math:`\mathbf x` is real; train with
    :class:`torch.nn.BCEWithLogitsLoss`, never ``Sigmoid`` + ``BCELoss`` (which saturates).

    Parameters
    ----------
    img_shape : tuple of int
    hidden : sequence of int, default (512, 256)
    dropout : float, default 0.3
        Dropout probability in :math:`[0, 1)` after each hidden layer.

    Raises
    ------
    TypeError, ValueError
        On a bad ``img_shape``, hidden width or ``dropout``.
    """

    def __init__(self, img_shape, hidden=(512, 256), dropout=0.3):
        super().__init__()
        self.img_shape = _img_shape(img_shape)
        widths = _widths(hidden, "hidden")
        dropout = _validate.nonnegative_float(dropout, "dropout")
        if dropout >= 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {dropout}")
        layers, width = [], int(np.prod(self.img_shape))
        for out in widths:
            layers += [nn.Linear(width, out), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            width = out
        layers.append(nn.Linear(width, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(batch, 1)`` for images of shape ``(batch, *img_shape)``.

        Raises
        ------
        ValueError
            If ``img`` does not have shape ``(batch, *img_shape)``.
        """
        if tuple(img.shape[1:]) != self.img_shape:
            raise ValueError(
                f"img must have shape (batch, {', '.join(map(str, self.img_shape))}); "
                f"got {tuple(img.shape)}"
            )
        return self.model(img.flatten(1))


class GANTrainer:
    r"""Alternate discriminator and generator steps with Adam; record losses and samples.

    One :meth:`train_step` on a real batch :math:`\{\mathbf x_i\}_{i=1}^m` with fresh noise
    :math:`\{\mathbf z_i\}` and :math:`\ell(s, t) = -t \log\sigma(s) - (1-t)\log(1-\sigma(s))`
    (:class:`torch.nn.BCEWithLogitsLoss`):

    1. **Discriminator**, on the real batch and the *detached* fakes
       :math:`\tilde{\mathbf x}_i = G(\mathbf z_i)`, with real target :math:`1 - s` (one-sided
       label smoothing :math:`s`, fakes keep target 0):

       .. math::

          L_D = \tfrac12 \Big[\tfrac1m \textstyle\sum_i \ell(D(\mathbf x_i), 1 - s)
              + \tfrac1m \sum_i \ell(D(\tilde{\mathbf x}_i), 0)\Big].

    2. **Generator**, non-saturating, through the *updated* discriminator:

       .. math::

          L_G = \tfrac1m \textstyle\sum_i \ell(D(G(\mathbf z_i)), 1)
              = -\tfrac1m \sum_i \log \sigma(D(G(\mathbf z_i))).

    This is the usual order (discriminator first, as in DCGAN); the notes update the generator
    first, which only shifts which network sees the other's latest weights.

    Parameters
    ----------
    generator : Generator (or any module mapping (batch, latent_dim) noise to images)
    discriminator : Discriminator (or any module mapping images to (batch, 1) logits)
    latent_dim : int
    lr : float, default 2e-4
    betas : tuple of two floats, default (0.5, 0.999)
        Both networks get their own :class:`companion.optim.Adam` with these settings.
    device : str or torch.device, optional
        ``None`` picks CUDA when present, else the CPU.
    label_smoothing : float, default 0.0
        One-sided label smoothing :math:`s \in [0, 1)`: the target for real images is
        :math:`1 - s`.
    seed : int, optional
        Seeds the trainer's own random streams: the noise of training and :meth:`sample`, and
        the dropout masks drawn inside :meth:`train_step` (run on a private copy of PyTorch's
        RNG state, so the caller's global generator is neither reseeded nor advanced). With the
        same seed, the same initial weights and the same batches, two runs give identical
        histories. ``None`` draws the noise from a randomly seeded private generator and the
        dropout masks from the global one. The fixed noise of :attr:`fixed_noise` always comes
        from its own generator seeded with ``seed`` (0 if None).
    n_fixed : int, default 64
        Number of fixed noise vectors whose images :meth:`fit` records.

    Attributes
    ----------
    history : dict of list
        Per epoch of :meth:`fit`: the means over batches of ``d_loss``, ``g_loss``, ``d_real``
        and ``d_fake``; and ``samples``, a list of CPU tensors ``(n_fixed, *img_shape)``, the
        generator's images of :attr:`fixed_noise` after every ``sample_every``-th epoch.
    fixed_noise : torch.Tensor of shape (n_fixed, latent_dim)
    epoch : int
        Epochs completed.

    Raises
    ------
    TypeError, ValueError
        On a non-module network or bad hyper-parameters.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        latent_dim,
        lr=2e-4,
        betas=(0.5, 0.999),
        device=None,
        label_smoothing=0.0,
        seed=None,
        n_fixed=64,
    ):
        for name, net in (("generator", generator), ("discriminator", discriminator)):
            if not isinstance(net, nn.Module):
                raise TypeError(f"{name} must be a torch.nn.Module; got {type(net).__name__}")
        self.latent_dim = _validate.positive_int(latent_dim, "latent_dim")
        gen_latent = getattr(generator, "latent_dim", self.latent_dim)
        if gen_latent != self.latent_dim:
            raise ValueError(
                f"latent_dim is {self.latent_dim} but the generator takes {gen_latent}"
            )
        lr = _validate.positive_float(lr, "lr")
        self.label_smoothing = _validate.nonnegative_float(label_smoothing, "label_smoothing")
        if self.label_smoothing >= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing}")
        n_fixed = _validate.positive_int(n_fixed, "n_fixed")
        if seed is not None:
            seed = _validate.nonnegative_int(seed, "seed")
        self.device = get_device(device)
        self.generator = generator.to(self.device)
        self.discriminator = discriminator.to(self.device)
        self.img_shape = getattr(generator, "img_shape", None)
        self.criterion = nn.BCEWithLogitsLoss()
        self.optimizer_G = Adam(self.generator.parameters(), lr=lr, betas=betas)
        self.optimizer_D = Adam(self.discriminator.parameters(), lr=lr, betas=betas)
        self._rng = torch.Generator()
        if seed is None:
            self._rng.seed()
        else:
            self._rng.manual_seed(seed)
        self._dropout_state = None  # private (CPU, CUDA) RNG states for the dropout masks
        if seed is not None:
            with torch.random.fork_rng(devices=self._rng_devices()):
                torch.manual_seed(seed)
                self._dropout_state = self._get_rng_states()
        fixed_rng = torch.Generator().manual_seed(0 if seed is None else seed)
        self.fixed_noise = torch.randn(n_fixed, self.latent_dim, generator=fixed_rng)
        self.history = {k: [] for k in ("d_loss", "g_loss", "d_real", "d_fake", "samples")}
        self.epoch = 0

    def _rng_devices(self) -> list:
        return [self.device] if self.device.type == "cuda" else []

    def _get_rng_states(self) -> tuple:
        cuda = [torch.cuda.get_rng_state(d) for d in self._rng_devices()]
        return torch.get_rng_state(), cuda

    @contextlib.contextmanager
    def _private_rng(self):
        """Run the block on the trainer's own RNG state (if seeded), restoring the caller's."""
        if self._dropout_state is None:
            yield
            return
        with torch.random.fork_rng(devices=self._rng_devices()):
            cpu, cuda = self._dropout_state
            torch.set_rng_state(cpu)
            for d, state in zip(self._rng_devices(), cuda, strict=True):
                torch.cuda.set_rng_state(state, d)
            yield
            self._dropout_state = self._get_rng_states()

    def noise(self, n: int) -> torch.Tensor:
        """``n`` standard normal noise vectors from the trainer's own generator, on its device."""
        n = _validate.positive_int(n, "n")
        return torch.randn(n, self.latent_dim, generator=self._rng).to(self.device)

    def _check_real(self, real) -> torch.Tensor:
        if not isinstance(real, torch.Tensor):
            raise TypeError(f"real must be a torch.Tensor of images; got {type(real).__name__}")
        if not real.is_floating_point():
            raise ValueError(f"real must hold floating-point pixels; got dtype {real.dtype}")
        if self.img_shape is not None and tuple(real.shape[1:]) != tuple(self.img_shape):
            raise ValueError(
                f"real must have shape (batch, {', '.join(map(str, self.img_shape))}); "
                f"got {tuple(real.shape)}"
            )
        if real.ndim < 2 or real.shape[0] < 2:
            raise ValueError(
                f"real must be a batch of at least 2 images (batch normalisation needs 2); "
                f"got shape {tuple(real.shape)}"
            )
        return real.to(self.device)

    def train_step(self, real: torch.Tensor) -> dict:
        r"""One discriminator step, then one generator step, on a batch of real images.

        Parameters
        ----------
        real : torch.Tensor of shape (batch, *img_shape)
            Real images scaled like the generator's output, :math:`[-1, 1]`; batch >= 2.

        Returns
        -------
        dict of float
            ``d_loss`` (:math:`L_D`), ``g_loss`` (:math:`L_G`), ``d_real`` and ``d_fake``: the
            mean probability :math:`\sigma(D(\cdot))` the discriminator gave the real and the
            fake images before its update.

        Raises
        ------
        TypeError, ValueError
            If ``real`` is not a float tensor of shape ``(batch, *img_shape)`` with batch >= 2.
        """
        real = self._check_real(real)
        with self._private_rng():
            return self._train_step(real)

    def _train_step(self, real: torch.Tensor) -> dict:
        m = real.shape[0]
        self.generator.train()
        self.discriminator.train()
        ones = torch.ones(m, 1, device=self.device)
        zeros = torch.zeros(m, 1, device=self.device)

        fake = self.generator(self.noise(m))
        self.optimizer_D.zero_grad()
        real_logits = self.discriminator(real)
        fake_logits = self.discriminator(fake.detach())
        d_loss = 0.5 * (
            self.criterion(real_logits, ones * (1.0 - self.label_smoothing))
            + self.criterion(fake_logits, zeros)
        )
        d_loss.backward()
        self.optimizer_D.step()

        self.optimizer_G.zero_grad()
        g_loss = self.criterion(self.discriminator(fake), ones)
        g_loss.backward()
        self.optimizer_G.step()
        return {
            "d_loss": d_loss.item(),
            "g_loss": g_loss.item(),
            "d_real": torch.sigmoid(real_logits).mean().item(),
            "d_fake": torch.sigmoid(fake_logits).mean().item(),
        }

    @torch.no_grad()
    def sample(self, n: int | None = None) -> torch.Tensor:
        """Images from the generator in evaluation mode, on the CPU.

        Parameters
        ----------
        n : int, optional
            Number of images from fresh noise; ``None`` uses :attr:`fixed_noise`.

        Returns
        -------
        torch.Tensor of shape (n, *img_shape)
        """
        z = self.fixed_noise.to(self.device) if n is None else self.noise(n)
        was_training = self.generator.training
        self.generator.eval()
        try:
            return self.generator(z).cpu()
        finally:
            self.generator.train(was_training)

    def fit(self, loader, epochs, progress: bool = True, sample_every: int = 1) -> dict:
        """Train for ``epochs`` epochs over ``loader``.

        Parameters
        ----------
        loader : iterable of image batches, or of (images, labels) pairs
            Labels are ignored. Batches of fewer than 2 images are skipped.
        epochs : int
        progress : bool, default True
            Show a progress bar over epochs (``tqdm.auto``).
        sample_every : int, default 1
            Record :meth:`sample` of the fixed noise after every ``sample_every``-th epoch.

        Returns
        -------
        dict
            :attr:`history`.

        Raises
        ------
        TypeError, ValueError
            On bad arguments, an empty loader or badly shaped batches.
        FloatingPointError
            If a loss becomes NaN or infinite.
        """
        epochs = _validate.positive_int(epochs, "epochs")
        sample_every = _validate.positive_int(sample_every, "sample_every")
        if not hasattr(loader, "__iter__"):
            raise TypeError("loader must be an iterable of image batches")
        epoch_iter = range(epochs)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(epoch_iter, desc="epochs", leave=False)
            epoch_iter = bar
        keys = ("d_loss", "g_loss", "d_real", "d_fake")
        for _ in epoch_iter:
            sums, n_batches = dict.fromkeys(keys, 0.0), 0
            for batch in loader:
                real = batch[0] if isinstance(batch, tuple | list) else batch
                if isinstance(real, torch.Tensor) and real.ndim >= 1 and real.shape[0] < 2:
                    continue
                stats = self.train_step(real)
                if not all(np.isfinite(v) for v in stats.values()):
                    raise FloatingPointError(f"non-finite loss in epoch {self.epoch + 1}: {stats}")
                for k in keys:
                    sums[k] += stats[k]
                n_batches += 1
            if n_batches == 0:
                raise ValueError("loader is empty: it yields no batch of 2 or more images")
            for k in keys:
                self.history[k].append(sums[k] / n_batches)
            self.epoch += 1
            if self.epoch % sample_every == 0:
                self.history["samples"].append(self.sample())
            if bar is not None:
                bar.set_postfix(
                    d_loss=f"{self.history['d_loss'][-1]:.3f}",
                    g_loss=f"{self.history['g_loss'][-1]:.3f}",
                )
        if bar is not None:
            bar.close()
        return self.history


def _features(x, name: str) -> np.ndarray:
    """Return ``x`` (array or tensor) as a finite float64 matrix with at least 2 rows."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    arr = _validate.matrix(x, name).astype(np.float64)
    if arr.shape[0] < 2:
        raise ValueError(
            f"{name} must hold at least 2 samples to estimate a covariance; got {arr.shape[0]}"
        )
    return arr


def _sqrt_psd(sym: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative round-off clipped)."""
    w, v = np.linalg.eigh(sym)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(feats_a, feats_b) -> float:
    r"""Fréchet distance between Gaussians fitted to two sets of features (FID's formula).

    With the sample means :math:`\boldsymbol\mu_a, \boldsymbol\mu_b` and covariances
    :math:`\Sigma_a, \Sigma_b` (divisor :math:`n - 1`),

    .. math::

        d^2 = \lVert \boldsymbol\mu_a - \boldsymbol\mu_b \rVert^2
            + \operatorname{Tr}\big(\Sigma_a + \Sigma_b - 2 (\Sigma_a \Sigma_b)^{1/2}\big).

    :math:`\Sigma_a \Sigma_b` is not symmetric, so its square root is computed without a
    general matrix square root: it is similar to the symmetric positive semi-definite
    :math:`M = \Sigma_a^{1/2} \Sigma_b \Sigma_a^{1/2}`, hence
    :math:`\operatorname{Tr}(\Sigma_a \Sigma_b)^{1/2} = \sum_k \sqrt{\lambda_k(M)}`, with the
    eigenvalues from :func:`numpy.linalg.eigh` and tiny negative round-off clipped to 0. This
    agrees with the real part of ``scipy.linalg.sqrtm`` but never returns complex values or NaN
    for singular covariances (e.g. fewer samples than features). Computed in float64.

    Parameters
    ----------
    feats_a, feats_b : array_like or torch.Tensor of shape (n_a, k) and (n_b, k)
        Features, one row per sample; at least 2 rows each, the same number of columns.

    Returns
    -------
    float
        :math:`d^2 \ge 0` (the squared distance, as FID reports it).

    Raises
    ------
    ValueError
        If an input is not 2-D, has fewer than 2 rows, holds NaN/inf, or the feature counts
        differ.
    """
    a = _features(feats_a, "feats_a")
    b = _features(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"feats_a has {a.shape[1]} features but feats_b has {b.shape[1]}; they must match"
        )
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _sqrt_psd(cov_a)
    m = root_a @ cov_b @ root_a
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(0.5 * (m + m.T)), 0.0, None)).sum()
    d2 = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * tr_sqrt)
    return max(d2, 0.0)


def class_coverage(logits, threshold=0.9, min_share=0.005, max_share=0.3) -> dict:
    r"""Does a set of images cover every class, none overwhelmingly? Counted on sure predictions.

    With class probabilities :math:`\mathbf p_i = \operatorname{softmax}(\mathbf z_i)` for
    image :math:`i` of :math:`n`, an image counts for class :math:`k` only if the classifier is
    sure of it, :math:`\max_j p_{ij} > \tau` and :math:`\arg\max_j p_{ij} = k`:

    .. math::

        c_k = \#\{i : \arg\max_j p_{ij} = k,\ \max_j p_{ij} > \tau\}.

    The set **passes** if every class holds at least a share ``min_share`` of all the images,
    :math:`\min_k c_k \ge s_{\min}\, n`, and none more than ``max_share`` of the sure ones,
    :math:`\max_k c_k \le s_{\max} \sum_k c_k`. The plain argmax count (every image in some
    class) is returned too: it cannot fail, since noise spreads over the classes.

    Parameters
    ----------
    logits : torch.Tensor of shape (n, n_classes)
        The classifier's logits for the images, ``n >= 1``, ``n_classes >= 2``.
    threshold : float, default 0.9
        :math:`\tau` in :math:`[0, 1)`.
    min_share : float, default 0.005
        :math:`s_{\min}` in :math:`[0, 1]`: 0.5 % of the images per class.
    max_share : float, default 0.3
        :math:`s_{\max}` in :math:`(0, 1]`.

    Returns
    -------
    dict
        ``argmax`` and ``confident`` (LongTensors of counts per class), ``confident_share``
        (:math:`\sum_k c_k / n`), ``fewest`` (:math:`\min_k c_k / n`), ``top_share``
        (:math:`\max_k c_k / \sum_k c_k`, 0 if no image is sure) and ``passes`` (bool; False
        if no image is sure).

    Raises
    ------
    TypeError
        If ``logits`` is not a floating-point tensor.
    ValueError
        If ``logits`` is not 2-D with at least one row and two columns, holds NaN/inf, or a
        share or the threshold is out of range.
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        got = logits.dtype if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise TypeError(f"logits must be a floating-point torch.Tensor; got {got}")
    if logits.ndim != 2 or logits.shape[0] < 1 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape (n, n_classes >= 2); got {tuple(logits.shape)}")
    if not torch.isfinite(logits).all():
        raise ValueError("logits must be finite")
    threshold = _validate.nonnegative_float(threshold, "threshold")
    if threshold >= 1.0:
        raise ValueError(f"threshold must be in [0, 1); got {threshold}")
    min_share = _validate.nonnegative_float(min_share, "min_share")
    if min_share > 1.0:
        raise ValueError(f"min_share must be in [0, 1]; got {min_share}")
    max_share = _validate.positive_float(max_share, "max_share")
    if max_share > 1.0:
        raise ValueError(f"max_share must be in (0, 1]; got {max_share}")
    n, n_classes = logits.shape
    confidence, predicted = torch.softmax(logits.detach().double(), 1).max(1)
    argmax = torch.bincount(predicted, minlength=n_classes)
    confident = torch.bincount(predicted[confidence > threshold], minlength=n_classes)
    n_sure = int(confident.sum())
    top_share = int(confident.max()) / n_sure if n_sure else 0.0
    every_class = bool((confident >= min_share * n).all())
    return {
        "argmax": argmax,
        "confident": confident,
        "confident_share": n_sure / n,
        "fewest": int(confident.min()) / n,
        "top_share": top_share,
        "passes": n_sure > 0 and every_class and top_share <= max_share,
    }


class DigitsClassifier(nn.Module):
    r"""A small MLP for 8×8 digits in :math:`[-1, 1]`; its penultimate layer feeds the FID.

    .. math::

        \mathbf f(\mathbf x) = \operatorname{ReLU}(W_2\, \operatorname{ReLU}(W_1 \mathbf x +
            \mathbf b_1) + \mathbf b_2), \qquad \mathbf z = W_3 \mathbf f(\mathbf x) + \mathbf b_3.

    :meth:`features` returns :math:`\mathbf f(\mathbf x)`, the offline stand-in for the Inception
    features of the usual FID.

    Parameters
    ----------
    hidden : tuple of two ints, default (128, 64)
        The second is the feature dimension.
    dropout : float, default 0.2
    """

    img_shape = (1, 8, 8)

    def __init__(self, hidden=(128, 64), dropout=0.2):
        super().__init__()
        h1, h2 = _widths(hidden, "hidden")
        self.body = nn.Sequential(
            nn.Linear(64, h1), nn.ReLU(), nn.Dropout(dropout), nn.Linear(h1, h2), nn.ReLU()
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(h2, 10))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations, shape ``(batch, hidden[1])``, for images ``(batch, 1, 8, 8)``
        (or ``(batch, 64)``) scaled to :math:`[-1, 1]`."""
        if x.ndim < 2 or x.shape[1:].numel() != 64:
            raise ValueError(f"x must hold 8x8 images, (batch, 1, 8, 8); got {tuple(x.shape)}")
        return self.body(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, shape ``(batch, 10)``."""
        return self.head(self.features(x))


def train_digits_classifier(seed: int = 0, epochs: int = 40, n_test: int = 397):
    r"""Train :class:`DigitsClassifier` on scikit-learn's digits, deterministically, in seconds.

    The 1797 images (scaled to :math:`[-1, 1]`, like a tanh generator's output) are split by a
    seeded permutation into ``1797 - n_test`` training and ``n_test`` held-out images; Adam
    (lr 1e-3, batch 64) minimises the cross-entropy for ``epochs`` epochs.

    Parameters
    ----------
    seed : int, default 0
    epochs : int, default 40
    n_test : int, default 397
        Held-out images (not trained on); the GAN of chapter 7 compares its samples with them.

    Returns
    -------
    DigitsClassifier
        In evaluation mode, on the CPU, with attributes ``train_idx`` and ``test_idx`` (index
        tensors into :func:`companion.data.load_digits_tensors`) and ``test_accuracy`` (float).
    """
    from .data import load_digits_tensors

    seed = _validate.nonnegative_int(seed, "seed")
    epochs = _validate.positive_int(epochs, "epochs")
    n_test = _validate.positive_int(n_test, "n_test")
    X, y = load_digits_tensors()
    if n_test >= len(X):
        raise ValueError(f"n_test must be below {len(X)}; got {n_test}")
    X = X * 2 - 1
    rng = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(X), generator=rng)
    test_idx, train_idx = perm[:n_test], perm[n_test:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitsClassifier()
        optimizer = Adam(model.parameters(), lr=1e-3)
        criterion = nn.CrossEntropyLoss()
        Xtr, ytr = X[train_idx], y[train_idx]
        for _ in range(epochs):
            order = torch.randperm(len(Xtr), generator=rng)
            for start in range(0, len(Xtr), 64):
                idx = order[start : start + 64]
                optimizer.zero_grad()
                criterion(model(Xtr[idx]), ytr[idx]).backward()
                optimizer.step()
    model.eval()
    with torch.no_grad():
        acc = (model(X[test_idx]).argmax(1) == y[test_idx]).float().mean().item()
    model.train_idx, model.test_idx, model.test_accuracy = train_idx, test_idx, acc
    return model


def train_digits_gan(images, seed: int = 0, epochs: int = 60, device="cpu"):
    r"""Train chapter 7's GAN on 8×8 digits, deterministically: the recipe, in one place.

    After ``seed_everything(seed)``: a :class:`Generator` from 32-dimensional noise with hidden
    widths (128, 256), a :class:`Discriminator` with (256, 128) and dropout 0.3, and a
    :class:`GANTrainer` with Adam at :math:`5 \times 10^{-4}`, :math:`\beta = (0.5, 0.999)`,
    one-sided label smoothing 0.1 (real target 0.9) and its own noise generator seeded with
    ``seed``; then ``epochs`` epochs over ``images`` in shuffled batches of 64 (the last,
    incomplete one dropped), recording samples of the fixed noise after every epoch.

    Parameters
    ----------
    images : torch.Tensor
        Training images in :math:`[-1, 1]`, shape ``(n, 1, 8, 8)``.
    seed : int, default 0
        Seeds the weights, the noise and the batch order.
    epochs : int, default 60
        ``0`` returns the untrained pair (the chapter's control) and an empty history.
    device : str or torch.device, default "cpu"

    Returns
    -------
    gan : GANTrainer
    history : dict
        What :meth:`GANTrainer.fit` returns (``{}`` for ``epochs=0``).
    """
    from torch.utils.data import DataLoader, TensorDataset

    from .utils import seed_everything

    if not isinstance(images, torch.Tensor):
        name = type(images).__name__
        raise TypeError(f"images must be a tensor; got {name}")
    if tuple(images.shape[1:]) != (1, 8, 8):
        shape = tuple(images.shape)
        raise ValueError(f"images must have shape (n, 1, 8, 8); got {shape}")
    seed = _validate.nonnegative_int(seed, "seed")
    epochs = _validate.nonnegative_int(epochs, "epochs")
    seed_everything(seed)
    generator = Generator(32, (1, 8, 8), hidden=(128, 256))
    discriminator = Discriminator((1, 8, 8), hidden=(256, 128), dropout=0.3)
    gan = GANTrainer(
        generator, discriminator, latent_dim=32, lr=5e-4,
        betas=(0.5, 0.999), device=device, label_smoothing=0.1, seed=seed,
    )  # fmt: skip
    if epochs == 0:
        return gan, {}
    loader = DataLoader(
        TensorDataset(images),
        batch_size=64,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    history = gan.fit(loader, epochs, progress=False, sample_every=1)
    return gan, history
