r"""Checkers for chapter 9's exercises: ``weights=`` for ``pretrained=True``, trainable
parameters after unfreezing, and a frozen backbone whose BatchNorm statistics stay put."""

from __future__ import annotations

import warnings
from unittest import mock

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..freezing import count_trainable, freeze_backbone, layer_groups, unfreeze
from ..transfer import build_transfer_model
from . import Wrong, call, exercise, number

_SEED = 2024


class _Requested(Exception):
    """Raised where torchvision would download: carries the weights it asked for."""


def _requested_weights(**kwargs):
    """``(weights, warnings)`` of ``models.resnet50(**kwargs)``, stopped before any download."""
    from torchvision import models

    def stop(self, *args, **kw):
        raise _Requested(self)

    with (
        warnings.catch_warnings(record=True) as caught,
        mock.patch.object(models.WeightsEnum, "get_state_dict", stop),
    ):
        warnings.simplefilter("always")
        try:
            models.resnet50(**kwargs)
            requested = None
        except _Requested as got:
            requested = got.args[0]
    return requested, [str(w.message) for w in caught]


@exercise("9.1", "Repair the notes' pretrained=True", level="easy", kind="debug")
def check_pretrained_weights(answer):
    r"""``models.resnet50(weights=answer)`` must ask for the same weights as the notes'
    ``models.resnet50(pretrained=True)``, with no warning. The answer is a member of
    ``ResNet50_Weights`` or its name; the checker stops torchvision before it downloads."""
    from torchvision import models

    expected, notes_warnings = _requested_weights(pretrained=True)
    assert expected is not None and notes_warnings  # the notes' call warns
    if isinstance(answer, bool):
        raise Wrong(
            f"weights={answer} is the old boolean meaning, which warns as pretrained= does",
            "weights= takes a weights enum member such as models.ResNet50_Weights.<NAME> (or "
            "its name); read pretrained=True's warning for which one it stands for",
        )
    if isinstance(answer, str):
        try:
            answer = models.get_weight(answer) if "." in answer else models.ResNet50_Weights[answer]
        except (KeyError, ValueError, AttributeError):
            raise Wrong(
                f"{answer!r} is not the name of a weights enum member",
                "the warning names them: ResNet50_Weights.<NAME>",
            ) from None
    if not isinstance(answer, models.WeightsEnum):
        raise Wrong(
            f"the answer must be a torchvision weights enum member; got {type(answer).__name__}",
            "write models.ResNet50_Weights.<NAME>",
        )
    if not isinstance(answer, models.ResNet50_Weights):
        raise Wrong(
            f"{answer} belongs to another architecture",
            "resnet50 takes members of models.ResNet50_Weights",
        )
    got, caught = _requested_weights(weights=answer)
    if caught:
        raise Wrong(f"weights={answer} still warns: {caught[0]}", None)
    if got is not expected:
        if answer is models.ResNet50_Weights.DEFAULT:
            raise Wrong(
                f"DEFAULT is {answer.name} ({answer.meta['_metrics']['ImageNet-1K']['acc@1']} % "
                "top-1), the newest weights: not what pretrained=True loads",
                f"pretrained=True's warning names the weights it stands for: {notes_warnings[-1]}",
            )
        raise Wrong(f"{answer} are not the weights that pretrained=True loads ({expected})", None)
    return (
        f"{expected} is what pretrained=True loads, and weights= asks for it without a "
        f"warning (DEFAULT would give the newer {models.ResNet50_Weights.DEFAULT.name})."
    )


def unfreeze_problem():
    """Exercise 9.2's model: the book's SmallResNet with a 5-class head, top 3 groups open."""
    with torch.random.fork_rng():
        torch.manual_seed(_SEED)
        model = build_transfer_model("small_resnet", num_classes=5)
    return unfreeze(model, 3)


@exercise("9.2", "Trainable parameters after unfreezing", level="medium", kind="predict")
def check_unfrozen_count(answer):
    r"""The number of trainable parameters (elements) of ``build_transfer_model("small_resnet",
    5)`` after ``unfreeze(model, 3)``, exactly, as ``count_trainable`` counts them."""
    value = number(answer)
    model = unfreeze_problem()
    expected = count_trainable(model)
    if value == expected:
        return f"{expected:,} trainable parameters: the head, layer3 and layer2."
    sizes = [sum(p.numel() for m in group for p in m.parameters()) for group in layer_groups(model)]
    trainable = [p for p in model.parameters() if p.requires_grad]
    open_ = [m for group in layer_groups(model)[:3] for m in group]
    bn = sum(p.numel() for m in open_ for sub in m.modules() if isinstance(sub, _BatchNorm)
             for p in sub.parameters())  # fmt: skip
    buffers = sum(b.numel() for m in open_ for b in m.buffers())
    candidates = [
        (len(trainable), "that is the number of trainable tensors",
         "count elements: p.numel() summed over the parameters with requires_grad"),
        (sum(sizes[:2]), "that is two groups: the head and layer3",
         "the head counts as group 0: unfreeze(model, 3) opens the head, layer3 and layer2"),
        (sum(sizes[:4]), "that is four groups",
         "unfreeze(model, 3) opens three groups, the head included"),
        (sum(sizes[1:4]), "that is three blocks without the head",
         "the head is one of the three groups"),
        (expected - bn, "the BatchNorm weights and biases are missing",
         "each BatchNorm layer has a trainable weight and bias, one per channel"),
        (expected + buffers, "that counts the BatchNorm buffers (running mean, variance, "
         "num_batches_tracked)", "buffers are in the state_dict, but they are not parameters"),
        (sizes[0], "that is the head alone", "three groups are open, not one"),
        (sum(sizes), "that is every parameter", "the stem and layer1 stay frozen"),
    ]  # fmt: skip
    for wrong, message, hint in candidates:
        if value == wrong:
            raise Wrong(f"{value:g}: {message}", hint)
    raise Wrong(
        f"{value:g} is not the number of trainable parameters",
        "per block: two 3x3 convolutions 16 -> 16 without bias, two BatchNorms, and in layer2 "
        "and layer3 a 1x1 shortcut convolution with its BatchNorm; the head is Linear(16, 5)",
    )


