import pytest
import torch
from torch import nn

from companion.models import ConvolutionalNN, NeuralNetwork, train_seed_mlp, train_shapes_cnn


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


class OriginalCNN(nn.Module):
    """The notes' ConvolutionalNN, re-created minimally: a hard-coded 128*4*4 flatten."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(128 * 4 * 4, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = self.pool(torch.relu(self.conv3(x)))
        return self.fc1(x.view(-1, 128 * 4 * 4))


def test_original_cnn_only_takes_32x32_pitfall():
    original = OriginalCNN()
    assert original(torch.zeros(2, 1, 32, 32)).shape == (2, 10)
    with pytest.raises(RuntimeError, match="invalid for input of size"):
        original(torch.zeros(2, 1, 28, 28))
    # Worse: 16 images of 28x28 hold 16*128*3*3 = 9*2048 numbers, so view(-1, 2048) silently
    # makes 9 "samples" out of 16 images.
    assert original(torch.zeros(16, 1, 28, 28)).shape == (9, 10)


@pytest.mark.parametrize("size", [8, 28, 32, 64])
def test_cnn_accepts_any_size_from_8(size):
    net = ConvolutionalNN(1, 10).eval()
    assert net(torch.zeros(16, 1, size, size)).shape == (16, 10)
    assert net(torch.zeros(2, 1, size, size + 5)).shape == (2, 10)


def test_cnn_at_32x32_is_the_original_layout():
    net = ConvolutionalNN(3, 10)
    assert net.fc1.in_features == 128 * 4 * 4
    assert net.features(torch.zeros(1, 3, 32, 32)).shape == (1, 128, 4, 4)
    relus = [m for m in net.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 5 and len({id(m) for m in relus}) == 5


def test_cnn_rejects_bad_images():
    net = ConvolutionalNN(1, 3)
    with pytest.raises(ValueError, match="at least 8x8"):
        net(torch.zeros(1, 1, 7, 9))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 1, H, W\)"):
        net(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="num_classes"):
        ConvolutionalNN(1, 0)


def test_shapes_cnn_retrains_bit_for_bit():
    first, _ = train_shapes_cnn(seed=0, n=600, size=16, epochs=3)
    again, _ = train_shapes_cnn(seed=0, n=600, size=16, epochs=3)
    assert first.history == again.history
    for a, b in zip(first.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_shapes_cnn_at_full_size_clears_95_percent():
    trainer, (images, labels, boxes) = train_shapes_cnn()
    assert images.shape == (3000, 1, 32, 32) and boxes.shape == (3000, 4)
    assert trainer.history["val_acc"][-1] >= 0.95


def test_train_seed_mlp_retrains_bit_for_bit_and_reaches_98_percent():
    first, again = train_seed_mlp(seed=0), train_seed_mlp(seed=0)
    assert first.history == again.history
    for (key, a), b in zip(
        first.model.state_dict().items(), again.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), key
    assert first.history["val_acc"][-1] >= 0.98
    assert first.history["lr"][0] == pytest.approx(1e-2) and len(first.history["lr"]) == 100
    other = train_seed_mlp(seed=1, epochs=3)
    assert len(other.history["val_acc"]) == 3 and other.history != first.history
    with pytest.raises(ValueError, match="epochs"):
        train_seed_mlp(epochs=0)
