"""Greedy generation with the mixtile Qwen3 model.

    python -m tilelang_models.qwen3.generate --hf-dir DIR --prompt-ids "1,2,3;4,5"
        --max-new-tokens 16 [--target sim|cuda|npu|auto] [--arch a2] [--block-size 16]
    python -m tilelang_models.qwen3.generate --hf-dir DIR --prompt "Hello"   (a tokenizer
        in DIR and transformers installed)
    python -m tilelang_models.qwen3.generate --config 0.6b --random-weights
        --prompt-ids "1,2,3" --max-new-tokens 8 [--num-layers N]
    torchrun --nproc-per-node N -m tilelang_models.qwen3.generate ... --tp N   (docs/tp.md)

Prompts separated by ";" run as one batch. A progress bar (tokens/s) goes to stderr; the
last line on stdout is JSON: "tokens" (per prompt, the new ids in order, ending with the
EOS id where one was produced), "text" (with --prompt), and the timings.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

import mixtile as mt
from tilelang_models.qwen3 import tp_cli
from tilelang_models.qwen3.model import (
    Qwen3Model,
    get_model_config,
    load_hf_model,
    random_model_weights,
)
from tilelang_models.qwen3.tp import TPQwen3Model, load_hf_model_tp, random_model_weights_tp


def _parse_ids(s: str) -> list[list[int]]:
    try:
        out = [[int(t) for t in p.split(",") if t.strip()] for p in s.split(";")]
    except ValueError as e:
        raise SystemExit(f"--prompt-ids: {e} (expected comma-separated ids, prompts "
                         f"separated by ';', e.g. \"1,2,3;4,5\")") from e
    if any(not p for p in out):
        raise SystemExit(f"--prompt-ids {s!r}: an empty prompt")
    return out


def _progress(total_new: int):
    t_last = [0.0]

    def show(n, secs):
        now = time.perf_counter()
        if n < total_new and now - t_last[0] < 0.2:
            return
        t_last[0] = now
        done = int(30 * min(n, total_new) / total_new)
        print(f"\r[{'#' * done}{'.' * (30 - done)}] {n}/{total_new} tokens "
              f"{n / max(secs, 1e-9):7.1f} tok/s", end="", file=sys.stderr, flush=True)
    return show


def run(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m tilelang_models.qwen3.generate",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--hf-dir", default=None, help="a Hugging Face Qwen3 checkpoint directory")
    ap.add_argument("--config", default=None, help="a preset (tiny, 0.6b, 8b, 14b) with "
                                                   "--random-weights")
    ap.add_argument("--random-weights", action="store_true")
    ap.add_argument("--num-layers", type=int, default=None, help="use the first N layers")
    ap.add_argument("--prompt-ids", default=None)
    ap.add_argument("--prompt", default=None, help="text (needs a tokenizer in --hf-dir)")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--target", default="sim", choices=(*mt.BACKENDS, "auto"))
    ap.add_argument("--arch", default=None, help="the machine: a2, a3, a5 for sim and npu")
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--timeline", default=None, metavar="FILE",
                    help="write the NPU timing model's trace of the first decode step "
                         "(target sim; docs/timeline.md)")
    ap.add_argument("--tp", type=int, default=1,
                    help="tensor-parallel ranks (under torchrun --nproc-per-node N; docs/tp.md)")
    a = ap.parse_args(argv)
    if (a.hf_dir is None) == (a.config is None):
        ap.error("give --hf-dir DIR, or --config NAME --random-weights")
    if a.config is not None and not a.random_weights:
        ap.error("--config needs --random-weights (or give --hf-dir)")
    if (a.prompt_ids is None) == (a.prompt is None):
        ap.error("give --prompt-ids or --prompt")
    backend = mt.get_backend(a.target)
    backend.require()
    dev = backend.device()
    mcfg = get_model_config(a.hf_dir or a.config, a.num_layers)
    tp = tp_cli.start(a, mcfg.layer)  # None: one device
    tok = None
    if a.prompt is not None:
        if a.hf_dir is None:
            ap.error("--prompt needs --hf-dir with a tokenizer")
        try:
            from transformers import AutoTokenizer
        except ImportError:
            ap.error("--prompt needs transformers (pip install transformers); or pass "
                     "--prompt-ids")
        tok = AutoTokenizer.from_pretrained(a.hf_dir)
        prompts = [tok(p)["input_ids"] for p in a.prompt.split(";")]
    else:
        prompts = _parse_ids(a.prompt_ids)
    t0 = time.perf_counter()
    if tp is not None:  # the rank's share of the weights (the same random draws)
        w = (random_model_weights_tp(mcfg, tp, a.seed, device=dev) if a.random_weights
             else load_hf_model_tp(a.hf_dir, mcfg, tp, device=dev))
    else:
        w = (random_model_weights(mcfg, a.seed, device=dev) if a.random_weights
             else load_hf_model(a.hf_dir, mcfg, device=dev))
    load_s = time.perf_counter() - t0
    cc = None if a.arch is None else dict(arch=a.arch)
    model = (Qwen3Model(mcfg, w, target=backend.name, compile_cfg=cc) if tp is None
             else TPQwen3Model(mcfg, w, tp, target=backend.name, compile_cfg=cc))
    total = a.max_new_tokens * len(prompts)
    show = None if a.no_progress or tp_cli.rank() else _progress(total)
    if a.timeline and (backend.name != "sim" or tp is not None):
        ap.error("--timeline runs the NPU timing model of one device: it needs --target "
                 "sim and no --tp")
    res = model.generate(prompts, a.max_new_tokens, block_size=a.block_size, on_token=show,
                         timeline=a.timeline)
    if show:
        print(file=sys.stderr)
    n_new = sum(len(t) for t in res.tokens)
    out = {"config": mcfg.name, "target": backend.name, "layers": mcfg.num_layers,
           "batch": len(prompts), "prompt_lens": [len(p) for p in prompts],
           "tokens": res.tokens, "load_s": round(load_s, 3),
           "prefill_s": round(res.prefill_s, 4), "decode_s": round(res.decode_s, 4),
           "decode_steps": res.decode_steps,
           "tokens_per_s": round(n_new / max(res.prefill_s + res.decode_s, 1e-9), 2)}
    if tp is not None:
        out["tp"] = tp.size
    if "estimated_step_us" in res.times:
        out["estimated_step_us"] = res.times["estimated_step_us"]
        out["timeline"] = a.timeline
    if tok is not None:
        out["text"] = [tok.decode(t) for t in res.tokens]
    return out


def main(argv=None) -> int:
    with torch.no_grad():
        res = run(argv)
    if tp_cli.rank() == 0:
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