def _bn_state(model):
    return {
        k: v.clone() for k, v in model.state_dict().items() if "running_" in k
    }  # not num_batches_tracked: momentum = 0 leaves the statistics but counts batches


@exercise("9.3", "A frozen backbone that stays frozen", level="hard", kind="implement")
def check_frozen_backbone(answer):
    r"""``answer(model)`` must freeze everything but the head ``fc`` of the book's pretrained
    ``SmallResNet``, so that after ``model.train()`` a training-mode forward pass and an SGD
    step leave every backbone tensor (running statistics included) unchanged, while
    ``model.training`` is True and the backbone computes what it computes in eval mode; the
    trainable parameters must be ``freeze_backbone``'s. It must return the model."""
    model = build_transfer_model("small_resnet", 5, weights="glyphs100")
    reference = freeze_backbone(build_transfer_model("small_resnet", 5, weights="glyphs100"))
    with torch.random.fork_rng():
        torch.manual_seed(_SEED)
        x = torch.randn(25, 1, 16, 16) * 2 + 0.5  # far from the pretrained statistics
        y = torch.randint(0, 5, (25,))
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}
    try:
        out = call(answer, model, what="freeze_all_but_head")
    except Wrong as wrong:  # without the model's repr, which fills a screen
        message = wrong.message.split(" (called with")[0]
        raise Wrong(message + " (called with the SmallResNet)", wrong.hint) from None
    if out is not model:
        raise Wrong("your function must return the model it froze", "end with `return model`")
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    wanted = sorted(n for n, p in reference.named_parameters() if p.requires_grad)
    if not trainable:
        raise Wrong("nothing is trainable: the new head must still learn", "leave fc trainable")
    if trainable != wanted:
        extra = sorted(set(trainable) - set(wanted))
        raise Wrong(
            f"trainable: {', '.join(trainable[:4])}{' ...' if len(trainable) > 4 else ''}; "
            f"only {', '.join(wanted)} should be",
            "set requires_grad = False on every parameter outside fc, BatchNorm weights and "
            "biases included"
            if extra
            else "the head fc must stay trainable",
        )
    locked_now = all(not m.training for m in model.modules() if isinstance(m, _BatchNorm))
    bn_before = _bn_state(model)
    model.train()
    if not model.training:
        raise Wrong("after model.train() the model says training=False", None)
    with torch.no_grad():
        features = model.features(x)
    moved = [k for k, v in _bn_state(model).items() if not torch.equal(v, bn_before[k])]
    if moved:
        if locked_now:
            hint = (
                "you put the BatchNorm layers in eval mode once, and model.train() switched "
                "them back; make them ignore model.train() (override their train method, or a "
                "forward pre-hook that calls module.eval())"
            )
        else:
            hint = (
                "requires_grad = False stops gradients, not the running statistics: a "
                "BatchNorm layer in training mode updates its running mean and variance on "
                "every forward pass; keep the backbone's BatchNorm layers in eval mode, also "
                "through model.train()"
            )
        raise Wrong(
            f"after model.train() one forward pass changed {len(moved)} running statistics, "
            f"e.g. {moved[0]}",
            hint,
        )
    was_training = {m: m.training for m in model.modules()}
    model.eval()
    with torch.no_grad():
        eval_features = model.features(x)
    for m, mode in was_training.items():
        m.training = mode
    if not torch.allclose(features, eval_features, atol=1e-5):
        raise Wrong(
            "in training mode the backbone computes other features than in eval mode",
            "the running statistics stay put (momentum = 0 or track_running_stats = False?) "
            "but the layers still normalise with each batch's statistics: the head trains on "
            "features it will not see at test time; keep the BatchNorm layers in eval mode",
        )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    after = model.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(after[k], v)]
    if changed:
        raise Wrong(f"a training step changed backbone tensors, e.g. {changed[0]}", None)
    return (
        f"only {', '.join(wanted)} train, and after model.train() a forward pass and an SGD step "
        "leave all backbone tensors, running statistics included, bit-identical."
    )
