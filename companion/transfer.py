r"""Transfer learning: a pretrained backbone, a new head, freezing and progressive unfreezing
(chapter 9).

A network trained on a large data set (ImageNet) has learnt features that serve other tasks.
*Transfer learning* keeps those weights, replaces the classification head by a fresh
``nn.Linear`` with one output per new class, and trains on the small new data set:

1. **Feature extraction**: freeze the backbone (``requires_grad = False``) and train the head
   alone (:func:`~companion.freezing.freeze_backbone`).
2. **Fine-tuning**: make more of the network trainable, from the top down
   (:func:`~companion.freezing.unfreeze`), with smaller learning rates for the lower, more general
   layers. *Discriminative fine-tuning*
   (Howard & Ruder, 2018) gives layer group :math:`i`, counted from the head, the learning rate

   .. math::

       \eta_i = \frac{\eta}{d^{\,i}}, \qquad d = 2.6,

   (:func:`~companion.freezing.param_groups`), and *progressive unfreezing* adds one group per
   phase, each phase with a fresh optimizer over the trainable parameters only
   (:class:`ProgressiveUnfreezingTrainer`).

The layer groups are found from the model's structure
(:func:`~companion.freezing.layer_groups`): ``fc``, ``layer4`` ... ``layer1``, ``conv1 + bn1`` for
a ResNet; the last classifier layer, the rest of
the classifier, then the blocks of ``features`` for VGG and EfficientNet.

Defects of the original notes fixed here (each has a ``test_pitfall_...`` in
``tests/test_transfer.py``):

* ``models.resnet50(pretrained=True)``: the ``pretrained=`` keyword is deprecated since
  torchvision 0.13 (a ``UserWarning`` that names the weights it loads, ``IMAGENET1K_V1``, and
  suggests ``DEFAULT``); :func:`build_transfer_model` takes ``weights=`` (an enum, its name, or
  a local file checked against its SHA-256) and rejects ``pretrained=`` with a ``TypeError``.
* Freezing by ``requires_grad = False`` alone leaves the BatchNorm layers in training mode:
  ``model.train()`` lets every forward pass overwrite their running mean and variance, so the
  "frozen" backbone changes. :func:`~companion.freezing.freeze_backbone` and
  :func:`~companion.freezing.unfreeze` lock frozen BatchNorm layers in evaluation mode (their
  class becomes a ``FrozenStats...`` subclass whose
  ``train()`` keeps them there), so a plain PyTorch loop cannot undo it; with the default
  ``bn="frozen"`` the unfrozen groups keep their pretrained statistics too.
* ``unfreeze_top_layers(num_layers=10)`` unfroze the last ten parameter *tensors*, which on a
  ResNet-50 is the fully connected layer and most, but not all, of the last bottleneck block;
  :func:`~companion.freezing.unfreeze` counts whole layer groups.
* ``unfreeze_layers(layer_names)`` matched substrings, and a bare string such as ``"layer4"``
  is iterated by character, unfreezing everything;
  :func:`~companion.freezing.unfreeze_layers` matches module names exactly and refuses a string.
* The notes never apply ``weights.transforms()``, the resizing and normalisation the
  pretrained weights expect (chapter 9 shows what the network sees without them).

A general pitfall, not in the notes (they rebuild Adam over the trainable parameters): an
optimizer built once over *all* parameters keeps moving frozen weights whose gradient is a
zero tensor rather than ``None`` (decoupled weight decay, Adam's momentum). Here the optimizer
is rebuilt each phase over the trainable parameters only.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from pathlib import Path

import torch
from torch import nn

from . import _validate
from .freezing import (  # noqa: F401 (re-exported: companion.transfer keeps all of chapter 9)
    BN_POLICIES,
    _check_bn,
    count_trainable,
    freeze_backbone,
    freeze_batchnorm_stats,
    layer_groups,
    param_groups,
    set_frozen_batchnorm_eval,
    stats_frozen,
    unfreeze,
    unfreeze_layers,
)
from .training import Trainer

__all__ = [
    "build_transfer_model",
    "SmallResNet",
    "BasicBlock",
    "pretrain_backbone",
    "book_backbone",
    "BACKBONE_RECIPES",
    "train_few_shot",
    "FEW_SHOT_RECIPES",
    "ProgressiveUnfreezingTrainer",
]  # and, from companion.freezing: layer_groups, freeze_backbone, unfreeze, unfreeze_layers,
# BN_POLICIES, freeze_batchnorm_stats, set_frozen_batchnorm_eval, stats_frozen, param_groups,
# count_trainable (importable from here as before)

_OPTIMIZERS = ("adamw", "adam", "sgd")
_HEX = re.compile(r"[0-9a-f]+")


# --------------------------------------------------------------------------- architectures
def _torchvision_model(builder_name: str, weights=None) -> nn.Module:
    """``torchvision.models.<builder_name>(weights=weights)``, importing torchvision on demand."""
    models = _torchvision_models()
    return getattr(models, builder_name)(weights=weights)


def _torchvision_models():
    try:
        from torchvision import models
    except ImportError as err:  # an optional dependency: pip install companion[vision]
        raise ImportError(
            "companion.transfer needs torchvision: pip install torchvision "
            "(or pip install 'companion[vision]')"
        ) from err
    return models


def _replace_fc(model: nn.Module, num_classes: int) -> nn.Module:
    """ResNet head: ``model.fc`` becomes ``nn.Linear(in_features, num_classes)``."""
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model.fc


def _replace_last_classifier(model: nn.Module, num_classes: int) -> nn.Module:
    """VGG / EfficientNet head: ``model.classifier[-1]`` is replaced, the dropout before it kept."""
    model.classifier[-1] = nn.Linear(model.classifier[-1].in_features, num_classes)
    return model.classifier[-1]


# --------------------------------------------------------------------------- the book's backbone
class BasicBlock(nn.Module):
    r"""A residual block: two 3×3 convolutions with BatchNorm and a shortcut (He et al., 2016).

    .. math::

        \mathbf y = \operatorname{ReLU}\big(\mathrm{BN}(W_2 * \operatorname{ReLU}(\mathrm{BN}
        (W_1 * \mathbf x))) + S\mathbf x\big),

    where the shortcut :math:`S` is the identity, or a strided 1×1 convolution with BatchNorm
    when the block changes the resolution or the width.

    Parameters
    ----------
    in_channels, out_channels : int
    stride : int, default 1
        Stride of the first convolution (2 halves the resolution).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x):
        """Apply the block to ``x`` of shape ``(batch, in_channels, h, w)``."""
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    r"""A small ResNet for grey 16×16 images: stem, three residual blocks, pooling, head.

    ``conv1`` (3×3) → ``bn1`` → ReLU → ``layer1`` (stride 1) → ``layer2`` (stride 2) →
    ``layer3`` (stride 2) → global average pooling → ``fc``. It has torchvision's ResNet
    attribute names, so :func:`~companion.freezing.layer_groups` splits it the same way
    (``fc``, ``layer3``, ``layer2``, ``layer1``, ``conv1 + bn1``), and
    ``build_transfer_model("small_resnet", ...)``
    gives it a new head. About 15 000 parameters at width 16: chapter 9 pretrains it on a CPU in
    about 25 s, where torchvision's ResNet-18 (11 million) would take an hour.

    Parameters
    ----------
    num_classes : int, default 10
    in_channels : int, default 1
    width : int, default 16
        Channels of every block.

    Raises
    ------
    TypeError, ValueError
        If an argument is not a positive int.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 16):
        super().__init__()
        num_classes = _validate.positive_int(num_classes, "num_classes")
        in_channels = _validate.positive_int(in_channels, "in_channels")
        width = _validate.positive_int(width, "width")
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.layer1 = BasicBlock(width, width, stride=1)
        self.layer2 = BasicBlock(width, width, stride=2)
        self.layer3 = BasicBlock(width, width, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def features(self, x):
        r"""The backbone :math:`\phi(\mathbf x)`: pooled ``layer3`` output, ``(batch, width)``."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.pool(x).flatten(1)

    def forward(self, x):
        r"""Class logits :math:`W \phi(\mathbf x) + \mathbf b`, shape ``(batch, num_classes)``."""
        return self.fc(self.features(x))


