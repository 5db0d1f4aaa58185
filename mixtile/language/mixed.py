"""DSL for mixed cube/vector kernels: lane splits, explicit crossings, barriers, target.

In automatic mode nothing here is needed: cube and vector ops written together are
split by the compiler. These functions make the structure explicit where the kernel
needs it (a merge phase after a barrier, work divided by lane id).
"""
from __future__ import annotations

from mixtile.errors import TraceError
from mixtile.ir.core import Block, Param, Value
from mixtile.ir.ops import CORE, DIM, FENCE, MOVE, SET_FLAG, SPLIT_AIV, SPMD, SYNCALL, WAIT_FLAG
from mixtile.ir.types import (
    INDEX,
    CoreRole,
    CoreType,
    DType,
    MemSpace,
    Role,
    SplitMode,
    SyncMode,
    TensorType,
)
from mixtile.language import tracer
from mixtile.language.tracer import (
    ScalarVal,
    TensorVal,
    TileVal,
    emit,
    pop_block,
    push_block,
    user_loc,
)
from mixtile.target import Target


class split_aiv:  # noqa: N801 (used as `with mt.split_aiv(2, mode=...) as lane:`)
    """Divide the enclosed vector work between the two AIV lanes of a cluster.

    SplitMode.UP_DOWN (the automatic default: each lane takes half of every tile's rows)
    and LEFT_RIGHT (half of the columns) apply to the whole launch and need no region, so
    values flow out of them; SplitMode.NONE runs the body on both lanes with `lane` (0 or
    1) for the program to divide the work; its values stay inside.
    """

    def __init__(self, n: int = 2, mode: SplitMode = SplitMode.UP_DOWN) -> None:
        if n != 2:
            raise TraceError(f"split_aiv({n}): a cluster has 2 AIV lanes", loc=user_loc())
        if not isinstance(mode, SplitMode):
            raise TraceError(f"split_aiv mode must be an mt.SplitMode, got {mode!r}",
                             loc=user_loc())
        self.mode = mode
        self.body: Block | None = None

    def __enter__(self):
        if self.mode is not SplitMode.NONE:  # a split of the whole launch, no region
            launch = _launch_op()
            if launch.attrs.get("split", self.mode) is not self.mode:
                raise TraceError("one launch mixes UP_DOWN and LEFT_RIGHT splits",
                                 loc=user_loc(), fix="use one split mode per mt.spmd")
            launch.attrs["split"] = self.mode
            launch.attrs["manual"] = True  # crossings must then be written out
            return None
        self.body = Block([INDEX], ["lane"])
        emit(SPLIT_AIV, [], {"mode": self.mode}, regions=[self.body])
        push_block(self.body)
        return ScalarVal(self.body.args[0])

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self.body is not None and tracer._state.stack and \
                tracer._state.stack[-1] is self.body:
            pop_block()
        return False


def _launch_op():
    st = tracer._state
    if len(st.stack) < 2 or st.stack[1].parent is None or st.stack[1].parent.opdef is not SPMD:
        raise TraceError("mt.split_aiv belongs inside an mt.spmd launch", loc=user_loc())
    return st.stack[1].parent


class on_core:  # noqa: N801 (used as `with mt.on_core(mt.CoreType.AIV) as lane:`)
    """Hand-written work for one core type of the cluster: `mt.CoreType.AIC` (no lane) or
    `mt.CoreType.AIV` (both lanes run it; `lane` is 0 or 1). Inside, `mt.set_flag` /
    `mt.wait_flag` order work between the cores; values stay inside the region."""

    def __init__(self, core: CoreType) -> None:
        if core not in (CoreType.AIC, CoreType.AIV):
            raise TraceError(f"on_core needs mt.CoreType.AIC or AIV, got {core!r}",
                             loc=user_loc())
        _launch_op()
        self.core = core
        self.body = Block([INDEX], ["lane"]) if core is CoreType.AIV else Block()

    def __enter__(self):
        emit(CORE, [], {"core": self.core, "user": True}, regions=[self.body])
        push_block(self.body)
        return ScalarVal(self.body.args[0]) if self.core is CoreType.AIV else None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if tracer._state.stack and tracer._state.stack[-1] is self.body:
            pop_block()
        return False


def _in_core_region() -> bool:
    for b in tracer._state.stack:
        if b.parent is not None and b.parent.opdef is CORE:
            return True
    return False


