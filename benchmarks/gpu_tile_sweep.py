"""Tiles and launch configs of the decode layer's kernels on a GPU, at Qwen3-14B shapes.

    python benchmarks/gpu_tile_sweep.py [--batches 1,8,32] [--what gemm,attn,layer]

gemm:  each projection alone per (TN, TK), launch config autotuned (and Triton's default
       (4 warps, 3 stages) for comparison), weights rotated over copies so that L2 holds
       none of them; time per launch in a CUDA graph of back-to-back launches, and the
       ratio to its own weight-read floor (weight bytes / D2D copy bandwidth).
attn:  fa_fused (2 launches) per NSPLIT, one block per work item (GRID = B * KVH * NSPLIT),
       and the persistent 132-block launch for comparison; ratio to its KV-read floor.
layer: the DecodeLayer as the benchmark runs it (CUDA graph); each step's marginal cost
       = whole graph minus the graph without that step (layer_spec: static dims).
steps: each step's time in the layer's own launch sequence (behind a spin kernel, an
       event between steps: no host gaps, no graph).
trace: every kernel's duration and the idle gap before it, from a profiler trace of the
       layer (x_ssq as inside a model) replayed in a CUDA graph of 4 steps.
--shard i/n runs every n-th case: n such processes in parallel fill Triton's disk cache,
then one unsharded run times everything without compiling (benchmarks/gpu_session.sh).
Prints a short table per section and writes every row as JSON (--out, default stdout).
"""
import argparse
import json
import math
import time

import torch
from decode_layer_gpu import copy_bandwidth  # the benchmark's floor (this script's dir)

import mixtile as mt
from mixtile.runtime.compiler import _memory_cache
from tilelang_models.kernels.gemm import blocks
from tilelang_models.qwen3.config import get_config
from tilelang_models.qwen3.decode_layer import DecodeLayer
from tilelang_models.qwen3.kernels import (
    fa_fused,
    gemm_residual,
    gemm_residual_sumsq,
    rmsnorm_gemm,
    rmsnorm_gemm_folded,
    rmsnorm_swiglu,
    rmsnorm_swiglu_folded,
)
from tilelang_models.qwen3.paged import make_paged_cache
from tilelang_models.qwen3.reference import decode_layer_ref
from tilelang_models.qwen3.weights import random_weights

_shard = [0, 1, -1]  # this process runs cases i, i + n, ... (counter in [2])


def _mine() -> bool:
    """Whether this process runs the next case (--shard i/n: compile warm-up in parallel
    processes fills Triton's disk cache; a later unsharded run times everything)."""
    _shard[2] += 1
    return _shard[2] % _shard[1] == _shard[0]


