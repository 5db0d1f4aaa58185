"""Walks a lowered kernel and writes Ascend C: the entry, tiling reads, GM views, the
launch block, core regions, loops, scalar index math, on-chip buffers, flags and pipe
syncs. Memory, cube and vector ops are emitted by `rules.RULES` (keyed by OpDef).

Conventions of the emitted code
- Every on-chip space a core uses is one `TBuf<TPosition::X>` of the size PlanMemory
  computed; a tile is `buf.GetWithOffset<T>(elements, planned byte address)`.
- A UB tile (R, C) is dense row-major; a tile in L1/L0A/L0B/L0C is in 16x16 fractals
  (NZ), its extents rounded up to 16 (Target.tile_bytes).
- Symbolic dims and scalar arguments come from a tiling buffer of int64 slots (a float
  argument is an f32 in the low half of its slot), in `AscendCKernel.tiling` order.
- GM tensors are contiguous row-major; their strides are computed from the dims.
- A mixed kernel is KERNEL_TYPE_MIX_AIC_1_2: the cluster index is
  GetBlockIdx() / GetTaskRation() on both core types, the AIV lane GetSubBlockIdx().
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from mixtile.errors import CapacityError, UnsupportedError
from mixtile.ir.core import Block, Kernel, Op, Value
from mixtile.ir.hostval import host_scalars
from mixtile.ir.ops import (
    CONST,
    CORE,
    DIM,
    FENCE,
    FIXPIPE,
    FOR,
    FULL,
    PIPE_SYNC,
    SADD,
    SCAST,
    SDIV,
    SEQ,
    SET_FLAG,
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
    SYNCALL,
    WAIT_FLAG,
    YIELD,
)
from mixtile.ir.types import (
    CoreRole,
    CoreType,
    DType,
    MemSpace,
    Pipe,
    Role,
    SyncMode,
    TensorType,
    TileType,
)
from mixtile.target import Target

CTYPE = {DType.F32: "float", DType.F16: "half", DType.BF16: "bfloat16_t", DType.I8: "int8_t",
         DType.I32: "int32_t", DType.I64: "int64_t", DType.BOOL: "uint8_t"}
POSITION = {MemSpace.UB: "VECCALC", MemSpace.L1: "A1", MemSpace.L0A: "A2",
            MemSpace.L0B: "B2", MemSpace.L0C: "CO1", MemSpace.BT: "C2"}
BUFFER = {MemSpace.UB: "ubBuf", MemSpace.L1: "l1Buf", MemSpace.L0A: "l0aBuf",
          MemSpace.L0B: "l0bBuf", MemSpace.L0C: "l0cBuf", MemSpace.BT: "btBuf"}
PIPE = {p: f"PIPE_{p.value}" for p in Pipe}
KERNEL_TYPE = {CoreType.MIX: "KERNEL_TYPE_MIX_AIC_1_2", CoreType.AIC: "KERNEL_TYPE_AIC_ONLY",
               CoreType.AIV: "KERNEL_TYPE_AIV_ONLY", CoreType.NONE: "KERNEL_TYPE_AIV_ONLY"}
# A one-unit kernel with a hard SyncAll declares the MIX_*_1_0 type (the SyncAll docs'
# constraints: "pure Vector / pure Cube kernels use KERNEL_TYPE_MIX_AIV_1_0 / _AIC_1_0").
SYNCALL_KERNEL_TYPE = {CoreType.AIC: "KERNEL_TYPE_MIX_AIC_1_0",
                       CoreType.AIV: "KERNEL_TYPE_MIX_AIV_1_0",
                       CoreType.NONE: "KERNEL_TYPE_MIX_AIV_1_0"}
_SCALAR = {SADD: "({0} + {1})", SSUB: "({0} - {1})", SMUL: "({0} * {1})",
           SDIV: "({0} / {1})", SFLOORDIV: "FloorDiv({0}, {1})",
           SMOD: "FloorMod({0}, {1})", SMIN: "Min({0}, {1})", SMAX: "Max({0}, {1})",
           SLT: "({0} < {1})", SLE: "({0} <= {1})", SGT: "({0} > {1})",
           SGE: "({0} >= {1})", SEQ: "({0} == {1})", SNE: "({0} != {1})",
           SSELECT: "({0} ? {1} : {2})"}
_GENERATED = re.compile(r"(v|t|c|i|nr|nc|blk|lane|zero|mm|fp|row|tmp|cmp|s|acc|zop)\d+|[rci]")
_CPP_RESERVED = frozenset("""
    alignas alignof and asm auto bool break case catch char class const constexpr continue
    default delete do double else enum explicit export extern false float for friend goto if
    inline int long mutable namespace new noexcept not nullptr operator or private protected
    public register return short signed sizeof static struct switch template this throw true
    try typedef typename union unsigned using virtual void volatile while xor half
    bfloat16_t int8_t int32_t int64_t uint8_t tiling pipe tilingGm tilingF ubBuf l1Buf
    l0aBuf l0bBuf l0cBuf btBuf FloorDiv FloorMod Min Max Clamp0 AscendC
