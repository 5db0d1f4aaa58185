"""ClassifyCores: decide which core type runs the launch (AIC, AIV, or both).

Cube work and the data it touches (L1, L0A/B/C, bias table) belong to the AIC;
vector work and UB belong to the AIV. A kernel with only one kind runs on that core
type's cores; one with both is a mixed kernel (split into per-core programs by
ExpandMixedKernel, which is not part of this version).
"""
from __future__ import annotations

from mixtile.errors import UnsupportedError
from mixtile.ir.core import Kernel, Op
from mixtile.ir.ops import CONST, SPLIT_AIV, SPMD, SYNCALL
from mixtile.ir.types import CoreType, MemSpace, TileType, Unit

_AIC_SPACES = {MemSpace.L1, MemSpace.L0A, MemSpace.L0B, MemSpace.L0C, MemSpace.BT}


def core_of(op: Op) -> CoreType:
    """The core type an op must run on (NONE: scalar or control, runs anywhere)."""
    unit = op.opdef.unit_of(op)
    if unit is Unit.CUBE:
        return CoreType.AIC
    if unit is Unit.VECTOR:
        return CoreType.AIV
    if unit is Unit.MTE:
        spaces = {v.type.space for v in op.operands + op.results
                  if isinstance(v.type, TileType)}
        if spaces & _AIC_SPACES:
            return CoreType.AIC
        if MemSpace.UB in spaces:
            return CoreType.AIV
    return CoreType.NONE


def _check_syncall_grids(kernel: Kernel, target) -> None:
    """A hard syncall needs grid == the cores of its type, a soft one grid <= them; checked
    here when the grid is a compile-time constant (the simulator checks it at launch)."""
    from mixtile.errors import SyncallError
    from mixtile.ir.types import SyncMode

    core = kernel.attrs.get("core", CoreType.NONE)
    cores = target.aiv_count if core is CoreType.AIV else target.clusters
    for op in kernel.body.ops:
        if op.opdef is not SPMD:
            continue
        g = op.operands[0].op
        if g is None or g.opdef is not CONST:
            continue
        grid = g.attrs["value"]
        for s in op.regions[0].walk():
            if s.opdef is not SYNCALL:
                continue
            hard = s.attrs["mode"] is SyncMode.HARD
            if (hard and grid != cores) or (not hard and grid > cores):
                rule = "equal to" if hard else "at most"
                which = "aiv_count" if core is CoreType.AIV else "clusters"
                raise SyncallError(
                    f"{s.attrs['mode'].value} syncall in a launch of {grid} blocks on "
                    f"{cores} {'AIV cores' if core is CoreType.AIV else 'clusters'}: the grid "
                    f"must be {rule} {cores}, or the chip hangs (AICore timeout)", loc=s.loc,
                    fix=f"launch mt.spmd(mt.target().{which}) and loop over the work inside")


def classify_cores(kernel: Kernel, ctx) -> Kernel:
    if kernel.attrs.get("core") is CoreType.MIX:  # ExpandMixedKernel made per-core programs
        _check_syncall_grids(kernel, ctx.target)
        return kernel
    first: dict[CoreType, Op] = {}
    for op in kernel.walk():
        c = core_of(op)
        if c is not CoreType.NONE and c not in first:
            first[c] = op
    if CoreType.AIC in first and CoreType.AIV in first:
        a, v = first[CoreType.AIC], first[CoreType.AIV]
        raise UnsupportedError(
            f"this kernel mixes cube work ({a.name} at {a.loc}) and vector work "
            f"({v.name} at {v.loc}); mixed AIC/AIV kernels are not supported in this "
            "version", loc=v.loc,
            fix="keep the epilogue to what the L0C writeback does (bias add, ReLU, cast, "
                "atomic add), or split the work into a cube kernel and a vector kernel")
    kernel.attrs["core"] = (CoreType.AIC if CoreType.AIC in first else
                            CoreType.AIV if CoreType.AIV in first else CoreType.NONE)
    if any(op.opdef is SPLIT_AIV for op in kernel.walk()):
        op = next(op for op in kernel.walk() if op.opdef is SPLIT_AIV)
        raise UnsupportedError("split_aiv divides vector work of a mixed kernel between the "
                               "AIV lanes of a cluster; this kernel has no cube work",
                               loc=op.loc, fix="drop the split_aiv region: a vector-only "
                               "kernel already runs on all AIV cores")
    _check_syncall_grids(kernel, ctx.target)
    return kernel
