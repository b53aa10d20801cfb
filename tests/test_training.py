import math
import os

import matplotlib
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from companion.data import make_seed_dataset, train_val_loaders
from companion.models import NeuralNetwork
from companion.training import Trainer, plot_history
from companion.utils import seed_everything

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def data():
    return make_seed_dataset()


def make_run(data, seed=0, scheduler=True):
    """A model, its optimizer and scheduler, and loaders, all from one seed."""
    seed_everything(seed)
    model = NeuralNetwork(10, [32, 16], 3, dropout_rate=0.3)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    sched = (
        torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.9) if scheduler else None
    )
    train, val = train_val_loaders(*data, batch_size=32, seed=seed)
    return model, optimizer, sched, train, val


def test_fit_learns_and_records_history(data):
    model, optimizer, sched, train, val = make_run(data)
    trainer = Trainer(model, device="cpu")
    history = trainer.fit(
        train, val, epochs=5, optimizer=optimizer, scheduler=sched, progress=False
    )
    assert trainer.epoch == 5
    assert {k: len(v) for k, v in history.items()} == dict.fromkeys(history, 5)
    assert history["val_acc"][-1] > 0.9
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["lr"] == pytest.approx([5e-3 * 0.9**k for k in range(5)])


def test_default_optimizer_is_adam_1e_3(data):
    model, _, _, train, val = make_run(data)
    trainer = Trainer(model)
    trainer.fit(train, val, epochs=1, progress=False)
    assert isinstance(trainer.optimizer, torch.optim.Adam)
    assert trainer.history["lr"] == [1e-3]
    assert trainer.device == torch.device("cuda" if torch.cuda.is_available() else "cpu")


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("own_generator", [True, False], ids=["loader-generator", "global-rng"])
def test_resume_reproduces_uninterrupted_run(data, tmp_path, own_generator, device):
    def loaders():
        if own_generator:
            return train_val_loaders(*data, batch_size=32, seed=0)
        X, y = data
        return (
            DataLoader(TensorDataset(X[:800], y[:800]), batch_size=32, shuffle=True),
            DataLoader(TensorDataset(X[800:], y[800:]), batch_size=64),
        )

    model, optimizer, sched, _, _ = make_run(data)
    train, val = loaders()
    straight = Trainer(model, device=device)
    straight.fit(train, val, epochs=4, optimizer=optimizer, scheduler=sched, progress=False)

    model, optimizer, sched, _, _ = make_run(data)
    train, val = loaders()
    first = Trainer(model, device=device)
    first.fit(train, val, epochs=2, optimizer=optimizer, scheduler=sched, progress=False)
    first.save_checkpoint(tmp_path / "run.pt")

    seed_everything(123)  # the fresh process starts from other random states
    model, optimizer, sched, _, _ = make_run(data, seed=99)
    train, val = loaders()
    resumed = Trainer(model, device=device)
    resumed.load_checkpoint(tmp_path / "run.pt", optimizer=optimizer, scheduler=sched)
    assert resumed.epoch == 2
    resumed.fit(train, val, epochs=2, progress=False)

    assert resumed.history == straight.history
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_checkpoint_write_is_atomic(data, tmp_path, monkeypatch):
    model, optimizer, _, train, val = make_run(data, scheduler=False)
    trainer = Trainer(model, device="cpu")
    trainer.fit(train, val, epochs=1, optimizer=optimizer, progress=False)
    path = trainer.save_checkpoint(tmp_path / "ckpt.pt")
    good = path.read_bytes()

    def crash(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    trainer.fit(train, val, epochs=1, progress=False)
    with pytest.raises(OSError, match="disk full"):
        trainer.save_checkpoint(path)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["ckpt.pt"], "no temporary file may be left behind"
    monkeypatch.undo()
    fresh = Trainer(NeuralNetwork(10, [32, 16], 3), device="cpu")
    fresh.load_checkpoint(path, optimizer=torch.optim.Adam(fresh.model.parameters()))
    assert fresh.epoch == 1


def test_load_checkpoint_errors_are_clear(data, tmp_path):
    model, optimizer, sched, train, val = make_run(data)
    trainer = Trainer(model, device="cpu")
    trainer.fit(train, val, epochs=1, optimizer=optimizer, scheduler=sched, progress=False)
    path = trainer.save_checkpoint(tmp_path / "ckpt.pt")
    with pytest.raises(FileNotFoundError):
        Trainer(NeuralNetwork(10, [32, 16], 3)).load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="does not match the checkpoint"):
        Trainer(NeuralNetwork(10, [8], 3)).load_checkpoint(path)
    with pytest.raises(ValueError, match="StepLR state: pass scheduler="):
        Trainer(NeuralNetwork(10, [32, 16], 3)).load_checkpoint(path)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a companion.Trainer checkpoint"):
        Trainer(NeuralNetwork(10, [32, 16], 3)).load_checkpoint(tmp_path / "other.pt")


