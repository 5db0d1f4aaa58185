"""CSE and DCE: merge identical pure ops; remove ops and loop-carried values nobody needs."""
from __future__ import annotations

import struct
from typing import Any

import numpy as np

from mixtile.ir.core import Block, Kernel, Op, Value
from mixtile.ir.ops import FOR, YIELD
from mixtile.ir.registry import OpKind
from mixtile.passes.manager import PassContext, compiler_pass


def _freeze(x: Any) -> Any:
    """A hashable, exact form of an attr value (floats by their bits)."""
    if isinstance(x, bool) or x is None:
        return x
    if isinstance(x, float):
        return ("f", struct.pack("<d", x))
    if isinstance(x, np.generic):
        return ("np", type(x).__name__, x.tobytes())
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, tuple(_freeze(v) for v in x))
    if isinstance(x, dict):
        return ("d", tuple(sorted(((str(k), _freeze(v)) for k, v in x.items()),
                                  key=lambda kv: kv[0])))
    hash(x)  # raises TypeError for anything else unhashable
    return x


def _cse_key(op: Op) -> tuple | None:
    try:
        attrs = _freeze(op.attrs)
        key = (op.opdef, tuple(op.operands), attrs, tuple(r.type for r in op.results))
        hash(key)
    except TypeError:
        return None
    return key


@compiler_pass("CSE")
def CSE(kernel: Kernel, ctx: PassContext) -> Kernel:  # noqa: N802
    """Common-subexpression elimination of identical PURE ops (same opdef, operands,
    attrs and result types) where the earlier op dominates the later (same or enclosing
    block). Memory and control ops are never merged, and neither are tiles that seed a
    loop-carried value (each accumulator keeps its own buffer to update in place)."""
    seeds: set[Value] = set()
    for op in kernel.walk():
        if op.opdef is FOR:
            seeds.update(op.operands[3:])
    subst: dict[Value, Value] = {}
    scopes: list[dict[tuple, Op]] = []

    def block(blk: Block) -> None:
        scopes.append({})
        kept: list[Op] = []
        for op in blk.ops:
            if subst:
                op.operands = [subst.get(v, v) for v in op.operands]
            if (op.opdef.kind is OpKind.PURE and not op.regions and op.results
                    and not any(r in seeds for r in op.results)):
                key = _cse_key(op)
                if key is not None:
                    prev = next((s[key] for s in reversed(scopes) if key in s), None)
                    if prev is not None:
                        for r, p in zip(op.results, prev.results, strict=True):
                            subst[r] = p
                        continue
                    scopes[-1][key] = op
            kept.append(op)
            for r in op.regions:
                block(r)
        blk.ops = kept
        scopes.pop()

    block(kernel.body)
    return kernel


def _is_root(op: Op) -> bool:
    """Ops kept for their effects: stores, unknown memory/control ops, spmd launches."""
    kind = op.opdef.kind
    d = op.opdef
    if kind is OpKind.PURE:
        return bool(op.regions)
    if kind is OpKind.MEMORY:
        return d.has_effects  # a memory op that only reads or moves is removable
    if kind is OpKind.CONTROL:
        return d is not FOR
    return d is not YIELD


class _Liveness:
    """Marks what the roots need: ops, values and (for op, carried index) pairs."""

    def __init__(self) -> None:
        self.ops: set[Op] = set()
        self.vals: set[Value] = set()
        self.carried: set[tuple[Op, int]] = set()
        self.work: list[tuple] = []

    def op(self, op: Op) -> None:
        if op not in self.ops:
            self.ops.add(op)
            self.work.append(("op", op))

    def val(self, v: Value) -> None:
        if v not in self.vals:
            self.vals.add(v)
            self.work.append(("val", v))

    def carry(self, f: Op, i: int) -> None:
        if (f, i) not in self.carried:
            self.carried.add((f, i))
            self.op(f)
            self.val(f.operands[3 + i])
            self.val(f.regions[0].ops[-1].operands[i])

    def run(self) -> None:
        while self.work:
            item = self.work.pop()
            if item[0] == "op":
                op = item[1]
                d = op.opdef
                ins = op.operands[:3] if d is FOR else op.operands
                if d is not YIELD:
                    for v in ins:
                        self.val(v)
                blk = op.parent
                if blk is not None and blk.parent is not None:
                    self.op(blk.parent)
                continue
            v = item[1]
            owner = v.owner
            if isinstance(owner, Op):
                if owner.opdef is FOR:
                    self.carry(owner, v.index)
                self.op(owner)
            elif isinstance(owner, Block) and owner.parent is not None:
                f = owner.parent
                if f.opdef is FOR and v.index > 0:
                    self.carry(f, v.index - 1)
                self.op(f)


def _drop_carried(f: Op, keep: list[int]) -> None:
    body = f.regions[0]
    y = body.ops[-1]
    f.operands = f.operands[:3] + [f.operands[3 + i] for i in keep]
    f.results = [f.results[i] for i in keep]
    for n, r in enumerate(f.results):
        r.index = n
    body.args = [body.args[0]] + [body.args[1 + i] for i in keep]
    for n, a in enumerate(body.args):
        a.index = n
    y.operands = [y.operands[i] for i in keep]
    addrs = f.attrs.get("addrs")
    if isinstance(addrs, (list, tuple)) and len(addrs) > max(keep, default=-1):
        f.attrs["addrs"] = type(addrs)(addrs[i] for i in keep)


@compiler_pass("DCE")
def DCE(kernel: Kernel, ctx: PassContext) -> Kernel:  # noqa: N802
    """Dead-code elimination by marking what stores and launches need: unused pure ops,
    loads, load_scalars, dims and moves go; a `for` none of whose results is used and
    whose body stores nothing goes; carried values of a kept `for` that nothing reads
    (result unused, block arg feeding only its own next value) are dropped."""
    live = _Liveness()
    for op in kernel.walk():
        if _is_root(op):
            live.op(op)
    live.run()

    def sweep(blk: Block) -> None:
        kept = [op for op in blk.ops if op in live.ops or op.opdef is YIELD]
        for op in kept:
            if op.opdef is FOR:
                n = len(op.results)
                keep = [i for i in range(n) if (op, i) in live.carried]
                if len(keep) < n:
                    _drop_carried(op, keep)
            for r in op.regions:
                sweep(r)
        blk.ops = kept

    sweep(kernel.body)
    return kernel
