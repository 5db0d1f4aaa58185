"""`CompiledKernel.bind`: compile once, check once, call many.

A `Launcher` holds a compiled kernel bound to one argument signature: every check that
depends only on shapes, strides, dtypes and the device ran at bind time, and the backend
prepared what it can (the Triton backend: its argument list, launch grids, workspaces).
A call compares its arguments' signature with the bound one (refusing any difference with
an ArgumentError), checks that no output overlaps another argument, and launches.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mixtile.errors import ArgumentError
from mixtile.runtime.args import check_args, check_overlap, check_scalar, extent


@dataclass
class RunInfo:
    """What a run reports besides its outputs: the simulator's cycles per pipe, and per
    Out tensor the mask of elements that still hold the simulator's never-written poison;
    with run_jit's timeline=, the timing model's Timeline."""

    cycles: dict = field(default_factory=dict)
    unwritten: dict[str, np.ndarray] = field(default_factory=dict)
    timeline: Any = None  # the NPU timing model's Timeline (run_jit timeline=)


def bind(ck, args: tuple, dims: dict[str, int] | None = None, tune: bool = False,
         launch_config: tuple[int, int] | None = None, checks: bool = True,
         fresh_workspaces: bool = False) -> Launcher:
    """A Launcher of `ck` for arguments like `args`; dims: from check_args when the caller
    ran it already (run_jit), else it runs here. Launchers are kept per signature on the
    compiled kernel (they hold no tensor of a call), so binding again is a lookup.
    fresh_workspaces: allocate the kernel's workspaces per call (run_jit), not once."""
    backend = ck.backend
    if (tune or launch_config is not None) and backend.tuner is None:
        raise ArgumentError(f"target {backend.name!r} has no launch configurations to "
                            f"{'tune' if tune else 'set'}",
                            fix="tune / launch_config apply to target='cuda' (Triton's "
                                "num_warps, num_stages); leave them out here")
    if tune and launch_config is not None:
        raise ArgumentError("tune=True and launch_config both choose the launch "
                            "configuration", fix="pass one of them")
    if launch_config is not None and (
            not isinstance(launch_config, tuple) or len(launch_config) != 2
            or not all(type(v) is int and v > 0 for v in launch_config)):
        raise ArgumentError(f"launch_config must be (num_warps, num_stages), two positive "
                            f"ints, got {launch_config!r}", fix="e.g. launch_config=(4, 3)")
    if dims is None:  # else the caller (run_jit) ran these
        backend.require()
        dims = check_args(ck.kfn, args, backend)
    key = (signature(args), tune, launch_config, checks, fresh_workspaces)
    hit = ck._launchers.get(key)
    if hit is not None:
        return hit
    static = ck.options.get("static_dims") or {}
    for d, n in static.items():
        if d in dims and dims[d] != n:
            raise ArgumentError(f"dim `{d}` is {dims[d]}, but `{ck.name}` was compiled for a "
                                f"static {d}={n} (compile_cfg static_dims)",
                                fix="compile again for these sizes, or without static_dims")
    run = ck.runner.bind(args, dims, tune=tune, launch_config=launch_config, checks=checks,
                         fresh_workspaces=fresh_workspaces)
    launcher = Launcher(ck, args, run)
    if len(ck._launchers) > 64:  # many signatures: keep the table bounded
        ck._launchers.clear()
    ck._launchers[key] = launcher
    return launcher


def signature(args: tuple) -> tuple:
    """What a launcher is bound to: each tensor's shape, strides, dtype and device, each
    scalar's type."""
    return tuple((a.shape, a.stride(), a.dtype, a.device) if isinstance(a, torch.Tensor)
                 else type(a) for a in args)


