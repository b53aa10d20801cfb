import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from companion.data import make_seed_dataset
from companion.interpret import (
    GradCAM,
    _ig_rule,
    additivity_error,
    completeness_error,
    gaussian_blur,
    integrated_gradients,
    pointing_game,
    randomized_copy,
    shap_values,
    spearman,
)
from companion.models import ConvolutionalNN, NeuralNetwork, train_shapes_cnn


def small_cnn(seed=0, size_channels=(8, 8, 8)):
    torch.manual_seed(seed)
    return ConvolutionalNN(1, 3, channels=size_channels, hidden=(16, 16), input_size=16).eval()


def images(n=4, size=16, seed=0):
    return torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def trained_mlp():
    torch.manual_seed(0)
    X, y = make_seed_dataset(1000)
    net = NeuralNetwork(10, [32, 16], 3)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(200):  # full batch: 0.2 s
        opt.zero_grad()
        F.cross_entropy(net(X[:800]), y[:800]).backward()
        opt.step()
    net.eval()
    return net, X[800:], y[800:]


@pytest.fixture(scope="module")
def trained_cnn():
    trainer, (imgs, labels, boxes) = train_shapes_cnn(n=600, size=16, epochs=8)
    model = trainer.model.eval()
    return model, imgs[480:], labels[480:], boxes[480:]


# --------------------------------------------------------------------------- notes' code
class NotesGradCAM:
    """The original notes' Grad-CAM, minus nothing: the defects are the point."""

    def __init__(self, model, target_layer):
        self.model = model
        self.gradients = None
        self.activations = None
        target_layer.register_forward_hook(self.save_activation)
        target_layer.register_backward_hook(self.save_gradient)

    def save_activation(self, module, input, output):
        self.activations = output.detach()

    def save_gradient(self, module, grad_input, grad_output):
        self.gradients = grad_output[0].detach()

    def generate_cam(self, input_image, class_idx=None):
        output = self.model(input_image)
        if class_idx is None:
            class_idx = output.argmax(dim=1)
        self.model.zero_grad()
        output[0, class_idx].backward()
        pooled = torch.mean(self.gradients, dim=[0, 2, 3])
        for i in range(self.activations.shape[1]):
            self.activations[:, i, :, :] *= pooled[i]
        heatmap = torch.mean(self.activations, dim=1).squeeze()
        heatmap = F.relu(heatmap)
        heatmap /= torch.max(heatmap)
        return heatmap


def quiet_notes_gradcam(model, layer):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return NotesGradCAM(model, layer)


def notes_generate(cam, x, class_idx):
    with warnings.catch_warnings():  # the deprecated hook warns on every forward pass
        warnings.simplefilter("ignore", FutureWarning)
        return cam.generate_cam(x, class_idx)


# --------------------------------------------------------------------------- Grad-CAM pitfalls
def test_pitfall_register_backward_hook_warns_and_its_grad_input_is_not_the_modules():
    torch.manual_seed(0)
    block = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    seen = {}
    block.register_backward_hook(lambda m, gi, go: seen.update(gi=gi, go=go))
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    with pytest.warns(FutureWarning, match="non-full backward hook"):
        out = block(x)
    out.retain_grad()
    (out * torch.randn_like(out)).sum().backward()
    # grad_output happens to be right (the hook sits on the last node), but grad_input is that
    # of the max-pool alone: shape (2, 4, 8, 8), not the block's input gradient (2, 1, 8, 8)
    assert torch.equal(seen["go"][0], out.grad)
    assert seen["gi"][0].shape != x.grad.shape
    # ours uses Tensor.register_hook: no warning, and the gradient of the layer output is exact
    model = small_cnn()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with GradCAM(model, model.relu3) as cam:
            cam(images(2))
    assert cam.gradients.shape == cam.activations.shape


