"""PingPong: unroll the loops that load on-chip tiles by two, so that PlanMemory can give
the two halves their own buffers (ping-pong / double buffering).

On an Ascend core the pipes run concurrently, ordered only where two ops touch the same
buffer (InsertPipeSync). A K loop that loads its tiles into one L1 / L0A / L0B buffer
makes every load wait for the previous step's consumer: MTE2, MTE1 and the cube take
turns. Unrolled by two, the second half's tiles live while the first half's are still in
use, PlanMemory places them apart, and the second half's loads run while the cube (or the
vector unit) works on the first half's; the next iteration's first half waits only for
the consumer two steps back.

    for i in range(lo, hi, s):          for i in range(lo, hi, 2 * s):
        body(i)                  ->         body(i)                       # first half
                                            for j in range(i + s, min(i + 2 * s, hi), s):
                                                body(j)                   # 0 or 1 trip

Carried values flow through the guard loop (its zero or one trip is the odd step). The
arithmetic and its order are unchanged: results are bit-identical. PlanMemory keeps the
tiles the first half defines live until the guard loop ends (the guard carries
attrs["pingpong"] = "guard"); where that does not fit it keeps only the moved tiles
(MTE2 / MTE1 results) live, then only the loaded ones (MTE2), and where that does not fit
either it plans as before (one buffer per tile; attrs["held"] on the guard says which).

A loop qualifies when it is innermost (no op with a region in its body), its step is a
positive constant, it does not run fewer than two trips (constant bounds), its body loads
or moves an on-chip tile (MTE2 / MTE1) for the cube or the vector unit to use, and holds
no flag, fence or syncall (a cube<->vector crossing's ring already alternates its slots).
A launch whose unrolled loops do not fit even with one buffer per tile (a guard loop that
carries L0 tiles needs buffers of its own) gets its loops back as written. Compile with
pingpong=False to keep every loop as written (the "before" of a timeline).
"""
from __future__ import annotations

from mixtile.ir.builder import make_op
from mixtile.ir.core import Block, Kernel, Op, Value, replace_uses
from mixtile.ir.ops import CONST, FOR, SADD, SMIN, SPMD, YIELD
from mixtile.ir.types import DType, MemSpace, Pipe, TileType
from mixtile.passes.manager import PassContext, compiler_pass

_MOVES = (Pipe.MTE2, Pipe.MTE1)
_USERS = (Pipe.M, Pipe.V, Pipe.FIX, Pipe.MTE3, Pipe.MTE1)
_ON_CHIP = (MemSpace.L1, MemSpace.L0A, MemSpace.L0B, MemSpace.L0C, MemSpace.UB)


def is_guard(op: Op) -> bool:
    """Is op the guard loop (the second half, zero or one trip) of an unrolled loop?"""
    return op.opdef is FOR and op.attrs.get("pingpong") == "guard"


def _const(v: Value) -> int | None:
    op = v.op
    if op is not None and op.opdef is CONST and isinstance(op.attrs.get("value"), int):
        return op.attrs["value"]
    return None


def _moves_tile(op: Op) -> bool:
    return op.opdef.pipe_of(op) in _MOVES and any(
        isinstance(r.type, TileType) and r.type.space in _ON_CHIP for r in op.results)


