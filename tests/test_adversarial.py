"""Adversarial checks: new kernels vs torch on ragged/edge shapes, unusual DSL use, user
mistakes, cache and IR round trips. Tests named test_bug_* pin bugs this file found (now fixed)."""
import inspect
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mixtile as mt
from mixtile.errors import InternalError
from mixtile.ir.parser import parse_kernel
from mixtile.ir.printer import print_kernel


def _line(fn, needle: str) -> int:
    src, start = inspect.getsourcelines(getattr(fn, "fn", fn))
    return start + next(i for i, s in enumerate(src) if needle in s)


def _run(kern, *args, **kw):
    res = mt.run_jit(kern, *args, **kw)
    assert res.passed, str(res)
    return res


# ------------------------------------------------------------------ cube kernels

@mt.kernel
def gemm_at(xt: mt.Tensor["K", "M", mt.f16], w: mt.Tensor["K", "N", mt.f16],
            y: mt.Out["M", "N", mt.f32], TM: mt.const = 32, TN: mt.const = 32,
            TK: mt.const = 64):
    """y = xt^T @ w with the A operand stored [K, M] (a_trans)."""
    K, M = xt.shape
    N = w.shape[1]
    gn = mt.cdiv(N, TN)
    for blk in mt.spmd(mt.cdiv(M, TM) * gn):
        m0 = blk // gn * TM
        n0 = blk % gn * TN
        acc = mt.zeros((TM, TN))
        for k0 in mt.range(0, K, TK):
            a = mt.load(xt[k0:k0 + TK, m0:m0 + TM])
            b = mt.load(w[k0:k0 + TK, n0:n0 + TN])
            acc = mt.matmul(a, b, acc=acc, a_trans=True)
        mt.store(y[m0:m0 + TM, n0:n0 + TN], acc)


@pytest.mark.parametrize("m,n,k", [(33, 17, 5), (1, 1, 1), (70, 40, 130)])
def test_gemm_a_trans_ragged(gen, m, n, k):
    xt = torch.randn(k, m, generator=gen).half()
    w = torch.randn(k, n, generator=gen).half()
    _run(gemm_at, xt, w, torch.empty(m, n), rtol=1e-4, atol=1e-4,
         golden=lambda xt, w, y: xt.float().T @ w.float())


@mt.kernel
def gemm_static_rows(x: mt.Tensor[3, "K", mt.bf16], w: mt.Tensor["N", "K", mt.bf16],
                     y: mt.Out[3, "N", mt.f32], TN: mt.const = 64, TK: mt.const = 128):
    """Static and symbolic dims mixed; a 16-row tile over a 3-row tensor; K < TK."""
    K = x.shape[1]
    for blk in mt.spmd(mt.cdiv(w.shape[0], TN)):
        n0 = blk * TN
        acc = mt.zeros((16, TN))
        for k0 in mt.range(0, K, TK):
            acc = mt.matmul(mt.load(x[0:16, k0:k0 + TK]), mt.load(w[n0:n0 + TN, k0:k0 + TK]),
                            acc=acc, b_trans=True)
        mt.store(y[0:16, n0:n0 + TN], acc)


@pytest.mark.parametrize("n,k", [(5, 7), (70, 1), (64, 128)])
def test_static_symbolic_dims_tile_larger_than_tensor(gen, n, k):
    x = torch.randn(3, k, generator=gen).bfloat16()
    w = torch.randn(n, k, generator=gen).bfloat16()
    _run(gemm_static_rows, x, w, torch.empty(3, n), rtol=1e-5, atol=1e-5,
         golden=lambda x, w, y: x.float() @ w.float().T)


