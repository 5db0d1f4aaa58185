"""The Qwen3 decode layer on the simulator vs the torch reference: tiny config, a
checkpoint read back from disk, the CLI, and the real Qwen3-14B shapes."""
import json

import numpy as np
import pytest
import torch

import mixtile as mt
from tilelang_models.qwen3 import __main__ as cli
from tilelang_models.qwen3.config import get_config
from tilelang_models.qwen3.decode_layer import DecodeLayer
from tilelang_models.qwen3.paged import make_paged_cache
from tilelang_models.qwen3.reference import decode_layer_ref
from tilelang_models.qwen3.weights import random_weights, save_hf_checkpoint


def _step(cfg, w, lens, bs, seed, **layer_kw):
    k, v, bt, sl = make_paged_cache(cfg, lens, bs, seed)
    x = torch.randn(len(lens), cfg.hidden_size, generator=torch.Generator().manual_seed(seed))
    x = x.bfloat16()
    k_ref, v_ref = k.clone(), v.clone()
    want = decode_layer_ref(cfg, w, x, k_ref, v_ref, bt, sl)
    out = DecodeLayer(cfg, w, progress=False, **layer_kw)(x, k, v, bt, sl)
    return out, want, (k, k_ref), (v, v_ref)


def _close(got, want, rel=2e-2):
    scale = want.float().abs().max()
    return float((got.float() - want.float()).abs().max()) <= rel * float(scale)


@pytest.mark.parametrize("lens,bs", [([37, 5, 1], 16), ([64], 16), ([100, 17, 33, 64], 8)])
def test_tiny_layer_vs_reference(lens, bs):
    cfg = get_config("tiny")
    w = random_weights(cfg, seed=len(lens))
    out, want, (k, kr), (v, vr) = _step(cfg, w, lens, bs, seed=bs)
    assert _close(out, want)
    assert _close(k, kr) and torch.equal(v, vr)  # v is written unchanged, k after norm+RoPE


@pytest.mark.parametrize("lens,bs", [([37, 5, 1], 16), ([100, 17, 33, 64], 8)])
def test_tiny_layer_with_norm_stats_vs_reference(lens, bs):
    """The GPU's O projection + MLP pair (row sums of squares handed from one kernel to the
    next) and the norm weights folded into the projections, on the simulator: same results
    within the layer's tolerance. v is not bit-equal: the fold rounds W * g to bf16 where
    the reference rounds the normalised x (and the row scale comes after the sum)."""
    cfg = get_config("tiny")
    w = random_weights(cfg, seed=len(lens))
    out, want, (k, kr), (v, vr) = _step(cfg, w, lens, bs, seed=bs, norm_stats=True)
    assert _close(out, want)
    assert _close(k, kr) and _close(v, vr, rel=1e-2)


def test_two_layers_hand_row_sums_of_squares_on():
    """norm_stats chained as in a model: layer 1's down projection writes out_ssq (the
    row sums of out^2 in per-tile partials), layer 2's QKV projection reads them as x_ssq
    instead of a pass over x. Both layers against the reference, on their own caches."""
    cfg = get_config("tiny")
    lens, bs = [29, 16, 3], 8
    w1, w2 = random_weights(cfg, seed=11), random_weights(cfg, seed=12)
    c1, c2 = make_paged_cache(cfg, lens, bs, 1), make_paged_cache(cfg, lens, bs, 2)
    r1, r2 = [t.clone() for t in c1[:2]], [t.clone() for t in c2[:2]]
    x = torch.randn(len(lens), cfg.hidden_size,
                    generator=torch.Generator().manual_seed(5)).bfloat16()
    l1 = DecodeLayer(cfg, w1, progress=False, norm_stats=True)
    l2 = DecodeLayer(cfg, w2, progress=False, norm_stats=True)
    h = l1(x, *c1).clone()
    ssq = l1.out_ssq.clone()
    assert torch.allclose(ssq.sum(1), h.float().pow(2).sum(1), rtol=1e-5)
    assert torch.allclose(l1.input_ssq(h), ssq, rtol=1e-5)  # the same partials
    out = l2(h, *c2, x_ssq=ssq)
    want_h = decode_layer_ref(cfg, w1, x, *r1, *c1[2:])
    want = decode_layer_ref(cfg, w2, want_h, *r2, *c2[2:])
    assert _close(h, want_h) and _close(out, want, rel=3e-2)
    assert _close(c2[0], r2[0]) and _close(c2[1], r2[1])  # from h, not the reference h
    # the plain layer (no norm_stats) ignores x_ssq and makes its own pass
    plain = DecodeLayer(cfg, w2, progress=False, norm_stats=False)
    c3 = make_paged_cache(cfg, lens, bs, 2)
    assert _close(plain(h, *c3, x_ssq=ssq), out, rel=1e-2)
    assert plain.out_ssq is None


