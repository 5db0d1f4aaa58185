"""GM indexing: `x[m0:m0 + TM, k]` -> a Region (static extents) or a scalar read."""
from __future__ import annotations

from mixtile.errors import TraceError
from mixtile.ir.ops import LOAD_SCALAR
from mixtile.language.tracer import (
    Region,
    ScalarVal,
    TensorVal,
    emit,
    index_operand,
    static_diff,
    user_loc,
)


def make_region(t: TensorVal, idx) -> Region | ScalarVal:
    idx = idx if isinstance(idx, tuple) else (idx,)
    if Ellipsis in idx:
        i = idx.index(Ellipsis)
        idx = idx[:i] + (slice(None),) * (t.ndim - len(idx) + 1) + idx[i + 1:]
    if len(idx) < t.ndim:
        idx = idx + (slice(None),) * (t.ndim - len(idx))
    if len(idx) != t.ndim:
        raise TraceError(f"{len(idx)} indices for {t.name}, a {t.ndim}-d tensor "
                         f"{list(t.type.shape)}", loc=user_loc())
    offsets, sizes, keep = [], [], []
    for axis, ix in enumerate(idx):
        if isinstance(ix, slice):
            if ix.step not in (None, 1):
                raise TraceError(f"{t.name}[...] axis {axis}: strided slices are not "
                                 "supported", loc=user_loc())
            start = 0 if ix.start is None else ix.start
            stop = t.dim(axis) if ix.stop is None else ix.stop
            n = static_diff(stop, start)
            if n is None:
                raise TraceError(
                    f"{t.name}[...] axis {axis}: the extent (stop - start) is not a "
                    "compile-time constant", loc=user_loc(),
                    fix=f"write it as {t.name}[o:o + T] with T an mt.const (ragged edges "
                        "are clipped automatically)")
            if n <= 0:
                raise TraceError(f"{t.name}[...] axis {axis}: empty or negative extent {n}",
                                 loc=user_loc())
            offsets.append(index_operand(start, f"{t.name} offset on axis {axis}"))
            sizes.append(n)
            keep.append(True)
        else:
            offsets.append(index_operand(ix, f"{t.name} index on axis {axis}"))
            sizes.append(1)
            keep.append(False)
    if not any(keep):
        op = emit(LOAD_SCALAR, [t.value, *offsets])
        return ScalarVal(op.result)
    return Region(t, offsets, tuple(sizes), tuple(keep))
