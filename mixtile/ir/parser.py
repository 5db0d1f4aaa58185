"""Reads the text of `mixtile.ir.printer` back into a Kernel (see printer.py for the format).

A tokenizer (one compiled master regex) and a recursive-descent parser. Ops are rebuilt
with their printed result types (no shape rule is re-run), so IR of any pass stage parses.
Every error is a ParseError naming line:col, what was expected and what was found.
"""
from __future__ import annotations

import json
import re
import struct
from typing import Any

import numpy as np

import mixtile.ir.ops  # noqa: F401  (declares every op)
from mixtile.errors import UNKNOWN_LOC, Loc, ParseError
from mixtile.ir.core import Block, Kernel, Op, Param, Value
from mixtile.ir.printer import ENUM_CLASSES, ENUM_MEMBERS, IDENT_RE, NP_SCALARS, quote
from mixtile.ir.registry import OPS
from mixtile.ir.types import INDEX, DType, MemSpace, Role, ScalarType, TensorType, TileType

_S = r'"(?:[^"\\]|\\.)*"'
# One token per match (after blanks): a type, a string (maybe a %/@ name), a name or word, a
# number, a comment, or any other single character. Kinds come from the first character.
_TOKEN = re.compile(rf"""[ \t\r]*(
    (?:tensor|tile)<(?:[^<>"]|{_S})*>
  | [%@]?{_S}
  | -?\d+(?:\.\d*)?(?:[eE][+-]?\d+)? | -inf(?![A-Za-z0-9_])
  | [%@]?[A-Za-z0-9_]+
  | //.*
  | .)""", re.X)  # matched line by line; trailing blanks of a line match nothing
_FIRST = dict.fromkeys("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_", "ID")
_FIRST.update(dict.fromkeys("0123456789-", "NUM"))
_FIRST.update({"%": "VAL", "@": "SYM", '"': "STR", **{c: c for c in "{}()[],:=^.<>"}})
_DIM = re.compile(rf"(-?\d+)|([A-Za-wyz_][A-Za-wyz0-9_]*)|({_S})")
_TILE = re.compile(r"tile<((?:\d+x)*)([A-Za-z0-9_]+), ([A-Za-z0-9_]+)>\Z")
_DTYPES = {d.short: d for d in DType}
_ROLES = {r.value: r for r in Role}
_SPACES = {s.value: s for s in MemSpace}
_CONSTS = {"true": True, "false": False, "none": None, "inf": float("inf"),
           "nan": float("nan")}


