"""Pass manager, verifier, Simplify, CSE, DCE and PlanMemory: IR text in, IR text out."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixtile.errors import (
    CapacityError,
    IllegalPathError,
    InternalError,
    TraceError,
    VerifyError,
)
from mixtile.ir.core import Kernel
from mixtile.ir.parser import parse_kernel
from mixtile.ir.printer import print_kernel
from mixtile.ir.registry import OPS
from mixtile.ir.types import MemSpace, TileType
from mixtile.passes import (
    CSE,
    DCE,
    PassContext,
    PassManager,
    PlanMemory,
    Simplify,
    compiler_pass,
    verify,
)
from mixtile.target import A2

CTX = PassContext(A2, {})
I64 = "{dtype = DType.i64, value = %d}"


def run(text: str, *passes) -> Kernel:
    k = parse_kernel(text)
    for p in passes:
        k = p(k, CTX)
        verify(k, A2)
    return k


def same_ir(k: Kernel, expected: str) -> None:
    got = print_kernel(k, locs=False)
    want = print_kernel(parse_kernel(expected), locs=False)
    assert got == want, f"got:\n{got}\nwant:\n{want}"


def ops(k: Kernel, name: str) -> list:
    return [op for op in k.walk() if op.name == name]


# ------------------------------------------------------------------ kernels as text

def gemm_text(tm=64, tn=128, tk=128, dt="f16", extra_l1: int = 0) -> str:
    """A GEMM launch after InferSpaces/LegalizePaths: L1 -> L0A/L0B -> L0C accumulator."""
    pad = (f"      %99 = load %a, %r0, %r0 {{keep = (true, true), pad = 0.0, "
           f"sizes = (1, {extra_l1}), space = MemSpace.L1}} : tile<1x{extra_l1}x{dt}, L1>\n"
           if extra_l1 else "")
    use = "      %98 = move %99 {space = MemSpace.L0A} : tile<1x" \
          f"{extra_l1}x{dt}, L0A> loc(\"k.py\":15)\n" if extra_l1 else ""
    return f"""
