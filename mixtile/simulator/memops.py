"""Closures for the ops the simulator implements itself: load, store, fixpipe, move,
load_scalar and dim. Each rule takes (op, compiler) and returns `f(env, st)`.

The GM side (clipping, bounds and uninitialised-read checks) lives in `memory.GMBuffer`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from mixtile.ir.core import Op
from mixtile.ir.numeric import pad_value, round_to
from mixtile.ir.ops import DIM, FIXPIPE, LOAD, LOAD_SCALAR, MOVE, STORE
from mixtile.ir.registry import OpDef
from mixtile.ir.types import AtomicKind, DType

if TYPE_CHECKING:
    from mixtile.simulator.interp import Compiler

Rule = Callable[[Op, "Compiler"], Callable[[list, Any], None]]


def _region(op: Op, c: Compiler, first_off: int):
    t = c.slot(op.operands[0])
    end = len(op.operands) - (op.attrs.get("row_limit") is not None)
    offs = tuple(c.slot(v) for v in op.operands[first_off:end])
    return t, offs, tuple(op.attrs["sizes"]), tuple(op.attrs["keep"])


def _limited(op: Op, c: Compiler, sizes):
    """For an op with a row limit (a lane's share of an odd row count): -> a function
    giving (sizes, rows) with dim d cut so the region ends at the limit."""
    d = op.attrs.get("row_limit")
    if d is None:
        return None
    lim = c.slot(op.operands[-1])
    ta = sum(op.attrs["keep"][:d])  # the tile axis of region dim d

    def cut(env, offs):
        n = max(0, min(sizes[d], env[lim] - offs[d]))
        return sizes[:d] + (n,) + sizes[d + 1:], (slice(None),) * ta + (slice(0, n),)
    return cut


def _load(op: Op, c: Compiler):
    t, offs, sizes, keep = _region(op, c, 1)
    rt = op.results[0].type
    pad = pad_value(rt.dtype, op.attrs.get("pad", 0.0))
    shape, r, checks = rt.shape, c.slot(op.result), c.checks
    cut = _limited(op, c, sizes)
    if cut is not None:
        def load_limited(env, st):
            o = [env[i] for i in offs]
            sz, part_idx = cut(env, o)
            part_shape = tuple(s for s, k in zip(sz, keep) if k)
            part = env[t].read(o, sz, keep, pad, part_shape, checks, op, st)
            tile = np.full(shape, pad, dtype=part.dtype)
            tile[part_idx] = part
            env[r] = tile
        return load_limited
    if len(offs) == 2:
        o0, o1 = offs

        def load2(env, st):
            env[r] = env[t].read([env[o0], env[o1]], sizes, keep, pad, shape, checks, op, st)
        return load2

    def load(env, st):
        env[r] = env[t].read([env[o] for o in offs], sizes, keep, pad, shape, checks, op, st)
    return load


def _atomic(op: Op) -> bool:
    return op.attrs.get("atomic", AtomicKind.NONE) is AtomicKind.ADD


def _store(op: Op, c: Compiler):
    t, offs, sizes, keep = _region(op, c, 2)
    x, atomic, checks = c.slot(op.operands[1]), _atomic(op), c.checks
    cut = _limited(op, c, sizes)
    if cut is not None:
        def store_limited(env, st):
            o = [env[i] for i in offs]
            sz, part_idx = cut(env, o)
            env[t].write(o, sz, keep, env[x][part_idx], atomic, checks, op, st)
        return store_limited

    def store(env, st):
        env[t].write([env[o] for o in offs], sizes, keep, env[x], atomic, checks, op, st)
    return store


def _fixpipe(op: Op, c: Compiler):
    has_bias = bool(op.attrs.get("has_bias"))
    t, offs, sizes, keep = _region(op, c, 3 if has_bias else 2)
    acc = c.slot(op.operands[1])
    bias = c.slot(op.operands[2]) if has_bias else None
    relu, dt = bool(op.attrs.get("relu")), op.attrs["dtype"]
    atomic, checks = _atomic(op), c.checks
    acc_np = op.operands[1].type.dtype.compute_np
    exact = dt.compute_np == acc_np and (dt is DType.F32 or not dt.is_float)
    cut = _limited(op, c, sizes)

    def fixpipe(env, st):
        v = env[acc]
        if bias is not None:
            v = v + env[bias]
        if relu:
            v = np.maximum(v, 0)
        if not (exact and v.dtype == acc_np):
            v = round_to(dt, v)
        o, sz = [env[i] for i in offs], sizes
        if cut is not None:  # store(..., rows=n) fused into the writeback
            sz, part = cut(env, o)
            v = v[part]
        env[t].write(o, sz, keep, v, atomic, checks, op, st, "fixpipe")
    return fixpipe


def _move(op: Op, c: Compiler):
    # a move keeps the dtype; tiles are never written in place, so sharing is safe
    a, r = c.slot(op.operands[0]), c.slot(op.result)

    def move(env, st):
        env[r] = env[a]
    return move


def _load_scalar(op: Op, c: Compiler):
    t = c.slot(op.operands[0])
    idx = tuple(c.slot(v) for v in op.operands[1:])
    r, checks = c.slot(op.result), c.checks

    def load_scalar(env, st):
        env[r] = env[t].read_scalar([env[i] for i in idx], checks, op, st)
    return load_scalar


def _dim(op: Op, c: Compiler):
    t, r, axis = c.slot(op.operands[0]), c.slot(op.result), op.attrs["axis"]

    def dim(env, st):
        env[r] = env[t].data.shape[axis]
    return dim


RULES: dict[OpDef, Rule] = {
    LOAD: _load, STORE: _store, FIXPIPE: _fixpipe, MOVE: _move,
    LOAD_SCALAR: _load_scalar, DIM: _dim,
}
