"""Closures for the synchronisation ops: set_flag, wait_flag, fence, syncall.

set_flag (AIC -> AIV: both lanes' counters rise; AIV -> AIC: the AIC's counter rises once
both AIVs of the cluster have set it, as CrossCoreSetFlag mode 2 does on A2/A3) and fence
never wait, so they are plain closures `f(env, st)` like every other
op. wait_flag and syncall are generator functions: they return at once when they need
not wait, and otherwise yield a wait token (`sched.FlagWait` / `sched.BarrierWait`) that
the scheduler polls before resuming them. `st` is a `sched.Task`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mixtile.errors import FlagOverflowError
from mixtile.ir.core import Op
from mixtile.ir.ops import FENCE, PIPE_SYNC, SET_FLAG, SYNCALL, WAIT_FLAG
from mixtile.ir.registry import OpDef
from mixtile.ir.types import CoreRole
from mixtile.simulator.sched import FLAG_TARGETS, BarrierWait, FlagWait, join_msgs

if TYPE_CHECKING:
    from mixtile.simulator.interp import Compiler


def _set_flag(op: Op, c: Compiler) -> Callable[[list, Any], None]:
    flag, to = op.attrs["flag"], op.attrs.get("to", CoreRole.AIV)
    targets = FLAG_TARGETS[to]
    checks, limit, tm = c.checks, c.target.flag_limit, c.timing

    def set_flag(env, st):
        msg = st.release() if st.tracker is not None else None
        if tm is not None:  # the message also carries the set's time
            msg = tm.set_flag(op, st, msg)
        cf = st.cflags
        if to is CoreRole.AIC and st.role is not CoreRole.AIC:  # an AIV's half of a pair
            other = cf.halves[1 - st.lane][flag]
            if not other:
                mine = cf.halves[st.lane][flag]
                mine.append(msg)
                if checks and len(mine) > limit:
                    _overflow(op, st, "AIC", flag, len(mine), limit,
                              f" ({st.role.value}'s sets still unpaired with the other AIV's)")
                return
            msg = join_msgs(msg, other.popleft()) if tm is None else \
                tm.join(msg, other.popleft(), join_msgs)
        for r in targets:
            q = cf.q[r][flag]
            q.append(msg)
            if checks and len(q) > limit:
                _overflow(op, st, r.value, flag, len(q), limit)
    return set_flag


def _overflow(op: Op, st: Any, core: str, flag: int, n: int, limit: int,
              extra: str = "") -> None:
    raise FlagOverflowError(
        f"set_flag(flag {flag}) to core {core} of cluster {st.cluster}: its counter now "
        f"holds {n} sets with no matching wait_flag{extra} (the hardware counts {limit}); "
        "the chip freezes", loc=op.loc, where=st.where("set_flag"),
        fix="wait for the consumer before setting the flag again: use a ring of N <= "
            f"{limit} GM slots with a reverse flag the consumer sets when it has read a slot, "
            "and have the producer wait_flag on it before reusing the slot")


def _wait_flag(op: Op, c: Compiler) -> Callable[[list, Any], Any]:
    flag, tm = op.attrs["flag"], c.timing

    def wait_flag(env, st):
        q = st.flags[flag]
        if not q:
            tok = FlagWait(q, flag, op, st.cflags.halves if st.role is CoreRole.AIC else None)
            while not q:
                yield tok
        msg = q.popleft()
        if tm is not None:
            msg = tm.wait_flag(op, st, msg)
        if msg is not None:
            st.acquire(msg)
    return wait_flag


def _fence(op: Op, c: Compiler) -> Callable[[list, Any], None]:
    tm = c.timing

    def fence(env, st):
        st.fence()
        if tm is not None:
            tm.fence(op, st)
    return fence


def _syncall(op: Op, c: Compiler) -> Callable[[list, Any], Any]:
    core_type, tm = op.attrs.get("core_type", c.launch_kind), c.timing

    def syncall(env, st):
        b = st.launch.barrier(core_type, op, st)
        if tm is not None:
            tm.arrive(op, st, b, b.gen)
        gen = b.arrive(st)
        if b.gen <= gen:
            tok = BarrierWait(b, gen, op)
            while b.gen <= gen:
                yield tok
        if tm is not None:
            tm.leave(op, st, b, gen)
    return syncall


def _pipe_sync(op: Op, c: Compiler) -> Callable[[list, Any], None]:
    tm = c.timing

    def pipe_sync(env, st):  # a core's ops already run in program order here
        if tm is not None:  # but the timing model orders its pipes by it
            tm.pipe_sync(op, st)
    return pipe_sync


RULES: dict[OpDef, Callable[[Op, Compiler], Callable]] = {
    PIPE_SYNC: _pipe_sync,
    SET_FLAG: _set_flag, WAIT_FLAG: _wait_flag, FENCE: _fence, SYNCALL: _syncall,
}
