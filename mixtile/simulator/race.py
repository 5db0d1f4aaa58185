"""GM race detection by happens-before: vector clocks (Fidge/Mattern) with epochs.

Every task t of a launch (one block's program on one core) keeps, in its `Task`:

- `ep`: its current epoch (its own clock component); each GM access is stamped with it;
- `fenced`: the last epoch whose GM *writes* a fence has published;
- `vc`: task id -> the epoch of that task this one is ordered after (orders reads);
- `wvc`: task id -> the published (fenced) epoch this one is ordered after (orders writes).

Edges: program order within a task; a set_flag -> the wait_flag that consumes its count;
a syncall (every arrival -> every departure). A release (set_flag, syncall arrival) sends
(vc + {t: ep}, wvc + {t: fenced}) and opens a new epoch; a fence sets fenced = ep and opens
a new epoch, so writes after it are not covered. An earlier access (task t, epoch e)
happens before the current access of task u iff t is u, or it is a read and
u.vc[t] >= e, or it writes and u.wvc[t] >= e. Reads are ordered by any sync op (a core
consumes its loads before it goes on); writes only when fenced before that sync op.

Records are kept per GM tensor as rectangles (per-dim half-open intervals), bucketed on a
grid over the first two dims, so a new access is checked only against records in the
cells it touches (and the few accesses too big for cells, kept apart).
A newer access of the same task whose region contains an older record, and which
conflicts with at least as much (a write subsumes anything; a read a read; an atomic an
atomic), replaces it: any race against the old record is also one against the new.
When a syncall spans every task of a launch whose blocks are all resident, records
ordered before every task are dropped (`prune`).
"""
from __future__ import annotations

from typing import Any

from mixtile.errors import RaceError

READ, WRITE, ATOMIC = 0, 1, 2
_VERB = {READ: "reads", WRITE: "writes", ATOMIC: "atomically adds to"}
_CELLS = 4096  # most bucket cells along a dim of a tensor
_BIG = 16  # an access covering more cells is checked against every record


def _subsumes(new: int, old: int) -> bool:
    return new == WRITE or new == old


def region_text(lo: tuple[int, ...], hi: tuple[int, ...]) -> str:
    return "[" + ", ".join(f"{a}:{b}" for a, b in zip(lo, hi)) + "]"


class Access:
    """One recorded GM access: who (task, epoch), what (kind, op) and where (lo, hi)."""

    __slots__ = ("dead", "epoch", "hi", "kind", "lo", "op", "task", "tid")

    def __init__(self, task: Any, kind: int, lo: tuple, hi: tuple, op: Any) -> None:
        self.task = task
        self.tid = task.tid
        self.epoch = task.ep
        self.kind = kind
        self.lo = lo
        self.hi = hi
        self.op = op
        self.dead = False


