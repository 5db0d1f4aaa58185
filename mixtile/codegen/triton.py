"""The Triton backend: a mixtile kernel (after Simplify/CSE/DCE) -> Triton source.

One `spmd` launch becomes one @triton.jit kernel per phase (a top-level `syncall` splits
it: each phase is a separate launch, so the launch boundary is the barrier; only scalar
values may live across it, they are recomputed). A tile of static shape S is a Triton
block of shape P(S): P(1) = 1, else the next power of two, at least 16 (tl.dot's
minimum); lanes past S are masked on load/store, neutralised before reductions and dot
products. Cube/vector crossings and `split_aiv` lanes disappear: one program holds both
sides (NONE regions loop over the two lanes). A program's accesses of one tensor that may
conflict are ordered by CTA barriers (see "GM order"). Floor division and modulo of negative
index values follow C (truncation) in Triton; mixtile kernels index with non-negatives.
"""
from __future__ import annotations

import math

from mixtile.errors import UnsupportedError
from mixtile.ir.core import Block, Kernel, Op, Value
from mixtile.ir.ops import (
    ABS,
    ADD,
    ARANGE,
    BROADCAST,
    CAST,
    CONST,
    CORE,
    COS,
    DIM,
    DIV,
    EQ,
    EXP,
    EXP2,
    FENCE,
    FIXPIPE,
    FOR,
    FULL,
    GE,
    GELU_ERF,
    GELU_TANH,
    GT,
    LE,
    LOAD,
    LOAD_SCALAR,
    LOG,
    LT,
    MATMUL,
    MAXIMUM,
    MINIMUM,
    MOVE,
    MUL,
    NE,
    NEG,
    PIPE_SYNC,
    RECIPROCAL,
    REDUCE,
    RELU,
    RESHAPE,
    RSQRT,
    SADD,
    SCAST,
    SDIV,
    SELECT,
    SEQ,
    SET_FLAG,
    SFLOORDIV,
    SGE,
    SGT,
    SIGMOID,
    SILU,
    SIN,
    SLE,
    SLT,
    SMAX,
    SMIN,
    SMOD,
    SMUL,
    SNE,
    SOFTPLUS,
    SPLIT_AIV,
    SPMD,
    SQRT,
    SSELECT,
    SSUB,
    STORE,
    SUB,
    SYNCALL,
    TANH,
    TRANSPOSE,
    WAIT_FLAG,
    YIELD,
)
from mixtile.ir.types import AtomicKind, DType, ReduceKind, ScalarType, TensorType, TileType

TL_DTYPE = {DType.F32: "tl.float32", DType.F16: "tl.float16", DType.BF16: "tl.bfloat16",
            DType.F8E4M3: "tl.float8e4nv", DType.F8E5M2: "tl.float8e5", DType.I8: "tl.int8",
            DType.I32: "tl.int32", DType.I64: "tl.int64", DType.BOOL: "tl.int1"}




def _lit(v) -> str:
    """A Python literal for a constant (infinities and NaN included)."""
    if isinstance(v, float) and not math.isfinite(v):
        return f"float('{v}')"
    return repr(v)


def pad(d: int) -> int:
    """The Triton block extent of a static tile extent d."""
    return 1 if d == 1 else max(16, 1 << (d - 1).bit_length())


def _pshape(t: TileType) -> tuple[int, ...]:
    return tuple(pad(d) for d in t.shape)


