"""Plain-torch golden of one Qwen3 decoder layer at decode time (one new token per sequence)
over a vLLM paged KV cache.

All math is fp32; values are rounded to bf16 exactly where the kernels store them:

    a. h   = bf16(rmsnorm(x, input_layernorm))
    b. q, k, v = bf16(h @ [q_proj; k_proj; v_proj].T)
    c. q = bf16(rope(rmsnorm_head(q, q_norm))), k = bf16(rope(rmsnorm_head(k, k_norm)));
       k and v are written to the cache at position seq_lens[b] - 1
    d. o   = bf16(softmax(q @ K.T / sqrt(D)) @ V)     (GQA: query head h uses kv head h//group)
    e. h2  = bf16(o @ o_proj.T + x)
    f. h3  = bf16(rmsnorm(h2, post_attention_layernorm))
    g. a   = bf16(silu(h3 @ gate_proj.T) * (h3 @ up_proj.T))
    h. out = bf16(a @ down_proj.T + h2)

with ``rmsnorm(v, w) = v * rsqrt(mean(v^2) + eps) * w`` (all fp32; unlike Hugging Face,
which rounds to bf16 before multiplying by w).
"""
from __future__ import annotations

import math

import torch

from .config import Qwen3Config
from .paged import gather_kv
from .weights import LayerWeights

__all__ = ["decode_layer_ref", "prefill_layer_ref", "chunked_prefill_ref", "generate_ref",
           "rope_cos_sin",
           "rmsnorm", "apply_rope", "linear_f32"]

_BF16 = torch.bfloat16
_CHUNK_ELEMS = 1 << 22  # weight rows converted to fp32 at a time (16 MiB scratch)


def rmsnorm(v: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """fp32 RMSNorm over the last dim: ``v * rsqrt(mean(v^2) + eps) * w`` (no rounding)."""
    v = v.float()
    return v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + eps) * w.float()


def rope_cos_sin(cfg: Qwen3Config, positions) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 ``(cos, sin)``, each ``[len(positions), head_dim]``, for the rotate-half RoPE:
    ``inv_freq[i] = theta ** (-2i / D)`` (i < D/2), ``angle = p * inv_freq``, and the
    ``[D/2]`` cos/sin repeated twice along the last dim. Computed like Hugging Face
    (fp32 ``1 / theta ** (2i / D)`` and fp32 angles)."""
    return _cos_sin(cfg.head_dim, cfg.rope_theta, positions)


def _cos_sin(D: int, theta: float, positions) -> tuple[torch.Tensor, torch.Tensor]:
    """rope_cos_sin for head dim D and base theta."""
    p = torch.as_tensor(positions).reshape(-1).to(torch.float32)
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.int64,
                                             device=p.device).float() / D))
    ang = p[:, None] * inv_freq[None, :]
    emb = torch.cat([ang, ang], -1)
    return emb.cos(), emb.sin()


def apply_rope(v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``v * cos + rotate_half(v) * sin`` with ``rotate_half(v) = cat(-v[D/2:], v[:D/2])``;
    ``cos``/``sin`` broadcast against ``v`` (last dim D)."""
    half = v.shape[-1] // 2
    rot = torch.cat([-v[..., half:], v[..., :half]], -1)
    return v * cos + rot * sin


