# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-distributed)=
# # 10. Data-parallel training with `torch.distributed`
#
# Every chapter so far trained in one process. When one process is too slow, the first step
# out is *data parallelism*: $W$ processes, the *ranks*, each hold a copy of the model, each
# computes the gradient on its own share of every batch, and they average their gradients
# before each step, so that all copies take the same step. This chapter does it with
# PyTorch's own engine — `torch.distributed`, `DistributedDataParallel` (DDP) — on this
# book's CPU with the `gloo` backend and two processes, and proves it correct the way the book
# proves everything: two processes must train *exactly* as one process does on the whole
# batch. The same code runs on many GPUs (`nccl`) and many machines (`torchrun`) with the few
# changes listed at the end.
#
# The original notes stop at one process, so the four pitfalls of this chapter are general
# ones, each shown and tested: a sampler that repeats its order, per-rank metrics read as
# global ones, checkpoints written by every rank, and BatchNorm statistics that differ per
# rank.

# %%
try:
    import companion
except ImportError:  # on Colab: install the book's package, once
    import subprocess
    import sys

    REPOSITORY = "https://github.com/neural-networks-tested/book"
    PIP = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.check_call([*PIP, f"git+{REPOSITORY}@main"])
    import companion

SEED = companion.seed_everything(0)  # seeds everything, and one CPU thread
DEVICE = companion.use_device("cpu")  # the book's numbers are CPU numbers

# %%
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import torch
from torch.utils.data import DistributedSampler, TensorDataset

from companion import make_seed_dataset, recipe_source
from companion.distributed import (
    all_reduce_gradients,
    flat_gradient,
    launch,
    seed_mlp,
    train_seed_mlp_parallel,
    train_variants,
)


def largest_gap(a, b):
    """The largest |difference| between two runs' parameters (not buffers)."""
    keys = [k for k in a["weights"] if "running" not in k and "num_" not in k]
    return max(
        (a["weights"][k] - b["weights"][k]).abs().max().item() for k in keys
    )


# %% [markdown]
# ## One batch, many shards
#
# A step of mini-batch training follows the gradient of the mean loss over the batch $B$.
# Split $B$ into $W$ shards $B_0, \dots, B_{W-1}$ of equal size $b = |B| / W$; the mean of the
# shards' mean-loss gradients is the whole batch's:
#
# $$
# \frac1W \sum_{r=0}^{W-1} \nabla_\theta \frac1b \sum_{i \in B_r} \ell_i(\theta)
# = \nabla_\theta \frac1{|B|} \sum_{i \in B} \ell_i(\theta).
# $$
#
# That is all data parallelism rests on, and it is exact only for *equal* shards: with sizes
# $n_r$ the weights are $n_r / N$, not $1 / W$. Checked on chapter 3's MLP (in float64, with
# no dropout, so that every difference is rounding), with the plain mean of two unequal
# shards as the control:

# %% tags=["nbval-ignore-output"]
# Output varies in the last digits across CPUs; the asserts carry the claims.
X, y = make_seed_dataset()
X = X.to(torch.float64)
model = seed_mlp()  # 10 -> 64 -> 32 -> 3, float64
full = flat_gradient(model, X[:32], y[:32])
halves = [flat_gradient(model, X[i:32:2], y[i:32:2]) for i in (0, 1)]
equal_gap = (full - sum(halves) / 2).abs().max().item()
parts = [
    flat_gradient(model, X[:8], y[:8]),
    flat_gradient(model, X[8:32], y[8:32]),
]
plain_gap = (full - sum(parts) / 2).abs().max().item()
weighted_gap = (full - (8 * parts[0] + 24 * parts[1]) / 32).abs().max().item()
print(f"{full.numel()} gradient entries; the largest difference from the")
print("gradient of the whole batch of 32:")
print(f"  two shards of 16, mean            {equal_gap:.0e}")
print(f"  shards of 8 and 24, plain mean    {plain_gap:.3f}")
print(f"  shards of 8 and 24, weighted mean {weighted_gap:.0e}")
assert equal_gap < 1e-15 and weighted_gap < 1e-15
assert plain_gap > 1e-2

