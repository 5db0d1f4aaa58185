"""`mixtile.compile`: trace, run the backend's pass pipeline, cache the result (memory and
disk); `CompiledKernel.bind` for launches without per-call re-checking."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixtile.errors import ArgumentError
from mixtile.ir.core import Kernel
from mixtile.ir.parser import parse_kernel
from mixtile.ir.printer import print_kernel
from mixtile.language.kernel import KernelFn
from mixtile.passes import PassContext, PassManager
from mixtile.runtime.backends import Backend, get_backend
from mixtile.target import Target, get_target

VERSION = "0.1.0"


def _source_hash() -> str:
    """A hash of mixtile's own sources, so a changed compiler never reuses stale entries."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256(VERSION.encode())
    for f in sorted(root.rglob("*.py")):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


_SOURCE_HASH = _source_hash()

_DEFAULTS = {
    "dump_passes": False,  # write NN_after_<Pass> files into dump_dir
    "dump_dir": "mixtile_dump",
    "verify": True,  # verify the IR between passes
    "keep_ir": True,  # keep the IR text after each pass (CompiledKernel.ir_after)
    "skip": (),  # pass names to leave out (debugging)
    # the machine (mixtile.target): a2, a3, a5 for targets sim and npu, gpu for cuda;
    # default: the target's first
    "arch": None,
    # the part's cube cores where they differ from the machine table's (910B SKUs with 20):
    # mt.target().clusters and every hard-SyncAll launch follow it
    "clusters": None,
    "disk_cache": True,
    # {"M": 16, ...}: compile those symbolic dims as static extents (run_jit fills it
    # from the arguments when specialize_dims=True); default: one kernel for all sizes
    "static_dims": None,
    "specialize_dims": False,
    # mixed kernels: GM ring slots per cube<->vector crossing and cluster (2: the cube
    # fills one slot while the vector lanes read the other; 1: strictly alternating)
    "pipeline_depth": 2,
    # NPU pipelines: loops that load on-chip tiles unrolled by two so that PlanMemory gives
    # the halves their own buffers (passes/ping_pong.py); False: every loop as written
    "pingpong": True,
    # whose pass pipeline to run, a backend name (default: the target's own); the
    # simulator also runs "npu"'s, to check that the Ascend C lowering keeps the results
    "pipeline": None,
    "cache_dir": None,  # default ~/.cache/mixtile
}


@dataclass
class CompiledKernel:
    """A compiled kernel: final IR, the IR after each pass, timings, generated code.

    target: the machine it was compiled for (mixtile.target); backend: the Backend record
    (`backend.name` is the `target=` word); runner: what launches it, with any launch
    state (the Triton backend's module, grids and chosen launch configs); it and the
    launchers bound so far are shared by the copies the compile cache hands out.
    `bind(*args)` makes a Launcher."""

    name: str
    kernel: Kernel
    target: Target
    consts: dict[str, Any]
    backend: Backend
    kfn: KernelFn
    options: dict[str, Any]
    ir_after: dict[str, str] = field(default_factory=dict)
    timings: list[tuple[str, float]] = field(default_factory=list)
    compile_s: float = 0.0
    from_cache: str = ""  # "", "memory" or "disk"
    runner: Any = field(default=None, repr=False, compare=False)
    _launchers: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.runner is None:
            self.runner = self.backend.runner(self)

    @property
    def ir(self) -> str:
        """The final, lowered IR as text."""
        return print_kernel(self.kernel)

    @property
    def code(self) -> str:
        """Generated code: Triton source for target cuda, Ascend C source for npu; for the
        simulator, which executes the lowered IR itself, the IR text."""
        return self.backend.codegen(self)

    @property
    def ascendc(self):
        """The Ascend C kernel (source, tiling layout, launch facts); target npu only."""
        if not hasattr(self.runner, "ascendc"):
            raise ArgumentError(f"{self.name} was compiled for target "
                                f"{self.backend.name!r}; the Ascend C kernel is made for "
                                f"target 'npu'", fix='compile with target="npu"')
        return self.runner.ascendc

    @property
    def cache_dir(self) -> Path:
        """Where generated sources and binaries are kept (compile_cfg cache_dir)."""
        return _cache_dir(self.options)

    def bind(self, *args, tune: bool = False, launch_config: tuple[int, int] | None = None,
             checks: bool = True):
        """A Launcher for arguments like `args` (same shapes, strides, dtypes, device):
        the signature checks run here, once; `launcher(*args)` then only compares each
        call's signature with the bound one and launches.
        tune (cuda): choose each launch's (num_warps, num_stages) by timing at its first
        launch outside CUDA-graph capture; launch_config (cuda): use this pair instead.
        checks (sim): the simulator's checks (capacity, bounds, races...)."""
        from mixtile.runtime.launcher import bind

        return bind(self, args, tune=tune, launch_config=launch_config, checks=checks)

    def launch_configs(self) -> list[tuple[str, int, tuple[int, int]]]:
        """[(launch function, grid, (num_warps, num_stages))] chosen so far (cuda; empty
        on targets without launch configurations)."""
        return self.runner.launch_configs()

    def __repr__(self) -> str:
        return (f"<CompiledKernel {self.name} target={self.backend.name} "
                f"machine={self.target.name} core={self.kernel.core.value} "
                f"compile={self.compile_s * 1e3:.1f} ms"
                f"{' from ' + self.from_cache + ' cache' if self.from_cache else ''}>")

    def pass_report(self) -> str:
        return "\n".join(f"{name:<18} {s * 1e3:8.3f} ms" for name, s in self.timings)


