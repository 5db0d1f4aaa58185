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
from mixtile.ir.types import MemSpace, TileType
from mixtile.target import Target

_GM = MemSpace.GM

# A pending error: (class, message, fix); raised with loc and where at run time.
Pending = tuple[type[MixtileError], str, str]


def _routes(target: Target) -> str:
    paths = sorted(f"{a.value}->{b.value}" for a, b in target.legal_paths)
    return ", ".join(paths)


def _path_error(target: Target, what: str, src: MemSpace, dst: MemSpace) -> Pending | None:
    if MemSpace.ANY in (src, dst) or target.is_legal(src, dst):
        return None
    from_src = sorted(b.value for a, b in target.legal_paths if a is src)
    to_dst = sorted(a.value for a, b in target.legal_paths if b is dst)
    fix = (f"route the data through legal paths: {src.value} goes to "
           f"{', '.join(from_src) or 'nothing'}; {dst.value} is reached from "
           f"{', '.join(to_dst) or 'nothing'}")
    msg = (f"{what} moves data {src.value} -> {dst.value}, which {target.name} has no path "
           f"for (legal routes: {_routes(target)})")
    return IllegalPathError, msg, fix


def path_check(op: Op, target: Target) -> Pending | None:
    """An illegal-data-path error for a load/store/move/fixpipe, or None."""
    name = op.name
    if name == "load":  # from GM, or (A5) a ring in this core's own memory: a local read
        src, dst = op.attrs.get("ring", _GM), op.results[0].type.space
        return None if src is dst else _path_error(target, "load", src, dst)
    if name == "store":  # to GM, or (A5) a ring in the other core's memory
        return _path_error(target, "store", op.operands[1].type.space,
                           op.attrs.get("ring", _GM))
    if name == "move":
        return _path_error(target, "move", op.operands[0].type.space, op.attrs["space"])
    if name == "fixpipe":
        src = op.operands[1].type.space
        if src not in (MemSpace.L0C, MemSpace.ANY):
            msg = (f"fixpipe reads its accumulator from {src.value}, but the fixpipe only "
                   f"drains L0C (legal routes: {_routes(target)})")
            return (IllegalPathError, msg,
                    "keep the matmul accumulator in L0C, or use store for other spaces")
        err = _path_error(target, "fixpipe", src, _GM)
        if err is None and op.attrs.get("has_bias"):
            bsp = op.operands[2].type.space
            if bsp not in (MemSpace.BT, MemSpace.ANY):
                msg = (f"fixpipe bias is in {bsp.value}, but the fixpipe reads bias only "
                       f"from the bias table BT (legal routes: {_routes(target)})")
                err = (IllegalPathError, msg, "move the bias into BT first (L1 -> BT)")
        return err
    return None


def _tiles_with_addr(op: Op) -> list[tuple[TileType, int | None]]:
    if op.name == "for":
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
