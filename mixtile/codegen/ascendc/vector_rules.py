"""Ascend C rules of the vector unit (registered into `rules.RULES`): elementwise ops with
their broadcasts and scalar forms, comparisons and select, casts, fills, reductions."""
from __future__ import annotations

from mixtile.codegen.ascendc.emitter import Emitter, ctype, literal
from mixtile.codegen.ascendc.rules import TMP, _rc, _rule, _unsupported
from mixtile.ir.core import Op, Value
from mixtile.ir.ops import (
    ABS,
    ADD,
    ARANGE,
    BROADCAST,
    CAST,
    COS,
    DIV,
    EQ,
    EXP,
    EXP2,
    FULL,
    GE,
    GELU_ERF,
    GELU_TANH,
    GT,
    LE,
    LOG,
    LT,
    MAXIMUM,
    MINIMUM,
    MUL,
    NE,
    NEG,
    RECIPROCAL,
    REDUCE,
    RELU,
    RESHAPE,
    RSQRT,
    SELECT,
    SIGMOID,
    SILU,
    SIN,
    SOFTPLUS,
    SQRT,
    SUB,
    TANH,
)
from mixtile.ir.registry import OpDef
from mixtile.ir.types import DType, MemSpace, ReduceKind, ScalarType, TileType

_F32_PER_REPEAT = 64  # one vector repeat is 256 bytes


_UNARY = {EXP: "Exp", LOG: "Ln", SQRT: "Sqrt", RSQRT: "Rsqrt",
          RECIPROCAL: "Reciprocal", ABS: "Abs", RELU: "Relu", TANH: "Tanh",
          SIN: "Sin", COS: "Cos", SIGMOID: "Sigmoid", SILU: "Silu",
          GELU_TANH: "Gelu"}
_BINARY = {ADD: "Add", SUB: "Sub", MUL: "Mul", DIV: "Div", MAXIMUM: "Max",
           MINIMUM: "Min"}
_CMP = {LT: "LT", LE: "LE", GT: "GT", GE: "GE", EQ: "EQ", NE: "NE"}
_SCALAR_FORM = {ADD: "Adds", MUL: "Muls", MAXIMUM: "Maxs", MINIMUM: "Mins"}


def _vec_dtype(op: Op, t: TileType) -> None:
    if t.dtype is DType.BF16:
        _unsupported(op, "bf16 arithmetic: the A2/A3 vector unit computes in f16/f32",
                     "cast to f32 first (.astype(mt.f32))")


def _scalar_of(em: Emitter, v: Value, dt: DType) -> str:
    """A C++ scalar of type dt: a scalar value, or element 0 of a 1-element tile."""
    if isinstance(v.type, ScalarType):
        return f"static_cast<{ctype(dt)}>({em.ref(v)})"
    em.vec_sync("V", "S")
    return f"{em.ref(v)}.GetValue(0)"


@_rule(*_UNARY, NEG)
def _unary(em: Emitter, op: Op) -> None:
    t: TileType = op.result.type
    _vec_dtype(op, t)
    dst, x = em.ref(op.result), em.ref(op.operands[0])
    if not op.opdef.in_place and em.addrs.get(op.result) == em.addrs.get(op.operands[0]):
        _unsupported(op, f"{_UNARY[op.opdef]} in place (its source and destination may not "
                     "overlap); PlanMemory should have kept them apart")
    if op.opdef is NEG:
        em.out(f"Muls({dst}, {x}, {literal(-1, t.dtype)}, {t.numel});")
    else:
        em.out(f"{_UNARY[op.opdef]}({dst}, {x}, {t.numel});")


