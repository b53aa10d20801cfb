"""Small, offline, deterministic data sets for the chapters.

Nothing here downloads anything: data are synthesised from a seed or come bundled with
scikit-learn.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
)

from . import _validate

__all__ = [
    "make_separable",
    "make_seed_dataset",
    "train_val_loaders",
    "load_digits_tensors",
    "make_reversal_task",
    "make_shapes",
    "SHAPE_NAMES",
    "make_glyphs",
    "make_pasted_digits",
    "few_shot_split",
]


def make_separable(n_samples: int = 100, margin: float = 0.3, seed: int = 0):
    r"""Two linearly separable classes in the plane, split by a known line with a known margin.

    Points are uniform on :math:`[-3, 3]^2`; those closer than ``margin`` to the line
    :math:`\mathbf w^\star \cdot \mathbf x + b^\star = 0` with :math:`\mathbf w^\star = (1, 2)`,
    :math:`b^\star = -1/2` are discarded, and :math:`y = 1` exactly when
    :math:`\mathbf w^\star \cdot \mathbf x + b^\star > 0`. The known separator lets a chapter
    check the perceptron convergence bound.

    Parameters
    ----------
    n_samples : int, default 100
    margin : float, default 0.3
        Smallest distance of a point from the separating line; must be below 1.
    seed : int, default 0

    Returns
    -------
    X : ndarray of float64, shape (n_samples, 2)
    y : ndarray of int64, shape (n_samples,)
        Labels 0 and 1.
    w, b : ndarray of shape (2,) and float
        The separating line :math:`(\mathbf w^\star, b^\star)`.

    Raises
    ------
    ValueError
        If ``n_samples`` is not positive or ``margin`` is not in :math:`(0, 1)`.
    """
    n_samples = _validate.positive_int(n_samples, "n_samples")
    margin = _validate.positive_float(margin, "margin")
    if margin >= 1.0:
        raise ValueError(f"margin must be below 1 so that points remain; got {margin}")
    rng = np.random.default_rng(_validate.nonnegative_int(seed, "seed"))
    w, b = np.array([1.0, 2.0]), -0.5
    kept = np.empty((0, 2))
    while len(kept) < n_samples:  # about 70 % of the square survives at margin 1
        X = rng.uniform(-3.0, 3.0, size=(2 * n_samples, 2))
        kept = np.vstack([kept, X[np.abs(X @ w + b) / np.linalg.norm(w) > margin]])
    X = kept[:n_samples]
    return X, (X @ w + b > 0).astype(np.int64), w, b


def make_seed_dataset(
    n_samples: int = 1000, n_features: int = 10, *, seed: int = 42, n_classes: int = 3
):
    r"""The synthetic 3-class problem of the original notes, bit for bit.

    Features are standard normal, :math:`x \sim \mathcal N(0, I)`, drawn exactly as
    ``np.random.seed(seed); np.random.randn(n_samples, n_features)`` draws them, and

    .. math::

        y = \begin{cases}
            0 & x_0 + x_1 > 0 \text{ and } x_2 > 0 \\
            1 & x_0 + x_1 > 0 \text{ and } x_2 \le 0 \\
            2 & \text{otherwise.}
        \end{cases}

    Only three of the features matter; the rest are noise the model must learn to ignore.
    Unlike the notes' ``create_synthetic_data``, this draws from its own generator and leaves
    NumPy's global random state untouched, and it does not ignore ``n_classes``: the rule
    defines exactly three classes, so any other value is an error. ``seed`` and ``n_classes``
    are keyword-only, so the notes' call ``create_synthetic_data(1000, 10, 3)`` (third argument
    ``n_classes``) cannot silently become ``seed=3`` here.

    Parameters
    ----------
    n_samples : int, default 1000
    n_features : int, default 10
        At least 3, since the rule reads :math:`x_0, x_1, x_2`.
    seed : int, default 42
    n_classes : int, default 3
        Must be 3.

    Returns
    -------
    X : torch.Tensor of float32, shape (n_samples, n_features)
    y : torch.Tensor of int64, shape (n_samples,)
        Labels 0, 1 and 2.

    Raises
    ------
    ValueError
        If ``n_features < 3``, ``n_classes != 3`` or a size is not positive.
    """
    n_samples = _validate.positive_int(n_samples, "n_samples")
    n_features = _validate.positive_int(n_features, "n_features")
    if n_features < 3:
        raise ValueError(
            f"n_features must be at least 3 (the labels use x0, x1, x2); got {n_features}"
        )
    if _validate.positive_int(n_classes, "n_classes") != 3:
        raise ValueError(
            f"n_classes must be 3: the rule of the notes' problem defines three classes; got "
            f"{n_classes}"
        )
    rng = np.random.RandomState(_validate.nonnegative_int(seed, "seed"))  # == np.random.seed
    X = rng.randn(n_samples, n_features)
    upper = X[:, 0] + X[:, 1] > 0
    y = np.where(upper, np.where(X[:, 2] > 0, 0, 1), 2)
    return torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.int64)


def train_val_loaders(X, y, train_size: int = 800, batch_size: int = 32, seed: int = 0):
    """Split ``(X, y)`` into the first ``train_size`` rows and the rest, as two DataLoaders.

    The split is sequential, as in the original notes (the data are already i.i.d.). The
    training loader reshuffles every epoch from its own seeded generator, so two runs with the
    same ``seed`` see the same batches without touching the global random state. The batches
    are those of ``DataLoader(..., batch_size, shuffle=True, generator=...)``, bit for bit,
    but each is taken with one indexing ``X[indices]`` instead of stacked row by row. (Each
    pass over the validation loader, as over any DataLoader without a generator, still draws
    one number from PyTorch's global generator, for its workers' seed.)

    Parameters
    ----------
    X : torch.Tensor of shape (n_samples, ...)
    y : torch.Tensor of shape (n_samples,)
    train_size : int, default 800
        Rows used for training; ``0 < train_size < n_samples``.
    batch_size : int, default 32
    seed : int, default 0
        Seed of the training loader's shuffling.

    Returns
    -------
    train_loader, val_loader : torch.utils.data.DataLoader

    Raises
    ------
    TypeError
        If ``X`` or ``y`` is not a tensor.
    ValueError
        If their lengths differ or ``train_size`` leaves no training or no validation data.
    """
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(
            f"X and y must be torch tensors; got {type(X).__name__} and {type(y).__name__}"
        )
    if len(X) != len(y):
        raise ValueError(f"y has {len(y)} labels but X has {len(X)} samples")
    train_size = _validate.positive_int(train_size, "train_size")
    if train_size >= len(X):
        raise ValueError(
            f"train_size must leave validation data: got {train_size} for {len(X)} samples"
        )
    batch_size = _validate.positive_int(batch_size, "batch_size")
    generator = torch.Generator().manual_seed(_validate.nonnegative_int(seed, "seed"))
    train = TensorDataset(X[:train_size], y[:train_size])
    val = TensorDataset(X[train_size:], y[train_size:])
    # Each batch is one indexing X[indices] instead of batch_size single rows stacked: the
    # same batches, bit for bit, from the same draws of `generator` (the loader's and the
    # sampler's are one object, as in DataLoader(shuffle=True, generator=...)), 2-3x faster.
    shuffled = BatchSampler(RandomSampler(train, generator=generator), batch_size, False)
    in_order = BatchSampler(SequentialSampler(val), batch_size, False)
    return (
        DataLoader(train, batch_size=None, sampler=shuffled, generator=generator),
        DataLoader(val, batch_size=None, sampler=in_order),
    )


def load_digits_tensors():
    """scikit-learn's bundled 8×8 handwritten digits (1797 images), scaled to :math:`[0, 1]`.

    The pixel values 0..16 are divided by 16. No download: the data ship with scikit-learn.

    Returns
    -------
    X : torch.Tensor of float32, shape (1797, 1, 8, 8)
        Images with one channel, ready for a CNN (flatten them for an MLP).
    y : torch.Tensor of int64, shape (1797,)
        The digit, 0 to 9.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    return X, torch.tensor(digits.target, dtype=torch.int64)


