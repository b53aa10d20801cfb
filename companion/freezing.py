r"""What to train in a pretrained network: layer groups, freezing, BatchNorm policy, rates
(chapter 9, used by :mod:`companion.transfer`).

* :func:`layer_groups` splits a model into groups from the head down (``fc``, ``layer4`` ...
  ``conv1 + bn1`` for a ResNet).
* :func:`freeze_backbone`, :func:`unfreeze` and :func:`unfreeze_layers` set
  ``requires_grad`` by whole groups or exactly named modules, and lock the BatchNorm layers
  they freeze in evaluation mode, so that ``model.train()`` cannot undo the freezing. Their
  ``bn`` argument is the BatchNorm policy of the unfrozen part: ``"frozen"`` (default: running
  statistics never move, as in ``torchvision.ops.FrozenBatchNorm2d``, while the affine weights
  train) or ``"train"`` (statistics re-estimated from each training batch).
* :func:`param_groups` gives group :math:`i` from the head the rate
  :math:`\eta_i = \eta / d^{\,i}` (Howard & Ruder, 2018), over trainable parameters only.
"""

from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from . import _validate

__all__ = [
    "layer_groups",
    "freeze_backbone",
    "unfreeze",
    "unfreeze_layers",
    "BN_POLICIES",
    "freeze_batchnorm_stats",
    "set_frozen_batchnorm_eval",
    "stats_frozen",
    "FrozenStatsBatchNorm1d",
    "FrozenStatsBatchNorm2d",
    "FrozenStatsBatchNorm3d",
    "param_groups",
    "count_trainable",
]


# --------------------------------------------------------------------------- layer groups
def _check_model(model) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    return model


def _has_params(modules) -> bool:
    return any(True for m in modules for _ in m.parameters())


def _span(prefix: str, first: int, last: int) -> str:
    return f"{prefix}.{first}" if first == last else f"{prefix}.{first}-{last}"


