"""Reproducibility, device selection and reporting over seeds, used by every chapter."""

from __future__ import annotations

import ast
import inspect
import os
import platform
import random
import sys
import textwrap

import numpy as np
import torch

from . import _validate

__all__ = [
    "seed_everything",
    "get_device",
    "use_device",
    "mean_range",
    "executed_with",
    "recipe_source",
]

_default_device: torch.device | None = None


def seed_everything(seed: int = 0, *, threads: int | None = 1) -> int:
    r"""Seed every random number generator the book uses, and fix PyTorch's CPU thread count.

    Seeds Python's ``random`` module, NumPy's legacy global generator, PyTorch on the CPU and on
    every CUDA device, and sets ``PYTHONHASHSEED`` for subprocesses. After ``seed_everything(s)``
    the same code draws the same numbers.

    The thread count matters too: PyTorch splits a CPU reduction (a matrix product, a sum, a
    convolution) among its intra-op threads, so with :math:`T` threads a sum
    :math:`\sum_i a_i` is added in :math:`T` partial sums, rounded differently. After thousands
    of training steps those last bits become different printed numbers (chapter 7's Fréchet
    distance 6.18 with one thread, 8.73 with two). ``threads=1`` (the default) makes a laptop
    with sixteen cores and Colab's two compute what the book shows; the book's models are
    small, and one thread is as fast for them.

    Parameters
    ----------
    seed : int
        A non-negative integer below :math:`2^{32}` (NumPy's limit).
    threads : int or None, default 1
        Passed to :func:`torch.set_num_threads`; ``None`` leaves PyTorch's setting as it is.

    Returns
    -------
    int
        The seed, so a notebook can print what it used.

    Raises
    ------
    TypeError
        If ``seed`` or ``threads`` is not an integer.
    ValueError
        If ``seed`` is negative or does not fit in 32 bits, or ``threads`` is below 1.
    """
    seed = _validate.nonnegative_int(seed, "seed")
    if seed >= 2**32:
        raise ValueError(f"seed must be below 2**32 (NumPy's limit); got {seed}")
    if threads is not None:
        torch.set_num_threads(_validate.positive_int(threads, "threads"))
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (the legacy global generator is what we seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    os.environ["PYTHONHASHSEED"] = str(seed)
    return seed


_DEVICE_TYPES = ("cpu", "cuda", "mps")
_VALID_PREFER = "None, 'cpu', 'cuda', 'cuda:N' or 'mps'"


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """Pick the device to compute on: CUDA when present, else the CPU; Apple's MPS on request.

    Parameters
    ----------
    prefer : str or torch.device, optional
        ``None`` (default) picks the device set by :func:`use_device` if one was set, else
        ``cuda`` if available, otherwise ``cpu`` (MPS is never picked unasked: its results
        differ from the CPU's in the last digits, and the book's printed numbers are CPU
        numbers). ``"cpu"`` forces the CPU; ``"cuda"`` or ``"cuda:N"`` asks for a
        GPU, ``"mps"`` (or ``"mps:0"``) for the GPU of an Apple-silicon Mac; both fail clearly
        when the device is not there.

    Returns
    -------
    torch.device

    Raises
    ------
    TypeError
        If ``prefer`` is neither None, a string nor a :class:`torch.device`.
    ValueError
        If ``prefer`` names an unknown device type, or asks for CUDA or MPS on a machine without
        it. The message names ``prefer`` and lists the valid values.
    """
    if prefer is None:
        if _default_device is not None:
            return _default_device
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(prefer, (str, torch.device)):
        raise TypeError(
            f"prefer must be None, a str or a torch.device; got {type(prefer).__name__}"
        )
    try:
        device = torch.device(prefer)
    except RuntimeError as err:
        raise ValueError(f"prefer must be one of {_VALID_PREFER}; got {prefer!r}") from err
    if device.type not in _DEVICE_TYPES:
        raise ValueError(f"prefer must be one of {_VALID_PREFER}; got device type {device.type!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"prefer={prefer!r} asks for CUDA, but no CUDA device is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"prefer={prefer!r}: only {torch.cuda.device_count()} CUDA device(s) are present"
            )
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(
                f"prefer={prefer!r} asks for MPS (Apple silicon), but MPS is not available "
                f"here; valid values are {_VALID_PREFER}, and 'cpu' always works"
            )
        if device.index not in (None, 0):
            raise ValueError(f"prefer={prefer!r}: MPS has a single device, 'mps' or 'mps:0'")
    return device


def use_device(prefer: str | torch.device | None) -> torch.device:
    """Set the device that :func:`get_device` (and so every ``Trainer``) picks by default.

    The chapters call ``use_device("cpu")`` in their first cell: their printed numbers are CPU
    numbers, and a GPU computes the same maths with other rounding. A reader on a GPU runtime
    who changes it to ``"cuda"`` trains there; the asserts still hold, the last digits differ.

    On CUDA it also asks for full float32 arithmetic and repeatable kernels: cuDNN's
    convolutions otherwise run in TensorFloat-32 on Ampere and later GPUs (a 10-bit mantissa,
    relative error near :math:`10^{-3}` instead of :math:`10^{-7}`), which the book's float32
    tolerances are not written for, and its autotuner may pick another algorithm on each run.
    So ``allow_tf32`` is off for cuDNN and for CUDA matrix products, ``cudnn.benchmark`` is
    off and ``cudnn.deterministic`` on.

    Parameters
    ----------
    prefer : str, torch.device or None
        Anything :func:`get_device` accepts; ``None`` restores the automatic choice (CUDA when
        present, else the CPU).

    Returns
    -------
    torch.device
        The device now picked by default.

    Raises
    ------
    TypeError, ValueError
        As :func:`get_device`, which checks ``prefer``.
    """
    global _default_device
    _default_device = None if prefer is None else get_device(prefer)
    device = get_device()
    if device.type == "cuda":
        # The flags, not torch 2.9's fp32_precision: after that API sets cuDNN, reading
        # cudnn.allow_tf32 (as torch.backends.cudnn.flags() does) raises a RuntimeError.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return device


def executed_with() -> str:
    """Two lines saying what ran a chapter: Python, torch, NumPy, threads, device and CPU.

    Each chapter ends with it, so a reader whose numbers differ in the last digits can see
    whether a different version, thread count, device or processor explains it.

    Returns
    -------
    str
        Two lines, so that each fits the book's 79-character column, e.g.
        ``"Executed with Python 3.11.7, torch 2.5.1, NumPy 2.1.3;"`` and
        ``"1 CPU thread, device cpu (AMD EPYC)"``; on a GPU the second names it too, e.g.
        ``"1 CPU thread, device cuda (NVIDIA H200; CPU AMD EPYC)"``.
    """
    threads = torch.get_num_threads()
    device = get_device()
    where = f"({_processor_name()})"
    if device.type == "cuda":  # the GPU computed the numbers; name it, then the CPU
        where = f"({torch.cuda.get_device_name(device)}; CPU {_processor_name()})"
    return (
        f"Executed with Python {platform.python_version()}, torch {torch.__version__}, "
        f"NumPy {np.__version__};\n{threads} CPU thread{'s' if threads != 1 else ''}, "
        f"device {device} {where}"
    )


def _processor_name() -> str:
    """The CPU's model name where the system tells it (Linux, macOS), else its architecture."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or sys.platform


def mean_range(values, fmt: str = ".3f") -> str:
    r"""Summarise per-seed results as ``"mean (min to max)"``.

    The book prints every claim that depends on a random draw this way: the mean
    :math:`\bar v = \frac{1}{n}\sum_i v_i` over the seeds, and the range
    :math:`[\min_i v_i, \max_i v_i]` an assert's margin must be wider than.

    Parameters
    ----------
    values : array_like
        One number per seed (at least one; NaN is refused, it would hide a failed run).
    fmt : str, default ".3f"
        A format specification applied to all three numbers, e.g. ``".1%"`` or ``".2e"``.

    Returns
    -------
    str

    Raises
    ------
    TypeError
        If ``values`` is not numeric or ``fmt`` is not a string.
    ValueError
        If ``values`` is empty or contains NaN, or ``fmt`` is not a valid format for floats.

    Examples
    --------
    >>> mean_range([0.95, 0.97, 0.96], ".1%")
    '96.0% (95.0% to 97.0%)'
    """
    if not isinstance(fmt, str):
        raise TypeError(f"fmt must be a format string such as '.3f'; got {type(fmt).__name__}")
    v = _validate.float_array(values, "values").ravel()
    if v.size == 0:
        raise ValueError("values must hold at least one number (one per seed); got none")
    if np.isnan(v).any():
        raise ValueError(f"values contains NaN ({int(np.isnan(v).sum())} of {v.size})")
    try:
        parts = [format(float(x), fmt) for x in (v.mean(), v.min(), v.max())]
    except ValueError as err:
        raise ValueError(f"fmt={fmt!r} is not a valid format for a float: {err}") from err
    return f"{parts[0]} ({parts[1]} to {parts[2]})"


def recipe_source(func) -> str:
    """The source code of ``func`` without its docstring: how a chapter shows a recipe.

    The code is read from the installed package (``inspect.getsource``), the one copy that
    every chapter runs, so the page cannot show code other than what was executed.

    Raises
    ------
    TypeError
        If ``func`` is not a Python function.
    """
    if not inspect.isfunction(func):
        raise TypeError(f"func must be a Python function; got {type(func).__name__}")
    lines = textwrap.dedent(inspect.getsource(func)).splitlines()
    body = ast.parse("\n".join(lines)).body[0].body
    first = body[0]
    is_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    if is_doc and isinstance(first.value.value, str):
        del lines[first.lineno - 1 : first.end_lineno]
    return "\n".join(lines)
