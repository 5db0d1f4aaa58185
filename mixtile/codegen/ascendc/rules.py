"""One Ascend C emission rule per op, keyed by OpDef: data movement, cube, vector.

A rule is `rule(em, op)`; the emitter has already declared the op's result tile at its
planned address (`em.ref(op.result)`). Rules that need scratch UB declare it in
`TMP` (bytes for the op); it sits after the planned tiles and counts against UB.

What a rule may assume: operands live where the op's unit reads them (the verifier
checks it), pipes are ordered by InsertPipeSync between ops, and a rule orders the
instructions of its own sequence itself (PipeBarrier<PIPE_V> between dependent vector
instructions it emits).
"""
from __future__ import annotations

from collections.abc import Callable

from mixtile.codegen.ascendc.emitter import Emitter, ctype, literal
from mixtile.errors import UnsupportedError
from mixtile.ir.core import Op, Value
from mixtile.ir.registry import lookup
from mixtile.ir.types import AtomicKind, DType, MemSpace, ReduceKind, ScalarType, TileType

Rule = Callable[[Emitter, Op], None]
RULES: dict = {}
TMP: dict = {}
_F32_PER_REPEAT = 64  # one vector repeat is 256 bytes


def _rule(*names: str):
    def reg(fn: Rule) -> Rule:
        for n in names:
            RULES[lookup(n)] = fn
        return fn
    return reg


def tmp_bytes(em: Emitter, op: Op) -> int:
    f = TMP.get(op.opdef)
    return f(op) if f is not None else 0


def _unsupported(op: Op, what: str, fix: str | None = None):
    raise UnsupportedError(f"Ascend C backend: {what}", loc=op.loc, fix=fix)


def _rc(t: TileType) -> tuple[int, int]:
    """(rows, cols) of a 1-D or 2-D tile (a 1-D tile is one row)."""
    if len(t.shape) == 1:
        return 1, t.shape[0]
    if len(t.shape) == 2:
        return t.shape
    raise UnsupportedError(f"{len(t.shape)}-d tiles have no Ascend C layout here")


# ---------------------------------------------------------------- GM regions

class _Region:
    """A load/store region: base offset, valid rows/cols, strides, as C++ expressions."""

    def __init__(self, em: Emitter, op: Op, tensor: Value, offs: list[Value], t: TileType):
        sizes, keep = op.attrs["sizes"], op.attrs["keep"]
        self.gm, dims, strides = em.tensor(tensor)
        o = [em.ref(v) for v in offs]
        self.base = " + ".join(f"{a} * {s}" for a, s in zip(o, strides)) or "0"
        kept = [d for d in range(len(sizes)) if keep[d]]
        if len(kept) != len(t.shape) or len(kept) > 2 or not kept:
            _unsupported(op, f"a {len(kept)}-d region", "load/store 1-d or 2-d tiles")
        self.R, self.C = _rc(t)
        lim = op.attrs.get("row_limit")
        ext = {}
        for d in kept:
            hi = dims[d] if lim != d else f"Min<int64_t>({dims[d]}, {em.ref(op.operands[-1])})"
            ext[d] = f"Clamp0({hi} - {o[d]}, {sizes[d]})"
        inb = [f"{o[d]} < {dims[d]}" for d in range(len(sizes)) if not keep[d]]
        self.col_dim = kept[-1]
        self.row_dim = kept[0] if len(kept) == 2 else None
        self.col_stride = strides[self.col_dim]
        # one row: the stride is never used (DataCopyPad gaps of 0)
        self.row_stride = strides[self.row_dim] if self.row_dim is not None else None
        self.contiguous = self.col_dim == len(sizes) - 1
        self.nr, self.nc = em.fresh("nr"), em.fresh("nc")
        guard = f"({' && '.join(inb)}) ? " if inb else ""
        rows = ext[self.row_dim] if self.row_dim is not None else "1"
        em.out(f"const int64_t {self.nr} = {guard}{rows}{' : 0' if inb else ''};")
        em.out(f"const int64_t {self.nc} = {ext[self.col_dim]};")
        shape = tensor.type.shape
        if (self.row_dim is not None and self.C == 1 and self.contiguous
                and all(isinstance(d, int) and d == 1 for d in shape[self.row_dim + 1:])):
            # an (R, 1) column whose rows are adjacent in GM: one run of R elements
            n = em.fresh("nr")
            em.out(f"const int64_t {n} = ({self.nr} > 0 && {self.nc} > 0) ? 1 : 0;")
            m = em.fresh("nc")
            em.out(f"const int64_t {m} = {self.nr} * {self.nc};")
            self.nr, self.nc, self.C, self.R = n, m, self.R, 1
            self.row_dim, self.row_stride = None, None

    def partial(self) -> str:
        return f"({self.nr} < {self.R} || {self.nc} < {self.C})"

    def nonempty(self) -> str:
        return f"({self.nr} > 0 && {self.nc} > 0)"


