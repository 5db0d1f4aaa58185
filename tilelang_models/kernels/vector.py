"""Vector-only kernels (run on the AIV cores): RMSNorm, row softmax, SiLU(gate) * up."""
import mixtile as mt


@mt.kernel
def rmsnorm(x: mt.Tensor["R", "H", mt.bf16], w: mt.Tensor["H", mt.bf16],
            y: mt.Out["R", "H", mt.bf16], eps: mt.Scalar[mt.f32],
            TR: mt.const = 8, TH: mt.const = 256):
    """y = x / sqrt(mean(x^2) + eps) * w over the last axis (TH >= H, one tile per row)."""
    R, H = x.shape
    for blk in mt.spmd(mt.cdiv(R, TR)):
        r0 = blk * TR
        xt = mt.load(x[r0:r0 + TR, 0:TH]).astype(mt.f32)  # padded columns read as 0
        ms = mt.row_sum(xt * xt) / mt.to_float(H)
        inv = mt.rsqrt(ms + eps)
        wt = mt.load(w[0:TH]).astype(mt.f32)
        mt.store(y[r0:r0 + TR, 0:TH], (xt * inv * wt).astype(mt.bf16))


@mt.kernel
def softmax(x: mt.Tensor["R", "C", mt.f32], y: mt.Out["R", "C", mt.f32],
            TR: mt.const = 8, TC: mt.const = 256):
    """Row softmax (TC >= C); padded columns read as -inf so they add nothing."""
    R, C = x.shape
    for blk in mt.spmd(mt.cdiv(R, TR)):
        r0 = blk * TR
        xt = mt.load(x[r0:r0 + TR, 0:TC], pad=float("-inf"))
        p = mt.exp(xt - mt.row_max(xt))
        mt.store(y[r0:r0 + TR, 0:TC], p / mt.row_sum(p))


@mt.kernel
def silu_mul(gate: mt.Tensor["R", "C", mt.bf16], up: mt.Tensor["R", "C", mt.bf16],
             y: mt.Out["R", "C", mt.bf16], TR: mt.const = 16, TC: mt.const = 256):
    """y = silu(gate) * up, elementwise, tiled over rows and columns."""
    R, C = gate.shape
    gc = mt.cdiv(C, TC)
    for blk in mt.spmd(mt.cdiv(R, TR) * gc):
        r0 = blk // gc * TR
        c0 = blk % gc * TC
        g = mt.load(gate[r0:r0 + TR, c0:c0 + TC]).astype(mt.f32)
        u = mt.load(up[r0:r0 + TR, c0:c0 + TC]).astype(mt.f32)
        mt.store(y[r0:r0 + TR, c0:c0 + TC], (mt.silu(g) * u).astype(mt.bf16))
