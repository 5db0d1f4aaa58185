"""`simulate`: bind arguments to GM buffers, compile the kernel, run it, collect results."""
from __future__ import annotations

from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from mixtile.errors import ArgumentError
from mixtile.ir.core import Kernel, Param, Value
from mixtile.ir.types import Pipe, Role, ScalarType, TensorType
from mixtile.simulator.interp import Machine, compile_kernel
from mixtile.simulator.memory import GMBuffer
from mixtile.simulator.report import SimResult
from mixtile.simulator.sched import launch_core
from mixtile.simulator.timing import TimingModel
from mixtile.target import Target, get_target

__all__ = ["bind_args", "launch_core", "simulate"]

# The simulator multiplies tiles (at most a few hundred rows and columns) one at a time:
# BLAS threads only add hand-offs, and on a loaded machine a multithreaded BLAS waits for
# descheduled threads (a 16x256 @ 256x128 product measured 5-8 ms instead of 30 us with
# other processes on both cores; a Qwen3-0.6B decode step 36 s instead of 3 s). Runs use
# one BLAS thread; the caller's setting is restored after each run.
_BLAS = None


def _one_blas_thread():
    global _BLAS
    if _BLAS is None:
        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


def simulate(kernel: Kernel, args: dict[str, Any], target: Target | str | None = None,
             checks: bool = True, timing: bool = False) -> SimResult:
    """Run `kernel` on the CPU with numpy and return its outputs and cycle counts.

    args: parameter name -> numpy array in compute form (float32 for float dtypes, values
    representable in the param dtype; native ints otherwise) or a Python scalar. OUT arrays
    are optional (they only give shapes); SCRATCH tensors are allocated here. Caller arrays
    are never modified; outputs are returned only when the whole run succeeds.
    Every core of every cluster runs as a deterministic cooperative task (`sched`).
    With `checks`, capacity, data-path, GM bounds, uninitialised-read, GM race and flag
    overflow checks raise the mixtile.errors classes with the op's line, the numbers, a fix
    and the block/core/op. Deadlocks and impossible syncalls are always errors.
    With `timing`, the NPU timing model (`timing`, `trace`) places every op in time:
    `SimResult.timeline` holds the events and the estimated kernel time.
    """
    target = get_target(target)
    model = TimingModel(kernel, target) if timing else None
    with np.errstate(all="ignore"), _one_blas_thread():
        bound, buffers = bind_args(kernel, args, checks)
        machine = Machine(target, launch_core(kernel), checks, model)
        program = compile_kernel(kernel, target, checks, model)
        program.run(bound, machine)
    outputs = {p.name: buffers[p.name].data for p in kernel.params
               if p.role in (Role.OUT, Role.INOUT)}
    cores = machine.sorted_cores()
    core_cycles = {c.name: c.cycles_by_pipe() for c in cores}
    totals = {p: sum(cc[p] for cc in core_cycles.values()) for p in Pipe}
    timeline = model.result(kernel.name) if model is not None else None
    return SimResult(outputs, totals, core_cycles, machine.blocks, timeline)


def _bind_shape(p: Param, arr: np.ndarray, sym: dict[str, int]) -> None:
    t: TensorType = p.value.type
    if arr.ndim != len(t.shape):
        raise ArgumentError(f"argument `{p.name}` has {arr.ndim} dims {tuple(arr.shape)}, "
                            f"the kernel expects {len(t.shape)} ({t})",
                            fix="pass an array of the parameter's rank")
    for d, (want, got) in enumerate(zip(t.shape, arr.shape, strict=False)):
        if isinstance(want, str):
            if sym.setdefault(want, got) != got:
                raise ArgumentError(f"argument `{p.name}` dim {d} is {got}, but symbolic dim "
                                    f"{want!r} is already {sym[want]}",
                                    fix="pass arrays whose shared dims agree")
        elif want != got:
            raise ArgumentError(f"argument `{p.name}` dim {d} is {got}; the kernel expects "
                                f"{want} ({t})", fix="pass an array of the declared shape")


def _static_shape(p: Param, sym: dict[str, int]) -> tuple[int, ...]:
    shape = []
    for d in p.value.type.shape:
        if isinstance(d, str):
            if d not in sym:
                raise ArgumentError(f"cannot size {p.role.value} tensor `{p.name}`: symbolic "
                                    f"dim {d!r} is not given by any argument",
                                    fix=f"pass an array for `{p.name}` to give its shape")
            d = sym[d]
        shape.append(d)
    return tuple(shape)


def bind_args(kernel: Kernel, args: dict[str, Any], checks: bool
              ) -> tuple[dict[Value, Any], dict[str, GMBuffer]]:
    """-> (param value -> GMBuffer or scalar, name -> GMBuffer). Never mutates `args`."""
    names = {p.name for p in kernel.params}
    extra = sorted(set(args) - names)
    if extra:
        raise ArgumentError(f"unknown arguments {extra} for kernel `{kernel.name}`",
                            fix=f"the parameters are {sorted(names)}")
    sym: dict[str, int] = {}
    arrays: dict[str, np.ndarray] = {}
    bound: dict[Value, Any] = {}
    for p in kernel.params:
        t = p.value.type
        if isinstance(t, ScalarType):
            if p.name not in args:
                raise ArgumentError(f"missing scalar argument `{p.name}`",
                                    fix=f"pass {p.name}=<{t}>")
            v = args[p.name]
            bound[p.value] = float(v) if t.dtype.is_float else int(v)
            continue
        if p.role is Role.SCRATCH:
            if p.name in args:
                raise ArgumentError(f"`{p.name}` is a SCRATCH workspace; the simulator "
                                    "allocates it", fix=f"do not pass `{p.name}`")
            continue
        if p.name not in args:
            if p.role is Role.OUT:
                continue
            raise ArgumentError(f"missing tensor argument `{p.name}` ({t})",
                                fix=f"pass an array for `{p.name}`")
        arrays[p.name] = a = np.asarray(args[p.name])
        _bind_shape(p, a, sym)
    buffers: dict[str, GMBuffer] = {}
    for p in kernel.params:
        t = p.value.type
        if not isinstance(t, TensorType):
            continue
        if p.role is Role.IN:
            buf = GMBuffer.wrap_input(p.name, t.dtype, arrays[p.name])
        elif p.role is Role.INOUT:
            buf = GMBuffer.copy_input(p.name, t.dtype, arrays[p.name])
        else:
            shape = arrays[p.name].shape if p.name in arrays else _static_shape(p, sym)
            buf = GMBuffer.poisoned(p.name, t.dtype, p.role, shape, checks)
        buffers[p.name] = bound[p.value] = buf
    return bound, buffers
