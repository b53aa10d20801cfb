import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from companion.convolution import conv2d, conv_output_size


@pytest.mark.parametrize("stride, padding", [(1, 0), (1, 1), (2, 0), (2, 1), (3, 2)])
def test_conv2d_matches_torch(stride, padding):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2, 11, 9))
    w = rng.normal(size=(4, 2, 3, 2))
    b = rng.normal(size=4)
    ours = conv2d(x, w, b, stride=stride, padding=padding)
    ref = F.conv2d(
        torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=stride, padding=padding
    )
    assert ours.shape == tuple(ref.shape)
    np.testing.assert_allclose(ours, ref.numpy(), rtol=0, atol=1e-12)


def test_conv2d_is_a_cross_correlation():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    w = np.array([[[[1.0, 0.0], [0.0, 0.0]]]])  # picks the top-left pixel of each window
    np.testing.assert_array_equal(conv2d(x, w)[0, 0], [[0.0, 1.0], [3.0, 4.0]])


def test_output_size_formula_matches_torch_everywhere():
    for n, k, s, p, d in itertools.product(
        range(5, 12), (1, 2, 3, 5), (1, 2, 3), (0, 1, 2), (1, 2)
    ):
        if n + 2 * p < d * (k - 1) + 1:
            with pytest.raises(ValueError, match="kernel spans"):
                conv_output_size(n, k, s, p, d)
            continue
        layer = torch.nn.Conv1d(1, 1, k, stride=s, padding=p, dilation=d)
        assert conv_output_size(n, k, s, p, d) == layer(torch.zeros(1, 1, n)).shape[-1]
        pool = torch.nn.MaxPool1d(k, stride=s, padding=min(p, k // 2), dilation=d)
        assert conv_output_size(n, k, s, min(p, k // 2), d) == pool(torch.zeros(1, 1, n)).shape[-1]


def test_conv2d_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"weight must have shape \(C_out, 3"):
        conv2d(np.zeros((1, 3, 5, 5)), np.zeros((2, 1, 3, 3)))
    with pytest.raises(ValueError, match="x must have shape"):
        conv2d(np.zeros((3, 5, 5)), np.zeros((2, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"bias must have shape \(2,\)"):
        conv2d(np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3, 3)), bias=np.zeros(3))