# expression rules: op -> format string over the operand expressions. Division rounds as
# IEEE does (div_rn), as the simulator's numpy does: Triton's `/` on f32 is div.full.f32
# (within 2 ulp), which moves a quotient across an e4m3 rounding boundary in quantisation.
EXPR = {
    EXP: "tl.exp({0})", EXP2: "tl.exp2({0})", LOG: "tl.log({0})", SQRT: "tl.sqrt({0})",
    RSQRT: "tl.rsqrt({0})",
    RECIPROCAL: "tl.math.div_rn(1.0, {0})", ABS: "tl.abs({0})", NEG: "(-{0})",
    TANH: "(2.0 * tl.sigmoid(2.0 * {0}) - 1.0)", SIN: "tl.sin({0})", COS: "tl.cos({0})",
    RELU: "tl.maximum({0}, 0.0)", SIGMOID: "tl.sigmoid({0})", SILU: "({0} * tl.sigmoid({0}))",
    GELU_TANH: "(0.5 * {0} * (1.0 + (2.0 * tl.sigmoid(2.0 * 0.7978845608028654 * "
               "({0} + 0.044715 * {0} * {0} * {0})) - 1.0)))",
    GELU_ERF: "(0.5 * {0} * (1.0 + tl.math.erf({0} * 0.7071067811865476)))",
    SOFTPLUS: "(tl.maximum({0}, 0.0) + tl.log(1.0 + tl.exp(-tl.abs({0}))))",
    ADD: "({0} + {1})", SUB: "({0} - {1})", MUL: "({0} * {1})",
    DIV: "tl.math.div_rn({0}, {1})",
    MAXIMUM: "tl.maximum({0}, {1})", MINIMUM: "tl.minimum({0}, {1})", LT: "({0} < {1})",
    LE: "({0} <= {1})", GT: "({0} > {1})", GE: "({0} >= {1})", EQ: "({0} == {1})",
    NE: "({0} != {1})", SELECT: "tl.where({0}, {1}, {2})",
}
SCALAR = {SADD: "({0} + {1})", SSUB: "({0} - {1})", SMUL: "({0} * {1})",
          SDIV: "({0} / {1})", SFLOORDIV: "({0} // {1})", SMOD: "({0} % {1})",
          SMIN: "tl.minimum({0}, {1})", SMAX: "tl.maximum({0}, {1})",
          SLT: "({0} < {1})", SLE: "({0} <= {1})", SGT: "({0} > {1})",
          SGE: "({0} >= {1})", SEQ: "({0} == {1})", SNE: "({0} != {1})",
          SSELECT: "tl.where({0}, {1}, {2})"}
# one program holds every core's work: flags, fences and pipe syncs vanish (see "GM order");
# a syncall splits the launch into phases (generate); a yield is emitted by its loop
NO_CODE = frozenset({FENCE, SET_FLAG, WAIT_FLAG, PIPE_SYNC, SYNCALL, YIELD})
_REDUCE = {ReduceKind.SUM: ("tl.sum", "0"), ReduceKind.MAX: ("tl.max", "float('-inf')"),
           ReduceKind.MIN: ("tl.min", "float('inf')")}