@mt.kernel
def gemm_varlen(x: mt.Tensor["B", "M", "K", mt.bf16], w: mt.Tensor["N", "K", mt.bf16],
                klen: mt.Tensor["B", mt.i32], bias: mt.Tensor["N", mt.f32],
                y: mt.Out["B", "M", "N", mt.bf16], T: mt.const = 16, TK: mt.const = 32):
    """Per-batch K length from an i32 GM table (0 gives a zero-trip loop); FIXPIPE
    epilogue bias + ReLU + bf16 cast; a batch index squeezed out of a 3-d tensor."""
    B, M, K = x.shape
    N = w.shape[0]
    gm, gn = mt.cdiv(M, T), mt.cdiv(N, T)
    for blk in mt.spmd(B * gm * gn):
        b = blk // (gm * gn)
        m0 = blk % (gm * gn) // gn * T
        n0 = blk % gn * T
        acc = mt.zeros((T, T))
        for k0 in mt.range(0, klen[b], TK):
            a = mt.load(x[b, m0:m0 + T, k0:k0 + TK])
            c = mt.load(w[n0:n0 + T, k0:k0 + TK])
            acc = mt.matmul(a, c, acc=acc, b_trans=True)
        mt.store(y[b, m0:m0 + T, n0:n0 + T],
                 mt.relu(acc + mt.load(bias[n0:n0 + T])).astype(mt.bf16))


