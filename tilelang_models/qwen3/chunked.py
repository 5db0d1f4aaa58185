"""Chunked prefill over a vLLM-layout paged KV cache, in two launches.

A mixed batch of B sequences brings T new tokens in all: sequence b has ctx_lens[b] tokens
in the cache already and brings cu_q[b + 1] - cu_q[b] new ones (1 for a decode step, many
for a prefill chunk, 0 for a sequence that sits this step out). New token i of sequence b
is at position ctx_lens[b] + i; it attends to the sequence's cached positions and to the
new tokens up to itself (causal).

Inputs (both kernels):
    qkv          [T, HQ + 2 KVH, D]  the QKV projection of the new tokens, packed varlen
                                     (rows cu_q[b]..cu_q[b+1] are sequence b's; heads: HQ
                                     query, KVH key, KVH value), as fa_fused's qkv
    cu_q         [B + 1] int32       new-token offsets
    ctx_lens     [B] int32           tokens already in the cache before this step
    q_norm, k_norm [D]               the per-head RMSNorm weights (eps), applied before
                                     rotate-half RoPE (theta) at each token's position
    block_table  [B, MB] int32       entry j of row b: the cache block of positions
                                     j*BS .. j*BS + BS - 1 of sequence b (paged.py)
    k_cache, v_cache [NB, BS, KVH, D]
    max_q        the most new tokens of any sequence (sizes the grids; runtime scalar)

1. chunked_kv_write (vector): normalises and ropes the new tokens' k and writes k and v
   into their slots (block block_table[b, pos // BS], slot pos % BS). One block per
   (sequence, KV head, cache block the chunk touches): a chunk of lq tokens touches at
   most cdiv(lq, BS) + 1 blocks; the rows of one block are contiguous in qkv and in the
   page, so each block is one load and one store per tensor (mt.load / mt.store rows=).
2. chunked_attention (mixed): out [T, HQ, D]. One block per (sequence, query head, TM new
   tokens), as fmha_prefill: the block normalises and ropes its q rows (one position per
   row), then runs the online softmax over the sequence's keys one cache block (BS
   positions) at a time, the page of key block j read through block_table[b, j]; QK^T
   and PV on the cube (QK^T as two half-width products: q and k are kept as their two
   RoPE halves), the softmax (fp32) on the AIV lanes. The key loop stops at the block
   past the last row's position (causal block skipping); the causal mask (position
   <= the row's position) is written with mt.arange. Slots past the sequence's last
   position are never read.
Run 1 then 2 (the second reads the keys the first wrote). With one new token per sequence
this is a decode step: the output matches fa_fused's.
"""
import math

import mixtile as mt
from tilelang_models.kernels.prefill import softmax_finish, softmax_step
from tilelang_models.qwen3.kernels import _norm_rope


def _freqs(half, D, theta):
    """inv_freq[i] = theta^(-2i/D) as a (1, D/2) fp32 tile (as fa_fused)."""
    fr = mt.exp(mt.arange(half).astype(mt.f32) * (-2.0 * math.log(theta) / D))
    return fr.reshape(1, half)


def _cos_sin(fr, p0, n):
    """cos and sin of the angles of positions p0 .. p0 + n - 1 (one a row), (n, D/2), and
    the positions as an (n, 1) fp32 tile."""
    pos = mt.arange(n, mt.f32).reshape(n, 1) + mt.to_float(p0)
    ang = pos * fr
    return mt.cos(ang), mt.sin(ang), pos


def _halves(norm, half, D):
    return (mt.load(norm[0:half]).astype(mt.f32), mt.load(norm[half:D]).astype(mt.f32))


def _write_body(dt):
    def chunked_kv_write(qkv: mt.Tensor["T", "NH", "D", dt], cu_q: mt.Tensor["B1", mt.i32],
                         ctx_lens: mt.Tensor["B", mt.i32], k_norm: mt.Tensor["D", dt],
                         block_table: mt.Tensor["B", "MB", mt.i32],
                         k_cache: mt.InOut["NB", "BS", "KVH", "D", dt],
                         v_cache: mt.InOut["NB", "BS", "KVH", "D", dt],
                         max_q: mt.Scalar[mt.i64],
                         HQ: mt.const, KVH: mt.const, D: mt.const, BS: mt.const,
                         eps: mt.const = 1e-6, theta: mt.const = 1e6, TR: mt.const = 32):
        B = ctx_lens.shape[0]
        tr = min(TR, BS)  # rows per step (a 128-row page of hd 128 would overflow UB)
        MB = block_table.shape[1]
        half = D // 2
        npg = mt.cdiv(max_q, BS) + 1  # cache blocks a chunk of max_q tokens can touch
        for blk in mt.spmd(B * KVH * npg):
            b = blk // (KVH * npg)
            h = blk // npg % KVH
            ctx = ctx_lens[b]
            q0 = cu_q[b]
            lq = cu_q[b + 1] - q0
            j = ctx // BS + blk % npg  # this block's cache block of the sequence
            p0 = mt.smax(j * BS, ctx)  # its first new position
            n = mt.smax(mt.smin(j * BS + BS, ctx + lq) - p0, 0)  # 0: nothing here
            r0 = q0 + mt.smin(p0 - ctx, lq)
            slot = p0 - j * BS
            page = block_table[b, mt.smin(j, MB - 1)]  # read, not used, when n is 0
            fr = _freqs(half, D, theta)
            kn1, kn2 = _halves(k_norm, half, D)
            T = qkv.shape[0]
            for i0 in range(0, BS, tr):  # unrolled at trace time
                m = mt.smax(mt.smin(n - i0, tr), 0)  # this step's rows (0: none)
                # with no rows, the offsets may pass the ends: clamped (nothing is touched)
                q = mt.smin(r0 + i0, T)
                k1 = mt.load(qkv[q:q + tr, HQ + h, 0:half], rows=m)
                k2 = mt.load(qkv[q:q + tr, HQ + h, half:D], rows=m)
                vt = mt.load(qkv[q:q + tr, HQ + KVH + h, 0:D], rows=m)
                c, s, _ = _cos_sin(fr, p0 + i0, tr)
                ka, kb = _norm_rope(k1, k2, kn1, kn2, c, s, D, eps, dt)
                at = mt.smin(slot + i0, BS)
                mt.store(k_cache[page, at:at + tr, h, 0:half], ka, rows=m)
                mt.store(k_cache[page, at:at + tr, h, half:D], kb, rows=m)
                mt.store(v_cache[page, at:at + tr, h, 0:D], vt, rows=m)
    return chunked_kv_write