def _decode(s: str) -> str:
    try:
        return json.loads(s)
    except ValueError:
        raise ValueError(f"bad string literal {s}") from None


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        kinds: list[str] = []
        vals: list[str] = []
        nls: list[bool] = []
        self.kinds, self.vals, self.nls = kinds, vals, nls
        for line in text.split("\n"):
            toks = _TOKEN.findall(line)
            if "//" in line:
                toks = [t for t in toks if not t.startswith("//")]
            if not toks:
                continue
            nls.append(True)
            nls.extend([False] * (len(toks) - 1))
            vals.extend(toks)
            for t in toks:
                k = _FIRST.get(t[0], "ERR")
                if k == "ID":
                    if t[-1] == ">":
                        k = "TYPE"
                elif k == "NUM":
                    k = "INT" if t.isdigit() or t[1:].isdigit() else "ERR" if t == "-" else "FLOAT"
                elif len(t) == 1 and k in ("VAL", "SYM", "STR"):
                    k = "ERR"
                kinds.append(k)
                if k == "ERR":
                    what = "an unterminated string" if t[-1] == '"' else repr(t)
                    raise self.error(f"unexpected character: {what}", len(kinds) - 1)
        kinds.append("EOF")
        vals.append("")
        nls.append(True)
        self.scope: dict[str, Value] = {}
        self.defined: list[str] = []

    def start(self, i: int) -> int:
        """The offset of token i in the text (recomputed: only errors need it)."""
        pos, n = 0, 0
        for line in self.text.split("\n"):
            for m in _TOKEN.finditer(line):
                if not m.group(1).startswith("//"):
                    if n == i:
                        return pos + m.start(1)
                    n += 1
            pos += len(line) + 1
        return len(self.text)

    # ------------------------------------------------------------ tokens

    def error(self, msg: str, i: int | None = None) -> ParseError:
        pos = self.start(self.i if i is None else i)
        text = self.text
        bol = text.rfind("\n", 0, pos) + 1
        eol = text.find("\n", pos)
        line, col = text.count("\n", 0, pos) + 1, pos - bol + 1
        src = text[bol:eol if eol >= 0 else len(text)]
        e = ParseError(f"{line}:{col}: {msg}", where=f"{src}\n{' ' * (col + 5)}^")
        e.line, e.col = line, col
        return e

    def got(self, i: int | None = None) -> str:
        i = self.i if i is None else i
        if self.kinds[i] == "EOF":
            return "end of input"
        v = self.vals[i]
        return repr(v if len(v) <= 40 else v[:37] + "...")

    def expect(self, kind: str, what: str | None = None) -> str:
        if self.kinds[self.i] != kind:
            raise self.error(f"expected {what or repr(kind)}, got {self.got()}")
        self.i += 1
        return self.vals[self.i - 1]

    def accept(self, kind: str) -> bool:
        if self.kinds[self.i] == kind:
            self.i += 1
            return True
        return False

    def same_line(self, kind: str) -> bool:
        return self.kinds[self.i] == kind and not self.nls[self.i]

    # ------------------------------------------------------------ values (SSA)

    @staticmethod
    def key(tok: str) -> str:
        if tok[1] != '"':
            return tok
        name = _decode(tok[1:])
        return "%" + (name if IDENT_RE.match(name) else quote(name))

    def define(self, i: int, v: Value) -> None:
        key = self.key(self.vals[i])
        if key in self.scope:
            raise self.error(f"value {key} is defined twice", i)
        self.scope[key] = v
        self.defined.append(key)

    def use(self) -> Value:
        key = self.key(self.expect("VAL", "a value (%name)"))
        v = self.scope.get(key)
        if v is None:
            raise self.error(f"use of undefined value {key}", self.i - 1)
        return v

    # ------------------------------------------------------------ types

    def type(self) -> Any:
        k, v = self.kinds[self.i], self.vals[self.i]
        if k == "TYPE":
            t = _tile(v) if v.startswith("tile") else _tensor(v)
            if t is None:
                raise self.error(f"bad type {self.got()}: expected tensor<DIMSxDTYPE> "
                                 "(dims: ints or names) or tile<DIMSxDTYPE, SPACE>")
            self.i += 1
            return t
        if k == "ID" and (v == "index" or v in _DTYPES):
            self.i += 1
            return INDEX if v == "index" else ScalarType(_DTYPES[v])
        if v in ("tensor", "tile") and self.kinds[self.i + 1] == "<":
            raise self.error(f"bad type: {v}<... has no closing '>'")
        raise self.error(f"expected a type (index, a dtype such as f32, tensor<...>, tile<...>), "
                         f"got {self.got()}")

    # ------------------------------------------------------------ attr values

    def value(self) -> Any:
        k, v = self.kinds[self.i], self.vals[self.i]
        if k == "INT":
            self.i += 1
            return int(v)
        if k == "FLOAT":
            self.i += 1
            return float(v)
        if k == "STR":
            self.i += 1
            return _decode(v)
        if k == "TYPE":
            return self.type()
        if k == "ID":
            return self.ident_value(v)
        if k in "([":
            self.i += 1
            close = ")" if k == "(" else "]"
            items = []
            while not self.accept(close):
                items.append(self.value())
                if not self.accept(","):
                    self.expect(close, f"',' or {close!r}")
                    break
            return tuple(items) if k == "(" else items
        if k == "{":
            self.i += 1
            d: dict[Any, Any] = {}
            while not self.accept("}"):
                ki = self.i
                key = self.value()
                self.expect(":", "':' after a dict key")
                try:
                    d[key] = self.value()
                except TypeError:
                    raise self.error(f"unhashable dict key {self.got(ki)}", ki) from None
                if not self.accept(","):
                    self.expect("}", "',' or '}'")
                    break
            return d
        raise self.error(f"expected an attribute value, got {self.got()}")

    def ident_value(self, v: str) -> Any:
        i0 = self.i
        self.i += 1
        if v in _CONSTS:
            if v == "nan" and self.accept("("):
                bits = int(self.expect("INT", "the bits of a NaN"))
                self.expect(")")
                return struct.unpack("<d", struct.pack("<Q", bits))[0]
            return _CONSTS[v]
        if v == "index" or v in _DTYPES:
            self.i = i0
            return self.type()
        if v == "opaque":
            raise self.error("this value was printed from an object of a type the printer "
                             "does not know; it cannot be parsed back", i0)
        if not self.accept("."):
            raise self.error(f"expected an attribute value, got {self.got(i0)}", i0)
        mi = self.i
        member = self.vals[mi]
        if self.kinds[mi] not in ("ID", "INT"):
            raise self.error(f"expected a member name after '{v}.', got {self.got()}")
        self.i += 1
        if v == "np":
            cls = NP_SCALARS.get(member)
            if cls is None:
                raise self.error(f"unknown numpy scalar type np.{member}", mi)
            self.expect("(", "'(' after a numpy scalar type")
            if self.kinds[self.i] == "ID" and self.vals[self.i] == "bits":
                self.i += 1
                self.expect("(")
                raw = int(self.expect("INT", "the bits of the value"))
                self.expect(")")
                self.expect(")")
                size = np.dtype(cls).itemsize
                return np.frombuffer(raw.to_bytes(size, "little"), dtype=cls)[0]
            lit = self.value()
            self.expect(")")
            if type(lit) not in (int, float, bool):
                raise self.error(f"np.{member}(...) needs a number", mi)
            return cls(lit)
        if v not in ENUM_CLASSES:
            raise self.error(f"unknown enum class {v!r} (known: {', '.join(ENUM_CLASSES)})", i0)
        m = ENUM_MEMBERS.get((v, member))
        if m is None:
            raise self.error(f"{v} has no member {member!r}", mi)
        return m

    def attr_dict(self) -> dict[str, Any]:
        self.expect("{")
        d: dict[str, Any] = {}
        while not self.accept("}"):
            ki = self.i
            if self.kinds[ki] == "ID":
                key = self.vals[ki]
            elif self.kinds[ki] == "STR":
                key = _decode(self.vals[ki])
            else:
                raise self.error(f"expected an attribute name, got {self.got()}")
            self.i += 1
            self.expect("=", "'=' after an attribute name")
            if key in d:
                raise self.error(f"attribute {key!r} given twice", ki)
            d[key] = self.value()
            if not self.accept(","):
                self.expect("}", "',' or '}'")
                break
        return d

    def is_attr_dict(self) -> bool:
        k = self.kinds
        i = self.i
        return k[i] == "{" and k[i + 1] in ("ID", "STR") and k[i + 2] == "="

    # ------------------------------------------------------------ ops and blocks

    def block_args(self) -> Block:
        self.expect("^", "'^(' starting a region's block arguments")
        self.expect("(")
        idx, types = [], []
        while not self.accept(")"):
            idx.append(self.i)
            self.expect("VAL", "a block argument (%name)")
            self.expect(":", "':' and the argument's type")
            types.append(self.type())
            if not self.accept(","):
                self.expect(")", "',' or ')'")
                break
        self.expect(":", "':' after the block arguments")
        blk = Block(types)
        for i, a in zip(idx, blk.args, strict=False):
            self.define(i, a)
        return blk

    def ops(self, blk: Block) -> None:
        while self.kinds[self.i] != "}":
            if self.kinds[self.i] == "EOF":
                raise self.error("expected '}' closing the block, got end of input")
            if not self.nls[self.i]:
                raise self.error(f"expected a new line before the next op, got {self.got()}")
            blk.append(self.op())

    def region(self) -> Block:
        self.expect("{")
        mark = len(self.defined)
        blk = self.block_args()
        self.ops(blk)
        self.expect("}")
        for key in self.defined[mark:]:
            del self.scope[key]
        del self.defined[mark:]
        return blk

    def op(self) -> Op:
        names: list[int] = []
        if self.kinds[self.i] == "VAL":
            names.append(self.i)
            self.i += 1
            while self.accept(","):
                names.append(self.i)
                self.expect("VAL", "a result name (%name)")
            self.expect("=", "'=' after the result names")
        ni = self.i
        name = self.expect("ID", "an op name")
        opdef = OPS.get(name)
        if opdef is None:
            raise self.error(f"unknown op {name!r}", ni)
        operands = []
        if self.same_line("VAL"):
            operands.append(self.use())
            while self.accept(","):
                operands.append(self.use())
        attrs = {}
        if self.same_line("{") and self.kinds[self.i + 1] != "^":
            attrs = self.attr_dict()
        regions = []
        while self.same_line("{"):
            regions.append(self.region())
        types = []
        if self.same_line(":"):
            self.i += 1
            types.append(self.type())
            while self.accept(","):
                types.append(self.type())
        loc = UNKNOWN_LOC
        if self.same_line("ID") and self.vals[self.i] == "loc":
            self.i += 1
            self.expect("(", "'(' after loc")
            file = _decode(self.expect("STR", "a quoted file name"))
            self.expect(":", "':' and a line number")
            loc = Loc(file, int(self.expect("INT", "a line number")))
            self.expect(")")
        if not self.nls[self.i]:
            raise self.error(f"expected the end of the {name} op's line, got {self.got()}")
        if len(types) != len(names):
            raise self.error(f"{name}: {len(names)} result names but {len(types)} result "
                             "types", ni)
        op = Op(opdef, operands, types, attrs, regions, loc)
        for i, r in zip(names, op.results, strict=False):
            self.define(i, r)
        return op

    def kernel(self) -> Kernel:
        kw = self.expect("ID", "'kernel'")
        if kw != "kernel":
            raise self.error(f"expected 'kernel', got {kw!r}", self.i - 1)
        sym = self.expect("SYM", "the kernel name (@name)")[1:]
        name = _decode(sym) if sym.startswith('"') else sym
        self.expect("(", "'(' opening the parameter list")
        params = []
        while not self.accept(")"):
            pi = self.i
            tok = self.expect("VAL", "a parameter (%name: type role)")
            pname = _decode(tok[1:]) if tok[1] == '"' else tok[1:]
            self.expect(":", "':' and the parameter's type")
            t = self.type()
            ri = self.i
            role = _ROLES.get(self.expect("ID", "a role (in, out, inout, scratch)"))
            if role is None:
                raise self.error(f"expected a role (in, out, inout, scratch), got {self.got(ri)}",
                                 ri)
            v = Value(t, None, 0, pname)
            self.define(pi, v)
            params.append(Param(pname, v, role))
            if not self.accept(","):
                self.expect(")", "',' or ')'")
                break
        attrs = self.attr_dict() if self.is_attr_dict() else {}
        self.expect("{", "'{' opening the kernel body")
        body = self.block_args() if self.kinds[self.i] == "^" else Block()
        self.ops(body)
        self.expect("}")
        return Kernel(name, params, body, attrs)


