"""Slow checks of chapter 9's shipped backbones and few-label recipes (about two minutes).

Kept out of ``tests/test_transfer.py`` so that, under ``pytest -n 2 --dist loadfile``, this
module runs on a worker of its own.
"""

import itertools

import pytest
import torch

from companion.data import few_shot_split, make_pasted_digits
from companion.transfer import (
    BACKBONE_RECIPES,
    FEW_SHOT_RECIPES,
    SmallResNet,
    book_backbone,
    pretrain_backbone,
    train_few_shot,
)

SEEDS = (0, 1, 2)
K = 5
LRS, WEIGHT_DECAYS, EPOCHS = (1e-3, 3e-3, 1e-2), (0.0, 0.05), (30, 100)  # 12 configs


@pytest.mark.parametrize("source", sorted(BACKBONE_RECIPES))
def test_make_pretrain_reproduces_the_shipped_backbones(source):
    path, info = book_backbone(source)
    model, val_acc = pretrain_backbone(**BACKBONE_RECIPES[source])
    assert val_acc == pytest.approx(info["val_acc"], abs=0.02)
    shipped = torch.load(path, map_location="cpu", weights_only=True)
    retrained = model.state_dict()
    assert retrained.keys() == shipped.keys()
    assert all(retrained[k].shape == shipped[k].shape for k in shipped)
    # Bit-identity holds on the machine that wrote the files; another CPU may round differently.
    identical = all(torch.equal(retrained[k], shipped[k]) for k in shipped)
    print(
        f"{source}: source accuracy {val_acc:.4f} (shipped {info['val_acc']:.4f}); "
        f"state dict bit-identical to {path.name}: {identical}"
    )


def mean_test_accuracy(X, y, splits, method, **recipe):
    """Mean over the splits of the test accuracy after training (last phase for transfer)."""
    accuracies = []
    for seed, (train_idx, test_idx) in zip(SEEDS, splits, strict=True):
        trainer = train_few_shot(
            method, X[train_idx], y[train_idx], seed=seed, test=(X[test_idx], y[test_idx]), **recipe
        )
        accuracies.append(
            trainer.test_acc if method == "scratch" else trainer.phases[-1]["test_acc"]
        )
    return sum(accuracies) / len(accuracies)


def test_scratch_recipe_is_the_best_of_a_grid_within_two_points():
    X, y = make_pasted_digits()
    splits = [few_shot_split(y, K, seed=seed) for seed in SEEDS]
    grid = {
        (lr, weight_decay, epochs): mean_test_accuracy(
            X, y, splits, "scratch", lr=lr, weight_decay=weight_decay, epochs=epochs
        )
        for lr, weight_decay, epochs in itertools.product(
            (1e-3, 3e-3, 1e-2), (0.0, 0.05), (30, 100)
        )
    }
    best_config, best = max(grid.items(), key=lambda item: item[1])
    chapter = mean_test_accuracy(X, y, splits, "scratch", **FEW_SHOT_RECIPES["scratch"])
    probe = mean_test_accuracy(X, y, splits, "probe", **FEW_SHOT_RECIPES["probe"])
    for config, accuracy in grid.items():
        print(f"scratch (lr, weight_decay, epochs) = {config}: {accuracy:.3f}")
    print(
        f"k={K}: scratch, chapter recipe {chapter:.3f}; best of the grid {best:.3f} at "
        f"(lr, weight_decay, epochs) = {best_config}; linear probe {probe:.3f}"
    )
    assert chapter >= best - 0.02
    assert probe >= best + 0.10


SMALL = {"num_classes": 3, "steps": 2, "n_train": 128, "n_val": 64}


