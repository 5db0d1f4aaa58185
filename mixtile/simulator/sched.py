"""The launch scheduler: every core of every cluster as a deterministic cooperative task.

A launch (`spmd`) of `grid` blocks runs on wave *slots*: clusters for a mixed or a
cube-only kernel, AIV cores for a vector-only one. Block b runs on slot b % slots; a
mixed block is three tasks (the AIC program, and the AIV program on lane 0 and lane 1 of
the same cluster), a single-type block one task. Blocks past the slot count run as later
waves: block b + slots starts on a slot when every task of block b there has finished.

A task runs its compiled closures as plain calls until a sync op has to wait; a waiting
op yields a token (`FlagWait`, `BarrierWait`) and the scheduler resumes the task when the
token is ready. The scheduler visits tasks round robin in a fixed order (slot, then AIC,
AIV0, AIV1; new waves at the end), so a run is deterministic. When a whole round finds no
task able to move and some are unfinished, the launch is deadlocked: DeadlockError names
each blocked core, what it waits for and the line of its op.

Cross-core flags: each core of a cluster has 16 counters (a deque of pending release
messages each, for the race detector); set_flag appends, wait_flag pops the oldest and
acquires it. Counters belong to the physical core and outlive a block (a later wave on
the cluster sees what is left). An AIV's set to the AIC waits in `halves` until the other
AIV sets the same flag (CrossCoreSetFlag mode 2 on A2/A3); the pair then counts once.
Syncall: one `Barrier` per core type (MIX / AIV / AIC) over the launch's tasks of that
type; every participant must be resident (grid <= slots), which `check_syncalls` ensures.
"""
from __future__ import annotations

from collections import deque
from typing import Any

from mixtile.errors import DeadlockError, SyncallError, UnsupportedError
from mixtile.ir.core import Kernel, Op
from mixtile.ir.ops import CORE
from mixtile.ir.types import CoreRole, CoreType, MemSpace, SyncMode, TileType, Unit
from mixtile.simulator.race import RaceTracker

_CUBE_SPACES = frozenset({MemSpace.L1, MemSpace.L0A, MemSpace.L0B, MemSpace.L0C, MemSpace.BT})
N_FLAGS = 16
_AIC, _AIV0, _AIV1 = CoreRole.AIC, CoreRole.AIV0, CoreRole.AIV1
FLAG_TARGETS = {_AIC: (_AIC,), _AIV0: (_AIV0,), _AIV1: (_AIV1,), CoreRole.AIV: (_AIV0, _AIV1)}
_JOINS = {CoreType.MIX: (_AIC, _AIV0, _AIV1), CoreType.AIV: (_AIV0, _AIV1),
          CoreType.AIC: (_AIC,)}


def launch_core(kernel: Kernel) -> CoreType:
    """kernel.attrs["core"], or a guess from the ops when ClassifyCores has not run."""
    core = kernel.attrs.get("core", CoreType.NONE)
    if core is not CoreType.NONE:
        return core
    if any(op.opdef is CORE for op in kernel.walk()):
        return CoreType.MIX
    for op in kernel.walk():
        if op.opdef.unit_of(op) is Unit.CUBE:
            return CoreType.AIC
        if any(isinstance(v.type, TileType) and v.type.space in _CUBE_SPACES
               for v in op.results):
            return CoreType.AIC
    return CoreType.AIV


class Task:
    """One block's program on one core: the `st` its closures get.

    Shares the cycle counters of the physical core (`core`); holds the flag counters of
    its own core (`flags`) and of its cluster (`cflags`), and its happens-before clocks
    (see `race`); `tracker` is None when race detection is off.
    """

    __slots__ = ("block", "cflags", "clock", "cluster", "core", "cycles", "ep", "fenced",
                 "flags", "gen", "label", "lane", "launch", "machine", "role", "tid",
                 "token", "tracker", "vc", "wvc")

    def __init__(self, launch: Launch, tid: int, block: int, spec: tuple) -> None:
        self.launch = launch
        self.machine = launch.machine
        self.tracker = launch.tracker
        self.tid = tid
        self.block = block
        (self.role, self.lane, self.cluster, self.core, self.label, self.cflags,
         self.flags) = spec[:7]
        self.cycles = self.core.cycles
        self.clock = self.core.clock  # the timing model's clock of the core, or None
        self.ep, self.fenced = 1, 0
        self.vc: dict[int, int] = {}
        self.wvc: dict[int, int] = {}
        self.gen = None
        self.token = None

    def where(self, opname: str) -> str:
        return f"block {self.block}, core {self.label}, op {opname}"

    def release(self) -> tuple[dict[int, int], dict[int, int]] | None:
        """The clocks a set_flag / syncall arrival hands over; opens a new epoch."""
        if self.tracker is None:
            return None
        vc, wvc = dict(self.vc), dict(self.wvc)
        vc[self.tid], wvc[self.tid] = self.ep, self.fenced
        self.ep += 1
        return vc, wvc

    def acquire(self, msg: tuple[dict[int, int], dict[int, int]]) -> None:
        """Join the clocks of a consumed release into this task's clocks."""
        for mine, theirs in zip(msg, (self.vc, self.wvc)):
            for t, e in mine.items():
                if theirs.get(t, 0) < e:
                    theirs[t] = e

    def fence(self) -> None:
        if self.tracker is not None:
            self.fenced = self.ep
            self.ep += 1