def _small_resnet(weights=None) -> nn.Module:
    """Registry constructor: a random :class:`SmallResNet` (file weights are loaded after)."""
    if weights is not None:  # pragma: no cover - build_transfer_model passes files separately
        raise ValueError("small_resnet has no torchvision weights")
    return SmallResNet()


# name -> (constructor taking ``weights=``, function replacing the head and returning it).
# Registering another architecture is one entry, e.g. a small CNN with ResNet attributes
# (conv1, bn1, layer1.., fc): "small_resnet": (SmallResNet-constructor, _replace_fc).
_ARCHITECTURES = {
    "resnet18": (functools.partial(_torchvision_model, "resnet18"), _replace_fc),
    "resnet50": (functools.partial(_torchvision_model, "resnet50"), _replace_fc),
    "vgg16": (functools.partial(_torchvision_model, "vgg16"), _replace_last_classifier),
    "efficientnet_b0": (
        functools.partial(_torchvision_model, "efficientnet_b0"),
        _replace_last_classifier,
    ),
    "small_resnet": (_small_resnet, _replace_fc),
}


def _weights_enum(name: str):
    """The torchvision weights enum of architecture ``name``, or None if it has none."""
    models = _torchvision_models()
    try:
        return models.get_model_weights(name)
    except (ValueError, KeyError):  # not a torchvision architecture
        return None


def _is_weights_enum(obj) -> bool:
    if obj is None or isinstance(obj, (str, os.PathLike)):
        return False
    try:
        from torchvision.models import WeightsEnum
    except ImportError:
        return False
    return isinstance(obj, WeightsEnum)


