"""The NPU timing model: each executed op gets a start and an end time on its pipe.

Opt-in (`simulate(..., timing=True)`, `mt.run_jit(..., timeline="x.json")`): when off,
nothing here runs. When on, the closure compiler wraps every op's closure so that, after
the op ran, `TimingModel` places it in time on its core:

- duration: the op's declared `cost` (ir/ops.py) evaluated on the target with the timing
  table's bandwidths (`Target.timed()`; numbers in `mixtile.target`, one table per target);
- a core's pipes (MTE2, MTE1, M, V, FIX, MTE3, S) run concurrently, each in issue order;
  an op starts when its pipe is free, its inputs are written (RAW) and the buffers it
  writes are no longer read or written by earlier ops (WAR/WAW): buffers are PlanMemory's
  byte ranges of on-chip tiles, so the planned buffer count decides the overlap; a GM
  tensor the core wrote is read only after that write;
- GM transfers (load, store, fixpipe) also need HBM: a read of a region already read in
  this launch is an L2 hit (while the launch's distinct reads fit in L2), and workspaces
  (SCRATCH tensors: ring slots, partials) stay in L2; everything else takes its bytes
  out of `HBM`, bins of time holding the die's bandwidth that every core fills in turn
  (each transfer yields the core's turn, so the cores fill them round robin);
- synchronisation: set_flag waits for the core's earlier GM accesses, a wait_flag holds
  the core's issue until the set arrives (+ flag latency), a syncall until every
  participant arrived (+ barrier latency), a fence until all earlier work completed;
  scalar GM reads (load_scalar) stall the issue; scalar index math is free;
- a block starts on its cores when the cluster's previous block finished; launches run
  one after the other.

The makespan is the estimated kernel time. `Timeline` (`trace.py`) holds the events and
writes the Chrome trace and the summary.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mixtile.ir.core import Kernel, Op
from mixtile.ir.ops import FIXPIPE, FOR, LOAD, LOAD_SCALAR, STORE
from mixtile.ir.registry import OpKind
from mixtile.ir.types import MemSpace, Pipe, Role, TileType, Unit
from mixtile.target import Target

PIPES: list[Pipe] = list(Pipe)
PIPE_INDEX = {p: i for i, p in enumerate(PIPES)}
_S = PIPE_INDEX[Pipe.S]
_GM = MemSpace.GM
_SPACE_INDEX = {s: i for i, s in enumerate(MemSpace)}  # ints hash faster than enums


class HBM:
    """The die's HBM bandwidth as bins of `width` cycles, each holding
    `bytes_per_cycle * width` bytes: a transfer fills the bins from its start time at
    most at its core's path rate, moving on when a bin is full (cores placed earlier
    took their share)."""

    __slots__ = ("cap", "used", "width")

    def __init__(self, bytes_per_cycle: float, width: int = 64) -> None:
        self.width = width
        self.cap = bytes_per_cycle * width
        self.used: list[float] = []

    def transfer(self, start: float, nbytes: float, rate: float) -> float:
        """The time a transfer of `nbytes` starting at `start` ends."""
        w, used, cap = self.width, self.used, self.cap
        t, left = start, float(nbytes)
        i = int(t // w)
        while True:
            if i >= len(used):
                used.extend([0.0] * (i + 1 - len(used) + 1024))
            room = cap - used[i]
            can = min(room, rate * ((i + 1) * w - t))
            if can >= left:
                used[i] += left
                return t + left / rate
            if can > 0:
                used[i] += can
                left -= can
            i += 1
            t = float(i * w)


class _Turn:
    """The token a timed GM transfer yields: always ready (see `TimingModel.wrap`)."""

    op = None

    @staticmethod
    def ready() -> bool:
        return True


TURN = _Turn()


class CoreClock:
    """One physical core's time: when each pipe is free, the issue barrier (waits and
    scalar stalls hold everything issued after them), the last accesses to its buffers,
    its busy and waiting time."""

    __slots__ = ("busy", "bufs", "floor", "free", "gm_done", "gm_w", "idx", "issue", "name",
                 "wait")

    def __init__(self, name: str, idx: int) -> None:
        self.name, self.idx = name, idx
        self.free = [0.0] * len(PIPES)
        # per pipe: no later op starts before this (a pipe_sync's WaitFlag on that pipe)
        self.floor = [0.0] * len(PIPES)
        self.busy = [0.0] * len(PIPES)
        self.issue = 0.0
        # per space index: [lo, hi, last write end, last read end] of each buffer used
        self.bufs: dict[int, list[list]] = {}
        self.gm_w: dict[int, float] = {}  # id(GMBuffer) -> end of this core's last write
        self.gm_done = 0.0  # end of the latest GM access issued so far
        self.wait = 0.0

    def end(self) -> float:
        return max(self.issue, *self.free)


class Timed:
    """What the wrapped closure of one op needs, computed once when it is compiled."""

    __slots__ = ("dur", "gm", "nbytes", "op", "pipe", "rate", "reads", "stall", "writes")


class TimingModel:
    """The timing state of one simulated run (see the module docstring)."""

    def __init__(self, kernel: Kernel, target: Target) -> None:
        from mixtile.errors import UnsupportedError

        if target.timing is None:
            raise UnsupportedError(f"target {target.name} has no NPU timing table",
                                   fix="time a kernel on an NPU machine: arch a2, a3 or a5")
        self.kernel, self.target, self.tm = kernel, target, target.timing
        self.costs = target.timed()
        self.hbm = HBM(self.tm.hbm_bytes_per_cycle)
        self.clocks: dict[str, CoreClock] = {}
        self.events: list[tuple] = []  # (core idx, pipe idx, start, end, op, block, note)
        self.flows: list[tuple] = []  # (kind, src event, dst event)
        self.launches: list[tuple[int, float, float]] = []  # (index, start, end)
        self.now = 0.0
        self.hbm_bytes = 0.0
        self._l2: set = set()
        self._l2_bytes = 0
        self._t0 = 0.0
        self._barriers: dict[tuple[int, int], list] = {}
        self.buffers = _buffers(kernel, target)
        self.workspaces = {p.value for p in kernel.params if p.role is Role.SCRATCH}

    # ------------------------------------------------------------ cores, blocks, launches

    def clock(self, name: str) -> CoreClock:
        c = self.clocks.get(name)
        if c is None:
            c = self.clocks[name] = CoreClock(name, len(self.clocks))
        return c

    def begin_launch(self) -> None:
        self._t0 = self.now
        self._l2.clear()
        self._l2_bytes = 0

    def spawn(self, tasks: list) -> None:
        """A block starts on its cores when they finished their previous block."""
        start = max([self._t0] + [t.clock.end() for t in tasks])
        for t in tasks:
            t.clock.issue = start

    def end_launch(self, cores: list) -> None:
        end = max([self._t0] + [c.clock.end() for c in cores if c.clock is not None])
        self.launches.append((len(self.launches), self._t0, end))
        self.now = end

    # ------------------------------------------------------------ ops

    def wrap(self, op: Op, f: Callable, slot: Callable, in_launch: bool) -> Callable:
        """`f` followed by placing `op` in time (or `f` itself for an op that takes no
        time: scalar index math, control). slot: the compiler's Value -> env slot.
        A GM transfer inside a launch then yields its turn (a generator function), so
        the scheduler interleaves the cores' transfers round robin and they take their
        shares of HBM in about the order of time, not one core's whole program first."""
        d = op.opdef
        if d.cost is None or d.kind is OpKind.CONTROL:
            return f
        pipe = d.pipe_of(op)
        if pipe is None or (d.kind is OpKind.PURE and d.unit_of(op) is Unit.SCALAR):
            return f
        info = Timed()
        info.op, info.pipe = op, PIPE_INDEX[pipe]
        info.dur = float(d.cost(op, self.costs))
        info.reads = tuple(self.buffers[v] for v in op.operands if v in self.buffers)
        info.writes = tuple(self.buffers[v] for v in op.results if v in self.buffers)
        info.stall = d is LOAD_SCALAR
        info.gm, info.nbytes, info.rate = None, 0, 1.0
        tm = self.tm
        if d is LOAD and op.attrs.get("ring", _GM) is _GM:
            info.gm, info.nbytes, info.rate = "r", op.result.type.nbytes, tm.mte2_bytes_per_cycle
        elif d is STORE and op.attrs.get("ring", _GM) is _GM:
            t = op.operands[1].type
            rate = tm.fix_bytes_per_cycle if t.space is MemSpace.L0C else \
                tm.mte3_bytes_per_cycle
            info.gm, info.nbytes, info.rate = "w", t.nbytes, rate
        elif d is FIXPIPE:
            t = op.operands[1].type
            info.gm, info.nbytes = "w", t.numel * op.attrs["dtype"].itemsize
            info.rate = tm.fix_bytes_per_cycle
        elif d is LOAD_SCALAR:
            info.gm = "s"
        if info.gm in ("r", "w") and op.operands[0] in self.workspaces:
            info.gm = "l2"  # a workspace (ring slots, partials) stays in L2
        # the GM tensor's slot, then (a load: the L2 key) the offsets' slots
        slots = () if info.gm is None else (slot(op.operands[0]),) + (
            tuple(slot(v) for v in op.operands[1:]) if info.gm == "r" else ())
        place = self.place
        if info.gm in ("r", "w", "l2") and in_launch:
            def timed_transfer(env, st):
                f(env, st)
                place(info, st.clock, env, slots, st.block)
                yield TURN
            return timed_transfer

        def timed(env, st):
            f(env, st)
            clk = st.clock
            if clk is not None:
                place(info, clk, env, slots, st.block)
        return timed

    def place(self, info: Timed, clk: CoreClock, env: list, slots, block) -> None:
        """Place one executed op on its core's pipe."""
        p = info.pipe
        start = clk.issue
        if clk.free[p] > start:
            start = clk.free[p]
        if clk.floor[p] > start:
            start = clk.floor[p]
        bufs = clk.bufs
        for space, lo, hi in info.reads:
            for e in bufs.get(space, ()):
                if e[0] < hi and lo < e[1] and e[2] > start:
                    start = e[2]
        for space, lo, hi in info.writes:
            for e in bufs.get(space, ()):
                if e[0] < hi and lo < e[1]:
                    t = e[2] if e[2] > e[3] else e[3]
                    if t > start:
                        start = t
        end = start + info.dur
        note = None
        gm = info.gm
        if gm is not None:
            buf = env[slots[0]]
            key = id(buf)
            w = clk.gm_w.get(key)
            if w is not None and w > start:
                start, end = w, w + info.dur
            if gm == "r":
                region = tuple(env[s] for s in slots)
                if region in self._l2:
                    note = "L2"
                else:
                    if self._l2_bytes + info.nbytes > self.tm.l2_bytes:
                        self._l2.clear()
                        self._l2_bytes = 0
                    self._l2.add(region)
                    self._l2_bytes += info.nbytes
                    end = max(end, self.hbm.transfer(start, info.nbytes, info.rate))
                    self.hbm_bytes += info.nbytes
            elif gm == "w":
                end = max(end, self.hbm.transfer(start, info.nbytes, info.rate))
                self.hbm_bytes += info.nbytes
                clk.gm_w[key] = end
            elif gm == "l2":
                note = "L2"
                if info.op.opdef is not LOAD:
                    clk.gm_w[key] = end
            if end > clk.gm_done:
                clk.gm_done = end
        for space, lo, hi in info.reads:
            _touch(bufs, space, lo, hi, end, False)
        for space, lo, hi in info.writes:
            _touch(bufs, space, lo, hi, end, True)
        clk.free[p] = end
        clk.busy[p] += end - start
        if info.stall:
            clk.issue = end
        self.events.append((clk.idx, p, start, end, info.op, block, note))

    # ------------------------------------------------------------ synchronisation

    def pipe_sync(self, op: Op, st: Any) -> None:
        """The Ascend C lowering's SetFlag<src_dst> / WaitFlag<src_dst> pair, issued back
        to back: pipe dst's later ops start after every op pipe src was given so far."""
        clk = st.clock
        src, dst = PIPE_INDEX[op.attrs["src"]], PIPE_INDEX[op.attrs["dst"]]
        if clk is not None and src != dst and clk.free[src] > clk.floor[dst]:
            clk.floor[dst] = clk.free[src]

    def _sync_event(self, clk: CoreClock, start: float, end: float, op: Op, block,
                    note=None) -> int:
        clk.free[_S] = end
        self.events.append((clk.idx, _S, start, end, op, block, note))
        return len(self.events) - 1

    def set_flag(self, op: Op, st: Any, msg: Any) -> tuple:
        """A set_flag after this core's earlier GM accesses: -> the timed message."""
        clk = st.clock
        start = max(clk.issue, clk.free[_S], clk.gm_done)
        end = start + op.opdef.cost(op, self.costs)
        ev = self._sync_event(clk, start, end, op, st.block, f"flag {op.attrs['flag']}")
        return msg, end, (ev,)

    @staticmethod
    def join(a: tuple, b: tuple, join_msgs: Callable) -> tuple:
        """Two AIVs' sets to the AIC counted as one: the later one releases."""
        return join_msgs(a[0], b[0]), max(a[1], b[1]), a[2] + b[2]

    def wait_flag(self, op: Op, st: Any, msg: tuple) -> Any:
        """The core waited for `msg`'s set: hold its issue until the set arrived."""
        clk = st.clock
        start = max(clk.issue, clk.free[_S])
        ready = msg[1] + self.tm.flag_cycles
        end = max(start, ready) + op.opdef.cost(op, self.costs)
        clk.wait += max(0.0, ready - start)
        ev = self._sync_event(clk, start, end, op, st.block, f"flag {op.attrs['flag']}")
        clk.issue = end
        self.flows += [("flag", src, ev) for src in msg[2]]
        return msg[0]

    def fence(self, op: Op, st: Any) -> None:
        clk = st.clock
        start = clk.end()
        end = start + op.opdef.cost(op, self.costs)
        self._sync_event(clk, start, end, op, st.block)
        clk.issue = end

    def arrive(self, op: Op, st: Any, barrier: Any, gen: int) -> None:
        """A syncall arrival, after every earlier op of the core completed."""
        clk = st.clock
        t = clk.end()
        rec = self._barriers.setdefault((id(barrier), gen), [t, clk.idx, {}, {}])
        rec[2][clk.idx] = t
        if t >= rec[0]:
            rec[0], rec[1] = t, clk.idx

    def leave(self, op: Op, st: Any, barrier: Any, gen: int) -> None:
        """The syncall completed: every participant leaves at the last arrival plus the
        barrier's latency."""
        clk = st.clock
        rec = self._barriers[(id(barrier), gen)]
        start = rec[2][clk.idx]
        end = rec[0] + self.tm.syncall_cycles
        clk.wait += rec[0] - start
        rec[3][clk.idx] = self._sync_event(clk, start, end, op, st.block, "syncall")
        clk.issue = end

    def all_flows(self) -> list[tuple]:
        """The flag flows, and per syncall one flow from the last arrival to every other
        participant."""
        out = list(self.flows)
        for _, last, _, evs in self._barriers.values():
            src = evs.get(last)
            if src is not None:
                out += [("syncall", src, e) for c, e in evs.items() if c != last]
        return out

    def result(self, kernel_name: str):
        from mixtile.simulator.trace import Timeline

        return Timeline(kernel_name, self.target, self)