SHAPE_NAMES = ("square", "circle", "triangle")


def make_shapes(n: int, size: int = 32, seed: int = 0, noise: float = 0.2, distractors: int = 0):
    r"""Grey images of one square, circle or triangle each, on noise, with their bounding boxes.

    Each image is Gaussian noise, :math:`\mathcal N(0, \sigma^2)`, plus a filled shape of
    brightness in :math:`[0.6, 1]`, of side (or diameter) between a quarter and a half of the
    image, at a random position entirely inside it. The label is the shape's index in
    ``SHAPE_NAMES`` (0 square, 1 circle, 2 triangle); the box is the tight bounding box of
    the shape's pixels, the ground truth for chapter 8's pointing game.

    With ``distractors`` :math:`= d > 0`, each image also gets :math:`d` bright square
    specks of side 2 or 3 pixels and brightness in :math:`[1.2, 1.6]` (brighter than any
    shape), placed wholly outside the shape's box. They are drawn from a second generator,
    seeded by ``(seed, 1)``, so the noise, shapes, labels and boxes are those of
    ``distractors=0``: the same images with clutter added. The brightest pixel of such an
    image is rarely inside the box (only where noise lifts a shape pixel above both specks),
    so "point at the brightest pixel" fails the pointing game.

    Parameters
    ----------
    n : int
        Number of images.
    size : int, default 32
        Height and width in pixels, at least 8.
    seed : int, default 0
    noise : float, default 0.2
        Standard deviation :math:`\sigma` of the background noise.
    distractors : int, default 0
        Number of bright specks per image outside the shape's box (0: none, the images of
        chapter 5).

    Returns
    -------
    images : torch.Tensor of float32, shape (n, 1, size, size)
    labels : torch.Tensor of int64, shape (n,)
    boxes : torch.Tensor of int64, shape (n, 4)
        ``(row_min, col_min, row_max, col_max)``, inclusive pixel indices.

    Raises
    ------
    ValueError
        If ``n`` is not positive, ``size < 8``, ``noise`` or ``distractors`` is negative.
    """
    n = _validate.positive_int(n, "n")
    distractors = _validate.nonnegative_int(distractors, "distractors")
    size = _validate.positive_int(size, "size")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels; got {size}")
    noise = _validate.nonnegative_float(noise, "noise")
    rng = np.random.default_rng(_validate.nonnegative_int(seed, "seed"))
    rows, cols = np.mgrid[0:size, 0:size] + 0.5  # pixel centres
    images = rng.normal(0.0, noise, size=(n, size, size))
    labels = rng.integers(0, 3, size=n)
    boxes = np.zeros((n, 4), dtype=np.int64)
    for i in range(n):
        side = rng.uniform(size / 4, size / 2)
        top, left = rng.uniform(0, size - side, size=2)
        r, c = rows - top, cols - left  # coordinates relative to the shape's box
        if labels[i] == 0:  # square
            mask = (r >= 0) & (r <= side) & (c >= 0) & (c <= side)
        elif labels[i] == 1:  # circle
            mask = (r - side / 2) ** 2 + (c - side / 2) ** 2 <= (side / 2) ** 2
        else:  # triangle, apex up: half-width grows from 0 at the top to side/2 at the bottom
            mask = (r >= 0) & (r <= side) & (np.abs(c - side / 2) <= r / 2)
        images[i][mask] += rng.uniform(0.6, 1.0)
        pixel_rows, pixel_cols = np.nonzero(mask)
        boxes[i] = pixel_rows.min(), pixel_cols.min(), pixel_rows.max(), pixel_cols.max()
    if distractors:
        _add_distractors(images, boxes, distractors, np.random.default_rng([seed, 1]))
    return (
        torch.tensor(images, dtype=torch.float32).unsqueeze(1),
        torch.tensor(labels, dtype=torch.int64),
        torch.tensor(boxes),
    )


