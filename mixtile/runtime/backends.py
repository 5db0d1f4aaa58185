"""The backend table: one record per execution target, one vocabulary.

A user names a backend (`target="sim" | "cuda" | "npu"`, or `"auto"`: the first of an
NPU, a CUDA GPU, the simulator that this machine has) and, where a backend compiles for
more than one machine, the machine (`compile_cfg=dict(arch="a5")`; the machine numbers
live in `mixtile.target`). `compile`, `run_jit`, `CompiledKernel.bind` and the Qwen3 CLI
read everything target-specific from the record here: no code outside this table
branches on a backend's name.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from mixtile.errors import ArgumentError
from mixtile.runtime.pipeline import ascendc_pipeline, default_pipeline, gpu_pipeline


@dataclass(frozen=True, eq=False)
class Backend:
    """One execution target: what it compiles for and how it runs.

    name: the user's word for it (`target=`). machines: the `mixtile.target` names it
    compiles for, the default first. pipeline: the pass list. accepts: the backends whose
    pipeline output it can execute (the simulator runs Ascend C's lowering too, to check
    that its extra passes keep the results). codegen: CompiledKernel -> the generated
    source (`CompiledKernel.code`). device: the torch device type its arguments must be
    on. missing: what this machine lacks to run it ([]: ready). present: whether this
    machine has the hardware (for "auto"). runner: CompiledKernel -> the object that binds
    and launches it (kept on the CompiledKernel, with any launch state). tuner: picks a
    launch configuration by timing (None: the backend has no launch configurations).
    timed: its runs can record the NPU timing model's timeline (run_jit timeline=).
    estimate: scores const tiles by the timing model's estimate (mt.autotune; None: the
    backend has no model). setup: how to get what `missing` names."""

    name: str
    machines: tuple[str, ...]
    pipeline: Callable[[], list]
    accepts: tuple[str, ...]
    codegen: Callable[[Any], str]
    device: Callable[[], str]
    missing: Callable[[], list[str]]
    present: Callable[[], bool]
    runner: Callable[[Any], Any]
    tuner: Callable | None = None
    timed: bool = False
    estimate: Callable | None = None
    setup: str = ""  # how to get what `missing` names

    @property
    def default_machine(self) -> str:
        return self.machines[0]

    def require(self) -> None:
        """Raise UnsupportedError naming what this machine lacks to run the backend."""
        from mixtile.errors import UnsupportedError

        lacking = self.missing()
        if lacking:
            raise UnsupportedError(f"target {self.name!r} needs " + "; ".join(lacking),
                                   fix=self.setup)

    def __repr__(self) -> str:
        return f"<Backend {self.name} machines={'/'.join(self.machines)}>"


# ---------------------------------------------------------------- sim

def _sim_runner(ck):
    from mixtile.runtime.sim import SimRunner

    return SimRunner(ck)


def _ir_text(ck) -> str:
    return ck.ir  # the simulator executes the lowered IR itself


def _estimate(*args, **kw):
    from mixtile.runtime.autotune import estimate

    return estimate(*args, **kw)


# ---------------------------------------------------------------- cuda (Triton)

def _has_triton() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _interpreting() -> bool:
    from mixtile.runtime.gpu import interpreting

    return interpreting()


def _cuda_device() -> str:
    return "cpu" if _interpreting() else "cuda"


def _cuda_missing() -> list[str]:
    out = []
    if not _has_triton():
        out.append("Triton (pip install mixtile[gpu])")
    if not _interpreting() and not torch.cuda.is_available():
        out.append("a CUDA GPU visible to torch (TRITON_INTERPRET=1 runs Triton's CPU "
                   "interpreter instead, on CPU tensors)")
    return out


def _cuda_present() -> bool:
    return torch.cuda.is_available() and _has_triton()


def _triton_runner(ck):
    from mixtile.runtime.gpu import TritonRunner

    return TritonRunner(ck)


def _triton_source(ck) -> str:
    return ck.runner.source


def _cuda_tuner(*args):
    from mixtile.runtime.gpu import tune

    return tune(*args)


# ---------------------------------------------------------------- npu (Ascend C)

def _npu_missing() -> list[str]:
    from mixtile.runtime.npu import missing

    return missing()


def _npu_runner(ck):
    from mixtile.runtime.npu import NpuRunner

    return NpuRunner(ck)


def _ascendc_source(ck) -> str:
    return ck.ascendc.source


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("sim", machines=("a2", "a3", "a5"), pipeline=default_pipeline,
            accepts=("sim", "npu"), codegen=_ir_text, device=lambda: "cpu",
            missing=lambda: [], present=lambda: True, runner=_sim_runner, timed=True,
            estimate=_estimate),
    Backend("cuda", machines=("gpu",), pipeline=gpu_pipeline, accepts=("cuda",),
            codegen=_triton_source, device=_cuda_device, missing=_cuda_missing,
            present=_cuda_present, runner=_triton_runner, tuner=_cuda_tuner,
            setup="run on a machine with an NVIDIA GPU (pip install mixtile[gpu]), or use "
                  'target="sim"'),
    Backend("npu", machines=("a2", "a3", "a5"), pipeline=ascendc_pipeline, accepts=("npu",),
            codegen=_ascendc_source, device=lambda: "npu", missing=_npu_missing,
            present=lambda: not _npu_missing(), runner=_npu_runner, estimate=_estimate,
            setup="run on an Ascend machine with CANN 8.0.RC2 or later (docs/ascendc.md), or "
                  'use target="sim" or "cuda"; mt.compile(kernel, target="npu").code shows '
                  "the source"),
)}
AUTO_ORDER = ("npu", "cuda", "sim")  # what "auto" picks: the first this machine has


def get_backend(name: str | Backend) -> Backend:
    """The Backend record for a target name ("sim", "cuda", "npu"); "auto" picks the first
    of an NPU, a CUDA GPU and the simulator that this machine has."""
    if isinstance(name, Backend):
        return name
    if name == "auto":
        return next(BACKENDS[n] for n in AUTO_ORDER if BACKENDS[n].present())
    try:
        return BACKENDS[name]
    except (KeyError, TypeError):
        raise ArgumentError(f"unknown target {name!r}",
                            fix=f"use one of {[*BACKENDS, 'auto']}") from None
