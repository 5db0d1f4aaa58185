"""The Qwen3-MoE sparse block on a GPU: mixtile (Triton backend; bf16 and block-scaled FP8)
against the HBM floor of the experts it touches, a torch loop over the experts, and
torch._grouped_mm / torch._scaled_grouped_mm, all measured in one run.

    python benchmarks/moe_gpu.py [--config 30b-a3b] [--tokens 1,8,32] [--prefill 4096]
    python benchmarks/moe_gpu.py --smoke     # tiny shapes on the CPU (Triton's interpreter)

Per token count T (random bf16 inputs; the routing the router gives, about T * top_k / E
rows per expert):
- floor: (router weight + the weights of the experts the routing touches, each read once,
  + their FP8 scales) / the bandwidth of a device-to-device copy measured in the same run
  (the fastest copy of the run: the strictest floor).
- mixtile: the block's four launches (moe_router, moe_sort, moe_gate_up, moe_down) per
  call, eager and replayed from a CUDA graph (graph: time per block in a graph of 4).
- torch_loop: the transformers-style loop over the experts the routing hits (nonzero,
  index_add_), bf16, eager (its host syncs keep it out of a graph).
- grouped_mm: the sorted rows through torch._grouped_mm (gate/up, SiLU * up, down), the
  sort and the weighted scatter-add in torch; gemm-only columns time the two grouped GEMMs
  alone. scaled_grouped_mm: the same with torch._scaled_grouped_mm on e4m3 operands
  (rowwise scales: its API has no 128x128 blocks), where this torch and GPU have it.
- layer: the whole MoeDecodeLayer step (attention over a paged cache of --seq positions
  per sequence, then the block; bf16) in a CUDA graph, against its own floor (attention
  weights + KV cache read + the block's floor bytes).
--prefill T adds a row at T tokens with TFLOPS (2 * 3 * T * top_k * H * I flops; the block
alone, no layer column).
Prints a table and one JSON line; also checks mixtile's output against the torch golden
(moe_ref, with mixtile's routing) and prints the max error.
"""
import argparse
import json
import os
import sys
import time

if "--smoke" in sys.argv and not os.environ.get("TRITON_INTERPRET"):
    os.environ["TRITON_INTERPRET"] = "1"  # before Triton is imported

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from tilelang_models.qwen3.moe import MoeBlock, MoeWeights, random_moe_weights  # noqa: E402
from tilelang_models.qwen3.moe_config import get_moe_config  # noqa: E402
from tilelang_models.qwen3.moe_layer import MoeDecodeLayer  # noqa: E402
from tilelang_models.qwen3.moe_reference import moe_ref  # noqa: E402
from tilelang_models.qwen3.moe_weights import ATTN_FIELDS, MoeLayerWeights  # noqa: E402
from tilelang_models.qwen3.paged import make_paged_cache  # noqa: E402
from tilelang_models.qwen3.weights import LayerWeights, expected_shapes  # noqa: E402

CUDA = torch.cuda.is_available()
DEV = "cuda" if CUDA else "cpu"
GRAPH_STEPS = 4


