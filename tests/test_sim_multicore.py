"""The simulator runs every core of every cluster as a cooperative task and checks
cross-core synchronisation: flags, syncall, fence, deadlock and GM races.

Kernels are built by hand in the shape ExpandMixedKernel produces: a MIX kernel's spmd
region holds a `core` region for the AIC (no args) and one for the AIV (arg: the lane).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mixtile.errors import (
    DeadlockError,
    FlagOverflowError,
    Loc,
    RaceError,
    SyncallError,
    UnsupportedError,
)
from mixtile.ir import (
    INDEX,
    OPS,
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
from mixtile.ir.builder import KernelBuilder, make_op
from mixtile.ir.types import CoreRole, SyncMode
from mixtile.simulator import simulate
from mixtile.target import A2

F32, BF16 = DType.F32, DType.BF16
L1, L0A, L0B, L0C, UB = MemSpace.L1, MemSpace.L0A, MemSpace.L0B, MemSpace.L0C, MemSpace.UB
AIC, AIV, MIX = CoreType.AIC, CoreType.AIV, CoreType.MIX
FWD, REV = 0, 1  # flag ids: slot full (AIC -> AIV), slot free (AIV -> AIC)


class KB(KernelBuilder):
    """mixtile.ir.builder.KernelBuilder with the regions and loops these tests build."""

    def add(self, a, b):
        return self.op("sadd", a, b if isinstance(b, Value) else self.c(b))

    def mul(self, a, b):
        return self.op("smul", a, b if isinstance(b, Value) else self.c(b))

    def region(self, block: Block, body) -> Block:
        self.stack.append(block)
        body(*block.args)
        self.stack.pop()
        return block

    def spmd(self, grid: int, body) -> None:
        self.op("spmd", self.c(grid), regions=[self.region(Block([INDEX]), body)])

    def core(self, core: CoreType, body) -> None:
        blk = Block([INDEX]) if core is AIV else Block()
        self.op("core", regions=[self.region(blk, body)], core=core)

    def loop(self, n: int, body, line=1) -> None:
        blk = Block([INDEX])
        self.stack.append(blk)
        body(blk.args[0])
        self.op("yield")
        self.stack.pop()
        op = make_op(OPS["for"], [self.c(0), self.c(n), self.c(1)], {}, [blk],
                     Loc(self.file, line))
        self.stack[-1].append(op)


def load(kb, t, offs, sizes, space, line=1):
    return kb.op("load", t, *offs, sizes=tuple(sizes), keep=(True,) * len(sizes), pad=0.0,
                 space=space, line=line)


def store(kb, t, tile, offs, line=1, atomic=AtomicKind.NONE):
    kb.op("store", t, tile, *offs, sizes=tuple(tile.type.shape), keep=(True,) * len(offs),
          atomic=atomic, line=line)


def bf16(a) -> np.ndarray:
    return torch.from_numpy(np.asarray(a, np.float32)).bfloat16().float().numpy()


# ---------------------------------------------------------------- the ring kernel

TM, TN, KD, NS = 16, 32, 64, 2  # tile rows/cols, K, ring slots per block


def ring_kernel(grid: int, nt: int, *, aic_waits=True, aic_sets=True, lane_rows=True,
                fence=True) -> Kernel:
    """y[:, j-tile] = exp(x @ w_j^T), rs[:, j] = its row sums. Per block the AIC computes
    tile j into ring slot j % NS of GM workspace `ws`, fences and sets FWD to both AIVs;
    each AIV waits FWD, loads its half of the rows, sets REV back (the slot is free once
    both lanes set it), then computes and stores. The AIVs pre-set NS credits of REV."""
    kb = KB("ring", MIX)
    x = kb.tensor("x", BF16, (grid * TM, KD))
    w = kb.tensor("w", BF16, (nt * TN, KD))
    ws = kb.tensor("ws", F32, (grid * NS * TM, TN), Role.SCRATCH)
    y = kb.tensor("y", F32, (grid * TM, nt * TN), Role.OUT)
    rs = kb.tensor("rs", F32, (grid * TM, nt), Role.OUT)
    h = TM // 2

    def block(blk):
        m0, base = kb.mul(blk, TM), kb.mul(blk, NS * TM)
        z = kb.c(0)

        def slot_row(j):
            return kb.add(base, kb.mul(kb.op("smod", j, kb.c(NS)), TM))

        def aic():
            def step(j):
                if aic_waits:
                    kb.op("wait_flag", flag=REV, line=10)
                a = kb.op("move", load(kb, x, (m0, z), (TM, KD), L1), space=L0A)
                b = kb.op("move", load(kb, w, (kb.mul(j, TN), z), (TN, KD), L1), space=L0B)
                acc = kb.op("matmul", a, b, b_trans=True, space=L0C, line=12)
                kb.op("fixpipe", ws, acc, slot_row(j), z, sizes=(TM, TN), keep=(True, True),
                      has_bias=False, relu=False, dtype=F32, atomic=AtomicKind.NONE, line=13)
                if fence:
                    kb.op("fence", line=14)
                if aic_sets:
                    kb.op("set_flag", flag=FWD, to=CoreRole.AIV, line=15)
            kb.loop(nt, step, line=11)
            if aic_waits:
                kb.loop(NS, lambda i: kb.op("wait_flag", flag=REV, line=17), line=16)
        kb.core(AIC, aic)

        def aiv(lane):
            off = kb.mul(lane, h)
            kb.loop(NS, lambda i: kb.op("set_flag", flag=REV, to=CoreRole.AIC, line=20))

            def step(j):
                kb.op("wait_flag", flag=FWD, line=21)
                s = load(kb, ws, (kb.add(slot_row(j), off), z), (h, TN), UB, line=22)
                kb.op("set_flag", flag=REV, to=CoreRole.AIC, line=23)
                e = kb.op("exp", s, space=UB)
                row = kb.add(m0, off) if lane_rows else m0
                store(kb, y, e, (row, kb.mul(j, TN)), line=25)
                r = kb.op("reduce", e, kind=ReduceKind.SUM, axis=1, space=UB)
                store(kb, rs, r, (kb.add(m0, off), j), line=26)
            kb.loop(nt, step, line=21)
        kb.core(AIV, aiv)
    kb.spmd(grid, block)
    return kb.kernel()


def ring_args(grid, nt, seed=0):
    rng = np.random.default_rng(seed)
    x = bf16(rng.standard_normal((grid * TM, KD)) * 0.2)
    w = bf16(rng.standard_normal((nt * TN, KD)) * 0.2)
    return {"x": x, "w": w}


def ring_ref(x, w, nt):
    s = torch.from_numpy(x) @ torch.from_numpy(w).T
    y = torch.exp(s).numpy()
    rs = y.reshape(y.shape[0], nt, TN).sum(axis=2)
    return y, rs


def _fails(cls, kernel, args, *needles, checks=True):
    snapshot = {k: np.array(v, copy=True) for k, v in args.items()}
    with pytest.raises(cls) as ei:
        simulate(kernel, args, A2, checks=checks)
    text = str(ei.value)
    for n in needles:
        assert n in text, (n, text)
    assert ei.value.fix and ei.value.where
    for k, v in snapshot.items():  # the caller's arrays are never written
        assert np.array_equal(args[k], v, equal_nan=True)
    return text


@pytest.mark.parametrize("grid,nt", [(3, 5), (1, 1), (30, 3)])
def test_ring_producer_consumer_golden(grid, nt):
    args = ring_args(grid, nt)
    res = simulate(ring_kernel(grid, nt), args, A2)
    y, rs = ring_ref(args["x"], args["w"], nt)
    np.testing.assert_allclose(res.outputs["y"], y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res.outputs["rs"], rs, rtol=1e-5, atol=1e-4)
    assert res.blocks == grid
    clusters = min(grid, A2.clusters)  # 30 blocks: 24 clusters, a second wave of 6
    assert set(res.core_cycles) == ({f"AIC{i}" for i in range(clusters)}
                                    | {f"AIV{i}" for i in range(2 * clusters)})


def test_ring_is_deterministic():
    args = ring_args(4, 6, seed=3)
    a = simulate(ring_kernel(4, 6), args, A2)
    b = simulate(ring_kernel(4, 6), args, A2)
    assert a.cycles == b.cycles and a.core_cycles == b.core_cycles
    for k in a.outputs:
        assert np.array_equal(a.outputs[k], b.outputs[k])
    c = simulate(ring_kernel(4, 6), args, A2, checks=False)
    assert c.cycles == a.cycles and np.array_equal(c.outputs["y"], a.outputs["y"])


def test_missing_wait_overflows_the_flag():
    # the AIC never waits for a free slot: its 16th FWD set freezes the chip
    text = _fails(FlagOverflowError, ring_kernel(1, 20, aic_waits=False), ring_args(1, 20),
                  "kern.py:15", "flag 0", "16 sets", "counts 15", "core AIV0 of cluster 0",
                  "block 0, core AIC of cluster 0, op set_flag")
    assert "ring" in text.split("fix:")[1]


def test_wait_without_set_deadlocks():
    text = _fails(DeadlockError, ring_kernel(2, 4, aic_sets=False), ring_args(2, 4),
                  "block 0, core AIC of cluster 0, op wait_flag: wait_flag(flag 1) at "
                  "kern.py:10", "block 0, core AIV0 of cluster 0, op wait_flag: "
                  "wait_flag(flag 0) at kern.py:21", "block 1, core AIV1 of cluster 1",
                  "6 cores wait")
    assert "unpaired sets: AIV0 0, AIV1 0" in text


def test_lanes_writing_the_same_rows_race():
    k = ring_kernel(1, 2, lane_rows=False)
    _fails(RaceError, k, ring_args(1, 2), "GM race on `y`",
           "block 0, core AIV1 of cluster 0, op store at kern.py:25 writes [0:8, 0:32]",
           "block 0, core AIV0 of cluster 0, op store at kern.py:25 writes [0:8, 0:32]",
           "give each lane disjoint rows")
    simulate(k, ring_args(1, 2), A2, checks=False)  # no check: it runs


def test_unfenced_ring_handoff_races():
    _fails(RaceError, ring_kernel(1, 2, fence=False), ring_args(1, 2), "GM race on `ws`",
           "op load at kern.py:22 reads [0:8, 0:32]", "op fixpipe at kern.py:13 writes "
           "[0:16, 0:32]", "did not fence", "mt.fence()")


# ---------------------------------------------------------------- syncall


def phase_kernel(grid: int, *, fence=True, mode=SyncMode.SOFT, core_type=MIX) -> Kernel:
    """Phase 1: the AIC of block b writes s_b = x_b @ w^T to ws[b]; fence; syncall.
    Phase 2: the AIVs of block b read ws[(b + 1) % grid] (half the rows each), exp it."""
    kb = KB("phases", MIX)
    x = kb.tensor("x", BF16, (grid * TM, KD))
    w = kb.tensor("w", BF16, (TN, KD))
    ws = kb.tensor("ws", F32, (grid * TM, TN), Role.SCRATCH)
    y = kb.tensor("y", F32, (grid * TM, TN), Role.OUT)
    h = TM // 2

    def block(blk):
        z, m0 = kb.c(0), kb.mul(blk, TM)

        def aic():
            a = kb.op("move", load(kb, x, (m0, z), (TM, KD), L1), space=L0A)
            b = kb.op("move", load(kb, w, (z, z), (TN, KD), L1), space=L0B)
            acc = kb.op("matmul", a, b, b_trans=True, space=L0C)
            kb.op("fixpipe", ws, acc, m0, z, sizes=(TM, TN), keep=(True, True),
                  has_bias=False, relu=False, dtype=F32, atomic=AtomicKind.NONE, line=40)
            if fence:
                kb.op("fence", line=41)
        kb.core(AIC, aic)
        kb.op("syncall", core_type=core_type, mode=mode, line=42)  # every core runs it

        def aiv(lane):
            nxt = kb.op("smod", kb.add(blk, 1), kb.c(grid))
            s = load(kb, ws, (kb.add(kb.mul(nxt, TM), kb.mul(lane, h)), z), (h, TN), UB,
                     line=43)
            store(kb, y, kb.op("exp", s, space=UB), (kb.add(m0, kb.mul(lane, h)), z))
        kb.core(AIV, aiv)
    kb.spmd(grid, block)
    return kb.kernel()


def _phase_ref(x, w, grid):
    s = np.exp((torch.from_numpy(x) @ torch.from_numpy(w).T).numpy())
    return np.roll(s.reshape(grid, TM, TN), -1, axis=0).reshape(grid * TM, TN)


@pytest.mark.parametrize("grid,mode", [(3, SyncMode.SOFT), (24, SyncMode.HARD)])
def test_fenced_syncall_handoff(grid, mode):
    rng = np.random.default_rng(grid)
    x, w = bf16(rng.standard_normal((grid * TM, KD)) * 0.2), bf16(rng.standard_normal((TN, KD)))
    res = simulate(phase_kernel(grid, mode=mode), {"x": x, "w": w}, A2)
    np.testing.assert_allclose(res.outputs["y"], _phase_ref(x, w, grid),
                               rtol=1e-5, atol=1e-5)


def test_unfenced_syncall_handoff_races():
    rng = np.random.default_rng(0)
    args = {"x": bf16(rng.standard_normal((2 * TM, KD))), "w": bf16(rng.standard_normal((TN, KD)))}
    _fails(RaceError, phase_kernel(2, fence=False), args, "GM race on `ws`",
           "block 1, core AIV1 of cluster 1, op load at kern.py:43 reads [8:16, 0:32]",
           "block 0, core AIC of cluster 0, op fixpipe at kern.py:40 writes [0:16, 0:32]",
           "did not fence", "fence + syncall")


def test_syncall_grid_rules():
    rng = np.random.default_rng(0)

    def args(grid):
        return {"x": bf16(rng.standard_normal((grid * TM, KD))),
                "w": bf16(rng.standard_normal((TN, KD)))}
    for grid in (4, 25):
        _fails(SyncallError, phase_kernel(grid, mode=SyncMode.HARD), args(grid),
               f"hard syncall with grid {grid} on 24 clusters hangs (AICore timeout)",
               "kern.py:42")
    _fails(SyncallError, phase_kernel(30), args(30), "soft syncall with grid 30 on 24 "
           "clusters", "blocks 24..29", "kern.py:42")
    _fails(SyncallError, phase_kernel(2, core_type=AIV), args(2),
           "core AIC of cluster 0 executes syncall(core_type=aiv)")


def _aiv_kernel(grid: int, body, rows: int = 8, y_role=Role.OUT) -> Kernel:
    kb = KB("vec", AIV)
    x = kb.tensor("x", F32, (grid * rows, 16))
    ws = kb.tensor("ws", F32, (grid * rows, 16), Role.SCRATCH)
    y = kb.tensor("y", F32, (grid * rows, 16), y_role)
    kb.spmd(grid, lambda blk: body(kb, blk, x, ws, y))
    return kb.kernel()


def test_vector_only_hard_syncall_over_48_aivs():
    def body(kb, blk, x, ws, y):
        z, r = kb.c(0), kb.mul(blk, 8)
        store(kb, ws, kb.op("exp", load(kb, x, (r, z), (8, 16), UB), space=UB), (r, z))
        kb.op("fence")
        kb.op("syncall", core_type=AIV, mode=SyncMode.HARD, line=50)
        nxt = kb.mul(kb.op("smod", kb.add(blk, 1), kb.c(48)), 8)
        store(kb, y, load(kb, ws, (nxt, z), (8, 16), UB), (r, z))
    x = np.random.default_rng(1).standard_normal((48 * 8, 16)).astype(np.float32)
    res = simulate(_aiv_kernel(48, body), {"x": x}, A2)
    np.testing.assert_allclose(res.outputs["y"], np.roll(np.exp(x), -8, axis=0), rtol=1e-6)
    _fails(SyncallError, _aiv_kernel(24, body), {"x": x[:24 * 8]},
           "hard syncall with grid 24 on 48 AIV cores")


# ---------------------------------------------------------------- blocks are unordered


def _same_rows(atomic):
    def body(kb, blk, x, ws, y):
        z = kb.c(0)
        t = load(kb, x, (kb.mul(blk, 8), z), (8, 16), UB)
        store(kb, y, t, (z, z), atomic=atomic, line=60)  # every block: rows 0..7
    return _aiv_kernel(3, body, y_role=Role.INOUT)


def test_blocks_writing_the_same_rows_race_unless_atomic():
    x = np.random.default_rng(2).standard_normal((24, 16)).astype(np.float32)
    y0 = np.ones((24, 16), np.float32)
    _fails(RaceError, _same_rows(AtomicKind.NONE), {"x": x, "y": y0},
           "block 1, core AIV1, op store at kern.py:60 writes [0:8, 0:16]",
           "block 0, core AIV0, op store at kern.py:60 writes [0:8, 0:16]",
           "blocks 0 and 1", "atomic add")
    out = simulate(_same_rows(AtomicKind.ADD), {"x": x, "y": y0}, A2).outputs["y"]
    ref = y0.copy()
    ref[:8] += x[:8] + x[8:16] + x[16:24]
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


def test_atomic_add_races_with_a_plain_read():
    def body(kb, blk, x, ws, y):
        z = kb.c(0)
        store(kb, y, load(kb, x, (z, z), (8, 16), UB), (z, z), atomic=AtomicKind.ADD, line=61)
        store(kb, ws, load(kb, y, (z, z), (8, 16), UB, line=62), (kb.mul(blk, 8), z))
    x = np.ones((16, 16), np.float32)
    _fails(RaceError, _aiv_kernel(2, body, y_role=Role.INOUT), {"x": x, "y": x},
           "op load at kern.py:62 reads [0:8, 0:16]", "atomically adds to [0:8, 0:16]")


def test_tile_op_outside_core_region_is_rejected():
    kb = KB("bad_mix", MIX)
    x = kb.tensor("x", F32, (8, 16))

    def block(blk):
        load(kb, x, (kb.c(0), kb.c(0)), (8, 16), UB, line=70)
        kb.core(AIC, lambda: None)
    kb.spmd(1, block)
    with pytest.raises(UnsupportedError, match="kern.py:70"):
        simulate(kb.kernel(), {"x": np.zeros((8, 16), np.float32)}, A2)


def test_unmatched_syncall_deadlocks():
    kb = KB("unmatched", MIX)

    def block(blk):
        kb.core(AIC, lambda: kb.loop(2, lambda i: kb.op("syncall", core_type=MIX,
                                                        mode=SyncMode.SOFT, line=80)))
        kb.core(AIV, lambda lane: kb.op("syncall", core_type=MIX, mode=SyncMode.SOFT,
                                        line=81))
    kb.spmd(2, block)
    _fails(DeadlockError, kb.kernel(), {}, "2 cores wait",
           "block 0, core AIC of cluster 0, op syncall: syncall(mix) at kern.py:80: 2 of 6 "
           "arrivals; 4 of the cores it waits for finished without arriving")


def _phases(grid: int, second_sync: bool) -> Kernel:
    """3 rounds: write own rows, fence, syncall, read the neighbour's rows [, syncall]."""
    def body(kb, blk, x, ws, y):
        z, r = kb.c(0), kb.mul(blk, 8)
        nxt = kb.mul(kb.op("smod", kb.add(blk, 1), kb.c(grid)), 8)

        def rnd(i):
            t = load(kb, x, (r, z), (8, 16), UB)
            store(kb, ws, kb.op("exp", t, space=UB), (r, z), line=90)
            kb.op("fence")
            kb.op("syncall", core_type=AIV, mode=SyncMode.SOFT)
            store(kb, y, load(kb, ws, (nxt, z), (8, 16), UB, line=91), (r, z))
            if second_sync:  # the neighbour must have read my rows before I rewrite them
                kb.op("syncall", core_type=AIV, mode=SyncMode.SOFT)
        kb.loop(3, rnd)
    return _aiv_kernel(grid, body)


def test_reads_are_ordered_by_a_syncall_without_fence():
    x = np.random.default_rng(5).standard_normal((4 * 8, 16)).astype(np.float32)
    res = simulate(_phases(4, True), {"x": x}, A2)
    np.testing.assert_allclose(res.outputs["y"], np.roll(np.exp(x), -8, axis=0), rtol=1e-6)
    _fails(RaceError, _phases(4, False), {"x": x}, "GM race on `ws`",
           "op store at kern.py:90 writes", "op load at kern.py:91 reads")


def test_checks_off_skips_flag_overflow_and_races():
    res = simulate(ring_kernel(1, 20, aic_waits=False), ring_args(1, 20), A2, checks=False)
    assert res.blocks == 1  # runs (reading overwritten slots: the numbers are wrong)
    with pytest.raises(DeadlockError):  # a deadlock is no check: nothing could go on
        simulate(ring_kernel(1, 2, aic_sets=False), ring_args(1, 2), A2, checks=False)
