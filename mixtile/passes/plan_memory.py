"""PlanMemory: give every on-chip tile a byte offset in its space, by liveness.

Per launch (each `spmd` region on its own: launches run one after another and reuse the
cores' memory), ops are numbered in order, nested regions inline; a region op also gets
an end position. A tile lives from its definition to its last use; a use inside a loop
the value was defined outside of counts at the loop's end (the value is read on every
iteration).

Buffers: values that may share one buffer are coalesced first, then each buffer is placed
first-fit (by start; if that overflows, by size) among the buffers live at the same time.
- A loop's carried tile (block arg, the for's result, and the value written back at the
  `yield`) is ONE buffer live across the whole loop and until the result's last use. The
  init joins it when the loop is the init's last use; the yielded value joins it when it
  is computed inside the body after the block arg's last read. (Otherwise the backend
  copies: init -> buffer at loop entry, yielded value -> buffer at the yield.)
- A result may take the buffer of an operand whose last use is that op (same space and
  byte size; elementwise-like ops and the matmul accumulator, not transpose/broadcast).

- PingPong's unrolled loops: the tiles the first half defines live until the guard loop
  (the second half) ends, so the halves get their own buffers: all of them ("all"),
  else the moved ones (MTE2 / MTE1 results, "moves") where all do not fit, else the
  loaded ones (MTE2: GM -> L1 / UB, "loads"), else none (the plan as without PingPong);
  the guard's attrs["held"] says which.

Output: op.attrs["addr"] on each op producing an on-chip tile, `for` ops get
attrs["addrs"] (one per carried value, None for scalars), kernel.attrs["mem_peak"] =
{MemSpace: bytes} (the highest byte used over all launches). A space whose live tiles
exceed the target's capacity raises CapacityError at the op whose tile did not fit.
"""
from __future__ import annotations

from mixtile.errors import UNKNOWN_LOC, CapacityError, InternalError
from mixtile.ir.core import Block, Kernel, Op, Value
from mixtile.ir.ops import (
    FOR,
    MATMUL,
    SPMD,
    YIELD,
)
from mixtile.ir.registry import OpKind
from mixtile.ir.types import MemSpace, Pipe, TileType
from mixtile.passes.manager import PassContext, compiler_pass
from mixtile.passes.ping_pong import is_guard
from mixtile.target import Target

S = MemSpace
PLANNED = (S.L1, S.L0A, S.L0B, S.L0C, S.UB, S.BT)
# PingPong holds, most first: every tile of a half, the moved ones (GM -> L1 / UB and
# L1 -> L0A / L0B), the loaded ones (GM -> L1 / UB)
_HOLD_PIPES = {"all": tuple(Pipe), "moves": (Pipe.MTE2, Pipe.MTE1), "loads": (Pipe.MTE2,)}
_FIX = "use smaller tile sizes (e.g. TM/TN/TK) or keep fewer tiles live"


class _Member:
    """One value's live interval inside a buffer; tag says how the value is born."""

    __slots__ = ("start", "end", "value", "tag")

    def __init__(self, start: int, end: int, value: Value | None, tag: tuple) -> None:
        self.start, self.end, self.value, self.tag = start, end, value, tag


class _Buf:
    __slots__ = ("space", "members", "groups", "size", "start", "end", "addr", "seq")

    def __init__(self, space: MemSpace, member: _Member, seq: int) -> None:
        self.space = space
        self.members = [member]
        self.groups: set[tuple[Op, int]] = set()
        self.size = self.start = self.end = self.addr = 0
        self.seq = seq

    def rep(self) -> Value:
        """The value naming this buffer in messages: its earliest defined one."""
        return min((m for m in self.members if m.value is not None),
                   key=lambda m: m.start).value


def _def_op(v: Value) -> Op:
    return v.owner if isinstance(v.owner, Op) else v.owner.parent


