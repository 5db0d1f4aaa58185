"""Static checkers of the simulator: on-chip capacity and legal data paths.

Both depend only on the IR and the target, so they are evaluated once when the kernel is
compiled; an op that fails one is compiled into a closure that raises when it executes
(so the error carries the block, core and op it happened on, and costs nothing otherwise).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mixtile.errors import CapacityError, IllegalPathError, MixtileError
from mixtile.ir.core import Op
from mixtile.ir.ops import FOR
from mixtile.ir.registry import data_path, required_spaces
from mixtile.ir.types import MemSpace, TileType, Unit
from mixtile.target import Target

# A pending error: (class, message, fix); raised with loc and where at run time.
Pending = tuple[type[MixtileError], str, str]


def path_check(op: Op, target: Target) -> Pending | None:
    """An illegal-data-path error for an op that moves data, or None. A fixed-function
    operand in the wrong space (the fixpipe drains only L0C, reads bias only from BT) is
    one too: the hardware has no path from anywhere else."""
    d = op.opdef
    if d.path is not None:
        src, dst = data_path(op) or (MemSpace.ANY, MemSpace.ANY)
        err = target.path_error(d.name, src, dst)
        if err is not None:
            return (IllegalPathError, *err)
    if d.spaces is not None and d.unit_of(op) is Unit.MTE:
        ins, _ = required_spaces(op)
        for i, (v, want) in enumerate(zip(op.operands, ins)):
            sp = v.type.space if isinstance(v.type, TileType) else None
            if want and sp not in (*want, MemSpace.ANY, None) and len(want) == 1:
                return (IllegalPathError,
                        f"{d.name} operand {i} is in {sp.value}, but {d.name} reads it only "
                        f"from {want[0].value}",
                        f"move it into {want[0].value} first ({target.routes_from(sp)})")
    return None


def _tiles_with_addr(op: Op) -> list[tuple[TileType, int | None]]:
    if op.opdef is FOR:
        addrs = op.attrs.get("addrs") or [None] * len(op.results)
        pairs = zip(op.results, addrs, strict=False)
        return [(v.type, a) for v, a in pairs if isinstance(v.type, TileType)]
    addr = op.attrs.get("addr")
    return [(v.type, addr) for v in op.results if isinstance(v.type, TileType)]


def capacity_check(op: Op, target: Target) -> Pending | None:
    """A capacity error if a tile this op produces does not fit its on-chip space."""
    for t, addr in _tiles_with_addr(op):
        cap = target.capacity.get(t.space)
        if cap is None:
            continue  # GM / ANY
        start = addr or 0
        if start + t.nbytes <= cap:
            continue
        at = f" at addr {addr}" if addr is not None else ""
        over = start + t.nbytes - cap
        msg = (f"{op.name} result {t} needs {t.nbytes} bytes{at} in {t.space.value} "
               f"(bytes [{start}, {start + t.nbytes})), but {t.space.value} has {cap} bytes "
               f"available on {target.name} ({over} bytes over)")
        fix = f"use smaller tiles (halve a tile dim) or fewer live buffers in {t.space.value}"
        return CapacityError, msg, fix
    return None


def static_error(op: Op, target: Target) -> Pending | None:
    """The first static check `op` fails (capacity, then data path), or None."""
    return capacity_check(op, target) or path_check(op, target)


def raiser(op: Op, pending: Pending) -> Callable[[list, Any], None]:
    """A closure that raises the pending error with the op's loc and run-time context."""
    cls, msg, fix = pending
    loc, name = op.loc, op.name

    def fail(env: list, st: Any) -> None:
        raise cls(msg, loc=loc, fix=fix, where=st.where(name))
    return fail