kernel @gemm(%a: tensor<MxKx{dt}> in, %b: tensor<KxNx{dt}> in, %c: tensor<MxNxf32> out) \
{{legal = true, spaces = true}} {{
  %r0 = const {I64 % 0} : index
  %tk = const {I64 % tk} : index
  %tm = const {I64 % tm} : index
  %tn = const {I64 % tn} : index
  %K = dim %a {{axis = 1}} : index
  %g = const {I64 % 8} : index
  spmd %g {{
  ^(%blk: index):
    %m0 = smul %blk, %tm : index
    %n0 = smul %blk, %tn : index
    %acc0 = full {{dtype = DType.f32, shape = ({tm}, {tn}), space = MemSpace.L0C, \
value = 0.0}} : tile<{tm}x{tn}xf32, L0C> loc("k.py":10)
    %acc = for %r0, %K, %tk, %acc0 {{
    ^(%k: index, %c_in: tile<{tm}x{tn}xf32, L0C>):
      %la = load %a, %m0, %k {{keep = (true, true), pad = 0.0, sizes = ({tm}, {tk}), \
space = MemSpace.L1}} : tile<{tm}x{tk}x{dt}, L1> loc("k.py":12)
      %lb = load %b, %k, %n0 {{keep = (true, true), pad = 0.0, sizes = ({tk}, {tn}), \
space = MemSpace.L1}} : tile<{tk}x{tn}x{dt}, L1> loc("k.py":13)
{pad}      %xa = move %la {{space = MemSpace.L0A}} : tile<{tm}x{tk}x{dt}, L0A> loc("k.py":14)
      %xb = move %lb {{space = MemSpace.L0B}} : tile<{tk}x{tn}x{dt}, L0B> loc("k.py":14)
{use}      %c2 = matmul %xa, %xb, %c_in {{a_trans = false, b_trans = false}} \
: tile<{tm}x{tn}xf32, L0C> loc("k.py":14)
      yield %c2
    }} : tile<{tm}x{tn}xf32, L0C> loc("k.py":11)
    fixpipe %c, %acc, %m0, %n0 {{atomic = AtomicKind.none, dtype = DType.f32, \
has_bias = false, keep = (true, true), relu = false, sizes = ({tm}, {tn})}} loc("k.py":16)
  }}
}}
"""


VEC = """
kernel @vec(%x: tensor<Nx1024xf32> in, %y: tensor<Nx1024xf32> out) {spaces = true} {
  %0 = const {dtype = DType.i64, value = 0} : index
  %n = dim %x {axis = 0} : index
  spmd %n {
  ^(%b: index):
    %t = load %x, %b, %0 {keep = (true, true), pad = 0.0, sizes = (16, 1024), \
space = MemSpace.UB} : tile<16x1024xf32, UB> loc("v.py":3)
    %e = exp %t : tile<16x1024xf32, UB> loc("v.py":4)
    %u = load %x, %0, %b {keep = (true, true), pad = 0.0, sizes = (16, 1024), \
space = MemSpace.UB} : tile<16x1024xf32, UB> loc("v.py":5)
    %s = add %e, %u : tile<16x1024xf32, UB> loc("v.py":6)
    %tt = transpose %s : tile<1024x16xf32, UB> loc("v.py":7)
    %r = reshape %tt {shape = (16, 1024)} : tile<16x1024xf32, UB> loc("v.py":8)
    store %y, %r, %b, %0 {atomic = AtomicKind.none, keep = (true, true), \
sizes = (16, 1024)} loc("v.py":9)
  }
}
"""


# ------------------------------------------------------------------ an independent plan check

class _Mem:
    """Runs a planned kernel abstractly (every loop twice), recording which value owns each
    32-byte granule; a read of a value whose bytes another value overwrote fails."""

    def __init__(self, k: Kernel) -> None:
        self.ids: dict = {}
        self.loc: dict = {}
        for op in k.body.ops:
            if op.name == "spmd":
                self.mem = {s: np.zeros(1 << 16, np.int64) for s in MemSpace}
                self.block(op.regions[0])

    def id(self, v) -> int:
        return self.ids.setdefault(v, len(self.ids) + 1)

    def put(self, v, space, addr) -> None:
        self.loc[v] = (space, addr // 32, -(-(addr + v.type.nbytes) // 32))
        s, lo, hi = self.loc[v]
        self.mem[s][lo:hi] = self.id(v)

    def read(self, v) -> None:
        if type(v.type) is TileType:
            s, lo, hi = self.loc[v]
            assert (self.mem[s][lo:hi] == self.id(v)).all(), f"{v} clobbered"

    def block(self, blk) -> None:
        for op in blk.ops:
            if op.name == "yield":
                continue
            for v in op.operands:
                self.read(v)
            if op.name == "for":
                body, addrs = op.regions[0], op.attrs["addrs"]
                tiles = [i for i, a in enumerate(body.args[1:]) if type(a.type) is TileType]
                for i in tiles:
                    self.put(body.args[1 + i], body.args[1 + i].type.space, addrs[i])
                for _ in range(2):
                    self.block(body)
                    ys = body.ops[-1].operands
                    for i in tiles:
                        self.read(ys[i])
                    for i in tiles:
                        self.put(body.args[1 + i], ys[i].type.space, addrs[i])
                for i in tiles:
                    self.put(op.results[i], op.results[i].type.space, addrs[i])
                continue
            for r in op.results:
                if type(r.type) is TileType:
                    self.put(r, r.type.space, op.attrs["addr"])
            if op.name == "transpose":  # not in place
                (s, lo, hi), (s2, lo2, hi2) = self.loc[op.operands[0]], self.loc[op.results[0]]
                assert s != s2 or hi <= lo2 or hi2 <= lo


# ------------------------------------------------------------------ manager

def test_manager_times_keeps_ir_and_dumps_files_that_reparse(tmp_path):
    pm = PassManager([Simplify, CSE, DCE, DCE, PlanMemory], CTX, dump_dir=tmp_path)
    k = pm.run(parse_kernel(gemm_text()))
    assert [n for n, _ in pm.timings] == ["Simplify", "CSE", "DCE", "DCE", "PlanMemory"]
    assert all(s >= 0 for _, s in pm.timings)
    assert list(pm.ir_after) == ["Simplify", "CSE", "DCE", "DCE#2", "PlanMemory"]
    assert pm.ir_after["PlanMemory"] == print_kernel(k)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["00_initial.mlir", "01_after_Simplify.mlir", "02_after_CSE.mlir",
                     "03_after_DCE.mlir", "04_after_DCE.mlir", "05_after_PlanMemory.mlir"]
    for p in tmp_path.iterdir():
        text = p.read_text()
        assert print_kernel(parse_kernel(text)) == text
    assert 'loc("k.py":14)' in (tmp_path / "05_after_PlanMemory.mlir").read_text()


def test_manager_wraps_internal_errors_naming_pass_and_op():
    @compiler_pass("Buggy")
    def buggy(kernel, ctx):
        for op in kernel.walk():
            if op.name == "matmul":
                return {}[op.name]
        return kernel

    with pytest.raises(InternalError) as ei:
        PassManager([Simplify, buggy], CTX).run(parse_kernel(gemm_text()))
    msg = str(ei.value)
    assert "pass Buggy" in msg and "`matmul`" in msg and "KeyError" in msg
    assert ei.value.loc.line == 14 and isinstance(ei.value.__cause__, KeyError)


def test_manager_passes_user_errors_through_and_verifies_after_each_pass():
    @compiler_pass("UserMistake")
    def mistake(kernel, ctx):
        raise TraceError("bad tile size", fix="use 16")

    with pytest.raises(TraceError, match="bad tile size"):
        PassManager([mistake], CTX).run(parse_kernel(gemm_text()))

    @compiler_pass("Breaker")
    def breaker(kernel, ctx):
        kernel.body.ops = kernel.body.ops[1:]  # drops a const still in use
        return kernel

    with pytest.raises(VerifyError, match="after pass Breaker.*not defined"):
        PassManager([breaker], CTX).run(parse_kernel(gemm_text()))
    PassManager([breaker], CTX, verify=False, keep_ir=False).run(parse_kernel(gemm_text()))


def test_pipeline_on_a_traced_gemm_plans_l0c():
    import mixtile as mt
    from tilelang_models.kernels import gemm as G

    ck = mt.compile(G.gemm, {"disk_cache": False}, TM=16)
    assert ck.kernel.attrs["mem_peak"][MemSpace.L0C] == 16 * 128 * 4


# ------------------------------------------------------------------ verifier

LD = "load %x, %a, %a {keep = (true, true), pad = 0.0, sizes = (8, 8)"
BAD = {
    "result 0 has type f32; operands give index": ("""
      %a = const {dtype = DType.i64, value = 1} : index
      %b = sadd %a, %a : f32""", VerifyError),
    "yields 0 values for 1 carried": ("""
      %a = const {dtype = DType.i64, value = 1} : index
      %r = for %a, %a, %a, %a {
      ^(%i: index, %c: index):
        yield
      } : index""", VerifyError),
    "body has 1 block args; expected 2": ("""
      %a = const {dtype = DType.i64, value = 1} : index
      %r = for %a, %a, %a, %a {
      ^(%i: index):
        yield %a
      } : index""", VerifyError),
    "carried value 0 changes type": ("""
      %a = const {dtype = DType.i64, value = 1} : index
      %f = const {dtype = DType.f32, value = 1.0} : f32
      %r = for %a, %a, %a, %a {
      ^(%i: index, %c: index):
        yield %f
      } : index""", VerifyError),
    "must end with a `yield`": ("""
      %a = const {dtype = DType.i64, value = 1} : index
      for %a, %a, %a {
      ^(%i: index):
        %b = sadd %i, %i : index
      }""", VerifyError),
    "may only be the last op": ("""
      %a = const {dtype = DType.i64, value = 1} : index
      for %a, %a, %a {
      ^(%i: index):
        yield
        %b = sadd %i, %i : index
        yield
      }""", VerifyError),
    "expected one index": ("""
      %a = const {dtype = DType.i64, value = 1} : index
      spmd %a {
      ^(%i: index, %j: index):
      }""", VerifyError),
    "kernel writes input `x`; mark it mt.Out or mt.InOut": ("""
      %a = const {dtype = DType.i64, value = 0} : index
      %t = LD, space = MemSpace.UB} : tile<8x8xf32, UB>
      store %x, %t, %a, %a {atomic = AtomicKind.none, keep = (true, true), sizes = (8, 8)}""",
                                                            VerifyError),
    "operand 0 is in L0B; it must be in L0A": ("""
      %a = const {dtype = DType.i64, value = 0} : index
      %t = LD, space = MemSpace.L0B} : tile<8x8xf32, L0B>
      %c = matmul %t, %t {a_trans = false, b_trans = false} : tile<8x8xf32, L0C>""",
                                               VerifyError),
    "operand 0 is in L1; it must be in UB": ("""
      %a = const {dtype = DType.i64, value = 0} : index
      %t = LD, space = MemSpace.L1} : tile<8x8xf32, L1>
      %e = exp %t : tile<8x8xf32, UB>""", VerifyError),
    "operand 1 is in L1; it must be in UB or L0C": ("""
      %a = const {dtype = DType.i64, value = 0} : index
      %t = LD, space = MemSpace.L1} : tile<8x8xf32, L1>
      store %y, %t, %a, %a {atomic = AtomicKind.none, keep = (true, true), sizes = (8, 8)}""",
                                                       VerifyError),
    "operand 2 is in UB; it must be in BT": ("""
      %a = const {dtype = DType.i64, value = 0} : index
      %t = LD, space = MemSpace.L0C} : tile<8x8xf32, L0C>
      %u = load %bias, %a {keep = (true,), pad = 0.0, sizes = (8,), space = MemSpace.UB} \