""".split())
# C library names an entry symbol must not take (extern "C": it would clash at link time)
_LIBC = frozenset("""
    abs div labs exp exp2 expm1 log log2 log10 log1p sqrt cbrt pow sin cos tan asin acos atan
    atan2 sinh cosh tanh erf erfc round floor ceil trunc fabs fmax fmin fmod remainder hypot
    lgamma tgamma exit abort free malloc calloc realloc main printf puts memcpy memset strlen
    rand srand time clock signal raise
""".split())
_PRELUDE = """\
namespace {
// C++ `/` and `%` truncate; mixtile's index math floors (as Python does).
__aicore__ inline int64_t FloorDiv(int64_t a, int64_t b)
{
    const int64_t q = a / b;
    return (q * b != a && ((a < 0) != (b < 0))) ? q - 1 : q;
}
__aicore__ inline int64_t FloorMod(int64_t a, int64_t b) { return a - FloorDiv(a, b) * b; }
template <typename T> __aicore__ inline T Min(T a, T b) { return a < b ? a : b; }
template <typename T> __aicore__ inline T Max(T a, T b) { return a < b ? b : a; }
__aicore__ inline int64_t Clamp0(int64_t n, int64_t hi) { return n < 0 ? 0 : (n > hi ? hi : n); }
}  // namespace
"""


def ctype(dt: DType) -> str:
    try:
        return CTYPE[dt]
    except KeyError:
        raise UnsupportedError(f"the Ascend C backend has no {dt.short} element type",
                               fix="use f32, f16, bf16, i8 or i32 tensors") from None


def literal(v, dt: DType) -> str:
    """A C++ literal of type `dt`."""
    if dt is DType.BOOL:
        return "true" if v else "false"
    if dt.is_float:
        v = float(v)
        if math.isnan(v):
            text = "__builtin_nanf(\"\")"
        elif math.isinf(v):
            text = "__builtin_inff()" if v > 0 else "-__builtin_inff()"
        else:
            text = repr(float(np.float32(v))) + "f"
        return text if dt is DType.F32 else f"static_cast<{ctype(dt)}>({text})"
    return f"static_cast<{ctype(dt)}>({int(v)})" if dt is not DType.I64 else str(int(v))


@dataclass
class TilingField:
    """One int64 slot of the tiling buffer: a dim of a tensor or a scalar argument."""

    name: str
    param: str
    axis: int | None = None  # None: the scalar argument `param`
    is_float: bool = False


@dataclass
class AscendCKernel:
    """An emitted kernel: the source plus what the host needs to launch it."""

    name: str
    source: str
    kernel_type: str
    core: CoreType
    params: list[tuple[str, Role, str]]  # GM arguments in order: (name, role, C++ type)
    tiling: list[TilingField]
    clusters: int  # of the target: a kernel with a hard SyncAll must launch exactly this
    has_syncall: bool
    static_grid: int | None  # the launch's block count when it is a constant
    capacity: dict[MemSpace, int] = field(default_factory=dict)
    buffers: dict[str, dict[MemSpace, int]] = field(default_factory=dict)  # per core
    kernel: Kernel | None = field(default=None, repr=False)
    # the entry's first argument is the hardware sync (FFTS) base address, a uint64_t the
    # host gets from aclrtGetHardwareSyncAddr: cross-core flags and SyncAll need it (A2/A3)
    sync_base: bool = False
    # (tensor, axis, most elements, what): row strides a parameter field holds in 16 bits
    # (Nd2NzParams.srcDValue), checked on the host before a launch (check_launch)
    stride_limits: list[tuple[str, int, int, str]] = field(default_factory=list)

    def block_dim(self, shapes: dict[str, tuple[int, ...]], scalars: dict | None = None) -> int:
        """The launch's block count (clusters of a mixed kernel) for these tensor shapes."""
        return launch_blocks(self.kernel, shapes, scalars or {})

    def check_launch(self, shapes: dict[str, tuple[int, ...]]) -> None:
        """Refuse shapes whose strides a 16-bit parameter field cannot hold (it would wrap
        and move the wrong rows)."""
        for name, axis, most, what in self.stride_limits:
            stride = math.prod(shapes[name][axis + 1:])
            if stride > most:
                raise UnsupportedError(
                    f"`{name}` of shape {list(shapes[name])} has a row stride of {stride} "
                    f"elements; {what} holds at most {most}", fix="split the tensor's last "
                    "axis, or load it through UB (a vector load) instead of the cube path")

    def tiling_values(self, shapes: dict[str, tuple[int, ...]],
                      scalars: dict | None = None) -> np.ndarray:
        """The tiling buffer (int64 slots) for these tensor shapes and scalar arguments."""
        out = np.zeros(max(len(self.tiling), 1), dtype=np.int64)
        for i, f in enumerate(self.tiling):
            if f.axis is not None:
                out[i] = shapes[f.param][f.axis]
            elif f.is_float:
                out[i] = int(np.array([float(scalars[f.param])], np.float32).view(np.int32)[0])
            else:
                out[i] = int(scalars[f.param])
        return out


