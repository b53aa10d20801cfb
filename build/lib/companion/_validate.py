"""Argument checks shared by every module of :mod:`companion`.

Each helper either returns a clean value or raises a :class:`TypeError` / :class:`ValueError`
whose message names the offending argument and says what was expected, so a reader never has to
decode a traceback from deep inside NumPy or PyTorch.
"""

from __future__ import annotations

import numbers

import numpy as np


def float_array(x, name: str) -> np.ndarray:
    """Return ``x`` as a floating-point ndarray (float32/float64 kept, everything else float64).

    Raises
    ------
    TypeError
        If ``x`` is not numeric (strings, objects, complex numbers).
    """
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as err:  # ragged nested lists, odd objects
        raise TypeError(
            f"{name} must be array_like of real numbers; got {type(x).__name__}"
        ) from err
    if arr.dtype.kind in "fiub":
        if arr.dtype.kind != "f" or arr.dtype.itemsize < 4:
            arr = arr.astype(np.float64)
        return arr
    raise TypeError(f"{name} must contain real numbers; got an array of dtype {arr.dtype}")


def matrix(x, name: str, n_columns: int | None = None) -> np.ndarray:
    """Return ``x`` as a finite 2-D float array, optionally with ``n_columns`` columns.

    Raises
    ------
    ValueError
        If ``x`` is not 2-D, is empty, has the wrong number of columns or holds NaN/inf.
    """
    arr = float_array(x, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features); got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it must hold at least one sample")
    if n_columns is not None and arr.shape[1] != n_columns:
        raise ValueError(f"{name} must have {n_columns} features (columns); got {arr.shape[1]}")
    finite(arr, name)
    return arr


def finite(arr: np.ndarray, name: str) -> None:
    """Raise ValueError if ``arr`` holds NaN or infinity, saying how many and where the first is."""
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} contains {int(bad.sum())} NaN or infinite value(s), the first at index {first}"
        )


def labels(y, name: str, n_samples: int, n_classes: int, x_name: str = "X") -> np.ndarray:
    """Return ``y`` as a 1-D int64 array of class indices in ``0 .. n_classes-1``.

    Raises
    ------
    ValueError
        If ``y`` is not 1-D, its length differs from ``n_samples``, or a label is out of range or
        not a whole number.
    """
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per sample); got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {arr.shape[0]} labels but {x_name} has {n_samples} samples; "
            "they must have the same length"
        )
    if arr.dtype.kind not in "iub":
        if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must hold whole-number class labels; got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        bad = arr[(arr < 0) | (arr >= n_classes)][0]
        raise ValueError(
            f"{name} must hold class labels in 0..{n_classes - 1}; found {int(bad)}"
            + (" (binary labels must be 0 or 1)" if n_classes == 2 else "")
        )
    return arr


def positive_int(value, name: str) -> int:
    """Return ``value`` as an int if it is a positive integer (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int; got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive int; got {value}")
    return int(value)


def positive_float(value, name: str) -> float:
    """Return ``value`` as a float if it is a finite number > 0 (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number; got {type(value).__name__}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {value}")
    return float(value)


def one_of(value, name: str, choices) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise list the choices in the error."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}; got {value!r}")
    return value


def nonnegative_int(value, name: str) -> int:
    """Return ``value`` as an int if it is an integer >= 0 (bools rejected); used for seeds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= 0; got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be an int >= 0; got {value}")
    return int(value)


def finite_float(value, name: str) -> float:
    """Return ``value`` as a float if it is a finite real number (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}")
    return float(value)


def nonnegative_float(value, name: str) -> float:
    """Return ``value`` as a float if it is a finite real number >= 0 (bools rejected)."""
    value = finite_float(value, name)
    if value < 0:
        raise ValueError(f"{name} must be >= 0; got {value}")
    return value
