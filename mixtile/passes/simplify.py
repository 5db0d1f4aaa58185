"""Simplify: fold scalar index math with sympy and reuse equal expressions.

Each integer scalar gets a sympy expression: a `const` its value; a `dim` the tensor's
static extent or a positive integer symbol named after the symbolic dim (two tensors
sharing dim `M` share the symbol); a block index, or a loop iv whose lb is >= 0 and step
is > 0, a nonnegative integer symbol; any other integer (a `load_scalar` result, a scalar
parameter, a carried value) an integer symbol with no sign assumption (a wrong one would
fold `smax(v, 0)` away). sadd/ssub/smul build sympy sums and products (canonical, so
`(b*128+128) - b*128` is `128`); sfloordiv/smod by a constant split off the multiples of
the divisor (`(128*b + 5) // 128` is `b`, `% 128` is `5`), by an expression they cancel
exact quotients; smin/smax pick a side when the difference has a known sign. Whatever
stays unresolved becomes an opaque FloorDiv/Mod/Min/Max node: sympy's own floor/Min ask
its assumption system, which costs milliseconds per op. Then:

- an expression that is an integer becomes a `const` (one per value and dtype, kept at
  the top of the kernel; nested duplicate consts are hoisted and merged);
- an expression equal to an earlier one that dominates it (same or enclosing block,
  defined before, or a parameter or block arg) reuses that value;
- comparisons of integers whose difference is a constant fold to a bool `const`;
  `sselect` on a constant condition picks its operand;
- float/bool scalar ops whose operands are all constants are evaluated with the op's
  own semantics (its `impl`, as the simulator does).

Tile ops are left alone. Only ops whose results get replaced are removed; DCE does the
rest. Expression building is cached per (op, operand expressions).
"""
from __future__ import annotations

import struct
from functools import lru_cache
from typing import Any

import numpy as np
import sympy

from mixtile.ir.builder import make_op
from mixtile.ir.core import Block, Kernel, Op, Value
from mixtile.ir.ops import (
    CONST,
    DIM,
    FOR,
    LOAD_SCALAR,
    SADD,
    SEQ,
    SFLOORDIV,
    SGE,
    SGT,
    SLE,
    SLT,
    SMAX,
    SMIN,
    SMOD,
    SMUL,
    SNE,
    SPMD,
    SSELECT,
    SSUB,
)
from mixtile.ir.registry import OpDef, OpKind
from mixtile.ir.types import DType, ScalarType, TensorType
from mixtile.passes.manager import PassContext, compiler_pass

_INT_OPS = frozenset({SADD, SSUB, SMUL, SFLOORDIV, SMOD, SMIN, SMAX})
# a comparison of a and b as (known when _sign(d + shift) is sign, value), d = a - b
_CMP = {
    SLT: ((1, -1, True), (0, 1, False)), SLE: ((0, -1, True), (-1, 1, False)),
    SGT: ((-1, 1, True), (0, -1, False)), SGE: ((0, 1, True), (1, -1, False)),
    SEQ: (), SNE: (),
}


class FloorDiv(sympy.Function):
    """`a // b` that sympy keeps as is (its own floor asks the slow assumption system)."""


class Mod(sympy.Function):
    """`a % b` (Python's sign rule), kept as is."""


class Min(sympy.Function):
    """min of its args (sorted, so min(a, b) == min(b, a)), kept as is."""


class Max(sympy.Function):
    """max of its args (sorted), kept as is."""


def _terms(e: sympy.Expr) -> dict:
    """{term: integer coefficient}; the constant's term is 1."""
    return e.as_coefficients_dict()


def _sign(d: sympy.Expr) -> int:
    """1 if d >= 0 is known, -1 if d <= 0 is known, else 0 (only sums of constants and
    symbols with a sign assumption are decided: cheap, no assumption solving)."""
    if d.is_Integer:
        return 1 if d >= 0 else -1
    pos = neg = True
    for t, c in _terms(d).items():
        if t is sympy.S.One:
            pos, neg = pos and c >= 0, neg and c <= 0
            continue
        if not (t.is_Symbol and t.is_nonnegative):
            return 0
        pos, neg = pos and c >= 0, neg and c <= 0
    return 1 if pos else -1 if neg else 0


