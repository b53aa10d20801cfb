"""ci/simulated_cuda.py and ci/device_check.py: a CUDA device simulated on the CPU catches the
device bugs a GPU would (a CPU tensor beside a CUDA one, ``.numpy()`` on a CUDA tensor) and
computes exactly what the CPU does, so that `make device-check` can run every chapter "on
CUDA" without a GPU."""

import copy
import io
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ci"))
simulated_cuda = pytest.importorskip("simulated_cuda")
device_check = pytest.importorskip("device_check")
simulate_cuda = simulated_cuda.simulate_cuda

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available(), reason="the simulation is for machines without a GPU"
)


def train(model, device, steps=20):
    """Adam on a fixed batch, the optimizer made *before* the move, as Trainer does."""
    torch.manual_seed(1)
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.to(device)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        loss.backward()
        optimizer.step()
    return loss.item(), [p.detach().cpu().clone() for p in model.parameters()]


def small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def test_training_on_simulated_cuda_gives_the_cpus_numbers_bit_for_bit():
    model = small_model()
    start = [p.detach().clone() for p in model.parameters()]
    cpu_loss, cpu_weights = train(copy.deepcopy(model), "cpu")
    with simulate_cuda():
        sim_loss, sim_weights = train(model, "cuda")
        assert isinstance(model[0].weight, simulated_cuda.SimulatedCudaTensor)
        assert isinstance(model[0].weight, torch.nn.Parameter)
    assert sim_loss == cpu_loss
    assert all(torch.equal(a, b) for a, b in zip(sim_weights, cpu_weights, strict=True))
    # the weights moved: an optimizer holding the pre-move parameters would leave them as
    # they were and the comparison above would pass for the wrong reason
    assert all(not torch.equal(a, b) for a, b in zip(sim_weights, start, strict=True))


def test_a_cpu_tensor_beside_a_cuda_one_fails_as_on_a_gpu():
    with simulate_cuda():
        model = small_model().to("cuda")
        with pytest.raises(RuntimeError, match="same device.*cuda:0 and cpu"):
            model(torch.randn(3, 4))  # the input left on the CPU: the defect
        model(torch.randn(3, 4).to("cuda"))  # the fix
        x = torch.ones(3, device="cuda")
        with pytest.raises(RuntimeError, match="cuda:0 and cpu"):
            x + torch.ones(3)
        with pytest.raises(RuntimeError, match="cuda:0 and cpu"):
            torch.ones(3).add_(x)


def test_numpy_on_a_cuda_tensor_fails_until_it_is_copied_to_the_cpu():
    with simulate_cuda():
        x = torch.arange(3.0, device="cuda")
        with pytest.raises(TypeError, match="cuda:0 device type tensor to numpy"):
            x.numpy()
        with pytest.raises(TypeError, match="Tensor.cpu()"):
            np.asarray(x)
        assert x.cpu().numpy().tolist() == [0.0, 1.0, 2.0]
        assert type(x.cpu()) is torch.Tensor


def test_what_cuda_allows_is_allowed():
    with simulate_cuda():
        x = torch.arange(6.0).reshape(2, 3).to("cuda")
        assert torch.cuda.is_available()
        assert (x * torch.tensor(2.0)).sum().item() == 30.0  # a CPU scalar tensor
        assert x[torch.tensor([1])].tolist() == [[3.0, 4.0, 5.0]]  # CPU indices
        assert float(x.max()) == 5.0 and x.argmax().item() == 5
        y = torch.zeros(3, device=x.device)  # the device read off a tensor
        y[1:] = 7  # a Python number into a CUDA tensor
        assert y.tolist() == [0.0, 7.0, 7.0]
        assert isinstance(y, simulated_cuda.SimulatedCudaTensor)
        cpu = torch.empty(2, 3)
        cpu.copy_(x)  # a copy between devices
        assert type(cpu) is torch.Tensor and cpu.sum().item() == 15.0
        assert isinstance(torch.tensor([1.0], device="cuda"), simulated_cuda.SimulatedCudaTensor)


def test_a_saved_cuda_state_dict_loads_as_cpu_tensors():
    with simulate_cuda():
        model = small_model().to("cuda")
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        buffer.seek(0)
        loaded = torch.load(buffer, weights_only=True)
        assert all(type(v) is torch.Tensor for v in loaded.values())
        assert torch.equal(loaded["0.weight"], model[0].weight.detach().cpu())


def test_the_simulation_ends_with_its_block():
    swap = torch.__future__.get_swap_module_params_on_conversion()
    with simulate_cuda():
        assert torch.cuda.is_available() and torch.cuda.device_count() == 1
    assert not torch.cuda.is_available()
    assert torch.__future__.get_swap_module_params_on_conversion() == swap
    with pytest.raises((RuntimeError, AssertionError)):
        torch.zeros(1, device="cuda")  # the real, absent CUDA again


def committed_chapter(tmp_path, first, rest="print(DEVICE.type)"):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(first), nbformat.v4.new_code_cell(rest)]
    path = tmp_path / "01_fixture.ipynb"
    nbformat.write(nb, path)
    return path


def test_device_check_switches_the_first_cell_to_cuda(tmp_path):
    path = committed_chapter(tmp_path, 'import companion\nDEVICE = companion.use_device("cpu")')
    nb = device_check.switched(path, simulate=True)
    assert 'companion.use_device("cuda")' in nb.cells[1].source
    assert "simulated_cuda.enable()" in nb.cells[0].source
    device_check.execute(nb, timeout=120)
    assert nb.cells[2].outputs[0]["text"] == "cuda\n"


