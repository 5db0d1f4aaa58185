"""FuseEpilogue: fold what the L0C writeback (FIXPIPE) can do into one `fixpipe` store.

Pattern, from the store back to the accumulator (each link used only by the next):

    store(y, cast?(relu?(add?(move(acc: L0C -> UB), bias))))     ->  fixpipe(y, acc, bias?)

`bias` must be a loaded f32 vector of shape (N,) or (1, N) (it is reloaded through
L1 into the bias table). Every store of an L0C tile becomes a fixpipe as well, so
after this pass the cube side writes GM only through FIXPIPE.
"""
from __future__ import annotations

from mixtile.ir.builder import make_op
from mixtile.ir.core import Kernel, Op, Value
from mixtile.ir.ops import ADD, CAST, FIXPIPE, LOAD, MOVE, RELU, STORE
from mixtile.ir.types import DType, MemSpace, TileType

S = MemSpace


def _single_use(v: Value, counts: dict[Value, int]) -> bool:
    return counts.get(v, 0) == 1


def _bias_source(v: Value, n: int) -> Op | None:
    """The load of a bias vector usable by the bias table, else None."""
    op = v.op
    t = v.type
    if op is None or not isinstance(t, TileType) or t.dtype is not DType.F32:
        return None
    if t.shape not in ((n,), (1, n)):
        return None
    if op.opdef is LOAD:
        return op
    return None


def _match(store: Op, counts) -> dict | None:
    v = store.operands[1]
    if v.type.space is S.L0C:
        return {"acc": v, "relu": False, "bias": None, "dtype": v.type.dtype}
    dtype = v.type.dtype
    found = {"relu": False, "bias": None, "dtype": dtype}
    op = v.op
    if op is not None and op.opdef is CAST and _single_use(v, counts):
        v = op.operands[0]
        op = v.op
    if op is not None and op.opdef is RELU and _single_use(v, counts):
        found["relu"] = True
        v = op.operands[0]
        op = v.op
    if op is not None and op.opdef is ADD and _single_use(v, counts):
        n = v.type.shape[-1]
        for acc_i in (0, 1):
            acc_v, bias_v = op.operands[acc_i], op.operands[1 - acc_i]
            if not isinstance(bias_v.type, TileType):
                continue
            src = _bias_source(bias_v, n)
            if src is not None and len(v.type.shape) == 2 and acc_v.type.shape == v.type.shape:
                found["bias"] = src
                v = acc_v
                op = v.op
                break
        else:
            return None
    if op is None or op.opdef is not MOVE or not _single_use(v, counts):
        return None
    acc = op.operands[0]
    if acc.type.space is not S.L0C:
        return None
    found["acc"] = acc
    return found


def fuse_epilogue(kernel: Kernel, ctx) -> Kernel:
    counts: dict[Value, int] = {}
    stores = []
    for op in kernel.walk():
        for v in op.operands:
            counts[v] = counts.get(v, 0) + 1
        if op.opdef is STORE:
            stores.append(op)
    for st in stores:
        m = _match(st, counts)
        if m is None:
            continue
        tensor, offsets = st.operands[0], st.operands[2:]
        operands = [tensor, m["acc"]]
        if m["bias"] is not None:
            src: Op = m["bias"]
            l1 = make_op(LOAD, list(src.operands), {**src.attrs, "space": S.L1},
                         loc=src.loc)
            bt = make_op(MOVE, [l1.result], {"space": S.BT}, loc=src.loc)
            blk = src.parent
            at = blk.ops.index(src) + 1
            for k, new in enumerate((l1, bt)):
                new.parent = blk
                blk.ops.insert(at + k, new)
            operands.append(bt.result)
        attrs = {"sizes": st.attrs["sizes"], "keep": st.attrs["keep"],
                 "atomic": st.attrs["atomic"], "has_bias": m["bias"] is not None,
                 "relu": m["relu"], "dtype": tensor.type.dtype}
        if st.attrs.get("row_limit") is not None:  # rows=: the bound is the last offset
            attrs["row_limit"] = st.attrs["row_limit"]
        fx = make_op(FIXPIPE, operands + list(offsets), attrs, loc=st.loc)
        blk = st.parent
        fx.parent = blk
        blk.ops[blk.ops.index(st)] = fx
    return kernel
