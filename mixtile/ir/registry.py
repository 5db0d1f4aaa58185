"""The one op registry. Each op is declared once (in `ops.py`) as a named object
(`EXP = define("exp", ...)`) holding every fact about it:

- `infer`: its shape/dtype rule, (operand types, attrs) -> result types;
- `unit` / `pipe`: the core unit and hardware pipe that execute it;
- `impl`: its numpy semantics (pure ops), read by the simulator;
- `cost`: its cycle cost on a target, read by the simulator's timing model;
- `reads` / `writes`: the operands whose GM tensor it reads / writes;
- `sync`: it orders cores or pipes (kept even when it has no results);
- `exact`: its result holds only values of its operands (no rounding of its own);
- `in_place`: its result may share a buffer with a dying operand (off unless declared);
- `spaces`: the memory spaces its tile operands and results must be in;
- `path`: the (source, destination) spaces of the data it moves;
- `lane_split`: how it divides between the two AIV lanes (None: it cannot);
- `surface` / `operator`: how the DSL function (and Python operator) is made from it.

Every consumer (verifier, passes, simulator, backends) keys its tables by the OpDef
object, never by the name string (the name is for the printer and the parser), and a
consumer with no rule for an op refuses it with an error naming the op and the consumer.
"""
from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mixtile.ir.types import MemSpace, Pipe, TileType, Type, Unit

if TYPE_CHECKING:
    from mixtile.ir.core import Op


class OpKind(enum.Enum):
    PURE = "pure"  # a numpy function of its operands: no memory effects
    MEMORY = "memory"  # reads or writes GM or moves data between spaces
    CONTROL = "control"  # owns regions (loops, launch blocks)
    TERMINATOR = "terminator"


class LaneSplit(enum.Enum):
    """How an op in a vector program divides between the two AIV lanes, each holding
    half of the split axis of the tiles that cross (ExpandMixedKernel)."""

    SAME = "same"  # works on whatever share its operands hold (elementwise, scalar, control)
    SHAPE = "shape"  # makes a tile of attrs["shape"]: the split axis is halved
    REGION = "region"  # a GM region access: each lane's region moves by its offset
    REDUCE = "reduce"  # fine unless it reduces the split axis
    WHOLE = "whole"  # needs the whole tile: refused when its operand is split
    IOTA = "iota"  # generates positions along an axis


class Surface(enum.Enum):
    """How the DSL function of an op is made from its declaration."""

    UNARY = "unary"  # mt.<name>(tile)
    BINARY = "binary"  # mt.<name>(a, b): tiles or a tile and a scalar


InferFn = Callable[[list[Type], dict[str, Any]], list[Type]]
UnitFn = Unit | Callable[["Op"], Unit]
SpacesFn = Callable[["Op"], tuple[list, list]]


@dataclass(eq=False)
class OpDef:
    """One op's declaration. Compared by identity; looked up by name for parsing."""

    name: str
    kind: OpKind
    unit: UnitFn
    pipe: Pipe | Callable[[Op], Pipe] | None
    infer: InferFn
    impl: Callable[..., Any] | None = None
    cost: Callable[[Op, Any], int] | None = None
    n_regions: int = 0
    doc: str = ""
    reads: tuple[int, ...] = ()
    writes: tuple[int, ...] = ()
    sync: bool = False
    exact: bool | Callable[[Op], bool] = False
    in_place: bool = False  # opt in: safe when each element is read before any is written
    spaces: SpacesFn | None = None
    path: Callable[[Op], tuple[MemSpace, MemSpace] | None] | None = None
    lane_split: LaneSplit | None = None
    surface: Surface | None = None
    operator: str | None = None

    def unit_of(self, op: Op) -> Unit:
        return self.unit(op) if callable(self.unit) else self.unit

    def pipe_of(self, op: Op) -> Pipe | None:
        return self.pipe(op) if callable(self.pipe) else self.pipe

    def is_exact(self, op: Op) -> bool:
        return self.exact(op) if callable(self.exact) else self.exact

    @property
    def has_effects(self) -> bool:
        """Kept even when no result is used: it writes GM, synchronises, or ends a
        block."""
        return bool(self.writes) or self.sync or self.kind is OpKind.TERMINATOR

    def __repr__(self) -> str:
        return f"<OpDef {self.name}>"


OPS: dict[str, OpDef] = {}


def define(name: str, kind: OpKind, unit: UnitFn, pipe, infer: InferFn, impl=None,
           cost=None, n_regions: int = 0, doc: str = "", **facts) -> OpDef:
    """Declare an op; its name must be new. `facts` are the OpDef fields above."""
    if name in OPS:
        raise ValueError(f"op {name!r} declared twice")
    d = OpDef(name, kind, unit, pipe, infer, impl, cost, n_regions, doc, **facts)
    OPS[name] = d
    return d


def lookup(name: str) -> OpDef:
    return OPS[name]


def all_ops() -> list[OpDef]:
    """Every declared op, in declaration order."""
    return list(OPS.values())


# ---------------------------------------------------------------- the queries

def gm_access(op: Op) -> list[tuple[int, bool]]:
    """(operand index, is_write) of each GM tensor operand whose data `op` touches."""
    d = op.opdef
    return [(i, False) for i in d.reads] + [(i, True) for i in d.writes]


def required_spaces(op: Op) -> tuple[list, list]:
    """The spaces each tile operand and each tile result of `op` must be in: two lists
    (operands, results) of a tuple of allowed MemSpaces, or None where any space does.
    A vector op's tiles live in UB; other ops declare theirs (`spaces`)."""
    d = op.opdef
    if d.spaces is not None:
        return d.spaces(op)
    if d.kind is not OpKind.CONTROL and d.unit_of(op) is Unit.VECTOR:
        def ub(vals):
            return [(MemSpace.UB,) if isinstance(v.type, TileType) else None for v in vals]
        return ub(op.operands), ub(op.results)
    return [None] * len(op.operands), [None] * len(op.results)


def data_path(op: Op) -> tuple[MemSpace, MemSpace] | None:
    """The (source, destination) spaces of the data `op` moves, or None."""
    return op.opdef.path(op) if op.opdef.path is not None else None