def test_device_check_refuses_a_chapter_with_nothing_to_switch(tmp_path):
    path = committed_chapter(tmp_path, "import companion")
    with pytest.raises(ValueError, match=r'use_device\("cpu"\)'):
        device_check.switched(path, simulate=True)


def test_use_device_cuda_asks_for_full_float32_and_repeatable_kernels():
    from companion import use_device

    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32, cudnn.benchmark, cudnn.deterministic
    try:
        cudnn.allow_tf32 = True  # cuDNN's default: convolutions in TensorFloat-32
        use_device("cpu")  # the chapters' default leaves the GPU settings alone
        assert cudnn.allow_tf32
        with simulate_cuda():
            assert use_device("cuda").type == "cuda"
        assert not cudnn.allow_tf32 and not matmul.allow_tf32
        assert matmul.fp32_precision == "ieee"  # what the newer API reads
        assert cudnn.deterministic and not cudnn.benchmark
        with torch.backends.cudnn.flags(enabled=True):  # reads the flags: must not raise
            pass
    finally:
        use_device(None)
        cudnn.allow_tf32, matmul.allow_tf32, cudnn.benchmark, cudnn.deterministic = saved


def test_executed_with_names_the_gpu_when_the_chapter_ran_on_one():
    from companion import executed_with, use_device

    assert "device cpu (" in executed_with().splitlines()[1]
    try:
        with simulate_cuda():
            use_device("cuda")
            line = executed_with().splitlines()[1]
    finally:
        use_device(None)
    assert ", device cuda (simulated CUDA device (the CPU); CPU " in line


def test_device_check_reports_a_chapter_that_leaves_a_tensor_on_the_cpu(tmp_path):
    first = 'import companion\nDEVICE = companion.use_device("cpu")'
    bug = "import torch\nmodel = torch.nn.Linear(2, 2).to(DEVICE)\nmodel(torch.ones(1, 2))"
    lines, failed, _, _ = device_check.check(
        committed_chapter(tmp_path, first, bug), False, "simulated", 120
    )
    assert failed and "FAILED" in lines[0]
    assert "model(torch.ones(1, 2))" in "\n".join(lines)  # the chapter's line
    assert "same device" in lines[-1]
    fixed = bug.replace("torch.ones(1, 2))", "torch.ones(1, 2).to(DEVICE))")
    path = committed_chapter(tmp_path, first, fixed)
    lines, failed, _, _ = device_check.check(path, False, "simulated", 120)
    assert not failed and "ran simulated" in lines[0]


def test_a_cpu_scalar_tensor_is_a_number_only_where_cuda_reads_it_as_one():
    with simulate_cuda():
        x = torch.ones(3, device="cuda")
        loss = x.sum()
        assert (x * torch.tensor(2.0)).sum().item() == 6.0  # pointwise input: a number
        for name, bug in {
            "a CPU running total": lambda: torch.tensor(0.0).add_(loss),  # the output
            "a list": lambda: torch.stack([loss, torch.tensor(1.0)]),
            "a CPU target": lambda: F.cross_entropy(torch.ones(3, device="cuda"), torch.tensor(1)),
            "CUDA indices of a CPU tensor": lambda: torch.zeros(3)[
                torch.tensor([0], device="cuda")
            ],
            "CPU values into a CUDA tensor": lambda: x.index_put_(
                (torch.tensor([0, 1]),), torch.ones(2)
            ),
            "a CPU generator": lambda: torch.randn(2, device="cuda", generator=torch.Generator()),
        }.items():
            with pytest.raises(RuntimeError, match="same device|'cuda' device type"):
                bug()
                pytest.fail(f"{name} passed")
        assert x.cuda() is x and isinstance(
            torch.ones(2).cuda(), simulated_cuda.SimulatedCudaTensor
        )
        assert torch.where(x > 0, x, 0.0).tolist() == [1.0, 1.0, 1.0]
        assert x.numpy(force=True).tolist() == [1.0, 1.0, 1.0] and x.get_device() == 0


def test_moves_to_cuda_keep_autograd_and_copy_as_cuda_does():
    with simulate_cuda():
        x = torch.ones(3, requires_grad=True)
        (x.to("cuda") * 2).sum().backward()
        assert x.grad.tolist() == [2.0, 2.0, 2.0]  # the gradient flows back to the CPU
        with pytest.raises(ValueError, match="non-leaf"):
            torch.optim.SGD([torch.ones(3, requires_grad=True).to("cuda")], lr=0.1)
        a = torch.zeros(3)
        b = a.to("cuda")
        b += 1
        assert a.tolist() == [0.0, 0.0, 0.0]  # a copy, not a view of a
        assert b.to("cuda") is b


def test_a_model_reloads_its_weights_after_training_steps():
    """Early stopping's restore: load_state_dict swaps each parameter, which fails if the
    simulation still holds a reference to it (it once did, through a closure's cycle)."""
    with simulate_cuda():
        model = small_model().to("cuda")
        optimizer = torch.optim.Adam(model.parameters())
        best = {k: v.detach().clone() for k, v in model.state_dict().items()}
        x = torch.randn(4, 4).to("cuda")
        torch.cat([model(x), model(x)]).sum().backward()  # an op with a list argument
        optimizer.step()
        model.load_state_dict(best)
        assert torch.equal(model[0].weight.detach().cpu(), best["0.weight"].cpu())
