"""The Qwen3-MoE sparse block on a GPU: mixtile (Triton backend; bf16 and block-scaled FP8)
against the HBM floor of the experts it touches, a torch loop over the experts, and
torch._grouped_mm / torch._scaled_grouped_mm, all measured in one run.

    python benchmarks/moe_gpu.py [--config 30b-a3b] [--tokens 1,8,32] [--prefill 4096]
    python benchmarks/moe_gpu.py --smoke     # tiny shapes on the CPU (Triton's interpreter)
    python benchmarks/moe_gpu.py --prefill 4096 --breakdown --sweep   # where decode time goes

Per token count T (random bf16 inputs; the routing the router gives, about T * top_k / E
rows per expert):
- floor: (router weight + the weights of the experts the routing touches, each read once,
  + their FP8 scales) / the bandwidth of a device-to-device copy measured in the same run
  (the fastest copy of the run: the strictest floor).
- mixtile: the block's launches (moe_router, moe_sort, [moe_gather], moe_gate_up,
  [moe_quant], moe_down; at one token in bf16 the routed form: moe_router,
  moe_gate_up_routed, moe_down on the entry-order map) per call, eager and replayed from a
  CUDA graph (graph: time per block in a graph of 4 blocks); at one token the other form (sorted or
  routed) too, in a CUDA graph.
- torch_loop: the transformers-style loop over the experts the routing hits (nonzero,
  index_add_), bf16, eager (its host syncs keep it out of a graph).
- grouped_mm: the sorted rows through torch._grouped_mm (gate/up, SiLU * up, down), the
  sort and the weighted scatter-add in torch; gemm-only columns time the two grouped GEMMs
  alone. scaled_grouped_mm: the same with torch._scaled_grouped_mm on e4m3 operands
  (rowwise scales: its API has no 128x128 blocks), where this torch and GPU have it.
- layer: the whole MoeDecodeLayer step (attention over a paged cache of --seq positions
  per sequence, then the block; bf16) in a CUDA graph, against its own floor (attention
  weights + KV cache read + the block's floor bytes under the layer's own routing);
  --layer-only: this column alone (no block or torch columns).
--prefill T adds a row at T tokens with TFLOPS (2 * 3 * T * top_k * H * I flops; the block
alone, no layer column).
--breakdown: each of the block's kernels timed alone (replayed from a CUDA graph after
one whole-block call left valid routing and tile maps), per token count and dtype; the
chunked moe_sort (above 512 entries) is two launches, timed together.
--profile: the block's kernels inside its CUDA graph (torch.profiler): each one's device
time, the span of one block and the idle time between its kernels.
--sweep: for moe_gate_up and moe_down, a small grid of tiles (TN, TK, TM, GRID; MoeBlock's
`tiles=`) per token count (--sweep-tokens, default the decode counts and 4096), and for
moe_router (where MoeBlock splits it: KS, TK, TEB, or one block), moe_gather (RB),
moe_down's bf16 workspace (YS16, prefill), moe_gate_up's ONE_LOOP and, at one token,
moe_down_routed (GROUPED False, also with its FLAT loop) in place of MoeBlock's moe_down on
the entry-order map, each timed alone in a CUDA graph; the best per kernel is printed
against MoeBlock's default.
--sweep-cands JSON times only the given candidates (and the defaults).
Progress goes to stderr; candidates past --sweep-budget seconds are skipped (and counted;
the candidates are taken round robin over the (tokens, dtype, kernel) groups, defaults first).
--plan prints the shapes, MoeBlock's constants and the sweep's candidates per token count
and exits (no weights: any --config, on any machine).
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

import mixtile as mt  # noqa: E402
from tilelang_models.qwen3.moe import (  # noqa: E402
    SORT_DIRECT_MAX,
    MoeBlock,
    MoeWeights,
    random_moe_weights,
    splits_router,
)
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


def _alone_ms(fn) -> float:
    """ms per call of fn replayed from a CUDA graph; eager wall clock off CUDA."""
    return _graph_ms(fn) if CUDA else _ms(fn, reps=10)


def _launch(blk: MoeBlock, step):
    _, kern, args, consts = step
    return lambda: mt.run_jit(kern, *args, target="cuda", compile_cfg=blk.compile_cfg,
                              **consts)


def breakdown(blk: MoeBlock, x) -> dict:
    """ms of each kernel of the block alone, after one whole call (routing, tile map and
    activations valid; every kernel rewrites the same outputs from the same inputs)."""
    blk(x)
    return {step[0]: _alone_ms(_launch(blk, step)) for step in blk.steps(x)}


def profile(blk: MoeBlock, x, reps: int = 20) -> dict | None:
    """Where a block's time goes inside a CUDA graph: torch.profiler's kernel records of
    `reps` replays of one block: per kernel its median device time, per replay the span
    (first kernel's start to the last one's end) and the idle time between kernels (us).
    None where the profiler records no kernels (off CUDA)."""
    if not CUDA:
        return None
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    blk(x)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        blk(x)
    g.replay()
    torch.cuda.synchronize()
    with tprofile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            g.replay()
            torch.cuda.synchronize()
    ks = sorted(((e.time_range.start, e.time_range.end, e.name) for e in prof.events()
                 if e.device_type == torch.autograd.DeviceType.CUDA
                 and e.name.startswith("_moe")), key=lambda v: v[0])
    if not ks or len(ks) % reps:
        return None
    n = len(ks) // reps
    per, spans, gaps = {}, [], []
    for r in range(reps):
        run = ks[r * n:(r + 1) * n]
        spans.append(run[-1][1] - run[0][0])
        gaps.append(sum(b[0] - a[1] for a, b in zip(run, run[1:])))
        for i, (t0, t1, name) in enumerate(run):
            per.setdefault(f"{i}:{name}", []).append(t1 - t0)
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    return {"span_us": med(spans), "gaps_us": med(gaps),
            "kernels_us": {k: med(v) for k, v in per.items()}}


def sweep_candidates(T, E, k, fp8, smoke=False, H=2048) -> dict[str, list[dict]]:
    """Tile overrides per kernel ({} = MoeBlock's own): decode (up to 16 rows per expert
    on average) varies the N tile, the K step and the grid (MoeBlock's power of two of the
    work items, or one block per SM); prefill the row tile, the N tile and the K step.
    Where MoeBlock splits the router (up to 32 token tiles): the one-block router, other
    K splits and expert items; where moe_gather runs (above 512 entries): its entries per
    block."""
    sms = 1 if smoke else mt.get_target("gpu").clusters
    decode = T * k / E <= 16
    if smoke:  # one candidate besides the default (the interpreter is slow)
        tns, tks, tms = (64,), (128,), ((16,) if decode else (32,))
    elif T == 1:  # the routed form: also the whole K in one step
        tns, tks, tms = (16, 32, 64), (128, 256, 768), (16,)
    elif decode:
        tns, tks, tms = (16, 32, 64, 128), (128, 256), (16,)
    else:
        tns, tks, tms = (64, 128, 256), (64, 128), (64, 128)
    out = {}
    for kern in ("gate_up", "down"):
        cands = [{}]
        for tm in tms:
            for tn in tns:
                if fp8 and 128 % tn:
                    continue
                for tk in ((None,) if fp8 else tks):
                    c = dict(TM=tm, TN=tn) if tk is None else dict(TM=tm, TN=tn, TK=tk)
                    cands.append(c)
        if decode:  # the persistent grid, with MoeBlock's own N tile and K step
            cands.append(dict(GRID=sms))
        elif kern == "down":  # the expert-order workspace in bf16: half its traffic
            cands.append(dict(YS16=True))
        if kern == "gate_up" and not (T == 1 and not fp8):  # sorted: one K loop for both
            cands.append(dict(ONE_LOOP=True))
        if T == 1 and kern == "down" and not smoke and not fp8:  # the routed form's down
            # is moe_down on the entry-order map (GROUPED); or moe_down_routed, also with
            # one (slot, K step) loop
            cands += [dict(GROUPED=False)] + [dict(GROUPED=False, FLAT=True, **tk)
                                              for tk in ({}, {"TK": 128}, {"TK": 768})]
        out[kern] = cands
    if splits_router(T, mt.get_target("gpu").clusters):  # MoeBlock's split router
        out["router"] = [{}, {"KS": 0}] + ([] if smoke else [
            {"TK": tk, "KS": -(-H // tk)} for tk in (256, 1024) if tk <= H] + [
            {"TEB": teb} for teb in (32, 64)])
    if T * k > SORT_DIRECT_MAX:  # moe_gather
        out["gather"] = [{}, {"RB": 4}] + ([] if smoke else [{"RB": rb} for rb in (2, 16, 32)])
    return out


_TILE_KEYS = ("TM", "TN", "TK", "KS", "TEB", "RB", "GRID", "YS16", "FLAT", "ONE_LOOP",
              "GROUPED")


def _sweep_tiles(kern: str, c: dict, blk_tm: int) -> dict:
    """MoeBlock tiles for candidate c of kernel kern (the sort and both GEMMs share TM)."""
    if kern not in ("gate_up", "down"):
        return {kern: c}
    tm = c.get("TM", blk_tm)
    other = "down" if kern == "gate_up" else "gate_up"
    return {"sort": {"TM": tm}, kern: dict(c, TM=tm), other: {"TM": tm}}


def sweep(tokens, wb, wf, cfg, budget_s, smoke=False, only=None) -> tuple[list, int]:
    """(results, skipped): ms of moe_gate_up / moe_down alone per candidate tile set.
    only: {kernel: [tile overrides]} in place of sweep_candidates (the defaults first),
    optionally {"dtypes": ["bf16"]}."""
    E, H, _ = wb.shape
    k = cfg.top_k
    only = dict(only or {})
    dtypes = only.pop("dtypes", ["bf16", "fp8"])
    groups = []
    for T in tokens:
        for tag, w in (("bf16", wb), ("fp8", wf)):
            if tag not in dtypes:
                continue
            cand = ({kern: [{}] + list(v) for kern, v in only.items()} if only
                    else sweep_candidates(T, E, k, w.fp8, smoke, H))
            for kern, cands in cand.items():
                groups.append([(T, tag, w, kern, c) for c in cands])
    # round robin over the groups: a spent budget leaves every group its default and its
    # first candidates
    todo = [g[j] for j in range(max(map(len, groups))) for g in groups if j < len(g)]
    t0 = time.perf_counter()
    res, skipped = [], 0
    xs, seen = {}, set()
    for i, (T, tag, w, kern, c) in enumerate(todo):
        base = MoeBlock(w, k, cfg.norm_topk_prob, target="cuda")
        blk = MoeBlock(w, k, cfg.norm_topk_prob, target="cuda",
                       tiles=_sweep_tiles(kern, c, base.consts(T)["sort"]["TM"]))
        consts = blk.consts(T)[kern]
        key = (T, tag, kern, tuple(sorted(consts.items())))
        if key in seen:  # the default again
            continue
        seen.add(key)
        if time.perf_counter() - t0 > budget_s:
            skipped += 1
            continue
        x = xs.setdefault(T, torch.randn(T, H, device=DEV).bfloat16())
        try:
            blk(x)
            step = next(s for s in blk.steps(x) if s[0] == kern)
            ms, err = _alone_ms(_launch(blk, step)), None
        except Exception as e:  # noqa: BLE001  (a tile set that does not fit: reported)
            ms, err = None, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
        res.append({"tokens": T, "dtype": tag, "kernel": kern, "default": not c,
                    # MoeBlock's constants, and what of the candidate is no constant
                    # (GROUPED picks the down kernel)
                    "tiles": {**{n: consts[n] for n in _TILE_KEYS if n in consts},
                              **{n: v for n, v in c.items() if n not in consts}},
                    "ms": ms, **({"error": err} if err else {})})
        print(f"[sweep {i + 1}/{len(todo)} {time.perf_counter() - t0:5.0f} s] {tag} T={T} "
              f"{kern} {res[-1]['tiles']}: " + (f"{ms:.4f} ms" if ms else err),
              file=sys.stderr, flush=True)
        del blk
    if skipped:
        print(f"[sweep] budget of {budget_s:.0f} s spent: {skipped} candidates skipped",
              file=sys.stderr, flush=True)
    return res, skipped


def sweep_best(res) -> list[dict]:
    """Per (dtype, tokens, kernel): the fastest candidate and MoeBlock's default."""
    best = {}
    for r in res:
        key = (r["dtype"], r["tokens"], r["kernel"])
        b = best.setdefault(key, {"dtype": key[0], "tokens": key[1], "kernel": key[2]})
        if r["default"]:
            b["default_ms"], b["default_tiles"] = r["ms"], r["tiles"]
        if r["ms"] and (b.get("best_ms") is None or r["ms"] < b["best_ms"]):
            b["best_ms"], b["best_tiles"] = r["ms"], r["tiles"]
    return list(best.values())


