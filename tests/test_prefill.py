"""Causal varlen flash attention (tilelang_models/kernels/prefill.py) against an
independent torch reference, on the simulator, through Triton and as Ascend C."""
import math
import os
import shutil

import pytest
import torch

if not torch.cuda.is_available():  # Triton's CPU interpreter runs the cuda target
    os.environ["TRITON_INTERPRET"] = "1"

import mixtile as mt  # noqa: E402
from tilelang_models.kernels.prefill import fmha_prefill, fmha_prefill_f16  # noqa: E402


def varlen_ref(q, k, v, cu_q, cu_k, scale, window=0):
    """Per sequence and head, fp32: keys j <= i + Lk - Lq (bottom-right causal), and
    j > i + Lk - Lq - window with a window; a row that sees no key gives 0."""
    out = torch.zeros(q.shape, dtype=torch.float32)
    group = q.shape[1] // k.shape[1]
    for b in range(len(cu_q) - 1):
        q0, q1, k0, k1 = (int(x) for x in (cu_q[b], cu_q[b + 1], cu_k[b], cu_k[b + 1]))
        lq, lk = q1 - q0, k1 - k0
        i, j = torch.arange(lq)[:, None], torch.arange(lk)[None, :]
        ok = j <= i + (lk - lq)
        if window:
            ok &= j > i + (lk - lq) - window
        for h in range(q.shape[1]):
            s = (q[q0:q1, h].float() @ k[k0:k1, h // group].float().T) * scale
            p = torch.softmax(s.masked_fill(~ok, float("-inf")), -1).nan_to_num(0.0)
            out[q0:q1, h] = p @ v[k0:k1, h // group].float()
    return out


def _case(lq, lk, hq, kvh, d, gen, dtype=torch.bfloat16, device="cpu"):
    cu_q = torch.tensor([0, *torch.tensor(lq).cumsum(0).tolist()], dtype=torch.int32)
    cu_k = torch.tensor([0, *torch.tensor(lk).cumsum(0).tolist()], dtype=torch.int32)
    q = torch.randn(int(cu_q[-1]), hq, d, generator=gen).to(dtype)
    k = torch.randn(int(cu_k[-1]), kvh, d, generator=gen).to(dtype)
    v = torch.randn(int(cu_k[-1]), kvh, d, generator=gen).to(dtype)
    out = torch.full(q.shape, float("nan"), dtype=dtype)
    return [t.to(device) for t in (q, k, v, cu_q, cu_k, out)]


CASES = [  # (query lengths, key lengths, HQ, KVH, D, window)
    ([1, 5, 127, 129], [1, 5, 127, 129], 4, 4, 64, 0),  # equal
    ([5, 129, 1], [40, 200, 1], 8, 2, 64, 0),  # keys longer (cached context)
    ([1, 33, 20], [1, 30, 3], 8, 2, 128, 0),  # keys shorter: early rows see nothing
    ([127, 0, 40], [127, 9, 70], 4, 2, 64, 32),  # sliding window; an empty sequence
]


@pytest.mark.parametrize("lq,lk,hq,kvh,d,window", CASES)
def test_fmha_prefill_on_the_simulator(lq, lk, hq, kvh, d, window, gen):
    q, k, v, cu_q, cu_k, out = _case(lq, lk, hq, kvh, d, gen)
    scale = 1 / math.sqrt(d)
    res = mt.run_jit(fmha_prefill, q, k, v, cu_q, cu_k, out, max(lq), scale, TM=32, TN=32,
                     D=d, HQ=hq, KVH=kvh, WINDOW=window, rtol=2e-2, atol=2e-2,
                     golden=lambda q, k, v, cq, ck, o, mq, sc: varlen_ref(
                         q, k, v, cq, ck, sc, window).bfloat16())
    assert res.passed, str(res)
    assert torch.isfinite(out.float()).all()  # rows that see no key are 0, never NaN


def test_fmha_prefill_is_a_mixed_kernel_that_skips_blocks_above_the_diagonal(gen):
    """Key tiles entirely above the diagonal are never read: NaN values there do not
    reach the rows before them (a masked tile would: 0 * NaN in P @ V)."""
    ck = mt.compile(fmha_prefill, TM=32, TN=32, D=64, HQ=4, KVH=2)
    assert ck.kernel.core is mt.CoreType.MIX
    q, k, v, cu_q, cu_k, out = _case([64], [64], 1, 1, 64, gen)
    v[32:] = float("nan")
    mt.run_jit(fmha_prefill, q, k, v, cu_q, cu_k, out, 64, 0.125, TM=32, TN=32, D=64,
               HQ=1, KVH=1)
    assert torch.isfinite(out[:32].float()).all() and torch.isnan(out[32:].float()).all()


def test_fmha_prefill_through_triton(gen):
    """Triton's interpreter on f16 (its bf16 dot is wrong): against the simulator's f16
    run and the reference."""
    pytest.importorskip("triton")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    lq, lk = [1, 37, 70], [1, 50, 70]
    args = _case(lq, lk, 4, 2, 64, gen, dtype=torch.float16)
    want = varlen_ref(*args[:5], 0.125).half()
    sim = [a.clone() for a in args]
    mt.run_jit(fmha_prefill_f16, *sim, max(lq), 0.125, TM=32, TN=32, D=64, HQ=4, KVH=2)
    got = [a.clone().to(dev) for a in args]
    mt.run_jit(fmha_prefill_f16, *got, max(lq), 0.125, target="cuda", TM=32, TN=32, D=64,
               HQ=4, KVH=2)
    assert torch.allclose(got[5].cpu().float(), want.float(), atol=2e-2, rtol=2e-2)
    assert torch.allclose(got[5].cpu().float(), sim[5].float(), atol=2e-2, rtol=2e-2)


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
@pytest.mark.parametrize("arch", ["a2", "a5"])
def test_fmha_prefill_as_ascend_c_runs_like_the_simulator(arch, gen, tmp_path):
    from test_ascendc_cpu import run_cpu

    lq, lk = [1, 37, 70], [1, 50, 70]
    args = _case(lq, lk, 4, 2, 64, gen, dtype=torch.float16)
    sim = [a.clone() for a in args]
    mt.run_jit(fmha_prefill_f16, *sim, max(lq), 0.125, compile_cfg={"arch": arch}, TM=32,
               TN=32, D=64, HQ=4, KVH=2)
    got = run_cpu(fmha_prefill_f16, [*args, max(lq), 0.125], tmp_path, arch=arch, TM=32,
                  TN=32, D=64, HQ=4, KVH=2)
    assert torch.allclose(got[5].float(), sim[5].float(), atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("d", [256, 512])
def test_fmha_prefill_large_head_dims_compile_for_every_backend(d, gen):
    for target in ("sim", "npu", "cuda"):
        if target == "cuda":
            pytest.importorskip("triton")
        ck = mt.compile(fmha_prefill, target=target, TM=16, TN=32, D=d, HQ=2, KVH=1)
        assert ck.code
    q, k, v, cu_q, cu_k, out = _case([3, 20], [3, 20], 2, 1, d, gen)
    res = mt.run_jit(fmha_prefill, q, k, v, cu_q, cu_k, out, 20, 1 / math.sqrt(d), TM=16,
                     TN=32, D=d, HQ=2, KVH=1, rtol=2e-2, atol=2e-2,
                     golden=lambda q, k, v, cq, ck, o, mq, sc: varlen_ref(
                         q, k, v, cq, ck, sc).bfloat16())
    assert res.passed, str(res)
