"""`mixtile.run_jit`: check arguments, compile, execute on a target, compare with a golden."""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mixtile.errors import ArgumentError
from mixtile.language.kernel import KernelFn
from mixtile.runtime.args import TORCH_DTYPE, check_args
from mixtile.runtime.backends import Backend, get_backend
from mixtile.runtime.compiler import compile
from mixtile.runtime.golden import RunResult, compare, unwritten_note
from mixtile.runtime.launcher import RunInfo, bind

__all__ = ["TORCH_DTYPE", "check_args", "run_jit"]


def run_jit(kfn: KernelFn, *args, target: str | Backend = "sim",
            golden: Callable | None = None, rtol: float | None = None,
            atol: float | None = None, compile_cfg: dict | None = None, checks: bool = True,
            tune: bool = False, launch_config: tuple[int, int] | None = None,
            timeline: str | Path | bool | None = None, **consts) -> RunResult:
    """Compile (cached) and run `kfn` on `args`; outputs are written into the Out/InOut
    tensors. With `golden(*args) -> tensor | tuple`, compare each output (in parameter
    order) with it and report pass/fail and the error figures; without one, nothing is
    compared (`passed` is None).

    target: "sim", "cuda", "npu" or "auto" (see mt.compile); checks (sim): the
    simulator's checks; tune / launch_config (cuda): see CompiledKernel.bind. Every call
    checks its arguments again: `mt.compile(...).bind(*args)` checks once.

    timeline (sim): also run the NPU timing model (docs/timeline.md) for the machine
    (compile_cfg arch, default a2); a path writes its Chrome / Perfetto trace there (and a
    PNG swimlane beside it when matplotlib is installed) and prints the summary; True
    only records it. RunResult.timeline holds it (estimated time, utilisation, bound)."""
    if not isinstance(kfn, KernelFn):
        raise ArgumentError(f"run_jit needs an @mt.kernel function, got {kfn!r}")
    backend = get_backend(target)
    if not isinstance(timeline, (str, os.PathLike, bool, type(None))):
        raise ArgumentError(f"timeline= must be a file path (or True), got {timeline!r}",
                            fix='e.g. timeline="kernel.json"')
    if timeline is not None and timeline is not False and not backend.timed:
        raise ArgumentError(
            f"timeline= needs a run of the simulator, which runs the NPU timing model; "
            f"target {backend.name!r} runs the kernel itself",
            fix='use target="sim" (compile_cfg=dict(arch="a2"|"a3"|"a5") picks the machine, '
                'pipeline="npu" the Ascend C lowering)')
    backend.require()
    dims = check_args(kfn, args, backend)
    if compile_cfg and compile_cfg.get("specialize_dims"):
        compile_cfg = {**compile_cfg, "static_dims": dims}
    ck = compile(kfn, compile_cfg, target=backend, **consts)
    launcher = bind(ck, args, dims, tune=tune, launch_config=launch_config, checks=checks,
                    fresh_workspaces=True)
    inputs_before = [a.clone() if isinstance(a, torch.Tensor) else a for a in args] \
        if golden is not None else None
    t0 = time.perf_counter()
    if timeline is not None and timeline is not False:
        if ck.target.timing is None:
            raise ArgumentError(f"machine {ck.target.name} has no NPU timing table",
                                fix='compile for an NPU machine: compile_cfg=dict(arch="a2")')
        info = launcher._run(args, timing=True)
    else:
        info = launcher._run(args) or RunInfo()
    res = RunResult(None, [], ck.compile_s, time.perf_counter() - t0, backend.name,
                    info.cycles, unwritten_note(info.unwritten), info.timeline)
    if info.timeline is not None and timeline is not True:
        info.timeline.write(timeline)
        print(info.timeline.text())
    if golden is not None:
        outs = [(n, a) for n, a in zip(kfn.order, args) if n in kfn.written]
        want = _golden_outputs(kfn, golden(*inputs_before), outs)
        res.comparisons = [compare(n, a, w, rtol, atol, info.unwritten.get(n))
                           for (n, a), w in zip(outs, want)]
        res.passed = all(c.passed for c in res.comparisons)
    return res


def _golden_outputs(kfn: KernelFn, want, outs: list[tuple]) -> tuple:
    """The golden's result as one tensor per output (compare checks each one's shape)."""
    want = tuple(want) if isinstance(want, (tuple, list)) else (want,)
    if not all(isinstance(w, torch.Tensor) for w in want):
        raise ArgumentError(f"golden must return a torch.Tensor or a tuple of them (one "
                            f"per output), got {[type(w).__name__ for w in want]}")
    if len(want) != len(outs):
        raise ArgumentError(f"golden returned {len(want)} tensors; kernel `{kfn.name}` "
                            f"has {len(outs)} outputs ({', '.join(n for n, _ in outs)})")
    return want