def plan(cfg, tokens) -> None:
    """Shapes, MoeBlock's constants and the sweep's candidates per token count (meta
    tensors: no memory, no GPU)."""
    E, H, I = cfg.num_experts, cfg.attn.hidden_size, cfg.moe_intermediate_size
    k = cfg.top_k
    m = dict(device="meta")
    bf = lambda *sh: torch.empty(*sh, dtype=torch.bfloat16, **m)  # noqa: E731
    f8 = lambda *sh: torch.empty(*sh, dtype=torch.float8_e4m3fn, **m)  # noqa: E731
    f32 = lambda *sh: torch.empty(*sh, dtype=torch.float32, **m)  # noqa: E731
    nb = lambda n: -(-n // 128)  # noqa: E731
    wb = MoeWeights(bf(E, H), bf(E, I, H), bf(E, I, H), bf(E, H, I))
    wf = MoeWeights(bf(E, H), f8(E, I, H), f8(E, I, H), f8(E, H, I), f32(E, nb(I), nb(H)),
                    f32(E, nb(I), nb(H)), f32(E, nb(H), nb(I)))
    print(f"{cfg.name}: {E} experts, top {k}, H {H}, I {I}")
    n = 0
    for T in tokens:
        for tag, w in (("bf16", wb), ("fp8", wf)):
            c = MoeBlock(w, k, cfg.norm_topk_prob, target="cuda").consts(T)
            cands = sweep_candidates(T, E, k, w.fp8, H=H)
            n += sum(len(v) for v in cands.values())
            print(f"T {T} {tag}: router {c['router']}\n  sort {c['sort']}\n  gather "
                  f"{c['gather']}\n  gate_up {c['gate_up']}\n  down "
                  f"{c['down']}\n  sweep: " + ", ".join(f"{kn} {len(v)}"
                                                       for kn, v in cands.items()))
    print(f"sweep: {n} candidates in all")


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


def bench_layer(T, cfg, lw, seq, tiles) -> tuple[float | None, int, int]:
    """(ms per MoeDecodeLayer step in a CUDA graph (eager off CUDA), attention bytes:
    weights + the KV cache read, the block's bytes under the layer's own routing)."""
    kc, vc, bt, sl = (t.to(DEV) for t in make_paged_cache(cfg.attn, [seq] * T, 128, 1))
    x = torch.randn(T, cfg.attn.hidden_size, device=DEV).bfloat16()
    layer = MoeDecodeLayer(cfg, lw, target="cuda", progress=False, tiles=tiles)
    layer(x, kc, vc, bt, sl)  # compile, tune
    step = lambda: layer(x, kc, vc, bt, sl)  # noqa: E731  (rewrites the new token's slot)
    ms = _graph_ms(step) if CUDA else _ms(step)
    a = cfg.attn
    attn_bytes = sum(getattr(lw.attn, n).numel() * 2 for n in ATTN_FIELDS)
    return (ms, attn_bytes + 2 * T * seq * a.num_key_value_heads * a.head_dim * 2,
            touched_bytes(lw.moe, layer.moe.routing(T)[0]))


def bench_tokens(T, wb, wf, cfg, tiles, bw_list, prefill=False, seq=0,
                 split=False, prof=False, layer_only=False) -> dict:
    E, H, I = wb.shape
    k = cfg.top_k
    x = torch.randn(T, H, device=DEV).bfloat16()
    row = {"tokens": T}
    for tag, w in (() if layer_only else (("bf16", wb), ("fp8", wf))):
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
        if T == 1:  # the form MoeBlock does not take at one token, for comparison
            form = "sorted" if blk.routed(T) else "routed"
            other = MoeBlock(w, k, cfg.norm_topk_prob, target="cuda", tiles=tiles.get(tag),
                             routed_tokens=int(form == "routed"))
            other(x)
            row[f"{tag}_{form}_graph_ms"] = _graph_ms(lambda: other(x))
        if split:
            row[f"{tag}_breakdown_ms"] = breakdown(blk, x)
        if prof:
            row[f"{tag}_profile"] = profile(blk, x)
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
        row["layer_ms"], attn_bytes, moe_bytes = bench_layer(
            T, cfg, layer_weights(cfg, wb), seq, tiles.get("bf16"))
        row["layer_bytes"] = attn_bytes + moe_bytes
    if prefill:
        flops = 2 * 3 * T * k * H * I
        for key in ("bf16_ms", "fp8_ms", "grouped_mm_gemm_ms", "scaled_grouped_mm_gemm_ms"):
            if row.get(key):
                row[key.replace("_ms", "_tflops")] = flops / (row[key] / 1e3) / 1e12
    bw_list.append(copy_bandwidth())
    return row


def _progress(r: dict, bw: float) -> None:
    """One row's graph times against its floors so far (stderr: a run cut short by a time
    limit keeps what it measured)."""
    cells = []
    for tag in ("bf16", "fp8", "layer"):
        v = r.get(f"{tag}_graph_ms") or r.get(f"{tag}_ms")  # eager off CUDA
        b = r.get(f"{tag}_bytes")
        if v and b:
            cells.append(f"{tag} {v:.4f} ms ({v / (b / bw * 1e3):.2f}x)")
    print(f"[row] T={r['tokens']}: " + ", ".join(cells or ["-"]), file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="30b-a3b", help="30b-a3b, 235b-a22b, tiny-moe")
    ap.add_argument("--tokens", default="1,8,32")
    ap.add_argument("--prefill", type=int, default=0, help="also T tokens with TFLOPS")
    ap.add_argument("--seq", type=int, default=4096,
                    help="cached positions per sequence for the layer column (0: no layer)")
    ap.add_argument("--tiles", default=None,
                    help='JSON {"bf16": {"gate_up": {"TN": 64}}, "fp8": {...}}')
    ap.add_argument("--layer-only", action="store_true",
                    help="only the MoE decode layer column (no block or torch columns)")
    ap.add_argument("--breakdown", action="store_true",
                    help="also each kernel of the block alone (CUDA graph) per token count")
    ap.add_argument("--profile", action="store_true",
                    help="also each kernel's device time and the idle gaps inside the "
                         "block's CUDA graph (torch.profiler)")
    ap.add_argument("--sweep", action="store_true",
                    help="also time gate_up / down alone over a small grid of tiles")
    ap.add_argument("--sweep-tokens", default=None,
                    help="token counts of the sweep (default: --tokens and 4096)")
    ap.add_argument("--sweep-cands", default=None,
                    help='JSON: only these candidates, e.g. {"down": [{"YS16": true}], '
                         '"dtypes": ["bf16"]}')
    ap.add_argument("--sweep-budget", type=float, default=270.0,
                    help="seconds the sweep may take; later candidates are skipped")
    ap.add_argument("--plan", action="store_true",
                    help="print shapes, MoeBlock's constants and the sweep candidates; exit")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny shapes on the CPU under Triton's interpreter (checks the "
                         "script; its bf16 dot is wrong there, so rel_err is not meaningful)")
    a = ap.parse_args()
    tokens = [int(v) for v in a.tokens.split(",")] if not a.smoke else [1, 5]
    sweep_tokens = ([int(v) for v in a.sweep_tokens.split(",")] if a.sweep_tokens
                    else [1, 80] if a.smoke else tokens + [4096])
    if a.plan:
        plan(get_moe_config(a.config), sorted(set(tokens + sweep_tokens + [a.prefill or 1])))
        return
    if not CUDA and not a.smoke:
        sys.exit("no CUDA GPU: run with --smoke for the CPU check of this script")
    cfg = get_moe_config("tiny-moe" if a.smoke else a.config)
    E, H, I = cfg.num_experts, cfg.attn.hidden_size, cfg.moe_intermediate_size
    wb = random_moe_weights(E, H, I, seed=0)
    wf = wb.quantized().to(DEV)
    wb = wb.to(DEV)
    tiles = json.loads(a.tiles) if a.tiles else {}
    bws = [copy_bandwidth()]
    seq = 40 if a.smoke else a.seq
    if a.layer_only and not seq:
        sys.exit("--layer-only needs --seq > 0 (the layer's cached positions)")
    rows = []
    for T, pre in [(T, False) for T in tokens] + ([(a.prefill, True)] if a.prefill else []):
        rows.append(bench_tokens(T, wb, wf, cfg, tiles, bws, prefill=pre, seq=0 if pre else seq,
                                 split=a.breakdown, prof=a.profile,
                                 layer_only=a.layer_only and not pre))
        _progress(rows[-1], max(bws))
    only = json.loads(a.sweep_cands) if a.sweep_cands else None
    sweep_res, skipped = (sweep(sweep_tokens, wb, wf, cfg, a.sweep_budget, a.smoke, only)
                          if a.sweep else ([], 0))
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
    for r in ([] if a.layer_only else rows):
        cells = []
        for c in cols:
            v = r.get(c)
            fl = r["fp8_floor_ms" if c.startswith(("fp8", "scaled")) else "bf16_floor_ms"]
            cells.append(f"{v:9.3f}({v / fl:5.2f}x)" if v else "-")
        print(f"{r['tokens']:>5} {r['bf16_floor_ms']:8.3f} {r['fp8_floor_ms']:8.3f} "
              + " ".join(f"{c:>18}" for c in cells))
    for r in rows:
        for tag in ("bf16", "fp8"):
            for form, n in (("sorted", 0), ("routed", 1)):
                v = r.get(f"{tag}_{form}_graph_ms")
                if v:
                    print(f"T {r['tokens']} {tag}: the {form} form (routed_tokens={n}) in "
                          f"a CUDA graph {v:.4f} ms ({v / r[f'{tag}_floor_ms']:.2f}x)")
    for r in rows:
        if r.get("layer_ms"):
            print(f"T {r['tokens']}: MoE decode layer (seq {seq}) {r['layer_ms']:.3f} ms, "
                  f"floor {r['layer_floor_ms']:.3f} ms "
                  f"({r['layer_ms'] / r['layer_floor_ms']:.2f}x)")
    if a.breakdown:
        # gather: above 512 entries; quant: FP8
        kern = ("router", "sort", "gather", "gate_up", "quant", "down")
        print(f"each kernel alone, ms ({'CUDA graph' if CUDA else 'eager, interpreter'}); "
              f"block: all its launches in one graph")
        print(f"{'T':>5} {'dtype':>5} " + " ".join(f"{n:>8}" for n in kern)
              + f" {'sum':>8} {'block':>8}")
        for r in rows:
            for tag in ("bf16", "fp8"):
                b = r[f"{tag}_breakdown_ms"]
                blk_ms = r[f"{tag}_graph_ms"] or r[f"{tag}_ms"]
                print(f"{r['tokens']:>5} {tag:>5} "
                      + " ".join(f"{b[n]:8.4f}" if n in b else f"{'-':>8}" for n in kern)
                      + f" {sum(b.values()):8.4f} {blk_ms:8.4f}")
    if a.profile:
        print("inside the block's CUDA graph (torch.profiler), us: span, idle between "
              "kernels, each kernel")
        for r in rows:
            for tag in ("bf16", "fp8"):
                p = r.get(f"{tag}_profile")
                if p:
                    print(f"{r['tokens']:>5} {tag:>5} span {p['span_us']:8.1f} idle "
                          f"{p['gaps_us']:6.1f}  " + "  ".join(
                              f"{k.split(':')[1]} {v:.1f}" for k, v in
                              p["kernels_us"].items()))
    best = sweep_best(sweep_res)
    if a.sweep:
        print(f"sweep: {len(sweep_res)} tile sets timed, {skipped} skipped (budget "
              f"{a.sweep_budget:.0f} s); best per kernel against MoeBlock's default:")
        for b in best:
            d, m = b.get("default_ms"), b.get("best_ms")
            gain = f"{d / m:5.2f}x" if d and m else "   - "
            print(f"{b['dtype']:>5} T {b['tokens']:>5} {b['kernel']:>8}: best "
                  f"{m or float('nan'):.4f} ms {b.get('best_tiles')}  default "
                  f"{d or float('nan'):.4f} ms {b.get('default_tiles')}  ({gain})")
    if not a.layer_only:
        print(f"max rel err vs moe_ref: bf16 {max(r['bf16_rel_err'] for r in rows):.3g}, "
              f"fp8 {max(r['fp8_rel_err'] for r in rows):.3g}")
    out = {"bench": "moe_gpu", "device": dev, "config": cfg.name, "copy_GBps": bw / 1e9,
           "rows": rows}
    if a.sweep:
        out.update(sweep=sweep_res, sweep_best=best, sweep_skipped=skipped)
    print(json.dumps(out, default=lambda v: round(v, 4) if isinstance(v, float) else v))


if __name__ == "__main__":
    main()