def _looks_like_path(weights) -> bool:
    if isinstance(weights, os.PathLike):
        return True
    return isinstance(weights, str) and (
        weights.lower().endswith((".pt", ".pth")) or os.path.exists(weights)
    )


def _resolve_weights_name(weights: str, name: str):
    """``"DEFAULT"``, ``"IMAGENET1K_V1"`` or ``"ResNet18_Weights.DEFAULT"`` -> the enum member."""
    enum = _weights_enum(name)
    if enum is None:
        raise ValueError(
            f"weights={weights!r}: {name} has no torchvision weights; pass None or the path of a "
            "state-dict file"
        )
    valid = [f"{enum.__name__}.{member}" for member in enum.__members__]
    key = weights.removeprefix(f"{enum.__name__}.")
    if key in enum.__members__:
        return enum[key]
    if "." in weights:  # another architecture's enum?
        models = _torchvision_models()
        try:
            other = models.get_weight(weights)
        except (ValueError, KeyError):
            other = None
        if other is not None:
            raise ValueError(
                f"weights={weights!r} belongs to another architecture, not {name}; valid: {valid}"
            )
    raise ValueError(
        f"weights={weights!r} is neither an existing file nor a weights name of {name}; "
        f"valid names: {valid} (or the part after the dot), or a .pt/.pth file"
    )


def _check_weights_enum(weights, name: str):
    enum = _weights_enum(name)
    if enum is None or not isinstance(weights, enum):
        expected = "none: pass a state-dict file" if enum is None else f"{enum.__name__}.*"
        raise ValueError(
            f"weights={weights!r} are for another architecture, not {name} (expected {expected})"
        )
    return weights


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_sha256(path: Path, sha256) -> None:
    actual = _sha256(path)
    if sha256 is None:
        raise ValueError(
            f"weights={str(path)!r} is a file: pass sha256= (its SHA-256 digest, or a prefix of "
            f"at least 8 hex digits) so that a corrupted or substituted file is caught; this "
            f"file's digest is {actual}"
        )
    if not isinstance(sha256, str):
        raise TypeError(f"sha256 must be a hex string; got {type(sha256).__name__}")
    expected = sha256.strip().lower()
    if not (8 <= len(expected) <= 64 and _HEX.fullmatch(expected)):
        raise ValueError(
            f"sha256 must be a SHA-256 hex digest or a prefix of at least 8 hex digits; "
            f"got {sha256!r}"
        )
    if not actual.startswith(expected):
        raise ValueError(
            f"sha256 mismatch for {path}: expected {expected}, the file's digest is {actual}"
        )


