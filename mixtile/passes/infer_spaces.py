"""InferSpaces: give every tile a memory space and insert the moves its uses need.

Homes: matmul results (and the loop-carried values they update) live in L0C;
vector results in UB; a load goes to L1 when it feeds the cube, UB when it feeds
vector work or a store (both: the load is duplicated, one per space, because the
cube and vector cores share no on-chip path); `zeros` feeding a matmul accumulator
is the L0C init. Explicit spaces (`mt.load(..., space=)`, `mt.move`) are kept.
Each use that needs another space gets a `move` placed right after the value's
definition, so a value loaded outside a loop is moved once, not per iteration.
"""
from __future__ import annotations

from mixtile.errors import UnsupportedError
from mixtile.ir.builder import make_op
from mixtile.ir.core import Block, Kernel, Op, Value
from mixtile.ir.ops import FOR, FULL, LOAD, MATMUL, MOVE
from mixtile.ir.registry import required_spaces
from mixtile.ir.types import MemSpace, TileType, Unit

S = MemSpace


class _UF:
    def __init__(self) -> None:
        self.parent: dict[Value, Value] = {}

    def find(self, v: Value) -> Value:
        p = self.parent.get(v, v)
        if p is v:
            return v
        r = self.find(p)
        self.parent[v] = r
        return r

    def union(self, a: Value, b: Value) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra is not rb:
            self.parent[ra] = rb


def _need(op: Op, i: int) -> MemSpace | tuple[MemSpace, ...] | None:
    """The space operand i of op must be in: one space, a choice of spaces (a store: UB
    or L0C, decided below), or None (wherever it is)."""
    want = required_spaces(op)[0][i]
    return want[0] if want is not None and len(want) == 1 else want


def infer_spaces(kernel: Kernel, ctx) -> Kernel:
    uf = _UF()
    defs: dict[Value, Op | None] = {}
    uses: dict[Value, list[tuple[Op, int]]] = {}
    tiles: list[Value] = []
    for op in kernel.walk():
        for i, v in enumerate(op.operands):
            uses.setdefault(v, []).append((op, i))
        for r in op.results:
            if isinstance(r.type, TileType):
                defs[r] = op
                tiles.append(r)
        if op.opdef is FOR:
            body = op.regions[0]
            y = body.ops[-1]
            for k, res in enumerate(op.results):
                arg, init, nxt = body.args[k + 1], op.operands[3 + k], y.operands[k]
                if isinstance(res.type, TileType):
                    defs[arg] = None
                    tiles.append(arg)
                    for v in (arg, init, nxt):
                        uf.union(res, v)

    # 1. the home space of each class (a loop-carried group, or a single value)
    explicit = {v for v in tiles if defs[v] is not None and defs[v].opdef is LOAD
                and defs[v].attrs.get("space", S.ANY) is not S.ANY}
    votes: dict[Value, set[MemSpace]] = {}
    for v in tiles:
        op = defs[v]
        if op is None:
            continue
        home = _def_home(op, v, uses)
        if home is not None:
            votes.setdefault(uf.find(v), set()).add(home)
    home_of: dict[Value, MemSpace] = {}
    for root, spaces in votes.items():
        if S.L0C in spaces and S.UB in spaces:
            op = next(defs[v] for v in tiles if uf.find(v) is root and defs[v] is not None
                      and _def_home(defs[v], v, uses) is S.UB)
            raise UnsupportedError(
                "a loop-carried tile is updated by both cube (matmul) and vector ops; "
                "that needs a mixed cube+vector kernel", loc=op.loc,
                fix="keep the accumulator on the cube (matmul acc=) and do vector work "
                    "after the loop")
        home_of[root] = next(iter(spaces)) if len(spaces) == 1 else _pick(spaces)
    for v in tiles:
        sp = home_of.get(uf.find(v), S.UB)
        v.type = v.type.with_space(sp)
        op = defs[v]
        if op is not None and "space" in op.attrs and op.opdef in (LOAD, FULL):
            op.attrs["space"] = sp

    # 2. loads feeding both the cube and vector work get a twin load per space
    for v in tiles:
        op = defs[v]
        if op is not None and op.opdef is LOAD and v.type.space is S.L1 and v not in explicit:
            vec_uses = [(u, i) for u, i in uses.get(v, [])
                        if _need(u, i) is S.UB or isinstance(_need(u, i), tuple)]
            if vec_uses:
                twin = make_op(op.opdef, list(op.operands), {**op.attrs, "space": S.UB},
                               loc=op.loc)
                _insert_after(op, twin)
                for u, i in vec_uses:
                    u.operands[i] = twin.result

    # 3. moves for uses that need another space
    moved: dict[tuple[Value, MemSpace], Value] = {}
    for v in tiles:
        for u, i in list(uses.get(v, [])):
            if u.operands[i] is not v:
                continue
            need = _need(u, i)
            if isinstance(need, tuple):
                need = None  # LegalizePaths routes (or rejects) stores from other spaces
            if need is None or need is v.type.space:
                continue
            key = (v, need)
            if key not in moved:
                mv = make_op(MOVE, [v], {"space": need}, loc=u.loc)
                _place_after_def(v, defs, mv)
                moved[key] = mv.result
            u.operands[i] = moved[key]
    kernel.attrs["spaces"] = True
    return kernel


def _pick(spaces: set[MemSpace]) -> MemSpace:
    for s in (S.L0C, S.L1, S.UB):
        if s in spaces:
            return s
    return next(iter(spaces))


def _def_home(op: Op, v: Value, uses) -> MemSpace | None:
    d = op.opdef
    if d is MATMUL:
        return S.L0C
    if d is MOVE:
        return op.attrs["space"]
    if d in (LOAD, FULL) and op.attrs.get("space", S.ANY) is not S.ANY:
        return op.attrs["space"]
    if d is LOAD:
        needs = {_need(u, i) for u, i in uses.get(v, [])}
        return S.L1 if needs & {S.L0A, S.L0B} else S.UB
    if d is FULL:
        needs = {_need(u, i) for u, i in uses.get(v, [])}
        return S.L0C if S.L0C in needs else (None if not needs - {None} else S.UB)
    if op.opdef.unit_of(op) is Unit.VECTOR:
        return S.UB
    return None


def _insert_after(anchor: Op, new: Op) -> None:
    blk = anchor.parent
    new.parent = blk
    blk.ops.insert(blk.ops.index(anchor) + 1, new)


def _place_after_def(v: Value, defs, mv: Op) -> None:
    op = defs.get(v)
    if op is not None:
        _insert_after(op, mv)
        return
    owner = v.owner
    if isinstance(owner, Block):  # a loop's block argument: move at the body's start
        mv.parent = owner
        owner.ops.insert(0, mv)
    else:  # a for result
        _insert_after(owner, mv)