# %% [markdown]
# This is why `DistributedSampler`, which hands each rank its share of the data, pads the
# data to a multiple of $W$ (or, with `drop_last=True`, drops the tail): every rank must get
# as many examples as the others.
#
# ## Processes, ranks and a process group
#
# `companion.distributed.launch(fn, W, ...)` starts $W$ fresh Python processes
# (`torch.multiprocessing` with the `spawn` method), tells them where to meet (a free port on
# `127.0.0.1`), and in each one joins the *process group* —
# `torch.distributed.init_process_group("gloo")` — calls `fn`, and collects what every rank
# returns. Inside `fn`, `torch.distributed.get_rank()` says which process it is. The
# processes import `fn` by name, so it lives in a module (here, `companion`), not in a
# notebook cell. For a function of your own, write it to a file first and import it — in a
# notebook, a cell starting with `%%writefile my_job.py`, then:
#
# ```python
# import my_job
#
# results = launch(my_job.train, 2)  # my_job.train calls torch.distributed itself
# ```
#
# The communication is a *collective*: every rank calls it and all of them wait for each
# other. The one data parallelism needs is `all_reduce`, which replaces a tensor on every rank
# by the sum over ranks. Averaging the gradients by hand is three lines:

# %%
print(recipe_source(all_reduce_gradients))

# %% [markdown]
# `DistributedDataParallel` does the same, faster {cite}`li2020ddp`: it copies rank 0's
# weights to every rank when it wraps the model, and during `backward()` it all-reduces the
# gradients in *buckets* of several tensors while the rest of the backward pass is still
# running. The book's
# `DistributedTrainer` is chapter 3's `Trainer` with three changes: the model is wrapped in
# DDP (or, with `sync="all_reduce"`, averaged by hand as above); the loss and accuracy are
# summed over ranks before dividing; and checkpoints are written by rank 0 only. The recipe
# every run of this chapter uses — called plainly it is one process, inside `launch` every
# rank runs it:

# %%
print(recipe_source(train_seed_mlp_parallel))

# %% [markdown]
# ## Two processes train exactly as one
#
# The claim to test: two ranks with global batches of 32 (16 each) reach the weights that one
# process reaches with batches of 32, after 2 epochs (50 steps of Adam). `distributed_loaders`
# makes the two ranks' shards of step $k$ exactly the examples of one process's batch $k$.
# One `launch` runs three variants in the same two processes: DDP, the hand-written
# all-reduce, and a negative control that does not average at all (each rank trains alone on
# its half):

# %%
one = train_seed_mlp_parallel(epochs=2, global_batch_size=32)
variants = [dict(sync=s) for s in ("ddp", "all_reduce", "none")]
ranks = launch(train_variants, 2, variants)  # ranks[r][v]: rank r's run v
ddp, by_hand, alone = (list(runs) for runs in zip(*ranks, strict=True))

# %% tags=["nbval-ignore-output"]
# Output varies in the last digits across CPUs; the asserts carry the claims.
print("largest |Δθ|     vs one process   rank 0 vs rank 1")
for name, runs in (("DDP", ddp), ("by hand", by_hand), ("no sync", alone)):
    print(
        f"{name:14} {largest_gap(runs[0], one):14.1e} "
        f"{largest_gap(runs[0], runs[1]):18.1e}"
    )

# %%
assert one["steps"] == ddp[0]["steps"] == ddp[1]["steps"] == 50
for runs in (ddp, by_hand):
    assert largest_gap(runs[0], one) < 1e-6  # the same training
    assert largest_gap(runs[0], one) < 1e-13  # in fact, to rounding
    assert (
        largest_gap(runs[0], runs[1]) == 0
    )  # the ranks hold the same weights
assert largest_gap(ddp[0], by_hand[0]) < 1e-12  # DDP is the all-reduce
assert (
    largest_gap(alone[0], one) > 1e-2
    and largest_gap(alone[0], alone[1]) > 1e-2
)
acc = [100 * r["history"]["val_acc"][-1] for r in (one, ddp[0], alone[0])]
print(
    f"validation accuracy: one process {acc[0]:.1f} %, DDP {acc[1]:.1f} %, "
    f"no sync {acc[2]:.1f} %"
)
assert acc[0] == acc[1]

# %% [markdown]
# Both averages agree with one process to rounding (below $10^{-13}$, asserted, where the
# claim needs $10^{-6}$), and the two ranks' weights are bit for bit the same; without the
# average the ranks drift apart and away from the single-process run, by more than $10^{-2}$
# after 50 steps. (The one-process run is `DistributedTrainer` without a process group;
# `tests/test_distributed.py` checks that it is chapter 3's plain `Trainer`, to $10^{-12}$.)
# Three conditions make the equality exact. The data divide: 800 examples are 25 global
# batches, while for 801 `DistributedSampler` would repeat one example to give both ranks
# 401 (tested). The arithmetic is float64. And there is no dropout: each rank draws its masks
# from its own generator — seeded alike here, so both ranks would draw the *same* masks for
# different examples, where one process draws one mask per example — so a data-parallel run
# with dropout is a correct run, but not the same one.
#
# ### Metrics: every rank reports the global numbers
#
# Each rank validates its own share of the validation data, half of the 200 examples.
# `DistributedTrainer` sums the losses, correct counts and example counts over the ranks
# before dividing, so both ranks record the numbers one process would:

