"""The op registry is the single source of truth: ops are compared by object, never by name
string, outside the registry and the IR text; every consumer refuses an op it has no rule
for, naming the op and the consumer; the DSL surface comes from the declarations."""
import ast
from pathlib import Path

import numpy as np
import pytest
import torch

import mixtile as mt
from mixtile.ir import ops
from mixtile.ir.registry import OPS, LaneSplit, OpDef, OpKind, Surface, all_ops, define
from mixtile.ir.types import Pipe, TileType, Unit
from mixtile.language.tracer import TileVal, emit

PKG = Path(mt.__file__).resolve().parent
# where an op may be named by its string: the declarations, and the IR text
NAME_OK = {"ir/ops.py", "ir/registry.py", "ir/printer.py", "ir/parser.py"}
OP_NAMES = {d.name for d in all_ops()}


def _string_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """Op names used as strings in comparisons, dict keys, set/tuple members compared
    against, or subscripts (OPS["load"])."""
    found = []

    def names(node) -> list[str]:
        if isinstance(node, ast.Constant) and node.value in OP_NAMES:
            return [node.value]
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return [n for e in node.elts for n in names(e)]
        return []

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                found += [(node.lineno, n) for n in names(side)]
        elif isinstance(node, ast.Dict):
            found += [(node.lineno, n) for k in node.keys if k is not None for n in names(k)]
        elif isinstance(node, ast.Subscript) and getattr(node.value, "attr", None) != "attrs":
            found += [(node.lineno, n) for n in names(node.slice)]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("frozenset",
                                                                                "set"):
            found += [(node.lineno, n) for a in node.args for n in names(a)]
    return found


def test_no_op_is_named_by_a_string_outside_the_registry_and_the_ir_text():
    bad = []
    for f in sorted(PKG.rglob("*.py")):
        rel = f.relative_to(PKG).as_posix()
        if rel in NAME_OK:
            continue
        for line, name in _string_uses(ast.parse(f.read_text())):
            bad.append(f"mixtile/{rel}:{line}: {name!r}")
    # attr keys that happen to equal an op name ({"core": ..., "relu": ...}) are not op names
    allowed = {"core", "relu", "space"}
    bad = [b for b in bad if b.rsplit("'", 2)[1] not in allowed]
    assert not bad, "ops compared or keyed by name:\n" + "\n".join(bad)


def test_the_scan_catches_a_string_comparison():
    src = 'if op.name == "load":\n    pass\nRULES = {"exp": 1}\nx = OPS["store"]\n'
    assert [n for _, n in _string_uses(ast.parse(src))] == ["load", "exp", "store"]


def test_every_op_declares_its_facts():
    for d in all_ops():
        assert isinstance(d, OpDef) and OPS[d.name] is d
        if d.kind is OpKind.PURE and d.unit_of is not None and d.name not in ("dim",):
            assert d.impl is not None or d.name == "dim", d
        # an op the vector lanes may run says how it splits; only cube and launch ops don't
        if d.lane_split is None:
            assert d.name in ("matmul", "fixpipe", "spmd", "core"), d
        if d.writes or d.reads:
            assert d.kind is OpKind.MEMORY, d
        if d.surface is not None:
            fn = getattr(mt, d.name)
            assert fn.__name__ == d.name and fn.__doc__, d
    assert {d.name for d in all_ops() if d.surface is Surface.UNARY} >= {
        "exp", "log", "sqrt", "softplus", "gelu_erf"}


def test_every_module_level_op_name_matches_its_declaration():
    for attr, d in vars(ops).items():
        if isinstance(d, OpDef):
            assert attr == d.name.upper(), (attr, d.name)


@pytest.fixture
def colsum_op():
    """An op declared through the registry alone: a column sum of a tile, with numpy
    semantics and nothing else (no lane split, no backend rules)."""
    def infer(types, attrs):
        t = types[0]
        return [TileType(t.dtype, (1, t.shape[1]))]

    d = define("colsum_test", OpKind.PURE, Unit.VECTOR, Pipe.V, infer,
               impl=lambda attrs, x: np.sum(x, axis=0, keepdims=True),
               cost=lambda op, tgt: 1)
    yield d
    del OPS[d.name]


def _colsum_vector(d):
    @mt.kernel
    def k(x: mt.Tensor["R", "C", mt.f32], y: mt.Out[1, "C", mt.f32]):
        for blk in mt.spmd(1):
            t = mt.load(x[0:8, 0:64])
            mt.store(y[0:1, 0:64], TileVal(emit(d, [t.value]).result))
    return k


def _colsum_mixed(d):
    @mt.kernel
    def k(x: mt.Tensor["M", "K", mt.f16], w: mt.Tensor["N", "K", mt.f16],
          y: mt.Out[1, "N", mt.f32]):
        for blk in mt.spmd(1):
            acc = mt.matmul(mt.load(x[0:16, 0:32]), mt.load(w[0:64, 0:32]), b_trans=True)
            mt.store(y[0:1, 0:64], TileVal(emit(d, [mt.exp(acc).value]).result))
    return k


def test_a_registry_op_runs_on_the_simulator_from_its_declaration(colsum_op):
    x = torch.randn(8, 64)
    res = mt.run_jit(_colsum_vector(colsum_op), x, torch.empty(1, 64),
                     golden=lambda x, y: x.sum(0, keepdim=True))
    assert res.passed, str(res)


def test_a_mixed_kernel_refuses_an_op_without_a_lane_split_rule(colsum_op):
    """It used to pass through the lane split unchanged: 64 of 64 outputs wrong."""
    with pytest.raises(mt.UnsupportedError, match="colsum_test.*cannot be divided") as ei:
        mt.compile(_colsum_mixed(colsum_op))
    assert "lane_split" in ei.value.fix


@pytest.mark.parametrize("target,backend", [("cuda", "Triton"), ("npu", "Ascend C")])
def test_a_backend_without_a_rule_names_the_op_and_itself(colsum_op, target, backend):
    with pytest.raises(mt.UnsupportedError, match=f"colsum_test.*{backend}|{backend}.*"
                                                  "colsum_test") as ei:
        mt.compile(_colsum_vector(colsum_op), target=target).code  # noqa: B018
    assert ei.value.fix


def test_lane_split_rules_cover_every_kind():
    assert {d.lane_split for d in all_ops()} == set(LaneSplit) | {None}
