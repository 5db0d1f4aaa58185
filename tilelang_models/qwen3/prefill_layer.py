"""A Qwen3 layer over many new tokens per sequence (prompt prefill, chunked prefill, or a
mixed batch with decode steps) as six mixtile kernels, on any target.

    layer = PrefillLayer(cfg, weights, target="sim")
    out = layer(x, cu_q, ctx_lens, k_cache, v_cache, block_table)   # caches updated

x is [T, H]: the new tokens of B sequences packed (sequence b's are rows cu_q[b] ..
cu_q[b + 1]); sequence b has ctx_lens[b] tokens in the cache already, and its new token i
is at position ctx_lens[b] + i. Phases (kernels.py, chunked.py):

  x ─ rmsnorm_gemm ─> qkv ─ chunked_kv_write (q/k norm + RoPE, k and v into the pages)
    ─ chunked_attention (paged, causal) ─> attn ─ gemm_residual(+x) ─> h2
    ─ rmsnorm_swiglu ─> act ─ gemm_residual(+h2) ─> out

The GEMMs run at M = T: their tiles are chosen for a compute-bound GEMM (square-ish
output tiles, each weight tile reused by TM rows), not for decode's weight streaming. On
the NPU targets the timing model picks them per token bucket (PrefillLayer.gemm_tiles).
Storage points (bf16) are those of reference.py's prefill_layer_ref.
"""
from __future__ import annotations

import time

import torch

import mixtile as mt
from tilelang_models.qwen3.chunked import chunked_attention, chunked_kv_write
from tilelang_models.qwen3.config import Qwen3Config
from tilelang_models.qwen3.decode_layer import StepTimes
from tilelang_models.qwen3.kernels import gemm_residual, rmsnorm_gemm, rmsnorm_swiglu
from tilelang_models.qwen3.weights import LayerWeights

# GEMM tiles at M = prompt tokens. On the cube: TM x TK and TN x TK bf16 operands in
# L0A / L0B (64 KiB each) and a TM x TN fp32 accumulator in L0C (two for the MLP's gate and
# up); the compiler's PingPong pass gives two K steps' operands their own buffers where
# they fit (docs/timeline.md). On the NPU targets the timing model picks each
# projection's tiles among NPU_TILE_SPACE (candidates that do not fit the machine are
# skipped); NPU_TILES is the fixed choice they replaced. On a GPU: 64 x 128 output
# tiles, K steps of 64 (Triton pipelines the loads).
NPU_TILES = dict(TM=64, TN=128, TK=128)
NPU_TILE_SPACE = dict(TM=(64, 128, 256), TN=(128, 256), TK=(64, 128, 256))
TUNE_MIN_M, TUNE_MAX_M = 16, 512  # token buckets: powers of two, scored at M <= 512
GPU_TILES = dict(TM=64, TN=128, TK=64)
ATTN_TM = 64  # query rows per attention block


def npu_tile_space(m: int) -> dict:
    """NPU_TILE_SPACE for M = m rows: TM no larger than m (but 64), a taller tile only
    pads."""
    return dict(NPU_TILE_SPACE, TM=tuple(t for t in NPU_TILE_SPACE["TM"] if t <= max(64, m)))


def token_bucket(tokens: int) -> int:
    """The M the NPU tile search scores a T-token launch at: T rounded up to a power of
    two (at least TUNE_MIN_M), at most TUNE_MAX_M."""
    return min(TUNE_MAX_M, max(TUNE_MIN_M, 1 << max(0, tokens - 1).bit_length()))


