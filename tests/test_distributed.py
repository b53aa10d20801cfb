"""companion.distributed: real processes (gloo, 2 ranks on the CPU), each job bounded by its
timeout. The equivalences are float64 and exact to 1e-6 (measured: 2e-16); every one has a
control that fails."""

import os
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler, TensorDataset

from companion import distributed as D
from companion.training import Trainer

EPOCHS = 2  # 2 epochs of 800 examples in global batches of 32: 50 optimizer steps


def params(result):
    """The parameters of a result's state dict (not the BatchNorm buffers)."""
    return {k: v for k, v in result["weights"].items() if "running" not in k and "num_" not in k}


def gap(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def reference():
    """One process, global batches of 32: what every data-parallel run must reproduce."""
    return D.train_seed_mlp_parallel(EPOCHS, 32, 0)


@pytest.fixture(scope="module")
def syncs():
    ranks = D.launch(
        D.train_variants, 2, [dict(epochs=EPOCHS, sync=s) for s in ("ddp", "all_reduce", "none")]
    )
    return by_variant(ranks)


def by_variant(ranks):
    """launch returns [rank][variant]; the tests compare [variant][rank]."""
    return [list(runs) for runs in zip(*ranks, strict=True)]


# ------------------------------------------------------------------ the maths, no processes
def test_mean_of_equal_shard_gradients_is_the_full_batch_gradient():
    torch.manual_seed(0)
    model = D.seed_mlp()
    X, y = torch.randn(32, 10, dtype=torch.float64), torch.randint(0, 3, (32,))
    full = D.flat_gradient(model, X, y)
    shards = [D.flat_gradient(model, X[i::2], y[i::2]) for i in range(2)]
    assert (full - sum(shards) / 2).abs().max() < 1e-15
    # control: unequal shards (10 and 22) averaged as if equal are not the full gradient ...
    parts = [D.flat_gradient(model, X[:10], y[:10]), D.flat_gradient(model, X[10:], y[10:])]
    assert (full - sum(parts) / 2).abs().max() > 1e-3
    # ... weighted by their sizes they are
    assert (full - (10 * parts[0] + 22 * parts[1]) / 32).abs().max() < 1e-15


# ------------------------------------------------------------------------- equivalences
def test_ddp_and_hand_all_reduce_on_2_ranks_equal_one_process_on_the_global_batch(reference, syncs):
    ddp, by_hand, alone = syncs
    for runs in (ddp, by_hand):
        assert [r["rank"] for r in runs] == [0, 1]
        assert [r["world_size"] for r in runs] == [2, 2]
        assert gap(params(runs[0]), params(reference)) < 1e-6
        assert gap(params(runs[0]), params(runs[1])) == 0  # the ranks hold the same weights
    assert gap(params(ddp[0]), params(by_hand[0])) < 1e-12
    # control: without the gradient average each rank fits its own shard
    assert gap(params(alone[0]), params(reference)) > 1e-2
    assert gap(params(alone[0]), params(alone[1])) > 1e-2


def test_pitfall_per_rank_metrics_differ_and_the_reduced_ones_are_global(reference, syncs):
    ddp = syncs[0]
    for r in ddp:
        for key in ("train_loss", "val_loss", "train_acc", "val_acc"):
            assert r["history"][key] == pytest.approx(reference["history"][key], abs=1e-9)
    local = [r["rank_val_acc"] for r in ddp]
    assert local[0] != local[1]  # each rank's 100 validation images give another number
    for epoch, global_acc in enumerate(reference["history"]["val_acc"]):
        assert (local[0][epoch] + local[1][epoch]) / 2 == pytest.approx(global_acc)


def test_pitfall_batchnorm_per_rank_statistics_differ_and_syncbatchnorm_restores_equivalence():
    reference = D.train_seed_mlp_parallel(EPOCHS, 32, 0, batch_norm="local")
    local, sync = by_variant(
        D.launch(
            D.train_variants, 2, [dict(epochs=EPOCHS, batch_norm=b) for b in ("local", "sync")]
        )
    )
    assert gap(params(local[0]), params(reference)) > 1e-2  # batch statistics of 16, not 32
    assert gap(params(sync[0]), params(reference)) < 1e-6
    assert gap(params(sync[0]), params(sync[1])) == 0
    # running statistics: per rank with local BatchNorm, global (the reference's) with sync
    assert (local[0]["running_mean"] - local[1]["running_mean"]).abs().max() > 1e-3
    assert (sync[0]["running_mean"] - reference["running_mean"]).abs().max() < 1e-6
    assert (sync[1]["running_mean"] - reference["running_mean"]).abs().max() < 1e-6


def test_sync_batchnorm_is_batchnorm_in_one_process_and_convert_keeps_everything():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6, momentum=0.3), nn.ReLU()).double()
    model[1].weight.data.uniform_(0.5, 1.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(8, 4, dtype=torch.float64)
    expected = model(x)
    model.load_state_dict(before)
    D.convert_sync_batchnorm(model)
    assert isinstance(model[1], D.SyncBatchNorm) and model[1].momentum == 0.3
    assert model[1].weight.dtype == torch.float64
    assert gap(dict(model.state_dict()), before) == 0
    assert torch.equal(model(x), expected)


def test_a_ddp_checkpoint_resumes_in_one_process_and_is_written_by_rank_0_only(reference, tmp_path):
    path = tmp_path / "ddp.pt"
    full = D.launch(D.train_seed_mlp_parallel, 2, EPOCHS, checkpoint=str(path))
    assert path.exists() and sorted(os.listdir(tmp_path)) == ["ddp.pt"]
    resumed = D.train_seed_mlp_parallel(EPOCHS, resume=path)
    assert gap(params(resumed), params(full[0])) < 1e-6
    assert gap(params(resumed), params(reference)) < 1e-6
    assert resumed["history"]["val_acc"] == pytest.approx(reference["history"]["val_acc"])


def test_pitfall_every_rank_saves_and_distributed_trainer_saves_once(tmp_path):
    naive = D.launch(count_checkpoint_writes, 2, str(tmp_path / "naive.pt"), naive=True)
    assert [writes for writes, _ in naive] == [1, 1]  # the defect: two writes of one file
    fixed = D.launch(count_checkpoint_writes, 2, str(tmp_path / "fixed.pt"), naive=False)
    assert fixed == [(1, True), (0, True)]  # the fix; and rank 1 finds the file: the barrier
    assert sorted(os.listdir(tmp_path)) == ["fixed.pt", "naive.pt"]


def count_checkpoint_writes(path, naive):
    """Runs on every rank: how many files this rank renames into place while saving; naive
    is the loop that saves on every rank (Trainer's save, which is atomic, on each)."""
    trainer = D.DistributedTrainer(D.seed_mlp(), device="cpu")
    calls = []
    original = os.replace

    def counting(src, dst):
        calls.append(dst)
        return original(src, dst)

    os.replace = counting
    try:
        if naive:
            Trainer.save_checkpoint(trainer, path)
        else:
            trainer.save_checkpoint(path)
    finally:
        os.replace = original
    return len(calls), os.path.exists(path)


def test_pitfall_sampler_without_set_epoch_repeats_the_order_and_trainer_sets_it():
    data = TensorDataset(torch.arange(40.0).unsqueeze(1), torch.zeros(40, dtype=torch.long))
    sampler = DistributedSampler(data, num_replicas=2, rank=0, shuffle=True, seed=0)
    # the defect: a loop that never calls set_epoch shuffles every epoch into the same order
    assert list(sampler) == list(sampler)
    orders = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        orders.append(list(sampler))
    assert orders[0] != orders[1] != orders[2]
    # the fix: Trainer.fit calls set_epoch itself, with the epoch it is about to train
    seen = []

    class Recording(DistributedSampler):
        def set_epoch(self, epoch):
            seen.append(epoch)
            super().set_epoch(epoch)

    loader = torch.utils.data.DataLoader(
        data, batch_size=4, sampler=Recording(data, num_replicas=1, rank=0)
    )
    Trainer(nn.Linear(1, 2), device="cpu").fit(loader, None, 3, progress=False)
    assert seen == [0, 1, 2]


# ----------------------------------------------------------------------- failure and errors
def fail_on_rank(bad):
    """Rank ``bad`` raises; the others wait in an all-reduce that will never complete."""
    if D.rank() == bad:
        raise KeyError(f"rank {bad} gave up")
    dist.all_reduce(torch.ones(3))
    return "finished"


def test_a_failing_rank_fails_the_job_promptly_with_its_own_error():
    start = time.monotonic()
    with pytest.raises(KeyError, match="rank 1 gave up") as info:
        D.launch(fail_on_rank, 2, 1, timeout=60)
    assert time.monotonic() - start < 30  # not the 60 s of the collective's timeout
    assert "raised on rank 1 of 2" in "".join(info.value.__notes__)


def sleep_forever():
    time.sleep(600)


def test_a_job_that_hangs_is_stopped_with_a_timeout_error():
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="job_timeout=8 s"):
        D.launch(sleep_forever, 2, job_timeout=8)
    assert time.monotonic() - start < 30


