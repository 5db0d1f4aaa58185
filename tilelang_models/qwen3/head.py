"""The ends of a Qwen3 model, in mixtile: the token embedding (a row gather) and the final
RMSNorm + LM head with a fused greedy argmax.

1. gather_rows:  out[t] = table[idx[t]] (vector; the embedding lookup, and the last token
                 of each prompt picked out of a prefill's output); with SSQ it also writes
                 row sums of out^2 in NS partials (what the first layer's folded RMSNorm
                 reads, as gemm_residual_sumsq's for the later ones)
2. lm_head_argmax: logits = rmsnorm(x) @ w^T over the vocabulary, and ids[b] = the first
                 index of the row's maximum (torch.argmax's tie rule). Phase 1 (mixed):
                 (row tile, vocabulary tile) items over the clusters; each writes its
                 tile's row maxima and their first columns to a workspace (and the logits,
                 in the variant that returns them). Phase 2 (vector, after a fence and a
                 hard syncall): each row reduces its tiles' partials. Only the ids (and, on
                 request, the fp32 logits) leave the kernel.
                 The norm: from x (a pass over the row per item: the plain variant), or
                 from NS row-sum partials of x^2 with the norm weight folded into w
                 (lm_head_argmax_folded, as rmsnorm_gemm_folded).
                 lm_head_argmax_max also writes each row's maximum (a vocabulary shard's
                 answer, combined across ranks by tp.py).
"""
import mixtile as mt
from tilelang_models.kernels.gemm import mainloop
from tilelang_models.qwen3.kernels import _inv_rms, _normed, _ssq_inv

BIG = 3.0e38  # larger than any column index; the "none" of a min over indices


@mt.kernel
def gather_rows(idx: mt.Tensor["T", mt.i32], table: mt.Tensor["V", "H", mt.bf16],
                out: mt.Out["T", "H", mt.bf16], TH: mt.const = 1024):
    """out[t, :] = table[idx[t], :]; one block per row, TH columns at a time."""
    T = idx.shape[0]
    H = table.shape[1]
    for t in mt.spmd(T):
        r = idx[t]
        for h0 in mt.range(0, H, TH):
            # an index, not a 1-row slice: an id past the table is an out-of-bounds error,
            # not a zero-padded row
            mt.store(out[t, h0:h0 + TH], mt.load(table[r, h0:h0 + TH]))


@mt.kernel
def gather_rows_ssq(idx: mt.Tensor["T", mt.i32], table: mt.Tensor["V", "H", mt.bf16],
                    out: mt.Out["T", "H", mt.bf16], ssq: mt.Out["T", "NS", mt.f32],
                    TH: mt.const = 1024):
    """gather_rows, and ssq[t, j] = the sum of out[t, j*TH:(j+1)*TH]^2 (ssq has
    cdiv(H, TH) columns: TH is the partials' width, as TN of gemm_residual_sumsq)."""
    T = idx.shape[0]
    H = table.shape[1]
    for t in mt.spmd(T):
        r = idx[t]
        for h0 in mt.range(0, H, TH):
            row = mt.load(table[r, h0:h0 + TH])
            mt.store(out[t, h0:h0 + TH], row)
            rf = row.astype(mt.f32).reshape(1, TH)
            j = h0 // TH
            mt.store(ssq[t:t + 1, j:j + 1], mt.row_sum(rf * rf))


def _tile_argmax(acc, n0, V, TN):
    """(row max, the first column holding it) of a (TM, TN) logits tile at column n0,
    columns past V excluded; both (TM, 1) fp32."""
    cols = mt.arange(TN, mt.f32).reshape(1, TN) + mt.to_float(n0)
    s = mt.where(cols < mt.to_float(V), acc, float("-inf"))
    mx = mt.row_max(s)
    first = mt.row_min(mt.where(s == mx, cols, BIG))
    return mx, first


