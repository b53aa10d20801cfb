"""A CUDA device simulated on the CPU, to check that code is device-clean without a GPU.

What breaks when a reader switches a chapter from ``use_device("cpu")`` to ``"cuda"`` is rarely
the arithmetic; it is a tensor left on the CPU and combined with one on the GPU ("Expected all
tensors to be on the same device"), or ``.numpy()`` on a GPU tensor. Neither needs a GPU to be
found: this module makes ``torch.cuda.is_available()`` true and gives every tensor moved or
created "on CUDA" a wrapper (:class:`SimulatedCudaTensor`) that computes on the CPU but keeps
the two devices apart as CUDA does:

- an operation that combines a simulated-CUDA tensor with a CPU tensor of one or more
  dimensions raises CUDA's ``RuntimeError`` (CPU scalars, copies between devices and CPU index
  tensors are allowed, as on CUDA);
- ``.numpy()`` (so also ``np.asarray``) on a simulated-CUDA tensor raises CUDA's ``TypeError``;
- ``.cpu()`` / ``.to("cpu")`` give a plain CPU tensor, ``.to("cuda")`` a simulated one; results
  are the CPU's, bit for bit;
- ``torch.save`` writes a simulated tensor as its CPU data, so ``torch.load`` gives CPU tensors
  (on a GPU it gives CUDA ones unless ``map_location`` says otherwise).

What it does not simulate: CUDA's own rounding (TF32 convolutions, other reduction orders,
non-deterministic atomics) and its random-number generator (random draws on simulated-CUDA
tensors come from the CPU generator). A simulated tensor says ``device`` is ``cuda:0`` and
``is_cuda`` is true; underneath, PyTorch's dispatcher sees ``meta``, its data-less device (chosen
because autograd needs no CUDA streams for it). Known gaps, found by a review that tried to
falsify the module:

- missed: a custom ``autograd.Function`` whose backward returns a CPU gradient; dtypes under
  ``torch.autocast("cuda")`` (ignored); ``torch.load`` gives CPU tensors where CUDA gives CUDA
  ones; ``.data =`` and in-place metadata operations (``t_``, ``resize_``) on a simulated
  tensor are not reflected in its data;
- refused though CUDA runs them: a few operations that PyTorch builds helper tensors for on
  the input's device (``F.one_hot``, ``scaled_dot_product_attention(is_causal=True)``,
  ``torch.quantile``); a gradient flowing back through ``.cpu()``; ``torch.load(map_location=
  "cuda")``, ``torch.Generator(device="cuda")`` and cuDNN RNNs, which reach the absent driver;
  inside backward hooks a gradient's device reads ``meta``.

A failure is therefore a finding to read, not yet a proof; a pass means the code keeps its
tensors on one device in the ways checked here. A run on a real GPU remains the only check of
the rest.

    with simulate_cuda():
        model = torch.nn.Linear(4, 2).to("cuda")
        model(torch.randn(3, 4))  # RuntimeError: ... cuda:0 and cpu!
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

#: The device PyTorch's dispatcher sees for a simulated-CUDA tensor (see the module's docstring).
SIMULATED = torch.device("meta")
_CPU = torch.device("cpu")
MIXED_MESSAGE = (
    "Expected all tensors to be on the same device, but found at least two devices, "
    "cuda:0 and cpu! (simulated CUDA, in {op})"
)
NUMPY_MESSAGE = (
    "can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor "
    "to host memory first. (simulated CUDA)"
)
GENERATOR_MESSAGE = "Expected a 'cuda' device type for generator but found 'cpu' (simulated CUDA)"


class SimulatedCudaTensor(torch.Tensor):
    """A CPU tensor (``elem``) that the rest of the program must treat as a CUDA tensor."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor) -> SimulatedCudaTensor:
        wrapper = torch.Tensor._make_wrapper_subclass(
            cls,
            elem.size(),
            strides=elem.stride(),
            storage_offset=elem.storage_offset(),
            dtype=elem.dtype,
            layout=elem.layout,
            device=SIMULATED,
            requires_grad=elem.requires_grad,
        )
        wrapper.elem = elem
        return wrapper

    def __repr__(self) -> str:  # what a CUDA tensor prints, less the data's device
        return f"{self.elem!r} (simulated cuda:0)"

    def __reduce_ex__(self, protocol: int) -> tuple:  # saved as its CPU data (see above)
        return self.elem.__reduce_ex__(protocol)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN206
        """Unwraps, checks the devices, runs on the CPU, wraps what came from CUDA tensors.

        Only operations with a simulated tensor among their arguments come here, so the CPU
        work of a program runs at full speed.
        """
        kwargs = dict(kwargs or {})
        originals = {}
        found = []  # (where, is simulated, dimensions) of every tensor argument
        written = _written_arguments(func)
        names = [a.name for a in func._schema.arguments]
        args = tuple(
            _unwrap(v, "written" if i < len(names) and names[i] in written else "input", found,
                    originals)
            for i, v in enumerate(args)
        )  # fmt: skip
        kwargs = {
            k: _unwrap(v, "written" if k in written else "input", found, originals)
            for k, v in kwargs.items()
        }
        if any(simulated for _, simulated, _ in found):
            _check_devices(func, found)
            generator = kwargs.get("generator")
            if isinstance(generator, torch.Generator) and generator.device.type == "cpu":
                raise RuntimeError(GENERATOR_MESSAGE)
        target = kwargs.get("device")
        to_cuda = _is_cuda(target)
        if to_cuda:
            kwargs["device"] = _CPU
        out = func(*args, **kwargs)
        to_cpu = target is not None and not to_cuda
        wrap = func is not torch.ops.aten.copy_.default and (to_cuda or not to_cpu)
        return tree_map(lambda v: _original(originals, v, wrap), out)


