"""The textual IR: print_kernel / parse_kernel round-trip exactly; errors name line:col."""
from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixtile.errors import UNKNOWN_LOC, Loc, MixtileError, ParseError
from mixtile.ir.builder import make_op
from mixtile.ir.core import Block, Kernel, Op, Param, Value
from mixtile.ir.parser import parse_kernel, parse_type, parse_value
from mixtile.ir.printer import (
    ENUM_CLASSES,
    kernels_equal,
    print_kernel,
    print_op,
    print_type,
    print_value,
    values_equal,
)
from mixtile.ir.registry import OPS
from mixtile.ir.types import (
    INDEX,
    AtomicKind,
    CoreType,
    DType,
    MemSpace,
    ReduceKind,
    Role,
    ScalarType,
    TensorType,
    TileType,
)

F32, BF16 = DType.F32, DType.BF16


def roundtrip(k: Kernel, locs: bool = True) -> Kernel:
    text = print_kernel(k, locs)
    k2 = parse_kernel(text)
    assert print_kernel(k2, locs) == text
    if locs:
        assert kernels_equal(k, k2)
    return k2


def tensor(name: str, dtype: DType, *shape, role: Role = Role.IN) -> Param:
    return Param(name, Value(TensorType(dtype, tuple(shape)), hint=name), role)


class B:
    """A tiny builder: appends ops made through the registry to the current block."""

    def __init__(self, blk: Block, file: str = "/src/k.py") -> None:
        self.blk, self.file, self.line = blk, file, 10

    def __call__(self, name: str, *operands, regions=None, **attrs) -> Op:
        self.line += 1
        op = make_op(OPS[name], list(operands), attrs, regions, Loc(self.file, self.line))
        return self.blk.append(op)

    def v(self, name: str, *operands, **attrs) -> Value:
        return self(name, *operands, **attrs).result


def gemm_kernel(file: str = "/src/gemm.py") -> Kernel:
    a, b = tensor("a", BF16, "M", "K"), tensor("b", BF16, "K", "N")
    c = tensor("c", F32, "M", "N", role=Role.OUT)
    bias = tensor("bias", F32, "N")
    scale = Param("scale", Value(ScalarType(F32), hint="scale"))
    body = Block()
    o = B(body, file)
    m, n, kk = (o.v("dim", p.value, axis=i) for p, i in ((a, 0), (b, 1), (a, 1)))
    t = o.v("const", dtype=DType.I64, value=128)
    tm = o.v("sfloordiv", o.v("sadd", m, o.v("const", dtype=DType.I64, value=127)), t)
    tn = o.v("smax", o.v("sfloordiv", n, t), o.v("const", dtype=DType.I64, value=1))
    grid = o.v("smul", tm, tn)
    launch = Block([INDEX])
    o("spmd", grid, regions=[launch])
    i = B(launch, file)
    blk = launch.args[0]
    row, col = i.v("smul", i.v("sfloordiv", blk, tn), t), i.v("smul", i.v("smod", blk, tn), t)
    zero, step = i.v("const", dtype=DType.I64, value=0), i.v("const", dtype=DType.I64, value=64)
    acc0 = i.v("full", shape=(128, 128), dtype=F32, value=0.0, space=MemSpace.L0C)
    cnt0 = i.v("const", dtype=F32, value=0.0)
    loop = Block([INDEX, acc0.type, cnt0.type])
    i("for", zero, kk, step, acc0, cnt0, regions=[loop])
    f = B(loop, file)
    kv, acc, cnt = loop.args
    ta = f.v("load", a.value, row, kv, sizes=(128, 64), keep=(True, True), pad=0.0,
             space=MemSpace.L1)
    tb = f.v("load", b.value, kv, col, sizes=(64, 128), keep=(True, True), pad=0.0,
             space=MemSpace.L1)
    la, lb = f.v("move", ta, space=MemSpace.L0A), f.v("move", tb, space=MemSpace.L0B)
    acc2 = f.v("matmul", la, lb, acc, a_trans=False, b_trans=False)
    cnt2 = f.v("sadd", cnt, f.v("const", dtype=F32, value=1.0))
    f("yield", acc2, cnt2)
    res_acc = launch.ops[-1].results[0]
    bt = i.v("load", bias.value, col, sizes=(128,), keep=(True,), pad=0.0, space=MemSpace.L1)
    bt = i.v("move", bt, space=MemSpace.BT)
    i("fixpipe", c.value, res_acc, bt, row, col, sizes=(128, 128), keep=(True, True),
      has_bias=True, relu=True, dtype=F32, atomic=AtomicKind.NONE)
    ub = i.v("move", res_acc, space=MemSpace.UB)
    e = i.v("exp", i.v("mul", ub, i.v("full", shape=(1, 128), dtype=F32, value=-math.inf)))
    red = i.v("reduce", e, axis=1, kind=ReduceKind.SUM)
    s = i.v("load_scalar", bias.value, col)
    i("store", c.value, i.v("broadcast", red, shape=(128, 128)), row, col, sizes=(128, 128),
      keep=(True, True), atomic=AtomicKind.ADD)
    i.v("sadd", s, scale.value)
    return Kernel("gemm", [a, b, c, bias, scale], body,
                  {"core": CoreType.AIC, "spaces": True, "target": "A2",
                   "plan": {MemSpace.L1: 1024, MemSpace.UB: 0}})


