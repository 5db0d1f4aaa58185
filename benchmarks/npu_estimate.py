"""The NPU timing model's estimate of one Qwen3 decode layer (a model estimate, not a
measurement): every sequence at the same context length, the simulator running each of
the layer's five kernels with the timing model on, one combined trace.

    python benchmarks/npu_estimate.py [--config 14b] [--batch 16] [--seq 4096]
        [--block-size 128] [--arch a2] [--trace layer.json]
    python benchmarks/npu_estimate.py --prefill 1024 [--config 14b] [--arch a2]

Prints each kernel's estimate and summary, then one JSON line. The projection tiles are
the ones DecodeLayer.gemm_tiles picks on an NPU target (mt.autotune by the same model).
--moe CONFIG [--tokens 1,8,32]: instead, the Qwen3-MoE sparse block per token count against
the HBM floor of the experts it touched.
--prefill T: instead, the prefill layer's four GEMMs at M = T tokens (zero inputs), with
the tiles PrefillLayer.gemm_tiles picks (the search, cached on disk, is timed apart) and
with the fixed NPU_TILES (64 x 128 x 128).
"""
import argparse
import json
import time

import torch

import mixtile as mt
from tilelang_models.qwen3.config import get_config
from tilelang_models.qwen3.decode_layer import DecodeLayer
from tilelang_models.qwen3.paged import make_paged_cache
from tilelang_models.qwen3.prefill_layer import NPU_TILES, PrefillLayer
from tilelang_models.qwen3.weights import random_weights


def prefill_gemms(cfg, arch: str, tokens: int) -> dict:
    """Each prefill GEMM's estimate (us) with the tuned and the fixed tiles."""
    w = random_weights(get_config("tiny"), 0)  # not read: the GEMMs run on zero tensors
    layer = PrefillLayer(cfg, w, target="sim", compile_cfg=dict(arch=arch))
    t0 = time.perf_counter()
    tuned = layer.gemm_tiles(tokens)
    tune_s = time.perf_counter() - t0
    per, total = {}, {"tuned": 0.0, "fixed": 0.0}
    t0 = time.perf_counter()
    for name, (kern, args) in layer.gemm_units(tokens).items():
        per[name] = {"tiles": tuned[name]}
        for label, consts in (("tuned", tuned[name]), ("fixed", NPU_TILES)):
            res = mt.run_jit(kern, *args, target="sim", compile_cfg=dict(arch=arch),
                             checks=False, timeline=True, **consts)
            us = res.timeline.makespan_us
            per[name][label + "_us"] = round(us, 1)
            total[label] += us
        print(name, per[name], flush=True)
    return {"config": cfg.name, "arch": arch, "prefill_tokens": tokens,
            "tuned_us": round(total["tuned"], 1), "fixed_us": round(total["fixed"], 1),
            "kernels": per, "tune_s": round(tune_s, 1),
            "sim_s": round(time.perf_counter() - t0, 1)}


def moe_block(name: str, arch: str, tokens: list[int]) -> dict:
    """The Qwen3-MoE sparse block (router, sort, grouped gate/up, grouped down; bf16,
    random weights and inputs) per token count: each launch's estimate and the HBM floor
    of the experts the routing touched (their weights read once, + the router's) at the
    timing table's HBM bandwidth."""
    from tilelang_models.qwen3.moe import MoeBlock, random_moe_weights
    from tilelang_models.qwen3.moe_config import get_moe_config

    cfg = get_moe_config(name)
    H = cfg.attn.hidden_size
    w = random_moe_weights(cfg.num_experts, H, cfg.moe_intermediate_size, seed=0)
    blk = MoeBlock(w, cfg.top_k, cfg.norm_topk_prob, target="sim",
                   compile_cfg=dict(arch=arch))
    hbm = mt.get_target(arch).timing.hbm_bytes_per_s
    g = torch.Generator().manual_seed(1)
    rows = []
    for T in tokens:
        x = torch.randn(T, H, generator=g).bfloat16()
        blk.timelines = []
        t0 = time.perf_counter()
        blk(x)
        sim_s = time.perf_counter() - t0
        ids = blk.routing(T)[0]
        used = int(torch.unique(ids.long()).numel())
        floor_b = used * 3 * H * cfg.moe_intermediate_size * 2 + w.router.numel() * 2
        per = {}
        for tl in blk.timelines:
            print(tl.text())
            s = tl.summary()
            per[tl.name] = {"us": round(s["makespan_us"], 1), "bound": s["bound"]}
        total = sum(tl.makespan_us for tl in blk.timelines)
        floor_us = floor_b / hbm * 1e6
        rows.append({"tokens": T, "experts_touched": used, "estimate_us": round(total, 1),
                     "floor_us": round(floor_us, 1), "x_floor": round(total / floor_us, 2),
                     "kernels": per, "sim_s": round(sim_s, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return {"moe": name, "arch": arch, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="14b")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--arch", default="a2")
    ap.add_argument("--trace", default=None)
    ap.add_argument("--prefill", type=int, default=0, metavar="T",
                    help="estimate the prefill layer's GEMMs at T tokens instead")
    ap.add_argument("--moe", default=None, metavar="CONFIG",
                    help="estimate the Qwen3-MoE block of CONFIG (30b-a3b, ...) instead")
    ap.add_argument("--tokens", default="1,8,32", help="with --moe: token counts")
    a = ap.parse_args()
    if a.moe:
        print(json.dumps(moe_block(a.moe, a.arch, [int(t) for t in a.tokens.split(",")])))
        return
    cfg = get_config(a.config)
    if a.prefill:
        print(json.dumps(prefill_gemms(cfg, a.arch, a.prefill)))
        return
    w = random_weights(cfg, 0)
    k, v, bt, sl = make_paged_cache(cfg, [a.seq] * a.batch, a.block_size, 1)
    x = torch.randn(a.batch, cfg.hidden_size, generator=torch.Generator().manual_seed(2))
    layer = DecodeLayer(cfg, w, target="sim", compile_cfg=dict(arch=a.arch), progress=False)
    t0 = time.perf_counter()
    tiles = layer.gemm_tiles(a.batch)
    tune_s = time.perf_counter() - t0
    layer.timelines = []
    t0 = time.perf_counter()
    layer(x.bfloat16(), k, v, bt, sl)
    sim_s = time.perf_counter() - t0
    if a.trace:
        mt.write_trace(layer.timelines, a.trace)
    per = {}
    for tl in layer.timelines:
        print(tl.text())
        s = tl.summary()
        per[tl.name if tl.name not in per else tl.name + "_2"] = {
            "us": s["makespan_us"], "bound": s["bound"], "hbm_mb": round(s["hbm_bytes"] / 1e6, 1)}
    total = sum(tl.makespan_us for tl in layer.timelines)
    print(json.dumps({"config": cfg.name, "arch": a.arch, "batch": a.batch, "seq": a.seq,
                      "block_size": a.block_size, "estimate_us": round(total, 1),
                      "kernels": per, "tiles": tiles, "tune_s": round(tune_s, 1),
                      "sim_s": round(sim_s, 1)}))


if __name__ == "__main__":
    main()
