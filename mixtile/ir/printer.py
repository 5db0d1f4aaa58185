"""Textual IR: a printer whose output `mixtile.ir.parser.parse_kernel` reads back exactly.

Format (one op per line, two spaces of indent per region depth)::

    kernel @gemm(%x: tensor<Mx64xbf16> in, %y: tensor<MxNxf32> out) {core = CoreType.aic} {
      %0 = dim %x {axis = 0} : index loc("k.py":12)
      spmd %0 {
      ^(%1: index):
        %2, %3 = for %a, %b, %c, %i, %j {
        ^(%4: index, %5: tile<16xf32, UB>, %6: tile<16xf32, UB>):
          yield %5, %6
        } : tile<16xf32, UB>, tile<16xf32, UB>
      }
    }

- Values are numbered %0, %1, ... in order of definition (an op's results before the
  block arguments of its regions); parameters keep their names (`%x`, or `%"0"` quoted
  when the name is not an identifier). An op with several results names each: `%2, %3 =`.
- `[results =] name operands {attrs} {regions} : result types loc("file":line)`.
- Attr values: ints, floats by repr (`inf`, `-inf`, `nan`; a NaN with other bits as
  `nan(<bits>)`), `true`/`false`, `none`, JSON-quoted strings, tuples `(1,)`, lists `[1]`,
  dicts `{MemSpace.L1: 1024}`, enums `DType.bf16` / `MemSpace.L1` / `Role.in`, numpy
  scalars `np.float32(1.5)` (a NaN with other bits `np.float16(bits(32257))`), and
  types. Attrs are printed sorted by key.
- Symbolic tensor dims that are not identifiers free of a lowercase `x` are quoted:
  `tensor<"max_len"x64xf32>`.
"""
from __future__ import annotations

import enum
import json
import math
import re
import struct
from typing import Any

import ml_dtypes
import numpy as np

from mixtile.errors import UNKNOWN_LOC, Loc, VerifyError
from mixtile.ir.core import Block, Kernel, Op, Value
from mixtile.ir.types import (
    AtomicKind,
    CoreRole,
    CoreType,
    DType,
    MemSpace,
    Pipe,
    ReduceKind,
    Role,
    ScalarType,
    SplitMode,
    SyncMode,
    TensorType,
    TileType,
    Unit,
)

ENUM_CLASSES: dict[str, type[enum.Enum]] = {
    c.__name__: c for c in (DType, MemSpace, Unit, Pipe, Role, CoreType, ReduceKind, AtomicKind,
                            SyncMode, CoreRole, SplitMode)
}


def enum_text(m: enum.Enum) -> str:
    """The text of an enum member after `ClassName.` (DType by its short name)."""
    return m.short if isinstance(m, DType) else str(m.value)


ENUM_MEMBERS: dict[tuple[str, str], enum.Enum] = {
    (n, enum_text(m)): m for n, c in ENUM_CLASSES.items() for m in c
}
NP_SCALARS: dict[str, type] = {
    t.__name__: t for t in (
        np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
        np.uint64, np.float16, np.float32, np.float64, ml_dtypes.bfloat16,
        ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2)
}

IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
SYM_DIM_RE = re.compile(r"[A-Za-wyz_][A-Za-wyz0-9_]*\Z")  # no lowercase x: it separates dims
_NAN_BITS = struct.unpack("<Q", struct.pack("<d", math.nan))[0]


def quote(s: str) -> str:
    """A string literal (JSON escapes; non-ASCII kept readable)."""
    return json.dumps(s, ensure_ascii=False)


def value_name(name: str) -> str:
    """The printed name of a parameter: `%name`, quoted when not an identifier."""
    return "%" + (name if IDENT_RE.match(name) else quote(name))


def symbol(name: str) -> str:
    return "@" + (name if IDENT_RE.match(name) else quote(name))


# ---------------------------------------------------------------- types

def _dim(d: Any) -> str:
    if type(d) is int:
        return str(d)
    d = str(d)
    return d if SYM_DIM_RE.match(d) else quote(d)


def _type_str(t: Any) -> str:
    if type(t) is ScalarType:
        return "index" if t.dtype is DType.I64 else t.dtype.short
    if type(t) is TileType:
        dims = "".join(f"{d}x" for d in t.shape)
        return f"tile<{dims}{t.dtype.short}, {t.space.value}>"
    if type(t) is TensorType:
        dims = "".join(_dim(d) + "x" for d in t.shape)
        return f"tensor<{dims}{t.dtype.short}>"
    return f"opaque({quote(repr(t))})"


_TYPE_CACHE: dict[Any, str] = {}


def print_type(t: Any) -> str:
    """`index`, `f32`, `tensor<Mx64xbf16>`, `tile<128x64xbf16, L1>`."""
    try:
        return _TYPE_CACHE[t]
    except KeyError:
        s = _TYPE_CACHE[t] = _type_str(t)
        return s
    except TypeError:  # unhashable: a malformed type
        return _type_str(t)


