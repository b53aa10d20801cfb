import hashlib
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision import models

from companion.data import few_shot_split, make_pasted_digits
from companion.transfer import (
    _ARCHITECTURES,
    BACKBONE_RECIPES,
    BN_POLICIES,
    FEW_SHOT_RECIPES,
    ProgressiveUnfreezingTrainer,
    SmallResNet,
    _replace_fc,
    book_backbone,
    build_transfer_model,
    count_trainable,
    freeze_backbone,
    freeze_batchnorm_stats,
    layer_groups,
    param_groups,
    set_frozen_batchnorm_eval,
    stats_frozen,
    train_few_shot,
    unfreeze,
    unfreeze_layers,
)

ARCHITECTURES = ("resnet18", "resnet50", "vgg16", "efficientnet_b0")


class TinyResNet(nn.Module):
    """ResNet's attribute names (conv1, bn1, layer1, layer2, fc) on a few hundred parameters."""

    def __init__(self, num_classes=3, width=8, weights=None):
        super().__init__()
        assert weights is None
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.layer2 = nn.Sequential(
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
        )
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.layer2(self.layer1(F.relu(self.bn1(self.conv1(x)))))
        return self.fc(x.mean(dim=(2, 3)))


def tiny(seed=0, num_classes=3):
    torch.manual_seed(seed)
    return TinyResNet(num_classes)