: tile<8xf32, UB>
      fixpipe %y, %t, %u, %a, %a {atomic = AtomicKind.none, dtype = DType.f32, \
has_bias = true, keep = (true, true), relu = false, sizes = (8, 8)}""", VerifyError),
    "has no on-chip space": ("""
      %a = const {dtype = DType.i64, value = 0} : index
      %t = LD} : tile<8x8xf32, ANY>""", VerifyError),
    "`load` moves data GM -> L0A, which a2 has no path for": ("""
      %a = const {dtype = DType.i64, value = 0} : index
      %t = LD, space = MemSpace.L0A} : tile<8x8xf32, L0A>""", IllegalPathError),
}


@pytest.mark.parametrize("expect", sorted(BAD))
def test_verify_rejects(expect):
    body, err = BAD[expect]
    legal = ", legal = true" if err is IllegalPathError or "or L0C" in expect else ""
    text = ("kernel @k(%x: tensor<8x8xf32> in, %bias: tensor<8xf32> in, "
            f"%y: tensor<8x8xf32> out) {{spaces = true{legal}}} {{"
            + body.replace("\n      ", "\n  ").replace("LD", LD) + "\n}\n")
    with pytest.raises(err) as ei:
        verify(parse_kernel(text), A2)
    assert expect in str(ei.value)


def test_verify_rejects_a_use_outside_the_defining_region():
    k = parse_kernel("""
