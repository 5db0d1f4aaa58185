"""`mt.spmd` launch blocks and `mt.range` loops, traced as IR regions.

`mt.range` finds its loop-carried values by comparing the calling frame's local
variables before and after the body: a variable bound to a handle before the loop
and rebound inside it is carried. The body is traced once; uses of the initial value
inside the body are then redirected to the loop's block argument.
"""
from __future__ import annotations

import sys

from mixtile.errors import TraceError
from mixtile.ir.core import Block, replace_uses
from mixtile.ir.ops import FOR, SPMD, YIELD
from mixtile.ir.types import INDEX
from mixtile.language import tracer
from mixtile.language.tracer import (
    ScalarVal,
    TileVal,
    as_scalar,
    emit,
    index_operand,
    pop_block,
    push_block,
    user_loc,
)

_HANDLES = (ScalarVal, TileVal)


def spmd(grid):
    """`for blk in mt.spmd(n):` -- launch n blocks; `blk` is the block index."""
    epoch = tracer._state.epoch
    if len(tracer._state.stack) != 1:
        raise TraceError("mt.spmd inside a loop or another mt.spmd", loc=user_loc(),
                         fix="launches go at the kernel's top level, one after another")
    g = index_operand(grid, "spmd grid")
    body = Block([INDEX], ["blk"])
    emit(SPMD, [g], regions=[body])
    push_block(body)
    try:
        yield ScalarVal(body.args[0])
    except GeneratorExit:
        _closed_early(body, "mt.spmd", user_loc(), epoch)
        return
    pop_block()


def _closed_early(body: Block, what: str, loc, epoch: int) -> None:
    """The loop was left by `break` (or by an error in its body): note the error; it is
    raised at the next op or at the end of tracing (a closing generator cannot raise)."""
    if epoch != tracer._state.epoch:
        return  # closed after its trace ended
    if tracer._state.stack and tracer._state.stack[-1] is body:
        pop_block()
    if tracer._state.pending is None:
        tracer._state.pending = TraceError(
            f"`break` inside {what} is not supported", loc=loc,
            fix="bound the loop with a runtime stop value instead")


def _handles(frame_locals: dict) -> dict[str, object]:
    return {k: v for k, v in frame_locals.items() if isinstance(v, _HANDLES)}


def _numbers(frame_locals: dict) -> dict[str, object]:
    return {k: v for k, v in frame_locals.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


class range:  # noqa: N801 (mirrors the builtin it replaces)
    """`for i in mt.range(start, stop, step):` -- a real loop in the IR (runtime bounds ok)."""

    def __init__(self, start, stop=None, step=1) -> None:
        if stop is None:
            start, stop = 0, start
        if isinstance(step, int) and step <= 0:
            raise TraceError(f"mt.range step must be positive, got {step}", loc=user_loc())
        self.bounds = (start, stop, step)

    def __iter__(self):
        frame = sys._getframe(1)
        return self._gen(frame)

    def _gen(self, frame):
        loc = user_loc()
        epoch = tracer._state.epoch
        lb, ub, st = (index_operand(b, f"mt.range {n}")
                      for b, n in zip(self.bounds, ("start", "stop", "step")))
        before = _handles(frame.f_locals)
        nums_before = _numbers(frame.f_locals)
        body = Block([INDEX], ["i"])
        push_block(body)
        try:
            yield ScalarVal(body.args[0])
        except GeneratorExit:  # `break` out of the body, or an error raised inside it
            _closed_early(body, "mt.range", loc, epoch)
            return
        after = frame.f_locals
        carried = []
        for name, h0 in before.items():
            h1 = after.get(name)
            if h1 is h0 or not isinstance(h1, _HANDLES) or not tracer.visible(h0.value):
                continue  # unchanged, or a stale name from an earlier, closed loop body
            if type(h1) is not type(h0) or h1.value.type != h0.value.type:
                pop_block()
                raise TraceError(
                    f"loop-carried `{name}` changes type inside mt.range: "
                    f"{h0.value.type} before the loop, {h1.value.type} after one iteration",
                    loc=loc, fix="make the initial value match (same shape and dtype; "
                                 "use .astype(...) or the right mt.zeros shape)")
            aliases = [k for k, v in before.items() if v is h0 and k != name]
            if aliases:
                pop_block()
                raise TraceError(
                    f"loop-carried `{name}` starts as the same value as `{aliases[0]}`, so "
                    "uses inside the loop are ambiguous", loc=loc,
                    fix=f"start `{name}` from its own value (e.g. `{name} = {aliases[0]} + 0`)")
            carried.append((name, h0, h1))
        for name, v in nums_before.items():
            if name in after and after[name] != v:
                pop_block()
                raise TraceError(
                    f"Python number `{name}` is reassigned inside mt.range; the body is "
                    "traced once, so it would not change per iteration", loc=loc,
                    fix="keep it in an mt value (e.g. `x = mt.zeros(...)` or an index "
                        "computed from the loop variable)")
        for _, h0, _h1 in carried:
            arg = body.add_arg(h0.value.type)
            replace_uses(body, h0.value, arg)
        emit(YIELD, [h1.value for _, _, h1 in carried], loc=loc)
        pop_block()
        op = emit(FOR, [lb, ub, st, *(h0.value for _, h0, _ in carried)],
                  regions=[body], loc=loc)
        for (_, _, h1), res in zip(carried, op.results):
            h1.value = res  # the name now holds the loop's final value
            if isinstance(h1, ScalarVal):
                h1.lin = (frozenset({(id(res), 1)}), 0)  # no longer body-affine


def cdiv(a, b):
    """Ceiling division for ints and index values."""
    if isinstance(a, int) and isinstance(b, int):
        return -(-a // b)
    for v in (a, b):
        if not isinstance(v, (int, ScalarVal)) or isinstance(v, bool):
            raise TraceError(f"mt.cdiv takes ints or index values, got {type(v).__name__}",
                             loc=user_loc())
    return (as_scalar(a) + (b - 1)) // b