def _reduce_phase(pmax, pidx, ids, B, NT, P, blk, vals=None):
    """Phase 2: ids[b] = the first column of row b's largest tile maximum (vector);
    vals[b] = that maximum, when given."""
    ntp = -(-NT // 8) * 8  # whole 8-lane vector blocks; loads past NT read 0, masked
    with mt.split_aiv(2, mode=mt.SplitMode.NONE) as lane:
        for b in mt.range(lane * P + blk, B, P * 2):
            pm = mt.load(pmax[b:b + 1, 0:ntp])
            pi = mt.load(pidx[b:b + 1, 0:ntp])
            j = mt.arange(ntp, mt.f32).reshape(1, ntp)
            pm = mt.where(j < float(NT), pm, float("-inf"))
            gm = mt.row_max(pm)
            # tiles are in column order: the smallest index among the tiles holding the
            # maximum is its first occurrence
            first = mt.row_min(mt.where(pm == gm, pi, BIG))
            mt.store(ids[b:b + 1], first.reshape(1).astype(mt.i32))
            if vals is not None:
                mt.store(vals[b:b + 1], gm.reshape(1))


def _head_body(logits_out: bool, folded: bool):
    def body(x, norm, w, ids, logits, eps, NT, TM, TN, TK, GRID, NS, vals=None):
        B, H = x.shape
        V = w.shape[0]
        P = GRID if GRID else mt.target().clusters
        pmax = mt.workspace((B, NT), mt.f32, "tile_max")
        pidx = mt.workspace((B, NT), mt.f32, "tile_argmax")
        gm = mt.cdiv(B, TM)
        for blk in mt.spmd(P):
            for it in mt.range(blk, gm * NT, P):
                m0 = it % gm * TM
                j = it // gm
                n0 = j * TN
                if folded:
                    inv = _ssq_inv(norm, m0, NS, H, eps, TM)
                    acc = mainloop(x, w, m0, n0, 0, H, TM, TN, TK) * inv
                else:
                    inv = _inv_rms(x, m0, H, eps, TM, TK)
                    acc = mt.zeros((TM, TN))
                    for k0 in mt.range(0, H, TK):
                        a = _normed(x, norm, m0, k0, inv, TM, TK)
                        acc = mt.matmul(a, mt.load(w[n0:n0 + TN, k0:k0 + TK]), acc=acc,
                                        b_trans=True)
                if logits_out:
                    mt.store(logits[m0:m0 + TM, n0:n0 + TN], acc)
                mx, first = _tile_argmax(acc, n0, V, TN)
                mt.store(pmax[m0:m0 + TM, j:j + 1], mx)
                mt.store(pidx[m0:m0 + TM, j:j + 1], first)
            mt.fence()
            mt.syncall(mt.CoreType.MIX, mt.SyncMode.HARD)
            _reduce_phase(pmax, pidx, ids, B, NT, P, blk, vals)
    return body


@mt.kernel
def lm_head_argmax(x: mt.Tensor["B", "H", mt.bf16], g: mt.Tensor["H", mt.bf16],
                   w: mt.Tensor["V", "H", mt.bf16], ids: mt.Out["B", mt.i32],
                   eps: mt.Scalar[mt.f32], NT: mt.const, TM: mt.const = 16,
                   TN: mt.const = 128, TK: mt.const = 256, GRID: mt.const = 0):
    """ids[b] = argmax_v (rmsnorm(x[b]) * g) . w[v]; NT = cdiv(V, TN) (the vocabulary
    tiles). GRID: the launch's blocks (0: the target's clusters)."""
    _head_body(False, False)(x, g, w, ids, None, eps, NT, TM, TN, TK, GRID, 0)


@mt.kernel
def lm_head_argmax_logits(x: mt.Tensor["B", "H", mt.bf16], g: mt.Tensor["H", mt.bf16],
                          w: mt.Tensor["V", "H", mt.bf16], ids: mt.Out["B", mt.i32],
                          logits: mt.Out["B", "V", mt.f32], eps: mt.Scalar[mt.f32],
                          NT: mt.const, TM: mt.const = 16, TN: mt.const = 128,
                          TK: mt.const = 256, GRID: mt.const = 0):
    """lm_head_argmax that also writes the fp32 logits."""
    _head_body(True, False)(x, g, w, ids, logits, eps, NT, TM, TN, TK, GRID, 0)


@mt.kernel
def lm_head_argmax_max(x: mt.Tensor["B", "H", mt.bf16], g: mt.Tensor["H", mt.bf16],
                       w: mt.Tensor["V", "H", mt.bf16], ids: mt.Out["B", mt.i32],
                       vals: mt.Out["B", mt.f32], eps: mt.Scalar[mt.f32], NT: mt.const,
                       TM: mt.const = 16, TN: mt.const = 128, TK: mt.const = 256,
                       GRID: mt.const = 0):
    """lm_head_argmax that also writes each row's largest logit (fp32): what a head split
    over the vocabulary needs to combine its shards (tp.py's dist_argmax)."""
    _head_body(False, False)(x, g, w, ids, None, eps, NT, TM, TN, TK, GRID, 0, vals)


@mt.kernel
def lm_head_argmax_folded(x: mt.Tensor["B", "H", mt.bf16], ssq: mt.Tensor["B", "NS", mt.f32],
                          w: mt.Tensor["V", "H", mt.bf16], ids: mt.Out["B", mt.i32],
                          eps: mt.Scalar[mt.f32], NT: mt.const, NS: mt.const,
                          TM: mt.const = 16, TN: mt.const = 128, TK: mt.const = 256,
                          GRID: mt.const = 0):
    """lm_head_argmax with the norm weight folded into w (fold_norm_weight) and the norm
    from NS row-sum partials of x^2 (the last layer's gemm_residual_sumsq)."""
    _head_body(False, True)(x, ssq, w, ids, None, eps, NT, TM, TN, TK, GRID, NS)


@mt.kernel
def lm_head_argmax_folded_logits(x: mt.Tensor["B", "H", mt.bf16],
                                 ssq: mt.Tensor["B", "NS", mt.f32],
                                 w: mt.Tensor["V", "H", mt.bf16], ids: mt.Out["B", mt.i32],
                                 logits: mt.Out["B", "V", mt.f32], eps: mt.Scalar[mt.f32],
                                 NT: mt.const, NS: mt.const, TM: mt.const = 16,
                                 TN: mt.const = 128, TK: mt.const = 256, GRID: mt.const = 0):
    """lm_head_argmax_folded that also writes the fp32 logits."""
    _head_body(True, True)(x, ssq, w, ids, logits, eps, NT, TM, TN, TK, GRID, NS)