kernel @k(%x: tensor<8xf32> in) {
  %a = const {dtype = DType.i64, value = 1} : index
  spmd %a {
  ^(%b: index):
    %c = sadd %b, %b : index
  }
  %d = sadd %a, %a : index loc("u.py":9)
}
""")
    verify(k, A2)
    inner = ops(k, "spmd")[0].regions[0].ops[0].result
    ops(k, "sadd")[-1].operands[0] = inner  # the parser refuses such text; build it
    with pytest.raises(VerifyError, match="operand 0 .* is not defined before") as ei:
        verify(k, A2)
    assert ei.value.loc.line == 9


def test_verify_accepts_and_names_the_line():
    verify(parse_kernel(gemm_text()), A2)
    verify(parse_kernel(VEC), A2)
    k = parse_kernel(gemm_text().replace("space = MemSpace.L0B", "space = MemSpace.L0A"))
    with pytest.raises(VerifyError, match="result 0 has type tile<128x128xf16, L0B>") as ei:
        verify(k, A2)
    assert ei.value.loc.line == 14


# ------------------------------------------------------------------ simplify

def test_simplify_folds_index_math_to_consts():
    k = run("""
kernel @k(%x: tensor<Mx64xf32> in) {
  %c128 = const {dtype = DType.i64, value = 128} : index
  %m = dim %x {axis = 0} : index
  spmd %m {
  ^(%b: index):
    %0 = smul %b, %c128 : index
    %1 = sadd %0, %c128 : index
    %2 = smul %b, %c128 : index
    %3 = ssub %1, %2 : index
    %4 = dim %x {axis = 1} : index
    %5 = sfloordiv %3, %4 : index
    %6 = smod %1, %c128 : index
    %7 = slt %2, %1 : bool
    for %6, %3, %5 {
    ^(%i: index):
      %8 = sadd %i, %0 : index
      %9 = sadd %0, %i : index
      %10 = load %x, %8, %9 {keep = (true, true), pad = 0.0, sizes = (1, 1)} \
: tile<1x1xf32, ANY>
      yield
    }
  }
}
""", Simplify)
    same_ir(k, """
kernel @k(%x: tensor<Mx64xf32> in) {
  %c64 = const {dtype = DType.i64, value = 64} : index
  %c2 = const {dtype = DType.i64, value = 2} : index
  %c0 = const {dtype = DType.i64, value = 0} : index
  %true = const {dtype = DType.bool, value = true} : bool
  %c128 = const {dtype = DType.i64, value = 128} : index
  %m = dim %x {axis = 0} : index
  spmd %m {
  ^(%b: index):
    %0 = smul %b, %c128 : index
    %1 = sadd %0, %c128 : index
    for %c0, %c128, %c2 {
    ^(%i: index):
      %8 = sadd %i, %0 : index
      %10 = load %x, %8, %8 {keep = (true, true), pad = 0.0, sizes = (1, 1)} \
: tile<1x1xf32, ANY>
      yield
    }
  }
}
""")
    k = DCE(k, CTX)
    assert [op.name for op in k.walk()] == ["dim", "spmd"]  # nothing is stored


def test_simplify_reuses_dominating_equal_expressions_only():
    k = run("""