def _add_distractors(images, boxes, count, rng):
    """Add ``count`` bright specks to each image, in place, none touching the shape's box."""
    size = images.shape[1]
    for image, (r0, c0, r1, c1) in zip(images, boxes, strict=True):
        placed = 0
        for _ in range(1000 * count):  # rejection sampling; the box covers at most a quarter
            if placed == count:
                break
            side = int(rng.integers(2, 4))
            top, left = rng.integers(0, size - side + 1, size=2)
            if top + side > r0 and top <= r1 and left + side > c0 and left <= c1:
                continue  # would overlap the box
            image[top : top + side, left : left + side] += rng.uniform(1.2, 1.6)
            placed += 1
        if placed < count:
            raise ValueError(f"no room for {count} distractors outside the box; use fewer")


def make_reversal_task(n: int, seq_len: int = 8, vocab: int = 10, seed: int = 0):
    r"""Random token sequences and their reversals: the Transformer chapter's task.

    Each source is :math:`(x_1, \dots, x_L)` with tokens drawn uniformly from
    :math:`\{0, \dots, V - 1\}`; its target is :math:`(x_L, \dots, x_1)`. Output position
    :math:`i` must copy input position :math:`L + 1 - i`, so a model can only solve the task if it
    knows where each token is: without positional information, self-attention treats the input
    as a set.

    Parameters
    ----------
    n : int
        Number of sequences.
    seq_len : int, default 8
        Length :math:`L \ge 2`.
    vocab : int, default 10
        Number of distinct tokens :math:`V \ge 2`.
    seed : int, default 0

    Returns
    -------
    source, target : torch.Tensor of int64, shape (n, seq_len)

    Raises
    ------
    ValueError
        If a size is not positive, or ``seq_len`` or ``vocab`` is below 2.
    """
    n = _validate.positive_int(n, "n")
    seq_len = _validate.positive_int(seq_len, "seq_len")
    vocab = _validate.positive_int(vocab, "vocab")
    if seq_len < 2 or vocab < 2:
        raise ValueError(f"seq_len and vocab must be at least 2; got {seq_len} and {vocab}")
    generator = torch.Generator().manual_seed(_validate.nonnegative_int(seed, "seed"))
    source = torch.randint(0, vocab, (n, seq_len), generator=generator)
    return source, source.flip(1)


