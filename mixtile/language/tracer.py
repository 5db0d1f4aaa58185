"""Tracing: the kernel body runs once on symbolic handles and records IR ops.

Handles (`ScalarVal`, `TileVal`, `TensorVal`) wrap IR values and overload Python
operators. Every op records the DSL source line of the user code that made it.
"""
from __future__ import annotations

import os
import sys
import threading
from typing import Any

import numpy as np

from mixtile.errors import Loc, TraceError
from mixtile.ir.builder import make_op
from mixtile.ir.core import Block, Op, Value
from mixtile.ir.numeric import round_to
from mixtile.ir.ops import (
    ABS,
    CAST,
    CONST,
    CORE,
    DIM,
    NEG,
    RESHAPE,
    SADD,
    SDIV,
    SMUL,
    SPLIT_AIV,
    SSUB,
    TRANSPOSE,
)
from mixtile.ir.registry import OpDef, all_ops
from mixtile.ir.types import INDEX, CoreType, DType, ScalarType, TensorType, TileType, Unit

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def user_loc() -> Loc:
    """The innermost stack frame outside the mixtile package: the user's DSL line."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(_PKG_DIR):
        f = f.f_back
    if f is None:
        return Loc("<unknown>", 0)
    return Loc(f.f_code.co_filename, f.f_lineno)


class _State(threading.local):
    def __init__(self) -> None:
        self.stack: list[Block] = []  # open blocks, innermost last
        self.open: set[int] = set()  # ids of open blocks
        # an error found where it cannot be raised (a generator being closed by `break`);
        # raised at the next op or at the end of tracing
        self.pending: TraceError | None = None
        self.target = None  # the Target being compiled for (mt.target())
        self.scratch: list = []  # mt.workspace parameters of the kernel being traced
        self.epoch = 0  # bumped per trace: a generator closed after its trace ended is ignored


_state = _State()


def current_block() -> Block:
    if not _state.stack:
        raise TraceError("mixtile ops can only be used inside a @mt.kernel body",
                         loc=user_loc(), fix="call this inside a kernel being traced")
    return _state.stack[-1]


def push_block(b: Block) -> None:
    _state.stack.append(b)
    _state.open.add(id(b))


def pop_block() -> Block:
    b = _state.stack.pop()
    _state.open.discard(id(b))
    return b


_ON_CORE = (Unit.CUBE, Unit.VECTOR, Unit.MTE)


def raise_pending() -> None:
    err = _state.pending
    if err is not None:
        _state.pending = None
        raise err


def _def_block(v: Value) -> Block | None:
    if isinstance(v.owner, Block):
        return v.owner
    if isinstance(v.owner, Op):
        return v.owner.parent
    return None  # a kernel parameter


def visible(v: Value) -> bool:
    """Whether `v` may be used at the current point (its block is still open)."""
    db = _def_block(v)
    return db is None or id(db) in _state.open


def _closed_region_error(v: Value, db: Block, loc: Loc) -> None:
    dl = v.owner.loc if isinstance(v.owner, Op) else "a loop header"
    if db.parent is not None and db.parent.opdef is CORE:
        core = db.parent.attrs["core"].name
        raise TraceError(
            f"a value defined inside an mt.on_core({core}) region (at {dl}) is used outside "
            "it: each core runs its region as a separate program", loc=loc,
            fix="hand data to the other core through GM: store it to an mt.workspace, "
                "mt.fence(), mt.set_flag(...); load it there after mt.wait_flag(...)")
    raise TraceError(
        f"a value defined inside a loop or spmd body (at {dl}) is used after "
        "that body ended", loc=loc,
        fix="to carry a value out of mt.range, assign it before the loop and "
            "reassign the same variable inside it")


def _check_region_unit(op: Op, loc: Loc) -> None:
    """Cube work inside a vector-lane region (mt.split_aiv, mt.on_core(AIV)) or vector
    work inside mt.on_core(AIC) has no core to run on: refused at its line."""
    if callable(op.opdef.unit):  # decided later (a zeros tile may be an L0C accumulator)
        return
    unit = op.opdef.unit
    if unit not in (Unit.CUBE, Unit.VECTOR):
        return
    for b in reversed(_state.stack):
        owner = b.parent
        if owner is None:
            continue
        if owner.opdef is SPLIT_AIV or (owner.opdef is CORE and owner.attrs["core"] is
                                         CoreType.AIV):
            region, runs = ("mt.split_aiv" if owner.opdef is SPLIT_AIV
                            else "mt.on_core(AIV)"), Unit.VECTOR
        elif owner.opdef is CORE:
            region, runs = "mt.on_core(AIC)", Unit.CUBE
        else:
            continue
        if unit is not runs:
            raise TraceError(
                f"`{op.opdef.name}` is {unit.value} work inside {region} (at {owner.loc}), "
                f"whose cores run {runs.value} work only", loc=loc,
                fix="move it out of the region (the compiler splits cube and vector work "
                    "of a launch), or into an mt.on_core region of the right core type")
        return


def emit(opdef: OpDef, operands: list[Value], attrs: dict[str, Any] | None = None,
         regions: list[Block] | None = None, loc: Loc | None = None) -> Op:
    """Create an op in the current block; check every operand is visible here."""
    loc = loc or user_loc()
    raise_pending()
    blk = current_block()
    for v in operands:
        db = _def_block(v)
        if db is not None and id(db) not in _state.open:
            _closed_region_error(v, db, loc)
    op = make_op(opdef, operands, attrs, regions, loc)
    _check_region_unit(op, loc)
    if len(_state.stack) == 1 and op.opdef.unit_of(op) in _ON_CORE:
        raise TraceError(f"`{opdef.name}` outside mt.spmd: tile work runs on cores, which only a "
                         "launch has", loc=loc, fix="put it inside `for blk in mt.spmd(n):`")
    blk.append(op)
    return op


# ---------------------------------------------------------------- scalars

def _lin_of(v: Value) -> tuple[frozenset, int]:
    return (frozenset({(id(v), 1)}), 0)


def _lin_add(a, b, sign=1):
    terms: dict[int, int] = dict(a[0])
    for k, c in b[0]:
        terms[k] = terms.get(k, 0) + sign * c
    return (frozenset((k, c) for k, c in terms.items() if c), a[1] + sign * b[1])


def _lin_scale(a, k: int):
    return (frozenset((t, c * k) for t, c in a[0] if c * k), a[1] * k)


def const_value(value: int | float | bool, dtype: DType | None = None) -> Value:
    """A fresh `const` op at the top of the kernel (CSE merges duplicates later; a fresh
    op per use keeps loop-carried redirection from touching unrelated uses)."""
    if dtype is None:
        dtype = DType.BOOL if isinstance(value, bool) else (
            DType.I64 if isinstance(value, int) else DType.F32)
    top = _state.stack[0]
    op = make_op(CONST, [], {"dtype": dtype, "value": value}, loc=user_loc())
    op.parent = top
    top.ops.insert(0, op)
    return op.result


class ScalarVal:
    """A runtime scalar (an index or a float) during tracing."""

    __slots__ = ("value", "lin")

    def __init__(self, value: Value, lin=None) -> None:
        self.value = value
        # an affine form over atoms, for static extents like (m0 + TM) - m0
        self.lin = lin if lin is not None else _lin_of(value)

    @property
    def dtype(self) -> DType:
        return self.value.type.dtype

    def _bin(self, d: OpDef, other, rev: bool = False) -> ScalarVal:
        if isinstance(other, TileVal):
            return NotImplemented  # the tile's reflected operator records a vector op
        o = as_scalar(other, self.dtype)
        a, b = (o, self) if rev else (self, o)
        if not isinstance(o, ScalarVal):
            return NotImplemented
        if a.dtype != b.dtype:
            raise TraceError(
                f"scalar arithmetic between {a.value.type} and {b.value.type}",
                loc=user_loc(), fix="convert the index side with mt.to_float(...)")
        if d is SDIV and not a.dtype.is_float:
            raise TraceError("`/` on index values", loc=user_loc(),
                             fix="use `//` for integer division (or mt.to_float for a float)")
        op = emit(d, [a.value, b.value])
        lin = None
        if d is SADD:
            lin = _lin_add(a.lin, b.lin)
        elif d is SSUB:
            lin = _lin_add(a.lin, b.lin, -1)
        elif d is SMUL:
            for x, y in ((a, b), (b, a)):
                if not y.lin[0] and isinstance(y.lin[1], int):
                    lin = _lin_scale(x.lin, y.lin[1])
                    break
        return ScalarVal(op.result, lin)

    def __neg__(self):
        return self._bin(SSUB, 0, True)

    def __bool__(self):
        raise TraceError("a runtime value cannot drive a Python `if`/`while`",
                         loc=user_loc(),
                         fix="use mt.where on tiles, mt.smin / mt.smax for bounds, or "
                             "make it a compile-time constant (mt.const)")

    def __index__(self):
        raise TraceError("a runtime value cannot be used as a Python int",
                         loc=user_loc(),
                         fix="use mt.range(...) instead of range(...), and pass sizes "
                             "as mt.const parameters")

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"ScalarVal({self.value.type})"


def as_scalar(x, dtype: DType = DType.I64):
    """Python number -> ScalarVal (a shared const); handles pass through."""
    if isinstance(x, ScalarVal):
        return x
    if isinstance(x, bool):
        return ScalarVal(const_value(x, DType.BOOL))
    if isinstance(x, int):
        if dtype.is_float:
            return ScalarVal(const_value(float(x), dtype), (frozenset(), float(x)))
        return ScalarVal(const_value(x, DType.I64), (frozenset(), x))
    if isinstance(x, float):
        return ScalarVal(const_value(x, DType.F32), (frozenset(), x))
    return x


def index_operand(x, what: str) -> Value:
    """An int or index ScalarVal -> an index Value."""
    if isinstance(x, bool) or not isinstance(x, (int, ScalarVal)):
        raise TraceError(f"{what} must be an int or an index value, got {x!r}",
                         loc=user_loc())
    s = as_scalar(x)
    if s.value.type != INDEX:
        raise TraceError(f"{what} must be an index value, got {s.value.type}",
                         loc=user_loc(), fix="use integer arithmetic for offsets")
    return s.value


def static_diff(stop, start) -> int | None:
    """stop - start when it is a compile-time int (affine forms cancel), else None."""
    if isinstance(stop, int) and isinstance(start, int):
        return stop - start
    a = as_scalar(stop) if not isinstance(stop, ScalarVal) else stop
    b = as_scalar(start) if not isinstance(start, ScalarVal) else start
    d = _lin_add(a.lin, b.lin, -1)
    return d[1] if not d[0] and isinstance(d[1], int) else None


# ---------------------------------------------------------------- tiles

class TileVal:
    """An on-chip tile during tracing. Operators record vector ops."""

    __slots__ = ("value",)

    def __init__(self, value: Value) -> None:
        self.value = value

    @property
    def type(self) -> TileType:
        return self.value.type

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.type.shape

    @property
    def dtype(self) -> DType:
        return self.value.type.dtype

    def _operand(self, o) -> Value:
        if isinstance(o, TileVal):
            return o.value
        if isinstance(o, ScalarVal):
            return o.value
        if isinstance(o, (int, float)) and not isinstance(o, bool):
            if self.dtype.is_float:  # the scalar operand takes the tile's dtype
                return const_value(float(round_to(self.dtype, np.float32([o]))[0]), DType.F32)
            if isinstance(o, float) and o != int(o):
                raise TraceError(f"a {self.dtype.short} tile combined with the float {o}",
                                 loc=user_loc(), fix="cast the tile first: .astype(mt.f32)")
            return const_value(int(o), DType.I64)
        raise TraceError(f"cannot combine a tile with {type(o).__name__}", loc=user_loc())

    def _bin(self, d: OpDef, o, rev=False) -> TileVal:
        ov = self._operand(o)
        ops = [ov, self.value] if rev else [self.value, ov]
        return TileVal(emit(d, ops).result)

    def __neg__(self):
        return TileVal(emit(NEG, [self.value]).result)

    def __abs__(self):
        return TileVal(emit(ABS, [self.value]).result)

    def astype(self, dtype: DType) -> TileVal:
        """Cast to `dtype` (rounded at the storage point)."""
        if not isinstance(dtype, DType):
            raise TraceError(f"astype needs an mt dtype (mt.f32, mt.bf16, ...), got {dtype!r}",
                             loc=user_loc())
        if dtype == self.dtype:
            return self
        return TileVal(emit(CAST, [self.value], {"dtype": dtype}).result)

    def reshape(self, *shape) -> TileVal:
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], tuple) else shape
        if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            raise TraceError(f"reshape needs positive int extents, got {shape}", loc=user_loc())
        return TileVal(emit(RESHAPE, [self.value], {"shape": tuple(shape)}).result)

    @property
    def T(self) -> TileVal:  # noqa: N802
        return TileVal(emit(TRANSPOSE, [self.value]).result)

    def __bool__(self):
        raise TraceError("a tile cannot drive a Python `if`", loc=user_loc(),
                         fix="use mt.where(cond, a, b)")

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"TileVal({self.value.type})"


def _install_operators(cls: type, unit: Unit) -> None:
    """Python operators of `cls` from the registry: an op of `unit` declaring
    `operator="add"` gives `cls.__add__` (and `__radd__`) recording that op; a comparison
    has no reflected form (Python swaps `<` and `>` instead)."""
    for d in all_ops():
        if d.operator is None or d.unit is not unit:
            continue
        setattr(cls, f"__{d.operator}__", lambda self, o, d=d: self._bin(d, o))
        if hasattr(int, f"__r{d.operator}__"):  # arithmetic has a reflected form
            setattr(cls, f"__r{d.operator}__", lambda self, o, d=d: self._bin(d, o, True))


_install_operators(ScalarVal, Unit.SCALAR)
_install_operators(TileVal, Unit.VECTOR)


class TensorVal:
    """A GM tensor parameter during tracing; index it to make a region or read a scalar."""

    __slots__ = ("value", "name")

    def __init__(self, value: Value, name: str) -> None:
        self.value = value
        self.name = name

    @property
    def type(self) -> TensorType:
        return self.value.type

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def ndim(self) -> int:
        return len(self.type.shape)

    def dim(self, axis: int) -> int | ScalarVal:
        d = self.type.shape[axis]
        if isinstance(d, int):
            return d
        # a fresh op per call (CSE merges them): a loop-carried variable that starts as a
        # dim must not capture the other uses of that dim
        blk = _state.stack[0]
        op = make_op(DIM, [self.value], {"axis": axis}, loc=user_loc())
        op.parent = blk
        blk.ops.insert(0, op)
        return ScalarVal(op.result)

    @property
    def shape(self) -> tuple:
        return tuple(self.dim(i) for i in range(self.ndim))

    def __getitem__(self, idx) -> Region | ScalarVal:
        from mixtile.language.region import make_region

        return make_region(self, idx)

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"TensorVal({self.name}: {self.type})"


class Region:
    """A rectangular GM region `x[a:b, c]` (extents static, offsets runtime)."""

    __slots__ = ("tensor", "offsets", "sizes", "keep")

    def __init__(self, tensor: TensorVal, offsets: list[Value], sizes: tuple[int, ...],
                 keep: tuple[bool, ...]) -> None:
        self.tensor = tensor
        self.offsets = offsets
        self.sizes = sizes
        self.keep = keep

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(s for s, k in zip(self.sizes, self.keep) if k)

    def attrs(self) -> dict:
        return {"sizes": self.sizes, "keep": self.keep}


def scalar_type_of(x) -> ScalarType | None:
    return x.value.type if isinstance(x, ScalarVal) else None
