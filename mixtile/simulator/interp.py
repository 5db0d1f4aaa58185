"""The closure compiler and executor of the simulator.

`compile_kernel` turns a kernel's IR into Python closures once: every Value gets an integer
slot in a flat environment list, and each op becomes `f(env, st)` with its operand slots,
opdef impl, attrs, rounding and static check results bound at compile time. A block runs as
a plain loop over its closures; cycle costs are summed per block at compile time and added
once per block execution (times the trip count for a `for` body).

Ops that may wait (wait_flag, syncall, and a `for` / `core` region holding one) compile to
generator functions instead; a block holding one becomes a generator runner that calls its
other closures plainly and `yield from`s the waiting ones. Programs without such ops keep
the plain fast path. The `spmd` closure compiles its region once per core type (a mixed
kernel: the AIC program and the AIV program, each with the scalar ops outside the `core`
regions) and hands the launch to `sched.Launch`, which runs every core of every cluster as
a cooperative task. Per-core state lives in objects (`CoreState` per physical core for the
cycle counters, `sched.Task` per block and core), never in globals.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from mixtile.errors import InternalError, MixtileError, TraceError, UnsupportedError
from mixtile.ir.core import Block, Kernel, Op, Value
from mixtile.ir.ops import CONST, CORE, FOR, SET_FLAG, SPMD, SYNCALL, WAIT_FLAG, YIELD
from mixtile.ir.registry import OpKind
from mixtile.ir.types import CoreType, DType, Pipe, TileType, Unit
from mixtile.simulator import memops, syncops
from mixtile.simulator.checks import raiser, static_error
from mixtile.simulator.sched import Launch, check_syncalls, launch_core, reject_mixed_op
from mixtile.simulator.timing import TimingModel
from mixtile.target import Target

PIPES: list[Pipe] = list(Pipe)
_PIPE_INDEX = {p: i for i, p in enumerate(PIPES)}

Fn = Callable[[list, "CoreState"], None]
Cost = tuple[tuple[int, int], ...]  # (pipe index, cycles) per pipe with work

_NARROW = frozenset({DType.F16, DType.BF16, DType.F8E4M3, DType.F8E5M2})


class CoreState:
    """One physical core's state: its name and cycles per pipe (the host's also the block
    it runs). Tasks (`sched.Task`) running on the core share its cycle counters."""

    __slots__ = ("block", "clock", "cycles", "machine", "name", "tracker")

    def __init__(self, name: str, machine: Machine) -> None:
        self.name = name
        self.block: int | None = None
        self.cycles = [0] * len(PIPES)
        self.machine = machine
        self.tracker = None  # no race tracking outside a launch
        # the timing model's clock of this core (None: timing off, or the host)
        self.clock = None if machine.timing is None or name == "host" else \
            machine.timing.clock(name)

    def where(self, opname: str) -> str:
        """The run-time context of an error: "block 3, core AIC3, op load"."""
        if self.block is None:
            return f"{self.name}, op {opname}"
        return f"block {self.block}, core {self.name}, op {opname}"

    def cycles_by_pipe(self) -> dict[Pipe, int]:
        """This core's cycle counters keyed by Pipe."""
        return {p: self.cycles[i] for i, p in enumerate(PIPES)}


class Machine:
    """Run-time state of one kernel run: the target, the physical cores used, blocks run."""

    def __init__(self, target: Target, core_type: CoreType, checks: bool,
                 timing: TimingModel | None = None) -> None:
        self.target = target
        self.checks = checks
        self.timing = timing
        if core_type not in (CoreType.AIC, CoreType.AIV, CoreType.MIX):
            raise UnsupportedError(f"the simulator cannot run a {core_type.value} kernel",
                                   fix="give the kernel cube or vector work")
        self.core_type = core_type
        self.cores: dict[str, CoreState] = {}
        self.host = CoreState("host", self)
        self.blocks = 0

    def core(self, name: str) -> CoreState:
        """The state of physical core `name` ("AIC3", "AIV7"), created on first use."""
        st = self.cores.get(name)
        if st is None:
            st = self.cores[name] = CoreState(name, self)
        return st

    def sorted_cores(self) -> list[CoreState]:
        """The cores used, AICs then AIVs, each by index."""
        def key(name: str) -> tuple[str, int]:
            return name[:3], int(name[3:])
        return [self.cores[n] for n in sorted(self.cores, key=key)]


