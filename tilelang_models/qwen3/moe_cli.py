"""The layer CLI on a Qwen3-MoE layer (`python -m tilelang_models.qwen3` dispatches here for
a MoE preset or a checkpoint whose config.json names qwen3_moe): the same flags, summary,
JSON line and --save fields as the dense layer, with MoeDecodeLayer and its reference."""
from __future__ import annotations

import time

import numpy as np
import torch

import mixtile as mt
from tilelang_models.qwen3.cli_util import emit_ascendc, err
from tilelang_models.qwen3.moe_config import get_moe_config
from tilelang_models.qwen3.moe_layer import MoeDecodeLayer, moe_decode_layer_ref
from tilelang_models.qwen3.moe_reference import routing_error
from tilelang_models.qwen3.moe_weights import load_hf_moe_layer, random_moe_layer
from tilelang_models.qwen3.paged import make_paged_cache
from tilelang_models.qwen3.reference import rmsnorm

# as the dense layer: bf16 storage at every step, errors of 1-2 bf16 ulps of the largest
# values pass
RTOL = 2e-2
ROUTE_TOL = 1e-2  # routing_error: a wrong expert is O(1)


def run_moe(a) -> dict:
    """Run one decode step of a Qwen3-MoE layer for the parsed CLI arguments `a`."""
    cfg = get_moe_config(a.hf_dir or a.config)
    if a.hf_dir:
        w = load_hf_moe_layer(a.hf_dir, a.layer, cfg)
    else:
        w = random_moe_layer(cfg, a.seed, fp8=getattr(a, "fp8", False))
    if a.emit_ascendc:
        layer = MoeDecodeLayer(cfg, w, target="sim", progress=False,
                               compile_cfg=dict(arch=a.arch or "a2"))
        return emit_ascendc(cfg.name, layer, a)
    backend = mt.get_backend(a.target)
    backend.require()
    dev = backend.device()
    gen = torch.Generator().manual_seed(a.seed + 1)
    lo = max(1, a.seq // 2)
    pool = torch.randperm(a.seq - lo, generator=gen) + lo  # distinct lengths below --seq
    lens = [a.seq] + [int(pool[i % len(pool)]) if len(pool) else a.seq
                      for i in range(a.batch - 1)]
    k_cache, v_cache, block_table, seq_lens = make_paged_cache(cfg.attn, lens, a.block_size,
                                                               a.seed + 2)
    x = torch.randn(a.batch, cfg.attn.hidden_size, generator=gen).bfloat16()
    k_ref, v_ref = k_cache.clone(), v_cache.clone()
    x_cpu, bt_cpu, sl_cpu = x, block_table, seq_lens
    x, k_cache, v_cache, block_table, seq_lens = (
        t.to(dev) for t in (x, k_cache, v_cache, block_table, seq_lens))
    layer = MoeDecodeLayer(cfg, w.to(dev), target=backend.name,
                           compile_cfg=None if a.arch is None else dict(arch=a.arch))
    t0 = time.perf_counter()
    compile_s = layer.compile(a.batch, a.block_size)
    out = layer(x, k_cache, v_cache, block_table, seq_lens).cpu()
    run_s = time.perf_counter() - t0 - compile_s
    k_cache, v_cache = k_cache.cpu(), v_cache.cpu()
    # the MoE half's golden from the layer's own h2 (checked on its own): see
    # moe_decode_layer_ref on routing near-ties
    h2 = layer.h2(a.batch).cpu()
    ids, wts = layer.moe.routing(a.batch)
    want, h2_ref = moe_decode_layer_ref(cfg, w, x_cpu, k_ref, v_ref, bt_cpu, sl_cpu, h2=h2,
                                        routing=(ids, wts))
    h3 = rmsnorm(h2, w.attn.post_attention_layernorm, cfg.attn.rms_norm_eps).bfloat16()
    route_err = routing_error(ids, h3, w.moe.router.cpu())
    errs = [err(out, want), err(h2, h2_ref), err(k_cache, k_ref), err(v_cache, v_ref)]
    max_abs = max(e[0] for e in errs)
    rel = max(e[1] for e in errs)
    # near-ties decided the other way cost about one bf16 ulp of a probability
    passed = rel <= RTOL and route_err <= ROUTE_TOL and bool(torch.isfinite(out.float()).all())
    if a.save:
        np.savez(a.save, x=x.float().cpu().numpy(), out=out.float().numpy(),
                 seq_lens=seq_lens.cpu().numpy(), block_table=block_table.cpu().numpy(),
                 k_cache=k_cache.float().numpy(), v_cache=v_cache.float().numpy())
    print(f"{cfg.name}: MoE ({cfg.num_experts} experts, top {cfg.top_k}"
          f"{', fp8' if w.moe.fp8 else ''}), batch {a.batch}, seq lens {lens}, per-kernel "
          f"run s { {k: round(v, 3) for k, v in layer.times.per_kernel.items()} }")
    return {"config": cfg.name, "target": backend.name, "batch": a.batch, "seq": a.seq,
            "max_abs_err": max_abs, "rel_err": rel, "passed": passed,
            "compile_s": round(compile_s, 4), "run_s": round(run_s, 4)}


def wants_moe(a) -> bool:
    """Whether the CLI arguments name a MoE layer: a MoE preset (--config), or a Qwen3-MoE
    checkpoint (--hf-dir) whose layer --layer has experts. A dense layer of a MoE
    checkpoint runs as a dense Qwen3 layer (bf16 checkpoints)."""
    from tilelang_models.qwen3.moe_config import is_moe_checkpoint, is_moe_config_name

    if a.hf_dir:
        if not is_moe_checkpoint(a.hf_dir):
            return False
        cfg = get_moe_config(a.hf_dir)
        if cfg.is_sparse(a.layer):
            return True
        if cfg.fp8_block is not None:
            raise ValueError(f"{a.hf_dir}: layer {a.layer} is a dense layer of an FP8 "
                             f"checkpoint; the dense layer runs bf16 weights only")
        return False
    return is_moe_config_name(a.config)
