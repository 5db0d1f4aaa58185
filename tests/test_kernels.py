"""Example kernels vs torch on fresh random inputs, ragged shapes included."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mixtile as mt
from tilelang_models.kernels import gemm as G
from tilelang_models.kernels import vector as V

SHAPES = [(64, 128, 128), (100, 300, 200), (1, 17, 33), (130, 129, 257)]


def _gemm_inputs(gen, m, n, k):
    x = torch.randn(m, k, generator=gen).to(torch.bfloat16)
    w = (torch.randn(n, k, generator=gen) / k ** 0.5).to(torch.bfloat16)
    bias = torch.randn(n, generator=gen)
    return x, w, bias


def _ref(x, w):
    return x.float() @ w.float().T


@pytest.mark.parametrize("m,n,k", SHAPES)
def test_gemm_plain(gen, m, n, k):
    x, w, _ = _gemm_inputs(gen, m, n, k)
    y = torch.empty(m, n)
    res = mt.run_jit(G.gemm, x, w, y, golden=lambda x, w, y: _ref(x, w))
    assert res.passed, str(res)


EPILOGUES = {
    "bias": (G.gemm_bias, lambda h: h),
    "bias_relu": (G.gemm_bias_relu, torch.relu),
    "bias_relu_bf16": (G.gemm_bias_relu_bf16, lambda h: torch.relu(h).bfloat16()),
}


@pytest.mark.parametrize("name", sorted(EPILOGUES))
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_gemm_bias_epilogues(gen, name, m, n, k):
    kern, post = EPILOGUES[name]
    x, w, bias = _gemm_inputs(gen, m, n, k)
    out_dtype = torch.bfloat16 if name.endswith("bf16") else torch.float32
    y = torch.empty(m, n, dtype=out_dtype)
    res = mt.run_jit(kern, x, w, bias, y, golden=lambda x, w, b, y: post(_ref(x, w) + b))
    assert res.passed, str(res)


@pytest.mark.parametrize("kern,dt", [(G.gemm_cast_bf16, torch.bfloat16),
                                     (G.gemm_cast_f16, torch.float16)])
@pytest.mark.parametrize("m,n,k", SHAPES[1:3])
def test_gemm_cast(gen, kern, dt, m, n, k):
    x, w, bias = _gemm_inputs(gen, m, n, k)
    y = torch.empty(m, n, dtype=dt)
    res = mt.run_jit(kern, x, w, bias, y, golden=lambda x, w, b, y: _ref(x, w).to(dt))
    assert res.passed, str(res)


@pytest.mark.parametrize("name", ["gemm", "gemm_bias_relu_bf16", "gemm_splitk"])
def test_gemm_kernels_are_cube_only_with_fixpipe(name):
    from mixtile.ir.types import CoreType

    ck = mt.compile(getattr(G, name))
    assert ck.kernel.attrs["core"] is CoreType.AIC
    names = {op.name for op in ck.kernel.walk()}
    assert "fixpipe" in names and "store" not in names
    assert not names & {"add", "relu", "cast"}, names  # the epilogue went into FIXPIPE


@pytest.mark.parametrize("m,n,k,split", [(64, 128, 512, 4), (37, 70, 300, 3), (5, 9, 17, 2)])
def test_gemm_splitk_atomic_add(gen, m, n, k, split):
    x, w, _ = _gemm_inputs(gen, m, n, k)
    resid = torch.randn(m, n, generator=gen)
    y = resid.clone()
    res = mt.run_jit(G.gemm_splitk, x, w, y, SPLIT=split,
                     golden=lambda x, w, y: y + _ref(x, w), rtol=1e-4, atol=1e-4)
    assert res.passed, str(res)


@pytest.mark.parametrize("r,h", [(5, 100), (17, 256), (1, 1)])
def test_rmsnorm(gen, r, h):
    x = torch.randn(r, h, generator=gen).bfloat16()
    w = torch.randn(h, generator=gen).bfloat16()
    y = torch.empty(r, h, dtype=torch.bfloat16)
    eps = 1e-6

    def ref(x, w, y, eps):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * w.float()).bfloat16()

    res = mt.run_jit(V.rmsnorm, x, w, y, eps, golden=ref)
    assert res.passed, str(res)


@pytest.mark.parametrize("r,c", [(10, 200), (3, 256), (9, 1)])
def test_softmax(gen, r, c):
    x = torch.randn(r, c, generator=gen) * 3
    y = torch.empty(r, c)
    res = mt.run_jit(V.softmax, x, y, golden=lambda x, y: torch.softmax(x, -1))
    assert res.passed, str(res)


@pytest.mark.parametrize("r,c", [(33, 300), (16, 256), (1, 7)])
def test_silu_mul(gen, r, c):
    g = torch.randn(r, c, generator=gen).bfloat16()
    u = torch.randn(r, c, generator=gen).bfloat16()
    y = torch.empty(r, c, dtype=torch.bfloat16)
    ref = lambda g, u, y: (torch.nn.functional.silu(g.float()) * u.float()).bfloat16()  # noqa
    res = mt.run_jit(V.silu_mul, g, u, y, golden=ref)
    assert res.passed, str(res)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.integers(1, 70), n=st.integers(1, 70), k=st.integers(1, 90),
       tm=st.sampled_from([16, 32, 64]), tn=st.sampled_from([16, 32, 64]),
       tk=st.sampled_from([16, 32, 64]), seed=st.integers(0, 2**16))
def test_gemm_property_shapes_and_tiles(m, n, k, tm, tn, tk, seed):
    gen = torch.Generator().manual_seed(seed)
    x, w, bias = _gemm_inputs(gen, m, n, k)
    y = torch.empty(m, n)
    res = mt.run_jit(G.gemm_bias_relu, x, w, bias, y, TM=tm, TN=tn, TK=tk,
                     golden=lambda x, w, b, y: torch.relu(_ref(x, w) + b))
    assert res.passed, str(res)


@settings(max_examples=15, deadline=None)
@given(r=st.integers(1, 40), c=st.integers(1, 128), tr=st.sampled_from([1, 4, 8]),
       seed=st.integers(0, 2**16))
def test_softmax_property(r, c, tr, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(r, c, generator=gen) * 4
    y = torch.empty(r, c)
    res = mt.run_jit(V.softmax, x, y, TR=tr, TC=128, golden=lambda x, y: torch.softmax(x, -1))
    assert res.passed, str(res)
