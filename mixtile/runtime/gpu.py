"""Running compiled kernels through Triton: source on disk, host-side grid, launches.

The generated source is written once per content hash under the cache directory and
imported from there (Triton's @jit needs a source file); Triton caches the binaries.
Phases of a launch (split at syncalls) run one after another on the current stream.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import torch

from mixtile.codegen.triton import generate
from mixtile.errors import ArgumentError, UnsupportedError
from mixtile.ir.core import Kernel
from mixtile.ir.registry import OPS
from mixtile.ir.types import Role, TensorType

_modules: dict[str, object] = {}
_generated: dict[int, tuple] = {}  # id(kernel IR) -> (kernel, source, launches)


def interpreting() -> bool:
    """Whether Triton runs kernels on the CPU (TRITON_INTERPRET=1, Triton's own switch)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def _module(source: str, cache_dir: Path):
    key = hashlib.sha256(source.encode()).hexdigest()[:24]
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"mt_triton_{key}.py"
    if not path.exists():
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(source)
        tmp.replace(path)
    mod = _modules.get(key)
    if mod is not None:
        return mod
    spec = importlib.util.spec_from_file_location(f"mt_triton_{key}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _modules[key] = mod
    return mod


def _host_scalars(kernel: Kernel, dims: dict[tuple[str, int], int], scalars: dict) -> dict:
    """Evaluate the kernel body's top-level scalar ops on the host (for launch grids)."""
    env: dict = {p.value: scalars[p.name] for p in kernel.params if p.name in scalars}
    for op in kernel.body.ops:
        if op.name == "spmd":
            continue
        if op.name == "dim":
            t = op.operands[0]
            env[op.result] = dims[(t.hint, op.attrs["axis"])]
        elif op.name == "load_scalar":
            raise UnsupportedError("a launch grid that reads GM has no host-side value",
                                   loc=op.loc)
        else:
            env[op.result] = OPS[op.name].impl(op.attrs, *(env[v] for v in op.operands))
    return env


def run(kernel: Kernel, by_name: dict, cache_dir: Path) -> None:
    """Launch `kernel` (compiled with the triton backend) on the tensors in `by_name`."""
    hit = _generated.get(id(kernel))
    if hit is None or hit[0] is not kernel:
        hit = _generated[id(kernel)] = (kernel, *generate(kernel))
    _, source, launches = hit
    mod = _module(source, cache_dir)
    device = next((a.device for a in by_name.values() if isinstance(a, torch.Tensor)), None)
    args: list = []
    dims: dict[tuple[str, int], int] = {}
    scalars: dict = {}
    for p in kernel.params:
        t = p.value.type
        if not isinstance(t, TensorType):
            scalars[p.name] = by_name[p.name]
            args.append(by_name[p.name])
            continue
        if p.role is Role.SCRATCH:
            shape = [d if isinstance(d, int) else _sym(by_name, kernel, d) for d in t.shape]
            a = torch.empty(shape, dtype=_torch_dtype(t.dtype), device=device)
        else:
            a = by_name[p.name]
        args.append(a)
        for d in range(len(t.shape)):
            dims[(p.name, d)] = a.shape[d]
            args += [a.shape[d], a.stride(d)]
    env = _host_scalars(kernel, dims, scalars)
    for la in launches:
        grid = env[la["grid"]] if la["grid"] in env else None
        if grid is None:
            raise UnsupportedError("the launch grid is not a host-side value")
        if grid > 0:
            _launch(getattr(mod, la["fn"]), int(grid), args)


_stages: dict = {}  # jit function -> the software-pipelining depth that fits


def _launch(fn, grid: int, args: list) -> None:
    """Launch with Triton's default pipelining depth, or a shallower one when the tiles
    of a deep pipeline do not fit in shared memory (chosen once per kernel)."""
    from triton.runtime.errors import OutOfResources

    known = _stages.get(fn)
    for ns in ((known,) if known else (3, 2, 1)):
        try:
            fn[(grid,)](*args, num_stages=ns)
        except OutOfResources:
            if ns == 1 or known:
                raise
            continue
        _stages[fn] = ns
        return


def _sym(by_name, kernel: Kernel, name: str) -> int:
    for p in kernel.params:
        t = p.value.type
        if isinstance(t, TensorType) and p.role is not Role.SCRATCH and name in t.shape:
            return by_name[p.name].shape[t.shape.index(name)]
    raise ArgumentError(f"cannot size a workspace: dim {name!r} is in no argument")


def _torch_dtype(dt):
    from mixtile.runtime.jit import TORCH_DTYPE

    return TORCH_DTYPE[dt]
