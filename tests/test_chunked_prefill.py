"""Chunked prefill over the paged KV cache (tilelang_models/qwen3/chunked.py) against an
independent torch reference (reference.py: chunked_prefill_ref), on the simulator, through
Triton and as Ascend C; one new token per sequence against fa_fused."""
import os
import shutil

import pytest
import torch

if not torch.cuda.is_available():  # Triton's CPU interpreter runs the cuda target
    os.environ["TRITON_INTERPRET"] = "1"

import mixtile as mt  # noqa: E402
from tilelang_models.qwen3 import chunked as C  # noqa: E402
from tilelang_models.qwen3 import kernels as Q  # noqa: E402
from tilelang_models.qwen3.config import Qwen3Config  # noqa: E402
from tilelang_models.qwen3.paged import make_paged_cache  # noqa: E402
from tilelang_models.qwen3.reference import chunked_prefill_ref  # noqa: E402

EPS, THETA = 1e-6, 1e6


def _case(new, ctx, hq, kvh, d, bs, gen, dtype=torch.bfloat16, seed=3):
    """(qkv, cu_q, ctx_lens, q_norm, k_norm, block_table, k_cache, v_cache, out)."""
    cfg = Qwen3Config("t", 64, 64, hq, kvh, d, EPS, THETA)
    lens = [c + n for c, n in zip(ctx, new)]
    kc, vc, bt, _ = make_paged_cache(cfg, lens, bs, seed, cached=ctx)
    cu_q = torch.tensor([0, *torch.tensor(new).cumsum(0).tolist()], dtype=torch.int32)
    qkv = torch.randn(int(cu_q[-1]), hq + 2 * kvh, d, generator=gen).to(dtype)
    qn = (1 + 0.1 * torch.randn(d, generator=gen)).to(dtype)
    kn = (1 + 0.1 * torch.randn(d, generator=gen)).to(dtype)
    out = torch.full((int(cu_q[-1]), hq, d), float("nan"), dtype=dtype)
    ctx_lens = torch.tensor(ctx, dtype=torch.int32)
    return qkv, cu_q, ctx_lens, qn, kn, bt, kc.to(dtype), vc.to(dtype), out


def _run(args, hq, kvh, d, bs, tm=32, f16=False, **kw):
    """Both launches: the cache write, then the attention; returns out (args updated)."""
    qkv, cu_q, ctx_lens, qn, kn, bt, kc, vc, out = args
    max_q = int((cu_q[1:] - cu_q[:-1]).max())
    consts = dict(HQ=hq, KVH=kvh, D=d, BS=bs, eps=EPS, theta=THETA)
    write, attend = ((C.chunked_kv_write_f16, C.chunked_attention_f16) if f16
                     else (C.chunked_kv_write, C.chunked_attention))
    mt.run_jit(write, qkv, cu_q, ctx_lens, kn, bt, kc, vc, max_q, **consts, **kw)
    mt.run_jit(attend, qkv, cu_q, ctx_lens, qn, bt, kc, vc, out, max_q, TM=tm, **consts, **kw)
    return out


def _want(args, hq):
    """The reference's output and caches, on copies of the inputs."""
    qkv, cu_q, ctx_lens, qn, kn, bt, kc, vc, _ = args
    kc, vc = kc.clone(), vc.clone()
    o = chunked_prefill_ref(qkv, cu_q, ctx_lens, qn, kn, kc, vc, bt, hq, EPS, THETA)
    return o, kc, vc


def _close(got, want, tol=2e-2):
    err = (got.float() - want.float()).abs()
    assert bool((err <= tol + tol * want.float().abs()).all()), float(err.max())


CASES = [  # (new tokens, context lengths, HQ, KVH, D, BS)
    ([1, 5, 37, 0], [0, 3, 40, 100], 4, 2, 64, 16),
    ([1, 5, 37, 0], [0, 3, 40, 100], 8, 2, 64, 32),
    ([37, 1, 0, 5], [100, 40, 3, 0], 8, 2, 64, 16),
    ([64, 3, 1], [0, 17, 31], 2, 2, 128, 16),  # a whole TM of rows from position 0; hd 128
    # BS 128: the cache write takes a page in 32-row steps, from slots 13, 0 and 127
    ([5, 170, 2], [13, 0, 127], 4, 2, 64, 128),
]