def tree_map(fn, value: object) -> object:  # noqa: ANN001
    """``fn`` applied to every leaf of nested tuples, lists and dicts (faster than pytree's)."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, (tuple, list)):
        if not value:
            return value
        mapped = [tree_map(fn, v) for v in value]
        if hasattr(type(value), "_fields"):  # a named tuple
            return type(value)(*mapped)
        return mapped if type(value) is list else type(value)(mapped)
    if isinstance(value, dict):
        return {k: tree_map(fn, v) for k, v in value.items()}
    return fn(value)


def _is_cuda(device: object) -> bool:
    if isinstance(device, str):
        return device.split(":")[0] in ("cuda", SIMULATED.type)
    return isinstance(device, torch.device) and device.type in ("cuda", SIMULATED.type)


def _wrap(value: object) -> object:
    if isinstance(value, torch.Tensor) and not isinstance(value, SimulatedCudaTensor):
        return SimulatedCudaTensor(value)
    return value


def _unwrap(value: object, where: str, found: list, originals: dict) -> object:
    """The CPU tensor inside ``value``, noting its place and device in ``found``.

    A module-level function, not a closure: a recursive closure would keep ``originals``, and
    so the tensors, alive in a reference cycle, and ``swap_tensors`` (``module.to``,
    ``load_state_dict``) refuses a tensor that something else still holds.
    """
    if isinstance(value, torch.Tensor):
        simulated = isinstance(value, SimulatedCudaTensor)
        found.append((where, simulated, value.dim()))
        inner = value.elem if simulated else value
        originals[id(inner)] = value
        return inner
    if isinstance(value, (list, tuple)) and not hasattr(type(value), "_fields"):
        return type(value)(_unwrap(v, "list", found, originals) for v in value)
    return value


def _written_arguments(func) -> set:  # noqa: ANN001
    """The names of the arguments an operation writes to (``self`` of ``add_``, ``out``)."""
    cached = _WRITTEN.get(func)
    if cached is None:
        cached = {a.name for a in func._schema.arguments if a.alias_info and a.alias_info.is_write}
        _WRITTEN[func] = cached
    return cached


_WRITTEN: dict = {}
# Operations that read a 0-dim value tensor as a number, on any device (besides pointwise ones).
_SCALAR_VALUE = {
    torch.ops.aten.masked_fill.Tensor,
    torch.ops.aten.masked_fill_.Tensor,
    torch.ops.aten.fill_.Tensor,
    torch.ops.aten.fill.Tensor,
}
_INDEX = {
    torch.ops.aten.index.Tensor,
    torch.ops.aten.index_put_.default,
    torch.ops.aten.index_put.default,
    torch.ops.aten._index_put_impl_.default,
}
_COPY = {torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default}


def _check_devices(func, found: list) -> None:  # noqa: ANN001
    """Raise where CUDA would: a CPU tensor beside a CUDA one, with CUDA's exceptions only.

    CUDA lets a CPU tensor of 0 dimensions be an *input* of a pointwise operation (a number);
    never an output, an in-place target or a member of a list (``cat``, ``stack``). Indexing
    takes CPU index tensors for a CUDA tensor (not CUDA indices for a CPU one), and values
    on the tensor's device or of 0 dimensions. Copies may cross devices.
    """
    if func in _COPY:
        return
    cpu = [(where, dims) for where, simulated, dims in found if not simulated]
    if not cpu:
        return
    if func in _INDEX:
        self_simulated = found[0][1]
        values = found[-1] if func is not torch.ops.aten.index.Tensor else None
        index_cpu_ok = self_simulated and (
            values is None or values[1] or values[2] == 0 or values[0] == "list"
        )
        if index_cpu_ok:
            return
        raise RuntimeError(MIXED_MESSAGE.format(op=func))
    scalar_ok = torch.Tag.pointwise in func.tags or func in _SCALAR_VALUE
    for where, dims in cpu:
        if dims > 0 or where != "input" or not scalar_ok:
            raise RuntimeError(MIXED_MESSAGE.format(op=func))


def _original(originals: dict, value: object, wrap: bool) -> object:
    """An in-place result is the argument it modified; a new CUDA result is wrapped."""
    if isinstance(value, torch.Tensor) and id(value) in originals:
        return originals[id(value)]
    return _wrap(value) if wrap else value


class _FunctionMode(TorchFunctionMode):
    """Runs a call that names the CUDA device on the CPU instead, and wraps what it returns."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN206
        kwargs = dict(kwargs or {})
        if func in _KEEP_DEVICE:  # torch.device("cuda") stays what it says, as does parsing
            return func(*args, **kwargs)
        if (
            func in (torch.Tensor.numpy, torch.Tensor.__array__)
            and isinstance(args[0], SimulatedCudaTensor)
            and not kwargs.get("force")
        ):
            raise TypeError(NUMPY_MESSAGE)
        simulated_self = bool(args) and isinstance(args[0], SimulatedCudaTensor)
        if func is torch.Tensor.numpy and simulated_self and kwargs.get("force"):
            return args[0].elem.numpy()  # force=True copies to the host, as on CUDA
        if func is torch.Tensor.get_device and simulated_self:
            return 0
        if func is torch.Tensor.cuda:  # x.cuda(), and so model.cuda()
            return args[0] if simulated_self else _wrap(args[0].to(_CPU, copy=True))
        if func is torch.Tensor.to and len(args) > 1 and isinstance(args[1], torch.Tensor):
            other = args[1]  # x.to(other): other's device and dtype
            if isinstance(other, SimulatedCudaTensor) and not simulated_self:
                return _wrap(args[0].to(dtype=other.dtype, copy=True))
        if func in (torch.Tensor.new_tensor, torch.Tensor.new_zeros, torch.Tensor.new_ones):
            if simulated_self and "device" not in kwargs:
                kwargs["device"] = "cuda"  # new tensors on self's device
        if func in _PROPERTIES and isinstance(args[0], SimulatedCudaTensor):
            return _PROPERTIES[func]
        if func is torch.Tensor.tolist and isinstance(args[0], SimulatedCudaTensor):
            return args[0].elem.tolist()  # allowed on CUDA
        if func is torch.Tensor.__setitem__ and isinstance(args[0], SimulatedCudaTensor):
            if isinstance(args[2], (bool, int, float, complex, np.generic)):  # else it is on meta
                args = (args[0], args[1], torch.tensor(args[2], dtype=args[0].dtype))
        if func is torch.where and len(args) == 3:  # PyTorch would make the numbers on meta
            args = tuple(torch.tensor(v) if isinstance(v, (bool, int, float)) else v for v in args)
        if func is torch.tensor and args and isinstance(args[0], (list, tuple)):
            # CUDA scalars in a list are read as numbers, below the dispatcher
            args = (tree_map(_unwrapped, args[0]), *args[1:])
        moved = any(_is_cuda(v) for v in (*args, *kwargs.values()))
        if not moved:
            out = func(*args, **kwargs)
            _check_not_dataless(out)
            return out
        generator = kwargs.get("generator")
        if isinstance(generator, torch.Generator) and generator.device.type == "cpu":
            raise RuntimeError(GENERATOR_MESSAGE)
        if func is torch.Tensor.to and simulated_self:
            plain = [v for v in (*args[1:], *kwargs.values()) if not _is_cuda(v)]
            if not kwargs.get("copy") and not any(isinstance(v, torch.dtype) for v in plain):
                return args[0]  # already there: CUDA returns the tensor itself
        args = tuple(_CPU if _is_cuda(v) else v for v in args)
        kwargs = {k: _CPU if _is_cuda(v) else v for k, v in kwargs.items()}
        out = func(*args, **kwargs)
        if func is torch.Tensor.to and not simulated_self:  # a move from the CPU
            if torch.is_grad_enabled() and out.requires_grad:
                return _ToSimulated.apply(out)  # with the autograd edge back to the CPU
            return _wrap(out.clone() if out is args[0] else out)  # a copy, not an alias
        return tree_map(_wrap, out)


