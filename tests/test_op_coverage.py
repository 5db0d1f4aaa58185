"""Every vector op of the registry on every backend, with broadcast operands and ragged
shapes.

The entries are made from the registry: each op with a DSL surface (mt.exp, mt.maximum,
...) and each vector op with a Python operator (+, <, ...; a comparison is stored through
mt.where(cmp, 1.0, 0.0)), so a newly declared op is tested with no edit here; beside them
the vector ops the registry makes no function for: the reductions (mt.reduce), mt.where,
casts, mt.full, mt.broadcast_to, .T, .reshape and mt.arange.

Each runs on a ragged tensor (10 x 200 with 8 x 128 tiles: 2 x 2 blocks, the last ones
partial; loads padded) in the operand cases of CASES: a [R, C] tile with a [R, C] tile, a
[1, C] row, an [R, 1] column or a runtime scalar (on either side), and a [1, C] row with an
[R, 1] column; in f32 and f16 (casts from their source dtype). Inputs come from randn, or
from the op's domain in DOMAIN (positive for log, ...); the load pads are the domain's (a
reduction's: its identity). Outputs whose tile is not [TR, TC] (reductions, .T, .reshape,
mt.arange) are laid out by `_out_layout`.

Backends: the simulator (against an independent torch reference computed tile by tile;
an op with no TORCH_REF entry against its registry semantics in float64), Triton (through
its CPU interpreter without a GPU) and the emitted Ascend C built with g++ against the
CPU model of the API (tests/ascendc_cpu), both against the simulator. Each (op, case,
backend) either agrees within the output dtype's tolerance (runtime.golden) or raises an
mt.UnsupportedError that names the op and the backend and has a fix; EXPECTED_UNSUPPORTED
lists those, so a backend that starts or stops supporting one fails here until the table
is updated. Anything else (another exception, a wrong number) is a failure.

Speed: every (op, case) of one dtype is an output of one kernel per backend (one g++
build for Ascend C); when a batch fails, the items whose code generation fails alone are
set apart and the rest split in halves until each failure has its item. Inputs are fresh
each run: a batch's seed is crc32(its dtype) ^ a per-run salt, printed with any failure
(MIXTILE_TEST_SEED=<salt> replays a run).
"""
import fnmatch
import inspect
import operator
import os
import random
import re
import shutil
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

HAS_GPU = torch.cuda.is_available()
if not HAS_GPU:  # before Triton is imported: it reads the switch then
    os.environ["TRITON_INTERPRET"] = "1"

import mixtile as mt  # noqa: E402
from mixtile.ir import ops as O  # noqa: E402
from mixtile.ir.registry import OpDef, OpKind, Surface, all_ops  # noqa: E402
from mixtile.ir.types import DType, MemSpace, Role, TileType, Unit  # noqa: E402
from mixtile.language.spec import ScalarSpec, TensorSpec  # noqa: E402
from mixtile.language.tracer import TileVal  # noqa: E402
from mixtile.runtime.golden import compare  # noqa: E402
from mixtile.runtime.jit import TORCH_DTYPE  # noqa: E402