# %%
global_acc = one["history"]["val_acc"]
for r in range(2):
    assert ddp[r]["history"]["val_acc"] == global_acc
local = [ddp[r]["rank_val_acc"] for r in range(2)]
for epoch in range(2):
    print(
        f"epoch {epoch + 1}: rank 0 alone {100 * local[0][epoch]:.1f} %, "
        f"rank 1 alone {100 * local[1][epoch]:.1f} %, "
        f"global {100 * global_acc[epoch]:.1f} %"
    )
assert local[0] != local[1]
assert all(local[0][e] != global_acc[e] for e in range(2))
assert all(
    abs((local[0][e] + local[1][e]) / 2 - global_acc[e]) < 1e-12
    for e in range(2)
)

# %% [markdown]
# With two equal halves the mean of the two accuracies happens to be the global one. With
# unequal shares it is not: the one-process model's predictions, split 150 / 50 as a sampler
# of uneven shards might split them —

# %%
final = seed_mlp()
final.load_state_dict(one["weights"])
with torch.no_grad():
    right = (final(X[800:]).argmax(1) == y[800:]).double()
shares = (right[:150], right[150:])
mean_of_accs = sum(s.mean().item() for s in shares) / 2
counted = sum(s.sum().item() for s in shares) / sum(len(s) for s in shares)
print(
    f"shares of 150 and 50: {100 * shares[0].mean():.1f} % and "
    f"{100 * shares[1].mean():.1f} %; their mean {100 * mean_of_accs:.2f} %, "
    f"counted {100 * counted:.1f} %"
)
assert counted == global_acc[-1] and abs(mean_of_accs - counted) > 1e-3

# %% [markdown]
# (pitfall-per-rank-metrics)=
# ```{warning}
# **Pitfall: per-rank metrics read as global ones.** A loop that prints its own loss and
# accuracy on every rank prints $W$ different numbers, each measured on $1/W$ of the data; the
# one rank 0 prints is not the model's. Sum the counts (`dist.all_reduce` of loss sums,
# correct predictions and examples), then divide — the mean of per-rank accuracies is right
# only when every rank holds as many examples. Test:
# `tests/test_distributed.py::test_pitfall_per_rank_metrics_differ_and_the_reduced_ones_are_global`.
# ```
#
# ### The order of the examples
#
# `DistributedSampler` shuffles with a generator seeded by `seed + epoch`, the same on every
# rank, and gives rank $r$ every $W$-th index of that permutation from $r$. The epoch is
# whatever `set_epoch` was last told:

# %%
data = TensorDataset(torch.arange(16.0))
sampler = DistributedSampler(data, num_replicas=2, rank=0, seed=0)
forgot = [list(sampler) for epoch in range(3)]  # no set_epoch
told = []
for epoch in range(3):
    sampler.set_epoch(epoch)
    told.append(list(sampler))
for epoch in range(3):
    print(f"epoch {epoch}: without {forgot[epoch]} with {told[epoch]}")
assert forgot[0] == forgot[1] == forgot[2]
assert told[0] != told[1] and told[1] != told[2]

# %% [markdown]
# (pitfall-set-epoch)=
# ```{warning}
# **Pitfall: forgetting `sampler.set_epoch(epoch)`.** Without it every epoch is epoch 0: the
# data are shuffled once and then seen in the same order forever, with no error and no
# warning. `Trainer.fit` calls `set_epoch` with the epoch it is about to train whenever the
# loader's sampler has one. Test:
# `tests/test_distributed.py::test_pitfall_sampler_without_set_epoch_repeats_the_order_and_trainer_sets_it`.
# ```
#
# ## BatchNorm: statistics of whose batch?
#
# BatchNorm normalises with the mean and variance of the batch in front of it. Under DDP each
# rank sees only its own 16 examples, so it normalises with their statistics, not with those
# of the global batch of 32: the gradients are averaged, but they are gradients of another
# function. `SyncBatchNorm` computes the statistics over all ranks, with two all-reduces in
# the forward pass and two in the backward. PyTorch's `nn.SyncBatchNorm` runs on GPUs only,
# so `companion.distributed.SyncBatchNorm` is a CPU one (`convert_sync_batchnorm(model)`
# swaps it in). The experiment changes one thing, the BatchNorm layers, and compares with one
# process training the same BatchNorm model on batches of 32:

