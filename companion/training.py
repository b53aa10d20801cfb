r"""A reusable training loop with history, early stopping and exact, atomic checkpoints (chapter 3).

One epoch of mini-batch training minimises the mean cross-entropy

.. math::

    L(\theta) = -\frac{1}{|B|} \sum_{i \in B}
        \log \operatorname{softmax}\big(f_\theta(\mathbf x_i)\big)_{y_i}

batch by batch: forward pass, loss, ``loss.backward()`` for :math:`\nabla_\theta L`, optional
gradient clipping, ``optimizer.step()``. Before each step the loss and every element of the
gradient :math:`\nabla_\theta L` must be finite, so a NaN or an infinity from the data or the
backward pass never reaches the weights.
"""

from __future__ import annotations

import math
import os
import random
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from . import _validate
from .utils import get_device

__all__ = ["Trainer", "plot_history"]

_HISTORY_KEYS = ("train_loss", "val_loss", "train_acc", "val_acc", "lr")
_CHECKPOINT_FORMAT = 1
# PyTorch's messages for inputs of the wrong shape (checked against torch 2.14): only these
# become a ValueError about the loader's batch; any other RuntimeError (out of memory, tensors
# on two devices, dtypes, cuDNN) is re-raised unchanged.
_SHAPE_ERROR = re.compile(
    r"mat1 and mat2 shapes cannot be multiplied|size mismatch|must match the size of tensor"
    r"|is invalid for input of size|to have \d+ channels|Expected \d+D .*input"
    r"|expected input with shape|Sizes of tensors must match|must be equal to input_size"
    r"|Output size is too small|Kernel size can't be greater than actual input size"
)