def test_gemm_roundtrip():
    k = gemm_kernel()
    text = print_kernel(k)
    assert text.startswith("kernel @gemm(%a: tensor<MxKxbf16> in, %b: tensor<KxNxbf16> in, ")
    assert "%scale: f32 in) {core = CoreType.aic, plan = {MemSpace.L1: 1024" in text
    assert '%0 = dim %a {axis = 0} : index loc("/src/gemm.py":11)' in text
    assert "  spmd %" in text and "\n  ^(%" in text and "\n    ^(%" in text
    assert ", space = MemSpace.L1} : tile<128x64xbf16, L1> loc(" in text
    assert "value = -inf" in text and "} : tile<128x128xf32, L0C>, f32 loc(" in text
    k2 = roundtrip(k)
    assert [p.role for p in k2.params] == [Role.IN] * 2 + [Role.OUT, Role.IN, Role.IN]
    assert k2.params[0].value.hint == "a" and k2.params[0].value.owner is None
    # wiring: the for's result feeds the fixpipe; the loop's carried args feed matmul/yield
    spmd = k2.body.ops[-1]
    loop = next(op for op in spmd.regions[0].ops if op.name == "for")
    fix = next(op for op in spmd.regions[0].ops if op.name == "fixpipe")
    assert fix.operands[1] is loop.results[0] and fix.operands[0] is k2.params[2].value
    body = loop.regions[0]
    assert body.ops[-1].operands[0] is body.ops[-4].results[0]
    assert body.ops[-4].operands[2] is body.args[1]
    assert all(op.parent is body for op in body.ops) and loop.parent is spmd.regions[0]
    assert spmd.regions[0].parent is spmd
    # locs off: no loc text, everything else intact
    assert "loc(" not in print_kernel(k, locs=False)
    k3 = roundtrip(k, locs=False)
    assert all(op.loc == UNKNOWN_LOC for op in k3.walk())


def test_kernels_equal_detects_differences():
    k, k2 = gemm_kernel(), gemm_kernel()
    assert kernels_equal(k, k2)
    assert not kernels_equal(k, gemm_kernel(file="/other.py"))
    spmd = k2.body.ops[-1]
    loop = next(op for op in spmd.regions[0].ops if op.name == "for")
    mm = loop.regions[0].ops[-4]
    mm.operands[0], mm.operands[1] = mm.operands[1], mm.operands[0]  # rewired
    assert not kernels_equal(k, k2)
    k3 = gemm_kernel()
    k3.body.ops[0].attrs["axis"] = 0.0  # same value, other type
    assert not kernels_equal(k, k3)
    k4 = gemm_kernel()
    k4.attrs["plan"] = {MemSpace.L1: 1024, MemSpace.UB: 1}
    assert not kernels_equal(k, k4)


