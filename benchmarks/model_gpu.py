"""Time per output token of the whole mixtile Qwen3 model on a GPU, against its HBM floor
and a PyTorch reference model under torch.compile, all measured in one run.

    python benchmarks/model_gpu.py [--configs 14b,8b,0.6b] [--batches 1,8,32]
        [--ctx 4096] [--block-size 128] [--no-compile] [--prefill 2048]

Random bf16 weights of each preset's shapes (all layers, embedding, LM head). Each
sequence has --ctx tokens in the paged cache; one decode step (one token per sequence:
embedding, every layer, final norm, LM head, argmax) is timed as mixtile's CUDA graph
replay (Qwen3Model's own) and as the reference's (one function per layer, compiled once
and called for every layer, the whole step captured in a CUDA graph). Floor: the bytes a
step must read (every layer's weights, the LM head, the KV cache of every sequence) over
the measured device copy bandwidth. --prefill N also times the prefill of one N-token
prompt (Qwen3Model.prefill: the prefill layers, then the LM head on the last token: the
time to the first token) against the reference's prefill (cuBLAS GEMMs, SDPA causal
attention), eager and under torch.compile; `--batches ""` times the prefill alone.
Prints a table and one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from decode_layer_gpu import _ms, copy_bandwidth  # noqa: E402

from tilelang_models.qwen3.model import (  # noqa: E402
    Qwen3Model,
    get_model_config,
    random_model_weights,
)


def torch_parts(c):
    """The plain-torch pieces of a decode layer of shapes c (a Qwen3Config), weights as
    arguments: rms(v, g); attn_half(x, res, ...) = o_proj(attention(qkv(rms(x)))) + res
    (the new token's k and v written into the paged caches); mlp_half(h2, res, ...) =
    down(silu(gate) * up of rms(h2)) + res. One layer is
    mlp_half(attn_half(x, x, ...), h2, ...); tensor parallelism passes a zero res on all
    ranks but one and all-reduces between them (tp_gpu.py)."""
    hq, kvh, d = c.num_attention_heads, c.num_key_value_heads, c.head_dim
    eps = c.rms_norm_eps
    inv = 1.0 / (c.rope_theta ** (torch.arange(0, d, 2, device="cuda").float() / d))

    def rms(v, g):
        vf = v.float()
        return vf * torch.rsqrt(vf.pow(2).mean(-1, keepdim=True) + eps) * g.float()

    def rope(v, pos):
        ang = pos[:, None, None].float() * inv
        cs, sn = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
        return v * cs + torch.cat([-v[..., d // 2:], v[..., :d // 2]], -1) * sn

    def attn_half(x, res, kc, vc, bt, sl, gin, wqkv, qn, kn, wo):
        b = x.shape[0]
        qkv = F.linear(rms(x, gin).bfloat16(), wqkv)
        q = qkv[:, :hq * d].view(b, hq, d)
        k = qkv[:, hq * d:(hq + kvh) * d].view(b, kvh, d)
        v = qkv[:, (hq + kvh) * d:].view(b, kvh, d)
        pos = (sl - 1).long()
        q = rope(rms(q, qn), pos).bfloat16()
        k = rope(rms(k, kn), pos).bfloat16()
        bs = kc.shape[1]
        blk = bt.long().gather(1, (pos // bs)[:, None])[:, 0]
        kc[blk, pos % bs] = k
        vc[blk, pos % bs] = v
        kk = kc[bt.long()].flatten(1, 2)
        vv = vc[bt.long()].flatten(1, 2)
        mask = torch.arange(kk.shape[1], device="cuda")[None, :] < sl[:, None]
        att = F.scaled_dot_product_attention(
            q[:, :, None, :], kk.transpose(1, 2), vv.transpose(1, 2),
            attn_mask=mask[:, None, None, :], enable_gqa=True)
        o = att[:, :, 0, :].reshape(b, hq * d)
        return (F.linear(o, wo).float() + res.float()).bfloat16()

    def mlp_half(h2, res, gpost, wg, wu, wd):
        h3 = rms(h2, gpost).bfloat16()
        a = F.silu(F.linear(h3, wg).float()) * F.linear(h3, wu).float()
        return (F.linear(a.bfloat16(), wd).float() + res.float()).bfloat16()

    return rms, attn_half, mlp_half


def torch_model(mcfg, model):
    """The reference decode step over the model's own (folded) weights and caches:
    weights are arguments, so torch.compile compiles the layer once for all layers."""
    rms, attn_half, mlp_half = torch_parts(mcfg.layer)

    def layer(x, kc, vc, bt, sl, gin, wqkv, qn, kn, wo, gpost, wg, wu, wd):
        h2 = attn_half(x, x, kc, vc, bt, sl, gin, wqkv, qn, kn, wo)
        return mlp_half(h2, h2, gpost, wg, wu, wd)

    def head(x, g, w):
        return F.linear(rms(x, g).bfloat16(), w).float().argmax(-1)

    ws = [(w.input_layernorm, dl.wqkv, w.q_norm, w.k_norm, w.o_proj,
           w.post_attention_layernorm, dl.wgate, dl.wup, w.down_proj)
          for w, dl in zip(model.weights.layers, model.decode_layers)]
    return layer, head, ws


def _step_fn(layer, head, ws, model, kc, vc):
    def step(ids, bt, sl):
        x = F.embedding(ids.long(), model.embed)
        for i, w in enumerate(ws):
            x = layer(x, kc[i], vc[i], bt, sl, *w)
        return head(x, model.final_norm, model.lm_head)
    return step


def filled_cache(model, b: int, ctx: int, bs: int) -> tuple:
    """(blocks per sequence, k cache, v cache, block table, sequence lengths): b sequences
    of ctx cached tokens (random) and room for one more, in the model's paged cache."""
    nb = -(-(ctx + 1) // bs)
    kc, vc = model.alloc_cache(1 + b * nb, bs, "cuda")
    kc.normal_()
    vc.normal_()
    bt = (torch.arange(b * nb, dtype=torch.int32, device="cuda") + 1).view(b, nb)
    sl = torch.full((b,), ctx + 1, dtype=torch.int32, device="cuda")
    return nb, kc, vc, bt, sl


def _graph(fn):
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return g


def bench_config(name, batches, ctx, bs, compile_ref, prefill, bw_list):
    mcfg = get_model_config(name)
    c = mcfg.layer
    t0 = time.time()
    model = Qwen3Model(mcfg, random_model_weights(mcfg, 0, device="cuda"), target="cuda")
    setup_s = time.time() - t0
    print(f"{name}: weights ready in {setup_s:.1f} s", file=sys.stderr, flush=True)
    w_bytes = sum(t.numel() * t.element_size() for dl in model.decode_layers
                  for t in (dl.wqkv, dl.w.o_proj, dl.wgate, dl.wup, dl.w.down_proj))
    w_bytes += model.lm_head.numel() * 2
    rows = []
    layer_ref, head_ref, ws = torch_model(mcfg, model)
    layer_c = torch.compile(layer_ref) if compile_ref else None
    for b in batches:
        nb, kc, vc, bt, sl = filled_cache(model, b, ctx, bs)
        ids = torch.randint(0, mcfg.vocab_size, (b,), dtype=torch.int32, device="cuda")
        kv_bytes = 2 * b * ctx * mcfg.num_layers * c.num_key_value_heads * c.head_dim * 2
        r = {"batch": b, "bytes": w_bytes + kv_bytes}
        t0 = time.time()
        out, _ = model._decode_step(ids, sl, kc, vc, bt, False)  # compiles, tunes, captures
        r["mixtile_first_step_s"] = round(time.time() - t0, 2)
        print(f"{name} batch {b}: first step {r['mixtile_first_step_s']} s", file=sys.stderr,
              flush=True)
        graph, bufs = model._graphs[(b, nb, False, kc.data_ptr())]
        r["mixtile_ms"] = _ms(graph.replay)
        got = bufs["out"].clone()
        step = _step_fn(layer_ref, head_ref, ws, model, kc, vc)
        want = step(ids, bt, sl)
        r["ids_equal_eager_ref"] = int((got == want).sum()) / b
        r["eager_graph_ms"] = _ms(_graph(lambda: step(ids, bt, sl)).replay)
        if layer_c is not None:
            stepc = _step_fn(layer_c, head_ref, ws, model, kc, vc)
            t0 = time.time()
            stepc(ids, bt, sl)
            r["compile_s"] = round(time.time() - t0, 1)
            try:
                r["torch_compile_graph_ms"] = _ms(_graph(lambda: stepc(ids, bt, sl)).replay)
            except Exception as e:  # noqa: BLE001  (a capture torch.compile refuses)
                r["torch_compile_graph_error"] = str(e)[:200]
        rows.append(r)
        print(f"{name} {json.dumps(r)}", file=sys.stderr, flush=True)
        del kc, vc
        model._graphs.clear()
        torch.cuda.empty_cache()
        bw_list.append(copy_bandwidth())
    res = {"config": name, "layers": mcfg.num_layers, "weights_GB": w_bytes / 1e9,
           "setup_s": round(setup_s, 1), "rows": rows}
    if prefill:
        res["prefill"] = bench_prefill(model, mcfg, prefill, bs, ws, layer_ref, head_ref,
                                       compile_ref)
        print(f"{name} prefill {json.dumps(res['prefill'])}", file=sys.stderr, flush=True)
    del model
    torch.cuda.empty_cache()
    return res


def bench_prefill(model, mcfg, n, bs, ws, layer_ref, head_ref, compile_ref):
    """One n-token prompt: mixtile's prefill (kernels compiled and tuned by a first call)
    against the torch prefill (cuBLAS GEMMs, SDPA causal) of the same weights, eager and
    under torch.compile: the time to the first token of an n-token prompt."""
    c = mcfg.layer
    nb = -(-n // bs)
    kc, vc = model.alloc_cache(1 + nb, bs, "cuda")
    bt = (torch.arange(nb, dtype=torch.int32, device="cuda") + 1).view(1, nb)
    ids = torch.randint(0, mcfg.vocab_size, (n,), dtype=torch.int32, device="cuda")
    cu = torch.tensor([0, n], dtype=torch.int32, device="cuda")
    ctx = torch.zeros(1, dtype=torch.int32, device="cuda")
    t0 = time.time()
    first = model.prefill(ids, cu, ctx, kc, vc, bt, max_q=n)
    first_s = time.time() - t0
    ms = _ms(lambda: model.prefill(ids, cu, ctx, kc, vc, bt, max_q=n), reps=5)
    hq, kvh, d = c.num_attention_heads, c.num_key_value_heads, c.head_dim
    eps = c.rms_norm_eps
    pos = torch.arange(n, device="cuda")
    inv = 1.0 / (c.rope_theta ** (torch.arange(0, d, 2, device="cuda").float() / d))
    ang = pos[:, None, None].float() * inv
    cs, sn = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)

    def rms(v, g):
        vf = v.float()
        return vf * torch.rsqrt(vf.pow(2).mean(-1, keepdim=True) + eps) * g.float()

    def rope(v):
        return v * cs + torch.cat([-v[..., d // 2:], v[..., :d // 2]], -1) * sn

    def layer(x, gin, wqkv, qn, kn, wo, gpost, wg, wu, wd):
        qkv = F.linear(rms(x, gin).bfloat16(), wqkv)
        q = rope(rms(qkv[:, :hq * d].view(n, hq, d), qn)).bfloat16()
        k = rope(rms(qkv[:, hq * d:(hq + kvh) * d].view(n, kvh, d), kn)).bfloat16()
        v = qkv[:, (hq + kvh) * d:].view(n, kvh, d)
        o = F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1),
                                           v.transpose(0, 1), is_causal=True,
                                           enable_gqa=True)
        h2 = (F.linear(o.transpose(0, 1).reshape(n, hq * d), wo).float()
              + x.float()).bfloat16()
        h3 = rms(h2, gpost).bfloat16()
        a = F.silu(F.linear(h3, wg).float()) * F.linear(h3, wu).float()
        return (F.linear(a.bfloat16(), wd).float() + h2.float()).bfloat16()

    def ref_with(layer_fn):
        def ref():
            x = F.embedding(ids.long(), model.embed)
            for w in ws:
                x = layer_fn(x, *w)
            return head_ref(x[-1:], model.final_norm, model.lm_head)
        return ref

    ref = ref_with(layer)
    want = ref()
    ref_ms = _ms(ref, reps=5)
    out = {}
    if compile_ref:  # the layer compiled once (weights are arguments) for all layers
        try:
            t0 = time.time()
            refc = ref_with(torch.compile(layer))
            refc()
            out["torch_compile_first_s"] = round(time.time() - t0, 1)
            out["torch_compile_ms"] = _ms(refc, reps=5)
        except Exception as e:  # noqa: BLE001  (reported, not fatal)
            out["torch_compile_error"] = str(e)[:200]
    L, H, I = mcfg.num_layers, c.hidden_size, c.intermediate_size
    flops = 2 * n * L * (H * (hq + 2 * kvh) * d + hq * d * H + 3 * H * I) \
        + 2 * L * hq * d * n * n  # causal QK^T + PV: half of 4 n^2 d per head
    out.update({"tokens": n, "mixtile_ms": ms, "torch_eager_ms": ref_ms,
                "first_call_s": round(first_s, 1), "next_id_equal": bool(first[0] == want[0]),
                "mixtile_TFLOPS": flops / ms / 1e9, "torch_TFLOPS": flops / ref_ms / 1e9})
    if "torch_compile_ms" in out:
        out["torch_compile_TFLOPS"] = flops / out["torch_compile_ms"] / 1e9
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="14b,8b,0.6b")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--prefill", type=int, default=0)
    a = ap.parse_args()
    batches = [int(v) for v in a.batches.split(",") if v]  # "": prefill only
    bws = [copy_bandwidth()]
    out = []
    for name in a.configs.split(","):
        out.append(bench_config(name, batches, a.ctx, a.block_size, not a.no_compile,
                                a.prefill, bws))
    bw = max(bws)
    print(f"{torch.cuda.get_device_name()}  copy bandwidth {bw / 1e9:.0f} GB/s")
    keys = ["mixtile_ms", "eager_graph_ms", "torch_compile_graph_ms"]
    print(f"{'config':>6} {'batch':>5} {'floor':>8} " + " ".join(f"{k[:-3]:>20}" for k in keys)
          + "   tok/s")
    for res in out:
        for r in res["rows"]:
            r["floor_ms"] = r.pop("bytes") / bw * 1e3
            cells = [f"{r[k]:8.3f}({r[k] / r['floor_ms']:4.2f}x)" if k in r else "" for k in keys]
            print(f"{res['config']:>6} {r['batch']:>5} {r['floor_ms']:8.3f} "
                  + " ".join(f"{cl:>20}" for cl in cells)
                  + f" {r['batch'] / r['mixtile_ms'] * 1e3:7.0f}")
        if "prefill" in res:
            p = res["prefill"]
            print(f"{res['config']:>6} prefill {p['tokens']}: mixtile {p['mixtile_ms']:.1f} ms "
                  f"({p['mixtile_TFLOPS']:.0f} TFLOPS), torch eager {p['torch_eager_ms']:.1f} "
                  f"ms ({p['torch_TFLOPS']:.0f}), torch.compile "
                  f"{p.get('torch_compile_ms', float('nan')):.1f} ms "
                  f"({p.get('torch_compile_TFLOPS', float('nan')):.0f})")
    print(json.dumps({"bench": "model_gpu", "device": torch.cuda.get_device_name(),
                      "ctx": a.ctx, "copy_GBps": bw / 1e9, "results": out},
                     default=lambda v: round(v, 4) if isinstance(v, float) else v))


if __name__ == "__main__":
    main()
