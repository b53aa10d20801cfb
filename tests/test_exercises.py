"""The exercises: chapters and checkers agree, every folded solution passes its checker, the
committed stubs read "not attempted", and realistic wrong answers get their intended hint."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import companion
from companion.exercises import Result, check, exercises

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p.stem for p in (ROOT / "nbsrc").glob("*.py"))
CHECK_CALL = re.compile(r'^check\("(\d+\.\d+)", (\w+)\)$', flags=re.M)


def chapter_number(name):
    return int(name.split("_")[0])


def source(name):
    return (ROOT / "nbsrc" / f"{name}.py").read_text()


def markdown_text(name):
    """The chapter's markdown cells, with their '# ' comment prefix removed."""
    lines = []
    for line in source(name).splitlines():
        if line.startswith("# ") or line == "#":
            lines.append(line[2:])
        else:
            lines.append("")
    return "\n".join(lines)


def solutions(name):
    """{exercise id: python code of its folded solution}."""
    found = {}
    text = markdown_text(name)
    for label, body in re.findall(
        r"^````\{solution\} ex-(\d+-\d+)\n(.*?)^````$", text, re.M | re.S
    ):
        code = re.findall(r"^```python\n(.*?)^```$", body, flags=re.M | re.S)
        assert len(code) == 1, f"{name}: solution ex-{label} needs one python block"
        found[label.replace("-", ".")] = code[0]
    return found


WITH_EXERCISES = [n for n in CHAPTERS if "## Exercises" in source(n)]


def test_some_chapters_have_exercises():
    assert WITH_EXERCISES, "no chapter has an Exercises section yet"


@pytest.mark.parametrize("name", WITH_EXERCISES)
def test_chapter_and_checkers_agree(name):
    number = chapter_number(name)
    text = source(name)
    called = dict(CHECK_CALL.findall(text))
    labels = {m.replace("-", ".") for m in re.findall(r"^# :label: ex-(\d+-\d+)$", text, re.M)}
    registered = {e.id for e in exercises(number)}
    assert 3 <= len(registered) <= 5, f"chapter {number} needs 3-5 exercises"
    assert set(called) == labels == registered == set(solutions(name))
    assert all(i.startswith(f"{number}.") for i in registered)
    levels = [e.level for e in exercises(number)]
    order = ("easy", "medium", "hard")
    assert levels == sorted(levels, key=order.index), "exercises go from easy to hard"
    for e in exercises(number):  # the directive's title: number, title, level and kind
        assert f"# ```{{exercise}} {e.id} {e.title} ({e.level}, {e.kind})\n" in text


@pytest.mark.parametrize("name", WITH_EXERCISES)
def test_every_folded_solution_passes_its_checker(name):
    called = dict(CHECK_CALL.findall(source(name)))
    for exercise_id, code in solutions(name).items():
        namespace = {"np": np, "torch": torch, "nn": torch.nn, "companion": companion}
        exec(compile(code, f"<solution {exercise_id}>", "exec"), namespace)
        result = check(exercise_id, namespace[called[exercise_id]], quiet=True)
        assert result.passed, f"solution {exercise_id}: {result}"


@pytest.mark.parametrize("name", WITH_EXERCISES)
def test_committed_stubs_read_not_attempted(name):
    nb = json.loads((ROOT / "book" / f"{name}.ipynb").read_text())
    seen = set()
    for cell in nb["cells"]:
        text = "".join(cell["source"]) if cell["cell_type"] == "code" else ""
        for exercise_id, _ in CHECK_CALL.findall(text):
            out = "".join("".join(o.get("text", "")) for o in cell["outputs"])
            assert out.startswith(f"Exercise {exercise_id}: not attempted."), out
            seen.add(exercise_id)
    assert seen == {e.id for e in exercises(chapter_number(name))}


def test_check_names_unknown_exercises_and_rejects_a_non_string_id():
    with pytest.raises(ValueError, match=r"no exercise '1\.9'.*1\.1"):
        check("1.9", None)
    with pytest.raises(TypeError, match="exercise_id"):
        check(1.1, None)


def test_stub_answers_are_not_attempted_and_results_print(capsys):
    def stub(x):
        raise NotImplementedError

    for answer in (None, ..., stub):
        result = check("1.1", answer)
        assert isinstance(result, Result) and result.status == "not attempted"
        assert not result.passed
    assert capsys.readouterr().out.count("Exercise 1.1: not attempted.") == 3
    # a notebook shows the returned result briefly, not the verdict a second time
    from IPython.lib.pretty import pretty

    assert pretty(result) == "<Result 1.1: not attempted>"


def test_an_answer_that_raises_gets_a_message_not_a_traceback():
    def broken(x):
        return x.nonexistent

    result = check("1.1", broken, quiet=True)
    assert result.status == "wrong"
    assert "AttributeError" in result.message and "ndarray of shape (205,)" in result.message
    assert check("1.1", "not a function", quiet=True).message.startswith("the answer must be")


# ------------------------------------------------------------------ wrong answers, by chapter
def naive_sigmoid_derivative(x):
    s = 1 / (1 + np.exp(-x))
    return s * (1 - s)


def stable_sigmoid(x):
    u = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + u), u / (1 + u))


def step_in_place(w, b, x, y, lr):
    y_hat = 1.0 if w @ x + b >= 0 else 0.0
    w += lr * (y - y_hat) * x
    return w, b + lr * (y - y_hat)


def step_wrong_sign(w, b, x, y, lr):
    y_hat = 1.0 if w @ x + b >= 0 else 0.0
    return w + lr * (y_hat - y) * x, b + lr * (y_hat - y)


def step_no_bias(w, b, x, y, lr):
    y_hat = 1.0 if w @ x + b >= 0 else 0.0
    return w + lr * (y - y_hat) * x, b


def tanh_via_exp(x):
    return 4 * np.exp(2 * x) / (np.exp(2 * x) + 1) ** 2


WRONG = [
    ("1.1", naive_sigmoid_derivative, "e^{-|x|}"),
    ("1.1", stable_sigmoid, "sigma(x) * (1 - sigma(x))"),
    ("1.1", lambda x: x * (1 - x), "s = sigma(x), not x"),
    ("1.1", lambda x: -stable_sigmoid(x) * (1 - stable_sigmoid(x)), "sign is wrong"),
    ("1.2", step_in_place, "`w += ...` modifies"),
    ("1.2", step_wrong_sign, "y - y_hat"),
    ("1.2", step_no_bias, "b += lr"),
    ("1.3", 0.25**10, "only the first unit sees z = 0"),
    ("1.3", 4.0**10, "at most 1/4"),
    ("1.3", "3.9e-7", "must be a number"),
    ("1.4", lambda x: 1 - np.tanh(x) ** 2, "has no subtraction"),
    ("1.4", tanh_via_exp, "u = e^{-2|x|}, which is at most 1"),
]


def wrong_answer_test(wrong):
    """The test every chapter's list of (exercise id, wrong answer, hint fragment) runs
    through: the checker says "wrong" and its message or hint contains the fragment."""

    @pytest.mark.parametrize("exercise_id, answer, hint", wrong)
    def test_a_realistic_wrong_answer_gets_its_intended_hint(exercise_id, answer, hint):
        result = check(exercise_id, answer, quiet=True)
        assert result.status == "wrong"
        assert hint in f"{result.message} {result.hint}", str(result)

    return test_a_realistic_wrong_answer_gets_its_intended_hint


test_a_realistic_wrong_answer_gets_its_intended_hint = wrong_answer_test(WRONG)