def test_every_attr_value_kind():
    vals = {
        "i": 3, "neg": -(2 ** 70), "f": 0.1, "nz": -0.0, "tiny": 5e-324, "big": 1e300,
        "inf": math.inf, "ninf": -math.inf, "nan": math.nan, "nan2": -math.nan,
        "t": True, "fa": False, "none": None, "s": 'a "q" \\ \n\t é \x00 \u2028',
        "empty": "", "tup": (1, 2.5, "x"), "one": (1,), "unit": (), "lst": [1, [2, (3,)]],
        "elst": [], "enums": tuple(m for c in ENUM_CLASSES.values() for m in c),
        "d": {MemSpace.L1: 1024, "k": [1], 3: None, (1, 2): {}}, "ed": {},
        "types": (INDEX, ScalarType(DType.BOOL), TensorType(F32, ("M", 3)),
                  TileType(BF16, (2, 3), MemSpace.L0A)),
        "np": (np.float32(1.5), np.int8(-3), np.bool_(True), np.float64(0.1),
               ml_dtypes.bfloat16(-2.5), np.uint64(2 ** 63), np.float16(np.nan)),
        "odd key": 1, "0": 2, "kernel": 3, "loc": 4,
    }
    body = Block()
    body.append(Op(OPS["const"], [], [INDEX], dict(vals), loc=Loc("f", 1)))
    k = Kernel("all attrs", [tensor("x", F32, 4)], body, dict(vals))
    k2 = roundtrip(k)
    got = k2.body.ops[0].attrs
    assert type(got["tup"]) is tuple and type(got["lst"]) is list
    assert type(got["lst"][1][1]) is tuple and got["one"] == (1,)
    assert math.copysign(1.0, got["nz"]) == -1.0 and math.isnan(got["nan"])
    assert got["enums"] == vals["enums"] and got["d"] == vals["d"]
    assert type(got["np"][0]) is np.float32 and type(got["np"][4]) is ml_dtypes.bfloat16
    assert k2.name == "all attrs" and k2.attrs["none"] is None


def test_every_dtype_and_dims():
    params, body = [], Block()
    for i, d in enumerate(DType):
        params.append(tensor(f"t{i}", d, "M", 7, "x", "max_len", "f32", "N 2", "3", ""))
        params.append(Param(f"s{i}", Value(ScalarType(d)), Role.INOUT))
        params.append(tensor(f"z{i}", d, role=Role.SCRATCH))
        for sp in MemSpace:
            body.append(Op(OPS["full"], [], [TileType(d, (2, 3), sp), TileType(d, (), sp)],
                           {"dtype": d}))
    k = roundtrip(Kernel("dt", params, body))
    text = print_kernel(k)
    assert 'tensor<Mx7x"x"x"max_len"xf32x"N 2"x"3"x""xbool>' in text
    assert "%s0: f32 inout" in text and "%s7: index inout" in text and "%z8: tensor<bool>" in text
    assert k.params[0].value.type.shape == ("M", 7, "x", "max_len", "f32", "N 2", "3", "")
    for t in ("index", "bf16", "tensor<f32>", 'tensor<"a>b"x3xi8>', "tile<128x64xbf16, L1>",
              "tile<f8e4m3, ANY>"):
        assert print_type(parse_type(t)) == t


@pytest.mark.parametrize("file", ["/a b/c.py", 'q"uote.py', "back\\slash", "new\nline",
                                  "<unknown>", "", "é😀.py", ")}:"])
def test_odd_locs(file):
    body = Block()
    B(body, file).v("const", dtype=F32, value=1.0)
    body.append(Op(OPS["const"], [], [INDEX], {"dtype": DType.I64, "value": 0},
                   loc=Loc(file, -3)))
    k2 = roundtrip(Kernel("k", [], body))
    assert k2.body.ops[0].loc == Loc(file, 11) and k2.body.ops[1].loc == Loc(file, -3)


