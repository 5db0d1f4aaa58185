"""Every op of mixtile, declared once as a named object (`EXP`, `LOAD`, ...) with every
fact about it (see registry.OpDef): shape/dtype rule, unit, pipe, numpy semantics, cost,
GM effects, exactness, in-place safety, operand spaces, data path, lane split, DSL surface.

Adding an elementwise op is one line here (`SOFTPLUS = _unary("softplus", fn)`) plus one
rule per backend that needs code; consumers import the object, never compare names.
"""
from __future__ import annotations

import math

import numpy as np

from mixtile.errors import TraceError
from mixtile.ir.numeric import erf
from mixtile.ir.registry import LaneSplit, OpDef, OpKind, Surface, define
from mixtile.ir.types import (
    INDEX,
    CoreType,
    DType,
    MemSpace,
    Pipe,
    ReduceKind,
    ScalarType,
    TensorType,
    TileType,
    Unit,
)

P, M, C, T = OpKind.PURE, OpKind.MEMORY, OpKind.CONTROL, OpKind.TERMINATOR
S = MemSpace


def _err(msg: str, fix: str | None = None):
    raise TraceError(msg, fix=fix)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


# ---------------------------------------------------------------- cost helpers

def _vec_cost(op, tgt) -> int:
    t = op.results[0].type if op.results else op.operands[0].type
    nbytes = max(t.numel * 4, 32) if isinstance(t, TileType) else 32
    return _cdiv(nbytes, tgt.vector_bytes_per_cycle) + 1


def _scalar_cost(op, tgt) -> int:
    return 1


def _bytes_cost(attr: str):
    def cost(op, tgt) -> int:
        t = next(v.type for v in (op.results + op.operands) if isinstance(v.type, TileType))
        return _cdiv(t.nbytes, getattr(tgt, attr)) + 8
    return cost


# ---------------------------------------------------------------- shape rules