class _History:
    """The live access records of one GM tensor: small ones bucketed on a grid of cells
    over the first two dims (cell size: a multiple of the first access's extent there, so
    aligned tiles hit one cell; at most _CELLS cells a dim), and accesses covering more
    than _BIG cells in `big`, which every access checks."""

    __slots__ = ("big", "buckets", "size")

    def __init__(self, lo: tuple, hi: tuple, shape: tuple) -> None:
        size = []
        for d in range(min(2, len(lo))):
            first = max(1, hi[d] - lo[d])
            size.append(first * -(-shape[d] // (_CELLS * first)))
        self.size = tuple(size)
        self.buckets: dict[tuple, list[Access]] = {}
        self.big: list[Access] = []

    def keys(self, lo: tuple, hi: tuple) -> list[tuple] | None:
        """The cells region [lo, hi) touches, or None when it covers more than _BIG."""
        size = self.size
        if len(size) == 2:
            b0, b1 = size
            i0, i1, j0, j1 = lo[0] // b0, (hi[0] - 1) // b0, lo[1] // b1, (hi[1] - 1) // b1
            if i0 == i1 and j0 == j1:
                return [(i0, j0)]
            if (i1 - i0 + 1) * (j1 - j0 + 1) > _BIG:
                return None
            return [(i, j) for i in range(i0, i1 + 1) for j in range(j0, j1 + 1)]
        if size:
            b0 = size[0]
            i0, i1 = lo[0] // b0, (hi[0] - 1) // b0
            return [(i,) for i in range(i0, i1 + 1)] if i1 - i0 < _BIG else None
        return [()]


def _overlap(lo, hi, rlo, rhi, nd: int) -> bool:
    if nd == 2:
        return rlo[0] < hi[0] and lo[0] < rhi[0] and rlo[1] < hi[1] and lo[1] < rhi[1]
    return all(rlo[d] < hi[d] and lo[d] < rhi[d] for d in range(nd))


class RaceTracker:
    """Checks every GM access of a launch against the unordered earlier ones."""

    def __init__(self) -> None:
        self.hist: dict[Any, _History] = {}

    def access(self, buf: Any, gm: tuple, kind: int, op: Any, st: Any) -> None:
        """Record an access of region `gm` (slices / indices) of `buf` by task `st`;
        raise RaceError if it overlaps an unordered conflicting earlier access."""
        if len(gm) == 2 and type(gm[0]) is slice and type(gm[1]) is slice:
            s0, s1 = gm
            lo, hi = (s0.start, s1.start), (s0.stop, s1.stop)
        else:
            lo = tuple(s.start if type(s) is slice else s for s in gm)
            hi = tuple(s.stop if type(s) is slice else s + 1 for s in gm)
        h = self.hist.get(buf)
        if h is None:
            h = self.hist[buf] = _History(lo, hi, buf.data.shape)
        rec = Access(st, kind, lo, hi, op)
        buckets = h.buckets
        keys = h.keys(lo, hi)
        if keys is None:  # a big access: check every record, keep it in `big`
            for k, lst in list(buckets.items()):
                buckets[k] = self._scan(buf, lst, rec, st, False)
            h.big = self._scan(buf, h.big, rec, st, True)
            return
        if h.big:
            h.big = self._scan(buf, h.big, rec, st, False)
        for k in keys:
            lst = buckets.get(k)
            buckets[k] = self._scan(buf, lst, rec, st, True) if lst else [rec]

    def _scan(self, buf: Any, lst: list[Access], rec: Access, st: Any, add: bool
              ) -> list[Access]:
        """Check `rec` against the records `lst`; -> the live ones (and `rec` if `add`).
        Records of the same task that `rec` subsumes are dropped."""
        tid, vc, wvc, kind, lo, hi = st.tid, st.vc, st.wvc, rec.kind, rec.lo, rec.hi
        nd = len(lo)
        keep = []
        for r in lst:
            if r.dead:
                continue
            if r.tid == tid:
                if _subsumes(kind, r.kind) and all(
                        lo[d] <= r.lo[d] and r.hi[d] <= hi[d] for d in range(nd)):
                    r.dead = True
                    continue
            elif ((kind != r.kind or kind == WRITE)  # not read/read, not atomic/atomic
                  and (vc if r.kind == READ else wvc).get(r.tid, 0) < r.epoch
                  and _overlap(lo, hi, r.lo, r.hi, nd)):
                self._race(buf, r, rec, st)
            keep.append(r)
        if add:
            keep.append(rec)
        return keep

    def prune(self, vc: dict[int, int], wvc: dict[int, int]) -> None:
        """Drop records ordered before clocks (vc, wvc) that every task now holds."""
        for h in self.hist.values():
            for k, lst in list(h.buckets.items()):
                live = self._ordered(lst, vc, wvc)
                if live:
                    h.buckets[k] = live
                else:
                    del h.buckets[k]
            h.big = self._ordered(h.big, vc, wvc)

    @staticmethod
    def _ordered(lst: list[Access], vc: dict[int, int], wvc: dict[int, int]) -> list[Access]:
        live = []
        for r in lst:
            if r.dead:
                continue
            if (vc if r.kind == READ else wvc).get(r.tid, 0) >= r.epoch:
                r.dead = True
            else:
                live.append(r)
        return live

    # ------------------------------------------------------------ the error

    def _race(self, buf: Any, old: Access, new: Access, st: Any) -> None:
        t_old, op_old, op_new = old.task, old.op, new.op
        both = tuple(max(a, b) for a, b in zip(old.lo, new.lo))
        both_hi = tuple(min(a, b) for a, b in zip(old.hi, new.hi))
        msg = (f"GM race on `{buf.name}`: {st.where(op_new.name)} at {op_new.loc} "
               f"{_VERB[new.kind]} {region_text(new.lo, new.hi)}, and "
               f"{t_old.where(op_old.name)} at {op_old.loc} {_VERB[old.kind]} "
               f"{region_text(old.lo, old.hi)}; they overlap at "
               f"{region_text(both, both_hi)} and neither happens before the other")
        generic = ("add a fence + syncall, or a flag, between them; or give each lane "
                   "disjoint rows")
        if old.kind != READ and st.vc.get(old.tid, 0) >= old.epoch:
            msg += (" (a sync op orders the two cores, but the writer did not fence its "
                    "write before it: a syncall or flag orders arrival only)")
            fix = ("add mt.fence() after the write and before the syncall / set_flag that "
                   f"hands the data over; in general: {generic}")
        elif t_old.block != st.block:
            msg += (f" (blocks {t_old.block} and {st.block} of a launch run concurrently, "
                    "in no fixed order)")
            fix = ("give each block disjoint rows, or accumulate with an atomic add "
                   "(atomic=ADD); blocks can only be ordered by a fence + syncall with every "
                   f"block resident; {generic}")
        else:
            fix = generic
        raise RaceError(msg, loc=op_new.loc, where=st.where(op_new.name), fix=fix)
