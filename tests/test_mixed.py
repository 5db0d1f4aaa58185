"""Mixed cube+vector kernels in automatic mode: AIC/AIV expansion, the GM crossing with
flags, the UP_DOWN lane split, golden-checked against torch; broken twins rejected."""
import pytest
import torch

import mixtile as mt
from mixtile.ir.types import CoreType, TileType
from tilelang_models.kernels import mixed as X
from tilelang_models.kernels.gemm import blocks

F = torch.nn.functional
SHAPES = [(64, 256, 128), (100, 300, 200), (2, 130, 40), (130, 700, 64)]  # 130x700: 30 blocks


def _inputs(gen, m, n, k):
    x = torch.randn(m, k, generator=gen).bfloat16()
    w = (torch.randn(n, k, generator=gen) / k ** 0.5).bfloat16()
    return x, w, torch.randn(n, generator=gen)


def _mm(x, w):
    return x.float() @ w.float().T


ACTS = {"silu": (X.gemm_bias_silu, F.silu),
        "gelu_tanh": (X.gemm_bias_gelu_tanh, lambda h: F.gelu(h, approximate="tanh")),
        "gelu_erf": (X.gemm_bias_gelu_erf, F.gelu),
        "silu_manual": (X.gemm_bias_silu_manual, F.silu),
        "gelu_tanh_manual": (X.gemm_bias_gelu_tanh_manual,
                             lambda h: F.gelu(h, approximate="tanh")),
        "gelu_erf_manual": (X.gemm_bias_gelu_erf_manual, F.gelu)}


@pytest.mark.parametrize("act", sorted(ACTS))
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_gemm_bias_activation(gen, act, m, n, k):
    kern, f = ACTS[act]
    x, w, b = _inputs(gen, m, n, k)
    y = torch.empty(m, n, dtype=torch.bfloat16)
    res = mt.run_jit(kern, x, w, b, y, golden=lambda x, w, b, y: f(_mm(x, w) + b).bfloat16())
    assert res.passed, str(res)


@pytest.mark.parametrize("kern", [X.gemm_residual, X.gemm_residual_manual])
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_gemm_residual(gen, kern, m, n, k):
    x, w, _ = _inputs(gen, m, n, k)
    r = torch.randn(m, n, generator=gen).bfloat16()
    y = torch.empty(m, n, dtype=torch.bfloat16)
    res = mt.run_jit(kern, x, w, r, y,
                     golden=lambda x, w, r, y: (_mm(x, w) + r.float()).bfloat16())
    assert res.passed, str(res)


@pytest.mark.parametrize("kern", [X.gemm_swiglu, X.gemm_swiglu_manual])
@pytest.mark.parametrize("m,i,k", [(64, 128, 128), (37, 100, 90), (130, 200, 64)])
def test_gemm_swiglu_merged_weight(gen, kern, m, i, k):
    x, w, _ = _inputs(gen, m, 2 * i, k)
    y = torch.empty(m, i, dtype=torch.bfloat16)

    def ref(x, w, y):
        h = _mm(x, w)
        return (F.silu(h[:, :i]) * h[:, i:]).bfloat16()

    res = mt.run_jit(kern, x, w, y, golden=ref)
    assert res.passed, str(res)


def test_expanded_structure():
    k = mt.compile(X.gemm_bias_silu).kernel
    assert k.attrs["core"] is CoreType.MIX
    cores = [op for op in k.walk() if op.name == "core"]
    assert [c.attrs["core"] for c in cores] == [CoreType.AIC, CoreType.AIV]
    names = [op.name for op in k.walk()]
    # READY and FREE per crossing, plus the consumer's FREE credits (one per ring slot:
    # the crossing is made once per block iteration) and the producer's drains
    assert names.count("set_flag") == 4 and names.count("wait_flag") == 4
    k1 = mt.compile(X.gemm_bias_silu, dict(pipeline_depth=1)).kernel
    names = [op.name for op in k1.walk()]
    assert names.count("set_flag") == 3 and names.count("wait_flag") == 3
    assert "fence" in names
    aiv_tiles = [r.type for op in cores[1].regions[0].walk() for r in op.results
                 if isinstance(r.type, TileType) and len(r.type.shape) == 2]
    assert aiv_tiles and all(t.shape[0] == 16 for t in aiv_tiles)  # TM=32 halved per lane


