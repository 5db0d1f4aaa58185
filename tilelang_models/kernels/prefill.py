"""Causal flash attention over a varlen batch (prefill), as one mixed kernel.

Layout as FlashAttention's varlen API: q [T, HQ, D], k / v [Tk, KVH, D], sequence b's
queries are rows cu_q[b]..cu_q[b+1] of q, its keys rows cu_k[b]..cu_k[b+1] of k and v.
Query heads share KV heads in groups (GQA: HQ a multiple of KVH). With Lq queries over Lk
keys the causal mask is bottom-right aligned: query i sees keys j <= i + Lk - Lq (and,
with a sliding window W > 0, j > i + Lk - Lq - W). A row that sees no key gives 0.

One block per (sequence, query head, TM query rows); the grid covers the longest
sequence (max_q, a runtime scalar) and blocks past a sequence's end do nothing. For each
block the key loop runs only over key tiles that are not entirely masked (block skipping
by the loop bounds); in it QK^T and PV run on the cube and the online softmax (fp32) on
the two AIV lanes, each holding half of the TM rows (exp2 with log2(e) folded into the
scale); the mask is written with mt.arange.
"""
import math

import mixtile as mt

LOG2E = 1.0 / math.log(2.0)


def softmax_step(s, m, l, acc, vt, dt, exp=mt.exp2):
    """One key tile of the online softmax (traced inline): s the masked scores (-inf where
    masked), m / l / acc the running row max, row sum and output, vt the tile's values;
    returns the new (m, l, acc). A row that has seen no key yet keeps m = -inf and adds 0.
    exp: mt.exp2 for scores in log2 units (the scale times log2 e), else mt.exp."""
    m_new = mt.maximum(m, mt.row_max(s))
    base = mt.where(m_new > float("-inf"), m_new, 0.0)
    p = exp(s - base)
    alpha = exp(m - base)
    return m_new, l * alpha + mt.row_sum(p), acc * alpha + mt.matmul(p.astype(dt), vt)


def softmax_finish(acc, l):
    """acc / l per row, and 0 for a row that saw no key (never NaN)."""
    return acc * mt.where(l > 0.0, mt.reciprocal(mt.where(l > 0.0, l, 1.0)), 0.0)


def _fmha(dt):
    """The kernel for q/k/v/out of dtype dt (bf16; f16 where Triton's interpreter needs it)."""
    return mt.kernel(_body(dt))


def _body(dt):
    def fmha_prefill(q: mt.Tensor["T", "HQ", "D", dt], k: mt.Tensor["Tk", "KVH", "D", dt],
                     v: mt.Tensor["Tk", "KVH", "D", dt], cu_q: mt.Tensor["B1", mt.i32],
                     cu_k: mt.Tensor["B1", mt.i32], out: mt.Out["T", "HQ", "D", dt],
                     max_q: mt.Scalar[mt.i64], scale: mt.Scalar[mt.f32],
                     TM: mt.const = 64, TN: mt.const = 64, D: mt.const = 128,
                     HQ: mt.const = 8, KVH: mt.const = 2, WINDOW: mt.const = 0):
        _attend(q, k, v, cu_q, cu_k, out, max_q, scale, TM, TN, D, HQ, KVH, WINDOW, dt)
    return fmha_prefill


def _attend(q, k, v, cu_q, cu_k, out, max_q, scale, TM, TN, D, HQ, KVH, WINDOW, dt):
    B = cu_q.shape[0] - 1
    tiles = mt.cdiv(max_q, TM)
    for blk in mt.spmd(B * HQ * tiles):
        b = blk // (HQ * tiles)
        h = blk // tiles % HQ
        m0 = blk % tiles * TM
        q0, q1 = cu_q[b], cu_q[b + 1]
        k0, k1 = cu_k[b], cu_k[b + 1]
        lq, lk = q1 - q0, k1 - k0
        shift = lk - lq  # bottom-right alignment: query i sees keys j <= i + shift
        rows_here = mt.smax(mt.smin(lq - m0, TM), 0)  # 0: a block past this sequence
        r0 = q0 + mt.smin(m0, lq)  # its first row (the sequence's end when past it)
        kv = h // (HQ // KVH)
        qt = mt.load(q[r0:r0 + TM, h, 0:D], rows=rows_here)
        hi = mt.smax(mt.smin(lk, m0 + TM + shift), 0)  # keys past the last row's limit
        hi = mt.smin(hi, rows_here * lk)  # no rows here: no keys
        lo = 0
        if WINDOW:
            lo = mt.smax(m0 + shift - WINDOW + 1, 0) // TN * TN
        scale2 = scale * LOG2E  # softmax(x * scale) = 2^(x * scale * log2 e) / sum
        m = mt.full((TM, 1), float("-inf"))
        l = mt.zeros((TM, 1))
        acc = mt.zeros((TM, D))
        rows = mt.arange(TM, mt.f32).reshape(TM, 1) + mt.to_float(m0 + shift)
        for n0 in mt.range(lo, hi, TN):
            kt = mt.load(k[k0 + n0:k0 + n0 + TN, kv, 0:D], rows=mt.smin(lk - n0, TN))
            s = mt.matmul(qt, kt, b_trans=True) * scale2  # in log2 units: exp2 below
            cols = mt.arange(TN, mt.f32).reshape(1, TN) + mt.to_float(n0)
            s = mt.where(cols <= rows, s, float("-inf"))  # causal
            if WINDOW:
                s = mt.where(cols > rows - float(WINDOW), s, float("-inf"))
            s = mt.where(cols < mt.to_float(lk), s, float("-inf"))  # past the keys
            vt = mt.load(v[k0 + n0:k0 + n0 + TN, kv, 0:D], rows=mt.smin(lk - n0, TN))
            m, l, acc = softmax_step(s, m, l, acc, vt, dt)
        mt.store(out[r0:r0 + TM, h, 0:D], softmax_finish(acc, l).astype(dt), rows=rows_here)


fmha_prefill = _fmha(mt.bf16)
fmha_prefill_f16 = _fmha(mt.f16)
