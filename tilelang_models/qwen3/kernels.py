"""The fused kernels of a Qwen3 decode layer, in mixtile.

1. rmsnorm_gemm:      y = rmsnorm(x) @ w^T                       (input norm + QKV projection)
   rmsnorm_gemm_folded: the same with the norm's weight folded into w and the norm from
                      partial sums of x^2 (the previous layer's): a plain GEMM on x, the
                      row scale applied to the accumulator
2. fa_fused:          q/k RMSNorm + RoPE, GQA attention over the paged cache split over KV
                      blocks (the new token from registers, then written into the cache),
                      online-softmax merge (2 phases, a hard syncall between them)
3. gemm_residual:     y = x @ w^T + residual                     (O and down projections)
   gemm_residual_sumsq: the same, plus per-tile row sums of y^2   (both, on CUDA)
4. rmsnorm_swiglu:    y = silu(rmsnorm(x) @ Wg^T) * (rmsnorm(x) @ Wu^T)
   rmsnorm_swiglu_folded: the same, folded likewise, the norm from h2's partial sums
Storage points (bf16) match tilelang_models/qwen3/reference.py.
"""
import math

import mixtile as mt
from tilelang_models.kernels.gemm import blocks, mainloop
from tilelang_models.kernels.mixed import gemm_residual  # noqa: F401  (re-exported)


def _inv_rms(x, m0, H, eps, TM, TK):
    """rsqrt(mean(x[m0:m0+TM, :H]^2) + eps) as a (TM, 1) tile (vector; loops over H).
    With H static (compile_cfg specialize_dims), the loop unrolls at trace time: its loads
    are independent and can all be in flight at once."""
    ss = mt.zeros((TM, 1))
    for k0 in (range if isinstance(H, int) else mt.range)(0, H, TK):
        xt = mt.load(x[m0:m0 + TM, k0:k0 + TK]).astype(mt.f32)
        ss = ss + mt.row_sum(xt * xt)
    return mt.rsqrt(ss / mt.to_float(H) + eps)


def _normed(x, g, m0, k0, inv, TM, TK):
    """The bf16 normalised K chunk of x rows m0.. (vector), ready for the cube."""
    xt = mt.load(x[m0:m0 + TM, k0:k0 + TK]).astype(mt.f32)
    return (xt * inv * mt.load(g[k0:k0 + TK]).astype(mt.f32)).astype(mt.bf16)


@mt.kernel
def rmsnorm_gemm(x: mt.Tensor["B", "H", mt.bf16], g: mt.Tensor["H", mt.bf16],
                 w: mt.Tensor["N", "H", mt.bf16], y: mt.Out["B", "N", mt.bf16],
                 eps: mt.Scalar[mt.f32],
                 TM: mt.const = 16, TN: mt.const = 128, TK: mt.const = 256):
    """y = (x * rsqrt(mean(x^2) + eps) * g) @ w^T: the norm runs on the vector lanes and
    feeds the cube one K chunk at a time."""
    B, H = x.shape
    N = w.shape[0]
    for m0, n0 in blocks(B, N, TM, TN, m_inner=True):
        inv = _inv_rms(x, m0, H, eps, TM, TK)
        acc = mt.zeros((TM, TN))
        for k0 in mt.range(0, H, TK):
            a = _normed(x, g, m0, k0, inv, TM, TK)
            acc = mt.matmul(a, mt.load(w[n0:n0 + TN, k0:k0 + TK]), acc=acc, b_trans=True)
        mt.store(y[m0:m0 + TM, n0:n0 + TN], acc.astype(mt.bf16))