def entry_name(name: str) -> str:
    """The kernel's entry symbol: its name, with `_kernel` appended when that is a C++
    keyword or a C library function (extern "C" symbols share one namespace)."""
    if name in _LIBC or name in _CPP_RESERVED or _GENERATED.fullmatch(name):
        return name + "_kernel"
    return name


def launch_blocks(kernel: Kernel, shapes: dict, scalars: dict) -> int:
    """The kernel's `spmd` count (its blockDim) for these tensor shapes and scalars."""
    spmd = next((op for op in kernel.body.ops if op.opdef is SPMD), None)
    if spmd is None:
        raise UnsupportedError(f"kernel {kernel.name} has no spmd launch")
    dims = {(n, a): d for n, shape in shapes.items() for a, d in enumerate(shape)}
    return int(host_scalars(kernel, dims, scalars)[spmd.operands[0]])


class Emitter:
    """Emits one kernel. Rules call back into it (`ref`, `out`, `tensor`, `tmp`...)."""

    def __init__(self, kernel: Kernel, target: Target) -> None:
        from mixtile.codegen.ascendc.rules import RULES, tmp_bytes

        self.k = kernel
        self.t = target
        self.rules = RULES
        self.tmp_bytes = tmp_bytes
        self.lines: list[str] = []
        self.ind = 1
        self.names: dict[Value, str] = {}
        self.addrs: dict[Value, int] = {}  # tile -> planned byte address
        self.n = 0
        self.core = CoreType.MIX if kernel.core is CoreType.MIX else kernel.core
        self.tiling: list[TilingField] = []
        self.dims: dict[tuple[str, int], str] = {}
        # L0C accumulators whose first Mmad initialises them: value -> (C++ flag, BT bias)
        self.zero_flag: dict[Value, tuple] = {}
        self.zero_mm: dict[str, Op] = {}  # flag -> the matmul that accumulates under it
        self.bias: dict[Value, Value] = {}  # accumulator (zero full) -> its BT bias tile
        self.tmp_base = 0
        self.buffers: dict[str, dict[MemSpace, int]] = {}
        self.has_syncall = False
        self.static_grid: int | None = None
        self.core_type = self.core  # the core whose program is being emitted
        self.last_pipe: Pipe | None = None
        syncall = any(op.opdef is SYNCALL for op in kernel.walk())
        self.sync_base = syncall or self.core is CoreType.MIX
        self.stride_limits: list[tuple[str, int, int, str]] = []
        self.kernel_type = (SYNCALL_KERNEL_TYPE[self.core] if syncall and self.core in
                            SYNCALL_KERNEL_TYPE else KERNEL_TYPE[self.core])

    # ------------------------------------------------------------ helpers for rules
    def c(self, name: str) -> str:
        """The C++ identifier of a kernel parameter: its own name unless that is a C++
        keyword or could meet a name the emitter makes (`tiling`, `pipe`, `v12`...)."""
        if name in _CPP_RESERVED or _GENERATED.fullmatch(name) or name.startswith("__"):
            return name + "_"
        return name

    def out(self, text: str) -> None:
        self.lines.append("    " * self.ind + text if text else "")

    def fresh(self, prefix: str = "v") -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def ref(self, v: Value) -> str:
        if v in self.names:
            return self.names[v]
        if v.owner is None:
            return self.c(v.hint)
        raise UnsupportedError(f"value {v} used before the Ascend C emitter named it")

    def define(self, v: Value, text: str, prefix: str = "v") -> str:
        """Declare a scalar result `v = text`."""
        name = self.fresh(prefix)
        t = v.type
        cty = "bool" if t.dtype is DType.BOOL else ctype(t.dtype)
        self.out(f"const {cty} {name} = {text};")
        self.names[v] = name
        return name

    def handle(self, space: MemSpace, dt: DType, elems: int, addr) -> str:
        """A LocalTensor expression for `elems` elements at byte `addr` of `space`."""
        return f"{BUFFER[space]}.GetWithOffset<{ctype(dt)}>({elems}, {addr})"

    def tile(self, v: Value, addr: int | None = None, prefix: str = "t") -> str:
        """Declare the LocalTensor of tile `v` at its planned address."""
        t: TileType = v.type
        if addr is None:
            addr = v.op.attrs["addr"]
        name = self.fresh(prefix)
        elems = self.t.tile_bytes(t) // t.dtype.itemsize
        self.out(f"LocalTensor<{ctype(t.dtype)}> {name} = "
                 f"{self.handle(t.space, t.dtype, elems, addr)};")
        self.names[v] = name
        self.addrs[v] = addr
        return name

    def tmp(self, dt: DType, elems: int, offset: int = 0) -> str:
        """Scratch UB after the planned tiles (rules ask for its size via tmp_bytes)."""
        return self.handle(MemSpace.UB, dt, elems, self.tmp_base + offset)

    def tensor(self, v: Value) -> tuple[str, list[str], list[str]]:
        """(GlobalTensor name, dim expressions, stride expressions) of a GM parameter."""
        name = self.c(v.hint)
        rank = len(v.type.shape)
        return (f"{name}Gm", [self.dim(v, a) for a in range(rank)],
                [f"{name}_s{a}" for a in range(rank)])

    def dim(self, v: Value, axis: int) -> str:
        d = v.type.shape[axis]
        return str(d) if isinstance(d, int) else self.dims[(v.hint, axis)]

    def vec_sync(self, src: str, dst: str) -> None:
        """An ordering a rule needs inside its own instruction sequence."""
        if src == dst:
            self.out(f"PipeBarrier<PIPE_{src}>();")
        else:
            self.out(f"SetFlag<HardEvent::{src}_{dst}>(EVENT_ID0);")
            self.out(f"WaitFlag<HardEvent::{src}_{dst}>(EVENT_ID0);")

    # ------------------------------------------------------------ kernel
    def run(self) -> AscendCKernel:
        k = self.k
        self._scan_bias()
        gm = [p for p in k.params if isinstance(p.value.type, TensorType)]
        sc = [p for p in k.params if not isinstance(p.value.type, TensorType)]
        for p in gm:
            for a, d in enumerate(p.value.type.shape):
                if not isinstance(d, int):
                    self.dims[(p.name, a)] = f"{self.c(p.name)}_d{a}"
                    self.tiling.append(TilingField(f"{self.c(p.name)}_d{a}", p.name, a))
        for p in sc:
            self.tiling.append(TilingField(self.c(p.name), p.name, None,
                                           p.value.type.dtype.is_float))
        if self.sync_base:
            # first: every cross-core flag and SyncAll goes through the FFTS registers
            # (CATLASS's kernels set it as their first statement; set_ffts_base_addr docs)
            self.out("SetSyncBaseAddr(fftsAddr);")
        self.out(f"KERNEL_TASK_TYPE_DEFAULT({self.kernel_type});")
        self.out("GlobalTensor<int64_t> tilingGm;")
        self.out("tilingGm.SetGlobalBuffer((__gm__ int64_t*)tiling);")
        launches = [op for op in k.body.ops if op.opdef is SPMD]
        if len(launches) > 1:
            raise UnsupportedError(
                f"kernel {k.name} has {len(launches)} spmd launches; the Ascend C backend "
                "emits one launch per kernel", loc=launches[1].loc,
                fix="split it into one kernel per launch (run them one after another), or "
                    "use one launch with mt.syncall() between the phases")
        if any(f.is_float for f in self.tiling):
            self.out("GlobalTensor<float> tilingF;")
            self.out("tilingF.SetGlobalBuffer((__gm__ float*)tiling);")
        for i, f in enumerate(self.tiling):
            if f.is_float:  # little-endian: the f32 sits in the low half of slot i
                self.out(f"const float {f.name} = tilingF.GetValue({2 * i});")
            else:
                self.out(f"const int64_t {f.name} = tilingGm.GetValue({i});")
        for p in gm:
            cty = ctype(p.value.type.dtype)
            n = self.c(p.name)
            self.out(f"GlobalTensor<{cty}> {n}Gm;")
            self.out(f"{n}Gm.SetGlobalBuffer((__gm__ {cty}*){n});")
            shape = p.value.type.shape
            for a in reversed(range(len(shape))):
                s = ("1" if a == len(shape) - 1
                     else f"{n}_s{a + 1} * {self.dim(p.value, a + 1)}")
                self.out(f"const int64_t {n}_s{a} = {s};")
        for p in sc:
            self.names[p.value] = self.c(p.name)
        self.out("TPipe pipe;")
        self.block(k.body)
        args = ", ".join(["uint64_t fftsAddr"] * self.sync_base
                         + [f"GM_ADDR {self.c(p.name)}" for p in gm] + ["GM_ADDR tiling"])
        entry = entry_name(k.name)
        head = [f"// Generated by mixtile from kernel `{k.name}` for {self.t.name} "
                f"({'dav-c310' if self.t.name == 'a5' else 'dav-c220'}); do not edit.",
                "// Ascend C API as of CANN 8.0.RC2 .. 9.0 (see docs/ascendc.md).",
                '#include "kernel_operator.h"', "", "using namespace AscendC;", "",
                _PRELUDE, f'extern "C" __global__ __aicore__ void {entry}({args})', "{"]
        src = "\n".join(head + self.lines + ["}", ""])
        return AscendCKernel(
            entry, src, self.kernel_type, self.core,
            [(p.name, p.role, ctype(p.value.type.dtype)) for p in gm], self.tiling,
            self.t.clusters, self.has_syncall, self.static_grid, dict(self.t.capacity),
            self.buffers, k, self.sync_base, sorted(set(self.stride_limits)))

    def _scan_bias(self) -> None:
        for op in self.k.walk():
            if op.opdef is FIXPIPE and op.attrs.get("has_bias"):
                acc = op.operands[1]
                z = acc.op
                if z is not None and z.opdef is FOR:
                    z = z.operands[3 + acc.index].op
                if z is None or not z.attrs.get("bias_init"):
                    raise UnsupportedError("a fused bias reached the Ascend C emitter without "
                                           "BiasToMmad", loc=op.loc,
                                           fix='compile with target="npu"')
                self.bias[z.result] = op.operands[2]

    # ------------------------------------------------------------ regions
    def block(self, blk: Block) -> None:
        for op in blk.ops:
            self.op(op)

    def op(self, op: Op) -> None:
        d = op.opdef
        if d is SPMD:
            return self.spmd(op)
        if d is CORE:
            return self.core_region(op)
        if d is FOR:
            return self.for_loop(op)
        if d is YIELD:
            return None  # handled by for_loop
        if d is CONST:
            t = op.result.type
            self.define(op.result, literal(op.attrs["value"], t.dtype))
            return None
        if d is DIM:
            self.names[op.result] = self.dim(op.operands[0], op.attrs["axis"])
            return None
        if d in _SCALAR:
            self.define(op.result, _SCALAR[d].format(*[self.ref(v) for v in op.operands]))
            return None
        if d is SCAST:
            dt = op.attrs["dtype"]
            self.define(op.result, f"static_cast<{ctype(dt)}>({self.ref(op.operands[0])})")
            return None
        if d is PIPE_SYNC:
            src, dst = op.attrs["src"], op.attrs["dst"]
            self.vec_sync(src.value, dst.value)
            return None
        if d is FENCE:
            self.out("PipeBarrier<PIPE_ALL>();  // fence: this core's GM writes are done")
            return None
        if d is SYNCALL:
            return self.syncall(op)
        if d is SET_FLAG:
            return self.set_flag(op)
        if d is WAIT_FLAG:
            self.out(f"CrossCoreWaitFlag({op.attrs['flag']});")
            return None
        rule = self.rules.get(op.opdef)
        if rule is None:
            raise UnsupportedError(f"the Ascend C backend has no rule for op {d.name!r}",
                                   loc=op.loc, fix="rewrite it with supported ops, or add a "
                                   "rule in mixtile/codegen/ascendc/rules.py (vector ops: "
                                   "vector_rules.py)")
        for v in op.results:
            if isinstance(v.type, TileType) and "addr" in op.attrs:
                self.tile(v)
        if op.opdef.pipe_of(op) is Pipe.V and self.tmp_bytes(self, op):
            self.vec_sync("V", "V")  # the scratch an earlier rule may still be using
        rule(self, op)
        pipe = op.opdef.pipe_of(op)
        if pipe in (Pipe.MTE2, Pipe.MTE3, Pipe.FIX):
            self.last_pipe = pipe
        return None

    def spmd(self, op: Op) -> None:
        g = self.ref(op.operands[0])
        gop = op.operands[0].op
        if gop is not None and gop.opdef is CONST:
            self.static_grid = int(gop.attrs["value"])
        body = op.regions[0]
        idx = ("GetBlockIdx() / GetTaskRation()" if self.core is CoreType.MIX
               else "GetBlockIdx()")
        blk = self.fresh("blk")
        self.out(f"const int64_t {blk} = {idx};")
        self.names[body.args[0]] = blk
        self.out(f"if ({blk} < {g}) {{")
        self.ind += 1
        guard = self.core in (CoreType.AIC, CoreType.AIV)
        if guard:  # a one-unit kernel built for both core types runs on its own only
            self.out(f"if ASCEND_IS_{self.core.name} {{")
            self.ind += 1
        if self.core is not CoreType.MIX:
            self.declare_buffers(body, self.core)
        self.block(body)
        if guard:
            self.ind -= 1
            self.out("}")
        self.ind -= 1
        self.out("}")

    def core_region(self, op: Op) -> None:
        ct = op.attrs["core"]
        body = op.regions[0]
        self.out(f"if ASCEND_IS_{'AIC' if ct is CoreType.AIC else 'AIV'} {{")
        self.ind += 1
        if body.args:
            lane = self.fresh("lane")
            self.out(f"const int64_t {lane} = GetSubBlockIdx();")
            self.names[body.args[0]] = lane
        self.declare_buffers(body, ct)
        self.last_pipe = None
        self.core_type = ct
        self.block(body)
        self.ind -= 1
        self.out("}")

    def declare_buffers(self, body: Block, ct: CoreType) -> None:
        peak: dict[MemSpace, int] = {}
        tmp = 0
        for op in body.walk():
            tiles = [(v, op.attrs["addr"]) for v in op.results
                     if isinstance(v.type, TileType) and "addr" in op.attrs]
            if op.opdef is FOR:  # addrs: one per carried value, None for scalars
                tiles = [(v, a) for v, a in zip(op.results, op.attrs.get("addrs") or [])
                         if isinstance(v.type, TileType)]
            for v, a in tiles:
                sp = v.type.space
                peak[sp] = max(peak.get(sp, 0), a + self.t.tile_bytes(v.type))
            if op.opdef in self.rules:
                tmp = max(tmp, self.tmp_bytes(self, op))
        if tmp:
            self.tmp_base = -(-peak.get(MemSpace.UB, 0) // 32) * 32
            peak[MemSpace.UB] = self.tmp_base + tmp
        for sp, n in peak.items():
            cap = self.t.capacity.get(sp, 0)
            if n > cap:
                raise CapacityError(
                    f"{sp.value} needs {n} bytes on the {ct.value.upper()} with the Ascend C "
                    f"scratch ({tmp} bytes) but {self.t.name} has {cap}", loc=body.parent.loc,
                    fix="use smaller tile sizes")
        self.buffers[ct.value] = dict(peak)
        for sp in sorted(peak, key=lambda s: list(POSITION).index(s)):
            self.out(f"TBuf<TPosition::{POSITION[sp]}> {BUFFER[sp]};")
            self.out(f"pipe.InitBuffer({BUFFER[sp]}, {peak[sp]});")
        # The TPipe set M_MTE1 events 0-2 on the AIC and would wait them at its end; this
        # program issues its own SetFlag/WaitFlag on those ids: destroy it now (waits and
        # releases them), as CATLASS's Arch::Resource does after its buffer setup. The
        # TBufs keep their addresses (TBuf::GetWithOffset reads only the TBuf's handle).
        self.out("pipe.Destroy();")

    def for_loop(self, op: Op) -> None:
        lb, ub, step = (self.ref(v) for v in op.operands[:3])
        inits = op.operands[3:]
        body = op.regions[0]
        addrs = list(op.attrs.get("addrs") or [])
        carried: list[tuple[Value, Value, str]] = []  # (block arg, result, C++ name)
        for arg, res, init, addr in zip(body.args[1:], op.results, inits, addrs):
            if isinstance(arg.type, TileType):
                name = self.tile(arg, addr, prefix="c")
                self.names[res] = name
                self.addrs[res] = addr
                self.copy_tile(init, name, arg.type, addr)
                if init in self.zero_flag:
                    self.zero_flag[arg] = self.zero_flag[res] = self.zero_flag[init]
                carried.append((arg, res, name))
            else:
                name = self.fresh("c")
                cty = "bool" if arg.type.dtype is DType.BOOL else ctype(arg.type.dtype)
                self.out(f"{cty} {name} = {self.ref(init)};")
                self.names[arg] = self.names[res] = name
                carried.append((arg, res, name))
        iv = self.fresh("i")
        self.names[body.args[0]] = iv
        self.out(f"for (int64_t {iv} = {lb}; {iv} < {ub}; {iv} += {step}) {{")
        self.ind += 1
        self.block(body)
        y = body.ops[-1]
        for (arg, _res, name), v in zip(carried, y.operands):
            if isinstance(arg.type, TileType):
                self.copy_tile(v, name, arg.type, self.addrs[arg])
            else:
                self.out(f"{name} = {self.ref(v)};")
        self.ind -= 1
        self.out("}")

    def copy_tile(self, v: Value, dst: str, t: TileType, addr: int) -> None:
        """Make the carried buffer `dst` (at `addr`) hold tile v; nothing when v already
        lives there (PlanMemory coalesces carried tiles) or is an accumulator's zero start
        (the first Mmad initialises it)."""
        d = v.op
        if d is not None and d.opdef is FULL and t.space is MemSpace.L0C:
            return
        if self.addrs.get(v) == addr:
            return
        if t.space is not MemSpace.UB:
            raise UnsupportedError(f"a loop-carried {t.space.value} tile changes buffer "
                                   "between iterations; the Ascend C backend cannot copy it",
                                   loc=d.loc if d is not None else None)
        self.vec_sync("V", "V")
        if t.dtype.is_float or t.dtype is DType.I32:
            self.out(f"Adds({dst}, {self.ref(v)}, {literal(0, t.dtype)}, {t.numel});")
        else:
            self.out(f"DataCopy({dst}, {self.ref(v)}, {t.numel});")

    # ------------------------------------------------------------ synchronisation
    def syncall(self, op: Op) -> None:
        self.has_syncall = True
        if op.attrs.get("mode", SyncMode.HARD) is not SyncMode.HARD:
            raise UnsupportedError("soft syncall is not emitted by the Ascend C backend yet",
                                   loc=op.loc, fix="use the hard form (grid == clusters)")
        aiv_only = op.attrs.get("core_type") is CoreType.AIV and self.core is not CoreType.MIX
        self.out("SyncAll();" if aiv_only else "SyncAll<false>();")

    def set_flag(self, op: Op) -> None:
        to = op.attrs["to"]
        if to not in (CoreRole.AIC, CoreRole.AIV):
            raise UnsupportedError(f"a flag to {to.value} (one AIV lane) has no Ascend C "
                                   "form on a2/a3 (mode 1 releases only when both lanes set)",
                                   loc=op.loc, fix="signal CoreRole.AIV or CoreRole.AIC")
        # nothing to order yet (a credit at the start): a pipe the core has
        pipe = self.last_pipe or (Pipe.FIX if self.core_type is CoreType.AIC else Pipe.MTE3)
        # mode 2: AIC -> both AIVs of the cluster, or both AIVs -> their AIC; issued on
        # the pipe of the last GM access so it fires only after that access completes
        self.out(f"CrossCoreSetFlag<2, {PIPE[pipe]}>({op.attrs['flag']});")


def generate(kernel: Kernel, target: Target) -> AscendCKernel:
    """Ascend C for a kernel lowered by the Ascend C pipeline."""
    if not kernel.attrs.get("pipe_sync"):
        raise UnsupportedError(f"kernel {kernel.name} was not lowered for Ascend C",
                               fix='compile it with mt.compile(..., target="npu")')
    if target.name == "gpu":
        raise UnsupportedError("the Ascend C backend needs an Ascend target",
                               fix='use compile_cfg arch "a2", "a3" or "a5"')
    from mixtile.codegen.ascendc.check import assert_sound

    ak = Emitter(kernel, target).run()
    assert_sound(ak, target.flag_ids)
    return ak