def _dense_ok(r: _Region, t: TileType) -> bool:
    """Can DataCopyPad move it with the UB tile dense (rows 32-byte aligned)?"""
    return r.contiguous and (r.R == 1 or (r.C * t.dtype.itemsize) % 32 == 0)


def _row_elems(t: TileType) -> int:
    """Elements of a 32-byte aligned scratch row for a tile's row."""
    _, c = _rc(t)
    return -(-(c * t.dtype.itemsize) // 32) * 32 // t.dtype.itemsize


def _row_tmp(op: Op) -> int:
    t = op.result.type if op.name == "load" else op.operands[1].type
    if not isinstance(t, TileType) or t.space is not MemSpace.UB:
        return 0
    return _row_elems(t) * t.dtype.itemsize


TMP[lookup("load")] = _row_tmp
TMP[lookup("store")] = _row_tmp


def _gm_gap(r: _Region, sz: int) -> str:
    """The GM-side gap between rows, in bytes."""
    return "0" if r.row_stride is None else f"({r.row_stride} - {r.nc}) * {sz}"


def _tail(r: _Region, sz: int) -> str:
    """Elements from a row's end to its 32-byte boundary in UB: DataCopyPad writes the
    pad value there (isPad = false would leave random values)."""
    return f"static_cast<uint8_t>((({r.nc} * {sz} + 31) / 32 * 32 - {r.nc} * {sz}) / {sz})"


def _ub_gap(r: _Region, sz: int) -> str:
    """The UB-side gap between rows, in 32-byte blocks, after DataCopyPad's padding."""
    return f"({r.C * sz} - ({r.nc} * {sz} + 31) / 32 * 32) / 32"


@_rule("load")
def _load(em: Emitter, op: Op) -> None:
    t: TileType = op.result.type
    dst = em.ref(op.result)
    cty, sz = ctype(t.dtype), t.dtype.itemsize
    row_limit = op.attrs.get("row_limit") is not None
    offs = op.operands[1:len(op.operands) - row_limit]
    em.out("{")
    em.ind += 1
    r = _Region(em, op, op.operands[0], offs, t)
    pad = literal(op.attrs.get("pad", 0.0), t.dtype)
    if t.space is MemSpace.UB:
        if _dense_ok(r, t):
            em.out(f"if {r.partial()} {{  // edge tile: fill with the pad value first")
            em.out("    PipeBarrier<PIPE_ALL>();")
            em.out(f"    Duplicate({dst}, {pad}, {t.numel});")
            em.out("    PipeBarrier<PIPE_ALL>();")
            em.out("}")
            em.out(f"if {r.nonempty()} {{")
            em.out(f"    DataCopyPad({dst}, {r.gm}[{r.base}], DataCopyExtParams({r.nr}, "
                   f"{r.nc} * {sz}, {_gm_gap(r, sz)}, {_ub_gap(r, sz)}, 0), "
                   f"DataCopyPadExtParams<{cty}>(true, 0, {_tail(r, sz)}, {pad}));")
            em.out("}")
        else:  # rows DataCopyPad would pad to 32 bytes: one row at a time via a scratch
            if not r.contiguous:
                _unsupported(op, "a UB load whose columns are not the tensor's last axis")
            row = em.fresh("row")
            em.out(f"LocalTensor<{cty}> {row} = {em.tmp(t.dtype, _row_elems(t))};")
            em.out("PipeBarrier<PIPE_ALL>();  // rows are not 32-byte aligned in UB")
            em.out(f"for (int64_t r = 0; r < {r.R}; ++r) {{")
            em.out(f"    if (r < {r.nr} && {r.nc} > 0) {{")
            em.out(f"        DataCopyPad({row}, {r.gm}[{r.base} + r * {r.row_stride or 0}], "
                   f"DataCopyExtParams(1, {r.nc} * {sz}, 0, 0, 0), "
                   f"DataCopyPadExtParams<{cty}>(true, 0, {_tail(r, sz)}, {pad}));")
            em.out("        SetFlag<HardEvent::MTE2_S>(EVENT_ID0);")
            em.out("        WaitFlag<HardEvent::MTE2_S>(EVENT_ID0);")
            em.out("    }")
            em.out(f"    for (int64_t c = 0; c < {r.C}; ++c) {{")
            em.out(f"        {dst}.SetValue(r * {r.C} + c, (r < {r.nr} && c < {r.nc}) ? "
                   f"{row}.GetValue(c) : {pad});")
            em.out("    }")
            em.out("    SetFlag<HardEvent::S_MTE2>(EVENT_ID0);")
            em.out("    WaitFlag<HardEvent::S_MTE2>(EVENT_ID0);")
            em.out("}")
            em.out("PipeBarrier<PIPE_ALL>();")
    elif t.space is MemSpace.L1:
        if not r.contiguous:
            _unsupported(op, "a cube operand whose columns are not the tensor's last axis")
        nbytes = em.t.tile_bytes(t)
        em.out(f"if {r.partial()} {{  // edge tile: zeros outside the region")
        em.out("    PipeBarrier<PIPE_ALL>();")
        em.out(f"    InitConstValue({dst}, InitConstValueParams<{cty}>(1, {nbytes // 32}, 0, "
               f"{literal(0, t.dtype)}));")
        em.out("    PipeBarrier<PIPE_ALL>();")
        em.out("}")
        em.out(f"if {r.nonempty()} {{")
        if len(t.shape) == 1:  # one row: in NZ (C0 stride 1) it is the plain vector
            em.out(f"    DataCopy({dst}, {r.gm}[{r.base}], Nd2NzParams(1, 1, {r.nc}, 0, {r.nc}, "
                   "1, 1, 0));")
        else:  # ND rows -> NZ fractals: nValue rows of dValue elements, C0 stride = R16
            r16 = -(-r.R // 16) * 16
            em.out(f"    DataCopy({dst}, {r.gm}[{r.base}], Nd2NzParams(1, {r.nr}, {r.nc}, 0, "
                   f"{r.row_stride}, {r16}, 1, 0));")
        em.out("}")
    else:
        _unsupported(op, f"a load into {t.space.value}")
    em.ind -= 1
    em.out("}")


def _fixpipe_out(em: Emitter, op: Op, src: Value, relu: bool, out_dt: DType) -> None:
    t: TileType = src.type
    if t.dtype is not DType.F32:
        _unsupported(op, f"an L0C tile of {t.dtype.short}")
    offs = op.operands[3 if op.name == "fixpipe" and op.attrs.get("has_bias") else 2:]
    if op.attrs.get("row_limit") is not None:
        offs = offs[:-1]
    r = _Region(em, op, op.operands[0], offs, TileType(out_dt, t.shape, MemSpace.L0C))
    if not r.contiguous:
        _unsupported(op, "a writeback whose columns are not the tensor's last axis")
    quant = {DType.F32: "NoQuant", DType.BF16: "F322BF16", DType.F16: "F322F16"}.get(out_dt)
    if quant is None:
        _unsupported(op, f"a writeback to {out_dt.short}", "write f32, f16 or bf16")
    fp = em.fresh("fp")
    em.out(f"FixpipeParamsV220 {fp};  // L0C (NZ) -> GM rows, converted on the way")
    em.out(f"{fp}.nSize = {r.nc};")
    em.out(f"{fp}.mSize = {r.nr};")
    em.out(f"{fp}.srcStride = {-(-r.R // 16) * 16};")
    em.out(f"{fp}.dstStride = {r.row_stride or 0};")
    em.out(f"{fp}.reluEn = {'true' if relu else 'false'};")
    em.out(f"{fp}.quantPre = QuantMode_t::{quant};")
    atomic = op.attrs.get("atomic", AtomicKind.NONE) is AtomicKind.ADD
    em.out(f"if {r.nonempty()} {{")
    if atomic:
        em.out(f"    SetAtomicAdd<{ctype(out_dt)}>();")
    em.out(f"    Fixpipe<{ctype(out_dt)}, float, CFG_ROW_MAJOR>({r.gm}[{r.base}], "
           f"{em.ref(src)}, {fp});")
    if atomic:
        em.out("    SetAtomicNone();")
    em.out("}")


def _zero_start(em: Emitter, op: Op, acc: Value) -> None:
    """Before an accumulator leaves L0C: if its K loop ran no step, the first Mmad never
    initialised it (an empty split of a split-K GEMM); make it zero (or the bias) with
    one Mmad of zeroed L0A/L0B operands."""
    flag = em.zero_flag.get(acc)
    if flag is None:
        return
    z, bias = flag
    mm = em.zero_mm.get(z)
    if mm is None:
        _unsupported(op, "an L0C accumulator that no matmul updates")
    a, b = mm.operands[0], mm.operands[1]
    em.out(f"if ({z}) {{  // the K loop ran no step: the accumulator is "
           f"{'the bias' if bias is not None else 'zero'}")
    em.ind += 1
    em.out("PipeBarrier<PIPE_ALL>();")
    names = []
    for v in (a, b):
        t: TileType = v.type
        nbytes = em.t.tile_bytes(t)
        name = em.fresh("zop")
        names.append(name)
        em.out(f"LocalTensor<{ctype(t.dtype)}> {name} = "
               f"{em.handle(t.space, t.dtype, nbytes // t.dtype.itemsize, em.addrs[v])};")
        em.out(f"InitConstValue({name}, InitConstValueParams<{ctype(t.dtype)}>(1, "
               f"{-(-nbytes // 512)}, 0, {literal(0, t.dtype)}));  // 512-byte blocks in L0")
    em.out("PipeBarrier<PIPE_ALL>();")
    m, n = mm.result.type.shape
    k = a.type.shape[0] if mm.attrs.get("a_trans") else a.type.shape[1]
    p = em.fresh("mm")
    em.out(f"MmadParams {p};")
    em.out(f"{p}.m = {16 if m == 1 else m};")
    em.out(f"{p}.n = {n};")
    em.out(f"{p}.k = {k};")
    dst = em.ref(acc)
    if bias is None:
        em.out(f"{p}.cmatrixInitVal = true;")
        em.out(f"Mmad({dst}, {names[0]}, {names[1]}, {p});")
    else:
        em.out(f"{p}.cmatrixInitVal = false;")
        em.out(f"Mmad({dst}, {names[0]}, {names[1]}, {em.ref(bias)}, {p});")
    em.out("PipeBarrier<PIPE_ALL>();")
    em.ind -= 1
    em.out("}")


@_rule("store")
def _store(em: Emitter, op: Op) -> None:
    src = op.operands[1]
    t: TileType = src.type
    em.out("{")
    em.ind += 1
    if t.space is MemSpace.L0C:
        _zero_start(em, op, src)
        _fixpipe_out(em, op, src, False, op.operands[0].type.dtype)
    elif t.space is MemSpace.UB:
        row_limit = op.attrs.get("row_limit") is not None
        offs = op.operands[2:len(op.operands) - row_limit]
        r = _Region(em, op, op.operands[0], offs, t)
        sz = t.dtype.itemsize
        atomic = op.attrs.get("atomic", AtomicKind.NONE) is AtomicKind.ADD
        if _dense_ok(r, t):
            em.out(f"if {r.nonempty()} {{")
            if atomic:
                em.out(f"    SetAtomicAdd<{ctype(t.dtype)}>();")
            em.out(f"    DataCopyPad({r.gm}[{r.base}], {em.ref(src)}, DataCopyExtParams({r.nr}, "
                   f"{r.nc} * {sz}, {_ub_gap(r, sz)}, {_gm_gap(r, sz)}, 0));")
            if atomic:
                em.out("    SetAtomicNone();")
            em.out("}")
        else:  # rows that are not 32-byte aligned in UB: one row at a time via a scratch
            if not r.contiguous:
                _unsupported(op, "a UB store whose columns are not the tensor's last axis")
            row, cty = em.fresh("row"), ctype(t.dtype)
            em.out(f"LocalTensor<{cty}> {row} = {em.tmp(t.dtype, _row_elems(t))};")
            em.out("PipeBarrier<PIPE_ALL>();  // rows are not 32-byte aligned in UB")
            em.out(f"for (int64_t r = 0; r < {r.nr}; ++r) {{")
            em.out(f"    for (int64_t c = 0; c < {r.nc}; ++c) {{")
            em.out(f"        {row}.SetValue(c, {em.ref(src)}.GetValue(r * {r.C} + c));")
            em.out("    }")
            em.out("    SetFlag<HardEvent::S_MTE3>(EVENT_ID0);")
            em.out("    WaitFlag<HardEvent::S_MTE3>(EVENT_ID0);")
            if atomic:
                em.out(f"    SetAtomicAdd<{cty}>();")
            em.out(f"    DataCopyPad({r.gm}[{r.base} + r * {r.row_stride or 0}], {row}, "
                   f"DataCopyExtParams(1, {r.nc} * {sz}, 0, 0, 0));")
            if atomic:
                em.out("    SetAtomicNone();")
            em.out("    SetFlag<HardEvent::MTE3_S>(EVENT_ID0);")
            em.out("    WaitFlag<HardEvent::MTE3_S>(EVENT_ID0);")
            em.out("}")
            em.out("PipeBarrier<PIPE_ALL>();")
    else:
        _unsupported(op, f"a store from {t.space.value}")
    em.ind -= 1
    em.out("}")


@_rule("fixpipe")
def _fixpipe(em: Emitter, op: Op) -> None:
    # a bias was added by the first Mmad (BiasToMmad); relu and the cast happen here
    em.out("{")
    em.ind += 1
    _zero_start(em, op, op.operands[1])
    _fixpipe_out(em, op, op.operands[1], bool(op.attrs.get("relu")), op.attrs["dtype"])
    em.ind -= 1
    em.out("}")


@_rule("load_scalar")
def _load_scalar(em: Emitter, op: Op) -> None:
    tv = op.operands[0]
    gm, _, strides = em.tensor(tv)
    off = " + ".join(f"{em.ref(v)} * {s}" for v, s in zip(op.operands[1:], strides))
    if tv.owner is None and _written(em, tv):  # data another core may have written
        em.out(f"DataCacheCleanAndInvalid<{ctype(tv.type.dtype)}, CacheLine::SINGLE_CACHE_LINE, "
               f"DcciDst::CACHELINE_OUT>({gm}[{off}]);")
    dt = op.result.type.dtype
    em.define(op.result, f"static_cast<{ctype(dt)}>({gm}.GetValue({off}))")


def _written(em: Emitter, tv: Value) -> bool:
    return any(o.name in ("store", "fixpipe") and o.operands[0] is tv for o in em.k.walk())


# ---------------------------------------------------------------- cube

_FRACTAL = 256  # elements of a 16x16 fractal of a 2-byte type


def _matmul_user(op: Op) -> Op | None:
    for o in op.parent.ops:
        if o.name == "matmul" and op.result in o.operands[:2]:
            return o
    return None


@_rule("move")
def _move(em: Emitter, op: Op) -> None:
    src, dst = op.operands[0], op.result
    s, d = src.type.space, dst.type.space
    t: TileType = dst.type
    if d is MemSpace.BT:
        n = t.numel * t.dtype.itemsize
        if n % 64:
            _unsupported(op, f"a bias of {t.numel} {t.dtype.short} (the bias table moves "
                         "64-byte blocks)", "use a tile width that is a multiple of 16")
        em.out(f"DataCopy({em.ref(dst)}, {em.ref(src)}, DataCopyParams(1, {n // 64}, 0, 0));")
        return
    if s is not MemSpace.L1 or d not in (MemSpace.L0A, MemSpace.L0B):
        _unsupported(op, f"a move {s.value} -> {d.value}")
    if t.dtype.itemsize != 2:
        _unsupported(op, f"{t.dtype.short} cube operands", "use f16 or bf16 operands")
    mm = _matmul_user(op)
    rows, cols = t.shape
    rb, cb = -(-rows // 16), -(-cols // 16)  # fractal grid of the (rows, cols) tile
    a, b = em.ref(src), em.ref(dst)
    if d is MemSpace.L0A:
        if mm is not None and mm.attrs.get("a_trans"):
            _unsupported(op, "a transposed A operand", "transpose B instead or load A as (M, K)")
        # L1 holds A (M x K) in NZ (column blocks); L0A wants row blocks (zZ)
        em.out(f"for (int64_t i = 0; i < {rb}; ++i) {{")
        em.out(f"    LoadData({b}[i * {cb * _FRACTAL}], {a}[i * {_FRACTAL}], "
               f"LoadData2DParams(0, {cb}, {rb}, 0, 0, false, 0));")
        em.out("}")
    else:
        trans = mm is not None and mm.attrs.get("b_trans")
        if trans:  # B given as (N x K): each NZ fractal is already B^T's (k, n) block
            em.out(f"for (int64_t i = 0; i < {cb}; ++i) {{")
            em.out(f"    LoadData({b}[i * {rb * _FRACTAL}], {a}[i * {rb * _FRACTAL}], "
                   f"LoadData2DParams(0, {rb}, 1, 0, 0, false, 0));")
        else:  # B given as (K x N): transpose each fractal on the way
            em.out(f"for (int64_t i = 0; i < {rb}; ++i) {{")
            em.out(f"    LoadData({b}[i * {cb * _FRACTAL}], {a}[i * {_FRACTAL}], "
                   f"LoadData2DParams(0, {cb}, {rb}, 0, 0, true, 0));")
        em.out("}")


@_rule("matmul")
def _matmul(em: Emitter, op: Op) -> None:
    a, b = op.operands[0], op.operands[1]
    acc = op.operands[2] if len(op.operands) > 2 else None
    m, n = op.result.type.shape
    k = a.type.shape[0] if op.attrs.get("a_trans") else a.type.shape[1]
    dst = em.ref(op.result)
    if acc is not None and em.addrs.get(acc) != em.addrs.get(op.result):
        _unsupported(op, "an accumulation into a different L0C buffer than its input")
    p = em.fresh("mm")
    em.out(f"MmadParams {p};")
    # m == 1 would switch the cube to its GEMV mode (other operand layout): compute the
    # whole 16-row fractal instead; the extra rows are never written back
    em.out(f"{p}.m = {16 if m == 1 else m};")
    em.out(f"{p}.n = {n};")
    em.out(f"{p}.k = {k};")
    call = f"Mmad({dst}, {em.ref(a)}, {em.ref(b)}, {p});"
    flag = em.zero_flag.get(acc) if acc is not None else None
    if acc is None:
        em.out(f"{p}.cmatrixInitVal = true;")
        em.out(call)
    elif flag is None:
        em.out(f"{p}.cmatrixInitVal = false;  // accumulate")
        em.out(call)
    else:
        z, bias = flag
        if bias is None:
            em.out(f"{p}.cmatrixInitVal = {z};  // the first step starts from zero")
            em.out(call)
        else:
            em.out(f"{p}.cmatrixInitVal = false;")
            em.out(f"if ({z}) {{  // the first step starts from the bias (C2)")
            em.out(f"    Mmad({dst}, {em.ref(a)}, {em.ref(b)}, {em.ref(bias)}, {p});")
            em.out("} else {")
            em.out(f"    {call}")
            em.out("}")
        em.out(f"{z} = false;")
        em.zero_flag[op.result] = flag
        em.zero_mm.setdefault(z, op)


# ---------------------------------------------------------------- vector

_UNARY = {"exp": "Exp", "log": "Ln", "sqrt": "Sqrt", "rsqrt": "Rsqrt",
          "reciprocal": "Reciprocal", "abs": "Abs", "relu": "Relu", "tanh": "Tanh",
          "sin": "Sin", "cos": "Cos", "sigmoid": "Sigmoid", "silu": "Silu",
          "gelu_tanh": "Gelu"}
# high-level (adv_api) calls: source and destination must not overlap
_HIGH_LEVEL = frozenset({"tanh", "sin", "cos", "sigmoid", "silu", "gelu_tanh"})
_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "maximum": "Max",
           "minimum": "Min"}
_CMP = {"lt": "LT", "le": "LE", "gt": "GT", "ge": "GE", "eq": "EQ", "ne": "NE"}
_SCALAR_FORM = {"add": "Adds", "mul": "Muls", "maximum": "Maxs", "minimum": "Mins"}


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


@_rule(*_UNARY, "neg")
def _unary(em: Emitter, op: Op) -> None:
    t: TileType = op.result.type
    _vec_dtype(op, t)
    dst, x = em.ref(op.result), em.ref(op.operands[0])
    if op.name in _HIGH_LEVEL and em.addrs.get(op.result) == em.addrs.get(op.operands[0]):
        _unsupported(op, f"{_UNARY[op.name]} in place (its source and destination may not "
                     "overlap); PlanMemory should have kept them apart")
    if op.name == "neg":
        em.out(f"Muls({dst}, {x}, {literal(-1, t.dtype)}, {t.numel});")
    else:
        em.out(f"{_UNARY[op.name]}({dst}, {x}, {t.numel});")


@_rule("gelu_erf")
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


def _align32(n: int) -> int:
    return -(-n // 32) * 32


TMP[lookup("gelu_erf")] = lambda op: 2 * _align32(op.result.type.numel
                                                  * op.result.type.dtype.itemsize)


def _shape2(t) -> tuple[int, int]:
    return _rc(t) if isinstance(t, TileType) else (1, 1)


@_rule(*_BINARY, *_CMP)
def _binary(em: Emitter, op: Op) -> None:
    t: TileType = op.result.type
    a, b = op.operands
    name = op.name
    cmp = name in _CMP
    src_t = next(v.type for v in (a, b) if isinstance(v.type, TileType))
    _vec_dtype(op, src_t)
    dst, n = em.ref(op.result), t.numel
    R, C = _rc(t)
    sa, sb = _shape2(a.type), _shape2(b.type)
    full = (R, C)
    if cmp:
        return _compare(em, op, sa, sb, full)
    if sa == full and sb == full and isinstance(a.type, TileType) and isinstance(b.type, TileType):
        em.out(f"{_BINARY[name]}({dst}, {em.ref(a)}, {em.ref(b)}, {n});")
        return
    if sa == full and sb == (1, 1):  # tile op scalar
        s = _scalar_of(em, b, src_t.dtype)
        _with_scalar(em, op, dst, em.ref(a), s, name, n, src_t.dtype)
        return
    if sb == full and sa == (1, 1) and name in ("add", "mul", "maximum", "minimum"):
        s = _scalar_of(em, a, src_t.dtype)
        _with_scalar(em, op, dst, em.ref(b), s, name, n, src_t.dtype)
        return
    if cmp:
        _unsupported(op, f"a broadcast comparison of {sa} and {sb}")
    if sa == full and sb in ((1, C), (C,)) and R > 1:  # a row vector over every row
        if (C * t.dtype.itemsize) % 32:
            _unsupported(op, f"a row broadcast over rows of {C} {t.dtype.short} (not 32-byte "
                         "aligned)")
        em.out(f"for (int64_t r = 0; r < {R}; ++r) {{")
        em.out(f"    {_BINARY[name]}({dst}[r * {C}], {em.ref(a)}[r * {C}], {em.ref(b)}, {C});")
        em.out("}")
        return
    if sa == full and sb == (R, 1):  # one value per row
        if (C * t.dtype.itemsize) % 32:
            _unsupported(op, f"a column broadcast over rows of {C} {t.dtype.short} (not "
                         "32-byte aligned)")
        em.vec_sync("V", "S")
        em.out(f"for (int64_t r = 0; r < {R}; ++r) {{")
        em.ind += 1
        sv = em.fresh("s")
        em.out(f"const {ctype(t.dtype)} {sv} = {em.ref(b)}.GetValue(r);")
        _with_scalar(em, op, f"{dst}[r * {C}]", f"{em.ref(a)}[r * {C}]", sv, name, C, t.dtype)
        em.ind -= 1
        em.out("}")
        return
    _unsupported(op, f"{name} of tiles shaped {list(sa)} and {list(sb)} into {list(full)}",
                 "broadcast the smaller operand explicitly (mt.broadcast_to)")


def _cmp_count(n: int) -> int:
    """Compare's count must cover a multiple of 256 bytes: f32 elements, rounded up."""
    return -(-n // 64) * 64


def _compare(em: Emitter, op: Op, sa, sb, full) -> None:
    """Comparisons run in f32 on zero-padded scratch copies: A2/A3's Compare needs a count
    of 256-byte multiples, and int32 compares support only EQ (ints exact to 2^24)."""
    a, b = op.operands
    n = op.result.type.numel
    cnt = _cmp_count(n)
    mask = op.result.type
    if cnt // 8 > em.t.tile_bytes(mask):
        _unsupported(op, f"a comparison of {n} elements (its bit mask needs {cnt // 8} bytes)",
                     "compare at least 64 elements at a time")
    if sa != full or sb not in (full, (1, 1)):
        _unsupported(op, f"a broadcast comparison of {list(sa)} and {list(sb)}")
    srcs = [a] + ([b] if sb == full and isinstance(b.type, TileType) else [])
    names = []
    for i, v in enumerate(srcs):
        tv = em.fresh("cmp")
        names.append(tv)
        em.out(f"LocalTensor<float> {tv} = {em.tmp(DType.F32, cnt, i * cnt * 4)};")
        em.out(f"Duplicate({tv}, 0.0f, {cnt});")
        em.vec_sync("V", "V")
        if v.type.dtype is DType.F32:
            em.out(f"Adds({tv}, {em.ref(v)}, 0.0f, {n});")
        else:
            em.out(f"Cast({tv}, {em.ref(v)}, RoundMode::CAST_NONE, {n});")
    em.vec_sync("V", "V")
    mode = f"CMPMODE::{_CMP[op.name]}"
    if len(names) == 2:
        em.out(f"Compare({em.ref(op.result)}, {names[0]}, {names[1]}, {mode}, {cnt});")
    else:
        s = _scalar_of(em, b, DType.F32)
        em.out(f"CompareScalar({em.ref(op.result)}, {names[0]}, static_cast<float>({s}), "
               f"{mode}, {cnt});")


def _with_scalar(em: Emitter, op: Op, dst: str, x: str, s: str, name: str, n,
                 dt: DType) -> None:
    cty = ctype(dt)
    if name in _SCALAR_FORM:
        em.out(f"{_SCALAR_FORM[name]}({dst}, {x}, static_cast<{cty}>({s}), {n});")
    elif name == "sub":
        em.out(f"Adds({dst}, {x}, static_cast<{cty}>(-({s})), {n});")
    elif name == "div":
        em.out(f"Muls({dst}, {x}, static_cast<{cty}>({literal(1, dt)} / ({s})), {n});")
    else:
        _unsupported(op, f"{name} with a scalar")


@_rule("select")
def _select(em: Emitter, op: Op) -> None:
    t: TileType = op.result.type
    m, a, b = op.operands
    R, C = _rc(t)
    if not (isinstance(m.type, TileType) and isinstance(a.type, TileType)
            and _shape2(m.type) in ((R, C), (1, C)) and _shape2(a.type) == (R, C)):
        _unsupported(op, "a select whose first value is not a full tile or whose mask is "
                     "neither full nor one row")
    dst, n = em.ref(op.result), t.numel
    per_row = _shape2(m.type) != (R, C)  # one mask row for every row
    tensor = isinstance(b.type, TileType) and _shape2(b.type) == (R, C)
    if not tensor:
        s = f"static_cast<{ctype(t.dtype)}>({_scalar_of(em, b, t.dtype)})"
    if per_row:
        if (C * t.dtype.itemsize) % 32:
            _unsupported(op, f"a row-mask select over rows of {C} {t.dtype.short}")
        em.out(f"for (int64_t r = 0; r < {R}; ++r) {{")
        em.ind += 1
        row = f"[r * {C}]"
        other = f"{em.ref(b)}{row}" if tensor else s
        mode = "VSEL_TENSOR_TENSOR_MODE" if tensor else "VSEL_TENSOR_SCALAR_MODE"
        em.out(f"Select({dst}{row}, {em.ref(m)}, {em.ref(a)}{row}, {other}, SELMODE::{mode}, "
               f"{C});")
        em.ind -= 1
        em.out("}")
    elif tensor:
        em.out(f"Select({dst}, {em.ref(m)}, {em.ref(a)}, {em.ref(b)}, "
               f"SELMODE::VSEL_TENSOR_TENSOR_MODE, {n});")
    else:
        em.out(f"Select({dst}, {em.ref(m)}, {em.ref(a)}, {s}, SELMODE::VSEL_TENSOR_SCALAR_MODE, "
               f"{n});")


@_rule("cast")
def _cast(em: Emitter, op: Op) -> None:
    src, dst = op.operands[0].type, op.result.type
    s, d = src.dtype, dst.dtype
    if s is d:
        em.out(f"Adds({em.ref(op.result)}, {em.ref(op.operands[0])}, {literal(0, d)}, "
               f"{dst.numel});")
        return
    if DType.BOOL in (s, d) or {s, d} == {DType.BF16, DType.F16}:
        _unsupported(op, f"a cast {s.short} -> {d.short}", "cast through f32")
    # narrowing floats and float -> int round half to even (CAST_RINT), as the simulator
    # stores them; widening and int -> float are exact (CAST_NONE)
    narrowing = s.is_float and (d.is_int or d.itemsize < s.itemsize)
    mode = "CAST_RINT" if narrowing else "CAST_NONE"
    em.out(f"Cast({em.ref(op.result)}, {em.ref(op.operands[0])}, RoundMode::{mode}, "
           f"{dst.numel});")


@_rule("full")
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
    v = (_scalar_of(em, op.operands[0], t.dtype) if op.operands
         else literal(op.attrs["value"], t.dtype))
    em.out(f"Duplicate({em.ref(op.result)}, static_cast<{ctype(t.dtype)}>({v}), {t.numel});")


@_rule("arange")
def _arange(em: Emitter, op: Op) -> None:
    t: TileType = op.result.type
    em.out(f"CreateVecIndex({em.ref(op.result)}, {literal(0, t.dtype)}, {t.numel});")


@_rule("reshape")
def _reshape(em: Emitter, op: Op) -> None:
    src = op.operands[0]
    if em.addrs.get(src) == em.addrs.get(op.result):
        return  # a dense UB tile: the same bytes
    t: TileType = op.result.type
    em.out(f"Adds({em.ref(op.result)}, {em.ref(src)}, {literal(0, t.dtype)}, {t.numel});")


@_rule("broadcast")
def _broadcast(em: Emitter, op: Op) -> None:
    t: TileType = op.result.type
    src = op.operands[0]
    R, C = _rc(t)
    sr, sc = _shape2(src.type)
    dst = em.ref(op.result)
    if (sr, sc) == (1, C):
        em.out(f"for (int64_t r = 0; r < {R}; ++r) {{")
        em.out(f"    Adds({dst}[r * {C}], {em.ref(src)}, {literal(0, t.dtype)}, {C});")
        em.out("}")
    elif (sr, sc) == (R, 1):
        em.vec_sync("V", "S")
        em.out(f"for (int64_t r = 0; r < {R}; ++r) {{")
        em.out(f"    Duplicate({dst}[r * {C}], {em.ref(src)}.GetValue(r), {C});")
        em.out("}")
    else:
        _unsupported(op, f"a broadcast of {[sr, sc]} to {[R, C]}")


_RED = {ReduceKind.SUM: ("Add", "WholeReduceSum", "ReduceSum"),
        ReduceKind.MAX: ("Max", "WholeReduceMax", "ReduceMax"),
        ReduceKind.MIN: ("Min", "WholeReduceMin", "ReduceMin")}


def _reduce_tmp(op: Op) -> int:
    t: TileType = op.operands[0].type
    R, C = _rc(t)
    return max(R * _F32_PER_REPEAT * 4, t.numel * 4) + 32


TMP[lookup("reduce")] = _reduce_tmp
for _c in _CMP:
    TMP[lookup(_c)] = lambda op: 2 * 4 * _cmp_count(op.result.type.numel)


@_rule("reduce")
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