def test_pretrain_backbone_validates_arguments_and_returns_a_deterministic_eval_model():
    for key, value, error in (
        ("num_classes", 0, ValueError),
        ("steps", 0, ValueError),
        ("steps", 2.5, TypeError),
        ("batch_size", -1, ValueError),
        ("n_train", 0, ValueError),
        ("n_val", "64", TypeError),
        ("lr", 0.0, ValueError),
        ("lr", float("inf"), ValueError),
        ("weight_decay", -1e-4, ValueError),
        ("seed", -1, ValueError),
        ("noise", -0.1, ValueError),
    ):
        with pytest.raises(error, match=key):
            pretrain_backbone(**{**SMALL, key: value})
    torch.manual_seed(11)
    model, val_acc = pretrain_backbone(**SMALL)
    assert isinstance(model, SmallResNet) and not model.training
    assert model.fc.out_features == 3
    assert {p.device for p in model.parameters()} == {torch.device("cpu")}
    assert 0.0 <= val_acc <= 1.0
    torch.manual_seed(12)  # the caller's random state does not matter
    again, again_acc = pretrain_backbone(**SMALL)
    assert again_acc == val_acc
    for (key, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), key


def test_pretrain_backbone_keeps_the_callers_rng():
    torch.manual_seed(11)
    before = torch.get_rng_state()
    pretrain_backbone(**SMALL)
    assert torch.equal(torch.get_rng_state(), before)


def test_main_writes_backbones_and_a_manifest_that_book_backbone_reads(tmp_path, monkeypatch):
    import companion.transfer as transfer

    tiny = {"num_classes": 3, "steps": 2, "noise": 0.2, "n_train": 128, "n_val": 64}
    monkeypatch.setattr(transfer, "BACKBONE_RECIPES", {"glyphs100": tiny})
    transfer.main([str(tmp_path)])
    monkeypatch.setattr(transfer, "WEIGHTS_DIR", tmp_path)
    path, info = book_backbone("glyphs100")
    assert path == tmp_path / "glyphs100_small_resnet.pt"
    assert {k: info[k] for k in tiny} == tiny and 0.0 <= info["val_acc"] <= 1.0
    model = transfer.build_transfer_model("small_resnet", 2, weights="glyphs100")  # checks the SHA
    assert model.fc.out_features == 2
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(ValueError, match="sha256 mismatch"):
        transfer.build_transfer_model("small_resnet", 2, weights="glyphs100")


@pytest.mark.parametrize("k", [20, 50])
def test_scratch_catches_up_as_labels_grow(k):
    # chapter 9 cites this (too slow for the page): at k = 20 scratch starts to learn but
    # transfer stays far ahead; at k = 50 scratch has caught up: it beats both transfer
    # methods on two of three draws, and its spread over the draws (74 % to 89 % measured)
    # is wider than its lead, so which is ahead depends on the draw. Scratch's numbers also
    # move by several points with the floating-point mode (MKL_CBWR), transfer's do not.
    X, y = make_pasted_digits()
    scratch, probe, progressive = [], [], []
    for seed in SEEDS:
        train_idx, test_idx = few_shot_split(y, k, seed=seed)
        data, test = (X[train_idx], y[train_idx]), (X[test_idx], y[test_idx])
        scratch.append(train_few_shot("scratch", *data, seed=seed, test=test).test_acc)
        trainer = train_few_shot("progressive", *data, seed=seed, test=test, bn="frozen")
        probe.append(trainer.phases[0]["test_acc"])
        progressive.append(trainer.phases[-1]["test_acc"])
    print(f"k={k}: scratch {scratch}, probe {probe}, progressive {progressive}")
    if k == 20:
        assert max(scratch) > 0.25  # above the near-guessing of k <= 10
        assert all(p - s > 0.25 for s, p in zip(scratch, probe, strict=True))
        assert all(u > p for p, u in zip(probe, progressive, strict=True))
    else:
        best_transfer = [max(p, u) for p, u in zip(probe, progressive, strict=True)]
        assert sum(s > b for s, b in zip(scratch, best_transfer, strict=True)) >= 2
        assert min(scratch) > 0.70  # far from the near-guessing of k <= 10
        lead = sum(scratch) / 3 - sum(progressive) / 3
        assert max(scratch) - min(scratch) > abs(lead)  # the spread is wider than the lead
