"""Qwen3-MoE layers: the dense layers' attention launches, then the sparse block.

    layer = MoeDecodeLayer(cfg, weights, target="sim")
    out = layer(x, k_cache, v_cache, block_table, seq_lens)   # caches updated in place

    x ─ rmsnorm_gemm ─> qkv ─ fa_fused(paged cache) ─> attn ─ gemm_residual(+x) ─> h2
      ─ moe_router(rmsnorm(h2)) ─ moe_sort ─ moe_gate_up ─ moe_down(+h2) ─> out

The first three launches are DecodeLayer's (same kernels, tiles and attention split);
the rest is MoeBlock (moe.py). MoePrefillLayer is the same over packed new tokens with
PrefillLayer's attention (QKV, chunked_kv_write, chunked_attention, O projection).
"""
from __future__ import annotations

import dataclasses
import sys
import time

import torch

import mixtile as mt
from tilelang_models.qwen3.decode_layer import DecodeLayer, StepTimes
from tilelang_models.qwen3.moe import MoeBlock
from tilelang_models.qwen3.moe_config import Qwen3MoeConfig
from tilelang_models.qwen3.moe_reference import moe_ref
from tilelang_models.qwen3.moe_weights import MoeLayerWeights
from tilelang_models.qwen3.prefill_layer import PrefillLayer
from tilelang_models.qwen3.reference import decode_layer_ref, prefill_layer_ref, rmsnorm

__all__ = ["MoeDecodeLayer", "MoePrefillLayer", "moe_decode_layer_ref",
           "moe_prefill_layer_ref"]

_MOE_TILES = ("router", "sort", "gather", "gate_up", "quant", "quant_x", "down")


def _block(cfg: Qwen3MoeConfig, w: MoeLayerWeights, target, compile_cfg, tiles, tune):
    return MoeBlock(w.moe, cfg.top_k, cfg.norm_topk_prob, target=target,
                    compile_cfg=compile_cfg, tune=tune,
                    tiles={k: v for k, v in (tiles or {}).items() if k in _MOE_TILES})


def _run(steps, run_step, times: StepTimes) -> None:
    for name, kern, args, consts in steps:
        res = run_step(name, kern, args, consts)
        times.compile_s += res.compile_s
        times.run_s += res.run_s
        times.per_kernel[name] = res.run_s


class MoeDecodeLayer:
    """One Qwen3-MoE decoder layer for decode steps (one new token per sequence)."""

    def __init__(self, cfg: Qwen3MoeConfig, w: MoeLayerWeights, target: str = "sim",
                 compile_cfg: dict | None = None, progress: bool | None = None,
                 tiles: dict | None = None) -> None:
        """tiles: constants overriding the defaults, per kernel (DecodeLayer's names for
        the attention half, MoeBlock's "router", "sort", "gather", "gate_up", "quant", "down")."""
        self.cfg, self.w = cfg, w
        # the dense MLP never runs: its width only sizes DecodeLayer's unused MLP buffer
        # and NPU tile search, so give it the expert width
        attn_cfg = dataclasses.replace(cfg.attn, intermediate_size=cfg.moe_intermediate_size)
        self.attn = DecodeLayer(attn_cfg, w.attn, target=target, compile_cfg=compile_cfg,
                                progress=False, tiles=tiles, norm_stats=False)
        self.target = self.attn.target
        self.moe = _block(cfg, w, self.target, compile_cfg, tiles, self.attn.tune)
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.times = StepTimes()

    def compile(self, b: int, block_size: int) -> float:
        """Compile every launch for batch b (cached); returns the seconds it took."""
        t0 = time.perf_counter()
        for kern, consts in self.attn.kernels(b, block_size)[:3]:
            mt.compile(kern, self.attn.compile_cfg, target=self.target, **consts)
        self.moe.compile(b)
        return time.perf_counter() - t0

    def h2(self, b: int) -> torch.Tensor:
        """The attention half's output of the last step with batch b (the residual and
        the sparse block's input)."""
        return self.attn._bufs[b]["h2"]

    def kernels(self, b: int, block_size: int) -> list[tuple]:
        """(kernel, constants) of each launch for batch b."""
        x = torch.empty(b, self.cfg.attn.hidden_size, dtype=torch.bfloat16,
                        device=self.w.moe.router.device)
        return (self.attn.kernels(b, block_size)[:3]
                + [(k, c) for _, k, _, c in self.moe.steps(x, x, (x[0], 1e-6))])

    def steps(self, x, k_cache, v_cache, block_table, seq_lens) -> list[tuple]:
        """(name, kernel, args, constants) of each launch of one step, in order."""
        att = self.attn.steps(x, k_cache, v_cache, block_table, seq_lens)[:3]
        h2 = self.h2(x.shape[0])
        c = self.cfg.attn
        return att + self.moe.steps(h2, h2, (self.w.attn.post_attention_layernorm,
                                             float(c.rms_norm_eps)))

    def __call__(self, x, k_cache, v_cache, block_table, seq_lens) -> torch.Tensor:
        """One step; returns the output (a buffer reused by the next call of this batch
        size)."""
        steps = self.steps(x, k_cache, v_cache, block_table, seq_lens)
        self.times = StepTimes()

        def run_step(name, kern, args, consts):
            if self.progress:
                i = [s[0] for s in steps].index(name)
                print(f"\r[{i + 1}/{len(steps)}] {name:<10}", end="", file=sys.stderr,
                      flush=True)
            return self.attn.run_step(name, kern, args, consts)

        _run(steps, run_step, self.times)
        if self.progress:
            print("\r" + " " * 24 + "\r", end="", file=sys.stderr, flush=True)
        return self.moe._bufs[x.shape[0]]["out"]


