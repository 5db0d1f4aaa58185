"""The --tp N side of the Qwen3 CLIs (python -m tilelang_models.qwen3 and .generate), run
under torchrun: joining the group, the layer's golden check on every rank, rank 0 printing.

    torchrun --nproc-per-node 2 -m tilelang_models.qwen3 --config tiny --target sim --tp 2
"""
from __future__ import annotations

import os
import time

import torch

from tilelang_models.qwen3.config import Qwen3Config
from tilelang_models.qwen3.decode_layer import DecodeLayer
from tilelang_models.qwen3.tp import (
    TPDecodeLayer,
    TPGroup,
    init_tp,
    shard_layer,
    tp_config,
)


def rank() -> int:
    """This process's rank under torchrun (0 outside it): only rank 0 prints results."""
    return int(os.environ.get("RANK", "0"))


def start(a, cfg: Qwen3Config) -> TPGroup | None:
    """None for one device (--tp 1 outside torchrun); else the checked shapes (tp_config's
    error names the sizes and the fix) and the joined process group. a: the parsed
    arguments (tp, target; save and emit_ascendc, one-device options, where the CLI has
    them)."""
    import mixtile as mt

    if a.tp == 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return None
    if getattr(a, "save", None) or getattr(a, "emit_ascendc", None):
        raise mt.ArgumentError("--save and --emit-ascendc are one-device options",
                               fix="drop --tp (and torchrun) for them")
    tp_config(cfg, a.tp)
    return init_tp(a.tp, a.target)


def run_layer(a, tp: TPGroup, cfg: Qwen3Config, w, inputs, refs, lens, rtol) -> dict:
    """One decode step of the layer over the ranks, checked against the one-device
    reference: out (whole, after the all-reduce) on every rank, and each rank's KV heads
    of the caches; errors are reduced over the ranks (max error / max |reference| of each
    tensor), so every rank returns the same verdict."""
    import mixtile as mt

    backend = mt.get_backend(a.target)
    dev = backend.device()
    rc = tp_config(cfg, tp.size)
    kvh = slice(tp.rank * rc.num_key_value_heads, (tp.rank + 1) * rc.num_key_value_heads)
    x, k_cache, v_cache, block_table, seq_lens = inputs
    want, k_ref, v_ref = refs
    ws = shard_layer(w, cfg, tp.rank, tp.size)
    ws = type(ws)(**{n: t.to(dev) for n, t in ws.items()})
    k_loc, v_loc = (c[:, :, kvh].contiguous().to(dev) for c in (k_cache, v_cache))
    x, block_table, seq_lens = (t.to(dev) for t in (x, block_table, seq_lens))
    layer = TPDecodeLayer(DecodeLayer(rc, ws, target=backend.name,
                                      compile_cfg=None if a.arch is None else dict(arch=a.arch),
                                      progress=False, norm_stats=False), tp)
    t0 = time.perf_counter()
    compile_s = layer.compile(a.batch, a.block_size)
    out = layer(x, k_loc, v_loc, block_table, seq_lens).cpu()  # waits for the device
    run_s = time.perf_counter() - t0 - compile_s
    stats = []
    for got, ref in ((out, want), (k_loc.cpu(), k_ref[:, :, kvh]), (v_loc.cpu(), v_ref[:, :, kvh])):
        g, r = got.float(), ref.float()
        stats += [float((g - r).abs().max()), float(r.abs().max())]
    stats.append(0.0 if bool(torch.isfinite(out.float()).all()) else 1.0)
    red = torch.tensor(stats, dtype=torch.float64, device=dev)
    with tp.located("error reduction"):
        torch.distributed.all_reduce(red, op=torch.distributed.ReduceOp.MAX, group=tp.group)
    red = red.tolist()
    max_abs = max(red[0:6:2])
    rel = max(e / max(s, 1e-12) for e, s in zip(red[0:6:2], red[1:6:2]))
    passed = rel <= rtol and red[6] == 0.0
    if tp.rank == 0:
        print(f"{cfg.name}: batch {a.batch}, seq lens {lens}, tp {tp.size}, rank 0 per-kernel "
              f"run s { {k: round(v, 3) for k, v in layer.times.per_kernel.items()} }")
    return {"config": cfg.name, "target": backend.name, "batch": a.batch, "seq": a.seq,
            "max_abs_err": max_abs, "rel_err": rel, "passed": passed,
            "compile_s": round(compile_s, 4), "run_s": round(run_s, 4), "tp": tp.size}
