"""`mixtile.run_jit`: check arguments, compile, execute on a target, compare with a golden."""
from __future__ import annotations

import time
import weakref
from collections.abc import Callable

import numpy as np
import torch

from mixtile.errors import ArgumentError, UnsupportedError
from mixtile.ir.types import DType, Role, TensorType
from mixtile.language.kernel import KernelFn
from mixtile.language.spec import ScalarSpec
from mixtile.runtime.compiler import CompiledKernel, compile
from mixtile.runtime.golden import RunResult, compare

TORCH_DTYPE = {
    DType.F32: torch.float32, DType.F16: torch.float16, DType.BF16: torch.bfloat16,
    DType.F8E4M3: torch.float8_e4m3fn, DType.F8E5M2: torch.float8_e5m2,
    DType.I8: torch.int8, DType.I32: torch.int32, DType.I64: torch.int64,
    DType.BOOL: torch.bool,
}
TARGETS = ("sim", "auto", "cuda", "npu")


def check_args(kfn: KernelFn, args: tuple) -> dict[str, int]:
    """Check count, types, dtypes, ranks and shapes; return the symbolic dim bindings."""
    if len(args) != len(kfn.order):
        sig = ", ".join(kfn.order)
        raise ArgumentError(f"kernel `{kfn.name}` takes {len(kfn.order)} runtime arguments "
                            f"({sig}), got {len(args)}",
                            fix="pass tensors in signature order; constants as keywords")
    specs = dict(kfn.tensors) | dict(kfn.scalars)
    dims: dict[str, tuple[int, str]] = {}
    for name, a in zip(kfn.order, args):
        spec = specs[name]
        if isinstance(spec, ScalarSpec):
            ok = isinstance(a, (int, float)) and not isinstance(a, bool)
            if not ok or (isinstance(a, float) and not spec.dtype.is_float):
                raise ArgumentError(f"argument `{name}` must be a Python "
                                    f"{'number' if spec.dtype.is_float else 'int'}, "
                                    f"got {type(a).__name__}")
            continue
        if not isinstance(a, torch.Tensor):
            raise ArgumentError(f"argument `{name}` must be a torch.Tensor ({spec}), "
                                f"got {type(a).__name__}")
        want = TORCH_DTYPE[spec.dtype]
        if a.dtype != want:
            raise ArgumentError(f"argument `{name}` has dtype {a.dtype}, the kernel declares "
                                f"{spec}", fix=f"pass {name}.to({want})")
        if a.dim() != len(spec.dims):
            raise ArgumentError(f"argument `{name}` has {a.dim()} dims {list(a.shape)}, the "
                                f"kernel declares {len(spec.dims)}: {spec}")
        for axis, (d, n) in enumerate(zip(spec.dims, a.shape)):
            if isinstance(d, int) and d != n:
                raise ArgumentError(f"argument `{name}` axis {axis} is {n}, the kernel "
                                    f"declares a static {d}: {spec}")
            if isinstance(d, str):
                if n == 0:
                    raise ArgumentError(f"argument `{name}` axis {axis} (`{d}`) is empty")
                if d in dims and dims[d][0] != n:
                    raise ArgumentError(
                        f"dim `{d}` is {dims[d][0]} in `{dims[d][1]}` but {n} in `{name}`",
                        fix="tensors sharing a dim name must agree on its size")
                dims[d] = (n, name)
    _check_overlap(kfn, args)
    return {d: n for d, (n, _) in dims.items()}


def _check_overlap(kfn: KernelFn, args: tuple) -> None:
    """Refuse a tensor the kernel writes (Out/InOut) that shares memory with another
    tensor argument. The targets disagree on such a call: the simulator reads every input
    as it was before the call, a GPU program may read an element after another thread
    wrote it (its barriers order accesses of one parameter, not of two aliases), an NPU
    likewise across cores. Views are compared by the byte range each spans (a few us per
    call: this runs on every launch)."""
    if not kfn.written:
        return
    spans = []
    for name, a in zip(kfn.order, args):
        if isinstance(a, torch.Tensor) and not a.is_meta:
            lo = a.data_ptr()
            if a.is_contiguous():
                n = a.numel()
            else:  # the span up to the last element (views, expanded strides)
                n = sum((d - 1) * st for d, st in zip(a.shape, a.stride())) + 1 \
                    if a.numel() else 0
            if n:
                spans.append((lo, lo + n * a.element_size(), name, a))
    for i, (lo1, hi1, n1, a1) in enumerate(spans):
        for lo2, hi2, n2, a2 in spans[i + 1:]:
            if lo1 >= hi2 or lo2 >= hi1 or (n1 not in kfn.written and n2 not in kfn.written) \
                    or a1.device != a2.device:
                continue
            w = n1 if n1 in kfn.written else n2
            raise ArgumentError(
                f"arguments `{n1}` and `{n2}` of kernel `{kfn.name}` overlap in memory "
                f"(bytes {max(lo1, lo2) - lo1}..{min(hi1, hi2) - lo1} of `{n1}`), and the "
                f"kernel writes `{w}`: the result would depend on the target and on timing",
                fix=f"pass `{w}` a tensor of its own (torch.empty_like(...)) and copy it "
                    f"back after the call if it must land in place")


# Inputs converted to the simulator's compute form, reused while the tensor is unchanged:
# torch bumps a tensor's version counter (shared by its views) on every in-place write.
# (torch tensors compare elementwise, so entries are keyed by id and hold a weak reference.)
_converted: dict[int, tuple] = {}


def _to_sim(a: torch.Tensor, dtype: DType, reuse: bool) -> np.ndarray:
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


