"""Creating ops through the registry: runs the op's shape rule and locates its errors."""
from __future__ import annotations

from typing import Any

from mixtile.errors import UNKNOWN_LOC, Loc, MixtileError, TraceError
from mixtile.ir.core import Block, Kernel, Op, Param, Value
from mixtile.ir.ops import FULL, LOAD, MOVE
from mixtile.ir.registry import OPS, OpDef
from mixtile.ir.types import CoreType, DType, Role, ScalarType, TensorType


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


class KernelBuilder:
    """Hand-built IR (tests, benchmarks): ops go into the innermost open block, each with
    loc `file`:`line`; `space=` gives a tile its memory space as InferSpaces would."""

    def __init__(self, name: str = "kernel", core: CoreType = CoreType.NONE,
                 file: str = "kern.py") -> None:
        self.params: list[Param] = []
        self.stack = [Block()]
        self.attrs = {"core": core, "spaces": True, "legal": True}
        self.name, self.file = name, file

    def tensor(self, name: str, dtype: DType, shape, role: Role = Role.IN) -> Value:
        v = Value(TensorType(dtype, tuple(shape)), None, 0, name)
        self.params.append(Param(name, v, role))
        return v

    def scalar(self, name: str, dtype: DType = DType.I64) -> Value:
        v = Value(ScalarType(dtype), None, 0, name)
        self.params.append(Param(name, v, Role.IN))
        return v

    def op(self, name: str, *operands, line: int = 1, regions=None, space=None, **attrs):
        """Append op `name`; returns its result (or the op when it has none or several)."""
        d = OPS[name]  # looked up by its IR name, as the parser does
        if space is not None and d in (LOAD, MOVE, FULL):  # the ops with a `space` attr
            attrs["space"] = space
        op = make_op(d, list(operands), attrs, regions, Loc(self.file, line))
        if space is not None:
            op.results[0].type = op.results[0].type.with_space(space)
        self.stack[-1].append(op)
        return op.results[0] if len(op.results) == 1 else op

    def c(self, value: int) -> Value:
        """An index constant."""
        return self.op("const", value=value, dtype=DType.I64)

    def kernel(self) -> Kernel:
        return Kernel(self.name, self.params, self.stack[0], self.attrs)
