"""ClassifyCores: decide which core type runs the launch (AIC, AIV, or both).

Cube work and the data it touches (L1, L0A/B/C, bias table) belong to the AIC;
vector work and UB belong to the AIV. A kernel with only one kind runs on that core
type's cores; one with both is a mixed kernel (split into per-core programs by
ExpandMixedKernel, which is not part of this version).
"""
from __future__ import annotations

from mixtile.errors import UnsupportedError
from mixtile.ir.core import Kernel, Op
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


def classify_cores(kernel: Kernel, ctx) -> Kernel:
    if kernel.attrs.get("core") is CoreType.MIX:  # ExpandMixedKernel made per-core programs
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
    return kernel