def _divmod(a: sympy.Expr, b: sympy.Expr) -> tuple[sympy.Expr, sympy.Expr]:
    """(a // b, a % b) for integer-valued a, b != 0 (Python's floor semantics)."""
    if a.is_Integer and b.is_Integer:
        q, r = divmod(int(a), int(b))
        return sympy.Integer(q), sympy.Integer(r)
    terms = _terms(a)
    if b.is_Integer and b > 0 and all(c.is_Integer for c in terms.values()):
        n = int(b)  # split off the multiples of b: (q*b + r) // b = q + r // b
        q = r = sympy.S.Zero
        for t, c in terms.items():
            cq, cr = divmod(int(c), n)
            q += cq * t
            r += cr * t
        if r.is_Integer:  # 0 <= r < n
            return q, r
        return q + FloorDiv(r, b), Mod(r, b)
    ratio = a / b
    num, den = ratio.as_numer_denom()
    if den.is_Integer and num.is_Integer:
        q = sympy.Integer(int(num) // int(den))
        return q, a - b * q
    if den == 1 and all(c.is_Integer for c in _terms(ratio).values()):
        return ratio, sympy.S.Zero
    return FloorDiv(a, b), Mod(a, b)


def _compare(cmp: OpDef, d: sympy.Expr) -> bool | None:
    """The value of `a <cmp> b` given d = a - b, when the sign of d decides it."""
    if d.is_Integer:
        return {SLT: d < 0, SLE: d <= 0, SGT: d > 0, SGE: d >= 0, SEQ: d == 0,
                SNE: d != 0}[cmp] == sympy.true
    for shift, sign, value in _CMP[cmp]:
        if _sign(d + shift) == sign:
            return value
    return None


@lru_cache(maxsize=16384)
def _combine(d: OpDef, a: sympy.Expr, b: sympy.Expr) -> sympy.Expr | None:
    """The canonical expression of `a <d> b` (None: leave it to run time)."""
    if d is SADD:
        return a + b
    if d is SSUB:
        return a - b
    if d is SMUL:
        e = a * b
        if e.is_Mul and any(f.is_Add for f in e.args):
            e = sympy.expand_mul(e, deep=False)
        return e
    if d in (SFLOORDIV, SMOD):
        if b == 0:  # division by zero: leave it to run time
            return None
        return _divmod(a, b)[0 if d is SFLOORDIV else 1]
    sign = _sign(a - b)
    if sign:
        return (b if sign > 0 else a) if d is SMIN else (a if sign > 0 else b)
    fn = Min if d is SMIN else Max
    return fn(*sorted((a, b), key=sympy.default_sort_key))


@lru_cache(maxsize=1024)
def _symbol(name: str, positive: bool, nonneg: bool) -> sympy.Symbol:
    if positive:
        return sympy.Symbol(name, integer=True, positive=True)
    if nonneg:
        return sympy.Symbol(name, integer=True, nonnegative=True)
    return sympy.Symbol(name, integer=True)


def _warm_up() -> None:
    """Run each kind of expression once at import: sympy's first use lazily imports and
    initialises ~25 ms of its own modules, which would otherwise land in the first compile."""
    x = _symbol("%warm", False, True)
    for d in (SADD, SSUB, SMUL, SFLOORDIV, SMOD, SMIN, SMAX):
        _combine(d, x * 2 + 1, sympy.Integer(3))
    _combine.cache_clear()


_warm_up()


def _canon(value: Any) -> tuple:
    """A hashable key telling constants apart exactly (0.0 vs -0.0, NaN bits)."""
    if isinstance(value, (bool, np.bool_)):
        return ("b", bool(value))
    if isinstance(value, (int, np.integer)):
        return ("i", int(value))
    if isinstance(value, (float, np.floating)):
        return ("f", struct.pack("<d", float(value)))
    return ("o", repr(value))


def _is_int(v: Value) -> bool:
    t = v.type
    return type(t) is ScalarType and t.dtype.is_int


class _Simplifier:
    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        self.top = kernel.body
        self.subst: dict[Value, Value] = {}
        self.expr: dict[Value, sympy.Expr] = {}
        self.cval: dict[Value, Any] = {}  # python value of constant scalars
        self.pool: dict[tuple, Value] = {}  # (dtype, canon value) -> const at top level
        self.hoisted: list[Op] = []  # consts to put at the start of the kernel body
        self.scopes: list[dict[tuple, Value]] = []  # (dtype, expr) -> value, per block
        self.n = 0
        self.param_names = {p.value: p.name for p in kernel.params}

    # ------------------------------------------------------------ expressions

    def fresh(self, kind: str, nonneg: bool) -> sympy.Symbol:
        self.n += 1
        return _symbol(f"%{kind}{self.n}", False, nonneg)

    def expr_of(self, v: Value) -> sympy.Expr:
        e = self.expr.get(v)
        if e is None:
            name = self.param_names.get(v)
            e = (_symbol(f"%param:{name}", False, False) if name is not None
                 else self.fresh("v", False))
            self.expr[v] = e
        return e

    def lookup(self, key: tuple) -> Value | None:
        for scope in reversed(self.scopes):
            v = scope.get(key)
            if v is not None:
                return v
        return None

    def const(self, dtype: DType, value: Any, loc) -> Value:
        key = (dtype, _canon(value))
        v = self.pool.get(key)
        if v is None:
            op = make_op(CONST, [], {"dtype": dtype, "value": value}, loc=loc)
            op.parent = self.top
            self.hoisted.append(op)
            v = self.pool[key] = op.result
            self.note_const(v, value)
        return v

    def note_const(self, v: Value, value: Any) -> None:
        self.cval[v] = value
        if _is_int(v) and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            self.expr[v] = sympy.Integer(int(value))

    # ------------------------------------------------------------ the walk

    def run(self) -> None:
        params = {(p.value.type.dtype, self.expr_of(p.value)): p.value
                  for p in self.k.params if _is_int(p.value)}
        self.scopes.append(params)
        self.block(self.top, {})
        if self.hoisted:
            self.top.ops[:0] = self.hoisted

    def block(self, blk: Block, scope: dict) -> None:
        self.scopes.append(scope)
        owner = blk.parent
        for i, a in enumerate(blk.args):
            if _is_int(a):
                e = self.expr[a] = self.fresh("arg", self.nonneg_arg(owner, i))
                scope[(a.type.dtype, e)] = a
        kept: list[Op] = []
        subst = self.subst
        for op in blk.ops:
            if subst:
                op.operands = [subst.get(v, v) for v in op.operands]
            if self.visit(op, blk):
                kept.append(op)
            for r in op.regions:
                self.block(r, {})
        blk.ops = kept
        self.scopes.pop()

    def nonneg_arg(self, owner: Op | None, i: int) -> bool:
        """A launch's block index is >= 0; so is a loop iv when lb >= 0 and step > 0."""
        if owner is None:
            return False
        d = owner.opdef
        if d is SPMD:
            return True
        if d is not FOR or i != 0:
            return False
        lb, step = owner.operands[0], owner.operands[2]
        return bool(_is_int(lb) and _is_int(step) and self.expr_of(lb).is_nonnegative
                    and self.expr_of(step).is_positive)

    def replace(self, op: Op, v: Value) -> bool:
        self.subst[op.results[0]] = v
        return False

    def visit(self, op: Op, blk: Block) -> bool:
        """Simplify one op; False when it was replaced (and is dropped)."""
        d = op.opdef
        if d is CONST:
            return self.visit_const(op, blk)
        if (op.opdef.kind is not OpKind.PURE and d is not LOAD_SCALAR) or op.regions \
                or len(op.results) != 1 or type(op.results[0].type) is not ScalarType:
            return True
        r = op.results[0]
        dt = r.type.dtype
        if d is LOAD_SCALAR:  # any integer: tables may hold negative sentinels
            if dt.is_int:
                self.expr[r] = self.fresh("ld", False)
            return True
        if d is SSELECT and op.operands[0] in self.cval:
            return self.replace(op, op.operands[1] if self.cval[op.operands[0]]
                                else op.operands[2])
        if dt.is_int:
            e = self.int_expr(op)
            if e is not None:
                if e.is_Integer:
                    return self.replace(op, self.const(dt, int(e), op.loc))
                key = (dt, e)
                prev = self.lookup(key)
                if prev is not None:
                    return self.replace(op, prev)
                self.scopes[-1][key] = r
                self.expr[r] = e
                return True
        elif d in _CMP and all(_is_int(v) for v in op.operands):
            known = _compare(d, self.expr_of(op.operands[0]) - self.expr_of(op.operands[1]))
            if known is not None:
                return self.replace(op, self.const(dt, known, op.loc))
        if op.operands and all(v in self.cval for v in op.operands) and op.opdef.impl:
            value = self.evaluate(op)
            if value is not None:
                return self.replace(op, self.const(dt, value, op.loc))
        if dt.is_int:
            self.expr[r] = self.fresh("v", False)
        return True

    def visit_const(self, op: Op, blk: Block) -> bool:
        r = op.results[0]
        value = op.attrs.get("value")
        key = (op.attrs.get("dtype"), _canon(value))
        prev = self.pool.get(key)
        if prev is not None:
            return self.replace(op, prev)
        self.pool[key] = r
        self.note_const(r, value)
        if blk is not self.top:  # hoist: the pool's consts dominate every later use
            op.parent = self.top
            self.hoisted.append(op)
            return False
        return True

    def int_expr(self, op: Op) -> sympy.Expr | None:
        d = op.opdef
        if d in _INT_OPS and len(op.operands) == 2 and all(_is_int(v) for v in op.operands):
            return _combine(d, self.expr_of(op.operands[0]), self.expr_of(op.operands[1]))
        if d is DIM:
            t = op.operands[0].type
            axis = op.attrs.get("axis")
            if type(t) is TensorType and isinstance(axis, int) and -len(t.shape) <= axis \
                    < len(t.shape):
                d = t.shape[axis]
                return sympy.Integer(d) if isinstance(d, int) else _symbol(str(d), True, True)
        return None

    def evaluate(self, op: Op) -> Any:
        """The op's value on constant operands (its own semantics), or None."""
        dt = op.results[0].type.dtype
        try:
            value = op.opdef.impl(op.attrs, *[self.cval[v] for v in op.operands])
        except (ArithmeticError, ValueError, TypeError):
            return None
        if dt is DType.BOOL:
            return bool(value)
        if dt.is_float:
            return float(value) if isinstance(value, (int, float, np.number)) else None
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return int(value)
        return None


@compiler_pass("Simplify")
def Simplify(kernel: Kernel, ctx: PassContext) -> Kernel:  # noqa: N802
    """Fold scalar index math (sympy), merge equal expressions, fold scalar constants."""
    _Simplifier(kernel).run()
    return kernel
