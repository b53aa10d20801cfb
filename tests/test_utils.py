import random

import numpy as np
import pytest
import torch

from companion.utils import executed_with, get_device, mean_range, seed_everything, use_device


def draw():
    return random.random(), np.random.rand(), torch.rand(1).item()


def test_seed_everything_makes_every_generator_repeat():
    assert seed_everything(123) == 123
    first = draw()
    seed_everything(123)
    assert draw() == first
    seed_everything(124)
    assert draw() != first


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (2**32, ValueError), (1.5, TypeError)])
def test_seed_everything_rejects_bad_seed(bad, error):
    with pytest.raises(error, match="seed"):
        seed_everything(bad)


def test_seed_everything_fixes_the_thread_count_unless_told_not_to():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        seed_everything(0)
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        seed_everything(0, threads=None)
        assert torch.get_num_threads() == 2
        seed_everything(0, threads=3)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (1.5, TypeError)])
def test_seed_everything_rejects_bad_threads(bad, error):
    with pytest.raises(error, match="threads"):
        seed_everything(0, threads=bad)


def test_use_device_sets_what_get_device_picks_and_none_restores_the_default():
    automatic = get_device()
    try:
        assert use_device("cpu") == torch.device("cpu")
        assert get_device() == torch.device("cpu")
        assert get_device("cpu") == torch.device("cpu")  # an explicit choice still wins
    finally:
        assert use_device(None) == automatic
    assert get_device() == automatic


def test_use_device_checks_its_argument_like_get_device():
    with pytest.raises(ValueError, match="prefer"):
        use_device("tpu")
    assert get_device() == torch.device("cuda" if torch.cuda.is_available() else "cpu")


def test_executed_with_names_versions_threads_and_device():
    line = executed_with()
    assert line.startswith("Executed with Python ")
    assert len(line.splitlines()) == 2  # each line fits the book's 79-character column
    assert f"torch {torch.__version__}" in line and f"NumPy {np.__version__}" in line
    assert f"{torch.get_num_threads()} CPU thread" in line
    assert f"device {get_device()}" in line


def test_get_device_defaults_to_cuda_when_present_else_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert get_device().type == expected
    assert get_device("cpu") == torch.device("cpu")
    assert get_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("bad", ["tpu", "gpu0", "meta"])
def test_get_device_rejects_unknown_device(bad):
    with pytest.raises(ValueError, match="prefer"):
        get_device(bad)


def test_get_device_rejects_wrong_type():
    with pytest.raises(TypeError, match="prefer"):
        get_device(0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_get_device_asking_for_missing_cuda_says_so():
    with pytest.raises(ValueError, match="no CUDA device"):
        get_device("cuda")


def test_get_device_accepts_mps_when_available(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert get_device("mps") == torch.device("mps")
    assert get_device("mps:0") == torch.device("mps:0")
    assert get_device(torch.device("mps")).type == "mps"
    with pytest.raises(ValueError, match=r"prefer='mps:1'.*single device"):
        get_device("mps:1")


def test_get_device_asking_for_missing_mps_names_prefer_and_the_valid_values(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"prefer='mps'.*not available") as info:
        get_device("mps")
    assert "'cpu', 'cuda', 'cuda:N' or 'mps'" in str(info.value)


def test_get_device_default_never_picks_mps(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_device() == torch.device("cpu")


def test_get_device_unknown_type_lists_the_valid_values():
    with pytest.raises(ValueError, match=r"prefer must be one of None, 'cpu', 'cuda'.*'mps'"):
        get_device("tpu")


def test_mean_range_reports_mean_min_and_max_in_the_given_format():
    assert mean_range([0.95, 0.97, 0.96], ".1%") == "96.0% (95.0% to 97.0%)"
    assert mean_range(np.array([3.0, 1.0, 2.0])) == "2.000 (1.000 to 3.000)"
    assert mean_range([2.8e-9], ".1e") == "2.8e-09 (2.8e-09 to 2.8e-09)"


@pytest.mark.parametrize(
    "values, fmt, error, match",
    [
        ([], ".3f", ValueError, "at least one"),
        ([1.0, float("nan")], ".3f", ValueError, "NaN"),
        (["a", "b"], ".3f", TypeError, "values"),
        ([1.0], 3, TypeError, "fmt"),
        ([1.0], ".3q", ValueError, "fmt"),
    ],
)
def test_mean_range_rejects_bad_input_naming_the_argument(values, fmt, error, match):
    with pytest.raises(error, match=match):
        mean_range(values, fmt)


def test_recipe_source_shows_the_code_without_its_docstring():
    from companion import recipe_source, train_shapes_cnn

    source = recipe_source(train_shapes_cnn)
    assert source.startswith("def train_shapes_cnn(")
    assert "Parameters" not in source and '"""' not in source
    assert "trainer.fit(" in source  # the body is there
    with pytest.raises(TypeError, match="func must be a Python function"):
        recipe_source(len)