# %%
one_bn = train_seed_mlp_parallel(epochs=2, batch_norm="local")
variants = [dict(batch_norm=b) for b in ("local", "sync")]
ranks = launch(train_variants, 2, variants)
local_bn, sync_bn = (list(runs) for runs in zip(*ranks, strict=True))


def mean_gap(a, b):
    """The largest |difference| of two first-layer running means."""
    return (a["running_mean"] - b["running_mean"]).abs().max().item()


# %% tags=["nbval-ignore-output"]
# Output varies in the last digits across CPUs; the asserts carry the claims.
print("                 |Δθ| vs one process   running mean: rank 0 vs 1")
for name, runs in (("per-rank BN", local_bn), ("SyncBatchNorm", sync_bn)):
    print(
        f"{name:16} {largest_gap(runs[0], one_bn):19.1e} "
        f"{mean_gap(runs[0], runs[1]):27.1e}"
    )

# %%
assert largest_gap(local_bn[0], one_bn) > 1e-2
assert largest_gap(sync_bn[0], one_bn) < 1e-6
assert mean_gap(local_bn[0], local_bn[1]) > 1e-3  # each rank its own estimate
assert (
    mean_gap(sync_bn[0], one_bn) < 1e-6 and mean_gap(sync_bn[1], one_bn) < 1e-6
)

# %% [markdown]
# With per-rank BatchNorm the run is a different training (its weights differ from the
# single process's by more than $10^{-2}$), and its running statistics differ from rank to
# rank (DDP's default `broadcast_buffers=True` copies rank 0's buffers to the others at the
# start of every forward pass, and each rank then updates them from its own shard); the
# checkpoint keeps rank 0's, estimated from half of each batch.
# `SyncBatchNorm` makes it the same training again, running statistics included. Whether
# per-rank statistics make a *worse* model is another question, which one run cannot
# answer; what this shows is that they are not what one process computes.
#
# (pitfall-ddp-batchnorm)=
# ```{warning}
# **Pitfall: BatchNorm statistics differ per rank.** Under DDP a BatchNorm layer normalises
# with the statistics of its rank's shard, and each rank updates its own running mean and
# variance. Convert the model with `SyncBatchNorm` when the per-rank batch is small or the
# runs must match; on GPUs that is `nn.SyncBatchNorm.convert_sync_batchnorm(model)`, on the
# CPU `companion.distributed.convert_sync_batchnorm`. Test:
# `tests/test_distributed.py::test_pitfall_batchnorm_per_rank_statistics_differ_and_syncbatchnorm_restores_equivalence`.
# ```
#
# ## Checkpoints: written once, read by any world size
#
# Every rank holds the same weights, so one copy is enough: rank 0 writes it (atomically, as
# in chapter 3) while the others wait at a *barrier*, and it holds the unwrapped model's
# weights, without DDP's `module.` prefix, so that any number of processes — one included —
# can load it. The test of that claim: a two-process run saves after epoch 1; one process
# resumes from the file and trains epoch 2.

# %%
folder = Path(tempfile.mkdtemp())
checkpoint = folder / "ddp.pt"
ddp_run = launch(train_seed_mlp_parallel, 2, 2, checkpoint=str(checkpoint))
resumed = train_seed_mlp_parallel(epochs=2, resume=checkpoint)
print("files written:", sorted(p.name for p in folder.iterdir()))
print(
    f"validation accuracy: two processes throughout "
    f"{100 * ddp_run[0]['history']['val_acc'][-1]:.1f} %, "
    f"resumed in one {100 * resumed['history']['val_acc'][-1]:.1f} %"
)
assert [p.name for p in folder.iterdir()] == ["ddp.pt"]
assert largest_gap(resumed, ddp_run[0]) < 1e-6
assert largest_gap(resumed, one) < 1e-6
assert resumed["history"]["val_acc"] == one["history"]["val_acc"]
for key in (
    "train_loss",
    "val_loss",
):  # the history of epoch 1 came from the file
    pairs = zip(resumed["history"][key], one["history"][key], strict=True)
    assert all(abs(a - b) < 1e-9 for a, b in pairs)

