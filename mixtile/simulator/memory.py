"""GM buffers of a simulated run: compute-form data, poison, and the GM access checks.

A `GMBuffer` holds one kernel tensor in *compute form* (float32 for every float dtype,
the int/bool dtype itself otherwise). OUT and SCRATCH tensors start poisoned (NaN for
floats); with checks on they also keep a per-element `written` mask, so a read of an
element nothing wrote raises UninitializedReadError, and every access of a non-IN tensor
is reported to the launch's race detector (`race.RaceTracker`, via `st.tracker`).
IN tensors wrap the caller's array in a read-only view: loads of a full in-bounds region
return views without copying.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mixtile.errors import OutOfBoundsError, UninitializedReadError, VerifyError
from mixtile.ir.numeric import round_to
from mixtile.ir.types import DType, Role
from mixtile.simulator.race import ATOMIC, READ, WRITE

_KEEP_RULE = ("for a kept (sliced) dim 0 <= offset <= extent; the part past the end is "
              "padded on load and dropped on store")
_INDEX_RULE = "for an indexed (squeezed) dim 0 <= index < extent"


def poison(dtype: DType, shape: tuple[int, ...]) -> np.ndarray:
    """A compute-form array whose contents say "never written": NaN, or the int minimum."""
    cnp = dtype.compute_np
    if dtype.is_float:
        return np.full(shape, np.nan, dtype=cnp)
    if dtype is DType.BOOL:
        return np.zeros(shape, dtype=cnp)
    return np.full(shape, np.iinfo(cnp).min, dtype=cnp)


def _fmt_region(gm_idx: tuple) -> str:
    parts = [f"{s.start}:{s.stop}" if isinstance(s, slice) else str(s) for s in gm_idx]
    return "[" + ", ".join(parts) + "]"


class GMBuffer:
    """One GM tensor during a run.

    data: compute-form array (read-only for IN tensors); written: per-element bool mask,
    kept only for OUT/SCRATCH tensors when checks are on (None otherwise).
    """

    __slots__ = ("data", "dtype", "name", "role", "view_ok", "written")

    def __init__(self, name: str, dtype: DType, role: Role, data: np.ndarray,
                 written: np.ndarray | None = None) -> None:
        self.name = name
        self.dtype = dtype
        self.role = role
        self.data = data
        self.written = written
        self.view_ok = role is Role.IN  # loads may return views: nothing writes IN tensors

    # ------------------------------------------------------------ construction

    @classmethod
    def wrap_input(cls, name: str, dtype: DType, arr: np.ndarray) -> GMBuffer:
        """An IN tensor: a read-only view of the caller's array (converted if needed)."""
        data = _compute_form(dtype, arr).view()  # never flip flags on the caller's array
        data.flags.writeable = False
        return cls(name, dtype, Role.IN, data)

    @classmethod
    def copy_input(cls, name: str, dtype: DType, arr: np.ndarray) -> GMBuffer:
        """An INOUT tensor: a private copy of the caller's array, initialised everywhere."""
        data = _compute_form(dtype, arr)
        data = np.array(data, copy=True, order="C")
        return cls(name, dtype, Role.INOUT, data)

    @classmethod
    def poisoned(cls, name: str, dtype: DType, role: Role, shape: tuple[int, ...],
                 track: bool) -> GMBuffer:
        """An OUT/SCRATCH tensor: poisoned data, plus a written mask when `track`."""
        written = np.zeros(shape, dtype=np.bool_) if track else None
        return cls(name, dtype, role, poison(dtype, shape), written)

    # ------------------------------------------------------------ region resolution

    def resolve(self, offs: list[int], sizes: tuple[int, ...], keep: tuple[bool, ...],
                strict: bool, what: str, op: Any, st: Any):
        """-> (gm index tuple, tile index tuple, full, empty) for region [off, off+size).

        The region is clipped at the tensor's extent. With `strict`, an offset outside
        the rules raises OutOfBoundsError naming offsets, sizes and the tensor shape.
        """
        shape = self.data.shape
        gm: list = []
        tl: list = []
        full = True
        empty = False
        for d, off in enumerate(offs):
            ext = shape[d]
            if keep[d]:
                size = sizes[d]
                end = off + size
                if 0 <= off and end <= ext:  # the common, fully in-bounds case
                    gm.append(slice(off, end))
                    tl.append(slice(0, size))
                    if not size:  # a lane's share of a row limit can be no rows
                        empty = True
                    continue
                if strict and not 0 <= off <= ext:
                    self._oob(offs, sizes, keep, d, what, op, st)
                lo = max(0, off)
                hi = max(min(end, ext), lo)
                full = False
                empty = empty or hi == lo
                gm.append(slice(lo, hi))
                tl.append(slice(lo - off, hi - off))
            else:
                if not 0 <= off < ext:
                    if strict:
                        self._oob(offs, sizes, keep, d, what, op, st)
                    full = False
                    empty = True
                    off = 0
                gm.append(off)
        return tuple(gm), tuple(tl), full, empty

    def _oob(self, offs, sizes, keep, d, what, op, st):
        rule = _KEEP_RULE if keep[d] else _INDEX_RULE
        kind = "offset" if keep[d] else "index"
        raise OutOfBoundsError(
            f"{what} of `{self.name}` at offsets {tuple(offs)} with sizes {tuple(sizes)} "
            f"is outside the tensor of shape {tuple(self.data.shape)}: dim {d} {kind} "
            f"{offs[d]} is not in range for extent {self.data.shape[d]}",
            loc=op.loc, where=st.where(op.name),
            fix=f"keep the access inside the tensor: {rule}")

    def check_written(self, gm: tuple, what: str, op: Any, st: Any) -> None:
        """Raise UninitializedReadError if any element of region `gm` was never written."""
        w = self.written[gm]
        if w.all():
            return
        n_bad = int(w.size - np.count_nonzero(w))
        first = np.argwhere(~np.asarray(w))[0].tolist() if np.ndim(w) else []
        raise UninitializedReadError(
            f"{what} reads {n_bad} of {w.size} elements of `{self.name}` region "
            f"{_fmt_region(gm)} that nothing wrote (first unwritten element at region index "
            f"{tuple(first)}); {self.role.value} tensors start poisoned",
            loc=op.loc, where=st.where(op.name),
            fix="store to the region before reading it (order the blocks/stores), or make "
                "the tensor an INOUT parameter initialised by the caller")

    # ------------------------------------------------------------ accesses

    def read(self, offs, sizes, keep, pad, tile_shape, checks: bool, op, st) -> np.ndarray:
        """Load a region as a compute-form tile; the clipped-off part holds `pad`."""
        gm, tl, full, empty = self.resolve(offs, sizes, keep, checks, "load", op, st)
        if checks and not empty and not self.view_ok:
            tracker = st.tracker
            if tracker is not None:  # IN tensors are never written: their reads never race
                tracker.access(self, gm, READ, op, st)
            if self.written is not None:
                self.check_written(gm, "load", op, st)
        if full:
            part = self.data[gm]
            return part if self.view_ok else part.copy()
        tile = np.full(tile_shape, pad, dtype=self.data.dtype)
        if not empty:
            tile[tl] = self.data[gm]
        return tile

    def write(self, offs, sizes, keep, tile: np.ndarray, atomic_add: bool, checks: bool,
              op, st, what: str = "store") -> None:
        """Store the in-bounds part of `tile` (already in this tensor's dtype)."""
        if self.view_ok:
            raise VerifyError(f"{what} writes the IN tensor `{self.name}`", loc=op.loc,
                              where=st.where(op.name), fix="declare the parameter OUT or INOUT")
        gm, tl, full, empty = self.resolve(offs, sizes, keep, checks, what, op, st)
        if empty:
            return
        if checks and st.tracker is not None:
            st.tracker.access(self, gm, ATOMIC if atomic_add else WRITE, op, st)
        part = tile if full else tile[tl]
        if atomic_add:
            if checks and self.written is not None:
                self.check_written(gm, f"{what} (atomic add)", op, st)
            part = round_to(self.dtype, self.data[gm] + part)
        self.data[gm] = part
        if self.written is not None:
            self.written[gm] = True

    def read_scalar(self, idx: list[int], checks: bool, op, st) -> int | float:
        """One element as a Python int (int/bool tensors) or float."""
        if checks:
            shape = self.data.shape
            for d, i in enumerate(idx):
                if not 0 <= i < shape[d]:
                    self._oob(idx, (1,) * len(idx), (False,) * len(idx), d,
                              "load_scalar", op, st)
            if not self.view_ok and st.tracker is not None:
                st.tracker.access(self, tuple(idx), READ, op, st)
            if self.written is not None and not self.written[tuple(idx)]:
                self.check_written(tuple(idx), "load_scalar", op, st)
        v = self.data[tuple(idx)]
        return float(v) if self.dtype.is_float else int(v)


def _compute_form(dtype: DType, arr: Any) -> np.ndarray:
    """The caller's array in compute form, converted (and rounded) only when needed."""
    a = np.asarray(arr)
    if a.dtype == dtype.compute_np:
        return a
    if dtype.is_float and a.dtype == dtype.np:  # storage form (e.g. bfloat16): exact
        return np.asarray(a, dtype=np.float32)
    return round_to(dtype, a)