def separable_images(n, seed=0, size=8):
    """Noise images whose class k has channel k brighter: separable from pooled features."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 3, size, size, generator=g)
    x[torch.arange(n), y] += 1.5
    return x, y


def loaders(n_train=240, n_val=120, batch_size=32):
    x, y = separable_images(n_train + n_val)
    train = DataLoader(
        TensorDataset(x[:n_train], y[:n_train]),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    val = DataLoader(TensorDataset(x[n_train:], y[n_train:]), batch_size=batch_size)
    return train, val


def batchnorm_buffers(model):
    return {
        f"{name}.{b}": getattr(m, b).clone()
        for name, m in model.named_modules()
        if isinstance(m, nn.BatchNorm2d)
        for b in ("running_mean", "running_var", "num_batches_tracked")
    }


def sha256_of(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def group_names(model):
    return [g["name"] for g in param_groups(model, 1.0)]


@pytest.fixture(scope="module")
def zoo():
    torch.manual_seed(0)
    return {name: build_transfer_model(name, 5).eval() for name in ARCHITECTURES}


# --------------------------------------------------------------------------- building
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_architecture_maps_a_batch_to_num_classes_logits(zoo, name):
    with torch.no_grad():
        logits = zoo[name](torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 5)
    assert torch.isfinite(logits).all()


def test_head_is_a_new_linear_layer_with_num_classes_outputs(zoo):
    assert isinstance(zoo["resnet18"].fc, nn.Linear)
    assert (zoo["resnet18"].fc.in_features, zoo["resnet18"].fc.out_features) == (512, 5)
    assert (zoo["resnet50"].fc.in_features, zoo["resnet50"].fc.out_features) == (2048, 5)
    vgg_head = zoo["vgg16"].classifier
    assert len(vgg_head) == 7 and isinstance(vgg_head[-1], nn.Linear)
    assert (vgg_head[-1].in_features, vgg_head[-1].out_features) == (4096, 5)
    eff_head = zoo["efficientnet_b0"].classifier
    assert len(eff_head) == 2
    assert isinstance(eff_head[0], nn.Dropout) and eff_head[0].p == 0.2  # dropout kept
    assert (eff_head[1].in_features, eff_head[1].out_features) == (1280, 5)


def test_new_model_is_fully_trainable_and_in_training_mode():
    model = build_transfer_model("resnet18", 10)
    assert model.training
    assert count_trainable(model) == sum(p.numel() for p in model.parameters()) == 11_181_642


def test_build_rejects_bad_names_and_num_classes_naming_the_argument():
    with pytest.raises(ValueError, match=r"name must be one of .*'efficientnet_b0'.*'resnet18'"):
        build_transfer_model("resnet34", 3)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="num_classes"):
            build_transfer_model("resnet18", bad)
    for bad in (2.5, True):  # wrong type: TypeError, as everywhere in companion._validate
        with pytest.raises(TypeError, match="num_classes"):
            build_transfer_model("resnet18", bad)


def test_build_rejects_weights_that_do_not_fit_the_architecture():
    with pytest.raises(ValueError, match=r"weights='IMAGENET1K_V9'.*ResNet18_Weights\.DEFAULT"):
        build_transfer_model("resnet18", 3, weights="IMAGENET1K_V9")
    with pytest.raises(ValueError, match="weights='no_such_thing'"):
        build_transfer_model("resnet18", 3, weights="no_such_thing")
    with pytest.raises(ValueError, match="another architecture"):
        build_transfer_model("resnet18", 3, weights="ResNet50_Weights.DEFAULT")
    with pytest.raises(ValueError, match="another architecture"):
        build_transfer_model("resnet18", 3, weights=models.ResNet50_Weights.DEFAULT)
    with pytest.raises(ValueError, match="another architecture"):
        build_transfer_model("efficientnet_b0", 3, weights=models.VGG16_Weights.IMAGENET1K_V1)
    with pytest.raises(TypeError, match="weights must be"):
        build_transfer_model("resnet18", 3, weights=3)
    with pytest.raises(ValueError, match="sha256 is only used with weights given as a file"):
        build_transfer_model("resnet18", 3, sha256="0" * 64)
    with pytest.raises(TypeError, match="unexpected keyword"):
        build_transfer_model("resnet18", 3, progress=False)


@pytest.fixture
def fake_download(monkeypatch):
    """Replace torchvision's download by a random resnet18's state dict, recording the call."""
    torch.manual_seed(123)
    source = models.resnet18().state_dict()
    calls = []

    def get_state_dict(self, *args, **kwargs):
        calls.append(self)
        return {k: v.clone() for k, v in source.items()}

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", get_state_dict)
    return source, calls


@pytest.mark.parametrize(
    "weights",
    [models.ResNet18_Weights.DEFAULT, "DEFAULT", "IMAGENET1K_V1", "ResNet18_Weights.DEFAULT"],
    ids=["enum", "DEFAULT", "IMAGENET1K_V1", "qualified"],
)
def test_enum_weights_are_downloaded_and_loaded_into_the_backbone(fake_download, weights):
    source, calls = fake_download
    model = build_transfer_model("resnet18", 4, weights=weights)
    assert calls == [models.ResNet18_Weights.IMAGENET1K_V1]  # DEFAULT is an alias of it
    for key, value in model.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(value, source[key]), key
    assert model.fc.weight.shape == (4, 512)


# --------------------------------------------------------------------------- local files
@pytest.fixture
def saved_resnet18(tmp_path):
    torch.manual_seed(7)
    source = models.resnet18(num_classes=7).state_dict()
    path = tmp_path / "resnet18-7.pt"
    torch.save(source, path)
    return path, source


def test_file_weights_load_every_backbone_tensor_and_give_a_fresh_head(saved_resnet18):
    path, source = saved_resnet18
    digest = sha256_of(path)
    for weights, sha in ((path, digest), (str(path), digest.upper()), (path, digest[:8])):
        model = build_transfer_model("resnet18", 3, weights=weights, sha256=sha)
        state = model.state_dict()
        backbone = [k for k in source if not k.startswith("fc.")]
        assert len(backbone) == len(state) - 2
        for key in backbone:  # weights and BatchNorm buffers, bit-identical
            assert torch.equal(state[key], source[key]), key
        assert state["fc.weight"].shape == (3, 512) and state["fc.bias"].shape == (3,)


def test_file_weights_give_a_new_head_even_when_the_class_count_matches(saved_resnet18):
    path, source = saved_resnet18
    model = build_transfer_model("resnet18", 7, weights=path, sha256=sha256_of(path))
    for key, value in model.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(value, source[key]), key
    assert not torch.equal(model.fc.weight, source["fc.weight"])


def test_keep_head_restores_a_fine_tuned_model_exactly(saved_resnet18):
    path, source = saved_resnet18
    model = build_transfer_model(
        "resnet18", 7, weights=path, sha256=sha256_of(path), keep_head=True
    )
    for key, value in model.state_dict().items():
        assert torch.equal(value, source[key]), key


def test_keep_head_needs_a_file_whose_head_fits(saved_resnet18):
    path, _ = saved_resnet18
    with pytest.raises(ValueError, match=r"keep_head=True.*does not fit num_classes.*\(7, 512\)"):
        build_transfer_model("resnet18", 3, weights=path, sha256=sha256_of(path), keep_head=True)
    with pytest.raises(
        ValueError, match="keep_head=True only applies to weights loaded from a file"
    ):
        build_transfer_model("resnet18", 3, keep_head=True)
    with pytest.raises(TypeError, match="keep_head"):
        build_transfer_model("resnet18", 3, weights=path, sha256=sha256_of(path), keep_head=1)


def test_file_weights_need_a_matching_sha256(saved_resnet18):
    path, _ = saved_resnet18
    digest = sha256_of(path)
    with pytest.raises(ValueError, match=rf"pass sha256=.*{digest}"):
        build_transfer_model("resnet18", 3, weights=path)
    wrong = "0" * 64
    with pytest.raises(ValueError, match=rf"sha256 mismatch.*expected {wrong}.*digest is {digest}"):
        build_transfer_model("resnet18", 3, weights=path, sha256=wrong)
    with pytest.raises(ValueError, match="at least 8 hex digits"):
        build_transfer_model("resnet18", 3, weights=path, sha256=digest[:7])
    with pytest.raises(ValueError, match="at least 8 hex digits"):
        build_transfer_model("resnet18", 3, weights=path, sha256="not-a-hex-digest")


def test_file_weights_must_exist_and_fit_the_backbone(tmp_path, saved_resnet18):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        build_transfer_model("resnet18", 3, weights=tmp_path / "missing.pt", sha256="0" * 64)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        build_transfer_model("resnet18", 3, weights=str(tmp_path / "missing.pth"))
    _, source = saved_resnet18
    for edit, message in (
        (lambda s: s.pop("layer1.0.conv1.weight"), r"missing keys: layer1\.0\.conv1\.weight"),
        (lambda s: s.update(extra=torch.zeros(1)), "unexpected keys: extra"),
        (lambda s: s.update({"conv1.weight": torch.zeros(1)}), r"conv1\.weight \(1,\)"),
    ):
        state = dict(source)
        edit(state)
        path = tmp_path / "edited.pt"
        torch.save(state, path)
        with pytest.raises(ValueError, match=message):
            build_transfer_model("resnet18", 3, weights=path, sha256=sha256_of(path))
    path = tmp_path / "not-a-state-dict.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match="does not hold a state dict"):
        build_transfer_model("resnet18", 3, weights=path, sha256=sha256_of(path))


def test_one_registry_entry_adds_an_architecture(monkeypatch, tmp_path):
    monkeypatch.setitem(_ARCHITECTURES, "tiny_resnet", (TinyResNet, _replace_fc))
    model = build_transfer_model("tiny_resnet", 5)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 5)
    assert group_names(model) == ["fc", "layer2", "layer1", "conv1+bn1"]
    source = tiny(seed=3).state_dict()
    path = tmp_path / "tiny.pt"
    torch.save(source, path)
    model = build_transfer_model("tiny_resnet", 5, weights=path, sha256=sha256_of(path))
    assert torch.equal(model.conv1.weight, source["conv1.weight"])
    with pytest.raises(ValueError, match="tiny_resnet has no torchvision weights"):
        build_transfer_model("tiny_resnet", 5, weights="DEFAULT")
    with pytest.raises(ValueError, match="another architecture"):
        build_transfer_model("tiny_resnet", 5, weights=models.ResNet18_Weights.DEFAULT)


# --------------------------------------------------------------------------- layer groups
def test_resnet18_layer_groups_run_from_the_head_to_the_stem():
    model = build_transfer_model("resnet18", 10)
    groups = layer_groups(model)
    expected = [[model.fc], [model.layer4], [model.layer3], [model.layer2], [model.layer1]]
    expected.append([model.conv1, model.bn1])
    assert len(groups) == len(expected)
    for got, want in zip(groups, expected, strict=True):
        assert len(got) == len(want) and all(a is b for a, b in zip(got, want, strict=True))
    assert group_names(model) == ["fc", "layer4", "layer3", "layer2", "layer1", "conv1+bn1"]


def test_vgg16_layer_groups_split_features_at_each_max_pool(zoo):
    model = zoo["vgg16"]
    assert group_names(model) == [
        "classifier.6",
        "classifier.0-5",
        "features.24-30",
        "features.17-23",
        "features.10-16",
        "features.5-9",
        "features.0-4",
    ]
    groups = layer_groups(model)
    assert groups[0][0] is model.classifier[6]
    assert all(a is b for a, b in zip(groups[2], list(model.features)[24:31], strict=True))
    assert isinstance(groups[-1][-1], nn.MaxPool2d)


def test_efficientnet_layer_groups_are_the_feature_stages(zoo):
    model = zoo["efficientnet_b0"]
    names = ["classifier.1"] + [f"features.{i}" for i in range(8, -1, -1)]
    assert group_names(model) == names  # the classifier's dropout has no parameters: dropped
    groups = layer_groups(model)
    assert groups[0] == [model.classifier[1]] and groups[1] == [model.features[8]]


def test_layer_groups_reject_models_of_unknown_structure():
    with pytest.raises(ValueError, match="ResNet-like.*Sequential is neither"):
        layer_groups(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        layer_groups("resnet18")


# --------------------------------------------------------------------------- freezing
def test_trainable_counts_after_freezing_and_unfreezing_match_hand_counts():
    model = build_transfer_model("resnet18", 10)
    head = 512 * 10 + 10
    # layer4: two BasicBlocks 256->512 (with a 1x1 downsample) and 512->512, five BatchNorms
    layer4 = 3 * 3 * 256 * 512 + 3 * 3 * 512 * 512 * 3 + 256 * 512 + 5 * 2 * 512
    assert layer4 == 8_393_728 == sum(p.numel() for p in model.layer4.parameters())
    total = 11_181_642
    assert count_trainable(freeze_backbone(model)) == head
    assert count_trainable(unfreeze(model, 2)) == head + layer4
    assert count_trainable(unfreeze(model, None)) == total
    assert count_trainable(unfreeze(model, 6)) == count_trainable(unfreeze(model, 60)) == total
    assert count_trainable(unfreeze(model, 1)) == head


@pytest.mark.parametrize(
    ("name", "counts"),
    [
        ("resnet18", [2_565, 8_396_293, 11_179_077]),  # printed and asserted in chapter 9
        ("small_resnet", [85, 5_045, 14_853]),
    ],
)
def test_trainable_counts_per_progressive_phase_are_the_chapters(name, counts):
    model = build_transfer_model(name, 5)
    trainer = ProgressiveUnfreezingTrainer(model, device="cpu")
    assert [count_trainable(unfreeze(trainer.model, n)) for n in (1, 2, None)] == counts


def test_freezing_puts_frozen_batchnorm_in_eval_and_unfreezing_restores_the_models_mode():
    model = build_transfer_model("resnet18", 10)
    freeze_backbone(model)
    assert model.training and model.fc.training
    assert not model.bn1.training and not model.layer4[1].bn2.training
    unfreeze(model, 2)  # bn="frozen": the unfrozen group keeps its statistics too
    assert not model.layer4[1].bn2.training and model.layer4[1].bn2.weight.requires_grad
    unfreeze(model, 2, bn="train")  # bn="train": the unfrozen group follows the model's mode
    assert model.layer4[1].bn2.training and not model.layer3[1].bn2.training
    assert type(model.layer4[1].bn2) is nn.BatchNorm2d and stats_frozen(model.layer3[1].bn2)
    model.eval()
    unfreeze(model, None, bn="train")
    assert not any(m.training for m in model.modules())  # follows eval mode too
    model.train()
    assert all(m.training for m in model.modules())
    assert not any(stats_frozen(m) for m in model.modules())


def batchnorm_modules(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def non_head_tensors(model):
    return {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}


def plain_pytorch_loop(model, x, y, steps=5):
    """What every training loop does: model.train(), AdamW over all parameters, steps."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    for i in range(steps):
        batch = slice(8 * i, 8 * i + 8)
        optimizer.zero_grad()
        F.cross_entropy(model(x[batch]), y[batch]).backward()
        optimizer.step()


