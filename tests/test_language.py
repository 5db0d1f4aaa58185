"""DSL features end to end on the simulator: scalar reads, runtime loops, dtypes, ops."""
import math

import pytest
import torch

import mixtile as mt


@mt.kernel
def gather_rows_sum(x: mt.Tensor["N", "H", mt.f32], idx: mt.Tensor["B", mt.i32],
                    lens: mt.Tensor["B", mt.i32], y: mt.Out["B", "H", mt.f32],
                    TH: mt.const = 64):
    """y[b] = sum of rows x[idx[b] + j] for j < lens[b]: scalar reads as offsets and as a
    runtime loop bound, a loop-carried tile."""
    B = idx.shape[0]
    H = x.shape[1]
    gh = mt.cdiv(H, TH)
    for blk in mt.spmd(B * gh):
        b = blk // gh
        h0 = blk % gh * TH
        start = idx[b]
        acc = mt.zeros((1, TH), mt.f32)
        for j in mt.range(0, lens[b]):
            acc = acc + mt.load(x[start + j:start + j + 1, h0:h0 + TH])
        mt.store(y[b:b + 1, h0:h0 + TH], acc)


def test_scalar_reads_and_runtime_loop_bounds(gen):
    n, h, b = 40, 100, 5
    x = torch.randn(n, h, generator=gen)
    lens = torch.randint(0, 6, (b,), generator=gen, dtype=torch.int32)
    idx = torch.randint(0, n - 6, (b,), generator=gen, dtype=torch.int32)
    y = torch.empty(b, h)

    def ref(x, idx, lens, y):
        return torch.stack([x[int(i):int(i) + int(n_)].sum(0) for i, n_ in zip(idx, lens)])

    res = mt.run_jit(gather_rows_sum, x, idx, lens, y, golden=ref)
    assert res.passed, str(res)


@mt.kernel
def online_max_sum(x: mt.Tensor["R", "C", mt.f32], y: mt.Out["R", 2, mt.f32],
                   TR: mt.const = 8, TC: mt.const = 32):
    """Two loop-carried tiles (running max, rescaled running sum of exp): online softmax."""
    R, C = x.shape
    for blk in mt.spmd(mt.cdiv(R, TR)):
        r0 = blk * TR
        m = mt.full((TR, 1), float("-inf"))
        s = mt.zeros((TR, 1))
        for c0 in mt.range(0, C, TC):
            t = mt.load(x[r0:r0 + TR, c0:c0 + TC], pad=float("-inf"))
            m_new = mt.maximum(m, mt.row_max(t))
            s = s * mt.exp(m - m_new) + mt.row_sum(mt.exp(t - m_new))
            m = m_new
        mt.store(y[r0:r0 + TR, 0:1], m)
        mt.store(y[r0:r0 + TR, 1:2], s)


def test_two_carried_values_online_softmax(gen):
    x = torch.randn(13, 70, generator=gen) * 3
    y = torch.empty(13, 2)

    def ref(x, y):
        m = x.max(-1).values
        return torch.stack([m, torch.exp(x - m[:, None]).sum(-1)], -1)

    res = mt.run_jit(online_max_sum, x, y, golden=ref, rtol=1e-5, atol=1e-5)
    assert res.passed, str(res)


@mt.kernel
def ops_zoo(x: mt.Tensor["R", "C", mt.f32], y: mt.Out[7, "R", "C", mt.f32],
            TR: mt.const = 8, TC: mt.const = 64):
    """Vector ops: unary zoo, where/compare, col reductions, broadcasts, arange."""
    R, C = x.shape
    for blk in mt.spmd(mt.cdiv(R, TR)):
        r0 = blk * TR
        t = mt.load(x[r0:r0 + TR, 0:TC])
        a = mt.abs(t) + 0.5
        mt.store(y[0, r0:r0 + TR, 0:TC], mt.log(a) + mt.sqrt(a) * mt.rsqrt(a) - mt.reciprocal(a))
        mt.store(y[1, r0:r0 + TR, 0:TC], mt.gelu(t) + mt.gelu(t, approximate=True))
        mt.store(y[2, r0:r0 + TR, 0:TC], mt.sigmoid(t) * mt.tanh(t) - mt.neg(t))
        mt.store(y[3, r0:r0 + TR, 0:TC], mt.where(t > 0, t, 0.1 * t))
        cols = mt.arange(TC).astype(mt.f32).reshape(1, TC)
        mt.store(y[4, r0:r0 + TR, 0:TC], mt.col_broadcast(cols, TR) + mt.minimum(t, 0.0))
        rmx = mt.row_broadcast(mt.row_max(t) - mt.row_min(t), TC)
        mt.store(y[5, r0:r0 + TR, 0:TC], rmx)
        mt.store(y[6, r0:r0 + TR, 0:TC], mt.broadcast_to(mt.col_sum(t), (TR, TC)))