def test_non_finite_loss_stops_with_epoch_and_batch(data):
    X, y = data
    X = X.clone()
    X[100] = float("nan")  # the fourth batch of an unshuffled loader
    train = DataLoader(TensorDataset(X[:800], y[:800]), batch_size=32)
    val = DataLoader(TensorDataset(X[800:], y[800:]), batch_size=64)
    seed_everything(0)
    trainer = Trainer(NeuralNetwork(10, [16], 3), device="cpu")
    with pytest.raises(FloatingPointError, match="at epoch 1, batch 3"):
        trainer.fit(train, val, epochs=2, progress=False)
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_early_stopping_restores_the_best_weights(data):
    model, _, _, train, val = make_run(data, scheduler=False)
    trainer = Trainer(model, device="cpu")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)  # noisy: val loss goes up and down
    history = trainer.fit(
        train, val, epochs=40, optimizer=optimizer, early_stopping=3, progress=False
    )
    assert len(history["val_loss"]) < 40, "should have stopped early"
    best = min(range(len(history["val_loss"])), key=history["val_loss"].__getitem__)
    assert trainer.best_epoch == best + 1
    assert len(history["val_loss"]) == trainer.best_epoch + 3
    assert trainer.validate(val)[0] == pytest.approx(history["val_loss"][best], rel=1e-6)


def test_gradient_clipping_bounds_the_step(data):
    X, y = data
    train = DataLoader(TensorDataset(X[:32], y[:32]), batch_size=32)
    model = NeuralNetwork(10, [16], 3, dropout_rate=0.0)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    trainer = Trainer(model, device="cpu")
    trainer.train_epoch(train, torch.optim.SGD(model.parameters(), lr=1.0), clip_grad_norm=0.01)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (after - before).norm() <= 0.01 + 1e-6


def test_scheduler_steps_per_batch_or_per_epoch(data):
    for mode, expected in [("epoch", 0.1 * 0.5), ("batch", 0.1 * 0.5**25)]:
        model, _, _, train, val = make_run(data, scheduler=False)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        Trainer(model, device="cpu").fit(
            train, val, 1, optimizer=optimizer, scheduler=sched, scheduler_step=mode, progress=False
        )
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected)