kernel @k(%x: tensor<Mx64xf32> out) {
  %c = const {dtype = DType.i64, value = 64} : index
  %m = dim %x {axis = 0} : index
  %m2 = dim %x {axis = 0} : index
  spmd %m {
  ^(%b: index):
    for %c, %m, %c {
    ^(%i: index):
      %0 = smul %b, %c : index
      yield
    }
    %1 = smul %c, %b : index
    %2 = sadd %1, %m2 : index
    %3 = sadd %m, %1 : index
    %t = full {dtype = DType.f32, shape = (1, 1), value = 1.0} : tile<1x1xf32, ANY>
    store %x, %t, %2, %3 {atomic = AtomicKind.none, keep = (true, true), sizes = (1, 1)}
  }
}
""", Simplify)
    st_op = ops(k, "store")[0]
    assert st_op.operands[2] is st_op.operands[3]  # b*64 + M == M + b*64, dims merged
    assert len(ops(k, "smul")) == 2  # the loop's b*64 does not dominate the later one
    assert len(ops(k, "dim")) == 1


def test_simplify_folds_float_consts_and_hoists_nested_consts():
    k = run("""
kernel @k(%x: tensor<4xf32> out) {
  %n = const {dtype = DType.i64, value = 1} : index
  spmd %n {
  ^(%b: index):
    %a = const {dtype = DType.f32, value = 1.5} : f32
    %c = const {dtype = DType.f32, value = 2.0} : f32
    %s = smul %a, %c : f32
    %z = const {dtype = DType.f32, value = -0.0} : f32
    %z2 = const {dtype = DType.f32, value = 0.0} : f32
    %z3 = const {dtype = DType.f32, value = 0.0} : f32
    %t = full %s {dtype = DType.f32, shape = (4,)} : tile<4xf32, ANY>
    %u = full %z {dtype = DType.f32, shape = (4,)} : tile<4xf32, ANY>
    %v = full %z2 {dtype = DType.f32, shape = (4,)} : tile<4xf32, ANY>
    %w = full %z3 {dtype = DType.f32, shape = (4,)} : tile<4xf32, ANY>
  }
}
""", Simplify)
    consts = [repr(op.attrs["value"]) for op in ops(k, "const")]
    assert sorted(consts) == ["-0.0", "0.0", "1", "1.5", "2.0", "3.0"]
    assert all(op.parent is k.body for op in ops(k, "const"))
    assert "smul" not in [op.name for op in k.walk()]
    t, u, v, w = ops(k, "full")
    assert t.operands[0].owner.attrs["value"] == 3.0
    assert u.operands[0] is not v.operands[0] and v.operands[0] is w.operands[0]


def test_simplify_assumes_a_nonnegative_iv_only_when_it_is_one():
    text = """
kernel @k(%x: tensor<8xf32> out) {
  %lo = const {dtype = DType.i64, value = LB} : index
  %0 = const {dtype = DType.i64, value = 0} : index
  %1 = const {dtype = DType.i64, value = 1} : index
  %8 = const {dtype = DType.i64, value = 8} : index
  spmd %1 {
  ^(%b: index):
    for %lo, %8, %1 {
    ^(%i: index):
      %p = smax %i, %0 : index
      %t = full {dtype = DType.f32, shape = (1,), value = 1.0} : tile<1xf32, ANY>
      store %x, %t, %p {atomic = AtomicKind.none, keep = (true,), sizes = (1,)}
      yield
    }
  }
}
"""
    k = run(text.replace("LB", "-4"), Simplify)
    assert len(ops(k, "smax")) == 1
    k = run(text.replace("LB", "2"), Simplify)
    assert not ops(k, "smax") and ops(k, "store")[0].operands[2] is ops(k, "for")[0] \
        .regions[0].args[0]


def _num(e, env):
    """Evaluate a Simplify expression at integer values of its symbols."""
    from mixtile.passes.simplify import FloorDiv, Max, Min, Mod

    if e.is_Integer:
        return int(e)
    if e.is_Symbol:
        return env[e]
    args = [_num(a, env) for a in e.args]
    if e.is_Add:
        return sum(args)
    if e.is_Mul:
        return int(np.prod(args, dtype=object))
    if e.is_Pow:
        return args[0] ** args[1]
    fns = {FloorDiv: lambda a, b: a // b, Mod: lambda a, b: a % b, Min: min, Max: max}
    return fns[type(e)](*args)


def sympy_int(v):
    import sympy

    return sympy.Integer(v)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_simplify_expressions_agree_with_python_semantics(data):
    import operator

    from mixtile.passes.simplify import _combine, _compare, _symbol

    py = {"sadd": operator.add, "ssub": operator.sub, "smul": operator.mul,
          "sfloordiv": operator.floordiv, "smod": operator.mod, "smin": min, "smax": max}
    b, m, x = _symbol("%b", False, True), _symbol("M", True, True), _symbol("%x", False, False)
    env = {b: data.draw(st.integers(0, 40)), m: data.draw(st.integers(1, 40)),
           x: data.draw(st.integers(-40, 40))}
    exprs = [(b, env[b]), (m, env[m]), (x, env[x])]
    exprs += [(sympy_int(v), v) for v in data.draw(st.lists(st.integers(-9, 200), min_size=1,
                                                             max_size=4))]
    for _ in range(data.draw(st.integers(1, 12))):
        name = data.draw(st.sampled_from(sorted(py)))
        (ea, va), (eb, vb) = data.draw(st.sampled_from(exprs)), data.draw(st.sampled_from(exprs))
        if name in ("sfloordiv", "smod") and vb == 0:
            continue
        e = _combine(OPS[name], ea, eb)
        if e is None:
            continue
        v = py[name](va, vb)
        assert _num(e, env) == v, (name, ea, eb, e)
        for cmp, fn in (("slt", operator.lt), ("sle", operator.le), ("sgt", operator.gt),
                        ("sge", operator.ge), ("seq", operator.eq)):
            known = _compare(OPS[cmp], ea - eb)
            assert known is None or known == fn(va, vb), (cmp, ea, eb)
        exprs.append((e, v))


# ------------------------------------------------------------------ CSE and DCE

def test_cse_merges_duplicate_exp_and_dce_drops_dead_code():
    k = run("""