# ---------------------------------------------------------------- attr values

def _fmt_float(x: float) -> str:
    if x != x:
        bits = struct.unpack("<Q", struct.pack("<d", x))[0]
        return "nan" if bits == _NAN_BITS else f"nan({bits})"
    return repr(float(x))


def _fmt_seq(v, open_: str, close: str) -> str:
    return open_ + ", ".join(print_value(x) for x in v) + close


def _fmt_tuple(v: tuple) -> str:
    return f"({print_value(v[0])},)" if len(v) == 1 else _fmt_seq(v, "(", ")")


def _fmt_dict(v: dict) -> str:
    return "{" + ", ".join(f"{print_value(k)}: {print_value(x)}" for k, x in v.items()) + "}"


_FMT = {
    int: str, float: _fmt_float, str: quote, type(None): lambda v: "none",
    bool: lambda v: "true" if v else "false", tuple: _fmt_tuple,
    list: lambda v: _fmt_seq(v, "[", "]"), dict: _fmt_dict,
    ScalarType: print_type, TensorType: print_type, TileType: print_type,
}


def print_value(v: Any) -> str:
    """One attr value; `parse_value` reads it back as an equal value of the same type."""
    f = _FMT.get(type(v))
    if f is not None:
        return f(v)
    if isinstance(v, enum.Enum):
        return f"{type(v).__name__}.{enum_text(v)}"
    if isinstance(v, np.generic) and NP_SCALARS.get(type(v).__name__) is type(v):
        if isinstance(v, np.bool_):
            lit = "true" if v else "false"
        elif isinstance(v, np.integer):
            lit = str(int(v))
        elif v != v and v.tobytes() != type(v)(math.nan).tobytes():  # a NaN's own bits
            lit = f"bits({int.from_bytes(v.tobytes(), 'little')})"
        else:
            lit = _fmt_float(float(v))
        return f"np.{type(v).__name__}({lit})"
    return f"opaque({quote(repr(v))})"


_KEYS: dict[str, str] = {}
_LOCS: dict[Loc, str] = {}


def _key(k: Any) -> str:
    s = _KEYS.get(k) if type(k) is str else None
    if s is None:
        s = k if type(k) is str and IDENT_RE.match(k) else quote(str(k))
        if type(k) is str and len(_KEYS) < 4096:
            _KEYS[k] = s
    return s


def print_attrs(attrs: dict[str, Any]) -> str:
    """`{key = value, ...}` sorted by key."""
    try:
        keys = sorted(attrs)
    except TypeError:  # keys that are not all strings: a malformed op, still printable
        keys = sorted(attrs, key=str)
    return "{" + ", ".join([f"{_key(k)} = {print_value(attrs[k])}" for k in keys]) + "}"


def print_loc(loc: Loc) -> str:
    """`loc("file":line)`."""
    s = _LOCS.get(loc)
    if s is None:
        s = f"loc({quote(loc.file)}:{loc.line})"
        if len(_LOCS) < 4096:
            _LOCS[loc] = s
    return s


# ---------------------------------------------------------------- ops and kernels

class _Printer:
    __slots__ = ("locs", "names", "n", "n_undef", "undef")

    def __init__(self, locs: bool, undef: str = "undef") -> None:
        self.locs = locs
        self.names: dict[Value, str] = {}
        self.n = 0
        self.n_undef = 0
        self.undef = undef

    def define(self, v: Value) -> str:
        name = self.names[v] = f"%{self.n}"
        self.n += 1
        return name

    def use(self, v: Value) -> str:
        name = self.names.get(v)
        if name is None:  # used outside its definition's scope: invalid IR, still printable
            if v.hint and self.undef == "v":  # print_op: params are known by their hint
                name = self.names[v] = value_name(v.hint)
            else:
                name = self.names[v] = f"%{self.undef}{self.n_undef}"
                self.n_undef += 1
        return name

    def op(self, op: Op, ind: str, out: list[str], regions: bool = True) -> None:
        head = ind
        if op.results:
            head += ", ".join([self.define(r) for r in op.results]) + " = "
        head += op.opdef.name
        if op.operands:
            head += " " + ", ".join([self.use(v) for v in op.operands])
        if op.attrs:
            head += " " + print_attrs(op.attrs)
        tail = ""
        if op.results:
            tail = " : " + ", ".join([print_type(r.type) for r in op.results])
        if self.locs and op.loc is not UNKNOWN_LOC and op.loc != UNKNOWN_LOC:
            tail += " " + print_loc(op.loc)
        if not op.regions:
            out.append(head + tail)
            return
        if not regions:
            out.append(head + " {...}" * len(op.regions) + tail)
            return
        for r in op.regions:
            out.append(head + " {")
            self.block(r, ind, out, True)
            head = ind + "}"
        out.append(head + tail)

    def block(self, blk: Block, ind: str, out: list[str], header: bool) -> None:
        if header or blk.args:
            args = ", ".join([f"{self.define(a)}: {print_type(a.type)}" for a in blk.args])
            out.append(f"{ind}^({args}):")
        inner = ind + "  "
        for op in blk.ops:
            self.op(op, inner, out)

    def kernel(self, k: Kernel) -> str:
        params = []
        for p in k.params:
            name = value_name(p.name)
            if name in self.names.values():
                raise VerifyError(f"kernel {k.name}: two parameters are named {p.name!r}",
                                  fix="give every parameter its own name")
            self.names[p.value] = name
            params.append(f"{name}: {print_type(p.value.type)} {p.role.value}")
        head = f"kernel {symbol(k.name)}({', '.join(params)})"
        if k.attrs:
            head += " " + print_attrs(k.attrs)
        out = [head + " {"]
        self.block(k.body, "", out, False)
        out.append("}")
        return "\n".join(out) + "\n"


