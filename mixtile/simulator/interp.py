"""The closure compiler and executor of the simulator.

`compile_kernel` turns a kernel's IR into Python closures once: every Value gets an integer
slot in a flat environment list, and each op becomes `f(env, st)` with its operand slots,
opdef impl, attrs, rounding and static check results bound at compile time. A block runs as
a plain loop over its closures; cycle costs are summed per block at compile time and added
once per block execution (times the trip count for a `for` body).

Per-core state (`CoreState`: name, current block, cycle counters) lives in objects, never in
globals. The `spmd` closure runs blocks sequentially, block b on core b % count; a later
version can instead drive one generator per core (closures returning a wait token for
flags/barriers, runners turned into generators) without changing the op closures.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mixtile.errors import InternalError, MixtileError, TraceError, UnsupportedError
from mixtile.ir.core import Block, Kernel, Op, Value
from mixtile.ir.registry import OpKind
from mixtile.ir.types import CoreType, DType, Pipe, ReduceKind, TileType
from mixtile.simulator import memops
from mixtile.simulator.checks import raiser, static_error
from mixtile.target import Target

PIPES: list[Pipe] = list(Pipe)
_PIPE_INDEX = {p: i for i, p in enumerate(PIPES)}

Fn = Callable[[list, "CoreState"], None]
Cost = tuple[tuple[int, int], ...]  # (pipe index, cycles) per pipe with work

# Ops whose result holds only values of their (same-dtype) operands: no storage rounding.
_EXACT = frozenset({"reshape", "broadcast", "transpose", "select", "maximum", "minimum",
                    "neg", "abs", "relu"})
_NARROW = frozenset({DType.F16, DType.BF16, DType.F8E4M3, DType.F8E5M2})


class CoreState:
    """One core's run-time state: its name, the block it runs, and cycles per pipe."""

    __slots__ = ("block", "cycles", "machine", "name")

    def __init__(self, name: str, machine: Machine) -> None:
        self.name = name
        self.block: int | None = None
        self.cycles = [0] * len(PIPES)
        self.machine = machine

    def where(self, opname: str) -> str:
        """The run-time context of an error: "block 3, core AIC3, op load"."""
        if self.block is None:
            return f"{self.name}, op {opname}"
        return f"block {self.block}, core {self.name}, op {opname}"

    def cycles_by_pipe(self) -> dict[Pipe, int]:
        """This core's cycle counters keyed by Pipe."""
        return {p: self.cycles[i] for i, p in enumerate(PIPES)}


class Machine:
    """Run-time state of one launch: the target, the core states, blocks run so far."""

    def __init__(self, target: Target, core_type: CoreType, checks: bool) -> None:
        self.target = target
        self.checks = checks
        if core_type is CoreType.AIC:
            self.prefix, self.count = "AIC", target.aic_count
        elif core_type is CoreType.AIV:
            self.prefix, self.count = "AIV", target.aiv_count
        else:
            raise UnsupportedError(f"the simulator cannot run a {core_type.value} kernel yet",
                                   fix="split cube and vector work into separate kernels")
        self.cores: dict[int, CoreState] = {}
        self.host = CoreState("host", self)
        self.blocks = 0

    def core_for(self, block: int) -> CoreState:
        """The core that runs `block` (block b runs on core b % count; later waves reuse)."""
        i = block % self.count
        st = self.cores.get(i)
        if st is None:
            st = self.cores[i] = CoreState(f"{self.prefix}{i}", self)
        return st


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
            op = owners.get(f)
            if op is None:
                raise
            raise InternalError(f"simulating {op.name} failed: {type(e).__name__}: {e}",
                                loc=op.loc, where=st.where(op.name)) from e
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
    """Compiles one kernel for one target; `compile()` returns a Program."""

    def __init__(self, kernel: Kernel, target: Target, checks: bool) -> None:
        self.kernel = kernel
        self.target = target
        self.checks = checks
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
        run, cost = self.block(self.kernel.body)
        template: list = [None] * len(self.slots)
        for s, x in self.consts.items():
            template[s] = x
        return Program(self.kernel, run, self.slots, template, cost)

    def block(self, blk: Block) -> tuple[Fn, Cost]:
        """Compile a block's ops (its terminator excluded) -> (runner, static cost)."""
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
                fns.append(f)
                owners[f] = op
        return _runner(fns, owners), tuple((i, c) for i, c in enumerate(cost) if c)

    def op(self, op: Op) -> Fn | None:
        """Compile one op into a closure (None for a constant, folded into the template)."""
        for v in op.results:
            self.slot(v)
        if self.checks:
            pending = static_error(op, self.target)
            if pending is not None:
                return raiser(op, pending)
        name = op.name
        if name == "const":
            self.consts[self.slot(op.result)] = op.opdef.impl(op.attrs)
            return None
        if name == "for":
            return self.for_op(op)
        if name == "spmd":
            return self.spmd_op(op)
        rule = memops.RULES.get(name)
        if rule is not None:
            return rule(op, self)
        if op.opdef.kind is OpKind.PURE and op.opdef.impl is not None:
            return self.pure_op(op)
        raise UnsupportedError(f"the simulator has no rule for op {name!r}", loc=op.loc,
                               fix="add one in mixtile/simulator (memops.RULES or interp)")

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
        body, cost = self.block(body_blk)
        iv, *args = (self.slot(a) for a in body_blk.args)
        term = body_blk.ops[-1] if body_blk.ops else None
        if term is None or term.name != "yield":
            raise InternalError("for body does not end with yield", loc=op.loc)
        ys = [self.slot(v) for v in term.operands]
        outs = [self.slot(v) for v in op.results]
        loc, carried = op.loc, list(zip(args, ys, strict=False))
        one = carried[0] if len(carried) == 1 else None

        def run_for(env, st):
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
                        vals = [env[y] for _, y in carried]
                        for (s, _), x in zip(carried, vals, strict=False):
                            env[s] = x
            for s, a in zip(outs, args, strict=False):
                env[s] = env[a]
        return run_for

    def spmd_op(self, op: Op) -> Fn:
        grid = self.slot(op.operands[0])
        blk = op.regions[0]
        body, cost = self.block(blk)
        arg = self.slot(blk.args[0])

        def run_spmd(env, st):
            m = st.machine
            n = env[grid]
            for b in range(n):
                core = m.core_for(b)
                core.block = b
                benv = env.copy()
                benv[arg] = b
                _add_cost(core, cost)
                body(benv, core)
                m.blocks += 1
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
    exact = (op.name in _EXACT
             or (op.name == "reduce" and op.attrs.get("kind") in (ReduceKind.MAX,
                                                                 ReduceKind.MIN))
             or (op.name == "cast" and src is dt))
    if dt in _NARROW and not (exact and src is dt):
        return lambda x: round_to(dt, x)

    def ensure(x):
        return x if x.dtype == cnp else round_to(dt, x)
    return ensure


def compile_kernel(kernel: Kernel, target: Target, checks: bool) -> Program:
    """Compile `kernel` into closures for `target` (static checks folded in if `checks`)."""
    return Compiler(kernel, target, checks).compile()