def test_bad_data_gives_clear_errors(data):
    X, y = data
    trainer = Trainer(NeuralNetwork(10, [16], 3), device="cpu")
    val = DataLoader(TensorDataset(X[800:], y[800:]), batch_size=64)
    empty = DataLoader(TensorDataset(X[:0], y[:0]), batch_size=8)
    with pytest.raises(ValueError, match="train_loader is empty"):
        trainer.fit(empty, val, 1, progress=False)
    narrow = DataLoader(TensorDataset(X[:64, :9], y[:64]), batch_size=32)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 10\)"):
        trainer.fit(narrow, val, 1, progress=False)
    bad_labels = DataLoader(TensorDataset(X[:64], y[:64] + 1), batch_size=32)
    with pytest.raises(ValueError, match=r"labels in train_loader .* must be in 0\.\.2.*found 3"):
        trainer.fit(bad_labels, val, 1, progress=False)
    float_labels = DataLoader(TensorDataset(X[:64], y[:64].float()), batch_size=32)
    with pytest.raises(ValueError, match="integer class indices"):
        trainer.fit(float_labels, val, 1, progress=False)
    # A model without its own checks: PyTorch's shape error becomes a ValueError naming the batch.
    plain = Trainer(nn.Sequential(nn.Linear(5, 3)), device="cpu")
    with pytest.raises(ValueError, match=r"cannot take batch 0 of train_loader.*\(32, 10\)"):
        plain.fit(DataLoader(TensorDataset(X[:64], y[:64]), batch_size=32), val, 1, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        trainer.fit(val, val, 0, progress=False)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        Trainer(lambda x: x)


def test_plot_history_draws_three_panels(data):
    history = {
        "train_loss": [1.0, 0.5],
        "val_loss": [1.1, 0.6],
        "train_acc": [0.5, 0.8],
        "val_acc": [0.4, 0.7],
        "lr": [1e-3, 1e-4],
    }
    fig = plot_history(history)
    assert [ax.get_ylabel() for ax in fig.axes] == [
        "cross-entropy",
        "accuracy (%)",
        "learning rate",
    ]
    with pytest.raises(ValueError, match="train_loss"):
        plot_history({"val_loss": [1.0]})


def test_original_steplr_recipe_stalls(data):
    """Pitfall: StepLR(10, 0.1) over 50 epochs leaves lr <= 1e-5 from epoch 21 on."""
    seed_everything(0)
    model = NeuralNetwork(10, [64, 32], 3, dropout_rate=0.2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.1)
    train, val = train_val_loaders(*data, batch_size=32, seed=0)
    history = Trainer(model, device="cpu").fit(
        train, val, 50, optimizer=optimizer, scheduler=sched, progress=False
    )
    assert max(history["lr"][20:]) == pytest.approx(1e-5)
    assert history["val_acc"][-1] < 0.96
    assert abs(history["val_acc"][-1] - history["val_acc"][19]) <= 0.01
    assert max(history["train_acc"][20:]) - min(history["train_acc"][20:]) < 0.05


def test_progress_bar_reports_on_stderr(data, capsys):
    model, optimizer, _, train, val = make_run(data, scheduler=False)
    Trainer(model, device="cpu").fit(train, val, 2, optimizer=optimizer, progress=True)
    assert "epochs" in capsys.readouterr().err


def test_per_token_outputs_are_scored_per_token():
    class Echo(nn.Module):  # predicts every token from itself: a lookup table
        def __init__(self):
            super().__init__()
            self.table = nn.Embedding(5, 5)

        def forward(self, x):
            return self.table(x)

    seed_everything(0)
    tokens = torch.randint(0, 5, (64, 7))
    loader = DataLoader(TensorDataset(tokens, tokens), batch_size=16)
    trainer = Trainer(Echo(), device="cpu")
    trainer.fit(loader, loader, 30, optimizer=torch.optim.Adam(trainer.model.parameters(), 0.1),
                progress=False)  # fmt: skip
    assert trainer.history["val_acc"][-1] == 1.0
    bad = DataLoader(TensorDataset(tokens, tokens + 5), batch_size=16)
    with pytest.raises(ValueError, match="must be in 0..4"):
        trainer.validate(bad)


# --------------------------------------------------------------------------- no validation data
def fit_with_and_without_validation(data, epochs=5):
    """Two identical runs (no dropout), one validating after every epoch and one not."""
    runs = []
    for validate in (True, False):
        seed_everything(0)
        model = NeuralNetwork(10, [32, 16], 3, dropout_rate=0.0)
        optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
        train, val = train_val_loaders(*data, batch_size=32, seed=0)
        trainer = Trainer(model, device="cpu")
        trainer.fit(train, val if validate else None, epochs, optimizer=optimizer, progress=False)
        runs.append(trainer)
    return runs


def test_fit_without_val_loader_records_nan_and_trains_exactly_as_with_one(data):
    validated, blind = fit_with_and_without_validation(data)
    history = blind.history
    assert blind.epoch == 5 and {k: len(v) for k, v in history.items()} == dict.fromkeys(history, 5)
    assert all(math.isnan(v) for v in history["val_loss"] + history["val_acc"])
    assert all(math.isfinite(v) for v in validated.history["val_loss"])
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert history["train_acc"][-1] > 0.9
    # Skipping validation changes nothing but the validation entries.
    for key in ("train_loss", "train_acc", "lr"):
        assert history[key] == validated.history[key]
    for (name, a), b in zip(
        blind.model.state_dict().items(), validated.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_early_stopping_without_val_loader_is_rejected_before_training(data):
    model, optimizer, _, train, _ = make_run(data, scheduler=False)
    trainer = Trainer(model, device="cpu")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="early_stopping needs a val_loader"):
        trainer.fit(train, None, 3, optimizer=optimizer, early_stopping=2, progress=False)
    assert trainer.epoch == 0 and trainer.history["train_loss"] == []
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_reduce_lr_on_plateau_per_epoch_without_val_loader_is_rejected_before_training(data):
    model, optimizer, _, train, _ = make_run(data, scheduler=False)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    trainer = Trainer(model, device="cpu")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="ReduceLROnPlateau .*give a val_loader"):
        trainer.fit(train, None, 3, optimizer=optimizer, scheduler=plateau, progress=False)
    assert trainer.epoch == 0 and trainer.history["train_loss"] == []
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    # The rejected scheduler and optimizer were not kept: a plain call afterwards works.
    assert trainer.scheduler is None and trainer.optimizer is None
    with pytest.raises(ValueError, match="scheduler_step='epoch'"):
        trainer.fit(train, train, 1, scheduler=plateau, scheduler_step="batch", progress=False)
    trainer.fit(train, None, 1, optimizer=optimizer, progress=False)
    assert trainer.epoch == 1
    # Any other epoch-wise schedule needs no validation loss.
    step = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    trainer = Trainer(model, device="cpu")
    trainer.fit(train, None, 2, optimizer=optimizer, scheduler=step, progress=False)
    assert trainer.history["lr"] == pytest.approx([5e-3, 2.5e-3])
