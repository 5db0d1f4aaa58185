"""One Ascend C emission rule per op, keyed by OpDef: data movement and the cube here,
the vector unit in `vector_rules.py`.

A rule is `rule(em, op)`; the emitter has already declared the op's result tile at its
planned address (`em.ref(op.result)`). Rules that need scratch UB declare it in
`TMP` (bytes for the op); it sits after the planned tiles and counts against UB.

What a rule may assume: operands live where the op's unit reads them (the verifier
checks it), pipes are ordered by InsertPipeSync between ops, and a rule orders the
instructions of its own sequence itself (PipeBarrier<PIPE_V> between dependent vector
instructions it emits).
"""
from __future__ import annotations

import math
from collections.abc import Callable

from mixtile.codegen.ascendc.emitter import Emitter, ctype, literal
from mixtile.errors import UnsupportedError
from mixtile.ir.core import Op, Value
from mixtile.ir.ops import FIXPIPE, LOAD, LOAD_SCALAR, MATMUL, MOVE, STORE
from mixtile.ir.registry import OpDef
from mixtile.ir.types import AtomicKind, DType, MemSpace, TileType

Rule = Callable[[Emitter, Op], None]
RULES: dict[OpDef, Rule] = {}
TMP: dict = {}


def _rule(*opdefs: OpDef):
    def reg(fn: Rule) -> Rule:
        for d in opdefs:
            RULES[d] = fn
        return fn
    return reg


def tmp_bytes(em: Emitter, op: Op) -> int:
    f = TMP.get(op.opdef)
    return f(op) if f is not None else 0


def _unsupported(op: Op, what: str, fix: str | None = None):
    raise UnsupportedError(f"Ascend C backend, op `{op.opdef.name}`: {what}", loc=op.loc,
                           fix=fix)


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
    t = op.result.type if op.opdef is LOAD else op.operands[1].type
    if not isinstance(t, TileType) or t.space is not MemSpace.UB:
        return 0
    return _row_elems(t) * t.dtype.itemsize


TMP[LOAD] = _row_tmp
TMP[STORE] = _row_tmp


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


_U16 = 65535


def _stride_limit(em: Emitter, op: Op, tensor: Value, axis: int, what: str) -> None:
    """A row stride that goes into a 16-bit field: refused now when static, else checked
    by the host before each launch (AscendCKernel.check_launch)."""
    shape = tensor.type.shape[axis + 1:]
    if all(isinstance(d, int) for d in shape):
        if math.prod(shape) > _U16:
            _unsupported(op, f"a cube load from `{tensor.hint}` whose row stride of "
                             f"{math.prod(shape)} elements exceeds {what}'s {_U16}",
                         "split the tensor's last axis")
        return
    em.stride_limits.append((tensor.hint, axis, _U16, what))


@_rule(LOAD)
def _load(em: Emitter, op: Op) -> None:
    t: TileType = op.result.type
    if t.dtype is DType.BOOL:
        _unsupported(op, "a load of a bool tensor (a bool tile is a bit mask in UB, one bit "
                     "per element)", "pass the mask as numbers and compare: "
                     "mt.load(m) != 0.0")
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
            em.ind += 2
            em.vec_sync("MTE2", "S")
            em.ind -= 2
            em.out("    }")
            em.out(f"    for (int64_t c = 0; c < {r.C}; ++c) {{")
            em.out(f"        {dst}.SetValue(r * {r.C} + c, (r < {r.nr} && c < {r.nc}) ? "
                   f"{row}.GetValue(c) : {pad});")
            em.out("    }")
            em.ind += 1
            em.vec_sync("S", "MTE2")
            em.ind -= 1
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
            _stride_limit(em, op, op.operands[0], r.row_dim, "Nd2NzParams.srcDValue (uint16)")
            em.out(f"    DataCopy({dst}, {r.gm}[{r.base}], Nd2NzParams(1, {r.nr}, {r.nc}, 0, "
                   f"{r.row_stride}, {r16}, 1, 0));")
        em.out("}")
    else:
        _unsupported(op, f"a load into {t.space.value}")
    em.ind -= 1
    em.out("}")


