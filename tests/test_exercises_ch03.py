"""Chapter 3's exercises: realistic wrong answers get their intended hints."""

import numpy as np
from test_exercises import wrong_answer_test

from companion.exercises.ch03 import _GRID, _rates, early_stopping_epoch


def keep_argmin(val_losses, patience):
    return int(np.argmin(val_losses)) + 1


def keep_zero_based(val_losses, patience):
    return early_stopping_epoch(val_losses, patience)[0] - 1


def keep_last_tie(val_losses, patience):
    best, keep, bad = np.inf, 0, 0
    for epoch, loss in enumerate(val_losses, start=1):
        if loss <= best:
            best, keep, bad = loss, epoch, 0
        else:
            bad += 1
            if bad >= patience:
                break
    return keep


def keep_patience_off_by_one(val_losses, patience):
    return early_stopping_epoch(val_losses, patience + 1)[0]


def budgets(which=0, cut=None):
    return {key: sum(_rates(*key)[which][:cut]) for key in _GRID}


WRONG = [
    ("3.1", lambda losses, sizes: sum(losses) / len(losses), "mean of batch means"),
    ("3.1", lambda losses, sizes: np.dot(losses, sizes) / len(sizes), "sum(batch_sizes)"),
    ("3.1", lambda losses, sizes: sum(losses) / sum(sizes), "divides by the batch size twice"),
    ("3.2", keep_argmin, "never saw it"),
    ("3.2", keep_zero_based, "return index + 1"),
    ("3.2", keep_last_tie, "strictly lower"),
    ("3.2", keep_patience_off_by_one, "reaches `patience`"),
    ("3.3", budgets(which=1), "after scheduler.step()"),
    ("3.3", budgets(cut=49), "49 epochs, not 50"),
    ("3.3", {key: 50 * key[0] for key in _GRID}, "the schedule never ran"),
    ("3.3", {(0.001, "step"): 0.0111}, "lacks the cells"),
]


test_a_realistic_wrong_answer_gets_its_intended_hint = wrong_answer_test(WRONG)


def test_the_early_stopping_reference_follows_the_trainer():
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from companion import Trainer

    torch.manual_seed(0)
    X, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    train = DataLoader(TensorDataset(X[:16], y[:16]), batch_size=8)
    val = DataLoader(TensorDataset(X[16:], y[16:]), batch_size=48)
    model = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
    trainer = Trainer(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    trainer.fit(train, val, 40, optimizer=optimizer, early_stopping=3, progress=False)
    keep, stop = early_stopping_epoch(trainer.history["val_loss"], 3)
    assert (keep, stop) == (trainer.best_epoch, len(trainer.history["val_loss"]))
