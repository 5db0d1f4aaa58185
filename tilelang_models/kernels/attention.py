"""Flash-attention decode step as one mixed kernel (split-KV + merge after a syncall).

The G query heads that share one KV head attend over a KV sequence of length S:

phase 1 (every cluster, a chunk of the sequence each): QK^T on the cube, online softmax
    on the vector lanes (rows split UP_DOWN), PV on the cube; the partial (m, l, acc)
    goes to a GM workspace; fence; hard syncall over all clusters.
phase 2 (merge, split_aiv NONE): query row r is merged by lane r % 2 of block r // 2:
    out[r] = sum_j exp(m_j - M) acc_j / sum_j exp(m_j - M) l_j, M = max_j m_j.
"""
import math

import mixtile as mt


@mt.kernel
def flash_decode(q: mt.Tensor["G", "D", mt.bf16], k: mt.Tensor["S", "D", mt.bf16],
                 v: mt.Tensor["S", "D", mt.bf16], out: mt.Out["G", "D", mt.f32],
                 TQ: mt.const = 8, TS: mt.const = 64, D: mt.const = 128):
    G = q.shape[0]
    S = k.shape[0]
    P = mt.target().clusters  # a hard syncall needs the launch to fill every cluster
    scale = 1.0 / math.sqrt(D)
    pm = mt.workspace((P, TQ, 1), mt.f32, "part_m")
    pl = mt.workspace((P, TQ, 1), mt.f32, "part_l")
    po = mt.workspace((P, TQ, D), mt.f32, "part_acc")
    for blk in mt.spmd(P):
        chunk = mt.cdiv(mt.cdiv(S, P), TS) * TS
        lo = mt.smin(blk * chunk, S)
        hi = mt.smin(lo + chunk, S)
        qt = mt.load(q[0:TQ, 0:D])  # rows past G read as 0 and are never stored
        m = mt.full((TQ, 1), float("-inf"))
        l = mt.zeros((TQ, 1))
        acc = mt.zeros((TQ, D))
        for s0 in mt.range(lo, hi, TS):
            sc = mt.matmul(qt, mt.load(k[s0:s0 + TS, 0:D]), b_trans=True)
            cols = (mt.arange(TS) + s0).reshape(1, TS)
            sc = mt.where(cols < hi, sc * scale, float("-inf"))
            m_new = mt.maximum(m, mt.row_max(sc))
            p = mt.exp(sc - m_new)
            alpha = mt.exp(m - m_new)
            l = l * alpha + mt.row_sum(p)
            acc = acc * alpha + mt.matmul(p.astype(mt.bf16), mt.load(v[s0:s0 + TS, 0:D]))
            m = m_new
        mt.store(pm[blk, 0:TQ, 0:1], m)
        mt.store(pl[blk, 0:TQ, 0:1], l)
        mt.store(po[blk, 0:TQ, 0:D], acc)
        mt.fence()
        mt.syncall(mt.CoreType.MIX, mt.SyncMode.HARD)
        with mt.split_aiv(2, mode=mt.SplitMode.NONE) as lane:
            r = blk * 2 + lane
            rw = mt.smin(r, TQ - 1)  # rows past G merge a clamped row and store nothing
            ro = mt.smin(r, G)
            mj = mt.load(pm[0:P, rw, 0:1])
            w = mt.exp(mj - mt.col_max(mj))  # empty chunks have m = -inf: weight 0
            den = mt.col_sum(w * mt.load(pl[0:P, rw, 0:1]))
            num = mt.col_sum(mt.load(po[0:P, rw, 0:D]) * w)
            mt.store(out[ro:ro + 1, 0:D], num / den)