class Trainer:
    r"""Train and evaluate a classifier: epochs, history, early stopping, checkpoints.

    Parameters
    ----------
    model : torch.nn.Module
        Maps a batch of inputs to class logits of shape ``(batch, n_classes)``, or to per-token
        logits ``(batch, length, n_classes)`` for labels of shape ``(batch, length)``; then loss
        and accuracy are per token.
    device : str or torch.device, optional
        Where to train; ``None`` picks CUDA when present, else the CPU (see
        :func:`companion.utils.get_device`). The model is moved there.
    criterion : callable, optional
        The loss of a batch; default :class:`torch.nn.CrossEntropyLoss`. It must reduce the batch
        to its mean (``reduction="mean"``, assumed when the criterion has no ``reduction``
        attribute) or its sum (``reduction="sum"``): the epoch's loss is the sum over batches of
        ``loss * batch_size`` (or of ``loss``) divided by the number of examples. For a criterion
        with class weights the batch mean is itself weighted, and so is the epoch's.

    Attributes
    ----------
    history : dict of list
        Per epoch: ``train_loss``, ``val_loss`` (mean per example), ``train_acc``, ``val_acc``
        (fractions in [0, 1]) and ``lr`` (the first parameter group's learning rate at the start
        of the epoch, the rate that epoch trained with). ``train_loss`` and ``train_acc`` are
        running averages over the epoch's batches, in training mode (dropout on) while the
        weights change after every batch: they are *not* the loss and accuracy of the epoch's
        final weights. ``val_loss`` and ``val_acc`` are, on the validation data, in evaluation
        mode; for the training data's, call :meth:`validate` on a training loader.
    epoch : int
        Epochs completed so far (it continues across :meth:`fit` calls and checkpoints).
    optimizer, scheduler
        Those of the last :meth:`fit` (or :meth:`load_checkpoint`); a later :meth:`fit` without
        ``optimizer=`` continues with them.
    best_epoch : int or None
        With early stopping, the epoch (1-based) whose weights were restored.

    Raises
    ------
    TypeError
        If ``model`` is not a :class:`torch.nn.Module` or ``criterion`` is not callable.
    ValueError
        If ``criterion.reduction`` is neither ``"mean"`` nor ``"sum"`` (e.g. ``"none"``).
    """

    def __init__(self, model: nn.Module, device=None, criterion: nn.Module | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        if criterion is not None and not callable(criterion):
            raise TypeError(f"criterion must be callable; got {type(criterion).__name__}")
        criterion = criterion if criterion is not None else nn.CrossEntropyLoss()
        reduction = getattr(criterion, "reduction", "mean")
        if reduction not in ("mean", "sum"):
            raise ValueError(
                "criterion must reduce a batch to its mean (reduction='mean') or sum "
                f"(reduction='sum'); got reduction={reduction!r}"
            )
        self.device = get_device(device)
        self.model = model.to(self.device)
        self.criterion = criterion
        self._sums = reduction == "sum"
        self.history = {key: [] for key in _HISTORY_KEYS}
        self.epoch = 0
        self.optimizer = None
        self.scheduler = None
        self.scheduler_step = "epoch"
        self.best_epoch = None
        self._early = None  # early-stopping state: best score, epoch, weights, bad epochs
        self._train_loader = None
        self._pending_generator_state = None

    # ----------------------------------------------------------------------------- one epoch
    def _batches(self, loader, name: str):
        if not hasattr(loader, "__iter__"):
            raise TypeError(f"{name} must be an iterable of (inputs, labels) batches")
        if hasattr(loader, "__len__") and len(loader) == 0:
            raise ValueError(f"{name} is empty: it yields no batches")
        n = 0
        for batch_idx, batch in enumerate(loader):
            if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                raise ValueError(
                    f"{name} must yield (inputs, labels) pairs; batch {batch_idx} does not"
                )
            n += 1
            yield batch_idx, batch[0].to(self.device), batch[1].to(self.device)
        if n == 0:
            raise ValueError(f"{name} is empty: it yields no batches")

    def _forward(self, x, name: str, batch_idx: int, module=None):
        try:
            return (self.model if module is None else module)(x)
        except RuntimeError as err:
            where = f"batch {batch_idx} of {name}, inputs of shape {tuple(x.shape)}"
            if _SHAPE_ERROR.search(str(err)):  # a shape mismatch deep inside the model
                raise ValueError(f"the model cannot take {where}: {err}") from err
            if hasattr(err, "add_note"):  # Python >= 3.11; type and message stay the same
                err.add_note(f"(raised by the model on {where}, {x.dtype}, on {x.device})")
            raise

    def _batch_total(self, loss: float, n: int) -> float:
        """The batch's summed loss from the criterion's mean (times ``n``) or sum."""
        return loss if self._sums else loss * n

    @staticmethod
    def _flatten_sequences(output, y):
        """Per-token outputs ``(batch, length, classes)`` with labels ``(batch, length)`` become
        ``(batch * length, classes)`` and ``(batch * length,)``: one prediction per token."""
        if output.ndim == 3 and y.ndim == 2:
            return output.reshape(-1, output.shape[-1]), y.reshape(-1)
        return output, y

    @staticmethod
    def _check_labels(output, y, name: str, batch_idx: int):
        if y.dtype not in (torch.int64, torch.int32, torch.uint8, torch.int16, torch.int8):
            raise ValueError(f"labels in {name} must be integer class indices; got {y.dtype}")
        if output.ndim != 2 or y.shape != output.shape[:1]:
            raise ValueError(
                f"{name} batch {batch_idx}: expected one label per example for logits of shape "
                f"{tuple(output.shape)}; got labels of shape {tuple(y.shape)}"
            )
        n_classes = output.shape[1]
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= n_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"labels in {name} (batch {batch_idx}) must be in 0..{n_classes - 1}, the model's "
                f"{n_classes} outputs; found {bad}"
            )

    def train_epoch(
        self,
        train_loader,
        optimizer=None,
        scheduler=None,
        scheduler_step: str = "epoch",
        clip_grad_norm: float | None = None,
    ):
        """One pass over ``train_loader`` with gradient steps.

        Parameters
        ----------
        train_loader : iterable of (inputs, labels)
        optimizer : torch.optim.Optimizer, optional
            Default: the trainer's current optimizer.
        scheduler : torch.optim.lr_scheduler.LRScheduler, optional
            Stepped after every batch when ``scheduler_step == "batch"`` (epoch-wise stepping is
            done by :meth:`fit`).
        scheduler_step : {"epoch", "batch"}, default "epoch"
        clip_grad_norm : float, optional
            Rescale the gradient so its global L2 norm is at most this value.

        Returns
        -------
        loss, accuracy : float
            Mean loss per example and fraction of correct predictions, averaged over the epoch's
            batches as they were trained: in training mode (dropout on), each batch scored by
            the weights before its own step.

        Raises
        ------
        FloatingPointError
            If a batch's loss or an element of its gradient (after clipping) is NaN or
            infinite; the message names the epoch and the batch, and that batch's step is not
            taken, so the weights and the optimizer's state are those after the previous batch.
            This catches NaN and infinity, not divergence: a learning rate far too large can
            make the weights huge (1e25 and more) with every number still finite, until the
            loss overflows; the message reports the largest weight.
        ValueError
            On an empty loader, inputs the model cannot take, or labels out of range.
        """
        optimizer = optimizer if optimizer is not None else self.optimizer
        if optimizer is None:
            raise ValueError("train_epoch needs an optimizer (or call fit, which makes one)")
        self._set_train_mode()
        params = list(self.model.parameters())
        module = self._training_module()
        total_loss, correct, seen = 0.0, 0, 0
        for batch_idx, x, y in self._batches(train_loader, "train_loader"):
            output = self._forward(x, "train_loader", batch_idx, module)
            output, y = self._flatten_sequences(output, y)
            self._check_labels(output, y, "train_loader", batch_idx)
            loss = self.criterion(output, y)
            value = loss.item()
            if not math.isfinite(value):
                self._stop(f"the loss is {value}", batch_idx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self._sync_gradients()
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(params, clip_grad_norm)
            if not _gradient_is_finite(params):
                self._stop("the gradient holds NaN or infinite values", batch_idx)
            optimizer.step()
            if scheduler is not None and scheduler_step == "batch":
                scheduler.step()
            total_loss += self._batch_total(value, len(y))
            correct += (output.argmax(dim=1) == y).sum().item()
            seen += len(y)
        total_loss, correct, seen = self._totals(total_loss, correct, seen)
        return total_loss / seen, correct / seen

    def _stop(self, what: str, batch_idx: int):
        """Raise FloatingPointError before the step of a batch whose loss or gradient is bad."""
        largest = max((p.detach().abs().max().item() for p in self.model.parameters()), default=0)
        raise FloatingPointError(
            f"{what} at epoch {self.epoch + 1}, batch {batch_idx}: training stopped before that "
            f"batch's step; the largest weight is |w| = {largest:.3g} (try a smaller learning "
            "rate or gradient clipping)"
        )

    def _set_train_mode(self) -> None:
        """Put the model in training mode before an epoch (subclasses may keep parts in eval)."""
        self.model.train()

    # Hooks for companion.distributed.DistributedTrainer; in one process they do nothing.
    def _training_module(self):
        """The module the training forward pass runs through (a DDP wrapper, in chapter 10)."""
        return self.model

    def _sync_gradients(self) -> None:
        """Called after ``loss.backward()``, before clipping and the finiteness check."""

    def _totals(self, total_loss: float, correct: int, seen: int):
        """An epoch's summed loss, correct count and example count (summed over processes)."""
        return total_loss, correct, seen

    @torch.no_grad()
    def validate(self, val_loader):
        """Loss and accuracy on ``val_loader``, in evaluation mode (dropout off), without gradients.

        Parameters
        ----------
        val_loader : iterable of (inputs, labels)

        Returns
        -------
        loss, accuracy : float
            Mean loss per example and fraction of correct predictions.

        Raises
        ------
        ValueError
            On an empty loader, inputs the model cannot take, or labels out of range.
        """
        was_training = self.model.training
        self.model.eval()
        total_loss, correct, seen = 0.0, 0, 0
        try:
            for batch_idx, x, y in self._batches(val_loader, "val_loader"):
                output = self._forward(x, "val_loader", batch_idx)
                output, y = self._flatten_sequences(output, y)
                self._check_labels(output, y, "val_loader", batch_idx)
                total_loss += self._batch_total(self.criterion(output, y).item(), len(y))
                correct += (output.argmax(dim=1) == y).sum().item()
                seen += len(y)
        finally:
            self.model.train(was_training)
        total_loss, correct, seen = self._totals(total_loss, correct, seen)
        return total_loss / seen, correct / seen

    # ------------------------------------------------------------------------------- fitting
    def fit(
        self,
        train_loader,
        val_loader,
        epochs: int,
        optimizer=None,
        scheduler=None,
        scheduler_step: str = "epoch",
        clip_grad_norm: float | None = None,
        early_stopping: int | None = None,
        monitor: str = "val_loss",
        progress: bool = True,
    ) -> dict:
        """Train for ``epochs`` more epochs, validating after each.

        Parameters
        ----------
        train_loader : iterable of (inputs, labels)
        val_loader : iterable of (inputs, labels) or None
            Validated after every epoch. ``None`` skips validation (few-label training has no
            data to spare): ``val_loss`` and ``val_acc`` are then recorded as NaN, and
            ``early_stopping`` and ``ReduceLROnPlateau`` are not available.
        epochs : int
            Epochs to run in this call; the count continues from earlier calls.
        optimizer : torch.optim.Optimizer, optional
            Default: the one of the previous call or checkpoint, else
            ``torch.optim.Adam(model.parameters(), lr=1e-3)``.
        scheduler : torch.optim.lr_scheduler.LRScheduler, optional
            Learning-rate schedule; ``ReduceLROnPlateau`` is stepped with the validation loss.
        scheduler_step : {"epoch", "batch"}, default "epoch"
            Step the scheduler after every epoch or after every batch.
        clip_grad_norm : float, optional
            Maximum global L2 norm of the gradient.
        early_stopping : int, optional
            Patience: stop after this many epochs without improvement of ``monitor``, and
            restore the weights of the best epoch.
        monitor : {"val_loss", "val_acc"}, default "val_loss"
        progress : bool, default True
            Show a progress bar over epochs (``tqdm.auto``).

        Returns
        -------
        dict
            :attr:`history`.

        Raises
        ------
        ValueError
            On bad arguments or data (see :meth:`train_epoch`).
        FloatingPointError
            On a non-finite loss (see :meth:`train_epoch`).
        """
        epochs = _validate.positive_int(epochs, "epochs")
        _validate.one_of(scheduler_step, "scheduler_step", {"epoch", "batch"})
        _validate.one_of(monitor, "monitor", {"val_loss", "val_acc"})
        if clip_grad_norm is not None:
            clip_grad_norm = _validate.positive_float(clip_grad_norm, "clip_grad_norm")
        if early_stopping is not None:
            early_stopping = _validate.positive_int(early_stopping, "early_stopping")
            if val_loader is None:
                raise ValueError("early_stopping needs a val_loader to monitor; got None")
        new_scheduler = scheduler if scheduler is not None else self.scheduler
        if isinstance(new_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            if scheduler_step == "batch":
                raise ValueError(
                    "ReduceLROnPlateau steps on the validation loss once per epoch: use "
                    "scheduler_step='epoch'"
                )
            if val_loader is None:
                raise ValueError(
                    "ReduceLROnPlateau steps on the validation loss: give a val_loader"
                )
        if optimizer is not None:
            if not isinstance(optimizer, torch.optim.Optimizer):
                raise TypeError(f"optimizer must be a torch.optim.Optimizer; got {optimizer!r}")
            self.optimizer = optimizer
        elif self.optimizer is None:
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        if scheduler is not None:
            self.scheduler = scheduler
        self.scheduler_step = scheduler_step
        self._attach_loader(train_loader)

        epoch_iter = range(epochs)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(epoch_iter, desc="epochs", leave=False)
            epoch_iter = bar
        plateau = isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        for _ in epoch_iter:
            _set_sampler_epoch(train_loader, self.epoch)
            lr = self.optimizer.param_groups[0]["lr"]
            batch_scheduler = self.scheduler if scheduler_step == "batch" else None
            train_loss, train_acc = self.train_epoch(
                train_loader, self.optimizer, batch_scheduler, scheduler_step, clip_grad_norm
            )
            if val_loader is None:
                val_loss = val_acc = math.nan
            else:
                val_loss, val_acc = self.validate(val_loader)
            self.epoch += 1
            for key, value in zip(
                _HISTORY_KEYS, (train_loss, val_loss, train_acc, val_acc, lr), strict=True
            ):
                self.history[key].append(value)
            if self.scheduler is not None and scheduler_step == "epoch":
                self.scheduler.step(val_loss) if plateau else self.scheduler.step()
            if bar is not None:
                bar.set_postfix(train_loss=f"{train_loss:.4f}", val_acc=f"{val_acc:.3f}")
            if early_stopping is not None and self._early_stop(monitor, early_stopping):
                break
        if bar is not None:
            bar.close()
        if early_stopping is not None and self._early is not None:
            self.model.load_state_dict(self._early["weights"])
            self.best_epoch = self._early["epoch"]
        return self.history

    def _early_stop(self, monitor: str, patience: int) -> bool:
        """Track the best epoch; True when ``patience`` epochs passed without improvement."""
        score = self.history[monitor][-1]
        sign = 1.0 if monitor == "val_loss" else -1.0  # lower loss / higher accuracy is better
        if self._early is None or sign * score < sign * self._early["score"]:
            weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self._early = {"score": score, "epoch": self.epoch, "weights": weights, "bad": 0}
            return False
        self._early["bad"] += 1
        return self._early["bad"] >= patience

    def _attach_loader(self, loader) -> None:
        """Remember the training loader; restore its shuffling generator after a checkpoint."""
        self._train_loader = loader
        generator = getattr(loader, "generator", None)
        if self._pending_generator_state is not None and generator is not None:
            generator.set_state(self._pending_generator_state)
        self._pending_generator_state = None

    # --------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, path) -> Path:
        """Write everything needed to resume training exactly, atomically.

        Saves the model, optimizer and scheduler states, the history, the epoch count, the
        early-stopping state and every random number generator's state (Python, NumPy, PyTorch
        CPU and CUDA, and the training loader's own generator if it has one). The file is
        written to a temporary name in the same folder, flushed to disk, then renamed over
        ``path``: a crash mid-write leaves the previous checkpoint intact.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        pathlib.Path
            The checkpoint's path.
        """
        path = Path(path)
        generator = getattr(self._train_loader, "generator", None)
        np_state = np.random.get_state()  # noqa: NPY002 (the global state is what we save)
        state = {
            "format": _CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "optimizer_class": None if self.optimizer is None else type(self.optimizer).__name__,
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "scheduler_class": None if self.scheduler is None else type(self.scheduler).__name__,
            "scheduler_step": self.scheduler_step,
            "history": self.history,
            "epoch": self.epoch,
            "best_epoch": self.best_epoch,
            "early_stopping": self._early,
            "rng": {
                "python": random.getstate(),
                "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)))
                + tuple(np_state[2:]),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "loader": None if generator is None else generator.get_state(),
            },
        }
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    def load_checkpoint(self, path, optimizer=None, scheduler=None) -> Trainer:
        """Restore a checkpoint written by :meth:`save_checkpoint`, to continue training exactly.

        Loaded with ``torch.load(weights_only=True)``: a checkpoint cannot run code.

        Parameters
        ----------
        path : str or os.PathLike
        optimizer : torch.optim.Optimizer, optional
            An optimizer over this trainer's model, of the checkpoint's class, to load the saved
            state into. Default: the trainer's own, else a new ``Adam`` if the checkpoint's
            optimizer was an ``Adam``.
        scheduler : torch.optim.lr_scheduler.LRScheduler, optional
            Needed when the checkpoint holds a scheduler state (attached to ``optimizer``).

        Returns
        -------
        Trainer
            ``self``.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If the file is not a checkpoint of this format, the model's parameters do not match,
            or the optimizer/scheduler is missing or of another class than the saved one.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint at {path}")
        # On the CPU: RNG states must stay CPU tensors; load_state_dict moves weights and optimizer
        # state to the model's device.
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != _CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a companion.Trainer checkpoint (format 1)")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as err:
            raise ValueError(f"the model does not match the checkpoint {path}: {err}") from err
        if optimizer is not None:
            self.optimizer = optimizer
        if state["optimizer"] is not None:
            if self.optimizer is None and state["optimizer_class"] == "Adam":
                self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
            if self.optimizer is None or type(self.optimizer).__name__ != state["optimizer_class"]:
                raise ValueError(
                    f"the checkpoint holds a {state['optimizer_class']} state: pass "
                    f"optimizer={state['optimizer_class']}(model.parameters(), ...) to "
                    "load_checkpoint"
                )
            self.optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            self.scheduler = scheduler
        if state["scheduler"] is not None:
            if self.scheduler is None or type(self.scheduler).__name__ != state["scheduler_class"]:
                raise ValueError(
                    f"the checkpoint holds a {state['scheduler_class']} state: pass "
                    "scheduler=... (on the same optimizer) to load_checkpoint"
                )
            self.scheduler.load_state_dict(state["scheduler"])
        self.scheduler_step = state["scheduler_step"]
        self.history = {key: list(values) for key, values in state["history"].items()}
        self.epoch = state["epoch"]
        self.best_epoch = state["best_epoch"]
        self._early = state["early_stopping"]
        rng = state["rng"]
        random.setstate(_as_tuple(rng["python"]))
        np_state = rng["numpy"]
        keys = np_state[1].numpy().astype(np.uint32)
        np.random.set_state((np_state[0], keys, *np_state[2:]))  # noqa: NPY002
        torch.set_rng_state(rng["torch"].cpu())
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
        self._pending_generator_state = None if rng["loader"] is None else rng["loader"].cpu()
        return self


def _set_sampler_epoch(loader, epoch: int) -> None:
    """``sampler.set_epoch(epoch)`` if the loader's sampler has it (``DistributedSampler``:
    without it every epoch would shuffle into the same order)."""
    for sampler in (
        getattr(loader, "sampler", None),
        getattr(getattr(loader, "batch_sampler", None), "sampler", None),
    ):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
            return


def _gradient_is_finite(params) -> bool:
    """True if no gradient element of ``params`` is NaN or infinite.

    One check over all the gradients when they share a device (a small model's step is
    dominated by per-call overhead), one per gradient otherwise; sparse gradients are checked
    on their stored values.
    """
    grads = [p.grad for p in params if p.grad is not None]
    grads = [g.coalesce().values() if g.is_sparse else g for g in grads]
    if len({g.device for g in grads}) > 1:
        return all(bool(torch.isfinite(g).all()) for g in grads)
    return not grads or bool(torch.isfinite(torch.cat([g.reshape(-1) for g in grads])).all())


def _as_tuple(obj):
    """Lists back to tuples, recursively (Python's random state must be nested tuples)."""
    return tuple(_as_tuple(o) for o in obj) if isinstance(obj, (list, tuple)) else obj


def plot_history(history: dict, axes=None):
    """Loss, accuracy and learning rate against epoch, in three panels.

    Parameters
    ----------
    history : dict of list
        :attr:`Trainer.history`, or any dict with ``train_loss``/``val_loss``,
        ``train_acc``/``val_acc`` (fractions) and optionally ``lr``.
    axes : sequence of three matplotlib.axes.Axes, optional
        Where to draw; a new figure is made when omitted.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If the history lacks the loss or accuracy keys or is empty.
    """
    for key in ("train_loss", "val_loss", "train_acc", "val_acc"):
        if key not in history or len(history[key]) == 0:
            raise ValueError(f"history must hold a non-empty {key!r} list")
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    else:
        fig = axes[0].figure
    epochs = np.arange(1, len(history["train_loss"]) + 1)
    ax_loss, ax_acc, ax_lr = axes
    ax_loss.plot(epochs, history["train_loss"], label="training")
    ax_loss.plot(epochs, history["val_loss"], label="validation")
    ax_loss.set_ylabel("cross-entropy")
    ax_acc.plot(epochs, 100 * np.asarray(history["train_acc"]), label="training")
    ax_acc.plot(epochs, 100 * np.asarray(history["val_acc"]), label="validation")
    ax_acc.set_ylabel("accuracy (%)")
    if history.get("lr"):
        ax_lr.plot(epochs, history["lr"], color="C2")
        if min(history["lr"]) > 0 and max(history["lr"]) / min(history["lr"]) > 20:
            ax_lr.set_yscale("log")
    ax_lr.set_ylabel("learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    ax_loss.legend()
    ax_acc.legend()
    fig.tight_layout()
    return fig