def _add_cost(st: CoreState, cost: Cost, times: int = 1) -> None:
    cyc = st.cycles
    for i, c in cost:
        cyc[i] += c * times


def _runner(fns: list[Fn], owners: dict[Fn, Op]) -> Fn:
    """Run closures in order; a non-mixtile exception becomes an InternalError at its op."""
    fns = tuple(fns)

    def run(env: list, st: CoreState) -> None:
        f = None
        try:
            for f in fns:
                f(env, st)
        except MixtileError:
            raise
        except Exception as e:
            _reraise_internal(e, owners.get(f), st)
    return run


def _reraise_internal(e: Exception, op: Op | None, st: Any) -> None:
    """A non-mixtile exception inside an op's closure is a simulator bug: locate it."""
    if op is None:
        raise e
    raise InternalError(f"simulating {op.name} failed: {type(e).__name__}: {e}",
                        loc=op.loc, where=st.where(op.name)) from e


def _gen_runner(fns: list[Fn], owners: dict[Fn, Op]) -> Callable:
    """`_runner` for a block with waiting ops: a generator function that yields their
    wait tokens; the other closures stay plain calls."""
    items = tuple((f, inspect.isgeneratorfunction(f)) for f in fns)

    def run(env: list, st: Any):
        f = None
        try:
            for f, waits in items:
                if waits:
                    yield from f(env, st)
                else:
                    f(env, st)
        except MixtileError:
            raise
        except Exception as e:
            _reraise_internal(e, owners.get(f), st)
    return run


class Program:
    """A compiled kernel: the top-level runner, the slot map and the constant template."""

    def __init__(self, kernel: Kernel, run: Fn, slots: dict[Value, int], template: list,
                 cost: Cost) -> None:
        self.kernel = kernel
        self.run_body = run
        self.slots = slots
        self.template = template
        self.cost = cost

    def run(self, bound: dict[Value, Any], machine: Machine) -> None:
        """Execute the kernel with parameter values bound (GMBuffers / scalars)."""
        env = list(self.template)
        for v, x in bound.items():
            env[self.slots[v]] = x
        _add_cost(machine.host, self.cost)
        self.run_body(env, machine.host)