F = torch.nn.functional
F32, F16, BF16, I32 = DType.F32, DType.F16, DType.BF16, DType.I32
R, C, TR, TC = 10, 200, 8, 128  # ragged on both axes: 2 x 2 blocks, the last ones partial
NRB, NCB = -(-R // TR), -(-C // TC)
BACKENDS = ("sim", "triton", "ascendc")
DEV = "cuda" if HAS_GPU else "cpu"
SALT = int(os.environ.get("MIXTILE_TEST_SEED", random.randrange(2**31)))

# operand case -> kinds of (a, b): "tile" [TR, TC], "row" [1, TC], "col" [TR, 1], "scalar"
CASES = {"unary": ("tile", None), "full": ("tile", "tile"), "row": ("tile", "row"),
         "col": ("tile", "col"), "scalar": ("tile", "scalar"),
         "scalar_lhs": ("scalar", "tile"), "outer": ("row", "col")}
BINARY = tuple(c for c in CASES if c != "unary")

# input domains, by op (or entry) name; the default is randn
DOMAIN = {"log": "positive", "sqrt": "positive", "rsqrt": "positive",
          "reciprocal": "nonzero", "div": "nonzero", "cast_f32_i32": "wide",
          **{c: "small_int" for c in ("lt", "le", "gt", "ge", "eq", "ne")}}
_PAD = {"positive": 1.0, "nonzero": 1.0}  # the load pad of a domain (default 0.0)

# (entry, backend, case) patterns (fnmatch) expected to raise UnsupportedError, and why
EXPECTED_UNSUPPORTED = {
    ("reshape", "triton", "unary_*"):
        "[8, 128] -> [16, 64]: the Triton block of an 8-row tile has 16 rows (extents round "
        "up to powers of two, at least 16), so the reshape would move padding into the rows",
    ("transpose", "ascendc", "unary_*"): "no Ascend C rule for transpose yet",
    ("row_*", "ascendc", "unary_f16"): "Ascend C reduces f32 tiles only (fix: reduce in f32)",
    ("col_*", "ascendc", "unary_f16"): "Ascend C reduces f32 tiles only (fix: reduce in f32)",
}

# the torch reference of each op made from the registry (float32 tiles in, float32 out);
# an op declared later with no entry here is checked against its registry semantics
TORCH_REF = {
    "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt,
    "reciprocal": torch.reciprocal, "abs": torch.abs, "neg": torch.neg, "tanh": torch.tanh,
    "sin": torch.sin, "cos": torch.cos, "relu": torch.relu, "sigmoid": torch.sigmoid,
    "silu": F.silu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "gelu_erf": F.gelu,
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
    "maximum": torch.maximum, "minimum": torch.minimum, "lt": torch.lt, "le": torch.le,
    "gt": torch.gt, "ge": torch.ge, "eq": torch.eq, "ne": torch.ne,
}


@dataclass(frozen=True)
class Entry:
    """One thing to test: `fn` builds it in the DSL from the operands of a case, `ref`
    computes it in torch from the same tiles (float32)."""

    name: str
    op: OpDef  # the registry entry exercised (an unsupported error must name it)
    fn: Callable
    ref: Callable
    cases: tuple[str, ...]
    dtypes: tuple[DType, ...] = (F32, F16)
    out_dtype: DType | None = None  # default: the operands'
    pad: float | None = None  # the load pad (default: the domain's)

    @property
    def domain(self) -> str:
        return DOMAIN.get(self.name, DOMAIN.get(self.op.name, "randn"))

    @property
    def load_pad(self) -> float:
        return self.pad if self.pad is not None else _PAD.get(self.domain, 0.0)


def _registry_ref(d: OpDef):
    def ref(*xs):
        out = d.impl({}, *(x.double().numpy() for x in xs))
        return torch.from_numpy(np.asarray(out)).float()
    return ref


def _gives_bool(d: OpDef, arity: int) -> bool:
    t = TileType(F32, (2, 2), MemSpace.ANY)
    return d.infer([t] * arity, {})[0].dtype is DType.BOOL


def _generated() -> list[Entry]:
    """An entry per vector op that has a DSL function or a Python operator; a bool
    result (a comparison) is stored through mt.where(result, 1.0, 0.0)."""
    out = []
    for d in all_ops():
        if d.kind is not OpKind.PURE or d.unit is not Unit.VECTOR:
            continue
        if d.surface is not None:
            fn = getattr(mt, d.name)
        elif d.operator is not None:
            fn = getattr(operator, d.operator)
        else:
            continue
        arity = 1 if d.surface is Surface.UNARY else 2
        ref = TORCH_REF.get(d.name) or _registry_ref(d)
        kw = {}
        if _gives_bool(d, arity):
            fn = (lambda *xs, f=fn: mt.where(f(*xs), 1.0, 0.0))
            ref = (lambda *xs, f=ref: f(*xs).float())
            kw = {"out_dtype": F32}
        out.append(Entry(d.name, d, fn, ref, ("unary",) if arity == 1 else BINARY, **kw))
    return out


def _tile_of(a, b):
    return a if isinstance(a, TileVal) else b


def _others() -> list[Entry]:
    """The vector ops the registry makes no DSL function for."""
    out = []
    for kind in mt.ReduceKind:
        red = {"SUM": torch.sum, "MAX": torch.amax, "MIN": torch.amin}[kind.name]
        ident = {"SUM": 0.0, "MAX": float("-inf"), "MIN": float("inf")}[kind.name]
        for axis, side in ((-1, "row"), (0, "col")):
            out.append(Entry(
                f"{side}_{kind.name.lower()}", O.REDUCE,
                lambda a, kind=kind, axis=axis: mt.reduce(a, kind, axis),
                lambda a, red=red, axis=axis: red(a, dim=axis, keepdim=True),
                ("unary",), pad=ident))
    out.append(Entry("select", O.SELECT,
                     lambda a, b: mt.where(_tile_of(a, b) > 0.0, a, b),
                     lambda a, b: torch.where((a if a.dim() else b) > 0, a, b), BINARY))
    casts = [(F32, F16), (F16, F32), (F32, BF16), (BF16, F32), (F32, I32), (I32, F32),
             (BF16, F16)]
    for s, d in casts:
        ref = (lambda a: torch.round(a)) if d.is_int else (lambda a: a)
        out.append(Entry(f"cast_{s.short}_{d.short}", O.CAST,
                         lambda a, d=d: a.astype(d), ref, ("unary",), dtypes=(s,), out_dtype=d))
    for dt in (F32, F16):  # a comparison's mask as numbers
        out.append(Entry(f"cast_bool_{dt.short}", O.CAST,
                         lambda a, dt=dt: (a > 0.0).astype(dt), lambda a: (a > 0).float(),
                         ("unary",), dtypes=(dt,), out_dtype=dt))
    out.append(Entry("full", O.FULL, lambda a: mt.full(a.shape, 0.75, a.dtype),
                     lambda a: torch.full(a.shape, 0.75), ("unary",)))
    out.append(Entry("broadcast_to", O.BROADCAST, lambda a, b: mt.broadcast_to(b, a.shape),
                     lambda a, b: b.expand(a.shape), ("row", "col")))
    out.append(Entry("transpose", O.TRANSPOSE, lambda a: a.T, lambda a: a.T, ("unary",)))
    out.append(Entry("reshape", O.RESHAPE, lambda a: a.reshape(TR * 2, TC // 2),
                     lambda a: a.reshape(TR * 2, TC // 2), ("unary",)))
    out.append(Entry("reshape_col", O.RESHAPE, lambda a, b: b.reshape(1, TR),
                     lambda a, b: b.reshape(1, TR), ("col",)))
    for dt in (I32, F32):
        out.append(Entry(f"arange_{dt.short}", O.ARANGE, lambda a, dt=dt: mt.arange(TC, dt),
                         lambda a: torch.arange(TC).float(), ("unary",), dtypes=(F32,),
                         out_dtype=dt))
    return out


ENTRIES = _generated() + _others()
assert len({e.name for e in ENTRIES}) == len(ENTRIES), "two entries share a name"


def test_every_vector_op_is_covered():
    """A vector op that is neither generated nor listed in `_others` fails here."""
    covered = {e.op for e in ENTRIES}
    vector = [d for d in all_ops() if d.kind is OpKind.PURE
              and (d.unit is Unit.VECTOR or d is O.FULL)]
    missing = [d.name for d in vector if d not in covered]
    assert not missing, f"vector ops with no coverage entry: {missing} (add to _others)"


# ---------------------------------------------------------------- batches: one kernel each

@dataclass(frozen=True)
class Item:
    """An entry in one operand case: one output of a batch kernel."""

    entry: Entry
    case: str

    @property
    def id(self) -> str:
        return f"{self.entry.name}__{self.case}"

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k in CASES[self.case] if k is not None)

    def params(self) -> list[tuple[str, str]]:
        """(input parameter, kind) of each operand."""
        sides = [s for s, k in zip("ab", CASES[self.case]) if k is not None]
        return [(f"{_PARAM[s, k]}_{self.entry.domain}", k) for s, k in zip(sides, self.kinds)]


_PARAM = {("a", "tile"): "x", ("a", "row"): "xr", ("a", "scalar"): "sa",
          ("b", "tile"): "z", ("b", "row"): "zr", ("b", "col"): "zc", ("b", "scalar"): "s"}
_KIND = {p: k for (_, k), p in _PARAM.items()}
_DIMS = {"tile": ("R", "C"), "row": (1, "C"), "col": ("R", 1)}
_TILE = {"tile": (TR, TC), "row": (1, TC), "col": (TR, 1)}


def _out_layout(shape: tuple[int, ...]) -> list[tuple[str, int, object]]:
    """Where each out tile goes in its GM tensor: per axis (block index "i" or "j", the
    tile extent, the GM extent: a dim name, or an int where the tile is stored whole).
    Tile extents TR and TC land at the tensor's ragged R and C (clipped); other extents
    are stored whole, tile after tile. A 1-d tile gets a leading row per row block."""
    if len(shape) == 1:
        (n,) = shape
        return [("i", 1, NRB), ("j", n, "C" if n == TC else NCB * n)]
    lay = []
    for ax, n in enumerate(shape):
        if n == TR:
            lay.append(("i", n, "R"))
        elif n == TC:
            lay.append(("j", n, "C"))
        else:
            blk = "ij"[ax]
            lay.append((blk, n, (NRB if blk == "i" else NCB) * n))
    if lay[0][0] == lay[1][0]:  # e.g. a (1, TR) tile: both axes along the rows
        lay = [("i", shape[0], NRB * shape[0]), ("j", shape[1], NCB * shape[1])]
    return lay


def _gm_extent(ext) -> int:
    return {"R": R, "C": C}.get(ext, ext)


class Batch:
    """The items of one operand dtype: their inputs (shared where an operand kind and
    domain agree), the kernel computing a subset of them, the reference."""

    def __init__(self, dt: DType, items: list[Item]) -> None:
        self.dt, self.items = dt, items
        self.id = dt.short
        self.seed = zlib.crc32(self.id.encode()) ^ SALT
        gen = torch.Generator().manual_seed(self.seed)
        self.inputs: dict[str, object] = {}  # param name -> tensor or float
        for name, kind in sorted({p for it in items for p in it.params()}):
            if kind == "scalar":
                self.inputs[name] = float(_sample(_domain(name), (1,), dt, gen).float()[0])
            else:
                shape = [_gm_extent(d) for d in _DIMS[kind]]
                self.inputs[name] = _sample(_domain(name), shape, dt, gen)
        self.shapes = {it.id: tuple(self._ref_tile(it, 0, 0).shape) for it in items}
        self.results: dict[str, dict] = {}  # backend -> item id -> outputs or error

    # ------------------------------------------------------------ the kernel
    def kernel(self, items: list[Item]):
        names = sorted({n for it in items for n, _ in it.params()})
        kw_only = inspect.Parameter.KEYWORD_ONLY
        params = [inspect.Parameter(n, kw_only, annotation=ScalarSpec(F32) if isinstance(
            self.inputs[n], float) else TensorSpec(_DIMS[_KIND[n.split("_")[0]]], self.dt,
                                                   Role.IN)) for n in names]
        for it in items:
            dims = tuple(ext if isinstance(ext, str) else f"{it.id}_{ax}"
                         for ax, (_, _, ext) in enumerate(_out_layout(self.shapes[it.id])))
            params.append(inspect.Parameter(f"y_{it.id}", kw_only, annotation=TensorSpec(
                dims, it.entry.out_dtype or self.dt, Role.OUT)))
        params += [inspect.Parameter(c, kw_only, annotation=mt.const, default=v)
                   for c, v in (("TR", TR), ("TC", TC))]
        rows_of = next(n for n in names if _KIND[n.split("_")[0]] in ("tile", "col"))
        cols_of = next(n for n in names if _KIND[n.split("_")[0]] in ("tile", "row"))

        def body(**kw):
            nc = mt.cdiv(kw[cols_of].shape[1], kw["TC"])
            for blk in mt.spmd(mt.cdiv(kw[rows_of].shape[0], kw["TR"]) * nc):
                ij = {"i": blk // nc, "j": blk % nc}
                loaded: dict = {}
                for it in items:
                    args = [self._operand(kw, ij, loaded, n, k, it.entry.load_pad)
                            for n, k in it.params()]
                    y = self._out_region(kw[f"y_{it.id}"], it, ij)
                    mt.store(y, it.entry.fn(*args))

        body.__signature__ = inspect.Signature(params)
        body.__name__ = f"cov_{self.id}"
        return mt.kernel(body)

    @staticmethod
    def _operand(kw, ij, loaded, name: str, kind: str, pad: float):
        """An operand for block ij (a tile loaded once per pad)."""
        if kind == "scalar":
            return kw[name]
        if (name, pad) not in loaded:
            t = kw[name]
            r0, c0 = ij["i"] * TR, ij["j"] * TC
            reg = {"tile": t[r0:r0 + TR, c0:c0 + TC], "row": t[0:1, c0:c0 + TC],
                   "col": t[r0:r0 + TR, 0:1]}[kind]
            loaded[name, pad] = mt.load(reg, pad=pad)
        return loaded[name, pad]

    def _out_region(self, y, it: Item, ij):
        (b0, n0, _), (b1, n1, _) = _out_layout(self.shapes[it.id])
        o0, o1 = ij[b0] * n0, ij[b1] * n1
        if len(self.shapes[it.id]) == 1:
            return y[o0, o1:o1 + n1]
        return y[o0:o0 + n0, o1:o1 + n1]

    def args(self, items: list[Item], device: str = "cpu") -> list:
        names = sorted({n for it in items for n, _ in it.params()})
        out = [self.inputs[n] for n in names]
        out = [v.clone().to(device) if isinstance(v, torch.Tensor) else v for v in out]
        for it in items:
            shape = [_gm_extent(ext) for _, _, ext in _out_layout(self.shapes[it.id])]
            out.append(torch.full(shape, 7, device=device,
                                  dtype=TORCH_DTYPE[it.entry.out_dtype or self.dt]))
        return out

    @staticmethod
    def outputs(items: list[Item], args: list) -> dict:
        return dict(zip((it.id for it in items), args[len(args) - len(items):]))

    # ------------------------------------------------------------ the reference
    def _ref_tile(self, it: Item, i: int, j: int) -> torch.Tensor:
        """The entry's torch reference on the (padded) tiles of block (i, j)."""
        r0, c0 = i * TR, j * TC
        tiles = []
        for name, kind in it.params():
            v = self.inputs[name]
            if kind == "scalar":
                tiles.append(torch.tensor(v, dtype=torch.float32))
                continue
            t = v.float()
            part = {"tile": t[r0:r0 + TR, c0:c0 + TC], "row": t[0:1, c0:c0 + TC],
                    "col": t[r0:r0 + TR, 0:1]}[kind]
            tile = torch.full(_TILE[kind], it.entry.load_pad)
            tile[:part.shape[0], :part.shape[1]] = part
            tiles.append(tile)
        return it.entry.ref(*tiles)

    def reference(self, it: Item) -> torch.Tensor:
        lay = _out_layout(self.shapes[it.id])
        out = torch.full([_gm_extent(ext) for _, _, ext in lay], 7.0)
        for i in range(NRB):
            for j in range(NCB):
                t = self._ref_tile(it, i, j).float()
                t = t[None] if t.dim() == 1 else t
                ij = {"i": i, "j": j}
                sl = [slice(ij[b] * n, min(ij[b] * n + n, _gm_extent(ext)))
                      for b, n, ext in lay]
                out[tuple(sl)] = t[:sl[0].stop - sl[0].start, :sl[1].stop - sl[1].start]
        return out.to(TORCH_DTYPE[it.entry.out_dtype or self.dt])


def _domain(param: str) -> str:
    return param.split("_", 1)[1]


def _sample(domain: str, shape, dt: DType, gen) -> torch.Tensor:
    if dt is I32:
        return torch.randint(-1000, 1000, shape, generator=gen, dtype=torch.int32)
    if domain == "positive":
        v = torch.rand(shape, generator=gen) * 4 + 0.25
    elif domain == "nonzero":
        sign = torch.randint(0, 2, shape, generator=gen) * 2 - 1
        v = (torch.rand(shape, generator=gen) * 1.5 + 0.5) * sign
    elif domain == "small_int":
        v = torch.randint(-2, 3, shape, generator=gen).float()
    elif domain == "wide":
        v = torch.randn(shape, generator=gen) * 300
    else:
        v = torch.randn(shape, generator=gen)
    return v.to(TORCH_DTYPE[dt])


# ---------------------------------------------------------------- running the batches

ITEMS = {(e.name, case, dt): Item(e, case) for e in ENTRIES for case in e.cases
         for dt in e.dtypes}
BATCHES = {dt: Batch(dt, [it for (_, _, d), it in ITEMS.items() if d is dt])
           for dt in dict.fromkeys(d for _, _, d in ITEMS)}
BACKEND_WORD = {"sim": "simulator", "triton": "Triton", "ascendc": "Ascend C"}


def _generate(b: Batch, backend: str, items: list[Item]) -> None:
    """Compile and generate code only: cheap, and enough to find an unsupported op."""
    k = b.kernel(items)
    if backend == "sim":
        mt.compile(k)
    elif backend == "triton":
        _ = mt.compile(k, target="cuda").code
    else:
        _ = mt.compile(k, target="npu").ascendc


def _execute(b: Batch, backend: str, items: list[Item], tmp) -> dict:
    k = b.kernel(items)
    if backend == "ascendc":
        from test_ascendc_cpu import run_cpu

        tmp.mkdir(parents=True)
        return b.outputs(items, run_cpu(k, b.args(items), tmp))
    args = b.args(items, DEV if backend == "triton" else "cpu")
    mt.run_jit(k, *args, target="cuda" if backend == "triton" else "sim")
    return {n: t.cpu() for n, t in b.outputs(items, args).items()}


def _run(b: Batch, backend: str, items: list[Item], tmp) -> dict:
    """item id -> its output, or the exception its kernel raised. A failed batch is
    split: items whose code generation fails alone are set apart (no build), then the
    rest run together again, or, if none was set apart, as two halves."""
    try:
        return _execute(b, backend, items, tmp / f"{len(items)}_{items[0].id}")
    except Exception as err:  # noqa: BLE001 (recorded per item, asserted by each test)
        if len(items) == 1:
            return {items[0].id: err}
    res, ok = {}, []
    for it in items:
        try:
            _generate(b, backend, [it])
            ok.append(it)
        except Exception as err:  # noqa: BLE001
            res[it.id] = err
    if len(ok) < len(items):
        return res | (_run(b, backend, ok, tmp) if ok else {})
    half = len(items) // 2
    return _run(b, backend, items[:half], tmp) | _run(b, backend, items[half:], tmp)


def _result(b: Batch, backend: str, tmp_path_factory) -> dict:
    if backend not in b.results:
        b.results[backend] = _run(b, backend, b.items,
                                  tmp_path_factory.mktemp(f"{b.id}_{backend}"))
    return b.results[backend]


def _expected(name: str, backend: str, case_id: str) -> list[str]:
    return [why for (pe, pb, pc), why in EXPECTED_UNSUPPORTED.items()
            if pb == backend and fnmatch.fnmatchcase(name, pe)
            and fnmatch.fnmatchcase(case_id, pc)]


def _params():
    for (name, case, dt) in ITEMS:
        for backend in BACKENDS:
            yield pytest.param(name, case, dt, backend, id=f"{name}-{case}_{dt.short}-{backend}")


@pytest.mark.parametrize("name,case,dt,backend", list(_params()))
def test_op(name, case, dt, backend, tmp_path_factory):
    if backend == "triton":
        pytest.importorskip("triton")
    if backend == "ascendc" and shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    it, b = ITEMS[name, case, dt], BATCHES[dt]
    case_id = f"{case}_{dt.short}"
    where = f"{name} on {backend}, case {case_id} (seed {b.seed}, MIXTILE_TEST_SEED={SALT})"
    got = _result(b, backend, tmp_path_factory)[it.id]
    expected = _expected(name, backend, case_id)
    if isinstance(got, BaseException):
        if not isinstance(got, mt.UnsupportedError):
            raise AssertionError(f"{where}: raised {type(got).__name__}") from got
        msg, op = str(got), it.entry.op.name
        assert re.search(rf"\b{re.escape(op)}\b", msg), f"{where}: the error does not name " \
                                                         f"`{op}`: {msg}"
        assert BACKEND_WORD[backend] in msg, f"{where}: the error does not name the backend: {msg}"
        assert got.fix, f"{where}: the error has no fix: {msg}"
        assert expected, f"{where}: newly unsupported (add it to EXPECTED_UNSUPPORTED " \
                         f"if that is right): {msg}"
        return
    assert not expected, f"{where}: now supported; remove it from EXPECTED_UNSUPPORTED " \
                         f"({expected[0]})"
    if backend == "sim":
        want, against = b.reference(it), "the torch reference"
    else:
        sim = _result(b, "sim", tmp_path_factory)[it.id]
        assert not isinstance(sim, BaseException), f"{where}: no simulator result: {sim}"
        want, against = sim, "the simulator"
    cmp = compare(f"y_{it.id}", got, want, None, None)
    assert cmp.passed, f"{where}: differs from {against}: {cmp}"


def test_expected_unsupported_entries_match_a_test():
    ids = [(n, b, f"{c}_{d.short}") for n, c, d, b in (p.values for p in _params())]
    for pe, pb, pc in EXPECTED_UNSUPPORTED:
        assert any(pb == b and fnmatch.fnmatchcase(n, pe) and fnmatch.fnmatchcase(c, pc)
                   for n, b, c in ids), f"stale EXPECTED_UNSUPPORTED entry {(pe, pb, pc)}"