def test_vector_ops_zoo(gen):
    r, c = 8, 64
    x = torch.randn(r, c, generator=gen)
    y = torch.empty(7, r, c)

    def ref(x, y):
        a = x.abs() + 0.5
        gel = torch.nn.functional.gelu
        cols = torch.arange(c, dtype=torch.float32)[None, :].expand(r, c)
        return torch.stack([
            a.log() + a.sqrt() * a.rsqrt() - 1 / a,
            gel(x) + gel(x, approximate="tanh"),
            torch.sigmoid(x) * torch.tanh(x) + x,
            torch.where(x > 0, x, 0.1 * x),
            cols + torch.clamp(x, max=0.0),
            (x.max(-1, keepdim=True).values - x.min(-1, keepdim=True).values).expand(r, c),
            x.sum(0, keepdim=True).expand(r, c),
        ])

    res = mt.run_jit(ops_zoo, x, y, golden=ref, rtol=2e-5, atol=2e-5)
    assert res.passed, str(res)


@pytest.mark.parametrize("dt,tol", [(mt.f16, 1e-3), (mt.bf16, 1e-2), (mt.f8e4m3, 0.07),
                                    (mt.f8e5m2, 0.13), (mt.i8, 0), (mt.i32, 0)])
def test_cast_round_trip_dtypes(gen, dt, tol):
    """f32 -> dtype -> f32 through tiles matches torch's own conversion."""
    tdt = mt.runtime.jit.TORCH_DTYPE[dt]

    @mt.kernel
    def roundtrip(x: mt.Tensor["N", mt.f32], y: mt.Out["N", dt], T: mt.const = 64):
        for blk in mt.spmd(mt.cdiv(x.shape[0], T)):
            mt.store(y[blk * T:blk * T + T], mt.load(x[blk * T:blk * T + T]).astype(dt))

    x = torch.randn(150, generator=gen) * (40 if not dt.is_float else 3)
    if dt.is_int:  # the cast saturates at the int range (torch's .to wraps)
        info = torch.iinfo(tdt)
        x = x.round().clamp(info.min, info.max)
    y = torch.empty(150, dtype=tdt)
    res = mt.run_jit(roundtrip, x, y, golden=lambda x, y: x.to(tdt), rtol=tol, atol=tol)
    assert res.passed, str(res)


def test_int8_matmul_accumulates_int32(gen):
    @mt.kernel
    def qgemm(a: mt.Tensor["M", "K", mt.i8], b: mt.Tensor["K", "N", mt.i8],
              y: mt.Out["M", "N", mt.i32], T: mt.const = 32):
        M, K = a.shape
        N = b.shape[1]
        gn = mt.cdiv(N, T)
        for blk in mt.spmd(mt.cdiv(M, T) * gn):
            m0, n0 = blk // gn * T, blk % gn * T
            acc = mt.zeros((T, T), mt.i32)
            for k0 in mt.range(0, K, T):
                acc = mt.matmul(mt.load(a[m0:m0 + T, k0:k0 + T]),
                                mt.load(b[k0:k0 + T, n0:n0 + T]), acc=acc)
            mt.store(y[m0:m0 + T, n0:n0 + T], acc)

    a = torch.randint(-128, 128, (40, 70), generator=gen, dtype=torch.int8)
    b = torch.randint(-128, 128, (70, 33), generator=gen, dtype=torch.int8)
    y = torch.empty(40, 33, dtype=torch.int32)
    res = mt.run_jit(qgemm, a, b, y, golden=lambda a, b, y: a.int() @ b.int())
    assert res.passed, str(res)


