"""`mixtile.compile`: trace, run the pass pipeline, cache the result (memory and disk)."""
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
from mixtile.runtime.pipeline import ascendc_pipeline, default_pipeline, gpu_pipeline
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
    "arch": "a2",  # the Ascend generation modelled: a2, a3, a5
    "disk_cache": True,
    # {"M": 16, ...}: compile those symbolic dims as static extents (run_jit fills it
    # from the arguments when specialize_dims=True); default: one kernel for all sizes
    "static_dims": None,
    "specialize_dims": False,
    # mixed kernels: GM ring slots per cube<->vector crossing and cluster (2: the cube
    # fills one slot while the vector lanes read the other; 1: strictly alternating)
    "pipeline_depth": 2,
    # "sim": the Ascend pipeline for the simulator; "triton": GPU; "ascendc": Ascend C source
    "backend": "sim",
    "cache_dir": None,  # default ~/.cache/mixtile
}


@dataclass
class CompiledKernel:
    """A compiled kernel: final IR, the IR after each pass, timings, generated code."""

    name: str
    kernel: Kernel
    target: Target
    consts: dict[str, Any]
    ir_after: dict[str, str] = field(default_factory=dict)
    timings: list[tuple[str, float]] = field(default_factory=list)
    compile_s: float = 0.0
    from_cache: str = ""  # "", "memory" or "disk"
    _ascendc: Any = field(default=None, repr=False, compare=False)

    @property
    def ir(self) -> str:
        """The final, lowered IR as text."""
        return print_kernel(self.kernel)

    @property
    def code(self) -> str:
        """Generated code: Triton source for the triton backend, Ascend C source for the
        ascendc backend; for the simulator, which executes the lowered IR itself, the IR
        text."""
        backend = self.kernel.attrs.get("backend")
        if backend == "triton":
            from mixtile.codegen.triton import generate

            return generate(self.kernel)[0]
        if backend == "ascendc":
            return self.ascendc.source
        return self.ir

    @property
    def ascendc(self):
        """The Ascend C kernel (source, tiling layout, launch facts); ascendc backend only."""
        from mixtile.codegen.ascendc import generate

        if self.kernel.attrs.get("backend") != "ascendc":
            raise ArgumentError(f"{self.name} was compiled for the "
                                f"{self.kernel.attrs.get('backend')!r} backend",
                                fix='compile with target="npu"')
        if self._ascendc is None:
            self._ascendc = generate(self.kernel, self.target)
        return self._ascendc

    def __repr__(self) -> str:
        return (f"<CompiledKernel {self.name} target={self.target.name} "
                f"core={self.kernel.core.value} compile={self.compile_s * 1e3:.1f} ms"
                f"{' from ' + self.from_cache + ' cache' if self.from_cache else ''}>")

    def pass_report(self) -> str:
        return "\n".join(f"{name:<18} {s * 1e3:8.3f} ms" for name, s in self.timings)


_memory_cache: dict[tuple, CompiledKernel] = {}
_PIPELINES = {"sim": default_pipeline, "triton": gpu_pipeline, "ascendc": ascendc_pipeline}


def _options(cfg: dict | None) -> dict:
    cfg = dict(cfg or {})
    unknown = set(cfg) - set(_DEFAULTS)
    if unknown:
        raise ArgumentError(f"unknown compile_cfg option(s) {sorted(unknown)}",
                            fix=f"known options: {sorted(_DEFAULTS)}")
    return {**_DEFAULTS, **cfg}


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


_TARGET_CFG = {"sim": {"backend": "sim"}, "cuda": {"arch": "gpu", "backend": "triton"},
               "npu": {"backend": "ascendc"}}


def compile(kfn: KernelFn, compile_cfg: dict | None = None, *, target: str | None = None,  # noqa: A001
            **consts) -> CompiledKernel:
    """Trace `kfn` with the given constants and lower it through the pass pipeline.

    target: "sim" (default), "cuda" (Triton source) or "npu" (Ascend C source for the
    compile_cfg arch, a2 by default); a shorthand for compile_cfg's backend/arch."""
    if not isinstance(kfn, KernelFn):
        raise ArgumentError(f"mt.compile needs an @mt.kernel function, got {kfn!r}")
    if target is not None:
        if target not in _TARGET_CFG:
            raise ArgumentError(f"unknown compile target {target!r}",
                                fix=f"use one of {sorted(_TARGET_CFG)}")
        compile_cfg = {**(compile_cfg or {}), **_TARGET_CFG[target]}
    opts = _options(compile_cfg)
    target = get_target(opts["arch"])
    consts = kfn.resolve_consts(consts)
    semantic = _freeze({k: v for k, v in opts.items()
                        if k not in ("dump_passes", "dump_dir", "keep_ir", "disk_cache")})
    mkey = (kfn, _freeze(consts), semantic)
    t0 = time.perf_counter()
    hit = _memory_cache.get(mkey)
    if hit is not None and not opts["dump_passes"]:
        return dataclasses.replace(hit, from_cache="memory",
                                   compile_s=time.perf_counter() - t0)
    traced = kfn.trace(consts, opts["static_dims"], target)
    text0 = print_kernel(traced)
    dkey = hashlib.sha256("\n".join([_SOURCE_HASH, target.name, repr(semantic), text0])
                          .encode()).hexdigest()[:32]
    path = _cache_dir(opts) / f"{kfn.name}-{dkey}.mtir"
    if opts["backend"] not in _PIPELINES:
        raise ArgumentError(f"unknown backend {opts['backend']!r}",
                            fix=f"use one of {sorted(_PIPELINES)}")
    if opts["disk_cache"] and not opts["dump_passes"] and path.exists():
        try:
            k = parse_kernel(path.read_text())
            ck = CompiledKernel(kfn.name, k, target, consts, {}, [],
                                time.perf_counter() - t0, "disk")
            _memory_cache[mkey] = ck
            return ck
        except Exception:  # a stale or damaged cache entry: recompile
            pass
    ctx = PassContext(target=target, options=opts)
    pipeline = _PIPELINES[opts["backend"]]()
    passes = [p for p in pipeline if p.name not in set(opts["skip"])]
    pm = PassManager(passes, ctx, verify=opts["verify"], keep_ir=opts["keep_ir"],
                     dump_dir=opts["dump_dir"] if opts["dump_passes"] else None)
    k = pm.run(traced)
    k.attrs["backend"] = opts["backend"]
    ck = CompiledKernel(kfn.name, k, target, consts, dict(pm.ir_after), list(pm.timings),
                        time.perf_counter() - t0)
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