class ClusterFlags:
    """The flag counters of one cluster's cores: `q[role][flag]` is a deque of pending
    sets (their release messages, None without race detection). `halves[lane][flag]`
    holds an AIV lane's sets to the AIC still waiting for the other lane's: on A2/A3
    (CrossCoreSetFlag mode 2) the AIC's counter goes up once *both* AIVs have set it."""

    __slots__ = ("halves", "q")

    def __init__(self) -> None:
        self.q = {r: [deque() for _ in range(N_FLAGS)] for r in (_AIC, _AIV0, _AIV1)}
        self.halves = ([deque() for _ in range(N_FLAGS)], [deque() for _ in range(N_FLAGS)])


def join_msgs(a: Any, b: Any) -> Any:
    """The release message of two sets together (a pair of AIV sets to the AIC)."""
    if a is None:
        return b
    out = (dict(a[0]), dict(a[1]))
    for mine, acc in zip(b, out):
        for t, e in mine.items():
            if acc.get(t, 0) < e:
                acc[t] = e
    return out


class FlagWait:
    """A wait_flag on counter `q` (a deque of pending sets) of this core."""

    __slots__ = ("flag", "halves", "op", "q")

    def __init__(self, q: deque, flag: int, op: Op, halves: Any = None) -> None:
        self.q, self.flag, self.op, self.halves = q, flag, op, halves

    def ready(self) -> bool:
        return bool(self.q)

    def describe(self, blocked: list[Task]) -> str:
        text = (f"wait_flag(flag {self.flag}) at {self.op.loc}: its counter is "
                f"{len(self.q)} and no running core will set it")
        if self.halves is not None:
            h0, h1 = (len(h[self.flag]) for h in self.halves)
            text += (f" (the AIC's counter rises when both AIVs have set it; unpaired "
                     f"sets: AIV0 {h0}, AIV1 {h1})")
        return text


class BarrierWait:
    """A syncall arrival waiting for generation `gen` of `barrier` to complete."""

    __slots__ = ("barrier", "gen", "op")

    def __init__(self, barrier: Barrier, gen: int, op: Op) -> None:
        self.barrier, self.gen, self.op = barrier, gen, op

    def ready(self) -> bool:
        return self.barrier.gen > self.gen

    def describe(self, blocked: list[Task]) -> str:
        b = self.barrier
        joins = _JOINS[b.core_type]
        elsewhere = sum(1 for t in blocked if t.role in joins and t not in b.arrived)
        gone = b.n - len(b.arrived) - elsewhere
        text = f"syncall({b.core_type.value}) at {self.op.loc}: {len(b.arrived)} of {b.n} arrivals"
        if gone > 0:
            text += f"; {gone} of the cores it waits for finished without arriving"
        return text


class Barrier:
    """A syncall barrier over the launch's `n` tasks of one core type."""

    def __init__(self, launch: Launch, core_type: CoreType, n: int) -> None:
        self.launch = launch
        self.core_type = core_type
        self.n = n
        self.gen = 0
        self.arrived: list[Task] = []
        self.msgs: list[Any] = []

    def arrive(self, task: Task) -> int:
        """Arrive at the current generation (returned); the last arrival releases all."""
        gen = self.gen
        self.arrived.append(task)
        self.msgs.append(task.release())
        if len(self.arrived) == self.n:
            if task.tracker is not None:
                self._join()
            self.arrived, self.msgs = [], []
            self.gen += 1
        return gen

    def _join(self) -> None:
        vc: dict[int, int] = {}
        wvc: dict[int, int] = {}
        for m in self.msgs:
            for mine, acc in zip(m, (vc, wvc)):
                for t, e in mine.items():
                    if acc.get(t, 0) < e:
                        acc[t] = e
        for t in self.arrived:
            t.acquire((vc, wvc))
        launch = self.launch
        if self.n == launch.n_tasks and not launch.has_waves:  # every task is past it
            launch.tracker.prune(vc, wvc)