def test_timeout_limits_a_collective_not_the_job():
    assert D.launch(sleep_then_reduce, 2, 3.0, timeout=2) == [2.0, 2.0]


def sleep_then_reduce(seconds):
    """Both ranks sleep longer than the collective timeout, then all-reduce: that is fine."""
    time.sleep(seconds)
    t = torch.ones(1)
    dist.all_reduce(t)
    return float(t)


def test_an_interrupt_stops_every_process(monkeypatch):
    import torch.multiprocessing as mp

    started = []
    real = mp.start_processes

    def recording(*args, **kwargs):
        context = real(*args, **kwargs)
        started.append(context)
        calls = []

        def interrupted(timeout=None):
            calls.append(timeout)
            if len(calls) > 20:  # about a second in: the processes are running
                raise KeyboardInterrupt
            return False

        context.join = interrupted
        return context

    monkeypatch.setattr(mp, "start_processes", recording)
    with pytest.raises(KeyboardInterrupt):
        D.launch(sleep_forever, 2)
    assert [p.is_alive() for p in started[0].processes] == [False, False]


class Picky(Exception):
    """Pickles, but cannot be unpickled (its __init__ takes a keyword only)."""

    def __init__(self, *, code):
        super().__init__(f"code {code}")


def raise_picky():
    raise Picky(code=3)