def _named_layer_groups(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """``(name, modules)`` per layer group, top (head) first, groups without parameters dropped."""
    _check_model(model)
    groups = []
    children = dict(model.named_children())
    resnet_like = all(isinstance(children.get(k), nn.Module) for k in ("fc", "layer1", "conv1"))
    features, classifier = children.get("features"), children.get("classifier")
    if resnet_like:
        groups.append(("fc", [model.fc]))
        n = 1
        while isinstance(children.get(f"layer{n + 1}"), nn.Module):
            n += 1
        groups += [(f"layer{i}", [children[f"layer{i}"]]) for i in range(n, 0, -1)]
        stem = [children["conv1"]] + ([children["bn1"]] if "bn1" in children else [])
        groups.append(("conv1+bn1" if len(stem) == 2 else "conv1", stem))
    elif isinstance(features, nn.Sequential) and isinstance(classifier, nn.Sequential):
        last = len(classifier) - 1
        groups.append((_span("classifier", last, last), [classifier[last]]))
        if last > 0:
            groups.append((_span("classifier", 0, last - 1), list(classifier)[:last]))
        blocks, start = [], 0  # VGG: a block ends at each max-pool; else one block per child
        split_at_pools = any(isinstance(m, nn.MaxPool2d) for m in features)
        for i, module in enumerate(features):
            if not split_at_pools or isinstance(module, nn.MaxPool2d) or i == len(features) - 1:
                blocks.append((_span("features", start, i), list(features)[start : i + 1]))
                start = i + 1
        groups += blocks[::-1]
    else:
        raise ValueError(
            "layer_groups understands ResNet-like models (children conv1, bn1, layer1..layerN, "
            "fc) and VGG/EfficientNet-like models (nn.Sequential children features and "
            f"classifier); {type(model).__name__} is neither"
        )
    return [(name, modules) for name, modules in groups if _has_params(modules)]


def layer_groups(model: nn.Module) -> list[list[nn.Module]]:
    """The model's layer groups, from the head (group 0) down to the input.

    Found from the model's structure, so any model with the same attribute names works:

    * ResNet-like (children ``conv1``, optional ``bn1``, ``layer1`` .. ``layerN``, ``fc``):
      ``[fc], [layerN], ..., [layer1], [conv1, bn1]``. ResNet-18/50: 6 groups.
    * VGG/EfficientNet-like (``nn.Sequential`` children ``features`` and ``classifier``):
      ``[classifier[-1]]``, the rest of ``classifier``, then the blocks of ``features``, top
      first. If ``features`` holds max-pools (VGG), a block ends at each ``nn.MaxPool2d``
      (VGG-16: ``classifier.6``, ``classifier.0-5``, ``features.24-30``, ``features.17-23``,
      ``features.10-16``, ``features.5-9``, ``features.0-4``: 7 groups); otherwise each child
      of ``features`` is a block (EfficientNet-B0: ``classifier.1``, ``features.8`` ..
      ``features.0``: 10 groups, its classifier's dropout having no parameters).

    Groups without parameters are dropped. :func:`param_groups` names the groups as above.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    list of list of torch.nn.Module

    Raises
    ------
    ValueError
        If the model has neither structure.
    """
    return [modules for _, modules in _named_layer_groups(model)]


# --------------------------------------------------------------------------- freezing
#: BatchNorm policies of :func:`freeze_backbone`, :func:`unfreeze`, :func:`unfreeze_layers`
#: and :meth:`companion.transfer.ProgressiveUnfreezingTrainer.fit_phases`.
BN_POLICIES = ("frozen", "train")


class _StatsFrozen:
    """Mixin of a BatchNorm layer whose running statistics are frozen: it stays in eval mode.

    ``train(mode)`` leaves the layer in evaluation mode whatever ``mode`` says, so the
    ``model.train()`` that every training loop calls cannot switch it back to batch statistics.
    Only the class changes: attributes, parameters and ``state_dict`` keys are the layer's own,
    so checkpoints load either way.
    """

    def train(self, mode: bool = True):
        return super().train(False)


class FrozenStatsBatchNorm1d(_StatsFrozen, nn.BatchNorm1d):
    """``nn.BatchNorm1d`` locked in evaluation mode (see :func:`freeze_batchnorm_stats`)."""


class FrozenStatsBatchNorm2d(_StatsFrozen, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` locked in evaluation mode (see :func:`freeze_batchnorm_stats`)."""


class FrozenStatsBatchNorm3d(_StatsFrozen, nn.BatchNorm3d):
    """``nn.BatchNorm3d`` locked in evaluation mode (see :func:`freeze_batchnorm_stats`)."""


_FROZEN_CLASSES = {
    nn.BatchNorm1d: FrozenStatsBatchNorm1d,
    nn.BatchNorm2d: FrozenStatsBatchNorm2d,
    nn.BatchNorm3d: FrozenStatsBatchNorm3d,
}


def _frozen_class(cls: type) -> type:
    """The locked subclass of BatchNorm class ``cls`` (made on demand for other subclasses)."""
    if cls not in _FROZEN_CLASSES:
        _FROZEN_CLASSES[cls] = type(f"FrozenStats{cls.__name__}", (_StatsFrozen, cls), {})
    return _FROZEN_CLASSES[cls]


def _lock(module: _BatchNorm) -> None:
    if not isinstance(module, _StatsFrozen):
        module.__class__ = _frozen_class(type(module))
    module.train(False)


def _unlock(module: _BatchNorm, mode: bool) -> None:
    if isinstance(module, _StatsFrozen):
        # back to the original class: the first in the MRO that is not locked
        module.__class__ = next(c for c in type(module).__mro__ if not issubclass(c, _StatsFrozen))
    module.train(mode)


def stats_frozen(module: nn.Module) -> bool:
    """Whether ``module`` is a BatchNorm layer locked in evaluation mode by this module."""
    return isinstance(module, _StatsFrozen)


def freeze_batchnorm_stats(model: nn.Module) -> nn.Module:
    r"""Lock every BatchNorm layer of ``model`` in evaluation mode: its statistics never move.

    In training mode a BatchNorm layer normalises with the batch's own statistics and updates
    its running estimates, :math:`\hat\mu \leftarrow (1 - m)\hat\mu + m\,\mu_B`, whatever
    ``requires_grad`` says. Locked, it normalises with the stored :math:`\hat\mu, \hat\sigma^2`
    (as ``torchvision.ops.FrozenBatchNorm2d`` does) and ignores ``model.train()``; its affine
    weight and bias stay trainable if they are. :func:`unfreeze` with ``bn="train"`` undoes it.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    torch.nn.Module
        ``model``.

    Raises
    ------
    TypeError
        If ``model`` is not a ``torch.nn.Module``.
    """
    for module in _check_model(model).modules():
        if isinstance(module, _BatchNorm):
            _lock(module)
    return model


def set_frozen_batchnorm_eval(model: nn.Module) -> nn.Module:
    r"""Lock every *frozen* BatchNorm layer in evaluation mode, so its running statistics stay put.

    A layer counts as frozen when it has parameters and none requires a gradient; the others
    (and BatchNorm layers without affine parameters) are left as they are. Locked layers ignore
    ``model.train()`` (see :func:`freeze_batchnorm_stats`), so this need not be repeated after
    it.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    torch.nn.Module
        ``model``.

    Raises
    ------
    TypeError
        If ``model`` is not a ``torch.nn.Module``.
    """
    for module in _check_model(model).modules():
        if isinstance(module, _BatchNorm):
            params = list(module.parameters())
            if params and not any(p.requires_grad for p in params):
                _lock(module)
    return model


def _check_bn(bn) -> str:
    if not isinstance(bn, str):
        raise TypeError(f"bn must be one of {list(BN_POLICIES)}; got {bn!r}")
    return _validate.one_of(bn, "bn", set(BN_POLICIES))


def _apply_bn_policy(model: nn.Module, open_modules, bn: str) -> nn.Module:
    """Lock the BatchNorm layers outside ``open_modules``; inside them, apply policy ``bn``."""
    inside = {id(m) for top in open_modules for m in top.modules()}
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            if bn == "train" and id(module) in inside:
                _unlock(module, model.training)
            else:
                _lock(module)
    return model


def _set_trainable(model: nn.Module, n_groups: int | None, bn: str) -> nn.Module:
    groups = layer_groups(model)
    bn = _check_bn(bn)
    everything = n_groups is None or n_groups >= len(groups)
    for p in model.parameters():
        p.requires_grad_(everything)
    open_modules = [model] if everything else [m for ms in groups[:n_groups] for m in ms]
    for module in open_modules:
        for p in module.parameters():
            p.requires_grad_(True)
    return _apply_bn_policy(model, open_modules, bn)


def freeze_backbone(model: nn.Module, bn: str = "frozen") -> nn.Module:
    """Freeze everything but the head (layer group 0): feature extraction.

    Sets ``requires_grad = False`` on every parameter outside the head and locks the
    backbone's BatchNorm layers in evaluation mode, so that neither an optimizer over
    ``model.parameters()`` nor ``model.train()`` changes a backbone tensor, running statistics
    included. Equivalent to ``unfreeze(model, 1, bn)``.

    Parameters
    ----------
    model : torch.nn.Module
        A model :func:`layer_groups` understands.
    bn : {"frozen", "train"}, default "frozen"
        See :func:`unfreeze`; with the head alone trainable both lock every BatchNorm layer
        outside the head.

    Returns
    -------
    torch.nn.Module
        ``model``.

    Raises
    ------
    ValueError
        If :func:`layer_groups` cannot split the model, or ``bn`` is unknown.
    """
    return _set_trainable(model, 1, bn)


def unfreeze(model: nn.Module, n_groups: int | None, bn: str = "frozen") -> nn.Module:
    r"""Make the top ``n_groups`` layer groups trainable and freeze the rest.

    Group 0, the head, counts as one: ``unfreeze(model, 1)`` is :func:`freeze_backbone`,
    ``unfreeze(model, 2)`` adds the top block (``layer4`` of a ResNet). BatchNorm layers of
    frozen groups are always locked in evaluation mode (:func:`freeze_batchnorm_stats`); ``bn``
    says what happens to those of the unfrozen groups.

    Parameters
    ----------
    model : torch.nn.Module
        A model :func:`layer_groups` understands.
    n_groups : int or None
        Positive; ``None`` or at least the number of groups makes every parameter trainable.
    bn : {"frozen", "train"}, default "frozen"
        ``"frozen"``: every running mean and variance stays as pretrained, also in unfrozen
        groups, whose BatchNorm weight and bias still train (torchvision's detection models
        fix the statistics too, with ``torchvision.ops.FrozenBatchNorm2d``, which also fixes
        weight and bias). The reason: in training mode a batch of :math:`B` images normalises
        with its own :math:`\mu_B, \sigma_B^2`; with :math:`B = 25` these are noisy, differ
        from the statistics the pretrained weights expect, and then overwrite the running
        estimates used at test time. ``"train"``:
        BatchNorm layers of unfrozen groups follow ``model.train()`` again and re-estimate
        their statistics (sound with large batches; fastai's ``train_bn=True`` goes further
        and keeps BatchNorm layers of *frozen* groups training too).

    Returns
    -------
    torch.nn.Module
        ``model``.

    Raises
    ------
    TypeError
        If ``n_groups`` is neither an int nor None, or ``bn`` is not a str.
    ValueError
        If ``n_groups`` < 1, ``bn`` is unknown or :func:`layer_groups` cannot split the model.
    """
    if n_groups is not None:
        n_groups = _validate.positive_int(n_groups, "n_groups")
    return _set_trainable(model, n_groups, bn)


def unfreeze_layers(model: nn.Module, layer_names, bn: str = "frozen") -> nn.Module:
    """Make the named submodules trainable, matching names exactly; the rest stays as it is.

    The notes' ``unfreeze_layers(layer_names)`` tested ``layer in name`` for every parameter
    name: a substring match, so ``"layer1"`` also opens ``layer10``, and a bare string
    ``"layer4"`` is iterated character by character, whose ``"e"`` and ``"a"`` occur in
    every parameter name of a ResNet: everything unfreezes. Here each name must be the exact
    name of a submodule (``"layer4"``, ``"layer4.1"``, ``"fc"``), and a bare string is refused.

    Parameters
    ----------
    model : torch.nn.Module
    layer_names : list or tuple of str
        Names as in ``model.named_modules()``.
    bn : {"frozen", "train"}, default "frozen"
        For the BatchNorm layers inside the named modules, as in :func:`unfreeze`; those of
        frozen modules stay locked in evaluation mode.

    Returns
    -------
    torch.nn.Module
        ``model``.

    Raises
    ------
    TypeError
        If ``layer_names`` is a string or not a list/tuple of strings.
    ValueError
        If it is empty or a name is not a submodule of ``model``.
    """
    _check_model(model)
    bn = _check_bn(bn)
    if isinstance(layer_names, (str, bytes)):
        raise TypeError(
            f"layer_names must be a list of module names, not the string {layer_names!r} "
            f"(a string is iterated character by character): write [{layer_names!r}]"
        )
    if not isinstance(layer_names, (list, tuple)) or not all(
        isinstance(name, str) for name in layer_names
    ):
        raise TypeError(f"layer_names must be a list or tuple of str; got {layer_names!r}")
    if not layer_names:
        raise ValueError("layer_names is empty: name at least one module")
    modules = dict(model.named_modules())
    unknown = [name for name in layer_names if name not in modules or name == ""]
    if unknown:
        raise ValueError(
            f"layer_names {unknown} are not submodules of the model; its top-level modules: "
            f"{[name for name, _ in model.named_children()]}"
        )
    for name in layer_names:
        modules[name].requires_grad_(True)
    open_modules = [modules[name] for name in layer_names] + [
        m
        for m in model.modules()
        if isinstance(m, _BatchNorm) and any(p.requires_grad for p in m.parameters())
    ]
    return _apply_bn_policy(model, open_modules, bn)


def count_trainable(model: nn.Module) -> int:
    r"""Number of trainable parameters (elements), :math:`\sum_{p:\,\mathrm{requires\_grad}} |p|`.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    int

    Raises
    ------
    TypeError
        If ``model`` is not a ``torch.nn.Module``.
    """
    return sum(p.numel() for p in _check_model(model).parameters() if p.requires_grad)


def param_groups(model: nn.Module, base_lr: float, decay: float = 2.6) -> list[dict]:
    r"""Optimizer parameter groups with discriminative learning rates (ULMFiT).

    Layer group :math:`i` from the top (:func:`layer_groups`, the head is :math:`i = 0`) gets

    .. math::

        \eta_i = \frac{\eta}{d^{\,i}},

    so lower, more general layers move less (Howard & Ruder, 2018, use :math:`d = 2.6`). Only
    parameters with ``requires_grad`` are included and groups left empty are skipped: frozen
    weights are not in the optimizer at all. Trainable parameters outside every layer group
    (a custom model's extra modules) form a last group ``"other"`` with the smallest rate.

    Parameters
    ----------
    model : torch.nn.Module
        A model :func:`layer_groups` understands.
    base_lr : float
        :math:`\eta`, the head's learning rate (> 0).
    decay : float, default 2.6
        :math:`d \ge 1`; 1 gives every group the same rate.

    Returns
    -------
    list of dict
        ``{"params": [...], "lr": eta_i, "name": "fc"}`` per group, top first, for any
        ``torch.optim`` optimizer (it keeps the extra ``"name"`` key in its ``param_groups``).

    Raises
    ------
    ValueError
        If ``base_lr`` <= 0, ``decay`` < 1, or :func:`layer_groups` cannot split the model.
    """
    base_lr = _validate.positive_float(base_lr, "base_lr")
    decay = _validate.finite_float(decay, "decay")
    if decay < 1:
        raise ValueError(f"decay must be >= 1 (lower layers get smaller rates); got {decay}")
    named = _named_layer_groups(model)
    seen, result = set(), []
    for i, (name, modules) in enumerate(named):
        params = []
        for module in modules:
            for p in module.parameters():
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        if params:
            result.append({"params": params, "lr": base_lr / decay**i, "name": name})
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in seen]
    if rest:
        result.append({"params": rest, "lr": base_lr / decay ** len(named), "name": "other"})
    return result