def relu3_output(model, x):
    """The CNN's relu3 output, computed as ConvolutionalNN.features does (channels last)."""
    with torch.no_grad():
        h = model.conv1(x).contiguous(memory_format=torch.channels_last)
        h = model.pool1(model.relu1(h))
        h = model.pool2(model.relu2(model.conv2(h)))
        return model.relu3(model.conv3(h))


def test_pitfall_inplace_scaling_changes_stored_activations_ours_is_repeatable():
    model, x = small_cnn(), images(1)
    true_acts = relu3_output(model, x)
    notes = quiet_notes_gradcam(model, model.relu3)
    notes_generate(notes, x, 0)
    assert not torch.allclose(notes.activations, true_acts)  # overwritten by alpha_k * A_k

    with GradCAM(model, model.relu3) as cam:
        a = cam(x, 0)
        acts = cam.activations.clone()
        b = cam(x, 0)
        assert torch.equal(a, b)
        assert torch.equal(acts, cam.activations)  # never scaled in place
        assert torch.allclose(cam.activations, true_acts)


def test_pitfall_first_image_only_gets_a_gradient_ours_treats_each_image():
    model, x = small_cnn(), images(2, seed=3)
    notes = quiet_notes_gradcam(model, model.relu3)
    notes_generate(notes, x, 1)
    assert torch.all(notes.gradients[1] == 0)  # the second image got no gradient at all
    assert notes.gradients[0].abs().sum() > 0

    with GradCAM(model, model.relu3) as cam:
        both = cam(x, 1)
        assert cam.gradients[1].abs().sum() > 0
        for i in range(2):
            assert torch.allclose(both[i], cam(x[i : i + 1], 1)[0], atol=1e-6)
        per_image = cam(x, [0, 2])
        assert torch.allclose(per_image[1], cam(x[1:], 2)[0], atol=1e-6)
        predicted = model(x).argmax(1)
        assert torch.allclose(cam(x), cam(x, predicted))


def dead_layer_cnn():
    model = small_cnn()
    with torch.no_grad():  # conv3 outputs -1 everywhere: relu3 is zero, so is every map
        model.conv3.weight.zero_()
        model.conv3.bias.fill_(-1.0)
    return model


def test_pitfall_all_zero_map_divided_by_its_max_is_nan_ours_is_zero():
    model, x = dead_layer_cnn(), images(2)
    notes = quiet_notes_gradcam(model, model.relu3)
    assert torch.isnan(notes_generate(notes, x[:1], 0)).all()
    with GradCAM(model, model.relu3) as cam:
        maps = cam(x)
    assert maps.shape == (2, 16, 16) and maps.dtype == torch.float32
    assert torch.equal(maps, torch.zeros_like(maps))


def test_pitfall_notes_hooks_accumulate_ours_are_removed():
    model, x = small_cnn(), images(1)
    for _ in range(3):
        quiet_notes_gradcam(model, model.relu3)
    assert len(model.relu3._forward_hooks) == 3 and len(model.relu3._backward_hooks) == 3

    model = small_cnn()
    cam = GradCAM(model, model.relu3)  # no with, no remove(): still nothing left behind
    cam(x)
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    with pytest.raises(ValueError, match="target must"):
        cam(x, 7)  # an error inside the call removes the hook too
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    with GradCAM(model, model.relu3) as cam:
        cam(x)
        assert len(model.relu3._forward_hooks) == 0  # registered inside each call only
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    assert all(len(m._backward_hooks) == 0 for m in model.modules())
    cam2 = GradCAM(model, model.conv2)
    cam2.remove()
    cam2.remove()  # idempotent
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    with pytest.raises(ValueError, match="removed"):
        cam2(x)


# --------------------------------------------------------------------------- Grad-CAM properties
def test_gradcam_maps_in_unit_interval_with_input_size_and_max_one():
    model = small_cnn()
    with GradCAM(model, model.relu2) as cam:
        maps = cam(images(5, size=32))
    assert maps.shape == (5, 32, 32) and maps.device.type == "cpu"
    assert maps.min() >= 0 and maps.max() <= 1
    peaks = maps.amax(dim=(1, 2))
    assert torch.all((peaks == 1) | (peaks == 0))


