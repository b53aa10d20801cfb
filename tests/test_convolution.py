import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from companion.convolution import (
    conv2d,
    conv_output_size,
    receptive_field,
    shift_equivariance_gap,
)


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


def gradient_support(layers, size=40, n=32):
    """Input pixels on which the centre unit of ``layers``' output depends, found by autograd."""
    torch.manual_seed(0)
    x = torch.randn(n, 1, size, size, requires_grad=True)
    out = layers(x)
    i, j = out.shape[-2] // 2, out.shape[-1] // 2
    out[:, :, i, j].sum().backward()
    return (x.grad != 0).any(dim=0)[0]


@pytest.mark.parametrize(
    "spec",
    [
        [("conv", 3, 1)],
        [("conv", 5, 1), ("conv", 3, 1)],
        [("conv", 3, 1), ("pool", 2, 2), ("conv", 3, 1), ("pool", 2, 2), ("conv", 3, 1)],
        [("conv", 3, 2), ("conv", 3, 2), ("conv", 3, 1)],
        [("conv", 3, 1), ("pool", 3, 3), ("conv", 2, 1)],
    ],
)
def test_receptive_field_is_the_support_of_the_gradient(spec):
    torch.manual_seed(0)
    layers = []
    for kind, k, s in spec:  # 16 channels, so no pixel hides behind one dead unit
        if kind == "conv":
            layers += [nn.Conv2d(1 if not layers else 16, 16, k, stride=s), nn.ReLU()]
        else:
            layers.append(nn.MaxPool2d(k, s))
    support = gradient_support(nn.Sequential(*layers))
    rows, cols = support.any(dim=1).nonzero(), support.any(dim=0).nonzero()
    side = receptive_field([k for _, k, _ in spec], [s for _, _, s in spec])
    assert support.sum() == side**2
    assert rows.max() - rows.min() + 1 == side == cols.max() - cols.min() + 1
    if any(s > 1 for _, _, s in spec[:-1]):  # negative control: forgetting the strides
        assert receptive_field([k for _, k, _ in spec]) != side


def test_receptive_field_of_a_fully_connected_layer_is_the_whole_image():
    # The control the gradient measurement must be able to see: no locality at all.
    dense = nn.Sequential(nn.Flatten(), nn.Linear(40 * 40, 1), nn.Unflatten(1, (1, 1, 1)))
    assert gradient_support(dense).sum() == 40 * 40


def test_receptive_field_rejects_bad_arguments():
    with pytest.raises(TypeError, match="kernels must be a sequence"):
        receptive_field(3)
    with pytest.raises(ValueError, match="strides has 1 entries but kernels has 2"):
        receptive_field([3, 3], [1])
    with pytest.raises(ValueError, match="kernels entry"):
        receptive_field([3, 0])
    assert receptive_field([]) == 1


def test_convolution_is_shift_equivariant_a_dense_layer_is_not():
    torch.manual_seed(0)
    x = torch.randn(4, 2, 24, 24)
    conv = nn.Conv2d(2, 3, 5, padding=2)
    assert shift_equivariance_gap(conv, x, (3, -4), margin=6) < 1e-6
    # Negative controls: too small a margin keeps the border, a dense layer has no symmetry.
    assert shift_equivariance_gap(conv, x, (3, -4), margin=0) > 0.1
    dense = nn.Linear(2 * 24 * 24, 24 * 24)
    dense_image = lambda t: dense(t.flatten(1)).view(-1, 1, 24, 24)  # noqa: E731
    assert shift_equivariance_gap(dense_image, x, (3, -4), margin=6) > 0.3


def test_pooling_is_equivariant_only_to_shifts_by_its_stride():
    torch.manual_seed(0)
    x = torch.randn(4, 1, 24, 24)
    pool = nn.MaxPool2d(2)
    assert shift_equivariance_gap(pool, x, (2, 4), out_shift=(1, 2), margin=3) == 0.0
    for moved in [(0, 0), (0, 1)]:  # a one-pixel shift matches neither
        assert shift_equivariance_gap(pool, x, (0, 1), out_shift=moved, margin=3) > 0.3


def test_shift_equivariance_gap_rejects_bad_arguments():
    x = torch.zeros(1, 1, 8, 8)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        shift_equivariance_gap(nn.Identity(), np.zeros((1, 1, 8, 8)), (1, 1))
    with pytest.raises(TypeError, match="shift must be a pair of ints"):
        shift_equivariance_gap(nn.Identity(), x, 1)
    with pytest.raises(TypeError, match="out_shift must be a pair of ints"):
        shift_equivariance_gap(nn.Identity(), x, (1, 1), out_shift=(0.5, 0))
    with pytest.raises(ValueError, match="margin 4 leaves nothing"):
        shift_equivariance_gap(nn.Identity(), x, (1, 1), margin=4)