def _align(n: int, a: int) -> int:
    return -(-n // a) * a


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


def _in_place_ok(op: Op, x: Value, y: Value) -> bool:
    """May op write its result y over operand x (x dead after op)?"""
    d = op.opdef
    if d is MATMUL:
        return len(op.operands) > 2 and x is op.operands[2]
    if d.kind is not OpKind.PURE or not d.in_place:  # OpDef.in_place says why not
        return False
    tx, ty = x.type, y.type
    return (type(tx) is TileType and tx.space is ty.space and tx.nbytes == ty.nbytes
            and tx.dtype.itemsize == ty.dtype.itemsize and x in op.operands)


class _Region:
    """The plan of one launch (or of the kernel body outside launches)."""

    def __init__(self, target: Target, hold: str | None = None) -> None:
        self.t = target
        self.hold = hold  # ping-pong: "all" / "moves" tiles before a guard loop, or None
        self.reserved: dict[MemSpace, int] = {}
        self.n = 0
        self.at: dict[Op, int] = {}
        self.end: dict[Op, int] = {}
        self.defpos: dict[Value, int] = {}
        self.order: list[Op] = []
        self.uses: list[tuple[Value, int, tuple[Op, ...]]] = []
        self.buf: dict[Value, _Buf] = {}
        self.group: dict[tuple[Op, int], Value] = {}  # carried value -> its block arg

    # ------------------------------------------------------------ liveness

    def linearize(self, blk: Block, loops: tuple[Op, ...], skip_spmd: bool) -> None:
        for op in blk.ops:
            if skip_spmd and op.opdef is SPMD:
                continue
            p = self.at[op] = self.n
            self.n += 1
            self.order.append(op)
            for v in op.operands:
                self.uses.append((v, p, loops))
            if op.regions:
                inner = loops + (op,) if op.opdef is FOR else loops
                for r in op.regions:
                    for a in r.args:
                        self.defpos[a] = p
                    self.linearize(r, inner, skip_spmd)
                e = self.end[op] = self.n
                self.n += 1
                for v in op.results:
                    self.defpos[v] = e
            else:
                for v in op.results:
                    self.defpos[v] = p

    def intervals(self) -> None:
        last: dict[Value, int] = {}
        defpos, at, end = self.defpos, self.at, self.end
        for v, u, loops in self.uses:
            d = defpos.get(v)
            if d is None:
                continue
            for lp in loops:  # outermost first: read on every iteration of that loop
                if not at[lp] <= d < end[lp]:
                    u = end[lp]
                    break
            if u > last.get(v, -1):
                last[v] = u
        seq = 0
        for v, d in defpos.items():
            t = v.type
            if type(t) is not TileType:
                continue
            if t.space not in PLANNED:
                if t.space is S.ANY:
                    op = _def_op(v)
                    raise InternalError(f"PlanMemory found a tile without a space ({t}) at "
                                        f"`{op.name}`; InferSpaces must run first",
                                        loc=op.loc, fix="run InferSpaces before PlanMemory")
                continue
            owner = v.owner
            if isinstance(owner, Op):
                tag = ("res", owner, v.index) if owner.regions else ("op", owner)
            else:
                f = owner.parent
                tag = ("arg", f, v.index - 1) if f.opdef is FOR else ("arg", f, -1)
            self.buf[v] = _Buf(t.space, _Member(d, max(d, last.get(v, d)), v, tag), seq)
            seq += 1

    def holds(self) -> list[tuple[Value, int]]:
        """PingPong's unrolled loops: (tile, position) pairs. The tiles the first half
        defines (those of _HOLD_PIPES[self.hold]) hold their buffers
        until its guard loop (the second half) ends, and the second half's until its
        yield, so that the two halves, and the tiles within a half, get buffers of
        their own. Carried values are left alone (the accumulator stays one buffer)."""
        out = []
        for g in self.order:
            if not is_guard(g):
                continue
            inner = g.regions[0]
            halves = ((g.parent.ops[:g.parent.ops.index(g)], self.end[g], set(g.operands)),
                      (inner.ops[:-1], self.at[inner.ops[-1]], set(inner.ops[-1].operands)))
            for ops, until, carried in halves:
                for op in ops:
                    if op.opdef.pipe_of(op) not in _HOLD_PIPES[self.hold]:
                        continue
                    out.extend((v, until) for v in op.results
                               if v in self.buf and v not in carried)
        return out

    def hold_buffers(self) -> None:
        """Extend each held tile's buffer (after coalescing: a result written in place
        over a held tile shares its hold) to its position."""
        for v, until in self.holds():
            b = self.buf[v]
            if not b.groups:  # a loop's carried buffer lives across the loop anyway
                b.members.append(_Member(until, until, None, ("hold",)))

    # ------------------------------------------------------------ coalescing

    def touch_ok(self, dying: _Member, born: _Member) -> bool:
        kind, op = born.tag[0], born.tag[1]
        if kind == "arg":
            i = born.tag[2]
            return i >= 0 and dying.value is op.operands[3 + i]
        if kind == "back":
            return dying.value is not None and dying.value is \
                op.regions[0].ops[-1].operands[born.tag[2]]
        if kind == "res":
            return dying.tag[0] == "back" and dying.tag[1] is op and \
                dying.tag[2] == born.tag[2]
        return dying.value is not None and _in_place_ok(op, dying.value, born.value)

    def compatible(self, a: _Buf, b: _Buf) -> bool:
        if a.space is not b.space:
            return False
        fa = {f for f, _ in a.groups}
        if any(f in fa for f, _ in b.groups):
            return False  # two carried values of one loop never share a buffer
        for x in a.members:
            for y in b.members:
                if x.start < y.end and y.start < x.end:
                    return False
                if x.end == y.start and not self.touch_ok(x, y):
                    return False
                if y.end == x.start and not self.touch_ok(y, x):
                    return False
        return True

    def merge(self, a: _Buf, b: _Buf) -> _Buf:
        if len(a.members) < len(b.members):
            a, b = b, a
        a.members.extend(b.members)
        a.groups |= b.groups
        a.seq = min(a.seq, b.seq)
        for m in b.members:
            if m.value is not None:
                self.buf[m.value] = a
        return a

    def try_merge(self, a: _Buf, b: _Buf) -> bool:
        if a is b:
            return True
        if not self.compatible(a, b):
            return False
        self.merge(a, b)
        return True

    def coalesce(self) -> None:
        buf = self.buf
        for op in self.order:
            d = op.opdef
            if d is FOR:
                body = op.regions[0]
                yp, e = self.at[body.ops[-1]], self.end[op]
                seen: set[Value] = set()
                for i, (x, a, r) in enumerate(zip(op.operands[3:], body.args[1:], op.results,
                                                      strict=False)):
                    if a not in buf:
                        continue
                    g = self.merge(buf[a], buf[r])
                    g.members.append(_Member(yp, e, None, ("back", op, i)))
                    g.groups.add((op, i))
                    self.group[(op, i)] = a  # merges replace buffers: look up through `a`
                    if x in buf and x not in seen:
                        seen.add(x)
                        self.try_merge(buf[x], g)
            elif d is YIELD:
                f = op.parent.parent if op.parent is not None else None
                if f is None or f.opdef is not FOR:
                    continue
                for i, y in enumerate(op.operands):
                    a = self.group.get((f, i))
                    if a is not None and y in buf and self.at[f] < self.defpos[y] < self.end[f]:
                        self.try_merge(buf[y], buf[a])
            elif not op.regions and len(op.results) == 1 and op.results[0] in buf:
                y = op.results[0]
                xs = [x for x in op.operands if x in buf and _in_place_ok(op, x, y)]
                xs.sort(key=lambda x: not buf[x].groups)
                for x in xs:
                    if self.try_merge(buf[x], buf[y]):
                        break

    # ------------------------------------------------------------ placement

    def place(self) -> dict[MemSpace, int]:
        bufs = {id(b): b for b in self.buf.values()}.values()
        by_space: dict[MemSpace, list[_Buf]] = {}
        for b in bufs:
            b.size = _align(max(self.t.tile_bytes(m.value.type) for m in b.members
                                  if m.value is not None),
                            self.t.align_of(b.space))
            b.start = min(m.start for m in b.members)
            b.end = max(m.end for m in b.members)
            by_space.setdefault(b.space, []).append(b)
        peaks: dict[MemSpace, int] = {}
        for space, group in by_space.items():
            cap = self.t.capacity.get(space, 0) - self.reserved.get(space, 0)
            by_start = sorted(group, key=lambda b: (b.start, -b.size, b.seq))
            bad = _first_fit(by_start, cap)
            if bad is not None:  # try again, largest first; else report the first plan
                if _first_fit(sorted(group, key=lambda b: (-b.size, b.start, b.seq)), cap):
                    _first_fit(by_start, cap)
                    self.overflow(space, group, cap, bad)
            peaks[space] = max(b.addr + b.size for b in group)
        return peaks

    def overflow(self, space: MemSpace, group: list[_Buf], cap: int, culprit: _Buf) -> None:
        best, at = -1, 0
        for b in group:
            live = sum(c.size for c in group if c.start <= b.start <= c.end)
            if live > best:
                best, at = live, b.start
        live = sorted((c for c in group if c.start <= at <= c.end), key=lambda c: -c.size)
        rows = []
        for c in live[:3]:
            v = c.rep()
            op = _def_op(v)
            at_line = f" at {op.loc}" if op.loc != UNKNOWN_LOC else ""
            rows.append(f"    {c.size} bytes ({_kib(c.size)}): {v.type.dtype.short} "
                        f"{'x'.join(map(str, v.type.shape))} tile from `{op.name}`{at_line}")
        op = _def_op(culprit.rep())
        if op.loc == UNKNOWN_LOC:  # point at a line the user wrote when the culprit has none
            op = next((o for o in (_def_op(c.rep()) for c in live) if o.loc != UNKNOWN_LOC),
                      op)
        ring = self.reserved.get(space, 0)
        has = (f"{cap} bytes ({_kib(cap)}) of {space.value}" if not ring else
               f"{cap + ring} bytes ({_kib(cap + ring)}) of {space.value}, {ring} of them "
               f"({_kib(ring)}) holding the cube<->vector ring slots, leaving {max(cap, 0)}")
        if best > cap:
            head = (f"{space.value} overflows: the tiles live at the peak need {best} bytes "
                    f"({_kib(best)}) but {self.t.name} has {has}")
        else:
            need = culprit.addr + culprit.size
            head = (f"{space.value} is too fragmented: the plan needs {need} bytes "
                    f"({_kib(need)}) though at most {best} bytes ({_kib(best)}) are live at "
                    f"once; {self.t.name} has {has}")
        more = f" (of {len(live)})" if len(live) > 3 else ""
        fix = _FIX + ("; or compile with pipeline_depth=1 (one ring slot)" if ring else "")
        raise CapacityError(f"{head}\n  largest live tiles at the peak{more}:\n"
                            + "\n".join(rows), loc=op.loc, fix=fix)

    def write(self) -> None:
        for v, b in self.buf.items():
            owner = v.owner
            if isinstance(owner, Op) and not owner.regions:
                owner.attrs["addr"] = b.addr
        for op in self.order:
            if is_guard(op):
                op.attrs["held"] = self.hold
            if op.opdef is FOR:
                op.attrs["addrs"] = [self.buf[self.group[(op, i)]].addr
                                     if (op, i) in self.group else None
                                     for i in range(len(op.results))]


def _first_fit(order: list[_Buf], cap: int) -> _Buf | None:
    """Place buffers in `order` at the lowest offset free during their span; return the
    first that ends beyond `cap` (all are placed anyway), else None."""
    placed: list[_Buf] = []
    bad = None
    for b in order:
        busy = sorted((p.addr, p.addr + p.size) for p in placed
                      if p.start <= b.end and b.start <= p.end)
        addr = 0
        for lo, hi in busy:
            if addr + b.size <= lo:
                break
            addr = max(addr, hi)
        b.addr = addr
        if addr + b.size > cap and bad is None:
            bad = b
        placed.append(b)
    return bad


def _ascendc_scratch(blk: Block) -> int:
    """The UB scratch the Ascend C lowering puts after the planned tiles (its vector rules'
    temporary buffers: codegen/ascendc/rules.py TMP), so that ping-pong buffers never
    take the room it needs."""
    from mixtile.codegen.ascendc.rules import TMP

    return max((TMP[op.opdef](op) for op in blk.walk() if op.opdef in TMP), default=0)


def plan_block(blk: Block, target: Target, skip_spmd: bool = False,
               reserved: dict | None = None, write: bool = True) -> dict[MemSpace, int]:
    """Plan the tiles of one block (a launch body); returns its peak bytes per space.
    `reserved` bytes per space (on-chip rings of mixed kernels) sit at the top of it.
    write=False: only check that the plan fits (nothing is recorded on the ops)."""
    guards = any(is_guard(op) for op in blk.walk())
    levels = tuple(_HOLD_PIPES) + (None,) if guards else (None,)
    # ping-pong only where the Ascend C lowering's UB scratch still fits
    scratch = _ascendc_scratch(blk) if guards else 0
    for hold in levels:
        r = _Region(target, hold)
        r.reserved = dict(reserved or {})
        if hold:
            r.reserved[S.UB] = r.reserved.get(S.UB, 0) + scratch
        r.linearize(blk, (), skip_spmd)
        r.intervals()
        if not r.buf:
            return {}
        r.coalesce()
        if hold:
            r.hold_buffers()
        try:
            peaks = r.place()
        except CapacityError:
            if hold is None:
                raise
            continue  # ping-pong buffers do not fit: hold fewer tiles
        if write:
            r.write()
        return peaks
    raise AssertionError("unreachable")


@compiler_pass("PlanMemory")
def PlanMemory(kernel: Kernel, ctx: PassContext) -> Kernel:  # noqa: N802
    """Assign on-chip byte offsets by liveness, per launch; check each space's capacity."""
    peak: dict[MemSpace, int] = {}
    regions = [(kernel.body, True)] + [(op.regions[0], False) for op in kernel.body.ops
                                       if op.opdef is SPMD]
    for blk, skip in regions:
        for space, n in plan_block(blk, ctx.target, skip,
                                   kernel.attrs.get("ring_bytes")).items():
            peak[space] = max(peak.get(space, 0), n)
    kernel.attrs["mem_peak"] = {s: peak[s] for s in PLANNED if s in peak}
    return kernel