class PrefillLayer:
    """One Qwen3 decoder layer for a packed batch of new tokens (see the module doc)."""

    def __init__(self, cfg: Qwen3Config, w: LayerWeights, target: str = "sim",
                 compile_cfg: dict | None = None, tiles: dict | None = None,
                 tune: bool = True, wqkv: torch.Tensor | None = None) -> None:
        """tiles: {kernel name ("qkv", "o_proj", "mlp_up", "down", "attention"):
        constants} overriding the GPU tiles or the NPU tiles the timing model picks;
        tune: on CUDA, pick each launch's num_warps / num_stages by timing at first use
        (mt.run_jit's tune); wqkv: the merged [q; k; v] projection when the caller has
        it (a model shares its decode layer's)."""
        self.backend = mt.get_backend(target)
        self.cfg, self.w, self.target = cfg, w, self.backend.name
        self.tiles, self.tune = dict(tiles or {}), tune
        self.compile_cfg = dict(compile_cfg or {})
        self.wqkv = (torch.cat([w.q_proj, w.k_proj, w.v_proj]).contiguous()
                     if wqkv is None else wqkv)
        self._npu_tiles: dict[int, dict[str, dict]] = {}  # token bucket -> tuned NPU tiles
        self.times = StepTimes()

    def gemm_tiles(self, tokens: int) -> dict[str, dict]:
        """{kernel: tile constants} of the four projections for a launch over `tokens`
        new tokens (M): on CUDA GPU_TILES; on the NPU targets the timing model's pick for
        the token bucket (tune_npu_tiles). `tiles=` entries override either."""
        if self.target == "cuda":
            t = {k: dict(GPU_TILES) for k in ("qkv", "o_proj", "mlp_up", "down")}
        else:
            m = token_bucket(tokens)
            if m not in self._npu_tiles:
                self._npu_tiles[m] = self.tune_npu_tiles(m)
            t = {k: dict(v) for k, v in self._npu_tiles[m].items()}
        return {k: {**v, **self.tiles.get(k, {})} for k, v in t.items()}

    def gemm_units(self, m: int) -> dict[str, tuple]:
        """{name: (kernel, args)} of the four projections at M = m rows on zero tensors of
        the layer's shapes (from the config): what the NPU tile search scores."""
        c = self.cfg
        h, i, q = c.hidden_size, c.intermediate_size, c.q_size
        n = c.q_size + 2 * c.kv_size
        eps = float(c.rms_norm_eps)

        def z(*s):
            return torch.zeros(*s, dtype=torch.bfloat16)

        return {"qkv": (rmsnorm_gemm, (z(m, h), z(h), z(n, h), z(m, n), eps)),
                "o_proj": (gemm_residual, (z(m, q), z(h, q), z(m, h), z(m, h))),
                "mlp_up": (rmsnorm_swiglu, (z(m, h), z(h), z(i, h), z(i, h), z(m, i), eps)),
                "down": (gemm_residual, (z(m, i), z(h, i), z(m, h), z(m, h)))}

    def tune_npu_tiles(self, m: int) -> dict[str, dict]:
        """Each projection's (TM, TN, TK) on an NPU target for M = m rows, by the NPU
        timing model's estimate of its kernel (mt.autotune over npu_tile_space(m), for
        the compile_cfg's arch; cached on disk per shape: a search runs once) on
        gemm_units(m). The search simulates every candidate at full N and K, so it scores
        at most TUNE_MAX_M rows (token_bucket): for longer prompts that M stands in for
        the prompt's (at Qwen3-14B shapes the search took about 4 minutes per arch on a
        2-core CPU, most of it the MLP's gate/up; at the tiny config about a second)."""
        cfg = {k: v for k, v in self.compile_cfg.items() if k in ("arch", "clusters")}
        space = npu_tile_space(m)
        return {name: mt.autotune(kern, *args, space=space, target=self.target,
                                  compile_cfg=cfg).consts
                for name, (kern, args) in self.gemm_units(m).items()}

    def attention_consts(self, block_size: int) -> dict:
        c = self.cfg
        return dict(HQ=c.num_attention_heads, KVH=c.num_key_value_heads, D=c.head_dim,
                    BS=block_size, eps=c.rms_norm_eps, theta=c.rope_theta)

    def steps(self, x, cu_q, ctx_lens, k_cache, v_cache, block_table,
              max_q: int | None = None) -> list[tuple]:
        """(name, kernel, args, constants) of each launch, in order. max_q: the most new
        tokens of any sequence (computed from cu_q when not given: a device sync)."""
        c, w = self.cfg, self.w
        T = x.shape[0]
        if max_q is None:
            max_q = int((cu_q[1:] - cu_q[:-1]).max()) if T else 0
        nh = c.num_attention_heads + 2 * c.num_key_value_heads
        e = dict(dtype=x.dtype, device=x.device)
        qkv = torch.empty(T, nh * c.head_dim, **e)
        attn = torch.empty(T, c.q_size, **e)
        h2 = torch.empty(T, c.hidden_size, **e)
        act = torch.empty(T, c.intermediate_size, **e)
        out = torch.empty(T, c.hidden_size, **e)
        self._out = out
        t = self.gemm_tiles(T)
        ac = self.attention_consts(k_cache.shape[1])
        eps = float(c.rms_norm_eps)
        qkv3 = qkv.view(T, nh, c.head_dim)
        return [
            ("qkv", rmsnorm_gemm, (x, w.input_layernorm, self.wqkv, qkv, eps), t["qkv"]),
            ("kv_write", chunked_kv_write, (qkv3, cu_q, ctx_lens, w.k_norm, block_table,
                                            k_cache, v_cache, max_q), ac),
            ("attention", chunked_attention,
             (qkv3, cu_q, ctx_lens, w.q_norm, block_table, k_cache, v_cache,
              attn.view(T, c.num_attention_heads, c.head_dim), max_q),
             {"TM": ATTN_TM, **ac, **self.tiles.get("attention", {})}),
            ("o_proj", gemm_residual, (attn, w.o_proj, x, h2), t["o_proj"]),
            ("mlp_up", rmsnorm_swiglu, (h2, w.post_attention_layernorm, w.gate_proj,
                                        w.up_proj, act, eps), t["mlp_up"]),
            ("down", gemm_residual, (act, w.down_proj, h2, out), t["down"]),
        ]

    def compile(self, tokens: int, block_size: int) -> float:
        """Compile the layer's kernels for a launch over `tokens` new tokens (cached; on
        an NPU target the tile search for that bucket runs first, not counted); returns
        the seconds it took."""
        t = self.gemm_tiles(tokens)
        t0 = time.perf_counter()
        ac = self.attention_consts(block_size)
        at = {"TM": ATTN_TM, **ac, **self.tiles.get("attention", {})}
        for kern, consts in ((rmsnorm_gemm, t["qkv"]), (chunked_kv_write, ac),
                             (chunked_attention, at),
                             (gemm_residual, t["o_proj"]), (rmsnorm_swiglu, t["mlp_up"]),
                             (gemm_residual, t["down"])):
            mt.compile(kern, self.compile_cfg, target=self.target, **consts)
        return time.perf_counter() - t0

    def __call__(self, x, cu_q, ctx_lens, k_cache, v_cache, block_table,
                 max_q: int | None = None) -> torch.Tensor:
        """Run the layer; returns out [T, H] (a new tensor). k_cache / v_cache get the new
        tokens' k and v."""
        self.times = StepTimes()
        if x.shape[0] == 0:
            return torch.empty_like(x)
        for name, kern, args, consts in self.steps(x, cu_q, ctx_lens, k_cache, v_cache,
                                                   block_table, max_q):
            res = mt.run_jit(kern, *args, target=self.target, compile_cfg=self.compile_cfg,
                             tune=self.tune and self.target == "cuda", **consts)
            self.times.compile_s += res.compile_s
            self.times.run_s += res.run_s
            self.times.per_kernel[name] = res.run_s
        return self._out