def test_gradcam_restores_training_mode_requires_grad_and_leaves_no_param_grads():
    model = small_cnn().train()
    model.fc1.weight.requires_grad_(False)
    with GradCAM(model, model.relu3) as cam:
        cam(images(3))
    assert model.training and all(m.training for m in model.modules())
    assert model.fc1.weight.requires_grad is False
    assert all(p.requires_grad for n, p in model.named_parameters() if n != "fc1.weight")
    assert all(p.grad is None for p in model.parameters())


def test_gradcam_is_deterministic_in_train_mode_because_dropout_is_off():
    model = small_cnn().train()
    x = images(3)
    with GradCAM(model, model.relu3) as cam:
        assert torch.equal(cam(x, 0), cam(x, 0))


def test_gradcam_on_trained_cnn_points_at_shapes_more_than_chance(trained_cnn):
    model, x, labels, boxes = trained_cnn
    with GradCAM(model, model.relu2) as cam:
        maps = cam(x, labels)
    # chance is the fraction of the image a box covers (about 14 % of a 16x16 image); over seeds
    # 0-2 this weak 16x16 model scores between 0.49 and 0.79, so twice chance is the bar
    sides = (boxes[:, 2:] - boxes[:, :2] + 1).float()
    chance = (sides[:, 0] * sides[:, 1]).mean().item() / (16 * 16)
    assert pointing_game(maps, boxes) > 2 * chance


def test_gradcam_rejects_foreign_layer_bad_target_and_non_batch_x():
    model = small_cnn()
    with pytest.raises(ValueError, match="target_layer"):
        GradCAM(model, nn.ReLU())
    with GradCAM(model, model.relu3) as cam:
        with pytest.raises(ValueError, match="target must"):
            cam(images(2), 3)
        with pytest.raises(ValueError, match="target must"):
            cam(images(2), [0, -1])
        with pytest.raises(ValueError, match="target must"):
            cam(images(2), [0, 1, 2])
        with pytest.raises(ValueError, match="x must"):
            cam(images(1)[0])
        with pytest.raises(TypeError, match="x must"):
            cam(np.zeros((1, 1, 16, 16)))
    fc_cam = GradCAM(model, model.fc1)
    with pytest.raises(ValueError, match="target_layer"):
        fc_cam(images(1))
    fc_cam.remove()


# --------------------------------------------------------------------------- IG pitfalls
def loop_ig(model, x, target, baseline, method, n_steps):
    """One forward + backward pass per step and per input, as the notes do (but correct)."""
    alphas, weights = _ig_rule(n_steps, method)
    out = torch.zeros_like(x)
    for i in range(x.shape[0]):
        grad_sum = torch.zeros_like(x[i : i + 1])
        for a, w in zip(alphas, weights, strict=True):
            point = baseline[i : i + 1] + float(a) * (x[i : i + 1] - baseline[i : i + 1])
            point = point.detach().requires_grad_(True)
            model(point)[0, target[i]].backward()
            grad_sum += float(w) * point.grad
        out[i] = ((x[i : i + 1] - baseline[i : i + 1]) * grad_sum)[0]
    return out


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid", "riemann_middle"])
def test_pitfall_per_step_loop_equals_batched_ig(method):
    torch.manual_seed(0)
    model = NeuralNetwork(10, [16, 8], 3).eval()
    x = torch.randn(3, 10)
    base = torch.randn(3, 10) * 0.1
    target = [0, 2, 1]
    ref = loop_ig(model, x, target, base, method, 20)
    ours = integrated_gradients(model, x, target, base, n_steps=20, method=method, batch_size=7)
    assert torch.allclose(ours, ref, atol=1e-5)
    all_at_once = integrated_gradients(model, x, target, base, n_steps=20, method=method)
    assert torch.allclose(all_at_once, ours, atol=1e-6)