@pytest.mark.parametrize("bn", BN_POLICIES)
def test_freeze_backbone_survives_model_train_in_a_plain_pytorch_loop(bn):
    x, y = separable_images(40, seed=3)
    model = freeze_backbone(tiny(), bn=bn)
    before, head = non_head_tensors(model), model.fc.weight.detach().clone()
    plain_pytorch_loop(model, x, y)
    after = non_head_tensors(model)
    assert after.keys() == before.keys() and any("running_mean" in k for k in before)
    for key in before:  # weights, biases, running statistics and batch counts
        assert torch.equal(after[key], before[key]), key
    assert not torch.equal(model.fc.weight, head)  # the head did learn
    assert model.training and not any(m.training for m in batchnorm_modules(model))
    # the control: the same loop after a naive freeze moves the running statistics
    naive = tiny()
    for name, p in naive.named_parameters():
        p.requires_grad = name.startswith("fc.")
    before = non_head_tensors(naive)
    plain_pytorch_loop(naive, x, y)
    after = non_head_tensors(naive)
    moved = [k for k in before if not torch.equal(after[k], before[k])]
    assert moved and all("running_" in k or "num_batches" in k for k in moved)


def test_bn_frozen_keeps_every_statistic_while_unfrozen_affine_weights_train():
    x, y = separable_images(40, seed=4)
    model = unfreeze(tiny(), None)  # everything trainable, bn="frozen"
    assert count_trainable(model) == sum(p.numel() for p in model.parameters())
    buffers, gamma = batchnorm_buffers(model), model.layer1[1].weight.detach().clone()
    plain_pytorch_loop(model, x, y)
    after = batchnorm_buffers(model)
    assert all(torch.equal(after[k], buffers[k]) for k in buffers)
    assert not torch.equal(model.layer1[1].weight, gamma)  # the affine weights learn
    # bn="train": the unfrozen groups re-estimate their statistics, the frozen ones do not
    model = unfreeze(tiny(), 2, bn="train")
    buffers = batchnorm_buffers(model)
    plain_pytorch_loop(model, x, y)
    after = batchnorm_buffers(model)
    moved = {k.split(".")[0] for k in buffers if not torch.equal(after[k], buffers[k])}
    assert moved == {"layer2"}


def test_locked_batchnorm_keeps_state_dict_keys_checkpoints_and_copies():
    import copy
    import io

    model = tiny()
    keys = list(model.state_dict())
    freeze_batchnorm_stats(model)
    assert all(stats_frozen(m) for m in batchnorm_modules(model))
    assert all(isinstance(m, nn.BatchNorm2d) for m in batchnorm_modules(model))
    assert list(model.state_dict()) == keys
    fresh = tiny(seed=1)
    fresh.load_state_dict(model.state_dict())  # a locked model's checkpoint loads anywhere
    model.load_state_dict(fresh.state_dict())
    buffer = io.BytesIO()
    torch.save(model, buffer)  # the locked classes are importable: whole models pickle
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert stats_frozen(loaded.bn1) and not loaded.train().bn1.training
    assert stats_frozen(copy.deepcopy(model).layer2[1])
    # a BatchNorm subclass of another kind gets a locked subclass of its own
    sync = nn.Sequential(nn.SyncBatchNorm(3))
    freeze_batchnorm_stats(sync)
    assert isinstance(sync[0], nn.SyncBatchNorm) and not sync.train()[0].training