class Launcher:
    """A compiled kernel bound to one argument signature, from
    `mt.compile(kernel, target=..., **consts).bind(*example_args)`.

    `launch(*args)` runs the kernel on arguments with the bound signature: the same
    shapes, strides, dtypes and device for every tensor, a Python number of the declared
    kind for every scalar (its value may change). Any other call raises ArgumentError
    (bind again for other shapes). Outputs are written in place; the call returns None.
    Workspaces the kernel needs are allocated once, at bind time, so calls on one stream
    run one after another (not concurrently on several streams). compiled: the
    CompiledKernel."""

    def __init__(self, ck, args: tuple, run) -> None:
        kfn = ck.kfn
        self.compiled = ck
        self._run = run
        self._n = len(args)
        self._tidx = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
        self._sig = [(args[i].shape, args[i].stride(), args[i].dtype, args[i].device)
                     for i in self._tidx]
        specs = dict(kfn.scalars)
        self._scalars = [(i, kfn.order[i], specs[kfn.order[i]]) for i, a in enumerate(args)
                         if not isinstance(a, torch.Tensor)]
        self._stypes = [(i, (int, float) if spec.dtype.is_float else (int,))
                        for i, _, spec in self._scalars]
        # overlap: (written index, other index, written extent, other extent) into _tidx,
        # for the pairs that can overlap at all (both non-empty)
        names = [kfn.order[i] for i in self._tidx]
        ext = [extent(args[i]) for i in self._tidx]
        self._pairs = [(j, k, ext[j], ext[k]) for j in range(len(names))
                       for k in range(len(names))
                       if j != k and names[j] in kfn.written and ext[j] and ext[k]
                       and (names[k] not in kfn.written or k > j)]
        self._ptrs = [args[i].data_ptr() for i in self._tidx] if self._pairs else None

    def __call__(self, *args) -> None:
        """Run the kernel on `args` (the bound signature; see the class docstring)."""
        if len(args) != self._n:
            self._refuse(args)
        try:
            if [(args[i].shape, args[i].stride(), args[i].dtype, args[i].device)
                    for i in self._tidx] != self._sig:
                self._refuse(args)
        except AttributeError:  # not a tensor
            self._refuse(args)
        for i, kinds in self._stypes:
            v = args[i]
            if type(v) not in kinds and (not isinstance(v, kinds) or isinstance(v, bool)):
                self._refuse(args)
        if self._pairs:
            ptrs = [args[i].data_ptr() for i in self._tidx]
            if ptrs != self._ptrs:  # the bound tensors' memory was checked at bind time
                for j, k, ej, ek in self._pairs:
                    if ptrs[j] < ptrs[k] + ek and ptrs[k] < ptrs[j] + ej:
                        self._refuse_overlap(args)
        self._run(args)

    def _refuse(self, args) -> None:
        """Raise the ArgumentError that says how `args` differ from the bound signature."""
        kfn = self.compiled.kfn
        fix = ("bind again for these arguments (mt.compile(...).bind(...)), or use "
               "mt.run_jit, which checks every call")
        if len(args) != self._n:
            raise ArgumentError(f"kernel `{kfn.name}` takes {self._n} runtime arguments "
                                f"({', '.join(kfn.order)}), got {len(args)}")
        for i, (shape, stride, dtype, device) in zip(self._tidx, self._sig):
            a, name = args[i], kfn.order[i]
            if not isinstance(a, torch.Tensor):
                raise ArgumentError(f"argument `{name}` must be a torch.Tensor, got "
                                    f"{type(a).__name__}")
            for what, got, want in (("shape", list(a.shape), list(shape)),
                                    ("strides", list(a.stride()), list(stride)),
                                    ("dtype", a.dtype, dtype), ("device", a.device, device)):
                if got != want:
                    raise ArgumentError(f"argument `{name}` has {what} {got}; this launcher "
                                        f"was bound to {want}", fix=fix)
        for i, name, spec in self._scalars:
            check_scalar(name, spec, args[i])
        raise ArgumentError("the arguments do not match the bound signature", fix=fix)

    def _refuse_overlap(self, args) -> None:
        kfn = self.compiled.kfn
        check_overlap(kfn, [(kfn.order[i], args[i], args[i].data_ptr(), extent(args[i]))
                            for i in self._tidx])

    def __repr__(self) -> str:
        sig = ", ".join(f"{self.compiled.kfn.order[i]}{list(s[0])}"
                        for i, s in zip(self._tidx, self._sig))
        return (f"<Launcher {self.compiled.name} target={self.compiled.backend.name} "
                f"({sig})>")

