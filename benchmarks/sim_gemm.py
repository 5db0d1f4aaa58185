"""Simulator speed: a 16x5120x5120 bf16 GEMM kernel vs numpy's float32 matmul, same run.

    python benchmarks/sim_gemm.py [--reps 5]

Prints one JSON line: the best-of-reps times and the ratios sim / numpy, cold (first call:
includes converting the bf16 inputs to the simulator's float32 compute form) and warm
(inputs already converted, as for weights reused across decode steps).
"""
import argparse
import json
import time

import numpy as np
import torch

import mixtile as mt
from tilelang_models.kernels.gemm import gemm

M, N, K = 16, 5120, 5120
TILES = dict(TM=16, TN=256, TK=128)  # the 256x128 bf16 weight tile fills L0B's 64 KiB


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    x32, w32 = torch.randn(M, K, generator=g), torch.randn(N, K, generator=g) / K ** 0.5
    xn, wn = x32.numpy(), w32.numpy()
    y = torch.empty(M, N)
    mt.compile(gemm, **TILES)
    best = {"numpy": 1e9, "cold": 1e9, "warm": 1e9}
    for _ in range(a.reps):
        t0 = time.perf_counter()
        ref = xn @ wn.T
        best["numpy"] = min(best["numpy"], time.perf_counter() - t0)
        x, w = x32.bfloat16(), w32.bfloat16()  # fresh tensors: nothing converted yet
        t0 = time.perf_counter()
        mt.run_jit(gemm, x, w, y, **TILES)
        best["cold"] = min(best["cold"], time.perf_counter() - t0)
        t0 = time.perf_counter()
        mt.run_jit(gemm, x, w, y, **TILES)
        best["warm"] = min(best["warm"], time.perf_counter() - t0)
    err = float(np.abs(y.numpy() - x.float().numpy() @ w.float().numpy().T).max())
    assert err < 1e-2, err
    del ref
    out = {"bench": "sim_gemm", "shape": [M, N, K], "tiles": TILES,
           "numpy_f32_ms": round(best["numpy"] * 1e3, 2),
           "sim_cold_ms": round(best["cold"] * 1e3, 2),
           "sim_warm_ms": round(best["warm"] * 1e3, 2),
           "ratio_cold": round(best["cold"] / best["numpy"], 2),
           "ratio_warm": round(best["warm"] / best["numpy"], 2), "target_ratio": 5.0}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