def test_bn_policy_is_validated_naming_bn():
    model = tiny()
    for bad, error in (("eval", ValueError), (True, TypeError), (None, TypeError)):
        with pytest.raises(error, match="bn must be one of"):
            unfreeze(model, 1, bn=bad)
        with pytest.raises(error, match="bn must be one of"):
            freeze_backbone(model, bn=bad)
    trainer = ProgressiveUnfreezingTrainer(tiny(), device="cpu")
    train, _ = loaders(n_train=32, n_val=32)
    with pytest.raises(ValueError, match="bn must be one of"):
        trainer.fit_phases(train, None, phases=((1, 1),), bn="fastai")
    assert trainer.epoch == 0


def test_set_frozen_batchnorm_eval_leaves_trainable_and_parameter_free_batchnorm_alone():
    model = nn.Sequential(
        nn.BatchNorm1d(3), nn.BatchNorm1d(3), nn.BatchNorm1d(3, affine=False), nn.BatchNorm1d(3)
    )
    model[0].requires_grad_(False)
    model[3].weight.requires_grad_(False)  # half frozen: still trainable
    assert set_frozen_batchnorm_eval(model) is model
    assert [m.training for m in model] == [False, True, True, True]


def test_unfreeze_rejects_non_positive_group_counts():
    model = tiny()
    with pytest.raises(ValueError, match="n_groups"):
        unfreeze(model, 0)
    with pytest.raises(TypeError, match="n_groups"):
        unfreeze(model, 1.5)


# --------------------------------------------------------------------------- param groups
def test_param_groups_give_each_group_its_discriminative_lr_over_trainable_params_only():
    model = unfreeze(build_transfer_model("resnet18", 10), 3)
    groups = param_groups(model, 1e-3)
    assert [g["name"] for g in groups] == ["fc", "layer4", "layer3"]
    assert [g["lr"] for g in groups] == [1e-3 / 2.6**i for i in range(3)]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))  # no parameter twice
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}
    everything = param_groups(unfreeze(model, None), 0.01, decay=2.0)
    assert [g["lr"] for g in everything] == [0.01 / 2.0**i for i in range(6)]
    assert sum(p.numel() for g in everything for p in g["params"]) == 11_181_642


def test_param_groups_keep_the_structural_index_when_a_middle_group_is_frozen():
    model = unfreeze(build_transfer_model("resnet18", 10), 3)
    model.layer4.requires_grad_(False)
    groups = param_groups(model, 1.0)
    assert [(g["name"], g["lr"]) for g in groups] == [("fc", 1.0), ("layer3", 1 / 2.6**2)]


def test_torch_optimizers_accept_param_groups_and_keep_their_names():
    model = freeze_backbone(tiny())
    for opt in (
        torch.optim.AdamW(param_groups(model, 1e-3), weight_decay=0.1),
        torch.optim.SGD(param_groups(model, 1e-3), lr=1e-3, momentum=0.9),
    ):
        assert [(g["name"], g["lr"]) for g in opt.param_groups] == [("fc", 1e-3)]


def test_param_groups_reject_bad_rates_naming_them():
    model = tiny()
    with pytest.raises(ValueError, match="base_lr"):
        param_groups(model, 0.0)
    with pytest.raises(ValueError, match="decay"):
        param_groups(model, 1e-3, decay=0.5)
    with pytest.raises(ValueError, match="decay"):
        param_groups(model, 1e-3, decay=float("inf"))


# --------------------------------------------------------------------------- the trainer
def test_progressive_unfreezing_grows_the_trainable_set_and_learns_a_separable_task():
    torch.manual_seed(0)
    trainer = ProgressiveUnfreezingTrainer(tiny(), device="cpu")
    train, val = loaders()
    phases = trainer.fit_phases(train, val, phases=((1, 4), (2, 3), (None, 3)), base_lr=1e-2)
    assert phases is trainer.phases and [p["n_groups"] for p in phases] == [1, 2, None]
    trainable = [p["trainable"] for p in phases]
    assert trainable[0] < trainable[1] < trainable[2] == count_trainable(trainer.model)
    assert trainable[0] == 16 * 3 + 3
    assert len(trainer.history["val_acc"]) == trainer.epoch == 10
    assert phases[-1]["val_acc"] == trainer.history["val_acc"][-1] >= 0.9
    assert [g["name"] for g in trainer.optimizer.param_groups] == [
        "fc",
        "layer2",
        "layer1",
        "conv1+bn1",
    ]


@pytest.mark.parametrize(
    "name, cls", [("adam", torch.optim.Adam), ("sgd", torch.optim.SGD)], ids=["adam", "sgd"]
)
def test_fit_phases_builds_the_named_optimizer_with_discriminative_lrs(name, cls):
    trainer = ProgressiveUnfreezingTrainer(tiny(), device="cpu")
    train, val = loaders(n_train=32, n_val=32)
    trainer.fit_phases(train, val, phases=((2, 1),), base_lr=0.1, decay=4.0, optimizer=name)
    assert type(trainer.optimizer) is cls
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [0.1, 0.025]
    assert trainer.history["lr"] == [0.1]  # the head's rate


def test_fit_phases_rejects_bad_arguments_before_training():
    trainer = ProgressiveUnfreezingTrainer(tiny(), device="cpu")
    train, val = loaders(n_train=32, n_val=32)
    for phases, error, message in (
        ((), ValueError, "phases is empty"),
        ("abc", TypeError, "phases must be a sequence"),
        (((1,),), TypeError, r"phases\[0\] must be a pair"),
        (((1, 1), 5), TypeError, r"phases\[1\] must be a pair"),
        (((0, 1),), ValueError, r"phases\[0\] n_groups"),
        (((1, 0),), ValueError, r"phases\[0\] epochs"),
        (((1, 1.5),), TypeError, r"phases\[0\] epochs"),
    ):
        with pytest.raises(error, match=message):
            trainer.fit_phases(train, val, phases=phases)
    for kwargs, message in (
        ({"optimizer": "rmsprop"}, "optimizer must be one of"),
        ({"base_lr": -1.0}, "base_lr"),
        ({"decay": 0.9}, "decay"),
        ({"weight_decay": -0.1}, "weight_decay"),
    ):
        with pytest.raises(ValueError, match=message):
            trainer.fit_phases(train, val, phases=((1, 1),), **kwargs)
    assert trainer.epoch == 0 and trainer.phases == []
    with pytest.raises(ValueError, match="layer_groups understands"):
        ProgressiveUnfreezingTrainer(nn.Linear(2, 2), device="cpu")


