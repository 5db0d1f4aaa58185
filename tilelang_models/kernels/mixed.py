"""Mixed cube + vector kernels in automatic mode: a cube GEMM whose epilogue needs the
vector cores (the L0C writeback cannot do it). The compiler splits each into an AIC and
an AIV program, moves the accumulator through a per-cluster GM slot with flags, and
halves the epilogue's rows between the two AIV lanes (UP_DOWN). Row tiles TM must be even.
"""
import mixtile as mt
from tilelang_models.kernels.gemm import blocks, mainloop


def _epilogue_kernel(act):
    """y = act(x @ w^T + bias) in bf16; `act` is traced into the vector program."""

    @mt.kernel
    def gemm_bias_act(x: mt.Tensor["M", "K", mt.bf16], w: mt.Tensor["N", "K", mt.bf16],
                      bias: mt.Tensor["N", mt.f32], y: mt.Out["M", "N", mt.bf16],
                      TM: mt.const = 32, TN: mt.const = 128, TK: mt.const = 128):
        M, K = x.shape
        N = w.shape[0]
        for m0, n0 in blocks(M, N, TM, TN):
            acc = mainloop(x, w, m0, n0, 0, K, TM, TN, TK)
            h = act(acc + mt.load(bias[n0:n0 + TN]))
            mt.store(y[m0:m0 + TM, n0:n0 + TN], h.astype(mt.bf16))

    return gemm_bias_act


gemm_bias_silu = _epilogue_kernel(mt.silu)
gemm_bias_gelu_tanh = _epilogue_kernel(mt.gelu_tanh)
gemm_bias_gelu_erf = _epilogue_kernel(mt.gelu_erf)


@mt.kernel
def gemm_residual(x: mt.Tensor["M", "K", mt.bf16], w: mt.Tensor["N", "K", mt.bf16],
                  res: mt.Tensor["M", "N", mt.bf16], y: mt.Out["M", "N", mt.bf16],
                  TM: mt.const = 32, TN: mt.const = 128, TK: mt.const = 128):
    """y = x @ w^T + res (a residual add: a second GM input on the vector side)."""
    M, K = x.shape
    N = w.shape[0]
    for m0, n0 in blocks(M, N, TM, TN):
        acc = mainloop(x, w, m0, n0, 0, K, TM, TN, TK)
        r = mt.load(res[m0:m0 + TM, n0:n0 + TN]).astype(mt.f32)
        mt.store(y[m0:m0 + TM, n0:n0 + TN], (acc + r).astype(mt.bf16))


@mt.kernel
def gemm_swiglu(x: mt.Tensor["M", "K", mt.bf16], w_gu: mt.Tensor["N2", "K", mt.bf16],
                y: mt.Out["M", "I", mt.bf16],
                TM: mt.const = 32, TN: mt.const = 64, TK: mt.const = 128):
    """y = silu(x @ Wg^T) * (x @ Wu^T) with the merged weight w_gu = [Wg; Wu] ([2I, K])."""
    M, K = x.shape
    I = y.shape[1]
    for m0, n0 in blocks(M, I, TM, TN):
        g = mainloop(x, w_gu, m0, n0, 0, K, TM, TN, TK)
        u = mainloop(x, w_gu, m0, I + n0, 0, K, TM, TN, TK)
        mt.store(y[m0:m0 + TM, n0:n0 + TN], (mt.silu(g) * u).astype(mt.bf16))


# Manual mode: the same epilogues with the crossings and the lane split written out.
# `aiv_shard` marks the cube -> vector crossing, `split_aiv(UP_DOWN)` the row split;
# the compiler checks them and builds the same per-core programs.


def _manual_epilogue_kernel(act):
    @mt.kernel
    def gemm_bias_act_manual(x: mt.Tensor["M", "K", mt.bf16],
                             w: mt.Tensor["N", "K", mt.bf16], bias: mt.Tensor["N", mt.f32],
                             y: mt.Out["M", "N", mt.bf16], TM: mt.const = 32,
                             TN: mt.const = 128, TK: mt.const = 128):
        M, K = x.shape
        N = w.shape[0]
        for m0, n0 in blocks(M, N, TM, TN):
            acc = mainloop(x, w, m0, n0, 0, K, TM, TN, TK)  # cube
            with mt.split_aiv(2, mode=mt.SplitMode.UP_DOWN):  # each lane: TM / 2 rows
                h = act(mt.aiv_shard(acc) + mt.load(bias[n0:n0 + TN]))
                mt.store(y[m0:m0 + TM, n0:n0 + TN], h.astype(mt.bf16))

    return gemm_bias_act_manual


gemm_bias_silu_manual = _manual_epilogue_kernel(mt.silu)
gemm_bias_gelu_tanh_manual = _manual_epilogue_kernel(mt.gelu_tanh)
gemm_bias_gelu_erf_manual = _manual_epilogue_kernel(mt.gelu_erf)


@mt.kernel
def gemm_residual_manual(x: mt.Tensor["M", "K", mt.bf16], w: mt.Tensor["N", "K", mt.bf16],
                         res: mt.Tensor["M", "N", mt.bf16], y: mt.Out["M", "N", mt.bf16],
                         TM: mt.const = 32, TN: mt.const = 128, TK: mt.const = 128):
    M, K = x.shape
    N = w.shape[0]
    for m0, n0 in blocks(M, N, TM, TN):
        acc = mainloop(x, w, m0, n0, 0, K, TM, TN, TK)
        with mt.split_aiv(2, mode=mt.SplitMode.UP_DOWN):
            r = mt.load(res[m0:m0 + TM, n0:n0 + TN]).astype(mt.f32)
            mt.store(y[m0:m0 + TM, n0:n0 + TN], (mt.aiv_shard(acc) + r).astype(mt.bf16))


@mt.kernel
def gemm_swiglu_manual(x: mt.Tensor["M", "K", mt.bf16], w_gu: mt.Tensor["N2", "K", mt.bf16],
                       y: mt.Out["M", "I", mt.bf16],
                       TM: mt.const = 32, TN: mt.const = 64, TK: mt.const = 128):
    M, K = x.shape
    I = y.shape[1]
    for m0, n0 in blocks(M, I, TM, TN):
        g = mainloop(x, w_gu, m0, n0, 0, K, TM, TN, TK)
        u = mainloop(x, w_gu, m0, I + n0, 0, K, TM, TN, TK)
        with mt.split_aiv(2, mode=mt.SplitMode.UP_DOWN):
            h = mt.silu(mt.aiv_shard(g)) * mt.aiv_shard(u)
            mt.store(y[m0:m0 + TM, n0:n0 + TN], h.astype(mt.bf16))