def test_decode_layer_function_reuses_one_layer():
    from tilelang_models.qwen3.decode_layer import _layers, decode_layer

    cfg = get_config("tiny")
    w = random_weights(cfg, seed=2)
    k, v, bt, sl = make_paged_cache(cfg, [12, 30], 16, 4)
    x = torch.randn(2, cfg.hidden_size).bfloat16()
    k_ref, v_ref = k.clone(), v.clone()
    want = decode_layer_ref(cfg, w, x, k_ref, v_ref, bt, sl)
    out = decode_layer(cfg, w, x, k, v, bt, sl)
    assert _close(out, want)
    n = len(_layers)
    decode_layer(cfg, w, x, k, v, bt, sl + 1)
    assert len(_layers) == n


def test_buffers_are_reused_across_steps():
    cfg = get_config("tiny")
    w = random_weights(cfg, seed=0)
    layer = DecodeLayer(cfg, w, progress=False)
    k, v, bt, sl = make_paged_cache(cfg, [20, 9], 16, 1)
    x = torch.randn(2, cfg.hidden_size).bfloat16()
    first = layer(x, k, v, bt, sl)
    ptr = first.data_ptr()
    second = layer(x, k, v, bt, sl + 1)  # the next token of each sequence
    assert second.data_ptr() == ptr and len(layer._bufs) == 1


def test_hf_checkpoint_layer(tmp_path):
    cfg = get_config("tiny")
    layers = {0: random_weights(cfg, seed=5), 1: random_weights(cfg, seed=6)}
    save_hf_checkpoint(tmp_path, cfg, layers, shards=2)
    res = cli.run(["--hf-dir", str(tmp_path), "--layer", "1", "--batch", "2", "--seq", "40"])
    assert res["passed"], res


def test_cli_json_and_save(tmp_path, capsys):
    path = tmp_path / "step.npz"
    code = cli.main(["--config", "tiny", "--batch", "3", "--seq", "50", "--save", str(path),
                     "--seed", "3"])
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and line["passed"]
    assert set(line) == {"config", "target", "batch", "seq", "max_abs_err", "rel_err",
                         "passed", "compile_s", "run_s"}
    z = np.load(path)
    assert set(z.files) == {"x", "out", "seq_lens", "block_table", "k_cache", "v_cache"}
    assert z["out"].shape == (3, 256) and z["seq_lens"].max() == 50


def test_cli_exits_nonzero_on_mismatch(monkeypatch, capsys):
    real = cli.decode_layer_ref

    def wrong(*a):
        return real(*a) + 1.0  # a golden the kernels cannot match

    monkeypatch.setattr(cli, "decode_layer_ref", wrong)
    assert cli.main(["--config", "tiny", "--batch", "2", "--seq", "20"]) == 1
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["passed"] is False


def test_qwen3_14b_shapes_batch16_seq4096():
    """The real Qwen3-14B layer shapes: hidden 5120, 40/8 heads, intermediate 17408."""
    res = cli.run(["--config", "14b", "--batch", "16", "--seq", "4096", "--block-size",
                   "128"])
    assert res["passed"], res