def _graph_ms(fns, reps=3, iters=20):
    """ms per pass over `fns` (called in turn), from a CUDA graph of `reps` passes."""
    for f in fns:
        f()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(reps):
            for f in fns:
                f()
    g.replay()
    torch.cuda.synchronize()
    ts = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    return sorted(ts)[len(ts) // 2] / reps


# variants measured against the kernels.py ones (same DSL; not used by the layer)
@mt.kernel
def onepass_rmsnorm_gemm(x: mt.Tensor["B", "H", mt.bf16], g: mt.Tensor["H", mt.bf16],
                         w: mt.Tensor["N", "H", mt.bf16], y: mt.Out["B", "N", mt.bf16],
                         eps: mt.Scalar[mt.f32],
                         TM: mt.const = 16, TN: mt.const = 128, TK: mt.const = 256):
    """One pass over H: inv * ((x * g) @ w^T), squares summed elementwise in the loop and
    reduced once after it."""
    B, H = x.shape
    N = w.shape[0]
    for m0, n0 in blocks(B, N, TM, TN):
        ss = mt.zeros((TM, TK))
        acc = mt.zeros((TM, TN))
        for k0 in mt.range(0, H, TK):
            xt = mt.load(x[m0:m0 + TM, k0:k0 + TK]).astype(mt.f32)
            ss = ss + xt * xt
            a = (xt * mt.load(g[k0:k0 + TK]).astype(mt.f32)).astype(mt.bf16)
            acc = mt.matmul(a, mt.load(w[n0:n0 + TN, k0:k0 + TK]), acc=acc, b_trans=True)
        inv = mt.rsqrt(mt.row_sum(ss) / mt.to_float(H) + eps)
        mt.store(y[m0:m0 + TM, n0:n0 + TN], (acc * inv).astype(mt.bf16))


def _inv_rms(x, m0, H, eps, TM, TK):
    ss = mt.zeros((TM, 1))
    for k0 in mt.range(0, H, TK):
        xt = mt.load(x[m0:m0 + TM, k0:k0 + TK]).astype(mt.f32)
        ss = ss + mt.row_sum(xt * xt)
    return mt.rsqrt(ss / mt.to_float(H) + eps)


@mt.kernel
def swap_rmsnorm_gemm(x: mt.Tensor["B", "H", mt.bf16], g: mt.Tensor["H", mt.bf16],
                      w: mt.Tensor["N", "H", mt.bf16], y: mt.Out["B", "N", mt.bf16],
                      eps: mt.Scalar[mt.f32],
                      TM: mt.const = 16, TN: mt.const = 128, TK: mt.const = 256):
    """rmsnorm_gemm with the weight tile as the matmul's left operand: y^T = w @ xn^T."""
    B, H = x.shape
    N = w.shape[0]
    for m0, n0 in blocks(B, N, TM, TN):
        inv = _inv_rms(x, m0, H, eps, TM, TK)
        acc = mt.zeros((TN, TM))
        for k0 in mt.range(0, H, TK):
            xt = mt.load(x[m0:m0 + TM, k0:k0 + TK]).astype(mt.f32)
            a = (xt * inv * mt.load(g[k0:k0 + TK]).astype(mt.f32)).astype(mt.bf16)
            acc = mt.matmul(mt.load(w[n0:n0 + TN, k0:k0 + TK]), a, acc=acc, b_trans=True)
        mt.store(y[m0:m0 + TM, n0:n0 + TN], acc.T.astype(mt.bf16))


@mt.kernel
def swap_gemm_residual(x: mt.Tensor["M", "K", mt.bf16], w: mt.Tensor["N", "K", mt.bf16],
                       res: mt.Tensor["M", "N", mt.bf16], y: mt.Out["M", "N", mt.bf16],
                       TM: mt.const = 32, TN: mt.const = 128, TK: mt.const = 128):
    M, K = x.shape
    N = w.shape[0]
    for m0, n0 in blocks(M, N, TM, TN):
        acc = mt.zeros((TN, TM))
        for k0 in mt.range(0, K, TK):
            acc = mt.matmul(mt.load(w[n0:n0 + TN, k0:k0 + TK]),
                            mt.load(x[m0:m0 + TM, k0:k0 + TK]), acc=acc, b_trans=True)
        r = mt.load(res[m0:m0 + TM, n0:n0 + TN]).astype(mt.f32)
        mt.store(y[m0:m0 + TM, n0:n0 + TN], (acc.T + r).astype(mt.bf16))


@mt.kernel
def swap_rmsnorm_swiglu(x: mt.Tensor["B", "H", mt.bf16], g: mt.Tensor["H", mt.bf16],
                        wg: mt.Tensor["I", "H", mt.bf16], wu: mt.Tensor["I", "H", mt.bf16],
                        y: mt.Out["B", "I", mt.bf16], eps: mt.Scalar[mt.f32],
                        TM: mt.const = 16, TN: mt.const = 128, TK: mt.const = 256):
    B, H = x.shape
    I = wg.shape[0]
    for m0, n0 in blocks(B, I, TM, TN):
        inv = _inv_rms(x, m0, H, eps, TM, TK)
        ag = mt.zeros((TN, TM))
        au = mt.zeros((TN, TM))
        for k0 in mt.range(0, H, TK):
            xt = mt.load(x[m0:m0 + TM, k0:k0 + TK]).astype(mt.f32)
            a = (xt * inv * mt.load(g[k0:k0 + TK]).astype(mt.f32)).astype(mt.bf16)
            ag = mt.matmul(mt.load(wg[n0:n0 + TN, k0:k0 + TK]), a, acc=ag, b_trans=True)
            au = mt.matmul(mt.load(wu[n0:n0 + TN, k0:k0 + TK]), a, acc=au, b_trans=True)
        mt.store(y[m0:m0 + TM, n0:n0 + TN], (mt.silu(ag) * au).T.astype(mt.bf16))


_T = [(16, 512), (32, 256), (64, 256), (64, 512)]
_S = [(64, 128), (64, 256), (128, 128)]
GEMM_VARIANTS = {  # kernel -> [(variant, kernel, tiles)]
    "qkv": [("base", rmsnorm_gemm, [(32, 256), (64, 256), (64, 512)]),
            ("onepass", onepass_rmsnorm_gemm, [(32, 256), (64, 256)]),
            ("swap", swap_rmsnorm_gemm, _S),
            ("folded", rmsnorm_gemm_folded, [(32, 256), (64, 256), (64, 512)])],
    "o_proj": [("base", gemm_residual, _T), ("swap", swap_gemm_residual, _S),
               ("ssq", gemm_residual_sumsq, [(32, 256), (64, 256), (64, 512)])],
    "mlp_up": [("base", rmsnorm_swiglu, [(16, 256), (32, 128), (32, 256), (64, 128)]),
               ("swap", swap_rmsnorm_swiglu, _S),
               ("folded", rmsnorm_swiglu_folded, [(16, 256), (32, 128), (32, 256),
                                                   (64, 128), (64, 256)])],
    "down": [("base", gemm_residual, _T), ("swap", swap_gemm_residual, _S)],
}


def sweep_gemm(cfg, b, bw, rows, variants=GEMM_VARIANTS, only=None):
    h, i = cfg.hidden_size, cfg.intermediate_size
    nqkv = cfg.q_size + 2 * cfg.kv_size
    bf = dict(dtype=torch.bfloat16, device="cuda")
    x = torch.randn(b, h, **bf)
    xi = torch.randn(b, i, **bf)
    gn = torch.rand(h, **bf) + 0.5
    nrot = 4  # weight copies in turn: together several times the L2

    def case(name):
        if name == "qkv":
            ws = [torch.randn(nqkv, h, **bf) for _ in range(nrot)]
            y = torch.empty(b, nqkv, **bf)
            return [(x, gn, w, y, 1e-6) for w in ws], nqkv * h * 2
        if name == "qkv:folded":  # the partial sums of squares of x over 64-wide tiles
            ws = [torch.randn(nqkv, h, **bf) for _ in range(nrot)]
            y = torch.empty(b, nqkv, **bf)
            ssq = x.float().pow(2).view(b, h // 64, 64).sum(-1)
            return [(x, ssq, w, y, 1e-6) for w in ws], nqkv * h * 2
        if name == "o_proj":
            ws = [torch.randn(h, h, **bf) for _ in range(nrot)]
            y = torch.empty(b, h, **bf)
            return [(x, w, x, y) for w in ws], h * h * 2
        if name == "o_proj:ssq":
            ws = [torch.randn(h, h, **bf) for _ in range(nrot)]
            y = torch.empty(b, h, **bf)
            ssq = torch.empty(b, h // 16, dtype=torch.float32, device="cuda")
            return [(x, w, x, y, ssq) for w in ws], h * h * 2
        if name == "mlp_up":
            ws = [(torch.randn(i, h, **bf), torch.randn(i, h, **bf)) for _ in range(nrot)]
            y = torch.empty(b, i, **bf)
            return [(x, gn, wg, wu, y, 1e-6) for wg, wu in ws], 2 * i * h * 2
        if name == "mlp_up:folded":  # the partial sums of squares of x over 64-wide tiles
            ws = [(torch.randn(i, h, **bf), torch.randn(i, h, **bf)) for _ in range(nrot)]
            y = torch.empty(b, i, **bf)
            ssq = x.float().pow(2).view(b, h // 64, 64).sum(-1)
            return [(x, ssq, wg, wu, y, 1e-6) for wg, wu in ws], 2 * i * h * 2
        ws = [torch.randn(h, i, **bf) for _ in range(nrot)]
        y = torch.empty(b, h, **bf)
        return [(xi, w, x, y) for w in ws], h * i * 2

    tm = 16 if b <= 16 else 32
    for name, vs in variants.items():
        vs = [v for v in vs if only is None or f"{name}:{v[0]}" in only or name in only]
        total = sum(len(tl) for _, _, tl in vs)
        if not _peek(total):
            _shard[2] += total
            continue
        argsets, nbytes = case(name)
        floor = nbytes / bw * 1e3
        ref = None
        for vname, kern, tl in vs:
            if vname in ("ssq", "folded") and any(_peek(len(tl)) for _ in [0]):
                argsets, _ = case(f"{name}:{vname}")
            for tn, tk in tl:
                if not _mine():
                    continue
                consts = dict(TM=tm, TN=tn, TK=tk)
                if kern in (rmsnorm_swiglu_folded, rmsnorm_gemm_folded):
                    consts["NT"] = h // 64
                fns = [lambda a=a, **kw: mt.run_jit(kern, *a, target="cuda", **kw, **consts)
                       for a in argsets]
                r = {"sec": "gemm", "kernel": name, "variant": vname, "batch": b, "TN": tn,
                     "TK": tk}
                try:
                    r["ms_default"] = _graph_ms([lambda f=f: f(launch_config=(4, 3))
                                                 for f in fns], reps=1) / len(fns)
                except Exception as e:  # noqa: BLE001  a tile that does not fit: go on
                    r["error_default"] = str(e)[:100]
                try:
                    before = set(_chosen())
                    for f in fns:
                        f(tune=True)
                    r["ms_tuned"] = _graph_ms(fns, reps=1) / len(fns)
                    r["cfg"] = [v for k, v in _chosen().items() if k not in before]
                    out = [t for t in argsets[-1] if isinstance(t, torch.Tensor)
                           and t.dtype == torch.bfloat16 and t.shape[1] in (nqkv, i, h)
                           and t.shape[0] == b][-1]
                    if name in ("qkv", "mlp_up"):
                        out = argsets[-1][-2]
                    if vname == "base" and ref is None:
                        ref = out.float().clone()
                    elif ref is not None:
                        r["diff_vs_base"] = float((out.float() - ref).abs().max() /
                                                  ref.abs().max())
                except Exception as e:  # noqa: BLE001
                    r["error"] = str(e)[:100]
                for k in ("ms_default", "ms_tuned"):
                    if k in r:
                        r[k.replace("ms", "x")] = round(r[k] / floor, 3)
                rows.append(r)
                print(json.dumps(r), flush=True)


def _chosen() -> dict:
    """{(launch function, grid): (num_warps, num_stages)} chosen so far by every kernel
    compiled in this process (they keep their choices)."""
    return {(fn, grid): c for ck in _memory_cache.values()
            for fn, grid, c in ck.launch_configs()}


def _peek(n: int) -> bool:
    """Whether this process runs any of the next n cases (without taking them)."""
    return any((_shard[2] + 1 + j) % _shard[1] == _shard[0] for j in range(n))


def sweep_attn(cfg, b, bw, rows, seq=4096, bs=128, splits=None):
    c = cfg
    kc, vc, bt, sl = (t.cuda() for t in make_paged_cache(c, [seq] * b, bs, 1))
    nh = c.num_attention_heads + 2 * c.num_key_value_heads
    qkv = torch.randn(b, nh, c.head_dim, device="cuda").bfloat16()
    qn = torch.rand(c.head_dim, device="cuda").bfloat16() + 0.5
    kn = torch.rand(c.head_dim, device="cuda").bfloat16() + 0.5
    out = torch.empty(b, c.num_attention_heads, c.head_dim, device="cuda",
                      dtype=torch.bfloat16)
    kv_bytes = 2 * b * seq * c.num_key_value_heads * c.head_dim * 2
    floor = kv_bytes / bw * 1e3
    base = dict(HQ=c.num_attention_heads, KVH=c.num_key_value_heads, D=c.head_dim, BS=bs,
                eps=c.rms_norm_eps, theta=c.rope_theta)
    items = b * c.num_key_value_heads
    variants = [("persistent", dict(NSPLIT=max(1, min(8, math.ceil(48 / items))), GRID=0))]
    for ns in splits or (1, 2, 4, 8, 16, 32):
        variants.append(("grid=items", dict(NSPLIT=ns, GRID=items * ns)))
    args = (qkv, qn, kn, kc, vc, bt, sl, out)
    for label, v in variants:
        if not _mine():
            continue
        consts = dict(base, **v)
        fn = lambda **kw: mt.run_jit(fa_fused, *args, target="cuda", **kw,  # noqa: E731
                                     **consts)
        r = {"sec": "attn", "batch": b, "variant": label, **v}
        try:
            r["ms_default"] = _graph_ms([lambda: fn(launch_config=(4, 3))], reps=1)
            before = set(_chosen())
            fn(tune=True)
            r["ms_tuned"] = _graph_ms([fn], reps=1)
            r["cfg"] = [v for k, v in _chosen().items() if k not in before]
        except Exception as e:  # noqa: BLE001
            r["error"] = str(e)[:100]
        for k in ("ms_default", "ms_tuned"):
            if k in r:
                r[k.replace("ms", "x")] = round(r[k] / floor, 3)
        rows.append(r)
        print(json.dumps(r, default=str), flush=True)
    del kc, vc
    torch.cuda.empty_cache()


def layer_breakdown(cfg, b, bw, rows, seq=4096, bs=128, tiles=None, label="table", **kw):
    if not _mine():
        return
    w = random_weights(cfg, 0)
    w = type(w)(**{k: v.cuda() for k, v in vars(w).items()})
    wbytes = sum(t.numel() * t.element_size() for t in vars(w).values())
    kc, vc, bt, sl = (t.cuda() for t in make_paged_cache(cfg, [seq] * b, bs, 1))
    x = torch.randn(b, cfg.hidden_size, device="cuda").bfloat16()
    kv_bytes = 2 * b * seq * cfg.num_key_value_heads * cfg.head_dim * 2
    floor = (wbytes + kv_bytes) / bw * 1e3
    kr, vr = kc.clone(), vc.clone()
    want = decode_layer_ref(cfg, w, x, kr, vr, bt, sl)
    layer = DecodeLayer(cfg, w, target="cuda", progress=False, tiles=tiles, **kw)
    t0 = time.time()
    got = layer(x, kc, vc, bt, sl).clone()
    first_s = time.time() - t0
    rel = float((got.float() - want.float()).abs().max() / want.float().abs().max())
    steps = layer.steps(x, kc, vc, bt, sl)
    fns = [lambda s=s: layer.run_step(*s) for s in steps]
    total = _graph_ms(fns, reps=1)
    r = {"sec": "layer", "label": label, "batch": b, "floor_ms": floor, "graph_ms": total,
         "x_floor": round(total / floor, 3), "rel_err": rel, "first_call_s": first_s,
         "consts": {s[0]: s[3] for s in steps}}
    for i, s in enumerate(steps):
        rest = fns[:i] + fns[i + 1:]
        r["marg_" + s[0]] = total - _graph_ms(rest, reps=1)
    rows.append(r)
    print(json.dumps(r, default=str), flush=True)
    del kc, vc, kr, vr
    torch.cuda.empty_cache()


def _layer_steps(cfg, b, seq, bs, **kw):
    """A DecodeLayer on random weights and a cache of b sequences of `seq`, called once (so
    its launches are compiled and tuned); (layer, its steps with x_ssq as from a previous
    layer, the caches)."""
    w = random_weights(cfg, 0)
    w = type(w)(**{k: v.cuda() for k, v in vars(w).items()})
    kc, vc, bt, sl = (t.cuda() for t in make_paged_cache(cfg, [seq] * b, bs, 1))
    x = torch.randn(b, cfg.hidden_size, device="cuda").bfloat16()
    layer = DecodeLayer(cfg, w, target="cuda", progress=False, **kw)
    xs = layer.input_ssq(x) if layer.norm_stats else None  # as from a previous layer
    layer(x, kc, vc, bt, sl, x_ssq=xs)
    return layer, layer.steps(x, kc, vc, bt, sl, x_ssq=xs), (kc, vc)


def step_profile(cfg, b, bw, rows, seq=4096, bs=128, label="table", iters=20, repeat=1,
                 **kw):
    """Each step's time in the layer's own sequence: the steps queued behind a spin kernel
    (no host gaps) with an event between consecutive steps; medians over `iters`.
    repeat: each step launched that many times in a row (time per launch)."""
    if not _mine():
        return
    layer, steps, caches = _layer_steps(cfg, b, seq, bs, **kw)
    per = {s[0]: [] for s in steps}
    per["total"] = []
    for _ in range(iters):
        ev = [torch.cuda.Event(enable_timing=True) for _ in range(len(steps) + 1)]
        torch.cuda._sleep(5_000_000)
        ev[0].record()
        for i, s in enumerate(steps):
            for _ in range(repeat):
                layer.run_step(*s)
            ev[i + 1].record()
        ev[-1].synchronize()
        for i, s in enumerate(steps):
            per[s[0]].append(ev[i].elapsed_time(ev[i + 1]) * 1e3 / repeat)
        per["total"].append(ev[0].elapsed_time(ev[-1]) * 1e3)
    r = {"sec": "steps", "label": label, "batch": b}
    r.update({k: round(sorted(v)[len(v) // 2], 1) for k, v in per.items()})
    rows.append(r)
    print(json.dumps(r), flush=True)
    del layer, steps, caches
    torch.cuda.empty_cache()


def kernel_trace(cfg, b, bw, rows, seq=4096, bs=128, label="table", reps=4, iters=5, **kw):
    """Each kernel's GPU time and the gap before it (torch.profiler, CUPTI) in a CUDA graph
    of `reps` layer steps, medians over `iters` replays; the launch configs chosen."""
    if not _mine():
        return
    from torch.profiler import ProfilerActivity, profile

    before = set(_chosen())
    layer, steps, caches = _layer_steps(cfg, b, seq, bs, **kw)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(reps):
            for s in steps:
                layer.run_step(*s)
    g.replay()
    torch.cuda.synchronize()
    seqs = []
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            torch.cuda._sleep(2_000_000)
            g.replay()
            torch.cuda.synchronize()
    evs = sorted((e for e in prof.events() if e.device_type.name == "CUDA"
                  and "sleep" not in e.name), key=lambda e: e.time_range.start)
    n = len(evs) // iters  # kernels per replay
    for i in range(iters):
        seqs.append(evs[i * n:(i + 1) * n])
    per_step = n // reps
    r = {"sec": "trace", "label": label, "batch": b, "kernels": []}
    for k in range(per_step):  # the step in the middle of the graph (k + per_step)
        j = per_step + k
        durs = sorted(s[j].time_range.end - s[j].time_range.start for s in seqs)
        gaps = sorted(s[j].time_range.start - s[j - 1].time_range.end for s in seqs)
        r["kernels"].append({"name": seqs[0][j].name[:40], "us": round(durs[len(durs) // 2], 1),
                             "gap_before_us": round(gaps[len(gaps) // 2], 1)})
    tot = sorted(s[2 * per_step].time_range.start - s[per_step].time_range.start for s in seqs)
    r["step_us"] = round(tot[len(tot) // 2], 1)
    r["configs"] = {f"{k[0][:40]}@{k[1]}": v for k, v in _chosen().items() if k not in before}
    rows.append(r)
    print(json.dumps(r), flush=True)
    del layer, steps, caches
    torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--what", default="layer,gemm,attn")
    ap.add_argument("--out", default=None)
    ap.add_argument("--kernels", default=None,
                    help="gemm: e.g. o_proj,mlp_up:folded (kernel or kernel:variant)")
    ap.add_argument("--shard", default="0/1", help="i/n: run every n-th case from i")
    a = ap.parse_args()
    _shard[0], _shard[1] = (int(v) for v in a.shard.split("/"))
    cfg = get_config("14b")
    bw = copy_bandwidth()
    print(f"{torch.cuda.get_device_name()} copy {bw / 1e9:.0f} GB/s  torch "
          f"{torch.__version__}", flush=True)
    rows = []
    batches = [int(v) for v in a.batches.split(",")]
    for what in a.what.split(","):
        for b in batches:
            if what == "layer":
                layer_breakdown(cfg, b, bw, rows)
            elif what == "layer_spec":  # the same, kernels specialised to the shapes
                layer_breakdown(cfg, b, bw, rows, label="spec", specialize=True)
            elif what == "gemm":
                sweep_gemm(cfg, b, bw, rows, only=a.kernels and a.kernels.split(","))
            elif what == "attn":
                sweep_attn(cfg, b, bw, rows)
            elif what == "steps":
                step_profile(cfg, b, bw, rows)
            elif what == "trace":
                kernel_trace(cfg, b, bw, rows)
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "copy_GBps": bw / 1e9,
                       "rows": rows}, f, default=str)


if __name__ == "__main__":
    main()