# --------------------------------------------------------------------------- pitfalls
def test_pitfall_pretrained_true_loads_the_oldest_weights_as_the_warning_says(monkeypatch):
    # the notes' models.resnet50(pretrained=True) loads IMAGENET1K_V1, not the better DEFAULT
    # (V2); torchvision's warning says so and suggests DEFAULT
    loaded = []

    class Stop(Exception):
        pass

    def get_state_dict(self, *args, **kwargs):  # record which weights would be downloaded
        loaded.append(self)
        raise Stop

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", get_state_dict)
    with pytest.warns(UserWarning, match="deprecated") as record, pytest.raises(Stop):
        models.resnet50(pretrained=True)
    assert any(
        "equivalent to passing `weights=ResNet50_Weights.IMAGENET1K_V1`" in str(w.message)
        and "`weights=ResNet50_Weights.DEFAULT` to get the most up-to-date" in str(w.message)
        for w in record
    )
    weights = models.ResNet50_Weights
    assert loaded == [weights.IMAGENET1K_V1] and weights.DEFAULT is weights.IMAGENET1K_V2
    acc = {
        w: w.meta["_metrics"]["ImageNet-1K"]["acc@1"]
        for w in (weights.IMAGENET1K_V1, weights.DEFAULT)
    }
    assert acc[weights.DEFAULT] > acc[weights.IMAGENET1K_V1] + 4  # 80.9 % against 76.1 %


def test_pitfall_pretrained_keyword_is_deprecated():
    # the notes: models.resnet50(pretrained=pretrained); torchvision >= 0.13 warns (twice)
    with pytest.warns(UserWarning) as record:
        models.resnet18(pretrained=False)
    messages = [str(w.message) for w in record]
    assert len(messages) == 2
    assert "The parameter 'pretrained' is deprecated since 0.13" in messages[0]
    assert "equivalent to passing `weights=None`" in messages[1]
    # ours refuses it outright and says what to write instead
    with pytest.raises(TypeError, match=r"deprecated since torchvision 0\.13; use weights="):
        build_transfer_model("resnet18", 3, pretrained=True)
    with pytest.raises(TypeError, match="use weights="):
        build_transfer_model("resnet18", 3, pretrained=False)


def test_pitfall_frozen_batchnorm_in_train_mode_updates_running_stats():
    x, y = separable_images(64, seed=1)
    # the notes: freeze by requires_grad alone, then model.train() for every epoch
    model = tiny()
    before = batchnorm_buffers(model)
    for p in model.parameters():
        p.requires_grad = False
    for p in model.fc.parameters():
        p.requires_grad = True
    optimizer = torch.optim.Adam(filter(lambda p: p.requires_grad, model.parameters()), lr=1e-2)
    model.train()
    for i in range(0, 64, 16):
        optimizer.zero_grad()
        F.cross_entropy(model(x[i : i + 16]), y[i : i + 16]).backward()
        optimizer.step()
    assert not torch.equal(model.bn1.running_mean, before["bn1.running_mean"])
    assert not torch.equal(model.layer1[1].running_var, before["layer1.1.running_var"])
    # ours: the trainer keeps frozen BatchNorm layers in eval mode; only the head learns
    model = tiny()
    fc_before = model.fc.weight.detach().clone()
    trainer = ProgressiveUnfreezingTrainer(model, device="cpu")
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    trainer.fit_phases(loader, loader, phases=((1, 2),), base_lr=1e-2)
    after = batchnorm_buffers(model)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert not torch.equal(model.fc.weight, fc_before)
    assert model.training and not model.bn1.training  # still so after validation
    # unfreezing layer2 keeps its statistics by default (bn="frozen") ...
    trainer.fit_phases(loader, loader, phases=((2, 1),), base_lr=1e-2)
    after = batchnorm_buffers(model)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert [p["bn"] for p in trainer.phases] == ["frozen", "frozen"]
    # ... and with bn="train" lets them adapt while the lower ones stay put
    trainer.fit_phases(loader, loader, phases=((2, 1),), base_lr=1e-2, bn="train")
    after = batchnorm_buffers(model)
    assert not torch.equal(after["layer2.1.running_mean"], before["layer2.1.running_mean"])
    assert all(torch.equal(after[k], before[k]) for k in before if not k.startswith("layer2"))


def notes_steps(model, optimizer, x, y, n, set_to_none):
    for _ in range(n):
        optimizer.zero_grad(set_to_none=set_to_none)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()


def freeze_all_but_fc(model):
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith("fc.")


def test_pitfall_weight_decay_moves_frozen_parameters_still_in_optimizer():
    x, y = separable_images(16, seed=2)
    lr, wd = 0.1, 0.1
    # (1) decay alone: an earlier backward left .grad tensors, which zero_grad(set_to_none=False)
    # (the PyTorch < 2.0 default) zeroes instead of deleting; AdamW then shrinks the frozen
    # weights by (1 - lr * wd) per step although their gradient is zero
    model = tiny()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    F.cross_entropy(model(x), y).backward()
    freeze_all_but_fc(model)
    w0 = model.conv1.weight.detach().clone()
    notes_steps(model, optimizer, x, y, 3, set_to_none=False)
    torch.testing.assert_close(model.conv1.weight.detach(), w0 * (1 - lr * wd) ** 3)
    # (2) momentum alone (no decay): one step before freezing, and Adam's moments keep moving
    # the frozen weights on zero gradients
    model = tiny()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    notes_steps(model, optimizer, x, y, 1, set_to_none=False)
    freeze_all_but_fc(model)
    w1 = model.conv1.weight.detach().clone()
    notes_steps(model, optimizer, x, y, 2, set_to_none=False)
    assert (model.conv1.weight - w1).abs().max() > 1e-3
    # the honest nuance: with set_to_none=True (today's default) and no earlier backward, the
    # frozen parameters' .grad stays None and torch's AdamW skips them
    model = tiny()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    freeze_all_but_fc(model)
    w0 = model.conv1.weight.detach().clone()
    notes_steps(model, optimizer, x, y, 3, set_to_none=True)
    assert torch.equal(model.conv1.weight, w0)
    # ours: frozen parameters are not in the optimizer at all, whatever the loop does
    model = tiny()
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if "fc" not in n}
    trainer = ProgressiveUnfreezingTrainer(model, device="cpu")
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    trainer.fit_phases(loader, loader, phases=((1, 2),), base_lr=lr, weight_decay=wd)
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n], w) for n, w in frozen_before.items())
    in_optimizer = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert in_optimizer == {id(model.fc.weight), id(model.fc.bias)}


