"""mixtile IR: types, ops (one registry), printer/parser, verifier."""
from mixtile.ir import ops as _ops  # noqa: F401  (declares every op)
from mixtile.ir.core import Block, Kernel, Op, Param, Value
from mixtile.ir.registry import OPS, OpDef, OpKind, lookup
from mixtile.ir.types import (
    INDEX,
    AtomicKind,
    CoreType,
    DType,
    MemSpace,
    Pipe,
    ReduceKind,
    Role,
    ScalarType,
    TensorType,
    TileType,
    Unit,
)

__all__ = [
    "Block", "Kernel", "Op", "Param", "Value", "OPS", "OpDef", "OpKind", "lookup", "INDEX",
    "AtomicKind", "CoreType", "DType", "MemSpace", "Pipe", "ReduceKind", "Role",
    "ScalarType", "TensorType", "TileType", "Unit",
]