def check_syncalls(ops: list[Op], grid: int, kind: CoreType, target: Any) -> None:
    """The launch-time rules of syncall (grid vs physical cores; core type vs launch)."""
    if kind is CoreType.AIV:
        cores, unit = target.aiv_count, "AIV cores"
    else:
        cores, unit = target.clusters, "clusters"
    where = f"launch of {grid} blocks"
    for op in ops:
        ct = op.attrs.get("core_type", kind)
        mode = op.attrs.get("mode", SyncMode.HARD)
        if kind is not CoreType.MIX and ct is not kind:
            raise SyncallError(f"syncall(core_type={ct.value}) in a {kind.value}-only "
                               f"kernel: those cores are not launched, so it never completes",
                               loc=op.loc, where=where,
                               fix=f"use core_type={kind.value} (the cores this kernel runs on)")
        if mode is SyncMode.HARD and grid != cores:
            raise SyncallError(
                f"hard syncall with grid {grid} on {cores} {unit} hangs (AICore timeout): "
                f"the hardware barrier waits for all {cores} physical cores",
                loc=op.loc, where=where,
                fix=f"launch exactly {cores} blocks (target clusters) and loop over the work "
                    f"inside each block, or use mode=SOFT with grid <= {cores}")
        if mode is SyncMode.SOFT and grid > cores:
            raise SyncallError(
                f"soft syncall with grid {grid} on {cores} {unit}: blocks {cores}..{grid - 1} "
                f"run in a later wave and can never meet the barrier (deadlock)",
                loc=op.loc, where=where,
                fix=f"launch at most {cores} blocks and loop over the work inside each "
                    "block (every participant of a soft syncall must be resident)")