def _tile(text: str) -> TileType | None:
    m = _TILE.match(text)
    if m is None or m.group(2) not in _DTYPES or m.group(3) not in _SPACES:
        return None
    dims = tuple(int(d) for d in m.group(1).split("x")[:-1])
    return TileType(_DTYPES[m.group(2)], dims, _SPACES[m.group(3)])


def _tensor(text: str) -> TensorType | None:
    body = text[7:-1]
    pos, items = 0, []
    while True:
        m = _DIM.match(body, pos)
        if m is None:
            return None
        items.append(m)
        pos = m.end()
        if pos == len(body):
            break
        if body[pos] != "x":
            return None
        pos += 1
    last = items.pop()
    if last.group(2) not in _DTYPES:
        return None
    dims = tuple(int(m.group(1)) if m.group(1) else m.group(2) or _decode(m.group(3))
                 for m in items)
    return TensorType(_DTYPES[last.group(2)], dims)


def parse_type(text: str) -> Any:
    """One type from its text (`index`, `f32`, `tensor<...>`, `tile<...>`)."""
    return _run(text, lambda p: p.type())


def parse_value(text: str) -> Any:
    """One attr value from its text, as `print_value` writes it."""
    return _run(text, lambda p: p.value())


def parse_kernel(text: str) -> Kernel:
    """Rebuild a kernel from `print_kernel`'s text; raises ParseError (line:col) if bad."""
    return _run(text, lambda p: p.kernel())


def _run(text: str, fn) -> Any:
    if not isinstance(text, str):
        raise ParseError(f"expected IR text (a str), got {type(text).__name__}")
    p = None
    try:
        p = _Parser(text)
        out = fn(p)
        if p.kinds[p.i] != "EOF":
            raise p.error(f"expected end of input, got {p.got()}")
        return out
    except ParseError:
        raise
    except RecursionError:
        raise ParseError("IR text nested too deeply") from None
    except Exception as e:  # never leak a raw Python error
        if p is None or not hasattr(p, "vals"):
            raise ParseError(f"cannot tokenize IR text ({type(e).__name__}: {e})") from None
        raise p.error(f"{type(e).__name__}: {e}", min(p.i, len(p.kinds) - 1)) from None