def _broadcast(shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        _err(f"tile shapes {' and '.join(str(list(s)) for s in shapes)} do not broadcast",
             "use equal shapes, or a 1 on the broadcast axis (row_sum keeps (M, 1); "
             "reshape a vector to (1, N) or (M, 1))")


def _elementwise_infer(types, attrs, out_dtype=None):
    tiles = [t for t in types if isinstance(t, TileType)]
    if not tiles:
        _err("vector op needs at least one tile operand")
    dtypes = {t.dtype for t in tiles}
    if len(dtypes) > 1:
        names = " and ".join(sorted(d.short for d in dtypes))
        _err(f"operands have different dtypes ({names})",
             "cast one side with .astype(...) so both match")
    dt = tiles[0].dtype
    for t in types:
        if isinstance(t, TensorType):
            _err("a GM tensor cannot be a vector operand", "mt.load(...) it into a tile first")
    shape = _broadcast([t.shape for t in tiles])
    return [TileType(out_dtype or dt, shape, MemSpace.ANY)]


def _unary_infer(types, attrs):
    t = types[0]
    if not isinstance(t, TileType):
        _err(f"expected a tile operand, got {t}")
    if not t.dtype.is_float:
        _err(f"{t.dtype.short} tile given to a float-only op", "cast with .astype(mt.f32) first")
    return [TileType(t.dtype, t.shape, MemSpace.ANY)]


# ---------------------------------------------------------------- vector elementwise

def _gelu_tanh(x):
    k = np.float32(math.sqrt(2.0 / math.pi))
    return 0.5 * x * (1.0 + np.tanh(k * (x + np.float32(0.044715) * x * x * x)))


_SQRT1_2 = 1.0 / math.sqrt(2.0)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _unary(name: str, fn, *, exact: bool = False, in_place: bool = True) -> OpDef:
    """A float elementwise op of one tile: mt.<name>(x)."""
    return define(name, P, Unit.VECTOR, Pipe.V, _unary_infer,
                  impl=lambda attrs, x: fn(x), cost=_vec_cost, exact=exact,
                  in_place=in_place, lane_split=LaneSplit.SAME, surface=Surface.UNARY)


# in_place=False: Ascend C computes these with high-level APIs that forbid overlapping
# source and destination (Silu computes -x, exp, +1 in dst, then x / dst).
EXP = _unary("exp", np.exp)
LOG = _unary("log", np.log)
SQRT = _unary("sqrt", np.sqrt)
RSQRT = _unary("rsqrt", lambda x: 1.0 / np.sqrt(x))
RECIPROCAL = _unary("reciprocal", lambda x: 1.0 / x)
ABS = _unary("abs", np.abs, exact=True)
NEG = _unary("neg", np.negative, exact=True)
TANH = _unary("tanh", np.tanh, in_place=False)
SIN = _unary("sin", np.sin, in_place=False)
COS = _unary("cos", np.cos, in_place=False)
RELU = _unary("relu", lambda x: np.maximum(x, np.float32(0)), exact=True)
SIGMOID = _unary("sigmoid", _sigmoid, in_place=False)
SILU = _unary("silu", lambda x: x * _sigmoid(x), in_place=False)
GELU_TANH = _unary("gelu_tanh", _gelu_tanh, in_place=False)
SOFTPLUS = _unary("softplus", lambda x: np.logaddexp(np.float32(0), x), in_place=False)
GELU_ERF = _unary("gelu_erf", lambda x: 0.5 * x * (1.0 + erf(x * np.float32(_SQRT1_2))),
                  in_place=False)
EXP2 = _unary("exp2", np.exp2)


def _binary(name: str, fn, operator: str | None = None, *, exact: bool = False,
            compare: bool = False) -> OpDef:
    """An elementwise op of two tiles (or a tile and a scalar); comparisons give bool."""
    infer = (lambda types, attrs: _elementwise_infer(types, attrs, DType.BOOL)) if compare \
        else _elementwise_infer
    return define(name, P, Unit.VECTOR, Pipe.V, infer,
                  impl=lambda attrs, a, b: fn(a, b), cost=_vec_cost, exact=exact,
                  in_place=True, lane_split=LaneSplit.SAME, operator=operator,
                  surface=None if operator else Surface.BINARY)


ADD = _binary("add", np.add, "add")
SUB = _binary("sub", np.subtract, "sub")
MUL = _binary("mul", np.multiply, "mul")
DIV = _binary("div", np.divide, "truediv")
MAXIMUM = _binary("maximum", np.maximum, exact=True)
MINIMUM = _binary("minimum", np.minimum, exact=True)
LT = _binary("lt", np.less, "lt", compare=True)
LE = _binary("le", np.less_equal, "le", compare=True)
GT = _binary("gt", np.greater, "gt", compare=True)
GE = _binary("ge", np.greater_equal, "ge", compare=True)
EQ = _binary("eq", np.equal, "eq", compare=True)
NE = _binary("ne", np.not_equal, "ne", compare=True)


def _select_infer(types, attrs):
    c = types[0]
    if not (isinstance(c, TileType) and c.dtype is DType.BOOL):
        _err(f"select's condition must be a bool tile (a comparison), got {c}")
    out = _elementwise_infer(types[1:], attrs)[0]
    shape = _broadcast([c.shape, out.shape])
    return [TileType(out.dtype, shape, MemSpace.ANY)]


SELECT = define("select", P, Unit.VECTOR, Pipe.V, _select_infer,
                impl=lambda attrs, c, a, b: np.where(c, a, b), cost=_vec_cost, exact=True,
                in_place=True, lane_split=LaneSplit.SAME)


def _cast_infer(types, attrs):
    t = types[0]
    if not isinstance(t, TileType):
        _err(f"astype needs a tile, got {t}")
    return [TileType(attrs["dtype"], t.shape, MemSpace.ANY)]


def _cast_impl(attrs, x):
    return x  # the storage rounding to attrs["dtype"] happens when the result is stored


CAST = define("cast", P, Unit.VECTOR, Pipe.V, _cast_infer, impl=_cast_impl, cost=_vec_cost,
              exact=lambda op: op.operands[0].type.dtype is op.attrs["dtype"],
              in_place=True, lane_split=LaneSplit.SAME)


def _reduce_infer(types, attrs):
    t = types[0]
    if not isinstance(t, TileType):
        _err(f"reduction needs a tile, got {t}")
    axis = attrs["axis"]
    if not -len(t.shape) <= axis < len(t.shape):
        _err(f"axis {axis} out of range for a {len(t.shape)}-d tile")
    shape = list(t.shape)
    shape[axis] = 1
    return [TileType(t.dtype, tuple(shape), MemSpace.ANY)]


_REDUCE = {ReduceKind.SUM: np.sum, ReduceKind.MAX: np.max, ReduceKind.MIN: np.min}


def _reduce_impl(attrs, x):
    return _REDUCE[attrs["kind"]](x, axis=attrs["axis"], keepdims=True)


def _reduce_cost(op, tgt) -> int:  # charged on the input tile, not the reduced result
    return 2 * (_cdiv(max(op.operands[0].type.numel * 4, 32), tgt.vector_bytes_per_cycle)
                + 1) + 8


REDUCE = define("reduce", P, Unit.VECTOR, Pipe.V, _reduce_infer, impl=_reduce_impl,
                cost=_reduce_cost, in_place=False, lane_split=LaneSplit.REDUCE,
                exact=lambda op: op.attrs["kind"] in (ReduceKind.MAX, ReduceKind.MIN))


def _full_infer(types, attrs):
    return [TileType(attrs["dtype"], tuple(attrs["shape"]), attrs.get("space", MemSpace.ANY))]


def _full_impl(attrs, *scalar):
    dt: DType = attrs["dtype"]
    value = scalar[0] if scalar else attrs["value"]
    return np.full(tuple(attrs["shape"]), value, dtype=dt.compute_np)


def _full_unit(op):
    # zeros in L0C is the cube's "initialise the accumulator" flag, not vector work
    return Unit.CUBE if op.results[0].type.space is MemSpace.L0C else Unit.VECTOR


FULL = define("full", P, _full_unit,
              lambda op: Pipe.M if _full_unit(op) is Unit.CUBE else Pipe.V,
              _full_infer, impl=_full_impl, cost=_vec_cost, lane_split=LaneSplit.SHAPE)


def _arange_infer(types, attrs):
    return [TileType(attrs["dtype"], (attrs["n"],), MemSpace.ANY)]


ARANGE = define("arange", P, Unit.VECTOR, Pipe.V, _arange_infer,
                impl=lambda attrs: np.arange(attrs["n"], dtype=attrs["dtype"].compute_np),
                cost=_vec_cost, lane_split=LaneSplit.IOTA)


def _reshape_infer(types, attrs):
    t = types[0]
    shape = tuple(attrs["shape"])
    if math.prod(shape) != t.numel:
        _err(f"cannot reshape {list(t.shape)} ({t.numel} elements) to {list(shape)}")
    return [TileType(t.dtype, shape, MemSpace.ANY)]


RESHAPE = define("reshape", P, Unit.VECTOR, Pipe.V, _reshape_infer,
                 impl=lambda attrs, x: x.reshape(tuple(attrs["shape"])),
                 cost=lambda op, tgt: 1, exact=True, in_place=True,
                 lane_split=LaneSplit.WHOLE)


def _bcast_infer(types, attrs):
    t = types[0]
    shape = tuple(attrs["shape"])
    if _broadcast([t.shape, shape]) != shape:
        _err(f"cannot broadcast {list(t.shape)} to {list(shape)}")
    return [TileType(t.dtype, shape, MemSpace.ANY)]


BROADCAST = define("broadcast", P, Unit.VECTOR, Pipe.V, _bcast_infer,
                   impl=lambda attrs, x: np.broadcast_to(x, tuple(attrs["shape"])),
                   cost=_vec_cost, exact=True, in_place=False, lane_split=LaneSplit.SHAPE)


def _transpose_infer(types, attrs):
    t = types[0]
    if len(t.shape) != 2:
        _err(f"transpose needs a 2-d tile, got shape {list(t.shape)}")
    return [TileType(t.dtype, (t.shape[1], t.shape[0]), MemSpace.ANY)]


TRANSPOSE = define("transpose", P, Unit.VECTOR, Pipe.V, _transpose_infer,
                   impl=lambda attrs, x: x.T, cost=_vec_cost, exact=True, in_place=False,
                   lane_split=LaneSplit.WHOLE)

# ---------------------------------------------------------------- cube

_MATMUL_IN = {DType.F16: DType.F32, DType.BF16: DType.F32, DType.F32: DType.F32,
              DType.I8: DType.I32, DType.F8E4M3: DType.F32, DType.F8E5M2: DType.F32}


def _matmul_infer(types, attrs):
    a, b = types[0], types[1]
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, TileType) or len(t.shape) != 2:
            _err(f"matmul operand {name} must be a 2-d tile, got {t}")
    if a.dtype != b.dtype:
        _err(f"matmul operands differ in dtype ({a.dtype.short} vs {b.dtype.short})",
             "cast one operand so both match")
    if a.dtype not in _MATMUL_IN:
        _err(f"the cube has no {a.dtype.short} matmul",
             f"use one of {', '.join(d.short for d in _MATMUL_IN)}")
    m, ka = (a.shape[1], a.shape[0]) if attrs.get("a_trans") else a.shape
    kb, n = (b.shape[1], b.shape[0]) if attrs.get("b_trans") else b.shape
    if ka != kb:
        _err(f"matmul K mismatch: a gives K={ka}, b gives K={kb}",
             "check the tile sizes, or pass b_trans=True for a [N, K] operand")
    out = TileType(_MATMUL_IN[a.dtype], (m, n), MemSpace.ANY)
    if len(types) > 2:
        c = types[2]
        if not isinstance(c, TileType) or c.shape != out.shape or c.dtype != out.dtype:
            _err(f"matmul acc must be a {out.dtype.short} tile of shape {list(out.shape)}, "
                 f"got {c}", "start it with mt.zeros((M, N), mt.f32)")
    return [out]


