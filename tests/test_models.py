import pytest
import torch
from torch import nn

from companion.models import NeuralNetwork


def test_layout_is_linear_relu_dropout_per_hidden_layer():
    net = NeuralNetwork(10, [64, 32], 3, dropout_rate=0.2)
    kinds = [type(m) for m in net.network]
    assert kinds == [nn.Linear, nn.ReLU, nn.Dropout] * 2 + [nn.Linear]
    relus = [m for m in net.modules() if isinstance(m, nn.ReLU)]
    assert len({id(m) for m in relus}) == 2, "every activation must be its own module"
    assert not any(m.inplace for m in relus)
    assert net.network[2].p == 0.2


def test_outputs_logits_and_flattens_images():
    net = NeuralNetwork(64, [16], 10).eval()
    images = torch.rand(5, 1, 8, 8)
    logits = net(images)
    assert logits.shape == (5, 10)
    assert torch.equal(logits, net(images.flatten(1)))
    assert not torch.allclose(logits.softmax(1).sum(1), logits.sum(1))  # not probabilities


def test_dropout_only_in_training_mode():
    torch.manual_seed(0)
    net = NeuralNetwork(10, [256], 3, dropout_rate=0.5)
    x = torch.randn(4, 10)
    net.train()
    assert not torch.equal(net(x), net(x))
    net.eval()
    assert torch.equal(net(x), net(x))


def test_no_hidden_layers_is_a_linear_model():
    net = NeuralNetwork(4, [], 2)
    assert [type(m) for m in net.network] == [nn.Linear]


def test_wrong_input_width_is_named():
    net = NeuralNetwork(10, [8], 3)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 10\).*got \(4, 9\)"):
        net(torch.randn(4, 9))
    with pytest.raises(ValueError, match="x must have shape"):
        net(torch.randn(10))


@pytest.mark.parametrize(
    "args, kwargs, error, name",
    [
        ((0, [8], 3), {}, ValueError, "input_size"),
        ((10, [8, -1], 3), {}, ValueError, "hidden_sizes"),
        ((10, 8, 3), {}, TypeError, "hidden_sizes"),
        ((10, [8], 0), {}, ValueError, "output_size"),
        ((10, [8], 3), {"dropout_rate": 1.0}, ValueError, "dropout_rate"),
        ((10, [8], 3), {"dropout_rate": "0.2"}, TypeError, "dropout_rate"),
    ],
)
def test_bad_arguments_are_named(args, kwargs, error, name):
    with pytest.raises(error, match=name):
        NeuralNetwork(*args, **kwargs)
