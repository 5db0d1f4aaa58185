"""Creating ops through the registry: runs the op's shape rule and locates its errors."""
from __future__ import annotations

from typing import Any

from mixtile.errors import UNKNOWN_LOC, Loc, MixtileError, TraceError
from mixtile.ir.core import Block, Op, Value
from mixtile.ir.registry import OpDef


def make_op(opdef: OpDef, operands: list[Value], attrs: dict[str, Any] | None = None,
            regions: list[Block] | None = None, loc: Loc = UNKNOWN_LOC) -> Op:
    """Build an op, inferring its result types; a rule's error gets `loc` attached."""
    attrs = attrs or {}
    try:
        result_types = opdef.infer([v.type for v in operands], attrs)
    except MixtileError as e:
        if e.loc is None:
            raise type(e)(f"{opdef.name}: {e.message}", loc=loc, fix=e.fix) from None
        raise
    except (TypeError, ValueError, KeyError, IndexError) as e:  # a malformed op
        raise TraceError(f"{opdef.name}: malformed op ({e})", loc=loc) from None
    return Op(opdef, operands, result_types, attrs, regions, loc)


def insert_before(anchor: Op, new: Op) -> Op:
    """Put `new` right before `anchor` in anchor's block."""
    blk = anchor.parent
    new.parent = blk
    blk.ops.insert(blk.ops.index(anchor), new)
    return new


def insert_after(anchor: Op, new: Op) -> Op:
    blk = anchor.parent
    new.parent = blk
    blk.ops.insert(blk.ops.index(anchor) + 1, new)
    return new
