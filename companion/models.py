r"""Network architectures trained in the book (chapter 3 onwards)."""

from __future__ import annotations

import numbers

import torch
from torch import nn

from . import _validate

__all__ = [
    "BOOK_MODELS",
    "book_model",
    "write_book_models",
    "NeuralNetwork",
    "ConvolutionalNN",
    "train_shapes_cnn",
    "train_digits_cnn",
    "train_seed_mlp",
]


class NeuralNetwork(nn.Module):
    r"""A multi-layer perceptron: (Linear → ReLU → Dropout) per hidden layer, then a Linear output.

    For hidden layers :math:`l = 1, \dots, L-1` and the output layer :math:`L`,

    .. math::

        \mathbf h^{(l)} = \operatorname{Dropout}_p\big(\operatorname{ReLU}(W^{(l)}
        \mathbf h^{(l-1)} + \mathbf b^{(l)})\big), \qquad
        \mathbf z = W^{(L)} \mathbf h^{(L-1)} + \mathbf b^{(L)},

    with :math:`\mathbf h^{(0)} = \mathbf x`. The output :math:`\mathbf z` are **logits**:
    unnormalised scores, to be fed to :class:`torch.nn.CrossEntropyLoss`, which applies the
    log-softmax itself. Every activation is its own :class:`torch.nn.ReLU` module (never reused,
    never in place), which SHAP's DeepExplainer needs (chapter 8).

    Parameters
    ----------
    input_size : int
        Number of input features. Inputs of shape ``(batch, *dims)`` are flattened, so
        ``(batch, 1, 8, 8)`` images work with ``input_size=64``.
    hidden_sizes : sequence of int
        Units per hidden layer; may be empty (a linear model).
    output_size : int
        Number of classes.
    dropout_rate : float, default 0.2
        Probability :math:`p \in [0, 1)` of zeroing a hidden unit during training.

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive int or ``dropout_rate`` is outside :math:`[0, 1)`.
    """

    def __init__(self, input_size, hidden_sizes, output_size, dropout_rate: float = 0.2):
        super().__init__()
        self.input_size = _validate.positive_int(input_size, "input_size")
        if isinstance(hidden_sizes, numbers.Integral):
            raise TypeError("hidden_sizes must be a sequence of ints, e.g. [64, 32]")
        hidden_sizes = [_validate.positive_int(h, "hidden_sizes entry") for h in hidden_sizes]
        self.output_size = _validate.positive_int(output_size, "output_size")
        if isinstance(dropout_rate, bool) or not isinstance(dropout_rate, numbers.Real):
            raise TypeError(f"dropout_rate must be a float; got {type(dropout_rate).__name__}")
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1); got {dropout_rate}")
        layers, width = [], self.input_size
        for h in hidden_sizes:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout_rate)]
            width = h
        layers.append(nn.Linear(width, self.output_size))
        self.network = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch.

        Parameters
        ----------
        x : torch.Tensor of shape (batch, input_size) or (batch, *dims)
            ``dims`` must multiply to ``input_size``.

        Returns
        -------
        torch.Tensor of shape (batch, output_size)

        Raises
        ------
        ValueError
            If a sample does not have ``input_size`` features.
        """
        if x.ndim < 2 or x.shape[1:].numel() != self.input_size:
            raise ValueError(
                f"x must have shape (batch, {self.input_size}) (or (batch, *dims) with "
                f"{self.input_size} values per sample); got {tuple(x.shape)}"
            )
        return self.network(x.flatten(1))


class ConvolutionalNN(nn.Module):
    r"""The notes' CNN: three (conv 3×3 → ReLU → max-pool 2×2) blocks, then three linear layers.

    Block :math:`l` maps :math:`C_{l-1}` to :math:`C_l` channels with a :math:`3 \times 3`
    convolution (padding 1, so the size is kept) and halves height and width by max-pooling:

    .. math::

        A^{(l)} = \operatorname{MaxPool}_{2 \times 2}\big(\operatorname{ReLU}(W^{(l)} \star
        A^{(l-1)} + b^{(l)})\big).

    The notes flatten a hard-coded :math:`128 \cdot 4 \cdot 4` features, which is right only
    for :math:`32 \times 32` inputs. Here an adaptive average pool sits in front of ``fc1`` and
    **only ever pools down**: for images of at least ``input_size`` = :math:`(H, W)` pixels the
    last feature map has at least :math:`\lfloor H/8 \rfloor \times \lfloor W/8 \rfloor`
    cells, and the pool averages it to

    .. math::

        h_p \times w_p = \min(\texttt{pooled\_size}, \lfloor H/8 \rfloor) \times
            \min(\texttt{pooled\_size}, \lfloor W/8 \rfloor),

    so ``fc1`` has :math:`C_3 h_p w_p` inputs, each a distinct feature. An image whose map is
    smaller than :math:`h_p \times w_p` is rejected: an adaptive pool would fill the gap by
    *repeating* cells (a :math:`1 \times 1` map copied 16 times), which only multiplies
    ``fc1``'s weights. Any ``input_size`` of at least 8 × 8 works; with the defaults
    (32 × 32, ``pooled_size=4``) the pool is the identity on 32 × 32 images and the network is
    exactly the notes'. Every activation is its own :class:`torch.nn.ReLU` module (SHAP needs
    that, chapter 8), and the last block's activation ``relu3`` is the natural Grad-CAM layer.

    Parameters
    ----------
    input_channels : int
        1 for grey-scale, 3 for colour images.
    num_classes : int
    channels : tuple of three ints, default (32, 64, 128)
        Output channels of the three convolutions.
    hidden : tuple of two ints, default (256, 128)
        Widths of the two hidden linear layers.
    dropout_rate : float, default 0.5
    pooled_size : int, default 4
        Largest side of the feature map fed to the linear layers.
    input_size : int or pair of ints, default 32
        Height and width of the smallest images the network will be given (at least 8); an
        int means a square. Larger images are pooled down to the same :math:`h_p \times w_p`.

    Attributes
    ----------
    input_size : tuple
        ``(H, W)`` as given, two ints.
    pooled_shape : tuple
        :math:`(h_p, w_p)`, two ints, the map ``fc1`` reads: ``fc1.in_features`` is
        :math:`C_3 h_p w_p`.

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive int, ``input_size`` is below 8, or ``dropout_rate`` is
        outside :math:`[0, 1)`.
    """

    min_size = 8

    def __init__(
        self,
        input_channels,
        num_classes,
        channels=(32, 64, 128),
        hidden=(256, 128),
        dropout_rate: float = 0.5,
        pooled_size: int = 4,
        input_size=32,
    ):
        super().__init__()
        self.input_channels = _validate.positive_int(input_channels, "input_channels")
        self.num_classes = _validate.positive_int(num_classes, "num_classes")
        if len(channels) != 3 or len(hidden) != 2:
            raise ValueError("channels needs three entries and hidden two")
        c1, c2, c3 = (_validate.positive_int(c, "channels entry") for c in channels)
        h1, h2 = (_validate.positive_int(h, "hidden entry") for h in hidden)
        pooled_size = _validate.positive_int(pooled_size, "pooled_size")
        if isinstance(input_size, numbers.Integral):
            input_size = (input_size, input_size)
        if not isinstance(input_size, (tuple, list)) or len(input_size) != 2:
            raise TypeError(f"input_size must be an int or a pair (H, W); got {input_size!r}")
        height, width = (_validate.positive_int(n, "input_size entry") for n in input_size)
        if min(height, width) < self.min_size:
            raise ValueError(
                f"input_size must be at least {self.min_size}x{self.min_size} (three 2x2 "
                f"poolings); got {height}x{width}"
            )
        self.input_size = (height, width)
        # floor(floor(floor(n/2)/2)/2) = floor(n/8): the side of the last feature map
        self.pooled_shape = (min(pooled_size, height // 8), min(pooled_size, width // 8))
        if isinstance(dropout_rate, bool) or not isinstance(dropout_rate, numbers.Real):
            raise TypeError(f"dropout_rate must be a float; got {type(dropout_rate).__name__}")
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1); got {dropout_rate}")
        self.conv1 = nn.Conv2d(self.input_channels, c1, kernel_size=3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2, 2)
        self.conv3 = nn.Conv2d(c2, c3, kernel_size=3, padding=1)
        self.relu3 = nn.ReLU()
        self.pool3 = nn.MaxPool2d(2, 2)
        self.resize = nn.AdaptiveAvgPool2d(self.pooled_shape)
        self.fc1 = nn.Linear(c3 * self.pooled_shape[0] * self.pooled_shape[1], h1)
        self.relu4 = nn.ReLU()
        self.dropout1 = nn.Dropout(dropout_rate)
        self.fc2 = nn.Linear(h1, h2)
        self.relu5 = nn.ReLU()
        self.dropout2 = nn.Dropout(dropout_rate)
        self.fc3 = nn.Linear(h2, self.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The three convolutional blocks: feature maps of shape (batch, C3, H/8, W/8).

        The first convolution's output is laid out *channels last* (NHWC in memory; its shape
        and values are unchanged), and the layers after it keep that layout. They compute the
        same maths, with sums in another order (so other last bits), and PyTorch's CPU
        max-pooling is about ten times faster in that layout than in the default NCHW one
        (``make bench`` measures the training step of the shapes network both ways). The
        input itself is not converted: with one channel both layouts are the same memory.
        """
        x = self.conv1(x).contiguous(memory_format=torch.channels_last)
        x = self.pool1(self.relu1(x))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.pool3(self.relu3(self.conv3(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for a batch of images.

        Parameters
        ----------
        x : torch.Tensor of shape (batch, input_channels, H, W), H and W >= 8

        Returns
        -------
        torch.Tensor of shape (batch, num_classes)

        Raises
        ------
        ValueError
            If ``x`` is not 4-D, has the wrong number of channels, is smaller than 8 × 8, or
            leaves a feature map smaller than ``pooled_shape`` (build the network with a
            smaller ``input_size`` for such images).
        """
        if x.ndim != 4 or x.shape[1] != self.input_channels:
            raise ValueError(
                f"x must have shape (batch, {self.input_channels}, H, W); got {tuple(x.shape)}"
            )
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(
                f"images must be at least {self.min_size}x{self.min_size} (three 2x2 poolings); "
                f"got {x.shape[-2]}x{x.shape[-1]}"
            )
        height, width = x.shape[-2:]
        if height // 8 < self.pooled_shape[0] or width // 8 < self.pooled_shape[1]:
            raise ValueError(
                f"{height}x{width} images leave a {height // 8}x{width // 8} feature map, smaller "
                f"than the {self.pooled_shape[0]}x{self.pooled_shape[1]} that fc1 was built for "
                f"(input_size={self.input_size}); the pool would only repeat its cells. Build "
                f"the network with input_size=({height}, {width})"
            )
        return self.head(self.resize(self.features(x)).flatten(1))

    def head(self, z: torch.Tensor) -> torch.Tensor:
        """The three linear layers: class logits from flattened, pooled feature maps.

        Parameters
        ----------
        z : torch.Tensor of shape (batch, fc1.in_features)

        Returns
        -------
        torch.Tensor of shape (batch, num_classes)
        """
        z = self.dropout1(self.relu4(self.fc1(z)))
        z = self.dropout2(self.relu5(self.fc2(z)))
        return self.fc3(z)


def _recipe_model(model, default):
    """The network a recipe trains: ``model()`` if given, else ``default()``."""
    if model is None:
        return default()
    if isinstance(model, nn.Module) or not callable(model):
        raise TypeError(
            "model must be a callable that builds the network (a function or a class, called "
            f"after seeding), not {type(model).__name__}"
        )
    return model()


def train_shapes_cnn(
    seed: int = 0,
    n: int = 3000,
    size: int = 32,
    epochs: int = 10,
    lr: float = 3e-3,
    model=None,
):
    r"""Train chapter 5's shapes classifier, deterministically (chapter 8 too).

    ``ConvolutionalNN(1, 3, channels=(16, 32, 64), dropout_rate=0.3,
    input_size=size)`` is trained with Adam at :math:`\eta_0` = ``lr``,
    cosine-annealed over the run,
    :math:`\eta_t = \tfrac12 \eta_0 (1 + \cos(\pi t / T))` with :math:`T` =
    ``epochs``, on the first 80 % of ``make_shapes(n, size, seed)`` in
    batches of 64, on the CPU; the last 20 % are held out. The same seed
    gives the same weights, so a later chapter retrains it (about 10 s)
    instead of storing a binary.

    Parameters
    ----------
    seed : int, default 0
        Seeds the data, the initial weights, dropout and the batch order.
    n : int, default 3000
    size : int, default 32
    epochs : int, default 10
    lr : float, default 3e-3
    model : callable, optional
        Builds the network to train instead (called once, after seeding,
        with no arguments): chapter 5 compares an MLP on the same recipe.

    Returns
    -------
    trainer : companion.training.Trainer
        Holding the trained model and its history.
    data : tuple of torch.Tensor
        ``(images, labels, boxes)`` of all ``n`` images.
    """
    from .data import make_shapes, train_val_loaders
    from .training import Trainer
    from .utils import seed_everything

    epochs = _validate.positive_int(epochs, "epochs")
    lr = _validate.positive_float(lr, "lr")
    images, labels, boxes = make_shapes(n, size=size, seed=seed)
    seed_everything(seed)
    model = _recipe_model(
        model,
        lambda: ConvolutionalNN(
            1,
            3,
            channels=(16, 32, 64),
            dropout_rate=0.3,
            input_size=size,
        ),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer,
        T_max=epochs,
    )
    loaders = train_val_loaders(
        images,
        labels,
        train_size=int(0.8 * n),
        batch_size=64,
        seed=seed,
    )
    trainer = Trainer(model, device="cpu")
    trainer.fit(
        *loaders,
        epochs,
        optimizer=optimizer,
        scheduler=scheduler,
        progress=False,
    )
    return trainer, (images, labels, boxes)


def train_digits_cnn(
    seed: int = 0,
    epochs: int = 15,
    lr: float = 3e-3,
    model=None,
):
    r"""Train chapter 5's digits classifier, deterministically.

    scikit-learn's 1797 digits of 8 × 8 pixels are shuffled once by a fixed
    permutation (the file is ordered by writer): the first 1437 train, the
    last 360 test, the same split for every ``seed``.
    ``ConvolutionalNN(1, 10, dropout_rate=0.3, input_size=8)`` is trained
    with Adam at :math:`\eta_0` = ``lr``, cosine-annealed over the run,
    :math:`\eta_t = \tfrac12 \eta_0 (1 + \cos(\pi t / T))` with :math:`T` =
    ``epochs``, in batches of 64, on the CPU. The same seed gives the same
    weights.

    Parameters
    ----------
    seed : int, default 0
        Seeds the initial weights, dropout and the batch order (not the
        split).
    epochs : int, default 15
    lr : float, default 3e-3
    model : callable, optional
        Builds the network to train instead (called once, after seeding,
        with no arguments): chapter 5 compares an MLP on the same recipe.

    Returns
    -------
    companion.training.Trainer
        Holding the trained model and its history; ``history["val_acc"]``
        is the accuracy on the 360 test digits.
    """
    from .data import load_digits_tensors, train_val_loaders
    from .training import Trainer
    from .utils import seed_everything

    epochs = _validate.positive_int(epochs, "epochs")
    lr = _validate.positive_float(lr, "lr")
    images, labels = load_digits_tensors()
    order = torch.randperm(
        len(images),
        generator=torch.Generator().manual_seed(0),
    )
    loaders = train_val_loaders(
        images[order], labels[order], train_size=1437, batch_size=64, seed=seed
    )
    seed_everything(seed)
    model = _recipe_model(
        model,
        lambda: ConvolutionalNN(1, 10, dropout_rate=0.3, input_size=8),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer,
        T_max=epochs,
    )
    trainer = Trainer(model, device="cpu")
    trainer.fit(
        *loaders,
        epochs,
        optimizer=optimizer,
        scheduler=scheduler,
        progress=False,
    )
    return trainer


def train_seed_mlp(
    seed: int = 0,
    epochs: int = 100,
    lr: float = 1e-2,
    schedule: str = "cosine",
):
    r"""Train chapter 3's MLP on the notes' data, deterministically: the better recipe by default.

    ``NeuralNetwork(10, [64, 32], 3, dropout_rate=0.2)`` on ``make_seed_dataset()`` (the first
    800 points for training, the last 200 for validation, batches of 32), trained with Adam at
    :math:`\eta_0` = ``lr`` for ``epochs`` epochs on the CPU, with the learning rate of epoch
    :math:`t = 0, 1, \dots` given by ``schedule``:

    .. math::

        \text{cosine: } \eta_t = \tfrac12 \eta_0 \big(1 + \cos(\pi t / T)\big),\ T =
        \texttt{epochs}; \qquad
        \text{step: } \eta_t = \eta_0 \cdot 0.1^{\lfloor t / 10 \rfloor}; \qquad
        \text{constant: } \eta_t = \eta_0.

    The defaults are the chapter's better recipe (chapter 8 reuses it);
    ``train_seed_mlp(seed, epochs=50, lr=1e-3, schedule="step")`` is the original notes' recipe
    (their ``StepLR(step_size=10, gamma=0.1)``). The same arguments give the same weights.

    Parameters
    ----------
    seed : int, default 0
        Seeds the initial weights, dropout and the batch order (the data are always the same).
    epochs : int, default 100
    lr : float, default 1e-2
        The initial learning rate :math:`\eta_0`.
    schedule : {"cosine", "step", "constant"}, default "cosine"

    Returns
    -------
    companion.training.Trainer
        Holding the trained model (in training mode) and its history.

    Raises
    ------
    TypeError, ValueError
        If ``epochs`` is not a positive int, ``lr`` not a positive number or ``schedule`` is
        not one of the three.
    """
    from torch.optim import lr_scheduler

    from .data import make_seed_dataset, train_val_loaders
    from .training import Trainer
    from .utils import seed_everything

    epochs = _validate.positive_int(epochs, "epochs")
    lr = _validate.positive_float(lr, "lr")
    _validate.one_of(schedule, "schedule", {"cosine", "step", "constant"})
    X, y = make_seed_dataset()
    seed_everything(seed)
    model = NeuralNetwork(10, [64, 32], 3, dropout_rate=0.2)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    if schedule == "cosine":
        scheduler = lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    elif schedule == "step":  # the notes' schedule
        scheduler = lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.1)
    else:
        scheduler = None
    loaders = train_val_loaders(X, y, train_size=800, batch_size=32, seed=seed)
    trainer = Trainer(model, device="cpu")
    trainer.fit(
        *loaders,
        epochs=epochs,
        optimizer=optimizer,
        scheduler=scheduler,
        progress=False,
    )
    return trainer


# ----------------------------------------------------------------- models the book ships
#: The trained models chapter 8 explains, shipped in ``companion/weights`` so that the chapter
#: does not train them again (``make pretrain`` re-trains them; a test checks it reproduces
#: them): the recipe that made each file, and what it must be called with.
BOOK_MODELS = {
    "shapes_cnn": "train_shapes_cnn(seed=0)",
    "seed_mlp": "train_seed_mlp(seed=0)",
}
_MODELS_MANIFEST = "models.json"


def _train_book_model(name: str):
    """Train ``BOOK_MODELS[name]``: the trainer (its model in training mode)."""
    if name == "shapes_cnn":
        return train_shapes_cnn(seed=0)[0]
    return train_seed_mlp(seed=0)


def _empty_book_model(name: str) -> nn.Module:
    if name == "shapes_cnn":
        return ConvolutionalNN(1, 3, channels=(16, 32, 64), dropout_rate=0.3, input_size=32)
    return NeuralNetwork(10, [64, 32], 3, dropout_rate=0.2)


def book_model(name: str):
    """A trained model the book ships, in evaluation mode, checked against its SHA-256.

    Parameters
    ----------
    name : {"shapes_cnn", "seed_mlp"}
        Chapter 5's shapes CNN, ``train_shapes_cnn(seed=0)``, or chapter 3's MLP,
        ``train_seed_mlp(seed=0)``: the same weights those calls train (bit for bit on the
        machine that wrote them, see ``info["torch"]``).

    Returns
    -------
    model : torch.nn.Module
        On the CPU, in evaluation mode.
    info : dict
        ``recipe`` (the call that trained it), ``sha256``, ``val_acc`` (its validation accuracy
        when it was trained), ``val_acc_per_epoch`` (the log of that training), ``torch`` (the
        version that wrote the file) and ``processor`` (the CPU that trained it).

    Raises
    ------
    ValueError
        If ``name`` is not a shipped model, or the file's SHA-256 is not the recorded one.
    FileNotFoundError
        If the file is missing (run ``make pretrain``).
    """
    import json

    from .transfer import WEIGHTS_DIR, _sha256

    _validate.one_of(name, "name", set(BOOK_MODELS))
    manifest_path = WEIGHTS_DIR / _MODELS_MANIFEST
    path = WEIGHTS_DIR / f"{name}.pt"
    if not manifest_path.is_file() or not path.is_file():
        raise FileNotFoundError(f"model {name!r} is not in {WEIGHTS_DIR}: run make pretrain")
    info = json.loads(manifest_path.read_text())[name]
    digest = _sha256(path)
    if digest != info["sha256"]:
        raise ValueError(
            f"{path} has SHA-256 {digest}; {manifest_path.name} records {info['sha256']}"
        )
    model = _empty_book_model(name)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval(), dict(info)


def write_book_models(out_dir, names=None) -> dict:
    """Train the models of :data:`BOOK_MODELS` into ``out_dir`` with their manifest
    (``make pretrain``)."""
    import json
    from pathlib import Path

    from .transfer import _sha256
    from .utils import _processor_name

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / _MODELS_MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    for name in names or BOOK_MODELS:
        trainer = _train_book_model(name)
        path = out_dir / f"{name}.pt"
        torch.save(trainer.model.state_dict(), path)
        manifest[name] = {
            "recipe": BOOK_MODELS[name],
            "sha256": _sha256(path),
            "val_acc": trainer.history["val_acc"][-1],
            "val_acc_per_epoch": trainer.history["val_acc"],
            "torch": torch.__version__.split("+")[0],
            "processor": _processor_name(),  # another CPU trains other last bits
        }
        print(f"{name}: validation accuracy {manifest[name]['val_acc']:.4f} -> {path}")
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
