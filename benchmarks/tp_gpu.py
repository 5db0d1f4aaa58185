"""Time per output token of the tensor-parallel mixtile Qwen3 model on N GPUs, against the
floor of one rank's share and a PyTorch reference under the same split, in one run.

    torchrun --nproc-per-node N benchmarks/tp_gpu.py [--configs 14b,32b] [--batches 1,8,32]
        [--ctx 4096] [--block-size 128] [--layers L] [--no-compile]
    torchrun --nproc-per-node N benchmarks/tp_gpu.py --check 0.6b     (TP=N against TP=1)
    python benchmarks/tp_gpu.py --plan --tp 2,4,8      (the floors' byte counts; no GPU)

One launch per N (2, 4, 8); N must divide the config's KV heads (8) and intermediate size.
Random bf16 weights of the config's shapes, drawn per rank in its shape (each rank's own
draws: timing only). Each sequence has --ctx tokens in the paged cache. One decode step
(embedding, every layer with its two all-reduces, the LM head over the rank's vocabulary
rows and the distributed argmax) is timed as the replay of TPQwen3Model's CUDA graph;
each rank times its replays and the slowest rank's median is reported.
Floor: the bytes one rank must read (its weights, its LM head rows, its KV heads of every
sequence) over the measured device copy bandwidth, plus the measured time of the step's
collectives alone (2 x layers all-reduces of [B, H] bf16 and the argmax's all-gather, in
one CUDA graph). Reference: the same split in PyTorch (cuBLAS GEMMs, SDPA over the
gathered paged cache, the same all-reduces and argmax), eager and under torch.compile
(the two halves of each layer compiled, the collectives between them), each captured in a
CUDA graph. Prints a table (rank 0) and one JSON line.
--check CONFIG: a few greedy tokens of CONFIG (all its layers, or --layers) under TP=N
against TP=1 on rank 0's GPU, the same random weights: logits within bf16 rounding, and
tokens equal except at near ties (see tests/test_tp.py).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from decode_layer_gpu import _ms, copy_bandwidth  # noqa: E402
from model_gpu import filled_cache, torch_parts  # noqa: E402

from tilelang_models.qwen3.config import Qwen3Config  # noqa: E402
from tilelang_models.qwen3.model import (  # noqa: E402
    MODEL_PRESETS,
    ModelConfig,
    ModelWeights,
    Qwen3Model,
    get_model_config,
    random_model_weights,
)
from tilelang_models.qwen3.tp import (  # noqa: E402
    TPQwen3Model,
    dist_argmax,
    init_tp,
    random_model_weights_tp,
    tp_config,
    vocab_range,
)

# Qwen3-32B (its released config.json): not a layer preset of config.py
QWEN3_32B = ModelConfig(Qwen3Config("32b", 5120, 25600, 64, 8, 128, 1e-6, 1e6), 64, 151936)


def model_config(name: str, layers: int | None) -> ModelConfig:
    if name.lower() in ("32b", "qwen3-32b"):
        m = QWEN3_32B
        return m if layers is None else ModelConfig(m.layer, layers, m.vocab_size)
    if name.lower().removeprefix("qwen3-") not in MODEL_PRESETS:
        raise SystemExit(f"--configs: {name!r} is not one of 32b, {', '.join(MODEL_PRESETS)}")
    return get_model_config(name, layers)


def rank_bytes(mcfg: ModelConfig, tp: int, rank: int, batch: int, ctx: int) -> dict:
    """Bytes one rank reads per decode step: its projection weights, its LM head rows, its
    KV heads of every sequence's cache (the embedding rows and norms are negligible)."""
    r = tp_config(mcfg.layer, tp)
    H, D = r.hidden_size, r.head_dim
    per_layer = (H * (r.q_size + 2 * r.kv_size) + r.q_size * H
                 + 3 * H * r.intermediate_size) * 2
    lm = vocab_range(mcfg.vocab_size, rank, tp)[1] * H * 2
    kv = 2 * batch * ctx * mcfg.num_layers * r.num_key_value_heads * D * 2
    return {"weights": per_layer * mcfg.num_layers + lm, "kv": kv}


