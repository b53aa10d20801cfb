import random

import numpy as np
import pytest
import torch

from companion.utils import get_device, seed_everything


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