class Launch:
    """One spmd launch: its tasks, flag counters, barriers and the scheduler loop.

    programs: CoreType.AIC / AIV -> (runner, static cost, is_generator) of the block
    program that core type runs (a single-type launch has just its own). `flags`: whether
    the programs use cross-core flags (else no counters are allocated).
    """

    def __init__(self, machine: Any, kind: CoreType, grid: int, programs: dict, env: list,
                 arg: int, checks: bool, flags: bool = True) -> None:
        t = machine.target
        self.flags = flags  # does the program use cross-core flags (allocate counters)?
        self.machine, self.kind, self.grid = machine, kind, grid
        self.programs, self.env, self.arg = programs, env, arg
        self.slots = t.aiv_count if kind is CoreType.AIV else t.clusters
        self.has_waves = grid > self.slots
        per_block = 3 if kind is CoreType.MIX else 1
        self.n_tasks = min(grid, self.slots) * per_block
        multi = grid * per_block > 1
        self.tracker = RaceTracker() if checks and multi else None
        self._flags: dict[int, ClusterFlags] = {}
        self._barriers: dict[CoreType, Barrier] = {}
        self._tid = 0
        self.spawned = 0
        self._slot_specs: dict[int, list[tuple]] = {}
        self.timing = machine.timing  # the timing model, or None (off)

    def cluster_flags(self, cluster: int) -> ClusterFlags:
        f = self._flags.get(cluster)
        if f is None:
            f = self._flags[cluster] = ClusterFlags()
        return f

    def barrier(self, core_type: CoreType, op: Op, task: Task) -> Barrier:
        """The barrier a syncall of `core_type` joins; the task must take part in it."""
        if task.role not in _JOINS[core_type]:
            raise SyncallError(f"core {task.label} executes syncall(core_type="
                               f"{core_type.value}), which only the "
                               f"{'/'.join(r.value for r in _JOINS[core_type])} cores join",
                               loc=op.loc, where=task.where("syncall"),
                               fix="move the syncall into the program of the cores it names, "
                                   "or use core_type=mix")
        b = self._barriers.get(core_type)
        if b is None:
            n = sum(1 for r in self._roles(0) if r[0] in _JOINS[core_type])
            b = self._barriers[core_type] = Barrier(self, core_type, n * min(self.grid,
                                                                           self.slots))
        return b

    # ------------------------------------------------------------ tasks and waves

    def _roles(self, slot: int) -> list[tuple[CoreRole, int, int, str]]:
        """(role, lane, cluster, physical core name) of each task a block on `slot` has."""
        if self.kind is CoreType.MIX:
            return [(_AIC, 0, slot, f"AIC{slot}"), (_AIV0, 0, slot, f"AIV{2 * slot}"),
                    (_AIV1, 1, slot, f"AIV{2 * slot + 1}")]
        if self.kind is CoreType.AIV:
            return [(_AIV1 if slot % 2 else _AIV0, slot % 2, slot // 2, f"AIV{slot}")]
        return [(_AIC, 0, slot, f"AIC{slot}")]

    def _specs(self, slot: int) -> list[tuple]:
        """Per task of a block on `slot`: (role, lane, cluster, CoreState, label, cluster
        flags, own flags, program); computed once per slot."""
        specs = self._slot_specs.get(slot)
        if specs is None:
            specs = self._slot_specs[slot] = []
            for role, lane, cluster, name in self._roles(slot):
                label = f"{role.value} of cluster {cluster}" if self.kind is CoreType.MIX \
                    else name
                cf = self.cluster_flags(cluster) if self.flags else None
                prog = self.programs[CoreType.AIC if role is _AIC else CoreType.AIV]
                specs.append((role, lane, cluster, self.machine.core(name), label, cf,
                              cf.q[role] if cf else None, prog))
        return specs

    def _spawn(self, block: int) -> list[Task]:
        tasks = []
        arg = self.arg
        for spec in self._specs(block % self.slots):
            t = Task(self, self._tid, block, spec)
            self._tid += 1
            body, cost, is_gen = spec[7]
            env = self.env.copy()
            env[arg] = block
            cyc = t.cycles
            for i, c in cost:
                cyc[i] += c
            t.gen = body(env, t) if is_gen else (body, env)
            tasks.append(t)
        if self.timing is not None:
            self.timing.spawn(tasks)
        self.machine.blocks += 1
        self.spawned += 1
        return tasks

    def run(self) -> None:
        """Run every block to completion, round robin; DeadlockError when stuck."""
        active: list[Task] = []
        if self.timing is not None:
            self.timing.begin_launch()
        for b in range(min(self.grid, self.slots)):
            active += self._spawn(b)
        per_block = len(self._specs(0))
        left = dict.fromkeys(range(min(self.grid, self.slots)), per_block)
        while active:
            moved = False
            nxt: list[Task] = []
            for t in active:
                tok = t.token
                if tok is not None and not tok.ready():
                    nxt.append(t)
                    continue
                moved = True
                g = t.gen
                if type(g) is tuple:  # a program that never waits: run it to its end
                    g[0](g[1], t)
                else:
                    try:
                        t.token = next(g)
                        nxt.append(t)
                        continue
                    except StopIteration:
                        pass
                b = t.block
                left[b] -= 1
                if left[b] == 0:
                    del left[b]
                    b += self.slots
                    if b < self.grid:
                        nxt += self._spawn(b)
                        left[b] = per_block
            if not moved:
                self._deadlock(nxt)
            active = nxt
        if self.tracker is not None:  # free the records now: they hold tasks in a cycle
            self.tracker.hist.clear()
        if self.timing is not None:
            self.timing.end_launch([s[3] for n in self._slot_specs.values() for s in n])

    def _deadlock(self, blocked: list[Task]) -> None:
        lines = [f"  {t.where(t.token.op.name)}: {t.token.describe(blocked)}" for t in blocked]
        if len(lines) > 12:
            lines = lines[:12] + [f"  ... and {len(lines) - 12} more"]
        waiting = self.grid - self.spawned
        tail = (f"\n  ({waiting} later blocks wait for a free "
                f"{'AIV core' if self.kind is CoreType.AIV else 'cluster'})"
                if waiting > 0 else "")
        first = blocked[0]
        raise DeadlockError(
            f"deadlock: {len(blocked)} cores wait and none can move:\n" + "\n".join(lines)
            + tail, loc=first.token.op.loc, where=first.where(first.token.op.name),
            fix="every wait_flag needs a set_flag of the same flag id to that core from a "
                "core of the same cluster (same count), and every core a syncall names must "
                "reach it the same number of times (with every block resident)")


def reject_mixed_op(op: Op) -> None:
    """Tile work outside a core region of a mixed launch would run on every core."""
    raise UnsupportedError(f"{op.name} in a mixed kernel outside the AIC and AIV programs "
                           "(core regions): only scalar ops may run on every core",
                           loc=op.loc,
                           fix="put the op into the core region of the core that runs it")