class _ToSimulated(torch.autograd.Function):
    """A move to simulated CUDA that autograd can differentiate, as ``ToCopyBackward``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> SimulatedCudaTensor:  # noqa: ANN001
        return SimulatedCudaTensor(x.detach().clone())

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return grad.elem if isinstance(grad, SimulatedCudaTensor) else grad


# What a CUDA tensor says of itself (the wrapper's own device is the data-less one).
_PROPERTIES = {
    torch.Tensor.device.__get__: torch.device("cuda", 0),
    torch.Tensor.is_cuda.__get__: True,
    torch.Tensor.is_meta.__get__: False,
    torch.Tensor.is_cpu.__get__: False,
}
_KEEP_DEVICE = {torch.device, torch._C._nn._parse_to}


def _unwrapped(value: object) -> object:
    return value.elem if isinstance(value, SimulatedCudaTensor) else value


def _check_not_dataless(value: object) -> None:
    """Fail loudly where PyTorch made a tensor on the data-less device behind the wrapper."""
    if isinstance(value, (tuple, list)):
        for item in value:
            _check_not_dataless(item)
    elif (
        isinstance(value, torch.Tensor)
        and not isinstance(value, SimulatedCudaTensor)
        and value.device.type == SIMULATED.type
    ):
        raise AssertionError("simulated CUDA: a tensor was made without data; extend the module")


_PATCHES = {
    "is_available": lambda: True,
    "device_count": lambda: 1,
    "current_device": lambda: 0,
    "is_initialized": lambda: True,
    "_lazy_init": lambda: None,
    "get_device_name": lambda device=None: "simulated CUDA device (the CPU)",
    "get_rng_state": lambda device="cuda": torch.get_rng_state(),
    "get_rng_state_all": lambda: [torch.get_rng_state()],
    "set_rng_state": lambda state, device="cuda": None,
    "set_rng_state_all": lambda states: None,
    "synchronize": lambda device=None: None,
    "manual_seed": lambda seed: None,
    "manual_seed_all": lambda seed: None,
}


@contextlib.contextmanager
def simulate_cuda() -> Iterator[None]:
    """Within the block, ``"cuda"`` is a simulated device computing on the CPU."""
    enable()
    try:
        yield
    finally:
        disable()


_state: dict = {}


def enable() -> None:
    """Start simulating CUDA (for a notebook's first cell); :func:`disable` stops."""
    if _state:
        return
    saved = {name: getattr(torch.cuda, name) for name in _PATCHES}
    saved_accelerator = torch.accelerator.current_accelerator
    for name, patch in _PATCHES.items():
        setattr(torch.cuda, name, patch)
    # torch.optim asks the accelerator for CUDA-graph capture, which needs a driver.
    torch.accelerator.current_accelerator = lambda check_available=False: None
    # module.to("cuda") must keep its Parameter objects, as on CUDA, so that an optimizer made
    # before the move updates the moved weights: swap, since a wrapper cannot take .data.
    swap = torch.__future__.get_swap_module_params_on_conversion()
    torch.__future__.set_swap_module_params_on_conversion(True)
    function = _FunctionMode()
    function.__enter__()
    _state.update(saved=saved, accelerator=saved_accelerator, mode=function, swap=swap)


def disable() -> None:
    """Stop simulating CUDA; simulated tensors that remain must not be used afterwards."""
    if not _state:
        return
    _state["mode"].__exit__(None, None, None)
    for name, original in _state["saved"].items():
        setattr(torch.cuda, name, original)
    torch.accelerator.current_accelerator = _state["accelerator"]
    torch.__future__.set_swap_module_params_on_conversion(_state["swap"])
    _state.clear()
