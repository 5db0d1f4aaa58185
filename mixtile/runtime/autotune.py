"""`mt.autotune`: pick a kernel's const tiles by the time they take.

    best = mt.autotune(gemm, x, w, y, space=dict(TN=[64, 128, 256], TK=[128, 256]),
                       target="sim", compile_cfg=dict(arch="a2"), TM=16)
    best.consts        # {"TM": 16, "TN": 128, "TK": 256}
    best.estimates     # [(consts, microseconds or None, note), ...] for every candidate

Every combination of `space` (merged into the fixed `consts`) is compiled and scored by
the backend's `estimate` (runtime/backends.py): on the NPU targets (sim, npu) the NPU
timing model's estimated kernel time for the machine (the simulator runs the kernel on
copies of the written arguments, with checks off; npu scores the Ascend C lowering's IR).
A candidate that does not compile for the machine (its tiles do not fit) is skipped with
its reason. Results are kept in memory and on disk (the compile cache folder), keyed by
the kernel's source, mixtile's sources, the machine and its timing table, the options,
the arguments' shapes and dtypes and the scalar values: the search runs once per shape.
Tensor values do not enter the key: give arguments whose data-dependent control flow
(lengths, indices) is representative.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from mixtile.errors import ArgumentError, MixtileError, UnsupportedError
from mixtile.language.kernel import KernelFn
from mixtile.runtime.backends import Backend, get_backend
from mixtile.runtime.compiler import _SOURCE_HASH, _cache_dir, _options
from mixtile.target import get_target

_memory: dict[str, Tuned] = {}


@dataclass
class Tuned:
    """What `autotune` found: the best constants, every candidate's estimate (None when
    it did not compile, with the reason as the note), and where it came from ("" for a
    search run now, "memory" or "disk")."""

    consts: dict[str, Any]
    estimates: list[tuple[dict, float | None, str]] = field(default_factory=list)
    from_cache: str = ""

    @property
    def best_us(self) -> float:
        return min(us for _, us, _ in self.estimates if us is not None)


def estimate(kfn: KernelFn, args: tuple, compile_cfg: dict | None, consts: dict,
             backend: Backend) -> float:
    """The timing model's estimated time (us) of one launch of `kfn` with `consts`: the
    simulator runs backend's lowering on copies of the arguments it writes."""
    from mixtile.runtime.jit import run_jit

    cfg = dict(compile_cfg or {}, pipeline=backend.name)
    run_args = [a.clone() if isinstance(a, torch.Tensor) and name in kfn.written else a
                for name, a in zip(kfn.order, args)]
    res = run_jit(kfn, *run_args, target="sim", compile_cfg=cfg, checks=False,
                  timeline=True, **consts)
    return res.timeline.makespan_us


def autotune(kfn: KernelFn, *args, space: dict[str, Iterable], target: str | Backend = "sim",
             compile_cfg: dict | None = None, **consts) -> Tuned:
    """The combination of `space` with the least estimated time (see the module
    docstring). args: the kernel's runtime arguments (torch tensors on the CPU and
    scalars), or a function of the candidate's constants returning them (when a shape
    depends on a tile)."""
    if not isinstance(kfn, KernelFn):
        raise ArgumentError(f"autotune needs an @mt.kernel function, got {kfn!r}")
    backend = get_backend(target)
    if backend.estimate is None:
        raise UnsupportedError(
            f"target {backend.name!r} has no timing model to choose tiles by",
            fix="on a GPU choose tiles by measurement (benchmarks/gpu_tile_sweep.py; "
                "run_jit(tune=True) tunes the launch configuration); autotune works on "
                'the NPU targets: target="sim" or "npu" with compile_cfg arch')
    unknown = sorted(set(space) - set(kfn.consts))
    if unknown or not space:
        raise ArgumentError(f"autotune space {sorted(space)} must name constants of "
                            f"`{kfn.name}`", fix=f"its constants are {sorted(kfn.consts)}")
    names = list(space)
    cands = [dict(consts, **dict(zip(names, vals)))
             for vals in itertools.product(*(list(space[n]) for n in names))]
    make_args: Callable = args[0] if len(args) == 1 and callable(args[0]) and \
        not isinstance(args[0], torch.Tensor) else (lambda c: args)
    key = _key(kfn, backend, compile_cfg, cands, make_args)
    hit = _memory.get(key)
    if hit is not None:
        return Tuned(dict(hit.consts), list(hit.estimates), "memory")
    path = _cache_dir(_options(compile_cfg, backend)) / f"autotune-{kfn.name}-{key}.json"
    if path.exists():
        try:
            data = json.loads(path.read_text())
            tuned = Tuned(data["consts"], [tuple(e) for e in data["estimates"]], "disk")
        except (OSError, ValueError, KeyError):
            tuned = None  # a damaged entry: search again
        if tuned is not None:
            _memory[key] = tuned
            return tuned
    estimates: list[tuple[dict, float | None, str]] = []
    for c in cands:
        try:
            us = backend.estimate(kfn, tuple(make_args(c)), compile_cfg, c, backend)
            estimates.append((c, us, ""))
        except MixtileError as e:  # the candidate does not fit this machine
            estimates.append((c, None, f"{type(e).__name__}: {e.message}"))
    scored = [(us, i) for i, (_, us, _) in enumerate(estimates) if us is not None]
    if not scored:
        raise ArgumentError(f"no candidate of {space} compiles for `{kfn.name}`",
                            fix="first failure: " + estimates[0][2])
    tuned = Tuned(dict(estimates[min(scored)[1]][0]), estimates)
    _memory[key] = tuned
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"consts": tuned.consts, "estimates": estimates}))
        tmp.replace(path)
    except OSError:
        pass  # a read-only home: the memory cache still works
    return tuned


def _key(kfn: KernelFn, backend: Backend, compile_cfg, cands: list[dict],
         make_args: Callable) -> str:
    """The cache key: sources, backend, options, candidates and each candidate's
    argument shapes / dtypes / scalar values."""
    def sig(a):
        if isinstance(a, torch.Tensor):
            return [list(a.shape), str(a.dtype)]
        return repr(a)

    opts = {k: v for k, v in sorted(_options(compile_cfg, backend).items())
            if k not in ("dump_passes", "dump_dir", "keep_ir", "disk_cache", "cache_dir")}
    machine = get_target(opts["arch"])
    parts = [_SOURCE_HASH, kfn._src, backend.name, repr(opts), repr(machine.timing)]
    parts += [repr(sorted(c.items())) + repr([sig(a) for a in make_args(c)]) for c in cands]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]