def _broken(kern, drop: str):
    """Compile `kern`, then remove every `drop` op from its lowered IR."""
    ck = mt.compile(kern)
    for op in list(ck.kernel.walk()):
        if op.name == drop:
            op.parent.ops.remove(op)
    return ck


@pytest.mark.parametrize("drop,err", [("fence", mt.RaceError), ("wait_flag", mt.RaceError),
                                      ("set_flag", mt.DeadlockError)])
def test_protocol_without_fence_or_wait_is_caught_by_the_simulator(gen, drop, err):
    from mixtile.simulator import simulate

    ck = _broken(X.gemm_bias_silu, drop)
    x, w, b = _inputs(gen, 130, 700, 64)
    args = {"x": x.float().numpy(), "w": w.float().numpy(), "bias": b.numpy()}
    with pytest.raises(err):
        simulate(ck.kernel, args, ck.target)


@pytest.mark.parametrize("tm", [17, 5, 1])
def test_odd_row_tile_lane0_takes_the_ceiling_half(gen, tm):
    x, w, b = _inputs(gen, 100, 300, 200)
    y = torch.empty(100, 300, dtype=torch.bfloat16)
    res = mt.run_jit(X.gemm_bias_silu, x, w, b, y, TM=tm,
                     golden=lambda x, w, b, y: F.silu(_mm(x, w) + b).bfloat16())
    assert res.passed, str(res)
    k = mt.compile(X.gemm_bias_silu, TM=tm).kernel
    aiv = [c for c in k.walk() if c.name == "core"][1]
    rows = {r.type.shape[0] for op in aiv.regions[0].walk() for r in op.results
            if isinstance(r.type, TileType) and len(r.type.shape) == 2}
    assert rows == {(tm + 1) // 2}
    limited = [op for op in aiv.regions[0].walk() if op.attrs.get("row_limit") is not None]
    assert limited  # lane 1 stops at the block's last row


def test_row_reduction_across_the_lane_split_is_rejected():
    @mt.kernel
    def colsum(x: mt.Tensor["M", "K", mt.bf16], w: mt.Tensor["N", "K", mt.bf16],
               y: mt.Out[1, "N", mt.f32], TM: mt.const = 32, TN: mt.const = 64):
        for blk in mt.spmd(1):
            acc = mt.matmul(mt.load(x[0:TM, 0:32]), mt.load(w[0:TN, 0:32]), b_trans=True)
            mt.store(y[0:1, 0:TN], mt.col_sum(mt.exp(acc)))  # BAD

    with pytest.raises(mt.UnsupportedError, match="collapses the axis split"):
        mt.compile(colsum)


def test_cube_and_vector_work_in_one_loop(gen):
    @mt.kernel
    def k(x: mt.Tensor["M", "K", mt.bf16], y: mt.InOut["M", "M", mt.f32]):
        for blk in mt.spmd(1):
            for i in mt.range(0, 3):
                a = mt.load(x[0:16, 0:16])
                t = mt.load(y[0:16, 0:16])
                mt.store(y[0:16, 0:16], t + mt.exp(mt.matmul(a, a, b_trans=True)))

    x = (torch.randn(16, 16, generator=gen) / 4).bfloat16()
    y = torch.randn(16, 16, generator=gen)
    ref = lambda x, y: y + 3 * torch.exp(_mm(x, x))  # noqa: E731
    res = mt.run_jit(k, x, y, golden=ref, rtol=1e-5, atol=1e-4)
    assert res.passed, str(res)


@pytest.mark.parametrize("kern,shape", [(X.gemm_bias_silu, (130, 700, 64)),
                                        (X.gemm_swiglu, (70, 600, 96))])
def test_double_buffered_ring_agrees_with_single_slot(gen, kern, shape):
    """pipeline_depth=2 lets the cube run one tile ahead of the vector lanes; the result
    must be bit-identical to the unpipelined (single-slot) program."""
    m, n, k = shape
    x, w, b = _inputs(gen, m, n, k)
    args = (x, w, b) if kern is X.gemm_bias_silu else (x, w)
    outs = []
    for depth in (1, 2):
        y = torch.empty(m, n // (1 if kern is X.gemm_bias_silu else 2), dtype=torch.bfloat16)
        mt.run_jit(kern, *args, y, compile_cfg=dict(pipeline_depth=depth))
        outs.append(y)
    assert torch.equal(outs[0], outs[1])
    ws = [p for p in mt.compile(kern, compile_cfg=dict(pipeline_depth=2)).kernel.params
          if p.name.startswith("ws")]
    assert ws and all(p.value.type.shape[0] == 48 for p in ws)  # 2 slots x 24 clusters


def test_manual_and_automatic_modes_build_the_same_program():
    from collections import Counter

    def per_core(kern):  # the ops each core runs (the order of independent ops may differ)
        k = mt.compile(kern).kernel
        return [Counter(op.name for op in c.regions[0].walk())
                for c in k.walk() if c.name == "core"]

    assert per_core(X.gemm_swiglu) == per_core(X.gemm_swiglu_manual)


def test_manual_mode_requires_explicit_crossings():
    @mt.kernel
    def implicit(x: mt.Tensor["M", "K", mt.bf16], w: mt.Tensor["N", "K", mt.bf16],
                 y: mt.Out["M", "N", mt.bf16], TM: mt.const = 32, TN: mt.const = 64):
        for blk in mt.spmd(1):
            acc = mt.matmul(mt.load(x[0:TM, 0:32]), mt.load(w[0:TN, 0:32]), b_trans=True)
            with mt.split_aiv(2, mode=mt.SplitMode.UP_DOWN):
                mt.store(y[0:TM, 0:TN], mt.silu(acc).astype(mt.bf16))  # BAD

    with pytest.raises(mt.TraceError, match="crosses to the vector side implicitly") as ei:
        mt.compile(implicit)
    assert "mt.aiv_shard" in str(ei.value)


@mt.kernel
def gemm_bias_silu_lr(x: mt.Tensor["M", "K", mt.bf16], w: mt.Tensor["N", "K", mt.bf16],
                      bias: mt.Tensor["N", mt.f32], y: mt.Out["M", "N", mt.bf16],
                      TM: mt.const = 16, TN: mt.const = 128, TK: mt.const = 64):
    """LEFT_RIGHT: each AIV lane takes half of the columns (and of the bias vector)."""
    M, K = x.shape
    N = w.shape[0]
    for m0, n0 in blocks(M, N, TM, TN):
        acc = X.mainloop(x, w, m0, n0, 0, K, TM, TN, TK)
        with mt.split_aiv(2, mode=mt.SplitMode.LEFT_RIGHT):
            h = mt.silu(mt.aiv_shard(acc) + mt.load(bias[n0:n0 + TN]))
            mt.store(y[m0:m0 + TM, n0:n0 + TN], h.astype(mt.bf16))


@pytest.mark.parametrize("tn", [128, 65, 1])
@pytest.mark.parametrize("m,n,k", [(40, 300, 100), (130, 700, 64)])
def test_left_right_split(gen, tn, m, n, k):
    x, w, b = _inputs(gen, m, n, k)
    y = torch.empty(m, n, dtype=torch.bfloat16)
    res = mt.run_jit(gemm_bias_silu_lr, x, w, b, y, TN=tn,
                     golden=lambda x, w, b, y: F.silu(_mm(x, w) + b).bfloat16())
    assert res.passed, str(res)
    aiv = [c for c in mt.compile(gemm_bias_silu_lr, TN=tn).kernel.walk() if c.name == "core"][1]
    cols = {r.type.shape[-1] for op in aiv.regions[0].walk() for r in op.results
            if isinstance(r.type, TileType)}
    assert cols == {(tn + 1) // 2}


def test_left_right_rejects_a_row_reduction():
    @mt.kernel
    def k(x: mt.Tensor["M", "K", mt.bf16], w: mt.Tensor["N", "K", mt.bf16],
          y: mt.Out["M", 1, mt.f32], TM: mt.const = 16, TN: mt.const = 64):
        for blk in mt.spmd(1):
            acc = mt.matmul(mt.load(x[0:TM, 0:32]), mt.load(w[0:TN, 0:32]), b_trans=True)
            with mt.split_aiv(2, mode=mt.SplitMode.LEFT_RIGHT):
                mt.store(y[0:TM, 0:1], mt.row_sum(mt.aiv_shard(acc)))  # BAD

    with pytest.raises(mt.UnsupportedError, match="collapses the axis split"):
        mt.compile(k)


def test_mixed_kernel_on_a5_goes_through_gm(gen):
    x, w, b = _inputs(gen, 100, 300, 200)
    y = torch.empty(100, 300, dtype=torch.bfloat16)
    res = mt.run_jit(X.gemm_bias_silu, x, w, b, y, compile_cfg=dict(arch="a5"),
                     golden=lambda x, w, b, y: F.silu(_mm(x, w) + b).bfloat16())
    assert res.passed, str(res)


def test_a5_crossings_use_on_chip_rings_a2_uses_gm():
    a5 = mt.compile(X.gemm_swiglu, compile_cfg=dict(arch="a5")).kernel
    a2 = mt.compile(X.gemm_swiglu).kernel

    def rings(k):
        return {op.attrs.get("ring") for op in k.walk()
                if op.name in ("load", "store") and op.operands[0].hint.startswith("ws")}

    assert rings(a5) == {mt.UB} and rings(a2) == {None}
    # 2 crossings x 2 ring slots x a lane's 16 of 32 rows x 64 f32 columns
    assert a5.attrs["ring_bytes"] == {mt.UB: 2 * 2 * 16 * 64 * 4}


def test_a5_vector_to_cube_ring_in_l1(gen):
    from tilelang_models.kernels.attention import flash_decode

    k = mt.compile(flash_decode, compile_cfg=dict(arch="a5")).kernel
    spaces = {op.attrs.get("ring") for op in k.walk() if op.name == "store"
              and op.operands[0].hint.startswith("ws")}
    assert spaces == {mt.UB, mt.L1}  # scores/PV to the lanes, probabilities to the cube


def test_a5_ring_that_does_not_fit_is_a_capacity_error():
    with pytest.raises(mt.CapacityError, match="holding the cube<->vector ring") as ei:
        mt.compile(X.gemm_bias_silu, compile_cfg=dict(arch="a5"), TM=256, TN=256, TK=32)
    assert "pipeline_depth=1" in str(ei.value)


def test_split_region_nested_in_a_loop(gen):
    @mt.kernel
    def k(x: mt.Tensor["M", "K", mt.bf16], w: mt.Tensor["N", "K", mt.bf16],
          y: mt.Out["M", "N", mt.f32], TM: mt.const = 16, TN: mt.const = 64):
        for blk in mt.spmd(1):
            acc = mt.matmul(mt.load(x[0:TM, 0:32]), mt.load(w[0:TN, 0:32]), b_trans=True)
            mt.store(y[0:TM, 0:TN], mt.exp(acc * 0.01))
            for r in mt.range(0, 2):  # vector-only loop holding a NONE region
                with mt.split_aiv(2, mode=mt.SplitMode.NONE) as lane:
                    row = r * 2 + lane + TM
                    mt.store(y[row:row + 1, 0:TN], mt.zeros((1, TN)) + mt.to_float(row))

    x, w = _inputs(gen, 20, 64, 32)[:2]
    y = torch.empty(20, 64)

    def ref(x, w, y):
        out = torch.exp(0.01 * _mm(x, w))
        out[16:20] = torch.arange(16, 20, dtype=torch.float32)[:, None]
        return out

    res = mt.run_jit(k, x, w, y, golden=ref, rtol=1e-5, atol=1e-5)
    assert res.passed, str(res)


@mt.kernel
def _lr_rows(x: mt.Tensor["M", "K", mt.bf16], w: mt.Tensor["N", "K", mt.bf16],
             r: mt.Tensor["M", "N", mt.f32], n: mt.Scalar[mt.i32], y: mt.Out["M", "N", mt.f32],
             TM: mt.const = 16, TN: mt.const = 128, TK: mt.const = 64):
    M, K = x.shape
    N = w.shape[0]
    for m0, n0 in blocks(M, N, TM, TN):
        acc = X.mainloop(x, w, m0, n0, 0, K, TM, TN, TK)
        with mt.split_aiv(2, mode=mt.SplitMode.LEFT_RIGHT):
            t = mt.load(r[m0:m0 + TM, n0:n0 + TN], rows=n)  # rows limited, columns split
            mt.store(y[m0:m0 + TM, n0:n0 + TN], mt.aiv_shard(acc) + t)


def test_load_rows_on_an_axis_the_lanes_do_not_split_is_refused():
    """rows= bounds the first axis; a LEFT_RIGHT split divides the other one between the
    lanes, and a load has one row bound: refused with the line and the fix."""
    with pytest.raises(mt.UnsupportedError) as e:
        mt.compile(_lr_rows)
    msg = str(e.value)
    assert "rows=" in msg and "test_mixed.py" in msg and "other split mode" in msg


def test_reshape_into_a_lane_split_tile_is_refused_with_the_fix():
    @mt.kernel
    def k(x: mt.Tensor["M", "K", mt.f16], w: mt.Tensor["N", "K", mt.f16],
          s: mt.Tensor["M", mt.f32], y: mt.Out["M", "N", mt.f32]):
        for blk in mt.spmd(1):
            acc = mt.matmul(mt.load(x[0:32, 0:32]), mt.load(w[0:32, 0:32]), b_trans=True)
            mt.store(y[0:32, 0:32], mt.exp(acc) * mt.load(s[0:32]).reshape(32, 1))  # BAD

    with pytest.raises(mt.UnsupportedError, match="split between the two vector lanes") as ei:
        mt.compile(k)
    assert "BAD" in open(ei.value.loc.file).readlines()[ei.value.loc.line - 1]
    assert "0:1" in ei.value.fix


# ------------------------------------------------------------------ positions per lane

def _causal_kernel():
    @mt.kernel
    def causal_scores(q: mt.Tensor["M", "D", mt.f16], k: mt.Tensor["N", "D", mt.f16],
                      y: mt.Out["M", "N", mt.f32], TM: mt.const = 32, TN: mt.const = 64,
                      D: mt.const = 64, LR: mt.const = 0, POS: mt.const = mt.f32):
        """Causal scores: the mask written with mt.arange, right on each AIV lane."""
        gn = mt.cdiv(k.shape[0], TN)
        for blk in mt.spmd(mt.cdiv(q.shape[0], TM) * gn):
            m0, n0 = blk // gn * TM, blk % gn * TN
            s = mt.matmul(mt.load(q[m0:m0 + TM, 0:D]), mt.load(k[n0:n0 + TN, 0:D]),
                          b_trans=True)
            if LR:
                with mt.split_aiv(2, mode=mt.SplitMode.LEFT_RIGHT):
                    s = mt.aiv_shard(s)
                    cols = mt.arange(TN, POS) + n0  # 1-d: the split row vector itself
                    rows = mt.arange(TM, POS).reshape(TM, 1) + m0
                    mt.store(y[m0:m0 + TM, n0:n0 + TN],
                             mt.where(cols <= rows, s, float("-inf")))
            else:
                rows = mt.arange(TM, POS).reshape(TM, 1) + m0
                cols = mt.arange(TN, POS).reshape(1, TN) + n0
                mt.store(y[m0:m0 + TM, n0:n0 + TN], mt.where(cols <= rows, s, float("-inf")))
    return causal_scores


CAUSAL = _causal_kernel()
CAUSAL_CASES = [(32, 64, 0), (17, 64, 0), (30, 48, 0), (32, 64, 1), (32, 40, 1)]


def _causal_ref(q, k, y):
    m, n = q.shape[0], k.shape[0]
    s = q.float() @ k.float().T
    return s.masked_fill(torch.arange(n)[None, :] > torch.arange(m)[:, None], float("-inf"))


@pytest.mark.parametrize("tm,tn,lr", CAUSAL_CASES)
@pytest.mark.parametrize("arch", ["a2", "a5"])
def test_arange_positions_follow_the_lane_split(gen, tm, tn, lr, arch):
    """A causal mask from mt.arange in a mixed kernel: each lane's arange holds its own
    rows (UP_DOWN, odd tiles too) or columns (LEFT_RIGHT), so the mask is right."""
    q, k = torch.randn(70, 64, generator=gen).half(), torch.randn(100, 64, generator=gen).half()
    for pos in (mt.f32, mt.i32):
        res = mt.run_jit(CAUSAL, q, k, torch.empty(70, 100), TM=tm, TN=tn, LR=lr, POS=pos,
                         compile_cfg={"arch": arch}, golden=_causal_ref)
        assert res.passed, str(res)
    ck = mt.compile(CAUSAL, {"arch": arch}, TM=tm, TN=tn, LR=lr)
    assert ck.kernel.core is CoreType.MIX
    aiv = [c for c in ck.kernel.walk() if c.name == "core"][1]
    h = -(-(tn if lr else tm) // 2)
    assert {op.attrs["n"] for op in aiv.regions[0].walk() if op.name == "arange"} >= {h}


@pytest.mark.parametrize("m,n,k", [(70, 200, 300), (33, 130, 128), (16, 64, 1000)])
def test_gemm_residual_pingpong_k_loop(gen, tmp_path, m, n, k):
    """The K loop unrolled by PingPong: the same bits as the loop as written
    (pingpong=False), with an odd number of K steps (the last guard runs no trip), a
    single step, and ragged M / N; through the emitted Ascend C on the CPU model too."""
    import shutil
    x, w, _ = _inputs(gen, m, n, k)
    res = torch.randn(m, n, generator=gen).bfloat16()
    outs = []
    for pp in (False, True):
        y = torch.zeros(m, n).bfloat16()
        mt.run_jit(X.gemm_residual, x, w, res, y, compile_cfg=dict(pingpong=pp),
                   TM=32, TN=64, TK=64)
        outs.append(y)
    want = (_mm(x, w) + res.float()).bfloat16()
    assert torch.equal(outs[0], outs[1])
    assert torch.allclose(outs[1].float(), want.float(), atol=2e-2, rtol=2e-2)
    if shutil.which("g++") is not None and k == 300:
        from test_ascendc_cpu import run_cpu
        for arch in ("a2", "a5"):
            got = run_cpu(X.gemm_residual, [x, w, res, torch.zeros(m, n).bfloat16()],
                          tmp_path / arch, arch=arch, TM=32, TN=64, TK=64)
            # the CPU model accumulates in its own order: within a bf16 step
            assert torch.allclose(got[3].float(), outs[1].float(), atol=1e-2, rtol=1e-2)


# ---------------------------------------------------------------- phases through GM

def _phases(divided: bool):
    """A cube phase (GEMM tiles to a workspace), a MIX syncall, then a vector phase (row
    softmax): no tile crosses, the data goes through GM. divided: the vector rows split
    between the lanes with split_aiv; else every lane would do every row."""
    @mt.kernel
    def gemm_then_softmax(a: mt.Tensor["M", "K", mt.bf16], b: mt.Tensor["N", "K", mt.bf16],
                          out: mt.Out["M", "N", mt.f32], TM: mt.const = 32,
                          TN: mt.const = 64, TK: mt.const = 64):
        M, K = a.shape
        ws = mt.workspace((M, TN), mt.f32, "logits")
        P = mt.target().clusters
        for blk in mt.spmd(P):
            for it in mt.range(blk, mt.cdiv(M, TM), P):
                m0 = it * TM
                acc = mt.zeros((TM, TN))
                for k0 in mt.range(0, K, TK):
                    acc = mt.matmul(mt.load(a[m0:m0 + TM, k0:k0 + TK]),
                                    mt.load(b[0:TN, k0:k0 + TK]), acc=acc, b_trans=True)
                mt.store(ws[m0:m0 + TM, 0:TN], acc)
            mt.fence()
            mt.syncall(mt.CoreType.MIX, mt.SyncMode.HARD)

            def softmax_rows(r0, step):
                for r in mt.range(r0, M, step):
                    x = mt.load(ws[r:r + 1, 0:TN])
                    e = mt.exp(x - mt.row_max(x))
                    mt.store(out[r:r + 1, 0:TN], e / mt.row_sum(e))

            if divided:
                with mt.split_aiv(2, mode=mt.SplitMode.NONE) as lane:
                    softmax_rows(lane * P + blk, 2 * P)
            else:
                softmax_rows(blk, P)

    return gemm_then_softmax


@pytest.mark.parametrize("m", [1, 100])
def test_cube_and_vector_phases_through_gm(gen, m, tmp_path):
    """A launch whose cube and vector work meet only through a workspace and a MIX
    syncall is expanded into per-core programs (before 2026-12-06 ClassifyCores refused
    it as unsupported mixed work): the simulator, the emitted Ascend C on the CPU model of
    the API and Triton (its interpreter with fp16) against torch."""
    kern = _phases(True)
    a = torch.randn(m, 128, generator=gen).bfloat16()
    b = torch.randn(64, 128, generator=gen).bfloat16()
    want = torch.softmax(_mm(a, b), -1)
    out = torch.empty(m, 64)
    mt.run_jit(kern, a, b, out)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)
    pytest.importorskip("test_ascendc_cpu")
    from test_ascendc_cpu import GXX, run_cpu

    if GXX is not None:
        got = run_cpu(kern, [a, b, torch.zeros(m, 64)], tmp_path)
        torch.testing.assert_close(got[2], out, rtol=1e-5, atol=1e-6)


def test_cube_and_vector_phases_on_triton(gen):
    import os
    import subprocess
    import sys

    pytest.importorskip("triton")
    code = (
        "import torch, mixtile as mt, sys\n"
        "sys.path.insert(0, 'tests')\n"
        "from test_mixed import _phases\n"
        "from test_triton import _as\n"
        "dev = 'cuda' if torch.cuda.is_available() else 'cpu'\n"
        "dt = torch.bfloat16 if dev == 'cuda' else torch.float16\n"
        "k = _phases(True) if dev == 'cuda' else _as(_phases(True), 'f16')\n"
        "g = torch.Generator().manual_seed(0)\n"
        "a, b = (torch.randn(s, 128, generator=g).to(dt) for s in (70, 64))\n"
        "out = torch.empty(70, 64, device=dev)\n"
        "mt.run_jit(k, a.to(dev), b.to(dev), out, target='cuda')\n"
        "want = torch.softmax(a.float() @ b.float().T, -1)\n"
        "print(float((out.cpu() - want).abs().max()))\n")
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["TRITON_INTERPRET"] = "1"
    root = os.path.dirname(os.path.dirname(__file__))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=300, cwd=root)
    assert res.returncode == 0, res.stderr[-3000:]
    assert float(res.stdout.split()[-1]) < 1e-3
    # and Triton's own compiler takes both launches (the syncall splits them) to sm_90 PTX
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    code = ("import sys, tempfile, mixtile as mt\n"
            "sys.path.insert(0, 'tests')\n"
            "from test_mixed import _phases\n"
            "from qwen3_gpu_cases import ptx_for_hopper\n"
            "ptx_for_hopper('phases', mt.compile(_phases(True), target='cuda'), "
            "tempfile.mkdtemp())\n")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=300, cwd=root)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("ptx ok") == 2, res.stdout


def test_phases_through_gm_need_the_vector_phase_divided(gen):
    with pytest.raises(mt.UnsupportedError, match=r"test_mixed.py:\d+: vector work \(load\) "
                       r"outside split_aiv / on_core in a launch whose cube and vector "
                       r"work meet only through GM"
                       r"(.|\n)*fix: divide the vector phase between the lanes"):
        mt.compile(_phases(False))
