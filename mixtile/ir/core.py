"""The IR's objects: SSA values, ops with regions, blocks, and the kernel function.

Values are unnamed; the printer names them. Every op keeps the DSL source location
it came from, so any later error can point at the user's line.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mixtile.errors import UNKNOWN_LOC, Loc
from mixtile.ir.types import CoreType, Role, Type

if TYPE_CHECKING:
    from mixtile.ir.registry import OpDef


class Value:
    """An SSA value: an op result or a block argument."""

    __slots__ = ("type", "owner", "index", "hint")

    def __init__(self, type: Type, owner: Op | Block | None = None, index: int = 0,
                 hint: str | None = None) -> None:
        self.type = type
        self.owner = owner  # the defining Op, or the Block whose argument this is
        self.index = index
        self.hint = hint  # a name for the printer (parameters keep their names)

    @property
    def op(self) -> Op | None:
        return self.owner if isinstance(self.owner, Op) else None

    def __repr__(self) -> str:
        return f"<Value {self.hint or ''}: {self.type}>"


class Block:
    """A straight list of ops with arguments; each region holds exactly one block."""

    __slots__ = ("args", "ops", "parent")

    def __init__(self, arg_types: list[Type] | tuple[Type, ...] = (),
                 hints: list[str | None] | None = None) -> None:
        hints = hints or [None] * len(arg_types)
        self.args = [Value(t, self, i, h) for i, (t, h) in enumerate(zip(arg_types, hints))]
        self.ops: list[Op] = []
        self.parent: Op | None = None

    def add_arg(self, type: Type, hint: str | None = None) -> Value:
        v = Value(type, self, len(self.args), hint)
        self.args.append(v)
        return v

    def append(self, op: Op) -> Op:
        op.parent = self
        self.ops.append(op)
        return op

    def walk(self) -> Iterator[Op]:
        """Every op in this block and, depth first, in its regions."""
        for op in self.ops:
            yield op
            for r in op.regions:
                yield from r.walk()


class Op:
    """One operation: an OpDef applied to operands with attributes and regions."""

    __slots__ = ("opdef", "operands", "results", "attrs", "regions", "loc", "parent")

    def __init__(self, opdef: OpDef, operands: list[Value], result_types: list[Type],
                 attrs: dict[str, Any] | None = None, regions: list[Block] | None = None,
                 loc: Loc = UNKNOWN_LOC) -> None:
        self.opdef = opdef
        self.operands = list(operands)
        self.results = [Value(t, self, i) for i, t in enumerate(result_types)]
        self.attrs = dict(attrs or {})
        self.regions = list(regions or [])
        for r in self.regions:
            r.parent = self
        self.loc = loc
        self.parent: Block | None = None

    @property
    def name(self) -> str:
        return self.opdef.name

    @property
    def result(self) -> Value:
        assert len(self.results) == 1, self
        return self.results[0]

    def __repr__(self) -> str:
        return f"<Op {self.name} at {self.loc}>"


@dataclass
class Param:
    """A kernel parameter: a GM tensor (with its role) or a runtime scalar."""

    name: str
    value: Value
    role: Role = Role.IN


@dataclass
class Kernel:
    """A kernel in IR form: parameters, a body block, and kernel-level attributes.

    attrs: `core` (CoreType the kernel launches on), `target` (name), plus anything a
    pass records (the workspace size, the memory plan).
    """

    name: str
    params: list[Param]
    body: Block
    attrs: dict[str, Any] = field(default_factory=dict)

    def walk(self) -> Iterator[Op]:
        return self.body.walk()

    @property
    def core(self) -> CoreType:
        return self.attrs.get("core", CoreType.NONE)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)


def replace_uses(block: Block, old: Value, new: Value) -> int:
    """Replace every use of `old` by `new` in `block` and nested regions; return count."""
    n = 0
    for op in block.walk():
        ops = op.operands
        for i, v in enumerate(ops):
            if v is old:
                ops[i] = new
                n += 1
    return n


def users(block: Block) -> dict[Value, list[tuple[Op, int]]]:
    """Map every value used in `block` (nested included) to its (op, operand index) uses."""
    out: dict[Value, list[tuple[Op, int]]] = {}
    for op in block.walk():
        for i, v in enumerate(op.operands):
            out.setdefault(v, []).append((op, i))
    return out
