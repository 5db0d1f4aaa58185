"""LegalizePaths: make every data movement a path the target has.

A move between two on-chip spaces with no direct path is split along the shortest
legal route. Routes through GM (A2/A3 have no L0C->UB or UB->L1) store the tile to a
per-core GM workspace (a SCRATCH parameter the runtime allocates) and load it back.
A load into a space GM cannot reach directly (e.g. L0A) goes through the spaces in
between; a store from a space with no route to GM is an IllegalPathError.
"""
from __future__ import annotations

from collections import deque

from mixtile.errors import IllegalPathError
from mixtile.ir.builder import make_op
from mixtile.ir.core import Block, Kernel, Op, Param, Value
from mixtile.ir.ops import CONST, CORE, LOAD, MOVE, SMOD, SPMD, STORE
from mixtile.ir.registry import data_path
from mixtile.ir.types import AtomicKind, CoreType, DType, MemSpace, Role, TensorType
from mixtile.target import CORE_SPACES

S = MemSpace
_CUBE = CORE_SPACES[CoreType.AIC]


def route(target, src: MemSpace, dst: MemSpace) -> list[MemSpace] | None:
    """Shortest chain of spaces from src to dst along legal paths (both ends included)."""
    prev: dict[MemSpace, MemSpace | None] = {src: None}
    q = deque([src])
    while q:
        s = q.popleft()
        if s is dst:
            out = [s]
            while prev[out[-1]] is not None:
                out.append(prev[out[-1]])
            return out[::-1]
        for a, b in target.legal_paths:
            if a is s and b not in prev and not _crosses(a, b):
                prev[b] = s
                q.append(b)
    return None


def _crosses(a: MemSpace, b: MemSpace) -> bool:
    """A move between the cube's and a vector core's memories (A5's L0C->UB and UB->L1).
    Such a move is a cross-core transfer: it is always built as a ring crossing (a store
    by the producer, a load by the consumer, flags from ExpandMixedKernel); the ring is
    in GM, or on A5 in the consumer's own memory (`ring` attr)."""
    return S.GM not in (a, b) and (a in _CUBE) != (b in _CUBE)


class _Legalizer:
    def __init__(self, kernel: Kernel, target) -> None:
        self.k = kernel
        self.t = target
        self.n_ws = 0

    def _blk_index(self, op: Op) -> Value:
        p = op.parent
        while p is not None:
            owner = p.parent
            if owner is not None and owner.opdef is SPMD:
                return p.args[0]
            p = owner.parent if owner is not None else None
        raise IllegalPathError("a data move through GM needs a launch block (mt.spmd)",
                               loc=op.loc)

    def _const(self, value: int) -> Value:
        op = make_op(CONST, [], {"dtype": DType.I64, "value": value})
        op.parent = self.k.body
        self.k.body.ops.insert(0, op)
        return op.result

    def _through_gm(self, op: Op, v: Value, dst: MemSpace) -> list[Op]:
        """Ops that store v to a fresh per-core workspace and load it back into dst."""
        t = v.type
        cores = self.t.aiv_count  # enough slots for either core type
        ws = Value(TensorType(t.dtype, (cores, *t.shape)), None, 0, f"ws{self.n_ws}")
        self.k.params.append(Param(f"ws{self.n_ws}", ws, Role.SCRATCH))
        # ExpandMixedKernel turns these routes (not the kernel's own workspaces) into
        # flag-guarded crossings
        self.k.attrs["gm_routes"] = (*self.k.attrs.get("gm_routes", ()), f"ws{self.n_ws}")
        self.n_ws += 1
        blk = self._blk_index(op)
        slot = make_op(SMOD, [blk, self._const(cores)], loc=op.loc)
        zero = self._const(0)
        offs = [slot.result] + [zero] * len(t.shape)
        region = {"sizes": (1, *t.shape), "keep": (False,) + (True,) * len(t.shape)}
        explicit = {"explicit": True} if op.attrs.get("explicit") else {}  # aiv_shard & co
        # A5 has L0C->UB and UB->L1: the ring then lives in the consumer's own memory (the
        # producer writes it directly); elsewhere it is in GM
        ring = {"ring": dst} if self.t.is_legal(t.space, dst) else {}
        st = make_op(STORE, [ws, v, *offs],
                     {**region, "atomic": AtomicKind.NONE, **explicit, **ring},
                     loc=op.loc)
        ld = make_op(LOAD, [ws, *offs], {**region, "pad": 0.0, "space": dst, **ring},
                     loc=op.loc)
        return [slot, st, ld]

    def legalize_move(self, op: Op) -> None:
        src, dst = op.operands[0].type.space, op.attrs["space"]
        if self.t.is_legal(src, dst) and not _crosses(src, dst):
            return
        path = route(self.t, src, dst)
        if path is None:
            raise IllegalPathError(
                f"no data path from {src.value} to {dst.value} on {self.t.name}",
                loc=op.loc, fix=f"legal moves out of {src.value}: {self.t.routes_from(src)}")
        new: list[Op] = []
        v = op.operands[0]
        i = 0
        while i < len(path) - 1:
            b = path[i + 1]
            if b is S.GM:  # store then reload into the space after GM
                ops = self._through_gm(op, v, path[i + 2])
                i += 2
            else:
                ops = [make_op(MOVE, [v], {"space": b}, loc=op.loc)]
                i += 1
            new.extend(ops)
            v = ops[-1].results[0] if ops[-1].results else v
        _splice(op, new, v)

    def legalize_load(self, op: Op) -> None:
        dst = op.attrs["space"]
        if self.t.is_legal(S.GM, dst):
            return
        path = route(self.t, S.GM, dst)
        if path is None or S.GM in path[1:]:
            raise IllegalPathError(f"GM cannot reach {dst.value} on {self.t.name}",
                                   loc=op.loc)
        first = path[1]
        ld = make_op(op.opdef, list(op.operands), {**op.attrs, "space": first}, loc=op.loc)
        new, v = [ld], ld.result
        for b in path[2:]:
            mv = make_op(MOVE, [v], {"space": b}, loc=op.loc)
            new.append(mv)
            v = mv.result
        _splice(op, new, v)

    def legalize_store(self, op: Op) -> None:
        v = op.operands[1]
        src = v.type.space
        if self.t.is_legal(src, S.GM):
            return
        path = route(self.t, src, S.GM)
        if path is None:
            raise IllegalPathError(
                f"no data path from {src.value} to GM on {self.t.name}: this tile cannot "
                "be stored", loc=op.loc,
                fix=f"legal moves out of {src.value}: {self.t.routes_from(src)}; store "
                    "from UB (vector) or L0C (cube results)")
        new, cur = [], v
        for b in path[1:-1]:
            mv = make_op(MOVE, [cur], {"space": b}, loc=op.loc)
            new.append(mv)
            cur = mv.result
        blk = op.parent
        at = blk.ops.index(op)
        for k, n in enumerate(new):
            n.parent = blk
            blk.ops.insert(at + k, n)
        op.operands[1] = cur


