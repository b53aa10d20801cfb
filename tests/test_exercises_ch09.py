"""Chapter 9's exercises: realistic wrong answers get their intended hint."""

import torch
from test_exercises import wrong_answer_test
from torch import nn
from torchvision import models

import companion
from companion.exercises import check
from companion.exercises.ch09 import unfreeze_problem
from companion.freezing import freeze_batchnorm_stats


# ------------------------------------------------------------------ 9.2 counting
def counts():
    model = unfreeze_problem()
    groups = companion.layer_groups(model)
    size = [sum(p.numel() for m in g for p in m.parameters()) for g in groups]
    trainable = [p for p in model.parameters() if p.requires_grad]
    bn = sum(
        p.numel()
        for g in groups[:3]
        for m in g
        for sub in m.modules()
        if isinstance(sub, nn.BatchNorm2d)
        for p in sub.parameters()
    )
    buffers = sum(b.numel() for g in groups[:3] for m in g for b in m.buffers())
    n = companion.count_trainable(model)
    return {
        "tensors": len(trainable),
        "two groups": size[0] + size[1],
        "four groups": sum(size[:4]),
        "no batchnorm": n - bn,
        "with buffers": n + buffers,
        "head": size[0],
    }


COUNTS = counts()


# ------------------------------------------------------------------ 9.3 freezing
def requires_grad_only(model):
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith("fc.")
    return model


def eval_once(model):
    requires_grad_only(model)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    return model


def momentum_zero(model):
    requires_grad_only(model)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.0
    return model


def convolutions_only(model):
    for name, p in model.named_parameters():
        p.requires_grad = "conv" not in name and "shortcut.0" not in name
    return freeze_batchnorm_stats(model)


def everything_frozen(model):
    for p in model.parameters():
        p.requires_grad = False
    return freeze_batchnorm_stats(model)


def returns_nothing(model):
    companion.freeze_backbone(model)


WRONG = [
    ("9.1", models.ResNet50_Weights.DEFAULT, "the newest weights"),
    ("9.1", "DEFAULT", "pretrained=True's warning names the weights"),
    ("9.1", True, "weights= takes a weights enum member"),
    ("9.1", models.ResNet18_Weights.IMAGENET1K_V1, "another architecture"),
    ("9.1", "IMAGENET1K_V3", "not the name of a weights enum member"),
    ("9.2", COUNTS["tensors"], "count elements"),
    ("9.2", COUNTS["two groups"], "the head counts as group 0"),
    ("9.2", COUNTS["four groups"], "opens three groups"),
    ("9.2", COUNTS["no batchnorm"], "trainable weight and bias"),
    ("9.2", COUNTS["with buffers"], "they are not parameters"),
    ("9.2", COUNTS["head"], "three groups are open"),
    ("9.2", 12345, "1x1 shortcut convolution"),
    ("9.3", requires_grad_only, "stops gradients, not the running statistics"),
    ("9.3", eval_once, "model.train() switched them back"),
    ("9.3", momentum_zero, "momentum = 0"),
    ("9.3", convolutions_only, "BatchNorm weights and biases included"),
    ("9.3", everything_frozen, "the new head must still learn"),
    ("9.3", returns_nothing, "return model"),
]


test_a_realistic_wrong_answer_gets_its_intended_hint = wrong_answer_test(WRONG)


def test_companion_freeze_backbone_and_names_pass():
    assert check("9.3", companion.freeze_backbone, quiet=True).passed
    for answer in ("IMAGENET1K_V1", "ResNet50_Weights.IMAGENET1K_V1"):
        assert check("9.1", answer, quiet=True).passed


def test_9_2_checker_leaves_the_callers_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check("9.2", 0, quiet=True)
    assert torch.equal(torch.rand(3), expected)
