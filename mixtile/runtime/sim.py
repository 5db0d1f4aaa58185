"""Running compiled kernels on the CPU simulator from torch tensors."""
from __future__ import annotations

import weakref

import numpy as np
import torch

from mixtile.ir.types import DType, Role, TensorType
from mixtile.runtime.launcher import RunInfo

# Inputs converted to the simulator's compute form, reused while the tensor is unchanged:
# torch bumps a tensor's version counter (shared by its views) on every in-place write.
# (torch tensors compare elementwise, so entries are keyed by id and hold a weak reference.)
_converted: dict[int, tuple] = {}


def to_sim(a: torch.Tensor, dtype: DType, reuse: bool) -> np.ndarray:
    """`a` in the simulator's compute form (float32 for float dtypes)."""
    if reuse:
        hit = _converted.get(id(a))
        if hit is not None and hit[0]() is a and hit[1] == a._version:
            return hit[2]
    t = a.detach()
    arr = t.to(torch.float32).contiguous().numpy() if dtype.is_float else \
        t.contiguous().numpy()
    if reuse:
        arr.flags.writeable = False
        key = id(a)
        _converted[key] = (weakref.ref(a, lambda _r: _converted.pop(key, None)), a._version,
                           arr)
    return arr


def poisoned(dtype: DType, arr: np.ndarray) -> np.ndarray | None:
    """The elements of a simulated Out tensor that still hold the poison the simulator
    fills outputs with (NaN; the int minimum): the ones the kernel never wrote, unless it
    wrote that very value. None for bool outputs (their poison, False, is a value)."""
    from mixtile.simulator import poison

    if dtype is DType.BOOL:
        return None
    p = poison(dtype, ())
    return np.isnan(arr) if dtype.is_float else arr == p


class SimRunner:
    """Runs one compiled kernel on the simulator (kept on its CompiledKernel)."""

    def __init__(self, ck) -> None:
        self.ck = ck

    def launch_configs(self) -> list:
        return []

    def bind(self, args: tuple, dims: dict, *, tune: bool, launch_config, checks: bool,
             fresh_workspaces: bool):
        ck = self.ck
        index = {name: i for i, name in enumerate(ck.kfn.order)}
        params = [(p.name, index[p.name], p.value.type, p.role) for p in ck.kernel.params
                  if p.role is not Role.SCRATCH]

        def run(args: tuple, timing: bool = False) -> RunInfo:
            """One simulated run; timing: also run the NPU timing model
            (RunInfo.timeline)."""
            from mixtile.simulator import simulate

            sim_args = {}
            for name, i, t, role in params:
                a = args[i]
                sim_args[name] = to_sim(a, t.dtype, role is Role.IN) \
                    if isinstance(t, TensorType) else a
            result = simulate(ck.kernel, sim_args, ck.target, checks=checks, timing=timing)
            info = RunInfo(dict(result.cycles), timeline=result.timeline)
            for name, i, t, role in params:
                arr = result.outputs.get(name)
                if arr is None:
                    continue
                if role is Role.OUT:
                    mask = poisoned(t.dtype, arr)
                    if mask is not None and mask.any():
                        info.unwritten[name] = mask
                out = args[i]
                out.copy_(torch.from_numpy(np.ascontiguousarray(arr)).to(out.dtype))
            return info

        return run