@mt.kernel
def rmsnorm_gemm_folded(x: mt.Tensor["B", "H", mt.bf16], ssq: mt.Tensor["B", "NTILES", mt.f32],
                        w: mt.Tensor["N", "H", mt.bf16], y: mt.Out["B", "N", mt.bf16],
                        eps: mt.Scalar[mt.f32], NT: mt.const,
                        TM: mt.const = 16, TN: mt.const = 128, TK: mt.const = 256):
    """rmsnorm_gemm with the norm's weight g folded into w (w = W * g, one factor per input
    column: `fold_norm_weight`) and the row sums of squares of x given as NT partials per
    row (from the previous layer's gemm_residual_sumsq): rmsnorm(x) @ W^T = inv * (x @ w^T)
    with inv = rsqrt(mean(x^2) + eps) per row, so the K loop is a plain GEMM on x as stored
    (no per-chunk normalisation, no g loads) and inv scales the accumulator once."""
    B, H = x.shape
    N = w.shape[0]
    for m0, n0 in blocks(B, N, TM, TN, m_inner=True):
        inv = _ssq_inv(ssq, m0, NT, H, eps, TM)
        acc = mainloop(x, w, m0, n0, 0, H, TM, TN, TK)
        mt.store(y[m0:m0 + TM, n0:n0 + TN], (acc * inv).astype(mt.bf16))