def test_layer_kernels_are_mixed_where_fused():
    cfg = get_config("tiny")
    layer = DecodeLayer(cfg, random_weights(cfg, 0), progress=False)
    cores = [mt.compile(k, **c).kernel.attrs["core"] for k, c in layer.kernels(4, 16)]
    assert all(c is mt.CoreType.MIX for c in cores)


def test_unwritten_cache_slots_are_never_read():
    """The new token's slot and the last pages' tails hold NaN: attention reads pages only
    up to the new token's position (mt.load rows=), so the output is the one a clean
    cache gives, and the new k/v land in their slots."""
    from tilelang_models.qwen3.paged import GARBAGE

    cfg = get_config("tiny")
    w = random_weights(cfg, seed=4)
    lens = [17, 16, 1, 40]  # a new page, a full page, the first token, a mid-page token
    k, v, bt, sl = make_paged_cache(cfg, lens, 8, 6)
    x = torch.randn(len(lens), cfg.hidden_size,
                    generator=torch.Generator().manual_seed(6)).bfloat16()
    kr, vr = k.clone(), v.clone()
    want = decode_layer_ref(cfg, w, x, kr, vr, bt, sl)
    new = (k == GARBAGE) & (kr != GARBAGE)  # the new tokens' slots (written by the step)
    assert int(new.sum()) == len(lens) * cfg.num_key_value_heads * cfg.head_dim
    k[k == GARBAGE] = float("nan")
    v[v == GARBAGE] = float("nan")
    out = DecodeLayer(cfg, w, progress=False)(x, k, v, bt, sl)
    assert torch.isfinite(out).all() and _close(out, want)
    assert _close(k[new], kr[new]) and torch.equal(v[new], vr[new])


@pytest.mark.parametrize("b,h,n,nt,seed", [(3, 96, 40, 3, 0), (1, 64, 70, 5, 1),
                                           (5, 160, 33, 2, 2)])
def test_folded_norm_kernels_vs_torch(b, h, n, nt, seed):
    """rmsnorm_gemm_folded / rmsnorm_swiglu_folded on the simulator against torch's
    RMSNorm + projection with the unfolded weights, ragged shapes (N not a multiple of TN,
    H not of TK, B not of TM), the row sums of squares split into nt uneven partials."""
    from tilelang_models.qwen3.kernels import (
        fold_norm_weight,
        rmsnorm_gemm_folded,
        rmsnorm_swiglu_folded,
    )

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, h, generator=gen).bfloat16()
    g = (torch.rand(h, generator=gen) + 0.5).bfloat16()
    w, wg, wu = ((torch.randn(n, h, generator=gen) * 0.1).bfloat16() for _ in range(3))
    cuts = torch.linspace(0, h, nt + 1).long().tolist()
    ssq = torch.stack([x.float()[:, a:c].pow(2).sum(1) for a, c in zip(cuts, cuts[1:])], 1)
    eps = 1e-6
    xn = x.float() * torch.rsqrt(x.float().pow(2).mean(1, keepdim=True) + eps) * g.float()
    tiles = dict(NT=nt, TM=16, TN=32, TK=64)
    y = torch.zeros(b, n).bfloat16()
    mt.run_jit(rmsnorm_gemm_folded, x, ssq, fold_norm_weight(w, g), y, eps, **tiles)
    want = xn @ w.float().T
    assert float((y.float() - want).abs().max()) <= 1e-2 * float(want.abs().max())
    y2 = torch.zeros(b, n).bfloat16()
    mt.run_jit(rmsnorm_swiglu_folded, x, ssq, fold_norm_weight(wg, g),
               fold_norm_weight(wu, g), y2, eps, **tiles)
    want2 = torch.nn.functional.silu(xn @ wg.float().T) * (xn @ wu.float().T)
    assert float((y2.float() - want2).abs().max()) <= 1e-2 * float(want2.abs().max())
