"""A Qwen3 decode layer as five mixtile kernels, run through `mt.run_jit` on any target.

    layer = DecodeLayer(cfg, weights, target="sim")
    out = layer(x, k_cache, v_cache, block_table, seq_lens)   # k/v caches updated in place
    out2 = layer2(out, ..., x_ssq=layer.out_ssq)   # norm_stats: the next layer skips a pass
    out = decode_layer(cfg, weights, x, k_cache, v_cache, block_table, seq_lens)  # one-off

Phases (see kernels.py):
  x ─ rmsnorm_gemm ─> qkv ─ fa_fused(paged cache) ─> attn ─ gemm_residual(+x) ─> h2
    ─ rmsnorm_swiglu ─> a ─ gemm_residual(+h2) ─> out
With norm_stats (the default on CUDA) the O and down projections are gemm_residual_sumsq,
which also write row sums of h2^2 / out^2 per N tile; the MLP (rmsnorm_swiglu_folded) reads
h2's, and the next layer's QKV projection (rmsnorm_gemm_folded) reads out's when it is given
them as x_ssq (a layer given none makes its own pass over x, as rmsnorm_gemm does). These
kernels take the RMSNorm weights folded into the projection weights (the layer keeps folded
copies of the QKV and gate/up weights): their K loops are plain GEMMs on the activation.
Intermediate buffers are allocated once per batch size and reused across steps.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import torch

import mixtile as mt
from tilelang_models.qwen3.config import Qwen3Config
from tilelang_models.qwen3.kernels import (
    fa_fused,
    fold_norm_weight,
    gemm_residual,
    gemm_residual_sumsq,
    rmsnorm_gemm,
    rmsnorm_gemm_folded,
    rmsnorm_swiglu,
    rmsnorm_swiglu_folded,
)
from tilelang_models.qwen3.weights import LayerWeights

# GPU tiles per kernel, (batch <= 8, batch > 8); TM is 16 up to batch 16, else 32.
# From benchmarks/gpu_tile_sweep.py on an H200 (--what steps: in the layer's sequence).
# mlp_up at batch 32: TM=32 since the folded norm (94 vs 101 us in the layer; before it,
# TM=16 with two M tiles sharing each weight tile through L2 was faster: 104 vs 111).
# o_proj's TN also sets how many row-sum partials the MLP reads (5120 / 64 = 80: mlp_up
# 103 -> 91 us at batch 1 against 160 partials with TN=32).
GPU_TILES = {
    "qkv": (dict(TN=64, TK=512), dict(TN=64, TK=256)),
    "o_proj": (dict(TN=64, TK=256), dict(TN=64, TK=512)),
    "mlp_up": (dict(TN=32, TK=128), dict(TN=32, TK=128)),
    "down": (dict(TN=64, TK=256), dict(TN=64, TK=512)),
}
# NPU projection tiles are chosen by the timing model among these (DecodeLayer.gemm_tiles)
NPU_TILE_SPACE = dict(TN=(64, 128, 256), TK=(128, 256, 512))
GPU_ATTN_ITEMS = 128  # attention work items to aim for on a GPU (NSPLIT = this / (B*KVH))


@dataclass
class StepTimes:
    """Seconds spent per kernel in the last step (compile includes cache lookups)."""

    compile_s: float = 0.0
    run_s: float = 0.0
    per_kernel: dict = field(default_factory=dict)


class DecodeLayer:
    """One Qwen3 decoder layer for decode steps (one new token per sequence)."""

    def __init__(self, cfg: Qwen3Config, w: LayerWeights, target: str = "sim",
                 compile_cfg: dict | None = None, progress: bool | None = None,
                 tiles: dict | None = None, tune: bool = True,
                 norm_stats: bool | None = None, specialize: bool = False) -> None:
        """tiles: {kernel name: constants} overriding the GPU tile table or the NPU
        tiles the timing model picks (sweeps);
        tune: on CUDA, pick each launch's num_warps / num_stages by timing at first use
        (outside graph capture; mt.run_jit's tune);
        norm_stats: the O and down projections also write per-tile row sums of h2^2 and
        out^2 (gemm_residual_sumsq; out's are `out_ssq` after a call) and the RMSNorms read
        them (rmsnorm_swiglu_folded; rmsnorm_gemm_folded when the call passes x_ssq)
        instead of a pass over the activation in every block, with the norm weights folded
        into copies of the QKV and gate/up weights that the layer keeps (default: on CUDA,
        where that pass stalls each block before its weights stream; elsewhere the plain
        kernels);
        specialize: on CUDA, compile each kernel for the argument shapes (static dims;
        rmsnorm_gemm's norm loop unrolls). Off: on an H200 the layer took -6 / +5 / +13 us
        at batch 1 / 8 / 32 with it (qkv at batch 32: 48.5 vs 37.7 us)."""
        self.backend = mt.get_backend(target)  # "auto" resolves to what this machine has
        self.cfg, self.w, self.target = cfg, w, self.backend.name
        self.tiles, self.tune = dict(tiles or {}), tune
        self.norm_stats = self.target == "cuda" if norm_stats is None else norm_stats
        self.specialize = specialize
        self.compile_cfg = dict(compile_cfg or {})
        self.wqkv = torch.cat([w.q_proj, w.k_proj, w.v_proj]).contiguous()  # merged once
        self.g_in, self.wgate, self.wup = w.input_layernorm, w.gate_proj, w.up_proj
        if self.norm_stats:  # the RMSNorm weights folded into the projections that follow
            self.wqkv = fold_norm_weight(self.wqkv, w.input_layernorm)
            self.g_in = torch.ones_like(w.input_layernorm)  # rmsnorm_gemm on the folded wqkv
            self.wgate = fold_norm_weight(w.gate_proj, w.post_attention_layernorm)
            self.wup = fold_norm_weight(w.up_proj, w.post_attention_layernorm)
        self._bufs: dict[int, dict[str, torch.Tensor]] = {}
        self._npu_tiles: dict[int, dict[str, dict]] = {}  # batch -> tuned NPU tiles
        # a list to record each launch's mt.Timeline in (the NPU timing model; sim only)
        self.timelines: list | None = None
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.times = StepTimes()
        self.out_ssq: torch.Tensor | None = None  # with norm_stats: [B, n] of the output

    def partials(self, b: int, kernel: str) -> int:
        """Row-sum partials per row that projection `kernel` ("o_proj" or "down") writes
        with norm_stats: one per N tile of the hidden size."""
        return -(-self.cfg.hidden_size // self.gemm_tiles(b)[kernel]["TN"])

    def _buffers(self, b: int, device) -> dict[str, torch.Tensor]:
        if b not in self._bufs:
            c = self.cfg
            nt, ntd = self.partials(b, "o_proj"), self.partials(b, "down")
            nh = c.num_attention_heads + 2 * c.num_key_value_heads
            e = dict(dtype=torch.bfloat16, device=device)
            self._bufs[b] = {"qkv": torch.empty(b, nh * c.head_dim, **e),
                             "attn": torch.empty(b, c.q_size, **e),
                             "h2": torch.empty(b, c.hidden_size, **e),
                             # per-tile row sums of h2^2 (o_proj -> the MLP's RMSNorm)
                             "ssq": torch.empty(b, nt, dtype=torch.float32, device=device),
                             "act": torch.empty(b, c.intermediate_size, **e),
                             "out": torch.empty(b, c.hidden_size, **e),
                             # per-tile row sums of out^2 (down -> the next layer's norm)
                             "out_ssq": torch.empty(b, ntd, dtype=torch.float32,
                                                    device=device)}
        return self._bufs[b]

    def input_ssq(self, x: torch.Tensor) -> torch.Tensor:
        """x's row sums of squares as [B, n] fp32 partials, as many as this layer's own
        out_ssq has (the same split points when H is a multiple of the down projection's
        TN; the row sums always agree): what a previous layer hands over (a torch op, for
        a model's first layer and for tests)."""
        b, h = x.shape
        nt = self.partials(b, "down")
        xf = torch.nn.functional.pad(x.float(), (0, -h % nt))
        return xf.pow(2).view(b, nt, -1).sum(-1)

    def attention_consts(self, b: int, block_size: int) -> dict:
        c = self.cfg
        items = b * c.num_key_value_heads
        consts = dict(HQ=c.num_attention_heads, KVH=c.num_key_value_heads, D=c.head_dim,
                      BS=block_size, eps=c.rms_norm_eps, theta=c.rope_theta)
        if self.target == "cuda":
            # a syncall is a launch boundary on a GPU: one block per work item, and
            # enough items (splits of the KV sequence) for several blocks per SM
            nsplit = max(1, min(16, math.ceil(GPU_ATTN_ITEMS / items)))
            return {**consts, "NSPLIT": nsplit, "GRID": items * nsplit,
                    **self.tiles.get("attention", {})}
        clusters = self.compile_cfg.get("clusters") or mt.get_target(
            self.compile_cfg.get("arch") or self.backend.default_machine).clusters
        nsplit = max(1, min(8, math.ceil(2 * clusters / items)))  # keep every cluster busy
        return dict(consts, NSPLIT=nsplit)

    def gemm_tiles(self, b: int) -> dict[str, dict]:
        """{kernel: tile constants} of the four projections for batch b."""
        tm = 16 if b <= 16 else 32
        if self.target == "cuda":
            # decode GEMMs read each weight once: on a GPU, narrow N tiles give enough
            # blocks to keep every SM streaming; on the NPU targets the timing model picks
            t = {k: {"TM": tm, **v[0 if b <= 8 else 1]} for k, v in GPU_TILES.items()}
            t.update({k: v for k, v in self.tiles.items() if k in t})
            return t
        t = self._npu_tiles.get(b)
        if t is None:
            t = self._npu_tiles[b] = self.tune_npu_tiles(b, tm)
        t = {k: dict(v) for k, v in t.items()}
        t.update({k: v for k, v in self.tiles.items() if k in t})
        return t

    def tune_npu_tiles(self, b: int, tm: int) -> dict[str, dict]:
        """Each projection's (TN, TK) on an NPU target, by the NPU timing model's
        estimate of its kernel (mt.autotune over NPU_TILE_SPACE, cached on disk per
        shape: a search runs once) on zero tensors of the layer's shapes. The plain
        kernels are scored (norm_stats off, the NPU default)."""
        c = self.cfg
        h, i, q = c.hidden_size, c.intermediate_size, c.q_size
        n = self.wqkv.shape[0]
        eps = float(c.rms_norm_eps)

        def z(*s):
            return torch.zeros(*s, dtype=torch.bfloat16)

        units = {"qkv": (rmsnorm_gemm, (z(b, h), z(h), z(n, h), z(b, n), eps)),
                 "o_proj": (gemm_residual, (z(b, q), z(h, q), z(b, h), z(b, h))),
                 "mlp_up": (rmsnorm_swiglu, (z(b, h), z(h), z(i, h), z(i, h), z(b, i), eps)),
                 "down": (gemm_residual, (z(b, i), z(h, i), z(b, h), z(b, h)))}
        cfg = {k: v for k, v in self.compile_cfg.items() if k in ("arch", "clusters")}
        return {name: mt.autotune(kern, *args, space=NPU_TILE_SPACE, target=self.target,
                                  compile_cfg=cfg, TM=tm).consts
                for name, (kern, args) in units.items()}

    def kernels(self, b: int, block_size: int, nt_in: int | None = None) -> list[tuple]:
        """(kernel, constants) of each phase for batch b (the compile units); nt_in: the
        partial sums per row of x_ssq, when the call has them (norm_stats)."""
        t = self.gemm_tiles(b)
        nt = self.partials(b, "o_proj")
        qkv = (rmsnorm_gemm, t["qkv"])
        if self.norm_stats:
            o = (gemm_residual_sumsq, t["o_proj"])
            mlp = (rmsnorm_swiglu_folded, dict(NT=nt, **t["mlp_up"]))
            down = (gemm_residual_sumsq, t["down"])
            if nt_in is not None:
                qkv = (rmsnorm_gemm_folded, dict(NT=nt_in, **t["qkv"]))
        else:
            o, mlp = (gemm_residual, t["o_proj"]), (rmsnorm_swiglu, t["mlp_up"])
            down = (gemm_residual, t["down"])
        return [qkv, (fa_fused, self.attention_consts(b, block_size)), o, mlp, down]

    def compile(self, b: int, block_size: int) -> float:
        """Compile every kernel of the layer (cached), with norm_stats also the QKV
        projection that reads x_ssq (as many partials as out_ssq has); returns the
        seconds it took."""
        t0 = time.perf_counter()
        units = self.kernels(b, block_size)
        if self.norm_stats:
            units.append(self.kernels(b, block_size, self.partials(b, "down"))[0])
        for kern, consts in units:
            mt.compile(kern, self.compile_cfg, target=self.target, **consts)
        return time.perf_counter() - t0

    def steps(self, x, k_cache, v_cache, block_table, seq_lens, x_ssq=None) -> list[tuple]:
        """(name, kernel, args, constants) of each launch of one step, in order."""
        c, w = self.cfg, self.w
        b = x.shape[0]
        bs = k_cache.shape[1]
        buf = self._buffers(b, x.device)
        if x_ssq is not None and not self.norm_stats:
            x_ssq = None  # the plain kernels make their own pass over x
        (k1, c1), (k2, c2), (k3, c3), (k4, c4), (k5, c5) = self.kernels(
            b, bs, None if x_ssq is None else x_ssq.shape[1])
        nh = c.num_attention_heads + 2 * c.num_key_value_heads
        eps = float(c.rms_norm_eps)
        ssq = (buf["ssq"],) if self.norm_stats else ()
        xs = () if x_ssq is None else (x_ssq,)
        return [
            ("qkv", k1, (x,) + (xs or (self.g_in,)) + (self.wqkv, buf["qkv"], eps), c1),
            ("attention", k2, (buf["qkv"].view(b, nh, c.head_dim), w.q_norm, w.k_norm,
                               k_cache, v_cache, block_table, seq_lens,
                               buf["attn"].view(b, c.num_attention_heads, c.head_dim)), c2),
            ("o_proj", k3, (buf["attn"], w.o_proj, x, buf["h2"]) + ssq, c3),
            ("mlp_up", k4, (buf["h2"],) + (ssq or (w.post_attention_layernorm,))
             + (self.wgate, self.wup, buf["act"], eps), c4),
            ("down", k5, (buf["act"], w.down_proj, buf["h2"], buf["out"])
             + ((buf["out_ssq"],) if self.norm_stats else ()), c5),
        ]

    def run_step(self, name, kern, args, consts):
        """Run one launch of `steps` (on CUDA with launch configs tuned at first use)."""
        cc = self.compile_cfg
        if self.target == "cuda" and self.specialize and "specialize_dims" not in cc:
            cc = dict(cc, specialize_dims=True)
        res = mt.run_jit(kern, *args, target=self.target, compile_cfg=cc,
                         tune=self.tune and self.target == "cuda",
                         timeline=self.timelines is not None or None, **consts)
        if self.timelines is not None:
            self.timelines.append(res.timeline)
        return res

    def __call__(self, x, k_cache, v_cache, block_table, seq_lens, x_ssq=None
                 ) -> torch.Tensor:
        """One step; returns the output (a buffer reused by the next call of this batch
        size). x_ssq: row sums of x^2 as [B, n] partials (the previous layer's out_ssq),
        used with norm_stats; out_ssq then holds this output's, for the next layer."""
        steps = self.steps(x, k_cache, v_cache, block_table, seq_lens, x_ssq)
        self.times = StepTimes()
        self.out_ssq = None
        for i, (name, kern, args, consts) in enumerate(steps):
            if self.progress:
                print(f"\r[{i + 1}/{len(steps)}] {name:<10}", end="", file=sys.stderr,
                      flush=True)
            res = self.run_step(name, kern, args, consts)
            self.times.compile_s += res.compile_s
            self.times.run_s += res.run_s
            self.times.per_kernel[name] = res.run_s
        if self.progress:
            print("\r" + " " * 24 + "\r", end="", file=sys.stderr, flush=True)
        buf = self._bufs[x.shape[0]]
        self.out_ssq = buf["out_ssq"] if self.norm_stats else None
        return buf["out"]


_layers: dict[tuple, DecodeLayer] = {}


def decode_layer(cfg: Qwen3Config, w: LayerWeights, x, k_cache, v_cache, block_table,
                 seq_lens, target: str = "sim") -> torch.Tensor:
    """One decode step; the DecodeLayer (and its buffers) is kept per (config, weights,
    target), so calling this every step reuses everything. Returns the layer output."""
    key = (cfg, id(w), target)
    layer = _layers.get(key)
    if layer is None or layer.w is not w:
        layer = _layers[key] = DecodeLayer(cfg, w, target=target)
    return layer(x, k_cache, v_cache, block_table, seq_lens)
