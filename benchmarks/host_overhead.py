"""Host-side cost of mixtile's CUDA launch path (run_jit -> Triton), per Qwen3 layer step,
measured without a GPU: Triton's own launcher is replaced by a no-op, so what is timed is
mixtile's part (argument checks, compile-cache lookup, arguments, grids).

    python benchmarks/host_overhead.py [--steps 200]

Baseline in the same run: the same calls with the per-kernel launch tables cleared
before every call (the module looked up by source hash and the grids evaluated each
time, as before they were kept). Prints both and the ratio, then a JSON line.
"""
import argparse
import json
import time

import torch

import mixtile.runtime.jit as jit
from mixtile.runtime import gpu
from tilelang_models.qwen3.config import get_config
from tilelang_models.qwen3.decode_layer import DecodeLayer
from tilelang_models.qwen3.paged import make_paged_cache
from tilelang_models.qwen3.weights import random_weights


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    a = ap.parse_args()
    gpu._launch = lambda *args, **kw: None  # Triton's launcher out: mixtile's part only
    gpu.interpreting = lambda: True  # CPU tensors pass the device check
    jit._has_triton = lambda: True
    cfg = get_config("tiny")
    layer = DecodeLayer(cfg, random_weights(cfg, 0), target="cuda", progress=False,
                        tune=False)
    k, v, bt, sl = make_paged_cache(cfg, [30, 20, 7], 16, 1)
    x = torch.randn(3, cfg.hidden_size).bfloat16()
    layer(x, k, v, bt, sl)  # compile

    def timed(reset: bool) -> float:
        t0 = time.perf_counter()
        for _ in range(a.steps):
            if reset:
                for hit in gpu._generated.values():
                    hit[3], hit[4] = None, {}
            layer(x, k, v, bt, sl)
        return (time.perf_counter() - t0) / a.steps * 1e6

    base = min(timed(True) for _ in range(3))
    kept = min(timed(False) for _ in range(3))
    n = len(layer.steps(x, k, v, bt, sl))
    print(f"per layer step ({n} launches): {kept:.0f} us, tables cleared each call "
          f"{base:.0f} us: {base / kept:.2f}x")
    print(json.dumps({"bench": "host_overhead", "launches": n, "us_per_step": round(kept, 1),
                      "us_per_step_no_tables": round(base, 1),
                      "ratio": round(base / kept, 2)}))


if __name__ == "__main__":
    main()