def _matmul_impl(attrs, a, b, acc=None):
    if attrs.get("a_trans"):
        a = a.T
    if attrs.get("b_trans"):
        b = b.T
    if a.dtype.kind == "i":
        r = a.astype(np.int32) @ b.astype(np.int32)
    else:
        r = a @ b
    return r if acc is None else acc + r


def _matmul_cost(op, tgt) -> int:
    a = op.operands[0].type
    m, n = op.results[0].type.shape
    k = a.shape[0] if op.attrs.get("a_trans") else a.shape[1]
    bm, bn, bk = tgt.cube_block
    scale = {DType.F32: 4, DType.I8: 0.5}.get(a.dtype, 1)
    return int(_cdiv(m, bm) * _cdiv(n, bn) * _cdiv(k, bk) * scale) + 4


def _matmul_spaces(op):
    return [(S.L0A,), (S.L0B,), (S.L0C,)][:len(op.operands)], [(S.L0C,)]


MATMUL = define("matmul", P, Unit.CUBE, Pipe.M, _matmul_infer, impl=_matmul_impl,
                cost=_matmul_cost, spaces=_matmul_spaces,
                doc="a @ b (+ acc), fp32 accumulate; attrs a_trans, b_trans")

# ---------------------------------------------------------------- scalars

def _scalar_infer(types, attrs):
    for t in types:
        if not isinstance(t, ScalarType):
            _err(f"scalar op on {t}", "tile arithmetic uses the vector ops")
    dts = {t.dtype for t in types}
    if len(dts) > 1:
        _err(f"scalar operands differ in type ({', '.join(sorted(d.short for d in dts))})")
    return [types[0]]