def _glyph_prototypes(num_classes: int, seed: int, max_points: int = 5) -> np.ndarray:
    """One random polyline of 3 to ``max_points`` points in :math:`[-1, 1]^2` per class.

    Shorter polylines repeat their last point: the extra segments have length zero and add no ink.
    """
    rng = np.random.default_rng(seed)
    prototypes = np.zeros((num_classes, max_points, 2))
    for c in range(num_classes):
        n_points = rng.integers(3, max_points + 1)
        points = rng.uniform(-1.0, 1.0, size=(n_points, 2))
        prototypes[c, :n_points] = points
        prototypes[c, n_points:] = points[-1]
    return prototypes


def make_glyphs(
    n: int,
    num_classes: int = 100,
    size: int = 16,
    noise: float = 0.2,
    seed: int = 0,
    class_seed: int = 0,
):
    r"""Random-stroke glyphs: ``num_classes`` made-up characters drawn with jitter on noise.

    Class :math:`c` is a polyline of 2 to 4 strokes through random points
    :math:`\mathbf p_{c,j} \in [-1, 1]^2` (fixed by ``class_seed``). Each image draws it again
    with its own nuisances: every point moves by :math:`\mathcal N(0, 0.08^2)`, the glyph is
    rotated by :math:`\theta \sim U(-20°, 20°)`, scaled to a half-width of
    :math:`s \sim U(2.8, 3.85)` pixels (about the 8×8 of scikit-learn's digits) and centred at a
    random position inside the canvas,

    .. math::

        \mathbf q_j = s\, R_\theta\, (\mathbf p_{c,j} + \boldsymbol\epsilon_j) + \mathbf t.

    A pixel at distance :math:`d` from the nearest stroke gets ink
    :math:`b\, \operatorname{clip}(1 - \max(d - w/2, 0), 0, 1)`, with stroke width
    :math:`w \sim U(0.6, 1.4)` and brightness :math:`b \sim U(0.7, 1)`, on top of Gaussian noise
    :math:`\mathcal N(0, \sigma^2)`: the same canvas as :func:`make_pasted_digits`. Chapter 9
    pretrains a backbone on these glyphs.

    Parameters
    ----------
    n : int
        Number of images.
    num_classes : int, default 100
        Number of glyph classes; labels are drawn uniformly from them.
    size : int, default 16
        Height and width in pixels, at least 12.
    noise : float, default 0.2
        Standard deviation :math:`\sigma` of the background noise.
    seed : int, default 0
        Seed of the labels, nuisances and noise.
    class_seed : int, default 0
        Seed of the class prototypes: the same ``class_seed`` gives the same alphabet.

    Returns
    -------
    images : torch.Tensor of float32, shape (n, 1, size, size)
    labels : torch.Tensor of int64, shape (n,)

    Raises
    ------
    ValueError
        If ``n`` or ``num_classes`` is not positive, ``size < 12`` or ``noise`` is negative.
    """
    n = _validate.positive_int(n, "n")
    num_classes = _validate.positive_int(num_classes, "num_classes")
    size = _validate.positive_int(size, "size")
    if size < 12:
        raise ValueError(f"size must be at least 12 pixels; got {size}")
    noise = _validate.nonnegative_float(noise, "noise")
    prototypes = _glyph_prototypes(num_classes, _validate.nonnegative_int(class_seed, "class_seed"))
    rng = np.random.default_rng(_validate.nonnegative_int(seed, "seed"))
    extent = 3.5
    labels = rng.integers(0, num_classes, size=n)
    points = prototypes[labels] + rng.normal(0.0, 0.08, size=(n,) + prototypes.shape[1:])
    theta = np.radians(rng.uniform(-20.0, 20.0, size=n))
    scale = rng.uniform(0.8, 1.1, size=n) * extent
    centre = rng.uniform(extent + 0.5, size - extent - 0.5, size=(n, 2))
    width = rng.uniform(0.6, 1.4, size=n)
    brightness = rng.uniform(0.7, 1.0, size=n)
    cos, sin = np.cos(theta), np.sin(theta)
    rotation = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    q = np.einsum("npj,nij->npi", points, rotation) * scale[:, None, None] + centre[:, None, :]
    starts, ends = q[:, :-1], q[:, 1:]  # (n, strokes, 2)
    rows, cols = np.mgrid[0:size, 0:size] + 0.5  # pixel centres
    pixels = np.stack([rows.ravel(), cols.ravel()], -1)  # (size², 2)
    images = rng.normal(0.0, noise, size=(n, size * size))
    for lo in range(0, n, 2048):  # chunks bound the (chunk, pixels, strokes, 2) temporaries
        a, ab = starts[lo : lo + 2048, None], (ends - starts)[lo : lo + 2048, None]
        pa = pixels[None, :, None, :] - a
        t = np.clip((pa * ab).sum(-1) / np.maximum((ab**2).sum(-1), 1e-12), 0.0, 1.0)
        dist = np.sqrt(((pa - t[..., None] * ab) ** 2).sum(-1)).min(-1)  # to the nearest stroke
        ink = np.clip(1.0 - np.maximum(dist - width[lo : lo + 2048, None] / 2, 0.0), 0.0, 1.0)
        images[lo : lo + 2048] += brightness[lo : lo + 2048, None] * ink
    return (
        torch.tensor(images.reshape(n, 1, size, size), dtype=torch.float32),
        torch.tensor(labels, dtype=torch.int64),
    )