def test_pitfall_unfreeze_top_layers_counts_tensors_not_layers():
    model = build_transfer_model("resnet50", 10)
    # the notes: freeze everything but fc, then unfreeze_top_layers(num_layers=10)
    for p in model.parameters():
        p.requires_grad = False
    for p in model.fc.parameters():
        p.requires_grad = True
    for p in list(model.parameters())[-10:]:
        p.requires_grad = True
    trainable = [n.rsplit(".", 1)[0] for n, p in model.named_parameters() if p.requires_grad]
    assert sorted(set(trainable)) == [
        "fc",
        "layer4.2.bn1",
        "layer4.2.bn2",
        "layer4.2.bn3",
        "layer4.2.conv2",
        "layer4.2.conv3",
    ]
    # ten tensors are not ten layers: the last bottleneck is cut in half (its first conv stays
    # frozen while the BatchNorm right after it trains) and the rest of layer4 stays frozen
    assert not model.layer4[2].conv1.weight.requires_grad
    assert not all(p.requires_grad for p in model.layer4.parameters())
    # ours counts layer groups: unfreeze(model, 2) is exactly fc + layer4
    unfreeze(model, 2)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if n.startswith(("fc.", "layer4."))}
    assert count_trainable(model) == 2048 * 10 + 10 + sum(
        p.numel() for p in model.layer4.parameters()
    )


def notes_unfreeze_layers(model, layer_names):
    """The notes' ProgressiveUnfreezingTrainer.unfreeze_layers, verbatim."""
    for name, param in model.named_parameters():
        if any(layer in name for layer in layer_names):
            param.requires_grad = True