def test_param_names_escaped():
    names = ["0", "x y", "undef0", 'q"', "ok_1", "%", "é"]
    params = [Param(n, Value(INDEX)) for n in names]
    body = Block()
    for p in params:
        body.append(make_op(OPS["sadd"], [p.value, params[0].value]))
    k2 = roundtrip(Kernel("p", params, body))
    assert [p.name for p in k2.params] == names
    assert '%"0": index in' in print_kernel(k2)
    with pytest.raises(MixtileError, match="two parameters"):
        print_kernel(Kernel("dup", [Param("a", Value(INDEX)), Param("a", Value(INDEX))],
                            Block()))


def test_body_args_multiple_regions_comments_and_invalid_ir():
    body = Block([INDEX, TileType(F32, (2,), MemSpace.UB)])
    r1, r2 = Block(), Block([INDEX])
    op = body.append(Op(OPS["spmd"], [body.args[0]], [INDEX, INDEX], {"x": 1}, [r1, r2]))
    r1.append(Op(OPS["yield"], [body.args[1]], []))
    r2.append(Op(OPS["yield"], [r2.args[0]], []))
    k = Kernel("k", [], body)
    text = print_kernel(k)
    assert "\n^(%0: index, %1: tile<2xf32, UB>):\n" in text and "  } {\n  ^(%4: index):" in text
    roundtrip(k)
    noisy = text.replace("\n", "  // note %0 \"x\r\n").replace("  ", "\t")
    assert print_kernel(parse_kernel(noisy)) == text
    body.append(Op(OPS["sadd"], [Value(INDEX), op.results[1]], [INDEX]))  # a stray operand
    with pytest.raises(ParseError, match="undefined value %undef0"):
        parse_kernel(print_kernel(k))


def _instance(name: str) -> Op:
    """One op of this kind: through make_op with the first operand list its rule accepts."""
    tile, l0c = TileType(F32, (16, 16), MemSpace.UB), TileType(F32, (16, 16), MemSpace.L0C)
    l0a, l0b = TileType(BF16, (16, 16), MemSpace.L0A), TileType(BF16, (16, 16), MemSpace.L0B)
    btile, ten, f32 = TileType(DType.BOOL, (16, 16)), TensorType(F32, ("M", 16)), ScalarType(F32)
    sigs = [[], [tile], [tile, tile], [btile, tile, tile], [INDEX, INDEX], [f32],
            [ScalarType(DType.BOOL), INDEX, INDEX], [ten], [ten, INDEX, INDEX],
            [ten, tile, INDEX, INDEX], [ten, l0c, INDEX, INDEX], [l0a, l0b], [l0a, l0b, l0c],
            [INDEX], [INDEX, INDEX, INDEX, tile, INDEX], [INDEX, INDEX, INDEX]]
    attrs = {"axis": 0, "kind": ReduceKind.MAX, "dtype": F32, "shape": (16, 16), "n": 16,
             "space": MemSpace.UB, "value": 0.0, "sizes": (16, 16), "keep": (True, True),
             "pad": 0.0, "atomic": AtomicKind.NONE, "has_bias": False, "relu": False}
    opdef = OPS[name]
    for sig in sigs:
        operands = [Value(t, hint=f"p{i}") for i, t in enumerate(sig)]
        try:
            results = opdef.infer(sig, attrs)
        except (MixtileError, TypeError, ValueError, KeyError, IndexError, AttributeError):
            continue
        regions = []
        for _ in range(opdef.n_regions):
            blk = Block([INDEX, *results])
            blk.append(make_op(OPS["yield"], blk.args[1:]))
            regions.append(blk)
        return make_op(opdef, operands, attrs, regions, Loc("ops.py", 1))
    return Op(opdef, [Value(INDEX, hint="p0")], [INDEX], attrs,  # a generic stand-in
              [Block([INDEX]) for _ in range(opdef.n_regions)], Loc("ops.py", 1))


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_roundtrips(name):
    op = _instance(name)
    params = [Param(v.hint, v) for v in op.operands]
    body = Block()
    body.append(op)
    k2 = roundtrip(Kernel(name, params, body))
    assert k2.body.ops[0].opdef is OPS[name]
    assert name in print_op(op)


