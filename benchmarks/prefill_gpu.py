"""Causal prefill attention on a GPU: mixtile's fmha_prefill (Triton) against torch SDPA
with each backend it offers (flash, cuDNN, efficient) and FlashAttention if importable,
same run, same inputs; Qwen3-14B heads (40 q / 8 kv), batch 1.

    python benchmarks/prefill_gpu.py [--seqs 1024,4096,16384] [--dims 128] [--tiles 128x64]

TFLOPS count the causal half: 2 matmuls x 2 flops x S^2 / 2 x heads x head dim. Each
time is the median of triton.testing.do_bench (warm-up and repeats in ms). The mixtile
kernel runs through a bound launcher with launch configs tuned once (tune=True). Every
variant's output is checked against SDPA (max abs error printed). Prints a table, then a
JSON line.
"""
import argparse
import json
import math

import torch
import torch.nn.functional as F
import triton

import mixtile as mt
from tilelang_models.kernels.prefill import fmha_prefill

HQ, KVH = 40, 8


def _sdpa(backend, q, k, v):
    """SDPA on [1, H, S, D] inputs made before timing (the KV heads repeated for GQA, so
    every backend gets the layout it takes best; the copies are not timed)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    b = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
         "efficient": SDPBackend.EFFICIENT_ATTENTION}[backend]
    qq = q.transpose(0, 1)[None].contiguous()
    kk = k.transpose(0, 1)[None].repeat_interleave(HQ // KVH, 1).contiguous()
    vv = v.transpose(0, 1)[None].repeat_interleave(HQ // KVH, 1).contiguous()

    def run():
        with sdpa_kernel([b]):
            return F.scaled_dot_product_attention(qq, kk, vv, is_causal=True)[0].transpose(0, 1)
    return run


def _flash_attn():
    try:
        from flash_attn import flash_attn_func
    except ImportError:
        return None
    return lambda q, k, v: flash_attn_func(q[None], k[None], v[None], causal=True)[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seqs", default="1024,4096,16384")
    ap.add_argument("--dims", default="128")
    ap.add_argument("--tiles", default="", help="TMxTN of the mixtile kernel (default: "
                    "128x64 up to hd 128, 64x64 above)")
    a = ap.parse_args()
    rows = []
    for d in (int(x) for x in a.dims.split(",")):
        tiles = a.tiles or ("128x64" if d <= 128 else "64x64")
        tm, tn = (int(x) for x in tiles.split("x"))
        for s in (int(x) for x in a.seqs.split(",")):
            g = torch.Generator(device="cuda").manual_seed(s + d)
            q = torch.randn(s, HQ, d, device="cuda", generator=g).bfloat16()
            k = torch.randn(s, KVH, d, device="cuda", generator=g).bfloat16()
            v = torch.randn(s, KVH, d, device="cuda", generator=g).bfloat16()
            cu = torch.tensor([0, s], dtype=torch.int32, device="cuda")
            out = torch.empty_like(q)
            flops = 4 * s * s / 2 * HQ * d
            ref = _sdpa("flash", q, k, v)() if d <= 256 else None
            variants = {}
            ck = mt.compile(fmha_prefill, target="cuda", TM=tm, TN=tn, D=d, HQ=HQ, KVH=KVH)
            launch = ck.bind(q, k, v, cu, cu, out, s, 1 / math.sqrt(d), tune=True)
            variants["mixtile"] = lambda: launch(q, k, v, cu, cu, out, s, 1 / math.sqrt(d))
            for name in ("flash", "cudnn", "efficient"):
                try:
                    variants[f"sdpa_{name}"] = _sdpa(name, q, k, v)
                except Exception as e:  # noqa: BLE001 (reported in the table)
                    rows.append(dict(d=d, s=s, variant=f"sdpa_{name}", error=str(e)[:120]))
            fa = _flash_attn()
            if fa is not None:
                variants["flash_attn"] = lambda: fa(q, k, v)
            for name, fn in variants.items():
                try:
                    res = fn()
                    got = out if name == "mixtile" else res
                    err = float((got.float() - ref.float()).abs().max()) if ref is not None \
                        else float("nan")
                    ms = triton.testing.do_bench(fn, warmup=50, rep=200,
                                                 return_mode="median")
                    rows.append(dict(d=d, s=s, variant=name, ms=ms, tiles=tiles,
                                     tflops=flops / ms / 1e9, max_err=err))
                except Exception as e:  # a backend this torch or card does not offer
                    rows.append(dict(d=d, s=s, variant=name, error=str(e)[:120]))
    print(f"{'d':>4} {'S':>6} {'variant':<16} {'ms':>9} {'TFLOPS':>8} {'max_err':>8}")
    for r in rows:
        if "error" in r:
            print(f"{r['d']:>4} {r['s']:>6} {r['variant']:<16} unavailable: {r['error']}")
        else:
            print(f"{r['d']:>4} {r['s']:>6} {r['variant']:<16} {r['ms']:9.3f} "
                  f"{r['tflops']:8.1f} {r['max_err']:8.3g}")
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "triton": triton.__version__, "rows": rows}))


if __name__ == "__main__":
    main()