def test_pitfall_unfreeze_layers_string_unfreezes_everything():
    # the notes: unfreeze_layers("layer4") iterates the characters l, a, y, e, r, 4, and "e"
    # occurs in every parameter name ("weight", "bias" has "a"): everything unfreezes
    model = freeze_backbone(build_transfer_model("resnet18", 5))
    notes_unfreeze_layers(model, "layer4")
    assert all(p.requires_grad for p in model.parameters())
    assert all("e" in name or "a" in name for name, _ in model.named_parameters())
    # a list works there, by substring: ["layer1"] would also open a "layer10"
    model = freeze_backbone(build_transfer_model("resnet18", 5))
    notes_unfreeze_layers(model, ["layer4"])
    assert {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad} == {
        "fc",
        "layer4",
    }
    # ours refuses a bare string, naming the argument and the fix, and matches names exactly
    model = freeze_backbone(build_transfer_model("resnet18", 5))
    with pytest.raises(TypeError, match=r"layer_names must be a list.*write \['layer4'\]"):
        unfreeze_layers(model, "layer4")
    assert count_trainable(model) == 512 * 5 + 5  # nothing changed
    for bad, error in ((["layer"], ValueError), ([], ValueError), ([4], TypeError)):
        with pytest.raises(error, match="layer_names"):
            unfreeze_layers(model, bad)
    unfreeze_layers(model, ["layer4"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if n.startswith(("fc.", "layer4."))}
    assert stats_frozen(model.layer4[0].bn1) and stats_frozen(model.layer3[0].bn1)
    unfreeze_layers(model, ["layer3.1"], bn="train")
    assert not stats_frozen(model.layer3[1].bn1) and stats_frozen(model.layer3[0].bn1)


def layer_sizes(model, x):
    """Spatial size of the output of each ResNet stage for input ``x``."""
    sizes = {}

    def record(name):
        def hook(module, inputs, output):
            sizes[name] = tuple(output.shape[-2:])

        return hook

    hooks = [
        getattr(model, name).register_forward_hook(record(name))
        for name in ("layer1", "layer2", "layer3", "layer4")
    ]
    with torch.no_grad():
        model.eval()(x)
    for hook in hooks:
        hook.remove()
    return sizes


def test_pitfall_notes_skip_weights_transforms():
    # the notes feed their images as they are; the book's digits are grey 16x16 on noise
    X, _ = make_pasted_digits()
    x = X[:8]
    model = build_transfer_model("resnet18", 5)  # the architecture; no download needed
    with pytest.raises(RuntimeError, match="expected input.*3 channels"):
        model(x)  # one channel: ImageNet weights expect three
    rgb = x.expand(-1, 3, -1, -1)
    raw = layer_sizes(model, rgb)  # runs, silently: the network sees one pixel from layer3 on
    assert raw == {"layer1": (4, 4), "layer2": (2, 2), "layer3": (1, 1), "layer4": (1, 1)}
    # the fix: the weights' own preprocessing, resize to 256, centre crop 224, normalise
    preprocess = models.ResNet18_Weights.DEFAULT.transforms()
    seen = preprocess(rgb)
    assert seen.shape == (8, 3, 224, 224)
    assert layer_sizes(model, seen)["layer4"] == (7, 7)
    mean = torch.tensor(preprocess.mean).view(1, 3, 1, 1)
    std = torch.tensor(preprocess.std).view(1, 3, 1, 1)
    resized = torchvision.transforms.functional.resize(rgb, [256], antialias=True)
    cropped = torchvision.transforms.functional.center_crop(resized, [224])
    torch.testing.assert_close(seen, (cropped - mean) / std)
    assert preprocess.mean == [0.485, 0.456, 0.406] and preprocess.std == [0.229, 0.224, 0.225]


# --------------------------------------------------------------------------- the book's backbone
def shipped_state(source="glyphs100"):
    return torch.load(book_backbone(source)[0], map_location="cpu", weights_only=True)


def backbone_keys(state):
    return [k for k in state if not k.startswith("fc.")]


def test_small_resnet_maps_16_and_32_pixel_images_to_logits():
    torch.manual_seed(0)
    model = SmallResNet(num_classes=7).eval()
    with torch.no_grad():
        for size in (16, 32):
            x = torch.randn(3, 1, size, size)
            assert model(x).shape == (3, 7)
            assert model.features(x).shape == (3, 16)
        rgb = SmallResNet(num_classes=2, in_channels=3, width=8).eval()
        assert rgb(torch.randn(2, 3, 16, 16)).shape == (2, 2)
        assert rgb.features(torch.randn(2, 3, 16, 16)).shape == (2, 8)


@pytest.mark.parametrize("num_classes", [5, 100])
def test_small_resnet_has_the_hand_counted_number_of_parameters(num_classes):
    w = 16
    stem = 1 * w * 9 + 2 * w  # conv1 3x3 (no bias) + bn1 (weight, bias)
    block = 2 * (w * w * 9 + 2 * w)  # two 3x3 convs, each with its BatchNorm
    shortcut = w * w + 2 * w  # layer2, layer3: strided 1x1 conv + BatchNorm
    head = w * num_classes + num_classes
    expected = stem + block + 2 * (block + shortcut) + head
    model = SmallResNet(num_classes=num_classes, width=w)
    assert sum(p.numel() for p in model.parameters()) == expected == 14_768 + 17 * num_classes
    assert len(model.layer1.shortcut) == 0  # identity: same width, same resolution
    for block in (model.layer2, model.layer3):
        assert block.shortcut[0].kernel_size == (1, 1) and block.shortcut[0].stride == (2, 2)


def test_small_resnet_rejects_bad_arguments_naming_them():
    for kwargs, error in (
        ({"num_classes": 0}, ValueError),
        ({"in_channels": 0}, ValueError),
        ({"width": 2.5}, TypeError),
    ):
        with pytest.raises(error, match=next(iter(kwargs))):
            SmallResNet(**kwargs)


def test_small_resnet_layer_groups_run_from_the_head_to_the_stem():
    model = build_transfer_model("small_resnet", 5)
    assert isinstance(model, SmallResNet) and model.fc.out_features == 5
    assert group_names(model) == ["fc", "layer3", "layer2", "layer1", "conv1+bn1"]
    freeze_backbone(model)
    assert count_trainable(model) == 16 * 5 + 5


def test_shipped_backbone_loads_bit_identically_with_a_fresh_head():
    state = shipped_state("glyphs100")
    assert state["fc.weight"].shape == (100, 16)  # the source task's head
    torch.manual_seed(3)
    model = build_transfer_model("small_resnet", 5, weights="glyphs100")
    torch.manual_seed(3)
    untrained = build_transfer_model("small_resnet", 5)
    loaded = model.state_dict()
    assert backbone_keys(loaded) == backbone_keys(state)
    for key in backbone_keys(state):  # weights and BatchNorm buffers
        assert torch.equal(loaded[key], state[key]), key
    # the head is new: the same draw as a model without weights, not a slice of the source head
    assert torch.equal(model.fc.weight, untrained.fc.weight)
    assert torch.equal(model.fc.bias, untrained.fc.bias)
    assert not torch.equal(model.conv1.weight, untrained.conv1.weight)


@pytest.mark.parametrize("source", sorted(BACKBONE_RECIPES))
def test_manifest_records_the_shipped_files_digest_and_recipe(source):
    path, info = book_backbone(source)
    assert path.is_file() and path.name == f"{source}_small_resnet.pt"
    assert info["sha256"] == sha256_of(path)
    assert {k: info[k] for k in BACKBONE_RECIPES[source]} == BACKBONE_RECIPES[source]
    assert 0.0 <= info["val_acc"] <= 1.0
    assert shipped_state(source)["fc.weight"].shape == (info["num_classes"], 16)


def test_shipped_backbone_with_another_sha256_is_rejected():
    digest = book_backbone("glyphs100")[1]["sha256"]
    wrong = "0" * 64
    with pytest.raises(ValueError, match=rf"sha256 mismatch.*expected {wrong}.*digest is {digest}"):
        build_transfer_model("small_resnet", 5, weights="glyphs100", sha256=wrong)
    model = build_transfer_model("small_resnet", 5, weights="glyphs100", sha256=digest[:8])
    assert torch.equal(model.conv1.weight, shipped_state("glyphs100")["conv1.weight"])


def test_book_backbone_rejects_unknown_sources_naming_source():
    with pytest.raises(ValueError, match=r"source must be one of \[.*'glyphs100_clean'.*\]"):
        book_backbone("nope")
    with pytest.raises(ValueError, match="'glyphs100' is neither an existing file nor a weights"):
        build_transfer_model("resnet18", 5, weights="glyphs100")  # only small_resnet has it


# --------------------------------------------------------------------------- phase learning rates
def test_fit_phases_triples_set_each_phases_learning_rate():
    trainer = ProgressiveUnfreezingTrainer(tiny(), device="cpu")
    train, _ = loaders(n_train=32, n_val=32)
    optimizer_lrs = []
    for phase in ((1, 1, 0.1), (2, 1), (None, 1, 0.01)):  # a pair keeps base_lr
        trainer.fit_phases(train, None, phases=(phase,), base_lr=1e-3, decay=2.0)
        optimizer_lrs.append([g["lr"] for g in trainer.optimizer.param_groups])
    assert [p["lr"] for p in trainer.phases] == [0.1, 1e-3, 0.01]
    assert optimizer_lrs == [[0.1], [1e-3, 5e-4], [0.01, 0.005, 0.0025, 0.00125]]
    assert trainer.history["lr"] == [0.1, 1e-3, 0.01]
    assert all(math.isnan(p["val_acc"]) and math.isnan(p["val_loss"]) for p in trainer.phases)
    # in one call, too
    again = ProgressiveUnfreezingTrainer(tiny(), device="cpu")
    again.fit_phases(train, None, phases=((1, 1, 0.1), (2, 1), (None, 1, 0.01)), base_lr=1e-3)
    assert [p["lr"] for p in again.phases] == [0.1, 1e-3, 0.01]


def test_fit_phases_rejects_bad_phase_learning_rates_naming_the_phase():
    trainer = ProgressiveUnfreezingTrainer(tiny(), device="cpu")
    train, _ = loaders(n_train=32, n_val=32)
    for phases, error, message in (
        (((1, 1, 0),), ValueError, r"phases\[0\] base_lr"),
        (((1, 1, -1),), ValueError, r"phases\[0\] base_lr"),
        (((1, 1, float("nan")),), ValueError, r"phases\[0\] base_lr"),
        (((1, 1), (2, 1, "fast")), TypeError, r"phases\[1\] base_lr"),
        (((1, 1, 0.1, 0.2),), TypeError, r"phases\[0\] must be a pair"),
    ):
        with pytest.raises(error, match=message):
            trainer.fit_phases(train, None, phases=phases)
    assert trainer.epoch == 0 and trainer.phases == []


# --------------------------------------------------------------------------- few-label training
@pytest.fixture(scope="module")
def few_digits():
    """20 labelled pasted digits (4 per class) and 100 others to score on."""
    X, y = make_pasted_digits()
    train, test = few_shot_split(y, 4, seed=0)
    return X[train], y[train], X[test[:100]], y[test[:100]]


def state_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "method, recipe",
    [("scratch", {"epochs": 2}), ("probe", {"phases": ((1, 3, 1e-2),)})],
    ids=["scratch", "probe"],
)
def test_train_few_shot_is_deterministic_per_seed_and_keeps_the_callers_rng(
    few_digits, method, recipe
):
    X, y, _, _ = few_digits
    states = []
    for global_seed, seed in ((123, 0), (456, 0), (123, 1)):
        torch.manual_seed(global_seed)  # the caller's random state must not matter ...
        before = torch.get_rng_state()
        trainer = train_few_shot(method, X, y, seed=seed, **recipe)
        assert torch.equal(torch.get_rng_state(), before)  # ... nor be touched
        states.append(trainer.model.state_dict())
    assert state_equal(states[0], states[1])
    assert not state_equal(states[0], states[2])  # another seed: another head or init, shuffle


