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

from companion import ConvolutionalNN, NeuralNetwork, NumpyMLP, conv2d, sigmoid
from companion.interpret import integrated_gradients
from companion.optim import SGD, Adam
from companion.transformer import MultiHeadAttention


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


def bench_optimizers(sizes=(784, 1024, 256, 10)):
    """One ``step()`` of our Adam / SGD against torch.optim's, on the same ~1M-parameter MLP.

    The gradients are computed once and reused, so only the update is timed. On CPU,
    ``torch.optim``'s default is the single-tensor (for-loop) implementation, like ours;
    ``foreach=True`` is the multi-tensor one that CUDA uses by default.
    """
    torch.manual_seed(0)
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    X, y = torch.randn(128, sizes[0]), torch.randint(0, sizes[-1], (128,))
    torch.nn.functional.cross_entropy(model(X), y).backward()
    n_params = sum(p.numel() for p in model.parameters())

    def step_time(make_optimizer):
        params = [p.detach().clone().requires_grad_() for p in model.parameters()]
        for p, original in zip(params, model.parameters(), strict=True):
            p.grad = original.grad.clone()
        opt = make_optimizer(params)
        opt.step()  # creates the state: time the steady state
        return best_of(opt.step)

    def sgd(cls, **kwargs):
        return lambda params: cls(params, lr=0.01, momentum=0.9, **kwargs)

    pairs = [  # each pair is timed back to back, so a busy machine disturbs both alike
        ("Adam", Adam, "torch.optim.Adam()", torch.optim.Adam),
        (
            "Adam",
            Adam,
            "torch.optim.Adam(foreach=False)",
            lambda params: torch.optim.Adam(params, foreach=False),
        ),
        (
            "Adam",
            Adam,
            "torch.optim.Adam(foreach=True)",
            lambda params: torch.optim.Adam(params, foreach=True),
        ),
        ("SGD momentum 0.9", sgd(SGD), "torch.optim.SGD(momentum=0.9)", sgd(torch.optim.SGD)),
        (
            "SGD momentum 0.9",
            sgd(SGD),
            "torch.optim.SGD(momentum=0.9, foreach=False)",
            sgd(torch.optim.SGD, foreach=False),
        ),
    ]
    return [
        (f"{name} step, {n_params:,} float32 params", step_time(ours), ref_label, step_time(ref))
        for name, ours, ref_label, ref in pairs
    ]


def bench_attention(batch=32, length=128, d_model=256, num_heads=8):
    """Forward + backward of our MultiHeadAttention against ``nn.MultiheadAttention``.

    Self-attention on one float32 batch, same weights shape, ``sum()`` of the output as the
    loss. With ``need_weights=True`` PyTorch runs the explicit softmax(QK^T/sqrt(d_k))V path, as
    we always do; with ``need_weights=False`` it calls its fused ``scaled_dot_product_attention``.
    """
    torch.manual_seed(0)
    ours = MultiHeadAttention(d_model, num_heads)
    ref = torch.nn.MultiheadAttention(d_model, num_heads, batch_first=True)
    x = torch.randn(batch, length, d_model, requires_grad=True)

    def forward_backward(module, **kwargs):
        def run():
            module(x, x, x, **kwargs)[0].sum().backward()

        return run

    label = (
        f"MultiHeadAttention fwd+bwd, batch {batch}, seq {length}, d {d_model}, {num_heads} heads"
    )
    pairs = [  # each pair timed back to back, so a busy machine disturbs both alike
        ({}, "nn.MultiheadAttention(batch_first=True)"),
        ({"need_weights": False}, "nn.MultiheadAttention(need_weights=False), fused"),
    ]
    rows = []
    for kwargs, ref_label in pairs:
        suffix = ", no weights" if kwargs else ""
        ours_time = best_of(forward_backward(ours, **kwargs), repeat=5)
        ref_time = best_of(forward_backward(ref, **kwargs), repeat=5)
        rows.append((label + suffix, ours_time, ref_label, ref_time))
    return rows


