"""Compile speed: all passes, cold cache, for the GEMM + bias/ReLU/bf16 epilogue kernel,
and the same kernel compiled for the NPU (Ascend C pipeline + source emission).

    python benchmarks/compile_time.py [--reps 20]

Baseline in the same run: tracing alone (running the Python kernel body once), so the
ratio shows what the pass pipeline costs on top of the user's own Python.
"""
import argparse
import json
import statistics
import time

import mixtile as mt
from mixtile.runtime.compiler import clear_memory_cache
from tilelang_models.kernels.gemm import gemm_bias_relu_bf16 as kern


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    cfg = dict(disk_cache=False)
    mt.compile(kern, compile_cfg=cfg)  # warm the imports
    full, trace, per_pass = [], [], {}
    for _ in range(a.reps):
        clear_memory_cache()
        t0 = time.perf_counter()
        ck = mt.compile(kern, compile_cfg=cfg)
        full.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        kern.trace(kern.resolve_consts({}))
        trace.append(time.perf_counter() - t0)
        for name, s in ck.timings:
            per_pass.setdefault(name, []).append(s)
    npu = []
    for _ in range(a.reps):
        clear_memory_cache()
        t0 = time.perf_counter()
        assert mt.compile(kern, compile_cfg=cfg, target="npu").code
        npu.append(time.perf_counter() - t0)
    med = statistics.median(full)
    print(json.dumps({
        "bench": "compile_time", "kernel": kern.name, "cold_compile_ms": round(med * 1e3, 2),
        "trace_ms": round(statistics.median(trace) * 1e3, 2),
        "ratio_to_trace": round(med / statistics.median(trace), 1),
        "budget_ms": 50.0, "within_budget": med < 0.050,
        "npu_compile_and_emit_ms": round(statistics.median(npu) * 1e3, 2),
        "npu_ratio_to_sim_compile": round(statistics.median(npu) / med, 2),
        "passes_ms": {k: round(statistics.median(v) * 1e3, 3) for k, v in per_pass.items()}}))


if __name__ == "__main__":
    main()
