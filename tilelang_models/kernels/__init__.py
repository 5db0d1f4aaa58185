"""Building-block kernels: cube GEMMs with writeback epilogues, vector norms/activations,
mixed cube+vector epilogues and attention. `examples()` lists them all (every backend's
tests run each one)."""


def examples() -> list[tuple[str, object]]:
    """(name, kernel) of every example kernel, in a fixed order."""
    from tilelang_models.kernels import attention, gemm, mixed, vector

    names = [(gemm, n) for n in ("gemm", "gemm_bias", "gemm_bias_relu", "gemm_bias_relu_bf16",
                                 "gemm_cast_bf16", "gemm_cast_f16", "gemm_splitk")]
    names += [(vector, n) for n in ("rmsnorm", "softmax", "silu_mul")]
    names += [(mixed, n) for n in ("gemm_bias_silu", "gemm_bias_gelu_tanh",
                                   "gemm_bias_gelu_erf", "gemm_residual", "gemm_swiglu",
                                   "gemm_bias_silu_manual", "gemm_bias_gelu_tanh_manual",
                                   "gemm_bias_gelu_erf_manual", "gemm_residual_manual",
                                   "gemm_swiglu_manual")]
    names += [(attention, "flash_decode")]
    return [(n, getattr(m, n)) for m, n in names]
