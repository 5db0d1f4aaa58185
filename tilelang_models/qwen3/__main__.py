"""One Qwen3 decode step on a target, compared with the torch reference.

    python -m tilelang_models.qwen3 --config tiny --target sim [--arch a2] [--batch B]
        [--seq S] [--hf-dir DIR --layer N] [--save FILE.npz] [--seed K] [--block-size 16]
        [--timeline FILE.json]
    python -m tilelang_models.qwen3 --config 14b --batch 16 --emit-ascendc DIR [--arch a2]
    torchrun --nproc-per-node 2 -m tilelang_models.qwen3 --config tiny --tp 2   (docs/tp.md)

--target is a backend (sim, cuda, npu, or auto: the first of an NPU, a CUDA GPU, the
simulator that this machine has); the layer runs on that backend's device (for cuda under
TRITON_INTERPRET=1, Triton's CPU interpreter, on CPU tensors), the torch reference on the
CPU. --arch picks the machine where the backend has several (a2, a3, a5 for sim and npu).

Prints a summary and, last, one JSON line (config, target, batch, seq, max_abs_err,
rel_err, passed, compile_s, run_s; with --timeline also estimated_us); exits 1 on a
mismatch. --timeline (target sim) runs the NPU timing model on each of the layer's five
kernels and writes one Chrome / Perfetto trace with the kernels in sequence (each
kernel's cores a group of tracks named after it) and their summaries; the layer's
estimated time is the sum of the kernels' (docs/timeline.md). With --emit-ascendc it runs
nothing: it writes the Ascend C source of each of the layer's kernels into DIR and
prints one JSON line listing them (no NPU or CANN needed).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

import mixtile as mt
from tilelang_models.qwen3 import tp_cli
from tilelang_models.qwen3.cli_util import emit_ascendc, err
from tilelang_models.qwen3.config import get_config
from tilelang_models.qwen3.decode_layer import DecodeLayer
from tilelang_models.qwen3.moe_cli import run_moe, wants_moe
from tilelang_models.qwen3.paged import make_paged_cache
from tilelang_models.qwen3.reference import decode_layer_ref
from tilelang_models.qwen3.weights import load_hf_layer, random_weights

# bf16 storage at every step: errors of 1-2 bf16 ulps of the largest values pass
RTOL, ATOL_REL = 2e-2, 2e-2


def run(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m tilelang_models.qwen3",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="tiny", help="tiny, 0.6b, 8b, 14b, the MoE presets "
                    "tiny-moe, 30b-a3b, 235b-a22b, or a config.json")
    ap.add_argument("--target", default="sim", choices=(*mt.BACKENDS, "auto"))
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--seq", type=int, default=100, help="the longest sequence in the batch")
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--hf-dir", default=None)
    ap.add_argument("--layer", type=int, default=0)
    ap.add_argument("--save", default=None, help="write x, out, seq_lens, block_table, "
                                                 "k_cache, v_cache (after the step) to .npz")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--emit-ascendc", default=None, metavar="DIR",
                    help="write the layer's Ascend C kernel sources to DIR and stop")
    ap.add_argument("--arch", default=None,
                    help="the machine: a2, a3, a5 for sim and npu (default a2)")
    ap.add_argument("--timeline", default=None, metavar="FILE",
                    help="write the NPU timing model's trace of the step (target sim)")
    ap.add_argument("--tp", type=int, default=1,
                    help="tensor-parallel ranks (under torchrun --nproc-per-node N; docs/tp.md)")
    ap.add_argument("--fp8", action="store_true",
                    help="MoE presets: random experts quantised to e4m3 in 128x128 blocks")
    a = ap.parse_args(argv)
    if a.timeline and a.tp > 1:
        ap.error("--timeline traces one device's step: run it without --tp")
    if wants_moe(a):  # a Qwen3-MoE preset or checkpoint layer (docs/moe.md)
        if a.timeline or a.tp > 1:
            ap.error("a Qwen3-MoE layer runs on one device, without --timeline or --tp")
        return run_moe(a)
    cfg = get_config(a.hf_dir or a.config)
    tp = tp_cli.start(a, cfg)  # None: one device
    w = load_hf_layer(a.hf_dir, a.layer, cfg) if a.hf_dir else random_weights(cfg, a.seed)
    if a.emit_ascendc:
        return emit_ascendc(a.config, DecodeLayer(cfg, w, target="sim", compile_cfg=dict(
            arch=a.arch), progress=False), a)
    backend = mt.get_backend(a.target)  # "auto" resolved
    backend.require()
    dev = backend.device()
    gen = torch.Generator().manual_seed(a.seed + 1)
    # different lengths within the batch; the longest is --seq
    lo = max(1, a.seq // 2)
    pool = torch.randperm(a.seq - lo, generator=gen) + lo  # distinct lengths below --seq
    lens = [a.seq] + [int(pool[i % len(pool)]) if len(pool) else a.seq
                      for i in range(a.batch - 1)]
    k_cache, v_cache, block_table, seq_lens = make_paged_cache(cfg, lens, a.block_size,
                                                               a.seed + 2)
    x = torch.randn(a.batch, cfg.hidden_size, generator=gen).bfloat16()
    k_ref, v_ref = k_cache.clone(), v_cache.clone()
    want = decode_layer_ref(cfg, w, x, k_ref, v_ref, block_table, seq_lens)
    if tp is not None:
        return tp_cli.run_layer(a, tp, cfg, w, (x, k_cache, v_cache, block_table, seq_lens),
                                (want, k_ref, v_ref), lens, RTOL)
    w_dev = type(w)(**{name: t.to(dev) for name, t in w.items()})
    x, k_cache, v_cache, block_table, seq_lens = (
        t.to(dev) for t in (x, k_cache, v_cache, block_table, seq_lens))
    layer = DecodeLayer(cfg, w_dev, target=backend.name,
                        compile_cfg=None if a.arch is None else dict(arch=a.arch))
    if a.timeline:
        layer.timelines = []
    t0 = time.perf_counter()
    compile_s = layer.compile(a.batch, a.block_size)
    out = layer(x, k_cache, v_cache, block_table, seq_lens).cpu()  # waits for the device
    run_s = time.perf_counter() - t0 - compile_s
    k_cache, v_cache = k_cache.cpu(), v_cache.cpu()
    errs = [err(out, want), err(k_cache, k_ref), err(v_cache, v_ref)]
    max_abs = max(e[0] for e in errs)
    rel = max(e[1] for e in errs)
    passed = rel <= RTOL and bool(torch.isfinite(out.float()).all())
    if a.save:
        np.savez(a.save, x=x.float().cpu().numpy(), out=out.float().numpy(),
                 seq_lens=seq_lens.cpu().numpy(), block_table=block_table.cpu().numpy(),
                 k_cache=k_cache.float().numpy(), v_cache=v_cache.float().numpy())
    print(f"{cfg.name}: batch {a.batch}, seq lens {lens}, per-kernel run s "
          f"{ {k: round(v, 3) for k, v in layer.times.per_kernel.items()} }")
    res = {"config": cfg.name, "target": backend.name, "batch": a.batch, "seq": a.seq,
           "max_abs_err": max_abs, "rel_err": rel, "passed": passed,
           "compile_s": round(compile_s, 4), "run_s": round(run_s, 4)}
    if a.timeline:
        mt.write_trace(layer.timelines, a.timeline)
        for tl in layer.timelines:
            print(tl.text())
        res["estimated_us"] = round(sum(tl.makespan_us for tl in layer.timelines), 2)
        print(f"layer estimate (NPU timing model, {layer.timelines[0].target.name}): "
              f"{res['estimated_us']} us; trace: {a.timeline}")
    return res


def main(argv=None) -> int:
    res = run(argv)
    if "kernels" in res:  # --emit-ascendc: emit_ascendc printed its summary
        return 0
    if tp_cli.rank() == 0:
        print(json.dumps(res))
    return 0 if res["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
