"""InsertPipeSync: order the pipes of each core where data flows between them.

On an Ascend core MTE2, MTE1, M, V, MTE3, FIX and S run concurrently; an instruction on
one pipe that reads (or overwrites) a buffer another pipe wrote (or still reads) must
wait for it. This pass walks each core's program in order and, before each op that
touches a buffer with an unordered access from another pipe, inserts
`pipe_sync {src, dst}` (Ascend C: SetFlag/WaitFlag<HardEvent::SRC_DST>); two dependent
ops on the vector or cube pipe get `pipe_sync {src = dst}` (PipeBarrier). Buffers are
the planned byte ranges of on-chip tiles (PlanMemory's `addr`) and whole GM tensors.

The analysis tracks, per buffer, the accesses not yet known to be complete, each with
the set of pipes it is ordered before. A sync src->dst orders every earlier access of
pipe src before pipe dst. A loop body is analysed with the state at loop entry merged
with the state at the end of one trip, so a hazard between the end of one iteration
and the start of the next (e.g. MTE2 reloading an L1 tile MTE1 still reads) gets its
sync too; PingPong's guard loop (the second half of an unrolled loop) runs zero or one
trip, so its body is analysed once. `fence` and `syncall` order everything
(PipeBarrier<PIPE_ALL>).

Runs after PlanMemory, in the Ascend C pipeline only (the simulator runs a core's ops
in order and treats pipe_sync as a no-op).
"""
from __future__ import annotations

from dataclasses import dataclass

from mixtile.ir.core import Block, Kernel, Op, Value
from mixtile.ir.ops import (
    CORE,
    FENCE,
    FOR,
    FULL,
    PIPE_SYNC,
    SYNCALL,
)
from mixtile.ir.registry import OpKind
from mixtile.ir.types import MemSpace, Pipe, TensorType, TileType
from mixtile.passes.manager import PassContext, compiler_pass
from mixtile.passes.ping_pong import is_guard

# same-pipe dependencies that need a barrier: vector instructions overlap in the V pipe
# (Ascend C asks for PipeBarrier<PIPE_V> between dependent ones); the MTE queues complete
# in order and successive Mmads accumulate into L0C in order
_BARRIER_PIPES = frozenset({Pipe.V})


@dataclass(frozen=True)
class _Access:
    pipe: Pipe
    write: bool
    ordered: frozenset  # pipes this access is known to complete before


_Key = tuple  # ("gm", param name) or (space, start, end)


def _overlap(a: _Key, b: _Key) -> bool:
    if a[0] == "gm" or b[0] == "gm":
        return a == b
    return a[0] is b[0] and a[1] < b[2] and b[1] < a[2]


class _State:
    def __init__(self) -> None:
        self.acc: dict[_Key, list[_Access]] = {}

    def copy(self) -> _State:
        s = _State()
        s.acc = {k: list(v) for k, v in self.acc.items()}
        return s

    def merge(self, other: _State) -> None:
        for k, v in other.acc.items():
            mine = self.acc.setdefault(k, [])
            for a in v:
                if a not in mine:
                    mine.append(a)

    def order(self, src: Pipe, dst: Pipe) -> None:
        """After a src->dst sync: accesses of pipe src, and those already ordered before
        src, complete before pipe dst's next ops."""
        for k, v in self.acc.items():
            self.acc[k] = [_Access(a.pipe, a.write, a.ordered | {dst})
                           if a.pipe is src or src in a.ordered else a for a in v]

    def order_all(self) -> None:
        self.acc.clear()


