"""The kernels of a Qwen3-MoE sparse MLP block, in mixtile (see docs/moe.md).

    x ─ moe_router ─> h3 (normed x), ids [T, TOPK], wts [T, TOPK]   (MIX: norm + gate on AIC,
         │                                                            softmax + top-k on AIV)
         └ moe_sort ─> pos [T*TOPK] (each (token, slot) entry's row in expert order),
                       the row-tile map (tile_e, tile_r0, tile_n, ntiles),
                       xs: h3's rows in expert order (fp8 + 1x128 scales when FP8), sw
         (moe_gather: the same row moves in a launch of their own, moe_sort MOVE=False)
      moe_gate_up (grouped, MIX) ─> act [N, I] = silu(xs @ Wg[e]^T) * (xs @ Wu[e]^T)
      (FP8: moe_quant ─> act in e4m3 + its 1x128 scales)
      moe_down    (grouped, MIX) ─> ys [N, H] = sw * (act @ Wd[e]^T); syncall;
                                   out[t] = res[t] + sum_j ys[pos[t, j]]   (token order)

One token (MoeBlock on CUDA, bf16): moe_router ─> moe_gate_up_routed (act[t, j] from
x[t] and expert ids[t, j], no sort) ─> moe_down_routed (out[t] = res[t] + the slot sum,
one launch, no workspace).

N = T * TOPK rows. A row tile holds rows of one expert only (`tile_n` <= TM of them):
the grouped GEMMs loop over the tiles that exist, so an expert without tokens costs
nothing. FP8 (the *_fp8 kernels: the same bodies, the K loop of _mm_fp8): e4m3 weights with one f32
scale per 128x128 block (Hugging Face `weight_scale_inv`, multiplied), activations
quantised per token in 1x128 groups (scale = max(amax, 1e-10) / 448): xs as moe_sort
(or moe_gather) copies the rows, act (bf16 from moe_gate_up_fp8) by moe_quant; each K
step's product is scaled by a_scale (per row) * w_scale (per block) on the vector lanes.
"""
import sys

import mixtile as mt
from mixtile.errors import Loc

FP8_MAX = 448.0  # the largest finite e4m3fn value
QGROUP = 128  # activation group / weight block edge of the FP8 format
AMAX_EPS = 1e-10  # a group of zeros gets scale AMAX_EPS / 448, not 0


def _const_error(msg: str, fix: str) -> mt.ArgumentError:
    """An ArgumentError located at the kernel's line that checks a constant (the first
    caller whose name has no leading underscore: the kernel, not a helper)."""
    f = sys._getframe(1)
    while f.f_back is not None and f.f_code.co_name.startswith("_"):
        f = f.f_back
    return mt.ArgumentError(msg, loc=Loc(f.f_code.co_filename, f.f_lineno), fix=fix)


def _inv_rms(x, m0, H, eps, TM, TK):
    """rsqrt(mean(x[m0:m0+TM, :H]^2) + eps), (TM, 1)."""
    ss = mt.zeros((TM, 1))
    for k0 in mt.range(0, H, TK):
        xt = mt.load(x[m0:m0 + TM, k0:k0 + TK]).astype(mt.f32)
        ss = ss + mt.row_sum(xt * xt)
    return mt.rsqrt(ss / mt.to_float(H) + eps)


