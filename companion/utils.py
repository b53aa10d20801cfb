"""Reproducibility, device selection and reporting over seeds, used by every chapter."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from . import _validate

__all__ = ["seed_everything", "get_device", "mean_range"]


def seed_everything(seed: int = 0) -> int:
    """Seed every random number generator the book uses.

    Seeds Python's ``random`` module, NumPy's legacy global generator, PyTorch on the CPU and on
    every CUDA device, and sets ``PYTHONHASHSEED`` for subprocesses. After ``seed_everything(s)``
    the same code draws the same numbers.

    Parameters
    ----------
    seed : int
        A non-negative integer below :math:`2^{32}` (NumPy's limit).

    Returns
    -------
    int
        The seed, so a notebook can print what it used.

    Raises
    ------
    TypeError
        If ``seed`` is not an integer.
    ValueError
        If ``seed`` is negative or does not fit in 32 bits.
    """
    seed = _validate.nonnegative_int(seed, "seed")
    if seed >= 2**32:
        raise ValueError(f"seed must be below 2**32 (NumPy's limit); got {seed}")
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
        ``None`` (default) picks ``cuda`` if available, otherwise ``cpu`` (MPS is never picked
        unasked: its results differ from the CPU's in the last digits, and the book's printed
        numbers are CPU numbers). ``"cpu"`` forces the CPU; ``"cuda"`` or ``"cuda:N"`` asks for a
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