def bench_conv(batch=32, channels=(16, 32), size=32, kernel=3):
    """The chapter-5 convolution by hand (a teaching artefact: no target) against F.conv2d."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, channels[0], size, size)).astype(np.float32)
    w = rng.normal(size=(channels[1], channels[0], kernel, kernel)).astype(np.float32)
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    ours = best_of(lambda: conv2d(x, w, padding=1), repeat=5)
    ref = best_of(lambda: torch.nn.functional.conv2d(xt, wt, padding=1), repeat=5)
    label = f"conv2d by hand, {batch}x{channels[0]}x{size}x{size}, {channels[1]} filters 3x3"
    return [(label, ours, "F.conv2d (teaching code: no target)", ref)]


def bench_channels_last(batch=64, size=32):
    """A training step's forward and backward pass of chapter 5's shapes network, whose
    ``features`` lays the first feature maps out channels last, against the same layers in the
    default (NCHW) layout; and max-pooling alone in both layouts. Target: ratio <= 0.9."""
    torch.manual_seed(0)
    model = ConvolutionalNN(1, 3, channels=(16, 32, 64), dropout_rate=0.3, input_size=size)
    x = torch.randn(batch, 1, size, size)

    def nchw_features(x):  # the layers of ConvolutionalNN.features without the layout change
        x = model.pool1(model.relu1(model.conv1(x)))
        x = model.pool2(model.relu2(model.conv2(x)))
        return model.pool3(model.relu3(model.conv3(x)))

    def step(features):
        def run():
            model.zero_grad()
            h = model.resize(features(x)).flatten(1)
            model.fc3(model.relu5(model.fc2(model.relu4(model.fc1(h))))).sum().backward()

        return run

    ours = best_of(step(model.features), repeat=5)
    ref = best_of(step(nchw_features), repeat=5)
    label = f"shapes CNN fwd+bwd, {batch}x1x{size}x{size}, channels last (target <= 0.9)"
    maps = torch.randn(batch, 16, size, size)
    last = maps.contiguous(memory_format=torch.channels_last)
    pool_last = best_of(lambda: torch.max_pool2d(last, 2), repeat=5)
    pool_nchw = best_of(lambda: torch.max_pool2d(maps, 2), repeat=5)
    return [
        (label, ours, "the same layers, NCHW", ref),
        (f"max_pool2d 2x2, {batch}x16x{size}x{size}, channels last", pool_last, "NCHW", pool_nchw),
    ]


def bench_integrated_gradients(n_steps=50):
    """Our batched Integrated Gradients against the notes' loop of one pass per step.

    Both compute the attributions of one input with ``n_steps`` points: ours stacks the points
    into one forward and one backward pass; the reference re-creates the notes' loop (one
    forward + backward per step, ``model.zero_grad()`` each time). Targets: ratio <= 0.1 on the
    MLP and <= 0.5 on the CNN.
    """
    torch.manual_seed(0)
    cases = [
        ("MLP 10-64-32-3", NeuralNetwork(10, [64, 32], 3).eval(), torch.randn(1, 10), 0.1),
        (
            "CNN (16,32,64), 1x32x32",
            ConvolutionalNN(1, 3, channels=(16, 32, 64)).eval(),
            torch.randn(1, 1, 32, 32),
            0.5,
        ),
    ]
    rows = []
    for name, model, x, target in cases:

        def notes_loop(model=model, x=x):
            baseline = torch.zeros_like(x)
            grads = []
            for alpha in torch.linspace(0, 1, n_steps):
                point = (baseline + alpha * (x - baseline)).requires_grad_()
                output = model(point)
                model.zero_grad()
                output[0, 0].backward()
                grads.append(point.grad.detach())
            return (x - baseline) * torch.stack(grads).mean(dim=0)

        ours = best_of(lambda model=model, x=x: integrated_gradients(model, x, 0, n_steps=n_steps))
        ref = best_of(notes_loop)
        label = f"integrated_gradients {n_steps} steps, {name} (target <= {target})"
        rows.append((label, ours, f"notes' loop, {n_steps} passes", ref))
    return rows


def bench_data_parallel(global_batch_size=64):
    """Time per sample with 2 processes (DDP, gloo) against 1 process with 1 and with 2
    threads (the same two cores used by threads instead), and the all-reduce's share."""
    from companion.distributed import launch, step_time

    rows, n = [], global_batch_size
    threads = torch.get_num_threads()
    for model in ("mlp", "cnn"):
        one = step_time(model, global_batch_size=n)
        torch.set_num_threads(2)
        one_two_threads = step_time(model, global_batch_size=n)
        torch.set_num_threads(threads)
        two = launch(step_time, 2, model, global_batch_size=n)[0]
        quiet = launch(step_time, 2, model, global_batch_size=n, sync=False)[0]
        label = f"DDP, 2 processes, {model}, per sample (batch {n})"
        rows.append((label, two / n, "1 process, 1 thread", one / n))
        rows.append((label, two / n, "1 process, 2 threads", one_two_threads / n))
        rows.append((f"DDP, 2 processes, {model}, per step", two, "same, no all-reduce", quiet))
        print(
            f"data parallel, {model}: samples/s {n / one:,.0f} (1 process), "
            f"{n / one_two_threads:,.0f} (1 process, 2 threads), {n / two:,.0f} (2 processes);"
            f" the all-reduce takes {100 * (two - quiet) / two:.0f} % of a 2-process step"
        )
    return rows


def main():
    rows = (
        bench_sigmoid()
        + bench_backprop()
        + bench_optimizers()
        + bench_attention()
        + bench_conv()
        + bench_channels_last()
        + bench_integrated_gradients()
        + bench_data_parallel()
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'benchmark':<{width}}  {'ours':>10}  {'reference':>10}  {'ratio':>6}  reference")
    for label, ours, ref_label, ref in rows:
        times = f"{ours * 1e3:>8.3f}ms  {ref * 1e3:>8.3f}ms"
        print(f"{label:<{width}}  {times}  {ours / ref:>6.2f}  {ref_label}")
    print(f"(torch {torch.__version__}, numpy {np.__version__}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":  # the guard launch()'s spawned processes need
    main()