def test_probe_leaves_every_backbone_tensor_as_shipped(few_digits):
    X, y, X_test, y_test = few_digits
    state = shipped_state("glyphs100")
    trainer = train_few_shot(
        "probe", X, y, phases=((1, 3, 1e-2),), test=(X_test, y_test), batch_size=8
    )
    trained = trainer.model.state_dict()
    for key in backbone_keys(state):  # incl. BatchNorm running statistics and batch counts
        assert torch.equal(trained[key], state[key]), key
    assert trainer.phases[0]["trainable"] == 16 * 5 + 5
    assert 0.0 <= trainer.phases[0]["test_acc"] <= 1.0


def test_progressive_records_test_accuracy_per_phase_while_unfreezing(few_digits):
    X, y, X_test, y_test = few_digits
    phases = ((1, 2, 1e-2), (2, 1, 1e-3), (None, 1, 1e-3))
    before = torch.get_rng_state()
    trainer = train_few_shot("progressive", X, y, phases=phases, test=(X_test, y_test))
    assert torch.equal(torch.get_rng_state(), before)
    assert isinstance(trainer, ProgressiveUnfreezingTrainer)
    assert [p["n_groups"] for p in trainer.phases] == [1, 2, None]
    assert [p["lr"] for p in trainer.phases] == [1e-2, 1e-3, 1e-3]
    trainable = [p["trainable"] for p in trainer.phases]
    assert trainable[0] < trainable[1] < trainable[2] == 14_768 + 17 * 5
    assert trainer.epoch == 4 and len(trainer.history["train_loss"]) == 4
    test_loader = DataLoader(TensorDataset(X_test, y_test), batch_size=1024)
    assert trainer.phases[-1]["test_acc"] == trainer.validate(test_loader)[1]
    assert all(0.0 <= p["test_acc"] <= 1.0 for p in trainer.phases)
    # the last phase trained the stem too
    assert not torch.equal(trainer.model.conv1.weight, shipped_state()["conv1.weight"])
    assert "test_acc" not in train_few_shot("progressive", X, y, phases=phases[:1]).phases[0]


@pytest.mark.parametrize("bn", BN_POLICIES)
def test_progressive_bn_policy_decides_which_running_statistics_move(few_digits, bn):
    X, y, _, _ = few_digits
    phases = ((1, 1, 1e-2), (2, 1, 1e-3), (None, 1, 1e-3))
    trainer = train_few_shot("progressive", X, y, phases=phases, bn=bn)
    shipped, trained = shipped_state(), trainer.model.state_dict()
    moved = {k for k in shipped if "running_" in k and not torch.equal(trained[k], shipped[k])}
    if bn == "frozen":  # as torchvision.ops.FrozenBatchNorm2d: no statistic moves, ever
        assert moved == set()
    else:  # every group was unfrozen by the end, and each re-estimated its statistics
        assert {k.split(".")[0] for k in moved} == {"bn1", "layer1", "layer2", "layer3"}
    assert not torch.equal(trained["layer1.bn1.weight"], shipped["layer1.bn1.weight"])
    assert [p["bn"] for p in trainer.phases] == [bn] * 3
    with pytest.raises(ValueError, match="bn must be one of"):
        train_few_shot("progressive", X, y, phases=phases, bn="eval")


def test_scratch_trains_every_weight_and_scores_the_test_set(few_digits):
    X, y, X_test, y_test = few_digits
    trainer = train_few_shot("scratch", X, y, epochs=2, lr=1e-2, test=(X_test, y_test))
    assert isinstance(trainer.model, SmallResNet) and trainer.model.fc.out_features == 5
    assert count_trainable(trainer.model) == 14_768 + 17 * 5
    assert trainer.epoch == 2 and trainer.history["lr"] == [1e-2, 1e-2]
    assert all(math.isnan(v) for v in trainer.history["val_acc"])
    test_loader = DataLoader(TensorDataset(X_test, y_test), batch_size=1024)
    assert trainer.test_acc == trainer.validate(test_loader)[1]
    assert train_few_shot("scratch", X, y, epochs=1).test_acc is None


def test_train_few_shot_rejects_bad_arguments_naming_them(few_digits):
    X, y, _, _ = few_digits
    for args, kwargs, error, message in (
        (("finetune", X, y), {}, ValueError, "method must be one of"),
        (("scratch", X, y), {"phases": ((1, 1),)}, ValueError, r"\['phases'\].*'scratch'"),
        (("probe", X, y), {"epochs": 3}, ValueError, r"\['epochs'\].*'probe'"),
        (("progressive", X, y), {"lr": 0.1}, ValueError, r"\['lr'\].*'progressive'"),
        (("scratch", X[:-1], y), {}, ValueError, "same n"),
        (("scratch", X[:, 0], y), {}, ValueError, r"X must be \(n, channels, h, w\)"),
        (("scratch", X, y[:, None]), {}, ValueError, "y \\(n,\\)"),
        (("scratch", X.numpy(), y), {}, TypeError, "torch tensors"),
        (("scratch", X, y.tolist()), {}, TypeError, "torch tensors"),
        (("scratch", X, y), {"seed": -1}, ValueError, "seed"),
        (("scratch", X, y), {"batch_size": 0}, ValueError, "batch_size"),
        (("probe", X, y), {"phases": ((1, 1, 0),)}, ValueError, r"phases\[0\] base_lr"),
    ):
        with pytest.raises(error, match=message):
            train_few_shot(*args, **kwargs)


def test_few_shot_recipes_name_only_keys_their_method_takes(few_digits):
    assert set(FEW_SHOT_RECIPES) == {"scratch", "probe", "progressive"}
    assert set(FEW_SHOT_RECIPES["scratch"]) <= {"epochs", "lr", "weight_decay"}
    assert set(FEW_SHOT_RECIPES["probe"]) == set(FEW_SHOT_RECIPES["progressive"]) == {"phases"}
    assert FEW_SHOT_RECIPES["probe"]["phases"] == FEW_SHOT_RECIPES["progressive"]["phases"][:1]


def test_train_few_shot_names_source_when_it_is_unknown(few_digits):
    X, y, _, _ = few_digits
    with pytest.raises(ValueError, match="source"):
        train_few_shot("probe", X, y, source="nope")


def test_probe_from_a_five_class_source_starts_from_a_new_head(few_digits):
    X, y, _, _ = few_digits
    source_head = shipped_state("glyphs5")["fc.weight"]
    trainer = train_few_shot("probe", X, y, source="glyphs5", phases=((1, 1, 1e-9),))
    assert not torch.allclose(trainer.model.fc.weight, source_head, atol=1e-6)