def _touch(bufs: dict, space, lo: int, hi: int, end: float, write: bool) -> None:
    """Record an access of [lo, hi) in `space` ending at `end`."""
    lst = bufs.get(space)
    if lst is None:
        lst = bufs[space] = []
    for e in lst:
        if e[0] == lo and e[1] == hi:
            if write:
                e[2] = end
            elif end > e[3]:
                e[3] = end
            return
    lst.append([lo, hi, end if write else 0.0, 0.0 if write else end])


def _buffers(kernel: Kernel, target: Target) -> dict:
    """Value -> (space, lo, hi): the planned bytes of each on-chip tile (PlanMemory's
    addresses; a loop's carried values share their buffer)."""
    out: dict = {}

    def put(v, addr) -> None:
        if addr is not None and isinstance(v.type, TileType) and v.type.space is not _GM:
            sp = v.type.space
            out[v] = (_SPACE_INDEX[sp], addr, addr + target.tile_bytes(v.type))

    for op in kernel.walk():
        if "addr" in op.attrs and op.results:
            put(op.results[0], op.attrs["addr"])
        if op.opdef is FOR and "addrs" in op.attrs:
            args = op.regions[0].args[1:]
            for i, a in enumerate(op.attrs["addrs"]):
                put(op.results[i], a)
                put(args[i], a)
    return out