def _attention_body(dt):
    def chunked_attention(qkv: mt.Tensor["T", "NH", "D", dt], cu_q: mt.Tensor["B1", mt.i32],
                          ctx_lens: mt.Tensor["B", mt.i32], q_norm: mt.Tensor["D", dt],
                          block_table: mt.Tensor["B", "MB", mt.i32],
                          k_cache: mt.Tensor["NB", "BS", "KVH", "D", dt],
                          v_cache: mt.Tensor["NB", "BS", "KVH", "D", dt],
                          out: mt.Out["T", "HQ", "D", dt], max_q: mt.Scalar[mt.i64],
                          HQ: mt.const, KVH: mt.const, D: mt.const, BS: mt.const,
                          TM: mt.const = 64, eps: mt.const = 1e-6, theta: mt.const = 1e6):
        B = ctx_lens.shape[0]
        half = D // 2
        scale = 1.0 / math.sqrt(D)
        tiles = mt.cdiv(max_q, TM)
        for blk in mt.spmd(B * HQ * tiles):
            b = blk // (HQ * tiles)
            h = blk // tiles % HQ
            m0 = blk % tiles * TM
            ctx = ctx_lens[b]
            q0 = cu_q[b]
            lq = cu_q[b + 1] - q0
            lk = ctx + lq  # the sequence's keys after this step
            rows_here = mt.smax(mt.smin(lq - m0, TM), 0)  # 0: a block past the sequence
            r0 = q0 + mt.smin(m0, lq)
            kv = h // (HQ // KVH)
            q1 = mt.load(qkv[r0:r0 + TM, h, 0:half], rows=rows_here)
            q2 = mt.load(qkv[r0:r0 + TM, h, half:D], rows=rows_here)
            c, s, rows = _cos_sin(_freqs(half, D, theta), ctx + m0, TM)
            qn1, qn2 = _halves(q_norm, half, D)
            qa, qb = _norm_rope(q1, q2, qn1, qn2, c, s, D, eps, dt)
            hi = mt.smin(lk, ctx + m0 + TM)  # keys past the last row's position
            hi = mt.smin(hi, rows_here * lk)  # no rows here: no keys
            m = mt.full((TM, 1), float("-inf"))
            l = mt.zeros((TM, 1))
            acc = mt.zeros((TM, D))
            for j in mt.range(0, mt.cdiv(hi, BS)):
                page = block_table[b, j]
                n0 = j * BS
                n = mt.smin(BS, lk - n0)  # the block's positions in the sequence
                sc = mt.matmul(qa, mt.load(k_cache[page, 0:BS, kv, 0:half], rows=n),
                               b_trans=True)
                sc = mt.matmul(qb, mt.load(k_cache[page, 0:BS, kv, half:D], rows=n), acc=sc,
                               b_trans=True)
                sc = sc * scale
                cols = mt.arange(BS, mt.f32).reshape(1, BS) + mt.to_float(n0)
                sc = mt.where(cols <= rows, sc, float("-inf"))  # causal
                sc = mt.where(cols < mt.to_float(lk), sc, float("-inf"))  # past the keys
                vt = mt.load(v_cache[page, 0:BS, kv, 0:D], rows=n)
                m, l, acc = softmax_step(sc, m, l, acc, vt, dt, exp=mt.exp)
            mt.store(out[r0:r0 + TM, h, 0:D], softmax_finish(acc, l).astype(dt),
                     rows=rows_here)
    return chunked_attention


chunked_kv_write = mt.kernel(_write_body(mt.bf16))
chunked_attention = mt.kernel(_attention_body(mt.bf16))
chunked_kv_write_f16 = mt.kernel(_write_body(mt.f16))  # Triton's interpreter: bf16 dots
chunked_attention_f16 = mt.kernel(_attention_body(mt.f16))
