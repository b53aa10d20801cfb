r"""Data-parallel training with ``torch.distributed``, verified on the CPU (chapter 10).

:math:`W` processes (*ranks*) hold the same model. At every step each rank takes its own shard
:math:`B_r` of the global batch :math:`B = B_0 \cup \dots \cup B_{W-1}`, computes the gradient
of its mean loss, and the ranks average their gradients with an *all-reduce*. With shards of
equal size :math:`b = |B| / W` that average is the full batch's gradient:

.. math::

    \frac1W \sum_{r=0}^{W-1} \nabla_\theta \frac1b \sum_{i \in B_r} \ell_i(\theta)
    = \nabla_\theta \frac1{|B|} \sum_{i \in B} \ell_i(\theta),

so every rank takes the step one process would take on the whole batch, and the weights stay
identical on all ranks. :class:`~torch.nn.parallel.DistributedDataParallel` (DDP) does the
all-reduce during ``backward()``; :func:`all_reduce_gradients` does it by hand.

Everything here runs on the CPU with the ``gloo`` backend and carries over to GPUs (``nccl``,
one process per device) and to many machines (``torchrun``'s rendezvous) unchanged.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import pickle
import socket
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset, TensorDataset

from . import _validate
from .training import Trainer
from .utils import seed_everything

__all__ = [
    "launch",
    "init_from_env",
    "free_port",
    "rank",
    "world_size",
    "distributed_loaders",
    "all_reduce_gradients",
    "broadcast_parameters",
    "SyncBatchNorm",
    "convert_sync_batchnorm",
    "DistributedTrainer",
    "seed_mlp",
    "train_seed_mlp_parallel",
    "train_variants",
    "flat_gradient",
]

_SYNCS = ("ddp", "all_reduce", "none")


# --------------------------------------------------------------------------------- launching
def free_port() -> int:
    """A TCP port on localhost that is free now (the operating system picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank() -> int:
    """This process's rank, 0 when no process group is initialised."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes in the job, 1 when no process group is initialised."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _default_backend(device_type: str) -> str:
    return "nccl" if device_type == "cuda" else "gloo"


def init_from_env(backend: str | None = None, timeout: float = 60.0) -> tuple[int, int]:
    """Join the process group described by the environment, as ``torchrun`` sets it.

    ``torchrun --nproc-per-node N script.py`` starts N copies of the script with ``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set; this reads them.

    Parameters
    ----------
    backend : {"gloo", "nccl"}, optional
        Default ``gloo`` (CPU); pass ``"nccl"`` for one GPU per process.
    timeout : float, default 60
        Seconds a collective may wait for the other ranks before it fails instead of hanging.

    Returns
    -------
    rank, world_size : int

    Raises
    ------
    ValueError
        If the variables are missing (the script was not started by ``torchrun`` or
        :func:`launch`).
    """
    missing = [
        k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ
    ]
    if missing:
        raise ValueError(
            f"init_from_env needs the environment torchrun sets; missing {', '.join(missing)} "
            "(start the script with torchrun --nproc-per-node N, or use companion.distributed."
            "launch)"
        )
    timeout = _validate.positive_float(timeout, "timeout")
    backend = backend or "gloo"
    if backend == "nccl" and "LOCAL_RANK" in os.environ:  # one GPU per process
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    return dist.get_rank(), dist.get_world_size()


def _worker(
    local_rank, fn, args, kwargs, world, port, backend, timeout, threads, out_dir
):  # pragma: no cover (runs in the spawned processes; covered by the launch tests)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(local_rank),
        LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(world),
    )
    torch.set_num_threads(threads)
    out = Path(out_dir)
    try:
        init_from_env(backend, timeout)
        result = fn(*args, **kwargs)
        torch.save(result, out / f"result-{local_rank}.pt")
    except BaseException as err:
        tb = traceback.format_exc()
        try:
            exception = pickle.dumps(err)
        except Exception:  # an exception that cannot be pickled: its text will do
            exception = b""
        # the exception is pickled on its own, inside: the time and the traceback's text
        # can always be read back, even when the exception cannot
        (out / f"error-{local_rank}.pkl").write_bytes(pickle.dumps((time.time(), tb, exception)))
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch(
    fn,
    world_size: int = 2,
    *args,
    backend: str = "gloo",
    timeout: float = 60.0,
    job_timeout: float | None = None,
    **kwargs,
) -> list:
    r"""Run ``fn(*args, **kwargs)`` in ``world_size`` local processes that form a process group.

    Each process is started with :func:`torch.multiprocessing.start_processes` (``spawn``: a
    fresh interpreter, safe with threads and CUDA), joins the group through a free localhost
    port, calls ``fn``, and leaves the group. Inside ``fn``, :func:`rank` and
    :func:`world_size` say which process it is. The same ``fn``, called after
    :func:`init_from_env`, runs under ``torchrun --nproc-per-node N``.

    Parameters
    ----------
    fn : callable
        A function importable by name (defined in a module, not in a notebook cell: the new
        processes import it). Its return value must be what ``torch.save`` stores and
        ``torch.load(weights_only=True)`` reads: tensors, numbers, strings, lists, dicts.
    world_size : int, default 2
        Number of processes, at least 1.
    *args, **kwargs
        Passed to ``fn`` in every process.
    backend : {"gloo", "nccl"}, default "gloo"
        ``gloo`` runs on the CPU; ``nccl`` needs one CUDA device per process.
    timeout : float, default 60
        Seconds a collective may wait for the other ranks: one that waits longer raises on
        its rank, and so fails the job, instead of hanging (a rank that died, a rank that
        skipped an all-reduce). It does not limit how long the job runs.
    job_timeout : float, optional
        Seconds the whole job may run, start-up included; then every process is stopped
        and ``TimeoutError`` raised. Default: no limit.

    The parent's thread count (``torch.get_num_threads()``) is set in every process: one
    thread per process, as the book uses, keeps two processes from fighting over two cores.
    An interrupt (Ctrl-C, a notebook's stop button) stops every process.

    Returns
    -------
    list
        ``fn``'s return value on rank 0, 1, ..., ``world_size - 1``.

    Raises
    ------
    TypeError
        If ``fn`` is not callable.
    ValueError
        If ``world_size`` is not a positive int, or ``backend="nccl"`` without a CUDA device
        per process.
    Exception
        When a rank raises, the others are stopped at once and the first rank's exception is
        re-raised here, with its type and message unchanged and a note naming the rank and
        giving its traceback.
    TimeoutError
        If the job runs longer than ``job_timeout``.
    RuntimeError
        If a rank ends without a result and without an exception (``sys.exit`` in ``fn``).
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable; got {type(fn).__name__}")
    world = _validate.positive_int(world_size, "world_size")
    _validate.one_of(backend, "backend", {"gloo", "nccl"})
    timeout = _validate.positive_float(timeout, "timeout")
    if job_timeout is not None:
        job_timeout = _validate.positive_float(job_timeout, "job_timeout")
    if backend == "nccl" and torch.cuda.device_count() < world:
        raise ValueError(
            f"backend='nccl' needs one CUDA device per process: world_size={world}, "
            f"{torch.cuda.device_count()} device(s) here; use backend='gloo' on the CPU"
        )
    with tempfile.TemporaryDirectory(prefix="companion-launch-") as out_dir:
        context = mp.start_processes(
            _worker,
            args=(
                fn,
                args,
                kwargs,
                world,
                free_port(),
                backend,
                timeout,
                torch.get_num_threads(),
                out_dir,
            ),
            nprocs=world,
            join=False,
            start_method="spawn",
        )
        deadline = None if job_timeout is None else time.monotonic() + job_timeout
        # torch logs "Terminating process <pid>" when it stops the others: this module
        # reports the failure itself, and the pid would make outputs differ between runs
        spawn_log = logging.getLogger("torch.multiprocessing.spawn")
        level = spawn_log.level
        spawn_log.setLevel(logging.ERROR)
        try:
            while not context.join(timeout=0.05):
                if deadline is not None and time.monotonic() > deadline:
                    _terminate(context)
                    raise TimeoutError(
                        f"the job of {world} processes did not finish within "
                        f"job_timeout={job_timeout:g} s; it was stopped"
                    )
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as failure:
            _terminate(context)
            _reraise_first(Path(out_dir), world, failure)
        except BaseException:  # KeyboardInterrupt above all: leave no process behind
            _terminate(context)
            raise
        finally:
            spawn_log.setLevel(level)
        out = Path(out_dir)
        missing = [r for r in range(world) if not (out / f"result-{r}.pt").is_file()]
        if missing:
            raise RuntimeError(
                f"rank {missing[0]} of {world} ended without returning a result or raising "
                "(did fn call sys.exit?)"
            )
        return [torch.load(out / f"result-{r}.pt", weights_only=True) for r in range(world)]


def _terminate(context) -> None:
    for process in context.processes:
        if process.is_alive():
            process.terminate()
    for process in context.processes:
        process.join(5)
        if process.is_alive():
            process.kill()


def _reraise_first(out_dir: Path, world: int, failure: Exception):
    """Re-raise the exception of the rank that failed first, with a note naming it."""
    errors = []
    for r in range(world):
        path = out_dir / f"error-{r}.pkl"
        if path.exists():
            when, tb, exception = pickle.loads(path.read_bytes())
            try:
                err = pickle.loads(exception) if exception else None
            except Exception:  # pickled, but it does not unpickle here: keep the text
                err = None
            errors.append((when, r, err, tb))
    if not errors:  # killed by a signal or os._exit: nothing was recorded
        raise failure
    _, r, err, tb = min(errors, key=lambda e: e[0])
    if err is None:
        raise RuntimeError(
            f"rank {r} of {world} raised an exception that cannot be sent back (pickled) "
            f"to this process; its traceback:\n{tb}"
        )
    if hasattr(err, "add_note"):  # Python >= 3.11
        err.add_note(
            f"(raised on rank {r} of {world}, companion.distributed.launch; its traceback:)\n{tb}"
        )
    raise err from None


# ------------------------------------------------------------------------------------- data
def distributed_loaders(
    train,
    val,
    global_batch_size: int,
    *,
    seed: int = 0,
    drop_last: bool = False,
):
    r"""A training loader that gives each rank its shard of every global batch, and a
    validation loader over the rank's share of the validation data.

    Training: a :class:`~torch.utils.data.DistributedSampler` permutes the :math:`n` indices
    with a generator seeded by ``seed + epoch`` (the Trainer calls ``set_epoch``), pads the
    permutation to a multiple of :math:`W`, and gives rank :math:`r` every :math:`W`-th index
    from :math:`r`; batches of :math:`b = \texttt{global\_batch\_size} / W` then make global
    step :math:`k` use positions :math:`kWb, \dots, (k+1)Wb - 1` of the permutation: the batch
    one process with ``global_batch_size`` would take — exactly, when :math:`n` is a multiple
    of :math:`W` (otherwise the padding repeats a few examples in the last step).
    Validation: rank :math:`r` takes examples :math:`r, r + W, r + 2W, \dots` (no padding,
    so every example counts once).

    Parameters
    ----------
    train, val : torch.utils.data.Dataset
        ``val`` may be None.
    global_batch_size : int
        Examples per step over all ranks; a multiple of the world size.
    seed : int, default 0
        Seed of the shuffling (the same on every rank, as it must be).
    drop_last : bool, default False
        Drop the tail of the permutation instead of padding it to a multiple of :math:`W`.

    Returns
    -------
    train_loader, val_loader : torch.utils.data.DataLoader (``val_loader`` None if ``val`` is)

    Raises
    ------
    ValueError
        If ``global_batch_size`` is not a positive multiple of the world size, or ``val`` has
        fewer examples than there are ranks (a rank would validate nothing).
    """
    global_batch_size = _validate.positive_int(global_batch_size, "global_batch_size")
    seed = _validate.nonnegative_int(seed, "seed")
    w, r = world_size(), rank()
    if global_batch_size % w:
        raise ValueError(
            f"global_batch_size must be a multiple of the world size {w} (each rank takes an "
            f"equal share); got {global_batch_size}"
        )
    sampler = DistributedSampler(
        train, num_replicas=w, rank=r, shuffle=True, seed=seed, drop_last=drop_last
    )
    train_loader = DataLoader(train, batch_size=global_batch_size // w, sampler=sampler)
    val_loader = None
    if val is not None and len(val) < w:
        raise ValueError(f"val has {len(val)} examples for {w} ranks: each rank needs one")
    if val is not None:
        shard = Subset(val, range(r, len(val), w))
        val_loader = DataLoader(shard, batch_size=max(1, global_batch_size // w))
    return train_loader, val_loader


# ------------------------------------------------------------------------------ collectives
def flat_gradient(model: nn.Module, X, y) -> torch.Tensor:
    r"""The gradient :math:`\nabla_\theta \frac1n \sum_i \ell_i(\theta)` of the mean
    cross-entropy of ``model`` on ``(X, y)``, every parameter's flattened into one vector."""
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(X), y).backward()
    grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    model.zero_grad(set_to_none=True)
    return grad


def all_reduce_gradients(model: nn.Module) -> None:
    r"""Average every gradient over the ranks, in place: :math:`g \leftarrow \frac1W
    \sum_r g_r` — what DDP does during ``backward()``, one tensor at a time.

    Parameters
    ----------
    model : torch.nn.Module
        Its parameters' ``.grad`` (those that have one) are replaced by their mean over ranks.
    """
    w = world_size()
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(w)


def broadcast_parameters(model: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank (DDP does it when it wraps)."""
    for tensor in [*model.parameters(), *model.buffers()]:
        dist.broadcast(tensor.data, src=src)


class _AllReduceSum(torch.autograd.Function):
    r"""The sum over ranks, :math:`s = \sum_r x_r`, differentiable: every rank's
    :math:`\partial s / \partial x_r = I`, so the gradient that reaches :math:`x_r` is the sum
    over ranks of the gradients of :math:`s` — another all-reduce."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


class SyncBatchNorm(_BatchNorm):
    r"""BatchNorm over the *global* batch, for the CPU (PyTorch's own ``nn.SyncBatchNorm``
    needs a GPU).

    In training mode the mean and variance of each channel are those of all ranks' examples
    together,

    .. math::

        \mu = \frac1N \sum_{r} \sum_{i \in B_r} x_i, \qquad
        \sigma^2 = \frac1N \sum_{r} \sum_{i \in B_r} (x_i - \mu)^2, \qquad
        N = \sum_r |B_r|,

    computed with two differentiable all-reduces, so the backward pass sends the gradient
    through the other ranks' statistics as well. With one process, or in evaluation
    mode, it is ordinary BatchNorm. The running variance is updated with the unbiased
    :math:`\sigma^2 N / (N - 1)`, as :class:`torch.nn.BatchNorm1d` does.
    """

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"SyncBatchNorm expects (batch, channels, ...) input; got {x.dim()}D")

    def forward(self, x):
        """Normalise ``x`` of shape ``(batch, channels, ...)`` with the global statistics."""
        self._check_input_dim(x)
        if not self.training or world_size() == 1:
            return super().forward(x)
        all_reduce = _AllReduceSum.apply
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = x.new_tensor([x.numel() // x.shape[1]])
        sums = all_reduce(torch.cat([x.sum(dims), count]))
        n = sums[-1]
        if n.item() <= 1:  # as nn.BatchNorm: one value has no variance
            raise ValueError(
                f"SyncBatchNorm expects more than 1 value per channel when training; the "
                f"ranks' batches hold {int(n.item())} in all"
            )
        mean = sums[:-1] / n
        var = all_reduce(((x - mean.view(shape)) ** 2).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = (
                    1.0 / float(self.num_batches_tracked)
                    if self.momentum is None
                    else self.momentum
                )
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1), alpha=m)
        out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def convert_sync_batchnorm(model: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer of ``model`` by a :class:`SyncBatchNorm` with the same
    parameters, buffers and settings, in place; return the model."""
    for name, child in list(model.named_children()):
        if isinstance(child, _BatchNorm) and not isinstance(child, SyncBatchNorm):
            like = child.weight if child.affine else child.running_mean
            sync = SyncBatchNorm(
                child.num_features,
                child.eps,
                child.momentum,
                child.affine,
                child.track_running_stats,
                device=like.device,
                dtype=like.dtype,
            )
            sync.load_state_dict(child.state_dict())
            sync.train(child.training)
            setattr(model, name, sync)
        else:
            convert_sync_batchnorm(child)
    return model


# --------------------------------------------------------------------------------- training
class DistributedTrainer(Trainer):
    r"""The chapter-3 :class:`~companion.training.Trainer`, data-parallel over the process group.

    - ``sync="ddp"`` wraps the model in :class:`~torch.nn.parallel.DistributedDataParallel`
      (which copies rank 0's weights to every rank and all-reduces the gradients during
      ``backward()``); ``"all_reduce"`` copies the weights with :func:`broadcast_parameters`
      and calls :func:`all_reduce_gradients` after ``backward()``; ``"none"`` does neither (a
      negative control: each rank trains alone on its shard).
    - Loss and accuracy are summed over ranks before dividing, so every rank reports the
      global numbers, for training and validation.
    - Checkpoints are written by rank 0 only (atomically, as the Trainer does), of the
      unwrapped model, so a run of any world size — one process included — can load them.
    - The progress bar shows on rank 0 only.

    Use it inside :func:`launch` (or after :func:`init_from_env`), with the loaders of
    :func:`distributed_loaders`. Without a process group it is a one-process Trainer.

    Parameters
    ----------
    model, device, criterion
        As for :class:`~companion.training.Trainer`.
    sync : {"ddp", "all_reduce", "none"}, default "ddp"
    broadcast_buffers : bool, default True
        DDP's option: copy rank 0's buffers (BatchNorm's running statistics) to every rank at
        each forward pass. With ``False`` each rank keeps its own.
    """

    def __init__(self, model, device=None, criterion=None, *, sync="ddp", broadcast_buffers=True):
        super().__init__(model, device, criterion)
        self.sync = _validate.one_of(sync, "sync", set(_SYNCS))
        self.rank, self.world_size = rank(), world_size()
        self._ddp = None
        self._reduce = True
        if self.world_size > 1 and sync == "ddp":
            # Pass the option only when it differs from the default: torch 2.14 deprecates
            # the name (for forward_sync_buffers, which older versions lack) but keeps False.
            options = {} if broadcast_buffers else {"broadcast_buffers": False}
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "`broadcast_buffers` is deprecated")
                self._ddp = DistributedDataParallel(self.model, **options)
        elif self.world_size > 1 and sync == "all_reduce":
            broadcast_parameters(self.model)

    def _training_module(self):
        return self.model if self._ddp is None else self._ddp

    def _sync_gradients(self) -> None:
        if self.world_size > 1 and self.sync == "all_reduce":
            all_reduce_gradients(self.model)

    def validate(self, val_loader, reduce: bool = True):
        """:meth:`companion.training.Trainer.validate`; with ``reduce=False``, this rank's
        numbers on its share of the data only (a pitfall when compared as if global)."""
        self._reduce = reduce
        try:
            return super().validate(val_loader)
        finally:
            self._reduce = True

    def _totals(self, total_loss, correct, seen):
        if self.world_size == 1 or not self._reduce:
            return total_loss, correct, seen
        # on the model's device: nccl reduces CUDA tensors only
        sums = torch.tensor([total_loss, correct, seen], dtype=torch.float64, device=self.device)
        dist.all_reduce(sums, op=dist.ReduceOp.SUM)
        return float(sums[0]), int(sums[1]), int(sums[2])

    def fit(self, *args, progress: bool = True, **kwargs) -> dict:
        """:meth:`companion.training.Trainer.fit`, with the progress bar on rank 0 only."""
        return super().fit(*args, progress=progress and self.rank == 0, **kwargs)

    def save_checkpoint(self, path) -> Path:
        """Rank 0 writes the checkpoint (:meth:`companion.training.Trainer.save_checkpoint`);
        every rank waits until it is on disk, then returns its path."""
        path = Path(path)
        if self.rank == 0:
            super().save_checkpoint(path)
        if self.world_size > 1:
            dist.barrier()
        return path


# ---------------------------------------------------------------------------- the recipe
def seed_mlp(batch_norm: bool = False, dtype=torch.float64) -> nn.Sequential:
    """Chapter 3's MLP (10 → 64 → 32 → 3, ReLU) without dropout, optionally with a BatchNorm
    after each hidden Linear; ``float64`` so that two runs can be compared to 1e-12."""

    def hidden(n_in, n_out):
        return [nn.Linear(n_in, n_out), *([nn.BatchNorm1d(n_out)] if batch_norm else []), nn.ReLU()]

    return nn.Sequential(*hidden(10, 64), *hidden(64, 32), nn.Linear(32, 3)).to(dtype)


def train_seed_mlp_parallel(
    epochs: int = 2,
    global_batch_size: int = 32,
    seed: int = 0,
    *,
    sync: str = "ddp",
    batch_norm: str = "none",
    lr: float = 1e-2,
    checkpoint=None,
    resume=None,
) -> dict:
    r"""Train :func:`seed_mlp` on chapter 3's data in whatever process group this runs in.

    Called plainly it is one process; inside :func:`launch` (or under ``torchrun``) every rank
    runs it and they train together. The first 800 points train, the last 200 validate; Adam
    at ``lr``; the initial weights come from ``seed`` (the same on every rank, and DDP copies
    rank 0's anyway); the batch order from ``seed`` and the epoch.

    Parameters
    ----------
    epochs : int, default 2
        Epochs to train (in all, counting those of a resumed checkpoint).
    global_batch_size : int, default 32
        Examples per step over all ranks.
    seed : int, default 0
    sync : {"ddp", "all_reduce", "none"}, default "ddp"
        See :class:`DistributedTrainer`.
    batch_norm : {"none", "local", "sync"}, default "none"
        No BatchNorm; BatchNorm with each rank's own batch statistics; :class:`SyncBatchNorm`.
    lr : float, default 1e-2
    checkpoint : str or os.PathLike, optional
        Save a checkpoint here after the first epoch.
    resume : str or os.PathLike, optional
        Start from this checkpoint (written by any world size).

    Returns
    -------
    dict
        ``weights`` (the final state dict, on this rank), ``history`` (global metrics),
        ``rank_val_acc`` (per epoch, this rank's accuracy on its share of the validation
        data, not summed over ranks), ``steps`` (optimizer steps taken, resumed ones included),
        ``running_mean`` (the first BatchNorm's running mean, or None), ``rank``,
        ``world_size``.
    """
    from .data import make_seed_dataset

    epochs = _validate.positive_int(epochs, "epochs")
    _validate.one_of(batch_norm, "batch_norm", {"none", "local", "sync"})
    seed_everything(seed, threads=None)
    model = seed_mlp(batch_norm=batch_norm != "none")
    if batch_norm == "sync":
        convert_sync_batchnorm(model)
    X, y = make_seed_dataset()
    data = TensorDataset(X.to(torch.float64), y)
    train, val = Subset(data, range(800)), Subset(data, range(800, 1000))
    loaders = distributed_loaders(train, val, global_batch_size, seed=seed)
    trainer = DistributedTrainer(model, device="cpu", sync=sync)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    if resume is not None:
        trainer.load_checkpoint(resume, optimizer=optimizer)
    rank_acc = []  # this rank's validation accuracy, on its share only
    while trainer.epoch < epochs:
        trainer.fit(*loaders, 1, optimizer=optimizer, progress=False)
        rank_acc.append(trainer.validate(loaders[1], reduce=False)[1])
        if checkpoint is not None and trainer.epoch == 1:
            trainer.save_checkpoint(checkpoint)
    bn = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    return {
        "weights": {k: v.clone() for k, v in model.state_dict().items()},
        "history": trainer.history,
        "rank_val_acc": rank_acc,
        "steps": int(optimizer.state[model[0].weight]["step"]),
        "running_mean": bn[0].running_mean.clone() if bn else None,
        "rank": trainer.rank,
        "world_size": trainer.world_size,
    }


def train_variants(variants) -> list:
    """:func:`train_seed_mlp_parallel` once per dict of keyword arguments, in one job: each
    :func:`launch` starts new processes (a few seconds), so a chapter compares several
    settings in one."""
    return [train_seed_mlp_parallel(**variant) for variant in variants]


def step_time(model: str = "mlp", steps: int = 30, global_batch_size: int = 64, sync=True):
    r"""Seconds per training step (forward, backward, all-reduce, Adam) in this process group,
    for ``make bench``: the slowest rank's median over ``steps`` steps after 5 warm-up steps.

    Parameters
    ----------
    model : {"mlp", "cnn"}
        Chapter 3's MLP (float32, 10 features) or chapter 5's shapes CNN
        (``ConvolutionalNN(1, 3, channels=(16, 32, 64))`` on 32 × 32 images).
    steps : int
    global_batch_size : int
        Split among the ranks.
    sync : bool, default True
        False runs the steps inside DDP's ``no_sync()`` (no all-reduce): the difference is
        the time spent communicating.

    Returns
    -------
    float
    """
    from .models import ConvolutionalNN

    _validate.one_of(model, "model", {"mlp", "cnn"})
    steps = _validate.positive_int(steps, "steps")
    torch.manual_seed(0)
    b = _validate.positive_int(global_batch_size, "global_batch_size") // world_size()
    if model == "mlp":
        net, x = seed_mlp(dtype=torch.float32), torch.randn(b, 10)
    else:
        net, x = ConvolutionalNN(1, 3, channels=(16, 32, 64)), torch.randn(b, 1, 32, 32)
    y = torch.randint(0, 3, (b,))
    ddp = DistributedDataParallel(net) if world_size() > 1 else None
    forward = net if ddp is None else ddp
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    times = []
    for i in range(steps + 5):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        if ddp is not None and not sync:
            with ddp.no_sync():
                nn.functional.cross_entropy(forward(x), y).backward()
        else:
            nn.functional.cross_entropy(forward(x), y).backward()
        optimizer.step()
        if i >= 5:
            times.append(time.perf_counter() - start)
    median = torch.tensor(sorted(times)[len(times) // 2], dtype=torch.float64)
    if world_size() > 1:
        dist.all_reduce(median, op=dist.ReduceOp.MAX)
    return float(median)


def main(argv=None) -> None:  # pragma: no cover (run by torchrun in the chapter and a test)
    """``torchrun --nproc-per-node N -m companion.distributed [--epochs E] [--out FILE]``:
    :func:`train_seed_mlp_parallel` on every rank; rank 0 saves its result to ``FILE``."""
    parser = argparse.ArgumentParser(prog="python -m companion.distributed")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--global-batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    options = parser.parse_args(argv)
    torch.set_num_threads(1)
    init_from_env()
    try:
        result = train_seed_mlp_parallel(options.epochs, options.global_batch_size, options.seed)
        if rank() == 0 and options.out is not None:
            torch.save(result, options.out)
        if rank() == 0:
            print(
                f"rank 0 of {world_size()}: validation accuracy "
                f"{result['history']['val_acc'][-1]:.3f}"
            )
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":  # pragma: no cover
    main()