class MoePrefillLayer:
    """One Qwen3-MoE decoder layer over a packed batch of new tokens (prompt prefill,
    chunked prefill, or mixed with decode steps; PrefillLayer's layout: x [T, H], cu_q,
    ctx_lens, the paged caches)."""

    def __init__(self, cfg: Qwen3MoeConfig, w: MoeLayerWeights, target: str = "sim",
                 compile_cfg: dict | None = None, tiles: dict | None = None,
                 tune: bool = True) -> None:
        """tiles: constants per kernel (PrefillLayer's names and MoeBlock's)."""
        self.cfg, self.w = cfg, w
        self.attn = PrefillLayer(cfg.attn, w.attn, target=target, compile_cfg=compile_cfg,
                                 tiles=tiles, tune=tune)
        self.target = self.attn.target
        self.moe = _block(cfg, w, self.target, compile_cfg, tiles, tune)
        self.times = StepTimes()
        self.h2: torch.Tensor | None = None  # the attention half's output of the last call

    def steps(self, x, cu_q, ctx_lens, k_cache, v_cache, block_table,
              max_q: int | None = None) -> list[tuple]:
        """(name, kernel, args, constants) of each launch, in order."""
        att = self.attn.steps(x, cu_q, ctx_lens, k_cache, v_cache, block_table, max_q)
        att = att[:[s[0] for s in att].index("o_proj") + 1]
        self.h2 = att[-1][2][-1]  # gemm_residual's output
        c = self.cfg.attn
        return att + self.moe.steps(self.h2, self.h2, (self.w.attn.post_attention_layernorm,
                                                       float(c.rms_norm_eps)))

    def __call__(self, x, cu_q, ctx_lens, k_cache, v_cache, block_table,
                 max_q: int | None = None) -> torch.Tensor:
        """Run the layer; returns out [T, H] (a buffer reused by the next call with T
        tokens). The caches get the new tokens' k and v."""
        self.times = StepTimes()
        if x.shape[0] == 0:
            return torch.empty_like(x)

        def run_step(name, kern, args, consts):
            return mt.run_jit(kern, *args, target=self.target,
                              compile_cfg=self.attn.compile_cfg,
                              tune=self.attn.tune and self.target == "cuda", **consts)

        _run(self.steps(x, cu_q, ctx_lens, k_cache, v_cache, block_table, max_q), run_step,
             self.times)
        return self.moe._bufs[x.shape[0]]["out"]


def _zero_mlp(cfg: Qwen3MoeConfig, w: MoeLayerWeights):
    """The attention weights with a zero dense MLP: the dense references then return h2."""
    z = torch.zeros(1, cfg.attn.hidden_size, dtype=torch.bfloat16)
    return type(w.attn)(**{**dict(w.attn.items()), "gate_proj": z, "up_proj": z,
                           "down_proj": z.T.contiguous()})


def _moe_half(cfg, w, h2, routing):
    h3 = rmsnorm(h2, w.attn.post_attention_layernorm, cfg.attn.rms_norm_eps).bfloat16()
    m = w.moe.to("cpu")
    return moe_ref(h3, m.router, m.gate, m.up, m.down, cfg.top_k, res=h2,
                   norm_topk_prob=cfg.norm_topk_prob, scales=m.scales(), routing=routing)


@torch.no_grad()
def moe_prefill_layer_ref(cfg: Qwen3MoeConfig, w: MoeLayerWeights, x, cu_q, ctx_lens,
                          k_cache, v_cache, block_table, h2: torch.Tensor | None = None,
                          routing: tuple | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, h2_ref) of MoePrefillLayer, as moe_decode_layer_ref (prefill_layer_ref's
    attention half; the caches updated in place)."""
    h2_ref = prefill_layer_ref(cfg.attn, _zero_mlp(cfg, w), x, cu_q, ctx_lens, k_cache,
                               v_cache, block_table)
    return _moe_half(cfg, w, h2_ref if h2 is None else h2.cpu(), routing), h2_ref


@torch.no_grad()
def moe_decode_layer_ref(cfg: Qwen3MoeConfig, w: MoeLayerWeights, x, k_cache, v_cache,
                         block_table, seq_lens, h2: torch.Tensor | None = None,
                         routing: tuple | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The torch golden: (out, h2_ref). h2_ref is decode_layer_ref's attention half (its
    MLP given zero weights, so it returns h2 exactly); then h3 = bf16(rmsnorm(h2)) and
    out = moe_ref(h3, res=h2) with h2 = the given one (the layer's own, `layer.h2(b)`)
    or h2_ref, routed by `routing` (the layer's ids and weights, `layer.moe.routing(b)`)
    or by route_ref. Routing is discontinuous: one bf16 ulp of h2 (attention's summation
    order), or of a logit (the GEMM's), can flip a near-tie of the bf16 logits and change
    a token's expert, so a check of the MoE half takes the layer's h2 and routing and
    checks them on their own (h2 against h2_ref, the routing with routing_error)."""
    h2_ref = decode_layer_ref(cfg.attn, _zero_mlp(cfg, w), x, k_cache, v_cache,
                              block_table, seq_lens)
    return _moe_half(cfg, w, h2_ref if h2 is None else h2.cpu(), routing), h2_ref