def notes_ig(model, input_tensor, target_class, steps=50):
    baseline = torch.zeros_like(input_tensor)
    grads = []
    for alpha in torch.linspace(0, 1, steps):
        point = (baseline + alpha * (input_tensor - baseline)).requires_grad_()
        output = model(point)
        model.zero_grad()
        output[0, target_class].backward()
        grads.append(point.grad.detach())
    return (input_tensor - baseline) * torch.stack(grads).mean(dim=0)


def test_pitfall_notes_ig_on_a_batch_attributes_zero_to_all_but_the_first_input():
    torch.manual_seed(0)
    model = NeuralNetwork(10, [16, 8], 3).eval()
    x = torch.randn(4, 10)
    notes = notes_ig(model, x, 1)
    assert torch.all(notes[1:] == 0)  # the other inputs never reach output[0, 1]
    ours = integrated_gradients(model, x, 1)
    assert torch.all(ours[1:].abs().sum(1) > 0)
    for i in range(4):
        single = integrated_gradients(model, x[i : i + 1], 1)
        assert torch.allclose(ours[i], single[0], atol=1e-6)
    assert completeness_error(model, x, 1, ours) < 1e-2
    assert completeness_error(model, x, 1, notes) > 0.5


def test_pitfall_notes_blur_baseline_does_not_exist_ours_blurs():
    class NotesIG:
        def generate_baseline(self, input_tensor, baseline_type="zero"):
            if baseline_type == "blur":
                return self.apply_blur(input_tensor)

    with pytest.raises(AttributeError, match="apply_blur"):
        NotesIG().generate_baseline(images(1), "blur")

    const = torch.full((2, 1, 12, 12), 0.7)
    assert torch.allclose(gaussian_blur(const, 2.0), const, atol=1e-6)
    x = images(3, size=16)
    blurred = gaussian_blur(x, 2.0)
    assert blurred.shape == x.shape and blurred.dtype == x.dtype
    assert blurred.var() < 0.2 * x.var()
    assert torch.allclose(blurred.mean(), x.mean(), atol=0.05)
    assert gaussian_blur(x, 0.5).var() > blurred.var()  # more blur, less variance
    impulse = torch.zeros(1, 1, 15, 15)
    impulse[0, 0, 7, 7] = 1
    spread = gaussian_blur(impulse, 1.0)[0, 0]
    assert torch.allclose(spread, spread.T) and spread.sum() == pytest.approx(1.0, abs=1e-6)
    model = small_cnn()
    attr = integrated_gradients(model, x, 0, baseline="blur", blur_sigma=2.0)
    assert completeness_error(model, x, 0, attr, baseline=blurred) < 0.05


# --------------------------------------------------------------------------- IG properties
@pytest.mark.parametrize("n", [2, 3, 50])
@pytest.mark.parametrize(
    "method",
    ["gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle"],
)
def test_ig_rule_weights_sum_to_one_and_nodes_lie_in_unit_interval(method, n):
    alphas, weights = _ig_rule(n, method)
    assert len(alphas) == len(weights) == n
    assert weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert alphas.min() >= 0 and alphas.max() <= 1


def test_ig_trapezoid_weights_are_the_textbook_rule():
    alphas, weights = _ig_rule(5, "riemann_trapezoid")
    assert alphas.tolist() == [0, 0.25, 0.5, 0.75, 1]
    assert weights.tolist() == pytest.approx([1 / 8, 1 / 4, 1 / 4, 1 / 4, 1 / 8])


