"""Tests of the CPU simulator on hand-built kernels (as the compiler would lower them)."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mixtile.errors import (
    CapacityError,
    IllegalPathError,
    InternalError,
    Loc,
    MixtileError,
    OutOfBoundsError,
    TraceError,
    UninitializedReadError,
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
    Pipe,
    ReduceKind,
    Role,
    Value,
)
from mixtile.ir.builder import KernelBuilder, make_op
from mixtile.simulator import SimResult, simulate
from mixtile.target import A2

F32, BF16, I32, I8 = DType.F32, DType.BF16, DType.I32, DType.I8
L1, L0A, L0B, L0C, UB, BT = (MemSpace.L1, MemSpace.L0A, MemSpace.L0B, MemSpace.L0C,
                             MemSpace.UB, MemSpace.BT)


class KB(KernelBuilder):
    """mixtile.ir.builder.KernelBuilder with the loops these tests build."""

    def spmd(self, grid: Value, body) -> None:
        blk = Block([INDEX])
        self.stack.append(blk)
        body(blk.args[0])
        self.stack.pop()
        self.op("spmd", grid, regions=[blk])

    def loop(self, lb, ub, step, inits, body, line=1, **attrs):
        blk = Block([INDEX] + [v.type for v in inits])
        self.stack.append(blk)
        ys = body(*blk.args)
        self.op("yield", *ys)
        self.stack.pop()
        op = make_op(OPS["for"], [lb, ub, step, *inits], attrs, [blk], Loc(self.file, line))
        self.stack[-1].append(op)
        return op.results


def load(kb, t, offs, sizes, space, line=1, keep=None, pad=0.0, addr=0):
    keep = keep or (True,) * len(sizes)
    return kb.op("load", t, *offs, sizes=tuple(sizes), keep=keep, pad=pad, space=space,
                 addr=addr, line=line)


def store(kb, t, tile, offs, line=1, keep=None, atomic=AtomicKind.NONE):
    shape = tile.type.shape
    keep = keep or (True,) * len(offs)
    sizes, it = [], iter(shape)
    for k in keep:
        sizes.append(next(it) if k else 1)
    kb.op("store", t, tile, *offs, sizes=tuple(sizes), keep=keep, atomic=atomic, line=line)


def bf16(a) -> np.ndarray:
    """Round to bf16 values, in compute form (float32)."""
    return np.asarray(a, np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


# ---------------------------------------------------------------- kernels


def gemm_kernel(kd: int, nd: int, tm=16, tn=64, tk=128, bias=True, relu=True,
                out=BF16, dtype=BF16, split_k=1, grid_extra=0) -> Kernel:
    """y[M, N] = act(x[M, K] @ w[N, K]^T + b); M symbolic; blocks over (M tiles, N tiles,
    K splits); a for over K with the L0C accumulator carried; fixpipe to GM."""
    kb = KB("gemm", CoreType.AIC)
    x = kb.tensor("x", dtype, ("M", kd))
    w = kb.tensor("w", dtype, (nd, kd))
    b = kb.tensor("b", F32, (nd,)) if bias else None
    acc_dt = I32 if dtype is I8 else F32
    y = kb.tensor("y", out, ("M", nd), Role.INOUT if split_k > 1 else Role.OUT)
    md = kb.op("dim", x, axis=0)
    mb = kb.op("sfloordiv", kb.op("sadd", md, kb.c(tm - 1)), kb.c(tm))
    nb = nd // tn
    grid = kb.op("sadd", kb.op("smul", mb, kb.c(nb * split_k)), kb.c(grid_extra))
    kchunk = -(-kd // split_k)

    def block(blk):
        bm = kb.op("sfloordiv", blk, kb.c(nb * split_k))
        rest = kb.op("smod", blk, kb.c(nb * split_k))
        bn = kb.op("smod", rest, kb.c(nb))
        ks = kb.op("sfloordiv", rest, kb.c(nb))
        m0, n0 = kb.op("smul", bm, kb.c(tm)), kb.op("smul", bn, kb.c(tn))
        k_lo = kb.op("smul", ks, kb.c(kchunk))
        k_hi = kb.op("smin", kb.op("sadd", k_lo, kb.c(kchunk)), kb.c(kd))
        acc0 = kb.op("full", shape=(tm, tn), dtype=acc_dt, value=0.0, space=L0C, addr=0)

        def kstep(k, acc):
            a = load(kb, x, (m0, k), (tm, tk), L1, line=20, addr=0)
            bt = load(kb, w, (n0, k), (tn, tk), L1, line=21, addr=tm * tk * 2)
            a0 = kb.op("move", a, space=L0A, addr=0, line=22)
            b0 = kb.op("move", bt, space=L0B, addr=0, line=23)
            return [kb.op("matmul", a0, b0, acc, b_trans=True, space=L0C, addr=0, line=24)]
        acc, = kb.loop(k_lo, k_hi, kb.c(tk), [acc0], kstep, addrs=[0], line=19)
        ops = [y, acc]
        if bias:
            bl = load(kb, b, (n0,), (tn,), L1, line=25, addr=0)
            ops.append(kb.op("move", bl, space=BT, addr=0, line=26))
        atomic = AtomicKind.ADD if split_k > 1 else AtomicKind.NONE
        kb.op("fixpipe", *ops, m0, n0, sizes=(tm, tn), keep=(True, True), has_bias=bias,
              relu=relu, dtype=out, atomic=atomic, line=27)
    kb.spmd(grid, block)
    return kb.kernel()


def softmax_kernel(nd: int, tm=8, dtype=F32) -> Kernel:
    """y = softmax(x, axis=1) row tile by row tile on the vector cores."""
    kb = KB("softmax", CoreType.AIV)
    x = kb.tensor("x", dtype, ("M", nd))
    y = kb.tensor("y", dtype, ("M", nd), Role.OUT)
    md = kb.op("dim", x, axis=0)
    grid = kb.op("sfloordiv", kb.op("sadd", md, kb.c(tm - 1)), kb.c(tm))

    def block(blk):
        m0 = kb.op("smul", blk, kb.c(tm))
        t = load(kb, x, (m0, kb.c(0)), (tm, nd), UB, line=30)
        mx = kb.op("reduce", t, kind=ReduceKind.MAX, axis=1, space=UB)
        e = kb.op("exp", kb.op("sub", t, mx, space=UB), space=UB)
        s = kb.op("reduce", e, kind=ReduceKind.SUM, axis=1, space=UB)
        store(kb, y, kb.op("div", e, s, space=UB), (m0, kb.c(0)), line=35)
    kb.spmd(grid, block)
    return kb.kernel()


def _gemm_ref(x, w, b, relu, out=torch.bfloat16):
    r = torch.from_numpy(x) @ torch.from_numpy(w).T
    if b is not None:
        r = r + torch.from_numpy(b)
    if relu:
        r = torch.relu(r)
    return r.to(out).float().numpy()


# ---------------------------------------------------------------- numerics


@pytest.mark.parametrize("md,kd", [(48, 256), (40, 300), (5, 128)])
def test_gemm_bias_relu_bf16_ragged(md, kd):
    rng = np.random.default_rng(md + kd)
    nd = 128
    x, w = bf16(rng.standard_normal((md, kd))), bf16(rng.standard_normal((nd, kd)))
    b = rng.standard_normal(nd).astype(np.float32)
    x0, w0 = x.copy(), w.copy()
    res = simulate(gemm_kernel(kd, nd), {"x": x, "w": w, "b": b}, A2)
    assert isinstance(res, SimResult)
    y = res.outputs["y"]
    assert y.shape == (md, nd) and y.dtype == np.float32
    np.testing.assert_allclose(y, _gemm_ref(x, w, b, True), rtol=1e-2, atol=1e-2)
    assert np.array_equal(y, bf16(y))  # stored values are bf16 values
    assert np.array_equal(x, x0) and np.array_equal(w, w0)
    mt = -(-md // 16)
    assert res.blocks == mt * 2
    assert set(res.core_cycles) == {f"AIC{i}" for i in range(res.blocks)}
    assert res.cycles[Pipe.M] > 0 and res.cycles[Pipe.FIX] > 0 and res.cycles[Pipe.V] == 0


def test_gemm_f32_no_epilogue():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((32, 256), np.float32), rng.standard_normal((64, 256), np.float32)
    k = gemm_kernel(256, 64, bias=False, relu=False, out=F32, dtype=F32)
    y = simulate(k, {"x": x, "w": w}, A2).outputs["y"]
    np.testing.assert_allclose(y, x @ w.T, rtol=1e-5, atol=1e-4)


def test_softmax_vector_f32_and_bf16():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((21, 64)).astype(np.float32) * 3
    y = simulate(softmax_kernel(64), {"x": x}, A2).outputs["y"]
    ref = torch.softmax(torch.from_numpy(x), dim=1).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)
    xb = bf16(x)
    res = simulate(softmax_kernel(64, dtype=BF16), {"x": xb}, A2)
    yb = res.outputs["y"]
    np.testing.assert_allclose(yb, torch.softmax(torch.from_numpy(xb), 1).numpy(),
                               rtol=2e-2, atol=2e-3)
    assert np.array_equal(yb, bf16(yb))
    assert res.blocks == 3 and set(res.core_cycles) == {"AIV0", "AIV1", "AIV2"}
    assert res.cycles[Pipe.V] > 0 and res.cycles[Pipe.M] == 0


def test_split_k_atomic_add():
    rng = np.random.default_rng(3)
    md, kd, nd = 20, 512, 128
    x, w = bf16(rng.standard_normal((md, kd))), bf16(rng.standard_normal((nd, kd)))
    y0 = rng.standard_normal((md, nd)).astype(np.float32)
    keep = y0.copy()
    k = gemm_kernel(kd, nd, bias=False, relu=False, out=F32, split_k=4)
    res = simulate(k, {"x": x, "w": w, "y": y0}, A2)
    np.testing.assert_allclose(res.outputs["y"], y0 + x @ w.T, rtol=1e-5, atol=1e-3)
    assert np.array_equal(y0, keep)  # the caller's INOUT array is untouched
    assert res.blocks == 2 * 2 * 4


def test_int_and_bool_paths():
    kb = KB("ints", CoreType.AIV)
    a, b = kb.tensor("a", I32, (4, 8)), kb.tensor("b", I32, (4, 8))
    gt = kb.tensor("gt", DType.BOOL, (4, 8), Role.OUT)
    sel = kb.tensor("sel", I32, (4, 8), Role.OUT)
    f = kb.tensor("f", F32, (4, 8), Role.OUT)
    i8 = kb.tensor("i8", I8, (4, 8), Role.OUT)

    def block(blk):
        z = kb.c(0)
        ta, tb = load(kb, a, (z, z), (4, 8), UB), load(kb, b, (z, z), (4, 8), UB, addr=128)
        m = kb.op("gt", ta, tb, space=UB)
        store(kb, gt, m, (z, z))
        store(kb, sel, kb.op("select", m, ta, tb, space=UB), (z, z))
        s = kb.op("add", ta, tb, space=UB)
        store(kb, f, kb.op("cast", s, dtype=F32, space=UB), (z, z))
        store(kb, i8, kb.op("cast", s, dtype=I8, space=UB), (z, z))
    kb.spmd(kb.c(1), block)
    rng = np.random.default_rng(4)
    av, bv = rng.integers(-100, 100, (4, 8), np.int32), rng.integers(-100, 100, (4, 8), np.int32)
    out = simulate(kb.kernel(), {"a": av, "b": bv}, A2).outputs
    assert out["gt"].dtype == np.bool_ and np.array_equal(out["gt"], av > bv)
    assert out["sel"].dtype == np.int32 and np.array_equal(out["sel"], np.maximum(av, bv))
    assert out["f"].dtype == np.float32 and np.array_equal(out["f"], (av + bv).astype(np.float32))
    assert out["i8"].dtype == np.int8 and np.array_equal(out["i8"], (av + bv).astype(np.int8))


def test_int8_gemm():
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (16, 256), np.int8)
    w = rng.integers(-128, 128, (64, 256), np.int8)
    k = gemm_kernel(256, 64, bias=False, relu=False, out=I32, dtype=I8)
    y = simulate(k, {"x": x, "w": w}, A2).outputs["y"]
    assert y.dtype == np.int32
    assert np.array_equal(y, x.astype(np.int32) @ w.astype(np.int32).T)


def test_fp8_round_trip():
    kb = KB("fp8", CoreType.AIV)
    x = kb.tensor("x", F32, (8, 32))
    y8 = kb.tensor("y8", DType.F8E4M3, (8, 32), Role.OUT)
    y = kb.tensor("y", F32, (8, 32), Role.OUT)

    def block(blk):
        z = kb.c(0)
        q = kb.op("cast", load(kb, x, (z, z), (8, 32), UB), dtype=DType.F8E4M3, space=UB)
        store(kb, y8, q, (z, z))
        store(kb, y, kb.op("cast", q, dtype=F32, space=UB), (z, z))
    kb.spmd(kb.c(1), block)
    xv = (np.random.default_rng(6).standard_normal((8, 32)) * 50).astype(np.float32)
    xv[0, :3] = [1000.0, -1000.0, 0.0]  # saturates to +-448
    out = simulate(kb.kernel(), {"x": xv}, A2).outputs
    ref = torch.from_numpy(np.clip(xv, -448, 448)).to(torch.float8_e4m3fn).float().numpy()
    assert np.array_equal(out["y"], ref) and np.array_equal(out["y8"], ref)
    assert out["y8"].dtype == np.float32


def test_waves_and_cycles():
    rng = np.random.default_rng(7)
    md = 16 * 30  # 30 md-tiles x 2 nd-tiles = 60 blocks on 24 AICs
    x, w = bf16(rng.standard_normal((md, 128))), bf16(rng.standard_normal((128, 128)))
    k = gemm_kernel(128, 128, bias=False, relu=False, tn=64)
    res = simulate(k, {"x": x, "w": w}, A2)
    assert res.blocks == 60 and len(res.core_cycles) == 24
    m0, m23 = res.core_cycles["AIC0"][Pipe.M], res.core_cycles["AIC23"][Pipe.M]
    assert m0 == 3 * (m0 // 3) and m0 // 3 * 2 == m23  # 3 blocks vs 2 blocks
    assert res.cycles[Pipe.M] == sum(c[Pipe.M] for c in res.core_cycles.values())
    assert res.makespan > 0 and "blocks: 60" in res.summary()


def _copy_kernel(shape, tile, atomic=AtomicKind.NONE, pad=-1.0) -> Kernel:
    """y[r0:, c0:] (+)= load(x, r0, c0) with a (tile) window; r0, c0 scalar params."""
    kb = KB("copy", CoreType.AIV)
    x, y = kb.tensor("x", F32, shape), kb.tensor("y", F32, shape, Role.INOUT)
    r0, c0 = kb.scalar("r0"), kb.scalar("c0")

    def block(blk):
        t = load(kb, x, (r0, c0), tile, UB, pad=pad)
        store(kb, y, kb.op("add", t, t, space=UB), (r0, c0), atomic=atomic)
    kb.spmd(kb.c(1), block)
    return kb.kernel()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 6), st.integers(1, 6),
       st.integers(0, 10), st.integers(0, 10), st.booleans())
def test_ragged_regions_clip(rows, cols, tr, tc, r0, c0, atomic):
    x = np.arange(rows * cols, dtype=np.float32).reshape(rows, cols) + 1
    y = np.full((rows, cols), 0.5, np.float32)
    k = _copy_kernel((rows, cols), (tr, tc), AtomicKind.ADD if atomic else AtomicKind.NONE)
    args = {"x": x, "y": y, "r0": r0, "c0": c0}
    if r0 > rows or c0 > cols:  # a kept dim's offset past the end is out of bounds
        _fails(OutOfBoundsError, k, args, f"offsets ({r0}, {c0})")
        return
    out = simulate(k, args, A2).outputs["y"]
    ref = y.copy()
    win = (slice(r0, r0 + tr), slice(c0, c0 + tc))
    ref[win] = 2 * x[win] + (ref[win] if atomic else 0)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(y, np.full((rows, cols), 0.5, np.float32))


def test_pad_value_fills_the_ragged_part():
    x = np.ones((3, 3), np.float32)
    kb = KB("pad", CoreType.AIV)
    xt, yt = kb.tensor("x", F32, (3, 3)), kb.tensor("y", F32, (4, 4), Role.OUT)
    kb.spmd(kb.c(1), lambda blk: store(
        kb, yt, load(kb, xt, (kb.c(1), kb.c(0)), (4, 4), UB, pad=float("-inf")),
        (kb.c(0), kb.c(0))))
    y = simulate(kb.kernel(), {"x": x}, A2).outputs["y"]
    assert (y[:2, :3] == 1).all() and np.isneginf(y[2:]).all() and np.isneginf(y[:, 3]).all()


# ---------------------------------------------------------------- checkers


def _fails(cls, kernel, args, *needles):
    snapshot = {k: np.array(v, copy=True) for k, v in args.items() if isinstance(v, np.ndarray)}
    with pytest.raises(cls) as ei:
        simulate(kernel, args, A2)
    text = str(ei.value)
    for n in needles:
        assert n in text, (n, text)
    assert ei.value.fix and ei.value.where
    for k, v in snapshot.items():
        assert np.array_equal(args[k], v, equal_nan=True)
    return text


def test_capacity_check():
    k = softmax_kernel(2048, tm=32)  # 32 x 2048 f32 = 256 KiB > 184 KiB of UB
    x = np.zeros((40, 2048), np.float32)
    text = _fails(CapacityError, k, {"x": x}, "kern.py:30", "262144", "188416", "UB",
                  "block 0, core AIV0, op load")
    assert "fix:" in text
    k = softmax_kernel(64)
    ld = next(op for op in k.body.ops[-1].regions[0].ops if op.name == "load")
    ld.attrs["addr"] = 188416 - 1024  # 2 KiB at 1 KiB below the end of UB
    _fails(CapacityError, k, {"x": x[:, :64].copy()}, "at addr 187392", "2048 bytes")
    res = simulate(k, {"x": x[:, :64].copy()}, A2, checks=False)  # no check: runs
    assert res.outputs["y"].shape == (40, 64)


def test_illegal_path_check():
    kb = KB("bad_path", CoreType.AIC)
    x = kb.tensor("x", BF16, (16, 16))
    y = kb.tensor("y", F32, (16, 16), Role.OUT)

    def block(blk):
        z = kb.c(0)
        a = load(kb, x, (z, z), (16, 16), L0A, line=41)  # GM -> L0A: no such path
        b = kb.op("move", load(kb, x, (z, z), (16, 16), L1), space=L0B)
        acc = kb.op("matmul", a, b, space=L0C)
        kb.op("fixpipe", y, acc, z, z, sizes=(16, 16), keep=(True, True), has_bias=False,
              relu=False, dtype=F32, atomic=AtomicKind.NONE)
    kb.spmd(kb.c(2), block)
    _fails(IllegalPathError, kb.kernel(), {"x": np.zeros((16, 16), np.float32)},
           "kern.py:41", "GM -> L0A", "GM->L1", "L1->L0A", "block 0, core AIC0, op load")


def test_bias_must_be_in_bt():
    k = gemm_kernel(128, 64)
    blk = k.body.ops[-1].regions[0]
    mv = next(op for op in blk.ops if op.name == "move" and op.loc.line == 26)
    mv.results[0].type = mv.results[0].type.with_space(UB)
    mv.attrs["space"] = UB
    args = {"x": np.zeros((16, 128), np.float32), "w": np.zeros((64, 128), np.float32),
            "b": np.zeros(64, np.float32)}
    _fails(IllegalPathError, k, args, "L1 -> UB")


def test_out_of_bounds_check():
    k = gemm_kernel(128, 64, grid_extra=1)  # one block too many: row offset 32 > md = 20
    args = {"x": np.ones((20, 128), np.float32), "w": np.ones((64, 128), np.float32),
            "b": np.zeros(64, np.float32)}
    _fails(OutOfBoundsError, k, args, "kern.py:20", "offsets (32, 0)", "sizes (16, 128)",
           "shape (20, 128)", "block 2, core AIC2, op load")
    # checks=False clips the region instead: the extra block reads pad, writes nothing
    res = simulate(k, args, A2, checks=False)
    np.testing.assert_allclose(res.outputs["y"], np.full((20, 64), 128.0))


def test_load_scalar_checks():
    kb = KB("gather", CoreType.AIV)
    idx = kb.tensor("idx", I32, (4,))
    x = kb.tensor("x", F32, (10, 8))
    y = kb.tensor("y", F32, (4, 8), Role.OUT)

    def block(blk):
        i = kb.op("load_scalar", idx, blk, line=50)
        row = load(kb, x, (i, kb.c(0)), (1, 8), UB, keep=(False, True), line=51)
        store(kb, y, row, (blk, kb.c(0)), keep=(False, True), line=52)
    kb.spmd(kb.c(4), block)
    xv = np.arange(80, dtype=np.float32).reshape(10, 8)
    out = simulate(kb.kernel(), {"idx": np.array([3, 0, 9, 3], np.int32), "x": xv}, A2)
    np.testing.assert_array_equal(out.outputs["y"], xv[[3, 0, 9, 3]])
    _fails(OutOfBoundsError, kb.kernel(), {"idx": np.array([3, 0, 10, 3], np.int32),
                                           "x": xv}, "kern.py:51", "index 10", "shape (10, 8)",
           "block 2, core AIV2")
    kb2 = KB("scalar_oob", CoreType.AIV)
    t = kb2.tensor("idx", I32, (4,))
    kb2.spmd(kb2.c(1), lambda blk: kb2.op("load_scalar", t, kb2.c(4), line=55))
    _fails(OutOfBoundsError, kb2.kernel(), {"idx": np.zeros(4, np.int32)}, "kern.py:55",
           "shape (4,)")


def test_uninitialised_read_check():
    kb = KB("reread", CoreType.AIV)
    x = kb.tensor("x", F32, (8, 16))
    y = kb.tensor("y", F32, (8, 16), Role.OUT)

    def block(blk):
        z = kb.c(0)
        store(kb, y, load(kb, x, (z, z), (4, 16), UB), (z, z), line=60)  # rows 0..3 only
        back = load(kb, y, (z, z), (8, 16), UB, line=61)  # rows 4..7 were never written
        store(kb, y, kb.op("add", back, back, space=UB), (z, z))
    kb.spmd(kb.c(1), block)
    x0 = np.ones((8, 16), np.float32)
    y_arg = np.zeros((8, 16), np.float32)
    _fails(UninitializedReadError, kb.kernel(), {"x": x0, "y": y_arg}, "kern.py:61", "`y`",
           "64 of 128 elements", "[0:8, 0:16]", "block 0, core AIV0, op load")
    res = simulate(kb.kernel(), {"x": x0}, A2, checks=False)  # poison shows up as NaN
    assert np.isnan(res.outputs["y"][4:]).all() and (res.outputs["y"][:4] == 2).all()


def test_atomic_add_into_unwritten_output():
    k = gemm_kernel(256, 64, bias=False, relu=False, out=F32, split_k=2)
    k.params[-1].role = Role.OUT
    args = {"x": np.ones((16, 256), np.float32), "w": np.ones((64, 256), np.float32)}
    _fails(UninitializedReadError, k, args, "kern.py:27", "atomic add", "1024 of 1024")


def test_scratch_workspace_and_internal_errors():
    kb = KB("scratch", CoreType.AIV)
    x = kb.tensor("x", F32, (8, 16))
    ws = kb.tensor("ws", F32, (8, 16), Role.SCRATCH)
    y = kb.tensor("y", F32, (8, 16), Role.OUT)

    def block(blk):
        z = kb.c(0)
        store(kb, ws, load(kb, x, (z, z), (8, 16), UB), (z, z))
        store(kb, y, load(kb, ws, (z, z), (8, 16), UB, addr=512), (z, z))
        kb.op("sfloordiv", blk, z, line=66)  # division by zero: a located InternalError
    kb.spmd(kb.c(1), block)
    xv = np.random.default_rng(9).standard_normal((8, 16)).astype(np.float32)
    with pytest.raises(InternalError, match="kern.py:66") as ei:
        simulate(kb.kernel(), {"x": xv}, A2)
    assert "ZeroDivisionError" in str(ei.value) and "block 0, core AIV0" in str(ei.value)
    blk = kb.stack[0].ops[-1].regions[0]
    blk.ops = [op for op in blk.ops if op.name != "sfloordiv"]
    np.testing.assert_array_equal(simulate(kb.kernel(), {"x": xv}, A2).outputs["y"], xv)
    with pytest.raises(MixtileError, match="SCRATCH"):
        simulate(kb.kernel(), {"x": xv, "ws": xv}, A2)


def test_negative_step_is_an_error():
    kb = KB("steps", CoreType.AIV)
    kb.spmd(kb.c(1), lambda blk: kb.loop(kb.c(0), kb.c(4), kb.c(0), [], lambda iv: [], line=70))
    with pytest.raises(TraceError, match="kern.py:70"):
        simulate(kb.kernel(), {}, A2)


def test_errors_are_mixtile_errors_and_args_checked():
    k = softmax_kernel(64)
    with pytest.raises(MixtileError, match="dim 1 is 32"):
        simulate(k, {"x": np.zeros((4, 32), np.float32)}, A2)
    with pytest.raises(MixtileError, match="unknown arguments"):
        simulate(k, {"x": np.zeros((4, 64), np.float32), "z": 1}, A2)


# ---------------------------------------------------------------- speed