def set_flag(flag: int, to: CoreRole) -> None:
    """Increment counter `flag` (an id below mt.target().flag_ids) of core `to` in this
    cluster (mt.CoreRole.AIC, AIV0, AIV1, or AIV for both lanes). More than
    mt.target().flag_limit sets without a wait freeze the chip."""
    _flag_args(flag, "set_flag")
    if not isinstance(to, CoreRole):
        raise TraceError(f"set_flag `to` must be an mt.CoreRole, got {to!r}", loc=user_loc())
    emit(SET_FLAG, [], {"flag": flag, "to": to})


def wait_flag(flag: int) -> None:
    """Block until this core's counter `flag` is positive, then decrement it."""
    _flag_args(flag, "wait_flag")
    emit(WAIT_FLAG, [], {"flag": flag})


def _flag_args(flag, what: str) -> None:
    n = target().flag_ids
    if isinstance(flag, bool) or not isinstance(flag, int) or not 0 <= flag < n:
        raise TraceError(f"{what}: flag {flag!r} is not a compile-time int among the flag ids "
                         f"0..{n - 1} of {target().name}", loc=user_loc())
    if not _in_core_region():
        raise TraceError(f"{what} outside mt.on_core(...): a flag is set or awaited by one "
                         "core", loc=user_loc(),
                         fix="put it in `with mt.on_core(mt.CoreType.AIC):` or "
                             "`with mt.on_core(mt.CoreType.AIV) as lane:`")


def aiv_shard(x: TileVal) -> TileVal:
    """Explicit cube -> vector crossing: the tile, on the vector lanes (UB)."""
    return _cross(x, MemSpace.UB, "aiv_shard")


def aic_gather(x: TileVal) -> TileVal:
    """Explicit vector -> cube crossing: the lanes' halves, gathered on the cube (L1)."""
    return _cross(x, MemSpace.L1, "aic_gather")


def _cross(x, space: MemSpace, what: str) -> TileVal:
    if not isinstance(x, TileVal):
        raise TraceError(f"mt.{what} needs a tile, got {type(x).__name__}", loc=user_loc())
    return TileVal(emit(MOVE, [x.value], {"space": space, "explicit": True}).result)


def syncall(core_type: CoreType = CoreType.MIX, mode: SyncMode = SyncMode.HARD) -> None:
    """Barrier over every core of `core_type` in the launch. HARD needs the launch grid to
    equal the cluster count (mt.target().clusters); SOFT needs grid <= clusters. A barrier
    orders arrival only: call mt.fence() first to hand GM data across it."""
    if not isinstance(core_type, CoreType) or core_type is CoreType.NONE:
        raise TraceError(f"syncall core_type must be mt.CoreType.MIX, AIV or AIC, got "
                         f"{core_type!r}", loc=user_loc())
    if not isinstance(mode, SyncMode):
        raise TraceError(f"syncall mode must be an mt.SyncMode, got {mode!r}", loc=user_loc())
    emit(SYNCALL, [], {"core_type": core_type, "mode": mode})


def fence() -> None:
    """Make this core's earlier GM writes visible to its later synchronisation."""
    emit(FENCE, [])


def workspace(shape, dtype, name: str | None = None) -> TensorVal:
    """A GM scratch tensor the kernel owns (the runtime allocates it; it starts unwritten):
    e.g. per-block partial results handed across a syncall. Each dim is a compile-time int
    or a dim of a kernel tensor (`x.shape[0]`, or its name "B"), bound per call."""
    shape = (shape,) if not isinstance(shape, (tuple, list)) else tuple(shape)
    dims = []
    for d in shape:
        if isinstance(d, ScalarVal) and d.value.op is not None and d.value.op.opdef is DIM:
            d = d.value.op.operands[0].type.shape[d.value.op.attrs["axis"]]
        ok = (isinstance(d, int) and not isinstance(d, bool) and d > 0) or (
            isinstance(d, str) and d.isidentifier())
        if not ok:
            raise TraceError(f"mt.workspace dims must be positive ints or tensor dims "
                             f"(x.shape[i]), got {d!r}", loc=user_loc(),
                             fix="size it with mt.const values, mt.target() or a tensor dim")
        dims.append(d)
    if not isinstance(dtype, DType):
        raise TraceError(f"mt.workspace dtype must be an mt dtype, got {dtype!r}",
                         loc=user_loc())
    st = tracer._state
    name = name or f"scratch{len(st.scratch)}"
    v = Value(TensorType(dtype, tuple(dims)), None, 0, name)
    st.scratch.append(Param(name, v, Role.SCRATCH))
    return TensorVal(v, name)


def target() -> Target:
    """The target being compiled for (clusters, aiv_count, capacities): size launches
    portably, e.g. `mt.spmd(mt.target().clusters)` for a hard syncall."""
    t = tracer._state.target
    if t is None:
        raise TraceError("mt.target() is only available while a kernel is traced",
                         loc=user_loc())
    return t
