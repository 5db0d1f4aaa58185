"""The DSL's functions: data movement, cube and vector ops, tile creation."""
from __future__ import annotations

from mixtile.errors import TraceError
from mixtile.ir.ops import (
    ARANGE,
    BROADCAST,
    FULL,
    GELU_ERF,
    GELU_TANH,
    LOAD,
    MATMUL,
    MOVE,
    REDUCE,
    SCAST,
    SELECT,
    SMAX,
    SMIN,
    STORE,
)
from mixtile.ir.registry import OpDef, Surface, all_ops
from mixtile.ir.types import AtomicKind, DType, MemSpace, ReduceKind
from mixtile.language.tracer import (
    Region,
    ScalarVal,
    TileVal,
    as_scalar,
    emit,
    user_loc,
)


def _tile(x, what: str) -> TileVal:
    if not isinstance(x, TileVal):
        raise TraceError(f"{what} must be a tile, got {type(x).__name__}", loc=user_loc(),
                         fix="mt.load(...) GM data into a tile first" if not isinstance(
                             x, ScalarVal) else None)
    return x


def _region(r, what: str) -> Region:
    if not isinstance(r, Region):
        raise TraceError(f"{what} needs a GM region such as x[m0:m0 + TM, k0:k0 + TK], "
                         f"got {type(r).__name__}", loc=user_loc())
    return r


def load(region: Region, space: MemSpace | None = None, pad: float = 0.0,
         rows=None) -> TileVal:
    """GM region -> tile. Parts past the tensor's end are filled with `pad`.

    `space` is inferred from the tile's uses when omitted (L1 for matmul operands,
    UB for vector work). rows: read only the region's first `rows` rows (its first sliced
    axis; an int or an index value, may be 0); the rest of the tile holds `pad` and GM
    there is not touched (e.g. a cache page's slots not written yet)."""
    r = _region(region, "mt.load")
    _space(space, "mt.load", allow_none=True)
    if isinstance(pad, bool) or not isinstance(pad, (int, float)):
        raise TraceError(f"mt.load pad must be a compile-time number, got {pad!r}",
                         loc=user_loc(), fix="e.g. pad=0.0 or pad=float('-inf')")
    attrs = {**r.attrs(), "pad": float(pad), "space": space or MemSpace.ANY}
    operands = [r.tensor.value, *r.offsets]
    _row_bound(r, rows, operands, attrs, "mt.load")
    return TileVal(emit(LOAD, operands, attrs).result)


def _row_bound(r: Region, rows, operands: list, attrs: dict, what: str) -> None:
    """rows=n: only the region's first n rows (its first sliced axis) are touched; the
    op carries the absolute bound as its last operand and the region dim as row_limit."""
    if rows is None:
        return
    if isinstance(rows, bool) or not isinstance(rows, (int, ScalarVal)) or (
            isinstance(rows, ScalarVal) and rows.dtype.is_float):
        raise TraceError(f"{what} rows must be an int or an index value, got {rows!r}",
                         loc=user_loc(), fix="e.g. rows=n_valid (a count of rows)")
    d = r.keep.index(True)  # the region dim of the tile's first axis
    operands.append(as_scalar(ScalarVal(r.offsets[d]) + rows).value)  # absolute bound
    attrs["row_limit"] = d


def _space(space, what: str, allow_none: bool = False) -> None:
    if space is None and allow_none:
        return
    if not isinstance(space, MemSpace) or space in (MemSpace.GM, MemSpace.ANY):
        raise TraceError(f"{what}: {space!r} is not an on-chip memory space", loc=user_loc(),
                         fix="use mt.L1, mt.L0A, mt.L0B, mt.L0C, mt.UB or mt.BT "
                             "(GM is reached with mt.load / mt.store)")


def _store(region, tile, atomic: AtomicKind, rows=None, what: str = "mt.store") -> None:
    r = _region(region, what)
    t = _tile(tile, "the stored value")
    if t.shape != r.shape:
        raise TraceError(f"storing a {list(t.shape)} tile into {r.tensor.name}[...] whose "
                         f"region is {list(r.shape)}", loc=user_loc(),
                         fix="make the region's extents match the tile")
    operands, attrs = [r.tensor.value, t.value, *r.offsets], {**r.attrs(), "atomic": atomic}
    _row_bound(r, rows, operands, attrs, what)
    emit(STORE, operands, attrs)