class Compiler:
    """Compiles one kernel for one target; `compile()` returns a Program.

    While compiling a mixed launch, `role` is the core type whose program is being built
    (a `core` region of the other type is left out) and `in_core` says whether the op is
    inside a `core` region.
    """

    def __init__(self, kernel: Kernel, target: Target, checks: bool,
                 timing: TimingModel | None = None) -> None:
        self.kernel = kernel
        self.target = target
        self.checks = checks
        self.timing = timing
        self.launch_kind = launch_core(kernel)
        self.role: CoreType | None = None
        self.in_spmd = False
        self.in_core = False
        self.slots: dict[Value, int] = {}
        self.consts: dict[int, Any] = {}

    def slot(self, v: Value) -> int:
        s = self.slots.get(v)
        if s is None:
            s = self.slots[v] = len(self.slots)
        return s

    def compile(self) -> Program:
        for p in self.kernel.params:
            self.slot(p.value)
        run, cost, _ = self.block(self.kernel.body)
        template: list = [None] * len(self.slots)
        for s, x in self.consts.items():
            template[s] = x
        return Program(self.kernel, run, self.slots, template, cost)

    def block(self, blk: Block) -> tuple[Fn, Cost, bool]:
        """Compile a block's ops (its terminator excluded) -> (runner, static cost, waits):
        `waits` says the runner is a generator function (the block holds a waiting op)."""
        for a in blk.args:
            self.slot(a)
        fns: list[Fn] = []
        owners: dict[Fn, Op] = {}
        cost = [0] * len(PIPES)
        for op in blk.ops:
            if op.opdef.kind is OpKind.TERMINATOR:
                continue
            f = self.op(op)
            if op.opdef.cost is not None:
                pipe = op.opdef.pipe_of(op)
                if pipe is not None:
                    cost[_PIPE_INDEX[pipe]] += int(op.opdef.cost(op, self.target))
            if f is not None:
                if self.timing is not None and op.opdef not in syncops.RULES:
                    f = self.timing.wrap(op, f, self.slot, self.in_spmd)
                fns.append(f)
                owners[f] = op
        static = tuple((i, c) for i, c in enumerate(cost) if c)
        if any(inspect.isgeneratorfunction(f) for f in fns):
            return _gen_runner(fns, owners), static, True
        return _runner(fns, owners), static, False

    def op(self, op: Op) -> Fn | None:
        """Compile one op into a closure (None for a constant, folded into the template,
        and for the `core` region another core type runs)."""
        for v in op.results:
            self.slot(v)
        if self.checks:
            pending = static_error(op, self.target)
            if pending is not None:
                return raiser(op, pending)
        d = op.opdef
        if self.role is not None and not self.in_core and op.opdef.unit_of(op) not in (
                Unit.SCALAR, Unit.CONTROL):
            reject_mixed_op(op)
        if d is CONST:
            self.consts[self.slot(op.result)] = d.impl(op.attrs)
            return None
        if d is FOR:
            return self.for_op(op)
        if d is SPMD:
            return self.spmd_op(op)
        if d is CORE:
            return self.core_op(op)
        rule = memops.RULES.get(d)
        if rule is not None:
            return rule(op, self)
        rule = syncops.RULES.get(d)
        if rule is not None:
            if not self.in_spmd:
                raise UnsupportedError(f"{d.name} outside the spmd launch: only the cores of a "
                                       "launch synchronise", loc=op.loc,
                                       fix="move it into the spmd region")
            return rule(op, self)
        if op.opdef.kind is OpKind.PURE and op.opdef.impl is not None:
            return self.pure_op(op)
        raise UnsupportedError(f"the simulator has no rule for op {d.name!r}", loc=op.loc,
                               fix="declare its numpy `impl` in mixtile/ir/ops.py, or add a "
                                   "rule to mixtile/simulator/memops.RULES")

    # ------------------------------------------------------------ pure ops

    def pure_op(self, op: Op) -> Fn:
        impl, attrs = op.opdef.impl, op.attrs
        ins = [self.slot(v) for v in op.operands]
        outs = [self.slot(v) for v in op.results]
        if len(outs) != 1:
            def multi(env, st):
                for s, x in zip(outs, impl(attrs, *[env[i] for i in ins]), strict=False):
                    env[s] = x
            return multi
        r = outs[0]
        post = _post(op)
        n = len(ins)
        if post is None:
            if n == 1:
                a, = ins
                def f(env, st): env[r] = impl(attrs, env[a])
            elif n == 2:
                a, b = ins
                def f(env, st): env[r] = impl(attrs, env[a], env[b])
            else:
                def f(env, st): env[r] = impl(attrs, *[env[i] for i in ins])
        elif n == 1:
            a, = ins
            def f(env, st): env[r] = post(impl(attrs, env[a]))
        elif n == 2:
            a, b = ins
            def f(env, st): env[r] = post(impl(attrs, env[a], env[b]))
        elif n == 3:
            a, b, c = ins
            def f(env, st): env[r] = post(impl(attrs, env[a], env[b], env[c]))
        else:
            def f(env, st): env[r] = post(impl(attrs, *[env[i] for i in ins]))
        return f

    # ------------------------------------------------------------ control

    def for_op(self, op: Op) -> Fn:
        lb, ub, step = (self.slot(v) for v in op.operands[:3])
        inits = [self.slot(v) for v in op.operands[3:]]
        body_blk = op.regions[0]
        body, cost, waits = self.block(body_blk)
        iv, *args = (self.slot(a) for a in body_blk.args)
        term = body_blk.ops[-1] if body_blk.ops else None
        if term is None or term.opdef is not YIELD:
            raise InternalError("for body does not end with yield", loc=op.loc)
        ys = [self.slot(v) for v in term.operands]
        outs = [self.slot(v) for v in op.results]
        loc, carried = op.loc, list(zip(args, ys, strict=False))
        one = carried[0] if len(carried) == 1 else None

        def trips(env, st) -> range:
            lo, hi, stp = env[lb], env[ub], env[step]
            if stp <= 0:
                raise TraceError(f"for loop step is {stp} (bounds {lo}..{hi}); the step must "
                                 "be positive", loc=loc, where=st.where("for"),
                                 fix="use a positive step (count down by mapping the index)")
            rng = range(lo, hi, stp)
            if cost and len(rng):
                _add_cost(st, cost, len(rng))
            for s, i in zip(args, inits, strict=False):
                env[s] = env[i]
            return rng

        def carry(env) -> None:
            vals = [env[y] for _, y in carried]
            for (s, _), x in zip(carried, vals, strict=False):
                env[s] = x

        if waits:
            def run_for_waiting(env, st):
                for i in trips(env, st):
                    env[iv] = i
                    yield from body(env, st)
                    carry(env)
                for s, a in zip(outs, args, strict=False):
                    env[s] = env[a]
            return run_for_waiting

        def run_for(env, st):
            rng = trips(env, st)
            if one is not None:
                a0, y0 = one
                for i in rng:
                    env[iv] = i
                    body(env, st)
                    env[a0] = env[y0]
            else:
                for i in rng:
                    env[iv] = i
                    body(env, st)
                    if carried:
                        carry(env)
            for s, a in zip(outs, args, strict=False):
                env[s] = env[a]
        return run_for

    def core_op(self, op: Op) -> Fn | None:
        """A `core` region: this role's program runs it; the other role skips it."""
        if self.role is None:
            raise UnsupportedError("a core region in a kernel that is not mixed",
                                   loc=op.loc, fix='set kernel.attrs["core"] = CoreType.MIX')
        if op.attrs["core"] is not self.role:
            return None
        blk = op.regions[0]
        self.in_core = True
        try:
            body, cost, waits = self.block(blk)
        finally:
            self.in_core = False
        lane = self.slot(blk.args[0]) if blk.args else None

        if waits:
            def run_core_waiting(env, st):
                if lane is not None:
                    env[lane] = st.lane
                _add_cost(st, cost)
                yield from body(env, st)
            return run_core_waiting

        def run_core(env, st):
            if lane is not None:
                env[lane] = st.lane
            _add_cost(st, cost)
            body(env, st)
        return run_core

    def spmd_op(self, op: Op) -> Fn:
        grid = self.slot(op.operands[0])
        blk = op.regions[0]
        arg = self.slot(blk.args[0])
        kind = self.launch_kind
        roles = [CoreType.AIC, CoreType.AIV] if kind is CoreType.MIX else [kind]
        programs = {}
        self.in_spmd = True
        try:
            for role in roles:
                self.role = role if kind is CoreType.MIX else None
                programs[role] = self.block(blk)
        finally:
            self.in_spmd, self.role = False, None
        syncalls = [o for o in blk.walk() if o.opdef is SYNCALL]
        flags = any(o.opdef in (SET_FLAG, WAIT_FLAG) for o in blk.walk())
        checks, target = self.checks, self.target

        def run_spmd(env, st):
            n = env[grid]
            if syncalls:
                check_syncalls(syncalls, n, kind, target)
            Launch(st.machine, kind, n, programs, env, arg, checks, flags).run()
        return run_spmd


def _post(op: Op) -> Callable[[Any], Any] | None:
    """The storage rounding of a pure op's result (None when it can never change it)."""
    from mixtile.ir.numeric import round_to

    t = op.results[0].type
    if not isinstance(t, TileType):
        return None
    dt = t.dtype
    cnp = dt.compute_np
    src = next((v.type.dtype for v in op.operands if isinstance(v.type, TileType)), None)
    # an exact op's result holds only values of its (same-dtype) operands: no rounding
    if dt in _NARROW and not (src is dt and op.opdef.is_exact(op)):
        return lambda x: round_to(dt, x)

    def ensure(x):
        return x if x.dtype == cnp else round_to(dt, x)
    return ensure


def compile_kernel(kernel: Kernel, target: Target, checks: bool,
                   timing: TimingModel | None = None) -> Program:
    """Compile `kernel` into closures for `target` (static checks folded in if `checks`;
    with `timing`, every op also placed in time by that model)."""
    return Compiler(kernel, target, checks, timing).compile()