@pytest.mark.parametrize("new,ctx,hq,kvh,d,bs", CASES)
def test_chunked_prefill_on_the_simulator(new, ctx, hq, kvh, d, bs, gen):
    args = _case(new, ctx, hq, kvh, d, bs, gen)
    want, kc, vc = _want(args, hq)
    k0 = args[6].clone()
    got = _run(args, hq, kvh, d, bs)
    _close(got, want)
    # the new k/v at their slots (k within a bf16 step of the reference's), the rest as it was
    new_slot = torch.zeros(k0.shape[:2], dtype=torch.bool)
    for b, (c, n) in enumerate(zip(ctx, new)):
        pos = torch.arange(c, c + n)
        new_slot[args[5][b].long()[pos // bs], pos % bs] = True
    assert int(new_slot.sum()) == sum(new)
    assert torch.equal(args[7], vc)
    _close(args[6][new_slot], kc[new_slot], 1e-2)
    assert torch.equal(args[6][~new_slot], k0[~new_slot])


def test_one_new_token_per_sequence_is_a_decode_step_like_fa_fused(gen):
    hq, kvh, d, bs = 4, 2, 64, 16
    ctx = [0, 15, 16, 40, 100]
    args = _case([1] * len(ctx), ctx, hq, kvh, d, bs, gen)
    qkv, cu_q, ctx_lens, qn, kn, bt, kc, vc, out = args
    kc2, vc2 = kc.clone(), vc.clone()
    got = _run(args, hq, kvh, d, bs)
    dec = torch.zeros(len(ctx), hq, d, dtype=torch.bfloat16)
    mt.run_jit(Q.fa_fused, qkv, qn, kn, kc2, vc2, bt, ctx_lens + 1, dec, HQ=hq, KVH=kvh,
               D=d, BS=bs, eps=EPS, theta=THETA, NSPLIT=2)
    _close(got, dec)
    _close(kc, kc2, 1e-2)
    assert torch.equal(vc, vc2)


def test_chunked_attention_is_a_mixed_kernel():
    ck = mt.compile(C.chunked_attention, HQ=4, KVH=2, D=64, BS=16, TM=32)
    assert ck.kernel.core is mt.CoreType.MIX


@pytest.mark.parametrize("bs,new,ctx", [(16, [1, 5, 37], [0, 3, 40]),
                                         (128, [5, 70, 2], [13, 0, 127])])  # 32-row steps
def test_chunked_prefill_through_triton(gen, bs, new, ctx):
    """Triton's interpreter on f16 (its bf16 dot is wrong), against the reference."""
    pytest.importorskip("triton")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    hq, kvh, d = 4, 2, 64
    args = _case(new, ctx, hq, kvh, d, bs, gen, dtype=torch.float16)
    want, kc, _ = _want(args, hq)
    got = [a.clone().to(dev) for a in args]
    _run(got, hq, kvh, d, bs, f16=True, target="cuda")
    _close(got[8].cpu(), want)
    _close(got[6].cpu(), kc, 1e-2)


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
@pytest.mark.parametrize("arch", ["a2", "a5"])
def test_chunked_prefill_as_ascend_c_runs_like_the_simulator(arch, gen, tmp_path):
    from test_ascendc_cpu import run_cpu

    hq, kvh, d, bs = 4, 2, 64, 16
    args = _case([1, 5, 37], [0, 3, 40], hq, kvh, d, bs, gen, dtype=torch.float16)
    sim = [a.clone() for a in args]
    _run(sim, hq, kvh, d, bs, f16=True, compile_cfg={"arch": arch})
    qkv, cu_q, ctx_lens, qn, kn, bt, kc, vc, out = args
    consts = dict(HQ=hq, KVH=kvh, D=d, BS=bs, eps=EPS, theta=THETA)
    (tmp_path / "w").mkdir()
    (tmp_path / "a").mkdir()
    w = run_cpu(C.chunked_kv_write_f16, [qkv, cu_q, ctx_lens, kn, bt, kc, vc, 37],
                tmp_path / "w", arch=arch, **consts)
    kc, vc = w[5], w[6]
    a = run_cpu(C.chunked_attention_f16, [qkv, cu_q, ctx_lens, qn, bt, kc, vc, out, 37],
                tmp_path / "a", arch=arch, TM=32, **consts)
    _close(kc, sim[6], 1e-2)
    _close(a[7], sim[8], 1e-2)