def _gm_write(em: Emitter, op: Op, cty: str, call: str) -> None:
    """One GM write (DataCopyPad, Fixpipe), between SetAtomicAdd and SetAtomicNone when
    the op adds atomically."""
    atomic = op.attrs.get("atomic", AtomicKind.NONE) is AtomicKind.ADD
    if atomic:
        em.out(f"SetAtomicAdd<{cty}>();")
    em.out(call)
    if atomic:
        em.out("SetAtomicNone();")


def _fixpipe_out(em: Emitter, op: Op, src: Value, relu: bool, out_dt: DType) -> None:
    t: TileType = src.type
    if t.dtype is not DType.F32:
        _unsupported(op, f"an L0C tile of {t.dtype.short}")
    offs = op.operands[3 if op.opdef is FIXPIPE and op.attrs.get("has_bias") else 2:]
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
    em.out(f"if {r.nonempty()} {{")
    em.ind += 1
    _gm_write(em, op, ctype(out_dt), f"Fixpipe<{ctype(out_dt)}, float, CFG_ROW_MAJOR>("
                                     f"{r.gm}[{r.base}], {em.ref(src)}, {fp});")
    em.ind -= 1
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


@_rule(STORE)
def _store(em: Emitter, op: Op) -> None:
    src = op.operands[1]
    t: TileType = src.type
    if t.dtype is DType.BOOL:
        _unsupported(op, "a store of a bool tile (a comparison's result is a bit mask in UB, "
                     "one bit per element)", "store a number tile instead, e.g. "
                     "mt.where(mask, 1.0, 0.0)")
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
        cty = ctype(t.dtype)
        if _dense_ok(r, t):
            em.out(f"if {r.nonempty()} {{")
            em.ind += 1
            _gm_write(em, op, cty, f"DataCopyPad({r.gm}[{r.base}], {em.ref(src)}, "
                                   f"DataCopyExtParams({r.nr}, {r.nc} * {sz}, {_ub_gap(r, sz)}, "
                                   f"{_gm_gap(r, sz)}, 0));")
            em.ind -= 1
            em.out("}")
        else:  # rows that are not 32-byte aligned in UB: one row at a time via a scratch
            if not r.contiguous:
                _unsupported(op, "a UB store whose columns are not the tensor's last axis")
            row = em.fresh("row")
            em.out(f"LocalTensor<{cty}> {row} = {em.tmp(t.dtype, _row_elems(t))};")
            em.out("PipeBarrier<PIPE_ALL>();  // rows are not 32-byte aligned in UB")
            em.out(f"for (int64_t r = 0; r < {r.nr}; ++r) {{")
            em.ind += 1
            em.out(f"for (int64_t c = 0; c < {r.nc}; ++c) {{")
            em.out(f"    {row}.SetValue(c, {em.ref(src)}.GetValue(r * {r.C} + c));")
            em.out("}")
            em.vec_sync("S", "MTE3")
            _gm_write(em, op, cty, f"DataCopyPad({r.gm}[{r.base} + r * {r.row_stride or 0}], "
                                   f"{row}, DataCopyExtParams(1, {r.nc} * {sz}, 0, 0, 0));")
            em.vec_sync("MTE3", "S")
            em.ind -= 1
            em.out("}")
            em.out("PipeBarrier<PIPE_ALL>();")
    else:
        _unsupported(op, f"a store from {t.space.value}")
    em.ind -= 1
    em.out("}")


@_rule(FIXPIPE)
def _fixpipe(em: Emitter, op: Op) -> None:
    # a bias was added by the first Mmad (BiasToMmad); relu and the cast happen here
    em.out("{")
    em.ind += 1
    _zero_start(em, op, op.operands[1])
    _fixpipe_out(em, op, op.operands[1], bool(op.attrs.get("relu")), op.attrs["dtype"])
    em.ind -= 1
    em.out("}")


@_rule(LOAD_SCALAR)
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
    return any(o.opdef in (STORE, FIXPIPE) and o.operands[0] is tv for o in em.k.walk())


# ---------------------------------------------------------------- cube

_FRACTAL = 256  # elements of a 16x16 fractal of a 2-byte type


def _matmul_user(op: Op) -> Op | None:
    for o in op.parent.ops:
        if o.opdef is MATMUL and op.result in o.operands[:2]:
            return o
    return None


@_rule(MOVE)
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


@_rule(MATMUL)
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


# the vector unit's rules register into RULES / TMP from their own module
from mixtile.codegen.ascendc import vector_rules  # noqa: E402, F401