@_rule(GELU_ERF)
def _gelu_erf(em: Emitter, op: Op) -> None:
    t: TileType = op.result.type
    _vec_dtype(op, t)
    dst, x, n, cty = em.ref(op.result), em.ref(op.operands[0]), t.numel, ctype(t.dtype)
    a, b = em.fresh("tmp"), em.fresh("tmp")
    em.out(f"LocalTensor<{cty}> {a} = {em.tmp(t.dtype, n)};  // 0.5 x (1 + erf(x / sqrt 2))")
    em.out(f"LocalTensor<{cty}> {b} = {em.tmp(t.dtype, n, _align32(n * t.dtype.itemsize))};")
    em.out(f"Muls({a}, {x}, {literal(0.7071067811865476, t.dtype)}, {n});")
    em.vec_sync("V", "V")
    em.out(f"Erf({b}, {a}, {n});  // adv_api: source and destination apart")
    em.vec_sync("V", "V")
    em.out(f"Adds({b}, {b}, {literal(1, t.dtype)}, {n});")
    em.vec_sync("V", "V")
    em.out(f"Mul({dst}, {b}, {x}, {n});")
    em.vec_sync("V", "V")
    em.out(f"Muls({dst}, {dst}, {literal(0.5, t.dtype)}, {n});")


@_rule(EXP2)
def _exp2(em: Emitter, op: Op) -> None:
    t: TileType = op.result.type
    _vec_dtype(op, t)
    dst, x, n = em.ref(op.result), em.ref(op.operands[0]), t.numel
    em.out(f"Muls({dst}, {x}, {literal(0.6931471805599453, t.dtype)}, {n});  // 2^x = e^(x ln 2)")
    em.vec_sync("V", "V")
    em.out(f"Exp({dst}, {dst}, {n});")


@_rule(SOFTPLUS)
def _softplus(em: Emitter, op: Op) -> None:
    t: TileType = op.result.type
    _vec_dtype(op, t)
    dst, x, n, cty = em.ref(op.result), em.ref(op.operands[0]), t.numel, ctype(t.dtype)
    a = em.fresh("tmp")
    em.out(f"LocalTensor<{cty}> {a} = {em.tmp(t.dtype, n)};  // max(x, 0) + ln(1 + e^-|x|)")
    em.out(f"Abs({a}, {x}, {n});")
    em.vec_sync("V", "V")
    em.out(f"Muls({a}, {a}, {literal(-1, t.dtype)}, {n});")
    em.vec_sync("V", "V")
    em.out(f"Exp({a}, {a}, {n});")
    em.vec_sync("V", "V")
    em.out(f"Adds({a}, {a}, {literal(1, t.dtype)}, {n});")
    em.vec_sync("V", "V")
    em.out(f"Ln({a}, {a}, {n});")
    em.out(f"Relu({dst}, {x}, {n});")
    em.vec_sync("V", "V")
    em.out(f"Add({dst}, {dst}, {a}, {n});")


