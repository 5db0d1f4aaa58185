"""The one op registry. Each op is declared once (in `ops.py`) with:

- `infer`: its shape/dtype rule, (operand types, attrs) -> result types;
- `unit` / `pipe`: the core unit and hardware pipe that execute it;
- `impl`: its numpy semantics (pure ops), read by the simulator;
- `cost`: its cycle cost on a target, read by the simulator's timing model.

The verifier, passes, simulator and backends read these entries; backends keep
their own tables keyed by the same OpDef (a missing rule names op and backend).
"""
from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mixtile.ir.types import Pipe, Type, Unit

if TYPE_CHECKING:
    from mixtile.ir.core import Op


class OpKind(enum.Enum):
    PURE = "pure"  # a numpy function of its operands: no memory effects
    MEMORY = "memory"  # reads or writes GM or moves data between spaces
    CONTROL = "control"  # owns regions (loops, launch blocks)
    TERMINATOR = "terminator"


InferFn = Callable[[list[Type], dict[str, Any]], list[Type]]
UnitFn = Unit | Callable[["Op"], Unit]


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

    def unit_of(self, op: Op) -> Unit:
        return self.unit(op) if callable(self.unit) else self.unit

    def pipe_of(self, op: Op) -> Pipe | None:
        return self.pipe(op) if callable(self.pipe) else self.pipe

    def __repr__(self) -> str:
        return f"<OpDef {self.name}>"


OPS: dict[str, OpDef] = {}


def define(name: str, kind: OpKind, unit: UnitFn, pipe, infer: InferFn, impl=None,
           cost=None, n_regions: int = 0, doc: str = "") -> OpDef:
    """Declare an op; its name must be new."""
    if name in OPS:
        raise ValueError(f"op {name!r} declared twice")
    d = OpDef(name, kind, unit, pipe, infer, impl, cost, n_regions, doc)
    OPS[name] = d
    return d


def lookup(name: str) -> OpDef:
    return OPS[name]