class _Emitter:
    """Emits one @triton.jit function for one phase of one launch."""

    def __init__(self, kernel: Kernel, fn: str) -> None:
        self.k = kernel
        self.fn = fn
        self.lines: list[str] = []
        self.names: dict[Value, str] = {}
        self.n = 0
        self.params = [p for p in kernel.params]
        self.rd: set = set()  # tensors read / written since the last CTA barrier
        self.wr: set = set()

    # ------------------------------------------------------------ naming
    def name(self, v: Value) -> str:
        if v not in self.names:
            self.names[v] = f"v{self.n}"
            self.n += 1
        return self.names[v]

    def ref(self, v: Value) -> str:
        if v.owner is None:  # a kernel parameter
            return v.hint
        return self.names[v]

    def out(self, ind: int, text: str) -> None:
        self.lines.append("    " * ind + text)

    # ------------------------------------------------------------ signature
    def signature(self) -> str:
        args = []
        for p in self.params:
            t = p.value.type
            if isinstance(t, TensorType):
                args.append(p.name)
                for d in range(len(t.shape)):
                    args += [f"{p.name}_d{d}", f"{p.name}_s{d}"]
            else:
                args.append(p.name)
        return f"def {self.fn}({', '.join(args)}):"

    # ------------------------------------------------------------ ops
    def emit_block(self, blk: Block, ind: int) -> None:
        for op in blk.ops:
            self.emit(op, ind)

    # ------------------------------------------------------------ GM order
    # One program is many threads: two accesses of one tensor by different threads are
    # ordered only by a CTA barrier (bar.sync orders global memory for the CTA too). The
    # DSL's program order is kept with a barrier before an access that may conflict with
    # an earlier one (RAW, WAR, WAW), and at the top of a loop body whose iterations may
    # conflict with each other: it writes a tensor and reads it, writes it from two ops, or
    # writes a region that moves with the iteration (atomic adds commute: not counted).
    # A loop may run zero times: what was unordered before it stays unordered after it.
    def _order(self, op: Op, ind: int) -> None:
        t, write = op.operands[0], bool(op.opdef.writes)
        if t in self.wr or (write and t in self.rd):
            self.barrier(ind)
        (self.wr if write else self.rd).add(t)

    def barrier(self, ind: int) -> None:
        self.out(ind, "tl.debug_barrier()")
        self.rd, self.wr = set(), set()

    def _body_conflicts(self, body: Block) -> bool:
        inner = set(body.args)
        for op in body.walk():
            inner.update(op.results)
            for r in op.regions:
                inner.update(r.args)
        rd, wr = set(), {}
        for op in body.walk():
            if op.opdef.reads:
                rd.add(op.operands[0])
            elif op.opdef.writes:
                if op.attrs.get("atomic", AtomicKind.NONE) is not AtomicKind.NONE:
                    continue
                moves = any(v in inner for v in op.operands[1:] if isinstance(
                    v.type, ScalarType))
                wr[op.operands[0]] = wr.get(op.operands[0], 0) + 1 + moves
        return any(n > 1 or t in rd for t, n in wr.items())

    def emit(self, op: Op, ind: int) -> None:
        d = op.opdef
        if d.reads or d.writes:
            self._order(op, ind)
        ops = [self.ref(v) for v in op.operands]
        r = self.name(op.results[0]) if op.results else None
        if d in EXPR:
            self._elementwise(op, ops, ind)
        elif d in SCALAR:
            self.out(ind, f"{r} = {SCALAR[d].format(*ops)}")
        elif d in RULES:
            RULES[d](self, op, ops, r, ind)
        elif d not in NO_CODE:
            raise UnsupportedError(f"op `{d.name}` has no rule in the Triton backend",
                                   loc=op.loc, fix="add one to mixtile/codegen/triton.py "
                                   "(EXPR for an elementwise op, else RULES)")

    # ------------------------------------------------------------ rules
    def _const(self, op: Op, ops, r, ind: int) -> None:
        self.out(ind, f"{r} = {_lit(op.attrs['value'])}")

    def _dim(self, op: Op, ops, r, ind: int) -> None:
        t, axis = op.operands[0], op.attrs["axis"]
        d = t.type.shape[axis]
        self.out(ind, f"{r} = {d if isinstance(d, int) else f'{t.hint}_d{axis}'}")

    def _scast(self, op: Op, ops, r, ind: int) -> None:
        # tl.cast, not .to(): a loop index is a Python int in the interpreter
        self.out(ind, f"{r} = tl.cast({ops[0]}, {TL_DTYPE[op.attrs['dtype']]})"
                 if op.attrs["dtype"].is_float else f"{r} = {ops[0]}")

    def _load_scalar(self, op: Op, ops, r, ind: int) -> None:
        ptr = self._scalar_ptr(op.operands[0], ops[1:])
        self.out(ind, f"{r} = tl.load({ptr})" + (".to(tl.int64)" if op.result.type.dtype
                                                 is DType.I64 else ".to(tl.float32)"))

    def _cast(self, op: Op, ops, r, ind: int) -> None:
        dt, src = op.attrs["dtype"], op.operands[0].type.dtype
        if src.is_float and dt.is_int:  # as the simulator: round half to even, saturate
            lo, hi = dt.f32_int_bounds  # the f32 values that convert exactly
            x = ops[0]
            self.out(ind, f"{r} = tl.floor({x})")
            self.out(ind, f"{r} = {r} + tl.where(({x} - {r} > 0.5) | (({x} - {r} == 0.5)"
                          f" & ({r} - 2.0 * tl.floor({r} * 0.5) == 1.0)), 1.0, 0.0)")
            sat = dt.int_range[1]
            self.out(ind, f"{r} = tl.where({r} > {hi}, {sat}, "
                          f"tl.minimum(tl.maximum({r}, {lo}), {hi}).to({TL_DTYPE[dt]}))")
        else:
            self.out(ind, f"{r} = {ops[0]}.to({TL_DTYPE[dt]})")

    def _full(self, op: Op, ops, r, ind: int) -> None:
        t = op.result.type
        self.out(ind, f"{r} = tl.full({_pshape(t)}, {_lit(op.attrs['value'])}, "
                      f"{TL_DTYPE[t.dtype]})")

    def _arange(self, op: Op, ops, r, ind: int) -> None:
        n = op.attrs["n"]
        self.out(ind, f"{r} = tl.arange(0, {pad(n)}).to({TL_DTYPE[op.attrs['dtype']]})")

    def _broadcast(self, op: Op, ops, r, ind: int) -> None:
        self.out(ind, f"{r} = tl.broadcast_to({ops[0]}, {_pshape(op.result.type)})")

    def _transpose(self, op: Op, ops, r, ind: int) -> None:
        self.out(ind, f"{r} = tl.trans({ops[0]})")

    def _move(self, op: Op, ops, r, ind: int) -> None:
        self.out(ind, f"{r} = {ops[0]}")  # one program: no crossing

    def _split_aiv(self, op: Op, ops, r, ind: int) -> None:
        lane = self.name(op.regions[0].args[0])
        self.out(ind, f"for {lane} in tl.static_range(2):")
        self.out(ind + 1, "pass")
        if self._body_conflicts(op.regions[0]):
            self.barrier(ind + 1)
        self.emit_block(op.regions[0], ind + 1)

    def _core(self, op: Op, ops, r, ind: int) -> None:
        raise UnsupportedError("a hand-written per-core region (mt.on_core) has no "
                               "Triton lowering", loc=op.loc,
                               fix="write the kernel in automatic or split_aiv mode")

    # ------------------------------------------------------------ helpers
    def _elementwise(self, op: Op, ops: list[str], ind: int) -> None:
        # 16-bit float operands are computed in f32 (as the simulator does; Triton's math
        # functions take only f32 / f64) and the result rounded back
        ops = [f"{x}.to(tl.float32)" if isinstance(v.type, TileType) and v.type.dtype in (
            DType.BF16, DType.F16) else x for v, x in zip(op.operands, ops)]
        expr = EXPR[op.opdef].format(*ops)
        t = op.result.type
        if t.dtype in (DType.BF16, DType.F16):
            expr = f"({expr}).to({TL_DTYPE[t.dtype]})"  # round where the simulator does
        self.out(ind, f"{self.name(op.result)} = {expr}")

    def _valid_mask(self, t: TileType) -> str | None:
        """Mask of the lanes inside the static shape (None when nothing is padded)."""
        p = _pshape(t)
        if p == t.shape:
            return None
        parts = []
        for i, (d, pd) in enumerate(zip(t.shape, p)):
            if d == pd:
                continue
            idx = f"tl.arange(0, {pd})"
            if len(p) == 2:
                idx += "[:, None]" if i == 0 else "[None, :]"
            parts.append(f"({idx} < {d})")
        return " & ".join(parts)

    def _reduce(self, op: Op, x: str, r: str, ind: int) -> None:
        t = op.operands[0].type
        fn, ident = _REDUCE[op.attrs["kind"]]
        m = self._valid_mask(t)
        src = f"tl.where({m}, {x}, {ident})" if m else x
        axis = op.attrs["axis"] % len(t.shape)
        expr = f"{fn}({src}, axis={axis}, keep_dims=True)"
        if t.dtype in (DType.BF16, DType.F16):
            expr = f"{fn}({src}.to(tl.float32), axis={axis}, keep_dims=True)" \
                   f".to({TL_DTYPE[t.dtype]})"
        self.out(ind, f"{r} = {expr}")

    def _reshape(self, op: Op, x: str, r: str, ind: int) -> None:
        src, dst = op.operands[0].type, op.result.type
        if [d for d in src.shape if d != 1] != [d for d in dst.shape if d != 1] and (
                _pshape(src) != src.shape):
            raise UnsupportedError(
                f"reshape {list(src.shape)} -> {list(dst.shape)} of a padded tile has no "
                f"Triton lowering (the block is {list(_pshape(src))}: each extent rounds up "
                "to a power of two, at least 16)", loc=op.loc,
                fix="use tile extents that are powers of two of at least 16, or reshape "
                    "only by adding or removing axes of extent 1")
        self.out(ind, f"{r} = tl.reshape({x}, {_pshape(dst)})")

    def _zero_pad(self, v: Value, x: str) -> str:
        m = self._valid_mask(v.type)
        return f"tl.where({m}, {x}, 0.0)" if m else x

    def _matmul(self, op: Op, ops: list[str], r: str, ind: int) -> None:
        a, b = (self._zero_pad(v, x) for v, x in zip(op.operands[:2], ops[:2]))
        if op.attrs.get("a_trans"):
            a = f"tl.trans({a})"
        if op.attrs.get("b_trans"):
            b = f"tl.trans({b})"
        out_t = op.result.type
        m, n = _pshape(out_t)
        k_t = op.operands[0].type
        k = pad(k_t.shape[0] if op.attrs.get("a_trans") else k_t.shape[1])
        acc = ops[2] if len(ops) > 2 else None
        if min(m, n, k) < 16:  # tl.dot needs 16 x 16 x 16: a broadcast product instead
            expr = f"tl.sum(({a}).to(tl.float32)[:, :, None] * ({b}).to(tl.float32)" \
                   f"[None, :, :], axis=1)"
            if out_t.dtype is DType.I32:
                expr = f"tl.sum(({a}).to(tl.int32)[:, :, None] * ({b}).to(tl.int32)" \
                       f"[None, :, :], axis=1)"
            self.out(ind, f"{r} = {expr}" + (f" + {acc}" if acc else ""))
            return
        out = ", out_dtype=tl.int32" if out_t.dtype is DType.I32 else ""
        if acc:
            self.out(ind, f"{r} = tl.dot({a}, {b}, {acc}{out})")
        else:
            self.out(ind, f"{r} = tl.dot({a}, {b}{out})")

    def _scalar_ptr(self, t: Value, idx: list[str]) -> str:
        parts = [t.hint] + [f"({i}) * {t.hint}_s{d}" for d, i in enumerate(idx)]
        return " + ".join(parts)

    def _region(self, op: Op, t: Value, offs: list[str], tile: TileType):
        """(pointer expr, mask expr) of a load/store region."""
        sizes, keep = op.attrs["sizes"], op.attrs["keep"]
        kept = [d for d, k in enumerate(keep) if k]
        p = _pshape(tile)
        ptr = [t.hint]
        mask = []
        lim = op.attrs.get("row_limit")
        for d, off in enumerate(offs):
            ptr.append(f"({off}) * {t.hint}_s{d}")
        for ti, d in enumerate(kept):
            idx = f"tl.arange(0, {p[ti]})"
            if len(kept) == 2:
                idx += "[:, None]" if ti == 0 else "[None, :]"
            elif len(kept) > 2:
                raise UnsupportedError("tiles of more than 2 dims have no Triton lowering",
                                       loc=op.loc)
            ptr.append(f"{idx} * {t.hint}_s{d}")
            bound = f"{t.hint}_d{d} - ({offs[d]})"
            if lim == d:
                bound = f"tl.minimum({bound}, ({self.ref(op.operands[-1])}) - ({offs[d]}))"
            cond = f"({idx} < {bound})"
            if sizes[d] != p[ti]:
                cond = f"({idx} < {sizes[d]}) & {cond}"
            mask.append(cond)
        return " + ".join(ptr), " & ".join(mask) if mask else None

    def _offsets(self, op: Op, first: int) -> list[str]:
        end = len(op.operands) - (op.attrs.get("row_limit") is not None)
        return [self.ref(v) for v in op.operands[first:end]]

    def _load(self, op: Op, ops: list[str], r: str, ind: int) -> None:
        t = op.operands[0]
        tile = op.result.type
        ptr, mask = self._region(op, t, self._offsets(op, 1), tile)
        pad_v = op.attrs.get("pad", 0.0)
        other = _lit(float(pad_v)) if tile.dtype.is_float else repr(
            int(pad_v) if math.isfinite(pad_v) else 0)
        if mask:
            self.out(ind, f"{r} = tl.load({ptr}, mask={mask}, other={other})")
        else:
            self.out(ind, f"{r} = tl.load({ptr})")

    def _store(self, op: Op, ops: list[str], ind: int) -> None:
        t = op.operands[0]
        val = op.operands[1]
        first = 2
        if op.opdef is FIXPIPE and op.attrs.get("has_bias"):
            first = 3
        ptr, mask = self._region(op, t, self._offsets(op, first), val.type)
        x = ops[1]
        if op.opdef is FIXPIPE:
            if op.attrs.get("has_bias"):
                x = f"({x} + {ops[2]})"
            if op.attrs.get("relu"):
                x = f"tl.maximum({x}, 0.0)"
        x = f"({x}).to({TL_DTYPE[t.type.dtype]})"
        m = f", mask={mask}" if mask else ""
        if op.attrs.get("atomic", AtomicKind.NONE) is AtomicKind.ADD:
            self.out(ind, f"tl.atomic_add({ptr}, {x}{m})")
        else:
            self.out(ind, f"tl.store({ptr}, {x}{m})")

    def _for(self, op: Op, ops: list[str], ind: int) -> None:
        body = op.regions[0]
        iv = self.name(body.args[0])
        carried = body.args[1:]
        for a, init in zip(carried, ops[3:]):
            self.out(ind, f"{self.name(a)} = {init}")
        self.out(ind, f"for {iv} in range({ops[0]}, {ops[1]}, {ops[2]}):")
        self.out(ind + 1, "pass")
        rd, wr = set(self.rd), set(self.wr)
        if self._body_conflicts(body):
            self.barrier(ind + 1)
        self.emit_block(body, ind + 1)
        self.rd |= rd  # the loop may not run
        self.wr |= wr
        y = body.ops[-1]
        for a, v in zip(carried, y.operands):
            self.out(ind + 1, f"{self.name(a)} = {self.ref(v)}")
        for res, a in zip(op.results, carried):
            self.names[res] = self.names[a]