def _floordiv(a, b):
    return a // b


def _sbinary(name: str, fn, operator: str | None, compare: bool = False) -> OpDef:
    """A scalar (index or f32) op of two operands; comparisons give bool."""
    infer = (lambda types, attrs: (_scalar_infer(types, attrs), [ScalarType(DType.BOOL)])[1]) \
        if compare else _scalar_infer
    return define(name, P, Unit.SCALAR, Pipe.S, infer, impl=lambda attrs, a, b: fn(a, b),
                  cost=_scalar_cost, lane_split=LaneSplit.SAME, operator=operator)


SADD = _sbinary("sadd", lambda a, b: a + b, "add")
SSUB = _sbinary("ssub", lambda a, b: a - b, "sub")
SMUL = _sbinary("smul", lambda a, b: a * b, "mul")
SDIV = _sbinary("sdiv", lambda a, b: a / b, "truediv")
SFLOORDIV = _sbinary("sfloordiv", _floordiv, "floordiv")
SMOD = _sbinary("smod", lambda a, b: a % b, "mod")
SMIN = _sbinary("smin", min, None)
SMAX = _sbinary("smax", max, None)
SLT = _sbinary("slt", lambda a, b: a < b, "lt", compare=True)
SLE = _sbinary("sle", lambda a, b: a <= b, "le", compare=True)
SGT = _sbinary("sgt", lambda a, b: a > b, "gt", compare=True)
SGE = _sbinary("sge", lambda a, b: a >= b, "ge", compare=True)
SEQ = _sbinary("seq", lambda a, b: a == b, "eq", compare=True)
SNE = _sbinary("sne", lambda a, b: a != b, "ne", compare=True)