def _has_triton() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _resolve_target(target: str, args) -> str:
    if target not in TARGETS:
        raise ArgumentError(f"unknown target {target!r}", fix=f"use one of {TARGETS}")
    if target == "auto":  # an NPU torch_npu sees, else CUDA, else the simulator
        from mixtile.runtime.npu import missing

        if not missing():
            target = "npu"
        else:
            target = "cuda" if torch.cuda.is_available() and _has_triton() else "sim"
    if target == "npu":
        from mixtile.runtime.npu import missing

        lacking = missing()
        if lacking:
            raise UnsupportedError("target 'npu' needs " + "; ".join(lacking),
                                   fix='run on an Ascend machine with CANN 8.0.RC2 or later '
                                   '(docs/ascendc.md), or use target="sim" or "cuda"; '
                                   'mt.compile(kernel, target="npu").code shows the source')
        for a in args:
            if isinstance(a, torch.Tensor) and a.device.type != "npu":
                raise ArgumentError(f"target 'npu' needs NPU tensors, got one on {a.device}",
                                    fix="move the arguments with .npu()")
        return target
    if target == "cuda":
        from mixtile.runtime.gpu import interpreting

        if not _has_triton():
            raise UnsupportedError("target 'cuda' needs Triton", fix="pip install mixtile[gpu]")
        want = "cpu" if interpreting() else "cuda"
        for a in args:
            if isinstance(a, torch.Tensor) and a.device.type != want:
                raise ArgumentError(
                    f"target 'cuda' needs {want} tensors, got one on {a.device}",
                    fix="move the arguments with .cuda()" if want == "cuda" else
                    "TRITON_INTERPRET=1 runs Triton on the CPU: pass CPU tensors")
        return target
    for a in args:
        if isinstance(a, torch.Tensor) and a.device.type != "cpu":
            raise ArgumentError(f"target 'sim' needs CPU tensors, got one on {a.device}",
                                fix="move the arguments with .cpu()")
    return target


def run_jit(kfn: KernelFn, *args, target: str = "sim", golden: Callable | None = None,
            rtol: float | None = None, atol: float | None = None,
            compile_cfg: dict | None = None, checks: bool = True, **consts) -> RunResult:
    """Compile (cached) and run `kfn` on `args`; outputs are written into the Out/InOut
    tensors. With `golden(*args) -> tensor | tuple`, compare each output (in parameter
    order) with it and report pass/fail and the error figures."""
    if not isinstance(kfn, KernelFn):
        raise ArgumentError(f"run_jit needs an @mt.kernel function, got {kfn!r}")
    dims = check_args(kfn, args)
    tgt = _resolve_target(target, args)
    if compile_cfg and compile_cfg.get("specialize_dims"):
        compile_cfg = {**compile_cfg, "static_dims": dims}
    if tgt == "cuda":
        compile_cfg = {"arch": "gpu", **(compile_cfg or {}), "backend": "triton"}
    elif tgt == "npu":
        compile_cfg = {**(compile_cfg or {}), "backend": "ascendc"}
    ck = compile(kfn, compile_cfg, **consts)
    inputs_before = [a.clone() if isinstance(a, torch.Tensor) else a for a in args] \
        if golden is not None else None
    t0 = time.perf_counter()
    if tgt == "cuda":
        from mixtile.runtime.compiler import _cache_dir, _options
        from mixtile.runtime.gpu import run as run_gpu

        run_gpu(ck.kernel, dict(zip(kfn.order, args)),
                lambda: _cache_dir(_options(compile_cfg)))
        cycles = {}
    elif tgt == "npu":
        from mixtile.runtime.compiler import _cache_dir, _options
        from mixtile.runtime.npu import run as run_npu

        run_npu(ck, dict(zip(kfn.order, args)), dims, _cache_dir(_options(compile_cfg)))
        cycles = {}
    else:
        cycles = _run_sim(ck, kfn, args, checks)
    run_s = time.perf_counter() - t0
    res = RunResult(True, [], ck.compile_s, run_s, tgt, cycles)
    if golden is not None:
        want = golden(*inputs_before)
        want = want if isinstance(want, (tuple, list)) else (want,)
        if not all(isinstance(w, torch.Tensor) for w in want):
            raise ArgumentError(f"golden must return a torch.Tensor or a tuple of them (one "
                                f"per output), got {[type(w).__name__ for w in want]}")
        outs = [(n, a) for n, a in zip(kfn.order, args) if n in kfn.written]
        if len(want) != len(outs):
            raise ArgumentError(f"golden returned {len(want)} tensors; kernel `{kfn.name}` "
                                f"has {len(outs)} outputs ({', '.join(n for n, _ in outs)})")
        res.comparisons = [compare(n, a, w, rtol, atol) for (n, a), w in zip(outs, want)]
        res.passed = all(c.passed for c in res.comparisons)
    return res


def _run_sim(ck: CompiledKernel, kfn: KernelFn, args, checks: bool) -> dict:
    from mixtile.simulator import simulate

    k = ck.kernel
    sim_args = {}
    by_name = dict(zip(kfn.order, args))
    for p in k.params:
        if p.role is Role.SCRATCH:
            continue
        a = by_name[p.name]
        if isinstance(p.value.type, TensorType):
            sim_args[p.name] = _to_sim(a, p.value.type.dtype, reuse=p.role is Role.IN)
        else:
            sim_args[p.name] = a
    result = simulate(k, sim_args, ck.target, checks=checks)
    for name, arr in result.outputs.items():
        t = by_name[name]
        t.copy_(torch.from_numpy(np.ascontiguousarray(arr)).to(t.dtype))
    return dict(result.cycles)