def plan(a) -> None:
    """The floors' byte counts per (config, tp, batch), rank 0's share (no GPU)."""
    for name in a.configs.split(","):
        mcfg = model_config(name, a.layers)
        for tp in (int(v) for v in a.tp.split(",")):
            for b in (int(v) for v in a.batches.split(",")):
                by = rank_bytes(mcfg, tp, 0, b, a.ctx)
                print(json.dumps({"config": name, "tp": tp, "batch": b,
                                  "rank_weights_GB": round(by["weights"] / 1e9, 3),
                                  "rank_kv_GB": round(by["kv"] / 1e9, 3)}))


def _graph(fn):
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return g


def _max_over_ranks(v: float) -> float:
    t = torch.tensor([v], dtype=torch.float64, device="cuda")
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return float(t)


def _timed_graph_ms(fn) -> float | None:
    """The slowest rank's ms per replay of fn captured in a CUDA graph; None when the
    capture failed on any rank (every rank still joins the same collectives)."""
    try:
        ms, failed = _ms(_graph(fn).replay), 0.0
    except Exception as e:  # noqa: BLE001  (a capture torch.compile refuses)
        print(f"rank {torch.distributed.get_rank()}: capture failed: {str(e)[:200]}",
              file=sys.stderr, flush=True)
        ms, failed = 0.0, 1.0
    if _max_over_ranks(failed):
        return None
    return _max_over_ranks(ms)


def collectives_ms(tp, mcfg, b) -> float:
    """ms of one step's collectives alone: 2 x layers all-reduces of [b, H] bf16 and the
    argmax's all-gather, captured in one CUDA graph."""
    h = torch.zeros(b, mcfg.layer.hidden_size, dtype=torch.bfloat16, device="cuda")
    pair = torch.zeros(2 * b, device="cuda")
    out = torch.empty(tp.size * 2 * b, device="cuda")

    def step():
        for _ in range(2 * mcfg.num_layers):
            tp.all_reduce(h)
        tp.all_gather(out, pair)
    step()  # eager first: the communicator's buffers
    torch.cuda.synchronize()
    return _ms(_graph(step).replay)


def torch_tp_step(model: TPQwen3Model, kc, vc, compiled: bool):
    """The reference decode step of this rank, the same weights and caches as the model:
    each layer's attention half and MLP half in PyTorch, the all-reduces between them."""
    tp = model.tp
    rms, attn_half, mlp_half = torch_parts(model.cfg)  # the rank's shapes

    def head(x, g, w):
        lg = F.linear(rms(x, g).bfloat16(), w).float()
        return lg.amax(-1), lg.argmax(-1)  # argmax: the first index of the maximum

    if compiled:
        attn_half, mlp_half = torch.compile(attn_half), torch.compile(mlp_half)
    layers = []
    for tl in model.decode_layers:
        dl = tl.layer
        w = dl.w
        layers.append((dl.wqkv, w, dl.wgate, dl.wup))

    def step(ids, bt, sl):
        x = F.embedding(ids.long(), model.embed)
        for i, (wqkv, w, wg, wu) in enumerate(layers):
            res = x if tp.rank == 0 else torch.zeros_like(x)
            h2 = attn_half(x, res, kc[i], vc[i], bt, sl, w.input_layernorm, wqkv, w.q_norm,
                           w.k_norm, w.o_proj)
            tp.all_reduce(h2)
            res = h2 if tp.rank == 0 else torch.zeros_like(h2)
            x = mlp_half(h2, res, w.post_attention_layernorm, wg, wu, w.down_proj)
            tp.all_reduce(x)
        vals, idx = head(x, model.final_norm, model.lm_head)
        return dist_argmax(vals, idx, model.vocab_start, tp)
    return step


