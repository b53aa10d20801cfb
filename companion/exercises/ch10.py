r"""Checkers for chapter 10's exercises: steps per epoch on two ranks, a loop that forgets
``set_epoch``, and the full-batch gradient from shards of unequal sizes. They run in this
process: no process group is needed to check them."""

from __future__ import annotations

import torch
from torch.utils.data import DistributedSampler

from ..distributed import flat_gradient, seed_mlp
from . import Wrong, as_array, call, exercise, number

_SEED = 2024


@exercise("10.1", "Steps per epoch on two ranks", level="easy", kind="predict")
def check_steps_per_epoch(answer):
    r"""With 800 training examples, ``global_batch_size=32`` and 2 processes, each rank takes
    :math:`800 / 32 = 25` optimizer steps per epoch (batches of 16, two ranks per step)."""
    value = number(answer)
    if value == 25:
        return (
            "25: each step consumes a global batch of 32 (16 on each rank), so an epoch of 800 "
            "examples is 25 steps on both ranks, as in one process."
        )
    if value == 50:
        raise Wrong(
            "50 is the number of batches of 16 in 800 examples",
            "each rank sees only its half of the data: 400 examples in batches of 16",
        )
    if value == 12.5 or value == 13:
        raise Wrong(
            f"{value:g} would be 400 examples in batches of 32",
            "global_batch_size is split among the ranks: each rank's batch has 16 examples",
        )
    raise Wrong(
        f"{value:g} steps is not it", "count the examples one step consumes, over all ranks"
    )


def _dataset(n: int):
    return torch.utils.data.TensorDataset(torch.arange(float(n)).unsqueeze(1))


@exercise("10.2", "Every epoch the same order", level="medium", kind="debug")
def check_epoch_orders(answer):
    r"""``answer(sampler, epochs)`` returns the list of index orders a loop over a
    ``DistributedSampler`` sees in epochs ``0 .. epochs - 1``: those of
    ``sampler.set_epoch(epoch)`` then ``list(sampler)``, on every rank."""
    epochs, n = 4, 24
    got, expected = [], []
    for r in range(2):
        sampler = DistributedSampler(_dataset(n), num_replicas=2, rank=r, shuffle=True, seed=3)
        orders = call(answer, sampler, epochs, what="epoch_orders")
        try:
            orders = [[int(i) for i in order] for order in orders]
        except TypeError:
            raise Wrong(
                "the result must be a list with one list of indices per epoch",
                "append list(sampler) once per epoch",
            ) from None
        reference = DistributedSampler(_dataset(n), num_replicas=2, rank=r, shuffle=True, seed=3)
        want = []
        for epoch in range(epochs):
            reference.set_epoch(epoch)
            want.append(list(reference))
        got.append(orders)
        expected.append(want)
    if len(got[0]) != epochs:
        raise Wrong(f"{len(got[0])} orders for {epochs} epochs", "one list per epoch")
    if all(order == got[0][0] for order in got[0]):
        raise Wrong(
            "every epoch sees the same order",
            "DistributedSampler shuffles with the seed seed + epoch, and the epoch is what "
            "set_epoch sets; without it every epoch is epoch 0",
        )
    for epoch in range(epochs):
        if set(got[0][epoch]) & set(got[1][epoch]):
            raise Wrong(
                f"in epoch {epoch} the two ranks share examples",
                "every rank must draw the same permutation and take its own slice of it: "
                "leave the shuffling to the sampler, only tell it the epoch",
            )
    if got != expected:
        raise Wrong(
            "the orders change from epoch to epoch, but not as the sampler would shuffle them",
            "call sampler.set_epoch(epoch) before iterating, as Trainer.fit does",
        )
    return "Each epoch a new order, the same permutation on both ranks, and no overlap."


@exercise("10.3", "Shards of unequal sizes", level="medium", kind="implement")
def check_combine(answer):
    r"""``answer(gradients, sizes)`` takes the mean-loss gradients of shards of ``sizes``
    examples and returns the gradient of the mean loss over all of them,

    .. math::

        \nabla \frac1N \sum_{i=1}^N \ell_i = \sum_r \frac{n_r}{N} \nabla \frac1{n_r}
        \sum_{i \in B_r} \ell_i, \qquad N = \sum_r n_r,

    checked on the chapter's MLP in float64 to 1e-10 for three splits."""
    generator = torch.Generator().manual_seed(_SEED)
    torch.manual_seed(_SEED)
    model = seed_mlp()
    for sizes in ([16, 16], [5, 11, 16], [1, 30, 2, 7]):
        n = sum(sizes)
        X = torch.randn(n, 10, dtype=torch.float64, generator=generator)
        y = torch.randint(0, 3, (n,), generator=generator)
        full = flat_gradient(model, X, y)
        bounds = torch.tensor([0, *sizes]).cumsum(0).tolist()
        shards = [
            flat_gradient(model, X[a:b], y[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)
        ]
        got = torch.as_tensor(
            as_array(call(answer, [g.clone() for g in shards], list(sizes), what="combine"))
        )
        if got.shape != full.shape:
            raise Wrong(f"the result has shape {tuple(got.shape)}; expected {tuple(full.shape)}")
        error = (got - full).abs().max().item()
        if error <= 1e-10:
            continue
        if (got - sum(shards) / len(shards)).abs().max() <= 1e-10:
            raise Wrong(
                f"for shards of {sizes} the plain mean of the shard gradients is off by "
                f"{error:.2g}",
                "it is right only for equal shards: weight each shard's gradient by its "
                "share n_r / N of the examples",
            )
        if (got - sum(shards)).abs().max() <= 1e-10:
            raise Wrong(
                "that is the sum of the shard gradients",
                "each shard's gradient is already a mean over its examples: weight by n_r / N",
            )
        raise Wrong(f"for shards of {sizes} the result is off by {error:.2g}")
    return "The size-weighted mean: for equal shards it is the plain mean DDP takes."