def _route(acc, ids, wts, m0, NE, TOPK, NORM_TOPK, TM, TE, dtype):
    """The router's vector half on logits acc (TM, TE) f32: bf16 rounding, softmax, the
    TOPK largest (ties: the lowest index first), optional renormalisation; stored to
    ids / wts rows m0 .. m0 + TM."""
    cols = mt.arange(TE).astype(mt.f32).reshape(1, TE)
    # logits rounded to x.dtype as an nn.Linear in bf16 gives them (the selection agrees)
    lg = mt.where(cols < float(NE), acc.astype(dtype).astype(mt.f32), float("-inf"))
    p = mt.exp(lg - mt.row_max(lg))
    p = p / mt.row_sum(p)
    p = mt.where(cols < float(NE), p, -2.0)  # padded experts are never chosen
    KP = -(-TOPK // 8) * 8  # slots padded to 32 bytes (the store drops the padding)
    kc = mt.arange(KP).astype(mt.f32).reshape(1, KP)
    sel_w = mt.zeros((TM, KP))
    sel_i = mt.zeros((TM, KP))
    for j in range(TOPK):  # unrolled: take the largest, then mask it out
        mx = mt.row_max(p)
        first = mt.row_min(mt.where(p == mx, cols, float(TE)))  # lowest index of the max
        slot = mt.relu(1.0 - mt.abs(kc - float(j)))  # one-hot of slot j, (1, KP)
        sel_w = sel_w + slot * mx
        sel_i = sel_i + slot * first
        p = mt.where(cols == first, -1.0, p)
    if NORM_TOPK:
        sel_w = sel_w / mt.row_sum(sel_w)
    mt.store(ids[m0:m0 + TM, 0:KP], sel_i.astype(mt.i32))
    mt.store(wts[m0:m0 + TM, 0:KP], sel_w)


def _normed(x, g, h3, m0, k0, inv, TM, TK, store):
    """x[m0:, k0:k0+TK] normalised (bf16), stored to h3 when store."""
    xt = (mt.load(x[m0:m0 + TM, k0:k0 + TK]).astype(mt.f32) * inv
          * mt.load(g[k0:k0 + TK]).astype(mt.f32)).astype(x.dtype)
    if store:
        mt.store(h3[m0:m0 + TM, k0:k0 + TK], xt)
    return xt


@mt.kernel
def moe_router(x: mt.Tensor["T", "H", mt.bf16], g: mt.Tensor["H", mt.bf16],
               wr: mt.Tensor["E", "H", mt.bf16], h3: mt.Out["T", "H", mt.bf16],
               ids: mt.Out["T", "KT", mt.i32], wts: mt.Out["T", "KT", mt.f32],
               eps: mt.Scalar[mt.f32], NE: mt.const, TOPK: mt.const,
               NORM_IN: mt.const = True, NORM_TOPK: mt.const = True,
               TM: mt.const = 16, TE: mt.const = 128, TK: mt.const = 256,
               KS: mt.const = 0, TEB: mt.const = 0, GRID: mt.const = 0):
    """Router of T tokens over NE experts: h3 = rmsnorm(x) * g (NORM_IN; else x as is),
    logits = bf16(h3 @ wr^T), p = softmax(logits) (fp32), the TOPK largest p per token
    (ties: the lowest expert index first) as ids (descending p) and wts (p, divided by
    their sum when NORM_TOPK). TE >= NE: the experts in one N tile (padded columns masked).

    KS = 0: one block per TM tokens does it all (a block reads the whole gate weight: at
    decode one block streams it alone). KS > 0, split (decode): phase 1 spreads the gate
    GEMM over (token tile, TEB experts, K split s) items, split s taking the K tiles s,
    s + KS, ... (any H), partial logits to an f32 workspace; after a syncall (on a GPU:
    a second launch) phase 2 sums the KS partials per token tile and selects. GRID blocks
    (0: the clusters) loop over the items; the split's logits differ from KS = 0's only
    in the f32 summation order."""
    T, H = x.shape
    if TE < NE:
        raise _const_error(f"moe_router: TE={TE} < NE={NE}: the experts must fit one N tile",
                           f"pass TE >= {NE} (a multiple of 16)")
    if not KS:
        for blk in mt.spmd(mt.cdiv(T, TM)):
            m0 = blk * TM
            if NORM_IN:
                inv = _inv_rms(x, m0, H, eps, TM, TK)
            acc = mt.zeros((TM, TE))
            for k0 in mt.range(0, H, TK):
                if NORM_IN:
                    xt = _normed(x, g, h3, m0, k0, inv, TM, TK, True)
                else:
                    xt = mt.load(x[m0:m0 + TM, k0:k0 + TK])
                acc = mt.matmul(xt, mt.load(wr[0:TE, k0:k0 + TK]), acc=acc, b_trans=True)
            _route(acc, ids, wts, m0, NE, TOPK, NORM_TOPK, TM, TE, x.dtype)
        return
    teb = TEB or TE
    if KS < 1 or TE % teb:
        raise _const_error(f"moe_router: KS={KS}, TEB={TEB}: KS must be at least 1 and "
                           f"TEB divide TE={TE}", f"pass KS >= 1 and TEB in the divisors "
                           f"of {TE} (0: all experts in one item)")
    ne = TE // teb
    nm = mt.cdiv(T, TM)
    P = _grid(GRID)
    part = mt.workspace((KS, T, TE), mt.f32, "moe_router_logits")
    for blk in mt.spmd(P):
        # ---- phase 1: partial logits of (token tile, expert tile, K split) items
        for it in mt.range(blk, nm * ne * KS, P):
            m0 = it // (ne * KS) * TM
            e0 = it // KS % ne * teb
            s = it % KS
            if NORM_IN:
                inv = _inv_rms(x, m0, H, eps, TM, TK)
            acc = mt.zeros((TM, teb))
            for k0 in mt.range(s * TK, H, KS * TK):
                if NORM_IN:
                    xt = _normed(x, g, h3, m0, k0, inv, TM, TK, False)
                    for _ in _once_if(e0, 1):  # the first expert tile stores h3
                        mt.store(h3[m0:m0 + TM, k0:k0 + TK], xt)
                else:  # through the vector lanes (exact), as the normed tiles go: the
                    # phases share the lanes' row split
                    xt = mt.load(x[m0:m0 + TM, k0:k0 + TK]).astype(mt.f32).astype(x.dtype)
                acc = mt.matmul(xt, mt.load(wr[e0:e0 + teb, k0:k0 + TK]), acc=acc,
                                b_trans=True)
            mt.store(part[s, m0:m0 + TM, e0:e0 + teb], acc)
        mt.fence()
        mt.syncall(mt.CoreType.MIX, mt.SyncMode.HARD)
        # ---- phase 2: per token tile, the partials summed in split order, then selected
        for it in mt.range(blk, nm, P):
            m0 = it * TM
            acc = mt.zeros((TM, TE))
            for s in mt.range(0, KS):
                acc = acc + mt.load(part[s, m0:m0 + TM, 0:TE])
            _route(acc, ids, wts, m0, NE, TOPK, NORM_TOPK, TM, TE, x.dtype)


def tile_slots(n_rows: int, n_experts: int, tm: int) -> int:
    """Length of the row-tile map for n_rows = T * TOPK rows: an upper bound of
    sum_e cdiv(count_e, tm) (at most one partial tile per expert that has rows)."""
    return -(-n_rows // tm) + min(n_experts, n_rows)


def _once_if(cond_lo, cond_hi):
    """A loop that runs once when cond_lo < cond_hi (index values), else not at all."""
    return mt.range(0, mt.smax(0, mt.smin(1, cond_hi - cond_lo)))


def _keys(ids, j0, N, NF, TB):
    """(1, TB) f32 sort keys e * N + j of entries j0.., +huge past the end (never less)."""
    jj = (mt.arange(TB).astype(mt.f32) + mt.to_float(j0)).reshape(1, TB)
    ej = mt.load(ids[j0:j0 + TB]).astype(mt.f32).reshape(1, TB)
    return mt.where(jj < NF, ej * NF + jj, 3e38), ej, jj


def _cdiv_tiles(cnt, TM):
    """cdiv(cnt, TM) of integer-valued f32 counts, as round((cnt + (TM - 1) / 2) / TM):
    exact, and never a tie (float -> int rounds to nearest)."""
    return ((cnt + (TM - 1) / 2) / float(TM)).astype(mt.i32).astype(mt.f32)


def _tile_map(cnt_r, tile_e, tile_r0, tile_n, TM, TE, TT, t_lo, t_step, cnt=None,
              less=None):
    """TT tiles of the row-tile map from each of t_lo, t_lo + t_step, .. below its length,
    from the rows per expert as a row, cnt_r (1, TE), and as a column, cnt (TE, 1), and
    the rows of all lower experts, less (TE, 1) (None: from cnt_r, a masked (TE, TE) row
    sum each): expert e's rows start at less[e] and make cdiv(cnt[e], TM) tiles (their
    exclusive prefix over experts a masked (TE, TE) row sum); tile t belongs to the expert
    whose tiles end first after t; tiles past the last live one are zeros. Returns the
    map's live tiles, (1,) i32 (the callers' ntiles[0])."""
    ecol = mt.arange(TE).astype(mt.f32).reshape(TE, 1)
    erow = mt.arange(TE).astype(mt.f32).reshape(1, TE)
    if cnt is None:
        cnt = mt.row_sum(mt.where(ecol == erow, cnt_r, 0.0))  # cnt_r as a column
        less = mt.row_sum(mt.where(erow < ecol, cnt_r, 0.0))  # exclusive
    tc = _cdiv_tiles(cnt, TM)
    toff = mt.row_sum(mt.where(erow < ecol, _cdiv_tiles(cnt_r, TM), 0.0))  # exclusive
    tend = toff + tc
    ntot = mt.col_sum(tc)
    for t0 in mt.range(t_lo, tile_e.shape[0], t_step):
        tt = (mt.arange(TT).astype(mt.f32) + mt.to_float(t0)).reshape(1, TT)
        e_t = mt.col_sum(mt.where(tend <= tt, 1.0, 0.0))  # experts ending <= t
        oh = mt.where(ecol == e_t, 1.0, 0.0)  # (TE, TT)
        j = tt - mt.col_sum(oh * toff)
        r0 = mt.col_sum(oh * less) + j * float(TM)
        n = mt.minimum(mt.col_sum(oh * cnt) - j * float(TM), float(TM))
        live = tt < ntot
        for out, v in ((tile_e, e_t), (tile_r0, r0), (tile_n, n)):
            mt.store(out[t0:t0 + TT], mt.where(live, v, 0.0).reshape(TT).astype(mt.i32))
    return ntot.reshape(1).astype(mt.i32)


def _move_rows(ids, wts, pos, sw, copy_row, b0, nrow, TOPK):
    """Entries b0 .. b0 + nrow (pos already stored): each one's activation row and routing
    weight to its expert-order row, one after another (copy_row None: not here, MOVE
    False leaves them to moe_gather)."""
    if copy_row is None:
        return
    for i in mt.range(b0, b0 + nrow):
        p = pos[i]
        copy_row(i // TOPK, p)
        mt.store(sw[p:p + 1, 0:1], mt.load(wts[i:i + 1]).reshape(1, 1))


def _sort_direct(ids, wts, pos, sw, tile_e, tile_r0, tile_n, ntiles, copy_row, TOPK, TM,
                 TB, TJ, TE, TT):
    """One launch, no barrier (decode): each of cdiv(N, TB) blocks ranks its TB entries
    against all N (keys e * N + i, TJ at a time: O(N * TB) compares per block) and moves
    their rows; cdiv(MT, TT) more blocks each count the rows per expert (O(N * TE)) and
    build TT tiles of the map (the first also ntiles)."""
    N = ids.shape[0]
    NF = mt.to_float(N)
    nb = mt.cdiv(N, TB)
    for blk in mt.spmd(nb + mt.cdiv(tile_e.shape[0], TT)):
        # blocks 0..nb-1: pos[i] = #{j : (e_j, j) < (e_i, i)}, then the rows
        for _ in _once_if(blk, nb):
            b0 = blk * TB
            ki = _keys(ids, b0, N, NF, TB)[0].reshape(TB, 1)
            rank = mt.zeros((TB, 1))
            for j0 in mt.range(0, N, TJ):
                kj = _keys(ids, j0, N, NF, TJ)[0]
                rank = rank + mt.row_sum(mt.where(kj < ki, 1.0, 0.0))
            mt.store(pos[b0:b0 + TB], rank.reshape(TB).astype(mt.i32))
            _move_rows(ids, wts, pos, sw, copy_row, b0, mt.smin(TB, N - b0), TOPK)
        # blocks nb ..: the rows per expert, then TT tiles of the row-tile map each
        # ((TE, TJ) compares: on an H100 a masked (TE, TE) sum per count cost more)
        for _ in _once_if(nb - 1, blk):
            ecol = mt.arange(TE).astype(mt.f32).reshape(TE, 1)
            erow = mt.arange(TE).astype(mt.f32).reshape(1, TE)
            cnt = mt.zeros((TE, 1))
            cnt_r = mt.zeros((1, TE))  # the same counts as a row (no transpose needed)
            less = mt.zeros((TE, 1))
            for j0 in mt.range(0, N, TJ):
                ej, jj = _keys(ids, j0, N, NF, TJ)[1:]
                ej = mt.where(jj < NF, ej, 1e9)
                cnt = cnt + mt.row_sum(mt.where(ej == ecol, 1.0, 0.0))
                less = less + mt.row_sum(mt.where(ej < ecol, 1.0, 0.0))
                cnt_r = cnt_r + mt.col_sum(mt.where(ej.reshape(TJ, 1) == erow, 1.0, 0.0))
            nt = _tile_map(cnt_r, tile_e, tile_r0, tile_n, TM, TE, TT, (blk - nb) * TT,
                           tile_e.shape[0], cnt, less)  # one step
            for _ in _once_if(blk, nb + 1):
                mt.store(ntiles[0:1], nt)


def _chunk(ids, c0, NF, TB, TE):
    """Entries c0 .. c0 + TB: their experts as a column (TB, 1) (-1 past the end), as a
    row (1, TB), their indices as a row and a column, and the one-hot (TB, TE) of their
    experts (no 1 past the end)."""
    ii = mt.arange(TB).astype(mt.f32) + mt.to_float(c0)
    e = mt.load(ids[c0:c0 + TB]).astype(mt.f32)
    e_c = mt.where(ii.reshape(TB, 1) < NF, e.reshape(TB, 1), -1.0)
    erow = mt.arange(TE).astype(mt.f32).reshape(1, TE)
    return e_c, e.reshape(1, TB), ii.reshape(TB, 1), ii.reshape(1, TB), \
        mt.where(e_c == erow, 1.0, 0.0)


def _sort_hist(ids, wts, pos, sw, tile_e, tile_r0, tile_n, ntiles, copy_row, TOPK, TM,
               TB, TJ, TE, TT):
    """A counting sort over chunks of TB entries, with one barrier: the target's AIV
    count P of blocks, block b owning the consecutive chunks b * nc // P .. (b + 1) * nc
    // P. Phase 1: each block's histogram over the experts (one-hot (TB, TE) column sums,
    O(N * TE) in all) to a (P, TE) workspace. Phase 2: each block sums the histograms of
    all blocks (the rows per expert) and of the blocks before it (TJ rows at a time,
    O(P * TE)), so an expert's first row for the block is its exclusive prefix over
    experts (from a (TE, TE) masked sum) plus the rows earlier blocks give it; then per
    chunk, in order, an entry's row is that plus its rank among the chunk's entries of
    the same expert ((TB, TB) compares: O(N * TB) in all), and the chunk's histogram is
    added for the next. Blocks without chunks skip phase 2; the first cdiv(MT, TT) blocks
    also build TT tiles each of the row-tile map."""
    N = ids.shape[0]
    NF = mt.to_float(N)
    P = mt.target().aiv_count
    nc = mt.cdiv(N, TB)
    hist = mt.workspace((P, TE), mt.f32, "moe_sort_hist")
    for blk in mt.spmd(P):
        c_lo, c_hi = blk * nc // P, (blk + 1) * nc // P
        # ---- phase 1: this block's entries per expert
        h = mt.zeros((1, TE))
        for c in mt.range(c_lo, c_hi):
            h = h + mt.col_sum(_chunk(ids, c * TB, NF, TB, TE)[4])
        mt.store(hist[blk:blk + 1, 0:TE], h)
        mt.fence()
        mt.syncall(mt.CoreType.AIV, mt.SyncMode.HARD)
        # ---- phase 2 (blocks with chunks): the rows of each entry, then its row moved
        for _ in _once_if(c_lo, c_hi):
            tot, before = _hist_sums(hist, blk, P, TJ, TE)
            ecol = mt.arange(TE).astype(mt.f32).reshape(TE, 1)
            erow = mt.arange(TE).astype(mt.f32).reshape(1, TE)
            tot_c = mt.row_sum(mt.where(ecol == erow, tot, 0.0))  # (TE, 1): tot as a column
            base = mt.col_sum(mt.where(ecol < erow, tot_c, 0.0)) + before  # exclusive
            for c in mt.range(c_lo, c_hi):
                c0 = c * TB
                e_c, e_r, i_c, i_r, oh = _chunk(ids, c0, NF, TB, TE)
                same = mt.where(e_r == e_c, mt.where(i_r < i_c, 1.0, 0.0), 0.0)  # (TB, TB)
                p = mt.row_sum(oh * base) + mt.row_sum(same)
                mt.store(pos[c0:c0 + TB], p.reshape(TB).astype(mt.i32))
                base = base + mt.col_sum(oh)
                _move_rows(ids, wts, pos, sw, copy_row, c0, mt.smin(TB, N - c0), TOPK)
        # ---- the row-tile map: TT tiles from each of blk * TT, (blk + P) * TT, .. (the
        # first cdiv(MT, TT) blocks; block 0 also ntiles)
        MT = tile_e.shape[0]
        for _ in _once_if(blk * TT, MT):
            tot = _hist_sums(hist, blk, P, TJ, TE)[0]
            nt = _tile_map(tot, tile_e, tile_r0, tile_n, TM, TE, TT, blk * TT, P * TT)
            for _ in _once_if(blk, 1):
                mt.store(ntiles[0:1], nt)


def _hist_sums(hist, blk, P, TJ, TE):
    """(rows per expert, those of blocks before blk), both (1, TE), from the per-block
    histograms (P, TE), TJ rows at a time."""
    tot = mt.zeros((1, TE))
    before = mt.zeros((1, TE))
    for r0 in mt.range(0, P, TJ):
        hr = mt.load(hist[r0:r0 + TJ, 0:TE])
        rid = (mt.arange(TJ).astype(mt.f32) + mt.to_float(r0)).reshape(TJ, 1)
        rid = mt.broadcast_to(rid, (TJ, TE))  # a full mask (Ascend C's Select)
        tot = tot + mt.col_sum(hr)
        before = before + mt.col_sum(mt.where(rid < mt.to_float(blk), hr, 0.0))
    return tot, before


def _sort(ids, wts, pos, sw, tile_e, tile_r0, tile_n, ntiles, copy_row, TOPK, TM, TB, TJ,
          TE, TT, DIRECT):
    """The body of moe_sort (traced inline): copy_row(t, p) moves token t's activation row
    to expert-order row p."""
    if TB < 1 or TJ < 1:
        raise _const_error(f"moe_sort: TB={TB}, TJ={TJ}: both must be at least 1",
                           "pass TB >= 1 entries per chunk and TJ >= 1")
    body = _sort_direct if DIRECT else _sort_hist
    body(ids, wts, pos, sw, tile_e, tile_r0, tile_n, ntiles, copy_row, TOPK, TM, TB, TJ,
         TE, TT)


def _gather(wts, pos, sw, copy_row, TOPK, RB):
    """The row moves of moe_sort, RB entries per block over cdiv(N, RB) blocks."""
    if RB < 1:
        raise _const_error(f"moe_gather: RB={RB}: at least one entry per block",
                           "pass RB >= 1")
    N = pos.shape[0]
    for blk in mt.spmd(mt.cdiv(N, RB)):
        b0 = blk * RB
        _move_rows(None, wts, pos, sw, copy_row, b0, mt.smin(RB, N - b0), TOPK)


def _copy_bf16(x, xs, TH):
    H = x.shape[1]

    def copy_row(t, p):
        for c0 in mt.range(0, H, TH):
            mt.store(xs[p:p + 1, c0:c0 + TH], mt.load(x[t:t + 1, c0:c0 + TH]))

    return copy_row


def _copy_fp8(x, xq, xqs, GT):
    def copy_row(t, p):
        q, s = quantize_group(mt.load(x[t, 0:GT, 0:QGROUP]).astype(mt.f32))
        mt.store(xq[p, 0:GT, 0:QGROUP], q)
        mt.store(xqs[p, 0:GT, 0:1], s)

    return copy_row


def _check_sort(NE, TE):
    if TE < NE:
        raise _const_error(f"moe_sort: TE={TE} < NE={NE}: the experts must fit one tile",
                           f"pass TE >= {NE}")


@mt.kernel
def moe_sort(ids: mt.Tensor["N", mt.i32], wts: mt.Tensor["N", mt.f32],
             x: mt.Tensor["T", "H", mt.bf16], pos: mt.Out["N", mt.i32],
             sw: mt.Out["N", 1, mt.f32], tile_e: mt.Out["MT", mt.i32],
             tile_r0: mt.Out["MT", mt.i32], tile_n: mt.Out["MT", mt.i32],
             ntiles: mt.Out[1, mt.i32], xs: mt.Out["N", "H", mt.bf16],
             NE: mt.const, TOPK: mt.const, TM: mt.const = 16, TB: mt.const = 64,
             TJ: mt.const = 64, TE: mt.const = 128, TT: mt.const = 64,
             TH: mt.const = 512, DIRECT: mt.const = False, MOVE: mt.const = True):
    """Group the N = T * TOPK (token, slot) entries by expert (ids, wts: the router's
    [T, TOPK] outputs, flattened): pos[i] = entry i's row in expert order (ties in entry
    order); xs[pos[i]] = x[i // TOPK], sw[pos[i]] = wts[i]; the row tiles of the grouped
    GEMMs: tile t (t < ntiles[0]) holds rows tile_r0[t] .. + tile_n[t] (<= TM), all of
    expert tile_e[t]. tile_* have tile_slots(N, NE, TM) entries.

    A counting sort over chunks of TB entries (_sort_hist): per block a histogram over
    the experts, a barrier (on a GPU: two launches), then each entry's row = its expert's
    exclusive prefix over experts and earlier blocks + its rank among its chunk's entries
    of that expert. Work O(N * (TB + TE) + P * TE * (P + TE)) (P: the target's AIV
    count; 4096 tokens x top 8, TB 64, TE 128, P 48: 1.3e7 compares, 4e7 vector element
    operations in all, against 1.1e9 compares ranking every entry against every other,
    3e9 operations). DIRECT (decode:
    MoeBlock takes it up to 512 entries): one launch without a barrier, each block
    ranking its TB entries against all N (O(N * TB) per block, N^2 in all: 2.6e5 at 512
    entries); TB = 1 gives one block per entry. Each block moves its entries' rows one
    after another; MOVE = False leaves xs and sw to moe_gather (the chunked sort's P
    blocks move N / P rows each in turn: 124 at 4096 tokens on a GPU; moe_gather spreads
    them over cdiv(N, RB) blocks). Counts and rows are exact f32 integers while N < 2^24
    (DIRECT: keys e * N + i, N * TE < 2^24)."""
    _check_sort(NE, TE)
    _sort(ids, wts, pos, sw, tile_e, tile_r0, tile_n, ntiles,
          _copy_bf16(x, xs, TH) if MOVE else None, TOPK, TM, TB, TJ, TE, TT, DIRECT)


@mt.kernel
def moe_gather(wts: mt.Tensor["N", mt.f32], x: mt.Tensor["T", "H", mt.bf16],
               pos: mt.Tensor["N", mt.i32], sw: mt.Out["N", 1, mt.f32],
               xs: mt.Out["N", "H", mt.bf16], TOPK: mt.const, RB: mt.const = 8,
               TH: mt.const = 512):
    """The row moves of moe_sort (MOVE = False) in a launch of their own: for every entry
    i, xs[pos[i]] = x[i // TOPK] and sw[pos[i]] = wts[i], RB entries per block."""
    _gather(wts, pos, sw, _copy_bf16(x, xs, TH), TOPK, RB)


def quantize_group(xg):
    """Per-row fp8 quantisation of a (rows, 128) f32 tile: (q in e4m3, scale (rows, 1)),
    x ~ q * scale with scale = max(amax, 1e-10) / 448."""
    s = mt.maximum(mt.row_max(mt.abs(xg)), AMAX_EPS) / FP8_MAX
    return (xg / s).astype(mt.f8e4m3), s


@mt.kernel
def moe_sort_fp8(ids: mt.Tensor["N", mt.i32], wts: mt.Tensor["N", mt.f32],
                 x: mt.Tensor["T", "G", 128, mt.bf16], pos: mt.Out["N", mt.i32],
                 sw: mt.Out["N", 1, mt.f32], tile_e: mt.Out["MT", mt.i32],
                 tile_r0: mt.Out["MT", mt.i32], tile_n: mt.Out["MT", mt.i32],
                 ntiles: mt.Out[1, mt.i32], xq: mt.Out["N", "G", 128, mt.f8e4m3],
                 xqs: mt.Out["N", "G", 1, mt.f32],
                 NE: mt.const, TOPK: mt.const, TM: mt.const = 16, TB: mt.const = 64,
                 TJ: mt.const = 64, TE: mt.const = 128, TT: mt.const = 64,
                 GT: mt.const = 32, DIRECT: mt.const = False, MOVE: mt.const = True):
    """moe_sort with the rows quantised on the way (dynamic per-token 1x128 groups): x is
    the [T, H] activation viewed [T, H / 128, 128]; xq[p] = the e4m3 row, xqs[p] its
    H / 128 scales (GT >= H / 128 groups per tile)."""
    _check_sort(NE, TE)
    _sort(ids, wts, pos, sw, tile_e, tile_r0, tile_n, ntiles,
          _copy_fp8(x, xq, xqs, GT) if MOVE else None, TOPK, TM, TB, TJ, TE, TT, DIRECT)


@mt.kernel
def moe_gather_fp8(wts: mt.Tensor["N", mt.f32], x: mt.Tensor["T", "G", 128, mt.bf16],
                   pos: mt.Tensor["N", mt.i32], sw: mt.Out["N", 1, mt.f32],
                   xq: mt.Out["N", "G", 128, mt.f8e4m3], xqs: mt.Out["N", "G", 1, mt.f32],
                   TOPK: mt.const, RB: mt.const = 8, GT: mt.const = 32):
    """moe_gather quantising the rows on the way (moe_sort_fp8's copies)."""
    _gather(wts, pos, sw, _copy_fp8(x, xq, xqs, GT), TOPK, RB)


# ---------------------------------------------------------------- grouped GEMMs


def _grid(GRID):
    """The persistent launch's blocks: GRID, or the target's clusters (GRID = 0)."""
    return GRID if GRID else mt.target().clusters


def _items(ntiles, gn, GRID):
    """(blk, t, n0 index) over the live row tiles x gn N tiles, persistent: the work list
    holds only the tiles moe_sort made, so experts without rows cost nothing."""
    P = _grid(GRID)
    for blk in mt.spmd(P):
        for it in mt.range(blk, ntiles[0] * gn, P):
            yield it // gn, it % gn


def _step(acc, a, wt, sa, ws, e, n0, kb):
    """One K step of acc += a @ wt^T: on the cube, accumulated in L0C (bf16: ws None), or
    the e4m3 product scaled on the vector lanes by sa (per row) * ws[e, n0 // 128, kb]
    (per 128x128 weight block)."""
    if ws is None:
        return mt.matmul(a, wt, acc=acc, b_trans=True)
    part = mt.matmul(a, wt, b_trans=True)
    return acc + part * (sa * ws[e, n0 // QGROUP, kb])


def _mm(load_a, load_sa, w, ws, e, n0, K, TM, TN, TK, at_k=None):
    """acc (TM, TN) f32 = A @ w[e, n0:n0+TN]^T over K, A's K step at k0 from
    load_a(k0, width): bf16 in steps of TK (ws None), or e4m3 in 128-wide blocks kb with
    A's per-row scales load_sa(kb) (_step). at_k: the one step at at_k only."""
    acc = mt.zeros((TM, TN))
    if ws is None:
        for k0 in (mt.range(0, K, TK) if at_k is None else (at_k,)):
            a = load_a(k0, TK)
            acc = _step(acc, a, mt.load(w[e, n0:n0 + TN, k0:k0 + TK]), None, None, e, n0,
                        None)
        return acc
    for kb in (mt.range(0, mt.cdiv(K, QGROUP)) if at_k is None else (at_k // QGROUP,)):
        k0 = kb * QGROUP
        a, sa = load_a(k0, QGROUP), load_sa(kb)
        acc = _step(acc, a, mt.load(w[e, n0:n0 + TN, k0:k0 + QGROUP]), sa, ws, e, n0, kb)
    return acc


def _tile_rows(x, xqs, r0, n, TM):
    """Loaders of the row tile x[r0:r0+TM] (n live rows) and of its scales xqs, for _mm."""
    return (lambda k0, w: mt.load(x[r0:r0 + TM, k0:k0 + w], rows=n),
            lambda kb: mt.load(xqs[r0:r0 + TM, kb:kb + 1], rows=n))


def _mm_bf16(xs, w, e, r0, n, n0, K, TM, TN, TK):
    """acc[TM, TN] = xs[r0:r0+n] @ w[e, n0:n0+TN]^T on the cube, accumulated in L0C."""
    return _mm(*_tile_rows(xs, None, r0, n, TM), w, None, e, n0, K, TM, TN, TK)


def _mm_fp8(x, xqs, w, ws, e, r0, n, n0, K, TM, TN):
    """The block-scaled e4m3 product: for each 128-wide K block kb the cube's
    q[rows, kb] @ w[e, n0:, kb]^T (f32), then on the vector lanes
    acc += that * scale[rows, kb] * ws[e, n0 // 128, kb]; x is e4m3 with its per-row
    scales xqs."""
    return _mm(*_tile_rows(x, xqs, r0, n, TM), w, ws, e, n0, K, TM, TN, None)


def _mm_gate_up(x, xqs, wg, wu, sg, su, e, r0, n, n0, K, TM, TN, TK, ONE_LOOP):
    """(gate, up) accumulators of row tile r0.. of expert e: a K loop each (_mm), or
    ONE_LOOP: one K loop loading each A tile (and its scales) once for both products
    (half the A traffic; the same products in the same order)."""
    load_a, load_sa = _tile_rows(x, xqs, r0, n, TM)
    if not ONE_LOOP:
        return (_mm(load_a, load_sa, wg, sg, e, n0, K, TM, TN, TK),
                _mm(load_a, load_sa, wu, su, e, n0, K, TM, TN, TK))
    g = mt.zeros((TM, TN))
    u = mt.zeros((TM, TN))
    step = TK if sg is None else QGROUP
    for k0 in mt.range(0, K, step):
        a = load_a(k0, step)
        bg = mt.load(wg[e, n0:n0 + TN, k0:k0 + step])
        bu = mt.load(wu[e, n0:n0 + TN, k0:k0 + step])
        kb = None if sg is None else k0 // QGROUP
        sa = None if sg is None else load_sa(kb)
        g = _step(g, a, bg, sa, sg, e, n0, kb)
        u = _step(u, a, bu, sa, su, e, n0, kb)
    return g, u


def _check_fp8_tiles(TN, what):
    if QGROUP % TN:
        raise _const_error(f"{what}: TN={TN} does not divide the 128-row weight-scale "
                           f"block", "pass TN = 128, 64, 32 or 16")


@mt.kernel
def moe_gate_up(xs: mt.Tensor["N", "H", mt.bf16], wg: mt.Tensor["E", "I", "H", mt.bf16],
                wu: mt.Tensor["E", "I", "H", mt.bf16], tile_e: mt.Tensor["MT", mt.i32],
                tile_r0: mt.Tensor["MT", mt.i32], tile_n: mt.Tensor["MT", mt.i32],
                ntiles: mt.Tensor[1, mt.i32], act: mt.Out["N", "I", mt.bf16],
                TM: mt.const = 16, TN: mt.const = 128, TK: mt.const = 256,
                GRID: mt.const = 0, ONE_LOOP: mt.const = False):
    """Grouped gate/up projection with the SwiGLU fused: for each row tile t of expert
    e = tile_e[t], act[rows] = silu(xs[rows] @ wg[e]^T) * (xs[rows] @ wu[e]^T) (bf16).
    One persistent launch (GRID blocks; 0: the clusters) over (row tile, N tile) items.
    ONE_LOOP: both products in one K loop, each xs tile loaded once (else a K loop
    each)."""
    H = xs.shape[1]
    I = wg.shape[1]
    for t, j in _items(ntiles, mt.cdiv(I, TN), GRID):
        e, r0, n, n0 = tile_e[t], tile_r0[t], tile_n[t], j * TN
        g, u = _mm_gate_up(xs, None, wg, wu, None, None, e, r0, n, n0, H, TM, TN, TK,
                           ONE_LOOP)
        mt.store(act[r0:r0 + TM, n0:n0 + TN], (mt.silu(g) * u).astype(act.dtype), rows=n)


@mt.kernel
def moe_gate_up_fp8(xq: mt.Tensor["N", "H", mt.f8e4m3], xqs: mt.Tensor["N", "HB", mt.f32],
                    wg: mt.Tensor["E", "I", "H", mt.f8e4m3],
                    wu: mt.Tensor["E", "I", "H", mt.f8e4m3],
                    sg: mt.Tensor["E", "IB", "HB", mt.f32],
                    su: mt.Tensor["E", "IB", "HB", mt.f32], tile_e: mt.Tensor["MT", mt.i32],
                    tile_r0: mt.Tensor["MT", mt.i32], tile_n: mt.Tensor["MT", mt.i32],
                    ntiles: mt.Tensor[1, mt.i32], act: mt.Out["N", "I", mt.bf16],
                    TM: mt.const = 16, TN: mt.const = 128, GRID: mt.const = 0,
                    ONE_LOOP: mt.const = False):
    """moe_gate_up on e4m3 operands with 128x128 weight-block scales (sg, su) and
    per-token 1x128 activation scales (xqs); act = bf16(silu(g) * u), which moe_down_fp8
    quantises per token in 1x128 groups as it reads it (so TN is free: any divisor of
    128, the weight-scale block)."""
    _check_fp8_tiles(TN, "moe_gate_up_fp8")
    H = xq.shape[1]
    I = wg.shape[1]
    for t, j in _items(ntiles, mt.cdiv(I, TN), GRID):
        e, r0, n, n0 = tile_e[t], tile_r0[t], tile_n[t], j * TN
        g, u = _mm_gate_up(xq, xqs, wg, wu, sg, su, e, r0, n, n0, H, TM, TN, QGROUP,
                           ONE_LOOP)
        mt.store(act[r0:r0 + TM, n0:n0 + TN], (mt.silu(g) * u).astype(act.dtype), rows=n)


def _combine(blk, ys, pos, res, out, TOPK, TC, P):
    """Phase 2 of moe_down: out[t] = res[t] + sum_j ys[pos[t * TOPK + j]] over the slots
    in order (deterministic), (token, TC columns) items over both lanes of every block."""
    T, H = out.shape
    gc = mt.cdiv(H, TC)
    with mt.split_aiv(2, mode=mt.SplitMode.NONE) as lane:
        for it in mt.range(lane * P + blk, T * gc, P * 2):
            t = it // gc
            c0 = it % gc * TC
            acc = mt.load(res[t:t + 1, c0:c0 + TC]).astype(mt.f32)
            for j in range(TOPK):
                p = pos[t * TOPK + j]
                y = mt.load(ys[p:p + 1, c0:c0 + TC])
                acc = acc + (y if ys.dtype == mt.f32 else y.astype(mt.f32))
            mt.store(out[t:t + 1, c0:c0 + TC], acc.astype(out.dtype))


def _down_kernel(fp8: bool):
    """moe_down (bf16) or moe_down_fp8: the same two phases, the K loop chosen here."""

    def body(a, a_s, wd, wds, sw, tile_e, tile_r0, tile_n, ntiles, pos, res, out, TOPK,
             TM, TN, TK, TC, GRID, YS16):
        N, I = a.shape
        H = wd.shape[1]
        P = _grid(GRID)
        gn = mt.cdiv(H, TN)
        ys = mt.workspace((N, H), mt.bf16 if YS16 else mt.f32, "moe_ys")
        for blk in mt.spmd(P):
            # ---- phase 1: ys[rows] = sw[rows] * (a[rows] @ wd[e]^T), in expert order
            for it in mt.range(blk, ntiles[0] * gn, P):
                t = it // gn
                n0 = it % gn * TN
                e, r0, n = tile_e[t], tile_r0[t], tile_n[t]
                if fp8:
                    acc = _mm_fp8(a, a_s, wd, wds, e, r0, n, n0, I, TM, TN)
                else:
                    acc = _mm_bf16(a, wd, e, r0, n, n0, I, TM, TN, TK)
                wr = mt.load(sw[r0:r0 + TM, 0:1], rows=n)
                y = acc * wr
                mt.store(ys[r0:r0 + TM, n0:n0 + TN], y.astype(mt.bf16) if YS16 else y,
                         rows=n)
            # ---- phase 2: back to token order, each token's rows summed in slot order
            mt.fence()
            mt.syncall(mt.CoreType.MIX, mt.SyncMode.HARD)
            _combine(blk, ys, pos, res, out, TOPK, TC, P)

    return body


_down_bf16 = _down_kernel(False)
_down_fp8 = _down_kernel(True)


@mt.kernel
def moe_down(act: mt.Tensor["N", "I", mt.bf16], wd: mt.Tensor["E", "H", "I", mt.bf16],
             sw: mt.Tensor["N", 1, mt.f32], tile_e: mt.Tensor["MT", mt.i32],
             tile_r0: mt.Tensor["MT", mt.i32], tile_n: mt.Tensor["MT", mt.i32],
             ntiles: mt.Tensor[1, mt.i32], pos: mt.Tensor["N", mt.i32],
             res: mt.Tensor["T", "H", mt.bf16], out: mt.Out["T", "H", mt.bf16],
             TOPK: mt.const, TM: mt.const = 16, TN: mt.const = 128, TK: mt.const = 256,
             TC: mt.const = 512, GRID: mt.const = 0, YS16: mt.const = False):
    """Grouped down projection with the routing weight and the return to token order
    fused: phase 1 writes ys[rows] = sw[rows] * (act[rows] @ wd[e]^T) (f32, expert order,
    a workspace); after a syncall phase 2 sums each token's TOPK rows in slot order onto
    the residual: out[t] = bf16(res[t] + sum_j ys[pos[t * TOPK + j]]) (deterministic: no
    atomics, the same bits on every run and backend order). YS16: ys rounded to bf16
    (half the workspace traffic: 2 x 268 MB -> 2 x 134 MB at 4096 tokens x top 8, H 2048;
    one more rounding per slot, as transformers' bf16 expert outputs have)."""
    _down_bf16(act, None, wd, None, sw, tile_e, tile_r0, tile_n, ntiles, pos, res, out,
               TOPK, TM, TN, TK, TC, GRID, YS16)


# ------------------------------------------- one token: no sort, rows by the routing


def _mm_rows(a, a_s, w, ws, e, t, j, n0, K, TM, TN, TK, at_k=None):
    """The product of row a[t, j] (a [T, KT, K], read as a TM-row tile with one live row)
    with w[e, n0:n0+TN]^T, f32 (TM, TN): bf16 (ws None), or e4m3 with its 1x128 scales
    a_s [T, KT, K / 128] (_mm). at_k: only the K step at at_k."""
    return _mm(lambda k0, wd: mt.load(a[t:t + TM, j, k0:k0 + wd], rows=1),
               lambda kb: mt.load(a_s[t:t + TM, j, kb:kb + 1], rows=1), w, ws, e, n0, K,
               TM, TN, TK, at_k)


def _gate_up_routed(x, x_s, ids, wg, wu, sg, su, act, TM, TN, TK, GRID):
    T, KT, I = act.shape
    H = x.shape[2]
    gn = mt.cdiv(I, TN)
    P = _grid(GRID)
    for blk in mt.spmd(P):
        for it in mt.range(blk, T * KT * gn, P):
            i = it // gn
            t, j, n0 = i // KT, i % KT, it % gn * TN
            e = ids[t, j]
            g = _mm_rows(x, x_s, wg, sg, e, t, 0, n0, H, TM, TN, TK)
            u = _mm_rows(x, x_s, wu, su, e, t, 0, n0, H, TM, TN, TK)
            mt.store(act[t:t + TM, j, n0:n0 + TN], (mt.silu(g) * u).astype(act.dtype),
                     rows=1)


@mt.kernel
def moe_gate_up_routed(x: mt.Tensor["T", 1, "H", mt.bf16], ids: mt.Tensor["T", "KT", mt.i32],
                       wg: mt.Tensor["E", "I", "H", mt.bf16],
                       wu: mt.Tensor["E", "I", "H", mt.bf16],
                       act: mt.Out["T", "KT", "I", mt.bf16], TM: mt.const = 16,
                       TN: mt.const = 32, TK: mt.const = 128, GRID: mt.const = 0):
    """moe_gate_up without moe_sort: each (token t, slot j) entry is a row tile of its
    own, act[t, j] = silu(x[t] @ wg[ids[t, j]]^T) * (x[t] @ wu[ids[t, j]]^T) (x: the
    [T, H] activation viewed [T, 1, H]; ids: the router's). An expert that several
    entries chose is read once per entry: the decode form for one token, whose experts
    differ. GRID blocks (0: the clusters) over (entry, N tile) items."""
    _gate_up_routed(x, None, ids, wg, wu, None, None, act, TM, TN, TK, GRID)


@mt.kernel
def moe_gate_up_routed_fp8(xq: mt.Tensor["T", 1, "H", mt.f8e4m3],
                           xqs: mt.Tensor["T", 1, "HB", mt.f32],
                           ids: mt.Tensor["T", "KT", mt.i32],
                           wg: mt.Tensor["E", "I", "H", mt.f8e4m3],
                           wu: mt.Tensor["E", "I", "H", mt.f8e4m3],
                           sg: mt.Tensor["E", "IB", "HB", mt.f32],
                           su: mt.Tensor["E", "IB", "HB", mt.f32],
                           act: mt.Out["T", "KT", "I", mt.bf16], TM: mt.const = 16,
                           TN: mt.const = 32, GRID: mt.const = 0):
    """moe_gate_up_routed on e4m3 weights with 128x128 block scales and the token rows in
    e4m3 with their 1x128 scales (moe_quant's, once per token; quantised in here, each
    (entry, N tile) item quantised its 16-row tile again for gate and for up: 12.6 million
    IEEE divisions at one token of 30B-A3B, 73 us on an H100)."""
    _check_fp8_tiles(TN, "moe_gate_up_routed_fp8")
    _gate_up_routed(xq, xqs, ids, wg, wu, sg, su, act, TM, TN, QGROUP, GRID)


def _down_routed(a, a_s, wd, wds, ids, wts, res, out, TM, TN, TK, GRID, FLAT):
    T, KT, I = a.shape
    H = out.shape[1]
    gn = mt.cdiv(H, TN)
    nk = mt.cdiv(I, TK if wds is None else QGROUP)
    P = _grid(GRID)
    for blk in mt.spmd(P):
        for it in mt.range(blk, T * gn, P):
            t = it // gn
            n0 = it % gn * TN
            acc = mt.load(res[t:t + TM, n0:n0 + TN], rows=1).astype(mt.f32)
            if FLAT:  # one loop over (slot, K step): its loads pipeline across the slots
                for s in mt.range(0, KT * nk):
                    j = s // nk
                    k0 = s % nk * (TK if wds is None else QGROUP)
                    y = _mm_rows(a, a_s, wd, wds, ids[t, j], t, j, n0, I, TM, TN, TK,
                                 at_k=k0)
                    acc = acc + y * wts[t, j]
            else:
                for j in mt.range(0, KT):  # the slots in order, as moe_down's combine sums
                    y = _mm_rows(a, a_s, wd, wds, ids[t, j], t, j, n0, I, TM, TN, TK)
                    acc = acc + y * wts[t, j]
            mt.store(out[t:t + TM, n0:n0 + TN], acc.astype(out.dtype), rows=1)


@mt.kernel
def moe_down_routed(act: mt.Tensor["T", "KT", "I", mt.bf16],
                    wd: mt.Tensor["E", "H", "I", mt.bf16], ids: mt.Tensor["T", "KT", mt.i32],
                    wts: mt.Tensor["T", "KT", mt.f32], res: mt.Tensor["T", "H", mt.bf16],
                    out: mt.Out["T", "H", mt.bf16], TM: mt.const = 16, TN: mt.const = 16,
                    TK: mt.const = 256, GRID: mt.const = 0, FLAT: mt.const = False):
    """moe_down without the sort and the workspace: per (token, N tile) item,
    out[t] = bf16(res[t] + sum_j wts[t, j] * (act[t, j] @ wd[ids[t, j]]^T)), the slots
    summed in order (moe_down's arithmetic, in one launch without a syncall). Each token
    reads its own experts' weights: the decode form for one token. FLAT: one loop over
    (slot, K step), each step's product weighted and added on its own (its loads can
    pipeline across slots; the sum per slot is then in f32 steps of TK, not one product)."""
    _down_routed(act, None, wd, None, ids, wts, res, out, TM, TN, TK, GRID, FLAT)


@mt.kernel
def moe_down_routed_fp8(aq: mt.Tensor["T", "KT", "I", mt.f8e4m3],
                        aqs: mt.Tensor["T", "KT", "IB", mt.f32],
                        wd: mt.Tensor["E", "H", "I", mt.f8e4m3],
                        sd: mt.Tensor["E", "HB", "IB", mt.f32],
                        ids: mt.Tensor["T", "KT", mt.i32], wts: mt.Tensor["T", "KT", mt.f32],
                        res: mt.Tensor["T", "H", mt.bf16], out: mt.Out["T", "H", mt.bf16],
                        TM: mt.const = 16, TN: mt.const = 16, GRID: mt.const = 0,
                        FLAT: mt.const = False):
    """moe_down_routed on e4m3 weights with 128x128 block scales and the activation in
    e4m3 with its 1x128 scales (moe_quant's)."""
    _check_fp8_tiles(TN, "moe_down_routed_fp8")
    _down_routed(aq, aqs, wd, sd, ids, wts, res, out, TM, TN, QGROUP, GRID, FLAT)


@mt.kernel
def moe_quant(x: mt.Tensor["R", 128, mt.bf16], xq: mt.Out["R", 128, mt.f8e4m3],
              xqs: mt.Out["R", 1, mt.f32], TR: mt.const = 64):
    """Dynamic FP8 quantisation of R 1x128 groups (an [N, I] activation viewed
    [N * I / 128, 128]): xq = e4m3(x / s), s = max(amax, 1e-10) / 448 per group, TR
    groups per block."""
    R = x.shape[0]
    for blk in mt.spmd(mt.cdiv(R, TR)):
        r0 = blk * TR
        q, s = quantize_group(mt.load(x[r0:r0 + TR, 0:QGROUP]).astype(mt.f32))
        mt.store(xq[r0:r0 + TR, 0:QGROUP], q)
        mt.store(xqs[r0:r0 + TR, 0:1], s)


@mt.kernel
def moe_down_fp8(aq: mt.Tensor["N", "I", mt.f8e4m3], aqs: mt.Tensor["N", "IB", mt.f32],
                 wd: mt.Tensor["E", "H", "I", mt.f8e4m3],
                 sd: mt.Tensor["E", "HB", "IB", mt.f32],
                 sw: mt.Tensor["N", 1, mt.f32], tile_e: mt.Tensor["MT", mt.i32],
                 tile_r0: mt.Tensor["MT", mt.i32], tile_n: mt.Tensor["MT", mt.i32],
                 ntiles: mt.Tensor[1, mt.i32], pos: mt.Tensor["N", mt.i32],
                 res: mt.Tensor["T", "H", mt.bf16], out: mt.Out["T", "H", mt.bf16],
                 TOPK: mt.const, TM: mt.const = 16, TN: mt.const = 128,
                 TC: mt.const = 512, GRID: mt.const = 0, YS16: mt.const = False):
    """moe_down on e4m3 weights with 128x128 block scales sd and the activation in e4m3
    with its per-token 1x128 scales (aq, aqs: moe_gate_up_fp8's bf16 act through
    moe_quant), the scales applied per K block. The quantisation is a launch of its own:
    done here, each of the H / TN column tiles of a row tile quantised the same act rows
    again (about 45 million IEEE divisions at 32 tokens)."""
    _check_fp8_tiles(TN, "moe_down_fp8")
    _down_fp8(aq, aqs, wd, sd, sw, tile_e, tile_r0, tile_n, ntiles, pos, res, out, TOPK,
              TM, TN, QGROUP, TC, GRID, YS16)