kernel @k(%x: tensor<8xf32> in, %y: tensor<8xf32> out) {
  %0 = const {dtype = DType.i64, value = 0} : index
  %1 = const {dtype = DType.i64, value = 4} : index
  %t = load %x, %0 {keep = (true,), pad = 0.0, sizes = (8,)} : tile<8xf32, ANY>
  %t2 = load %x, %0 {keep = (true,), pad = 0.0, sizes = (8,)} : tile<8xf32, ANY>
  %dead = load %x, %1 {keep = (true,), pad = 0.0, sizes = (8,)} : tile<8xf32, ANY>
  %e1 = exp %t : tile<8xf32, ANY>
  %e2 = exp %t : tile<8xf32, ANY>
  %e3 = exp %t2 : tile<8xf32, ANY>
  %s = add %e1, %e2 : tile<8xf32, ANY>
  %s2 = add %s, %e3 : tile<8xf32, ANY>
  %r, %live, %gone = for %0, %1, %1, %s2, %t, %t {
  ^(%i: index, %a: tile<8xf32, ANY>, %b: tile<8xf32, ANY>, %c: tile<8xf32, ANY>):
    %n = neg %c : tile<8xf32, ANY>
    %l = load %x, %i {keep = (true,), pad = 0.0, sizes = (8,)} : tile<8xf32, ANY>
    %bb = add %b, %l : tile<8xf32, ANY>
    yield %a, %bb, %n
  } : tile<8xf32, ANY>, tile<8xf32, ANY>, tile<8xf32, ANY>
  %unused = for %0, %1, %1, %t {
  ^(%j: index, %d: tile<8xf32, ANY>):
    yield %d
  } : tile<8xf32, ANY>
  store %y, %live, %0 {atomic = AtomicKind.none, keep = (true,), sizes = (8,)}
}
""", CSE, DCE)
    same_ir(k, """
