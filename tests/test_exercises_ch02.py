"""Chapter 2's exercises: realistic wrong answers get their intended hints."""

import numpy as np
from test_exercises import wrong_answer_test

from companion.exercises.ch02 import accumulated_grad


def _central(f, x, eps, divide=2.0, restore=True):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        o = x[i]
        x[i] = o + eps
        fp = f(x)
        x[i] = o - eps
        fm = f(x)
        if restore:
            x[i] = o
        g[i] = (fp - fm) / (divide * eps)
    return g


def forward_difference(f, x, eps):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (f(x + e) - f(x)) / eps
    return g


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def grad_no_mean(z, y):
    p = _softmax(z)
    p[np.arange(len(y)), y] -= 1
    return p


def grad_naive_softmax(z, y):
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    return p / len(y)


def grad_wrong_sign(z, y):
    return -grad_no_mean(z, y) / len(y)


WRONG = [
    ("2.1", accumulated_grad(zero_grad=True, step=True), "backward() adds to .grad"),
    ("2.1", accumulated_grad(zero_grad=False, step=False), "as if w never moved"),
    ("2.1", 6.0, "first gradient only"),
    ("2.2", forward_difference, "O(eps^2)"),
    ("2.2", lambda f, x, eps: _central(f, x, eps, divide=1.0), "divide by 2 * eps"),
    ("2.2", lambda f, x, eps: _central(f, x, eps, restore=False), "restore each entry"),
    ("2.3", grad_no_mean, "divide by the batch size"),
    ("2.3", grad_naive_softmax, "subtract the row's max"),
    ("2.3", grad_wrong_sign, "the gradient is p - e_y"),
    ("2.3", lambda z, y: _softmax(z), "subtract the one-hot"),
]


test_a_realistic_wrong_answer_gets_its_intended_hint = wrong_answer_test(WRONG)