# the other rules: op -> _Emitter method (op, operand expressions, result name, indent)
RULES = {
    CONST: _Emitter._const, DIM: _Emitter._dim, SCAST: _Emitter._scast,
    LOAD_SCALAR: _Emitter._load_scalar, CAST: _Emitter._cast, FULL: _Emitter._full,
    ARANGE: _Emitter._arange, BROADCAST: _Emitter._broadcast, TRANSPOSE: _Emitter._transpose,
    MOVE: _Emitter._move, MATMUL: _Emitter._matmul, LOAD: _Emitter._load,
    SPLIT_AIV: _Emitter._split_aiv, CORE: _Emitter._core,
    RESHAPE: lambda em, op, ops, r, ind: em._reshape(op, ops[0], r, ind),
    REDUCE: lambda em, op, ops, r, ind: em._reduce(op, ops[0], r, ind),
    STORE: lambda em, op, ops, r, ind: em._store(op, ops, ind),
    FIXPIPE: lambda em, op, ops, r, ind: em._store(op, ops, ind),
    FOR: lambda em, op, ops, r, ind: em._for(op, ops, ind),
}

def _phases(spmd: Op) -> list[list[Op]]:
    """The launch's top-level ops split at syncalls (each later phase recomputes the
    scalar ops of the earlier ones)."""
    phases: list[list[Op]] = [[]]
    for op in spmd.regions[0].ops:
        if op.opdef is SYNCALL:
            phases.append([])
        else:
            phases[-1].append(op)
    for op in spmd.regions[0].walk():
        if op.opdef is SYNCALL and op.parent is not spmd.regions[0]:
            raise UnsupportedError("a syncall inside a loop or region has no Triton lowering "
                                   "(a barrier is a launch boundary there)", loc=op.loc)
    return phases


