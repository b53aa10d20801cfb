r"""Exercises a reader can check: ``check("1.2", answer)`` prints a verdict and returns it.

Every chapter ends with three to five exercises. Each has a checker here that tests the
reader's answer the way the book's own tests check ``companion``: against the reference code on
random and edge-case inputs, against finite differences, or against a measured number within a
stated tolerance. A wrong answer gets a *targeted* hint when the checker recognises the mistake
(the wrong sign, off by the batch size, unstable for large inputs, ...), never just "wrong".

An answer that is still the committed stub (``...``, ``None`` or a function that raises
``NotImplementedError``) is reported as *not attempted yet*, so the book's notebooks show what a
reader will see and still run to the end.

The checkers live in one module per chapter (``companion.exercises.ch01`` ...); importing this
package registers them all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Result", "Exercise", "check", "exercises"]

LEVELS = ("easy", "medium", "hard")
KINDS = ("implement", "predict", "debug", "experiment")
STATUSES = ("correct", "wrong", "not attempted")


@dataclass(frozen=True)
class Result:
    """The verdict on one answer.

    Attributes
    ----------
    exercise : str
        The exercise's number, e.g. ``"1.2"``.
    status : str
        ``"correct"``, ``"wrong"`` or ``"not attempted"``.
    message : str
        What was checked, or what went wrong, in a sentence.
    hint : str or None
        For a wrong answer whose mistake the checker recognises: what to look at.
    """

    exercise: str
    status: str
    message: str
    hint: str | None = None

    @property
    def passed(self) -> bool:
        """True when the answer is correct."""
        return self.status == "correct"

    def _repr_pretty_(self, printer, cycle) -> None:
        """In a notebook the verdict is already printed: show the returned object briefly."""
        printer.text(f"<Result {self.exercise}: {self.status}>")

    def __str__(self) -> str:
        mark = {"correct": "correct", "wrong": "not yet right", "not attempted": "not attempted"}
        message = self.message[:1].upper() + self.message[1:]
        text = f"Exercise {self.exercise}: {mark[self.status]}. {message}"
        return text + (f"\nHint: {self.hint}" if self.hint else "")


@dataclass(frozen=True)
class Exercise:
    """One exercise: its number, title, level, kind and checker.

    The checker takes the answer and returns a success message, or raises ``Wrong`` (with a
    message and a hint) or ``NotAttempted``; :func:`check` turns either into a :class:`Result`.
    """

    id: str
    title: str
    level: str
    kind: str
    checker: Callable

    @property
    def chapter(self) -> int:
        """The chapter number, the part of ``id`` before the dot."""
        return int(self.id.split(".")[0])


class NotAttempted(Exception):
    """Raised by a checker when the answer is still the stub."""


class Wrong(Exception):
    """Raised by a checker for a wrong answer: ``Wrong(message, hint=None)``."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


_REGISTRY: dict[str, Exercise] = {}


def exercise(id: str, title: str, level: str, kind: str):
    """Register the decorated function as the checker of exercise ``id`` (for chapter modules).

    The checker returns a success message (str) or raises :class:`Wrong` or
    :class:`NotAttempted`.
    """
    if level not in LEVELS or kind not in KINDS:
        raise ValueError(f"level must be one of {LEVELS} and kind one of {KINDS}")
    if id in _REGISTRY:
        raise ValueError(f"exercise {id} is registered twice")

    def register(checker):
        _REGISTRY[id] = Exercise(id, title, level, kind, checker)
        return checker

    return register


def exercises(chapter: int | None = None) -> list[Exercise]:
    """The registered exercises, in order, of one chapter or of all.

    Parameters
    ----------
    chapter : int, optional

    Returns
    -------
    list of Exercise
    """
    _load()
    found = [e for e in _REGISTRY.values() if chapter is None or e.chapter == chapter]
    return sorted(found, key=lambda e: tuple(int(p) for p in e.id.split(".")))


def check(exercise_id: str, answer, *, quiet: bool = False) -> Result:
    """Check an answer to an exercise, print the verdict and return it.

    Parameters
    ----------
    exercise_id : str
        The exercise's number as printed in the chapter, e.g. ``"3.2"``.
    answer : object
        What the exercise asks for: a function, a number, a model ... ``...`` or ``None`` (the
        committed stubs) count as not attempted.
    quiet : bool, default False
        Return the result without printing it.

    Returns
    -------
    Result

    Raises
    ------
    TypeError
        If ``exercise_id`` is not a string.
    ValueError
        If there is no such exercise; the message lists the chapter's exercises.
    """
    if not isinstance(exercise_id, str):
        raise TypeError(f"exercise_id must be a string such as '1.2'; got {exercise_id!r}")
    _load()
    if exercise_id not in _REGISTRY:
        chapter = exercise_id.split(".")[0]
        known = [e for e in _REGISTRY if e.split(".")[0] == chapter] or sorted(_REGISTRY)
        raise ValueError(f"there is no exercise {exercise_id!r}; known: {', '.join(known)}")
    ex = _REGISTRY[exercise_id]
    try:
        if answer is None or answer is Ellipsis:
            raise NotAttempted
        message = ex.checker(answer)
        result = Result(exercise_id, "correct", message)
    except NotAttempted:
        result = Result(
            exercise_id, "not attempted", "Replace the stub with your answer and run again."
        )
    except Wrong as wrong:
        result = Result(exercise_id, "wrong", wrong.message, wrong.hint)
    if not quiet:
        print(result)
    return result


# ---------------------------------------------------------------------------- for checkers
def call(fn, *args, what: str = "your function", **kwargs):
    """Call the reader's ``fn``: a stub becomes :class:`NotAttempted`, an error :class:`Wrong`.

    Errors are reported with their type and message and the input they came from, not as a
    traceback from inside the checker.
    """
    if not callable(fn):
        raise Wrong(f"the answer must be a function; got {type(fn).__name__}")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as err:
        raise NotAttempted from err
    except Exception as err:  # the reader's code: report it, whatever it is
        shapes = ", ".join(_describe(a) for a in args)
        raise Wrong(f"{what} raised {type(err).__name__}: {err} (called with {shapes})") from err


def as_array(value, what: str = "your function's result") -> np.ndarray:
    """The reader's result as a float64 array, or :class:`Wrong` saying what it was."""
    try:
        import torch

        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise Wrong(f"{what} must be an array of numbers; got {type(value).__name__}") from err


def number(value, what: str = "the answer") -> float:
    """The reader's answer as a finite float, or :class:`Wrong` saying what it was."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        try:
            import torch

            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.item()
            else:
                raise TypeError
        except TypeError:
            raise Wrong(f"{what} must be a number; got {type(value).__name__}") from None
    value = float(value)
    if not math.isfinite(value):
        raise Wrong(f"{what} must be finite; got {value}")
    return value


def same_shape(got: np.ndarray, expected: np.ndarray, what: str = "the result") -> None:
    """:class:`Wrong` with both shapes unless they agree."""
    if got.shape != expected.shape:
        raise Wrong(
            f"{what} has shape {got.shape}; expected {expected.shape}",
            "return one value per input element, in the input's shape",
        )


def _describe(arg) -> str:
    """A short description of an argument: its type and shape, never a long repr."""
    shape = getattr(arg, "shape", None)
    if shape is not None:
        return f"{type(arg).__name__} of shape {tuple(shape)}"
    text = repr(arg)
    return text if len(text) <= 40 else f"a {type(arg).__name__}"


def _load() -> None:
    """Import the chapter modules ``chNN`` (each registers its checkers on import)."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("ch"):
            importlib.import_module(f"{__name__}.{module.name}")