def test_ig_gausslegendre_error_decreases_with_n_steps_on_a_smooth_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    with torch.no_grad():
        model[0].weight.mul_(3)
    x = torch.randn(20, 6, dtype=torch.float64)
    errors = [
        completeness_error(model, x, 0, integrated_gradients(model, x, 0, n_steps=n))
        for n in (1, 2, 4, 8)
    ]
    assert all(b < a for a, b in zip(errors, errors[1:], strict=False))
    assert errors[-1] < 1e-5


def test_ig_is_complete_on_a_linear_model_with_one_step():
    torch.manual_seed(0)
    model = nn.Linear(5, 2).double()
    x, base = torch.randn(4, 5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    attr = integrated_gradients(model, x, [0, 1, 1, 0], base, n_steps=1)
    expected = (x - base) * model.weight[[0, 1, 1, 0]].detach()
    assert torch.allclose(attr, expected)
    assert completeness_error(model, x, [0, 1, 1, 0], attr, base) < 1e-12


def test_ig_completeness_within_one_percent_on_trained_mlp(trained_mlp):
    net, X, y = trained_mlp
    assert (net(X).argmax(1) == y).float().mean() > 0.9
    attr = integrated_gradients(net, X[:200], y[:200], n_steps=50)
    assert attr.shape == X[:200].shape and attr.dtype == torch.float32
    assert completeness_error(net, X[:200], y[:200], attr) <= 0.01


def test_ig_completeness_within_one_percent_on_trained_cnn(trained_cnn):
    model, x, labels, _ = trained_cnn
    assert (model(x).argmax(1) == labels).float().mean() > 0.5  # chance: 1/3
    attr = integrated_gradients(model, x, labels, n_steps=50, batch_size=2000)
    assert completeness_error(model, x, labels, attr) <= 0.01


def test_ig_restores_training_mode_and_leaves_no_param_grads():
    model = small_cnn().train()
    attr = integrated_gradients(model, images(2), 1, n_steps=5)
    assert torch.equal(attr, integrated_gradients(model, images(2), 1, n_steps=5))  # no dropout
    assert model.training and all(p.grad is None for p in model.parameters())


def test_ig_rejects_bad_baseline_target_method_and_n_steps():
    model = small_cnn()
    x = images(2)
    with pytest.raises(ValueError, match="baseline"):
        integrated_gradients(model, x, 0, baseline=torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="baseline"):
        integrated_gradients(model, x, 0, baseline="random")
    with pytest.raises(ValueError, match="target must"):
        integrated_gradients(model, x, 3)
    with pytest.raises(ValueError, match="target must"):
        integrated_gradients(model, x, [0, 1, 2])
    with pytest.raises(ValueError, match="method"):
        integrated_gradients(model, x, 0, method="simpson")
    with pytest.raises(ValueError, match="n_steps"):
        integrated_gradients(model, x, 0, n_steps=0)
    with pytest.raises(ValueError, match="n_steps"):
        integrated_gradients(model, x, 0, n_steps=1, method="riemann_trapezoid")
    with pytest.raises(ValueError, match="attributions"):
        completeness_error(model, x, 0, torch.zeros(2, 16))


# --------------------------------------------------------------------------- SHAP
def test_shap_additivity_on_mlp():
    torch.manual_seed(0)
    model = NeuralNetwork(10, [32, 16], 3).train()
    background, x = torch.randn(30, 10), torch.randn(6, 10)
    values, expected = shap_values(model, background, x)
    assert model.training  # restored
    assert values.shape == (6, 10, 3) and expected.shape == (3,)
    assert additivity_error(model, x, values, expected) <= 1e-4
    with torch.no_grad():
        assert torch.allclose(expected, model.eval()(background).mean(0), atol=1e-5)


def test_shap_additivity_on_cnn():
    model = small_cnn()
    values, expected = shap_values(model, images(10, seed=1), images(3, seed=2))
    assert values.shape == (3, 1, 16, 16, 3) and expected.shape == (3,)
    assert additivity_error(model, images(3, seed=2), values, expected) <= 1e-4


class ReusedReLU(nn.Module):
    """Two hidden layers sharing ONE nn.ReLU module: shap's hooks see it twice."""

    def __init__(self, hidden=(32, 16)):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(10, hidden[0]), nn.Linear(hidden[0], hidden[1])
        self.fc3 = nn.Linear(hidden[1], 3)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.fc3(self.relu(self.fc2(self.relu(self.fc1(x)))))


@pytest.mark.parametrize(
    ("hidden", "error", "match"),
    [
        ((16, 16), AssertionError, "do not sum up"),  # silently wrong multipliers: shap's check
        ((32, 16), RuntimeError, "size of tensor"),  # the stored input of the 2nd use: a crash
    ],
)
def test_pitfall_reused_relu_breaks_shap(hidden, error, match):
    torch.manual_seed(0)
    model = ReusedReLU(hidden).eval()
    background, x = torch.randn(30, 10), torch.randn(6, 10)
    with pytest.raises(error, match=match):
        shap_values(model, background, x)
    # the same weights with one ReLU module per activation are explained exactly
    fixed = NeuralNetwork(10, list(hidden), 3).eval()
    fixed.network[0].load_state_dict(model.fc1.state_dict())
    fixed.network[3].load_state_dict(model.fc2.state_dict())
    fixed.network[6].load_state_dict(model.fc3.state_dict())
    assert torch.allclose(fixed(x), model(x))
    values, expected = shap_values(fixed, background, x)
    assert additivity_error(fixed, x, values, expected) <= 1e-4


def test_shap_rejects_mismatched_background():
    with pytest.raises(ValueError, match="background"):
        shap_values(NeuralNetwork(10, [4], 2), torch.randn(5, 9), torch.randn(2, 10))


# --------------------------------------------------------------------------- sanity checks
def test_pointing_game_counts_argmax_inside_inclusive_box():
    maps = torch.zeros(3, 8, 8)
    maps[0, 2, 5] = 1  # on the box's corner: inside (inclusive)
    maps[1, 7, 7] = 1  # outside
    maps[2, 3, 3] = 1  # inside
    boxes = torch.tensor([[0, 0, 2, 5], [0, 0, 6, 6], [3, 3, 3, 3]])
    assert pointing_game(maps, boxes) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="boxes"):
        pointing_game(maps, boxes[:2])
    with pytest.raises(ValueError, match="heatmaps"):
        pointing_game(maps[0], boxes[:1])