def _ssq_inv(ssq, m0, NT, H, eps, TM):
    """rsqrt(mean(x^2) + eps) of rows m0.. from their NT partial sums of squares (reduced
    before the K loop: held across it, the (TM, NT) tile cost mlp_up 6 us at batch 32 on an
    H200, registers)."""
    ntp = -(-NT // 8) * 8  # a whole number of 8-lane vector blocks; the load pads with 0
    return mt.rsqrt(mt.row_sum(mt.load(ssq[m0:m0 + TM, 0:ntp])) / mt.to_float(H) + eps)


def fold_norm_weight(w, g):
    """w * g per input column, rounded to w's dtype (torch): the weight the folded kernels
    take for an RMSNorm with weight g followed by the projection w (w itself, not a copy,
    when g is all ones: a weight folded already)."""
    if bool((g == 1).all()):
        return w
    return (w.float() * g.float()).to(w.dtype)


def _swiglu_block(x, g, wg, wu, y, m0, n0, inv, H, TM, TN, TK):
    """y[m0:, n0:] = silu(xn @ wg^T) * (xn @ wu^T) for one (TM, TN) tile, xn = x * inv * g
    normalised per K chunk (traced inline into both MLP kernels)."""
    ag = mt.zeros((TM, TN))
    au = mt.zeros((TM, TN))
    for k0 in mt.range(0, H, TK):
        a = _normed(x, g, m0, k0, inv, TM, TK)
        ag = mt.matmul(a, mt.load(wg[n0:n0 + TN, k0:k0 + TK]), acc=ag, b_trans=True)
        au = mt.matmul(a, mt.load(wu[n0:n0 + TN, k0:k0 + TK]), acc=au, b_trans=True)
    mt.store(y[m0:m0 + TM, n0:n0 + TN], (mt.silu(ag) * au).astype(mt.bf16))


@mt.kernel
def rmsnorm_swiglu(x: mt.Tensor["B", "H", mt.bf16], g: mt.Tensor["H", mt.bf16],
                   wg: mt.Tensor["I", "H", mt.bf16], wu: mt.Tensor["I", "H", mt.bf16],
                   y: mt.Out["B", "I", mt.bf16], eps: mt.Scalar[mt.f32],
                   TM: mt.const = 16, TN: mt.const = 128, TK: mt.const = 256):
    """y = silu(xn @ wg^T) * (xn @ wu^T), xn = rmsnorm(x) * g (post-attention norm + MLP)."""
    B, H = x.shape
    I = wg.shape[0]
    for m0, n0 in blocks(B, I, TM, TN, m_inner=True):
        inv = _inv_rms(x, m0, H, eps, TM, TK)
        _swiglu_block(x, g, wg, wu, y, m0, n0, inv, H, TM, TN, TK)


@mt.kernel
def gemm_residual_sumsq(x: mt.Tensor["M", "K", mt.bf16], w: mt.Tensor["N", "K", mt.bf16],
                        res: mt.Tensor["M", "N", mt.bf16], y: mt.Out["M", "N", mt.bf16],
                        ssq: mt.Out["M", "NTILES", mt.f32],
                        TM: mt.const = 32, TN: mt.const = 128, TK: mt.const = 128):
    """y = x @ w^T + res, and ssq[m, j] = the sum of y[m, j*TN:(j+1)*TN]^2 (y as stored,
    bf16): the partial sums of squares of the next RMSNorm, so that its kernel needs no
    pass over y before the weights stream (ssq has cdiv(N, TN) columns)."""
    M, K = x.shape
    N = w.shape[0]
    for m0, n0 in blocks(M, N, TM, TN, m_inner=True):
        # the residual read before the K loop (its latency behind the weight stream, not
        # after it): o_proj -0.5 us on an H200
        r = mt.load(res[m0:m0 + TM, n0:n0 + TN])
        acc = mainloop(x, w, m0, n0, 0, K, TM, TN, TK)
        out = (acc + r.astype(mt.f32)).astype(mt.bf16)
        mt.store(y[m0:m0 + TM, n0:n0 + TN], out)
        of = out.astype(mt.f32)
        j = n0 // TN
        mt.store(ssq[m0:m0 + TM, j:j + 1], mt.row_sum(of * of))


@mt.kernel
def rmsnorm_swiglu_folded(x: mt.Tensor["B", "H", mt.bf16],
                          ssq: mt.Tensor["B", "NTILES", mt.f32],
                          wg: mt.Tensor["I", "H", mt.bf16], wu: mt.Tensor["I", "H", mt.bf16],
                          y: mt.Out["B", "I", mt.bf16], eps: mt.Scalar[mt.f32], NT: mt.const,
                          TM: mt.const = 16, TN: mt.const = 128, TK: mt.const = 256):
    """rmsnorm_swiglu with the norm's weight folded into wg and wu (fold_norm_weight) and
    the row sums of squares of x as NT partials per row (from gemm_residual_sumsq): both
    GEMMs run on x as stored; inv scales the two accumulators before the SiLU product."""
    B, H = x.shape
    I = wg.shape[0]
    for m0, n0 in blocks(B, I, TM, TN, m_inner=True):
        inv = _ssq_inv(ssq, m0, NT, H, eps, TM)
        ag = mt.zeros((TM, TN))
        au = mt.zeros((TM, TN))
        for k0 in mt.range(0, H, TK):
            a = mt.load(x[m0:m0 + TM, k0:k0 + TK])
            ag = mt.matmul(a, mt.load(wg[n0:n0 + TN, k0:k0 + TK]), acc=ag, b_trans=True)
            au = mt.matmul(a, mt.load(wu[n0:n0 + TN, k0:k0 + TK]), acc=au, b_trans=True)
        mt.store(y[m0:m0 + TM, n0:n0 + TN], (mt.silu(ag * inv) * (au * inv)).astype(mt.bf16))


def _norm_rope(x1, x2, n1, n2, c, s, D, eps, dt=mt.bf16):
    """Per-row RMSNorm over the two halves [x1 | x2] (weights n1 | n2), then rotate-half
    RoPE with cos/sin c, s ((1, D/2), or (rows, D/2) for one position per row); returns
    the two halves in dt."""
    x1, x2 = x1.astype(mt.f32), x2.astype(mt.f32)
    inv = mt.rsqrt((mt.row_sum(x1 * x1) + mt.row_sum(x2 * x2)) / float(D) + eps)
    y1 = x1 * inv * n1
    y2 = x2 * inv * n2
    return (y1 * c - y2 * s).astype(dt), (y2 * c + y1 * s).astype(dt)


@mt.kernel
def fa_fused(qkv: mt.Tensor["B", "NH", "D", mt.bf16], q_norm: mt.Tensor["D", mt.bf16],
             k_norm: mt.Tensor["D", mt.bf16],
             k_cache: mt.InOut["NB", "BS", "KVH", "D", mt.bf16],
             v_cache: mt.InOut["NB", "BS", "KVH", "D", mt.bf16],
             block_table: mt.Tensor["B", "MB", mt.i32], seq_lens: mt.Tensor["B", mt.i32],
             out: mt.Out["B", "NQ", "D", mt.bf16],
             HQ: mt.const, KVH: mt.const, D: mt.const, BS: mt.const, eps: mt.const = 1e-6,
             theta: mt.const = 1e6, NSPLIT: mt.const = 4, GRID: mt.const = 0):
    """One decode step of GQA attention over a vLLM-layout paged KV cache.

    qkv is the QKV projection viewed as [B, HQ + 2 KVH, D]; the new token of sequence b is
    at position seq_lens[b] - 1. Phase 1 (mixed): work items (sequence, KV head, split)
    over the clusters. Each item normalises and rotates its G = HQ / KVH query heads and
    the new token's k (RMSNorm + RoPE, vector); QK^T and PV run on the cube, the online
    softmax on the lanes (the query heads are the rows). The cached positions before the
    new token come from the pages; the new token itself from registers, in the split that
    holds the last page, which writes k and v into the cache after its last read of that
    page (ordered after it through the cube -> vector handoffs). Phase 2 (vector): each
    (sequence, query head) merges its NSPLIT partials. With NSPLIT = 1 there is nothing
    to merge: phase 1 writes the output and the kernel has no phase 2 (no syncall).
    out is [B, HQ, D] (a view of the [B, HQ * D] activation).
    Pages are read only up to the new token's position (mt.load rows=): the slots not
    written yet (the new token's, written after the last read, and the last page's tail)
    are never touched, whatever they hold.
    GRID: the launch's blocks (0: the target's clusters, as a hard syncall needs on an
    NPU; on a GPU, where a syncall is a launch boundary, more blocks than SMs hide
    latency)."""
    G = HQ // KVH
    B = qkv.shape[0]
    P = GRID if GRID else mt.target().clusters
    half = D // 2
    scale = 1.0 / math.sqrt(D)
    nitems = B * KVH * NSPLIT
    if NSPLIT > 1:  # per-split partials, merged in phase 2
        pm = mt.workspace((B, KVH, NSPLIT, G, 1), mt.f32, "part_m")
        pl = mt.workspace((B, KVH, NSPLIT, G, 1), mt.f32, "part_l")
        po = mt.workspace((B, KVH, NSPLIT, G, D), mt.f32, "part_acc")
    for blk in mt.spmd(P):
        # ---- phase 1: split-KV attention, one (sequence, kv head, split) per item
        # inv_freq[i] = theta^(-2i/D); cos/sin of pos * inv_freq, (1, D/2)
        fr = mt.exp(mt.arange(half).astype(mt.f32) * (-2.0 * math.log(theta) / D))
        fr = fr.reshape(1, half)
        qn1 = mt.load(q_norm[0:half]).astype(mt.f32)
        qn2 = mt.load(q_norm[half:D]).astype(mt.f32)
        kn1 = mt.load(k_norm[0:half]).astype(mt.f32)
        kn2 = mt.load(k_norm[half:D]).astype(mt.f32)
        for it in mt.range(blk, nitems, P):
            b = it // (KVH * NSPLIT)
            h = it // NSPLIT % KVH
            sp = it % NSPLIT
            # the item's q, k, v before anything that needs its length: these loads and
            # seq_lens[b] are in flight together
            q1 = mt.load(qkv[b, h * G:h * G + G, 0:half])
            q2 = mt.load(qkv[b, h * G:h * G + G, half:D])
            k1 = mt.load(qkv[b, HQ + h:HQ + h + 1, 0:half])
            k2 = mt.load(qkv[b, HQ + h:HQ + h + 1, half:D])
            vn = mt.load(qkv[b, HQ + KVH + h:HQ + KVH + h + 1, 0:D])
            L = seq_lens[b]
            pos = L - 1
            nb = mt.cdiv(L, BS)
            per = mt.cdiv(nb, NSPLIT)
            j_lo = mt.smin(sp * per, nb)
            j_hi = mt.smin(j_lo + per, nb)
            ang = fr * mt.to_float(pos)
            c, s = mt.cos(ang), mt.sin(ang)
            qa, qb = _norm_rope(q1, q2, qn1, qn2, c, s, D, eps)
            ka, kb = _norm_rope(k1, k2, kn1, kn2, c, s, D, eps)
            # the new token (vector): its score, and the softmax state it starts (in the
            # split that holds the last page; elsewhere the empty state)
            s_new = (mt.row_sum(qa.astype(mt.f32) * ka.astype(mt.f32))
                     + mt.row_sum(qb.astype(mt.f32) * kb.astype(mt.f32))) * scale
            own = mt.smax(0, j_hi - mt.smax(j_lo, nb - 1))  # 1 in that split, else 0
            ownf = mt.to_float(own)
            m = s_new + (1.0 - ownf) * -1e30  # elsewhere: "-inf" (weight 0 in the merge)
            l = mt.zeros((G, 1)) + ownf
            acc = mt.zeros((G, D)) + vn.astype(mt.f32) * ownf
            for j in mt.range(j_lo, j_hi):
                page = block_table[b, j]
                n = mt.smin(BS, pos - j * BS)  # the page's cached positions before pos
                sc = mt.matmul(qa, mt.load(k_cache[page, 0:BS, h, 0:half], rows=n),
                               b_trans=True)
                sc = mt.matmul(qb, mt.load(k_cache[page, 0:BS, h, half:D], rows=n), acc=sc,
                               b_trans=True)
                cols = (mt.arange(BS) + j * BS).reshape(1, BS)
                sc = mt.where(cols < pos, sc * scale, float("-inf"))
                m_new = mt.maximum(m, mt.row_max(sc))
                p = mt.exp(sc - m_new)
                alpha = mt.exp(m - m_new)
                l = l * alpha + mt.row_sum(p)
                vt = mt.load(v_cache[page, 0:BS, h, 0:D], rows=n)
                pv = mt.matmul(p.astype(mt.bf16), vt)
                acc = acc * alpha + pv
                m = m_new
            if NSPLIT > 1:
                mt.store(pm[b, h, sp, 0:G, 0:1], m)
                mt.store(pl[b, h, sp, 0:G, 0:1], l)
                mt.store(po[b, h, sp, 0:G, 0:D], acc)
            else:  # the only split: l >= 1 (it holds the new token)
                mt.store(out[b, h * G:h * G + G, 0:D], (acc / l).astype(mt.bf16))
            # after the split's last read of the last page; one lane writes
            with mt.split_aiv(2, mode=mt.SplitMode.NONE) as lane:
                for _ in mt.range(lane, own, 2):
                    page = block_table[b, nb - 1]
                    slot = pos % BS
                    mt.store(k_cache[page, slot:slot + 1, h, 0:half], ka)
                    mt.store(k_cache[page, slot:slot + 1, h, half:D], kb)
                    mt.store(v_cache[page, slot:slot + 1, h, 0:D], vn)
        if NSPLIT > 1:
            # ---- phase 2: merge the NSPLIT partials of each (sequence, query head)
            mt.fence()
            mt.syncall(mt.CoreType.MIX, mt.SyncMode.HARD)
            with mt.split_aiv(2, mode=mt.SplitMode.NONE) as lane:
                # lane-major: with fewer items than 2 P, each block has one item at most
                # (a GPU runs a block's two lanes one after the other)
                for it in mt.range(lane * P + blk, B * HQ, P * 2):
                    b = it // HQ
                    hq = it % HQ
                    h = hq // G
                    r = hq % G
                    # the three loads first: all in flight at once (one memory round trip)
                    mj = mt.load(pm[b, h, 0:NSPLIT, r, 0:1])
                    lj = mt.load(pl[b, h, 0:NSPLIT, r, 0:1])
                    oj = mt.load(po[b, h, 0:NSPLIT, r, 0:D])
                    w = mt.exp(mj - mt.col_max(mj))  # empty splits have m <= -1e30: weight 0
                    den = mt.col_sum(w * lj)
                    num = mt.col_sum(oj * w)
                    mt.store(out[b, hq:hq + 1, 0:D], (num / den).astype(mt.bf16))
