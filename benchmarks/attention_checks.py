"""Checker cost on the flash-attention decode example: checks="all" vs off, same run.

    python benchmarks/attention_checks.py [--s 4096] [--g 5] [--reps 5]
"""
import argparse
import json
import time

import torch

import mixtile as mt
from tilelang_models.kernels.attention import flash_decode


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--s", type=int, default=4096)
    ap.add_argument("--g", type=int, default=5)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(a.g, 128, generator=gen).bfloat16()
    k = torch.randn(a.s, 128, generator=gen).bfloat16()
    v = torch.randn(a.s, 128, generator=gen).bfloat16()
    out = torch.empty(a.g, 128)
    best = {True: float("inf"), False: float("inf")}
    for checks in (True, False):  # compile and convert once
        mt.run_jit(flash_decode, q, k, v, out, checks=checks)
    for _ in range(a.reps):
        for checks in (True, False):
            t0 = time.perf_counter()
            mt.run_jit(flash_decode, q, k, v, out, checks=checks)
            best[checks] = min(best[checks], time.perf_counter() - t0)
    print(json.dumps({"bench": "attention_checks", "g": a.g, "s": a.s,
                      "checks_on_ms": round(best[True] * 1e3, 2),
                      "checks_off_ms": round(best[False] * 1e3, 2),
                      "ratio_on_off": round(best[True] / best[False], 2), "target_ratio": 2.0}))


if __name__ == "__main__":
    main()