def store(region: Region, tile: TileVal, rows=None) -> None:
    """tile -> GM region; only the in-bounds part is written (with rows=n: only the
    region's first n rows, e.g. a sequence's last rows before the next one's)."""
    _store(region, tile, AtomicKind.NONE, rows)


def atomic_add(region: Region, tile: TileVal, rows=None) -> None:
    """GM region += tile, atomically (split-K partial sums); rows= as for mt.store."""
    _store(region, tile, AtomicKind.ADD, rows, "mt.atomic_add")


def move(tile: TileVal, space: MemSpace) -> TileVal:
    """Copy a tile to another on-chip space (illegal paths are routed through GM)."""
    t = _tile(tile, "mt.move")
    _space(space, "mt.move")
    return TileVal(emit(MOVE, [t.value], {"space": space}).result)


def matmul(a: TileVal, b: TileVal, acc: TileVal | None = None, a_trans: bool = False,
           b_trans: bool = False) -> TileVal:
    """Cube: a @ b (+ acc) with fp32 (int32 for int8) accumulation.

    a_trans: a is [K, M]; b_trans: b is [N, K] (as a weight stored [out, in])."""
    ops = [_tile(a, "matmul a").value, _tile(b, "matmul b").value]
    if acc is not None:
        ops.append(_tile(acc, "matmul acc").value)
    return TileVal(emit(MATMUL, ops, {"a_trans": bool(a_trans),
                                        "b_trans": bool(b_trans)}).result)


def _shape(shape) -> tuple[int, ...]:
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    for d in shape:
        if not isinstance(d, int) or d <= 0:
            raise TraceError(f"tile shape {shape}: extents must be positive compile-time "
                             "ints", loc=user_loc(), fix="pass tile sizes as mt.const")
    return shape