def test_print_op():
    k = gemm_kernel()
    text = print_op(k.body.ops[0])
    assert text == '%0 = dim %a {axis = 0} : index loc("/src/gemm.py":11)'
    loop = next(op for op in k.body.ops[-1].regions[0].ops if op.name == "for")
    assert print_op(loop).startswith("%0, %1 = for %v0, %v1, %v2, %v3, %v4 {...} : tile<")
    assert "yield" in print_op(loop, regions=True)


@pytest.mark.parametrize("text, line, what", [
    ("kernel @k() {\n  %0 = bogus : index\n}\n", 2, "unknown op 'bogus'"),
    ("kernel @k() {\n  %0 = sadd %9, %9 : index\n}\n", 2, "undefined value %9"),
    ("kernel @k(%x: tensor<3xf99> in) {\n}\n", 1, "bad type"),
    ("kernel @k() {\n\n  %0 = const {dtype = DType.i64} : blob\n}\n", 3, "expected a type"),
    ("kernel @k() {\n  %0 = const {value = 1, value = 2} : index\n}", 2, "given twice"),
    ("kernel @k() {\n  %0 = const {dtype = DType.q} : index\n}", 2, "has no member"),
    ("kernel @k() {\n  %0 = const {dtype = Foo.q} : index\n}", 2, "unknown enum class"),
    ("kernel @k() {\n  %0 = const : index\n  %0 = const : index\n}", 3, "defined twice"),
    ("kernel @k() {\n  %0, %1 = const : index\n}", 2, "2 result names but 1"),
    ("kernel @k() {\n  %0 = const : index\n", 3, "expected '}'"),
    ("kernel @k(%x: index bad) {\n}", 1, "expected a role"),
    ("kernel @k() {\n  %0 = const $\n}", 2, "unexpected character"),
    ("kernel @k() {\n  %0 = const {v = \"\\q\"} : index\n}", 2, "bad string"),
    ("kernel @k() {\n  %0 = const {v = np.int8(300)} : index\n}", 2, "300"),
    ("kernel @k() {\n  %0 = const {v = opaque(\"x\")} : index\n}", 2, "cannot be parsed"),
    ("kernel @k() {\n  %0 = const : index loc(\"f\":)\n}", 2, "a line number"),
    ("kernel @k() {\n  spmd %1 {\n  ^(%1: index):\n  }\n  %2 = sadd %1, %1 : index\n}",
     2, "undefined value %1"),
    ("kernel @k() {\n  %0 = const : index\n  spmd %0 {\n  ^(%1: index):\n  }\n"
     "  %2 = sadd %1, %1 : index\n}", 6, "undefined value %1"),
    ("kernel @k() {\n}\nkernel", 3, "expected end of input"),
    ("", 1, "expected 'kernel'"),
])
def test_parse_errors(text, line, what):
    with pytest.raises(ParseError) as ei:
        parse_kernel(text)
    msg = str(ei.value)
    assert msg.startswith(f"{line}:") and what in msg, msg
    assert ei.value.line == line


def test_parse_error_never_raw():
    text = print_kernel(gemm_kernel())
    for cut in range(0, len(text), 7):
        try:
            parse_kernel(text[:cut])
        except ParseError:
            pass
    with pytest.raises(ParseError):
        parse_value("(" * 100000)
    with pytest.raises(ParseError):
        parse_kernel(None)  # type: ignore[arg-type]