def make_pasted_digits(classes=(5, 6, 7, 8, 9), size: int = 16, noise: float = 0.2, seed: int = 0):
    r"""scikit-learn's 8×8 digits of some classes, each pasted at a random place on a noisy canvas.

    Image :math:`i` is :math:`\mathcal N(0, \sigma^2)` noise of ``size``×``size`` pixels plus the
    digit (values in :math:`[0, 1]`) added at a uniformly random offset that keeps it inside.
    Labels are renumbered ``0 .. len(classes) - 1`` in the order of ``classes``. This is chapter
    9's few-label target task: the position and the noise are nuisances a backbone pretrained on
    :func:`make_glyphs` has already learned to ignore.

    Parameters
    ----------
    classes : sequence of int, default (5, 6, 7, 8, 9)
        Distinct digits 0–9 to keep.
    size : int, default 16
        Canvas height and width, at least 8.
    noise : float, default 0.2
        Standard deviation :math:`\sigma` of the background noise.
    seed : int, default 0

    Returns
    -------
    images : torch.Tensor of float32, shape (n, 1, size, size)
        ``n`` is the number of bundled digits of those classes (896 for 5–9).
    labels : torch.Tensor of int64, shape (n,)

    Raises
    ------
    ValueError
        If ``classes`` is empty, repeats a digit or holds one outside 0–9; if ``size < 8`` or
        ``noise`` is negative.
    """
    classes = list(classes)
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct digits 0-9, at least one; got {classes}")
    for c in classes:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c <= 9:
            raise ValueError(f"classes must be distinct digits 0-9; got {c!r} in {classes}")
    size = _validate.positive_int(size, "size")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels; got {size}")
    noise = _validate.nonnegative_float(noise, "noise")
    rng = np.random.default_rng(_validate.nonnegative_int(seed, "seed"))
    X, y = load_digits_tensors()
    keep = np.isin(y.numpy(), classes)
    digits, labels = X[keep, 0].numpy(), y[keep].numpy()
    images = rng.normal(0.0, noise, size=(len(digits), size, size))
    offsets = rng.integers(0, size - 8 + 1, size=(len(digits), 2))
    for image, digit, (r, c) in zip(images, digits, offsets, strict=True):
        image[r : r + 8, c : c + 8] += digit
    renumber = np.array([classes.index(d) if d in classes else -1 for d in range(10)])
    return (
        torch.tensor(images, dtype=torch.float32).unsqueeze(1),
        torch.tensor(renumber[labels], dtype=torch.int64),
    )


def few_shot_split(labels, k: int, seed: int = 0):
    """Indices of ``k`` random examples per class (the labelled few) and of all the others.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
        Class labels ``0 .. C - 1``; every class must have more than ``k`` examples.
    k : int
        Labelled examples per class.
    seed : int, default 0

    Returns
    -------
    train_idx : torch.Tensor of int64, shape (C * k,)
        Sorted by class, then randomly within a class.
    test_idx : torch.Tensor of int64, shape (n - C * k,)
        Every other index, ascending.

    Raises
    ------
    ValueError
        If ``k`` is not positive, ``labels`` is not 1-D, or a class has ``k`` examples or fewer.
    """
    k = _validate.positive_int(k, "k")
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D; got shape {y.shape}")
    rng = np.random.default_rng(_validate.nonnegative_int(seed, "seed"))
    chosen = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        if len(members) <= k:
            raise ValueError(
                f"class {c} has {len(members)} examples; k={k} labelled per class needs more"
            )
        chosen.append(rng.choice(members, size=k, replace=False))
    train_idx = np.concatenate(chosen)
    test_idx = np.setdiff1d(np.arange(len(y)), train_idx)
    return torch.tensor(train_idx, dtype=torch.int64), torch.tensor(test_idx, dtype=torch.int64)