def _scalar_only(op: Op) -> bool:
    return not op.regions and all(isinstance(r.type, ScalarType) for r in op.results) and \
        op.opdef not in (STORE, FIXPIPE, LOAD)


def _ops_in(op: Op):
    yield op
    for r in op.regions:
        yield from r.walk()


def _check_recomputed_loads(top: list[Op], phases: list[list[Op]]) -> None:
    """Every phase recomputes the scalars of the kernel's top level and of the earlier
    phases, scalar loads included: one that reads a tensor an earlier phase writes would
    see the new value, not the one the simulator (and an NPU) keeps across the syncall.
    Refused with the load's line."""
    written: set = set()
    made: dict[Value, Op] = {r: op for op in top for r in op.results}
    for pi, phase in enumerate(phases):
        if pi:
            stack = [v for op in phase for o in _ops_in(op) for v in o.operands]
            seen: set = set()
            while stack:
                op = made.get(stack.pop())
                if op is None or op in seen:
                    continue
                seen.add(op)
                if op.opdef is LOAD_SCALAR and op.operands[0] in written:
                    raise UnsupportedError(
                        f"a scalar loaded from `{op.operands[0].hint}` before a syncall is "
                        "used after it, and the kernel writes that tensor before the "
                        "syncall: on a GPU each phase is a launch that loads it again",
                        loc=op.loc, fix="load it again after the syncall (the new value) "
                        "or keep the old one in a workspace")
                stack += op.operands
        for op in phase:
            written.update(o.operands[i] for o in _ops_in(op) for i in o.opdef.writes)
            if _scalar_only(op):
                made.update((r, op) for r in op.results)