def test_python_if_and_for_on_constants_specialise():
    @mt.kernel
    def spec(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.f32], P: mt.const = 3,
             T: mt.const = 32):
        for blk in mt.spmd(mt.cdiv(x.shape[0], T)):
            t = mt.load(x[blk * T:blk * T + T])
            for _ in range(P):  # unrolled at trace time
                t = t * 2.0
            if P > 2:
                t = t + 1.0
            mt.store(y[blk * T:blk * T + T], t)

    x = torch.randn(50)
    y = torch.empty(50)
    assert mt.run_jit(spec, x, y, P=3, golden=lambda x, y: x * 8 + 1).passed
    assert mt.run_jit(spec, x, y, P=1, golden=lambda x, y: x * 2).passed
    ck = mt.compile(spec, P=4)
    assert sum(op.name == "mul" for op in ck.kernel.walk()) == 4


def test_compile_exposes_ir_after_each_pass_and_caches(tmp_path):
    from tilelang_models.kernels.gemm import gemm_bias_relu_bf16 as k

    ck = mt.compile(k, compile_cfg=dict(dump_passes=True, dump_dir=str(tmp_path / "d")))
    assert list(ck.ir_after)[-1] == "PlanMemory"
    assert "fixpipe" in ck.ir and "fixpipe" not in list(ck.ir_after.values())[0]
    files = sorted(p.name for p in (tmp_path / "d").iterdir())
    assert files[0].startswith("00_") and any("after_InferSpaces" in f for f in files)
    from mixtile.ir.parser import parse_kernel
    for f in (tmp_path / "d").iterdir():
        parse_kernel(f.read_text())
    again = mt.compile(k)
    assert again.from_cache == "memory"
    mt.runtime.compiler.clear_memory_cache()
    assert mt.compile(k).from_cache == "disk"
    assert math.isfinite(ck.compile_s)


def test_input_changed_in_place_between_calls_is_seen(gen):
    """Converted inputs are reused across calls only while the tensor is unchanged."""
    from tilelang_models.kernels.vector import softmax

    x = torch.randn(4, 20, generator=gen)
    y = torch.empty(4, 20)
    assert mt.run_jit(softmax, x, y, golden=lambda x, y: torch.softmax(x, -1)).passed
    x.mul_(3.0)  # in place: same tensor object, new contents
    assert mt.run_jit(softmax, x, y, golden=lambda x, y: torch.softmax(x, -1)).passed
    x[0:2].add_(1.0)  # through a view
    assert mt.run_jit(softmax, x, y, golden=lambda x, y: torch.softmax(x, -1)).passed


def test_specialize_dims_compiles_static_extents(gen):
    from tilelang_models.kernels.gemm import gemm

    x = torch.randn(20, 70, generator=gen).bfloat16()
    w = torch.randn(30, 70, generator=gen).bfloat16()
    y = torch.empty(20, 30)
    ref = lambda x, w, y: x.float() @ w.float().T  # noqa: E731
    assert mt.run_jit(gemm, x, w, y, golden=ref, compile_cfg=dict(specialize_dims=True))
    ck = mt.compile(gemm, compile_cfg=dict(static_dims={"M": 20, "N": 30, "K": 70}))
    assert "tensor<20x70xbf16>" in ck.ir and not any(op.name == "dim" for op in ck.kernel.walk())
    generic = mt.compile(gemm)
    assert "tensor<Mx" in generic.ir


def test_tile_equality_and_scalar_operands_take_the_tile_dtype():
    @mt.kernel
    def k(x: mt.Tensor["N", mt.bf16], y: mt.Out[2, "N", mt.f32], T: mt.const = 32):
        for blk in mt.spmd(mt.cdiv(x.shape[0], T)):
            t = mt.load(x[blk * T:blk * T + T])
            m = mt.maximum(t, 0.1)  # 0.1 becomes bf16(0.1) as the tile's operand
            mt.store(y[0, blk * T:blk * T + T], m.astype(mt.f32))
            eq = mt.where(t == 0.0, 1.0, 0.0)
            mt.store(y[1, blk * T:blk * T + T], eq)

    x = torch.tensor([0.0, -1.0, 0.5, 0.0, 2.0] * 8).bfloat16()
    y = torch.empty(2, 40)

    def ref(x, y):
        b01 = torch.tensor(0.1).bfloat16()
        return torch.stack([torch.maximum(x, b01).float(), (x == 0).float()])

    res = mt.run_jit(k, x, y, golden=ref, rtol=0, atol=0)
    assert res.passed, str(res)
