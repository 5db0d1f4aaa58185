"""Simulator cost of all checks (GM race detection, flag overflow, capacity, bounds,
uninitialised reads) on a mixed cube + vector kernel: checks on vs off, same run.

    python benchmarks/sim_checks_overhead.py [--reps 5] [--grid 8] [--iters 16]

The kernel, built by hand in the shape ExpandMixedKernel produces: per block (cluster) the
AIC computes S_j = x_blk @ w_j^T into GM ring slot j % 2, fences and sets a flag to both
AIVs; each AIV waits, loads its half of the slot's rows (lane offset), sets the reverse
flag (the slot is free once both lanes did), and stores exp(S) and its row sums.
Prints one JSON line with the best-of-reps times and the ratio on / off (target <= 2).
"""
import argparse
import json
import time

import numpy as np
import torch

from mixtile.ir import (
    INDEX,
    AtomicKind,
    Block,
    CoreType,
    DType,
    Kernel,
    MemSpace,
    ReduceKind,
    Role,
    Value,
)
from mixtile.ir.builder import KernelBuilder
from mixtile.ir.types import CoreRole
from mixtile.simulator import simulate

TM, TN, KD, NS = 64, 128, 128, 2
F32, BF16 = DType.F32, DType.BF16
FWD, REV = 0, 1


class _B(KernelBuilder):
    """Just enough of a kernel builder for this one kernel."""

    def __init__(self) -> None:
        super().__init__("ring_softmax", CoreType.MIX, file="bench")

    def s(self, name, a, b):
        return self.op(name, a, b if isinstance(b, Value) else self.c(b))

    def region(self, args, body, name=None, **attrs):
        blk = Block(args)
        self.stack.append(blk)
        body(*blk.args)
        if name == "for":
            self.op("yield")
        self.stack.pop()
        return blk

    def loop(self, n, body):
        blk = self.region([INDEX], body, "for")
        self.op("for", self.c(0), self.c(n), self.c(1), regions=[blk])

    def load(self, t, offs, sizes, space):
        return self.op("load", t, *offs, sizes=sizes, keep=(True, True), pad=0.0, space=space)

    def store(self, t, tile, offs):
        self.op("store", t, tile, *offs, sizes=tile.type.shape, keep=(True, True),
                atomic=AtomicKind.NONE)


def build(grid: int, iters: int) -> Kernel:
    b = _B()
    x = b.tensor("x", BF16, (grid * TM, KD))
    w = b.tensor("w", BF16, (iters * TN, KD))
    ws = b.tensor("ws", F32, (grid * NS * TM, TN), Role.SCRATCH)
    y = b.tensor("y", F32, (grid * TM, iters * TN), Role.OUT)
    rs = b.tensor("rs", F32, (grid * TM, iters), Role.OUT)
    h = TM // 2

    def block(blk):
        z, m0, base = b.c(0), b.s("smul", blk, TM), b.s("smul", blk, NS * TM)

        def slot(j):
            return b.s("sadd", base, b.s("smul", b.s("smod", j, NS), TM))

        def aic():
            def step(j):
                b.op("wait_flag", flag=REV)
                a = b.op("move", b.load(x, (m0, z), (TM, KD), MemSpace.L1), space=MemSpace.L0A)
                wt = b.load(w, (b.s("smul", j, TN), z), (TN, KD), MemSpace.L1)
                acc = b.op("matmul", a, b.op("move", wt, space=MemSpace.L0B), b_trans=True,
                           space=MemSpace.L0C)
                b.op("fixpipe", ws, acc, slot(j), z, sizes=(TM, TN), keep=(True, True),
                     has_bias=False, relu=False, dtype=F32, atomic=AtomicKind.NONE)
                b.op("fence")
                b.op("set_flag", flag=FWD, to=CoreRole.AIV)
            b.loop(iters, step)
            b.loop(NS, lambda i: b.op("wait_flag", flag=REV))
        b.op("core", regions=[b.region([], aic)], core=CoreType.AIC)

        def aiv(lane):
            off = b.s("smul", lane, h)
            b.loop(NS, lambda i: b.op("set_flag", flag=REV, to=CoreRole.AIC))

            def step(j):
                b.op("wait_flag", flag=FWD)
                s = b.load(ws, (b.s("sadd", slot(j), off), z), (h, TN), MemSpace.UB)
                b.op("set_flag", flag=REV, to=CoreRole.AIC)
                e = b.op("exp", s, space=MemSpace.UB)
                b.store(y, e, (b.s("sadd", m0, off), b.s("smul", j, TN)))
                r = b.op("reduce", e, kind=ReduceKind.SUM, axis=1, space=MemSpace.UB)
                b.store(rs, r, (b.s("sadd", m0, off), j))
            b.loop(iters, step)
        b.op("core", regions=[b.region([INDEX], aiv)], core=CoreType.AIV)
    b.op("spmd", b.c(grid), regions=[b.region([INDEX], block)])
    return Kernel("ring_softmax", b.params, b.stack[0], {"core": CoreType.MIX})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--grid", type=int, default=8)
    ap.add_argument("--iters", type=int, default=16)
    a = ap.parse_args()
    k = build(a.grid, a.iters)
    rng = np.random.default_rng(0)
    to_bf16 = lambda v: torch.from_numpy(v.astype(np.float32)).bfloat16().float().numpy()
    x = to_bf16(rng.standard_normal((a.grid * TM, KD)) * 0.1)
    w = to_bf16(rng.standard_normal((a.iters * TN, KD)) * 0.1)
    args = {"x": x, "w": w}
    best = {True: 1e9, False: 1e9}
    for _ in range(a.reps):
        for checks in (False, True):
            t0 = time.perf_counter()
            res = simulate(k, args, "a2", checks=checks)
            best[checks] = min(best[checks], time.perf_counter() - t0)
    ref = np.exp(x @ w.T)
    err = float(np.abs(res.outputs["y"] - ref).max())
    assert err < 1e-4, err
    n_ops = a.grid * a.iters * 7  # race-checked GM accesses: 1 fixpipe, 2 loads, 4 stores
    print(json.dumps({"bench": "sim_checks_overhead", "grid": a.grid, "iters": a.iters,
                      "tiles": [TM, TN, KD], "gm_accesses": n_ops,
                      "checks_off_ms": round(best[False] * 1e3, 2),
                      "checks_on_ms": round(best[True] * 1e3, 2),
                      "ratio_on_off": round(best[True] / best[False], 2),
                      "target_ratio": 2.0}))


if __name__ == "__main__":
    main()