def test_randomized_copy_changes_every_layer_and_leaves_original_and_rng_alone():
    model = small_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.random.get_rng_state()
    clone = randomized_copy(model, seed=1)
    assert torch.equal(state, torch.random.get_rng_state())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
        if k.endswith("weight"):
            assert not torch.equal(v, clone.state_dict()[k])
    again = randomized_copy(model, seed=1)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in clone.state_dict().items())


def test_spearman_is_rank_correlation():
    a = torch.arange(16.0).reshape(4, 4)
    assert spearman(a, a**3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert np.isnan(spearman(a, torch.ones(4, 4)))
    with pytest.raises(ValueError, match="same size"):
        spearman(a, a[:2])


def test_gradcam_map_changes_under_model_randomisation(trained_cnn):
    model, x, labels, _ = trained_cnn
    with GradCAM(model, model.relu2) as cam:
        maps = cam(x[:8], labels[:8])
    rand = randomized_copy(model, seed=0)
    with GradCAM(rand, rand.relu2) as cam:
        rand_maps = cam(x[:8], labels[:8])
    rhos = [spearman(a, b) for a, b in zip(maps, rand_maps, strict=True)]
    assert np.nanmean(rhos) < 0.9


# --------------------------------------------------------------------------- chapter 8 review
def test_pitfall_pointing_game_brightest_pixel_wins_on_plain_shapes_fails_with_distractors():
    from companion.data import make_shapes

    plain, labels, boxes = make_shapes(200, size=32, seed=4)
    assert pointing_game(plain[:, 0], boxes) == 1.0  # a brightness detector "explains" perfectly
    default = make_shapes(200, size=32, seed=4, distractors=0)
    assert all(torch.equal(a, b) for a, b in zip(default, (plain, labels, boxes), strict=True))
    cluttered, labels2, boxes2 = make_shapes(200, size=32, seed=4, distractors=2)
    assert torch.equal(labels2, labels) and torch.equal(boxes2, boxes)
    changed = (cluttered != plain)[:, 0]
    for k, (r0, c0, r1, c1) in enumerate(boxes.tolist()):
        assert not changed[k, r0 : r1 + 1, c0 : c1 + 1].any()  # the box is untouched
        assert 4 <= int(changed[k].sum()) <= 18  # two specks of 2x2 or 3x3 (they may overlap)
    assert pointing_game(cluttered[:, 0], boxes) <= 0.05  # noise may lift a shape pixel higher
    with pytest.raises(ValueError, match="distractors"):
        make_shapes(5, distractors=-1)


class FunctionalReLU(nn.Module):
    """The notes' style: activations by ``F.relu`` inside ``forward``, invisible to shap."""

    def __init__(self, hidden=(16, 16)):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(10, hidden[0]), nn.Linear(hidden[0], hidden[1])
        self.fc3 = nn.Linear(hidden[1], 3)

    def forward(self, x):
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def raw_shap(model, background, x):
    """shap's DeepExplainer with its additivity check switched off: the silent case."""
    import shap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.DeepExplainer(model, background)
        values = explainer.shap_values(x, check_additivity=False)
    values = torch.as_tensor(np.asarray(values), dtype=x.dtype)
    return values, torch.as_tensor(np.atleast_1d(explainer.expected_value), dtype=x.dtype)


@pytest.mark.parametrize("model_class", [FunctionalReLU, ReusedReLU])
def test_pitfall_shap_fails_loudly_unless_its_additivity_check_is_off(model_class):
    torch.manual_seed(0)
    model = model_class((16, 16)).eval()
    background, x = torch.randn(30, 10), torch.randn(6, 10)
    with pytest.raises(AssertionError, match="do not sum up"):
        shap_values(model, background, x)
    values, expected = raw_shap(model, background, x)  # no error: silently wrong numbers
    assert additivity_error(model, x, values, expected) > 1e-2


class NotesCNN(nn.Module):
    """The notes' CNN, scaled down: one shared ``self.pool`` and ``F.relu`` everywhere."""

    def __init__(self, num_classes=3):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(8 * 4 * 4, 16)
        self.fc2 = nn.Linear(16, num_classes)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = self.dropout(F.relu(self.fc1(x.view(-1, 8 * 4 * 4))))
        return self.fc2(x)


def test_pitfall_notes_cnn_shared_pool_and_functional_relu_break_shap():
    torch.manual_seed(0)
    model = NotesCNN().eval()
    with pytest.raises((AssertionError, RuntimeError)):
        shap_values(model, images(10, seed=1), images(3, seed=2))
    ours = small_cnn()  # one module per activation and per pooling
    values, expected = shap_values(ours, images(10, seed=1), images(3, seed=2))
    assert additivity_error(ours, images(3, seed=2), values, expected) <= 1e-4


def test_pitfall_notes_gradcam_class_idx_none_with_a_batch_crashes():
    model, x = small_cnn(), images(3)
    notes = quiet_notes_gradcam(model, model.relu3)
    with pytest.raises(RuntimeError, match="scalar outputs"):
        notes_generate(notes, x, None)  # output[0, argmax of 3 images]: three scores
    with GradCAM(model, model.relu3) as cam:
        assert cam(x).shape == (3, 16, 16)


def test_pitfall_notes_ig_quadrature_overweights_the_endpoints():
    # the notes average the gradient over torch.linspace(0, 1, m): weight 1/m at both ends,
    # where the trapezoid rule puts 1/(2(m-1)); for f(a) = a^2 the bias is 1/(6(m-1))
    for m in (10, 50):
        notes_rule = float(torch.linspace(0, 1, m).pow(2).mean())
        assert notes_rule - 1 / 3 == pytest.approx(1 / (6 * (m - 1)), rel=1e-4)
        alphas, weights = _ig_rule(m, "riemann_trapezoid")
        trapezoid = float((weights * alphas**2).sum())
        assert trapezoid - 1 / 3 == pytest.approx(1 / (6 * (m - 1) ** 2), rel=1e-6)

    # on a model: F(x) = sum(x^3) has gradient 3 x^2 a^2 along the path from zero
    class Cube(nn.Module):
        def forward(self, x):
            return x.pow(3).sum(1, keepdim=True)

    cube = Cube().eval()
    x = torch.rand(5, 4) + 0.5
    notes = notes_ig_batch(cube, x, 0, steps=20)
    ours = integrated_gradients(cube, x, 0, n_steps=20, method="riemann_trapezoid")
    assert completeness_error(cube, x, 0, notes) > 0.02
    assert completeness_error(cube, x, 0, ours) < 0.005


def notes_ig_batch(model, x, target, steps):
    """The notes' rule (mean over linspace), applied to each input separately."""
    return torch.cat([notes_ig(model, x[i : i + 1], target, steps) for i in range(len(x))])


def test_pitfall_notes_skip_model_eval_so_dropout_changes_every_map():
    torch.manual_seed(0)
    model = NeuralNetwork(10, [32, 16], 3, dropout_rate=0.5)
    model.train()  # the state a training loop leaves it in; the notes never call eval()
    x = torch.randn(1, 10)
    first, second = notes_ig(model, x, 1), notes_ig(model, x, 1)
    assert not torch.allclose(first, second)  # dropout masks differ between calls
    a, b = integrated_gradients(model, x, 1), integrated_gradients(model, x, 1)
    assert torch.equal(a, b) and model.training  # eval inside, the flag restored


def test_pitfall_per_step_loop_costs_one_forward_pass_per_step_and_input():
    torch.manual_seed(0)
    model = NeuralNetwork(10, [16, 8], 3).eval()
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    x, base = torch.randn(4, 10), torch.zeros(4, 10)
    loop_ig(model, x, [0, 1, 2, 0], base, "gausslegendre", 20)
    assert len(calls) == 4 * 20 and set(calls) == {1}  # 80 passes of one point each
    calls.clear()
    integrated_gradients(model, x, [0, 1, 2, 0], base, n_steps=20, batch_size=40)
    assert calls == [40, 40]  # the same 80 points in two passes


def test_ig_default_batch_size_bounds_the_points_per_forward_pass():
    from companion.interpret import IG_BATCH_SIZE

    torch.manual_seed(0)
    model = NeuralNetwork(10, [16, 8], 3).eval()
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    x = torch.randn(30, 10)
    bounded = integrated_gradients(model, x, 0, n_steps=50)  # 1500 points
    assert calls == [IG_BATCH_SIZE, 1500 - IG_BATCH_SIZE]
    one_pass = integrated_gradients(model, x, 0, n_steps=50, batch_size=1500)
    assert torch.allclose(bounded, one_pass, atol=1e-6)


def test_gradcam_class_idx_still_works_with_a_deprecation_warning():
    model, x = small_cnn(), images(2)
    cam = GradCAM(model, model.relu3)
    with pytest.warns(DeprecationWarning, match="use target"):
        old = cam(x, class_idx=[0, 2])
    assert torch.equal(old, cam(x, target=[0, 2]))
    assert torch.equal(old, cam(x, [0, 2]))
    with pytest.raises(TypeError, match="target only"):
        cam(x, 0, class_idx=0)
