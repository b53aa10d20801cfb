"""Chapter 8's exercises: realistic wrong answers get their intended hint."""

import numpy as np
import torch
from test_exercises import wrong_answer_test

from companion.exercises import check
from companion.exercises.ch08 import linear_problem


# ------------------------------------------------------------------ 8.1 Grad-CAM
def cam_no_relu(acts, grads):
    return (grads.mean(dim=(2, 3), keepdim=True) * acts).sum(1)


def cam_channel_mean(acts, grads):
    return torch.relu((grads.mean(dim=1, keepdim=True) * acts).sum(1))


def cam_batch_mean(acts, grads):
    return torch.relu((grads.mean(dim=(0, 2, 3), keepdim=True) * acts).sum(1))


def cam_sum(acts, grads):
    return torch.relu((grads.sum(dim=(2, 3), keepdim=True) * acts).sum(1))


def cam_keepdim(acts, grads):
    return torch.relu((grads.mean(dim=(2, 3), keepdim=True) * acts).sum(1, keepdim=True))


def cam_normalised(acts, grads):
    cam = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * acts).sum(1))
    return cam / cam.amax(dim=(1, 2), keepdim=True)


# ------------------------------------------------------------------ 8.2 completeness
def linear_numbers():
    linear, x, base = linear_problem()
    w, b = linear.weight.detach().double(), linear.bias.detach().double()
    x, base = x[0].double(), base[0].double()
    return {
        "logit": float(w[2] @ x + b[2]),
        "zero baseline": float(w[2] @ x),
        "gradient": float(w[2].sum()),
        "all classes": float(w.sum(0) @ (x - base)),
    }


NUMBERS = linear_numbers()


# ------------------------------------------------------------------ 8.3 trapezoid
def notes_weights(n):
    return np.full(n, 1 / n)


def captum_weights(n):
    w = np.full(n, 1 / n)
    w[[0, -1]] /= 2
    return w


def unhalved_weights(n):
    return np.full(n, 1 / (n - 1))


# ------------------------------------------------------------------ 8.4 batched IG
def notes_ig_with(select):
    def batch_ig(model, x, target, steps=50):
        baseline = torch.zeros_like(x)
        grads = []
        for alpha in torch.linspace(0, 1, steps):
            point = (baseline + alpha * (x - baseline)).requires_grad_()
            output = model(point)
            model.zero_grad()
            select(output, target).backward()
            grads.append(point.grad.detach())
        return (x - baseline) * torch.stack(grads).mean(dim=0)

    return batch_ig


def ig_without_factor(model, x, target, steps=50):
    grads = []
    for alpha in torch.linspace(0, 1, steps):
        point = (alpha * x).requires_grad_()
        model(point)[:, target].sum().backward()
        grads.append(point.grad.detach())
    return torch.stack(grads).mean(dim=0)


WRONG = [
    ("8.1", cam_no_relu, "ReLU"),
    ("8.1", cam_channel_mean, "not over the channels"),
    ("8.1", cam_batch_mean, "mixes the images"),
    ("8.1", cam_sum, "divide the sum by h*w"),
    ("8.1", cam_keepdim, "without keepdim"),
    ("8.1", cam_normalised, "NaN"),
    ("8.2", NUMBERS["logit"], "subtract the baseline's logit"),
    ("8.2", NUMBERS["zero baseline"], "the baseline here is 0.5"),
    ("8.2", NUMBERS["gradient"], "multiplies the (average) gradient by x - x'"),
    ("8.2", NUMBERS["all classes"], "class 2 only"),
    ("8.2", "1.436", "must be a number"),
    ("8.3", notes_weights, "halves the weights of the first and last node"),
    ("8.3", captum_weights, "1/(n-1) apart, not 1/n"),
    ("8.3", unhalved_weights, "halve the weights of the first and the last node"),
    ("8.3", lambda n: np.full(n - 1, 1 / (n - 1)), "one weight per node"),
    ("8.4", notes_ig_with(lambda out, t: out[0, t]), "output[:, target].sum()"),
    ("8.4", notes_ig_with(lambda out, t: out[:, t]), "sum them"),
    ("8.4", notes_ig_with(lambda out, t: out[:, t].mean()), "off by the batch size"),
    ("8.4", notes_ig_with(lambda out, t: out.sum()), "pick the target class's column"),
    ("8.4", ig_without_factor, "factor (x - baseline) is missing"),
]


test_a_realistic_wrong_answer_gets_its_intended_hint = wrong_answer_test(WRONG)


def test_8_2_checker_leaves_the_callers_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check("8.2", 0.0, quiet=True)
    assert torch.equal(torch.rand(3), expected)
