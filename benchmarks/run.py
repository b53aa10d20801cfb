"""`make bench`: speed of the book's hand-written code against PyTorch, measured in one run.

Every row times our implementation and a reference doing the same work on the same data in the
same process, and prints the ratio (ours / reference; below 1 means ours is faster). Absolute
times depend on the machine; ratios travel better. Chapters 1-2 are teaching code with no speed
target: the ratios are reported so that later changes can be compared.
"""

from __future__ import annotations

import timeit

import numpy as np
import torch

from companion import NumpyMLP, sigmoid


def best_of(fn, repeat=7, number=None):
    """Best time per call in seconds (min over repeats: the least disturbed measurement)."""
    timer = timeit.Timer(fn)
    if number is None:
        number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number


def bench_sigmoid(n=1_000_000):
    x = np.random.default_rng(0).normal(scale=10, size=n)
    xt = torch.from_numpy(x)
    ours = best_of(lambda: sigmoid(x))
    naive = best_of(lambda: 1.0 / (1.0 + np.exp(-np.clip(x, -700, 700))))
    ref = best_of(lambda: torch.sigmoid(xt))
    return [
        (f"stable sigmoid, {n:,} float64", ours, "torch.sigmoid", ref),
        (f"naive sigmoid (clipped), {n:,} float64", naive, "torch.sigmoid", ref),
    ]


def bench_backprop(batch=256, sizes=(64, 256, 256, 10)):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(batch, sizes[0]))
    y = rng.integers(0, sizes[-1], size=batch)
    net = NumpyMLP(list(sizes), activation="relu", seed=0)

    def ours():
        net.loss(X, y)
        net.backward(y)

    weights = [torch.tensor(w, requires_grad=True) for w in net.weights]
    biases = [torch.tensor(b, requires_grad=True) for b in net.biases]
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def reference():  # the same network in PyTorch, weights already tensors
        a = Xt
        for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
            a = a @ W + b
            if i < len(weights) - 1:
                a = torch.relu(a)
        loss = torch.nn.functional.cross_entropy(a, yt)
        torch.autograd.grad(loss, weights + biases)

    ref = best_of(reference)
    label = f"NumpyMLP forward+backward {'-'.join(map(str, sizes))}, batch {batch}, float64"
    return [(label, best_of(ours), "torch forward + autograd", ref)]


def main():
    rows = bench_sigmoid() + bench_backprop()
    width = max(len(r[0]) for r in rows)
    print(f"{'benchmark':<{width}}  {'ours':>10}  {'reference':>10}  {'ratio':>6}  reference")
    for label, ours, ref_label, ref in rows:
        times = f"{ours * 1e3:>8.3f}ms  {ref * 1e3:>8.3f}ms"
        print(f"{label:<{width}}  {times}  {ours / ref:>6.2f}  {ref_label}")
    print(f"(torch {torch.__version__}, numpy {np.__version__}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