_memory_cache: dict[tuple, CompiledKernel] = {}


def _options(cfg: dict | None, backend: Backend) -> dict:
    cfg = dict(cfg or {})
    unknown = set(cfg) - set(_DEFAULTS)
    if unknown:
        fix = f"known options: {sorted(_DEFAULTS)}"
        if "backend" in unknown:
            fix = ('choose the backend with target="sim" | "cuda" | "npu" (mt.compile, '
                   'mt.run_jit); compile_cfg pipeline= runs another backend\'s passes')
        raise ArgumentError(f"unknown compile_cfg option(s) {sorted(unknown)}", fix=fix)
    opts = {**_DEFAULTS, **cfg}
    if opts["arch"] is None:
        opts["arch"] = backend.default_machine
    elif opts["arch"] not in backend.machines:
        raise ArgumentError(f"target {backend.name!r} compiles for "
                            f"{' / '.join(backend.machines)}, not arch {opts['arch']!r}",
                            fix=f"leave arch out (default {backend.default_machine!r}) or use "
                                f"one of {list(backend.machines)}")
    if opts["pipeline"] is None:
        opts["pipeline"] = backend.name
    elif opts["pipeline"] not in backend.accepts:
        raise ArgumentError(f"target {backend.name!r} cannot run the "
                            f"{opts['pipeline']!r} pipeline's output",
                            fix=f"use pipeline= one of {list(backend.accepts)}")
    return opts


def _freeze(x):
    """A hashable key that tells apart values that compare equal (0.0/-0.0, True/1)."""
    if isinstance(x, bool):
        return ("bool", x)
    if isinstance(x, float):
        return ("float", x.hex())
    if isinstance(x, int):
        return ("int", x)
    if isinstance(x, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in x.items()))
    if isinstance(x, (list, tuple)):
        return tuple(_freeze(v) for v in x)
    return x


def _cache_dir(opts) -> Path:
    return Path(opts["cache_dir"] or os.path.join(os.path.expanduser("~"), ".cache",
                                                  "mixtile"))


def compile(kfn: KernelFn, compile_cfg: dict | None = None, *,  # noqa: A001
            target: str | Backend = "sim", **consts) -> CompiledKernel:
    """Trace `kfn` with the given constants and lower it through the target's pipeline.

    target: "sim" (the simulator), "cuda" (Triton), "npu" (Ascend C) or "auto" (the
    first of an NPU, a CUDA GPU, the simulator that this machine has); the machine is
    compile_cfg's arch (a2, a3, a5 for sim and npu; gpu for cuda)."""
    if not isinstance(kfn, KernelFn):
        raise ArgumentError(f"mt.compile needs an @mt.kernel function, got {kfn!r}")
    backend = get_backend(target)
    opts = _options(compile_cfg, backend)
    machine = get_target(opts["arch"])
    n = opts["clusters"]
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ArgumentError(f"compile_cfg clusters must be a positive int, got {n!r}",
                                fix=f"the part's cube core count, e.g. {machine.clusters}")
        machine = dataclasses.replace(machine, clusters=n)
    consts = kfn.resolve_consts(consts)
    semantic = _freeze({k: v for k, v in opts.items()
                        if k not in ("dump_passes", "dump_dir", "keep_ir", "disk_cache")})
    mkey = (kfn, _freeze(consts), semantic, backend.name)
    t0 = time.perf_counter()
    hit = _memory_cache.get(mkey)
    if hit is not None and not opts["dump_passes"]:
        return dataclasses.replace(hit, from_cache="memory",
                                   compile_s=time.perf_counter() - t0)
    traced = kfn.trace(consts, opts["static_dims"], machine)
    text0 = print_kernel(traced)
    dkey = hashlib.sha256("\n".join([_SOURCE_HASH, machine.name, repr(semantic), text0])
                          .encode()).hexdigest()[:32]
    path = _cache_dir(opts) / f"{kfn.name}-{dkey}.mtir"
    if opts["disk_cache"] and not opts["dump_passes"] and path.exists():
        try:
            k = parse_kernel(path.read_text())
        except Exception:  # a stale or damaged cache entry: recompile
            k = None
        if k is not None:
            ck = CompiledKernel(kfn.name, k, machine, consts, backend, kfn, opts,
                                compile_s=time.perf_counter() - t0, from_cache="disk")
            _memory_cache[mkey] = ck
            return ck
    ctx = PassContext(target=machine, options=opts)
    pipeline = get_backend(opts["pipeline"]).pipeline()
    passes = [p for p in pipeline if p.name not in set(opts["skip"])]
    pm = PassManager(passes, ctx, verify=opts["verify"], keep_ir=opts["keep_ir"],
                     dump_dir=opts["dump_dir"] if opts["dump_passes"] else None)
    k = pm.run(traced)
    ck = CompiledKernel(kfn.name, k, machine, consts, backend, kfn, opts, dict(pm.ir_after),
                        list(pm.timings), time.perf_counter() - t0)
    if opts["disk_cache"]:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(print_kernel(k))
            tmp.replace(path)
        except OSError:
            pass  # a read-only home: the memory cache still works
    _memory_cache[mkey] = ck
    return ck


def clear_memory_cache() -> None:
    _memory_cache.clear()