def rank_weights(mcfg: ModelConfig, tp, seed: int) -> ModelWeights:
    """Random weights drawn directly in this rank's shapes (its own draws)."""
    rm = ModelConfig(tp_config(mcfg.layer, tp.size), mcfg.num_layers, mcfg.vocab_size)
    w = random_model_weights(rm, seed, device="cuda")
    start, n = vocab_range(mcfg.vocab_size, tp.rank, tp.size)
    return ModelWeights(w.embed, w.layers, w.norm, w.lm_head[start:start + n].clone())


def bench_config(name, a, tp, bws) -> dict:
    mcfg = model_config(name, a.layers)
    t0 = time.time()
    model = TPQwen3Model(mcfg, rank_weights(mcfg, tp, 100 + tp.rank), tp, target="cuda")
    setup_s = time.time() - t0
    say = print if tp.rank == 0 else (lambda *_, **__: None)
    say(f"{name} tp {tp.size}: weights ready in {setup_s:.1f} s", file=sys.stderr, flush=True)
    rows = []
    for b in (int(v) for v in a.batches.split(",")):
        bs, ctx = a.block_size, a.ctx
        nb, kc, vc, bt, sl = filled_cache(model, b, ctx, bs)
        g = torch.Generator(device="cuda").manual_seed(b)  # the same ids on every rank
        ids = torch.randint(0, mcfg.vocab_size, (b,), dtype=torch.int32, device="cuda",
                            generator=g)
        by = rank_bytes(mcfg, tp.size, tp.rank, b, ctx)
        r = {"batch": b, "rank_bytes": by["weights"] + by["kv"]}
        t0 = time.time()
        model._decode_step(ids, sl, kc, vc, bt, False)  # compiles, tunes, captures
        r["mixtile_first_step_s"] = round(time.time() - t0, 2)
        graph, bufs = model._graphs[(b, nb, False, kc.data_ptr())]
        torch.distributed.barrier()
        r["mixtile_ms"] = _max_over_ranks(_ms(graph.replay))
        got = bufs["out"].clone()
        r["collectives_ms"] = _max_over_ranks(collectives_ms(tp, mcfg, b))
        variants = [("eager_graph_ms", False)] + ([] if a.no_compile
                                                  else [("torch_compile_graph_ms", True)])
        for key, compiled in variants:
            step = torch_tp_step(model, kc, vc, compiled)
            t0 = time.time()
            want = step(ids, bt, sl)  # compiles (torch.compile), warms the collectives
            if compiled:
                r["compile_s"] = round(time.time() - t0, 1)
            else:
                r["ids_equal_eager_ref"] = int((got == want).sum()) / b
            torch.distributed.barrier()
            ms = _timed_graph_ms(lambda: step(ids, bt, sl))
            if ms is None:
                r[key.replace("_ms", "_error")] = "CUDA graph capture failed (stderr)"
            else:
                r[key] = ms
        rows.append(r)
        say(f"{name} tp {tp.size} {json.dumps(r)}", file=sys.stderr, flush=True)
        del kc, vc
        model._graphs.clear()
        torch.cuda.empty_cache()
        bws.append(copy_bandwidth())
    res = {"config": name, "tp": tp.size, "layers": mcfg.num_layers,
           "setup_s": round(setup_s, 1), "rows": rows}
    del model
    torch.cuda.empty_cache()
    return res