class _Inserter:
    def __init__(self, target) -> None:
        self.target = target

    # ------------------------------------------------------------ effects
    def key(self, v: Value) -> _Key | None:
        t = v.type
        if isinstance(t, TensorType):
            return ("gm", v.hint)
        if isinstance(t, TileType) and t.space not in (MemSpace.GM, MemSpace.ANY):
            op = v.op
            if op is None or "addr" not in op.attrs:
                return self.carried.get(v)
            start = op.attrs["addr"]
            return (t.space, start, start + self.target.tile_bytes(t))
        return None

    def effects(self, op: Op) -> list[tuple[_Key, bool]]:
        """(buffer, is_write) of each access `op` makes."""
        out = []
        d = op.opdef
        for i, v in enumerate(op.operands):
            k = self.key(v)
            if k is None or (k[0] == "gm" and i not in d.reads and i not in d.writes):
                continue  # a GM tensor whose data the op does not touch (dim: its shape)
            is_write = i in d.writes
            out.append((k, is_write))
        for v in op.results:
            k = self.key(v)
            if k is not None:
                out.append((k, True))
        return out

    # ------------------------------------------------------------ walk
    def needs(self, st: _State, op: Op, pipe: Pipe) -> list[tuple[Pipe, Pipe]]:
        want: list[tuple[Pipe, Pipe]] = []
        for k, is_write in self.effects(op):
            for bk, accs in st.acc.items():
                if not _overlap(k, bk):
                    continue
                for a in accs:
                    if not (is_write or a.write) or pipe in a.ordered:
                        continue
                    if a.pipe is pipe and pipe not in _BARRIER_PIPES:
                        continue  # in-order queue
                    if (a.pipe, pipe) not in want:
                        want.append((a.pipe, pipe))
        return want

    def plan(self, st: _State, op: Op, pipe: Pipe) -> list[tuple[Pipe, Pipe]]:
        """The syncs to put before `op`, fewest first: a sync that also settles others
        through an earlier order (MTE2 -> V after V -> MTE2 ...) is taken first."""
        out: list[tuple[Pipe, Pipe]] = []
        st = st.copy()
        while True:
            want = self.needs(st, op, pipe)
            if not want:
                return out
            best, left = want[0], None
            for w in want:
                trial = st.copy()
                trial.order(*w)
                n = len(self.needs(trial, op, pipe))
                if left is None or n < left:
                    best, left = w, n
            out.append(best)
            st.order(*best)

    def record(self, st: _State, op: Op, pipe: Pipe) -> None:
        for k, is_write in self.effects(op):
            if is_write:  # everything earlier on k is ordered before this write now
                for bk in [bk for bk in st.acc if bk == k]:
                    del st.acc[bk]
            st.acc.setdefault(k, []).append(_Access(pipe, is_write, frozenset()))

    def block(self, blk: Block, st: _State, insert: bool) -> None:
        new_ops: list[Op] = []
        for op in blk.ops:
            d = op.opdef
            if d is FOR:
                self.loop(op, st, insert)
            elif d.kind in (OpKind.CONTROL, OpKind.TERMINATOR):
                for r in op.regions:
                    # a core region is a separate program: its own pipes, fresh state
                    self.block(r, _State() if d is CORE else st, insert)
            elif d in (FENCE, SYNCALL):
                st.order_all()
            else:
                pipe = op.opdef.pipe_of(op)
                if pipe is not None and (d is not FULL or op.results[0].type.space
                                         is not MemSpace.L0C):
                    for src, dst in self.plan(st, op, pipe):
                        if insert:
                            s = Op(PIPE_SYNC, [], [], {"src": src, "dst": dst}, loc=op.loc)
                            s.parent = blk
                            new_ops.append(s)
                        st.order(src, dst)
                    self.record(st, op, pipe)
            new_ops.append(op)
        if insert:
            blk.ops = new_ops

    def loop(self, op: Op, st: _State, insert: bool) -> None:
        body = op.regions[0]
        addrs = op.attrs.get("addrs") or []  # one per carried value, None for scalars
        for arg, res, addr in zip(body.args[1:], op.results, addrs):
            if not isinstance(arg.type, TileType) or addr is None:
                continue
            k = (arg.type.space, addr, addr + self.target.tile_bytes(arg.type))
            self.carried[arg] = k
            self.carried[res] = k
        if is_guard(op):  # PingPong's second half: 0 or 1 trip
            entry = st.copy()
            self.block(body, st, insert)
            st.merge(entry)
            return
        trial = st.copy()
        self.block(body, trial, insert=False)  # one trip: what the next trip starts with
        st.merge(trial)
        self.block(body, st, insert)
        st.merge(trial)  # zero trips or many: both end states may follow the loop

    def run(self, kernel: Kernel) -> None:
        self.carried: dict[Value, _Key] = {}
        self.block(kernel.body, _State(), insert=True)


@compiler_pass("InsertPipeSync")
def InsertPipeSync(kernel: Kernel, ctx: PassContext) -> Kernel:  # noqa: N802
    """Insert pipe_sync ops (SetFlag/WaitFlag, PipeBarrier) between dependent pipes."""
    _Inserter(ctx.target).run(kernel)
    kernel.attrs["pipe_sync"] = True
    return kernel