def qualifies(f: Op) -> bool:
    """May loop `f` be unrolled by two for ping-pong buffers (see the module docstring)?"""
    body = f.regions[0]
    step = _const(f.operands[2])
    if step is None or step <= 0 or f.attrs.get("pingpong"):
        return False
    lo, hi = _const(f.operands[0]), _const(f.operands[1])
    if lo is not None and hi is not None and -(-(hi - lo) // step) < 2:
        return False
    moved: set[Value] = set()
    used = False
    for op in body.ops:
        d = op.opdef
        if op.regions or d.sync:
            return False
        if _moves_tile(op):
            moved.update(op.results)
        if any(v in moved for v in op.operands) and d.pipe_of(op) in _USERS:
            used = True
    return used


def _clone_body(body: Block, dst: Block, vmap: dict) -> list[Value]:
    """Clone body's ops (all but the yield) into dst; return the yielded values."""
    for op in body.ops:
        if op.opdef is YIELD:
            return [vmap.get(v, v) for v in op.operands]
        new = Op(op.opdef, [vmap.get(v, v) for v in op.operands],
                 [r.type for r in op.results], dict(op.attrs), [], op.loc)
        dst.append(new)
        for old, nr in zip(op.results, new.results):
            vmap[old] = nr
    raise AssertionError("a loop body without a yield")


def unroll(f: Op, root: Block) -> Op:
    """Replace loop f (in its block) by its ping-pong form; returns the new loop."""
    lo, hi, step, *inits = f.operands
    body = f.regions[0]
    loc = f.loc
    types = [a.type for a in body.args]
    hints = [a.hint for a in body.args]

    # the doubled step: a constant defined before the loop (as the loop's operands are)
    c2 = make_op(CONST, [], {"dtype": DType.I64, "value": 2 * _const(step)}, loc=loc)
    outer = Block(types, hints)
    vmap = dict(zip(body.args, outer.args))
    first = _clone_body(body, outer, vmap)
    iv = outer.args[0]
    j0 = outer.append(make_op(SADD, [iv, step], loc=loc)).result
    j1 = outer.append(make_op(SADD, [iv, c2.result], loc=loc)).result
    end = outer.append(make_op(SMIN, [j1, hi], loc=loc)).result
    inner = Block(types, hints)
    vmap = dict(zip(body.args, inner.args))
    second = _clone_body(body, inner, vmap)
    inner.append(make_op(YIELD, second, loc=loc))
    guard = outer.append(Op(FOR, [j0, end, step, *first], [v.type for v in first],
                            {"pingpong": "guard"}, [inner], loc))
    outer.append(make_op(YIELD, list(guard.results), loc=loc))

    blk = f.parent
    new = Op(FOR, [lo, hi, c2.result, *inits], [r.type for r in f.results],
             dict(f.attrs, pingpong=True), [outer], loc)
    i = blk.ops.index(f)
    blk.ops[i:i + 1] = [c2, new]
    c2.parent = new.parent = blk
    for old, nr in zip(f.results, new.results):
        replace_uses(root, old, nr)
    return new


def _undo(f: Op, new: Op, root: Block) -> None:
    """Put loop f back where unroll put `new` (and the doubled step before it)."""
    blk = new.parent
    i = blk.ops.index(new)
    blk.ops[i - 1:i + 1] = [f]
    f.parent = blk
    for nr, old in zip(new.results, f.results):
        replace_uses(root, nr, old)


@compiler_pass("PingPong")
def PingPong(kernel: Kernel, ctx: PassContext) -> Kernel:  # noqa: N802
    """Unroll loops that load on-chip tiles by two (PlanMemory gives the halves their own
    buffers where they fit). A launch whose unrolled loops do not fit even with one
    buffer per tile (a guard loop carrying L0 tiles needs buffers of its own) gets its
    loops back as written."""
    if not ctx.options.get("pingpong", True):
        return kernel
    from mixtile.errors import CapacityError
    from mixtile.passes.plan_memory import plan_block

    regions = [(kernel.body, True)] + [(op.regions[0], False) for op in kernel.body.ops
                                       if op.opdef is SPMD]
    for blk, skip in regions:
        loops = [op for op in (blk.walk() if not skip else _outside_spmd(blk))
                 if op.opdef is FOR and qualifies(op)]
        done = [(f, unroll(f, kernel.body)) for f in loops]
        if not done:
            continue
        try:
            plan_block(blk, ctx.target, skip, kernel.attrs.get("ring_bytes"), write=False)
        except CapacityError:
            for f, new in reversed(done):
                _undo(f, new, kernel.body)
    return kernel


def _outside_spmd(blk: Block):
    """The ops of the kernel body outside its launches (nested regions included)."""
    for op in blk.ops:
        if op.opdef is SPMD:
            continue
        yield op
        for r in op.regions:
            yield from r.walk()