def generate(kernel: Kernel) -> tuple[str, list[dict]]:
    """-> (Triton source, launches). Each launch: {"fn", "grid" (the IR grid Value)}."""
    lines = ["import triton", "import triton.language as tl", ""]
    launches = []
    top_scalars = [op for op in kernel.body.ops if op.opdef is not SPMD]
    for li, spmd in enumerate(op for op in kernel.body.ops if op.opdef is SPMD):
        prev: list[Op] = []
        phases = _phases(spmd)
        _check_recomputed_loads(top_scalars, phases)
        for pi, phase in enumerate(phases):
            fn = f"_{kernel.name}_{li}_{pi}"
            em = _Emitter(kernel, fn)
            lines += ["@triton.jit", em.signature()]
            for op in top_scalars:
                em.emit(op, 1)
            em.out(1, f"{em.name(spmd.regions[0].args[0])} = tl.program_id(0)")
            for op in prev:
                em.emit(op, 1)
            for op in phase:
                em.emit(op, 1)
            lines += em.lines + [""]
            # a later phase recomputes this phase's scalars; tiles cannot cross a barrier
            for op in phase:
                if _scalar_only(op):
                    prev.append(op)
            launches.append({"fn": fn, "grid": spmd.operands[0]})
    return "\n".join(lines), launches