def exit_quietly():
    raise SystemExit(0)


def test_errors_that_cannot_travel_back_keep_their_text_and_silent_exits_are_named():
    with pytest.raises(RuntimeError, match="cannot be sent back") as info:
        D.launch(raise_picky, 2)
    assert "Picky: code 3" in str(info.value)
    with pytest.raises(RuntimeError, match="ended without returning a result"):
        D.launch(exit_quietly, 2)


def test_bad_arguments_get_clear_errors():
    with pytest.raises(ValueError, match="world_size must be a positive int; got 0"):
        D.launch(sleep_forever, 0)
    with pytest.raises(TypeError, match="fn must be callable"):
        D.launch("train", 2)
    with pytest.raises(ValueError, match="backend must be one of"):
        D.launch(sleep_forever, 2, backend="mpi")
    if torch.cuda.device_count() < 64:
        with pytest.raises(ValueError, match="one CUDA device per process"):
            D.launch(sleep_forever, 64, backend="nccl")
    with pytest.raises(ValueError, match="missing RANK"):
        D.init_from_env()
    with pytest.raises(ValueError, match="sync must be one of"):
        D.DistributedTrainer(nn.Linear(2, 2), sync="horovod")


def test_sampler_padding_repeats_examples_when_the_data_do_not_divide():
    data = TensorDataset(torch.arange(801.0))
    shards = [list(DistributedSampler(data, num_replicas=2, rank=r, seed=0)) for r in (0, 1)]
    together = shards[0] + shards[1]
    assert len(together) == 802 and len(set(together)) == 801  # one example twice
    with pytest.raises(ValueError, match="val has 1 examples for 2 ranks"):
        D.launch(loaders_with_one_val_example, 2)


def loaders_with_one_val_example():
    data = TensorDataset(torch.zeros(4, 1), torch.zeros(4, dtype=torch.long))
    D.distributed_loaders(data, TensorDataset(torch.zeros(1, 1)), 2)


def test_the_one_process_reference_is_the_plain_trainer(reference):
    """The reference runs DistributedTrainer in one process: it must be chapter 3's Trainer."""
    from companion.data import make_seed_dataset

    torch.manual_seed(0)
    model = D.seed_mlp()
    X, y = make_seed_dataset()
    train = TensorDataset(X[:800].double(), y[:800])
    sampler = DistributedSampler(train, num_replicas=1, rank=0, seed=0)
    loader = torch.utils.data.DataLoader(train, batch_size=32, sampler=sampler)
    trainer = Trainer(model, device="cpu")
    trainer.fit(
        loader,
        None,
        EPOCHS,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        progress=False,
    )
    plain = {"weights": dict(model.state_dict())}
    assert gap(params(plain), params(reference)) < 1e-12


def test_a_global_batch_not_divisible_by_the_world_size_is_named_from_every_rank():
    with pytest.raises(ValueError, match="global_batch_size must be a multiple of the world"):
        D.launch(D.train_seed_mlp_parallel, 2, 1, 33)
    D.train_seed_mlp_parallel(1, 33)  # one process divides anything


# --------------------------------------------------------------------------------- torchrun
def test_torchrun_runs_the_same_training(tmp_path, syncs):
    out = tmp_path / "torchrun.pt"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    command += ["-m", "companion.distributed", "--epochs", str(EPOCHS), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "rank 0 of 2: validation accuracy" in done.stdout
    result = torch.load(out, weights_only=True)
    assert gap(params(result), params(syncs[0][0])) < 1e-12


def test_the_progress_bar_shows_on_rank_0_only(monkeypatch):
    import tqdm.auto

    bars = []

    class Bar(list):  # a stand-in for tqdm that records that it was made
        def __init__(self, iterable, **kwargs):
            super().__init__(iterable)
            bars.append(kwargs)

        def set_postfix(self, **kwargs):
            pass

        def close(self):
            pass

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    data = TensorDataset(torch.randn(8, 2), torch.zeros(8, dtype=torch.long))
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    trainer = D.DistributedTrainer(nn.Linear(2, 2), device="cpu")
    trainer.rank = 1  # as on the second process of a job
    trainer.fit(loader, None, 1)
    assert bars == []
    trainer.rank = 0
    trainer.fit(loader, None, 1)
    assert len(bars) == 1


def sync_batchnorm_on_one_value():
    x = torch.randn(1 if D.rank() == 0 else 0, 3)
    return D.SyncBatchNorm(3)(x)


def test_sync_batchnorm_refuses_a_global_batch_of_one_value():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        D.launch(sync_batchnorm_on_one_value, 2)
