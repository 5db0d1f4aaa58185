"""BiasToMmad: on Ascend, the bias of a fused epilogue enters at the first Mmad.

FuseEpilogue models a `fixpipe` that adds a bias on the way out of L0C. On A2/A3
(dav-c220) the FIXPIPE has no bias input: the bias table (BT, `TPosition::C2`) is read
by the Mmad that starts an accumulation (`cmatrixInitVal = false` with a C2 bias
tensor), so C = bias + A @ B from the first K step on. This pass moves the bias load
(GM -> L1 -> BT) from after the K loop to before the accumulator's zero `full`, and
marks that `full` with `bias_init = True`; PlanMemory then plans the hoisted buffers
and the Ascend C emitter uses the bias Mmad for the first step. The fixpipe keeps
`has_bias`, so the simulator's result is unchanged (it adds the bias at the end).

A bias whose load cannot move there (its offsets are computed inside the loop, or the
accumulator does not start from a zero `full` in the same block) is an UnsupportedError.
"""
from __future__ import annotations

from mixtile.errors import UnsupportedError
from mixtile.ir.core import Block, Kernel, Op, Value
from mixtile.ir.ops import FIXPIPE, FOR, FULL, LOAD, MOVE
from mixtile.ir.types import MemSpace
from mixtile.passes.manager import PassContext, compiler_pass


def _defined_before(v: Value, blk: Block, pos: int) -> bool:
    """Is v available at position `pos` of `blk` (a parameter, a block argument of an
    enclosing region, or an op before pos in blk or in an enclosing block)?"""
    owner = v.owner
    if owner is None or isinstance(owner, Block):
        return owner is None or _encloses(owner, blk)
    b, i = blk, pos
    while b is not None:
        if owner in b.ops[:i]:
            return True
        parent = b.parent
        if parent is None or parent.parent is None:
            return False
        i = parent.parent.ops.index(parent)
        b = parent.parent
    return False


def _encloses(outer: Block, blk: Block) -> bool:
    b = blk
    while b is not None:
        if b is outer:
            return True
        b = b.parent.parent if b.parent is not None else None
    return False


def _zero_full(acc: Value) -> Op | None:
    """The L0C zero `full` an accumulator starts from (through its K loop), if any."""
    op = acc.op
    if op is not None and op.opdef is FOR:
        init = op.operands[3 + acc.index]
        op = init.op
    if (op is not None and op.opdef is FULL and op.results[0].type.space is MemSpace.L0C
            and op.attrs.get("value") == 0.0):
        return op
    return None


def _hoist(fix: Op) -> None:
    bt = fix.operands[2]
    mv = bt.op
    ld = mv.operands[0].op if mv is not None and mv.opdef is MOVE else None
    z = _zero_full(fix.operands[1])
    if ld is None or ld.opdef is not LOAD or z is None or z.parent is not mv.parent:
        raise UnsupportedError(
            "this bias epilogue cannot be lowered for the Ascend C backend: the bias enters "
            "at the first Mmad, so the accumulator must start from mt.zeros in the block "
            "that stores it", loc=fix.loc, fix="start the accumulator with mt.zeros before "
            "the K loop, in the same block as the store")
    blk = z.parent
    zpos = blk.ops.index(z)
    if not all(_defined_before(v, blk, zpos) for v in ld.operands):
        raise UnsupportedError("the bias offsets are computed after the accumulator starts; "
                               "the Ascend C backend loads the bias before the K loop",
                               loc=fix.loc, fix="compute the bias offset (n0) before mt.zeros")
    for op in (ld, mv):
        blk.ops.remove(op)
    zpos = blk.ops.index(z)
    blk.ops[zpos:zpos] = [ld, mv]
    z.attrs["bias_init"] = True


@compiler_pass("BiasToMmad")
def BiasToMmad(kernel: Kernel, ctx: PassContext) -> Kernel:  # noqa: N802
    """Move fused-epilogue bias loads before the accumulation (Ascend: bias via Mmad)."""
    for op in list(kernel.walk()):
        if op.opdef is FIXPIPE and op.attrs.get("has_bias"):
            _hoist(op)
    return kernel
