"""Cube-only GEMM kernels: y = epilogue(x @ w^T), with the epilogue in the L0C writeback.

x is [M, K], w is [N, K] (a weight stored [out, in]), y is [M, N]. Every epilogue here
is one the FIXPIPE does on the way out of L0C, so each kernel runs on the AIC alone.
"""
import mixtile as mt


def blocks(M, N, TM, TN, m_inner: bool = False):
    """Launch one block per (TM, TN) output tile: yields (m0, n0), the tile's origin.
    m_inner: consecutive blocks take consecutive M tiles of one N tile (they run at the
    same time, so a weight tile read by several M tiles comes from HBM about once)."""
    gn = mt.cdiv(N, TN)
    if m_inner:
        gm = mt.cdiv(M, TM)
        for blk in mt.spmd(gm * gn):
            yield blk % gm * TM, blk // gm * TN
        return
    for blk in mt.spmd(mt.cdiv(M, TM) * gn):
        yield blk // gn * TM, blk % gn * TN


def mainloop(x, w, m0, n0, k_lo, k_hi, TM, TN, TK):
    """acc[TM, TN] = x[m0:, k_lo:k_hi] @ w[n0:, k_lo:k_hi]^T on the cube (traced inline)."""
    acc = mt.zeros((TM, TN), mt.f32)
    for k0 in mt.range(k_lo, k_hi, TK):
        a = mt.load(x[m0:m0 + TM, k0:k0 + TK])
        b = mt.load(w[n0:n0 + TN, k0:k0 + TK])
        acc = mt.matmul(a, b, acc=acc, b_trans=True)
    return acc


@mt.kernel
def gemm(x: mt.Tensor["M", "K", mt.bf16], w: mt.Tensor["N", "K", mt.bf16],
         y: mt.Out["M", "N", mt.f32],
         TM: mt.const = 64, TN: mt.const = 128, TK: mt.const = 128):
    """y = x @ w^T in fp32."""
    M, K = x.shape
    N = w.shape[0]
    for m0, n0 in blocks(M, N, TM, TN):
        acc = mainloop(x, w, m0, n0, 0, K, TM, TN, TK)
        mt.store(y[m0:m0 + TM, n0:n0 + TN], acc)


def _gemm_epilogue(out_dtype, with_bias: bool, relu: bool):
    """Build a GEMM kernel with a bias / ReLU / cast epilogue (chosen at definition)."""

    @mt.kernel
    def gemm_ep(x: mt.Tensor["M", "K", mt.bf16], w: mt.Tensor["N", "K", mt.bf16],
                bias: mt.Tensor["N", mt.f32], y: mt.Out["M", "N", out_dtype],
                TM: mt.const = 64, TN: mt.const = 128, TK: mt.const = 128):
        M, K = x.shape
        N = w.shape[0]
        for m0, n0 in blocks(M, N, TM, TN):
            h = mainloop(x, w, m0, n0, 0, K, TM, TN, TK)
            if with_bias:  # compile-time choice: specialised away while tracing
                h = h + mt.load(bias[n0:n0 + TN])
            if relu:
                h = mt.relu(h)
            mt.store(y[m0:m0 + TM, n0:n0 + TN], h.astype(out_dtype))

    return gemm_ep


gemm_bias = _gemm_epilogue(mt.f32, True, False)
gemm_bias_relu = _gemm_epilogue(mt.f32, True, True)
gemm_bias_relu_bf16 = _gemm_epilogue(mt.bf16, True, True)
gemm_cast_bf16 = _gemm_epilogue(mt.bf16, False, False)
gemm_cast_f16 = _gemm_epilogue(mt.f16, False, False)


@mt.kernel
def gemm_splitk(x: mt.Tensor["M", "K", mt.bf16], w: mt.Tensor["N", "K", mt.bf16],
                y: mt.InOut["M", "N", mt.f32],
                TM: mt.const = 64, TN: mt.const = 128, TK: mt.const = 128,
                SPLIT: mt.const = 4):
    """y += x @ w^T with K split over SPLIT blocks, partial sums atomically added.

    y must hold zeros (or a residual to add to) on entry."""
    M, K = x.shape
    N = w.shape[0]
    gn = mt.cdiv(N, TN)
    gmn = mt.cdiv(M, TM) * gn
    kchunk = mt.cdiv(mt.cdiv(K, SPLIT), TK) * TK  # K per split, a multiple of TK
    for blk in mt.spmd(gmn * SPLIT):
        tile = blk % gmn
        s = blk // gmn
        m0 = tile // gn * TM
        n0 = tile % gn * TN
        k_lo = s * kchunk
        k_hi = mt.smin(k_lo + kchunk, K)
        acc = mainloop(x, w, m0, n0, k_lo, k_hi, TM, TN, TK)
        mt.atomic_add(y[m0:m0 + TM, n0:n0 + TN], acc)