def linear_f32(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x.float() @ w.float().T`` in fp32, converting ``w`` (bf16 ``[N, K]``) a block of rows
    at a time through one scratch buffer (much faster than materialising ``w.float()``)."""
    x = x.float()
    N, K = w.shape
    out = torch.empty(x.shape[0], N, dtype=torch.float32, device=x.device)
    rows = max(1, min(N, _CHUNK_ELEMS // max(K, 1)))
    scratch = torch.empty(rows, K, dtype=torch.float32, device=x.device)
    for s in range(0, N, rows):
        n = min(rows, N - s)
        buf = scratch[:n]
        buf.copy_(w[s:s + n])
        torch.mm(x, buf.T, out=out[:, s:s + n])
    return out


def _check(cfg, x, k_cache, v_cache, block_table, seq_lens):
    """ValueError on inputs whose shapes/dtypes do not fit ``cfg`` and each other."""
    H, kv, D = cfg.hidden_size, cfg.num_key_value_heads, cfg.head_dim
    if x.dim() != 2 or x.shape[1] != H:
        raise ValueError(f"x: expected [B, {H}], got {list(x.shape)}")
    B = x.shape[0]
    for name, c in (("k_cache", k_cache), ("v_cache", v_cache)):
        if c.dim() != 4 or tuple(c.shape[2:]) != (kv, D) or c.dtype != _BF16:
            raise ValueError(f"{name}: expected bf16 [num_blocks, block_size, {kv}, {D}], "
                             f"got {c.dtype} {list(c.shape)}")
    if k_cache.shape != v_cache.shape:
        raise ValueError(f"k_cache {list(k_cache.shape)} != v_cache {list(v_cache.shape)}")
    if block_table.dim() != 2 or block_table.shape[0] != B:
        raise ValueError(f"block_table: expected [{B}, max_blocks], got "
                         f"{list(block_table.shape)}")
    if seq_lens.shape != (B,):
        raise ValueError(f"seq_lens: expected [{B}], got {list(seq_lens.shape)}")
    bs = k_cache.shape[1]
    if int(seq_lens.min()) < 1 or int(seq_lens.max()) > block_table.shape[1] * bs:
        raise ValueError(f"seq_lens {seq_lens.tolist()} outside 1..{block_table.shape[1] * bs}")


@torch.no_grad()
def decode_layer_ref(cfg: Qwen3Config, w: LayerWeights, x: torch.Tensor,
                     k_cache: torch.Tensor, v_cache: torch.Tensor,
                     block_table: torch.Tensor, seq_lens: torch.Tensor) -> torch.Tensor:
    """One Qwen3 decoder layer for one new token per sequence; returns ``out [B, H]`` bf16.

    Args:
        x: ``[B, H]`` bf16, the residual stream of the new tokens.
        k_cache, v_cache: ``[num_blocks, block_size, kv_heads, D]`` bf16, **updated in
            place**: the new token's (normed, roped) k and its v are stored at position
            ``p = seq_lens[b] - 1``, i.e. block ``block_table[b, p // block_size]``, slot
            ``p % block_size`` (like vLLM's reshape_and_cache). Clone them first to keep
            the originals.
        block_table: ``[B, max_blocks]`` int, seq_lens: ``[B]`` int (new token included).

    The token at ``p`` is at RoPE position ``p`` and attends to positions ``0..p``.
    """
    _check(cfg, x, k_cache, v_cache, block_table, seq_lens)
    B = x.shape[0]
    heads, kv, D, G = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.group
    eps = cfg.rms_norm_eps
    xf = x.float()

    # a, b: input norm and the q/k/v projections ([q; k; v] rows are independent)
    h = rmsnorm(xf, w.input_layernorm, eps).to(_BF16)
    q = linear_f32(h, w.q_proj).to(_BF16).view(B, heads, D)
    k = linear_f32(h, w.k_proj).to(_BF16).view(B, kv, D)
    v = linear_f32(h, w.v_proj).to(_BF16).view(B, kv, D)

    # c: per-head q/k norms, RoPE at p = seq_len - 1, then the cache write
    pos = seq_lens.long() - 1
    cos, sin = rope_cos_sin(cfg, pos)  # [B, D]
    cos, sin = cos[:, None, :], sin[:, None, :]
    q = apply_rope(rmsnorm(q, w.q_norm, eps), cos, sin).to(_BF16)
    k = apply_rope(rmsnorm(k, w.k_norm, eps), cos, sin).to(_BF16)
    bs = k_cache.shape[1]
    blk = block_table.long()[torch.arange(B, device=pos.device), pos // bs]
    k_cache[blk, pos % bs] = k
    v_cache[blk, pos % bs] = v

    # d: attention over the seq_len cached tokens; query head h reads kv head h // G
    sqrt_d = math.sqrt(D)
    o = torch.empty(B, heads * D, dtype=_BF16, device=x.device)
    for b in range(B):
        L = int(seq_lens[b])
        K = gather_kv(k_cache, block_table, b, L).float().permute(1, 2, 0)  # [kv, D, L]
        V = gather_kv(v_cache, block_table, b, L).float().transpose(0, 1)  # [kv, L, D]
        qb = q[b].float().view(kv, G, D)
        p = torch.softmax(torch.bmm(qb, K) / sqrt_d, dim=-1)  # [kv, G, L]
        o[b] = torch.bmm(p, V).reshape(heads * D).to(_BF16)

    return _attn_out_mlp(cfg, w, o, xf)


def _attn_out_mlp(cfg: Qwen3Config, w: LayerWeights, o: torch.Tensor,
                  xf: torch.Tensor) -> torch.Tensor:
    """Steps e-h: o_proj + residual, post-attention norm, SwiGLU MLP + residual."""
    eps = cfg.rms_norm_eps
    h2 = (linear_f32(o, w.o_proj) + xf).to(_BF16)
    h3 = rmsnorm(h2, w.post_attention_layernorm, eps).to(_BF16)
    gate = linear_f32(h3, w.gate_proj)
    a = (torch.nn.functional.silu(gate) * linear_f32(h3, w.up_proj)).to(_BF16)
    return (linear_f32(a, w.down_proj) + h2.float()).to(_BF16)


@torch.no_grad()
def chunked_prefill_ref(qkv: torch.Tensor, cu_q: torch.Tensor, ctx_lens: torch.Tensor,
                        q_norm: torch.Tensor, k_norm: torch.Tensor, k_cache: torch.Tensor,
                        v_cache: torch.Tensor, block_table: torch.Tensor, heads: int,
                        eps: float = 1e-6, theta: float = 1e6) -> torch.Tensor:
    """Attention of a chunked-prefill step over a paged cache; returns ``[T, heads, D]``
    fp32 (the caller rounds it).

    ``qkv`` ``[T, heads + 2 kv, D]`` holds the new tokens packed (sequence b's are rows
    ``cu_q[b]..cu_q[b+1]``); ``ctx_lens[b]`` tokens of sequence b are in the cache already.
    New token i of sequence b is at position ``p = ctx_lens[b] + i``: its q and k are
    normalised (``q_norm`` / ``k_norm``) and roped at p and rounded to the cache dtype, its k
    and v **written into the caches in place** (block ``block_table[b, p // bs]``, slot
    ``p % bs``), and its q attends to the sequence's positions ``0..p``."""
    D = qkv.shape[-1]
    kv = (qkv.shape[1] - heads) // 2
    G = heads // kv
    dt = k_cache.dtype
    bs = k_cache.shape[1]
    out = torch.zeros(qkv.shape[0], heads, D, dtype=torch.float32)
    for b in range(len(ctx_lens)):
        q0, q1, ctx = int(cu_q[b]), int(cu_q[b + 1]), int(ctx_lens[b])
        lq = q1 - q0
        if lq == 0:
            continue
        pos = torch.arange(ctx, ctx + lq)
        cos, sin = (t[:, None, :] for t in _cos_sin(D, theta, pos))
        x = qkv[q0:q1].float()
        q = apply_rope(rmsnorm(x[:, :heads], q_norm, eps), cos, sin).to(dt)
        k = apply_rope(rmsnorm(x[:, heads:heads + kv], k_norm, eps), cos, sin).to(dt)
        blk = block_table[b].long()[pos // bs]
        k_cache[blk, pos % bs] = k
        v_cache[blk, pos % bs] = x[:, heads + kv:].to(dt)
        K = gather_kv(k_cache, block_table, b, ctx + lq).float()  # [L, kv, D]
        V = gather_kv(v_cache, block_table, b, ctx + lq).float()
        ok = torch.arange(ctx + lq)[None, :] <= pos[:, None]  # [lq, L]
        for h in range(heads):
            s = (q[:, h].float() @ K[:, h // G].T) / math.sqrt(D)
            out[q0:q1, h] = torch.softmax(s.masked_fill(~ok, float("-inf")), -1) @ V[:, h // G]
    return out


@torch.no_grad()
def prefill_layer_ref(cfg: Qwen3Config, w: LayerWeights, x: torch.Tensor, cu_q: torch.Tensor,
                      ctx_lens: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                      block_table: torch.Tensor) -> torch.Tensor:
    """One Qwen3 decoder layer over packed new tokens; returns ``out [T, H]`` bf16.

    ``x`` ``[T, H]`` holds sequence b's new tokens in rows ``cu_q[b]..cu_q[b+1]``; sequence b
    has ``ctx_lens[b]`` tokens in the caches already; its new token i is at position
    ``ctx_lens[b] + i`` and attends causally (chunked_prefill_ref). The caches are
    **updated in place** with the new tokens' k and v. Same storage points as
    decode_layer_ref (steps a-h)."""
    T = x.shape[0]
    heads, D = cfg.num_attention_heads, cfg.head_dim
    xf = x.float()
    h = rmsnorm(xf, w.input_layernorm, cfg.rms_norm_eps).to(_BF16)
    wqkv = torch.cat([w.q_proj, w.k_proj, w.v_proj])
    qkv = linear_f32(h, wqkv).to(_BF16).view(T, heads + 2 * cfg.num_key_value_heads, D)
    o = chunked_prefill_ref(qkv, cu_q, ctx_lens, w.q_norm, w.k_norm, k_cache, v_cache,
                            block_table, heads, cfg.rms_norm_eps, cfg.rope_theta)
    return _attn_out_mlp(cfg, w, o.reshape(T, heads * D).to(_BF16), xf)


@torch.no_grad()
def generate_ref(mcfg, weights, prompts: list[list[int]], max_new_tokens: int,
                 block_size: int = 16) -> tuple[list[list[int]], list[list[torch.Tensor]]]:
    """Greedy tokens and fp32 logits per new token of a whole Qwen3 model (``ModelConfig``,
    ``ModelWeights`` of model.py), one prompt at a time: prefill_layer_ref over the prompt,
    then decode_layer_ref per token, the final RMSNorm rounded to bf16 and the LM head in
    fp32, argmax. No EOS (every prompt gets max_new_tokens)."""
    cfg = mcfg.layer
    toks, logits = [], []
    for p in prompts:
        n = len(p) + max_new_tokens
        nb = math.ceil(n / block_size)
        shape = (nb + 1, block_size, cfg.num_key_value_heads, cfg.head_dim)
        caches = [(torch.zeros(shape, dtype=_BF16), torch.zeros(shape, dtype=_BF16))
                  for _ in range(mcfg.num_layers)]
        table = torch.arange(1, nb + 1, dtype=torch.int32)[None]

        def head(h):
            hn = rmsnorm(h, weights.norm, cfg.rms_norm_eps).to(_BF16)
            return linear_f32(hn, weights.lm_head)[-1]

        x = weights.embed[torch.tensor(p)]
        cu = torch.tensor([0, len(p)], dtype=torch.int32)
        for w, (kc, vc) in zip(weights.layers, caches):
            x = prefill_layer_ref(cfg, w, x, cu, torch.zeros(1, dtype=torch.int32), kc, vc,
                                  table)
        lg = [head(x)]
        out = [int(lg[-1].argmax())]
        while len(out) < max_new_tokens:
            x = weights.embed[torch.tensor(out[-1:])]
            sl = torch.tensor([len(p) + len(out)], dtype=torch.int32)
            for w, (kc, vc) in zip(weights.layers, caches):
                x = decode_layer_ref(cfg, w, x, kc, vc, table, sl)
            lg.append(head(x))
            out.append(int(lg[-1].argmax()))
        toks.append(out)
        logits.append(lg)
    return toks, logits