def _sselect_infer(types, attrs):
    return _scalar_infer(types[1:], attrs)


SSELECT = define("sselect", P, Unit.SCALAR, Pipe.S, _sselect_infer,
                 impl=lambda attrs, c, a, b: a if c else b, cost=_scalar_cost,
                 lane_split=LaneSplit.SAME)


def _const_infer(types, attrs):
    return [ScalarType(attrs["dtype"])]


CONST = define("const", P, Unit.SCALAR, Pipe.S, _const_infer,
               impl=lambda attrs: attrs["value"], cost=lambda op, tgt: 0,
               lane_split=LaneSplit.SAME)


def _scast_infer(types, attrs):
    return [ScalarType(attrs["dtype"])]


SCAST = define("scast", P, Unit.SCALAR, Pipe.S, _scast_infer,
               impl=lambda attrs, x: float(x) if attrs["dtype"].is_float else int(x),
               cost=_scalar_cost, lane_split=LaneSplit.SAME)


def _dim_infer(types, attrs):
    t = types[0]
    if not isinstance(t, TensorType):
        _err(f"dim of a non-tensor {t}")
    return [INDEX]


DIM = define("dim", P, Unit.SCALAR, Pipe.S, _dim_infer, cost=lambda op, tgt: 0,
             lane_split=LaneSplit.SAME,
             doc="the runtime extent of a tensor axis (its shape, not its data); attrs axis")

# ---------------------------------------------------------------- memory


def _region_check(types, attrs, what: str):
    t = types[0]
    if not isinstance(t, TensorType):
        _err(f"{what} needs a GM tensor, got {t}")
    sizes, keep = attrs["sizes"], attrs["keep"]
    if len(sizes) != len(t.shape) or len(keep) != len(t.shape):
        _err(f"{what}: {len(sizes)} extents for a {len(t.shape)}-d tensor")
    return t, tuple(s for s, k in zip(sizes, keep) if k)


def _load_infer(types, attrs):
    t, shape = _region_check(types, attrs, "load")
    n_off = len(types) - 1 - (attrs.get("row_limit") is not None)
    if n_off != len(t.shape):
        _err(f"load: {n_off} offsets for a {len(t.shape)}-d tensor")
    return [TileType(t.dtype, shape, attrs.get("space", MemSpace.ANY))]


def _load_pipe(op):
    return Pipe.MTE2


def _load_path(op):
    # from GM, or (A5) from a ring in the core's own memory: then a local read, no move
    src, dst = op.attrs.get("ring", S.GM), op.results[0].type.space
    return None if src is dst else (src, dst)


LOAD = define(
    "load", M, Unit.MTE, _load_pipe, _load_infer, cost=_bytes_cost("mte2_bytes_per_cycle"),
    reads=(0,), path=_load_path, lane_split=LaneSplit.REGION,
    doc="GM region -> tile; operands (tensor, *offsets[, limit]); attrs sizes, keep, pad, "
           "space[, row_limit]. The region is clipped at the tensor's end (and, with "
           "row_limit = d, dim d at the `limit` operand); the rest of the tile holds `pad`.")