def _align32(n: int) -> int:
    return -(-n // 32) * 32


TMP[GELU_ERF] = lambda op: 2 * _align32(op.result.type.numel
                                                  * op.result.type.dtype.itemsize)
TMP[SOFTPLUS] = lambda op: _align32(op.result.type.numel * op.result.type.dtype.itemsize)


def _shape2(t) -> tuple[int, int]:
    return _rc(t) if isinstance(t, TileType) else (1, 1)


def _spread(em: Emitter, op: Op, dst: str, v: Value, R: int, C: int, dt: DType) -> None:
    """Write operand `v` broadcast to the dense (R, C) tile `dst` of dtype `dt`: a scalar,
    or a (1, 1), (1, C), (R, 1) or (R, C) tile (of dt, or cast to dt on the way)."""
    cty = ctype(dt)
    if isinstance(v.type, TileType) and v.type.dtype is DType.BOOL:
        _unsupported(op, "a bool tile as a value (a bit mask in UB)",
                     "broadcast or select the compared numbers instead")
    if not isinstance(v.type, TileType) or _shape2(v.type) == (1, 1):
        em.out(f"Duplicate({dst}, static_cast<{cty}>({_scalar_of(em, v, dt)}), {R * C});")
        return
    src, shape = em.ref(v), _shape2(v.type)

    def copy(d: str, k: int) -> str:
        if v.type.dtype is dt:
            return f"Adds({d}, {src}, {literal(0, dt)}, {k});"
        return f"Cast({d}, {src}, RoundMode::CAST_NONE, {k});"

    if shape == (R, C):
        em.out(copy(dst, R * C))
        return
    if shape not in ((1, C), (R, 1)):
        _unsupported(op, f"a broadcast of {list(shape)} to {[R, C]}",
                     "broadcast along one axis at a time (mt.broadcast_to)")
    if (C * dt.itemsize) % 32:
        _unsupported(op, f"a broadcast over rows of {C} {dt.short} (not 32-byte aligned)",
                     f"use a tile width that is a multiple of {32 // dt.itemsize}")
    if shape == (R, 1):
        em.vec_sync("V", "S")  # the column is read by the scalar unit
    em.out(f"for (int64_t r = 0; r < {R}; ++r) {{")
    if shape == (1, C):  # the row into every row
        em.out(f"    {copy(f'{dst}[r * {C}]', C)}")
    else:  # each row's value along its row
        em.out(f"    Duplicate({dst}[r * {C}], static_cast<{cty}>({src}.GetValue(r)), {C});")
    em.out("}")


def _spread_first(em: Emitter, op: Op, v: Value, R: int, C: int, dt: DType) -> str:
    """A scratch tile holding `v` broadcast to (R, C) (at the rule's scratch offset 0)."""
    t = em.fresh("bc")
    em.out(f"LocalTensor<{ctype(dt)}> {t} = {em.tmp(dt, R * C)};")
    _spread(em, op, t, v, R, C, dt)
    em.vec_sync("V", "V")
    return t


def _spread_bytes(op: Op, vals) -> int:
    """Scratch for the operands among `vals` that _spread_first broadcasts."""
    t = op.result.type
    full = _shape2(t)
    n = sum(1 for v in vals if isinstance(v.type, TileType)
            and _shape2(v.type) not in (full, (1, 1)))
    return n * _align32(t.numel * t.dtype.itemsize)


@_rule(*_BINARY, *_CMP)
def _binary(em: Emitter, op: Op) -> None:
    t: TileType = op.result.type
    a, b = op.operands
    d = op.opdef
    src_t = next(v.type for v in (a, b) if isinstance(v.type, TileType))
    _vec_dtype(op, src_t)
    dst, n = em.ref(op.result), t.numel
    R, C = _rc(t)
    sa, sb = _shape2(a.type), _shape2(b.type)
    full = (R, C)
    if d in _CMP:
        return _compare(em, op, sa, sb, full)
    if sa == full and sb == full and isinstance(a.type, TileType) and isinstance(b.type, TileType):
        em.out(f"{_BINARY[d]}({dst}, {em.ref(a)}, {em.ref(b)}, {n});")
        return
    if sa == full and sb == (1, 1):  # tile op scalar
        s = _scalar_of(em, b, src_t.dtype)
        _with_scalar(em, op, dst, em.ref(a), s, d, n, src_t.dtype)
        return
    if sb == full and sa == (1, 1):  # scalar op tile
        s = _scalar_of(em, a, src_t.dtype)
        cty = ctype(src_t.dtype)
        if d in (ADD, MUL, MAXIMUM, MINIMUM):
            _with_scalar(em, op, dst, em.ref(b), s, d, n, src_t.dtype)
        elif d is SUB:  # s - x = (-x) + s
            em.out(f"Muls({dst}, {em.ref(b)}, {literal(-1, src_t.dtype)}, {n});")
            em.vec_sync("V", "V")
            em.out(f"Adds({dst}, {dst}, static_cast<{cty}>({s}), {n});")
        else:  # div: s / x = (1 / x) * s
            em.out(f"Reciprocal({dst}, {em.ref(b)}, {n});")
            em.vec_sync("V", "V")
            em.out(f"Muls({dst}, {dst}, static_cast<{cty}>({s}), {n});")
        return
    # a broadcast left operand ([1, C] or [R, 1]) is spread into scratch first
    a_ref = em.ref(a) if sa == full else _spread_first(em, op, a, R, C, t.dtype)
    if sb == full:
        em.out(f"{_BINARY[d]}({dst}, {a_ref}, {em.ref(b)}, {n});")
        return
    if sb == (1, C) and R > 1:  # a row vector over every row
        if (C * t.dtype.itemsize) % 32:
            _unsupported(op, f"a row broadcast over rows of {C} {t.dtype.short} (not 32-byte "
                         "aligned)", f"use a tile width that is a multiple of "
                         f"{32 // t.dtype.itemsize}")
        em.out(f"for (int64_t r = 0; r < {R}; ++r) {{")
        em.out(f"    {_BINARY[d]}({dst}[r * {C}], {a_ref}[r * {C}], {em.ref(b)}, {C});")
        em.out("}")
        return
    if sb == (R, 1):  # one value per row
        if (C * t.dtype.itemsize) % 32:
            _unsupported(op, f"a column broadcast over rows of {C} {t.dtype.short} (not "
                         "32-byte aligned)", f"use a tile width that is a multiple of "
                         f"{32 // t.dtype.itemsize}")
        em.vec_sync("V", "S")
        em.out(f"for (int64_t r = 0; r < {R}; ++r) {{")
        em.ind += 1
        sv = em.fresh("s")
        em.out(f"const {ctype(t.dtype)} {sv} = {em.ref(b)}.GetValue(r);")
        _with_scalar(em, op, f"{dst}[r * {C}]", f"{a_ref}[r * {C}]", sv, d, C, t.dtype)
        em.ind -= 1
        em.out("}")
        return
    _unsupported(op, f"{d.name} of tiles shaped {list(sa)} and {list(sb)} into {list(full)}",
                 "broadcast the smaller operand explicitly (mt.broadcast_to)")


for _d in _BINARY:
    TMP[_d] = lambda op: _spread_bytes(op, op.operands[:1])


def _cmp_count(n: int) -> int:
    """Compare's count must cover a multiple of 256 bytes: f32 elements, rounded up."""
    return -(-n // 64) * 64


def _compare(em: Emitter, op: Op, sa, sb, full) -> None:
    """Comparisons run in f32 on zero-padded scratch copies (broadcast operands spread
    there): A2/A3's Compare needs a count of 256-byte multiples, and int32 compares
    support only EQ (ints exact to 2^24)."""
    a, b = op.operands
    n = op.result.type.numel
    cnt = _cmp_count(n)
    mask = op.result.type
    if cnt // 8 > em.t.tile_bytes(mask):
        _unsupported(op, f"a comparison of {n} elements (its bit mask needs {cnt // 8} bytes)",
                     "compare at least 64 elements at a time")
    scalar_b = sb == (1, 1) and sa != (1, 1)  # CompareScalar
    names = []
    for i, v in enumerate([a] if scalar_b else [a, b]):
        tv = em.fresh("cmp")
        names.append(tv)
        em.out(f"LocalTensor<float> {tv} = {em.tmp(DType.F32, cnt, i * cnt * 4)};")
        em.out(f"Duplicate({tv}, 0.0f, {cnt});")
        em.vec_sync("V", "V")
        _spread(em, op, tv, v, *full, DType.F32)
    em.vec_sync("V", "V")
    mode = f"CMPMODE::{_CMP[op.opdef]}"
    if len(names) == 2:
        em.out(f"Compare({em.ref(op.result)}, {names[0]}, {names[1]}, {mode}, {cnt});")
    else:
        s = _scalar_of(em, b, DType.F32)
        em.out(f"CompareScalar({em.ref(op.result)}, {names[0]}, static_cast<float>({s}), "
               f"{mode}, {cnt});")


def _with_scalar(em: Emitter, op: Op, dst: str, x: str, s: str, d: OpDef, n,
                 dt: DType) -> None:
    cty = ctype(dt)
    if d in _SCALAR_FORM:
        em.out(f"{_SCALAR_FORM[d]}({dst}, {x}, static_cast<{cty}>({s}), {n});")
    elif d is SUB:
        em.out(f"Adds({dst}, {x}, static_cast<{cty}>(-({s})), {n});")
    elif d is DIV:
        em.out(f"Muls({dst}, {x}, static_cast<{cty}>({literal(1, dt)} / ({s})), {n});")
    else:
        _unsupported(op, f"{d.name} with a scalar")


@_rule(SELECT)
def _select(em: Emitter, op: Op) -> None:
    t: TileType = op.result.type
    m, a, b = op.operands
    R, C = _rc(t)
    if not isinstance(m.type, TileType) or _shape2(m.type) not in ((R, C), (1, C)):
        _unsupported(op, f"a select whose mask is shaped {list(_shape2(m.type))} into "
                     f"{[R, C]} (the mask must be full or one row)",
                     "compare full tiles (mt.broadcast_to an operand of the comparison)")
    dst, n, cty = em.ref(op.result), t.numel, ctype(t.dtype)
    # Select takes a scalar only as its second value, and tiles only whole: a scalar
    # first value and broadcast tiles are spread into scratch first
    scratch = 0

    def whole(v: Value) -> str:
        nonlocal scratch
        if isinstance(v.type, TileType) and _shape2(v.type) == (R, C):
            return em.ref(v)
        name = em.fresh("sel")
        em.out(f"LocalTensor<{cty}> {name} = {em.tmp(t.dtype, n, scratch)};")
        scratch += _align32(n * t.dtype.itemsize)
        _spread(em, op, name, v, R, C, t.dtype)
        em.vec_sync("V", "V")
        return name

    a_ref = whole(a)
    scalar_b = not isinstance(b.type, TileType) or _shape2(b.type) == (1, 1)
    if scalar_b:
        other = f"static_cast<{cty}>({_scalar_of(em, b, t.dtype)})"
        mode = "SELMODE::VSEL_TENSOR_SCALAR_MODE"
    else:
        other = whole(b)
        mode = "SELMODE::VSEL_TENSOR_TENSOR_MODE"
    if _shape2(m.type) != (R, C):  # one mask row for every row
        if (C * t.dtype.itemsize) % 32:
            _unsupported(op, f"a row-mask select over rows of {C} {t.dtype.short}",
                         f"use a tile width that is a multiple of {32 // t.dtype.itemsize}")
        em.out(f"for (int64_t r = 0; r < {R}; ++r) {{")
        row = f"[r * {C}]"
        em.out(f"    Select({dst}{row}, {em.ref(m)}, {a_ref}{row}, "
               f"{other if scalar_b else other + row}, {mode}, {C});")
        em.out("}")
    else:
        em.out(f"Select({dst}, {em.ref(m)}, {a_ref}, {other}, {mode}, {n});")


def _select_tmp(op: Op) -> int:
    m, a, b = op.operands
    t = op.result.type
    first = 0 if isinstance(a.type, TileType) and _shape2(a.type) == _shape2(t) else \
        _align32(t.numel * t.dtype.itemsize)
    return first + _spread_bytes(op, [b])


TMP[SELECT] = _select_tmp


@_rule(CAST)
def _cast(em: Emitter, op: Op) -> None:
    src, dst = op.operands[0].type, op.result.type
    s, d = src.dtype, dst.dtype
    out, x, n = em.ref(op.result), em.ref(op.operands[0]), dst.numel
    if s is d:
        em.out(f"Adds({out}, {x}, {literal(0, d)}, {n});")
        return
    if s is DType.BOOL and d in (DType.F32, DType.F16):  # a comparison's bit mask: 1 / 0
        one = em.fresh("one")
        em.out(f"LocalTensor<{ctype(d)}> {one} = {em.tmp(d, n)};")
        em.out(f"Duplicate({one}, {literal(1, d)}, {n});")
        em.vec_sync("V", "V")
        em.out(f"Select({out}, {x}, {one}, {literal(0, d)}, "
               f"SELMODE::VSEL_TENSOR_SCALAR_MODE, {n});")
        return
    if DType.BOOL in (s, d):
        _unsupported(op, f"a cast {s.short} -> {d.short} (a bool tile is a bit mask in UB)",
                     "compare for a mask (x != 0.0); cast a mask to f32 or f16 first")
    if {s, d} == {DType.BF16, DType.F16}:  # no direct Cast: through f32 (exact both ways)
        mid = em.fresh("f32")
        em.out(f"LocalTensor<float> {mid} = {em.tmp(DType.F32, n)};")
        em.out(f"Cast({mid}, {x}, RoundMode::CAST_NONE, {n});")
        em.vec_sync("V", "V")
        em.out(f"Cast({out}, {mid}, RoundMode::CAST_RINT, {n});")
        return
    # narrowing floats and float -> int round half to even (CAST_RINT), as the simulator
    # stores them; widening and int -> float are exact (CAST_NONE)
    narrowing = s.is_float and (d.is_int or d.itemsize < s.itemsize)
    mode = "CAST_RINT" if narrowing else "CAST_NONE"
    em.out(f"Cast({out}, {x}, RoundMode::{mode}, {n});")


def _cast_tmp(op: Op) -> int:
    s, t = op.operands[0].type.dtype, op.result.type
    if s is DType.BOOL:
        return _align32(t.numel * t.dtype.itemsize)
    return _align32(t.numel * 4) if {s, t.dtype} == {DType.BF16, DType.F16} else 0


TMP[CAST] = _cast_tmp


@_rule(FULL)
def _full(em: Emitter, op: Op) -> None:
    t: TileType = op.result.type
    if t.space is MemSpace.L0C:
        if op.attrs.get("value") != 0.0:
            _unsupported(op, "an L0C tile filled with a non-zero value")
        z = em.fresh("zero")
        em.out(f"bool {z} = true;  // {em.ref(op.result)} starts at "
               f"{'the bias' if op.attrs.get('bias_init') else 'zero'}")
        em.zero_flag[op.result] = (z, em.bias.get(op.result))
        return
    if t.space is not MemSpace.UB:
        _unsupported(op, f"a fill of a {t.space.value} tile")
    if t.dtype is DType.BOOL:
        _unsupported(op, "a bool fill (a bool tile is a bit mask in UB)",
                     "make the mask with a comparison")
    v = (_scalar_of(em, op.operands[0], t.dtype) if op.operands
         else literal(op.attrs["value"], t.dtype))
    em.out(f"Duplicate({em.ref(op.result)}, static_cast<{ctype(t.dtype)}>({v}), {t.numel});")


@_rule(ARANGE)
def _arange(em: Emitter, op: Op) -> None:
    t: TileType = op.result.type
    em.out(f"CreateVecIndex({em.ref(op.result)}, {literal(0, t.dtype)}, {t.numel});")


@_rule(RESHAPE)
def _reshape(em: Emitter, op: Op) -> None:
    src = op.operands[0]
    if em.addrs.get(src) == em.addrs.get(op.result):
        return  # a dense UB tile: the same bytes
    t: TileType = op.result.type
    em.out(f"Adds({em.ref(op.result)}, {em.ref(src)}, {literal(0, t.dtype)}, {t.numel});")


@_rule(BROADCAST)
def _broadcast(em: Emitter, op: Op) -> None:
    t: TileType = op.result.type
    src = op.operands[0]
    R, C = _rc(t)
    _spread(em, op, em.ref(op.result), src, R, C, t.dtype)


_RED = {ReduceKind.SUM: ("Add", "WholeReduceSum", "ReduceSum"),
        ReduceKind.MAX: ("Max", "WholeReduceMax", "ReduceMax"),
        ReduceKind.MIN: ("Min", "WholeReduceMin", "ReduceMin")}


def _reduce_tmp(op: Op) -> int:
    t: TileType = op.operands[0].type
    R, C = _rc(t)
    return max(R * _F32_PER_REPEAT * 4, t.numel * 4) + 32


TMP[REDUCE] = _reduce_tmp
for _c in _CMP:
    TMP[_c] = lambda op: 2 * 4 * _cmp_count(op.result.type.numel)


@_rule(REDUCE)
def _reduce(em: Emitter, op: Op) -> None:
    t: TileType = op.operands[0].type
    if t.dtype is not DType.F32:
        _unsupported(op, f"a {t.dtype.short} reduction", "reduce in f32")
    R, C = _rc(t)
    axis = op.attrs["axis"] % len(t.shape)
    add, whole, count_form = _RED[op.attrs["kind"]]
    dst, src = em.ref(op.result), em.ref(op.operands[0])
    if len(t.shape) == 1 or (axis == 1 and R == 1) or (axis == 0 and C == 1):
        em.out(f"{count_form}({dst}, {src}, {em.tmp(DType.F32, t.numel)}, {t.numel});")
        return
    if axis == 0:  # (R, C) -> (1, C): fold the rows
        if (C * 4) % 32:
            _unsupported(op, f"a column reduction over rows of {C} f32 (not 32-byte aligned)")
        em.out(f"Adds({dst}, {src}, 0.0f, {C});")
        em.out(f"for (int64_t r = 1; r < {R}; ++r) {{")
        em.out("    PipeBarrier<PIPE_V>();")
        em.out(f"    {add}({dst}, {dst}, {src}[r * {C}], {C});")
        em.out("}")
        return
    # (R, C) -> (R, 1): fold 64-wide column blocks into a (R, 64) scratch, then one
    # WholeReduce per row (one repeat = 64 f32)
    if C % 8 or C * 4 // 32 > 255:
        _unsupported(op, f"a row reduction over {C} f32 columns", "use a multiple of 8, at "
                     "most 2040")
    rep = C * 4 // 32  # the source's row stride in 32-byte blocks
    if C <= _F32_PER_REPEAT:
        em.out(f"{whole}<float>({dst}, {src}, {C}, {R}, 1, 1, {rep}"
               f"{', ReduceOrder::ORDER_ONLY_VALUE' if add != 'Add' else ''});")
        return
    tmp = em.fresh("acc")
    em.out(f"LocalTensor<float> {tmp} = {em.tmp(DType.F32, R * _F32_PER_REPEAT)};")
    em.out(f"Adds<float>({tmp}, {src}, 0.0f, {_F32_PER_REPEAT}, {R}, "
           f"UnaryRepeatParams(1, 1, 8, {rep}));")
    for j in range(1, -(-C // _F32_PER_REPEAT)):
        w = min(_F32_PER_REPEAT, C - j * _F32_PER_REPEAT)
        em.out("PipeBarrier<PIPE_V>();")
        em.out(f"{add}<float>({tmp}, {tmp}, {src}[{j * _F32_PER_REPEAT}], {w}, {R}, "
               f"BinaryRepeatParams(1, 1, 1, 8, 8, {rep}));")
    em.out("PipeBarrier<PIPE_V>();")
    em.out(f"{whole}<float>({dst}, {tmp}, {_F32_PER_REPEAT}, {R}, 1, 1, 8"
           f"{', ReduceOrder::ORDER_ONLY_VALUE' if add != 'Add' else ''});")