# %% [markdown]
# (pitfall-every-rank-saves)=
# ```{warning}
# **Pitfall: saving the checkpoint from every rank.** `torch.save(model.state_dict(), path)`
# in a loop that every rank runs writes the same file $W$ times at once: wasted I/O at best,
# and with a plain (non-atomic) write a reader can find a file half written by one rank and
# half by another. When ranks do differ (per-rank BatchNorm statistics, per-rank metrics),
# the file holds whichever rank finished last. Write on rank 0, then `dist.barrier()` before
# anyone reads it. Test (it counts each rank's writes: 1 and 1 for the naive save, 1 and 0
# for `DistributedTrainer`):
# `tests/test_distributed.py::test_pitfall_every_rank_saves_and_distributed_trainer_saves_once`.
# ```
#
# ## When a rank fails
#
# A collective waits for every rank; if one rank dies, the others would wait forever. Two
# guards prevent that. `launch` watches the processes, stops the others as soon as one fails
# and re-raises *that rank's* exception, with its type and message and a note naming the
# rank (tested with a rank that raises while the other waits in an all-reduce: the job ends
# in seconds). And the process group has a timeout for collectives (`launch(timeout=60)` by
# default): a rank left waiting longer — because another skipped an all-reduce, or hangs —
# raises instead. It limits a wait, not the job; `job_timeout=` limits the whole run. Under
# `torchrun`, where no `launch` watches, the timeout is the only guard: a rank whose loss
# turns NaN stops with a `FloatingPointError`, and the other learns of it only when its
# all-reduce times out. Bad arguments fail on every rank, before any training, with a
# message that names them:

# %%
try:
    launch(train_seed_mlp_parallel, 2, 1, 33)  # a global batch of 33
except ValueError as err:
    print(textwrap.fill(f"ValueError: {err}", 79))
    assert "global_batch_size must be a multiple of the world size 2" in str(
        err
    )
    assert "got 33" in str(err) and "raised on rank" in err.__notes__[0]
else:
    raise AssertionError("a global batch of 33 on 2 ranks must be refused")

# %% [markdown]
# ## The same script under `torchrun`
#
# `launch` is convenient in a notebook; on a cluster, processes are started by PyTorch's
# launcher, `torchrun`, which sets `RANK`, `WORLD_SIZE`, `MASTER_ADDR` and `MASTER_PORT` for
# each process it starts. `companion.distributed.init_from_env()` joins the group they
# describe, and `python -m companion.distributed` runs the chapter's recipe that way:
#
# ```
# torchrun --nproc-per-node 2 -m companion.distributed --epochs 2 --out run.pt
# ```
#
# (`torchrun` is `python -m torch.distributed.run`, which is what the cell below calls, so
# that it uses this notebook's Python.) Its rank 0 must save exactly the weights `launch`
# gave:

# %%
out = folder / "torchrun.pt"
command = [
    sys.executable,
    "-m",
    "torch.distributed.run",
    "--nproc-per-node",
    "2",
]
command += ["-m", "companion.distributed", "--epochs", "2", "--out", str(out)]
done = subprocess.run(command, capture_output=True, text=True, timeout=300)
assert done.returncode == 0, done.stderr[-2000:]
print(done.stdout.strip())
via_torchrun = torch.load(out, weights_only=True)
assert largest_gap(via_torchrun, ddp[0]) == 0