def _store_infer(types, attrs):
    t, shape = _region_check(types, attrs, "store")
    tile = types[1]
    if not isinstance(tile, TileType):
        _err(f"store needs a tile, got {tile}")
    if tile.shape != shape:
        _err(f"store of a {list(tile.shape)} tile into a {list(shape)} region")
    if tile.dtype != t.dtype:
        _err(f"store of a {tile.dtype.short} tile into a {t.dtype.short} tensor",
             f"cast first: .astype(mt.{t.dtype.short})")
    return []


def _store_pipe(op):
    return Pipe.FIX if op.operands[1].type.space is MemSpace.L0C else Pipe.MTE3


def _store_spaces(op):
    # only UB (MTE3) and L0C (FIXPIPE) write GM; LegalizePaths routes the rest
    return [None, (S.UB, S.L0C)] + [None] * (len(op.operands) - 2), []


STORE = define(
    "store", M, Unit.MTE, _store_pipe, _store_infer, cost=_bytes_cost("mte3_bytes_per_cycle"),
    writes=(0,), spaces=_store_spaces, lane_split=LaneSplit.REGION,
    path=lambda op: (op.operands[1].type.space, op.attrs.get("ring", S.GM)),
    doc="tile -> GM region; operands (tensor, tile, *offsets[, limit]); attrs sizes, keep, "
           "atomic[, row_limit] (as load: only rows before `limit` are written)")


def _fixpipe_infer(types, attrs):
    t, shape = _region_check(types, attrs, "fixpipe")
    acc = types[1]
    if not isinstance(acc, TileType) or acc.shape != shape:
        _err(f"fixpipe of {acc} into a {list(shape)} region")
    if attrs["dtype"] != t.dtype:
        _err(f"fixpipe writes {attrs['dtype'].short} into a {t.dtype.short} tensor")
    return []


def _fixpipe_spaces(op):
    bias = [(S.BT,)] if op.attrs.get("has_bias") else []
    rest = len(op.operands) - 2 - len(bias)
    return [None, (S.L0C,), *bias] + [None] * rest, []


FIXPIPE = define(
    "fixpipe", M, Unit.MTE, Pipe.FIX, _fixpipe_infer, cost=_bytes_cost("fix_bytes_per_cycle"),
    writes=(0,), spaces=_fixpipe_spaces, path=lambda op: (op.operands[1].type.space, S.GM),
    doc="L0C -> GM writeback with epilogue: operands (tensor, acc, [bias], *offsets); "
           "attrs sizes, keep, has_bias, relu, dtype, atomic")


def _load_scalar_infer(types, attrs):
    t = types[0]
    if not isinstance(t, TensorType):
        _err(f"scalar read from a non-tensor {t}")
    if len(types) - 1 != len(t.shape):
        _err(f"scalar read with {len(types) - 1} indices from a {len(t.shape)}-d tensor")
    return [INDEX if t.dtype.is_int else ScalarType(DType.F32)]


LOAD_SCALAR = define(
    "load_scalar", M, Unit.SCALAR, Pipe.S, _load_scalar_infer, cost=lambda op, tgt: 20,
    reads=(0,), lane_split=LaneSplit.SAME,
    doc="one element of a GM tensor as a scalar (ints become index values)")


def _move_infer(types, attrs):
    t = types[0]
    if not isinstance(t, TileType):
        _err(f"move needs a tile, got {t}")
    return [TileType(t.dtype, t.shape, attrs["space"])]


_MOVE_PIPE = {MemSpace.L0A: Pipe.MTE1, MemSpace.L0B: Pipe.MTE1, MemSpace.BT: Pipe.MTE1,
              MemSpace.L1: Pipe.FIX, MemSpace.UB: Pipe.V}


def _move_pipe(op):
    return _MOVE_PIPE.get(op.attrs["space"], Pipe.MTE1)