def _ms(fn, reps=20) -> float:
    """Median ms of fn (CUDA events; wall clock on the CPU)."""
    fn()
    if not CUDA:
        t = []
        for _ in range(max(1, reps // 10)):
            t0 = time.perf_counter()
            fn()
            t.append((time.perf_counter() - t0) * 1e3)
        return sorted(t)[len(t) // 2]
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return sorted(times)[len(times) // 2]


def _graph_ms(fn) -> float | None:
    if not CUDA:
        return None
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(GRAPH_STEPS):
            fn()
    return _ms(g.replay) / GRAPH_STEPS


def copy_bandwidth() -> float:
    """Bytes/s (read + write) of a 1 GiB device-to-device copy after 50 warm-up copies
    (a 16 MiB one on the CPU)."""
    n = (1 << 30) if CUDA else (1 << 24)
    src = torch.empty(n, dtype=torch.uint8, device=DEV)
    dst = torch.empty_like(src)
    for _ in range(50 if CUDA else 2):
        dst.copy_(src)
    ms = _ms(lambda: dst.copy_(src))
    del src, dst
    if CUDA:
        torch.cuda.empty_cache()
    return 2 * n / (ms / 1e3)


def touched_bytes(w: MoeWeights, ids: torch.Tensor) -> int:
    """The router's bytes plus, for every expert the routing uses, its three weights and
    their scales: each read once."""
    used = torch.unique(ids.long()).numel()
    per = sum(t[0].numel() * t.element_size() for t in (w.gate, w.up, w.down))
    if w.fp8:
        per += sum(t[0].numel() * 4 for t in (w.s_gate, w.s_up, w.s_down))
    return w.router.numel() * w.router.element_size() + used * per


def torch_loop(w: MoeWeights, x, ids, wts):
    """transformers' Qwen3MoeExperts loop (bf16) over the experts the routing hits."""
    out = torch.zeros_like(x)
    for e in torch.unique(ids).tolist():
        t, j = torch.where(ids == e)
        h = x[t]
        a = F.silu(h @ w.gate[e].T) * (h @ w.up[e].T)
        out.index_add_(0, t, ((a @ w.down[e].T) * wts[t, j, None]).to(x.dtype))
    return out


def grouped_parts(w: MoeWeights, x, ids, wts):
    """(block, gemms): the block with torch._grouped_mm, and the two grouped GEMMs alone
    on the sorted rows (for the gemm-only columns)."""
    E = w.gate.shape[0]
    k = ids.shape[1]
    flat = ids.reshape(-1).long()
    order = torch.sort(flat, stable=True).indices
    offs = torch.cumsum(torch.bincount(flat, minlength=E), 0).to(torch.int32)
    wgu = torch.cat([w.gate, w.up], 1)  # [E, 2I, H]
    I = w.gate.shape[1]
    xs = x[order // k]

    def gemms(xs=xs, offs=offs):
        gu = torch._grouped_mm(xs, wgu.transpose(-2, -1), offs=offs)
        a = F.silu(gu[:, :I]) * gu[:, I:]
        return torch._grouped_mm(a, w.down.transpose(-2, -1), offs=offs)

    def block():
        flat_ = ids.reshape(-1).long()
        order_ = torch.sort(flat_, stable=True).indices
        offs_ = torch.cumsum(torch.bincount(flat_, minlength=E), 0).to(torch.int32)
        y = gemms(x[order_ // k], offs_) * wts.reshape(-1)[order_, None]
        out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        return out.index_add_(0, order_ // k, y.float()).to(x.dtype)

    return block, gemms


def scaled_grouped_parts(w: MoeWeights, x, ids):
    """The two grouped GEMMs with torch._scaled_grouped_mm on e4m3 operands, rowwise
    scales (activations per row, weights per output column)."""
    E, I, H = w.gate.shape
    k = ids.shape[1]
    flat = ids.reshape(-1).long()
    order = torch.sort(flat, stable=True).indices
    offs = torch.cumsum(torch.bincount(flat, minlength=E), 0).to(torch.int32)

    def rowwise(v):  # [..., R, C] -> e4m3 and one scale per row
        s = v.float().abs().amax(-1).clamp(min=1e-10) / 448.0
        return (v.float() / s[..., None]).to(torch.float8_e4m3fn), s

    gu_q, gu_s = rowwise(torch.cat([w.gate, w.up], 1).to(torch.bfloat16))
    d_q, d_s = rowwise(w.down.to(torch.bfloat16))
    xq, xs_ = rowwise(x[order // k])

    def gemms():
        gu = torch._scaled_grouped_mm(xq, gu_q.transpose(-2, -1), xs_, gu_s, offs=offs,
                                      out_dtype=torch.bfloat16)
        a = F.silu(gu[:, :I].float()) * gu[:, I:].float()
        aq, a_s = rowwise(a)
        return torch._scaled_grouped_mm(aq, d_q.transpose(-2, -1), a_s, d_s, offs=offs,
                                        out_dtype=torch.bfloat16)
    return gemms


def _try(fn):
    try:
        return fn(), None
    except Exception as e:  # noqa: BLE001  (an API this torch / GPU lacks: reported)
        return None, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"


def layer_weights(cfg, moe: MoeWeights) -> MoeLayerWeights:
    """Random attention weights (std 1/sqrt(in), norms near 1) with the block's experts."""
    g = torch.Generator().manual_seed(1)
    shapes = expected_shapes(cfg.attn)
    t = {}
    for n in ATTN_FIELDS:
        v = torch.randn(*shapes[n], generator=g)
        t[n] = (1 + 0.1 * v if v.dim() == 1 else v / shapes[n][1] ** 0.5).bfloat16().to(DEV)
    H = cfg.attn.hidden_size
    e = torch.empty(0, H, dtype=torch.bfloat16, device=DEV)
    return MoeLayerWeights(LayerWeights(**t, gate_proj=e, up_proj=e, down_proj=e.T), moe)


def bench_layer(T, cfg, lw, seq, tiles) -> tuple[float | None, int]:
    """(ms per MoeDecodeLayer step in a CUDA graph (eager off CUDA), attention bytes:
    weights + the KV cache read)."""
    kc, vc, bt, sl = (t.to(DEV) for t in make_paged_cache(cfg.attn, [seq] * T, 128, 1))
    x = torch.randn(T, cfg.attn.hidden_size, device=DEV).bfloat16()
    layer = MoeDecodeLayer(cfg, lw, target="cuda", progress=False, tiles=tiles)
    layer(x, kc, vc, bt, sl)  # compile, tune
    step = lambda: layer(x, kc, vc, bt, sl)  # noqa: E731  (rewrites the new token's slot)
    ms = _graph_ms(step) if CUDA else _ms(step)
    a = cfg.attn
    attn_bytes = sum(getattr(lw.attn, n).numel() * 2 for n in ATTN_FIELDS)
    return ms, attn_bytes + 2 * T * seq * a.num_key_value_heads * a.head_dim * 2


def bench_tokens(T, wb, wf, cfg, tiles, bw_list, prefill=False, seq=0) -> dict:
    E, H, I = wb.shape
    k = cfg.top_k
    x = torch.randn(T, H, device=DEV).bfloat16()
    row = {"tokens": T}
    for tag, w in (("bf16", wb), ("fp8", wf)):
        blk = MoeBlock(w, k, cfg.norm_topk_prob, target="cuda", tiles=tiles.get(tag))
        out = blk(x).clone()
        ids, wts = (t.clone() for t in blk.routing(T))
        wc = w.to("cpu")
        want = moe_ref(x.cpu(), wc.router, wc.gate, wc.up, wc.down, k, scales=wc.scales(),
                       norm_topk_prob=cfg.norm_topk_prob, routing=(ids, wts))
        row[f"{tag}_rel_err"] = float((out.float().cpu() - want.float()).abs().max()
                                      / want.float().abs().max())
        row[f"{tag}_bytes"] = touched_bytes(w, ids)
        row[f"{tag}_ms"] = _ms(lambda: blk(x))
        row[f"{tag}_graph_ms"] = _graph_ms(lambda: blk(x))
        row[f"{tag}_experts_used"] = int(torch.unique(ids).numel())
        if tag == "bf16":
            row["torch_loop_ms"] = _ms(lambda: torch_loop(wb, x, ids, wts))
            parts, err = _try(lambda: grouped_parts(wb, x, ids, wts))
            if parts is not None:
                block, gemms = parts
                loop = torch_loop(wb, x, ids, wts).float()
                row["grouped_mm_vs_loop"], _ = _try(  # the two torch baselines agree
                    lambda: float((block().float() - loop).abs().max() / loop.abs().max()))
                row["grouped_mm_ms"], err = _try(lambda: _ms(block))
                row["grouped_mm_gemm_ms"], _ = _try(lambda: _ms(gemms))
            if err:
                row["grouped_mm_error"] = err
        else:
            g, err = _try(lambda: scaled_grouped_parts(wb, x, ids))
            if g is not None:
                row["scaled_grouped_mm_gemm_ms"], err = _try(lambda: _ms(g))
            if err:
                row["scaled_grouped_mm_error"] = err
    if seq:
        row["layer_ms"], attn_bytes = bench_layer(T, cfg, layer_weights(cfg, wb), seq,
                                                  tiles.get("bf16"))
        row["layer_bytes"] = attn_bytes + row["bf16_bytes"]
    if prefill:
        flops = 2 * 3 * T * k * H * I
        for key in ("bf16_ms", "fp8_ms", "grouped_mm_gemm_ms", "scaled_grouped_mm_gemm_ms"):
            if row.get(key):
                row[key.replace("_ms", "_tflops")] = flops / (row[key] / 1e3) / 1e12
    bw_list.append(copy_bandwidth())
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="30b-a3b", help="30b-a3b, 235b-a22b, tiny-moe")
    ap.add_argument("--tokens", default="1,8,32")
    ap.add_argument("--prefill", type=int, default=0, help="also T tokens with TFLOPS")
    ap.add_argument("--seq", type=int, default=4096,
                    help="cached positions per sequence for the layer column (0: no layer)")
    ap.add_argument("--tiles", default=None,
                    help='JSON {"bf16": {"gate_up": {"TN": 64}}, "fp8": {...}}')
    ap.add_argument("--smoke", action="store_true",
                    help="tiny shapes on the CPU under Triton's interpreter (checks the "
                         "script; its bf16 dot is wrong there, so rel_err is not meaningful)")
    a = ap.parse_args()
    if not CUDA and not a.smoke:
        sys.exit("no CUDA GPU: run with --smoke for the CPU check of this script")
    cfg = get_moe_config("tiny-moe" if a.smoke else a.config)
    E, H, I = cfg.num_experts, cfg.attn.hidden_size, cfg.moe_intermediate_size
    wb = random_moe_weights(E, H, I, seed=0)
    wf = wb.quantized().to(DEV)
    wb = wb.to(DEV)
    tiles = json.loads(a.tiles) if a.tiles else {}
    bws = [copy_bandwidth()]
    tokens = [int(v) for v in a.tokens.split(",")] if not a.smoke else [1, 5]
    seq = 40 if a.smoke else a.seq
    rows = [bench_tokens(T, wb, wf, cfg, tiles, bws, seq=seq) for T in tokens]
    if a.prefill:
        rows.append(bench_tokens(a.prefill, wb, wf, cfg, tiles, bws, prefill=True))
    bw = max(bws)
    for r in rows:
        for tag in ("bf16", "fp8", "layer"):
            if f"{tag}_bytes" in r:
                r[f"{tag}_floor_ms"] = r.pop(f"{tag}_bytes") / bw * 1e3
    dev = torch.cuda.get_device_name() if CUDA else "CPU (Triton interpreter)"
    print(f"{dev}  {cfg.name}: {E} experts, top {cfg.top_k}, H {H}, I {I}; copy bandwidth "
          f"{bw / 1e9:.0f} GB/s (max of {', '.join(f'{v / 1e9:.0f}' for v in bws)})")
    cols = ["bf16_ms", "bf16_graph_ms", "fp8_ms", "fp8_graph_ms", "torch_loop_ms",
            "grouped_mm_ms", "grouped_mm_gemm_ms", "scaled_grouped_mm_gemm_ms"]
    print(f"{'T':>5} {'floor16':>8} {'floor8':>8} " + " ".join(f"{c[:-3]:>18}" for c in cols))
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            fl = r["fp8_floor_ms" if c.startswith(("fp8", "scaled")) else "bf16_floor_ms"]
            cells.append(f"{v:9.3f}({v / fl:5.2f}x)" if v else "-")
        print(f"{r['tokens']:>5} {r['bf16_floor_ms']:8.3f} {r['fp8_floor_ms']:8.3f} "
              + " ".join(f"{c:>18}" for c in cells))
    for r in rows:
        if r.get("layer_ms"):
            print(f"T {r['tokens']}: MoE decode layer (seq {seq}) {r['layer_ms']:.3f} ms, "
                  f"floor {r['layer_floor_ms']:.3f} ms "
                  f"({r['layer_ms'] / r['layer_floor_ms']:.2f}x)")
    print(f"max rel err vs moe_ref: bf16 {max(r['bf16_rel_err'] for r in rows):.3g}, "
          f"fp8 {max(r['fp8_rel_err'] for r in rows):.3g}")
    print(json.dumps({"bench": "moe_gpu", "device": dev, "config": cfg.name,
                      "copy_GBps": bw / 1e9, "rows": rows},
                     default=lambda v: round(v, 4) if isinstance(v, float) else v))


if __name__ == "__main__":
    main()
