"""fmha_prefill on the CPU: the cold compile time at head dim 512 (and 128), and the
simulator's time for one prefill attention at Qwen3-14B heads (40 q / 8 kv, hd 128).

    python benchmarks/prefill_sim.py [--seq 4096] [--tiles 128x64] [--arch a2]

--arch: the prefill attention also runs with the NPU timing model of that machine (a
model estimate, not a measurement): its makespan, bound and TFLOPS (causal: 2 * S^2 * hd
* heads flops) against the timing table's cube peak.

Cold: no memory or disk cache (compile_cfg disk_cache=False after clearing the memory
cache), median of 3. Prints a JSON line.
"""
import argparse
import json
import math
import statistics
import time

import torch

import mixtile as mt
from mixtile.runtime.compiler import clear_memory_cache
from tilelang_models.kernels.prefill import fmha_prefill


def cold_compile(d: int, target: str) -> float:
    times = []
    for _ in range(3):
        clear_memory_cache()
        t0 = time.perf_counter()
        # whole-D tiles: at hd 512 the q tile (TM x 512) and the k / v tiles (TN x 512)
        # must fit L0A / L0B (64 KiB each on A2)
        t = 32 if d > 256 else 64
        mt.compile(fmha_prefill, dict(disk_cache=False), target=target, TM=t, TN=t, D=d,
                   HQ=40, KVH=8)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--tiles", default="128x64")
    ap.add_argument("--arch", default=None, help="a2, a3 or a5: also the NPU estimate")
    a = ap.parse_args()
    out = {f"compile_s_hd{d}_{t}": round(cold_compile(d, t), 3)
           for d in (512, 128) for t in ("sim", "npu")}
    tm, tn = (int(x) for x in a.tiles.split("x"))
    s, d = a.seq, 128
    g = torch.Generator().manual_seed(0)
    q = torch.randn(s, 40, d, generator=g).bfloat16()
    k, v = (torch.randn(s, 8, d, generator=g).bfloat16() for _ in range(2))
    cu = torch.tensor([0, s], dtype=torch.int32)
    o = torch.empty_like(q)
    t0 = time.perf_counter()
    res = mt.run_jit(fmha_prefill, q, k, v, cu, cu, o, s, 1 / math.sqrt(d), TM=tm, TN=tn,
                     D=d, HQ=40, KVH=8, compile_cfg=dict(arch=a.arch) if a.arch else None,
                     timeline=bool(a.arch) or None)
    out.update(seq=s, tiles=a.tiles, sim_s=round(time.perf_counter() - t0, 1),
               sim_run_s=round(res.run_s, 1), finite=bool(torch.isfinite(o.float()).all()))
    if a.arch:
        tl = res.timeline
        t = mt.get_target(a.arch)
        peak = t.clusters * 16 ** 3 * 2 * t.timing.clock_hz  # one 16^3 MAC block / cycle
        flops = 2 * s * s * d * 40  # causal: half of QK^T and PV
        out.update(arch=a.arch, estimate_us=round(tl.makespan_us, 1), bound=tl.bound(),
                   estimate_TFLOPS=round(flops / tl.makespan_us / 1e6, 1),
                   peak_TFLOPS=round(peak / 1e12, 1),
                   utilisation={k: round(v, 2) for k, v in tl.utilisation().items()})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