def _splice(op: Op, new: list[Op], result: Value) -> None:
    """Replace op by `new`; uses of op's result now use `result`."""
    blk: Block = op.parent
    at = blk.ops.index(op)
    blk.ops.pop(at)
    for k, n in enumerate(new):
        n.parent = blk
        blk.ops.insert(at + k, n)
    old = op.results[0]
    for o in _root(blk).walk():
        o.operands = [result if x is old else x for x in o.operands]


def _root(blk: Block) -> Block:
    while blk.parent is not None and blk.parent.parent is not None:
        blk = blk.parent.parent
    return blk


# the ops this pass re-routes (every other op's spaces are final when it is made)
_RULES = {MOVE: _Legalizer.legalize_move, LOAD: _Legalizer.legalize_load,
          STORE: _Legalizer.legalize_store}
ROUTED = frozenset(_RULES)


def _user_core(op: Op) -> CoreType | None:
    """The core type of the hand-written region (mt.on_core) holding `op`, or None."""
    blk = op.parent
    while blk is not None and blk.parent is not None:
        if blk.parent.opdef is CORE:
            return blk.parent.attrs["core"]
        blk = blk.parent.parent
    return None


def _check_core_region(op: Op, core: CoreType, target) -> None:
    """In a hand-written region the data stays in that core's memories: nothing moves it
    to the other core's (that is a crossing through GM, with flags, written by the user)."""
    src, dst = data_path(op) or (S.GM, S.GM)
    mine = CORE_SPACES[core] | {S.GM, S.ANY}
    mine_text = ", ".join(sorted(sp.value for sp in CORE_SPACES[core]))
    for sp in (src, dst):
        if sp not in mine:
            other = "the vector cores' UB" if sp is S.UB else f"{sp.value}, the cube core's"
            raise IllegalPathError(
                f"`{op.name}` in an mt.on_core({core.name}) region moves data {src.value} -> "
                f"{dst.value}: {other} memory, which an {core.name} core has no path to",
                loc=op.loc,
                fix=f"an {core.name} core works in {mine_text} (legal moves out of {src.value}: "
                    f"{target.routes_from(src)}); to hand data to the other core, store it "
                    "to an mt.workspace, mt.fence(), mt.set_flag(...), and load it there "
                    "after mt.wait_flag(...)")


def legalize_paths(kernel: Kernel, ctx) -> Kernel:
    lg = _Legalizer(kernel, ctx.target)
    for op in list(kernel.walk()):
        core = _user_core(op) if op.opdef.path is not None else None
        if core is not None:
            _check_core_region(op, core, ctx.target)
        rule = _RULES.get(op.opdef)
        if rule is not None:
            rule(lg, op)
    kernel.attrs["legal"] = True
    return kernel