# %% [markdown]
# On several machines the command gains a rendezvous — `--nnodes 2 --rdzv-backend c10d
# --rdzv-endpoint host:29400` — and nothing in the script changes.
#
# ## Does it pay?
#
# Each process computes half of every batch, but each step now ends with an all-reduce of
# every gradient. Data parallelism pays when the computation per step is large against that
# communication: large models, large batches, fast links. `make bench` measures it — samples
# per second with two processes against one process with one thread and with two (the same
# two cores, used by threads instead), and the share of a step spent in the all-reduce (DDP
# with and without `no_sync()`), for chapter 3's MLP and chapter 5's CNN. Timing is not
# asserted in a chapter, and the numbers depend on the machine, so they are not printed here;
# what the benchmark found on the book's two-core machine is the lesson. For the MLP, whose
# step is a few microseconds of arithmetic, the all-reduce takes most of the step and two
# processes are several times *slower* than one. For the CNN two processes beat one
# single-threaded process, but one process using both cores with two threads beats both: on
# one CPU, threads share the work without sending gradients anywhere. Data parallelism is
# for more devices than one process can use: several GPUs, several machines.
#
# Two habits follow from the cost of the all-reduce. Gradient accumulation over $k$ small
# batches needs the average only once: DDP's `no_sync()` context skips it for the first
# $k - 1$ backward passes (the benchmark uses it to time a step without communication). And
# this chapter kept the *global* batch fixed, so $W$ only changes who computes what; a job
# that keeps each rank's batch instead multiplies the global batch by $W$, and then the
# learning rate must follow — scaled with the batch and warmed up, the linear scaling rule
# of {cite}`goyal2017` — or the run is another training, not a faster one.
#
# What changes on GPUs: the backend is `nccl` (`launch(..., backend="nccl")`, or
# `init_from_env("nccl")` under `torchrun`), one process per GPU — both call
# `torch.cuda.set_device(local_rank)` — and the model on `cuda:{local_rank}` (this chapter's
# recipe pins `device="cpu"`, the book's numbers being CPU numbers). DDP overlaps the
# all-reduce with the backward pass, so within one machine the scaling is often close to
# linear. When the model no
# longer fits on one device, data parallelism is not enough: *fully sharded* data parallelism
# (FSDP) also splits the weights, gradients and optimizer state across ranks — see PyTorch's
# [FSDP tutorial](https://pytorch.org/tutorials/intermediate/FSDP_tutorial.html).
#
# ## Exercises
#
# As in {ref}`chapter 1 <ch-perceptron>`: each exercise has a cell with a stub to replace and
# a call to `check`, which tests your answer and, when it recognises the mistake, says what to
# look at. As committed, every stub is unanswered, so the checks report "not attempted".
# Solutions are folded below each exercise; try first.
#
# ```{exercise} 10.1 Steps per epoch on two ranks (easy, predict)
# :label: ex-10-1
# :nonumber:
#
# `train_seed_mlp_parallel` trains on 800 examples with `global_batch_size=32`. Run by
# `launch(..., 2)`, how many optimizer steps does each rank take per epoch?
# ```

# %%
from companion.exercises import check

steps_per_epoch = ...  # your answer

check("10.1", steps_per_epoch)

# %% [markdown]
# ````{solution} ex-10-1
# :class: dropdown
#
# The global batch of 32 is split into two batches of 16, one per rank, and one step consumes
# all 32. Each rank holds 400 examples, 25 batches of 16: 25 steps, as many as one process
# takes with batches of 32.
#
# ```python
# steps_per_epoch = 800 // 32
# ```
# ````
#
# ```{exercise} 10.2 Every epoch the same order (medium, debug)
# :label: ex-10-2
# :nonumber:
#
# This loop is meant to list the order in which a rank sees its examples in each epoch, but
# every epoch comes out the same (the {ref}`pitfall <pitfall-set-epoch>` above). Repair it.
# ```


# %%
def epoch_orders(sampler, epochs):
    # the loop to repair:
    # orders = []
    # for epoch in range(epochs):
    #     orders.append(list(sampler))
    # return orders
    raise NotImplementedError  # your code here


check("10.2", epoch_orders)

# %% [markdown]
# ````{solution} ex-10-2
# :class: dropdown
#
# Tell the sampler the epoch before iterating: it shuffles with `seed + epoch`, the same
# permutation on every rank, each taking its own slice.
#
# ```python
# def epoch_orders(sampler, epochs):
#     orders = []
#     for epoch in range(epochs):
#         sampler.set_epoch(epoch)
#         orders.append(list(sampler))
#     return orders
# ```
# ````
#
# ```{exercise} 10.3 Shards of unequal sizes (medium, implement)
# :label: ex-10-3
# :nonumber:
#
# Write `combine(gradients, sizes)`: given the mean-loss gradients of shards of `sizes`
# examples (flat tensors, as `flat_gradient` returns), return the gradient of the mean loss
# over all the examples. For equal sizes it must be the mean DDP takes.
# ```


# %%
def combine(gradients, sizes):
    raise NotImplementedError  # your code here


check("10.3", combine)

# %% [markdown]
# ````{solution} ex-10-3
# :class: dropdown
#
# Each shard's gradient is a mean over its $n_r$ examples, so it stands for $n_r$ of the $N$
# examples: weight it by $n_r / N$.
#
# ```python
# def combine(gradients, sizes):
#     total = sum(sizes)
#     return sum(n / total * g for g, n in zip(gradients, sizes))
# ```
# ````

# %% tags=["nbval-ignore-output"]
print(companion.executed_with())