def test_gemm_varlen_k_from_table_fixpipe(gen):
    b, m, n, k = 4, 19, 21, 70
    x = (torch.randn(b, m, k, generator=gen) * 30).bfloat16()
    w = (torch.randn(n, k, generator=gen) * 30).bfloat16()
    klen = torch.tensor([0, 70, 32, 5], dtype=torch.int32)  # 5: K < TK, ragged
    bias = torch.randn(n, generator=gen) * 100

    def ref(x, w, klen, bias, y):
        out = []
        for i, kl in enumerate(klen.tolist()):
            # the kernel reads whole TK chunks: cdiv(kl, 32) * 32 columns (clipped at K)
            kk = min(k, -(-kl // 32) * 32)
            out.append(torch.relu(x[i, :, :kk].float() @ w[:, :kk].float().T + bias))
        return torch.stack(out).bfloat16()

    _run(gemm_varlen, x, w, klen, bias, torch.empty(b, m, n, dtype=torch.bfloat16),
         golden=ref)


# ------------------------------------------------------------------ vector kernels

@mt.kernel
def colsum_nested(x: mt.Tensor["R", "C", mt.f32], y: mt.Out["C", mt.f32],
                  cnt: mt.Out[1, mt.f32], TR: mt.const = 4, TC: mt.const = 16):
    """Nested mt.range: `n` carried through both levels, `s` through the inner one;
    axis-0 reduction; reshape to a 1-d tile."""
    R, C = x.shape
    for blk in mt.spmd(1):
        n = mt.zeros((1,))
        for c0 in mt.range(0, C, TC):
            s = mt.zeros((1, TC))
            for r0 in mt.range(0, R, TR):
                s = s + mt.col_sum(mt.load(x[r0:r0 + TR, c0:c0 + TC]))
                n = n + 1.0
            mt.store(y[c0:c0 + TC], s.reshape(TC))
        mt.store(cnt[0:1], n)


@pytest.mark.parametrize("r,c", [(10, 33), (1, 1), (4, 16), (9, 17)])
def test_nested_loops_carried_at_both_levels(gen, r, c):
    x = torch.randn(r, c, generator=gen)
    trips = float(-(-c // 16) * -(-r // 4))
    _run(colsum_nested, x, torch.empty(c), torch.empty(1), rtol=1e-5, atol=1e-5,
         golden=lambda x, y, n: (x.sum(0), torch.tensor([trips])))


@mt.kernel
def int_table(t: mt.Tensor["B", mt.i32], y: mt.Out["B", 6, mt.i32]):
    """Index math on (possibly negative) int32 values read from GM."""
    for b in mt.spmd(t.shape[0]):
        v = t[b]
        z = mt.zeros((1, 1), mt.i32)
        mt.store(y[b:b + 1, 0:1], z + v // 4)
        mt.store(y[b:b + 1, 1:2], z + v % 4)
        mt.store(y[b:b + 1, 2:3], z + mt.smax(v, 0))
        mt.store(y[b:b + 1, 3:4], z + mt.smin(v * 2 + 8, b))
        mt.store(y[b:b + 1, 4:5], z + (v * 128 + 5) // 128)
        mt.store(y[b:b + 1, 5:6], z + (b - v) % 3)


def test_int_scalar_math_on_negative_table_values():
    t = torch.tensor([-7, 0, 5, -1, 13, -128], dtype=torch.int32)

    def ref(t, y):
        return torch.tensor([[v // 4, v % 4, max(v, 0), min(v * 2 + 8, b), (v * 128 + 5) // 128,
                              (b - v) % 3] for b, v in enumerate(t.tolist())], dtype=torch.int32)

    _run(int_table, t, torch.empty(6, 6, dtype=torch.int32), golden=ref)


@mt.kernel
def seg_mean(x: mt.Tensor["N", "H", mt.f32], starts: mt.Tensor["B", mt.i32],
             ends: mt.Tensor["B", mt.i32], y: mt.Out["B", "H", mt.f32], TH: mt.const = 32):
    """Runtime loop bounds from two tables (empty and reversed ranges: zero trips)."""
    H = x.shape[1]
    gh = mt.cdiv(H, TH)
    for blk in mt.spmd(starts.shape[0] * gh):
        b = blk // gh
        h0 = blk % gh * TH
        acc = mt.zeros((TH,))
        cnt = mt.zeros((TH,))
        for r in mt.range(starts[b], ends[b]):
            acc = acc + mt.load(x[r, h0:h0 + TH])
            cnt = cnt + 1.0
        mt.store(y[b, h0:h0 + TH], acc / mt.maximum(cnt, 1.0))


def test_segment_mean_zero_trip_loops(gen):
    x = torch.randn(20, 45, generator=gen)
    st = torch.tensor([0, 5, 7, 19, 3], dtype=torch.int32)
    en = torch.tensor([3, 5, 6, 20, 19], dtype=torch.int32)

    def ref(x, s, e, y):
        return torch.stack([x[a:b].mean(0) if b > a else torch.zeros(45)
                            for a, b in zip(s.tolist(), e.tolist())])

    _run(seg_mean, x, st, en, torch.empty(5, 45), golden=ref, rtol=1e-5, atol=1e-5)


def _row_absmax(x, r0, C, TR, TC):
    """A helper called from the kernel body that runs its own mt.range."""
    m = mt.zeros((TR, 1))
    for c0 in mt.range(0, C, TC):
        t = mt.load(x[r0:r0 + TR, c0:c0 + TC]).astype(mt.f32)
        m = mt.maximum(m, mt.row_max(mt.abs(t)))
    return m


@mt.kernel
def two_phase_scale(x: mt.Tensor["R", "C", mt.bf16], s: mt.Out["R", 1, mt.f32],
                    y: mt.Out["R", "C", mt.bf16], alpha: mt.Scalar[mt.f32],
                    TR: mt.const = 4, TC: mt.const = 16):
    """Two spmd launches: the second reads what the first stored."""
    R, C = x.shape
    for blk in mt.spmd(mt.cdiv(R, TR)):
        r0 = blk * TR
        mt.store(s[r0:r0 + TR, 0:1], _row_absmax(x, r0, C, TR, TC) * alpha)
    gc = mt.cdiv(C, TC)
    for blk in mt.spmd(mt.cdiv(R, TR) * gc):
        r0 = blk // gc * TR
        c0 = blk % gc * TC
        sc = mt.maximum(mt.load(s[r0:r0 + TR, 0:1]), 1e-6)
        t = mt.load(x[r0:r0 + TR, c0:c0 + TC]).astype(mt.f32)
        mt.store(y[r0:r0 + TR, c0:c0 + TC], (t / sc).astype(mt.bf16))


@pytest.mark.parametrize("r,c", [(5, 33), (1, 1), (8, 16)])
def test_two_launches_and_helper_with_range(gen, r, c):
    x = (torch.randn(r, c, generator=gen) * 1000).bfloat16()

    def ref(x, s, y, alpha):
        sm = x.float().abs().amax(-1, keepdim=True) * alpha
        return sm, (x.float() / sm.clamp_min(1e-6)).bfloat16()

    _run(two_phase_scale, x, torch.empty(r, 1), torch.empty(r, c, dtype=torch.bfloat16), 0.5,
         golden=ref)


@mt.kernel
def bf16_chain(a: mt.Tensor["R", "C", mt.bf16], b: mt.Tensor["R", "C", mt.bf16],
               y: mt.Out["R", "C", mt.bf16], z: mt.Out["R", 1, mt.bf16],
               TR: mt.const = 8, TC: mt.const = 32):
    """bf16 arithmetic rounded at every op; a carried bf16 running max."""
    R, C = a.shape
    for blk in mt.spmd(mt.cdiv(R, TR)):
        r0 = blk * TR
        acc = mt.zeros((TR, 1), mt.bf16)
        for c0 in mt.range(0, C, TC):
            ta = mt.load(a[r0:r0 + TR, c0:c0 + TC])
            tb = mt.load(b[r0:r0 + TR, c0:c0 + TC])
            h = ta * tb + ta - tb / 3.0
            mt.store(y[r0:r0 + TR, c0:c0 + TC], h)
            acc = mt.maximum(acc, mt.row_max(mt.abs(h)))
        mt.store(z[r0:r0 + TR, 0:1], acc)


@pytest.mark.parametrize("r,c", [(9, 70), (1, 1)])
def test_bf16_rounding_matches_torch_exactly_with_overflow(gen, r, c):
    a = (torch.randn(r, c, generator=gen) * 1e19).bfloat16()
    b = (torch.randn(r, c, generator=gen) * 1e19).bfloat16()
    a[0, 0] = b[0, 0] = 3e38  # a*b overflows to inf

    def ref(a, b, y, z):
        h = a * b + a - b / 3.0
        return h, h.abs().amax(-1, keepdim=True)

    _run(bf16_chain, a, b, torch.empty(r, c, dtype=torch.bfloat16),
         torch.empty(r, 1, dtype=torch.bfloat16), golden=ref, rtol=0, atol=0)


@mt.kernel
def colstats(x: mt.Tensor["R", "C", mt.bf16], sc: mt.Tensor[1, 1, mt.f32],
             y: mt.Out[3, "C", mt.f32], yt: mt.Out["C", 8, mt.bf16],
             alpha: mt.Scalar[mt.f32], TC: mt.const = 16, TR: mt.const = 8):
    """Axis-0 max/min with -inf/+inf pads, 1-d tiles, a float read from GM, a scalar
    param, a tile transpose."""
    R, C = x.shape
    for blk in mt.spmd(mt.cdiv(C, TC)):
        c0 = blk * TC
        mx = mt.full((1, TC), float("-inf"))
        mn = mt.full((1, TC), float("inf"))
        s = mt.zeros((TC,))
        for r0 in mt.range(0, R, TR):
            mx = mt.maximum(mx, mt.col_max(
                mt.load(x[r0:r0 + TR, c0:c0 + TC], pad=float("-inf")).astype(mt.f32)))
            mn = mt.minimum(mn, mt.col_min(
                mt.load(x[r0:r0 + TR, c0:c0 + TC], pad=float("inf")).astype(mt.f32)))
            s = s + mt.col_sum(mt.load(x[r0:r0 + TR, c0:c0 + TC]).astype(mt.f32)).reshape(TC)
        mt.store(y[0, c0:c0 + TC], mx.reshape(TC) * sc[0, 0])
        mt.store(y[1:2, c0:c0 + TC], mn * alpha)
        mt.store(y[2, c0:c0 + TC], s)
        mt.store(yt[c0:c0 + TC, 0:8], mt.load(x[0:8, c0:c0 + TC]).T * 2.0)


@pytest.mark.parametrize("r,c", [(13, 21), (1, 1), (3, 40)])
def test_axis0_reductions_pads_transpose_scalars(gen, r, c):
    x = (torch.randn(r, c, generator=gen) * 50).bfloat16()

    def ref(x, sc, y, yt, alpha):
        xf = x.float()
        t = torch.zeros(c, 8, dtype=torch.bfloat16)
        n = min(8, r)
        t[:, :n] = x[:n].T * 2.0
        return torch.stack([xf.amax(0) * sc[0, 0], xf.amin(0) * alpha, xf.sum(0)]), t

    _run(colstats, x, torch.tensor([[0.5]]), torch.empty(3, c),
         torch.empty(c, 8, dtype=torch.bfloat16), -1.5, golden=ref)


@mt.kernel
def tri_count(x: mt.Tensor["N", mt.f32], y: mt.Out[2, mt.f32], n: mt.Scalar[mt.i64]):
    """A carried index scalar through two loop levels, the inner bound from the outer iv."""
    for blk in mt.spmd(1):
        tot = mt.zeros((1,))
        k = blk * 0
        for i in mt.range(0, n):
            inner = mt.zeros((1,))
            for j in mt.range(0, i + 1):
                inner = inner + mt.load(x[j:j + 1])
                k = k + 1
            tot = tot + inner
        mt.store(y[0:1], tot)
        mt.store(y[1:2], mt.zeros((1,)) + mt.to_float(k))


@pytest.mark.parametrize("n", [0, 1, 6])
def test_carried_index_scalar_nested(gen, n):
    x = torch.randn(6, generator=gen)
    want = torch.tensor([float(sum(x[:i + 1].sum() for i in range(n))), n * (n + 1) / 2])
    _run(tri_count, x, torch.empty(2), n, golden=lambda x, y, n: want, rtol=1e-5, atol=1e-5)


@mt.kernel
def where_mix(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.f32], T: mt.const = 16):
    for blk in mt.spmd(mt.cdiv(x.shape[0], T)):
        t = mt.load(x[blk * T:blk * T + T])
        mt.store(y[blk * T:blk * T + T], mt.where(t > 0, 1.0, t) + mt.where(t <= 0, t, -2.0))


def test_where_with_a_scalar_side(gen):
    x = torch.randn(37, generator=gen)
    _run(where_mix, x, torch.empty(37),
         golden=lambda x, y: torch.where(x > 0, 1.0, x) + torch.where(x <= 0, x, -2.0))


# ------------------------------------------------------------------ runtime behaviour

@mt.kernel
def two_out(x: mt.Tensor["N", mt.f32], idx: mt.Tensor[1, mt.i32], y: mt.Out["N", mt.f32],
            z: mt.InOut["N", mt.f32]):
    for blk in mt.spmd(1):
        mt.store(y[0:4], mt.load(x[0:4]))
        mt.store(z[0:4], mt.load(x[0:4]) + 1.0)
        r = idx[0]
        mt.store(z[r:r + 4], mt.load(x[0:4]))  # BAD for r > 4


def test_failed_check_writes_no_output_and_no_inout():
    y, z = torch.full((4,), 7.0), torch.full((4,), 3.0)
    with pytest.raises(mt.OutOfBoundsError) as ei:
        mt.run_jit(two_out, torch.randn(4), torch.tensor([9], dtype=torch.int32), y, z)
    assert f":{_line(two_out, '# BAD')}" in str(ei.value)
    assert torch.all(y == 7.0) and torch.all(z == 3.0)


def test_compile_cache_same_ir_and_new_ir_per_constant():
    from tilelang_models.kernels.vector import softmax

    a, b = mt.compile(softmax, TR=4), mt.compile(softmax, TR=4)
    assert b.kernel is a.kernel and b.from_cache == "memory" and a.ir == b.ir
    assert a.from_cache == ""  # the first result is not changed by the later hit
    c = mt.compile(softmax, TR=2)
    assert c is not a and c.ir != a.ir
    mt.runtime.compiler.clear_memory_cache()
    d = mt.compile(softmax, TR=4)
    assert d.from_cache == "disk" and d.ir == a.ir
    x = torch.randn(7, 30)
    _run(softmax, x, torch.empty(7, 30), TR=4, golden=lambda x, y: torch.softmax(x, -1))


@pytest.mark.parametrize("kern", [gemm_varlen, colstats, tri_count, int_table, two_phase_scale])
def test_ir_after_each_pass_reparses_and_reprints(kern):
    ck = mt.compile(kern)
    assert len(ck.ir_after) >= 5
    for name, text in ck.ir_after.items():
        assert print_kernel(parse_kernel(text)) == text, name


# ------------------------------------------------------------------ user mistakes (caught)

def _k(body):
    @mt.kernel
    def k(x: mt.Tensor["N", "C", mt.f32], y: mt.Out["N", "C", mt.f32]):
        for blk in mt.spmd(1):
            body(x, y, blk)
    return k


X16 = (torch.randn(16, 16), torch.empty(16, 16))
CAUGHT = {
    "reshape_bad_count": lambda x, y, b: mt.load(x[0:16, 0:16]).reshape(16, -1),
    "reduce_axis": lambda x, y, b: mt.reduce(mt.load(x[0:16, 0:16]), mt.ReduceKind.SUM, 5),
    "strided": lambda x, y, b: mt.load(x[0:16:2, 0:16]),
    "range_float": lambda x, y, b: [None for _ in mt.range(0, 4.0)],
    "f32_range_bound": lambda x, y, b: [None for _ in mt.range(0, x[0, 0])],
    "store_scalar": lambda x, y, b: mt.store(y[0, 0], mt.zeros((1,))),
    "int_exp": lambda x, y, b: mt.exp(mt.arange(16)),
    "i32_matmul": lambda x, y, b: mt.matmul(mt.load(x[0:16, 0:16]).astype(mt.i32),
                                            mt.load(x[0:16, 0:16]).astype(mt.i32)),
    "where_float_cond": lambda x, y, b: mt.where(mt.load(x[0:16, 0:16]), 1.0, 2.0),
    "nested_spmd": lambda x, y, b: [mt.store(y[c, 0:16], mt.load(x[c, 0:16]))
                                    for c in mt.spmd(2)],
    "runtime_extent": lambda x, y, b: mt.load(x[b:b * 2, 0:16]),
}


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(r=st.integers(1, 40), c=st.integers(1, 70), tr=st.sampled_from([1, 4, 8]),
       tc=st.sampled_from([8, 16, 64]), seed=st.integers(0, 2**16))
def test_nested_colsum_property(r, c, tr, tc, seed):
    x = torch.randn(r, c, generator=torch.Generator().manual_seed(seed)) * 10
    trips = float(-(-c // tc) * -(-r // tr))
    _run(colsum_nested, x, torch.empty(c), torch.empty(1), TR=tr, TC=tc, rtol=1e-5, atol=1e-4,
         golden=lambda x, y, n: (x.sum(0), torch.tensor([trips])))


@pytest.mark.parametrize("name", sorted(CAUGHT))
def test_user_mistake_is_a_located_mixtile_error(name):
    k = _k(CAUGHT[name])
    with pytest.raises(mt.MixtileError) as ei:
        mt.run_jit(k, *X16)
    assert not isinstance(ei.value, InternalError), str(ei.value)
    assert f"{__file__}:" in str(ei.value), str(ei.value)


# ------------------------------------------------------------------ known bugs

def test_bug_break_in_range_is_reported():
    @mt.kernel
    def brk(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.f32]):
        for blk in mt.spmd(1):
            mt.store(y[0:16], mt.zeros((16,)))
            for i in mt.range(0, 4):
                mt.store(y[0:16], mt.load(x[0:16]))
                break

    with pytest.raises(mt.TraceError, match="break"):
        mt.compile(brk)


def test_bug_error_in_range_body_emits_no_unraisable(monkeypatch):
    import sys

    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_value))

    @mt.kernel
    def bad(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.f32]):
        for blk in mt.spmd(1):
            acc = mt.zeros((16,))
            for i in mt.range(0, 4):
                acc = acc + mt.load(x[0:8])
            mt.store(y[0:16], acc)

    with pytest.raises(mt.TraceError, match="do not broadcast"):
        mt.compile(bad)
    assert not seen, seen


def test_bug_stale_affine_form_after_loop():
    @mt.kernel
    def k(x: mt.Tensor["N", mt.f32], y: mt.Out[4, mt.f32]):
        for blk in mt.spmd(1):
            a = blk + 0
            for i in mt.range(0, 3):
                a = a + 1
            t = mt.load(x[blk:a])  # runtime extent 3, not a compile-time constant
            mt.store(y[0:t.shape[0]], t)

    with pytest.raises(mt.TraceError, match="not a compile-time constant"):
        mt.compile(k)


def test_bug_carried_dim_redirects_other_dim_uses():
    @mt.kernel
    def k(x: mt.Tensor["N", mt.f32], y: mt.Out[1, mt.f32]):
        for blk in mt.spmd(1):
            n = x.shape[0]
            for i in mt.range(0, 3):
                n = n + x.shape[0]
            mt.store(y[0:1], mt.zeros((1,)) + mt.to_float(n))

    _run(k, torch.randn(5), torch.empty(1), golden=lambda x, y: torch.tensor([20.0]))


def test_bug_int_tile_times_float_constant():
    @mt.kernel
    def k(x: mt.Tensor["N", mt.i32], y: mt.Out["N", mt.i32]):
        for blk in mt.spmd(1):
            mt.store(y[0:4], mt.load(x[0:4]) * 0.5)

    x = torch.tensor([2, 4, 6, 8], dtype=torch.int32)
    y = torch.empty(4, dtype=torch.int32)
    try:  # either an error at trace time or the right values is acceptable
        mt.run_jit(k, x, y)
    except mt.TraceError:
        return
    assert torch.equal(y, x // 2), y


def test_bug_true_division_of_index_values():
    @mt.kernel
    def k(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.f32]):
        for blk in mt.spmd(2):
            o = blk * 8 / 2
            mt.store(y[blk * 4:blk * 4 + 4], mt.load(x[o:o + 4]))

    with pytest.raises(mt.TraceError, match="//"):
        mt.run_jit(k, torch.randn(8), torch.empty(8))


def test_bug_i32_scalar_param_as_offset(gen):
    @mt.kernel
    def k(x: mt.Tensor["N", mt.f32], y: mt.Out[4, mt.f32], off: mt.Scalar[mt.i32]):
        for blk in mt.spmd(1):
            o = off + blk
            mt.store(y[0:4], mt.load(x[o:o + 4]))

    x = torch.randn(8, generator=gen)
    _run(k, x, torch.empty(4), 2, golden=lambda x, y, o: x[2:6])


def test_bug_fix_names_existing_api():
    @mt.kernel
    def k(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.f32]):
        for blk in mt.spmd(1):
            s = mt.to_float(x.shape[0]) * blk
            mt.store(y[0:4], mt.load(x[0:4]) * s)

    with pytest.raises(mt.TraceError) as ei:
        mt.compile(k)
    assert "to_index" not in str(ei.value) or hasattr(mt, "to_index")


@mt.kernel
def signed(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.f32], S: mt.const = 1.0):
    for blk in mt.spmd(1):
        mt.store(y[0:4], mt.load(x[0:4]) * math.copysign(1.0, S))


def test_bug_cache_distinguishes_equal_comparing_constants():
    mt.compile(signed, S=0.0)
    assert mt.compile(signed, S=-0.0).from_cache == ""
    _run(signed, torch.ones(4), torch.empty(4), S=-0.0, golden=lambda x, y: -x)


def test_bug_where_with_scalars_on_both_sides(gen):
    k = _k(lambda x, y, b: mt.store(y[0:16, 0:16],
                                    mt.where(mt.load(x[0:16, 0:16]) > 0, 1.0, -1.0)))
    _run(k, *X16, golden=lambda x, y: torch.sign(x))


RAW = {  # user mistakes that currently escape as raw or "internal bug" errors
    "load_space_str": lambda x, y, b: mt.store(y[0:16, 0:16],
                                               mt.load(x[0:16, 0:16], space="UB")),
    "astype_str": lambda x, y, b: mt.store(y[0:16, 0:16], mt.load(x[0:16, 0:16]).astype("f32")),
    "pad_none": lambda x, y, b: mt.store(y[0:16, 0:16], mt.load(x[0:16, 0:16], pad=None)),
    "move_to_gm": lambda x, y, b: mt.store(y[0:16, 0:16], mt.move(mt.load(x[0:16, 0:16]), mt.GM)),
    "full_in_gm": lambda x, y, b: mt.store(y[0:16, 0:16], mt.full((16, 16), 1.0, space=mt.GM)),
    "reshape_float": lambda x, y, b: mt.store(y[0:16, 0:16],
                                              mt.load(x[0:16, 0:16]).reshape(16.0, 16)),
    "reduce_kind_str": lambda x, y, b: mt.store(y[0:16, 0:1],
                                                mt.reduce(mt.load(x[0:16, 0:16]), "sum", 1)),
    "cdiv_tile": lambda x, y, b: mt.cdiv(mt.load(x[0:16, 0:16]), 2),
    "smin_tile": lambda x, y, b: mt.store(y[0:16, 0:16], mt.smin(mt.load(x[0:16, 0:16]), 3) * 2.0),
    "to_float_tile": lambda x, y, b: mt.store(
        y[0:16, 0:16], mt.load(x[0:16, 0:16]) * mt.to_float(mt.load(x[0:16, 0:16]))),
}


@pytest.mark.parametrize("name", sorted(RAW))
def test_bug_user_mistake_escapes_raw(name):
    k = _k(RAW[name])
    with pytest.raises(mt.MixtileError) as ei:
        mt.run_jit(k, *X16)
    msg = str(ei.value)
    assert not isinstance(ei.value, (InternalError, mt.VerifyError)), msg
    assert "bug in mixtile" not in msg and f"{__file__}:" in msg, msg


def test_bug_golden_returning_none():
    from tilelang_models.kernels.vector import softmax

    with pytest.raises(mt.ArgumentError):
        mt.run_jit(softmax, torch.randn(2, 8), torch.empty(2, 8), golden=lambda x, y: None)


def test_bug_compare_matching_infs_report_zero_error():
    from mixtile.runtime.golden import compare

    c = compare("y", torch.tensor([float("inf"), 1.0]), torch.tensor([float("inf"), 1.0]),
                None, None)
    assert c.passed and c.max_abs_err == 0.0, str(c)


def test_bug_runtime_pad_message():
    @mt.kernel
    def k(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.f32], a: mt.Scalar[mt.f32]):
        for blk in mt.spmd(1):
            mt.store(y[0:16], mt.load(x[0:16], pad=a))

    with pytest.raises(mt.TraceError, match="pad"):
        mt.compile(k)