def full(shape, value: float, dtype: DType = DType.F32,
         space: MemSpace | None = None) -> TileVal:
    """A tile filled with `value` (compile-time number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TraceError(f"mt.full takes a compile-time number, got {value!r}",
                         loc=user_loc(), fix="use mt.zeros(shape) + runtime_scalar")
    if not isinstance(dtype, DType):
        raise TraceError(f"mt.full dtype must be an mt dtype, got {dtype!r}", loc=user_loc())
    _space(space, "mt.full", allow_none=True)
    v = float(value) if dtype.is_float else int(value)
    return TileVal(emit(FULL, [], {"shape": _shape(shape), "dtype": dtype, "value": v,
                                     "space": space or MemSpace.ANY}).result)


def zeros(shape, dtype: DType = DType.F32, space: MemSpace | None = None) -> TileVal:
    """A zero tile; as a matmul accumulator it lives in L0C."""
    return full(shape, 0.0, dtype, space)


def arange(n: int, dtype: DType = DType.I32) -> TileVal:
    """[0, 1, ..., n-1] as a 1-d tile."""
    return TileVal(emit(ARANGE, [], {"n": _shape(n)[0], "dtype": dtype}).result)


# ---------------------------------------------------------------- from the registry:
# every op declared with a `surface` gets its DSL function here (mt.exp, mt.maximum, ...)

def _unary(d: OpDef):
    def f(x: TileVal) -> TileVal:
        return TileVal(emit(d, [_tile(x, f"mt.{d.name}").value]).result)
    return f


def _binary(d: OpDef):
    def f(a, b) -> TileVal:
        t = a if isinstance(a, TileVal) else _tile(b, f"mt.{d.name}")
        return t._bin(d, b if t is a else a, rev=t is not a)
    return f


_MAKERS = {Surface.UNARY: (_unary, "Elementwise {} of a tile (vector)."),
           Surface.BINARY: (_binary, "Elementwise {} of two tiles, or of a tile and a "
                                     "scalar (vector).")}
GENERATED: list[str] = []
for _d in all_ops():
    if _d.surface is not None:
        _make, _doc = _MAKERS[_d.surface]
        _f = _make(_d)
        _f.__name__ = _f.__qualname__ = _d.name
        _f.__doc__ = _d.doc or _doc.format(_d.name)
        globals()[_d.name] = _f
        GENERATED.append(_d.name)


def gelu(x: TileVal, approximate: bool = False) -> TileVal:
    """GeLU, erf form (approximate=True: the tanh form)."""
    return _unary(GELU_TANH if approximate else GELU_ERF)(x)


def where(cond: TileVal, a, b) -> TileVal:
    """Elementwise cond ? a : b (a and b tiles or scalars)."""
    c = _tile(cond, "mt.where condition")
    ref = a if isinstance(a, TileVal) else b
    if not isinstance(ref, TileVal):  # two scalars: the condition gives the shape
        if isinstance(b, bool) or not isinstance(b, (int, float)):
            raise TraceError("mt.where needs tiles or compile-time numbers for a and b",
                             loc=user_loc())
        ref = full(c.shape, b, DType.F32 if isinstance(a, float) or isinstance(b, float)
                   else DType.I32)
        b = ref
    return TileVal(emit(SELECT, [c.value, ref._operand(a), ref._operand(b)]).result)


def _reduce(kind: ReduceKind, axis: int):
    def f(x: TileVal) -> TileVal:
        t = _tile(x, "reduction")
        return TileVal(emit(REDUCE, [t.value], {"kind": kind, "axis": axis}).result)
    return f


row_sum, row_max, row_min = (_reduce(k, -1) for k in ReduceKind)
col_sum, col_max, col_min = (_reduce(k, 0) for k in ReduceKind)
row_sum.__doc__ = "Sum along the last axis, keeping it (an (M, N) tile gives (M, 1))."
col_sum.__doc__ = "Sum along axis 0, keeping it (an (M, N) tile gives (1, N))."


def reduce(x: TileVal, kind: ReduceKind, axis: int) -> TileVal:
    """Reduce along `axis` (kept as 1) with mt.ReduceKind.SUM / MAX / MIN."""
    if not isinstance(kind, ReduceKind) or isinstance(axis, bool) or not isinstance(axis, int):
        raise TraceError(f"mt.reduce needs a ReduceKind and an int axis, got {kind!r}, "
                         f"{axis!r}", loc=user_loc(), fix="e.g. mt.ReduceKind.SUM, axis=-1")
    return _reduce(kind, axis)(x)


def broadcast_to(x: TileVal, shape) -> TileVal:
    t = _tile(x, "mt.broadcast_to")
    return TileVal(emit(BROADCAST, [t.value], {"shape": _shape(shape)}).result)


def row_broadcast(x: TileVal, n: int) -> TileVal:
    """(M, 1) -> (M, n)."""
    t = _tile(x, "mt.row_broadcast")
    return broadcast_to(t, (t.shape[0], n))


def col_broadcast(x: TileVal, m: int) -> TileVal:
    """(1, N) or (N,) -> (m, N)."""
    t = _tile(x, "mt.col_broadcast")
    return broadcast_to(t, (m, t.shape[-1]))


def to_float(x) -> ScalarVal:
    """An index value as an f32 scalar (e.g. a sequence length used in a mean)."""
    if not isinstance(x, (int, ScalarVal)) or isinstance(x, bool):
        raise TraceError(f"mt.to_float takes an index value, got {type(x).__name__}",
                         loc=user_loc(), fix="for a tile use .astype(mt.f32)")
    s = as_scalar(x)
    return ScalarVal(emit(SCAST, [s.value], {"dtype": DType.F32}).result)


def _scalars(a, b, what: str) -> None:
    for v in (a, b):
        if not isinstance(v, (int, ScalarVal)) or isinstance(v, bool):
            raise TraceError(f"{what} takes ints or index values, got {type(v).__name__}",
                             loc=user_loc(), fix="for tiles use mt.minimum / mt.maximum")


def smin(a, b):
    """min of two index values (ints fold at trace time)."""
    _scalars(a, b, "mt.smin")
    if isinstance(a, int) and isinstance(b, int):
        return min(a, b)
    s = as_scalar(a) if isinstance(a, ScalarVal) else as_scalar(b)
    return s._bin(SMIN, b if s is a else a, rev=s is not a)


def smax(a, b):
    """max of two index values (ints fold at trace time)."""
    _scalars(a, b, "mt.smax")
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    s = as_scalar(a) if isinstance(a, ScalarVal) else as_scalar(b)
    return s._bin(SMAX, b if s is a else a, rev=s is not a)
