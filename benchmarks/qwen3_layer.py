"""Qwen3 decode layer: cold compile of all kernels, and one simulated step at real shapes
against the torch reference's CPU time, in the same run.

    python benchmarks/qwen3_layer.py [--config 14b] [--batch 16] [--seq 4096]
"""
import argparse
import json
import time

import torch

from mixtile.runtime.compiler import clear_memory_cache
from tilelang_models.qwen3.config import get_config
from tilelang_models.qwen3.decode_layer import DecodeLayer
from tilelang_models.qwen3.paged import make_paged_cache
from tilelang_models.qwen3.reference import decode_layer_ref
from tilelang_models.qwen3.weights import random_weights


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="14b")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--block-size", type=int, default=128)
    a = ap.parse_args()
    cfg = get_config(a.config)
    w = random_weights(cfg, 0)
    lens = [a.seq] + [a.seq - 37 * i for i in range(1, a.batch)]
    lens = [max(1, n) for n in lens]
    k, v, bt, sl = make_paged_cache(cfg, lens, a.block_size, 1)
    x = torch.randn(a.batch, cfg.hidden_size).bfloat16()
    cold = DecodeLayer(cfg, w, compile_cfg=dict(disk_cache=False), progress=False)
    cold.gemm_tiles(a.batch)  # the NPU tile search (timing model, cached): not compile time
    clear_memory_cache()
    compile_s = cold.compile(a.batch, a.block_size)
    k_ref, v_ref = k.clone(), v.clone()
    t0 = time.perf_counter()
    want = decode_layer_ref(cfg, w, x, k_ref, v_ref, bt, sl)
    ref_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = cold(x, k, v, bt, sl)
    sim_s = time.perf_counter() - t0
    rel = float((out.float() - want.float()).abs().max() / want.float().abs().max())
    print(json.dumps({"bench": "qwen3_layer", "config": cfg.name, "batch": a.batch,
                      "seq": a.seq, "block_size": a.block_size,
                      "compile_all_cold_s": round(compile_s, 3), "compile_budget_s": 0.5,
                      "sim_step_s": round(sim_s, 2), "sim_budget_s": 60.0,
                      "torch_ref_s": round(ref_s, 3),
                      "ratio_sim_to_torch_ref": round(sim_s / ref_s, 1),
                      "per_kernel_s": {n: round(s, 3) for n, s in cold.times.per_kernel.items()},
                      "rel_err": rel}))


if __name__ == "__main__":
    main()