MOVE = define(
    "move", M, Unit.MTE, _move_pipe, _move_infer, cost=_bytes_cost("mte1_bytes_per_cycle"),
    path=lambda op: (op.operands[0].type.space, op.attrs["space"]), lane_split=LaneSplit.SAME,
    doc="tile -> the same tile in another on-chip space; attrs space")

# ---------------------------------------------------------------- control


def _spmd_infer(types, attrs):
    if types != [INDEX]:
        _err(f"spmd grid must be an index, got {types}")
    return []


SPMD = define("spmd", C, Unit.CONTROL, None, _spmd_infer, n_regions=1,
              doc="launch blocks: operand grid; region args (block index)")


def _for_infer(types, attrs):
    for t in types[:3]:
        if t != INDEX:
            _err(f"loop bounds must be index values, got {t}")
    return list(types[3:])


FOR = define("for", C, Unit.CONTROL, None, _for_infer, n_regions=1, lane_split=LaneSplit.SAME,
             doc="operands (lb, ub, step, *inits); region args (iv, *carried); "
                 "results carried")
YIELD = define("yield", T, Unit.CONTROL, None, lambda types, attrs: [],
               lane_split=LaneSplit.SAME)


# ---------------------------------------------------------------- mixed kernels: per-core
# programs and synchronisation (ExpandMixedKernel produces these; the simulator runs them)


def _core_infer(types, attrs):
    if attrs.get("core") not in (CoreType.AIC, CoreType.AIV):
        _err(f"core region needs core=AIC or AIV, got {attrs.get('core')}")
    return []


CORE = define("core", C, Unit.CONTROL, None, _core_infer, n_regions=1,
              doc="the program one core type runs for a block; attrs core (AIC/AIV). The AIV "
           "region's block has one arg, the lane (0 or 1); the AIC region has none.")


def _no_results(types, attrs):
    return []


FLAG_ID_SPACE = 16  # a flag id is a 4-bit field; each target uses a part (Target.flag_ids)


def _flag_infer(types, attrs):
    if not 0 <= attrs.get("flag", -1) < FLAG_ID_SPACE:
        _err(f"flag id {attrs.get('flag')} out of range 0..{FLAG_ID_SPACE - 1}")
    return []


_SYNC = {"sync": True, "lane_split": LaneSplit.SAME}
SYNCALL = define("syncall", M, Unit.SCALAR, Pipe.S, _no_results, cost=lambda op, tgt: 100,
                 **_SYNC,
                 doc="barrier over every core of the launch; attrs core_type (MIX/AIV/AIC), "
           "mode (SyncMode). Orders arrival only: GM handoff also needs a fence.")
FENCE = define("fence", M, Unit.SCALAR, Pipe.S, _no_results, cost=lambda op, tgt: 10,
               **_SYNC,
               doc="make this core's earlier GM writes visible before its later sync ops")
PIPE_SYNC = define("pipe_sync", M, Unit.SCALAR, Pipe.S, _no_results,
                   cost=lambda op, tgt: 2, **_SYNC,
                   doc="orders two pipes of one core (InsertPipeSync): ops of pipe `src` "
                       "issued before it finish before ops of pipe `dst` issued after it "
                       "start; src == dst is a barrier on that pipe. A no-op for the "
                       "simulator, which runs a core's ops in order.")
SET_FLAG = define("set_flag", M, Unit.SCALAR, Pipe.S, _flag_infer, cost=lambda op, tgt: 4,
                  **_SYNC,
                  doc="cross-core flag within a cluster: increments counter `flag` of core `to` "
           "(attrs flag: int, to: CoreRole; AIV = both lanes)")
WAIT_FLAG = define("wait_flag", M, Unit.SCALAR, Pipe.S, _flag_infer,
                   cost=lambda op, tgt: 4, **_SYNC,
                   doc="blocks until this core's counter `flag` is > 0, then decrements it "
           "(attrs flag: int)")


def _split_infer(types, attrs):
    return []


SPLIT_AIV = define("split_aiv", C, Unit.CONTROL, None, _split_infer, n_regions=1,
                   lane_split=LaneSplit.SAME,
                   doc="vector work divided between the two AIV lanes; attrs mode (SplitMode); the "
           "region's block has one arg, the lane id")