def test_large_kernel_round_trips():
    k = gemm_kernel()
    loop = next(op for op in k.body.ops[-1].regions[0].ops if op.name == "for")
    blk = loop.regions[0]
    for _ in range(40):  # ~200 more ops inside the loop
        for op in list(blk.ops[:5]):
            blk.ops.insert(len(blk.ops) - 1, Op(op.opdef, op.operands,
                                                [r.type for r in op.results], op.attrs,
                                                loc=op.loc))
    assert sum(1 for _ in k.walk()) > 200
    text = print_kernel(k)
    assert print_kernel(parse_kernel(text)) == text


# ---------------------------------------------------------------- properties

dtypes = st.sampled_from(list(DType))
names = st.text(max_size=8)
dims = st.one_of(st.integers(0, 2 ** 40), names)
types = st.one_of(
    dtypes.map(ScalarType),
    st.builds(TensorType, dtypes, st.lists(dims, max_size=4).map(tuple)),
    st.builds(TileType, dtypes, st.lists(st.integers(0, 4096), max_size=4).map(tuple),
              st.sampled_from(list(MemSpace))),
)
np_scalars = st.one_of(
    st.floats(width=32).map(np.float32), st.floats(width=16).map(np.float16),
    st.floats().map(np.float64), st.integers(-128, 127).map(np.int8),
    st.integers(-(2 ** 63), 2 ** 63 - 1).map(np.int64), st.booleans().map(np.bool_),
    st.floats(width=32).map(ml_dtypes.bfloat16),
    st.integers(0, 255).map(lambda b: np.frombuffer(bytes([b]), ml_dtypes.float8_e5m2)[0]),
    st.integers(0, 2 ** 16 - 1).map(lambda b: np.frombuffer(b.to_bytes(2, "little"),
                                                           np.float16)[0]),
)
enums = st.sampled_from([m for c in ENUM_CLASSES.values() for m in c])
leaves = st.one_of(st.integers(), st.floats(), st.booleans(), st.none(), st.text(), enums,
                   np_scalars, types)
keys = st.one_of(st.text(), enums, st.integers(), st.tuples(st.integers(), st.text()))
values = st.recursive(leaves, lambda c: st.one_of(
    st.lists(c, max_size=4).map(tuple), st.lists(c, max_size=4),
    st.dictionaries(keys, c, max_size=4)), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(values)
def test_value_roundtrip(v):
    text = print_value(v)
    back = parse_value(text)
    assert values_equal(v, back), (v, text, back)
    assert print_value(back) == text


@settings(max_examples=200, deadline=None)
@given(types)
def test_type_roundtrip(t):
    assert values_equal(parse_type(print_type(t)), t)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_kernel_roundtrip(data):
    draw = data.draw
    pnames = draw(st.lists(names, max_size=4, unique=True))
    params = [Param(n, Value(draw(types)), draw(st.sampled_from(list(Role)))) for n in pnames]
    scope = [p.value for p in params]
    ident = r"[A-Za-z_][A-Za-z0-9_]{0,6}"

    def block(blk: Block, depth: int) -> None:
        for _ in range(draw(st.integers(0, 4))):
            attrs = draw(st.dictionaries(st.one_of(st.from_regex(ident, fullmatch=True),
                                                   names), values, max_size=3))
            operands = draw(st.lists(st.sampled_from(scope), max_size=3)) if scope else []
            loc = draw(st.one_of(st.just(UNKNOWN_LOC), st.builds(Loc, names, st.integers())))
            res = draw(st.lists(types, max_size=2))
            regions = []
            if depth < 2 and draw(st.booleans()):
                r = Block(draw(st.lists(types, max_size=2)))
                mark = len(scope)
                scope.extend(r.args)
                block(r, depth + 1)
                del scope[mark:]
                regions.append(r)
            op = Op(OPS[draw(st.sampled_from(sorted(OPS)))], operands, res, attrs, regions, loc)
            blk.append(op)
            scope.extend(op.results)

    body = Block()
    block(body, 0)
    kattrs = draw(st.dictionaries(names, values, max_size=3))
    roundtrip(Kernel(draw(names), params, body, kattrs))
