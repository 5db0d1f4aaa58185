"""Tile sizes of the decode-layer GEMMs on a GPU: each kernel alone, in a CUDA graph, per
(TN, TK), at Qwen3-14B shapes; prints achieved weight bandwidth vs a D2D copy.

    python benchmarks/gpu_tile_sweep.py [--batch 1]
"""
import argparse
import json

import torch

import mixtile as mt
from tilelang_models.qwen3.config import get_config
from tilelang_models.qwen3.kernels import gemm_residual, rmsnorm_gemm, rmsnorm_swiglu


def _graph_ms(fn, reps=30):
    fn()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    g.replay()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    return sorted(ts)[len(ts) // 2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1)
    a = ap.parse_args()
    cfg = get_config("14b")
    h, i = cfg.hidden_size, cfg.intermediate_size
    nqkv = cfg.q_size + 2 * cfg.kv_size
    b = a.batch
    bf = dict(dtype=torch.bfloat16, device="cuda")
    x = torch.randn(b, h, **bf)
    g = torch.ones(h, **bf)
    src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    copy_ms = _graph_ms(lambda: dst.copy_(src))
    bw = 2 * src.numel() / copy_ms * 1e3
    cases = {
        "qkv": (rmsnorm_gemm, lambda: (x, g, torch.randn(nqkv, h, **bf),
                                       torch.empty(b, nqkv, **bf), 1e-6), nqkv * h * 2),
        "o_proj": (gemm_residual, lambda: (torch.randn(b, h, **bf), torch.randn(h, h, **bf),
                                           x, torch.empty(b, h, **bf)), h * h * 2),
        "gate_up": (rmsnorm_swiglu, lambda: (x, g, torch.randn(i, h, **bf),
                                             torch.randn(i, h, **bf),
                                             torch.empty(b, i, **bf), 1e-6), 2 * i * h * 2),
        "down": (gemm_residual, lambda: (torch.randn(b, i, **bf), torch.randn(h, i, **bf), x,
                                         torch.empty(b, h, **bf)), h * i * 2),
    }
    rows = []
    for name, (kern, make, nbytes) in cases.items():
        args = make()
        for tn in (16, 32, 64):
            for tk in (128, 256, 512):
                try:
                    ms = _graph_ms(lambda: mt.run_jit(kern, *args, target="cuda", TM=16,
                                                      TN=tn, TK=tk))
                except Exception as e:  # a tile that does not fit: report, go on
                    rows.append({"kernel": name, "TN": tn, "TK": tk, "error": str(e)[:80]})
                    continue
                rows.append({"kernel": name, "TN": tn, "TK": tk, "ms": round(ms, 4),
                             "x_floor": round(ms / (nbytes / bw * 1e3), 2)})
        best = min((r for r in rows if r["kernel"] == name and "ms" in r),
                   key=lambda r: r["ms"])
        print(f"{name:8} best TN={best['TN']} TK={best['TK']}: {best['ms']:.4f} ms "
              f"({best['x_floor']}x of its weight-read floor)")
    print(json.dumps({"bench": "gpu_tile_sweep", "batch": b, "device":
                      torch.cuda.get_device_name(), "copy_GBps": round(bw / 1e9), "rows": rows}))


if __name__ == "__main__":
    main()
