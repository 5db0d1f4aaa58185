"""The NPU timing model's estimate of one Qwen3 decode layer (a model estimate, not a
measurement): every sequence at the same context length, the simulator running each of
the layer's five kernels with the timing model on, one combined trace.

    python benchmarks/npu_estimate.py [--config 14b] [--batch 16] [--seq 4096]
        [--block-size 128] [--arch a2] [--trace layer.json]

Prints each kernel's estimate and summary, then one JSON line. The projection tiles are
the ones DecodeLayer.gemm_tiles picks on an NPU target (mt.autotune by the same model).
"""
import argparse
import json
import time

import torch

import mixtile as mt
from tilelang_models.qwen3.config import get_config
from tilelang_models.qwen3.decode_layer import DecodeLayer
from tilelang_models.qwen3.paged import make_paged_cache
from tilelang_models.qwen3.weights import random_weights


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="14b")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--arch", default="a2")
    ap.add_argument("--trace", default=None)
    a = ap.parse_args()
    cfg = get_config(a.config)
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