def _few(keys, n: int = 5) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def _load_backbone(model: nn.Module, head: nn.Module, path: Path, keep_head: bool) -> None:
    """Load a state-dict file: every non-head tensor strictly; the head only with keep_head."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ValueError(
            f"{path} does not hold a state dict (parameter name -> tensor); save one with "
            "torch.save(model.state_dict(), path)"
        )
    head_name = next(n for n, m in model.named_modules() if m is head)
    is_head = lambda key: key.startswith(head_name + ".")  # noqa: E731
    own = model.state_dict()
    own_backbone = {k for k in own if not is_head(k)}
    file_backbone = {k for k in state if not is_head(k)}
    missing, unexpected = own_backbone - file_backbone, file_backbone - own_backbone
    if missing or unexpected:
        raise ValueError(
            f"the state dict in {path} does not fit the backbone: "
            + (f"missing keys: {_few(missing)}" if missing else "")
            + ("; " if missing and unexpected else "")
            + (f"unexpected keys: {_few(unexpected)}" if unexpected else "")
        )
    wrong = [k for k in own_backbone if state[k].shape != own[k].shape]
    if wrong:
        raise ValueError(
            f"the state dict in {path} has tensors of other shapes than the backbone: "
            + ", ".join(
                f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in sorted(wrong)[:5]
            )
        )
    head_keys = {k for k in own if is_head(k)}
    merged = {k: state[k] for k in own_backbone}
    if keep_head:
        head_fits = head_keys == {k for k in state if is_head(k)} and all(
            state[k].shape == own[k].shape for k in head_keys
        )
        if not head_fits:
            shapes = {k: tuple(state[k].shape) for k in sorted(state) if is_head(k)}
            raise ValueError(
                f"keep_head=True, but the head in {path} does not fit num_classes: it has "
                f"{shapes or 'no head tensors'}"
            )
        merged.update({k: state[k] for k in head_keys})
    else:
        merged.update({k: own[k] for k in head_keys})
    model.load_state_dict(merged, strict=True)


def build_transfer_model(
    name: str, num_classes: int, weights=None, *, sha256=None, keep_head: bool = False, **kwargs
):
    r"""A torchvision classifier with (optionally) pretrained weights and a new head.

    The head is replaced by ``nn.Linear(in_features, num_classes)``: ``fc`` for a ResNet, the
    last layer of ``classifier`` for VGG-16 and EfficientNet-B0 (whose dropout is kept). A new
    head is initialised at random, so before fine-tuning the model outputs
    :math:`\mathbf z = W \phi(\mathbf x) + \mathbf b` with pretrained features
    :math:`\phi` and a random :math:`W`.

    Parameters
    ----------
    name : {"resnet18", "resnet50", "vgg16", "efficientnet_b0", "small_resnet"}
        The architecture; ``"small_resnet"`` is the book's :class:`SmallResNet`.
    num_classes : int
        Outputs of the new head (positive).
    weights : None, torchvision WeightsEnum, str or os.PathLike, default None
        ``None``: random initialisation. A member of the architecture's weights enum (e.g.
        ``ResNet18_Weights.DEFAULT``) or its name (``"ResNet18_Weights.DEFAULT"``, ``"DEFAULT"``,
        ``"IMAGENET1K_V1"``): downloaded by torchvision (and cached). A path to a local file
        written by ``torch.save(model.state_dict(), path)`` for this architecture, with any
        number of classes: every backbone tensor is loaded (strictly) and the head is new
        (see ``keep_head``). A string is a
        path if it ends in ``.pt``/``.pth`` or names an existing file. For ``"small_resnet"``,
        the name of a backbone the book ships (``"glyphs100"``, ``"glyphs5"``,
        ``"glyphs100_clean"``; see
        :func:`book_backbone`) loads that file, checked against its recorded SHA-256.
    sha256 : str, optional
        Required with a file: its SHA-256 hex digest, or a prefix of at least 8 hex digits
        (case-insensitive). The file is loaded with ``torch.load(weights_only=True)``.
    keep_head : bool, default False
        With a file only: load its head too (it must have ``num_classes`` outputs), to restore a
        model fine-tuned earlier. By default the head is always new, even when the source task
        happens to have ``num_classes`` classes: transfer to a new task needs a new head.

    Returns
    -------
    torch.nn.Module
        The model, in training mode, every parameter trainable.

    Raises
    ------
    TypeError
        If ``pretrained=`` (deprecated since torchvision 0.13) or any other unknown keyword is
        passed, ``num_classes`` is not an int or ``keep_head`` not a bool.
    ValueError
        If ``name`` is unknown, ``num_classes`` < 1, ``weights`` is an invalid name or belongs
        to another architecture, a file comes without ``sha256`` or with another digest, the
        file's state dict does not fit the backbone, or ``keep_head`` is set without a file or
        with a head of another size.
    FileNotFoundError
        If ``weights`` is a path that does not exist.
    """
    if "pretrained" in kwargs:
        raise TypeError(
            "build_transfer_model does not take pretrained=: torchvision's pretrained= is "
            "deprecated since torchvision 0.13; use weights= instead, e.g. "
            "weights='DEFAULT' for the best available pretrained weights, or weights=None"
        )
    if kwargs:
        raise TypeError(f"build_transfer_model got unexpected keyword arguments: {sorted(kwargs)}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a str; got {type(name).__name__}")
    _validate.one_of(name, "name", set(_ARCHITECTURES))
    num_classes = _validate.positive_int(num_classes, "num_classes")
    constructor, replace_head = _ARCHITECTURES[name]

    path = None
    if name == "small_resnet" and isinstance(weights, str) and weights in BACKBONE_RECIPES:
        weights, info = book_backbone(weights)  # a backbone the book ships, with its digest
        sha256 = info["sha256"] if sha256 is None else sha256
    if weights is None:
        enum_weights = None
    elif _looks_like_path(weights):
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path}")
        _check_sha256(path, sha256)
        enum_weights = None
    elif isinstance(weights, str):
        enum_weights = _resolve_weights_name(weights, name)
    elif _is_weights_enum(weights):
        enum_weights = _check_weights_enum(weights, name)
    else:
        raise TypeError(
            "weights must be None, a torchvision weights enum, its name, or a file path; "
            f"got {type(weights).__name__}"
        )
    if path is None and sha256 is not None:
        raise ValueError("sha256 is only used with weights given as a file path")
    if not isinstance(keep_head, bool):
        raise TypeError(f"keep_head must be True or False; got {keep_head!r}")
    if keep_head and path is None:
        raise ValueError("keep_head=True only applies to weights loaded from a file")

    model = constructor(weights=enum_weights)
    head = replace_head(model, num_classes)
    if path is not None:
        _load_backbone(model, head, path, keep_head)
    return model


# --------------------------------------------------------------------------- trainer
class ProgressiveUnfreezingTrainer(Trainer):
    r"""Fine-tune in phases, unfreezing layer groups from the top, with discriminative rates.

    Each phase ``(n_groups, epochs)`` makes the top ``n_groups`` layer groups trainable
    (:func:`~companion.freezing.unfreeze`), builds a *fresh* optimizer over exactly those
    parameters with learning rates :math:`\eta_i = \eta / d^{\,i}`
    (:func:`~companion.freezing.param_groups`) and trains for ``epochs`` epochs with
    :meth:`~companion.training.Trainer.fit`. Frozen parameters are not
    in the optimizer, so neither weight decay nor momentum moves them, and frozen BatchNorm
    layers are locked in evaluation mode, so their running statistics do not move either;
    with the default ``bn="frozen"`` no running statistic moves in any phase.

    Parameters
    ----------
    model : torch.nn.Module
        A model :func:`~companion.freezing.layer_groups` understands, e.g. from
        :func:`build_transfer_model`.
    device : str or torch.device, optional
        Where to train; ``None`` picks CUDA when present.
    criterion : torch.nn.Module, optional
        Default ``nn.CrossEntropyLoss()``.

    Attributes
    ----------
    phases : list of dict
        Per phase run: ``n_groups``, ``epochs``, ``lr``, ``trainable``
        (:func:`~companion.freezing.count_trainable` after unfreezing), ``bn`` (the policy),
        ``val_acc`` and ``val_loss`` (of its last epoch; NaN without a ``val_loader``). The
        per-epoch
        :attr:`~companion.training.Trainer.history` runs on across phases.

    Raises
    ------
    TypeError
        If ``model`` is not a ``torch.nn.Module``.
    ValueError
        If :func:`~companion.freezing.layer_groups` cannot split the model.
    """

    def __init__(self, model: nn.Module, device=None, criterion: nn.Module | None = None):
        super().__init__(model, device=device, criterion=criterion)
        layer_groups(self.model)  # fail now, not at the first phase
        self.phases = []

    def fit_phases(
        self,
        train_loader,
        val_loader,
        phases=((1, 5), (2, 5), (None, 5)),
        base_lr: float = 1e-3,
        decay: float = 2.6,
        weight_decay: float = 0.0,
        optimizer: str = "adamw",
        progress: bool = False,
        bn: str = "frozen",
    ) -> list[dict]:
        r"""Run the phases of progressive unfreezing, one fresh optimizer per phase.

        Group :math:`i` from the top trains with :math:`\eta_i = \eta / d^{\,i}`.

        Parameters
        ----------
        train_loader, val_loader : iterable of (inputs, labels)
        phases : sequence of (int or None, int[, float]), default ((1, 5), (2, 5), (None, 5))
            ``(n_groups, epochs)`` per phase: train the top ``n_groups`` layer groups (``None``:
            all) for ``epochs`` epochs. A third item overrides ``base_lr`` for that phase
            (a head trained alone usually takes a larger rate than the fine-tuning after it).
        base_lr : float, default 1e-3
            :math:`\eta`, the head's learning rate.
        decay : float, default 2.6
            :math:`d \ge 1`.
        weight_decay : float, default 0.0
            :math:`\lambda`, given to the optimizer (decoupled for AdamW).
        optimizer : {"adamw", "adam", "sgd"}, default "adamw"
            ``torch.optim.AdamW``, ``Adam`` or ``SGD`` with momentum 0.9.
        progress : bool, default False
            Progress bar over each phase's epochs.
        bn : {"frozen", "train"}, default "frozen"
            BatchNorm policy of the unfrozen groups (:func:`~companion.freezing.unfreeze`):
            ``"frozen"`` keeps every running statistic as pretrained, ``"train"`` lets the
            unfrozen groups
            re-estimate them from each training batch. Frozen groups stay locked either way.

        Returns
        -------
        list of dict
            :attr:`phases`, this call's phases appended.

        Raises
        ------
        TypeError
            If ``phases`` is not a sequence of pairs of ints (``n_groups`` may be None).
        ValueError
            If ``phases`` is empty or holds non-positive numbers, ``base_lr`` <= 0,
            ``decay`` < 1, ``weight_decay`` < 0, ``optimizer`` or ``bn`` is unknown, or the
            data are bad
            (see :meth:`~companion.training.Trainer.fit`).
        """
        phases = _check_phases(phases)
        base_lr = _validate.positive_float(base_lr, "base_lr")
        weight_decay = _validate.nonnegative_float(weight_decay, "weight_decay")
        if not isinstance(optimizer, str):
            raise TypeError(f"optimizer must be one of {list(_OPTIMIZERS)}; got {optimizer!r}")
        _validate.one_of(optimizer, "optimizer", set(_OPTIMIZERS))
        bn = _check_bn(bn)
        param_groups(self.model, base_lr, decay)  # validates decay before any training
        for n_groups, epochs, lr in phases:
            lr = base_lr if lr is None else lr
            unfreeze(self.model, n_groups, bn=bn)
            groups = param_groups(self.model, lr, decay)
            if optimizer == "adamw":
                opt = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
            elif optimizer == "adam":
                opt = torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
            else:
                opt = torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=weight_decay)
            trainable = count_trainable(self.model)
            self.fit(train_loader, val_loader, epochs, optimizer=opt, progress=progress)
            self.phases.append(
                {
                    "n_groups": n_groups,
                    "epochs": epochs,
                    "lr": lr,
                    "trainable": trainable,
                    "bn": bn,
                    "val_acc": self.history["val_acc"][-1],
                    "val_loss": self.history["val_loss"][-1],
                }
            )
        return self.phases


def _check_phases(phases) -> list[tuple[int | None, int, float | None]]:
    if isinstance(phases, (str, bytes)) or not hasattr(phases, "__len__"):
        raise TypeError(f"phases must be a sequence of (n_groups, epochs) pairs; got {phases!r}")
    if len(phases) == 0:
        raise ValueError("phases is empty: give at least one (n_groups, epochs) pair")
    checked = []
    for i, phase in enumerate(phases):
        if (
            isinstance(phase, (str, bytes))
            or not hasattr(phase, "__len__")
            or len(phase) not in (2, 3)
        ):
            raise TypeError(
                f"phases[{i}] must be a pair (n_groups, epochs) or a triple "
                f"(n_groups, epochs, base_lr); got {phase!r}"
            )
        n_groups, epochs = phase[0], phase[1]
        if n_groups is not None:
            n_groups = _validate.positive_int(n_groups, f"phases[{i}] n_groups")
        lr = _validate.positive_float(phase[2], f"phases[{i}] base_lr") if len(phase) == 3 else None
        checked.append((n_groups, _validate.positive_int(epochs, f"phases[{i}] epochs"), lr))
    return checked


# --------------------------------------------------------------------------- pretraining
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
_MANIFEST = "backbones.json"

#: Recipes of the backbones the book ships (``companion/weights``): pretraining on random-stroke
#: glyphs (``companion.data.make_glyphs``) with many classes on the target's noisy canvas, and two
#: controls: few classes, and many classes without the noise.
BACKBONE_RECIPES = {
    "glyphs100": {"num_classes": 100, "steps": 1200, "noise": 0.2},
    "glyphs5": {"num_classes": 5, "steps": 1200, "noise": 0.2},
    "glyphs100_clean": {"num_classes": 100, "steps": 1200, "noise": 0.0},
}


def pretrain_backbone(
    num_classes: int = 100,
    steps: int = 1200,
    batch_size: int = 64,
    n_train: int = 25_600,
    n_val: int = 2_000,
    lr: float = 3e-3,
    weight_decay: float = 5e-4,
    seed: int = 0,
    noise: float = 0.2,
    device="cpu",
    progress: bool = False,
):
    r"""Pretrain a :class:`SmallResNet` on ``num_classes`` glyph classes; deterministic.

    The source task is ``companion.data.make_glyphs``: ``n_train`` training and ``n_val``
    validation images (other seeds, same alphabet). AdamW with decoupled weight decay
    :math:`\lambda` and a one-cycle learning rate (warm-up to ``lr``, cosine decay) for
    ``steps`` mini-batches of cross-entropy. The model is initialised from ``seed`` inside
    ``torch.random.fork_rng``, so the caller's random state is left as it was.

    Parameters
    ----------
    num_classes : int, default 100
    steps : int, default 1200
        Gradient steps; the training images are reshuffled every ``n_train / batch_size``.
    batch_size : int, default 64
    n_train, n_val : int, default 25 600 and 2 000
    lr : float, default 3e-3
        Peak learning rate.
    weight_decay : float, default 5e-4
    seed : int, default 0
    noise : float, default 0.2
        Standard deviation of the glyphs' background noise (0: a clean canvas).
    device : str or torch.device, default "cpu"
        Where to train (the stored backbones were trained on the CPU with one thread).
    progress : bool, default False

    Returns
    -------
    model : SmallResNet
        On the CPU, in evaluation mode.
    val_acc : float
        Accuracy on the ``n_val`` held-out glyphs.

    Raises
    ------
    TypeError, ValueError
        On a non-positive count or rate.
    """
    from torch.utils.data import DataLoader, TensorDataset

    from .data import make_glyphs

    num_classes = _validate.positive_int(num_classes, "num_classes")
    steps = _validate.positive_int(steps, "steps")
    batch_size = _validate.positive_int(batch_size, "batch_size")
    n_train = _validate.positive_int(n_train, "n_train")
    n_val = _validate.positive_int(n_val, "n_val")
    lr = _validate.positive_float(lr, "lr")
    weight_decay = _validate.nonnegative_float(weight_decay, "weight_decay")
    seed = _validate.nonnegative_int(seed, "seed")
    noise = _validate.nonnegative_float(noise, "noise")
    X, y = make_glyphs(n_train, num_classes, noise=noise, seed=2 * seed)
    X_val, y_val = make_glyphs(n_val, num_classes, noise=noise, seed=2 * seed + 1)
    generator = torch.Generator().manual_seed(seed)
    train = DataLoader(
        TensorDataset(X, y),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        generator=generator,
    )
    per_epoch = len(train)
    epochs = -(-steps // per_epoch)  # ceil
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        torch.manual_seed(seed)
        model = SmallResNet(num_classes)
        trainer = Trainer(model, device=device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
        trainer.fit(
            _FirstBatches(train, steps),
            None,
            epochs,
            optimizer=optimizer,
            scheduler=schedule,
            scheduler_step="batch",
            progress=progress,
        )
        _, val_acc = trainer.validate(DataLoader(TensorDataset(X_val, y_val), batch_size=500))
        model = model.cpu().eval()
    return model, val_acc


class _FirstBatches:
    """Iterate over ``loader`` epoch after epoch, stopping after ``steps`` batches in all."""

    def __init__(self, loader, steps: int):
        self.loader, self.left = loader, steps
        self.generator = getattr(loader, "generator", None)

    def __iter__(self):
        for batch in self.loader:
            if self.left <= 0:
                return
            self.left -= 1
            yield batch

    def __len__(self):
        return min(len(self.loader), self.left)


def _manifest() -> dict:
    import json

    path = WEIGHTS_DIR / _MANIFEST
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def book_backbone(source: str = "glyphs100"):
    """The path and SHA-256 of a backbone the book ships, and what pretraining measured.

    Parameters
    ----------
    source : {"glyphs100", "glyphs5", "glyphs100_clean"}
        Pretrained on 100 glyph classes on a noisy canvas (the target's), on 5 classes, or on
        100 classes without noise: the chapter's source and its two weaker controls.

    Returns
    -------
    path : pathlib.Path
        A ``torch.save(model.state_dict())`` file of a :class:`SmallResNet`.
    info : dict
        ``sha256``, the recipe (``num_classes``, ``steps``, ``noise``), ``val_acc`` (source
        accuracy on held-out glyphs) and ``torch`` (the version that wrote it).

    Raises
    ------
    ValueError
        If ``source`` is not a shipped backbone.
    FileNotFoundError
        If the file is missing (run ``make pretrain``).
    """
    _validate.one_of(source, "source", set(BACKBONE_RECIPES))
    info = _manifest().get(source)
    path = WEIGHTS_DIR / f"{source}_small_resnet.pt"
    if info is None or not path.is_file():
        raise FileNotFoundError(f"backbone {source!r} is not in {WEIGHTS_DIR}: run make pretrain")
    return path, dict(info)


def _write_backbones(out_dir: Path, sources=None, progress: bool = False) -> dict:
    """Pretrain the book's backbones into ``out_dir`` with a manifest (``make pretrain``)."""
    import json
    import time

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / _MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    for source in sources or BACKBONE_RECIPES:
        recipe = BACKBONE_RECIPES[source]
        start = time.perf_counter()
        model, val_acc = pretrain_backbone(**recipe, progress=progress)
        seconds = time.perf_counter() - start
        path = out_dir / f"{source}_small_resnet.pt"
        torch.save(model.state_dict(), path)
        manifest[source] = {
            "sha256": _sha256(path),
            **recipe,
            "val_acc": round(val_acc, 4),
            "torch": torch.__version__.split("+")[0],
        }
        print(f"{source}: source accuracy {val_acc:.4f} in {seconds:.0f} s -> {path}")
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


# --------------------------------------------------------------------------- few-label transfer
#: The chapter's recipes for few-label training (AdamW, batches of 32, no weight decay).
#: ``scratch`` was picked as the best of a grid (see ``tests/test_transfer_pretrained.py``); the
#: transfer recipes were fixed once and never tuned on the test images.
FEW_SHOT_RECIPES = {
    "scratch": {"epochs": 60, "lr": 1e-2},
    "probe": {"phases": ((1, 60, 1e-2),)},
    "progressive": {"phases": ((1, 60, 1e-2), (2, 10, 1e-3), (None, 10, 1e-3))},
}


def train_few_shot(
    method: str,
    X,
    y,
    *,
    source: str = "glyphs100",
    seed: int = 0,
    test=None,
    batch_size: int = 32,
    bn: str = "frozen",
    **recipe,
):
    r"""Train a :class:`SmallResNet` on a few labelled images: from scratch or by transfer.

    * ``"scratch"``: random initialisation, every weight trained with AdamW for ``epochs``
      epochs at learning rate ``lr``.
    * ``"probe"``: the pretrained backbone ``source`` frozen, a new head trained on its
      features :math:`\phi(\mathbf x)` (a *linear probe*: multinomial logistic regression on
      frozen features).
    * ``"progressive"``: the probe, then progressive unfreezing
      (:class:`ProgressiveUnfreezingTrainer`): head and ``layer3``, then everything, with rates
      :math:`\eta / 2.6^{i}` per group.

    Defaults are :data:`FEW_SHOT_RECIPES`; keyword arguments override them (``epochs``,
    ``lr``, ``weight_decay`` for scratch; ``phases`` for the others). No validation data are
    used during training: with five labels per class there are none to spare.

    Parameters
    ----------
    method : {"scratch", "probe", "progressive"}
    X : torch.Tensor, shape (n, 1, h, w)
    y : torch.Tensor of int64, shape (n,)
        Labels ``0 .. C - 1``; the head gets ``C = y.max() + 1`` outputs.
    source : {"glyphs100", "glyphs5", "glyphs100_clean"}, default "glyphs100"
        The pretrained backbone (:func:`book_backbone`); ignored for scratch.
    seed : int, default 0
        Seeds the new weights and the shuffling (the caller's random state is kept).
    test : tuple (X_test, y_test), optional
        Scored after every phase into ``trainer.phases[i]["test_acc"]`` (and for scratch into
        ``trainer.test_acc``); never used for training decisions.
    batch_size : int, default 32
    bn : {"frozen", "train"}, default "frozen"
        BatchNorm policy of the unfrozen groups (:func:`~companion.freezing.unfreeze`);
        scratch trains every BatchNorm layer, as any network trained from random weights must.
    **recipe
        Overrides of the method's recipe.

    Returns
    -------
    Trainer or ProgressiveUnfreezingTrainer
        With the trained ``model`` (on the CPU, in evaluation mode) and its ``history``.

    Raises
    ------
    TypeError
        If ``X``, ``y`` or ``test`` are not tensors (``test``: a pair of them).
    ValueError
        If ``method`` or ``source`` is unknown, a recipe key does not belong to the method, or
        ``X``, ``y`` and ``test`` do not match.
    """
    from torch.utils.data import DataLoader, TensorDataset

    _validate.one_of(method, "method", set(FEW_SHOT_RECIPES))
    _validate.one_of(source, "source", set(BACKBONE_RECIPES))
    settings = dict(FEW_SHOT_RECIPES[method])
    unknown = set(recipe) - (
        {"epochs", "lr", "weight_decay"} if method == "scratch" else {"phases"}
    )
    if unknown:
        raise ValueError(f"recipe keys {sorted(unknown)} do not apply to method={method!r}")
    settings.update(recipe)
    seed = _validate.nonnegative_int(seed, "seed")
    batch_size = _validate.positive_int(batch_size, "batch_size")
    bn = _check_bn(bn)
    if not (isinstance(X, torch.Tensor) and isinstance(y, torch.Tensor)):
        raise TypeError("X and y must be torch tensors (images and int64 labels)")
    if X.ndim != 4 or y.ndim != 1 or len(X) != len(y) or len(y) == 0:
        raise ValueError(
            f"X must be (n, channels, h, w) and y (n,) with the same n > 0; got {tuple(X.shape)} "
            f"and {tuple(y.shape)}"
        )
    num_classes = int(y.max()) + 1
    test_loader = None
    if test is not None:
        if not (isinstance(test, (tuple, list)) and len(test) == 2):
            raise TypeError("test must be a pair (X_test, y_test) of tensors")
        X_test, y_test = test
        if not (isinstance(X_test, torch.Tensor) and isinstance(y_test, torch.Tensor)):
            raise TypeError("test must be a pair (X_test, y_test) of tensors")
        if X_test.shape[1:] != X.shape[1:] or y_test.ndim != 1 or len(X_test) != len(y_test):
            raise ValueError(
                f"test must hold images shaped like X, {tuple(X.shape[1:])}, and one label each; "
                f"got {tuple(X_test.shape)} and {tuple(y_test.shape)}"
            )
        test_loader = DataLoader(TensorDataset(X_test, y_test), batch_size=1024)
    generator = torch.Generator().manual_seed(seed)
    train = DataLoader(
        TensorDataset(X, y), batch_size=batch_size, shuffle=True, generator=generator
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if method == "scratch":
            model = SmallResNet(num_classes, in_channels=X.shape[1])
            trainer = Trainer(model, device="cpu")
            optimizer = torch.optim.AdamW(
                model.parameters(),
                lr=settings["lr"],
                weight_decay=settings.get("weight_decay", 0.0),
            )
            trainer.fit(train, None, settings["epochs"], optimizer=optimizer, progress=False)
            trainer.test_acc = None if test_loader is None else trainer.validate(test_loader)[1]
            model.eval()
            return trainer
        model = build_transfer_model("small_resnet", num_classes, weights=source)
        trainer = ProgressiveUnfreezingTrainer(model, device="cpu")
        for phase in _check_phases(settings["phases"]):
            trainer.fit_phases(train, None, phases=[phase if phase[2] else phase[:2]], bn=bn)
            if test_loader is not None:
                trainer.phases[-1]["test_acc"] = trainer.validate(test_loader)[1]
    trainer.model.eval()
    return trainer


def main(argv=None) -> None:
    """``make pretrain``: pretrain every backbone of :data:`BACKBONE_RECIPES` into a folder.

    ``python -c "from companion.transfer import main; main()" [OUT_DIR]``; the default folder is
    the package's ``weights``. Writes ``<source>_small_resnet.pt`` and the manifest
    ``backbones.json`` (SHA-256, recipe, source accuracy, torch version).
    """
    import sys

    argv = sys.argv[1:] if argv is None else argv
    _write_backbones(Path(argv[0]) if argv else WEIGHTS_DIR, progress=True)