def check(a, tp) -> dict:
    """TP=N against TP=1 (rank 0's GPU holds the whole model): greedy tokens and logits."""
    mcfg = model_config(a.check, a.layers)
    prompts = [[5, 17, 300, 2, 9], [8], [1000, 3]]
    n = 4
    m = TPQwen3Model(mcfg, random_model_weights_tp(mcfg, tp, 7, device="cuda"), tp,
                     target="cuda")
    got = m.generate(prompts, n, eos_ids=(), return_logits=True)
    del m
    torch.cuda.empty_cache()
    out = {"check": a.check, "tp": tp.size, "layers": mcfg.num_layers, "prompts": []}
    if tp.rank == 0:
        # norm_stats off, as under TP: the same rounding points but the all-reduce's
        one = Qwen3Model(mcfg, random_model_weights(mcfg, 7, device="cuda"), target="cuda",
                         norm_stats=False).generate(prompts, n, eos_ids=(),
                                                    return_logits=True)
        for b in range(len(prompts)):
            ta, tb = got.tokens[b], one.tokens[b]
            first = next((s for s in range(n) if ta[s] != tb[s]), None)
            last = n - 1 if first is None else first
            rel = max(float((got.logits[b][s] - one.logits[b][s]).abs().max()
                            / one.logits[b][s].abs().max()) for s in range(last + 1))
            p = {"tokens": ta, "tokens_tp1": tb, "first_diff": first, "logits_rel": rel}
            if first is not None:
                lg, lt = one.logits[b][first], got.logits[b][first]
                p["near_tie"] = bool(lg[tb[first]] - lg[ta[first]]
                                     <= 2 * (lt - lg).abs().max())
            out["prompts"].append(p)
        out["passed"] = all(p["logits_rel"] < 2e-2 and p.get("near_tie", True)
                            for p in out["prompts"])
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="torchrun --nproc-per-node N benchmarks/tp_gpu.py",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="14b,32b")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--layers", type=int, default=None, help="fewer layers, same shapes")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--check", default=None, metavar="CONFIG",
                    help="TP=N against TP=1 on CONFIG instead of timing")
    ap.add_argument("--plan", action="store_true", help="print the floors' byte counts")
    ap.add_argument("--tp", default="2,4,8", help="with --plan: the TP sizes")
    a = ap.parse_args(argv)
    if a.plan:
        return plan(a)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world < 2:
        raise SystemExit("run under torchrun --nproc-per-node N (N = 2, 4 or 8 GPUs)")
    if not torch.cuda.is_available():
        raise SystemExit("needs NVIDIA GPUs (NCCL)")
    for name in [a.check] if a.check else a.configs.split(","):
        tp_config(model_config(name, a.layers).layer, world)  # a clear error first
    tp = init_tp(world, "cuda")
    if a.check:
        res = check(a, tp)
        if tp.rank == 0:
            print(json.dumps(res))
        return
    bws = [copy_bandwidth()]
    out = [bench_config(name, a, tp, bws) for name in a.configs.split(",")]
    # each rank's fastest copy (the strictest floor of its own), then the slowest rank's:
    # a step waits for its slowest rank at every all-reduce
    bw = -_max_over_ranks(-max(bws))
    if tp.rank:
        return
    print(f"{torch.cuda.get_device_name()} x {tp.size}  copy bandwidth {bw / 1e9:.0f} GB/s")
    keys = ["mixtile_ms", "eager_graph_ms", "torch_compile_graph_ms"]
    print(f"{'config':>6} {'tp':>3} {'batch':>5} {'floor':>8} {'coll.':>7} "
          + " ".join(f"{k[:-3]:>20}" for k in keys))
    for res in out:
        for r in res["rows"]:
            r["floor_ms"] = r.pop("rank_bytes") / bw * 1e3 + r["collectives_ms"]
            cells = [f"{r[k]:8.3f}({r[k] / r['floor_ms']:4.2f}x)" if k in r else "" for k in keys]
            print(f"{res['config']:>6} {res['tp']:>3} {r['batch']:>5} {r['floor_ms']:8.3f} "
                  f"{r['collectives_ms']:7.3f} " + " ".join(f"{cl:>20}" for cl in cells))
    print(json.dumps({"bench": "tp_gpu", "device": torch.cuda.get_device_name(),
                      "tp": tp.size, "ctx": a.ctx, "copy_GBps": bw / 1e9, "results": out},
                     default=lambda v: round(v, 4) if isinstance(v, float) else v))


if __name__ == "__main__":
    main()