def print_kernel(k: Kernel, locs: bool = True) -> str:
    """The text of a kernel; `parse_kernel` rebuilds an equal kernel from it."""
    return _Printer(locs).kernel(k)


def print_op(op: Op, regions: bool = False, locs: bool = True) -> str:
    """One op as text for messages (regions elided unless `regions`); values it does not
    define are named by their hint or `%v0`, `%v1`, ..."""
    out: list[str] = []
    _Printer(locs, "v").op(op, "", out, regions)
    return "\n".join(out)


# ---------------------------------------------------------------- structural equality

def values_equal(x: Any, y: Any) -> bool:
    """Attr values equal in type and value (floats bit for bit, so NaN == NaN, 0.0 != -0.0)."""
    if type(x) is not type(y):
        return False
    if isinstance(x, np.generic):
        return x.tobytes() == y.tobytes()
    if isinstance(x, float):
        return struct.pack("<d", x) == struct.pack("<d", y)
    if isinstance(x, (tuple, list)):
        return len(x) == len(y) and all(values_equal(a, b) for a, b in zip(x, y, strict=False))
    if isinstance(x, dict):
        return len(x) == len(y) and all(
            values_equal(ka, kb) and values_equal(va, vb)
            for (ka, va), (kb, vb) in zip(x.items(), y.items(), strict=False))
    if isinstance(x, (TensorType, TileType)):
        return x == y and values_equal(tuple(x.shape), tuple(y.shape))
    return x == y


class _Wiring:
    """Names values in definition order, like the printer, to compare two kernels' wiring."""

    def __init__(self) -> None:
        self.a: dict[Value, int] = {}
        self.b: dict[Value, int] = {}
        self.n = 0

    def define(self, va: Value, vb: Value) -> bool:
        self.a[va] = self.b[vb] = self.n
        self.n += 1
        return values_equal(va.type, vb.type)

    def same(self, va: Value, vb: Value) -> bool:
        na, nb = self.a.get(va), self.b.get(vb)
        return na is not None and na == nb or (na is nb is None and va is vb)


def _ops_equal(a: Op, b: Op, w: _Wiring) -> bool:
    if (a.opdef is not b.opdef or len(a.operands) != len(b.operands)
            or len(a.results) != len(b.results) or len(a.regions) != len(b.regions)
            or a.loc != b.loc or len(a.attrs) != len(b.attrs)):
        return False
    if not all(w.same(x, y) for x, y in zip(a.operands, b.operands, strict=False)):
        return False
    if any(k not in b.attrs or not values_equal(v, b.attrs[k]) for k, v in a.attrs.items()):
        return False
    if not all([w.define(x, y) for x, y in zip(a.results, b.results, strict=False)]):
        return False
    return all(_blocks_equal(x, y, w) for x, y in zip(a.regions, b.regions, strict=False))


def _blocks_equal(a: Block, b: Block, w: _Wiring) -> bool:
    if len(a.args) != len(b.args) or len(a.ops) != len(b.ops):
        return False
    if not all([w.define(x, y) for x, y in zip(a.args, b.args, strict=False)]):
        return False
    return all(_ops_equal(x, y, w) for x, y in zip(a.ops, b.ops, strict=False))


def kernels_equal(a: Kernel, b: Kernel) -> bool:
    """Structural equality: name, params, attrs, and every op (opdef, attrs, result types,
    loc, regions) with operands wired to the same definitions."""
    if a.name != b.name or len(a.params) != len(b.params) or len(a.attrs) != len(b.attrs):
        return False
    if any(k not in b.attrs or not values_equal(v, b.attrs[k]) for k, v in a.attrs.items()):
        return False
    w = _Wiring()
    for pa, pb in zip(a.params, b.params, strict=False):
        if pa.name != pb.name or pa.role is not pb.role or not w.define(pa.value, pb.value):
            return False
    return _blocks_equal(a.body, b.body, w)