kernel @k(%x: tensor<8xf32> in, %y: tensor<8xf32> out) {
  %0 = const {dtype = DType.i64, value = 0} : index
  %1 = const {dtype = DType.i64, value = 4} : index
  %t = load %x, %0 {keep = (true,), pad = 0.0, sizes = (8,)} : tile<8xf32, ANY>
  %live = for %0, %1, %1, %t {
  ^(%i: index, %b: tile<8xf32, ANY>):
    %l = load %x, %i {keep = (true,), pad = 0.0, sizes = (8,)} : tile<8xf32, ANY>
    %bb = add %b, %l : tile<8xf32, ANY>
    yield %bb
  } : tile<8xf32, ANY>
  store %y, %live, %0 {atomic = AtomicKind.none, keep = (true,), sizes = (8,)}
}
""")


def test_cse_respects_scopes_and_keeps_accumulator_seeds():
    k = run(gemm_text().replace("    %acc = for", """    %dup = full {dtype = DType.f32, \
shape = (64, 128), space = MemSpace.L0C, value = 0.0} : tile<64x128xf32, L0C>
    %acc2 = for %r0, %K, %tk, %dup {
    ^(%k2: index, %c_in2: tile<64x128xf32, L0C>):
      %q = smul %blk, %tm : index
      %q2 = smul %k2, %tm : index
      yield %c_in2
    } : tile<64x128xf32, L0C>
    %acc = for""").replace("      yield %c2", """      %q3 = smul %k, %tm : index
      yield %c2"""), CSE)
    assert len(ops(k, "full")) == 2  # two accumulators keep their own seeds
    # %q merged into %m0 (dominates); %q2 and %q3 live in sibling loops: both kept
    assert len(ops(k, "smul")) == 4


# ------------------------------------------------------------------ memory planning

def test_plan_gemm_accumulator_takes_one_buffer():
    k = run(gemm_text(), PlanMemory)
    (full,), (loop,), (mm,) = ops(k, "full"), ops(k, "for"), ops(k, "matmul")
    assert full.attrs["addr"] == mm.attrs["addr"] == loop.attrs["addrs"][0] == 0
    la, lb = ops(k, "load")
    assert {la.attrs["addr"], lb.attrs["addr"]} == {0, 64 * 128 * 2}  # both live: L1
    assert k.attrs["mem_peak"] == {MemSpace.L1: 16384 + 32768, MemSpace.L0A: 16384,
                                   MemSpace.L0B: 32768, MemSpace.L0C: 32768}
    _Mem(k)
    again = parse_kernel(print_kernel(k))  # the plan survives the text round trip
    assert ops(again, "for")[0].attrs["addrs"] == [0]


def test_plan_vector_reuses_dead_buffers_but_never_transposes_in_place():
    k = run(VEC, PlanMemory)
    addr = {op.name: op.attrs["addr"] for op in k.walk() if "addr" in op.attrs}
    assert addr["exp"] == 0  # in place over its dead operand
    assert addr["add"] == 0 and addr["transpose"] != 0
    assert k.attrs["mem_peak"] == {MemSpace.UB: 2 * 64 * 1024}
    _Mem(k)


NESTED = """
kernel @n(%x: tensor<64x64xf32> in, %y: tensor<64x64xf32> out) {spaces = true} {
  %0 = const {dtype = DType.i64, value = 0} : index
  %1 = const {dtype = DType.i64, value = 1} : index
  %4 = const {dtype = DType.i64, value = 4} : index
  spmd %1 {
  ^(%b: index):
    %t = load %x, %0, %0 {keep = (true, true), pad = 0.0, sizes = (16, 64), \
space = MemSpace.UB} : T
    %z = full {dtype = DType.f32, shape = (16, 64), space = MemSpace.UB, value = 0.0} : T
    %r, %s = for %0, %4, %1, %z, %t {
    ^(%i: index, %acc: T, %other: T):
      %in = for %0, %4, %1, %acc {
      ^(%j: index, %a2: T):
        %l = load %x, %j, %0 {keep = (true, true), pad = 0.0, sizes = (16, 64), \
space = MemSpace.UB} : T
        %n = add %a2, %l : T
        %m = mul %a2, %n : T
        yield %m
      } : T
      yield %other, %in
    } : T, T
    %sum = add %r, %s : T
    store %y, %sum, %0, %0 {atomic = AtomicKind.none, keep = (true, true), sizes = (16, 64)}
  }
}
"""


def test_plan_nested_loops_and_swapped_carries_stay_correct():
    import re
    k = run(re.sub(r"\bT\b", "tile<16x64xf32, UB>", NESTED), PlanMemory)
    _Mem(k)  # every read sees its own value (loops run twice, yields copy in parallel)
    outer, inner = ops(k, "for")
    n, m = ops(k, "add")[0], ops(k, "mul")[0]
    assert m.attrs["addr"] == inner.attrs["addrs"][0]  # the update lands in its carry
    assert n.attrs["addr"] != inner.attrs["addrs"][0]  # %a2 is still read by the mul
    assert len(set(outer.attrs["addrs"])) == 2


def test_plan_loop_seeded_by_an_in_place_chain():
    import re

    text = re.sub(r"\bT\b", "tile<16x64xf32, UB>", """
kernel @c(%x: tensor<64x64xf32> in, %y: tensor<64x64xf32> out) {spaces = true} {
  %0 = const {dtype = DType.i64, value = 0} : index
  %1 = const {dtype = DType.i64, value = 1} : index
  %4 = const {dtype = DType.i64, value = 4} : index
  spmd %1 {
  ^(%b: index):
    %p = load %x, %1, %0 {keep = (true, true), pad = 0.0, sizes = (16, 64), \
space = MemSpace.UB} : T
    %t = load %x, %0, %0 {keep = (true, true), pad = 0.0, sizes = (16, 64), \
space = MemSpace.UB} : T
    %e = exp %t : T
    %f = exp %e : T
    %g = exp %f : T
    %r = for %0, %4, %1, %g {
    ^(%i: index, %a: T):
      %l = load %x, %i, %0 {keep = (true, true), pad = 0.0, sizes = (16, 64), \
space = MemSpace.UB} : T
      %n = add %a, %l : T
      yield %n
    } : T
    %u = exp %r : T
    %v = add %u, %p : T
    store %y, %v, %0, %0 {atomic = AtomicKind.none, keep = (true, true), sizes = (16, 64)}
  }
}
""")
    k = run(text, PlanMemory)
    _Mem(k)
    acc = ops(k, "for")[0].attrs["addrs"][0]
    assert acc == 4096  # %p holds 0 throughout
    same = [op.name for op in k.walk() if op.attrs.get("addr") == acc]
    assert same == ["load", "exp", "exp", "exp", "add", "exp", "add"]  # one buffer
    assert k.attrs["mem_peak"] == {MemSpace.UB: 3 * 4096}


def test_plan_reports_capacity_with_numbers_and_lines():
    with pytest.raises(CapacityError) as ei:
        run(gemm_text(tm=256, tn=256, tk=16), PlanMemory)  # L0C: 256 KiB > 128 KiB
    e = ei.value
    msg = str(e)
    assert "L0C overflows" in msg and "262144 bytes (256.0 KiB)" in msg
    assert "131072 bytes (128.0 KiB)" in msg
    assert "262144 bytes (256.0 KiB): f32 256x256 tile from `full` at k.py:10" in msg
    assert e.loc.line == 10 and "TM/TN/TK" in e.fix

    with pytest.raises(CapacityError) as ei:
        run(gemm_text(tm=128, tn=16, tk=256, extra_l1=1024), PlanMemory)  # L0A: 64K + 32K
    # (a 1x1024 f16 tile occupies 16x1024 in the cube's 16x16 fractal layout)
    msg = str(ei.value)
    assert msg.startswith("k.py:15: L0A overflows: the tiles live at the peak need "
                          "98304 bytes (96.0 KiB) but a2 has 65536 bytes (64.0 KiB) of L0A")
    lines = msg.splitlines()
    assert "65536 bytes (64.0 KiB): f16 128x256 tile from `move` at k.py:14" in lines[2]
    assert "32768 bytes (32.0 KiB): f16 1x1024 tile from `move` at k.py:15" in lines[3]


def test_plan_needs_spaces():
    text = VEC.replace("space = MemSpace.UB} : tile<16x1024xf32, UB> loc(\"v.py\":3)",
                       "space = MemSpace.ANY} : tile<16x1024xf32, ANY> loc(\"v.py\":3)")
    with pytest.raises(InternalError, match="InferSpaces"):
        PlanMemory(parse_kernel(text), CTX)


def test_plan_launches_separately():
    import re

    text = gemm_text()
    launch = text[text.index("  spmd"):text.rindex("}")]
    local = r"%(blk|m0|n0|acc0|acc|k|c_in|la|lb|xa|xb|c2)\b"
    second = re.sub(local, lambda m: "%z" + m.group(1), launch)
    k = run(text[:text.rindex("}")] + second + "}\n", PlanMemory)
    fulls = ops(k, "full")
    assert len(fulls) == 2 and all(f.attrs["addr"] == 0 for f in fulls)
    assert k.attrs["mem_peak"][MemSpace.L0C] == 64 * 128 * 4
    _Mem(k)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 24), st.integers(1, 24), st.integers(1, 24), st.integers(0, 40),
       st.sampled_from(["f16", "f32"]))
def test_plan_property_never_overlaps_and_fits_iff_sum_fits(tm, tn, tk, extra, dt):
    tm, tn, tk = 16 * tm, 16 * tn, 16 * tk
    es = 4 if dt == "f32" else 2
    extra *= 256
    a, b = tm * tk * es, tk * tn * es
    pad = 16 * extra * es  # the 1 x extra tile fills 16-row fractals in cube spaces
    need = {MemSpace.L1: a + b + pad, MemSpace.L0A: a + pad,
            MemSpace.L0B: b, MemSpace.L0C: tm * tn * 4}
    fits = all(n <= A2.capacity[s] for s, n in need.items())
    try:
        k = run(gemm_text(tm, tn, tk, dt, extra), PlanMemory)
    except CapacityError:
        assert not fits
        return
    assert fits
    assert k.attrs["mem_peak"] == need
    _Mem(k)
    by_space: dict = {}
    for op in k.walk():
        if "addr" in op.attrs:
            t = op.results[0].type
            by_space.setdefault(t.space, []).append((op.attrs["addr"], t.nbytes, op))
    for s, rows in by_space.items():  # in this kernel same-space tiles are all live at once
        if s is MemSpace.L0C:
            continue
        rows.sort(key=lambda r: r[0])
        for (a0, n0, _), (a1, _, _) in zip(rows, rows[1:], strict=False):
            assert a0 + n0 <= a1


def test_the_plan_checker_catches_a_clobbered_tile():
    k = run(gemm_text(), PlanMemory)
    la, lb = ops(k, "load")
    lb.attrs["addr"] = la.attrs["addr"] + 1024  # overlaps la while la is still live
    with pytest.raises(AssertionError, match="clobbered"):
        _Mem(k)
